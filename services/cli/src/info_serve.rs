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

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use shikko_core::Event;
use shikko_info::InfoService;
use shikko_runtime::telemetry::Metrics;
use shikko_runtime::{Shutdown, ShutdownConfig, TelemetryConfig};
use shikko_store::{IngestMode, Outcome, Store};

use crate::follow::Sink;
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

/// Applies the registry's events to the replica store.
struct ReplicaSink {
    store: Arc<Store>,
    svc: Arc<InfoService>,
}

impl Sink for ReplicaSink {
    fn position(&self) -> u64 {
        self.store.last_seq()
    }

    fn apply(&self, _records: Vec<shikko_store::ChangeRecord>, _: &str, _: u64) -> Result<u64> {
        bail!("the info replica takes whole events")
    }

    fn wants_events(&self) -> bool {
        true
    }

    fn apply_events(&self, events: Vec<(u64, Event)>, source_id: &str, _head: u64) -> Result<u64> {
        self.store
            .check_mirror_source(source_id)
            .context("the registry followed is not the one this replica was made from")?;
        if events.is_empty() {
            return Ok(self.store.last_seq());
        }
        let expected: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
        let first = self.store.last_seq() + 1;
        if expected.first() != Some(&first) {
            bail!(
                "the feed resumed at {:?}, the replica is at {}",
                expected.first(),
                first - 1
            );
        }
        let events: Vec<Event> = events.into_iter().map(|(_, e)| e).collect();
        let outcomes = self.store.ingest(&events, IngestMode::PerEvent)?;
        for (want, got) in expected.iter().zip(&outcomes) {
            match got {
                Outcome::Applied { seq } if seq == want => {}
                // Never for an event the registry applied: the replica has diverged.
                other => bail!(
                    "the replica diverged from the registry at seq {want}: {}",
                    match other {
                        Outcome::Rejected(r) => format!("rejected here ({})", r.rule()),
                        o => format!("{o:?}"),
                    }
                ),
            }
        }
        Ok(self.store.last_seq())
    }

    fn set_current(&self, current: bool) {
        self.svc.set_ready(current);
    }
}

/// Runs the info role until SIGTERM.
pub(crate) async fn serve(cfg: InfoRoleConfig) -> Result<()> {
    let store = open_store(&cfg.info.data_dir)?;
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"))?;
    let signing = crate::info_role::read_signing_cas(&cfg.info.signing_cas)?;
    let svc = Arc::new(InfoService::new(
        store.clone(),
        &signing,
        shikko_info::InfoMetrics::new(metrics.registry())?,
    )?);
    // Not ready until the replica has caught up with the registry.
    svc.set_ready(false);
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
    let sink: Arc<dyn Sink> = Arc::new(ReplicaSink {
        store: store.clone(),
        svc: svc.clone(),
    });
    tokio::spawn(crate::follow::follow(
        sink,
        cfg.info.registry.clone(),
        shutdown.clone(),
    ));
    let info_task =
        crate::info_role::spawn_server(svc.clone(), listener, tls, shutdown.wait_owned())?;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<shikko_proto::v1::info_admin_server::InfoAdminServer<shikko_info::admin::InfoAdminGrpc>>()
        .await;
    let routes = tonic::service::Routes::new(health)
        .add_service(shikko_info::admin::InfoAdminGrpc::new(svc).into_server());
    crate::serve::run_role(
        admin,
        routes,
        None,
        metrics_listener,
        metrics,
        shutdown,
        cfg.shutdown.drain_timeout(),
    )
    .await?;
    let _ = info_task.await;
    Ok(())
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
