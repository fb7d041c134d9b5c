//! The crl role's mirror of the registry: a local store that follows the
//! registry's status feed (municipalities, revoked index, change feed for
//! deltas), never its events or 4 information. Builds read it exactly as they
//! read the registry's own store.

use shikko_core::{Municipality, StatusChange};
use shikko_follow::{Binding, FollowError, SnapshotContent, StatusBatch, StatusSink};
use shikko_store::MirrorStore;

/// A mirror store as the follower's sink.
#[derive(Debug)]
pub struct MirrorSink {
    store: MirrorStore,
}

impl MirrorSink {
    /// The sink over `store` (a mirror: it never holds events of its own).
    pub fn new(store: MirrorStore) -> MirrorSink {
        MirrorSink { store }
    }

    /// The mirror's binding to the registry history it was made from, kept
    /// in the store across restarts.
    pub fn binding(&self) -> Result<Binding, FollowError> {
        let bound = self.store.mirror_of().map_err(FollowError::sink)?;
        let store = self.store.clone();
        Ok(Binding::persistent(bound, move |id| {
            store.bind(id).map_err(FollowError::sink)
        }))
    }
}

impl StatusSink for MirrorSink {
    fn position(&self) -> u64 {
        self.store.last_seq()
    }

    fn apply(&self, batch: StatusBatch) -> Result<u64, FollowError> {
        if !batch.municipalities.is_empty() {
            self.store
                .put_municipalities(&batch.municipalities)
                .map_err(FollowError::sink)?;
        }
        self.store
            .apply_changes(&batch.records)
            .map_err(|e| match e {
                shikko_store::Error::Gap { applied, got } => FollowError::Gap { applied, got },
                other => FollowError::sink(other),
            })
    }

    /// A CRL lists the revoked and held certificates only.
    fn snapshot_content(&self) -> SnapshotContent {
        SnapshotContent::Listed
    }

    fn begin_snapshot(&self) -> Result<(), FollowError> {
        self.store.begin_reload().map_err(FollowError::sink)
    }

    fn load_snapshot(
        &self,
        municipalities: Vec<Municipality>,
        changes: Vec<StatusChange>,
    ) -> Result<(), FollowError> {
        self.store
            .reload(&municipalities, &changes)
            .map_err(FollowError::sink)
    }

    fn end_snapshot(&self, seq: u64) -> Result<u64, FollowError> {
        self.store.end_reload(seq).map_err(FollowError::sink)
    }
}
