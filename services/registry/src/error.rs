//! The registry's errors, and their one mapping to gRPC status codes.

use shikko_core::{RuleViolation, ValidationError};
use tonic::{Code, Status};

/// A registry failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] shikko_store::Error),
    /// A request was malformed.
    #[error("{0}")]
    Invalid(String),
    /// An all-or-nothing batch had an event that breaks a rule.
    #[error("event {event_id} breaks rule {rule}: {violation}; nothing in the batch was applied")]
    Rejected {
        /// The event.
        event_id: String,
        /// The rule's stable name.
        rule: &'static str,
        /// The violation.
        violation: RuleViolation,
    },
    /// The certificate is unknown.
    #[error("{0}")]
    NotFound(String),
    /// The feed was pruned below what a follower asked for.
    #[error(
        "the feed starts at {first_seq}: older records were pruned (retention); load a Snapshot and follow from its seq + 1"
    )]
    Compacted {
        /// The first sequence number kept.
        first_seq: u64,
    },
    /// This registry is a standby: it ingests nothing and serves no feed
    /// until promoted.
    #[error("this registry is a standby: send events to, and follow, the primary")]
    Standby,
    /// The standby did not confirm in time (the call may be retried).
    #[error("{0}")]
    Unavailable(String),
    /// An act refused in this state (promotion of a live primary's standby).
    #[error("{0}")]
    Refused(String),
    /// A metric could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A blocking task panicked or was cancelled.
    #[error("internal: {0}")]
    Internal(String),
}

/// `Result` with the registry's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A malformed event, by position and id.
    pub(crate) fn bad_event(index: usize, id: &str, e: &ValidationError) -> Error {
        let id: String = id.chars().take(64).collect();
        Error::Invalid(format!("event #{index} (id {id:?}) is malformed: {e}"))
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        match &e {
            Error::Invalid(_) => Status::new(Code::InvalidArgument, e.to_string()),
            Error::Rejected { .. } => Status::new(Code::FailedPrecondition, e.to_string()),
            Error::NotFound(_) => Status::new(Code::NotFound, e.to_string()),
            Error::Standby | Error::Unavailable(_) => Status::new(Code::Unavailable, e.to_string()),
            Error::Refused(_) => Status::new(Code::FailedPrecondition, e.to_string()),
            Error::Compacted { first_seq } => {
                let mut s = Status::new(Code::FailedPrecondition, e.to_string());
                if let Ok(v) = first_seq.to_string().parse() {
                    s.metadata_mut()
                        .insert(shikko_follow::FIRST_SEQ_METADATA, v);
                }
                s
            }
            Error::Store(_) | Error::Metrics(_) | Error::Internal(_) => {
                tracing::error!(error = %e, "registry failure");
                Status::new(Code::Internal, "internal error in the registry")
            }
        }
    }
}
