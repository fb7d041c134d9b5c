//! The crl role's process (`shikko serve crl --config FILE`: [`CrlRoleConfig`],
//! [`serve`]). It follows the registry's change feed into a local mirror
//! store (`DATA_DIR/crl-mirror`), builds and publishes CRLs from it on a
//! schedule (`DATA_DIR/crl`), and serves them over HTTP and gRPC. The
//! builder over a data directory's CAs ([`builder`]) is shared with the demo
//! and `shikko crl build`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shikko_follow::{Follower, FollowerMetrics, GrpcSource, Readiness};
use shikko_pki::{DataDir, IssuingCa, Signer};
use shikko_runtime::{
    Context, GrpcRoutes, RoleConfig, RoleResult, RoleServer, Shutdown, ShutdownConfig,
    TelemetryConfig, bind,
};
use shikko_store::{MirrorStore, Store};

use crate::grpc::CrlService;
use crate::http::CacheLimits;
use crate::{Builder, CrlConfig as BuildConfig, CrlIssuer, CrlRole, MirrorSink, Schedule};

/// Where a data directory's published CRLs live (`DATA_DIR/crl`).
pub fn out_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("crl")
}

/// A builder for the CAs `cas`, writing under `DATA_DIR/crl`.
pub fn builder(
    store: Arc<Store>,
    cas: &[IssuingCa],
    data_dir: &Path,
    public_base_url: Option<String>,
) -> RoleResult<Builder> {
    let issuers = cas
        .iter()
        .map(|ca| {
            CrlIssuer::new(ca.kind, ca.signer.clone() as Arc<dyn Signer>, &ca.cert_der)
                .with_context(|| format!("the {} CA", ca.kind.issuer_id()))
        })
        .collect::<RoleResult<Vec<_>>>()?;
    let mut cfg = BuildConfig::new(out_dir(data_dir));
    cfg.public_base_url = public_base_url;
    Ok(Builder::new(store, issuers, cfg))
}

/// `shikko serve crl --config FILE`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrlRoleConfig {
    /// The crl role.
    pub crl: CrlSection,
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

/// `[crl]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrlSection {
    /// Data directory: the CA keys (`keys/ISSUER-ca.key`) and certificates
    /// (`certs/ISSUER-ca.der`), the published CRLs (`crl/`) and the mirror
    /// store (`crl-mirror/`). Required.
    pub data_dir: PathBuf,
    /// The registry's gRPC endpoint. Several,
    /// comma-separated (a primary and its standby), are tried in turn.
    /// Default `http://127.0.0.1:50051`.
    #[serde(default = "shikko_follow::default_registry_endpoint")]
    pub registry: String,
    /// HTTP listen address (`/crl/...`). Default `127.0.0.1:8080`.
    #[serde(default = "default_http")]
    pub http_listen: SocketAddr,
    /// Serve the CRLs over HTTP from this process. Default true. Set false
    /// where the CRLs are served by `shikko serve crl-http` from the output
    /// directory, so that the process holding the CA keys serves nothing
    /// to the internet (deploy/k8s/20-crl.yaml).
    #[serde(default = "default_true")]
    pub serve_http: bool,
    /// gRPC listen address (`shikko.v1.CrlPublisher`, health). Default `127.0.0.1:50052`.
    #[serde(default = "default_grpc")]
    pub grpc_listen: SocketAddr,
    /// Public HTTP base of the CRLs, for the freshestCRL pointer of full CRLs.
    /// Default: none (no freshestCRL).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Seconds between full builds. Default 86,400 (daily).
    #[serde(default = "default_full_every")]
    pub full_every_secs: u64,
    /// Seconds between delta builds. Default 900.
    #[serde(default = "default_delta_every")]
    pub delta_every_secs: u64,
    /// nextUpdate - thisUpdate of full and partition CRLs. Default 172,800 (48 h).
    #[serde(default = "default_full_validity")]
    pub full_next_update_secs: u64,
    /// nextUpdate - thisUpdate of delta CRLs. Default 14,400 (4 h).
    #[serde(default = "default_delta_validity")]
    pub delta_next_update_secs: u64,
    /// Who may fetch the CRLs this process serves over HTTP (`public`, or
    /// `restricted` to registered verifiers), and where their tokens come
    /// from and their usage goes.
    #[serde(default)]
    pub access: shikko_access::verifiers::AccessConfig,
    /// Build and publish compact revocation filters beside the CRLs
    /// (`/filter/ISSUER/full.filter`, `delta.filter`; docs/FILTER.md).
    /// Default true. A full filter of hundreds of millions of certificates
    /// takes minutes and gigabytes to build (docs/BENCHMARKS.md), and the
    /// mirror then loads every certificate's status from the registry's
    /// snapshot (without filters, only the listed ones).
    #[serde(default = "default_true")]
    pub filters: bool,
    /// The CRLs over TLS as well (with `serve_http`), for verifiers with a
    /// client certificate (or a bearer token over TLS). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<shikko_access::verifiers::HttpsConfig>,
}

