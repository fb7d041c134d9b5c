//! # shikko-proto
//!
//! The protobuf messages and gRPC services of Shikko, generated from
//! `proto/shikko/v1/*.proto` at build time (protox, no system `protoc`),
//! and their conversions to and from the domain types of `shikko-core`
//! ([`convert`]: the only copy).
//!
//! Depends on `shikko-core` only (and prost/tonic).
//!
//! ```
//! use shikko_proto::v1::{GetStatusRequest, Issuer};
//! let req = GetStatusRequest { issuer: Issuer::Sign as i32, serial: vec![0x01, 0x02] };
//! assert_eq!(req.issuer(), Issuer::Sign);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod access;
pub mod convert;

/// The encoded `FileDescriptorSet` of every Shikko service, for gRPC server
/// reflection (so that `grpcurl` works without the .proto files).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/shikko_descriptor.bin"));

/// Version 1 of the API (`package shikko.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("shikko.v1");
}
