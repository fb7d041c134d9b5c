//! The responder's status index: every certificate each issuer issued and
//! its status, in memory, fed by the registry's change feed.
//!
//! Sized for 200 million certificates on one machine: an entry is the
//! 20-octet padded serial and an 8-octet status (tag, reason, time as u32
//! seconds), 28 octets, in a hashbrown table (one control octet per slot, at
//! most 7/8 full): about 33 octets per certificate, 6.6 GB for 200 million.
//! Times are u32 seconds since 1970 (through 2106).

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use shikko_core::ChangeRecord;
use shikko_core::{CertKind, CertStatus, RevocationReason, SERIAL_MAX_OCTETS, Serial, UnixTime};

/// A certificate's status as the index keeps it (8 octets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed {
    /// 0 good, 1 on hold, 2 revoked.
    tag: u8,
    reason: u8,
    time: u32,
}

/// What the index says of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexedStatus {
    /// Issued and not revoked.
    Good,
    /// On hold since this time (answered as revoked, certificateHold).
    OnHold {
        /// When the hold began.
        since: UnixTime,
    },
    /// Revoked.
    Revoked {
        /// Why.
        reason: RevocationReason,
        /// When.
        at: UnixTime,
    },
}

fn secs(t: UnixTime) -> u32 {
    u32::try_from(t.0.max(0)).unwrap_or(u32::MAX)
}

fn pack(s: &CertStatus) -> Packed {
    match *s {
        CertStatus::Good => Packed {
            tag: 0,
            reason: 0,
            time: 0,
        },
        CertStatus::OnHold { since } => Packed {
            tag: 1,
            reason: RevocationReason::CertificateHold.code(),
            time: secs(since),
        },
        CertStatus::Revoked { reason, at, .. } => Packed {
            tag: 2,
            reason: reason.code(),
            time: secs(at),
        },
    }
}

fn unpack(p: Packed) -> IndexedStatus {
    let t = UnixTime(i64::from(p.time));
    match p.tag {
        1 => IndexedStatus::OnHold { since: t },
        2 => IndexedStatus::Revoked {
            reason: RevocationReason::from_code(p.reason).unwrap_or(RevocationReason::Unspecified),
            at: t,
        },
        _ => IndexedStatus::Good,
    }
}

/// The status of every certificate of the four issuers.
#[derive(Debug, Default)]
pub struct StatusIndex {
    issuers: [RwLock<HashMap<[u8; SERIAL_MAX_OCTETS], Packed>>; 4],
    seq: AtomicU64,
}

impl StatusIndex {
    /// An empty index (at sequence number 0).
    pub fn new() -> StatusIndex {
        StatusIndex::default()
    }

