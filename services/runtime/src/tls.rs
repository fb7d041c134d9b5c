//! Mutual TLS between Shikko's processes (issue 12): the `[tls]` section of
//! a role's configuration ([`TlsConfig`]), the server side ([`ServerTls`]:
//! client certificates required, chained to the internal CA, checked
//! against its CRLs) and the client side ([`ClientTls`]: the same files,
//! the server's certificate checked against the same CA, and optionally
//! the identity the server must carry).
//!
//! Certificates are short-lived, so both sides re-read their files while
//! running ([`ServerTls::reload_if_changed`], [`ClientTls::reload_if_changed`],
//! and [`spawn_reloader`]): a renewed certificate is used by the next
//! handshake, without a restart, and a file caught half-written is retried
//! on the next tick while the material loaded before stays in use.
//!
//! This module knows nothing of identities: what a certificate's identity
//! is and what it may call is the caller's ([`crate::authz`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds nothing usable.
    #[error("{}: {what}", path.display())]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// rustls refused the material.
    #[error("{0}")]
    Rustls(String),
}

/// `[tls]`: the files of a role's internal identity. Required on every
/// internal endpoint; plaintext only with `insecure_loopback_only = true`
/// and loopback listen addresses (a demo or a test on one machine).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The role's certificate from the internal CA (PEM or DER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Its private key (PKCS#8, PEM or DER; mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The internal CA's certificate (PEM or DER): peers must chain to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// CRLs of the internal CA (PEM or DER): a revoked peer is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crls: Vec<PathBuf>,
    /// How often the files are read again, in seconds. Default 30.
    #[serde(default = "default_reload_secs")]
    pub reload_secs: u64,
    /// Serve and call without TLS (and without authorization). Refused
    /// unless every listen address is loopback. Default false.
    #[serde(default)]
    pub insecure_loopback_only: bool,
}

fn default_reload_secs() -> u64 {
    30
}

impl Default for TlsConfig {
    /// No files, TLS not switched off (a role refuses to start until the
    /// files are named), re-read every 30 s: what a missing `[tls]` means.
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            ca: None,
            crls: Vec::new(),
            reload_secs: default_reload_secs(),
            insecure_loopback_only: false,
        }
    }
}

/// The files of an identity, all present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate (PEM or DER).
    pub cert: PathBuf,
    /// PKCS#8 key (PEM or DER).
    pub key: PathBuf,
    /// The CA peers chain to (PEM or DER).
    pub ca: PathBuf,
    /// The CA's CRLs.
    pub crls: Vec<PathBuf>,
}

impl TlsConfig {
    /// The section with these files, TLS on.
    pub fn with_files(files: &TlsFiles) -> TlsConfig {
        TlsConfig {
            cert: Some(files.cert.clone()),
            key: Some(files.key.clone()),
            ca: Some(files.ca.clone()),
            crls: files.crls.clone(),
            reload_secs: default_reload_secs(),
            insecure_loopback_only: false,
        }
    }

    /// Plaintext on loopback (tests, a one-machine demo).
    pub fn insecure_loopback() -> TlsConfig {
        TlsConfig {
            insecure_loopback_only: true,
            reload_secs: default_reload_secs(),
            ..TlsConfig::default()
        }
    }

    /// Checks the section against the addresses the role listens on (and
    /// calls, for a client): the message names the field.
    pub fn validate(&self, addrs: &[SocketAddr]) -> Result<(), String> {
        if self.reload_secs == 0 {
            return Err("tls.reload_secs: must be at least 1".into());
        }
        if self.insecure_loopback_only {
            if self.cert.is_some() || self.key.is_some() || self.ca.is_some() {
                return Err(
                    "tls.insecure_loopback_only: set, yet cert/key/ca are given: choose one".into(),
                );
            }
            if let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback()) {
                return Err(format!(
                    "tls.insecure_loopback_only: {a} is not a loopback address; \
                     internal endpoints need tls.cert, tls.key and tls.ca"
                ));
            }
            return Ok(());
        }
        self.files().map(|_| ())
    }

    /// Checks the section for a client of `endpoint` (a URL): plaintext
    /// only to a loopback host.
    pub fn validate_client(&self, endpoints: &str) -> Result<(), String> {
        if !self.insecure_loopback_only {
            return Ok(());
        }
        endpoints
            .split(',')
            .map(str::trim)
            .try_for_each(Self::loopback_endpoint)
    }

    fn loopback_endpoint(endpoint: &str) -> Result<(), String> {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| format!("{endpoint}: not a URL: {e}"))?;
        let host = uri.host().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare == "localhost"
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            Ok(())
        } else {
            Err(format!(
                "tls.insecure_loopback_only: {endpoint} is not on this machine; \
                 internal calls need tls.cert, tls.key and tls.ca"
            ))
        }
    }

    /// The files, or why the section is incomplete; `Ok(None)` when
    /// plaintext was asked for.
    pub fn files(&self) -> Result<Option<TlsFiles>, String> {
        if self.insecure_loopback_only {
            return Ok(None);
        }
        match (&self.cert, &self.key, &self.ca) {
            (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
                crls: self.crls.clone(),
            })),
            _ => Err("tls: internal endpoints need tls.cert, tls.key and tls.ca \
                 (the role's identity from the internal CA); plaintext only with \
                 tls.insecure_loopback_only = true on loopback addresses"
                .into()),
        }
    }

    /// How often files are read again.
    pub fn reload_every(&self) -> Duration {
        Duration::from_secs(self.reload_secs.max(1))
    }
}

