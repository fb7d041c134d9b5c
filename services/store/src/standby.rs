//! A registry store in a synchronous pair (issue 14): the primary ingests,
//! a standby holds a copy of every record the primary acknowledged, so that
//! the loss of the primary's machine loses nothing acknowledged.
//!
//! What is shipped is what the primary stored, never a re-run of the rules:
//! for each sequence number the event as received, its change record and
//! its writes, byte for byte ([`Replicated`]). The standby writes them under
//! the same keys, derives the event id entry and the state (certificates,
//! holders, links, revoked index, municipalities) from the writes exactly as
//! the primary did, and syncs before it acknowledges.
//!
//! A standby that starts empty, or whose position the primary pruned, is
//! seeded: the primary's families are copied key by key from one RocksDB
//! snapshot ([`Snapshot::raw_page`]), with the meta values that make the
//! copy the same history (its store id, the retention marks, the epoch).
//! A seed cut short leaves the store marked `seeding`: it starts over, and
//! such a store cannot be promoted.
//!
//! Each store records its part (`replication_role`: absent or `primary`,
//! `standby`, `seeding`) and an epoch, which promotion raises: a store
//! records, for each epoch it began, the last sequence number of the epoch
//! before, so a primary can tell a standby of an older epoch whose history
//! went further than its own (that standby's extra records were never
//! acknowledged; it must be seeded again, never merged).

use std::sync::atomic::Ordering;

use rocksdb::{ReadOptions, WriteBatch, WriteOptions};
use shikko_core::{ChangeRecord, Effect};

use crate::ingest::BatchView;
use crate::retention::{META_FIRST_SEQ, META_ID_FLOOR};
use crate::snapshot::Snapshot;
use crate::{Error, META_LAST_SEQ, META_STORE_ID, RegistryStore, Result, Store, cf, keys};

pub(crate) const META_ROLE: &[u8] = b"replication_role";
pub(crate) const META_EPOCH: &[u8] = b"epoch";
/// `epoch_began/EPOCH (u64 BE)` -> the last sequence number of the epoch before.
pub(crate) const EPOCH_BEGAN: &[u8] = b"epoch_began/";

/// The families a seed copies: everything of the registry's but the
/// `info` family (the 4-information service's own, when it runs in the
/// registry's process) and `meta` (copied by name).
pub const SEED_FAMILIES: [&str; 10] = [
    cf::EVENTS,
    cf::FEED,
    cf::EVENT_IDS,
    cf::CERTS,
    cf::CERT_DER,
    cf::HOLDERS,
    cf::LINKS,
    cf::REVOKED,
    cf::MUNICIPALITIES,
    cf::WRITES,
];

/// Past every key of the families cleared by a seed.
const KEY_END: [u8; 256] = [0xff; 256];

/// A registry store's part in a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Ingests (every store is one unless made a standby).
    Primary,
    /// Applies what a primary ships; ingests nothing.
    Standby,
    /// A standby whose seed has not finished: it holds no usable copy.
    Seeding,
}

impl Role {
    fn parse(v: Option<&[u8]>) -> Result<Role> {
        match v {
            None | Some(b"primary") => Ok(Role::Primary),
            Some(b"standby") => Ok(Role::Standby),
            Some(b"seeding") => Ok(Role::Seeding),
            Some(_) => Err(Error::Corrupt {
                cf: cf::META,
                why: "unknown replication role".into(),
            }),
        }
    }

    fn as_bytes(self) -> &'static [u8] {
        match self {
            Role::Primary => b"primary",
            Role::Standby => b"standby",
            Role::Seeding => b"seeding",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Seeding => "seeding standby",
        })
    }
}

/// One accepted event as the primary stored it: the event as received (with
/// 4 information), its change record and its writes, each encoded as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replicated {
    /// Sequence number.
    pub seq: u64,
    /// The `events` value.
    pub event: Vec<u8>,
    /// The `feed` value (a [`ChangeRecord`]).
    pub record: Vec<u8>,
    /// The `writes` value (the event's `Vec<Effect>`).
    pub writes: Vec<u8>,
}

