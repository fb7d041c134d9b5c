//! The responder's status index: every certificate each issuer issued and
//! its status, in memory, fed by the registry's change feed.
//!
//! Sized for 200 million certificates, most of them good, in every OCSP
//! pod. Serials are issued in structured, mostly dense ranges, and the
//! index uses it (issue 14, item 3). A serial of at most 16 octets is
//! split into a range (its value shifted right by 32 bits) and a position
//! in the range (its low 32 bits). Each range keeps:
//!
//! (A range of at most 32 serials keeps them in a short list instead, so
//! that serials scattered at random cost no more than in a hash table.)
//!
//! - a compressed bitmap (roaring) of the positions issued, whatever their
//!   status: "good" and "unknown" differ only by being issued;
//! - a compressed bitmap of those not good (on hold or revoked);
//! - their statuses: a sorted table of positions beside 8-octet statuses
//!   (tag, reason, time as u32 seconds), and the changes since its last
//!   merge in a small hash table; the table is merged again once the
//!   changes reach a sixteenth of it, so an update costs a few table
//!   entries' worth of copying, amortised.
//!
//! A lookup of a good certificate is two bitmap probes; of a revoked one,
//! a binary search besides. Dense ranges cost a few bits per certificate
//! (a roaring container holds 65,536 positions in 8 KiB), the non-good ones
//! 12 octets each: about 0.3 GB at 200 million certificates with 25
//! million revoked, against 6.6 GB in a hash table of whole serials. A
//! serial of more than 16 octets goes to a hash table of whole serials,
//! and serials scattered at random cost about what that table would: the
//! index is correct for any serial, compact for the ones issuers make.
//! Times are u32 seconds since 1970 (through 2106).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

mod image;

pub use image::ImageError;

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

/// Changes kept beside a range's table before they are merged into it: at
/// least this many, or a sixteenth of the table.
const MERGE_AT_LEAST: usize = 4096;

/// Table keys per sampled key.
const SAMPLE: usize = 64;

/// One range of serials (the same value above the low 32 bits).
#[derive(Debug, Default)]
struct Range {
    /// Positions issued (any status).
    issued: roaring::RoaringBitmap,
    /// Positions on hold or revoked.
    listed: roaring::RoaringBitmap,
    /// Listed positions, sorted, as of the last merge (some may be good
    /// again since: `listed` decides).
    table_keys: Vec<u32>,
    /// Their statuses.
    table_vals: Vec<Packed>,
    /// Every [`SAMPLE`]-th key of the table: a search touches this small
    /// array (it stays in cache) and one block of the table, not the whole.
    table_sample: Vec<u32>,
    /// Listed positions changed since the last merge.
    recent: HashMap<u32, Packed>,
}

impl Range {
    fn get(&self, lo: u32) -> Option<Packed> {
        if !self.issued.contains(lo) {
            return None;
        }
        if !self.listed.contains(lo) {
            return Some(GOOD);
        }
        if let Some(p) = self.recent.get(&lo) {
            return Some(*p);
        }
        // Listed, not changed since the merge: in the table.
        let block = self
            .table_sample
            .partition_point(|k| *k <= lo)
            .checked_sub(1)?;
        let start = block * SAMPLE;
        let end = (start + SAMPLE).min(self.table_keys.len());
        self.table_keys[start..end]
            .binary_search(&lo)
            .ok()
            .map(|i| self.table_vals[start + i])
    }

    fn put(&mut self, lo: u32, p: Packed) {
        self.issued.insert(lo);
        if p.tag == GOOD.tag {
            if self.listed.remove(lo) {
                self.recent.remove(&lo);
            }
            return;
        }
        self.listed.insert(lo);
        // Loading a snapshot in order: straight onto the end of the table.
        if self.recent.is_empty() && self.table_keys.last().is_none_or(|last| *last < lo) {
            if self.table_keys.len().is_multiple_of(SAMPLE) {
                self.table_sample.push(lo);
            }
            self.table_keys.push(lo);
            self.table_vals.push(p);
            return;
        }
        self.recent.insert(lo, p);
        if self.recent.len() >= MERGE_AT_LEAST.max(self.table_keys.len() / 16) {
            self.merge();
        }
    }

