//! Who may read revocation data over HTTP, and how much each reads (issue
//! 15, items 1 and 2): the gate in front of the CRL and OCSP endpoints.
//!
//! A deployment chooses per endpoint: `public` (anyone, like a Web PKI CA;
//! a registered verifier's token is still recognised and its use counted)
//! or `restricted` (registered verifiers only: a request without a token in
//! force gets 401 from the CRL endpoints, and OCSP's `unauthorized`
//! (RFC 6960 2.3) from the responder). A verifier presents
//! `Authorization: Bearer TOKEN`, or its registered TLS client certificate
//! on the endpoint's HTTPS listener ([`HttpsConfig`]); the credentials in
//! force come from the info role (`InfoAdmin.VerifierTable`, SHA-256 only)
//! and are refreshed every few seconds, so a revoked one stops working
//! within a refresh.
//!
//! Every request is counted per verifier (`-` when anonymous), Japanese day,
//! endpoint (`ocsp`, `crl_full`, `crl_delta`, `crl_partition`,
//! `filter_full`, `filter_delta`), purpose
//! (`Shikko-Purpose: signature | status | login`, else `unspecified`) and
//! outcome (OCSP: `good`, `revoked`, `unknown`, `not_modified`, ...; CRLs:
//! `ok`, `not_modified`, `not_found`; refusals: `refused_no_token`,
//! `refused_bad_token`, `refused_bad_certificate`, `rate_limited`). The counts are sent to the info
//! role (`InfoAdmin.ReportUsage`) every few seconds and at shutdown; a
//! report that fails is kept and sent with the next.
//!
//! In restricted mode, answers are `Cache-Control: private`: a shared
//! cache must not hand them to someone the gate would refuse.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shikko_core::UnixTime;

/// Who an endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Anyone (registered verifiers' use is still counted).
    #[default]
    Public,
    /// Registered verifiers only.
    Restricted,
}

/// `[ROLE.access]`: the endpoint's mode and where verifiers and usage go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// `public` or `restricted`. Default `public`.
    pub mode: Mode,
    /// The info role's internal endpoint (InfoAdmin), where the tokens in
    /// force come from and usage goes (presenting the role's identity).
    /// Required for `restricted`; without it a public endpoint counts
    /// nothing per verifier. Default: none.
    pub info: Option<String>,
    /// Seconds between refreshes of the tokens in force. Default 10.
    pub refresh_secs: u64,
    /// Seconds between usage reports. Default 10.
    pub report_secs: u64,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            mode: Mode::Public,
            info: None,
            refresh_secs: 10,
            report_secs: 10,
        }
    }
}

impl AccessConfig {
    /// Whether the values make sense (`section` names the TOML section).
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if self.mode == Mode::Restricted && self.info.is_none() {
            return Err(format!(
                "[{section}] mode = \"restricted\" needs info (the info role's internal endpoint, where the registered verifiers are)"
            ));
        }
        if self.refresh_secs == 0 || self.report_secs == 0 {
            return Err(format!(
                "[{section}] refresh_secs and report_secs must be at least 1"
            ));
        }
        Ok(())
    }
}

/// `[ROLE.https]`: the same CRL or OCSP endpoints over TLS, for verifiers
/// that authenticate with a TLS client certificate (registered with
/// `shikko admin verifier-cert-add`), or send their bearer token over TLS.
/// The client certificate is optional at the handshake; when presented it
/// must chain to `client_ca` (and not be on `client_crls`), and the gate
/// then knows the verifier by the certificate's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsConfig {
    /// Listen address. Required.
    pub listen: std::net::SocketAddr,
    /// The server's certificate (PEM or DER; a chain in PEM). Required.
    pub cert: std::path::PathBuf,
    /// Its private key (PKCS#8, PEM or DER). Required.
    pub key: std::path::PathBuf,
    /// The CA that issues verifiers' client certificates (PEM or DER). Required.
    pub client_ca: std::path::PathBuf,
    /// CRLs of that CA: a revoked client certificate fails the handshake.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_crls: Vec<std::path::PathBuf>,
    /// Seconds between re-reads of these files. Default 30.
    #[serde(default = "default_https_reload")]
    pub reload_secs: u64,
}

fn default_https_reload() -> u64 {
    30
}

