//! `shikko serve info --config FILE`: the 4-information service as its own
//! process. Its store is a replica of the registry's: it follows the
//! registry's feed with the whole events and applies them with the same
//! rules (so holders, certificates and links are the registry's, sequence
//! number for sequence number), and keeps its operators, consents, billing
//! and audit log beside them. Operators call it over mutual TLS; its
//! internal endpoint serves InfoAdmin and gRPC health.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use shikko_follow::{Follower, FollowerMetrics, GrpcSource, Readiness};
use shikko_info::InfoService;
use shikko_info::replica::Replica;
use shikko_runtime::telemetry::Metrics;
use shikko_runtime::{GrpcRoutes, RoleServer, Shutdown, ShutdownConfig, TelemetryConfig};

use crate::serve::{bind, open_store};

/// `shikko serve info --config FILE`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InfoRoleConfig {
    /// The info role.
    pub(crate) info: InfoRoleSection,
    /// Logs and metrics.
    #[serde(default)]
    pub(crate) telemetry: TelemetryConfig,
    /// Draining on SIGTERM.
    #[serde(default)]
    pub(crate) shutdown: ShutdownConfig,
}

/// `[info]` of `serve info`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InfoRoleSection {
    /// Its own data directory (the replica store, consents, audit log). Required.
    pub(crate) data_dir: PathBuf,
    /// The registry it follows. Default `http://127.0.0.1:50051`.
    #[serde(default = "crate::config::default_registry_endpoint")]
    pub(crate) registry: String,
    /// gRPC over mutual TLS for operators. Default `127.0.0.1:50054` (the
    /// roles' defaults do not collide on one host; the demo uses 50052).
    #[serde(default = "default_listen")]
    pub(crate) listen: SocketAddr,
    /// Internal gRPC (InfoAdmin, health). Default `127.0.0.1:50055`.
    #[serde(default = "default_admin")]
    pub(crate) admin_listen: SocketAddr,
    /// The server's certificate (PEM). Required.
    pub(crate) tls_cert: PathBuf,
    /// The server's private key (PEM, PKCS#8). Required.
    pub(crate) tls_key: PathBuf,
    /// The operator CA (PEM). Required.
    pub(crate) client_ca: PathBuf,
    /// Card signing CA certificates (PEM). Required.
    pub(crate) signing_cas: Vec<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50054))
}

fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50055))
}

/// Runs the info role until SIGTERM.
pub(crate) async fn serve(cfg: InfoRoleConfig) -> Result<()> {
    let store = open_store(&cfg.info.data_dir)?;
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"))?;
    let signing = crate::info_role::read_signing_cas(&cfg.info.signing_cas)?;
    // Not ready until the replica has caught up with the registry, nor while
    // the registry is out of reach.
    let readiness = Readiness::new();
    let svc = Arc::new(
        InfoService::new(
            store.clone(),
            &signing,
            shikko_info::InfoMetrics::new(metrics.registry())?,
        )?
        .with_readiness(readiness.clone()),
    );
    let replica = Replica::new(store.clone());
    let follower = Follower::new(
        GrpcSource::new(cfg.info.registry.clone()),
        replica.binding()?,
        readiness,
        FollowerMetrics::new(metrics.registry(), "info")?,
    );
    let tls = crate::info_role::tls_from_files(
        &cfg.info.tls_cert,
        &cfg.info.tls_key,
        &cfg.info.client_ca,
    )?;
    let listener = bind(cfg.info.listen, "the 4-information service").await?;
    let admin = bind(cfg.info.admin_listen, "the info role's internal gRPC").await?;
    let metrics_listener = bind(cfg.telemetry.metrics_addr, "metrics").await?;
    println!(
        "info listening info={} grpc={} metrics={}",
        listener.local_addr()?,
        admin.local_addr()?,
        metrics_listener.local_addr()?
    );
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signal();
    tokio::spawn(follower.run_replica(Arc::new(replica), shutdown.wait_owned()));
    let operators = GrpcRoutes::new(shikko_proto::FILE_DESCRIPTOR_SET)
        .service(shikko_info::grpc::InfoGrpc::new(svc.clone()).into_server());
    let internal = GrpcRoutes::new(shikko_proto::FILE_DESCRIPTOR_SET)
        .service(shikko_info::admin::InfoAdminGrpc::new(svc).into_server());
    Ok(RoleServer::new("info", metrics, metrics_listener)
        .grpc_tls(listener, operators, tls)
        .grpc(admin, internal)
        .serve(shutdown, cfg.shutdown.drain_timeout())
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_in_deploy_parses() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/info.toml"
        ));
        let cfg: InfoRoleConfig = shikko_runtime::load_toml(path).unwrap();
        assert_eq!(cfg.info.listen, default_listen());
        assert_eq!(cfg.info.admin_listen, default_admin());
        assert_eq!(
            cfg.info.registry,
            crate::config::default_registry_endpoint()
        );
        assert_eq!(cfg.info.signing_cas.len(), 1);
    }
}
