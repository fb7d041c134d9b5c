//! The user-authentication link (issue 13, item 5): a registered
//! user-authentication verifier (利用者証明検証者, a hospital's eligibility
//! system) asks about a user-authentication serial it read from a card or a
//! phone, and learns its status and a **pseudonym of the holder** that is
//! the same for every certificate that holder ever had, and different for
//! every verifier: two verifiers' tables cannot be joined, and a leak of one
//! does not identify people anywhere else (the idea of the German eID's
//! "restricted identification"). No 4 information, ever.
//!
//! The pseudonym is `L1-` and 32 hex digits: HMAC-SHA256 under the
//! service's link key (`k/link-1`, made once, kept in the info store), over
//! `shikko link v1`, the verifier (provider) id and the holder id,
//! truncated to 16 octets. Without the key, a pseudonym reveals nothing and
//! cannot be computed for another verifier. Rotation: a new key is a new
//! version (`L2-`), under which every pseudonym changes; the service would
//! answer both during a changeover (not built yet: one version today).
//!
//! For a verifier's batch run after renewals, [`InfoService::link_current`]
//! turns pseudonyms it was given back into the holder's current
//! user-authentication serials: the pseudonyms a verifier was given are
//! remembered per verifier (`l/VERIFIER/PSEUDONYM` -> holder), so one it
//! was never given is unknown to it. Every answer is audited.

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
const LINK_KEY: &[u8] = b"k/link-1";

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
}

/// The link key.
pub(crate) struct LinkKey(hmac::Key);

impl LinkKey {
    /// The key of `store` (made on first use).
    pub(crate) fn open(store: &shikko_store::Store) -> Result<LinkKey, InfoError> {
        let secret = keys::secret(store, LINK_KEY, "the link key")?;
        Ok(LinkKey(hmac::Key::new(hmac::HMAC_SHA256, &secret)))
    }

    /// The pseudonym of `holder` for `verifier`.
    pub(crate) fn pseudonym(&self, verifier: &ProviderId, holder: &HolderId) -> String {
        let mut m = b"shikko link v1\0".to_vec();
        m.extend_from_slice(verifier.as_str().as_bytes());
        m.push(0);
        m.extend_from_slice(holder.as_str().as_bytes());
        let tag = hmac::sign(&self.0, &m);
        format!("L1-{}", hex::encode(&tag.as_ref()[..16]))
    }
}

fn given_key(verifier: &ProviderId, pseudonym: &str) -> Vec<u8> {
    format!("l/{verifier}/{pseudonym}").into_bytes()
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
            let answer = match cur {
                None => LinkAnswer {
                    status: LinkStatus::Unknown,
                    pseudonym: None,
                },
                Some(cur) => {
                    let status = match cur.asked.status {
                        CertStatus::Revoked { .. } => LinkStatus::Revoked,
                        CertStatus::OnHold { .. } => LinkStatus::OnHold,
                        CertStatus::Good if good_at(&cur.asked, now) => LinkStatus::Good,
                        CertStatus::Good => LinkStatus::Expired,
                    };
                    let p = self.link_key.pseudonym(verifier, &cur.holder.id);
                    puts.push((
                        given_key(verifier, &p),
                        cur.holder.id.as_str().as_bytes().to_vec(),
                    ));
                    LinkAnswer {
                        status,
                        pseudonym: Some(p),
                    }
                }
            };
            entries.push(AuditEntry {
                actor: op.id.as_str().into(),
                action: ACTION,
                provider: verifier.as_str().into(),
                subject: format!("{}:{}", kind.issuer_id(), s.to_hex()),
                outcome: answer.status.name().into(),
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
        let well_formed = |p: &String| {
            p.len() == 35 && p.starts_with("L1-") && p[3..].bytes().all(|b| b.is_ascii_hexdigit())
        };
        if pseudonyms.len() > MAX_LINK_BATCH || !pseudonyms.iter().all(well_formed) {
            let e = InfoError::Invalid(format!(
                "at most {MAX_LINK_BATCH} pseudonyms per call, each L1- and 32 hex digits"
            ));
            return Err(self
                .refuse(op.id.as_str(), ACTION, verifier.as_str(), "", e)
                .await);
        }
        self.admit(op, verifier, pseudonyms.len().max(1), ACTION)
            .await?;
        let now = UnixTime::now();
        let mut out = Vec::with_capacity(pseudonyms.len());
        let mut entries = Vec::with_capacity(pseudonyms.len());
        for p in &pseudonyms {
            let mut answer = LinkCurrent::default();
            if let Some(h) = self.store.info_get(&given_key(verifier, p))? {
                let id = HolderId::new(String::from_utf8_lossy(&h).into_owned())
                    .map_err(|_| InfoError::Corrupt("a link record names no holder"))?;
                answer.known = true;
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
            });
            out.push(answer);
        }
        self.audit_only(entries).await?;
        Ok(out)
    }
}