impl HttpsConfig {
    /// Whether the values make sense (`section` names the TOML section).
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if self.reload_secs == 0 {
            return Err(format!("[{section}] reload_secs must be at least 1"));
        }
        Ok(())
    }

    /// The server's TLS configuration, read and checked.
    pub fn load(&self) -> Result<Arc<shikko_runtime::ServerTls>, shikko_runtime::TlsError> {
        shikko_runtime::ServerTls::load_https(&shikko_runtime::TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: self.client_ca.clone(),
            crls: self.client_crls.clone(),
        })
        .map(Arc::new)
    }

    /// The acceptor's limits: the HTTP endpoint's cap on connections and
    /// idle time; clients may come without a certificate (a bearer token
    /// over TLS) for as long as they like; no cap per address (a
    /// verifier's proxy holds many).
    pub fn accept_limits(&self, http: &shikko_runtime::HttpLimits) -> shikko_runtime::AcceptLimits {
        shikko_runtime::AcceptLimits {
            handshake_timeout: http.header_read_timeout,
            max_handshakes: 256,
            max_connections: http.max_connections,
            max_per_peer: usize::MAX,
            idle_timeout: Some(http.idle_timeout),
            max_anonymous: usize::MAX,
        }
    }

    /// Reads the files and binds the listener (before the role announces
    /// its ports), if configured.
    pub async fn bind(cfg: Option<&HttpsConfig>) -> shikko_runtime::RoleResult<Option<HttpsBound>> {
        use shikko_runtime::Context;
        let Some(cfg) = cfg else {
            return Ok(None);
        };
        let tls = cfg.load().context("the HTTPS endpoint's files")?;
        let listener = shikko_runtime::bind(cfg.listen, "HTTPS").await?;
        Ok(Some(HttpsBound {
            listener,
            tls,
            cfg: cfg.clone(),
        }))
    }
}

/// An HTTPS endpoint, bound ([`HttpsConfig::bind`]).
#[derive(Debug)]
pub struct HttpsBound {
    /// Its listener.
    pub listener: tokio::net::TcpListener,
    tls: Arc<shikko_runtime::ServerTls>,
    cfg: HttpsConfig,
}

impl HttpsBound {
    /// Adds the endpoint to `server`, serving `app` within `limits`.
    pub fn attach(
        self,
        server: shikko_runtime::RoleServer,
        app: axum::Router,
        limits: shikko_runtime::HttpLimits,
    ) -> shikko_runtime::RoleServer {
        let accept = self.cfg.accept_limits(&limits);
        server.https(
            self.listener,
            app,
            limits,
            self.tls,
            std::time::Duration::from_secs(self.cfg.reload_secs.max(1)),
            accept,
        )
    }
}

/// Which endpoint a gate guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The OCSP responder.
    Ocsp,
    /// The CRL distribution points.
    Crl,
}

/// A registered verifier, as the gate knows it.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Its id.
    pub id: Arc<str>,
    /// OCSP requests per second.
    pub per_second: u32,
    /// OCSP burst.
    pub burst: u32,
    /// Its OCSP rate limiter (shared by its tokens, kept across refreshes).
    bucket: Arc<Limiter>,
}

impl Verifier {
    /// A verifier with a full bucket.
    pub fn new(id: &str, per_second: u32, burst: u32) -> Verifier {
        Verifier {
            id: Arc::from(id),
            per_second,
            burst,
            bucket: Arc::new(Limiter {
                tat: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }
}

/// One counter's key. Compared and hashed by identity (the day's and the
/// verifier's shared strings, the static labels), which keeps counting
/// cheap; the same verifier under two table refreshes may make two keys,
/// which the info role adds up.
#[derive(Debug, Clone)]
pub struct UsageKey {
    /// The Japanese day, `YYYY-MM-DD`.
    pub day: Arc<str>,
    /// The verifier, or `-`.
    pub verifier: Arc<str>,
    /// The endpoint.
    pub endpoint: &'static str,
    /// The purpose.
    pub purpose: &'static str,
    /// The outcome.
    pub outcome: &'static str,
}

impl PartialEq for UsageKey {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.day, &o.day)
            && Arc::ptr_eq(&self.verifier, &o.verifier)
            && std::ptr::eq(self.endpoint, o.endpoint)
            && std::ptr::eq(self.purpose, o.purpose)
            && std::ptr::eq(self.outcome, o.outcome)
    }
}

impl Eq for UsageKey {}

impl std::hash::Hash for UsageKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (Arc::as_ptr(&self.day) as *const u8 as usize).hash(h);
        (Arc::as_ptr(&self.verifier) as *const u8 as usize).hash(h);
        (self.endpoint.as_ptr() as usize).hash(h);
        (self.purpose.as_ptr() as usize).hash(h);
        (self.outcome.as_ptr() as usize).hash(h);
    }
}

/// What the handler answered, for the meter (a response extension; without
/// it the status code decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metered(pub &'static str);