/// The material of [`TlsFiles`], parsed.
struct Material {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|i| bytes[i..].starts_with(b"-----BEGIN"))
}

fn content(path: &Path, what: impl Into<String>) -> TlsError {
    TlsError::Content {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn certificates(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = if is_pem(bytes) {
        CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| content(path, format!("not a PEM certificate: {e}")))?
    } else {
        vec![CertificateDer::from(bytes.to_vec())]
    };
    if certs.is_empty() {
        return Err(content(path, "holds no certificate"));
    }
    Ok(certs)
}

fn private_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    if is_pem(bytes) {
        PrivateKeyDer::from_pem_slice(bytes)
            .map_err(|e| content(path, format!("not a PEM private key: {e}")))
    } else {
        Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            bytes.to_vec(),
        )))
    }
}

fn crls(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    if is_pem(bytes) {
        CertificateRevocationListDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| content(path, format!("not a PEM CRL: {e}")))
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes.to_vec())])
    }
}

/// What the files held when last read: reloading compares contents, not
/// times (a file rewritten within a second, or copied with its old time,
/// is still seen).
#[derive(PartialEq, Eq)]
struct Seen(Vec<Vec<u8>>);

fn read_all(files: &TlsFiles) -> Result<Seen, TlsError> {
    shikko_pki::check_key_file(&files.key).map_err(|e| match e {
        shikko_pki::Error::KeyFileExposed { path, reason } => {
            TlsError::Content { path, what: reason }
        }
        shikko_pki::Error::Io { path, source } => TlsError::Read { path, source },
        other => content(&files.key, other.to_string()),
    })?;
    let mut all = vec![read(&files.cert)?, read(&files.key)?, read(&files.ca)?];
    for c in &files.crls {
        all.push(read(c)?);
    }
    Ok(Seen(all))
}

