//! The registry role's process: its `[registry]` section, and
//! [`RegistryProcess`], which opens the store, binds the ports and serves
//! through `shikko_runtime::RoleServer` like every role. A service that runs
//! in the registry's process (the 4-information service of `shikko serve
//! registry` with an `[info]` section) adds its routes and endpoints before
//! [`RegistryProcess::serve`]; this crate knows nothing of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shikko_runtime::{
    Context, GrpcRoutes, RoleResult, RoleServer, Security, Shutdown, TelemetryConfig, TlsConfig,
    bind,
};
use shikko_store::RegistryStore;
use tokio::net::TcpListener;

use crate::Registry;

/// `[registry]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// Data directory; the RocksDB store lives in `DATA_DIR/db`. Required.
    pub data_dir: PathBuf,
    /// gRPC listen address. Default `127.0.0.1:50051`. (`listen`, its
    /// former name, is still read.)
    #[serde(default = "default_grpc", alias = "listen")]
    pub grpc_listen: SocketAddr,
    /// The store's block cache in MiB (16 to 65,536): the index and filter
    /// blocks of every lookup, and hot data. Default 256; at national scale
    /// (hundreds of millions of certificates) give it a few GiB
    /// (docs/BENCHMARKS.md, national scale).
    #[serde(default = "default_cache_mib")]
    pub block_cache_mib: u64,
    /// What the registry keeps of its history, and for how long.
    #[serde(default)]
    pub retention: crate::retention::Retention,
    /// A standby registry that holds every acknowledged event (docs/OPERATOR.md, failover).
    #[serde(default)]
    pub pair: crate::pair::PairSection,
}

fn default_cache_mib() -> u64 {
    (shikko_store::DEFAULT_CACHE_BYTES >> 20) as u64
}

impl RegistrySection {
    /// Checks the bounds of the section and its subsections.
    pub fn validate(&self) -> Result<(), String> {
        if !(16..=65_536).contains(&self.block_cache_mib) {
            return Err("block_cache_mib must be 16 to 65536".into());
        }
        self.retention
            .validate()
            .map_err(|e| format!("[registry.retention] {e}"))?;
        self.pair
            .validate()
            .map_err(|e| format!("[registry.pair] {e}"))
    }
}

/// Where the registry listens by default (where the followers look for it).
pub fn default_grpc() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}

/// The registry's process, its store open and its ports bound, not yet serving.
pub struct RegistryProcess {
    store: RegistryStore,
    retention: crate::retention::Retention,
    /// On a standby: its primary's endpoint.
    standby_of: Option<String>,
    tls: TlsConfig,
    registry: Arc<Registry>,
    metrics: shikko_runtime::Metrics,
    grpc: TcpListener,
    metrics_listener: TcpListener,
    routes: GrpcRoutes,
    security: Security,
}

impl std::fmt::Debug for RegistryProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryProcess")
            .field("store", &self.store)
            .field("routes", &self.routes)
            .finish()
    }
}