/// A token bucket as GCRA (the generic cell rate algorithm): one atomic,
/// the theoretical arrival time of the next request (nanoseconds since the
/// process's epoch), moved on by one emission interval per request.
#[derive(Debug)]
struct Limiter {
    tat: std::sync::atomic::AtomicU64,
}

/// The epoch of [`Limiter`] times.
fn nanos() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let e = *EPOCH.get_or_init(std::time::Instant::now);
    // Offset so that a fresh limiter (tat 0) has its whole burst.
    u64::try_from(e.elapsed().as_nanos()).unwrap_or(u64::MAX) + (1 << 40)
}

/// The identity of a counter: pointers of the day's and verifier's strings
/// and of the static labels.
type CountId = (usize, usize, usize, usize, usize);

/// Counter shards, so that the cores do not queue on one lock.
const SHARDS: usize = 8;

thread_local! {
    static SHARD: usize = {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

struct Day {
    /// The Unix day (UTC+9) the name is of.
    n: i64,
    name: Arc<str>,
}

/// A credential in force: the SHA-256 of a bearer token, or of a client
/// certificate's DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A bearer token's SHA-256.
    Token([u8; 32]),
    /// A TLS client certificate's SHA-256.
    Certificate([u8; 32]),
}

/// The credentials in force.
#[derive(Debug, Default)]
struct Table {
    tokens: HashMap<[u8; 32], Verifier>,
    certificates: HashMap<[u8; 32], Verifier>,
}

/// The gate (see the module).
pub struct Gate {
    mode: Mode,
    endpoint: Endpoint,
    table: RwLock<Arc<Table>>,
    loaded: AtomicBool,
    counts: Vec<Mutex<HashMap<CountId, (UsageKey, u64)>>>,
    day: RwLock<Day>,
    anonymous: Arc<str>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("mode", &self.mode)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Takes one request from `v`'s rate (GCRA: a request is admitted while the
/// theoretical arrival time is no more than the burst ahead of now).
fn allow(v: &Verifier) -> bool {
    let rate = u64::from(v.per_second.max(1));
    let interval = 1_000_000_000 / rate;
    let tolerance = interval * u64::from(v.burst.max(1));
    let now = nanos();
    let mut tat = v.bucket.tat.load(Ordering::Relaxed);
    loop {
        let next = tat.max(now) + interval;
        if next - now > tolerance {
            return false;
        }
        match v
            .bucket
            .tat
            .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => return true,
            Err(t) => tat = t,
        }
    }
}

/// An OCSPResponse of status `unauthorized` (6), not signed: `30 03 0a 01 06`.
const OCSP_UNAUTHORIZED: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x06];
/// An OCSPResponse of status `tryLater` (3), not signed.
const OCSP_TRY_LATER: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x03];

fn japanese_day(now: UnixTime) -> (i64, String) {
    let t = now.plus_secs(9 * 3600);
    let (y, m, d, ..) = t.to_civil();
    (t.0.div_euclid(86_400), format!("{y:04}-{m:02}-{d:02}"))
}

/// The purpose a request states.
fn purpose(headers: &axum::http::HeaderMap) -> &'static str {
    purpose_of(headers.get("shikko-purpose").map(|v| v.as_bytes()))
}

/// The purpose a `Shikko-Purpose` value states.
fn purpose_of(value: Option<&[u8]>) -> &'static str {
    match value.map(<[u8]>::trim_ascii) {
        Some(b"signature") => "signature",
        Some(b"status") => "status",
        Some(b"login") => "login",
        _ => "unspecified",
    }
}

/// The token of an `Authorization` value: what follows `Bearer `, trimmed
/// (empty for another scheme); `None` without one, or for a value that is
/// not visible ASCII.
fn bearer(value: Option<&[u8]>) -> Option<&str> {
    let v = value?;
    if !v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return None;
    }
    let v = std::str::from_utf8(v).ok()?;
    Some(v.strip_prefix("Bearer ").unwrap_or("").trim())
}

/// The endpoint label of a path the CRL routes serve: a CRL's, or a
/// compact revocation filter's.
pub fn crl_endpoint(path: &str) -> &'static str {
    if path.ends_with("/full.crl") {
        "crl_full"
    } else if path.ends_with("/delta.crl") {
        "crl_delta"
    } else if path.ends_with("/full.filter") {
        "filter_full"
    } else if path.ends_with("/delta.filter") {
        "filter_delta"
    } else {
        "crl_partition"
    }
}

