//! OCSP over HTTP (RFC 6960 appendix A, RFC 5019): POST `/ocsp` with an
//! `application/ocsp-request` body, GET `/ocsp/{base64}` (the raw path,
//! never path-cleaned), answers `application/ocsp-response`.
//!
//! Answers without a nonce for one certificate carry RFC 5019 caching
//! headers (`Cache-Control: max-age=<nextUpdate - now>, public, no-transform,
//! must-revalidate`, `ETag`, `Last-Modified`, `Expires`; 304 on a matching
//! `If-None-Match`). Answers signed per request (a nonce, several CertIDs)
//! go through a bounded number of in-flight signings: beyond it the request
//! is shed with 503 and `Retry-After`, so they can never starve the cached path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use shikko_core::UnixTime;
use tokio::sync::Semaphore;

use crate::request::{MAX_REQUEST_BYTES, decode_get_path, decode_request};
use crate::responder::{Answer, Cached, Outcome, status_only};
use crate::role::OcspRole;
use crate::types::OcspResponseStatus;
use shikko_access::verifiers::{FastAdmit, Gate};
use shikko_runtime::PeerCertificate;

/// Content type of an OCSP response (RFC 6960 appendix C.2).
pub const RESPONSE_TYPE: &str = "application/ocsp-response";

#[derive(Clone)]
struct HttpState {
    role: Arc<OcspRole>,
    signing: Arc<Semaphore>,
    /// Registered verifiers and metering, if configured.
    gate: Option<Arc<Gate>>,
}

/// Routes `/ocsp` (POST) and `/ocsp/{base64}` (GET) over the role's
/// responder, with at most `max_signing` answers being signed at once (the
/// role's permits, shared with its gRPC `Check`; the first limit set wins).
pub fn router(role: Arc<OcspRole>, max_signing: usize) -> Router {
    router_gated(role, max_signing, None)
}

/// [`router`] behind a verifier gate: each request admitted (or refused,
/// `unauthorized`; beyond the verifier's rate, `tryLater`) and counted by
/// what it was answered, in the handler itself (no middleware on the
/// cached path); answers `private` to shared caches when restricted.
pub fn router_gated(role: Arc<OcspRole>, max_signing: usize, gate: Option<Arc<Gate>>) -> Router {
    role.limit_signing(max_signing);
    let signing = role.signing_permits();
    Router::new()
        .route("/ocsp", post(post_ocsp))
        .route("/ocsp/{*request}", get(get_ocsp))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(HttpState {
            role,
            signing,
            gate,
        })
}

/// Admits the request at the gate (if any), answers it with `f`, counts it.
async fn gated<F: std::future::Future<Output = Response>>(
    st: &HttpState,
    headers: &HeaderMap,
    peer: Option<Extension<PeerCertificate>>,
    f: impl FnOnce(bool) -> F,
) -> Response {
    match &st.gate {
        None => f(false).await,
        Some(g) => match g.admit(headers, peer.as_ref().map(|p| &p.0), "ocsp") {
            Err(refused) => *refused,
            Ok(pass) => {
                let resp = f(g.private()).await;
                g.finish(&pass, &resp);
                resp
            }
        },
    }
}

fn http_date(t: UnixTime) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(t.0.max(0) as u64))
}

fn ocsp_bytes(der: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, RESPONSE_TYPE)], der).into_response()
}

/// `r`, labelled for the verifier gate's meter.
fn metered(mut r: Response, outcome: &'static str) -> Response {
    r.extensions_mut()
        .insert(shikko_access::verifiers::Metered(outcome));
    r
}

async fn post_ocsp(
    State(st): State<HttpState>,
    peer: Option<Extension<PeerCertificate>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/ocsp-request") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/ocsp-request\n",
        )
            .into_response();
    }
    gated(&st.clone(), &headers, peer, |private| {
        answer(st, "post", &body, &headers, private)
    })
    .await
}

async fn get_ocsp(
    State(st): State<HttpState>,
    peer: Option<Extension<PeerCertificate>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // The raw path: base64 may contain '/' (and '//'), which must survive.
    let raw = uri.path().strip_prefix("/ocsp/").unwrap_or("");
    let h = &headers;
    gated(&st.clone(), h, peer, |private| async move {
        match decode_get_path(raw) {
            Ok(der) => answer(st, "get", &der, h, private).await,
            Err(_) => {
                count(&st, "get", "malformed");
                metered(
                    ocsp_bytes(status_only(OcspResponseStatus::MalformedRequest)),
                    "malformed",
                )
            }
        }
    })
    .await
}

fn count(st: &HttpState, method: &str, outcome: &str) {
    st.role
        .metrics()
        .requests
        .with_label_values(&[method, outcome])
        .inc();
}