fn parse(files: &TlsFiles, seen: &Seen) -> Result<Material, TlsError> {
    let chain = certificates(&files.cert, &seen.0[0])?;
    let key = private_key(&files.key, &seen.0[1])?;
    let mut roots = RootCertStore::empty();
    for ca in certificates(&files.ca, &seen.0[2])? {
        roots
            .add(ca)
            .map_err(|e| content(&files.ca, format!("not a usable CA certificate: {e}")))?;
    }
    let mut all_crls = Vec::new();
    for (path, bytes) in files.crls.iter().zip(&seen.0[3..]) {
        all_crls.extend(crls(path, bytes)?);
    }
    Ok(Material {
        chain,
        key,
        roots: Arc::new(roots),
        crls: all_crls,
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn rustls_error(e: impl std::fmt::Display) -> TlsError {
    TlsError::Rustls(e.to_string())
}

fn server_config(m: Material) -> Result<ServerConfig, TlsError> {
    server_config_with(m, false)
}

fn public_server_config(m: Material) -> Result<ServerConfig, TlsError> {
    server_config_with(m, true)
}

/// [`public_server_config`] for HTTPS: HTTP/1.1 as well as HTTP/2
/// (`openssl ocsp` and curl speak HTTP/1.1).
fn https_server_config(m: Material) -> Result<ServerConfig, TlsError> {
    let mut cfg = server_config_with(m, true)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A server asking clients for a certificate chained to the CA; with
/// `optional`, a client may withhold it (its service refuses it then).
fn server_config_with(m: Material, optional: bool) -> Result<ServerConfig, TlsError> {
    let p = provider();
    let mut verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(m.roots, p.clone())
            .with_crls(m.crls);
    if optional {
        verifier = verifier.allow_unauthenticated();
    }
    let verifier = verifier.build().map_err(rustls_error)?;
    let mut cfg = ServerConfig::builder_with_provider(p)
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(m.chain, m.key)
        .map_err(rustls_error)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

fn client_config(m: Material) -> Result<ClientConfig, TlsError> {
    let p = provider();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(m.roots, p.clone())
        .with_crls(m.crls)
        .build()
        .map_err(rustls_error)?;
    let mut cfg = ClientConfig::builder_with_provider(p)
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(m.chain, m.key)
        .map_err(rustls_error)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// A configuration built from files, rebuilt when they change.
struct Reloading<C> {
    files: TlsFiles,
    build: fn(Material) -> Result<C, TlsError>,
    current: RwLock<Arc<C>>,
    seen: Mutex<Seen>,
}

impl<C> Reloading<C> {
    fn load(
        files: &TlsFiles,
        build: fn(Material) -> Result<C, TlsError>,
    ) -> Result<Self, TlsError> {
        let seen = read_all(files)?;
        let cfg = build(parse(files, &seen)?)?;
        Ok(Reloading {
            files: files.clone(),
            build,
            current: RwLock::new(Arc::new(cfg)),
            seen: Mutex::new(seen),
        })
    }

    fn current(&self) -> Arc<C> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = read_all(&self.files)?;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == now {
            return Ok(false);
        }
        let cfg = (self.build)(parse(&self.files, &now)?)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(cfg);
        *seen = now;
        Ok(true)
    }
}

/// Something that re-reads its files ([`spawn_reloader`]).
pub trait Reload: Send + Sync + 'static {
    /// Reads the files again; `Ok(true)` when they changed and are now used.
    fn reload_if_changed(&self) -> Result<bool, TlsError>;
    /// The certificate file, for logs.
    fn describe(&self) -> String;
}

/// The server side of an internal endpoint: every client presents a
/// certificate chained to the CA and not revoked by its CRLs.
pub struct ServerTls(Reloading<ServerConfig>);

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.0.files)
            .finish()
    }
}

impl ServerTls {
    /// Reads and checks the files.
    pub fn load(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        Reloading::load(files, server_config).map(ServerTls)
    }

    /// A public endpoint's files: `cert` and `key` its server identity,
    /// `ca` the CA of the clients it asks for a certificate, which they may
    /// withhold (the service refuses such calls itself, and says why):
    /// the 4-information service's operator port.
    pub fn load_public(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        Reloading::load(files, public_server_config).map(ServerTls)
    }

    /// An HTTPS endpoint's files (the CRL and OCSP endpoints for
    /// verifiers): `cert` and `key` its server identity, `ca` the CA of
    /// verifiers' client certificates, which a client may withhold (and
    /// present a bearer token instead); HTTP/1.1 and HTTP/2.
    pub fn load_https(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        Reloading::load(files, https_server_config).map(ServerTls)
    }

    /// The configuration the next handshake uses.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.0.current()
    }
}

impl Reload for ServerTls {
    fn reload_if_changed(&self) -> Result<bool, TlsError> {
        self.0.reload_if_changed()
    }
    fn describe(&self) -> String {
        self.0.files.cert.display().to_string()
    }
}

/// Checks the leaf certificate (DER) of the server a client reached.
pub type PeerCheck = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

/// The client side: the role's identity presented to the server, the
/// server's certificate chained to the CA, and optionally a check of who
/// the server is (a follower talks to the registry, not to any role).
pub struct ClientTls {
    cfg: Reloading<ClientConfig>,
    peer: Option<PeerCheck>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("files", &self.cfg.files)
            .field("peer_check", &self.peer.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Reads and checks the files.
    pub fn load(files: &TlsFiles) -> Result<ClientTls, TlsError> {
        Ok(ClientTls {
            cfg: Reloading::load(files, client_config)?,
            peer: None,
        })
    }

    /// Refuses servers whose certificate `check` refuses.
    pub fn with_peer_check(mut self, check: PeerCheck) -> ClientTls {
        self.peer = Some(check);
        self
    }

    /// Connects a gRPC channel to `endpoint` (made with
    /// [`endpoint_for_tls`]) over mutual TLS; a connection made again
    /// later (after a failure) uses the material current then.
    pub async fn connect(
        self: &Arc<Self>,
        endpoint: tonic::transport::Endpoint,
    ) -> Result<tonic::transport::Channel, tonic::transport::Error> {
        let tls = self.clone();
        endpoint
            .connect_with_connector(tower::service_fn(move |uri: http::Uri| {
                let tls = tls.clone();
                async move { tls.handshake(&uri).await.map(hyper_util::rt::TokioIo::new) }
            }))
            .await
    }

    async fn handshake(
        &self,
        uri: &http::Uri,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let host = uri
            .host()
            .ok_or_else(|| std::io::Error::other(format!("{uri}: no host")))?;
        let port = uri.port_u16().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_string())
            .map_err(|e| std::io::Error::other(format!("{host}: {e}")))?;
        let tcp = TcpStream::connect((bare, port)).await?;
        tcp.set_nodelay(true)?;
        let stream = tokio_rustls::TlsConnector::from(self.cfg.current())
            .connect(name, tcp)
            .await?;
        if let Some(check) = &self.peer {
            let leaf = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .ok_or_else(|| std::io::Error::other("the server presented no certificate"))?;
            check(leaf.as_ref()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{host}:{port}: {e}"),
                )
            })?;
        }
        Ok(stream)
    }
}