impl Gate {
    /// A gate in `mode` for `endpoint`. A restricted gate refuses everyone
    /// until its first table arrives ([`Gate::set_table`]).
    pub fn new(mode: Mode, endpoint: Endpoint) -> Arc<Gate> {
        let (n, name) = japanese_day(UnixTime::now());
        Arc::new(Gate {
            mode,
            endpoint,
            table: RwLock::new(Arc::new(Table::default())),
            loaded: AtomicBool::new(false),
            counts: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            day: RwLock::new(Day {
                n,
                name: name.into(),
            }),
            anonymous: Arc::from("-"),
        })
    }

    /// Its mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether a table of tokens has arrived.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// Replaces the credentials in force, each with its verifier.
    pub fn set_table(&self, entries: impl IntoIterator<Item = (Credential, Verifier)>) {
        // A verifier keeps its id's string and its bucket across refreshes.
        let old = self.table.read().unwrap_or_else(|p| p.into_inner()).clone();
        let known: HashMap<&str, &Verifier> = old
            .tokens
            .values()
            .chain(old.certificates.values())
            .map(|v| (&*v.id, v))
            .collect();
        let mut table = Table::default();
        // One verifier, one bucket, whichever credential it comes with.
        let mut fresh: HashMap<String, Verifier> = HashMap::new();
        for (c, v) in entries {
            let v = match known.get(&*v.id) {
                Some(o) => Verifier {
                    id: o.id.clone(),
                    bucket: o.bucket.clone(),
                    ..v
                },
                None => fresh.entry(v.id.to_string()).or_insert(v).clone(),
            };
            match c {
                Credential::Token(k) => table.tokens.insert(k, v),
                Credential::Certificate(k) => table.certificates.insert(k, v),
            };
        }
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        self.loaded.store(true, Ordering::Relaxed);
    }

    /// The verifier a credential is of (its id), and whether its OCSP
    /// rate admits one more request (always for CRLs).
    fn verifier_of(&self, c: Credential) -> Option<(Arc<str>, bool)> {
        let t = self.table.read().unwrap_or_else(|p| p.into_inner());
        let v = match c {
            Credential::Token(k) => t.tokens.get(&k),
            Credential::Certificate(k) => t.certificates.get(&k),
        }?;
        let allowed = self.endpoint == Endpoint::Crl || allow(v);
        Some((v.id.clone(), allowed))
    }

    fn today(&self) -> Arc<str> {
        let now = UnixTime::now();
        let n = now.plus_secs(9 * 3600).0.div_euclid(86_400);
        {
            let d = self.day.read().unwrap_or_else(|p| p.into_inner());
            if d.n == n {
                return d.name.clone();
            }
        }
        let (n, name) = japanese_day(now);
        let mut d = self.day.write().unwrap_or_else(|p| p.into_inner());
        *d = Day {
            n,
            name: name.into(),
        };
        d.name.clone()
    }

    /// Counts one request.
    pub fn count(
        &self,
        verifier: &Arc<str>,
        endpoint: &'static str,
        purpose: &'static str,
        outcome: &'static str,
    ) {
        let day = self.today();
        let id = (
            Arc::as_ptr(&day) as *const u8 as usize,
            Arc::as_ptr(verifier) as *const u8 as usize,
            endpoint.as_ptr() as usize,
            purpose.as_ptr() as usize,
            outcome.as_ptr() as usize,
        );
        let shard = SHARD.with(|s| *s);
        let mut m = self.counts[shard].lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(&id) {
            Some(e) => e.1 += 1,
            None => {
                m.insert(
                    id,
                    (
                        UsageKey {
                            day,
                            verifier: verifier.clone(),
                            endpoint,
                            purpose,
                            outcome,
                        },
                        1,
                    ),
                );
            }
        }
    }

    /// The counts since the last take (for a report).
    pub fn take_counts(&self) -> HashMap<UsageKey, u64> {
        let mut out: HashMap<UsageKey, u64> = HashMap::new();
        for s in &self.counts {
            let m = std::mem::take(&mut *s.lock().unwrap_or_else(|p| p.into_inner()));
            for (_, (k, n)) in m {
                *out.entry(k).or_default() += n;
            }
        }
        out
    }

    /// Puts back counts a report could not deliver.
    pub fn restore_counts(&self, counts: HashMap<UsageKey, u64>) {
        for (k, n) in counts {
            let id = (
                Arc::as_ptr(&k.day) as *const u8 as usize,
                Arc::as_ptr(&k.verifier) as *const u8 as usize,
                k.endpoint.as_ptr() as usize,
                k.purpose.as_ptr() as usize,
                k.outcome.as_ptr() as usize,
            );
            let mut m = self.counts[0].lock().unwrap_or_else(|p| p.into_inner());
            m.entry(id).or_insert((k, 0)).1 += n;
        }
    }

