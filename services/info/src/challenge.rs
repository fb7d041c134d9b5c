//! Consent challenges: the service's part of a consent statement (issue 12,
//! item 6). An operator asks for a challenge for one provider, the holder
//! signs a statement that carries it, and the service records the consent
//! only if the challenge is its own, issued to this operator for this
//! provider, unexpired (minutes, not days) and not used before.
//!
//! A challenge is `01 | issued_at (i64 BE) | nonce (16) | HMAC-SHA256
//! truncated to 16`, in hex; the MAC key is made once and kept in the
//! store. Issuing one writes nothing: a flood of requests for challenges
//! costs no disk. Using one writes a marker (`u/` keys, by issue time)
//! in the same synced batch as the consent, and markers older than any
//! unexpired challenge are pruned.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SecureRandom;
use shikko_core::{OperatorId, ProviderId, UnixTime};
use shikko_store::Store;

use crate::error::InfoError;
use crate::keys;

/// How long a challenge is valid by default: 10 minutes, time for the
/// holder to read the statement and sign it with their card.
pub const DEFAULT_CHALLENGE_SECS: i64 = 600;
/// The longest validity a deployment may choose.
pub const MAX_CHALLENGE_SECS: i64 = 3600;

const VERSION: u8 = 1;
const NONCE: usize = 16;
const TAG: usize = 16;
const LEN: usize = 1 + 8 + NONCE + TAG;
const KEY_RECORD: &[u8] = b"k/challenge";
/// Clock skew tolerated between the service and the holder's device.
const SKEW_SECS: i64 = 300;

/// A challenge as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// What the statement carries (hex).
    pub value: String,
    /// When it stops being accepted.
    pub expires_at: UnixTime,
}

/// A challenge that checked: what marks it used.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) issued_at: UnixTime,
    pub(crate) nonce: [u8; NONCE],
}

/// The service's challenges.
pub(crate) struct Challenges {
    key: hmac::Key,
    ttl_secs: i64,
    /// Challenges being used by a call in progress: a second call with
    /// the same challenge is refused until the first has finished.
    in_use: Arc<Mutex<HashSet<[u8; NONCE]>>>,
    last_prune: AtomicI64,
}

/// Marks a challenge in use until dropped (it goes with the audit job that
/// writes the consent and the challenge's used-marker).
pub(crate) struct InUse {
    set: Arc<Mutex<HashSet<[u8; NONCE]>>>,
    nonce: [u8; NONCE],
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.nonce);
    }
}

/// What a challenge is for, and for whom: a consent (an operator for a
/// provider), or a holder's access record (anyone). The MAC covers it, so
/// one is never accepted as the other.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose<'a> {
    /// A consent statement, issued to `op` acting for `provider`.
    Consent(&'a OperatorId, &'a ProviderId),
    /// A holder's access record.
    HolderAccess,
}

fn mac_input(purpose: Purpose<'_>, issued_at: i64, nonce: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    let (domain, a, b): (&[u8], &str, &str) = match purpose {
        Purpose::Consent(op, provider) => (
            b"shikko consent challenge v1\0",
            op.as_str(),
            provider.as_str(),
        ),
        Purpose::HolderAccess => (b"shikko holder access challenge v1\0", "", ""),
    };
    m.extend_from_slice(domain);
    m.extend_from_slice(a.as_bytes());
    m.push(0);
    m.extend_from_slice(b.as_bytes());
    m.push(0);
    m.extend_from_slice(&issued_at.to_be_bytes());
    m.extend_from_slice(nonce);
    m
}

impl Challenges {
    /// The challenges of `store`, with its MAC key (made on first use).
    pub(crate) fn open(store: &Store) -> Result<Challenges, InfoError> {
        let secret = keys::secret(store, KEY_RECORD, "the consent challenge key")?;
        Ok(Challenges {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            ttl_secs: DEFAULT_CHALLENGE_SECS,
            in_use: Arc::default(),
            last_prune: AtomicI64::new(0),
        })
    }

    /// Challenges valid for `secs` (1 to [`MAX_CHALLENGE_SECS`]).
    pub(crate) fn set_ttl(&mut self, secs: i64) {
        self.ttl_secs = secs.clamp(1, MAX_CHALLENGE_SECS);
    }

    /// A new challenge for `op` acting for `provider`.
    pub(crate) fn issue(
        &self,
        op: &OperatorId,
        provider: &ProviderId,
        now: UnixTime,
    ) -> Result<Challenge, InfoError> {
        self.issue_for(Purpose::Consent(op, provider), now)
    }

