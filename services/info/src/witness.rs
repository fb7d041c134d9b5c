//! A witness of the audit log (issue 15; `shikko witness`): a separate
//! process, with its own state directory, that fetches the log's signed
//! tree heads, checks each against the last one it accepted (signature,
//! size, a consistency proof from the service), and cosigns what holds or
//! raises an alarm.
//!
//! What it proves: every head it cosigned extends every earlier one. A log
//! whose custodian edited, removed or cut records, or restored an older
//! copy, has no consistency proof to a head the witness already holds, so
//! the next head it is shown raises the alarm, however carefully the
//! hashes were recomputed. It sees hashes only, never a record.
//!
//! The state directory holds:
//!
//! | file | what |
//! |---|---|
//! | `last.json` | the last head accepted ([`HeadFile`]) |
//! | `cosigned.jsonl` | each head accepted, with the witness's time and cosignature |
//! | `witness.key`, `witness-key.pem` | the witness's key (made at the first run), its public key |
//! | `ALARM` | why the witness stopped accepting heads; removed by an operator once explained |
//!
//! The first head a witness sees is taken as given (start it before the log
//! is trusted by anyone, or give it a head obtained otherwise with
//! `--trust HEAD.json`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shikko_core::UnixTime;
use shikko_core::merkle::{self, Hash};
use shikko_pki::Signer;
use shikko_pki::merkle::Sha256;
use shikko_pki::tree_head::{self, SignedTreeHead};

use crate::heads::HeadFile;

/// What a cosignature's signed octets start with; then the head's 74
/// signed octets, then the witness's time (Unix seconds, i64 big-endian).
pub const COSIGNATURE_DOMAIN: &[u8] = b"shikko witness cosignature v1\n";

/// Why a head was not cosigned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Alarm {
    /// Not signed by the audit key.
    #[error("the head of {size} records is not signed by the audit key")]
    Signature {
        /// Its size.
        size: u64,
    },
    /// Fewer records than a head accepted before: records were cut, or an older copy restored.
    #[error(
        "the log shrank: a head of {size} records after one of {last} (records cut, or an older copy restored)"
    )]
    Shrank {
        /// The new head's size.
        size: u64,
        /// The last accepted head's size.
        last: u64,
    },
    /// Two different heads of one size: the log was rewritten.
    #[error("two different heads of {size} records: the log was rewritten")]
    Fork {
        /// The size.
        size: u64,
    },
    /// A larger head that does not extend the last one: records under it were changed.
    #[error(
        "the head of {size} records does not extend the one of {last} accepted before: records were changed, removed or inserted ({why})"
    )]
    NotExtension {
        /// The new head's size.
        size: u64,
        /// The last accepted head's size.
        last: u64,
        /// What the proof check said.
        why: String,
    },
    /// A head older than one accepted before.
    #[error("the head of {size} records is dated {time}, before the last accepted ({last})")]
    Backdated {
        /// Its size.
        size: u64,
        /// Its time.
        time: i64,
        /// The last accepted head's time.
        last: i64,
    },
    /// No fresh head: the service signs none, or shows an old one.
    #[error("the newest head is {age_secs} s old (more than {max_age_secs} s)")]
    Stale {
        /// Its age.
        age_secs: i64,
        /// The limit.
        max_age_secs: i64,
    },
}

impl Alarm {
    /// A short name (metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            Alarm::Signature { .. } => "signature",
            Alarm::Shrank { .. } => "shrank",
            Alarm::Fork { .. } => "fork",
            Alarm::NotExtension { .. } => "not_extension",
            Alarm::Backdated { .. } => "backdated",
            Alarm::Stale { .. } => "stale",
        }
    }

    /// Whether it says the log was tampered with (kept until an operator
    /// clears it), rather than that no fresh head came (which the next
    /// fresh head ends).
    pub fn is_tampering(&self) -> bool {
        !matches!(self, Alarm::Stale { .. })
    }
}