impl Reload for ClientTls {
    fn reload_if_changed(&self) -> Result<bool, TlsError> {
        self.cfg.reload_if_changed()
    }
    fn describe(&self) -> String {
        self.cfg.files.cert.display().to_string()
    }
}

/// An endpoint string as tonic is to see it: TLS is done by
/// [`ClientTls::connect`]'s connector, so the scheme tonic sees is `http`.
pub fn endpoint_for_tls(endpoint: &str) -> Result<tonic::transport::Endpoint, String> {
    let plain = match endpoint.strip_prefix("https://") {
        Some(rest) => format!("http://{rest}"),
        None => endpoint.to_string(),
    };
    tonic::transport::Endpoint::from_shared(plain).map_err(|e| format!("{endpoint}: {e}"))
}

/// Re-reads `what`'s files every `every` until `stop`; a change is logged,
/// a failure too (the material loaded before stays in use).
pub fn spawn_reloader(
    what: Arc<dyn Reload>,
    every: Duration,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            match what.reload_if_changed() {
                Ok(true) => tracing::info!(cert = %what.describe(), "TLS material reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    cert = %what.describe(),
                    error = %e,
                    "TLS material not reloaded; the previous stays in use"
                ),
            }
        }
    })
}

/// Limits of a TLS listener.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    /// A handshake not finished by then is dropped.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once; more connections wait in the
    /// kernel's backlog.
    pub max_handshakes: usize,
    /// Connections open at once (handshaking or established); more wait
    /// in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// Connections open at once from one IP address; more are closed as
    /// soon as accepted (counted in the failed handshakes, reason
    /// `peer_limit`), so that one client cannot take every slot.
    pub max_per_peer: usize,
    /// A connection without a request or a response for this long is
    /// closed, HTTP/2 keep-alive pings notwithstanding (`None`: never for
    /// being idle).
    pub idle_timeout: Option<Duration>,
    /// Connections without a client certificate (where the TLS
    /// configuration lets a client withhold one) open at once; more are
    /// closed after the handshake (`anonymous_limit`). Each lives at most
    /// [`ANONYMOUS_MAX_AGE`]: long enough to read why its calls are
    /// refused, too short to hold a place. `usize::MAX`: no limit and no
    /// age (an HTTPS endpoint where a bearer token may stand in for a
    /// certificate).
    pub max_anonymous: usize,
}

/// How long a connection without a client certificate lives.
pub const ANONYMOUS_MAX_AGE: Duration = Duration::from_secs(30);

impl Default for AcceptLimits {
    /// For internal endpoints: callers are few, known and long-lived.
    fn default() -> Self {
        AcceptLimits {
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 256,
            max_connections: 4096,
            max_per_peer: usize::MAX,
            idle_timeout: None,
            max_anonymous: usize::MAX,
        }
    }
}

/// Connections open per IP address, shared by a listener's connections.
type PeerCounts = Arc<Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One connection's place in its peer's count, given back on drop.
struct PeerSlot {
    counts: PeerCounts,
    ip: std::net::IpAddr,
}

impl PeerSlot {
    /// A place for `ip`, unless it holds `max` already. An IPv6 address
    /// counts as its /64 (one host usually has a whole /64), an
    /// IPv4-mapped one as the IPv4 address.
    fn take(counts: &PeerCounts, ip: std::net::IpAddr, max: usize) -> Option<PeerSlot> {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => std::net::IpAddr::V4(v4),
                None => std::net::IpAddr::V6(std::net::Ipv6Addr::from(
                    u128::from(v6) & !((1u128 << 64) - 1),
                )),
            },
            v4 => v4,
        };
        let mut map = counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// A connection accepted within [`AcceptLimits`]: it holds its places
