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
    /// The CRL builds' lock, held from the start of a snapshot's load to
    /// its end: no CRL is built from a mirror half loaded.
    builds: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    loading: std::sync::Mutex<Option<tokio::sync::OwnedMutexGuard<()>>>,
    /// Load snapshots of every certificate's status (the filters' universe),
    /// not only the listed ones.
    every_status: bool,
}

impl MirrorSink {
    /// The sink over `store` (a mirror: it never holds events of its own).
    pub fn new(store: MirrorStore) -> MirrorSink {
        MirrorSink {
            store,
            builds: None,
            loading: std::sync::Mutex::new(None),
            every_status: true,
        }
    }

    /// Loads snapshots of the listed certificates only (a role that builds
    /// no filters: a snapshot of 200 million statuses takes far longer than
    /// one of the listed millions); the issued index stays incomplete.
    pub fn listed_only(mut self) -> MirrorSink {
        self.every_status = false;
        self
    }

    /// Holds `builds` (the role's build lock) while a snapshot loads.
    pub fn with_build_lock(mut self, builds: std::sync::Arc<tokio::sync::Mutex<()>>) -> MirrorSink {
        self.builds = Some(builds);
        self
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

    /// Every certificate's status: the CRLs list the revoked and held
    /// ones, the compact revocation filters cover every one (the listed
    /// ones only, for a role without filters).
    fn snapshot_content(&self) -> SnapshotContent {
        if self.every_status {
            SnapshotContent::Status
        } else {
            SnapshotContent::Listed
        }
    }

    fn begin_snapshot(&self) -> Result<(), FollowError> {
        if let Some(builds) = &self.builds {
            let mut loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
            // Held already if an earlier load failed half way: keep it.
            if loading.is_none() {
                // Called on a blocking thread: waits for a build in progress.
                *loading = Some(builds.clone().blocking_lock_owned());
            }
        }
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
        let seq = self
            .store
            .end_reload(seq, self.every_status)
            .map_err(FollowError::sink)?;
        self.loading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        Ok(seq)
    }
}
