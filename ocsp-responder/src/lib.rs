//! # shikko-ocsp
//!
//! The OCSP role (RFC 6960, RFC 5019, RFC 8954). Module map:
//! - [`types`]: the ASN.1 structures of RFC 6960 as der derives, the ASN.1 quoted;
//! - [`request`]: reading a POST body or a GET path (CertIDs with SHA-1 or
//!   SHA-256, the nonce), with a clear error for every malformed form;
//! - [`index`]: the in-memory status index, fed by the change feed;
//! - [`responder`]: the responder keys, the pre-signed answer cache, signing
//!   and assembly of answers;
//! - [`role`]: the role (index + responder + metrics), a `StatusSink` of
//!   `shikko-follow`;
//! - [`http`], [`grpc`]: the endpoints;
//! - [`process`]: `shikko serve ocsp` (configuration and `serve`).
//!
//! It must not depend on `shikko-store` (and so on RocksDB): it follows the
//! registry through `shikko-follow` and keeps its index in memory.
//!
//! ```
//! use shikko_ocsp::request::{RequestError, decode_get_path, decode_request};
//! // A GET path that is not base64 of a request is refused, not a panic.
//! assert_eq!(decode_get_path("%%%"), Err(RequestError::BadBase64));
//! assert!(decode_request(&[0x30, 0x00]).is_err());
//! ```
#![forbid(unsafe_code)]

pub mod grpc;
pub mod http;
pub use shikko_status_index as index;
pub mod process;
pub mod request;
pub mod responder;
pub mod role;
pub mod rotation;
pub mod types;
