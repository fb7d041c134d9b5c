//! A holder's own access record (issue 15 ★): every audit record that
//! concerns the holder (a bank's query about them and its outcome, refused
//! or answered; a consent recorded or withdrawn; a renewal reminder listing;
//! a link answer to a verifier; their own readings of this record), each
//! with its inclusion proof under a signed tree head of the audit log, so
//! the holder need not take the service's word that the list is the log's.
//!
//! Audit records name the holder by a pseudonym ([`crate::audit`]): HMAC
//! of the holder id under a key the store keeps, so the log shows which
//! records concern one person and never who. An index (`x/` pseudonym seq)
//! written in the record's own batch finds them.
//!
//! The holder proves who they are as a login with the card does: the
//! service gives a challenge ([`InfoService::holder_challenge`]: single
//! use, minutes), the holder signs [`access_statement`] with the key of
//! their user-authentication certificate (card or smartphone), and the
//! service accepts the certificate only if it is byte for byte one the
//! registry issued, good now, and the signature verifies with its key. The
//! record is then that certificate's holder's, and no one else's: no
//! parameter names a holder.

use shikko_core::merkle::Hash;
use shikko_core::person::good_at;
use shikko_core::{CertKind, Serial, UnixTime};
use shikko_pki::tree_head::SignedTreeHead;

use crate::audit::AuditEntry;
use crate::challenge::{Challenge, Challenges, Purpose};
use crate::error::InfoError;
use crate::keys;
use crate::service::InfoService;

/// What an access statement starts with.
pub const STATEMENT_PREFIX: &[u8] = b"shikko holder access v1\n";

/// Records per answer by default, and at most.
pub const DEFAULT_LIMIT: usize = 1_000;
/// See [`DEFAULT_LIMIT`].
pub const MAX_LIMIT: usize = 10_000;

/// The octets a holder signs to read their record: [`STATEMENT_PREFIX`],
/// the challenge, a newline.
pub fn access_statement(challenge: &str) -> Vec<u8> {
    let mut s = STATEMENT_PREFIX.to_vec();
    s.extend_from_slice(challenge.as_bytes());
    s.push(b'\n');
    s
}

/// One record of a holder's access record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The audit record as stored (JSON).
    pub record: String,
    /// Its inclusion proof under the answer's head.
    pub proof: Vec<Hash>,
}

/// A page of a holder's access record.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    /// The signed head every proof is under.
    pub head: SignedTreeHead,
    /// The holder's pseudonym in the log.
    pub pseudonym: String,
    /// Oldest first.
    pub accesses: Vec<Access>,
    /// Whether records follow the last one, up to `until_seq`.
    pub more: bool,
    /// The last sequence number covered.
    pub until_seq: u64,
}

impl InfoService {
    /// A challenge for a holder to sign.
    pub fn holder_challenge(&self) -> Result<Challenge, InfoError> {
        self.challenges
            .issue_for(Purpose::HolderAccess, UnixTime::now())
    }

