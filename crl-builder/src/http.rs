//! HTTP publication: `GET /crl/{issuer}/{name}.crl` and the compact
//! revocation filters `GET /filter/{issuer}/{full,delta}.filter` (and HEAD).
//!
//! - `Content-Type: application/pkix-crl` (RFC 2585), the DER bytes streamed
//!   from the file opened for this request: a rebuild renaming a new file in
//!   place does not disturb a download in progress (it keeps the old inode).
//! - `ETag` from the CRL number and signature, the same on every replica
//!   serving the same bytes; `Last-Modified` = thisUpdate; `Expires` =
//!   nextUpdate; `Cache-Control: public, no-transform, max-age` = seconds
//!   until nextUpdate (0 once past).
//! - `304 Not Modified` on a matching `If-None-Match`, or, without one, on
//!   `If-Modified-Since` at or after thisUpdate (RFC 9110 §13.2.2).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{IntCounterVec, Opts, Registry};
use shikko_core::{CertKind, UnixTime};
use tokio_util::io::ReaderStream;

use crate::build::CrlName;
use crate::catalog::{Catalog, PublishedCrl};

/// Content type of a DER CRL (RFC 2585 §4.2).
pub const CONTENT_TYPE: &str = "application/pkix-crl";
/// Content type of a filter file (docs/FILTER.md).
pub const FILTER_CONTENT_TYPE: &str = "application/octet-stream";

/// Upper bounds of `Cache-Control: max-age`, by kind of CRL: a cache should
/// not keep a CRL past the publication of the next one, which can come well
/// before its nextUpdate (a delta published every 15 minutes with a nextUpdate
/// of hours). The default bounds nothing (max-age = seconds until nextUpdate).
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Full and partition CRLs: the full rebuild period.
    pub full: Duration,
    /// Delta CRLs: the delta period.
    pub delta: Duration,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            full: Duration::MAX,
            delta: Duration::MAX,
        }
    }
}

#[derive(Clone)]
struct HttpState {
    catalog: Arc<Catalog>,
    limits: CacheLimits,
    requests: IntCounterVec,
    bytes: IntCounterVec,
}

/// Routes for `/crl/{issuer}/{file}`; metrics `shikko_crl_http_requests_total`
/// (by issuer and outcome) and `shikko_crl_http_bytes_total` go to `registry`.
pub fn router(catalog: Arc<Catalog>, registry: &Registry) -> prometheus::Result<Router> {
    router_with(catalog, registry, CacheLimits::default())
}

/// [`router`] with bounds on `max-age`.
pub fn router_with(
    catalog: Arc<Catalog>,
    registry: &Registry,
    limits: CacheLimits,
) -> prometheus::Result<Router> {
    let requests = IntCounterVec::new(
        Opts::new(
            "shikko_crl_http_requests_total",
            "CRL HTTP requests by issuer and outcome",
        ),
        &["issuer", "outcome"],
    )?;
    let bytes = IntCounterVec::new(
        Opts::new(
            "shikko_crl_http_bytes_total",
            "CRL octets sent over HTTP by issuer",
        ),
        &["issuer"],
    )?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(bytes.clone()))?;
    Ok(Router::new()
        .route("/crl/{issuer}/{file}", get(get_crl))
        .route("/filter/{issuer}/{file}", get(get_filter))
        .with_state(HttpState {
            catalog,
            limits,
            requests,
            bytes,
        }))
}

fn http_date(t: UnixTime) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(t.0.max(0) as u64))
}

fn plain(status: StatusCode, msg: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

/// Whether `If-None-Match` lists `etag` (or `*`); weak comparison (RFC 9110 §13.1.2).
fn none_match(value: &str, etag: &str) -> bool {
    value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

fn caching_headers(h: &mut HeaderMap, p: &PublishedCrl, limits: CacheLimits) {
    let s = &p.summary;
    let now = UnixTime::now();
    let limit = if matches!(p.name, CrlName::Delta | CrlName::DeltaFilter) {
        limits.delta
    } else {
        limits.full
    };
    let limit = i64::try_from(limit.as_secs()).unwrap_or(i64::MAX);
    let max_age = s
        .next_update
        .map_or(0, |n| n.0.saturating_sub(now.0).max(0))
        .min(limit);
    let set = |h: &mut HeaderMap, name, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(name, v);
        }
    };
    set(h, header::ETAG, s.etag());
    set(h, header::LAST_MODIFIED, http_date(s.this_update));
    set(
        h,
        header::CACHE_CONTROL,
        format!("public, no-transform, max-age={max_age}"),
    );
    if let Some(n) = s.next_update {
        set(h, header::EXPIRES, http_date(n));
    }
}

