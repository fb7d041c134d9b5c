//! Why following failed. Every failure ends the current stream; the follower
//! reconnects with backoff, except that it never mixes two histories.

/// A failure while following the registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FollowError {
    /// The registry could not be reached or refused the stream.
    #[error("registry unreachable: {0}")]
    Unreachable(String),
    /// The feed stream broke.
    #[error("the feed broke: {0}")]
    Stream(String),
    /// The registry sent something that does not decode.
    #[error("malformed feed from the registry: {0}")]
    Malformed(String),
    /// The registry behind the endpoint holds another history than the one
    /// this replica was made from.
    #[error(
        "this replica follows registry store {bound}, not {got}: rebuild the replica (delete its data) to follow another history"
    )]
    ForeignRegistry {
        /// The history this replica is bound to.
        bound: String,
        /// The history the registry now serves.
        got: String,
    },
    /// The registry sent no store id (an older or broken registry).
    #[error("the registry sent no store id")]
    NoStoreId,
    /// A record that does not follow the last one applied.
    #[error("change record {got} does not follow {applied}: resume from {}", applied + 1)]
    Gap {
        /// The last sequence number applied.
        applied: u64,
        /// The sequence number received.
        got: u64,
    },
    /// The registry no longer keeps the feed from where this follower is:
    /// it loads a snapshot instead.
    #[error(
        "the registry's feed starts at {first_seq} (older records were pruned): loading a snapshot"
    )]
    Compacted {
        /// The first sequence number the registry keeps.
        first_seq: u64,
    },
    /// The sink could not apply what it received.
    #[error("applying the feed failed: {0}")]
    Sink(String),
}

impl FollowError {
    /// A sink's failure, by its message (sinks live in other crates, with their own errors).
    pub fn sink(e: impl std::fmt::Display) -> FollowError {
        FollowError::Sink(e.to_string())
    }
}
