//! The info role's replica of the registry's state, when it runs as its own
//! process: it follows the registry's feed with the writes each event made
//! and applies them as they are, sequence number for sequence number, never
//! running the rules (so a replica of another version cannot diverge),
//! beside its own operators, consents and audit log.

use shikko_core::{ChangeRecord, Effect};
use shikko_follow::{Binding, FollowError, ReplicaSink};
use shikko_store::ReplicaStore;

/// A replica store as the follower's sink.
#[derive(Debug)]
pub struct Replica {
    store: ReplicaStore,
}

impl Replica {
    /// The replica over `store`.
    pub fn new(store: ReplicaStore) -> Replica {
        Replica { store }
    }

    /// The replica's binding to the registry history it was made from, kept
    /// in the store across restarts.
    pub fn binding(&self) -> Result<Binding, FollowError> {
        let bound = self.store.mirror_of().map_err(FollowError::sink)?;
        let store = self.store.clone();
        Ok(Binding::persistent(bound, move |id| {
            store.bind(id).map_err(FollowError::sink)
        }))
    }
}

impl ReplicaSink for Replica {
    fn position(&self) -> u64 {
        self.store.last_seq()
    }

    fn apply(&self, records: Vec<(ChangeRecord, Vec<Effect>)>) -> Result<u64, FollowError> {
        self.store.apply_replicated(&records).map_err(|e| match e {
            shikko_store::Error::Gap { applied, got } => FollowError::Gap { applied, got },
            other => FollowError::sink(other),
        })
    }

    fn begin_snapshot(&self) -> Result<(), FollowError> {
        self.store.begin_reload().map_err(FollowError::sink)
    }

    fn load_snapshot(&self, writes: Vec<Effect>) -> Result<(), FollowError> {
        self.store.reload(writes).map_err(FollowError::sink)
    }

    fn end_snapshot(&self, seq: u64) -> Result<u64, FollowError> {
        self.store.end_reload(seq).map_err(FollowError::sink)
    }
}
