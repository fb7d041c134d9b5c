//! The one server builder every role (and the demo) is served by: its gRPC
//! endpoints (each with the standard health service and server reflection,
//! so `grpcurl` works without the .proto files; optionally TLS), its HTTP
//! router, its metrics endpoint, and the drain: on shutdown every endpoint
//! stops accepting, the hooks run (health set to NOT_SERVING, feed streams
//! closed), and in-flight calls get `drain` to finish.
//!
//! ```no_run
//! # async fn run(
//! #     metrics: shikko_runtime::Metrics,
//! #     grpc: tokio::net::TcpListener,
//! #     metrics_listener: tokio::net::TcpListener,
//! #     api: shikko_runtime::limits::Api,
//! # ) -> Result<(), shikko_runtime::server::ServeError> {
//! use shikko_runtime::server::{GrpcRoutes, RoleServer};
//! let shutdown = shikko_runtime::Shutdown::new();
//! RoleServer::new("example", metrics, metrics_listener)
//!     .grpc(
//!         grpc,
//!         GrpcRoutes::new(api),
//!         shikko_runtime::Security::InsecureLoopback,
//!     )
//!     .serve(shutdown, std::time::Duration::from_secs(10))
//!     .await
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::authz::{Authorize, AuthzLayer};
use crate::limits::{Api, LimitsLayer};
use crate::tls::{AcceptLimits, Reload, ServerTls};
use crate::{HttpLimits, Metrics, Shutdown};

type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A gRPC endpoint failed.
    #[error("{role}: gRPC server on {addr}: {source}")]
    Grpc {
        /// The role.
        role: &'static str,
        /// Its address.
        addr: String,
        /// What failed.
        source: tonic::transport::Error,
    },
    /// The TLS configuration of a gRPC endpoint is not usable.
    #[error("{role}: TLS configuration of {addr}: {source}")]
    Tls {
        /// The role.
        role: &'static str,
        /// Its address.
        addr: String,
        /// What failed.
        source: tonic::transport::Error,
    },
    /// A plaintext internal endpoint on an address other than loopback.
    #[error(
        "{role}: {addr}: plaintext internal gRPC is allowed on loopback addresses only; configure [tls]"
    )]
    Insecure {
        /// The role.
        role: &'static str,
        /// Its address.
        addr: String,
    },
    /// The role's metrics could not be registered.
    #[error("{role}: metrics: {source}")]
    Metrics {
        /// The role.
        role: &'static str,
        /// What failed.
        source: crate::MetricsError,
    },
    /// The HTTP or metrics endpoint failed.
    #[error("{role}: {what} server: {source}")]
    Io {
        /// The role.
        role: &'static str,
        /// Which endpoint.
        what: &'static str,
        /// What failed.
        source: std::io::Error,
    },
    /// A server task panicked.
    #[error("{role}: a server task failed: {source}")]
    Task {
        /// The role.
        role: &'static str,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// The gRPC services of one endpoint, with the names health reports as
/// serving and the descriptor sets reflection serves.
pub struct GrpcRoutes {
    routes: Routes,
    names: Vec<&'static str>,
    descriptors: Vec<&'static [u8]>,
    api: Api,
}

impl std::fmt::Debug for GrpcRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcRoutes")
            .field("services", &self.names)
            .finish()
    }
}

impl GrpcRoutes {
    /// No services yet; `api` describes the services to be added (for
    /// reflection) and the limits of their methods (enforced on every call:
    /// [`crate::limits`]).
    pub fn new(api: Api) -> GrpcRoutes {
        GrpcRoutes {
            routes: Routes::default(),
            names: Vec::new(),
            descriptors: vec![api.descriptors],
            api,
        }
    }

    /// Adds a service; health reports it serving until shutdown.
    pub fn service<S>(mut self, service: S) -> GrpcRoutes
    where
        S: tower_service::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes = self.routes.add_service(service);
        self
    }

    /// The names of the services added.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }
}

/// How an internal gRPC endpoint is protected.
#[derive(Clone)]
pub enum Security {
    /// Mutual TLS with the internal CA, and every call authorized by `policy`.
    Mtls {
        /// The server's identity and the CA clients chain to (reloaded every `reload_every`).
        tls: Arc<ServerTls>,
        /// Who may call what.
        policy: Arc<dyn Authorize>,
        /// How often the TLS files are read again.
        reload_every: Duration,
    },
    /// Plaintext, no authorization: refused unless the listener is on a
    /// loopback address (`[tls] insecure_loopback_only`).
    InsecureLoopback,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::Mtls { tls, .. } => f.debug_tuple("Mtls").field(tls).finish(),
            Security::InsecureLoopback => f.write_str("InsecureLoopback"),
        }
    }
}

