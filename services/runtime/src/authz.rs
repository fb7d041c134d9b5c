//! Authorization of every gRPC call, in one layer (issue 12): the caller
//! is read from the TLS client certificate the handshake verified, the
//! method from the request path, and an [`Authorize`] policy decides.
//! A refused call never reaches a service: `UNAUTHENTICATED` when the
//! caller has no identity, `PERMISSION_DENIED` when the identity may not
//! call the method; both are counted in `shikko_authz_denied_total` by
//! method and reason, and logged with the method and the identity only (at
//! most one line per 10 s and kind, with the number refused since).
//!
//! An admitted call carries its [`Caller`] in the request's extensions,
//! for the rules that depend on the request (a `Follow` asking for
//! personal data, say).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub use tokio_rustls::rustls::pki_types::CertificateDer;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// Handed to every admitted call beside its [`Caller`]: a handler that
/// refuses on what the request asks (not on the method: a `Follow` asking
/// for personal data) counts the refusal in the layer's own
/// `shikko_authz_denied_total`, reason `request_denied`.
#[derive(Clone, Debug)]
pub struct Refusals {
    denied: prometheus::IntCounterVec,
    method: &'static str,
}

impl Refusals {
    /// Counts one refusal of this call by a rule on the request.
    pub fn count(&self) {
        self.denied
            .with_label_values(&[self.method, "request_denied"])
            .inc();
    }
}

/// Who called: the identity an [`Authorize`] policy read from the
/// caller's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Arc<str>);

impl Caller {
    /// The identity's name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No identity: no certificate, or one that names none.
    Unauthenticated(&'static str),
    /// An identity that may not call this method.
    PermissionDenied(Caller),
}

/// Decides who may call what.
pub trait Authorize: Send + Sync + 'static {
    /// The caller of `method`, given the certificate chain the TLS
    /// handshake verified (leaf first; `None` without one), or why not.
    fn authorize(
        &self,
        method: &str,
        peer: Option<&[CertificateDer<'static>]>,
    ) -> Result<Caller, Denial>;

    /// The metric label for `method`: the method itself when the policy
    /// knows it, a constant otherwise (a caller must not be able to mint
    /// label values).
    fn label(&self, method: &str) -> &'static str;
}

/// Logs at most one line per interval, with the number of events since:
/// refusals are counted one by one in the metric; a flood of them (on a
/// port that lets anyone finish the handshake) must not flood the log.
#[derive(Debug, Default)]
struct Sampled {
    last: std::sync::atomic::AtomicU64,
    since: std::sync::atomic::AtomicU64,
}

impl Sampled {
    const EVERY_SECS: u64 = 10;

    /// `Some(n)`: log now, `n` events since the last line (this one included).
    fn tick(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let since = self.since.fetch_add(1, Relaxed) + 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last.load(Relaxed);
        if now.saturating_sub(last) >= Self::EVERY_SECS
            && self
                .last
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.since.fetch_sub(since, Relaxed);
            return Some(since);
        }
        None
    }
}

/// The layer, with its metric.
#[derive(Clone)]
pub struct AuthzLayer {
    policy: Arc<dyn Authorize>,
    denied: prometheus::IntCounterVec,
    unauthenticated_log: Arc<Sampled>,
    denied_log: Arc<Sampled>,
}

impl std::fmt::Debug for AuthzLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthzLayer")
    }
}

impl AuthzLayer {
    /// `policy` decides; refusals count in `denied` (labels `method`, `reason`).
    pub fn new(policy: Arc<dyn Authorize>, denied: prometheus::IntCounterVec) -> AuthzLayer {
        AuthzLayer {
            policy,
            denied,
            unauthenticated_log: Arc::default(),
            denied_log: Arc::default(),
        }
    }
}

impl<S> tower::Layer<S> for AuthzLayer {
    type Service = Authz<S>;
    fn layer(&self, inner: S) -> Authz<S> {
        Authz {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthzLayer`] wraps around an endpoint's routes.
#[derive(Clone, Debug)]
pub struct Authz<S> {
    inner: S,
    layer: AuthzLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower_service::Service<http::Request<B>> for Authz<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let method = req.uri().path();
        let certs = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs);
        let remote = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.get_ref().remote_addr());
        match self
            .layer
            .policy
            .authorize(method, certs.as_deref().map(Vec::as_slice))
        {
            Ok(caller) => {
                let refusals = Refusals {
                    denied: self.layer.denied.clone(),
                    method: self.layer.policy.label(method),
                };
                req.extensions_mut().insert(caller);
                req.extensions_mut().insert(refusals);
                Box::pin(self.inner.call(req))
            }
            Err(denial) => {
                let label = self.layer.policy.label(method);
                let status = match &denial {
                    Denial::Unauthenticated(why) => {
                        self.layer
                            .denied
                            .with_label_values(&[label, "unauthenticated"])
                            .inc();
                        if let Some(n) = self.layer.unauthenticated_log.tick() {
                            tracing::warn!(method = label, remote = ?remote, reason = why, refused_since_last_log = n, "call refused: no identity");
                        }
                        tonic::Status::unauthenticated(why.to_string())
                    }
                    Denial::PermissionDenied(caller) => {
                        self.layer
                            .denied
                            .with_label_values(&[label, "permission_denied"])
                            .inc();
                        if let Some(n) = self.layer.denied_log.tick() {
                            tracing::warn!(method = label, caller = caller.name(), remote = ?remote, refused_since_last_log = n, "call refused: not allowed");
                        }
                        tonic::Status::permission_denied(format!(
                            "{} may not call {label}",
                            caller.name()
                        ))
                    }
                };
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