async fn answer(
    st: HttpState,
    method: &str,
    der: &[u8],
    headers: &HeaderMap,
    private: bool,
) -> Response {
    let parsed = match decode_request(der) {
        Ok(p) => p,
        Err(_) => {
            count(&st, method, "malformed");
            return metered(
                ocsp_bytes(status_only(OcspResponseStatus::MalformedRequest)),
                "malformed",
            );
        }
    };
    let now = UnixTime::now();
    if !st.role.is_ready() {
        // Not caught up with the registry yet: no answer rather than a wrong one.
        count(&st, method, "not_ready");
        return metered(
            ocsp_bytes(status_only(OcspResponseStatus::TryLater)),
            "try_later",
        );
    }
    if st.role.too_stale(now) {
        // The registry has been out of reach longer than the stale-but-valid window.
        count(&st, method, "stale");
        return metered(
            ocsp_bytes(status_only(OcspResponseStatus::TryLater)),
            "try_later",
        );
    }
    let per_request = parsed.nonce.is_some() || parsed.cert_ids.len() > 1;
    let answer: Answer = match st.role.responder().cached(&parsed, now) {
        Some(a) => a,
        None => {
            // Every signature goes through the bounded permits: a flood of
            // misses (nonces, unknown serials) cannot starve the cached path.
            let Ok(permit) = st.signing.clone().try_acquire_owned() else {
                count(&st, method, "shed");
                return metered(
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(header::RETRY_AFTER, "1")],
                        "too many answers being signed; retry, or ask without a nonce\n",
                    )
                        .into_response(),
                    "shed",
                );
            };
            if st.role.responder().signs_fast() {
                let answer = timed(&st.role, &parsed, now);
                drop(permit);
                answer
            } else {
                let role = st.role.clone();
                match tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    timed(&role, &parsed, now)
                })
                .await
                {
                    Ok(a) => a,
                    Err(_) => {
                        count(&st, method, "internal_error");
                        return metered(
                            ocsp_bytes(status_only(OcspResponseStatus::InternalError)),
                            "internal_error",
                        );
                    }
                }
            }
        }
    };
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(RESPONSE_TYPE),
    );
    match (answer.this_update, answer.next_update, &answer.etag) {
        (Some(this), Some(next), Some(etag)) if !per_request => {
            let max_age = (next.0 - now.0).max(0);
            let set = |h: &mut HeaderMap, k, v: String| {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            };
            set(&mut h, header::ETAG, etag.to_string());
            set(&mut h, header::LAST_MODIFIED, http_date(this));
            set(&mut h, header::EXPIRES, http_date(next));
            let scope = if private { "private" } else { "public" };
            set(
                &mut h,
                header::CACHE_CONTROL,
                format!("max-age={max_age}, {scope}, no-transform, must-revalidate"),
            );
            let inm = headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok());
            if inm.is_some_and(|v| v.split(',').any(|t| t.trim() == &**etag || t.trim() == "*")) {
                h.remove(header::CONTENT_TYPE);
                count(&st, method, "not_modified");
                return metered(
                    (StatusCode::NOT_MODIFIED, h).into_response(),
                    "not_modified",
                );
            }
        }
        _ if answer.outcome == Outcome::Signed => {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        _ => {}
    }
    count(&st, method, answer.outcome.name());
    let label = match answer.outcome {
        Outcome::Cached | Outcome::Signed => answer.status,
        other => other.name(),
    };
    metered((h, answer.der).into_response(), label)
}

/// The header lines of a cached answer, rendered once when it is signed:
/// `content-type`, then what a 304 repeats (`etag`, `last-modified`,
/// `expires`), and where those begin. `Cache-Control` (its `max-age`
/// counts down) and `Date` are written per response.
pub(crate) fn cached_head(etag: &str, this: UnixTime, next: UnixTime) -> (Bytes, usize) {
    let ct = format!("content-type: {RESPONSE_TYPE}\r\n");
    let head = format!(
        "{ct}etag: {etag}\r\nlast-modified: {}\r\nexpires: {}\r\n",
        http_date(this),
        http_date(next)
    );
    (Bytes::from(head), ct.len())
}

/// The OCSP role's fast path ([`shikko_runtime::fast`]) on its plain HTTP
/// endpoint: a GET, or a POST of `application/ocsp-request`, whose answer
/// is pre-signed and fresh, from a role that has caught up, admitted by
/// the verifier gate (if any), is answered from the rendered head and DER
/// of the cache: `Cache-Control` and `Date` are the only lines written
/// per response. A request asked again on the same thread (the same raw
/// path, the same body) is found without decoding it, and nothing is
/// allocated. Every other request (a miss, a nonce, several CertIDs, a
/// malformed one, a refusal) goes to [`router_gated`]'s handlers
/// unchanged; both count the same metrics and meters.
pub struct FastOcsp {
    role: Arc<OcspRole>,
    gate: Option<Arc<Gate>>,
    /// `{get, post} x {cached, not_modified}`, resolved once.
    cached: [prometheus::IntCounter; 2],
    not_modified: [prometheus::IntCounter; 2],
}

