//! Where the feed comes from: a stream of batches from a sequence number on.

use std::future::Future;
use std::pin::Pin;

use futures::Stream;
use shikko_core::{ChangeRecord, Effect, Municipality, StatusChange};

use crate::FollowError;

/// What a follower asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Status changes only (no personal data): OCSP and CRL roles.
    Status,
    /// Status changes with the writes their events made (holders,
    /// certificates, links, DER: personal data): the 4-information replica.
    Replication,
}

/// One batch of the feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedBatch {
    /// The identity of the registry store's history.
    pub store_id: String,
    /// The registry's last sequence number when the batch was read: a
    /// follower whose position reaches it is current.
    pub head_seq: u64,
    /// Municipalities: every one the registry knows in a stream's first
    /// batch, then those new with `records`.
    pub municipalities: Vec<Municipality>,
    /// Change records in sequence order.
    pub records: Vec<ChangeRecord>,
    /// With [`Content::Replication`]: the writes of each record's event, in
    /// the same order.
    pub writes: Vec<Vec<Effect>>,
}

/// A stream of feed batches.
pub type FeedStream = Pin<Box<dyn Stream<Item = Result<FeedBatch, FollowError>> + Send>>;

/// What a snapshot of the registry's state carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotContent {
    /// Every certificate's status (the OCSP index): no personal data.
    Status,
    /// The revoked and held certificates only (the CRL mirror): no personal data.
    Listed,
    /// The state as the writes that make it (certificates, holders with
    /// their 4 information, links, DER, municipalities): the replica.
    Replication,
    /// Every certificate's status as an image of the compact status index
    /// (an OCSP responder): no personal data.
    StatusImage,
}

/// One part of a snapshot: the registry's state at `seq`, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotPart {
    /// The identity of the registry store's history.
    pub store_id: String,
    /// The sequence number the snapshot reflects: follow from `seq + 1`.
    pub seq: u64,
    /// Municipalities (in the first part: every one).
    pub municipalities: Vec<Municipality>,
    /// With [`SnapshotContent::Status`] or [`SnapshotContent::Listed`]:
    /// certificates' statuses.
    pub changes: Vec<StatusChange>,
    /// With [`SnapshotContent::Replication`]: writes that rebuild the state.
    pub writes: Vec<Effect>,
    /// With [`SnapshotContent::StatusImage`]: the next piece of the image.
    pub image: Vec<u8>,
    /// The last part (a stream that ends without it was cut short).
    pub last: bool,
}

/// A stream of snapshot parts.
pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotPart, FollowError>> + Send>>;

/// A source of the registry's feed.
pub trait FeedSource: Send + Sync + 'static {
    /// Opens the feed from `from_seq` (the first record wanted). The stream
    /// ends when the source goes away; the follower then opens it again.
    fn open(
        &self,
        from_seq: u64,
        content: Content,
    ) -> impl Future<Output = Result<FeedStream, FollowError>> + Send;

    /// A consistent snapshot of the registry's state (what `content`
    /// says), for a follower that starts empty or finds the feed compacted
    /// below its position ([`FollowError::Compacted`]).
    fn snapshot(
        &self,
        content: SnapshotContent,
    ) -> impl Future<Output = Result<SnapshotStream, FollowError>> + Send;

    /// Where the source is, for logs.
    fn describe(&self) -> String;
}
