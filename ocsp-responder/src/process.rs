//! The ocsp role's process: built from a data directory's CA and responder
//! material, run in the demo's process ([`role_from_dir`]) or as its own
//! (`shikko serve ocsp --config FILE`: [`OcspRoleConfig`], [`serve`]), where it
//! follows the registry's change feed over gRPC into its index.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shikko_follow::{Binding, Follower, FollowerMetrics, GrpcSource, Readiness};
use shikko_runtime::{
    Context, GrpcRoutes, RoleConfig, RoleResult, RoleServer, Shutdown, ShutdownConfig,
    TelemetryConfig, bind,
};

use crate::grpc::OcspService;
use crate::index::StatusIndex;
use crate::responder::{Responder, ResponderKey};
use crate::role::OcspRole;

/// The ocsp role over the four CAs of `data_dir` (their certificates only:
/// the role never holds a CA key) and their delegated responders
/// (`keys/ISSUER-ocsp.key`, `certs/ISSUER-ocsp.der`), loaded only.
pub fn role_from_dir(
    data_dir: &Path,
    validity: Duration,
    metrics: &shikko_runtime::prometheus::Registry,
    readiness: Arc<Readiness>,
) -> RoleResult<Arc<OcspRole>> {
    let index = Arc::new(StatusIndex::new());
    let mut issuers = Vec::new();
    let dir = shikko_pki::DataDir::new(data_dir);
    let cas = dir.issuing_ca_certs().with_context(|| {
        format!(
            "loading the issuing CAs' certificates of {}",
            data_dir.display()
        )
    })?;
    for (kind, ca_der) in cas {
        let (key, cert) = dir.ocsp_responder(kind).with_context(|| {
            format!(
                "loading the {} delegated OCSP responder of {}",
                kind.issuer_id(),
                data_dir.display()
            )
        })?;
        issuers.push((
            kind,
            ca_der,
            ResponderKey::new(Arc::new(key), &cert)
                .with_context(|| format!("the {} responder certificate", kind.issuer_id()))?,
        ));
    }
    let responder =
        Arc::new(Responder::new(issuers, index.clone(), validity).context("the OCSP responder")?);
    OcspRole::new(index, responder, metrics, readiness).context("the OCSP metrics")
}

/// `shikko serve ocsp --config FILE`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OcspRoleConfig {
    /// The ocsp role.
    pub ocsp: OcspSection,
    /// Logs and metrics.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Draining on SIGTERM.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Limits against slow and idle HTTP clients.
    #[serde(default)]
    pub http: shikko_runtime::HttpConfig,
    /// The role's internal identity: mutual TLS on its gRPC port and to the registry.
    #[serde(default)]
    pub tls: shikko_runtime::TlsConfig,
}

/// `[ocsp]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OcspSection {
    /// Data directory: the CA certificates (`certs/ISSUER-ca.der`) and the
    /// delegated responders' keys (`keys/ISSUER-ocsp.key`) and certificates
    /// (`certs/ISSUER-ocsp.der`). Required.
    pub data_dir: PathBuf,
    /// The registry's gRPC endpoint. Several,
    /// comma-separated (a primary and its standby), are tried in turn.
    /// Default `http://127.0.0.1:50051`.
    #[serde(default = "shikko_follow::default_registry_endpoint")]
    pub registry: String,
    /// HTTP listen address (`/ocsp`). Default `127.0.0.1:8081`.
    #[serde(default = "default_http")]
    pub http_listen: SocketAddr,
    /// Threads serving `http_listen`, each with a listener of its own on
    /// the address (SO_REUSEPORT) and a single-threaded runtime: a
    /// connection stays on one thread, as in an event loop per core.
    /// Default: the number of cores (0 means that too).
    #[serde(default)]
    pub http_threads: usize,
    /// Whether `http_listen` answers cached GETs and POSTs over HTTP/1.1
    /// on its fast path (a response rendered when the answer was signed,
    /// written without hyper: about the cost of a static file). Everything
    /// else, and everything when false, goes through the full HTTP server.
    /// Default true.
    #[serde(default = "default_true")]
    pub fast_path: bool,
    /// gRPC listen address (`shikko.v1.OcspResponder`, health). Default `127.0.0.1:50053`.
    #[serde(default = "default_grpc")]
    pub grpc_listen: SocketAddr,
    /// nextUpdate - thisUpdate of answers; cached answers are re-signed after
    /// half of it. Default 3,600.
    #[serde(default = "default_validity")]
    pub validity_secs: u64,
    /// Answers signed at once (cache misses and nonces, over HTTP and gRPC together) before shedding: HTTP 503, gRPC RESOURCE_EXHAUSTED. Default 64.
    #[serde(default = "default_max_signing")]
    pub max_signing: usize,
    /// The stale-but-valid window: how long answers keep coming from the
    /// index once the registry is out of reach; beyond it, tryLater.
    /// Default 900 (J-LIS refreshes its OCSP data every 15 minutes).
    #[serde(default = "default_max_stale")]
    pub max_stale_secs: u64,
    /// Seconds between re-reads of the responder key and certificate files
    /// (`keys/ISSUER-ocsp.key`, `certs/ISSUER-ocsp.der`): a renewed pair,
    /// once checked, signs from then on without a restart. Default 60.
    #[serde(default = "default_responder_reload")]
    pub responder_reload_secs: u64,
    /// Who may ask (`public` or `restricted` to registered verifiers), and
    /// where their tokens come from and their usage goes.
    #[serde(default)]
    pub access: shikko_access::verifiers::AccessConfig,
    /// `/ocsp` over TLS as well, for verifiers with a client certificate
    /// (or a bearer token over TLS). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<shikko_access::verifiers::HttpsConfig>,
}

