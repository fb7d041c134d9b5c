//! Registered verifiers of revocation data, and their metered use (issue
//! 15, items 1 and 2). The authority provides CRLs and OCSP to the
//! signature and user-authentication verifiers it registered, and charges
//! for use; this is where they are registered (an administrator's act,
//! audited), where their bearer tokens are kept (as SHA-256 only: a token
//! is shown once, when made), and where the CRL and OCSP roles send what
//! they counted, per verifier, Japanese day, endpoint, purpose and outcome.
//!
//! Counters are stored under `v/` day `/` verifier `/` endpoint `/`
//! purpose `/` outcome; a report is added once (`r/` reporter → the last
//! seq added, written in the same batch as the counters), so a report
//! retried after a timeout is not counted twice.
//!
//! The info role meters its own answers in the same table ([`metered`]):
//! 4-information answers (`info_query`, `info_batch`) and link answers
//! (`link_resolve`, `link_current`) per operator, with the provider (or
//! link verifier) the operator asked for in the purpose column, counted by
//! the audit writer in the batch that holds the answer's audit record, so
//! a counted answer is an audited one and the other way round. Reporters
//! may not report those endpoints: the writer alone writes their keys.

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use shikko_core::UnixTime;

use crate::audit::AuditEntry;
use crate::error::InfoError;
use crate::keys;
use crate::service::InfoService;

/// OCSP requests per second of a verifier by default, and its burst.
pub const DEFAULT_OCSP_PER_SECOND: u32 = 1_000;
/// See [`DEFAULT_OCSP_PER_SECOND`].
pub const DEFAULT_OCSP_BURST: u32 = 2_000;

/// A bearer token of a verifier (its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The first 16 hex digits of its SHA-256 (what revocation names).
    pub id: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// When it was made.
    pub created_at: UnixTime,
    /// When it was revoked.
    pub revoked_at: Option<UnixTime>,
}

/// A TLS client certificate of a verifier (its fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// The first 16 hex digits of its SHA-256 (what revocation names).
    pub id: String,
    /// Hex SHA-256 of the certificate's DER.
    pub sha256: String,
    /// Its subject (RFC 4514), for people reading the list.
    pub subject: String,
    /// Its notAfter.
    pub not_after: UnixTime,
    /// When it was registered.
    pub created_at: UnixTime,
    /// When it was revoked.
    pub revoked_at: Option<UnixTime>,
}

/// A registered verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verifier {
    /// Its id (`[a-z0-9-]`, 1 to 64).
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was registered.
    pub registered_at: UnixTime,
    /// Its tokens, revoked ones included.
    pub tokens: Vec<TokenRecord>,
    /// OCSP requests per second.
    pub ocsp_per_second: u32,
    /// OCSP burst.
    pub ocsp_burst: u32,
    /// Its TLS client certificates, revoked ones included (none in
    /// records written before certificates existed).
    #[serde(default)]
    pub certificates: Vec<CertRecord>,
}

/// A credential in force, as the CRL and OCSP roles check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// The SHA-256 of the bearer token, or of the certificate's DER.
    pub sha256: [u8; 32],
    /// Whether it is a client certificate's.
    pub certificate: bool,
    /// The verifier.
    pub verifier: String,
    /// OCSP requests per second.
    pub ocsp_per_second: u32,
    /// OCSP burst.
    pub ocsp_burst: u32,
}

/// A token as made: shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The verifier.
    pub verifier: String,
    /// The token's id.
    pub id: String,
    /// The token (43 base64url characters, 256 random bits).
    pub token: String,
}

/// One counter (see the module).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UsageKey {
    /// The Japanese day, `YYYY-MM-DD`.
    pub day: String,
    /// The verifier, or `-` (anonymous).
    pub verifier: String,
    /// `ocsp`, `crl_full`, `crl_delta`, `crl_partition`, `filter_full`,
    /// `filter_delta`; the info role's
    /// `info_query`, `info_batch`, `link_resolve`, `link_current`.
    pub endpoint: String,
    /// `signature`, `status`, `login`, `unspecified`; for the info role's
    /// endpoints, the provider (or link verifier) asked for.
    pub purpose: String,
    /// The outcome.
    pub outcome: String,
}

