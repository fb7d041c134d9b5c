//! The three things a store can be, as three types: a [`RegistryStore`]
//! ingests events, a [`MirrorStore`] applies the change feed (the CRL role's
//! copy), a [`ReplicaStore`] applies the registry's writes (the info role's
//! copy). Each derefs to [`Store`], the read side every role shares
//! (snapshots, queries, the feed, the info family), and hands out an
//! `Arc<Store>` for readers that outlive it ([`RegistryStore::shared`]).
//!
//! What a store is for is recorded the first time it is opened for a
//! purpose and checked once at every later open ([`Error::WrongKind`]): a
//! mirror directory opened as a registry, or the other way round, fails
//! before anything is written, and no write path asks at run time which
//! kind it is.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use shikko_core::{ChangeRecord, Effect, Event, Municipality, StatusChange};

use crate::{IngestMode, Outcome, Result, Store};

/// What a store is for, recorded in it when it is first opened for a purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// The registry's own store: events in, the change feed out.
    Registry,
    /// A CRL role's copy: the revoked index, the feed, the municipalities.
    Mirror,
    /// An info role's copy: the registry's state, applied from its writes.
    Replica,
}

impl StoreKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StoreKind::Registry => "registry",
            StoreKind::Mirror => "mirror",
            StoreKind::Replica => "replica",
        }
    }

    pub(crate) fn parse(s: &[u8]) -> Option<StoreKind> {
        match s {
            b"registry" => Some(StoreKind::Registry),
            b"mirror" => Some(StoreKind::Mirror),
            b"replica" => Some(StoreKind::Replica),
            _ => None,
        }
    }
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! handle {
    ($name:ident, $kind:expr) => {
        impl $name {
            /// Opens (creating if needed) the store at `path`; fails with
            /// [`Error::WrongKind`] if it was made for another purpose.
            pub fn open(path: &Path) -> Result<$name> {
                Ok($name(Arc::new(Store::open_as(
                    path,
                    $kind,
                    crate::DEFAULT_CACHE_BYTES,
                )?)))
            }

            /// Opens (creating if needed) the store of a data directory, `DATA_DIR/db`.
            pub fn open_data_dir(data_dir: &Path) -> Result<$name> {
                Self::open_data_dir_with_cache(data_dir, crate::DEFAULT_CACHE_BYTES)
            }

            /// [`Self::open_data_dir`] with a block cache of `cache_bytes`.
            pub fn open_data_dir_with_cache(data_dir: &Path, cache_bytes: usize) -> Result<$name> {
                Ok($name(Arc::new(Store::open_data_dir_as(
                    data_dir,
                    $kind,
                    cache_bytes,
                )?)))
            }

            /// The read side, for readers that outlive this handle (builders,
            /// services, snapshots).
            pub fn shared(&self) -> Arc<Store> {
                Arc::clone(&self.0)
            }
        }

        impl Deref for $name {
            type Target = Store;
            fn deref(&self) -> &Store {
                &self.0
            }
        }
    };
}

/// The registry's own store: the only handle that ingests events.
#[derive(Clone, Debug)]
pub struct RegistryStore(Arc<Store>);
handle!(RegistryStore, StoreKind::Registry);

impl RegistryStore {
    /// Ingests a batch: each event through the rules, in order, each seeing the
    /// ones before it. Accepted events are written in one atomic `WriteBatch`,
    /// synced to the write-ahead log before this returns. Returns one outcome per event.
    ///
    /// Errors only on a storage failure, in which case nothing of the batch is written.
    /// A standby's store refuses ([`crate::Error::Standby`]).
    pub fn ingest(&self, events: &[Event], mode: IngestMode) -> Result<Vec<Outcome>> {
        if self.0.replication_role()? != crate::Role::Primary {
            return Err(crate::Error::Standby);
        }
        self.0.ingest_events(events, mode)
    }

    /// Keeps the history (feed, events, writes) ingested in the last
    /// `history_secs` before `now` and the event ids of the last
    /// `event_id_secs` (exact to a day), pruning and compacting what is
    /// older. See the retention module for what each keeps and why.
    pub fn retain(
        &self,
        now: shikko_core::UnixTime,
        history_secs: i64,
        event_id_secs: i64,
    ) -> Result<crate::Pruned> {
        use shikko_core::UnixTime;
        let from = self.0.first_seq();
        // A standby being seeded holds no history of its own yet.
        if self.0.replication_role()? == crate::Role::Seeding || !self.0.mark_day(now)? {
            return Ok(crate::Pruned {
                from,
                first_seq: from,
            });
        }
        let before = self.0.ingested_before(UnixTime(now.0 - history_secs))?;
        let pruned = self.0.prune_history_before(before)?;
        let ids_horizon = UnixTime(now.0 - event_id_secs.max(history_secs));
        let id_floor = self.0.ingested_before(ids_horizon)?;
        self.0
            .prune_event_ids_before(id_floor.min(pruned.first_seq), now)?;
        self.0.drop_marks_before(ids_horizon)?;
        Ok(pruned)
    }
}

/// A CRL role's copy of the registry's revoked index and change feed: the
/// only handle that applies change records.
#[derive(Clone, Debug)]
pub struct MirrorStore(Arc<Store>);
handle!(MirrorStore, StoreKind::Mirror);