/// Why a standby cannot continue from where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Continuation {
    /// It follows from `last_seq + 1`.
    Continue,
    /// It must be seeded (empty, a different history, or behind the primary's retention).
    Seed,
    /// Its history went past the point where this primary's epoch began:
    /// records it holds were never acknowledged. It must be emptied and seeded.
    Diverged {
        /// The last sequence number the two histories share.
        common: u64,
    },
    /// It holds more of this epoch than this primary: the primary lost
    /// acknowledged records (restored from an older copy?); the standby is
    /// the one to keep (promote it).
    Ahead {
        /// This primary's last sequence number.
        primary_last: u64,
    },
    /// It has seen a later epoch than this primary's: this primary was replaced.
    Superseded {
        /// The standby's epoch.
        epoch: u64,
    },
}

impl Store {
    fn meta_u64(&self, key: &[u8]) -> Result<Option<u64>> {
        self.meta(key)?
            .map(|v| keys::decode_u64(&v, cf::META))
            .transpose()
    }

    /// This store's part in a pair.
    pub fn replication_role(&self) -> Result<Role> {
        Role::parse(self.meta(META_ROLE)?.as_deref())
    }

    /// The epoch of the history: 1 until a standby of it is promoted.
    pub fn epoch(&self) -> Result<u64> {
        Ok(self.meta_u64(META_EPOCH)?.unwrap_or(1))
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<()> {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        Ok(self.db.write_opt(batch, &w)?)
    }
}

impl Snapshot<'_> {
    /// Up to `max_bytes` (at least one entry) of the key-value pairs of
    /// `family` (one of [`SEED_FAMILIES`]) after `after`, as stored; the
    /// last key read, to continue from, or `None` when the family is done.
    #[allow(clippy::type_complexity)]
    pub fn raw_page(
        &self,
        family: &str,
        after: Option<&[u8]>,
        max_bytes: usize,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>)> {
        let name = seed_family(family)?;
        let mut ro = ReadOptions::default();
        ro.set_snapshot(self.raw());
        ro.fill_cache(false);
        ro.set_readahead_size(4 << 20);
        let store = self.store();
        let mut it = store.db.raw_iterator_cf_opt(store.cf(name), ro);
        match after {
            Some(k) => {
                it.seek(k);
                if it.key() == Some(k) {
                    it.next();
                }
            }
            None => it.seek_to_first(),
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            bytes += k.len() + v.len();
            out.push((k.to_vec(), v.to_vec()));
            if bytes >= max_bytes {
                let last = out.last().map(|(k, _)| k.clone());
                return Ok((out, last));
            }
            it.next();
        }
        it.status()?;
        Ok((out, None))
    }

    /// The meta values a seed carries: what makes the copy the same
    /// history (store id, epoch and the epochs' beginnings) and keeps its
    /// retention where the primary's is (first kept record, event-id
    /// floor, the daily marks). Not the position: that is the snapshot's seq.
    pub fn seed_meta(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(self.raw());
        let store = self.store();
        let mut it = store.db.raw_iterator_cf_opt(store.cf(cf::META), ro);
        it.seek_to_first();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if is_seed_meta(k) {
                out.push((k.to_vec(), v.to_vec()));
            }
            it.next();
        }
        it.status()?;
        Ok(out)
    }
}

fn is_seed_meta(k: &[u8]) -> bool {
    [META_STORE_ID, META_EPOCH, META_FIRST_SEQ, META_ID_FLOOR].contains(&k)
        || k.starts_with(b"seq_at/")
        || k.starts_with(EPOCH_BEGAN)
}

fn seed_family(name: &str) -> Result<&'static str> {
    SEED_FAMILIES
        .iter()
        .copied()
        .find(|f| *f == name)
        .ok_or_else(|| Error::Corrupt {
            cf: cf::META,
            why: format!("{name:?} is not a family a seed copies"),
        })
}

impl RegistryStore {
    /// Makes a new, empty store a standby (it then ingests nothing). A store
    /// that holds a history is refused: it may hold records no primary
    /// acknowledged, so it must be emptied (moved aside) first.
    pub fn make_standby(&self) -> Result<()> {
        match self.replication_role()? {
            Role::Standby | Role::Seeding => return Ok(()),
            Role::Primary if self.last_seq() == 0 => {}
            Role::Primary => {
                return Err(Error::Corrupt {
                    cf: cf::META,
                    why: format!(
                        "this store is a primary's (epoch {}, last sequence number {}): a standby starts from an empty data directory; move this one aside",
                        self.epoch()?,
                        self.last_seq()
                    ),
                });
            }
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(cf::META), META_ROLE, Role::Seeding.as_bytes());
        self.write_synced(batch)
    }