/// The endpoints the CRL and OCSP roles report ([`InfoService::report_usage`]).
pub const REPORTED_ENDPOINTS: &[&str] = &[
    "ocsp",
    "crl_full",
    "crl_delta",
    "crl_partition",
    "filter_full",
    "filter_delta",
];

/// The endpoint an audited action of the info role is metered as, if any.
fn metered_endpoint(action: &str) -> Option<&'static str> {
    match action {
        "query" => Some("info_query"),
        "query_batch" => Some("info_batch"),
        "link.resolve" => Some("link_resolve"),
        "link.current" => Some("link_current"),
        _ => None,
    }
}

/// The usage counter an audit entry adds one to on `day`: an answer of the
/// info role to an operator (see the module), by its outcome (a refusal of
/// an operator's call too, as `refused_CODE`; calls refused before an
/// operator is known are not audited, so not metered).
pub(crate) fn metered(day: &str, e: &AuditEntry) -> Option<Vec<u8>> {
    let endpoint = metered_endpoint(e.action)?;
    Some(usage_key(&UsageKey {
        day: day.to_string(),
        verifier: e.actor.clone(),
        endpoint: endpoint.to_string(),
        purpose: if e.provider.is_empty() {
            "-".to_string()
        } else {
            e.provider.clone()
        },
        // `refused:permission_denied` as `refused_permission_denied`, like
        // the CRL and OCSP roles' refusals.
        outcome: e.outcome.replace(':', "_"),
    }))
}

/// The SHA-256 of a bearer token.
pub fn token_sha256(token: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn valid_day(d: &str) -> bool {
    d.len() == 10
        && d.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

fn verifier_key(id: &str) -> Vec<u8> {
    format!("vr/{id}").into_bytes()
}

fn usage_key(k: &UsageKey) -> Vec<u8> {
    format!(
        "v/{}/{}/{}/{}/{}",
        k.day, k.verifier, k.endpoint, k.purpose, k.outcome
    )
    .into_bytes()
}

fn reporter_key(reporter: &str) -> Vec<u8> {
    format!("r/{reporter}").into_bytes()
}

fn new_token(verifier: &str) -> Result<(NewToken, TokenRecord), InfoError> {
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| InfoError::Internal("no randomness".into()))?;
    // base64url without padding, by hand: 32 octets, 43 characters.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut token = String::with_capacity(43);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in raw {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            token.push(A[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        token.push(A[((acc << (6 - bits)) & 63) as usize] as char);
    }
    let sha = hex::encode(token_sha256(&token));
    let id = sha[..16].to_string();
    Ok((
        NewToken {
            verifier: verifier.to_string(),
            id: id.clone(),
            token,
        },
        TokenRecord {
            id,
            sha256: sha,
            created_at: UnixTime::now(),
            revoked_at: None,
        },
    ))
}

fn admin_entry(action: &'static str, verifier: &str, outcome: &str) -> AuditEntry {
    AuditEntry {
        actor: "admin".into(),
        action,
        provider: String::new(),
        subject: verifier.to_string(),
        outcome: outcome.to_string(),
        holder: None,
    }
}

impl InfoService {
    /// A verifier by id.
    pub fn verifier(&self, id: &str) -> Result<Option<Verifier>, InfoError> {
        keys::get(&self.store, &verifier_key(id), "a verifier record")
    }

    /// Every verifier.
    pub fn verifiers(&self) -> Result<Vec<Verifier>, InfoError> {
        self.store
            .info_scan(b"vr/", b"vr/", usize::MAX)?
            .into_iter()
            .map(|(_, v)| {
                serde_json::from_slice(&v)
                    .map_err(|_| InfoError::Corrupt("a verifier record does not decode"))
            })
            .collect()
    }

