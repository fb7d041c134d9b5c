//! The user-authentication link (issue 13, item 5): a registered
//! user-authentication verifier (利用者証明検証者, a hospital's eligibility
//! system) asks about a user-authentication serial it read from a card or a
//! phone, and learns its status and a **pseudonym of the holder** that is
//! the same for every certificate that holder ever had, and different for
//! every verifier: two verifiers' tables cannot be joined, and a leak of one
//! does not identify people anywhere else (the idea of the German eID's
//! "restricted identification"). No 4 information, ever.
//!
//! The pseudonym is `L`, the link key's version, `-` and 32 hex digits:
//! HMAC-SHA256 under that version's key (`k/link-N`, 32 random octets kept
//! in the info store), over `shikko link v1`, the verifier (provider) id
//! and the holder id, truncated to 16 octets. Without the key, a pseudonym
//! reveals nothing and cannot be computed for another verifier.
//!
//! **Rotation** (an administrator's act, `RotateLinkKey`): a new version
//! becomes current and every pseudonym changes with it. During the
//! changeover the previous version is still answered: Resolve gives both
//! pseudonyms (the verifier finds its stored row by the previous one and
//! re-keys it), and Current accepts pseudonyms of either version and says
//! the holder's current-version pseudonym. `RetireLinkKey` ends the
//! changeover: the previous key and every pseudonym given under it are
//! deleted, and those pseudonyms are unknown from then on. One changeover
//! at a time.
//!
//! For a verifier's batch run after renewals, [`InfoService::link_current`]
//! turns pseudonyms it was given back into the holder's current
//! user-authentication serials: the pseudonyms a verifier was given are
//! remembered per key version and verifier (`n/VVVV/VERIFIER/PSEUDONYM` ->
//! holder), so one it was never given is unknown to it. Every answer is
//! audited.

use std::sync::Arc;

use aws_lc_rs::hmac;
use shikko_core::person::{current_of, good_at};
use shikko_core::{CertKind, CertStatus, HolderId, ProviderId, Serial, UnixTime};

use crate::audit::AuditEntry;
use crate::error::InfoError;
use crate::keys;
use crate::operators::Operator;
use crate::service::InfoService;

/// Most serials or pseudonyms in one call.
pub const MAX_LINK_BATCH: usize = 10_000;
/// The versions of the link key: which is current, which still answered.
const LINK_STATE: &[u8] = b"k/link-state";
/// Pseudonyms given, before key versions (one version, `l/VERIFIER/PSEUDONYM`).
const GIVEN_BEFORE_VERSIONS: &[u8] = b"l/";

/// A user-authentication certificate's status, for the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    /// Good and within its validity.
    Good,
    /// Revoked.
    Revoked,
    /// On hold (a lost card or phone).
    OnHold,
    /// Past its notAfter (or not yet valid).
    Expired,
    /// Not a certificate of that issuer the registry knows.
    Unknown,
}

impl LinkStatus {
    /// A stable name, for the audit log.
    pub fn name(self) -> &'static str {
        match self {
            LinkStatus::Good => "good",
            LinkStatus::Revoked => "revoked",
            LinkStatus::OnHold => "on_hold",
            LinkStatus::Expired => "expired",
            LinkStatus::Unknown => "unknown",
        }
    }
}

/// The answer for one serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkAnswer {
    /// Its status.
    pub status: LinkStatus,
    /// The holder's pseudonym for this verifier (`None` when unknown).
    pub pseudonym: Option<String>,
    /// During a changeover: the pseudonym under the previous key.
    pub previous_pseudonym: Option<String>,
}

/// The holder's current user-authentication serials, for a pseudonym.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkCurrent {
    /// Whether this verifier was given this pseudonym.
    pub known: bool,
    /// The current (good now) card user-authentication serial.
    pub card: Option<Serial>,
    /// The current (good now) smartphone user-authentication serial.
    pub phone: Option<Serial>,
    /// The holder's pseudonym under the current key (when known).
    pub pseudonym_now: Option<String>,
}

fn key_name(version: u16) -> Vec<u8> {
    format!("k/link-{version}").into_bytes()
}

/// The key versions in force, as stored at `k/link-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkKeyState {
    /// The version pseudonyms are made with.
    pub current: u16,
    /// The version still answered during a changeover.
    pub previous: Option<u16>,
    /// When `current` became current (Unix seconds; 0: at first use).
    pub rotated_at: i64,
}

