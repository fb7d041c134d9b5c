//! Errors of the 4-information service, and how each reaches a caller.
//! Messages name ids, serials and reasons, never 4 information.

/// Why a call was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InfoError {
    /// No client certificate, or one that is not a registered, unrevoked operator's.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// The operator does not act for this provider, or the holder's consent is not in force.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// Past the operator's rate limit.
    #[error("rate limit: {0}")]
    RateLimited(String),
    /// Malformed input.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A record that already exists (a registration, a replayed consent).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// Not ready: a replica still catching up with the registry.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    /// Something named that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Not possible in the present state (e.g. a second link key changeover).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// A stored record that does not decode.
    #[error("corrupt store: {0}")]
    Corrupt(&'static str),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] shikko_store::Error),
    /// Anything else.
    #[error("internal: {0}")]
    Internal(String),
}

impl InfoError {
    /// The reason code recorded in the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            InfoError::Unauthenticated(_) => "unauthenticated",
            InfoError::PermissionDenied(_) => "permission_denied",
            InfoError::RateLimited(_) => "rate_limited",
            InfoError::Invalid(_) => "invalid",
            InfoError::AlreadyExists(_) => "already_exists",
            InfoError::NotFound(_) => "not_found",
            InfoError::FailedPrecondition(_) => "failed_precondition",
            InfoError::Unavailable(_) => "unavailable",
            InfoError::Corrupt(_) | InfoError::Store(_) | InfoError::Internal(_) => "internal",
        }
    }
}

impl From<shikko_core::ValidationError> for InfoError {
    fn from(e: shikko_core::ValidationError) -> Self {
        InfoError::Invalid(e.to_string())
    }
}

impl From<InfoError> for tonic::Status {
    fn from(e: InfoError) -> Self {
        use tonic::Status;
        match e {
            InfoError::Unauthenticated(m) => Status::unauthenticated(m),
            InfoError::PermissionDenied(m) => Status::permission_denied(m),
            InfoError::RateLimited(m) => Status::resource_exhausted(m),
            InfoError::Invalid(m) => Status::invalid_argument(m),
            InfoError::AlreadyExists(m) => Status::already_exists(m),
            InfoError::NotFound(m) => Status::not_found(m),
            InfoError::FailedPrecondition(m) => Status::failed_precondition(m),
            InfoError::Unavailable(m) => Status::unavailable(m),
            other => {
                tracing::error!(error = %other, "4-information service failure");
                Status::internal("internal error (logged)")
            }
        }
    }
}
