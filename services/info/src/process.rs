//! The info role's process (`shikko serve info --config FILE`:
//! [`InfoRoleConfig`], [`serve`]): the 4-information service as its own
//! process. Its store is a replica of the registry's: it follows the
//! registry's feed with the writes each event made and applies them as they
//! are ([`crate::replica`]; holders, certificates and links are the
//! registry's, sequence number for sequence number, and no rule runs here),
//! and keeps its operators, consents, billing and audit log beside them. Operators call it over mutual TLS; its
//! internal endpoint serves InfoAdmin and gRPC health.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::path::Path;

use serde::{Deserialize, Serialize};
use shikko_follow::{Follower, FollowerMetrics, GrpcSource, Readiness};
use shikko_runtime::{
    Context, GrpcRoutes, RoleConfig, RoleResult, RoleServer, Shutdown, ShutdownConfig,
    TelemetryConfig, bind,
};
use shikko_store::ReplicaStore;

use crate::InfoService;
use crate::replica::Replica;

/// The card signing CA certificates (DER) in the PEM files `paths`.
pub fn read_signing_cas(paths: &[PathBuf]) -> RoleResult<Vec<Vec<u8>>> {
    let mut signing = Vec::new();
    for p in paths {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        for c in shikko_pki::parse_certificates_pem(&bytes)
            .with_context(|| format!("{} holds no PEM certificate", p.display()))?
        {
            signing.push(der::Encode::to_der(&c).with_context(|| p.display().to_string())?);
        }
    }
    Ok(signing)
}

/// The operator-facing TLS from files (PEM or DER): the server's
/// certificate and key (refused if others could read it), and the operator
/// CA client certificates chain to; a client may withhold its certificate
/// (the service refuses the call and says why). Read again every 30 s by
/// the server: a renewed server certificate without a restart.
pub fn tls_from_files(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> RoleResult<Arc<shikko_runtime::ServerTls>> {
    let files = shikko_runtime::TlsFiles {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        ca: client_ca.to_path_buf(),
        crls: Vec::new(),
    };
    Ok(Arc::new(
        shikko_runtime::ServerTls::load_public(&files)
            .context("[info] tls_cert, tls_key, client_ca")?,
    ))
}

/// How often the operator port's TLS files are read again.
pub const PUBLIC_TLS_RELOAD: std::time::Duration = std::time::Duration::from_secs(30);

/// `shikko serve info --config FILE`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InfoRoleConfig {
    /// The info role.
    pub info: InfoRoleSection,
    /// Logs and metrics.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Draining on SIGTERM.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// The role's internal identity: mutual TLS on its gRPC port and to the registry (the operators' port keeps its own TLS).
    #[serde(default)]
    pub tls: shikko_runtime::TlsConfig,
}

/// `[info]` of `serve info`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InfoRoleSection {
    /// Its own data directory (the replica store, consents, audit log). Required.
    pub data_dir: PathBuf,
    /// The registry it follows. Several,
    /// comma-separated (a primary and its standby), are tried in turn.
    /// Default `http://127.0.0.1:50051`.
    #[serde(default = "shikko_follow::default_registry_endpoint")]
    pub registry: String,
    /// gRPC over mutual TLS for operators. Default `127.0.0.1:50054` (the
    /// roles' defaults do not collide on one host; the demo uses 50052).
    /// (`listen`, its former name, is still read.)
    #[serde(default = "default_listen", alias = "listen")]
    pub grpc_listen: SocketAddr,
    /// Internal gRPC (InfoAdmin, health). Default `127.0.0.1:50055`.
    #[serde(default = "default_admin")]
    pub admin_listen: SocketAddr,
    /// The server's certificate (PEM). Required.
    pub tls_cert: PathBuf,
    /// The server's private key (PEM, PKCS#8). Required.
    pub tls_key: PathBuf,
    /// The operator CA (PEM). Required.
    pub client_ca: PathBuf,
    /// Card signing CA certificates (PEM). Required.
    pub signing_cas: Vec<PathBuf>,
    /// Smartphone signing CA certificates (PEM): consents signed with a
    /// smartphone signing certificate are accepted from these. Default: none.
    #[serde(default)]
    pub phone_signing_cas: Vec<PathBuf>,
    /// The operators' port: connections, idle time, consent challenges.
    #[serde(default)]
    pub front_door: FrontDoor,
    /// The audit log's signed tree heads.
    #[serde(default)]
    pub audit: AuditHeads,
}