    /// The sequence number of the last change record applied.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Certificates known for `kind`.
    pub fn len(&self, kind: CertKind) -> usize {
        self.issuers[kind.index()]
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether no certificate is known at all.
    pub fn is_empty(&self) -> bool {
        CertKind::ALL.iter().all(|k| self.len(*k) == 0)
    }

    /// A certificate's status; `None` for a serial the issuer never issued.
    pub fn get(&self, kind: CertKind, serial: &Serial) -> Option<IndexedStatus> {
        self.issuers[kind.index()]
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(serial.as_padded())
            .copied()
            .map(unpack)
    }

    /// Applies change records in order (records at or below [`StatusIndex::seq`]
    /// are skipped, so re-delivery is harmless); returns the certificates whose
    /// status changed, for cache invalidation.
    pub fn apply(&self, records: &[ChangeRecord]) -> Vec<(CertKind, Serial)> {
        let mut changed = Vec::new();
        for r in records {
            let at = self.seq();
            if r.seq <= at {
                continue; // re-delivered
            }
            if r.seq != at + 1 {
                // A gap would lose changes: stop; the follower resumes from seq() + 1.
                tracing::error!(
                    expected = at + 1,
                    got = r.seq,
                    "gap in the change feed; not applied"
                );
                break;
            }
            for c in &r.changes {
                let mut map = self.issuers[c.kind.index()]
                    .write()
                    .unwrap_or_else(|p| p.into_inner());
                map.insert(*c.serial.as_padded(), pack(&c.status));
                changed.push((c.kind, c.serial));
            }
            self.seq.store(r.seq, Ordering::SeqCst);
        }
        changed
    }

    /// Forgets every certificate: the index is at sequence number 0 (a
    /// snapshot is about to be loaded).
    pub fn clear(&self) {
        self.seq.store(0, Ordering::SeqCst);
        for issuer in &self.issuers {
            let mut map = issuer.write().unwrap_or_else(|p| p.into_inner());
            *map = HashMap::new();
        }
    }

    /// Loads certificates' statuses of a snapshot (no sequence number).
    pub fn load(&self, changes: &[shikko_core::StatusChange]) {
        for kind in CertKind::ALL {
            let mut map = None;
            for c in changes.iter().filter(|c| c.kind == kind) {
                map.get_or_insert_with(|| {
                    self.issuers[kind.index()]
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                })
                .insert(*c.serial.as_padded(), pack(&c.status));
            }
        }
    }

    /// The snapshot loaded is the registry's state at `seq`.
    pub fn set_seq(&self, seq: u64) {
        self.seq.store(seq, Ordering::SeqCst);
    }

    /// Reserves room for `additional` more certificates of `kind` (a bulk load).
    pub fn reserve(&self, kind: CertKind, additional: usize) {
        self.issuers[kind.index()]
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .reserve(additional);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shikko_core::StatusChange;
    use shikko_core::{EventId, PartitionId};

    fn record(seq: u64, kind: CertKind, serial: u128, status: CertStatus) -> ChangeRecord {
        ChangeRecord {
            seq,
            event_id: EventId::new(format!("e{seq}")).unwrap(),
            event_type: "x".into(),
            time: UnixTime(1),
            changes: vec![StatusChange {
                kind,
                serial: Serial::from_u128(serial).unwrap(),
                partition: PartitionId::WHOLE,
                not_after: UnixTime(2_000_000_000),
                status,
            }],
            municipalities: Vec::new(),
        }
    }

    #[test]
    fn statuses_follow_the_feed_and_redelivery_is_harmless() {
        let idx = StatusIndex::new();
        let s = |v| Serial::from_u128(v).unwrap();
        let records = vec![
            record(1, CertKind::CardAuth, 7, CertStatus::Good),
            record(2, CertKind::PhoneAuth, 7, CertStatus::Good),
            record(
                3,
                CertKind::PhoneAuth,
                7,
                CertStatus::OnHold {
                    since: UnixTime(100),
                },
            ),
            record(
                4,
                CertKind::CardAuth,
                7,
                CertStatus::Revoked {
                    reason: RevocationReason::KeyCompromise,
                    at: UnixTime(200),
                    invalidity_date: None,
                },
            ),
        ];
        assert_eq!(idx.apply(&records).len(), 4);
        assert_eq!(idx.seq(), 4);
        assert_eq!(
            idx.get(CertKind::CardAuth, &s(7)),
            Some(IndexedStatus::Revoked {
                reason: RevocationReason::KeyCompromise,
                at: UnixTime(200)
            })
        );
        assert_eq!(
            idx.get(CertKind::PhoneAuth, &s(7)),
            Some(IndexedStatus::OnHold {
                since: UnixTime(100)
            })
        );
        assert_eq!(
            idx.get(CertKind::CardSigning, &s(7)),
            None,
            "never issued by this issuer"
        );
        assert_eq!(idx.get(CertKind::CardAuth, &s(8)), None);
        // Re-delivered records change nothing.
        assert!(idx.apply(&records[..2]).is_empty());
        assert_eq!(
            idx.get(CertKind::PhoneAuth, &s(7)),
            Some(IndexedStatus::OnHold {
                since: UnixTime(100)
            })
        );
        assert_eq!(std::mem::size_of::<([u8; SERIAL_MAX_OCTETS], Packed)>(), 28);
        // A gap stops the application: nothing after it is applied.
        let later = record(7, CertKind::CardAuth, 9, CertStatus::Good);
        assert!(idx.apply(&[later]).is_empty());
        assert_eq!((idx.seq(), idx.get(CertKind::CardAuth, &s(9))), (4, None));
    }
}