impl RegistryProcess {
    /// Opens the store of `section.data_dir` and binds the gRPC and metrics ports.
    pub async fn bind(
        section: &RegistrySection,
        telemetry: &TelemetryConfig,
        tls: &TlsConfig,
    ) -> RoleResult<RegistryProcess> {
        section
            .validate()
            .map_err(|e| shikko_runtime::RoleError::new("[registry]", e))?;
        let security = shikko_access::server_security(tls).context("[tls]")?;
        let cache = usize::try_from(section.block_cache_mib << 20).unwrap_or(usize::MAX);
        let store = RegistryStore::open_data_dir_with_cache(&section.data_dir, cache)
            .with_context(|| format!("opening the store of {}", section.data_dir.display()))?;
        let role = store.replication_role().context("the store's role")?;
        match (&section.pair.standby_of, role) {
            (Some(_), shikko_store::Role::Primary) => store.make_standby().map_err(|e| {
                shikko_runtime::RoleError::new("[registry.pair] standby_of", e.to_string())
            })?,
            (None, shikko_store::Role::Standby | shikko_store::Role::Seeding) => {
                return Err(shikko_runtime::RoleError::new(
                    "[registry.pair] standby_of",
                    "this data directory is a standby's: name its primary in standby_of (a standby is promoted while it runs: shikko admin promote)",
                ));
            }
            _ => {}
        }
        let metrics = shikko_runtime::process_metrics()?;
        let registry = Arc::new(
            Registry::in_pair(store.clone(), metrics.registry(), &section.pair)
                .context("registry metrics")?,
        );
        let grpc = bind(section.grpc_listen, "gRPC").await?;
        let metrics_listener = bind(telemetry.metrics_listen, "metrics").await?;
        let routes = GrpcRoutes::new(shikko_access::api()).service(registry.clone().into_service());
        Ok(RegistryProcess {
            store,
            retention: section.retention,
            standby_of: section.pair.standby_of.clone(),
            tls: tls.clone(),
            registry,
            metrics,
            grpc,
            metrics_listener,
            routes,
            security,
        })
    }

    /// The registry's store.
    pub fn store(&self) -> &RegistryStore {
        &self.store
    }

    /// The process's metrics registry.
    pub fn metrics(&self) -> &shikko_runtime::prometheus::Registry {
        self.metrics.registry()
    }

    /// Adds services to the registry's own gRPC port.
    pub fn with_routes(mut self, add: impl FnOnce(GrpcRoutes) -> GrpcRoutes) -> RegistryProcess {
        self.routes = add(self.routes);
        self
    }

    /// Announces the bound ports (`registry listening grpc=... metrics=...`
    /// and the `beside` endpoints), serves until `shutdown`, then drains
    /// within `drain`. `add` puts the endpoints of a co-located service on
    /// the same server.
    pub async fn serve(
        self,
        shutdown: Shutdown,
        drain: Duration,
        beside: &[(&str, SocketAddr)],
        add: impl FnOnce(RoleServer) -> RoleServer,
    ) -> RoleResult<()> {
        tracing::info!(
            grpc = %self.grpc.local_addr().context("gRPC address")?,
            last_seq = self.store.last_seq(),
            standby_of = self.standby_of.as_deref().unwrap_or("-"),
            "registry serving"
        );
        if let Some(primary) = self.standby_of.clone() {
            let client = shikko_access::registry_client(&self.tls, &shutdown)
                .context("[tls] as the standby's identity")?;
            tokio::spawn(self.registry.clone().follow_primary(
                primary,
                client,
                shutdown.wait_owned(),
            ));
        }
        let addr = |l: &TcpListener| {
            l.local_addr()
                .map_or_else(|_| "?".to_string(), |a| a.to_string())
        };
        let mut ports = vec![
            ("grpc", addr(&self.grpc)),
            ("metrics", addr(&self.metrics_listener)),
        ];
        ports.extend(beside.iter().map(|(name, a)| (*name, a.to_string())));
        shikko_runtime::announce_addrs("registry", &ports);
        // An image of the status index ready before the first responder asks.
        self.registry
            .images
            .refresh_in_background(self.store.shared());
        let prune_metrics = crate::retention::PruneMetrics::register(self.metrics.registry())
            .context("retention metrics")?;
        tokio::spawn(crate::retention::run(
            self.store.clone(),
            self.retention,
            prune_metrics,
            shutdown.wait_owned(),
        ));
        let closer = self.registry.clone();
        let server = RoleServer::new("registry", self.metrics, self.metrics_listener)
            // Ready for traffic (the Service's endpoints): the primary only.
            .readiness(self.registry.pair.ready.clone())
            .grpc(self.grpc, self.routes, self.security)
            // Feed streams never end by themselves: close them so draining can finish.
            .on_shutdown(async move { closer.close_streams() });
        add(server).serve(shutdown, drain).await.context("serving")
    }
}