/// `[info.audit]`: the audit key and where signed tree heads go.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditHeads {
    /// The audit key (PKCS#8 PEM or DER, ECDSA P-256 or RSA; mode 0600 or
    /// 0400), which signs the tree heads of the audit log. Must not be
    /// inside the data directory: a copy of the store must not carry the
    /// key that vouches for it. Default: none (no heads are signed, and a
    /// warning says so at start).
    pub key: Option<PathBuf>,
    /// Where signed heads are written: `latest.json` (replaced) and
    /// `heads.jsonl` (one line per head). Put it where a witness or an
    /// auditor can read it and the data directory's custodian cannot
    /// rewrite it. Default: none (heads are served by
    /// `InfoAdmin.AuditTreeHead` only).
    pub heads_dir: Option<PathBuf>,
    /// A head is signed at least this often (seconds), and on request when
    /// the log grew. Default 60.
    pub head_secs: Option<i64>,
}

impl AuditHeads {
    /// `svc` signing heads as configured, or as it was (with a warning)
    /// without a key. The key is refused inside `data_dir`, or readable by others.
    pub fn apply(&self, svc: InfoService, data_dir: &Path) -> RoleResult<InfoService> {
        let Some(key) = &self.key else {
            tracing::warn!(
                "no [info.audit] key: the audit log's tree heads are not signed, and no witness can check it"
            );
            return Ok(svc);
        };
        let inside = |p: &Path| {
            let (Ok(p), Ok(d)) = (std::fs::canonicalize(p), std::fs::canonicalize(data_dir)) else {
                return false;
            };
            p.starts_with(d)
        };
        if inside(key) {
            return Err(shikko_runtime::RoleError::new(
                "[info.audit] key",
                format!(
                    "{} is inside the data directory {}: keep the audit key apart from the log it vouches for",
                    key.display(),
                    data_dir.display()
                ),
            ));
        }
        shikko_pki::check_key_file(key).context("[info.audit] key")?;
        let signer = shikko_pki::load_signer(key).context("[info.audit] key")?;
        let every = self.head_secs.unwrap_or(crate::heads::DEFAULT_HEAD_SECS);
        if every < 1 {
            return Err(shikko_runtime::RoleError::new(
                "[info.audit] head_secs",
                "must be at least 1",
            ));
        }
        svc.with_audit_key(signer, self.heads_dir.clone(), every)
            .context("[info.audit]")
    }
}

/// `[info.front_door]`: what the operators' port admits. One operator
/// (one address) cannot take every connection; silent connections are
/// closed; consent challenges are valid for minutes.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FrontDoor {
    /// Connections open at once (handshaking or established); more wait in
    /// the kernel's backlog. Default 1024.
    pub max_connections: usize,
    /// Connections open at once from one IP address; more are closed when
    /// accepted and counted (`shikko_tls_handshakes_failed_total{reason="peer_limit"}`).
    /// Default 64 (an operator behind one NAT address runs its clients'
    /// connections through few long-lived HTTP/2 connections).
    pub max_connections_per_peer: usize,
    /// A connection on which nothing is read or written for this long (seconds)
    /// is closed. Default 300.
    pub idle_timeout_secs: u64,
    /// A TLS handshake not done within this (seconds) is dropped. Default 10.
    pub handshake_timeout_secs: u64,
    /// Connections without a client certificate open at once (they live
    /// 30 s, long enough to read why their calls are refused); more are
    /// closed after the handshake. Default 32.
    pub max_anonymous_connections: usize,
    /// How long a consent challenge is accepted (seconds). Default 600, at most 3600.
    pub consent_challenge_secs: i64,
}