/// One version of the link key.
struct VersionKey {
    version: u16,
    key: hmac::Key,
}

impl VersionKey {
    /// Version `version` of `store`; the first version is made on first use.
    fn load(store: &shikko_store::Store, version: u16) -> Result<VersionKey, InfoError> {
        let secret = if version == 1 {
            keys::secret(store, &key_name(version), "a link key")?
        } else {
            store
                .info_get(&key_name(version))?
                .filter(|k| k.len() == 32)
                .ok_or(InfoError::Corrupt("a link key in force is missing"))?
        };
        Ok(VersionKey {
            version,
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        })
    }

    /// The pseudonym of `holder` for `verifier` under this version.
    fn pseudonym(&self, verifier: &ProviderId, holder: &HolderId) -> String {
        let mut m = b"shikko link v1\0".to_vec();
        m.extend_from_slice(verifier.as_str().as_bytes());
        m.push(0);
        m.extend_from_slice(holder.as_str().as_bytes());
        let tag = hmac::sign(&self.key, &m);
        format!("L{}-{}", self.version, hex::encode(&tag.as_ref()[..16]))
    }
}

/// The link keys in force: the current one, and the previous one during a
/// changeover.
pub(crate) struct LinkKeys {
    state: LinkKeyState,
    current: VersionKey,
    previous: Option<VersionKey>,
}

impl LinkKeys {
    /// The keys of `store` (the first made on first use). Pseudonyms given
    /// before key versions existed move under version 1; what a retirement
    /// that stopped half-way left behind is deleted.
    pub(crate) fn open(store: &shikko_store::Store) -> Result<LinkKeys, InfoError> {
        let state = keys::get::<LinkKeyState>(store, LINK_STATE, "the link key state")?.unwrap_or(
            LinkKeyState {
                current: 1,
                previous: None,
                rotated_at: 0,
            },
        );
        migrate_unversioned(store)?;
        let oldest = state.previous.unwrap_or(state.current);
        store.info_delete_range(&given_version(0), &given_version(oldest))?;
        for retired in 1..oldest {
            delete_key(store, &key_name(retired))?;
        }
        Ok(LinkKeys {
            current: VersionKey::load(store, state.current)?,
            previous: state
                .previous
                .map(|v| VersionKey::load(store, v))
                .transpose()?,
            state,
        })
    }

    /// The versions in force.
    pub(crate) fn state(&self) -> LinkKeyState {
        self.state
    }

    fn of(&self, version: u16) -> Option<&VersionKey> {
        if version == self.current.version {
            Some(&self.current)
        } else {
            self.previous.as_ref().filter(|p| p.version == version)
        }
    }
}

/// Moves `l/VERIFIER/PSEUDONYM` (one key version) to version 1's place.
fn migrate_unversioned(store: &shikko_store::Store) -> Result<(), InfoError> {
    loop {
        let old = store.info_scan(GIVEN_BEFORE_VERSIONS, GIVEN_BEFORE_VERSIONS, 10_000)?;
        let Some((last, _)) = old.last() else {
            return Ok(());
        };
        let last = last.clone();
        let moved: Vec<(Vec<u8>, Vec<u8>)> = old
            .into_iter()
            .map(|(k, v)| {
                let mut key = given_version(1);
                key.extend_from_slice(&k[GIVEN_BEFORE_VERSIONS.len()..]);
                (key, v)
            })
            .collect();
        store.info_write(&moved)?;
        store.info_delete_range(GIVEN_BEFORE_VERSIONS, &[last.as_slice(), b"\0"].concat())?;
    }
}

fn delete_key(store: &shikko_store::Store, key: &[u8]) -> Result<(), InfoError> {
    if store.info_get(key)?.is_some() {
        store.info_delete_range(key, &[key, b"\0"].concat())?;
    }
    Ok(())
}

/// `n/VVVV/`: the pseudonyms given under key `version`.
fn given_version(version: u16) -> Vec<u8> {
    format!("n/{version:04x}/").into_bytes()
}

fn given_key(version: u16, verifier: &ProviderId, pseudonym: &str) -> Vec<u8> {
    let mut k = given_version(version);
    k.extend_from_slice(format!("{verifier}/{pseudonym}").as_bytes());
    k
}

