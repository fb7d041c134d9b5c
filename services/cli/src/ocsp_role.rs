//! The ocsp role: built from a data directory's CA and responder material,
//! run in the demo's process or as its own (`shikko serve ocsp --config FILE`),
//! where it follows the registry's change feed over gRPC into its index.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use shikko_follow::{Binding, Follower, FollowerMetrics, GrpcSource, Readiness};
use shikko_ocsp::grpc::OcspService;
use shikko_ocsp::index::StatusIndex;
use shikko_ocsp::responder::{Responder, ResponderKey};
use shikko_ocsp::role::OcspRole;
use shikko_pki::SoftwareSigner;
use shikko_runtime::{GrpcRoutes, RoleServer, Shutdown, ShutdownConfig, TelemetryConfig};

/// The ocsp role over the four CAs of `data_dir` and their delegated
/// responders (`keys/ISSUER-ocsp.key`, `certs/ISSUER-ocsp.der`), loaded only.
pub(crate) fn role_from_dir(
    data_dir: &Path,
    validity: Duration,
    metrics: &shikko_runtime::prometheus::Registry,
    readiness: Arc<Readiness>,
) -> Result<Arc<OcspRole>> {
    let index = Arc::new(StatusIndex::new());
    let mut issuers = Vec::new();
    for ca in crate::authority::load_cas(data_dir)? {
        let id = ca.kind.issuer_id();
        let key_path = data_dir.join("keys").join(format!("{id}-ocsp.key"));
        let cert_path = data_dir.join("certs").join(format!("{id}-ocsp.der"));
        let key = SoftwareSigner::load(&key_path)
            .with_context(|| format!("loading the {id} responder key {}", key_path.display()))?;
        let cert = std::fs::read(&cert_path).with_context(|| {
            format!(
                "reading the {id} responder certificate {}",
                cert_path.display()
            )
        })?;
        issuers.push((
            ca.kind,
            ca.cert_der,
            ResponderKey::new(Arc::new(key), &cert)?,
        ));
    }
    let responder = Arc::new(Responder::new(issuers, index.clone(), validity)?);
    Ok(OcspRole::new(index, responder, metrics, readiness)?)
}

/// `shikko serve ocsp --config FILE`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OcspRoleConfig {
    /// The ocsp role.
    pub(crate) ocsp: OcspSection,
    /// Logs and metrics.
    #[serde(default)]
    pub(crate) telemetry: TelemetryConfig,
    /// Draining on SIGTERM.
    #[serde(default)]
    pub(crate) shutdown: ShutdownConfig,
    /// Limits against slow and idle HTTP clients.
    #[serde(default)]
    pub(crate) http: shikko_runtime::HttpConfig,
}

/// `[ocsp]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OcspSection {
    /// Data directory: the CA certificates (`certs/ISSUER-ca.der`) and the
    /// delegated responders' keys (`keys/ISSUER-ocsp.key`) and certificates
    /// (`certs/ISSUER-ocsp.der`). Required.
    pub(crate) data_dir: PathBuf,
    /// The registry's gRPC endpoint. Default `http://127.0.0.1:50051`.
    #[serde(default = "crate::config::default_registry_endpoint")]
    pub(crate) registry: String,
    /// HTTP listen address (`/ocsp`). Default `127.0.0.1:8081`.
    #[serde(default = "default_http")]
    pub(crate) http_listen: SocketAddr,
    /// gRPC listen address (`shikko.v1.OcspResponder`, health). Default `127.0.0.1:50053`.
    #[serde(default = "default_grpc")]
    pub(crate) grpc_listen: SocketAddr,
    /// nextUpdate - thisUpdate of answers; cached answers are re-signed after
    /// half of it. Default 3,600.
    #[serde(default = "default_validity")]
    pub(crate) validity_secs: u64,
    /// Answers signed per request (nonce) at once before shedding with 503. Default 64.
    #[serde(default = "default_max_signing")]
    pub(crate) max_signing: usize,
    /// The stale-but-valid window: how long answers keep coming from the
    /// index once the registry is out of reach; beyond it, tryLater.
    /// Default 900 (J-LIS refreshes its OCSP data every 15 minutes).
    #[serde(default = "default_max_stale")]
    pub(crate) max_stale_secs: u64,
}

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}
fn default_grpc() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50053))
}
fn default_validity() -> u64 {
    3_600
}
fn default_max_signing() -> usize {
    64
}

fn default_max_stale() -> u64 {
    900
}

impl OcspSection {
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        if !(60..=7 * 86_400).contains(&self.validity_secs) {
            return Err("[ocsp] validity_secs must be 60 to 604800 seconds".into());
        }
        if !(1..=100_000).contains(&self.max_signing) {
            return Err("[ocsp] max_signing must be 1 to 100000".into());
        }
        if self.max_stale_secs > 7 * 86_400 {
            return Err("[ocsp] max_stale_secs must be at most 604800 seconds".into());
        }
        Ok(())
    }
}

/// Runs the ocsp role until SIGTERM / Ctrl-C.
pub(crate) async fn serve(cfg: OcspRoleConfig) -> Result<()> {
    let c = &cfg.ocsp;
    let cfg_http = cfg.http.limits().map_err(anyhow::Error::msg)?;
    let metrics = shikko_runtime::telemetry::Metrics::new(env!("CARGO_PKG_VERSION"))?;
    let readiness = Readiness::new();
    let role = role_from_dir(
        &c.data_dir,
        Duration::from_secs(c.validity_secs),
        metrics.registry(),
        readiness.clone(),
    )?;
    let follower = Follower::new(
        GrpcSource::new(c.registry.clone()),
        // The index lives in memory: bound anew at each start.
        Binding::in_memory(),
        readiness,
        FollowerMetrics::new(metrics.registry(), "ocsp")?,
    );
    role.set_max_stale(Duration::from_secs(c.max_stale_secs));
    let http = crate::serve::bind(c.http_listen, "HTTP").await?;
    let grpc = crate::serve::bind(c.grpc_listen, "gRPC").await?;
    let metrics_listener = crate::serve::bind(cfg.telemetry.metrics_addr, "metrics").await?;
    // Tests and scripts read this line to learn the bound ports.
    println!(
        "ocsp listening http={} grpc={} metrics={}",
        http.local_addr()?,
        grpc.local_addr()?,
        metrics_listener.local_addr()?
    );
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signal();
    tokio::spawn(follower.run_status(role.clone(), shutdown.wait_owned()));
    let app = shikko_ocsp::http::router(role.clone(), c.max_signing);
    let routes = GrpcRoutes::new(shikko_proto::FILE_DESCRIPTOR_SET)
        .service(OcspService::new(role).into_service());
    Ok(RoleServer::new("ocsp", metrics, metrics_listener)
        .grpc(grpc, routes)
        .http(http, app, cfg_http)
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
            "/../../deploy/ocsp.toml"
        ));
        let cfg: OcspRoleConfig = shikko_runtime::load_toml(path).unwrap();
        cfg.ocsp.validate().unwrap();
        assert_eq!(cfg.ocsp.http_listen, default_http());
        assert_eq!(cfg.ocsp.validity_secs, 3_600);
        let bad = OcspSection {
            validity_secs: 1,
            ..cfg.ocsp.clone()
        };
        assert!(bad.validate().unwrap_err().contains("validity_secs"));
    }
}
