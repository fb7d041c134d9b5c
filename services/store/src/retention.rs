//! Retention: what a store keeps of its history, and for how long.
//!
//! The state (certificates, holders, links, the revoked index, the DER)
//! answers every question the platform is asked; the history behind it (the
//! change feed, the event log, the writes each event made) is needed only
//! by followers catching up and for a while as the record of what was
//! ingested. So the history is kept for a window and pruned below it:
//!
//! - the feed, the events and the writes below a sequence number go in one
//!   synced batch of range deletions, with the new first sequence number
//!   (`meta first_seq`): a follower asking for less is told the feed is
//!   compacted (it bootstraps from a snapshot instead);
//! - the pruned key range is then compacted, so the disk space comes back
//!   and the 4 information in the pruned events is gone from the files, not
//!   only hidden by tombstones;
//! - the event ids (idempotent re-delivery) are kept longer, on their own
//!   horizon, and removed by a compaction filter (their keys are ids, not
//!   sequence numbers, so no range covers them).
//!
//! The window is in ingest time, not event time: a bulk load of years of
//! issuance is as new to a follower as today's events. Sequence numbers
//! are dated by daily marks (`meta seq_at/DAY`: the last sequence number
//! when the day's first pruning ran), so a window is exact to a day and
//! nothing is pruned before the registry has run that long.

use std::sync::atomic::Ordering;

use rocksdb::WriteBatch;
use shikko_core::UnixTime;

use crate::{Result, Store, cf, keys};

pub(crate) const META_FIRST_SEQ: &[u8] = b"first_seq";
/// Event ids of events below this sequence number are dropped.
pub(crate) const META_ID_FLOOR: &[u8] = b"event_id_floor";
/// When the event-id family was last compacted whole (Unix seconds).
const META_IDS_COMPACTED: &[u8] = b"event_ids_compacted_at";

/// What a pruning removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// The first sequence number kept before.
    pub from: u64,
    /// The first sequence number kept now.
    pub first_seq: u64,
}

impl Store {
    /// The first sequence number whose change record this store keeps (1
    /// when nothing was pruned; `last_seq + 1` when everything was).
    pub fn first_seq(&self) -> u64 {
        self.first_seq.load(Ordering::SeqCst)
    }

    pub(crate) fn load_first_seq(&self) -> Result<()> {
        let first = self
            .meta(META_FIRST_SEQ)?
            .map(|v| keys::decode_u64(&v, cf::META))
            .transpose()?
            .unwrap_or(1)
            .max(1);
        self.first_seq.store(first, Ordering::SeqCst);
        Ok(())
    }

    /// Removes the change feed, the events and the writes with sequence
    /// numbers below `before` (at most `last_seq + 1`), in one synced
    /// batch with the new first sequence number, then compacts the range.
    pub(crate) fn prune_history_before(&self, before: u64) -> Result<Pruned> {
        let from = self.first_seq();
        let pruned = {
            let _w = self
                .write_lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let before = before.min(self.last_seq() + 1);
            if before <= from {
                return Ok(Pruned {
                    from,
                    first_seq: from,
                });
            }
            let mut batch = WriteBatch::default();
            for family in [cf::FEED, cf::EVENTS, cf::WRITES] {
                batch.delete_range_cf(self.cf(family), 0u64.to_be_bytes(), before.to_be_bytes());
            }
            batch.put_cf(self.cf(cf::META), META_FIRST_SEQ, before.to_be_bytes());
            let mut w = rocksdb::WriteOptions::default();
            w.set_sync(true);
            self.db.write_opt(batch, &w)?;
            self.first_seq.store(before, Ordering::SeqCst);
            Pruned {
                from,
                first_seq: before,
            }
        };
        for family in [cf::FEED, cf::EVENTS, cf::WRITES] {
            self.db.compact_range_cf(
                self.cf(family),
                Some(0u64.to_be_bytes()),
                Some(pruned.first_seq.to_be_bytes()),
            );
        }
        Ok(pruned)
    }

    /// Forgets the ids of events with sequence numbers below `before` (a
    /// re-delivery of one of them is then taken as a new event): the
    /// compaction filter of the event-id family drops them as compactions
    /// run, and a compaction of the whole family is forced at most once a
    /// week (it rewrites every id kept). The floor is kept in `meta`.
    pub(crate) fn prune_event_ids_before(&self, before: u64, now: UnixTime) -> Result<()> {
        if self.event_id_floor.fetch_max(before, Ordering::SeqCst) >= before {
            return Ok(());
        }
        let mut w = rocksdb::WriteOptions::default();
        w.set_sync(true);
        self.db
            .put_cf_opt(self.cf(cf::META), META_ID_FLOOR, before.to_be_bytes(), &w)?;
        let now = now.0.max(0) as u64;
        let last = self
            .meta(META_IDS_COMPACTED)?
            .map(|v| keys::decode_u64(&v, cf::META))
            .transpose()?
            .unwrap_or(0);
        if now.saturating_sub(last) >= 7 * 86_400 {
            self.db
                .compact_range_cf(self.cf(cf::EVENT_IDS), None::<&[u8]>, None::<&[u8]>);
            self.db
                .put_cf_opt(self.cf(cf::META), META_IDS_COMPACTED, now.to_be_bytes(), &w)?;
        }
        Ok(())
    }