/// The key version of a well-formed pseudonym (`LN-` and 32 hex digits).
fn version_of(p: &str) -> Option<u16> {
    let rest = p.strip_prefix('L')?;
    let (v, tag) = rest.split_once('-')?;
    if v.is_empty() || v.len() > 5 || !v.bytes().all(|b| b.is_ascii_digit()) || v.starts_with('0') {
        return None;
    }
    if tag.len() != 32 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    v.parse().ok()
}

fn is_user_auth(kind: CertKind) -> bool {
    matches!(kind, CertKind::CardAuth | CertKind::PhoneAuth)
}

impl InfoService {
    /// The status and the holder's pseudonym for each user-authentication
    /// serial of `kind` (card or smartphone), for verifier `verifier`.
    pub async fn link_resolve(
        &self,
        op: &Operator,
        verifier: &ProviderId,
        kind: CertKind,
        serials: Vec<Serial>,
    ) -> Result<Vec<LinkAnswer>, InfoError> {
        const ACTION: &str = "link.resolve";
        if !is_user_auth(kind) || serials.len() > MAX_LINK_BATCH {
            let e = InfoError::Invalid(format!(
                "the link answers for at most {MAX_LINK_BATCH} user-authentication serials (auth, phone-auth) per call"
            ));
            return Err(self
                .refuse(op.id.as_str(), ACTION, verifier.as_str(), "", e)
                .await);
        }
        self.admit(op, verifier, serials.len().max(1), ACTION)
            .await?;
        let now = UnixTime::now();
        let link_keys = self.link_keys();
        let mut answers = Vec::with_capacity(serials.len());
        let mut entries = Vec::with_capacity(serials.len());
        let mut puts = Vec::new();
        for s in &serials {
            let cur = match current_of(self.store.as_ref(), kind, s, now) {
                Ok(c) => c,
                Err(shikko_core::person::CurrentError::View(e)) => return Err(e.into()),
                Err(shikko_core::person::CurrentError::MissingHolder) => {
                    return Err(InfoError::Corrupt("a certificate names a missing holder"));
                }
            };
            let asked_holder = cur.as_ref().map(|c| c.holder.id.clone());
            let answer = match cur {
                None => LinkAnswer {
                    status: LinkStatus::Unknown,
                    pseudonym: None,
                    previous_pseudonym: None,
                },
                Some(cur) => {
                    let status = match cur.asked.status {
                        CertStatus::Revoked { .. } => LinkStatus::Revoked,
                        CertStatus::OnHold { .. } => LinkStatus::OnHold,
                        CertStatus::Good if good_at(&cur.asked, now) => LinkStatus::Good,
                        CertStatus::Good => LinkStatus::Expired,
                    };
                    let holder = cur.holder.id.as_str().as_bytes();
                    let mut given = |k: &VersionKey| {
                        let p = k.pseudonym(verifier, &cur.holder.id);
                        puts.push((given_key(k.version, verifier, &p), holder.to_vec()));
                        p
                    };
                    LinkAnswer {
                        status,
                        pseudonym: Some(given(&link_keys.current)),
                        previous_pseudonym: link_keys.previous.as_ref().map(given),
                    }
                }
            };
            entries.push(AuditEntry {
                actor: op.id.as_str().into(),
                action: ACTION,
                provider: verifier.as_str().into(),
                subject: format!("{}:{}", kind.issuer_id(), s.to_hex()),
                outcome: answer.status.name().into(),
                holder: asked_holder,
            });
            answers.push(answer);
        }
        self.audit.commit(entries, Vec::new(), puts).await?;
        Ok(answers)
    }

