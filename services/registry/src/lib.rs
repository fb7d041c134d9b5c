//! # shikko-registry
//!
//! The registry role: it owns the store (single writer) and serves the
//! `shikko.v1.Registry` gRPC service: event ingest (unary and client
//! streaming), certificate status, the change feed that OCSP and CRL roles
//! follow, and streamed scans of revoked entries. It also serves the standard
//! gRPC health service. [`LocalFeed`] is its feed as a `shikko-follow`
//! source for roles in the same process (the demo). [`process`] is the
//! role's process: its `[registry]` section and [`process::RegistryProcess`]
//! (open, bind, serve and drain through `shikko_runtime::RoleServer`).
//!
//! Depends on core, store, proto, follow, runtime; never on another role
//! crate (a service co-located in its process adds itself from outside).
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! let store = shikko_store::RegistryStore::open("data/db".as_ref())?;
//! let registry = Arc::new(shikko_registry::Registry::new(store, &prometheus::Registry::new())?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
//! shikko_registry::serve(registry, listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod error;
mod feed;
mod metrics;
pub mod pair;
pub mod process;
mod replicate;
pub mod retention;
mod service;
mod snapshot;

pub use error::{Error, Result};
pub use feed::LocalFeed;
pub use service::{
    MAX_EVENTS_PER_BATCH, MAX_MESSAGE_BYTES, Registry, RegistryService, serve, serve_with,
};
