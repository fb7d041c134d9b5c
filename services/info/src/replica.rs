//! The info role's replica of the registry's state, when it runs as its own
//! process: it follows the registry's feed with the whole events and applies
//! them with the same rules, sequence number for sequence number (a
//! divergence stops it), beside its own operators, consents and audit log.

use std::sync::Arc;

use shikko_core::Event;
use shikko_follow::{Binding, FollowError, ReplicaSink};
use shikko_store::{IngestMode, Outcome, Store};

/// A replica store as the follower's sink.
#[derive(Debug)]
pub struct Replica {
    store: Arc<Store>,
}

impl Replica {
    /// The replica over `store`.
    pub fn new(store: Arc<Store>) -> Replica {
        Replica { store }
    }

    /// The replica's binding to the registry history it was made from, kept
    /// in the store across restarts.
    pub fn binding(&self) -> Result<Binding, FollowError> {
        let bound = self.store.mirror_of().map_err(FollowError::sink)?;
        let store = self.store.clone();
        Ok(Binding::persistent(bound, move |id| {
            store.bind_mirror(id).map_err(FollowError::sink)
        }))
    }
}

impl ReplicaSink for Replica {
    fn position(&self) -> u64 {
        self.store.last_seq()
    }

    fn apply(&self, events: Vec<(u64, Event)>) -> Result<u64, FollowError> {
        let expected: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
        let events: Vec<Event> = events.into_iter().map(|(_, e)| e).collect();
        let outcomes = self
            .store
            .ingest(&events, IngestMode::PerEvent)
            .map_err(FollowError::sink)?;
        for (want, got) in expected.iter().zip(&outcomes) {
            match got {
                Outcome::Applied { seq } if seq == want => {}
                // Never for an event the registry applied: the replica has diverged.
                other => {
                    return Err(FollowError::Sink(format!(
                        "the replica diverged from the registry at seq {want}: {}",
                        match other {
                            Outcome::Rejected(r) => format!("rejected here ({})", r.rule()),
                            Outcome::Applied { seq } => format!("applied here as {seq}"),
                            Outcome::Duplicate { seq } => format!("a duplicate of {seq} here"),
                            Outcome::Aborted => "aborted here".into(),
                        }
                    )));
                }
            }
        }
        Ok(self.store.last_seq())
    }
}