impl Default for FrontDoor {
    fn default() -> Self {
        FrontDoor {
            max_connections: 1024,
            max_connections_per_peer: 64,
            idle_timeout_secs: 300,
            handshake_timeout_secs: 10,
            max_anonymous_connections: 32,
            consent_challenge_secs: crate::challenge::DEFAULT_CHALLENGE_SECS,
        }
    }
}

impl FrontDoor {
    /// Whether the values make sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 || self.max_connections_per_peer == 0 {
            return Err("[info.front_door] connection limits must be at least 1".into());
        }
        if self.max_anonymous_connections == 0 {
            return Err("[info.front_door] max_anonymous_connections must be at least 1".into());
        }
        if self.handshake_timeout_secs == 0 {
            return Err("[info.front_door] handshake_timeout_secs must be at least 1".into());
        }
        // The idle timer does not know of a call in progress: it must
        // outlast the slowest answer the port may take to give.
        let slowest = shikko_proto::access::LIMITS
            .iter()
            .filter(|(m, _)| m.starts_with("/shikko.v1.Info/"))
            .map(|(_, l)| u64::from(l.timeout_secs))
            .max()
            .unwrap_or(0);
        if self.idle_timeout_secs <= slowest {
            return Err(format!(
                "[info.front_door] idle_timeout_secs must be more than {slowest} (the longest an Info call may take)"
            ));
        }
        if !(1..=crate::challenge::MAX_CHALLENGE_SECS).contains(&self.consent_challenge_secs) {
            return Err(format!(
                "[info.front_door] consent_challenge_secs must be 1 to {} (minutes, not days)",
                crate::challenge::MAX_CHALLENGE_SECS
            ));
        }
        Ok(())
    }

    /// The port's connection limits.
    pub fn accept_limits(&self) -> shikko_runtime::AcceptLimits {
        shikko_runtime::AcceptLimits {
            handshake_timeout: std::time::Duration::from_secs(self.handshake_timeout_secs),
            max_handshakes: 256,
            max_connections: self.max_connections,
            max_per_peer: self.max_connections_per_peer,
            idle_timeout: Some(std::time::Duration::from_secs(self.idle_timeout_secs)),
            max_anonymous: self.max_anonymous_connections,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50054))
}

fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50055))
}

