//! # shikko-follow
//!
//! The one way a role keeps up with the registry. A role that holds a copy of
//! some of the registry's state (the OCSP index, the CRL role's mirror, the
//! 4-information replica) follows the registry's change feed through a
//! [`Follower`]:
//!
//! - a [`FeedSource`] says where the feed comes from: the registry's gRPC
//!   `Follow` stream ([`GrpcSource`]), or the registry in the same process
//!   (the demo; `shikko-registry` implements the trait for its `Registry`);
//! - a sink says what is done with it: [`StatusSink`] for roles that need
//!   certificate status only (never personal data), [`ReplicaSink`] for the
//!   4-information replica;
//! - a follower that starts empty, or whose position the registry no
//!   longer keeps in its feed (retention pruned it: [`FollowError::Compacted`]),
//!   first loads a [`FeedSource::snapshot`] of the state (what the sink
//!   needs: statuses, listed certificates, or the replica's writes) and
//!   follows from the sequence number it reflects;
//! - a [`Binding`] ties the follower to one registry history (its store id)
//!   and refuses any other;
//! - [`Readiness`] is the one vocabulary for "may this role answer yet":
//!   catching up, current, or lost (since when);
//! - [`FollowerMetrics`] are the same metric names for every role, labelled
//!   by role.
//!
//! This crate must not depend on RocksDB (the OCSP role follows through it
//! and holds no store) nor on any role crate.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use shikko_follow::*;
//! # struct Index;
//! # impl StatusSink for Index {
//! #     fn position(&self) -> u64 { 0 }
//! #     fn apply(&self, _: StatusBatch) -> Result<u64, FollowError> { Ok(0) }
//! #     fn snapshot_content(&self) -> SnapshotContent { SnapshotContent::Status }
//! #     fn begin_snapshot(&self) -> Result<(), FollowError> { Ok(()) }
//! #     fn load_snapshot(&self, _: Vec<shikko_core::Municipality>, _: Vec<shikko_core::StatusChange>) -> Result<(), FollowError> { Ok(()) }
//! #     fn end_snapshot(&self, seq: u64) -> Result<u64, FollowError> { Ok(seq) }
//! # }
//! # async fn run(metrics: &prometheus::Registry) -> Result<(), prometheus::Error> {
//! let readiness = Readiness::new();
//! let follower = Follower::new(
//!     GrpcSource::new("http://127.0.0.1:50051"),
//!     Binding::in_memory(),
//!     readiness.clone(),
//!     FollowerMetrics::new(metrics, "ocsp")?,
//! );
//! tokio::spawn(follower.run_status(Arc::new(Index), std::future::pending()));
//! readiness.wait_current().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod binding;
mod error;
mod follower;
mod grpc;
mod metrics;
mod readiness;
mod sink;
mod source;

/// Where roles find the registry unless configured otherwise (the
/// registry's default listen address).
pub const DEFAULT_REGISTRY_ENDPOINT: &str = "http://127.0.0.1:50051";

/// [`DEFAULT_REGISTRY_ENDPOINT`], for serde defaults.
pub fn default_registry_endpoint() -> String {
    DEFAULT_REGISTRY_ENDPOINT.to_string()
}

pub use binding::Binding;
pub use error::FollowError;
pub use follower::Follower;
pub use grpc::{FIRST_SEQ_METADATA, GrpcSource};
pub use metrics::{FeedMetrics, FollowerMetrics};
pub use readiness::{FeedState, Readiness};
pub use sink::{ReplicaSink, StatusBatch, StatusSink};
pub use source::{
    Content, FeedBatch, FeedSource, FeedStream, SnapshotContent, SnapshotPart, SnapshotStream,
};