    fn refusal(&self, why: Refusal) -> Response {
        match (self.endpoint, why) {
            (Endpoint::Ocsp, _) => (
                [(header::CONTENT_TYPE, "application/ocsp-response")],
                OCSP_UNAUTHORIZED.to_vec(),
            )
                .into_response(),
            // Authenticated by the handshake, yet not a registered verifier's.
            (Endpoint::Crl, Refusal::BadCertificate) => (
                StatusCode::FORBIDDEN,
                "this client certificate is not one of a registered verifier in force\n",
            )
                .into_response(),
            (Endpoint::Crl, r) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"shikko\"")],
                format!(
                    "{}: present Authorization: Bearer TOKEN of a registered verifier, \
                     or its client certificate over HTTPS\n",
                    if r == Refusal::BadToken {
                        "the token is not one in force"
                    } else {
                        "no token"
                    }
                ),
            )
                .into_response(),
        }
    }
}

/// Why a restricted gate refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Nothing,
    BadToken,
    BadCertificate,
}

impl Refusal {
    /// Its outcome, as counted.
    fn outcome(self) -> &'static str {
        match self {
            Refusal::BadToken => "refused_bad_token",
            Refusal::BadCertificate => "refused_bad_certificate",
            Refusal::Nothing => "refused_no_token",
        }
    }
}

/// What the gate decided of a request (before counting it).
enum Admission {
    Pass(Pass),
    Refused(Pass, Refusal),
    RateLimited(Pass),
}

/// What [`Gate::admit_fast`] says.
#[derive(Debug)]
pub enum FastAdmit {
    /// Admitted: count it with [`Gate::finish_as`] once answered.
    Admitted(Pass),
    /// A registered verifier over its rate (counted): answer OCSP
    /// `tryLater` with `Retry-After`.
    RateLimited,
    /// Refused, and nothing counted: the full path answers it.
    Refer,
}

/// A request the gate let through, to count once answered ([`Gate::finish`]).
#[derive(Debug)]
pub struct Pass {
    who: Arc<str>,
    endpoint: &'static str,
    purpose: &'static str,
}

impl Gate {
    /// Admits a request with `headers` (and the client certificate of its
    /// TLS connection, if any) to `endpoint` (for OCSP, `ocsp`; for CRLs,
    /// [`crl_endpoint`] of its path), or answers it: a refusal, or OCSP
    /// `tryLater` beyond the verifier's rate (both counted). A registered
    /// client certificate identifies the verifier; otherwise its bearer
    /// token does.
    pub fn admit(
        &self,
        headers: &axum::http::HeaderMap,
        peer: Option<&shikko_runtime::PeerCertificate>,
        endpoint: &'static str,
    ) -> Result<Pass, Box<Response>> {
        let presented = bearer(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()));
        match self.decide(purpose(headers), presented, peer, endpoint) {
            Admission::Pass(pass) => Ok(pass),
            Admission::Refused(pass, refusal) => {
                self.count(&pass.who, endpoint, pass.purpose, refusal.outcome());
                Err(Box::new(self.refusal(refusal)))
            }
            Admission::RateLimited(pass) => {
                self.count(&pass.who, endpoint, pass.purpose, "rate_limited");
                Err(Box::new(
                    (
                        [
                            (header::CONTENT_TYPE, "application/ocsp-response"),
                            (header::RETRY_AFTER, "1"),
                        ],
                        OCSP_TRY_LATER.to_vec(),
                    )
                        .into_response(),
                ))
            }
        }
    }

    /// [`Gate::admit`] for a fast path (a request on plain HTTP, read as
    /// its raw `Shikko-Purpose` and `Authorization` values): a refusal is
    /// neither counted nor answered here ([`FastAdmit::Refer`]: the full
    /// path answers and counts it), a request over its verifier's rate is
    /// counted (`rate_limited`).
    pub fn admit_fast(
        &self,
        purpose: Option<&[u8]>,
        authorization: Option<&[u8]>,
        endpoint: &'static str,
    ) -> FastAdmit {
        match self.decide(purpose_of(purpose), bearer(authorization), None, endpoint) {
            Admission::Pass(pass) => FastAdmit::Admitted(pass),
            Admission::Refused(..) => FastAdmit::Refer,
            Admission::RateLimited(pass) => {
                self.count(&pass.who, endpoint, pass.purpose, "rate_limited");
                FastAdmit::RateLimited
            }
        }
    }

    /// Who asks, and whether they may: the one side effect is the rate a
    /// registered verifier's request takes.
    fn decide(
        &self,
        purpose: &'static str,
        presented: Option<&str>,
        peer: Option<&shikko_runtime::PeerCertificate>,
        endpoint: &'static str,
    ) -> Admission {
        let verifier = peer
            .and_then(|p| self.verifier_of(Credential::Certificate(p.0)))
            .or_else(|| {
                presented.and_then(|t| {
                    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.as_bytes());
                    self.verifier_of(Credential::Token(d.as_ref().try_into().ok()?))
                })
            });
        let pass = |who: Arc<str>| Pass {
            who,
            endpoint,
            purpose,
        };
        match verifier {
            None if self.mode == Mode::Restricted => {
                let refusal = match (presented.is_some(), peer.is_some()) {
                    (true, _) => Refusal::BadToken,
                    (false, true) => Refusal::BadCertificate,
                    (false, false) => Refusal::Nothing,
                };
                Admission::Refused(pass(self.anonymous.clone()), refusal)
            }
            None => Admission::Pass(pass(self.anonymous.clone())),
            Some((who, false)) => Admission::RateLimited(pass(who)),
            Some((who, true)) => Admission::Pass(pass(who)),
        }
    }

    /// Counts an admitted request by what `resp` says (its [`Metered`]
    /// label, else its status code).
    pub fn finish(&self, pass: &Pass, resp: &Response) {
        let outcome = match resp.extensions().get::<Metered>() {
            Some(m) => m.0,
            None => match resp.status() {
                StatusCode::OK => "ok",
                StatusCode::NOT_MODIFIED => "not_modified",
                StatusCode::NOT_FOUND => "not_found",
                _ => "error",
            },
        };
        self.finish_as(pass, outcome);
    }

    /// Counts an admitted request as answered `outcome`.
    pub fn finish_as(&self, pass: &Pass, outcome: &'static str) {
        self.count(&pass.who, pass.endpoint, pass.purpose, outcome);
    }

    /// Whether answers must not go to shared caches (restricted).
    pub fn private(&self) -> bool {
        self.mode == Mode::Restricted
    }
}