impl MirrorStore {
    /// Applies change records followed from a registry, in order from
    /// `last_seq() + 1`, in one synced write: the municipalities they made
    /// known are recorded, the revoked index follows each certificate's new
    /// status, the records join the local feed, and `last_seq` advances.
    /// Refuses a gap or a repeat ([`Error::Gap`]: the follower resumes from
    /// `last_seq() + 1`). Returns the new `last_seq`.
    pub fn apply_changes(&self, records: &[ChangeRecord]) -> Result<u64> {
        self.0.apply_change_records(records)
    }

    /// Records the registry's municipalities (CRL partitions).
    pub fn put_municipalities(&self, municipalities: &[Municipality]) -> Result<()> {
        self.0.put_municipalities(municipalities)
    }

    /// Binds this mirror to the registry history `source_id` (see
    /// [`Store::mirror_of`]); refuses another history once bound
    /// ([`Error::Foreign`]).
    pub fn bind(&self, source_id: &str) -> Result<()> {
        self.0.bind_to(source_id)
    }

    /// Starts loading a snapshot (the mirror started empty or fell behind
    /// the registry's retention): the revoked index, the feed and the
    /// municipalities are forgotten, and the position is 0 (durably, so a
    /// crash while loading starts over).
    pub fn begin_reload(&self) -> Result<()> {
        self.0.set_issued_index(false)?;
        self.0.begin_reload(&crate::reload::MIRROR_FAMILIES)
    }

    /// Loads municipalities and statuses of the snapshot: a snapshot of
    /// every certificate's status fills the issued index (the filters'
    /// universe) as well as the revoked index.
    pub fn reload(&self, municipalities: &[Municipality], changes: &[StatusChange]) -> Result<()> {
        self.0.reload_statuses(municipalities, changes)
    }

    /// The snapshot at `seq` is loaded: `seq` is the position, and the
    /// mirror's own feed starts after it ([`Store::first_seq`]). `every`
    /// says whether it held every certificate (not only the listed ones):
    /// the issued index is then complete.
    pub fn end_reload(&self, seq: u64, every: bool) -> Result<u64> {
        self.0.set_issued_index(every)?;
        self.0.end_reload(seq)
    }

    /// Whether the issued index holds every certificate (the filters'
    /// universe): a mirror made before it existed does not, until it
    /// loads a snapshot of every status.
    pub fn has_issued_index(&self) -> Result<bool> {
        self.0.has_issued_index()
    }

    /// Forgets the followed state (as [`MirrorStore::begin_reload`]) of a
    /// mirror that has some but no complete issued index, so that the
    /// follower loads a snapshot of every status at its start. Returns
    /// whether it did.
    pub fn reload_without_issued_index(&self) -> Result<bool> {
        if self.0.last_seq() == 0 || self.0.has_issued_index()? {
            return Ok(false);
        }
        self.begin_reload()?;
        Ok(true)
    }

    /// Prunes the mirror's own feed applied more than `history_secs`
    /// before `now` (exact to a day), but never from `keep_from` on (the
    /// records the next delta CRL is built from: its base's seq + 1).
    pub fn retain(
        &self,
        now: shikko_core::UnixTime,
        history_secs: i64,
        keep_from: u64,
    ) -> Result<crate::Pruned> {
        self.0.retain_history(now, history_secs, keep_from)
    }
}

/// An info role's copy of the registry's state: the only handle that
/// applies the registry's writes.
#[derive(Clone, Debug)]
pub struct ReplicaStore(Arc<Store>);
handle!(ReplicaStore, StoreKind::Replica);

impl ReplicaStore {
    /// Applies records followed from a registry with the writes their events
    /// made, in order from `last_seq() + 1`, in one synced write. Refuses a
    /// gap or a repeat ([`Error::Gap`]) and a record whose writes do not make
    /// its status changes ([`Error::Corrupt`]: the registry's record and
    /// writes disagree). Returns the new `last_seq`.
    pub fn apply_replicated(&self, records: &[(ChangeRecord, Vec<Effect>)]) -> Result<u64> {
        self.0.apply_replicated_records(records)
    }

    /// Binds this replica to the registry history `source_id` (see
    /// [`Store::mirror_of`]); refuses another history once bound
    /// ([`Error::Foreign`]).
    pub fn bind(&self, source_id: &str) -> Result<()> {
        self.0.bind_to(source_id)
    }

    /// Starts loading a snapshot (the replica started empty or fell behind
    /// the registry's retention): the replicated state is forgotten (not
    /// the `info` family: consents, audit log) and the position is 0
    /// (durably, so a crash while loading starts over).
    pub fn begin_reload(&self) -> Result<()> {
        self.0.begin_reload(&crate::reload::REPLICA_FAMILIES)
    }

    /// Loads writes of the snapshot, as they are.
    pub fn reload(&self, writes: Vec<Effect>) -> Result<()> {
        self.0.reload_writes(writes)
    }

    /// The snapshot at `seq` is loaded: `seq` is the position.
    pub fn end_reload(&self, seq: u64) -> Result<u64> {
        self.0.end_reload(seq)
    }

    /// Prunes the replica's copy of the feed and of the writes (with the 4
    /// information of past events) applied more than `history_secs`
    /// before `now` (exact to a day): nothing reads them once applied.
    pub fn retain(&self, now: shikko_core::UnixTime, history_secs: i64) -> Result<crate::Pruned> {
        self.0.retain_history(now, history_secs, u64::MAX)
    }
}