/// (in the listener's connections and in its peer's) until dropped, and
/// fails its reads once idle past the limit (no request or response; the
/// server then closes it: [`crate::idle`]).
pub struct LimitedConn<S> {
    inner: crate::idle::IdleStream<S>,
    _slot: tokio::sync::OwnedSemaphorePermit,
    _peer: Option<PeerSlot>,
    /// A connection without a client certificate: its place among those,
    /// and when it is closed whatever it does.
    anonymous: Option<(
        tokio::sync::OwnedSemaphorePermit,
        std::pin::Pin<Box<tokio::time::Sleep>>,
    )>,
}

impl<S> LimitedConn<S> {
    /// The connection inside (a TLS stream: its peer's certificates).
    pub fn tls(&self) -> &S {
        self.inner.get_ref()
    }
}

impl<S> std::fmt::Debug for LimitedConn<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedConn").finish_non_exhaustive()
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for LimitedConn<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some((_, until)) = &mut self.anonymous
            && std::future::Future::poll(until.as_mut(), cx).is_ready()
        {
            return std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "a connection without a client certificate lived its time",
            )));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for LimitedConn<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected
    for LimitedConn<S>
{
    type ConnectInfo = S::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.get_ref().connect_info()
    }
}

/// A connection of [`accept_tls`].
pub type TlsConn = LimitedConn<tokio_rustls::server::TlsStream<TcpStream>>;

/// The TLS connections of `listener`, handshakes done (each on its own
/// task, bounded in time and number), within `limits` (connections at
/// once, per peer, idle time), until `stop`. Failed handshakes (no
/// certificate, an unknown or revoked one, a timeout) and connections
/// refused for their peer's count or as one anonymous too many are
/// counted in `failed` by reason (`refused`, `timeout`, `peer_limit`,
/// `anonymous_limit`).
pub fn accept_tls(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    limits: AcceptLimits,
    failed: prometheus::IntCounterVec,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsConn>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(limits.max_handshakes.max(1)));
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let anonymous = Arc::new(tokio::sync::Semaphore::new(
        limits
            .max_anonymous
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
    ));
    let peers: PeerCounts = Arc::default();
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            let slot = tokio::select! {
                () = &mut stop => return,
                p = connections.clone().acquire_owned() => p,
            };
            let Ok(slot) = slot else { return };
            let permit = tokio::select! {
                () = &mut stop => return,
                p = handshakes.clone().acquire_owned() => p,
            };
            let Ok(permit) = permit else { return };
            let (tcp, peer) = tokio::select! {
                () = &mut stop => return,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: pause, not spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let peer_slot = if limits.max_per_peer == usize::MAX {
                None
            } else {
                match PeerSlot::take(&peers, peer.ip(), limits.max_per_peer) {
                    Some(s) => Some(s),
                    None => {
                        failed.with_label_values(&["peer_limit"]).inc();
                        tracing::debug!(%peer, "connection refused: this peer holds its limit of connections");
                        continue;
                    }
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            let tx = tx.clone();
            let failed = failed.clone();
            let anonymous = anonymous.clone();
            tokio::spawn(async move {
                let done =
                    tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await;
                drop(permit);
                match done {
                    Ok(Ok(stream)) => {
                        let certified = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .is_some_and(|c| !c.is_empty());
                        let anonymous = if certified || limits.max_anonymous == usize::MAX {
                            None
                        } else if let Ok(p) = anonymous.try_acquire_owned() {
                            Some((p, Box::pin(tokio::time::sleep(ANONYMOUS_MAX_AGE))))
                        } else {
                            failed.with_label_values(&["anonymous_limit"]).inc();
                            tracing::debug!(%peer, "connection without a certificate closed: too many");
                            return;
                        };
                        let conn = LimitedConn {
                            inner: crate::idle::IdleStream::new(stream, limits.idle_timeout),
                            _slot: slot,
                            _peer: peer_slot,
                            anonymous,
                        };
                        let _ = tx.send(Ok(conn)).await;
                    }
                    // Counted, logged at debug only: a flood must not flood the log.
                    Ok(Err(e)) => {
                        failed.with_label_values(&["refused"]).inc();
                        tracing::debug!(%peer, error = %e, "TLS handshake refused");
                    }
                    Err(_) => {
                        failed.with_label_values(&["timeout"]).inc();
                        tracing::debug!(%peer, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