fn default_responder_reload() -> u64 {
    60
}

fn default_true() -> bool {
    true
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
    crate::role::DEFAULT_MAX_SIGNING
}

fn default_max_stale() -> u64 {
    900
}

impl OcspSection {
    /// Refuses values out of range; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(60..=7 * 86_400).contains(&self.validity_secs) {
            return Err("[ocsp] validity_secs must be 60 to 604800 seconds".into());
        }
        if !(1..=100_000).contains(&self.max_signing) {
            return Err("[ocsp] max_signing must be 1 to 100000".into());
        }
        if self.max_stale_secs > 7 * 86_400 {
            return Err("[ocsp] max_stale_secs must be at most 604800 seconds".into());
        }
        if !(1..=86_400).contains(&self.responder_reload_secs) {
            return Err("[ocsp] responder_reload_secs must be 1 to 86400 seconds".into());
        }
        if let Some(h) = &self.https {
            h.validate("ocsp.https")?;
        }
        self.access.validate("ocsp.access")
    }
}

impl RoleConfig for OcspRoleConfig {
    fn validate(&self) -> Result<(), String> {
        self.ocsp.validate()?;
        self.tls.validate(&[self.ocsp.grpc_listen])?;
        self.tls.validate_client(&self.ocsp.registry)?;
        if let Some(info) = &self.ocsp.access.info {
            self.tls.validate_client(info)?;
        }
        self.http.limits().map(|_| ())
    }

    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

/// Runs the ocsp role until `shutdown`, then drains.
pub async fn serve(cfg: OcspRoleConfig, shutdown: Shutdown) -> RoleResult<()> {
    let c = &cfg.ocsp;
    let cfg_http = shikko_runtime::http_limits(&cfg.http)?;
    let metrics = shikko_runtime::process_metrics()?;
    let readiness = Readiness::new();
    let role = role_from_dir(
        &c.data_dir,
        Duration::from_secs(c.validity_secs),
        metrics.registry(),
        readiness.clone(),
    )?;
    // Renewed responder certificates are rotated in without a restart.
    let cas = shikko_pki::DataDir::new(&c.data_dir)
        .issuing_ca_certs()
        .context("the issuing CAs' certificates")?;
    let rotation = crate::rotation::Rotation::new(
        role.responder().clone(),
        &c.data_dir,
        &cas,
        metrics.registry(),
    )
    .map_err(|e| shikko_runtime::RoleError::new("OCSP responder rotation", e))?;
    tokio::spawn(rotation.run(
        Duration::from_secs(c.responder_reload_secs),
        shutdown.wait_owned(),
    ));
    let security = shikko_access::server_security(&cfg.tls).context("[tls]")?;
    let to_registry = shikko_access::registry_client(&cfg.tls, &shutdown).context("[tls]")?;
    let follower = Follower::new(
        GrpcSource::new(c.registry.clone()).with_tls(to_registry),
        // The index lives in memory: bound anew at each start.
        Binding::in_memory(),
        readiness,
        FollowerMetrics::new(metrics.registry(), "ocsp").context("follower metrics")?,
    );
    role.set_max_stale(Duration::from_secs(c.max_stale_secs));
    let threads = match c.http_threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    };
    let http = shikko_runtime::bind_per_core(c.http_listen, "HTTP", threads)?;
    let grpc = bind(c.grpc_listen, "gRPC").await?;
    let metrics_listener = bind(cfg.telemetry.metrics_listen, "metrics").await?;
    let https = shikko_access::verifiers::HttpsConfig::bind(c.https.as_ref()).await?;
    // Tests and scripts read this line to learn the bound ports.
    let addr =
        |l: Result<SocketAddr, std::io::Error>| l.map_or_else(|_| "?".into(), |a| a.to_string());
    let mut listening = vec![
        ("http", addr(http[0].local_addr())),
        ("grpc", addr(grpc.local_addr())),
        ("metrics", addr(metrics_listener.local_addr())),
    ];
    if let Some(h) = &https {
        listening.push(("https", addr(h.listener.local_addr())));
    }
    shikko_runtime::announce_addrs("ocsp", &listening);
    tokio::spawn(follower.run_status(role.clone(), shutdown.wait_owned()));
    let (gate, metering) = shikko_access::verifiers::start(
        shikko_access::verifiers::Endpoint::Ocsp,
        &c.access,
        &cfg.tls,
    );
    let app = crate::http::router_gated(role.clone(), c.max_signing, gate.clone());
    let fast = crate::http::FastOcsp::new(role.clone(), gate);
    let routes =
        GrpcRoutes::new(shikko_access::api()).service(OcspService::new(role).into_service());
    let mut server = RoleServer::new("ocsp", metrics, metrics_listener)
        .grpc(grpc, routes, security)
        .http_per_core(http, app.clone(), cfg_http);
    if c.fast_path {
        server = server.fast_path(fast);
    }
    if let Some(h) = https {
        server = h.attach(server, app, cfg_http);
    }
    let served = server
        .serve(shutdown, cfg.shutdown.drain_timeout())
        .await
        .context("serving");
    shikko_access::verifiers::last_report(metering).await;
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_in_deploy_parses() {
        let path =
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/ocsp.toml"));
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
