//! What every role crate's process entry point shares: the configuration
//! contract the binary dispatches on ([`RoleConfig`]), the error a role
//! stops with ([`RoleError`], with what it was doing), and binding a
//! listener with a message that names the address.

use std::net::SocketAddr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

use crate::TelemetryConfig;

/// A role's configuration file: read by `shikko serve ROLE --config FILE`
/// (unknown fields refused), validated before anything starts.
pub trait RoleConfig: DeserializeOwned + Serialize {
    /// Checks what serde cannot (ranges, relations between fields); the
    /// message names the section and field.
    fn validate(&self) -> Result<(), String>;
    /// Logs and metrics.
    fn telemetry(&self) -> &TelemetryConfig;
}

/// A role could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct RoleError {
    context: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// `Result` with [`RoleError`].
pub type RoleResult<T> = Result<T, RoleError>;

impl RoleError {
    /// `source`, while doing `context`.
    pub fn new(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> RoleError {
        RoleError {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Says what a role was doing when something failed.
pub trait Context<T> {
    /// Wraps the error with `context`.
    fn context(self, context: impl Into<String>) -> RoleResult<T>;
    /// Wraps the error with a context made only on failure.
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> RoleResult<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, context: impl Into<String>) -> RoleResult<T> {
        self.map_err(|e| RoleError::new(context, e))
    }
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> RoleResult<T> {
        self.map_err(|e| RoleError::new(context(), e))
    }
}

/// Binds a TCP listener; the error names the address and what it was for.
pub async fn bind(addr: SocketAddr, what: &str) -> RoleResult<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what} (is another shikko running?)"))
}

/// Binds `count` TCP listeners on one address with SO_REUSEPORT (a port
/// of 0 picks one, shared by all), for [`crate::RoleServer::http_per_core`]:
/// the kernel spreads new connections over them, and each is served by a
/// thread of its own. Plain `std` listeners: each is registered with its
/// thread's runtime there.
pub fn bind_per_core(
    addr: SocketAddr,
    what: &str,
    count: usize,
) -> RoleResult<Vec<std::net::TcpListener>> {
    let err = |e: std::io::Error| {
        RoleError::new(
            format!("cannot listen on {addr} for {what} (is another shikko running?)"),
            e,
        )
    };
    let one = |at: SocketAddr| -> std::io::Result<std::net::TcpListener> {
        let socket = if at.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(at)?;
        // As std's own listen(): the kernel caps it at somaxconn.
        let listener = socket.listen(1024)?;
        listener.into_std()
    };
    let first = one(addr).map_err(err)?;
    let bound = first.local_addr().map_err(err)?;
    let mut all = vec![first];
    for _ in 1..count.max(1) {
        all.push(one(bound).map_err(err)?);
    }
    Ok(all)
}

/// Prints `ROLE listening NAME=ADDR ...` on standard output: tests and
/// scripts read this line to learn the ports bound (a port of 0 picks one).
pub fn announce(role: &str, listeners: &[(&str, &TcpListener)]) {
    let parts: Vec<(&str, String)> = listeners
        .iter()
        .map(|(name, l)| {
            let addr = l
                .local_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string());
            (*name, addr)
        })
        .collect();
    announce_addrs(role, &parts);
}

/// [`announce`] with the addresses already known.
pub fn announce_addrs(role: &str, addrs: &[(&str, String)]) {
    let parts: Vec<String> = addrs
        .iter()
        .map(|(name, addr)| format!("{name}={addr}"))
        .collect();
    println!("{role} listening {}", parts.join(" "));
}

/// A role process's metrics registry (with `shikko_build_info` and
/// `shikko_start_time_seconds`); every crate of the workspace shares one version.
pub fn process_metrics() -> RoleResult<crate::Metrics> {
    crate::Metrics::new(env!("CARGO_PKG_VERSION")).context("metrics")
}

/// The `[http]` section's limits, or why they are not usable.
pub fn http_limits(http: &crate::HttpConfig) -> RoleResult<crate::HttpLimits> {
    http.limits().map_err(|e| RoleError::new("[http]", e))
}