    /// For each pseudonym this verifier was given: the holder's current
    /// (good now) card and smartphone user-authentication serials.
    pub async fn link_current(
        &self,
        op: &Operator,
        verifier: &ProviderId,
        pseudonyms: Vec<String>,
    ) -> Result<Vec<LinkCurrent>, InfoError> {
        const ACTION: &str = "link.current";
        if pseudonyms.len() > MAX_LINK_BATCH || !pseudonyms.iter().all(|p| version_of(p).is_some())
        {
            let e = InfoError::Invalid(format!(
                "at most {MAX_LINK_BATCH} pseudonyms per call, each L, a key version, - and 32 hex digits"
            ));
            return Err(self
                .refuse(op.id.as_str(), ACTION, verifier.as_str(), "", e)
                .await);
        }
        self.admit(op, verifier, pseudonyms.len().max(1), ACTION)
            .await?;
        let now = UnixTime::now();
        let link_keys = self.link_keys();
        let mut out = Vec::with_capacity(pseudonyms.len());
        let mut entries = Vec::with_capacity(pseudonyms.len());
        let mut puts = Vec::new();
        for p in &pseudonyms {
            let mut answer = LinkCurrent::default();
            // A pseudonym of a retired key (or a future one) is unknown.
            let given = match version_of(p).and_then(|v| link_keys.of(v)) {
                Some(k) => self.store.info_get(&given_key(k.version, verifier, p))?,
                None => None,
            };
            let mut known_holder = None;
            if let Some(h) = given {
                let id = HolderId::new(String::from_utf8_lossy(&h).into_owned())
                    .map_err(|_| InfoError::Corrupt("a link record names no holder"))?;
                known_holder = Some(id.clone());
                answer.known = true;
                let now_p = link_keys.current.pseudonym(verifier, &id);
                if now_p != *p {
                    puts.push((
                        given_key(link_keys.current.version, verifier, &now_p),
                        h.clone(),
                    ));
                }
                answer.pseudonym_now = Some(now_p);
                if let Some(holder) = self.store.holder(&id)? {
                    let current = |kind: CertKind| -> Result<Option<Serial>, InfoError> {
                        let Some(s) = holder.live(kind) else {
                            return Ok(None);
                        };
                        Ok(self
                            .store
                            .cert(kind, &s)?
                            .filter(|c| good_at(c, now))
                            .map(|_| s))
                    };
                    answer.card = current(CertKind::CardAuth)?;
                    answer.phone = current(CertKind::PhoneAuth)?;
                }
            }
            entries.push(AuditEntry {
                actor: op.id.as_str().into(),
                action: ACTION,
                provider: verifier.as_str().into(),
                subject: p.clone(),
                outcome: if answer.known { "known" } else { "unknown" }.into(),
                holder: known_holder,
            });
            out.push(answer);
        }
        if puts.is_empty() {
            self.audit_only(entries).await?;
        } else {
            self.audit.commit(entries, Vec::new(), puts).await?;
        }
        Ok(out)
    }

    /// The link keys in force.
    pub(crate) fn link_keys(&self) -> Arc<LinkKeys> {
        self.link_keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The link key versions in force (administrator, auditor).
    pub fn link_key_state(&self) -> LinkKeyState {
        self.link_keys().state()
    }

    /// Makes a new link key current; the current one stays answered until
    /// [`InfoService::retire_link_key`] (administrator). Refused while a
    /// previous key is still answered: one changeover at a time.
    pub async fn rotate_link_key(&self) -> Result<LinkKeyState, InfoError> {
        use aws_lc_rs::rand::SecureRandom;
        let _one = self.link_admin.lock().await;
        let keys_now = self.link_keys();
        let was = keys_now.state();
        if let Some(p) = was.previous {
            return Err(InfoError::FailedPrecondition(format!(
                "link key version {p} is still answered: retire it first"
            )));
        }
        let version = was
            .current
            .checked_add(1)
            .ok_or_else(|| InfoError::FailedPrecondition("no link key version is left".into()))?;
        let mut secret = vec![0u8; 32];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| InfoError::Internal("no randomness".into()))?;
        let state = LinkKeyState {
            current: version,
            previous: Some(was.current),
            rotated_at: UnixTime::now().0,
        };
        self.audit
            .commit(
                vec![link_admin_entry("link.rotate", &state)],
                Vec::new(),
                vec![
                    (key_name(version), secret.clone()),
                    (LINK_STATE.to_vec(), keys::encode(&state)?),
                ],
            )
            .await?;
        let current = VersionKey {
            version,
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        };
        let previous = VersionKey::load(&self.store, was.current)?;
        self.set_link_keys(LinkKeys {
            state,
            current,
            previous: Some(previous),
        });
        Ok(state)
    }