impl std::fmt::Debug for FastOcsp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastOcsp").finish_non_exhaustive()
    }
}

impl FastOcsp {
    /// The fast path of `role`'s answers, behind `gate` (as [`router_gated`]).
    pub fn new(role: Arc<OcspRole>, gate: Option<Arc<Gate>>) -> Arc<FastOcsp> {
        let requests = &role.metrics().requests;
        let count =
            |outcome| ["get", "post"].map(|method| requests.with_label_values(&[method, outcome]));
        let (cached, not_modified) = (count("cached"), count("not_modified"));
        Arc::new(FastOcsp {
            role,
            gate,
            cached,
            not_modified,
        })
    }
}

/// Most answers an HTTP thread remembers, by method.
const MEMO_MAX: usize = 16_384;
/// Longest request (a GET's raw path, a POST's body) remembered: a
/// request for one certificate is 70 to 120 octets, 100 to 250 in a GET
/// path. With [`MEMO_MAX`], a thread's memo holds at most 16 MiB of keys
/// whatever clients send (padding makes any number of keys for one
/// request: `%0A` in a path, an extension in a body).
const MEMO_KEY_MAX: usize = 512;

/// Answers by what identifies their request (a GET's raw path, a POST's body).
type Paths = HashMap<Box<[u8]>, Weak<Cached>>;

thread_local! {
    /// By responder (its address) and method (POST?), the answers this
    /// thread gave, by the raw path of the GET (after `/ocsp/`) or the
    /// body of the POST: a request asked again is answered without
    /// decoding it. Held weakly: an answer the cache
    /// drops (a status change, a rotation, eviction) is gone from here at
    /// once, and what it held is freed; what the memo keeps is checked as
    /// the cache checks it ([`crate::responder::Responder::still_good`]).
    static MEMO: RefCell<HashMap<(usize, bool), Paths>> = RefCell::new(HashMap::new());
}

/// The answer remembered for `key`, if it is still in the cache.
fn recall(memo: (usize, bool), key: &[u8]) -> Option<Arc<Cached>> {
    MEMO.with(|m| m.borrow().get(&memo)?.get(key)?.upgrade())
}

/// Remembers `c` as the answer to `key` (the memo emptied when full: its
/// keys are what clients send, any number of encodings of one request).
fn remember(memo: (usize, bool), key: &[u8], c: &Arc<Cached>) {
    if key.len() > MEMO_KEY_MAX {
        return;
    }
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        let keys = m.entry(memo).or_default();
        if keys.len() >= MEMO_MAX {
            keys.clear();
        }
        keys.insert(key.into(), Arc::downgrade(c));
    });
}

/// Whether an `If-None-Match` value names `etag` (or is `*`).
fn matches_etag(inm: &[u8], etag: &str) -> bool {
    inm.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        t == etag.as_bytes() || t == b"*"
    })
}

