//! # shikko-info
//!
//! The latest-4-information service (最新の利用者情報提供サービス): with a
//! holder's consent, a bank (through its platform operator) learns the
//! holder's latest 4 information and current signing certificate after the
//! one it holds was revoked, keyed by the old serial.
//!
//! Depends on core, pki, store, proto, follow and runtime; never on another
//! role crate ([`replica`] follows the registry through `shikko-follow`,
//! [`process`] is `shikko serve info`).
//!
//! - [`operators`]: operators and the providers they act for, authenticated
//!   by TLS client certificate; rate limits; billing reports.
//! - [`consent`]: consents proven by the holder's signature, withdrawal.
//! - [`challenge`]: the single-use challenges a consent statement carries.
//! - [`query`]: single and batch queries, about the serial's holder and their current certificate.
//! - [`expiring`]: consenting holders' signing certificates that expire soon.
//! - [`link`]: user-authentication serials to per-verifier pseudonyms of the holder.
//! - [`audit`]: the append-only, hash-chained audit log, its export and verification.
//! - [`tree`], [`heads`]: the audit log's Merkle tree; its signed heads.
//! - [`grpc`]: `shikko.v1.Info` over mutually authenticated TLS.
//! - [`admin`]: `shikko.v1.InfoAdmin` (registration, audit export) for the
//!   platform's internal endpoint.
//!
//! Personal data appears only in answers to authorized queries: never in
//! logs, metrics, errors or the audit log.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod admin;
pub mod audit;
pub mod challenge;
pub mod consent;
pub mod error;
pub mod expiring;
pub mod grpc;
pub mod heads;
pub mod holder;
mod keys;
pub mod link;
pub mod operators;
pub mod process;
pub mod query;
pub mod replica;
mod service;
pub mod tree;
pub mod verifiers;
pub mod witness;

pub use challenge::Challenge;
pub use error::InfoError;
pub use service::{InfoMetrics, InfoService, billing_day};
