//! # shikko-runtime
//!
//! What every Shikko process needs around its role, and nothing about the
//! domain: loading a TOML config file with errors that name the file and the
//! line ([`config`]), logs through `tracing` ([`telemetry::init_tracing`]), a
//! Prometheus registry with typed helpers ([`telemetry::Metrics`]) served at
//! `/metrics` and `/healthz` ([`metrics_server::serve_metrics`]), and graceful
//! shutdown: a signal listener, a cloneable [`shutdown::Shutdown`] handle and a
//! bounded drain ([`shutdown::drain_with_timeout`]). Every role is served by
//! the one server builder ([`server::RoleServer`]) and starts through the
//! same contract ([`role::RoleConfig`], [`role::RoleError`]).
//!
//! A role's `main` puts them together like this:
//!
//! ```no_run
//! use std::path::Path;
//! use serde::Deserialize;
//! use shikko_runtime::config::{self, ShutdownConfig, TelemetryConfig};
//! use shikko_runtime::shutdown::{drain_with_timeout, Shutdown};
//! use shikko_runtime::telemetry::{init_tracing, Metrics};
//!
//! /// The config file of one role.
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct RoleConfig {
//!     #[serde(default)]
//!     telemetry: TelemetryConfig,
//!     #[serde(default)]
//!     shutdown: ShutdownConfig,
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let cfg: RoleConfig = match config::load_toml(Path::new("registry.toml")) {
//!         Ok(cfg) => cfg,
//!         Err(error) => {
//!             eprintln!("shikko: {error}");
//!             std::process::exit(config::EXIT_CONFIG);
//!         }
//!     };
//!     init_tracing(&cfg.telemetry)?;
//!
//!     let metrics = Metrics::new(env!("CARGO_PKG_VERSION"))?;
//!     let requests = metrics.register_int_counter_vec(
//!         "shikko_registry_requests_total",
//!         "gRPC requests handled, by method and outcome.",
//!         &["method", "outcome"],
//!     )?;
//!     requests.with_label_values(&["status", "ok"]).inc();
//!
//!     let shutdown = Shutdown::new();
//!     shutdown.trigger_on_signal();
//!     let listener = tokio::net::TcpListener::bind(cfg.telemetry.metrics_listen).await?;
//!     let server = tokio::spawn(shikko_runtime::metrics_server::serve_metrics(
//!         listener,
//!         metrics.clone(),
//!         shutdown.wait_owned(),
//!     ));
//!
//!     shutdown.wait().await;
//!     // Errors: drain timed out, server task panicked, server failed.
//!     drain_with_timeout(server, cfg.shutdown.drain_timeout()).await???;
//!     Ok(())
//! }
//! ```
//!
//! The crate depends on no domain crate; roles embed [`config::TelemetryConfig`]
//! and [`config::ShutdownConfig`] in their own config structs.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
// The workspace lints warn on unwrap everywhere; unit tests may unwrap.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod authz;
pub mod config;
pub mod fast;
pub mod http_server;
pub mod idle;
pub mod limits;
pub mod metrics_server;
pub mod role;
pub mod server;
pub mod shutdown;
pub mod stream;
pub mod telemetry;
pub mod tls;

pub use authz::{Authorize, Caller, Denial};
pub use config::{
    ConfigError, EXIT_CONFIG, HttpConfig, LogFormat, ShutdownConfig, TelemetryConfig, load_toml,
};
pub use fast::{FastPath, FastRequest, Responses, serve_http_fast};
pub use http_server::{HttpLimits, PeerCertificate, serve_http, serve_https};
pub use limits::{Api, MethodLimits};
pub use metrics_server::serve_metrics;
pub use role::{
    Context, RoleConfig, RoleError, RoleResult, announce, announce_addrs, bind, bind_per_core,
    http_limits, process_metrics,
};
pub use server::{GrpcRoutes, RoleServer, Security, ServeError};
pub use shutdown::{Shutdown, drain_with_timeout, shutdown_signal};
pub use telemetry::{Metrics, MetricsError, TelemetryError, init_tracing};
pub use tls::{AcceptLimits, ClientTls, ServerTls, TlsConfig, TlsError, TlsFiles};

/// The `prometheus` crate this one is built on, so that roles name metric
/// types (`IntCounterVec`, `HistogramOpts`, ...) from the same version.
pub use prometheus;