enum Transport {
    Internal(Security),
    /// TLS whose clients may withhold a certificate (the 4-information
    /// service's operator port, whose service authenticates operators
    /// itself), through the same bounded acceptor as the internal ports.
    Public {
        tls: Arc<ServerTls>,
        reload_every: Duration,
        limits: AcceptLimits,
        policy: Arc<dyn Authorize>,
    },
}

struct GrpcEndpoint {
    listener: TcpListener,
    routes: GrpcRoutes,
    transport: Transport,
}

/// The metrics of the internal endpoints' security.
#[derive(Clone)]
struct InternalMetrics {
    denied: prometheus::IntCounterVec,
    handshakes_failed: prometheus::IntCounterVec,
}

impl InternalMetrics {
    fn register(metrics: &Metrics) -> Result<InternalMetrics, crate::MetricsError> {
        Ok(InternalMetrics {
            denied: metrics.register_int_counter_vec(
                "shikko_authz_denied_total",
                "gRPC calls refused by the authorization layer, by method and reason (unauthenticated, permission_denied).",
                &["method", "reason"],
            )?,
            handshakes_failed: metrics.register_int_counter_vec(
                "shikko_tls_handshakes_failed_total",
                "TLS handshakes that failed (refused: no or untrusted client certificate; timeout), and connections closed for their address's count (peer_limit), by reason.",
                &["reason"],
            )?,
        })
    }
}

/// An HTTPS endpoint of a role.
struct HttpsEndpoint {
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    tls: Arc<ServerTls>,
    reload_every: Duration,
    accept: AcceptLimits,
}

/// A role's servers, built once and served until shutdown.
pub struct RoleServer {
    role: &'static str,
    metrics: Metrics,
    metrics_listener: TcpListener,
    grpc: Vec<GrpcEndpoint>,
    http: Option<(TcpListener, axum::Router, HttpLimits)>,
    /// The HTTP endpoint served by a thread per listener instead.
    http_per_core: Option<PerCore>,
    https: Option<HttpsEndpoint>,
    on_shutdown: Vec<Hook>,
    ready: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for RoleServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleServer")
            .field("role", &self.role)
            .field("grpc", &self.grpc.len())
            .field("http", &self.http.is_some())
            .field("https", &self.https.is_some())
            .finish()
    }
}