    /// The access record of the holder of the user-authentication
    /// certificate `cert_der`, who signed [`access_statement`] of
    /// `challenge` with its key: records after `after_seq` and up to
    /// `until_seq` (0: this reading's own record), at most `limit` (0:
    /// [`DEFAULT_LIMIT`]). The reading is itself audited (and listed).
    pub async fn holder_accesses(
        &self,
        cert_der: &[u8],
        challenge: &str,
        signature: &[u8],
        after_seq: u64,
        until_seq: u64,
        limit: usize,
    ) -> Result<AccessRecord, InfoError> {
        const ACTION: &str = "holder.accesses";
        if !self.is_ready() {
            return Err(InfoError::Unavailable(
                "the 4-information service is catching up with the registry: try again shortly",
            ));
        }
        let refuse =
            |reason: &'static str, e: InfoError| self.refuse_anonymous(ACTION, reason, "-", e);
        let now = UnixTime::now();
        // The cheap checks first: a junk request costs an HMAC and one
        // signature verification, and learns nothing of the registry.
        let checked = self
            .challenges
            .check_for(challenge, Purpose::HolderAccess, now, now)
            .map_err(|_| {
                refuse(
                    "bad_challenge",
                    InfoError::PermissionDenied(
                        "the challenge is not one this service issued, or it expired: ask for a new one"
                            .into(),
                    ),
                )
            })?;
        let cert = shikko_pki::parse_certificate(cert_der).map_err(|_| {
            refuse(
                "bad_certificate",
                InfoError::Invalid("the certificate does not decode (DER expected)".into()),
            )
        })?;
        let spki = cert.tbs_certificate().subject_public_key_info();
        let alg = shikko_pki::signature_algorithm_for(spki);
        if !shikko_pki::verify_signature(spki, &alg, &access_statement(challenge), signature) {
            return Err(refuse(
                "bad_signature",
                InfoError::Unauthenticated(
                    "the signature does not verify with the certificate's key",
                ),
            ));
        }
        let serial = Serial::from_be_bytes(cert.tbs_certificate().serial_number().as_bytes())
            .map_err(|_| {
                refuse(
                    "unknown_certificate",
                    InfoError::Unauthenticated(
                        "not a user-authentication certificate the registry issued",
                    ),
                )
            })?;
        let mut found = None;
        for kind in [CertKind::CardAuth, CertKind::PhoneAuth] {
            if self.store.cert_der(kind, &serial)?.as_deref() == Some(cert_der)
                && let Some(rec) = self.store.cert(kind, &serial)?
            {
                found = Some((kind, rec));
                break;
            }
        }
        let Some((kind, rec)) = found else {
            return Err(refuse(
                "unknown_certificate",
                InfoError::Unauthenticated(
                    "not a user-authentication certificate the registry issued",
                ),
            ));
        };
        let subject = format!("{}:{}", kind.issuer_id(), serial.to_hex());
        if !good_at(&rec, now) {
            return Err(self
                .refuse(
                    "holder",
                    ACTION,
                    "",
                    &subject,
                    InfoError::PermissionDenied(
                        "the certificate is revoked, on hold or expired".into(),
                    ),
                )
                .await);
        }
        let in_use = self.challenges.reserve(&self.store, &checked)?;
        let pseudonym = self.holder_pseudonyms.of(&rec.holder);
        let reading = self
            .audit
            .commit_holding(
                vec![AuditEntry {
                    actor: "holder".into(),
                    action: ACTION,
                    provider: String::new(),
                    subject,
                    outcome: "listed".into(),
                    holder: Some(rec.holder.clone()),
                }],
                Vec::new(),
                vec![Challenges::used_marker(&checked)],
                vec![Box::new(in_use)],
            )
            .await?;
        self.challenges.prune(&self.store, now)?;
        let limit = match limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        // The head covers the reading just audited.
        let head = self.signed_head()?;
        let size = head.head.size;
        let until = match until_seq {
            0 => reading,
            n => n.min(reading),
        };
        let store = self.store.clone();
        let of = pseudonym.clone();
        // Records archived and pruned are no longer listed.
        let first = self.audit_first_seq()?;
        let (accesses, more) = tokio::task::spawn_blocking(move || {
            let prefix = keys::holder_accesses(&of);
            let start = keys::holder_access(&of, after_seq.saturating_add(1).max(first));
            let keys = store.info_scan(&prefix, &start, limit + 1)?;
            let seq_of = |k: &[u8]| {
                k[prefix.len()..]
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| InfoError::Corrupt("a holder access key is malformed"))
            };
            let mut more = false;
            let mut out = Vec::with_capacity(keys.len().min(limit));
            for (k, _) in &keys {
                let seq = seq_of(k)?;
                if seq > until || seq > size {
                    break;
                }
                if out.len() == limit {
                    more = true;
                    break;
                }
                let record = store
                    .info_get(&keys::audit(seq))?
                    .ok_or(InfoError::Corrupt("an indexed audit record is missing"))?;
                let record = String::from_utf8(record)
                    .map_err(|_| InfoError::Corrupt("an audit record is not UTF-8"))?;
                out.push(Access {
                    record,
                    proof: crate::tree::inclusion(&store, seq, size)?,
                });
            }
            Ok::<_, InfoError>((out, more))
        })
        .await
        .map_err(|e| InfoError::Internal(format!("access record task: {e}")))??;
        Ok(AccessRecord {
            head,
            pseudonym,
            accesses,
            more,
            until_seq: until,
        })
    }
}