    /// A new challenge for `purpose`.
    pub(crate) fn issue_for(
        &self,
        purpose: Purpose<'_>,
        now: UnixTime,
    ) -> Result<Challenge, InfoError> {
        let mut nonce = [0u8; NONCE];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| InfoError::Internal("no randomness".into()))?;
        let tag = hmac::sign(&self.key, &mac_input(purpose, now.0, &nonce));
        let mut raw = Vec::with_capacity(LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&now.0.to_be_bytes());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&tag.as_ref()[..TAG]);
        Ok(Challenge {
            value: hex::encode(raw),
            expires_at: UnixTime(now.0 + self.ttl_secs),
        })
    }

    /// Checks that `value` is a challenge this service issued to `op` for
    /// `provider`, unexpired at `now`, for a statement signed at
    /// `granted_at` (not before the challenge, nor in the future). Not
    /// whether it was used: see [`Challenges::reserve`].
    pub(crate) fn check(
        &self,
        value: &str,
        op: &OperatorId,
        provider: &ProviderId,
        granted_at: UnixTime,
        now: UnixTime,
    ) -> Result<Checked, InfoError> {
        self.check_for(value, Purpose::Consent(op, provider), granted_at, now)
    }

    /// [`Challenges::check`] for any purpose.
    pub(crate) fn check_for(
        &self,
        value: &str,
        purpose: Purpose<'_>,
        granted_at: UnixTime,
        now: UnixTime,
    ) -> Result<Checked, InfoError> {
        let bad = || {
            InfoError::PermissionDenied(
                "the consent challenge is not one this service issued to this operator for this provider: ask for a new one".into(),
            )
        };
        let raw = hex::decode(value).map_err(|_| bad())?;
        if raw.len() != LEN || raw[0] != VERSION {
            return Err(bad());
        }
        let mut at = [0u8; 8];
        at.copy_from_slice(&raw[1..9]);
        let issued_at = i64::from_be_bytes(at);
        let mut nonce = [0u8; NONCE];
        nonce.copy_from_slice(&raw[9..9 + NONCE]);
        let want = hmac::sign(&self.key, &mac_input(purpose, issued_at, &nonce));
        // Constant time: the tag is a secret until it matches.
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            &want.as_ref()[..TAG],
            &raw[9 + NONCE..],
        )
        .is_err()
        {
            return Err(bad());
        }
        if now.0 >= issued_at.saturating_add(self.ttl_secs)
            || now.0.saturating_add(SKEW_SECS) < issued_at
        {
            return Err(InfoError::PermissionDenied(
                "the consent challenge has expired: ask for a new one and have the holder sign again"
                    .into(),
            ));
        }
        if granted_at.0.saturating_add(SKEW_SECS) < issued_at
            || granted_at.0 > now.0.saturating_add(SKEW_SECS)
        {
            return Err(InfoError::Invalid(
                "the consent is dated before its challenge was issued, or in the future".into(),
            ));
        }
        Ok(Checked {
            issued_at: UnixTime(issued_at),
            nonce,
        })
    }

    /// Takes a checked challenge for one call: refused when it was used
    /// (by a recorded consent) or is being used by another call.
    pub(crate) fn reserve(&self, store: &Store, c: &Checked) -> Result<InUse, InfoError> {
        let used = || {
            InfoError::PermissionDenied(
                "the consent challenge was used already: ask for a new one".into(),
            )
        };
        if !self
            .in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.nonce)
        {
            return Err(used());
        }
        let guard = InUse {
            set: self.in_use.clone(),
            nonce: c.nonce,
        };
        if store
            .info_get(&keys::challenge_used(c.issued_at.0, &c.nonce))?
            .is_some()
        {
            return Err(used());
        }
        Ok(guard)
    }

    /// The marker that records `c` as used (written with the consent).
    pub(crate) fn used_marker(c: &Checked) -> (Vec<u8>, Vec<u8>) {
        (keys::challenge_used(c.issued_at.0, &c.nonce), Vec::new())
    }

    /// Deletes the markers of challenges that expired (at most once a
    /// minute): no challenge they could refuse is still accepted, whatever
    /// validity is configured now or was when it was issued (markers are
    /// kept for the longest a deployment may choose).
    pub(crate) fn prune(&self, store: &Store, now: UnixTime) -> Result<(), InfoError> {
        let last = self.last_prune.load(Ordering::Relaxed);
        if now.0 - last < 60
            || self
                .last_prune
                .compare_exchange(last, now.0, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        let horizon = now.0.saturating_sub(MAX_CHALLENGE_SECS + SKEW_SECS);
        store.info_delete_range(
            keys::CHALLENGE_USED_PREFIX,
            &keys::challenge_used_before(horizon.max(0)),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn setup() -> (tempfile::TempDir, Store, Challenges) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let c = Challenges::open(&store).unwrap();
        (dir, store, c)
    }

    #[test]
    fn a_challenge_checks_only_for_its_operator_provider_and_time() {
        let (_d, store, c) = setup();
        let (op, other_op) = (
            OperatorId::new("op-1").unwrap(),
            OperatorId::new("op-2").unwrap(),
        );
        let (bank, other_bank) = (
            ProviderId::new("bank-1").unwrap(),
            ProviderId::new("bank-2").unwrap(),
        );
        let t = UnixTime(1_800_000_000);
        let ch = c.issue(&op, &bank, t).unwrap();
        assert_eq!(ch.expires_at, UnixTime(t.0 + DEFAULT_CHALLENGE_SECS));
        assert!(shikko_core::consent::challenge_is_well_formed(&ch.value));
        assert!(c.check(&ch.value, &op, &bank, t, t.plus_secs(10)).is_ok());
        // Another operator, another provider, a flipped bit, too late.
        assert!(c.check(&ch.value, &other_op, &bank, t, t).is_err());
        assert!(c.check(&ch.value, &op, &other_bank, t, t).is_err());
        let mut flipped = hex::decode(&ch.value).unwrap();
        flipped[12] ^= 1;
        assert!(c.check(&hex::encode(flipped), &op, &bank, t, t).is_err());
        assert!(c.check("zz", &op, &bank, t, t).is_err());
        assert!(
            c.check(
                &ch.value,
                &op,
                &bank,
                t,
                t.plus_secs(DEFAULT_CHALLENGE_SECS)
            )
            .is_err()
        );
        // Signed long before the challenge existed: refused.
        assert!(
            c.check(&ch.value, &op, &bank, UnixTime(t.0 - 3600), t)
                .is_err()
        );
        // The key survives a restart: the same store checks the same challenge.
        drop(c);
        let again = Challenges::open(&store).unwrap();
        assert!(again.check(&ch.value, &op, &bank, t, t).is_ok());
    }

    #[test]
    fn a_challenge_is_used_once_and_markers_are_pruned_after_expiry() {
        let (_d, store, c) = setup();
        let (op, bank) = (
            OperatorId::new("op-1").unwrap(),
            ProviderId::new("bank-1").unwrap(),
        );
        let t = UnixTime(1_800_000_000);
        let ch = c.issue(&op, &bank, t).unwrap();
        let checked = c.check(&ch.value, &op, &bank, t, t).unwrap();
        let guard = c.reserve(&store, &checked).unwrap();
        // In use by another call meanwhile.
        assert!(c.reserve(&store, &checked).is_err());
        store
            .info_write(&[Challenges::used_marker(&checked)])
            .unwrap();
        drop(guard);
        // Used.
        assert!(c.reserve(&store, &checked).is_err());
        // A refused call (no marker written) leaves it usable.
        let other = c
            .check(&c.issue(&op, &bank, t).unwrap().value, &op, &bank, t, t)
            .unwrap();
        drop(c.reserve(&store, &other).unwrap());
        assert!(c.reserve(&store, &other).is_ok());
        // Pruned once expired (and only then).
        c.prune(&store, t.plus_secs(60)).unwrap();
        assert!(
            store
                .info_get(&Challenges::used_marker(&checked).0)
                .unwrap()
                .is_some()
        );
        let marked = |store: &Store| {
            store
                .info_get(&Challenges::used_marker(&checked).0)
                .unwrap()
                .is_some()
        };
        // Kept past this deployment's validity: a longer one (configured
        // before a restart) could still accept the challenge.
        c.prune(
            &store,
            t.plus_secs(DEFAULT_CHALLENGE_SECS + SKEW_SECS + 120),
        )
        .unwrap();
        assert!(marked(&store));
        c.prune(&store, t.plus_secs(MAX_CHALLENGE_SECS + SKEW_SECS + 240))
            .unwrap();
        assert!(!marked(&store));
        // A granted_at at the ends of i64 is refused, not an overflow.
        for extreme in [i64::MAX, i64::MIN] {
            assert!(
                c.check(&ch.value, &op, &bank, UnixTime(extreme), t)
                    .is_err()
            );
        }
    }
}
