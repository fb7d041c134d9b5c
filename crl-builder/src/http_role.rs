//! The crl-http role's process (`shikko serve crl-http --config FILE`:
//! [`CrlHttpRoleConfig`], [`serve`]): the CRLs a builder published, served
//! over HTTP and nothing else. It holds no key, follows no registry and
//! serves no gRPC: it reads the builder's output directory (`DATA_DIR/crl`,
//! read-only is enough) and serves each file as the crl role's own HTTP
//! does (ETag, 304, Cache-Control, Expires). So the issuing CA keys stay in
//! a process that serves nothing to the internet (the crl role with
//! `serve_http = false`), and the internet-facing process has nothing worth
//! stealing (docs/SECURITY.md, "Where each key lives").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shikko_runtime::{
    Context, RoleConfig, RoleResult, RoleServer, Shutdown, ShutdownConfig, TelemetryConfig, bind,
};

use crate::Catalog;
use crate::http::CacheLimits;

/// `shikko serve crl-http`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrlHttpRoleConfig {
    /// The crl-http role.
    pub crl_http: CrlHttpSection,
    /// Logs and metrics.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Draining on SIGTERM.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Limits against slow and idle HTTP clients.
    #[serde(default)]
    pub http: shikko_runtime::HttpConfig,
    /// An internal identity (the crl role's), only to reach the info role
    /// for `[crl_http.access]`: this role serves no gRPC.
    #[serde(default)]
    pub tls: shikko_runtime::TlsConfig,
}

/// `[crl_http]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrlHttpSection {
    /// The builder's output directory (`DATA_DIR/crl` of the crl role:
    /// `ISSUER/full.crl`, `delta.crl`, `NNNNNN.crl`). Required.
    pub crl_dir: PathBuf,
    /// HTTP listen address (`/crl/...`). Default `127.0.0.1:8080`.
    #[serde(default = "default_http")]
    pub http_listen: SocketAddr,
    /// Seconds between looks at the directory for new CRLs. Default 5.
    /// (A request always gets the file as it is now; this keeps the
    /// summaries behind ETag and caching headers at hand.)
    #[serde(default = "default_rescan")]
    pub rescan_secs: u64,
    /// The builder's full period, the upper bound of `max-age` for full and
    /// partition CRLs. Default 86,400.
    #[serde(default = "default_full_every")]
    pub full_every_secs: u64,
    /// The builder's delta period, the upper bound of `max-age` for deltas.
    /// Default 900.
    #[serde(default = "default_delta_every")]
    pub delta_every_secs: u64,
    /// Who may fetch the CRLs (`public`, or `restricted` to registered
    /// verifiers), and where their tokens come from and their usage goes.
    #[serde(default)]
    pub access: shikko_access::verifiers::AccessConfig,
    /// The CRLs over TLS as well, for verifiers with a client certificate
    /// (or a bearer token over TLS). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<shikko_access::verifiers::HttpsConfig>,
}

// The crl role's own defaults: the same port and periods.
use crate::process::{default_delta_every, default_full_every, default_http};

fn default_rescan() -> u64 {
    5
}

impl RoleConfig for CrlHttpRoleConfig {
    fn validate(&self) -> Result<(), String> {
        let c = &self.crl_http;
        for (name, v) in [
            ("rescan_secs", c.rescan_secs),
            ("full_every_secs", c.full_every_secs),
            ("delta_every_secs", c.delta_every_secs),
        ] {
            if !(1..=10 * 365 * 86_400).contains(&v) {
                return Err(format!("[crl_http] {name} must be 1 to 315360000 seconds"));
            }
        }
        c.access.validate("crl_http.access")?;
        if let Some(h) = &c.https {
            h.validate("crl_http.https")?;
        }
        if let Some(info) = &c.access.info {
            self.tls.validate_client(info)?;
        }
        self.http.limits().map(|_| ())
    }

    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

/// Runs the crl-http role until `shutdown`, then drains.
pub async fn serve(cfg: CrlHttpRoleConfig, shutdown: Shutdown) -> RoleResult<()> {
    let c = &cfg.crl_http;
    let cfg_http = shikko_runtime::http_limits(&cfg.http)?;
    let catalog = Catalog::open(&c.crl_dir)
        .with_context(|| format!("reading the CRLs of {}", c.crl_dir.display()))?;
    let metrics = shikko_runtime::process_metrics()?;
    let http = bind(c.http_listen, "HTTP").await?;
    let metrics_listener = bind(cfg.telemetry.metrics_listen, "metrics").await?;
    let https = shikko_access::verifiers::HttpsConfig::bind(c.https.as_ref()).await?;
    // Tests and scripts read this line to learn the bound ports.
    let mut listening = vec![("http", &http), ("metrics", &metrics_listener)];
    if let Some(h) = &https {
        listening.push(("https", &h.listener));
    }
    shikko_runtime::announce("crl-http", &listening);
    let every = Duration::from_secs(c.rescan_secs);
    let rescanning = catalog.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.wait() => return,
            }
            let catalog = rescanning.clone();
            match tokio::task::spawn_blocking(move || catalog.rescan(false)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(changed = n, "new CRLs found"),
                Ok(Err(e)) => tracing::warn!(error = %e, "looking for new CRLs failed"),
                Err(e) => tracing::warn!(error = %e, "looking for new CRLs failed"),
            }
        }
    });
    let app = crate::http::router_with(
        catalog,
        metrics.registry(),
        CacheLimits {
            full: Duration::from_secs(c.full_every_secs),
            delta: Duration::from_secs(c.delta_every_secs),
        },
    )
    .context("CRL HTTP metrics")?;
    let (gate, metering) = shikko_access::verifiers::start(
        shikko_access::verifiers::Endpoint::Crl,
        &c.access,
        &cfg.tls,
    );
    let app = shikko_access::verifiers::layer(app, gate);
    let mut server =
        RoleServer::new("crl-http", metrics, metrics_listener).http(http, app.clone(), cfg_http);
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
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/crl-http.toml"
        ));
        let cfg: CrlHttpRoleConfig = shikko_runtime::load_toml(path).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.crl_http.http_listen, default_http());
        assert_eq!(cfg.crl_http.rescan_secs, 5);
        let mut bad = cfg.clone();
        bad.crl_http.rescan_secs = 0;
        assert!(bad.validate().unwrap_err().contains("rescan_secs"));
    }
}
