//! # shikko-ocsp
//!
//! The OCSP side of Shikko (RFC 6960, RFC 5019, RFC 8954). This first part
//! holds the ASN.1 structures of RFC 6960 as der derives ([`types`]) and the
//! reading of requests ([`request`]): a POST body or a GET path, the CertIDs
//! (SHA-1 or SHA-256) and the nonce, with a clear error for every malformed
//! form. The responder itself (status index, pre-signed cache, HTTP and
//! gRPC) is issue 4's next step.
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
pub mod index;
pub mod process;
pub mod request;
pub mod responder;
pub mod role;
pub mod types;