    /// Promotes a standby: it becomes the primary of a new epoch (one more
    /// than the one it followed), which it records with the last sequence
    /// number of the old epoch. Returns the new epoch. A store still being
    /// seeded holds no complete copy and is refused.
    pub fn promote(&self) -> Result<u64> {
        let _w = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match self.replication_role()? {
            Role::Standby => {}
            Role::Primary => return self.epoch(),
            Role::Seeding => {
                return Err(Error::Corrupt {
                    cf: cf::META,
                    why: "this standby's seed has not finished: it holds no complete copy of the primary and cannot be promoted".into(),
                });
            }
        }
        let epoch = self.epoch()? + 1;
        let mut began = EPOCH_BEGAN.to_vec();
        began.extend_from_slice(&epoch.to_be_bytes());
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(cf::META), META_ROLE, Role::Primary.as_bytes());
        batch.put_cf(self.cf(cf::META), META_EPOCH, epoch.to_be_bytes());
        batch.put_cf(self.cf(cf::META), began, self.last_seq().to_be_bytes());
        self.write_synced(batch)?;
        Ok(epoch)
    }

    /// How a standby at `(store_id, epoch, last_seq)` goes on from this
    /// primary's history.
    pub fn continuation(&self, store_id: &str, epoch: u64, last_seq: u64) -> Result<Continuation> {
        let mine = self.epoch()?;
        if store_id.is_empty() || store_id != self.store_id()? {
            return Ok(Continuation::Seed);
        }
        if epoch > mine {
            return Ok(Continuation::Superseded { epoch });
        }
        // The history the standby's epoch shares with this one ends where
        // the next epoch began.
        if epoch < mine {
            let mut key = EPOCH_BEGAN.to_vec();
            key.extend_from_slice(&(epoch + 1).to_be_bytes());
            if let Some(common) = self.meta_u64(&key)?
                && last_seq > common
            {
                return Ok(Continuation::Diverged { common });
            }
        }
        if last_seq > self.last_seq() {
            return Ok(Continuation::Ahead {
                primary_last: self.last_seq(),
            });
        }
        if last_seq + 1 < self.first_seq() {
            return Ok(Continuation::Seed);
        }
        Ok(Continuation::Continue)
    }

    /// The records from `from` on, at most `max` and about `max_bytes`, as
    /// stored. Empty when there is none yet; stops before a pruned record.
    pub fn replication_records(
        &self,
        from: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<Replicated>> {
        let last = self.last_seq();
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut seq = from.max(1);
        while seq <= last && out.len() < max && bytes < max_bytes {
            let key = seq.to_be_bytes();
            let (Some(event), Some(record), Some(writes)) = (
                self.db.get_cf(self.cf(cf::EVENTS), key)?,
                self.db.get_cf(self.cf(cf::FEED), key)?,
                self.db.get_cf(self.cf(cf::WRITES), key)?,
            ) else {
                break;
            };
            bytes += event.len() + record.len() + writes.len();
            out.push(Replicated {
                seq,
                event,
                record,
                writes,
            });
            seq += 1;
        }
        Ok(out)
    }

    /// Applies records shipped by the primary, in order from `last_seq() +
    /// 1`, in one synced write: the event, its record and its writes as
    /// shipped, the event id, and the state the writes make. Refuses a gap
    /// ([`Error::Gap`]), a store that is not a standby, and a record whose
    /// writes do not make its status changes ([`Error::Corrupt`]).
    pub fn apply_standby(&self, records: &[Replicated]) -> Result<u64> {
        let _w = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.replication_role()? != Role::Standby {
            return Err(Error::Corrupt {
                cf: cf::META,
                why: "records are applied by a seeded standby only".into(),
            });
        }
        let mut seq = self.last_seq();
        let mut batch = WriteBatch::default();
        let mut view = BatchView::new(self);
        for r in records {
            if r.seq != seq + 1 {
                return Err(Error::Gap {
                    applied: seq,
                    got: r.seq,
                });
            }
            let record: ChangeRecord = keys::decode(&r.record, cf::FEED)?;
            let writes: Vec<Effect> = keys::decode(&r.writes, cf::WRITES)?;
            if record.seq != r.seq {
                return Err(Error::Corrupt {
                    cf: cf::FEED,
                    why: format!("record {} is shipped as {}", record.seq, r.seq),
                });
            }
            let (changes, _) = self.write_effects(&mut batch, &mut view, writes)?;
            if changes != record.changes {
                return Err(Error::Corrupt {
                    cf: cf::WRITES,
                    why: format!(
                        "the writes of record {} do not make its status changes",
                        r.seq
                    ),
                });
            }
            let key = r.seq.to_be_bytes();
            batch.put_cf(self.cf(cf::EVENTS), key, &r.event);
            batch.put_cf(self.cf(cf::FEED), key, &r.record);
            batch.put_cf(self.cf(cf::WRITES), key, &r.writes);
            let mut id_value = key.to_vec();
            id_value.extend_from_slice(&crate::ingest::fingerprint(&r.event));
            batch.put_cf(self.cf(cf::EVENT_IDS), record.event_id.as_str(), id_value);
            seq = r.seq;
        }
        if seq == self.last_seq() {
            return Ok(seq);
        }
        batch.put_cf(self.cf(cf::META), META_LAST_SEQ, seq.to_be_bytes());
        self.write_synced(batch)?;
        self.last_seq.store(seq, Ordering::SeqCst);
        Ok(seq)
    }

    /// Starts a seed: the store is marked `seeding` and its position is 0
    /// (synced, so a crash while seeding starts the seed over), then every
    /// seeded family and the copied meta values are forgotten.
    pub fn begin_seed(&self) -> Result<()> {
        let _w = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.replication_role()? == Role::Primary {
            return Err(Error::Corrupt {
                cf: cf::META,
                why: "a primary's store is never seeded".into(),
            });
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(cf::META), META_ROLE, Role::Seeding.as_bytes());
        batch.put_cf(self.cf(cf::META), META_LAST_SEQ, 0u64.to_be_bytes());
        batch.put_cf(self.cf(cf::META), META_FIRST_SEQ, 1u64.to_be_bytes());
        self.write_synced(batch)?;
        self.last_seq.store(0, Ordering::SeqCst);
        self.first_seq.store(1, Ordering::SeqCst);
        let mut batch = WriteBatch::default();
        for family in SEED_FAMILIES {
            batch.delete_range_cf(self.cf(family), &[] as &[u8], &KEY_END[..]);
        }
        batch.delete_range_cf(self.cf(cf::META), b"seq_at/", b"seq_at0");
        batch.delete_range_cf(self.cf(cf::META), EPOCH_BEGAN, b"epoch_began0");
        self.write_synced(batch)
    }

    /// Writes a page of a seed's family, as shipped, without the
    /// write-ahead log (a seed cut short starts over: [`RegistryStore::end_seed`]
    /// flushes what was seeded to its files before the store is a standby).
    pub fn seed(&self, family: &str, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let name = seed_family(family)?;
        let mut batch = WriteBatch::default();
        for (k, v) in entries {
            batch.put_cf(self.cf(name), k, v);
        }
        let mut w = WriteOptions::default();
        w.disable_wal(true);
        Ok(self.db.write_opt(batch, &w)?)
    }

    /// Ends a seed at the primary's `seq` with its meta values (only those a
    /// seed carries are accepted): one synced write makes the store a
    /// standby at `seq`, after everything seeded before it.
    pub fn end_seed(&self, seq: u64, meta: &[(Vec<u8>, Vec<u8>)]) -> Result<u64> {
        let _w = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.replication_role()? != Role::Seeding {
            return Err(Error::Corrupt {
                cf: cf::META,
                why: "a seed ends on a store being seeded only".into(),
            });
        }
        let mut batch = WriteBatch::default();
        for (k, v) in meta {
            if !is_seed_meta(k) {
                return Err(Error::ReservedKey(String::from_utf8_lossy(k).into_owned()));
            }
            batch.put_cf(self.cf(cf::META), k, v);
        }
        // What was seeded without the log is in the files before the store
        // says it is a standby.
        for family in SEED_FAMILIES {
            self.db.flush_cf(self.cf(family))?;
        }
        batch.put_cf(self.cf(cf::META), META_LAST_SEQ, seq.to_be_bytes());
        batch.put_cf(self.cf(cf::META), META_ROLE, Role::Standby.as_bytes());
        self.write_synced(batch)?;
        self.last_seq.store(seq, Ordering::SeqCst);
        self.load_first_seq()?;
        self.load_event_id_floor()?;
        Ok(seq)
    }
}
