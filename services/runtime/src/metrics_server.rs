//! The HTTP endpoint Prometheus scrapes: `GET /metrics` (text exposition
//! format 0.0.4) and `GET /healthz` (`ok`), with axum; a role's server adds
//! `GET /readyz` ([`router_with_readiness`]).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::telemetry::Metrics;

/// Serves [`router`] on `listener` until `shutdown` completes, then stops
/// accepting, lets in-flight requests finish and returns.
///
/// The listener is bound by the caller (tests bind `127.0.0.1:0` and read the
/// port back), so the endpoint is reachable as soon as this is called. Bound
/// the drain with [`crate::shutdown::drain_with_timeout`]: a client that keeps
/// a request open would otherwise hold the return back.
pub async fn serve_metrics<F>(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving metrics at /metrics");
    }
    axum::serve(listener, router(metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The routes of the metrics endpoint, for roles that mount them on an HTTP
/// server of their own instead of calling [`serve_metrics`].
pub fn router(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .with_state(metrics)
}

async fn render_metrics(State(metrics): State<Metrics>) -> Response {
    match metrics.encode_text() {
        Ok(body) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// [`router`] plus `GET /readyz`: 200 `ready` while `ready` holds, 503
/// `draining` once it does not (a role's server clears it when shutdown
/// starts). Kubernetes probes it over plain HTTP: the gRPC ports need a
/// client certificate, which the kubelet's gRPC probe cannot present.
pub fn router_with_readiness(metrics: Metrics, ready: Arc<AtomicBool>) -> Router {
    router(metrics).route(
        "/readyz",
        get(move || {
            let ready = ready.load(Ordering::Relaxed);
            async move {
                if ready {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
                }
            }
        }),
    )
}
