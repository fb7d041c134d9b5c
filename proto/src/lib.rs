//! # shikko-proto
//!
//! The protobuf messages and gRPC services of Shikko, generated from
//! `proto/shikko/v1/*.proto` at build time (protox, no system `protoc`).
//!
//! ```
//! use shikko_proto::v1::{GetStatusRequest, Issuer};
//! let req = GetStatusRequest { issuer: Issuer::Sign as i32, serial: vec![0x01, 0x02] };
//! assert_eq!(req.issuer(), Issuer::Sign);
//! ```
#![forbid(unsafe_code)]

/// Version 1 of the API (`package shikko.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("shikko.v1");
}
