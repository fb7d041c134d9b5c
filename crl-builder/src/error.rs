//! Errors of building, checking and publishing CRLs.

use std::path::{Path, PathBuf};

/// A CRL build or publication failure. Messages name files and CRL numbers,
/// never certificate contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input from a caller or configuration.
    #[error("{0}")]
    Input(&'static str),
    /// The store could not be read.
    #[error("store: {0}")]
    Store(#[from] shikko_store::Error),
    /// A key or certificate problem.
    #[error("pki: {0}")]
    Pki(#[from] shikko_pki::Error),
    /// An encoding failure of a CRL structure.
    #[error("DER encoding: {0}")]
    Der(#[from] der::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A CRL file is not what Shikko writes (re-parse before publishing, or a published file).
    #[error("{path}: not a valid CRL: {why}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A compact revocation filter could not be built, or a filter file
    /// (new or published) is not valid.
    #[error("{path}: filter: {why}")]
    Filter {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The signature of a new CRL does not verify: it is not published.
    #[error("{0}: the CRL's signature does not verify with the issuer's key; not published")]
    BadSignature(PathBuf),
    /// Publishing would not increase the CRL number of the published file.
    #[error(
        "{path}: CRL number {new} does not increase over the published {published}; not published"
    )]
    NumberNotIncreasing {
        /// The published file.
        path: PathBuf,
        /// Its CRL number.
        published: u64,
        /// The new CRL's number.
        new: u64,
    },
    /// Another build holds the output directory's lock.
    #[error("another CRL build is running (lock {0} is held)")]
    Busy(PathBuf),
    /// The numbering state is unreadable.
    #[error("{path}: CRL state unreadable: {why}")]
    State {
        /// The state file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// No full CRL of this issuer exists yet, so there is no base for a delta.
    #[error("no full CRL of {0} has been built yet: build a full CRL first")]
    NoBase(&'static str),
    /// The issuer is not configured.
    #[error("issuer {0} is not configured")]
    UnknownIssuer(&'static str),
    /// Builds failed for some of the issuers asked for (the others published).
    #[error("CRL builds failed for {}: {first}", issuers.join(", "))]
    Failed {
        /// The issuers whose builds failed.
        issuers: Vec<&'static str>,
        /// The first failure.
        first: Box<Error>,
    },
    /// The store the role builds from is not current yet (a mirror catching up).
    #[error("the CRL role's copy of the registry is still catching up; try again shortly")]
    NotReady,
    /// A build thread failed unexpectedly.
    #[error("internal: {0}")]
    Internal(&'static str),
    /// The on-demand build this request joined (the same kind, for these
    /// issuers, waiting to start) failed; its own caller got the error.
    #[error("the CRL build this request joined failed: {0}")]
    Joined(String),
    /// The on-demand build this request joined was cancelled before it
    /// reported: ask again.
    #[error("the CRL build this request joined was cancelled; ask again")]
    JoinedCancelled,
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn malformed(path: &Path, why: impl Into<String>) -> Error {
        Error::Malformed {
            path: path.to_path_buf(),
            why: why.into(),
        }
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