/// The consistency proof a head needs against the last accepted one:
/// `(old_size, new_size)`, or `None` when none is needed.
pub fn proof_needed(last: Option<&SignedTreeHead>, sth: &SignedTreeHead) -> Option<(u64, u64)> {
    let last = last?;
    (last.head.size > 0 && last.head.size < sth.head.size)
        .then_some((last.head.size, sth.head.size))
}

/// Judges `sth` against `last` (the last accepted head): its signature by
/// the audit key `audit_spki`, its size, `proof` (the consistency proof of
/// [`proof_needed`], empty when none is), its time and age at `now`.
pub fn judge(
    last: Option<&SignedTreeHead>,
    sth: &SignedTreeHead,
    audit_spki: &[u8],
    proof: &[Hash],
    now: UnixTime,
    max_age_secs: i64,
) -> Result<(), Alarm> {
    let size = sth.head.size;
    if !tree_head::verify(sth, audit_spki) {
        return Err(Alarm::Signature { size });
    }
    if let Some(last) = last {
        let l = &last.head;
        if size < l.size {
            return Err(Alarm::Shrank { size, last: l.size });
        }
        if size == l.size && sth.head.root != l.root {
            return Err(Alarm::Fork { size });
        }
        if size > l.size && l.size > 0 {
            merkle::verify_consistency::<Sha256>(l.size, size, &l.root, &sth.head.root, proof)
                .map_err(|e| Alarm::NotExtension {
                    size,
                    last: l.size,
                    why: e.to_string(),
                })?;
        }
        if sth.head.time.0 < l.time.0 {
            return Err(Alarm::Backdated {
                size,
                time: sth.head.time.0,
                last: l.time.0,
            });
        }
    }
    let age = now.0 - sth.head.time.0;
    if age > max_age_secs {
        return Err(Alarm::Stale {
            age_secs: age,
            max_age_secs,
        });
    }
    Ok(())
}

/// One line of `cosigned.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cosigned {
    /// The head.
    pub head: HeadFile,
    /// When the witness accepted it (Unix seconds).
    pub witnessed: i64,
    /// The witness's signature over [`COSIGNATURE_DOMAIN`], the head's
    /// signed octets and `witnessed` (i64 big-endian), hex.
    pub cosignature: String,
}

/// The octets a cosignature covers.
pub fn cosigned_bytes(sth: &SignedTreeHead, witnessed: i64) -> Vec<u8> {
    let mut out = COSIGNATURE_DOMAIN.to_vec();
    out.extend_from_slice(&sth.head.signed_bytes());
    out.extend_from_slice(&witnessed.to_be_bytes());
    out
}

/// A witness's state directory.
pub struct WitnessState {
    dir: PathBuf,
    key: Arc<dyn Signer>,
    last: Option<SignedTreeHead>,
}