pub(crate) fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_grpc() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50052))
}
fn default_true() -> bool {
    true
}
pub(crate) fn default_full_every() -> u64 {
    86_400
}
pub(crate) fn default_delta_every() -> u64 {
    900
}
fn default_full_validity() -> u64 {
    172_800
}
fn default_delta_validity() -> u64 {
    14_400
}

impl CrlSection {
    /// Refuses periods that would spin or never come.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, v) in [
            ("full_every_secs", self.full_every_secs),
            ("delta_every_secs", self.delta_every_secs),
            ("full_next_update_secs", self.full_next_update_secs),
            ("delta_next_update_secs", self.delta_next_update_secs),
        ] {
            if !(1..=10 * 365 * 86_400).contains(&v) {
                return Err(format!("[crl] {name} must be 1 to 315360000 seconds"));
            }
        }
        if self.full_next_update_secs < self.full_every_secs {
            return Err(
                "[crl] full_next_update_secs must be at least full_every_secs (a CRL must not expire before the next)"
                    .into(),
            );
        }
        if let Some(h) = &self.https {
            if !self.serve_http {
                return Err("[crl.https] needs serve_http = true (it serves the same CRLs)".into());
            }
            h.validate("crl.https")?;
        }
        self.access.validate("crl.access")
    }
}

impl RoleConfig for CrlRoleConfig {
    fn validate(&self) -> Result<(), String> {
        self.crl.validate()?;
        self.tls.validate(&[self.crl.grpc_listen])?;
        self.tls.validate_client(&self.crl.registry)?;
        if let Some(info) = &self.crl.access.info {
            self.tls.validate_client(info)?;
        }
        self.http.limits().map(|_| ())
    }

    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

/// Runs the crl role until `shutdown`, then drains.
pub async fn serve(cfg: CrlRoleConfig, shutdown: Shutdown) -> RoleResult<()> {
    let c = &cfg.crl;
    let cfg_http = shikko_runtime::http_limits(&cfg.http)?;
    let data = &c.data_dir;
    let cas = DataDir::new(data)
        .issuing_cas()
        .with_context(|| format!("loading the issuing CAs of {}", data.display()))?;
    let mirror_path = data.join("crl-mirror");
    std::fs::create_dir_all(&mirror_path)
        .with_context(|| format!("creating {}", mirror_path.display()))?;
    let store = MirrorStore::open(&mirror_path)
        .with_context(|| format!("opening the mirror store {}", mirror_path.display()))?;
    // A mirror made before it kept every certificate cannot give the
    // filters their universe: it loads the registry's snapshot again.
    if c.filters
        && store
            .reload_without_issued_index()
            .context("preparing the mirror's certificate index")?
    {
        tracing::warn!(
            "the mirror predates its certificate index: loading a snapshot of the registry"
        );
    }
    let mut builder = builder(store.shared(), &cas, data, c.public_url.clone())?;
    builder.config_mut().full_validity = Duration::from_secs(c.full_next_update_secs);
    builder.config_mut().delta_validity = Duration::from_secs(c.delta_next_update_secs);
    builder.config_mut().filters = c.filters;
    let out_dir = builder.config().out_dir.clone();
    let metrics = shikko_runtime::process_metrics()?;
    // Builds only from a mirror that is current: an empty mirror would
    // publish empty CRLs over good ones, a stale one would drop revocations.
    let readiness = Readiness::new();
    let role =
        CrlRole::new(builder, metrics.registry(), readiness.clone()).context("the crl role")?;
    tokio::spawn(prune_mirror_feed(
        store.clone(),
        out_dir,
        shutdown.wait_owned(),
    ));
    let mut sink = MirrorSink::new(store).with_build_lock(role.build_lock());
    if !c.filters {
        sink = sink.listed_only();
    }
    let security = shikko_access::server_security(&cfg.tls).context("[tls]")?;
    let to_registry = shikko_access::registry_client(&cfg.tls, &shutdown).context("[tls]")?;
    let follower = Follower::new(
        GrpcSource::new(c.registry.clone()).with_tls(to_registry),
        sink.binding().context("the mirror's registry binding")?,
        readiness.clone(),
        FollowerMetrics::new(metrics.registry(), "crl").context("follower metrics")?,
    );

    let http = if c.serve_http {
        Some(bind(c.http_listen, "HTTP").await?)
    } else {
        None
    };
    let grpc = bind(c.grpc_listen, "gRPC").await?;
    let metrics_listener = bind(cfg.telemetry.metrics_listen, "metrics").await?;
    let https = shikko_access::verifiers::HttpsConfig::bind(c.https.as_ref()).await?;
    // Tests and scripts read this line to learn the bound ports.
    let mut ports = vec![("grpc", &grpc), ("metrics", &metrics_listener)];
    if let Some(h) = &http {
        ports.insert(0, ("http", h));
    }
    if let Some(h) = &https {
        ports.push(("https", &h.listener));
    }
    shikko_runtime::announce("crl", &ports);

    tokio::spawn(follower.run_status(Arc::new(sink), shutdown.wait_owned()));
    let schedule = Schedule {
        full_every: Duration::from_secs(c.full_every_secs),
        delta_every: Duration::from_secs(c.delta_every_secs),
        ..Schedule::default()
    };
    let scheduler = role.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let ready = tokio::select! {
            () = readiness.wait_current() => true,
            () = stop.wait() => false,
        };
        if ready {
            tracing::info!("mirror caught up with the registry: CRL schedule starts");
            scheduler.run_schedule(schedule, stop.wait_owned()).await;
        }
    });

    let app = crate::http::router_with(
        role.catalog().clone(),
        metrics.registry(),
        CacheLimits {
            full: schedule.full_every,
            delta: schedule.delta_every,
        },
    )
    .context("CRL HTTP metrics")?;
    let routes =
        GrpcRoutes::new(shikko_access::api()).service(CrlService::new(role).into_service());
    let mut server = RoleServer::new("crl", metrics, metrics_listener).grpc(grpc, routes, security);
    let mut metering = None;
    if let Some(http) = http {
        let (gate, m) = shikko_access::verifiers::start(
            shikko_access::verifiers::Endpoint::Crl,
            &c.access,
            &cfg.tls,
        );
        let app = shikko_access::verifiers::layer(app, gate);
        metering = m;
        server = server.http(http, app.clone(), cfg_http);
        if let Some(h) = https {
            server = h.attach(server, app, cfg_http);
        }
    }
    let served = server
        .serve(shutdown, cfg.shutdown.drain_timeout())
        .await
        .context("serving");
    shikko_access::verifiers::last_report(metering).await;
    served
}

