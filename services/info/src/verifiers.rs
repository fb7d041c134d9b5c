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
}

/// A token in force, as the CRL and OCSP roles check it: (its SHA-256,
/// the verifier, OCSP requests per second, burst).
pub type TableEntry = ([u8; 32], String, u32, u32);

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
    /// `ocsp`, `crl_full`, `crl_delta`, `crl_partition`.
    pub endpoint: String,
    /// `signature`, `status`, `login`, `unspecified`.
    pub purpose: String,
    /// The outcome.
    pub outcome: String,
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

    /// The tokens in force.
    pub fn verifier_table(&self) -> Result<Vec<TableEntry>, InfoError> {
        let mut out = Vec::new();
        for v in self.verifiers()? {
            for t in v.tokens.iter().filter(|t| t.revoked_at.is_none()) {
                let sha: [u8; 32] = hex::decode(&t.sha256)
                    .ok()
                    .and_then(|h| h.try_into().ok())
                    .ok_or(InfoError::Corrupt("a verifier token hash is malformed"))?;
                out.push((sha, v.id.clone(), v.ocsp_per_second, v.ocsp_burst));
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
            if !valid_day(&k.day)
                || !(valid_part(&k.verifier) || k.verifier == "-")
                || !valid_part(&k.endpoint)
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
    fn keys_and_days_are_checked() {
        assert!(valid_day("2026-12-05"));
        assert!(!valid_day("2026-1205"));
        assert!(!valid_day("2026/12/05"));
        assert!(valid_part("bank-1"));
        assert!(!valid_part("a/b"));
        assert!(!valid_part(""));
    }
}