    /// Registers a verifier with its first token (administrator; audited).
    pub async fn register_verifier(
        &self,
        id: &str,
        name: &str,
        ocsp_per_second: u32,
        ocsp_burst: u32,
    ) -> Result<NewToken, InfoError> {
        if !valid_part(id) || id == "-" {
            return Err(InfoError::Invalid(
                "a verifier id is 1 to 64 of a-z, 0-9, '-' and '_'".into(),
            ));
        }
        let _g = self.verifier_lock.lock().await;
        if self.verifier(id)?.is_some() {
            return Err(InfoError::AlreadyExists(format!("verifier {id}")));
        }
        let (token, record) = new_token(id)?;
        let v = Verifier {
            id: id.to_string(),
            name: name.to_string(),
            registered_at: UnixTime::now(),
            tokens: vec![record],
            ocsp_per_second: if ocsp_per_second == 0 {
                DEFAULT_OCSP_PER_SECOND
            } else {
                ocsp_per_second
            },
            ocsp_burst: if ocsp_burst == 0 {
                DEFAULT_OCSP_BURST
            } else {
                ocsp_burst
            },
            certificates: Vec::new(),
        };
        self.audit
            .commit(
                vec![admin_entry(
                    "verifier.register",
                    id,
                    &format!("token:{}", token.id),
                )],
                Vec::new(),
                vec![(verifier_key(id), keys::encode(&v)?)],
            )
            .await?;
        Ok(token)
    }

    /// Another token for a verifier (administrator; audited).
    pub async fn add_verifier_token(&self, id: &str) -> Result<NewToken, InfoError> {
        let _g = self.verifier_lock.lock().await;
        let mut v = self
            .verifier(id)?
            .ok_or_else(|| InfoError::NotFound(format!("verifier {id}")))?;
        let (token, record) = new_token(id)?;
        v.tokens.push(record);
        self.audit
            .commit(
                vec![admin_entry(
                    "verifier.token.add",
                    id,
                    &format!("token:{}", token.id),
                )],
                Vec::new(),
                vec![(verifier_key(id), keys::encode(&v)?)],
            )
            .await?;
        Ok(token)
    }

    /// Revokes a verifier's token (administrator; audited).
    pub async fn revoke_verifier_token(
        &self,
        id: &str,
        token_id: &str,
    ) -> Result<Verifier, InfoError> {
        let _g = self.verifier_lock.lock().await;
        let mut v = self
            .verifier(id)?
            .ok_or_else(|| InfoError::NotFound(format!("verifier {id}")))?;
        let t = v
            .tokens
            .iter_mut()
            .find(|t| t.id == token_id)
            .ok_or_else(|| InfoError::NotFound(format!("token {token_id} of verifier {id}")))?;
        if t.revoked_at.is_none() {
            t.revoked_at = Some(UnixTime::now());
            self.audit
                .commit(
                    vec![admin_entry(
                        "verifier.token.revoke",
                        id,
                        &format!("token:{token_id}"),
                    )],
                    Vec::new(),
                    vec![(verifier_key(id), keys::encode(&v)?)],
                )
                .await?;
        }
        Ok(v)
    }

    /// Registers a TLS client certificate (DER) of a verifier
    /// (administrator; audited). Refused when malformed, expired, or
    /// registered already (to any verifier).
    pub async fn add_verifier_certificate(
        &self,
        id: &str,
        der: &[u8],
    ) -> Result<CertRecord, InfoError> {
        use shikko_pki::x509_cert::der::Decode;
        let cert = shikko_pki::x509_cert::Certificate::from_der(der)
            .map_err(|e| InfoError::Invalid(format!("a verifier certificate: {e}")))?;
        let tbs = cert.tbs_certificate();
        let not_after = UnixTime(
            i64::try_from(tbs.validity().not_after.to_unix_duration().as_secs())
                .unwrap_or(i64::MAX),
        );
        let now = UnixTime::now();
        if not_after <= now {
            return Err(InfoError::Invalid(
                "the verifier certificate has expired".into(),
            ));
        }
        let sha = hex::encode(digest::digest(&digest::SHA256, der));
        let _g = self.verifier_lock.lock().await;
        if self
            .verifiers()?
            .iter()
            .any(|v| v.certificates.iter().any(|c| c.sha256 == sha))
        {
            return Err(InfoError::AlreadyExists(
                "this client certificate is registered already".into(),
            ));
        }
        let mut v = self
            .verifier(id)?
            .ok_or_else(|| InfoError::NotFound(format!("verifier {id}")))?;
        let record = CertRecord {
            id: sha[..16].to_string(),
            sha256: sha,
            subject: tbs.subject().to_string(),
            not_after,
            created_at: now,
            revoked_at: None,
        };
        v.certificates.push(record.clone());
        self.audit
            .commit(
                vec![admin_entry(
                    "verifier.certificate.add",
                    id,
                    &format!("certificate:{}", record.id),
                )],
                Vec::new(),
                vec![(verifier_key(id), keys::encode(&v)?)],
            )
            .await?;
        Ok(record)
    }

