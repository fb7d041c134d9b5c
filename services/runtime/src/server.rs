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
//! #     descriptors: &'static [u8],
//! # ) -> Result<(), shikko_runtime::server::ServeError> {
//! use shikko_runtime::server::{GrpcRoutes, RoleServer};
//! let shutdown = shikko_runtime::Shutdown::new();
//! RoleServer::new("example", metrics, metrics_listener)
//!     .grpc(grpc, GrpcRoutes::new(descriptors))
//!     .serve(shutdown, std::time::Duration::from_secs(10))
//!     .await
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::ServerTlsConfig;

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
}

impl std::fmt::Debug for GrpcRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcRoutes")
            .field("services", &self.names)
            .finish()
    }
}

impl GrpcRoutes {
    /// No services yet; `descriptors` is an encoded `FileDescriptorSet` of
    /// the services to be added (for reflection).
    pub fn new(descriptors: &'static [u8]) -> GrpcRoutes {
        GrpcRoutes {
            routes: Routes::default(),
            names: Vec::new(),
            descriptors: vec![descriptors],
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

struct GrpcEndpoint {
    listener: TcpListener,
    routes: GrpcRoutes,
    tls: Option<ServerTlsConfig>,
}

/// A role's servers, built once and served until shutdown.
pub struct RoleServer {
    role: &'static str,
    metrics: Metrics,
    metrics_listener: TcpListener,
    grpc: Vec<GrpcEndpoint>,
    http: Option<(TcpListener, axum::Router, HttpLimits)>,
    on_shutdown: Vec<Hook>,
}

impl std::fmt::Debug for RoleServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleServer")
            .field("role", &self.role)
            .field("grpc", &self.grpc.len())
            .field("http", &self.http.is_some())
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
            on_shutdown: Vec::new(),
        }
    }

    /// A plaintext gRPC endpoint.
    pub fn grpc(mut self, listener: TcpListener, routes: GrpcRoutes) -> RoleServer {
        self.grpc.push(GrpcEndpoint {
            listener,
            routes,
            tls: None,
        });
        self
    }

    /// A gRPC endpoint over TLS (mutual, when `tls` asks for client certificates).
    pub fn grpc_tls(
        mut self,
        listener: TcpListener,
        routes: GrpcRoutes,
        tls: ServerTlsConfig,
    ) -> RoleServer {
        self.grpc.push(GrpcEndpoint {
            listener,
            routes,
            tls: Some(tls),
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
        for ep in self.grpc {
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
            let routes = ep.routes.routes.add_service(health).add_service(reflection);
            let mut builder = tonic::transport::Server::builder();
            if let Some(tls) = ep.tls {
                builder = builder.tls_config(tls).map_err(|source| ServeError::Tls {
                    role,
                    addr: addr.clone(),
                    source,
                })?;
            }
            let stop = shutdown.wait_owned();
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(ep.listener);
            tasks.push((
                "gRPC",
                tokio::spawn(async move {
                    builder
                        .add_routes(routes)
                        .serve_with_incoming_shutdown(incoming, stop)
                        .await
                        .map_err(|source| ServeError::Grpc { role, addr, source })
                }),
            ));
            health_reporters.push((reporter, ep.routes.names));
        }
        if let Some((listener, app, limits)) = self.http {
            let stop = shutdown.wait_owned();
            tasks.push((
                "HTTP",
                tokio::spawn(async move {
                    crate::serve_http(listener, app, limits, stop)
                        .await
                        .map_err(|source| ServeError::Io {
                            role,
                            what: "HTTP",
                            source,
                        })
                }),
            ));
        }
        {
            let stop = shutdown.wait_owned();
            let (listener, metrics) = (self.metrics_listener, self.metrics);
            tasks.push((
                "metrics",
                tokio::spawn(async move {
                    crate::serve_metrics(listener, metrics, stop)
                        .await
                        .map_err(|source| ServeError::Io {
                            role,
                            what: "metrics",
                            source,
                        })
                }),
            ));
        }

        shutdown.wait().await;
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
