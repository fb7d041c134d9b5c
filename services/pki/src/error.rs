//! The one error type of this crate.

use std::path::PathBuf;

use shikko_core::ValidationError;

/// What can go wrong generating keys, signing or issuing certificates.
///
/// Messages name the field or file at fault, never key material or personal data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a key or certificate file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A private key file others could read or change (see
    /// [`crate::keys::check_key_file`]).
    #[error("{path}: {reason}")]
    KeyFileExposed {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A private key could not be parsed or is of an unsupported kind.
    #[error("key rejected: {0}")]
    KeyRejected(String),
    /// The cryptographic library failed (key generation or signing).
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// DER encoding or decoding failed.
    #[error("DER: {0}")]
    Der(#[from] der::Error),
    /// A public key (SubjectPublicKeyInfo) could not be parsed.
    #[error("public key: {0}")]
    PublicKey(#[from] spki::Error),
    /// PEM armour could not be parsed.
    #[error("PEM: {0}")]
    Pem(String),
    /// An argument was out of range or inconsistent; the message names it.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// Domain data (4 information, municipality, ids) failed validation.
    #[error(transparent)]
    Validation(#[from] ValidationError),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