    /// One sorted table of every listed position again.
    fn merge(&mut self) {
        let (keys, vals) = self.merged();
        self.recent.clear();
        self.set_table(keys, vals);
    }

    fn set_table(&mut self, mut keys: Vec<u32>, mut vals: Vec<Packed>) {
        keys.shrink_to_fit();
        vals.shrink_to_fit();
        self.table_sample = keys.iter().step_by(SAMPLE).copied().collect();
        self.table_keys = keys;
        self.table_vals = vals;
    }

    /// Every listed position and its status, sorted: the table with the
    /// recent changes merged in.
    fn merged(&self) -> (Vec<u32>, Vec<Packed>) {
        let mut recent: Vec<(u32, Packed)> = self.recent.iter().map(|(k, v)| (*k, *v)).collect();
        recent.sort_unstable_by_key(|(k, _)| *k);
        let n = self.listed.len() as usize;
        let (mut keys, mut vals) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut r = recent.into_iter().peekable();
        for (k, v) in self.table_keys.iter().zip(&self.table_vals) {
            while let Some((rk, rv)) = r.next_if(|(rk, _)| rk < k) {
                keys.push(rk);
                vals.push(rv);
            }
            if let Some((rk, rv)) = r.next_if(|(rk, _)| rk == k) {
                keys.push(rk);
                vals.push(rv);
            } else if self.listed.contains(*k) {
                keys.push(*k);
                vals.push(*v);
            }
        }
        for (rk, rv) in r {
            keys.push(rk);
            vals.push(rv);
        }
        (keys, vals)
    }
}

/// Members of a range before it gets bitmaps of its own: serials scattered
/// at random then cost about what a table of whole serials would.
const FEW: usize = 32;

/// A range: one serial, a few, or many (bitmaps and a table).
#[derive(Debug)]
enum Slot {
    One(u32, Packed),
    Few(Vec<(u32, Packed)>),
    Many(Box<Range>),
}

impl Slot {
    fn get(&self, lo: u32) -> Option<Packed> {
        match self {
            Slot::One(k, p) => (*k == lo).then_some(*p),
            Slot::Few(v) => v.iter().find(|(k, _)| *k == lo).map(|(_, p)| *p),
            Slot::Many(r) => r.get(lo),
        }
    }

    fn put(&mut self, lo: u32, p: Packed) {
        match self {
            Slot::One(k, q) => {
                let (k, q) = (*k, *q);
                *self = if k == lo {
                    Slot::One(k, p)
                } else {
                    Slot::Few(vec![(k, q), (lo, p)])
                };
            }
            Slot::Few(v) => {
                if let Some(e) = v.iter_mut().find(|(k, _)| *k == lo) {
                    e.1 = p;
                } else if v.len() < FEW {
                    v.push((lo, p));
                } else {
                    let mut members = std::mem::take(v);
                    members.push((lo, p));
                    members.sort_unstable_by_key(|(k, _)| *k);
                    let mut range = Range::default();
                    for (k, q) in members {
                        range.put(k, q);
                    }
                    *self = Slot::Many(Box::new(range));
                }
            }
            Slot::Many(r) => r.put(lo, p),
        }
    }

    fn len(&self) -> usize {
        match self {
            Slot::One(..) => 1,
            Slot::Few(v) => v.len(),
            Slot::Many(r) => r.issued.len() as usize,
        }
    }
}

/// One issuer's certificates.
#[derive(Debug, Default)]
struct IssuerIndex {
    /// By the serial's value above its low 32 bits.
    ranges: HashMap<u128, Slot>,
    /// Serials of more than 16 octets, whole.
    wide: HashMap<[u8; SERIAL_MAX_OCTETS], Packed>,
}

/// A serial as (range, position), when it fits in 16 octets.
fn split(serial: &Serial) -> Option<(u128, u32)> {
    let padded = serial.as_padded();
    let (high, low) = padded.split_at(SERIAL_MAX_OCTETS - 16);
    if high.iter().any(|b| *b != 0) {
        return None;
    }
    let v = u128::from_be_bytes(low.try_into().ok()?);
    Some((v >> 32, v as u32))
}

impl IssuerIndex {
    fn get(&self, serial: &Serial) -> Option<Packed> {
        match split(serial) {
            Some((hi, lo)) => self.ranges.get(&hi)?.get(lo),
            None => self.wide.get(serial.as_padded()).copied(),
        }
    }