impl shikko_runtime::FastPath for FastOcsp {
    fn answer(
        &self,
        req: &shikko_runtime::FastRequest<'_>,
        out: &mut shikko_runtime::Responses<'_>,
    ) -> bool {
        // As the router reads it: the path without a query.
        let path = req.path().split('?').next().unwrap_or("");
        // What identifies the request: a GET's raw path after `/ocsp/`, a
        // POST's body.
        let (post, key) = match req.method() {
            "GET" => match path.strip_prefix("/ocsp/") {
                Some(raw) => (false, raw.as_bytes()),
                None => return false,
            },
            "POST"
                if path == "/ocsp"
                    && req
                        .header("content-type")
                        .is_some_and(|v| v.starts_with(b"application/ocsp-request")) =>
            {
                (true, req.body())
            }
            // Another path, or a POST of another type (415): the router's.
            _ => return false,
        };
        let now = UnixTime::now();
        if !self.role.is_ready() || self.role.too_stale(now) {
            return false;
        }
        let responder = self.role.responder();
        let memo = (Arc::as_ptr(responder) as usize, post);
        // Whether `c` was found by decoding (to remember once admitted).
        let mut fresh = false;
        let c = match recall(memo, key) {
            Some(c) if responder.still_good(&c, now) => c,
            _ => {
                let decoded;
                let der = if post {
                    key
                } else {
                    let Ok(d) = std::str::from_utf8(key).map(decode_get_path) else {
                        return false;
                    };
                    let Ok(d) = d else {
                        return false;
                    };
                    decoded = d;
                    &decoded[..]
                };
                let Ok(parsed) = decode_request(der) else {
                    return false;
                };
                if parsed.nonce.is_some() || parsed.cert_ids.len() != 1 {
                    return false;
                }
                let Some(c) = responder.cached_entry(&parsed, now) else {
                    return false;
                };
                fresh = true;
                c
            }
        };
        let pass = match &self.gate {
            None => None,
            Some(g) => match g.admit_fast(
                req.header("shikko-purpose"),
                req.header("authorization"),
                "ocsp",
            ) {
                FastAdmit::Admitted(p) => Some((g, p)),
                FastAdmit::RateLimited => {
                    out.respond(
                        StatusCode::OK,
                        &[
                            b"content-type: application/ocsp-response\r\n",
                            b"retry-after: 1\r\n",
                        ],
                        &status_only(OcspResponseStatus::TryLater),
                    );
                    return true;
                }
                FastAdmit::Refer => return false,
            },
        };
        if fresh {
            // Only for a caller the gate admitted: a refused one leaves no trace.
            remember(memo, key, &c);
        }
        let scope: &[u8] = match &pass {
            Some((g, _)) if g.private() => b", private, no-transform, must-revalidate\r\n",
            _ => b", public, no-transform, must-revalidate\r\n",
        };
        let mut max_age = itoa::Buffer::new();
        let max_age = max_age.format((c.next_update.0 - now.0).max(0)).as_bytes();
        let not_modified = req
            .header("if-none-match")
            .is_some_and(|v| matches_etag(v, &c.etag));
        let outcome = if not_modified {
            let lines: [&[u8]; 4] = [
                &c.head[c.validators..],
                b"cache-control: max-age=",
                max_age,
                scope,
            ];
            out.respond(StatusCode::NOT_MODIFIED, &lines, b"");
            self.not_modified[usize::from(post)].inc();
            "not_modified"
        } else {
            let lines: [&[u8]; 4] = [&c.head, b"cache-control: max-age=", max_age, scope];
            out.respond(StatusCode::OK, &lines, &c.der);
            self.cached[usize::from(post)].inc();
            crate::responder::status_name(c.status)
        };
        if let Some((g, p)) = pass {
            g.finish_as(&p, outcome);
        }
        true
    }
}

/// Signs an answer (after a cache miss), timing it.
fn timed(role: &OcspRole, parsed: &crate::request::ParsedRequest, now: UnixTime) -> Answer {
    let t = std::time::Instant::now();
    // Called after a cache miss: sign without looking again.
    let answer = role.responder().sign_now(parsed, now);
    if answer.outcome == Outcome::Signed {
        role.metrics()
            .signing_seconds
            .observe(t.elapsed().as_secs_f64());
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use shikko_core::{CertKind, Serial};

    fn cached() -> Arc<Cached> {
        let (head, validators) = cached_head("\"e\"", UnixTime(1_000), UnixTime(4_600));
        Arc::new(Cached {
            der: Bytes::from_static(b"der"),
            etag: Arc::from("\"e\""),
            kind: CertKind::CardSigning,
            serial: Serial::from_u128(1).unwrap_or_else(|_| unreachable!()),
            status: None,
            this_update: UnixTime(1_000),
            next_update: UnixTime(4_600),
            head,
            validators,
        })
    }

    /// The memo holds answers weakly, by method, keys of at most
    /// MEMO_KEY_MAX octets, at most MEMO_MAX of them (then emptied).
    #[test]
    fn the_memo_is_weak_and_bounded() {
        let owner = 0x5eed;
        let c = cached();
        remember((owner, false), b"short", &c);
        assert!(recall((owner, false), b"short").is_some_and(|r| Arc::ptr_eq(&r, &c)));
        assert!(
            recall((owner, true), b"short").is_none(),
            "a POST body is another key"
        );
        assert!(
            recall((owner + 1, false), b"short").is_none(),
            "another responder's"
        );
        let long = vec![b'A'; MEMO_KEY_MAX + 1];
        remember((owner, false), &long, &c);
        assert!(recall((owner, false), &long).is_none(), "too long to keep");
        for i in 0..MEMO_MAX {
            remember((owner, true), i.to_string().as_bytes(), &c);
        }
        MEMO.with(|m| assert_eq!(m.borrow()[&(owner, true)].len(), MEMO_MAX));
        remember((owner, true), b"one more", &c);
        MEMO.with(|m| assert_eq!(m.borrow()[&(owner, true)].len(), 1, "emptied when full"));
        // Dropped from the cache (the last strong reference): gone.
        drop(c);
        assert!(recall((owner, false), b"short").is_none());
        assert!(recall((owner, true), b"one more").is_none());
    }
}