    /// Revokes a verifier's client certificate (administrator; audited).
    pub async fn revoke_verifier_certificate(
        &self,
        id: &str,
        cert_id: &str,
    ) -> Result<Verifier, InfoError> {
        let _g = self.verifier_lock.lock().await;
        let mut v = self
            .verifier(id)?
            .ok_or_else(|| InfoError::NotFound(format!("verifier {id}")))?;
        let c = v
            .certificates
            .iter_mut()
            .find(|c| c.id == cert_id)
            .ok_or_else(|| {
                InfoError::NotFound(format!("certificate {cert_id} of verifier {id}"))
            })?;
        if c.revoked_at.is_none() {
            c.revoked_at = Some(UnixTime::now());
            self.audit
                .commit(
                    vec![admin_entry(
                        "verifier.certificate.revoke",
                        id,
                        &format!("certificate:{cert_id}"),
                    )],
                    Vec::new(),
                    vec![(verifier_key(id), keys::encode(&v)?)],
                )
                .await?;
        }
        Ok(v)
    }

    /// The tokens and client certificates in force.
    pub fn verifier_table(&self) -> Result<Vec<TableEntry>, InfoError> {
        let decode = |h: &str| -> Result<[u8; 32], InfoError> {
            hex::decode(h)
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or(InfoError::Corrupt(
                    "a verifier credential hash is malformed",
                ))
        };
        let mut out = Vec::new();
        for v in self.verifiers()? {
            let entry = |sha256, certificate| TableEntry {
                sha256,
                certificate,
                verifier: v.id.clone(),
                ocsp_per_second: v.ocsp_per_second,
                ocsp_burst: v.ocsp_burst,
            };
            for t in v.tokens.iter().filter(|t| t.revoked_at.is_none()) {
                out.push(entry(decode(&t.sha256)?, false));
            }
            for c in v.certificates.iter().filter(|c| c.revoked_at.is_none()) {
                out.push(entry(decode(&c.sha256)?, true));
            }
        }
        Ok(out)
    }

    /// Adds a report of `reporter` (its `seq`) to the stored counters, once:
    /// a seq not above the last one added from that reporter is ignored.
    pub async fn report_usage(
        &self,
        reporter: &str,
        seq: u64,
        counts: Vec<(UsageKey, u64)>,
    ) -> Result<(), InfoError> {
        if !valid_part(reporter) {
            return Err(InfoError::Invalid(
                "a reporter id is 1 to 64 of a-z, 0-9, '-' and '_'".into(),
            ));
        }
        for (k, _) in &counts {
            if !REPORTED_ENDPOINTS.contains(&k.endpoint.as_str()) {
                return Err(InfoError::Invalid(format!(
                    "endpoint {:?} is not reported (the CRL and OCSP roles report {})",
                    k.endpoint,
                    REPORTED_ENDPOINTS.join(", ")
                )));
            }
            if !valid_day(&k.day)
                || !(valid_part(&k.verifier) || k.verifier == "-")
                || !valid_part(&k.purpose)
                || !valid_part(&k.outcome)
            {
                return Err(InfoError::Invalid(
                    "a usage counter's key is malformed".into(),
                ));
            }
        }
        let _g = self.usage_lock.lock().await;
        let last = self
            .store
            .info_get(&reporter_key(reporter))?
            .map(|v| keys::decode_count(&v))
            .unwrap_or(0);
        if seq <= last {
            return Ok(());
        }
        let mut merged: BTreeMap<UsageKey, u64> = BTreeMap::new();
        for (k, n) in counts {
            *merged.entry(k).or_default() += n;
        }
        let mut puts = Vec::with_capacity(merged.len() + 1);
        for (k, n) in merged {
            let key = usage_key(&k);
            let current = self
                .store
                .info_get(&key)?
                .map(|v| keys::decode_count(&v))
                .unwrap_or(0);
            puts.push((key, (current + n).to_be_bytes().to_vec()));
        }
        puts.push((reporter_key(reporter), seq.to_be_bytes().to_vec()));
        self.store.info_write(&puts)?;
        Ok(())
    }