/// How long the mirror keeps its own feed at least: a delta CRL is built
/// from the records after its base (a full CRL, daily), never pruned.
const MIRROR_HISTORY_SECS: i64 = 2 * 86_400;

/// Prunes the mirror's feed every hour until `shutdown`: what is older than
/// [`MIRROR_HISTORY_SECS`] and before every issuer's base CRL.
async fn prune_mirror_feed(
    store: MirrorStore,
    out_dir: PathBuf,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        let s = store.clone();
        let out = out_dir.clone();
        let r = tokio::task::spawn_blocking(move || {
            // Keep from the oldest base's next record; an issuer with no
            // base yet (or no readable state) keeps everything.
            let keep_from = shikko_core::CertKind::ALL
                .into_iter()
                .map(|k| {
                    crate::state::read_issuer_state(&out, k)
                        .ok()
                        .and_then(|st| st.base)
                        .map_or(1, |b| b.seq + 1)
                })
                .min()
                .unwrap_or(1);
            s.retain(shikko_core::UnixTime::now(), MIRROR_HISTORY_SECS, keep_from)
        })
        .await;
        match r {
            Ok(Ok(p)) if p.first_seq > p.from => {
                tracing::info!(pruned = p.first_seq - p.from, "the mirror's feed pruned")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "pruning the mirror's feed failed"),
            Err(e) => tracing::error!(error = %e, "the mirror's pruning task failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            () = &mut shutdown => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_in_deploy_parses() {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crl.toml"));
        let cfg: CrlRoleConfig = shikko_runtime::load_toml(path).unwrap();
        cfg.crl.validate().unwrap();
        // The deployment names the default address, over mutual TLS.
        assert_eq!(
            cfg.crl.registry.replace("https://", "http://"),
            shikko_follow::default_registry_endpoint()
        );
        assert!(cfg.crl.registry.starts_with("https://"));
        assert!(!cfg.tls.insecure_loopback_only);
        assert!(cfg.tls.files().unwrap().is_some());
        assert_eq!(cfg.crl.http_listen, default_http());
        assert_eq!(cfg.crl.delta_every_secs, 900);
        let bad = CrlSection {
            delta_every_secs: 0,
            ..cfg.crl.clone()
        };
        assert!(bad.validate().unwrap_err().contains("delta_every_secs"));
    }
}