    /// The event-id floor kept in `meta`, for the compaction filter.
    pub(crate) fn load_event_id_floor(&self) -> Result<()> {
        let floor = self
            .meta(META_ID_FLOOR)?
            .map(|v| keys::decode_u64(&v, cf::META))
            .transpose()?
            .unwrap_or(0);
        self.event_id_floor.store(floor, Ordering::SeqCst);
        Ok(())
    }

    /// Marks the day and prunes the history applied before `now -
    /// history_secs` (by the marks), never at or above `keep_from`.
    pub(crate) fn retain_history(
        &self,
        now: UnixTime,
        history_secs: i64,
        keep_from: u64,
    ) -> Result<Pruned> {
        let from = self.first_seq();
        if !self.mark_day(now)? {
            return Ok(Pruned {
                from,
                first_seq: from,
            });
        }
        let horizon = UnixTime(now.0 - history_secs);
        let before = self.ingested_before(horizon)?.min(keep_from);
        let pruned = self.prune_history_before(before)?;
        self.drop_marks_before(horizon)?;
        Ok(pruned)
    }

    /// Records, once a day (the day of `now`), the last sequence number:
    /// the marks that tell which records were ingested before a day.
    /// Marks only move forward: a clock that went back writes none. Returns
    /// whether pruning may go on: not when the last mark is more than two
    /// days old (the clock jumped, or the registry was down: one run is
    /// skipped, so that a clock far ahead prunes nothing at once).
    pub(crate) fn mark_day(&self, now: UnixTime) -> Result<bool> {
        let today = day_of(now);
        let newest = self.newest_mark_day()?;
        if let Some(d) = newest
            && d >= today
        {
            // Today's mark is made; or the clock went back: no new mark,
            // and no pruning by a clock that is behind the marks.
            return Ok(d == today);
        }
        let mut w = rocksdb::WriteOptions::default();
        w.set_sync(true);
        self.db.put_cf_opt(
            self.cf(cf::META),
            mark_key(today),
            self.last_seq().to_be_bytes(),
            &w,
        )?;
        match newest {
            Some(d) if today > d + 2 => {
                tracing::warn!(
                    days = today - d,
                    "retention: the last pruning was days ago (a clock jump, or the registry was down): this run prunes nothing"
                );
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    fn newest_mark_day(&self) -> Result<Option<u64>> {
        let end = [SEQ_AT, &[0xff; 9][..]].concat();
        let mut it = self.db.iterator_cf(
            self.cf(cf::META),
            rocksdb::IteratorMode::From(&end, rocksdb::Direction::Reverse),
        );
        match it.next() {
            Some(item) => {
                let (k, _) = item?;
                Ok(k.strip_prefix(SEQ_AT)
                    .and_then(|d| <[u8; 8]>::try_from(d).ok())
                    .map(u64::from_be_bytes))
            }
            None => Ok(None),
        }
    }

    /// The sequence number after the last one ingested before the day of
    /// `horizon` began, by the marks: every record below it is older than
    /// `horizon`. 1 when no mark is that old (nothing is known to be).
    pub(crate) fn ingested_before(&self, horizon: UnixTime) -> Result<u64> {
        let limit = mark_key(day_of(horizon));
        let mut floor = 1;
        for item in self.db.iterator_cf(
            self.cf(cf::META),
            rocksdb::IteratorMode::From(SEQ_AT, rocksdb::Direction::Forward),
        ) {
            let (k, v) = item?;
            if !k.starts_with(SEQ_AT) || k.as_ref() >= limit.as_slice() {
                break;
            }
            // A mark made during a day: what it counts was ingested by then.
            floor = keys::decode_u64(&v, cf::META)? + 1;
        }
        Ok(floor)
    }

    /// Deletes the marks of days before the day of `horizon` but the newest
    /// of them (still the floor of `horizon` until the next day's is old enough).
    pub(crate) fn drop_marks_before(&self, horizon: UnixTime) -> Result<()> {
        let limit = mark_key(day_of(horizon));
        let mut old = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(cf::META),
            rocksdb::IteratorMode::From(SEQ_AT, rocksdb::Direction::Forward),
        ) {
            let (k, _) = item?;
            if !k.starts_with(SEQ_AT) || k.as_ref() >= limit.as_slice() {
                break;
            }
            old.push(k);
        }
        old.pop();
        if !old.is_empty() {
            let mut batch = WriteBatch::default();
            for k in old {
                batch.delete_cf(self.cf(cf::META), k);
            }
            self.db.write(batch)?;
        }
        Ok(())
    }
}

fn day_of(t: UnixTime) -> u64 {
    (t.0.max(0) / 86_400) as u64
}

fn mark_key(day: u64) -> Vec<u8> {
    [SEQ_AT, &day.to_be_bytes()].concat()
}

const SEQ_AT: &[u8] = b"seq_at/";

/// The compaction filter of the event-id family: drops the ids of events
/// below the floor (`seq` is the value's first 8 octets).
pub(crate) fn event_id_filter(
    floor: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> impl FnMut(u32, &[u8], &[u8]) -> rocksdb::compaction_filter::Decision + Send + 'static {
    move |_level, _key, value| {
        let seq = value
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes);
        match seq {
            Some(s) if s < floor.load(Ordering::Relaxed) => {
                rocksdb::compaction_filter::Decision::Remove
            }
            _ => rocksdb::compaction_filter::Decision::Keep,
        }
    }
}