    /// The stored counters of the month `YYYY-MM`.
    pub fn verifier_usage(&self, month: &str) -> Result<Vec<(UsageKey, u64)>, InfoError> {
        if !valid_day(&format!("{month}-01")) {
            return Err(InfoError::Invalid("a month is YYYY-MM".into()));
        }
        let prefix = format!("v/{month}-").into_bytes();
        let mut out = Vec::new();
        for (k, v) in self.store.info_scan(&prefix, &prefix, usize::MAX)? {
            let text = String::from_utf8_lossy(&k[2..]).into_owned();
            let parts: Vec<&str> = text.splitn(5, '/').collect();
            let [day, verifier, endpoint, purpose, outcome] = parts[..] else {
                return Err(InfoError::Corrupt("a usage counter's key is malformed"));
            };
            out.push((
                UsageKey {
                    day: day.into(),
                    verifier: verifier.into(),
                    endpoint: endpoint.into(),
                    purpose: purpose.into(),
                    outcome: outcome.into(),
                },
                keys::decode_count(&v),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_base64url_characters_and_hash_to_their_id() {
        let (t, r) = new_token("v").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.token.len(), 43);
        assert!(
            t.token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(r.sha256, hex::encode(token_sha256(&t.token)));
        assert_eq!(t.id, r.sha256[..16]);
        let (t2, _) = new_token("v").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(t.token, t2.token);
    }

    #[test]
    fn answers_of_the_info_role_are_metered_and_nothing_else() {
        let entry = |action, provider: &str, outcome: &str| AuditEntry {
            actor: "op-1".into(),
            action,
            provider: provider.into(),
            subject: "01".into(),
            outcome: outcome.into(),
            holder: None,
        };
        let key = |e| metered("2026-12-06", &e).map(|k| String::from_utf8(k).unwrap_or_default());
        assert_eq!(
            key(entry("query", "bank-1", "changed")).as_deref(),
            Some("v/2026-12-06/op-1/info_query/bank-1/changed")
        );
        assert_eq!(
            key(entry("query_batch", "", "refused:invalid_argument")).as_deref(),
            Some("v/2026-12-06/op-1/info_batch/-/refused_invalid_argument")
        );
        assert_eq!(
            key(entry("link.resolve", "clinic-1", "good")).as_deref(),
            Some("v/2026-12-06/op-1/link_resolve/clinic-1/good")
        );
        assert_eq!(
            key(entry("link.current", "clinic-1", "known")).as_deref(),
            Some("v/2026-12-06/op-1/link_current/clinic-1/known")
        );
        for action in [
            "consent.record",
            "expiring",
            "holder.accesses",
            "verifier.register",
        ] {
            assert_eq!(key(entry(action, "bank-1", "ok")), None, "{action}");
        }
    }

    #[test]
    fn keys_and_days_are_checked() {
        assert!(valid_day("2026-12-05"));
        assert!(!valid_day("2026-1205"));
        assert!(!valid_day("2026/12/05"));
        assert!(valid_part("bank-1"));
        assert!(!valid_part("a/b"));
        assert!(!valid_part(""));
    }
}