/// The gate as axum middleware (the CRL endpoints; the OCSP responder
/// calls [`Gate::admit`] and [`Gate::finish`] itself, on its hot path):
/// `router.layer(axum::middleware::from_fn_with_state(gate, verifiers::gate))`.
pub async fn gate(State(g): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let endpoint = match g.endpoint {
        Endpoint::Ocsp => "ocsp",
        Endpoint::Crl => crl_endpoint(req.uri().path()),
    };
    let peer = req
        .extensions()
        .get::<shikko_runtime::PeerCertificate>()
        .copied();
    let pass = match g.admit(req.headers(), peer.as_ref(), endpoint) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let mut resp = next.run(req).await;
    g.finish(&pass, &resp);
    if g.private()
        && let Some(cc) = resp.headers().get(header::CACHE_CONTROL)
        && let Ok(text) = cc.to_str()
        && text.contains("public")
        && let Ok(v) = HeaderValue::from_str(&text.replace("public", "private"))
    {
        resp.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_japanese_and_purposes_are_a_closed_set() {
        // 2026-05-10 14:59:59 UTC is 23:59:59 JST.
        let t = UnixTime(UnixTime::from_civil(2026, 5, 10).0 + 14 * 3600 + 59 * 60 + 59);
        assert_eq!(japanese_day(t).1, "2026-05-10");
        assert_eq!(japanese_day(t.plus_secs(1)).1, "2026-05-11");
        assert_eq!(crl_endpoint("/crl/sign/full.crl"), "crl_full");
        assert_eq!(crl_endpoint("/crl/sign/delta.crl"), "crl_delta");
        assert_eq!(crl_endpoint("/crl/sign/13101.crl"), "crl_partition");
        assert_eq!(crl_endpoint("/filter/sign/full.filter"), "filter_full");
        assert_eq!(crl_endpoint("/filter/sign/delta.filter"), "filter_delta");
    }

    #[test]
    fn a_registered_certificate_or_token_is_admitted_and_nothing_else() {
        let g = Gate::new(Mode::Restricted, Endpoint::Crl);
        let sha = |b: &[u8]| -> [u8; 32] {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
                .as_ref()
                .try_into()
                .unwrap_or([0; 32])
        };
        let cert = shikko_runtime::PeerCertificate(sha(b"a certificate"));
        let other = shikko_runtime::PeerCertificate(sha(b"another certificate"));
        // Fail closed before the first table.
        let none = axum::http::HeaderMap::new();
        assert!(g.admit(&none, Some(&cert), "crl_full").is_err());
        g.set_table([
            (
                Credential::Certificate(cert.0),
                Verifier::new("bank", 10, 10),
            ),
            (
                Credential::Token(sha(b"tok")),
                Verifier::new("clinic", 10, 10),
            ),
        ]);
        let status = |r: Result<Pass, Box<Response>>| match r {
            Ok(p) => Ok(p.who.to_string()),
            Err(resp) => Err(resp.status().as_u16()),
        };
        assert_eq!(
            status(g.admit(&none, Some(&cert), "crl_full")),
            Ok("bank".into())
        );
        // A token's hash is not a certificate's, nor the other way round.
        assert_eq!(
            status(g.admit(
                &none,
                Some(&shikko_runtime::PeerCertificate(sha(b"tok"))),
                "crl_full"
            )),
            Err(403)
        );
        let mut bearer = axum::http::HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok"),
        );
        assert_eq!(
            status(g.admit(&bearer, None, "crl_full")),
            Ok("clinic".into())
        );
        // A registered certificate wins over a token; an unknown one lets the token speak.
        assert_eq!(
            status(g.admit(&bearer, Some(&cert), "crl_full")),
            Ok("bank".into())
        );
        assert_eq!(
            status(g.admit(&bearer, Some(&other), "crl_full")),
            Ok("clinic".into())
        );
        assert_eq!(status(g.admit(&none, Some(&other), "crl_full")), Err(403));
        assert_eq!(status(g.admit(&none, None, "crl_full")), Err(401));
        let counts = g.take_counts();
        let refused: Vec<&str> = counts
            .keys()
            .filter(|k| k.outcome.starts_with("refused"))
            .map(|k| k.outcome)
            .collect();
        assert!(refused.contains(&"refused_bad_certificate"), "{refused:?}");
        assert!(refused.contains(&"refused_no_token"), "{refused:?}");
    }

    /// The fast path's admission: a registered token is admitted (its
    /// purpose read from the raw value), over its rate it is `tryLater`
    /// and counted; a refusal is left to the full path, uncounted.
    #[test]
    fn the_fast_admission_counts_what_it_answers_and_refers_refusals() {
        let g = Gate::new(Mode::Restricted, Endpoint::Ocsp);
        let tok: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"tok")
            .as_ref()
            .try_into()
            .unwrap_or([0; 32]);
        g.set_table([(Credential::Token(tok), Verifier::new("clinic", 1, 1))]);
        let who = |a: FastAdmit| match a {
            FastAdmit::Admitted(p) => format!("{} {}", p.who, p.purpose),
            FastAdmit::RateLimited => "rate limited".into(),
            FastAdmit::Refer => "refer".into(),
        };
        assert_eq!(who(g.admit_fast(None, None, "ocsp")), "refer");
        assert_eq!(
            who(g.admit_fast(None, Some(b"Bearer nope"), "ocsp")),
            "refer"
        );
        assert_eq!(who(g.admit_fast(None, Some(b"Basic tok"), "ocsp")), "refer");
        assert!(
            g.take_counts().is_empty(),
            "refusals are the full path's to count"
        );
        assert_eq!(
            who(g.admit_fast(Some(b" login "), Some(b"Bearer tok"), "ocsp")),
            "clinic login"
        );
        assert_eq!(
            who(g.admit_fast(None, Some(b"Bearer  tok "), "ocsp")),
            "rate limited"
        );
        let counts = g.take_counts();
        assert_eq!(counts.len(), 1, "{counts:?}");
        let Some((k, n)) = counts.iter().next() else {
            panic!("one count")
        };
        assert_eq!(
            (&*k.verifier, k.outcome, k.purpose, *n),
            ("clinic", "rate_limited", "unspecified", 1)
        );
        // Public: anyone, anonymous.
        let p = Gate::new(Mode::Public, Endpoint::Ocsp);
        assert_eq!(who(p.admit_fast(None, None, "ocsp")), "- unspecified");
    }

    #[test]
    fn a_bucket_admits_its_burst_then_its_rate() {
        let v = Verifier::new("v", 1, 3);
        assert!((0..3).all(|_| allow(&v)));
        assert!(!allow(&v));
    }
}