    /// Ends a changeover: the previous key and the pseudonyms given under
    /// it are deleted (administrator).
    pub async fn retire_link_key(&self) -> Result<LinkKeyState, InfoError> {
        let _one = self.link_admin.lock().await;
        let keys_now = self.link_keys();
        let was = keys_now.state();
        let Some(retired) = was.previous else {
            return Err(InfoError::FailedPrecondition(
                "no previous link key is answered: nothing to retire".into(),
            ));
        };
        let state = LinkKeyState {
            previous: None,
            ..was
        };
        self.audit
            .commit(
                vec![link_admin_entry("link.retire", &state)],
                Vec::new(),
                vec![(LINK_STATE.to_vec(), keys::encode(&state)?)],
            )
            .await?;
        self.set_link_keys(LinkKeys {
            state,
            current: VersionKey::load(&self.store, was.current)?,
            previous: None,
        });
        // After the state: a crash in between leaves what `LinkKeys::open` deletes.
        self.store
            .info_delete_range(&given_version(retired), &given_version(retired + 1))?;
        delete_key(&self.store, &key_name(retired))?;
        Ok(state)
    }

    fn set_link_keys(&self, keys: LinkKeys) {
        *self
            .link_keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
    }
}

fn link_admin_entry(action: &'static str, state: &LinkKeyState) -> AuditEntry {
    AuditEntry {
        actor: "admin".into(),
        action,
        provider: String::new(),
        subject: format!(
            "link-key:{}{}",
            state.current,
            state.previous.map(|p| format!("+{p}")).unwrap_or_default()
        ),
        outcome: "ok".into(),
        holder: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pseudonyms_are_parsed_by_version() {
        let tag = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(version_of(&format!("L1-{tag}")), Some(1));
        assert_eq!(version_of(&format!("L65535-{tag}")), Some(65535));
        for bad in [
            format!("L0-{tag}"),
            format!("L01-{tag}"),
            format!("L65536-{tag}"),
            format!("L-{tag}"),
            format!("X1-{tag}"),
            format!("L1-{}", &tag[1..]),
            format!("L1-{}g", &tag[1..]),
            "L1".into(),
        ] {
            assert_eq!(version_of(&bad), None, "{bad}");
        }
    }

    #[test]
    fn opening_moves_unversioned_pseudonyms_and_deletes_what_a_retirement_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = shikko_store::Store::open(dir.path()).unwrap();
        // A store from before key versions: its pseudonyms are version 1's.
        store
            .info_write(&[
                (b"l/clinic-1/L1-aa".to_vec(), b"H1".to_vec()),
                (b"l/clinic-2/L1-bb".to_vec(), b"H2".to_vec()),
            ])
            .unwrap();
        let keys = LinkKeys::open(&store).unwrap();
        assert_eq!(keys.state().current, 1);
        assert!(store.info_scan(b"l/", b"l/", 10).unwrap().is_empty());
        assert_eq!(
            store.info_get(b"n/0001/clinic-2/L1-bb").unwrap().as_deref(),
            Some(&b"H2"[..])
        );
        let v1 = store.info_get(b"k/link-1").unwrap().unwrap();
        assert_eq!(v1.len(), 32);

        // Version 2 current and version 1 retired, but the deletions that
        // follow a retirement did not happen (a crash): opening does them.
        store
            .info_write(&[
                (b"k/link-2".to_vec(), vec![7; 32]),
                (
                    LINK_STATE.to_vec(),
                    keys::encode(&LinkKeyState {
                        current: 2,
                        previous: None,
                        rotated_at: 1,
                    })
                    .unwrap(),
                ),
                (b"n/0002/clinic-1/L2-cc".to_vec(), b"H1".to_vec()),
            ])
            .unwrap();
        let keys = LinkKeys::open(&store).unwrap();
        assert_eq!(keys.state().current, 2);
        assert!(store.info_get(b"k/link-1").unwrap().is_none());
        assert!(
            store
                .info_scan(b"n/0001/", b"n/0001/", 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.info_scan(b"n/0002/", b"n/0002/", 10).unwrap().len(),
            1
        );
        // The key in force is the stored one, not a new one.
        let holder = HolderId::new("H1").unwrap();
        let verifier = ProviderId::new("clinic-1").unwrap();
        let expected = VersionKey {
            version: 2,
            key: hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]),
        }
        .pseudonym(&verifier, &holder);
        assert_eq!(keys.current.pseudonym(&verifier, &holder), expected);

        // A state naming a key that is not there is a corrupt store, not a new key.
        store
            .info_write(&[(
                LINK_STATE.to_vec(),
                keys::encode(&LinkKeyState {
                    current: 3,
                    previous: Some(2),
                    rotated_at: 2,
                })
                .unwrap(),
            )])
            .unwrap();
        assert!(matches!(LinkKeys::open(&store), Err(InfoError::Corrupt(_))));
    }
}
