//! Where a followed feed goes. Two kinds of follower, two traits, nothing
//! either has to refuse: a status sink never sees personal data, a replica
//! sink gets what a 4-information replica needs.

use shikko_core::{ChangeRecord, Effect, Municipality, StatusChange};

use crate::{FollowError, SnapshotContent};

/// What a status-only follower applies at once: municipalities (CRL
/// partitions) the registry knows, then change records in sequence order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusBatch {
    /// Municipalities to record before the records' changes (every one the
    /// registry knows in the first batch of a stream, new ones after), so
    /// that no build sees a certificate without its partition.
    pub municipalities: Vec<Municipality>,
    /// Change records, each one after the last applied.
    pub records: Vec<ChangeRecord>,
}

/// A follower of certificate status (the OCSP index, the CRL mirror).
/// Called on a blocking thread, one batch at a time, in order.
pub trait StatusSink: Send + Sync + 'static {
    /// The last sequence number applied (the feed resumes after it).
    fn position(&self) -> u64;
    /// Applies a batch; returns the new position.
    fn apply(&self, batch: StatusBatch) -> Result<u64, FollowError>;

    /// What this sink loads from a snapshot: [`SnapshotContent::Status`]
    /// (every certificate) or [`SnapshotContent::Listed`] (revoked and held).
    fn snapshot_content(&self) -> SnapshotContent;
    /// Starts loading a snapshot: everything applied so far is forgotten
    /// (durably, for a stored copy: a crash while loading starts over) and
    /// the position is 0 until [`StatusSink::end_snapshot`].
    fn begin_snapshot(&self) -> Result<(), FollowError>;
    /// Loads one part of the snapshot.
    fn load_snapshot(
        &self,
        municipalities: Vec<Municipality>,
        changes: Vec<StatusChange>,
    ) -> Result<(), FollowError>;
    /// The snapshot is loaded: the state is the registry's at `seq`, which
    /// becomes the position. Returns it.
    fn end_snapshot(&self, seq: u64) -> Result<u64, FollowError>;
    /// Loads a whole status image ([`SnapshotContent::StatusImage`]), for
    /// a sink that asks for one; the others never get one.
    fn load_image(&self, _image: Vec<u8>) -> Result<(), FollowError> {
        Err(FollowError::Sink(
            "this follower does not load status images".into(),
        ))
    }
}

/// A replica of the registry's state for the 4-information service.
/// Called on a blocking thread, one batch at a time, in order.
pub trait ReplicaSink: Send + Sync + 'static {
    /// The last sequence number applied (the feed resumes after it).
    fn position(&self) -> u64;
    /// Applies the registry's records with the writes their events made, in
    /// order, as they are (never by running the rules); returns the new position.
    fn apply(&self, records: Vec<(ChangeRecord, Vec<Effect>)>) -> Result<u64, FollowError>;

    /// Starts loading a snapshot: the replicated state is forgotten
    /// (durably: a crash while loading starts over) and the position is 0
    /// until [`ReplicaSink::end_snapshot`]. What is not the registry's (the
    /// info role's consents and audit log) is kept.
    fn begin_snapshot(&self) -> Result<(), FollowError>;
    /// Loads writes of the snapshot, as they are.
    fn load_snapshot(&self, writes: Vec<Effect>) -> Result<(), FollowError>;
    /// The snapshot is loaded: the state is the registry's at `seq`, which
    /// becomes the position. Returns it.
    fn end_snapshot(&self, seq: u64) -> Result<u64, FollowError>;
}
