//! The ocsp role: built from a data directory's CA and responder material,
//! run in the demo's process or as its own (`shikko serve ocsp --config FILE`),
//! where it follows the registry's change feed over gRPC into its index.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use shikko_ocsp::grpc::OcspService;
use shikko_ocsp::index::StatusIndex;
use shikko_ocsp::responder::{Responder, ResponderKey};
use shikko_ocsp::role::OcspRole;
use shikko_pki::SoftwareSigner;
use shikko_proto::v1 as pb;
use shikko_runtime::{Shutdown, ShutdownConfig, TelemetryConfig};
use shikko_store::ChangeRecord;

use crate::follow::{Sink, follow};

/// The ocsp role over the four CAs of `data_dir` and their delegated
/// responders (`keys/ISSUER-ocsp.key`, `certs/ISSUER-ocsp.der`), loaded only.
pub(crate) fn role_from_dir(
    data_dir: &Path,
    validity: Duration,
    metrics: &shikko_runtime::prometheus::Registry,
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
    Ok(OcspRole::new(index, responder, metrics)?)
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

/// The ocsp role's side of the feed: its index, bound to one registry history.
struct IndexSink {
    role: Arc<OcspRole>,
    source: Mutex<Option<String>>,
}

impl Sink for IndexSink {
    fn position(&self) -> u64 {
        self.role.index().seq()
    }

    fn apply(&self, records: Vec<ChangeRecord>, source_id: &str, head: u64) -> Result<u64> {
        {
            let mut source = self.source.lock().unwrap_or_else(|p| p.into_inner());
            match source.as_deref() {
                Some(s) if s != source_id => bail!(
                    "the registry's store changed identity ({s} -> {source_id}): restart this responder to follow the new history"
                ),
                Some(_) => {}
                None => *source = Some(source_id.to_string()),
            }
        }
        self.role.apply(&records, head);
        Ok(self.role.index().seq())
    }

    fn set_current(&self, current: bool) {
        if current {
            self.role.reached_registry();
            self.role.set_ready();
        } else {
            // Answers keep coming from the index for the stale-but-valid
            // window (each valid until its nextUpdate), then tryLater; the
            // lag is unknown while the registry is away.
            self.role.lost_registry(shikko_core::UnixTime::now());
            self.role.metrics().feed_lag.set(-1);
        }
    }
}

/// Runs the ocsp role until SIGTERM / Ctrl-C.
pub(crate) async fn serve(cfg: OcspRoleConfig) -> Result<()> {
    let c = &cfg.ocsp;
    let cfg_http = cfg.http.limits().map_err(anyhow::Error::msg)?;
    let metrics = shikko_runtime::telemetry::Metrics::new(env!("CARGO_PKG_VERSION"))?;
    let role = role_from_dir(
        &c.data_dir,
        Duration::from_secs(c.validity_secs),
        metrics.registry(),
    )?;
    role.hold_until_ready();
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
    tokio::spawn(follow(
        Arc::new(IndexSink {
            role: role.clone(),
            source: Mutex::new(None),
        }),
        c.registry.clone(),
        shutdown.clone(),
    ));
    let app = shikko_ocsp::http::router(role.clone(), c.max_signing);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::ocsp_responder_server::OcspResponderServer<OcspService>>()
        .await;
    let routes = tonic::service::Routes::new(health_service)
        .add_service(OcspService::new(role).into_service());
    crate::serve::run_role(
        grpc,
        routes,
        Some((http, app, cfg_http)),
        metrics_listener,
        metrics,
        shutdown,
        cfg.shutdown.drain_timeout(),
    )
    .await
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