    fn put(&mut self, serial: &Serial, p: Packed) {
        match split(serial) {
            Some((hi, lo)) => match self.ranges.entry(hi) {
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().put(lo, p),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Slot::One(lo, p));
                }
            },
            None => {
                self.wide.insert(*serial.as_padded(), p);
            }
        }
    }

    fn len(&self) -> usize {
        self.ranges.values().map(Slot::len).sum::<usize>() + self.wide.len()
    }
}

const GOOD: Packed = Packed {
    tag: 0,
    reason: 0,
    time: 0,
};

/// The status of every certificate of the four issuers.
#[derive(Debug, Default)]
pub struct StatusIndex {
    issuers: [RwLock<IssuerIndex>; 4],
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
            .get(serial)
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
                let mut issuer = self.issuers[c.kind.index()]
                    .write()
                    .unwrap_or_else(|p| p.into_inner());
                issuer.put(&c.serial, pack(&c.status));
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
            *issuer.write().unwrap_or_else(|p| p.into_inner()) = IssuerIndex::default();
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
                .put(&c.serial, pack(&c.status));
            }
        }
    }

    /// The snapshot loaded is the registry's state at `seq`.
    pub fn set_seq(&self, seq: u64) {
        self.seq.store(seq, Ordering::SeqCst);
    }

    /// Merges every range's recent changes into its table (after a bulk
    /// load out of order; lookups are right either way).
    pub fn compact(&self) {
        for issuer in &self.issuers {
            let mut issuer = issuer.write().unwrap_or_else(|p| p.into_inner());
            for slot in issuer.ranges.values_mut() {
                if let Slot::Many(range) = slot
                    && !range.recent.is_empty()
                {
                    range.merge();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shikko_core::StatusChange;
    use shikko_core::{EventId, PartitionId};

    trait WithSerial {
        fn with_serial(self, serial: Serial) -> ChangeRecord;
    }

    impl WithSerial for ChangeRecord {
        fn with_serial(mut self, serial: Serial) -> ChangeRecord {
            for c in &mut self.changes {
                c.serial = serial;
            }
            self
        }
    }

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
                not_before: UnixTime(0),
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
        // A gap stops the application: nothing after it is applied.
        let later = record(7, CertKind::CardAuth, 9, CertStatus::Good);
        assert!(idx.apply(&[later]).is_empty());
        assert_eq!((idx.seq(), idx.get(CertKind::CardAuth, &s(9))), (4, None));
    }

    /// The index against a hash table of whole serials (what it replaced),
    /// over serials in dense ranges, scattered 16-octet ones and 20-octet
    /// ones, statuses changing back and forth, merges anywhere.
    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Put { kind: u8, serial: u8, status: u8 },
            Compact,
        }

        fn serial_of(i: u8) -> Serial {
            let i = u128::from(i);
            match i % 4 {
                // Two dense ranges and their boundary.
                0 => Serial::from_u128((0x4A50 << 72) | i).unwrap(),
                1 => Serial::from_u128((0x4A50 << 72) | (1 << 32) | i).unwrap(),
                2 => Serial::from_u128((0x4A50 << 72) | 0xFFFF_FFF0 | (i & 0xF)).unwrap(),
                // Scattered, and wider than 16 octets.
                _ if i % 8 == 3 => {
                    Serial::from_u128(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) | 1)
                        .unwrap()
                }
                _ => {
                    Serial::from_be_bytes(&[[0x7F, 1, 2, 3].as_slice(), &i.to_be_bytes()].concat())
                        .unwrap()
                }
            }
        }

        fn status_of(v: u8) -> CertStatus {
            match v % 3 {
                0 => CertStatus::Good,
                1 => CertStatus::OnHold {
                    since: UnixTime(1_000 + i64::from(v)),
                },
                _ => CertStatus::Revoked {
                    reason: RevocationReason::KeyCompromise,
                    at: UnixTime(2_000 + i64::from(v)),
                    invalidity_date: None,
                },
            }
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                30 => (0..4u8, any::<u8>(), any::<u8>()).prop_map(|(kind, serial, status)| Op::Put { kind, serial, status }),
                1 => Just(Op::Compact),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn the_index_answers_as_a_table_of_whole_serials(ops in prop::collection::vec(op(), 1..600)) {
                let idx = StatusIndex::new();
                let mut model: HashMap<(CertKind, [u8; SERIAL_MAX_OCTETS]), IndexedStatus> = HashMap::new();
                for (seq, op) in ops.iter().enumerate() {
                    match op {
                        Op::Put { kind, serial, status } => {
                            let kind = CertKind::ALL[usize::from(*kind)];
                            let serial = serial_of(*serial);
                            let status = status_of(*status);
                            idx.apply(&[record(seq as u64 + 1, kind, 1, status).with_serial(serial)]);
                            model.insert((kind, *serial.as_padded()), unpack(pack(&status)));
                        }
                        Op::Compact => {
                            idx.compact();
                            // Keep the sequence numbers dense.
                            idx.apply(&[]);
                            idx.set_seq(seq as u64 + 1);
                        }
                    }
                }
                for kind in CertKind::ALL {
                    for i in 0..=255u8 {
                        let serial = serial_of(i);
                        prop_assert_eq!(
                            idx.get(kind, &serial),
                            model.get(&(kind, *serial.as_padded())).copied(),
                            "{:?} {}", kind, serial
                        );
                    }
                    let n = model.keys().filter(|(k, _)| *k == kind).count();
                    prop_assert_eq!(idx.len(kind), n);
                }
            }
        }

        /// Many changes in one range: merges by themselves (a sixteenth of
        /// the table, at least 4,096), every answer right throughout.
        #[test]
        fn a_range_merges_its_changes_and_answers_right_throughout() {
            let idx = StatusIndex::new();
            let mut model = HashMap::new();
            let mut x: u64 = 0x2545_F491_4F6C_DD1D;
            let mut seq = 0;
            for round in 0..40_000u64 {
                // xorshift: a fixed pseudo-random sequence.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let serial = Serial::from_u128((0x4A50 << 72) | u128::from(x % 50_000)).unwrap();
                let status = status_of((x >> 32) as u8);
                seq += 1;
                idx.apply(&[record(seq, CertKind::CardAuth, 1, status).with_serial(serial)]);
                model.insert(serial, unpack(pack(&status)));
                if round % 9_973 == 0 {
                    for (s, st) in &model {
                        assert_eq!(idx.get(CertKind::CardAuth, s), Some(*st), "{s}");
                    }
                }
            }
            for (s, st) in &model {
                assert_eq!(idx.get(CertKind::CardAuth, s), Some(*st), "{s}");
            }
            assert_eq!(idx.len(CertKind::CardAuth), model.len());
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            /// An image read back answers as the index it was written from,
            /// and any image cut short or with an octet changed is refused
            /// or read into an index that still answers without panicking.
            #[test]
            fn an_image_reads_back_into_the_same_index(ops in prop::collection::vec(op(), 1..600), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
                let idx = StatusIndex::new();
                for (seq, op) in ops.iter().enumerate() {
                    if let Op::Put { kind, serial, status } = op {
                        let kind = CertKind::ALL[usize::from(*kind)];
                        idx.apply(&[record(seq as u64 + 1, kind, 1, status_of(*status)).with_serial(serial_of(*serial))]);
                    }
                    idx.set_seq(seq as u64 + 1);
                }
                let image = idx.write_image();
                let back = StatusIndex::new();
                prop_assert_eq!(back.read_image(&image), Ok(idx.seq()));
                for kind in CertKind::ALL {
                    prop_assert_eq!(back.len(kind), idx.len(kind));
                    for i in 0..=255u8 {
                        prop_assert_eq!(back.get(kind, &serial_of(i)), idx.get(kind, &serial_of(i)));
                    }
                }
                let short = &image[..cut.index(image.len())];
                prop_assert!(StatusIndex::new().read_image(short).is_err());
                let mut bent = image.clone();
                bent[flip.index(image.len())] ^= 0x5A;
                let other = StatusIndex::new();
                if other.read_image(&bent).is_ok() {
                    for kind in CertKind::ALL {
                        for i in 0..=255u8 {
                            let _ = other.get(kind, &serial_of(i));
                        }
                    }
                }
            }
        }
    }
}
