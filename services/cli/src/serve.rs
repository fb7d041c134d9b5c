//! Running roles: the registry's gRPC server and the metrics endpoint, with
//! graceful shutdown (stop accepting, close feed streams, drain, exit).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use shikko_registry::Registry;
use shikko_runtime::Shutdown;
use shikko_runtime::telemetry::Metrics;
use shikko_store::Store;
use tokio::net::TcpListener;

/// Opens the store of a data directory.
pub(crate) fn open_store(data_dir: &Path) -> Result<Arc<Store>> {
    let path = data_dir.join("db");
    std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok(Arc::new(Store::open(&path).with_context(|| {
        format!("opening the store at {}", path.display())
    })?))
}

/// Binds a TCP listener with a message that names the address.
pub(crate) async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what} (is another shikko running?)"))
}

/// The registry and metrics, and more: other gRPC services beside the registry's
/// (`add`), and an HTTP server (CRLs, later OCSP) on its own listener.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_platform(
    registry: Arc<Registry>,
    metrics: Metrics,
    grpc: TcpListener,
    metrics_listener: TcpListener,
    http: Option<(TcpListener, axum::Router)>,
    add: impl FnOnce(tonic::service::Routes) -> tonic::service::Routes + Send + 'static,
    shutdown: Shutdown,
    drain: Duration,
) -> Result<()> {
    let grpc_task = tokio::spawn(shikko_registry::serve_with(
        registry,
        grpc,
        shutdown.wait_owned(),
        add,
    ));
    let metrics_task = tokio::spawn(shikko_runtime::serve_metrics(
        metrics_listener,
        metrics,
        shutdown.wait_owned(),
    ));
    let http_task = http.map(|(listener, app)| {
        tokio::spawn(shikko_runtime::serve_http(
            listener,
            app,
            shikko_runtime::HttpLimits::default(),
            shutdown.wait_owned(),
        ))
    });
    shutdown.wait().await;
    tracing::info!(timeout_secs = drain.as_secs(), "shutting down: draining");
    let drained = shikko_runtime::drain_with_timeout(
        async {
            let g = grpc_task.await;
            let m = metrics_task.await;
            let h = match http_task {
                Some(t) => Some(t.await),
                None => None,
            };
            (g, m, h)
        },
        drain,
    )
    .await;
    match drained {
        Ok((g, m, h)) => {
            g.context("gRPC server task")?.context("gRPC server")?;
            m.context("metrics server task")?
                .context("metrics server")?;
            if let Some(h) = h {
                h.context("HTTP server task")?.context("HTTP server")?;
            }
            tracing::info!("drained; exiting");
        }
        Err(e) => tracing::warn!(error = %e, "drain timed out; exiting anyway"),
    }
    Ok(())
}

/// Serves a role that is not the registry: its gRPC services (with health),
/// its HTTP routes and metrics, until `shutdown`, then drains within `drain`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_role(
    grpc: TcpListener,
    routes: tonic::service::Routes,
    http: Option<(TcpListener, axum::Router, shikko_runtime::HttpLimits)>,
    metrics_listener: TcpListener,
    metrics: Metrics,
    shutdown: Shutdown,
    drain: Duration,
) -> Result<()> {
    let grpc_task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(grpc),
                shutdown.wait_owned(),
            ),
    );
    let http_task = http.map(|(listener, app, limits)| {
        tokio::spawn(shikko_runtime::serve_http(
            listener,
            app,
            limits,
            shutdown.wait_owned(),
        ))
    });
    let metrics_task = tokio::spawn(shikko_runtime::serve_metrics(
        metrics_listener,
        metrics,
        shutdown.wait_owned(),
    ));
    shutdown.wait().await;
    tracing::info!(timeout_secs = drain.as_secs(), "shutting down: draining");
    let drained = shikko_runtime::drain_with_timeout(
        async {
            let g = grpc_task.await;
            let h = match http_task {
                Some(t) => Some(t.await),
                None => None,
            };
            (g, h, metrics_task.await)
        },
        drain,
    )
    .await;
    match drained {
        Ok((g, h, m)) => {
            g.context("gRPC server task")?.context("gRPC server")?;
            if let Some(h) = h {
                h.context("HTTP server task")?.context("HTTP server")?;
            }
            m.context("metrics server task")?
                .context("metrics server")?;
            tracing::info!("drained; exiting");
        }
        Err(e) => tracing::warn!(error = %e, "drain timed out; exiting anyway"),
    }
    Ok(())
}

/// `shikko serve registry` (and `serve info`): the registry, and the
/// 4-information service when the configuration has an `[info]` section.
pub(crate) async fn serve_registry(cfg: crate::config::RegistryRoleConfig) -> Result<()> {
    let store = open_store(&cfg.registry.data_dir)?;
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"))?;
    let registry = Arc::new(Registry::new(store.clone(), metrics.registry())?);
    let grpc = bind(cfg.registry.listen, "gRPC").await?;
    let metrics_listener = bind(cfg.telemetry.metrics_addr, "metrics").await?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signal();
    let mut info_addr = None;
    let mut admin = None;
    if let Some(info) = &cfg.info {
        let signing = crate::info_role::read_signing_cas(&info.signing_cas)?;
        let svc = Arc::new(shikko_info::InfoService::new(
            store.clone(),
            &signing,
            shikko_info::InfoMetrics::new(metrics.registry())?,
        )?);
        let tls = crate::info_role::tls_from_files(&info.tls_cert, &info.tls_key, &info.client_ca)?;
        let listener = bind(info.listen, "the 4-information service").await?;
        info_addr = Some(listener.local_addr()?);
        crate::info_role::spawn_server(svc.clone(), listener, tls, shutdown.wait_owned())?;
        admin = Some(shikko_info::admin::InfoAdminGrpc::new(svc).into_server());
    }
    tracing::info!(
        grpc = %grpc.local_addr()?,
        metrics = %metrics_listener.local_addr()?,
        info = ?info_addr,
        last_seq = store.last_seq(),
        "registry serving"
    );
    // Tests and scripts read this line to learn the bound ports.
    println!(
        "registry listening grpc={} metrics={}{}",
        grpc.local_addr()?,
        metrics_listener.local_addr()?,
        info_addr.map(|a| format!(" info={a}")).unwrap_or_default()
    );
    run_platform(
        registry,
        metrics,
        grpc,
        metrics_listener,
        None,
        move |routes| match admin {
            Some(a) => routes.add_service(a),
            None => routes,
        },
        shutdown,
        cfg.shutdown.drain_timeout(),
    )
    .await
}