impl RoleConfig for InfoRoleConfig {
    fn validate(&self) -> Result<(), String> {
        self.info.front_door.validate()?;
        self.tls.validate(&[self.info.admin_listen])?;
        self.tls.validate_client(&self.info.registry)
    }

    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

/// Runs the info role until `shutdown`, then drains.
pub async fn serve(cfg: InfoRoleConfig, shutdown: Shutdown) -> RoleResult<()> {
    let store = ReplicaStore::open_data_dir(&cfg.info.data_dir)
        .with_context(|| format!("opening the store of {}", cfg.info.data_dir.display()))?;
    let metrics = shikko_runtime::process_metrics()?;
    let signing = read_signing_cas(&cfg.info.signing_cas)?;
    // Not ready until the replica has caught up with the registry, nor while
    // the registry is out of reach.
    let readiness = Readiness::new();
    let svc = InfoService::new(
        store.shared(),
        &signing,
        crate::InfoMetrics::new(metrics.registry()).context("metrics")?,
    )
    .context("the 4-information service")?
    .with_phone_signing_cas(&read_signing_cas(&cfg.info.phone_signing_cas)?)
    .context("[info] phone_signing_cas")?
    .with_readiness(readiness.clone())
    .with_challenge_secs(cfg.info.front_door.consent_challenge_secs);
    let svc = Arc::new(cfg.info.audit.apply(svc, &cfg.info.data_dir)?);
    if svc.audit_public_key().is_some() {
        tokio::spawn(crate::heads::publish(svc.clone(), shutdown.wait_owned()));
    }
    tokio::spawn(prune_replica_history(store.clone(), shutdown.wait_owned()));
    let replica = Replica::new(store);
    let security = shikko_access::server_security(&cfg.tls).context("[tls]")?;
    let to_registry = shikko_access::registry_client(&cfg.tls, &shutdown).context("[tls]")?;
    let follower = Follower::new(
        GrpcSource::new(cfg.info.registry.clone()).with_tls(to_registry),
        replica
            .binding()
            .context("the replica's registry binding")?,
        readiness,
        FollowerMetrics::new(metrics.registry(), "info").context("follower metrics")?,
    );
    let tls = tls_from_files(&cfg.info.tls_cert, &cfg.info.tls_key, &cfg.info.client_ca)?;
    let listener = bind(cfg.info.grpc_listen, "the 4-information service").await?;
    let admin = bind(cfg.info.admin_listen, "the info role's internal gRPC").await?;
    let metrics_listener = bind(cfg.telemetry.metrics_listen, "metrics").await?;
    // Tests and scripts read this line to learn the bound ports.
    shikko_runtime::announce(
        "info",
        &[
            ("info", &listener),
            ("grpc", &admin),
            ("metrics", &metrics_listener),
        ],
    );
    tokio::spawn(follower.run_replica(Arc::new(replica), shutdown.wait_owned()));
    let operators = GrpcRoutes::new(shikko_access::api())
        .service(crate::grpc::InfoGrpc::new(svc.clone()).into_server())
        .service(crate::grpc::InfoGrpc::new(svc.clone()).into_link_server())
        .service(crate::grpc::InfoGrpc::new(svc.clone()).into_holder_server());
    let internal = GrpcRoutes::new(shikko_access::api())
        .service(crate::admin::InfoAdminGrpc::new(svc).into_server());
    RoleServer::new("info", metrics, metrics_listener)
        .grpc_tls(
            listener,
            operators,
            tls,
            PUBLIC_TLS_RELOAD,
            cfg.info.front_door.accept_limits(),
            Arc::new(shikko_access::OperatorPort),
        )
        .grpc(admin, internal, security)
        .serve(shutdown, cfg.shutdown.drain_timeout())
        .await
        .context("serving")
}

/// How long the replica keeps its copy of the registry's feed and writes
/// (the writes carry the 4 information of past events): nothing reads them
/// once applied, so a day, for looking into a replication problem.
const REPLICA_HISTORY_SECS: i64 = 86_400;

/// Prunes the replica's copy of the history every hour until `shutdown`.
async fn prune_replica_history(
    store: ReplicaStore,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || {
            s.retain(shikko_core::UnixTime::now(), REPLICA_HISTORY_SECS)
        })
        .await
        {
            Ok(Ok(p)) if p.first_seq > p.from => tracing::info!(
                pruned = p.first_seq - p.from,
                "the replica's copy of the history pruned"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "pruning the replica's history failed"),
            Err(e) => tracing::error!(error = %e, "the replica's pruning task failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            () = &mut shutdown => return,
        }
    }
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
        assert_eq!(cfg.info.grpc_listen, default_listen());
        assert_eq!(cfg.info.admin_listen, default_admin());
        // The deployment names the default address, over mutual TLS.
        assert_eq!(
            cfg.info.registry.replace("https://", "http://"),
            shikko_follow::default_registry_endpoint()
        );
        assert!(cfg.info.registry.starts_with("https://"));
        assert!(!cfg.tls.insecure_loopback_only);
        assert!(cfg.tls.files().unwrap().is_some());
        assert_eq!(cfg.info.signing_cas.len(), 1);
    }
}