impl RoleServer {
    /// A server for `role` with its metrics endpoint (`/metrics`, `/healthz`).
    pub fn new(role: &'static str, metrics: Metrics, metrics_listener: TcpListener) -> RoleServer {
        RoleServer {
            role,
            metrics,
            metrics_listener,
            grpc: Vec::new(),
            http: None,
            http_per_core: None,
            https: None,
            on_shutdown: Vec::new(),
            ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    /// `/readyz` answers ready while `ready` holds (and never once shutting
    /// down): a role that must not take traffic in some state (a standby
    /// registry) says so here. Default: ready until shutdown.
    pub fn readiness(mut self, ready: Arc<std::sync::atomic::AtomicBool>) -> RoleServer {
        self.ready = ready;
        self
    }

    /// An internal gRPC endpoint (between Shikko's processes, and for
    /// administrators): mutual TLS and authorization, or plaintext on
    /// loopback when asked for explicitly.
    pub fn grpc(
        mut self,
        listener: TcpListener,
        routes: GrpcRoutes,
        security: Security,
    ) -> RoleServer {
        self.grpc.push(GrpcEndpoint {
            listener,
            routes,
            transport: Transport::Internal(security),
        });
        self
    }

    /// A public gRPC endpoint over TLS as `tls` says
    /// ([`ServerTls::load_public`]: clients may withhold a certificate; the
    /// services on it authenticate their callers themselves). Handshakes
    /// and connections are bounded as `limits` says (in time, number, per
    /// peer, idle time, without a certificate), the files are read again
    /// every `reload_every` (a renewed server certificate without a
    /// restart), and `policy` refuses a call before it takes a place among
    /// its method's calls (a caller without a certificate, say).
    pub fn grpc_tls(
        mut self,
        listener: TcpListener,
        routes: GrpcRoutes,
        tls: Arc<ServerTls>,
        reload_every: Duration,
        limits: AcceptLimits,
        policy: Arc<dyn Authorize>,
    ) -> RoleServer {
        self.grpc.push(GrpcEndpoint {
            listener,
            routes,
            transport: Transport::Public {
                tls,
                reload_every,
                limits,
                policy,
            },
        });
        self
    }

    /// The HTTP endpoint.
    pub fn http(
        mut self,
        listener: TcpListener,
        app: axum::Router,
        limits: HttpLimits,
    ) -> RoleServer {
        self.http = Some((listener, app, limits));
        self
    }

    /// The HTTP endpoint on `listeners` ([`crate::bind_per_core`]: one
    /// address, SO_REUSEPORT), each served by a thread of its own with a
    /// single-threaded runtime: a connection's requests never hop between
    /// threads (no work stealing, no cross-thread wake-ups on the hot path),
    /// as one event loop per core serves a static file. The connection cap
    /// is shared out evenly; the rest of `limits` holds on every thread.
    pub fn http_per_core(
        mut self,
        listeners: Vec<std::net::TcpListener>,
        app: axum::Router,
        limits: HttpLimits,
    ) -> RoleServer {
        self.http_per_core = Some(PerCore {
            listeners,
            app,
            limits,
            fast: None,
        });
        self
    }

    /// Answers the per-core HTTP endpoint's requests that `fast` takes
    /// before its app sees them ([`crate::fast`]: pre-rendered answers
    /// written without hyper); the rest go to the app as before. No effect
    /// without [`RoleServer::http_per_core`].
    pub fn fast_path(mut self, fast: Arc<dyn crate::FastPath>) -> RoleServer {
        if let Some(p) = &mut self.http_per_core {
            p.fast = Some(fast);
        }
        self
    }

    /// The HTTPS endpoint (the same `app` as [`RoleServer::http`], for
    /// clients that authenticate with a TLS client certificate): `tls`
    /// read again every `reload_every`, connections within `accept`.
    pub fn https(
        mut self,
        listener: TcpListener,
        app: axum::Router,
        limits: HttpLimits,
        tls: Arc<ServerTls>,
        reload_every: Duration,
        accept: AcceptLimits,
    ) -> RoleServer {
        self.https = Some(HttpsEndpoint {
            listener,
            app,
            limits,
            tls,
            reload_every,
            accept,
        });
        self
    }

    /// Runs `hook` when the shutdown starts, before the drain (e.g. close
    /// long-lived streams so that draining can finish).
    pub fn on_shutdown(mut self, hook: impl Future<Output = ()> + Send + 'static) -> RoleServer {
        self.on_shutdown.push(Box::pin(hook));
        self
    }

    /// Serves until `shutdown`, then drains within `drain`. A drain that
    /// times out is logged, not an error (the process exits next).
    pub async fn serve(self, shutdown: Shutdown, drain: Duration) -> Result<(), ServeError> {
        let role = self.role;
        let mut tasks: Vec<(&'static str, JoinHandle<Result<(), ServeError>>)> = Vec::new();
        let mut health_reporters = Vec::new();
        let mut internal_metrics: Option<InternalMetrics> = None;
        let limited = self
            .metrics
            .register_int_counter_vec(
                "shikko_grpc_limited_total",
                "gRPC calls refused by their method's limits, by method and reason (concurrency, timeout, message_size).",
                &["method", "reason"],
            )
            .map_err(|source| ServeError::Metrics { role, source })?;
        for ep in self.grpc {
            let limits = LimitsLayer::new(&ep.routes.api, limited.clone());
            let addr = ep
                .listener
                .local_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string());
            let (reporter, health) = tonic_health::server::health_reporter();
            for name in &ep.routes.names {
                reporter
                    .set_service_status(*name, tonic_health::ServingStatus::Serving)
                    .await;
            }
            let mut reflection = tonic_reflection::server::Builder::configure();
            for d in &ep.routes.descriptors {
                reflection = reflection.register_encoded_file_descriptor_set(d);
            }
            reflection = reflection
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
            // Advertise what this endpoint serves, not every service of the
            // descriptor sets (one set describes every role).
            if !ep.routes.names.is_empty() {
                for name in ep
                    .routes
                    .names
                    .iter()
                    .chain(["grpc.health.v1.Health"].iter())
                {
                    reflection = reflection.with_service_name(*name);
                }
            }
            let reflection = reflection.build_v1().map_err(|e| ServeError::Io {
                role,
                what: "gRPC reflection",
                source: std::io::Error::other(e.to_string()),
            })?;
            // Reflection only where callers are authorized: the public port
            // (operators, any certificate of the operator CA, or none yet)
            // would otherwise describe every internal service to anyone.
            let routes = ep.routes.routes.add_service(health);
            let routes = if matches!(ep.transport, Transport::Public { .. }) {
                routes
            } else {
                routes.add_service(reflection)
            };
            let stop = shutdown.wait_owned();
            let task = match ep.transport {
                Transport::Public {
                    tls,
                    reload_every,
                    limits: accept,
                    policy,
                } => {
                    let metrics = internal_metrics_of(&mut internal_metrics, &self.metrics, role)?;
                    let incoming = tls_incoming(
                        ep.listener,
                        tls,
                        reload_every,
                        accept,
                        metrics.handshakes_failed.clone(),
                        &shutdown,
                    );
                    let layer = AuthzLayer::new(policy, metrics.denied.clone());
                    tokio::spawn(async move {
                        grpc_server()
                            .layer(layer)
                            .layer(limits)
                            .add_routes(routes)
                            .serve_with_incoming_shutdown(incoming, stop)
                            .await
                            .map_err(|source| ServeError::Grpc { role, addr, source })
                    })
                }
                Transport::Internal(Security::InsecureLoopback) => {
                    let local = ep.listener.local_addr().map_err(|source| ServeError::Io {
                        role,
                        what: "gRPC",
                        source,
                    })?;
                    if !local.ip().is_loopback() {
                        return Err(ServeError::Insecure { role, addr });
                    }
                    tracing::warn!(role, %addr, "internal gRPC endpoint WITHOUT TLS or authorization (insecure_loopback_only)");
                    let incoming = nodelay_incoming(ep.listener);
                    tokio::spawn(async move {
                        grpc_server()
                            .layer(limits)
                            .add_routes(routes)
                            .serve_with_incoming_shutdown(incoming, stop)
                            .await
                            .map_err(|source| ServeError::Grpc { role, addr, source })
                    })
                }
                Transport::Internal(Security::Mtls {
                    tls,
                    policy,
                    reload_every,
                }) => {
                    let metrics = internal_metrics_of(&mut internal_metrics, &self.metrics, role)?;
                    let incoming = tls_incoming(
                        ep.listener,
                        tls,
                        reload_every,
                        AcceptLimits::default(),
                        metrics.handshakes_failed.clone(),
                        &shutdown,
                    );
                    let layer = AuthzLayer::new(policy, metrics.denied);
                    tokio::spawn(async move {
                        grpc_server()
                            // A peer's certificate is checked at the handshake
                            // only: connections are renewed (GOAWAY, then closed
                            // after a grace), so that a revoked or expired
                            // identity loses a long-lived connection (a feed)
                            // within this, not never. Followers reconnect.
                            .max_connection_age(INTERNAL_CONNECTION_AGE)
                            .max_connection_age_grace(INTERNAL_CONNECTION_GRACE)
                            // Who first (a refused caller takes no place),
                            // then how much.
                            .layer(layer)
                            .layer(limits)
                            .add_routes(routes)
                            .serve_with_incoming_shutdown(incoming, stop)
                            .await
                            .map_err(|source| ServeError::Grpc { role, addr, source })
                    })
                }
            };
            tasks.push(("gRPC", task));
            health_reporters.push((reporter, ep.routes.names));
        }
        if let Some((listener, app, limits)) = self.http {
            let stop = shutdown.wait_owned();
            tasks.push(io_task(
                role,
                "HTTP",
                crate::serve_http(listener, app, limits, stop),
            ));
        }
        if let Some(PerCore {
            listeners,
            app,
            limits,
            fast,
        }) = self.http_per_core
        {
            let n = listeners.len().max(1);
            let limits = HttpLimits {
                max_connections: limits.max_connections.div_ceil(n).max(1),
                ..limits
            };
            for (i, listener) in listeners.into_iter().enumerate() {
                let stop = shutdown.wait_owned();
                let (app, fast) = (app.clone(), fast.clone());
                let thread = std::thread::Builder::new()
                    .name(format!("{role}-http-{i}"))
                    .spawn(move || -> std::io::Result<()> {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()?;
                        rt.block_on(async move {
                            let listener = TcpListener::from_std(listener)?;
                            match fast {
                                Some(f) => {
                                    crate::serve_http_fast(listener, app, f, limits, stop).await
                                }
                                None => crate::serve_http(listener, app, limits, stop).await,
                            }
                        })
                    })
                    .map_err(|source| ServeError::Io {
                        role,
                        what: "HTTP",
                        source,
                    })?;
                tasks.push(io_task(role, "HTTP", async move {
                    tokio::task::spawn_blocking(move || thread.join())
                        .await
                        .map_err(std::io::Error::other)?
                        .map_err(|_| std::io::Error::other("an HTTP thread panicked"))?
                }));
            }
        }
        if let Some(ep) = self.https {
            let metrics = internal_metrics_of(&mut internal_metrics, &self.metrics, role)?;
            let incoming = tls_incoming(
                ep.listener,
                ep.tls,
                ep.reload_every,
                ep.accept,
                metrics.handshakes_failed.clone(),
                &shutdown,
            );
            let stop = shutdown.wait_owned();
            tasks.push(io_task(
                role,
                "HTTPS",
                crate::http_server::serve_https(incoming, ep.app, ep.limits, stop),
            ));
        }
        // Metrics, liveness and readiness, through the same hardened HTTP
        // server as the public endpoints (header timeouts, connection cap).
        let ready = self.ready.clone();
        {
            let stop = shutdown.wait_owned();
            let app = crate::metrics_server::router_with_readiness(self.metrics, ready.clone());
            let listener = self.metrics_listener;
            tasks.push(io_task(
                role,
                "metrics",
                crate::serve_http(listener, app, HttpLimits::default(), stop),
            ));
        }

        shutdown.wait().await;
        ready.store(false, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            role,
            timeout_secs = drain.as_secs(),
            "shutting down: draining"
        );
        for (reporter, names) in &health_reporters {
            for name in names {
                reporter
                    .set_service_status(*name, tonic_health::ServingStatus::NotServing)
                    .await;
            }
        }
        for hook in self.on_shutdown {
            hook.await;
        }
        let drained = crate::drain_with_timeout(
            async {
                let mut results = Vec::new();
                for (what, t) in tasks {
                    results.push((what, t.await));
                }
                results
            },
            drain,
        )
        .await;
        match drained {
            Ok(results) => {
                for (_, r) in results {
                    r.map_err(|source| ServeError::Task { role, source })??;
                }
                tracing::info!(role, "drained; exiting");
            }
            Err(e) => tracing::warn!(role, error = %e, "drain timed out; exiting anyway"),
        }
        Ok(())
    }
}

/// The per-core HTTP endpoint ([`RoleServer::http_per_core`]).
struct PerCore {
    listeners: Vec<std::net::TcpListener>,
    app: axum::Router,
    limits: HttpLimits,
    fast: Option<Arc<dyn crate::FastPath>>,
}

/// The endpoints' TLS metrics, registered by the first TLS endpoint.
/// A server task of `role` named `what`, its I/O error labelled as such.
fn io_task(
    role: &'static str,
    what: &'static str,
    serve: impl Future<Output = std::io::Result<()>> + Send + 'static,
) -> (&'static str, JoinHandle<Result<(), ServeError>>) {
    (
        what,
        tokio::spawn(async move {
            serve
                .await
                .map_err(|source| ServeError::Io { role, what, source })
        }),
    )
}

fn internal_metrics_of(
    slot: &mut Option<InternalMetrics>,
    metrics: &Metrics,
    role: &'static str,
) -> Result<InternalMetrics, ServeError> {
    if let Some(m) = slot {
        return Ok(m.clone());
    }
    let m = InternalMetrics::register(metrics)
        .map_err(|source| ServeError::Metrics { role, source })?;
    *slot = Some(m.clone());
    Ok(m)
}

/// A gRPC server as every endpoint has it: HTTP/2 keepalive pings every
/// minute, a peer that does not answer one within 20 s is gone (its
/// streams end, a dead follower does not hold a feed).
fn grpc_server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
}

/// The TLS connections of `listener` through the bounded acceptor, its
/// files read again every `reload_every` until `shutdown`.
fn tls_incoming(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    reload_every: Duration,
    limits: AcceptLimits,
    failed: prometheus::IntCounterVec,
    shutdown: &Shutdown,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<crate::tls::TlsConn>> {
    crate::tls::spawn_reloader(
        tls.clone() as Arc<dyn Reload>,
        reload_every,
        shutdown.wait_owned(),
    );
    crate::tls::accept_tls(listener, tls, limits, failed, shutdown.wait_owned())
}

/// How long an internal mutual-TLS connection lives before the server asks
/// the client to reconnect (and so to show a certificate that is still
/// valid and not revoked).
pub const INTERNAL_CONNECTION_AGE: Duration = Duration::from_secs(30 * 60);

/// How long a connection past [`INTERNAL_CONNECTION_AGE`] may finish its
/// calls (a feed stream is cut then; the follower resumes where it was).
pub const INTERNAL_CONNECTION_GRACE: Duration = Duration::from_secs(60);

/// The connections of `listener` with `TCP_NODELAY` set, as tonic's own
/// listener sets it: without, a small response waits for the peer's
/// delayed ACK (tens of milliseconds per request-response exchange).
fn nodelay_incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    })
}