/// Keeps `gate` current with the info role at `cfg.info` until `shutdown`:
/// the tokens in force every `refresh_secs`, usage reported every
/// `report_secs` and once more at shutdown. `tls` is the role's identity
/// (`None`: plaintext on loopback). Nothing to do without `cfg.info`.
pub async fn sync(
    gate: Arc<Gate>,
    cfg: AccessConfig,
    tls: shikko_runtime::TlsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    use shikko_proto::v1 as pb;
    use shikko_proto::v1::info_admin_client::InfoAdminClient;
    let Some(endpoint) = cfg.info.clone() else {
        return;
    };
    let tls = match crate::client_tls(
        &tls,
        crate::expect_server_one_of(&[
            shikko_pki::InternalRole::Info,
            shikko_pki::InternalRole::Registry,
        ]),
    ) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "the verifier gate cannot reach the info role: no identity");
            return;
        }
    };
    let reporter = {
        let mut raw = [0u8; 8];
        let _ =
            aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut raw);
        format!("{}-{}", std::process::id(), hex_of(&raw))
    };
    let mut seq = 0u64;
    let mut client: Option<InfoAdminClient<tonic::transport::Channel>> = None;
    let mut refresh = tokio::time::interval(std::time::Duration::from_secs(cfg.refresh_secs));
    let mut report = tokio::time::interval(std::time::Duration::from_secs(cfg.report_secs));
    report.tick().await;
    tokio::pin!(shutdown);
    loop {
        let (do_refresh, last) = tokio::select! {
            _ = refresh.tick() => (true, false),
            _ = report.tick() => (false, false),
            () = &mut shutdown => (false, true),
        };
        if client.is_none() {
            match crate::connect(&endpoint, tls.as_ref(), |ep| {
                ep.connect_timeout(std::time::Duration::from_secs(5))
                    .timeout(std::time::Duration::from_secs(20))
            })
            .await
            {
                Ok(ch) => client = Some(InfoAdminClient::new(ch)),
                Err(e) => {
                    tracing::warn!(error = %e, "the verifier gate cannot reach the info role; keeps its last table");
                    if last {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        if do_refresh {
            match c.verifier_table(pb::VerifierTableRequest {}).await {
                Ok(t) => gate.set_table(t.into_inner().entries.into_iter().filter_map(|e| {
                    let key: [u8; 32] = e.token_sha256.try_into().ok()?;
                    Some((
                        if e.certificate {
                            Credential::Certificate(key)
                        } else {
                            Credential::Token(key)
                        },
                        Verifier::new(&e.verifier, e.ocsp_per_second, e.ocsp_burst),
                    ))
                })),
                Err(e) => {
                    tracing::warn!(error = %e, "refreshing the verifiers' tokens failed; the last table stays");
                    client = None;
                }
            }
            continue;
        }
        let counts = gate.take_counts();
        if !counts.is_empty() {
            seq += 1;
            let req = pb::ReportUsageRequest {
                reporter: reporter.clone(),
                seq,
                counts: counts
                    .iter()
                    .map(|(k, n)| pb::UsageCount {
                        day: k.day.to_string(),
                        verifier: k.verifier.to_string(),
                        endpoint: k.endpoint.into(),
                        purpose: k.purpose.into(),
                        outcome: k.outcome.into(),
                        count: *n,
                    })
                    .collect(),
            };
            if let Err(e) = c.report_usage(req).await {
                tracing::warn!(error = %e, "reporting usage failed; sent again with the next report");
                gate.restore_counts(counts);
                client = None;
            }
        }
        if last {
            return;
        }
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The task that keeps a gate current, until [`last_report`].
#[derive(Debug)]
pub struct Metering {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The gate `access` configures for `endpoint` (none when the endpoint is
/// public and meters nothing: no cost), and the task that keeps it current
/// ([`sync`]); call [`last_report`] once serving is over.
pub fn start(
    endpoint: Endpoint,
    access: &AccessConfig,
    tls: &shikko_runtime::TlsConfig,
) -> (Option<Arc<Gate>>, Option<Metering>) {
    if access.mode == Mode::Public && access.info.is_none() {
        return (None, None);
    }
    let g = Gate::new(access.mode, endpoint);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sync(g.clone(), access.clone(), tls.clone(), async move {
        let _ = stopped.await;
    }));
    (Some(g), Some(Metering { stop, task }))
}

/// `router` behind `gate` (as middleware), if any.
pub fn layer(router: axum::Router, gate: Option<Arc<Gate>>) -> axum::Router {
    match gate {
        Some(g) => router.layer(axum::middleware::from_fn_with_state(g, self::gate)),
        None => router,
    }
}

/// Sends what the gate counted since its last report (at most 10 s), once
/// the endpoint has stopped serving: requests answered while draining are
/// counted too.
pub async fn last_report(m: Option<Metering>) {
    if let Some(m) = m {
        let _ = m.stop.send(());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), m.task).await;
    }
}