async fn get_crl(
    State(st): State<HttpState>,
    Path((issuer, file)): Path<(String, String)>,
    req: HeaderMap,
) -> Response {
    let name = file
        .strip_suffix(".crl")
        .and_then(CrlName::parse)
        .filter(|n| !n.is_filter());
    serve(
        st,
        &issuer,
        name,
        "no such CRL: use full.crl, delta.crl or NNNNNN.crl\n",
        req,
    )
    .await
}

async fn get_filter(
    State(st): State<HttpState>,
    Path((issuer, file)): Path<(String, String)>,
    req: HeaderMap,
) -> Response {
    let name = CrlName::from_file_name(&file).filter(CrlName::is_filter);
    serve(
        st,
        &issuer,
        name,
        "no such filter: use full.filter or delta.filter\n",
        req,
    )
    .await
}

/// Serves the published file `name` of `issuer` (`None`: not a file this
/// route serves, answered with `unknown`).
async fn serve(
    st: HttpState,
    issuer: &str,
    name: Option<CrlName>,
    unknown: &'static str,
    req: HeaderMap,
) -> Response {
    let Ok(kind) = issuer.parse::<CertKind>() else {
        st.requests
            .with_label_values(&["unknown", "not_found"])
            .inc();
        return plain(
            StatusCode::NOT_FOUND,
            "unknown issuer: use sign, auth, phone-sign or phone-auth\n",
        );
    };
    let label = kind.issuer_id();
    let Some(name) = name else {
        st.requests.with_label_values(&[label, "not_found"]).inc();
        return plain(StatusCode::NOT_FOUND, unknown);
    };
    let path = st.catalog.path_of(kind, name);
    let opened = tokio::task::spawn_blocking({
        let catalog = st.catalog.clone();
        move || -> Result<(std::fs::File, PublishedCrl), std::io::Error> {
            let f = std::fs::File::open(&path)?;
            let p = catalog
                .describe(kind, name, &path, &f)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok((f, p))
        }
    })
    .await;
    let (file, published) = match opened {
        Ok(Ok(v)) => v,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            st.requests.with_label_values(&[label, "not_found"]).inc();
            let msg = if name.is_filter() {
                "this filter is not published\n"
            } else {
                "this CRL is not published\n"
            };
            return plain(StatusCode::NOT_FOUND, msg);
        }
        Ok(Err(e)) => {
            tracing::error!(issuer = label, crl = %name, error = %e, "cannot serve a CRL");
            st.requests.with_label_values(&[label, "error"]).inc();
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the CRL cannot be read\n",
            );
        }
        Err(_) => {
            st.requests.with_label_values(&[label, "error"]).inc();
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the CRL cannot be read\n",
            );
        }
    };
    let mut headers = HeaderMap::new();
    caching_headers(&mut headers, &published, st.limits);
    let etag = published.summary.etag();
    let not_modified = match req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        Some(inm) => none_match(inm, &etag),
        None => req
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since: SystemTime| {
                let this =
                    UNIX_EPOCH + Duration::from_secs(published.summary.this_update.0.max(0) as u64);
                // A date in the server's future is not a valid validator (RFC 9110 §13.1.3).
                this <= since && since <= SystemTime::now()
            }),
    };
    if not_modified {
        st.requests
            .with_label_values(&[label, "not_modified"])
            .inc();
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    st.requests.with_label_values(&[label, "ok"]).inc();
    st.bytes
        .with_label_values(&[label])
        .inc_by(published.summary.size);
    let content_type = if name.is_filter() {
        FILTER_CONTENT_TYPE
    } else {
        CONTENT_TYPE
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&published.summary.size.to_string()) {
        headers.insert(header::CONTENT_LENGTH, v);
    }
    let stream = ReaderStream::with_capacity(tokio::fs::File::from_std(file), 256 << 10);
    (StatusCode::OK, headers, Body::from_stream(stream)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        assert!(none_match("\"a-1\"", "\"a-1\""));
        assert!(none_match("\"x\", W/\"a-1\"", "\"a-1\""));
        assert!(none_match("*", "\"a-1\""));
        assert!(!none_match("\"a-2\"", "\"a-1\""));
    }

    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(
            http_date(UnixTime(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }
}