impl std::fmt::Debug for WitnessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessState")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl WitnessState {
    /// Opens (or makes) the state directory `dir`, with the witness's key.
    pub fn open(dir: &Path) -> Result<WitnessState, String> {
        let io =
            |what: &str, e: &dyn std::fmt::Display| format!("{what} in {}: {e}", dir.display());
        std::fs::create_dir_all(dir).map_err(|e| io("creating the state directory", &e))?;
        let key_path = dir.join("witness.key");
        if !key_path.exists() {
            shikko_pki::generate_signer(shikko_pki::KeyAlgorithm::EcdsaP256)
                .and_then(|k| k.save(&key_path))
                .map_err(|e| io("making the witness key", &e))?;
        }
        shikko_pki::check_key_file(&key_path).map_err(|e| e.to_string())?;
        let key = shikko_pki::load_signer(&key_path).map_err(|e| e.to_string())?;
        let pem = crate::heads::public_key_pem(key.as_ref()).map_err(|e| e.to_string())?;
        shikko_pki::write_file_atomic(&dir.join("witness-key.pem"), pem.as_bytes(), 0o644)
            .map_err(|e| e.to_string())?;
        let last_path = dir.join("last.json");
        let last = if last_path.exists() {
            Some(HeadFile::read(&last_path)?)
        } else {
            None
        };
        Ok(WitnessState {
            dir: dir.to_path_buf(),
            key,
            last,
        })
    }

    /// The last head accepted.
    pub fn last(&self) -> Option<&SignedTreeHead> {
        self.last.as_ref()
    }

    /// The alarm raised before and not cleared, if any.
    pub fn standing_alarm(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("ALARM")).ok()
    }

    /// Takes `sth` as the starting point without a proof (the first head,
    /// or one given by an operator), if none was accepted before.
    pub fn trust(&mut self, sth: &SignedTreeHead) -> Result<(), String> {
        if self.last.is_some() {
            return Err("the witness already holds a head: it trusts nothing new".into());
        }
        self.accept(sth).map(|_| ())
    }

    /// Records an accepted head: cosigns it, appends it to
    /// `cosigned.jsonl` (synced), then replaces `last.json`.
    pub fn accept(&mut self, sth: &SignedTreeHead) -> Result<Cosigned, String> {
        let witnessed = UnixTime::now().0;
        let cosignature = self
            .key
            .sign(&cosigned_bytes(sth, witnessed))
            .map_err(|e| format!("cosigning: {e}"))?;
        let c = Cosigned {
            head: HeadFile::of(sth),
            witnessed,
            cosignature: hex::encode(cosignature),
        };
        let line = serde_json::to_string(&c).map_err(|e| e.to_string())?;
        let io = |e: std::io::Error| format!("writing {}: {e}", self.dir.display());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("cosigned.jsonl"))
            .map_err(io)?;
        writeln!(f, "{line}").map_err(io)?;
        f.sync_data().map_err(io)?;
        shikko_pki::write_file_atomic(
            &self.dir.join("last.json"),
            HeadFile::of(sth).to_json().as_bytes(),
            0o644,
        )
        .map_err(|e| e.to_string())?;
        self.last = Some(sth.clone());
        Ok(c)
    }

    /// Records an alarm that says the log was tampered with: `ALARM` holds
    /// it (and the head shown) until an operator removes the file.
    pub fn raise(&self, alarm: &Alarm, sth: &SignedTreeHead) -> Result<(), String> {
        let text = format!(
            "{}: {alarm}\nhead shown: {}\nlast accepted: {}\n",
            UnixTime::now().0,
            HeadFile::of(sth).to_json(),
            self.last
                .as_ref()
                .map_or_else(|| "-".into(), |l| HeadFile::of(l).to_json())
        );
        shikko_pki::write_file_atomic(&self.dir.join("ALARM"), text.as_bytes(), 0o644)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use shikko_core::merkle::{LeafHashes, consistency_proof, root};
    use shikko_pki::tree_head::TreeHead;

    fn tree(leaves: &[&[u8]]) -> LeafHashes<Sha256> {
        LeafHashes::new(
            leaves
                .iter()
                .map(|l| merkle::leaf_hash::<Sha256>(l))
                .collect(),
        )
    }

    fn head(key: &dyn Signer, t: &LeafHashes<Sha256>, size: u64, time: i64) -> SignedTreeHead {
        tree_head::sign(
            TreeHead {
                size,
                root: root::<Sha256, _>(t, size).unwrap(),
                time: UnixTime(time),
            },
            key,
        )
        .unwrap()
    }

    #[test]
    fn each_way_of_rewriting_a_log_is_an_alarm() {
        let key = shikko_pki::generate_signer(shikko_pki::KeyAlgorithm::EcdsaP256).unwrap();
        let spki = key.public_key_der().to_vec();
        let now = UnixTime::now().0;
        let log: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"e", b"f", b"g"];
        let honest = tree(&log);
        let last = head(&key, &honest, 5, now - 10);
        let ok = |sth: &SignedTreeHead| {
            let proof = match proof_needed(Some(&last), sth) {
                Some((o, n)) => consistency_proof::<Sha256, _>(&honest, o, n).unwrap(),
                None => Vec::new(),
            };
            judge(Some(&last), sth, &spki, &proof, UnixTime(now), 600)
        };
        // An honest extension, and the same head again.
        assert_eq!(ok(&head(&key, &honest, 7, now)), Ok(()));
        assert_eq!(ok(&last), Ok(()));
        // Cut.
        assert!(matches!(
            ok(&head(&key, &honest, 4, now)),
            Err(Alarm::Shrank { size: 4, last: 5 })
        ));
        // A record under the last head edited, the same size: a fork.
        let edited = tree(&[b"a", b"B", b"c", b"d", b"e"]);
        assert!(matches!(
            judge(
                Some(&last),
                &head(&key, &edited, 5, now),
                &spki,
                &[],
                UnixTime(now),
                600
            ),
            Err(Alarm::Fork { size: 5 })
        ));
        // Edited and grown past it: the only proof the service can give is
        // of its own (edited) tree, and it does not reach the last head.
        let grown = tree(&[b"a", b"B", b"c", b"d", b"e", b"f", b"g"]);
        let forged = consistency_proof::<Sha256, _>(&grown, 5, 7).unwrap();
        assert!(matches!(
            judge(
                Some(&last),
                &head(&key, &grown, 7, now),
                &spki,
                &forged,
                UnixTime(now),
                600
            ),
            Err(Alarm::NotExtension {
                size: 7,
                last: 5,
                ..
            })
        ));
        // Another key's signature.
        let other = shikko_pki::generate_signer(shikko_pki::KeyAlgorithm::EcdsaP256).unwrap();
        assert!(matches!(
            ok(&head(&other, &honest, 7, now)),
            Err(Alarm::Signature { size: 7 })
        ));
        // Backdated, and stale.
        assert!(matches!(
            ok(&head(&key, &honest, 7, now - 20)),
            Err(Alarm::Backdated { .. })
        ));
        let old = head(&key, &honest, 7, now - 10);
        let proof = consistency_proof::<Sha256, _>(&honest, 5, 7).unwrap();
        let stale = judge(Some(&last), &old, &spki, &proof, UnixTime(now + 3600), 600);
        assert!(matches!(stale, Err(Alarm::Stale { .. })));
        assert!(!stale.unwrap_err().is_tampering());
    }

    #[test]
    fn state_survives_a_restart_and_cosignatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let key = shikko_pki::generate_signer(shikko_pki::KeyAlgorithm::EcdsaP256).unwrap();
        let honest = tree(&[b"a", b"b", b"c"]);
        let sth = head(&key, &honest, 3, UnixTime::now().0);
        let mut w = WitnessState::open(dir.path()).unwrap();
        assert!(w.last().is_none());
        let c = w.accept(&sth).unwrap();
        assert!(w.trust(&sth).is_err());
        let w = WitnessState::open(dir.path()).unwrap();
        assert_eq!(w.last(), Some(&sth));
        let pub_der = crate::heads::read_public_key(&dir.path().join("witness-key.pem")).unwrap();
        let spki = der::Decode::from_der(&pub_der).unwrap();
        let alg = shikko_pki::signature_algorithm_for(&spki);
        let sig = hex::decode(&c.cosignature).unwrap();
        assert!(shikko_pki::verify_signature(
            &spki,
            &alg,
            &cosigned_bytes(&sth, c.witnessed),
            &sig
        ));
        assert!(!shikko_pki::verify_signature(
            &spki,
            &alg,
            &cosigned_bytes(&sth, c.witnessed + 1),
            &sig
        ));
        assert!(w.standing_alarm().is_none());
        w.raise(&Alarm::Fork { size: 3 }, &sth).unwrap();
        assert!(w.standing_alarm().unwrap().contains("rewritten"));
    }
}
