//! The layout of the 4-information keyspace in the store.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `a/` | seq (u64 BE) | audit record (JSON) |
//! | `b/` | day `/` operator `/` provider | provisions (u64 BE) |
//! | `c/` | consent id | consent (JSON) |
//! | `h/` | holder id `/` provider | id of the holder's latest consent to it |
//! | `m/` | level (u8) ++ index (u64 BE) | the audit log's Merkle tree: the hash of the perfect subtree of 2^level records from index << level (32 octets) |
//! | `o/` | operator id | operator (JSON) |
//! | `f/` | SHA-256 of a client certificate (hex) | operator id |
//! | `p/` | provider id | provider (JSON) |
//! | `k/challenge` | | the consent challenges' MAC key (32 octets) |
//! | `k/provider-index` | | present once `q/` covers every consent |
//! | `k/page-token` | | the key of `Expiring`'s page tokens (32 octets) |
//! | `k/link-N` | | version N of the key of the link's pseudonyms (32 octets) |
//! | `k/link-state` | | the link key versions in force (JSON) |
//! | `n/` | key version (4 hex digits) `/` verifier `/` pseudonym | holder id: a pseudonym given to that verifier |
//! | `q/` | provider `/` holder id | empty: the holder gave the provider a consent (in force or not) |
//! | `u/` | issue time (16 hex digits) `/` nonce (hex) | empty: a consent challenge that was used |
//! | `vr/` | verifier id | a verifier of CRLs and OCSP (JSON; its tokens as SHA-256) |
//! | `v/` | day `/` verifier `/` endpoint `/` purpose `/` outcome | requests counted (u64 BE) |
//! | `r/` | reporter | the last usage report added from it (u64 BE) |
//! | `x/` | holder pseudonym (hex) `/` seq (u64 BE) | empty: an audit record concerning that holder (their access record) |
//! | `k/audit-first` | | the first audit record still stored (u64 BE; those below were archived and pruned) |
//! | `k/holder-audit` | | the key of the holder pseudonyms in audit records (32 octets) |

pub(crate) const AUDIT_PREFIX: &[u8] = b"a/";
pub(crate) const HOLDER_AUDIT_KEY: &[u8] = b"k/holder-audit";
/// The first audit record still stored (those below were archived and pruned).
pub(crate) const AUDIT_FIRST: &[u8] = b"k/audit-first";

/// The index of a holder's audit records: `x/` pseudonym (hex) `/` seq (u64 BE).
pub(crate) fn holder_access(pseudonym: &str, seq: u64) -> Vec<u8> {
    let mut k = holder_accesses(pseudonym);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The prefix of [`holder_access`] keys of one holder.
pub(crate) fn holder_accesses(pseudonym: &str) -> Vec<u8> {
    format!("x/{pseudonym}/").into_bytes()
}
pub(crate) const OPERATOR_PREFIX: &[u8] = b"o/";
pub(crate) const PROVIDER_PREFIX: &[u8] = b"p/";

pub(crate) const CHALLENGE_USED_PREFIX: &[u8] = b"u/";
pub(crate) const CONSENT_PREFIX: &[u8] = b"c/";
pub(crate) const PROVIDER_INDEX_BUILT: &[u8] = b"k/provider-index";

pub(crate) fn provider_holder(provider: &str, holder: &str) -> Vec<u8> {
    format!("q/{provider}/{holder}").into_bytes()
}

pub(crate) fn provider_holders(provider: &str) -> Vec<u8> {
    format!("q/{provider}/").into_bytes()
}

pub(crate) fn challenge_used(issued_at: i64, nonce: &[u8]) -> Vec<u8> {
    let mut k = challenge_used_before(issued_at);
    k.push(b'/');
    k.extend_from_slice(hex::encode(nonce).as_bytes());
    k
}

/// The keys of challenges issued before `t` sort before this.
pub(crate) fn challenge_used_before(t: i64) -> Vec<u8> {
    format!("u/{:016x}", t.max(0)).into_bytes()
}

pub(crate) fn audit(seq: u64) -> Vec<u8> {
    let mut k = AUDIT_PREFIX.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn tree_node(level: u8, index: u64) -> Vec<u8> {
    let mut k = b"m/".to_vec();
    k.push(level);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub(crate) fn billing(day: &str, operator: &str, provider: &str) -> Vec<u8> {
    format!("b/{day}/{operator}/{provider}").into_bytes()
}

pub(crate) fn billing_day(day: &str) -> Vec<u8> {
    format!("b/{day}/").into_bytes()
}

pub(crate) fn decode_count(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

pub(crate) fn consent(id: &str) -> Vec<u8> {
    format!("c/{id}").into_bytes()
}

pub(crate) fn holder_consent(holder: &str, provider: &str) -> Vec<u8> {
    format!("h/{holder}/{provider}").into_bytes()
}

pub(crate) fn operator(id: &str) -> Vec<u8> {
    format!("o/{id}").into_bytes()
}

pub(crate) fn fingerprint(sha256_hex: &str) -> Vec<u8> {
    format!("f/{sha256_hex}").into_bytes()
}

pub(crate) fn provider(id: &str) -> Vec<u8> {
    format!("p/{id}").into_bytes()
}

/// The 32-octet secret kept at `key` (made, from the system's randomness,
/// and written on first use); `what` names it in the error of a record
/// that is not 32 octets.
pub(crate) fn secret(
    store: &shikko_store::Store,
    key: &[u8],
    what: &'static str,
) -> Result<Vec<u8>, crate::InfoError> {
    use aws_lc_rs::rand::SecureRandom;
    match store.info_get(key)? {
        Some(k) if k.len() == 32 => Ok(k),
        Some(_) => Err(crate::InfoError::Corrupt(what)),
        None => {
            let mut k = vec![0u8; 32];
            aws_lc_rs::rand::SystemRandom::new()
                .fill(&mut k)
                .map_err(|_| crate::InfoError::Internal("no randomness".into()))?;
            store.info_write(&[(key.to_vec(), k.clone())])?;
            Ok(k)
        }
    }
}

/// A record of the keyspace, as JSON.
pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, crate::InfoError> {
    serde_json::to_vec(v).map_err(|e| crate::InfoError::Internal(format!("encoding a record: {e}")))
}

/// The record at `key`; one that does not decode is `Corrupt(what)`.
pub(crate) fn get<T: serde::de::DeserializeOwned>(
    store: &shikko_store::Store,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>, crate::InfoError> {
    store
        .info_get(key)?
        .map(|v| serde_json::from_slice(&v).map_err(|_| crate::InfoError::Corrupt(what)))
        .transpose()
}

/// Every record under `prefix`, in key order.
pub(crate) fn scan<T: serde::de::DeserializeOwned>(
    store: &shikko_store::Store,
    prefix: &[u8],
    what: &'static str,
) -> Result<Vec<T>, crate::InfoError> {
    store
        .info_scan(prefix, prefix, usize::MAX)?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice(&v).map_err(|_| crate::InfoError::Corrupt(what)))
        .collect()
}
