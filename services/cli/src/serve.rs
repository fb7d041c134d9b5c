//! Running the registry role (`shikko serve registry`), with the
//! 4-information service beside it when its configuration has an `[info]`
//! section. Every role is served by `shikko_runtime::RoleServer`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use shikko_registry::Registry;
use shikko_runtime::telemetry::Metrics;
use shikko_runtime::{GrpcRoutes, RoleServer, Shutdown};
use shikko_store::RegistryStore;
use tokio::net::TcpListener;

/// Opens the registry's store of a data directory (`DATA_DIR/db`).
pub(crate) fn open_store(data_dir: &Path) -> Result<RegistryStore> {
    RegistryStore::open_data_dir(data_dir)
        .with_context(|| format!("opening the store of {}", data_dir.display()))
}

/// Binds a TCP listener with a message that names the address.
pub(crate) async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    Ok(shikko_runtime::bind(addr, what).await?)
}

/// `shikko serve registry` (and `serve info`): the registry, and the
/// 4-information service when the configuration has an `[info]` section.
pub(crate) async fn serve_registry(
    cfg: crate::config::RegistryRoleConfig,
    shutdown: Shutdown,
) -> Result<()> {
    let store = open_store(&cfg.registry.data_dir)?;
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"))?;
    let registry = Arc::new(Registry::new(store.clone(), metrics.registry())?);
    let grpc = bind(cfg.registry.grpc_listen, "gRPC").await?;
    let metrics_listener = bind(cfg.telemetry.metrics_listen, "metrics").await?;
    let mut info_addr = None;
    let mut routes =
        GrpcRoutes::new(shikko_proto::FILE_DESCRIPTOR_SET).service(registry.clone().into_service());
    let mut info_server = None;
    if let Some(info) = &cfg.info {
        let signing = shikko_info::process::read_signing_cas(&info.signing_cas)?;
        let svc = Arc::new(shikko_info::InfoService::new(
            store.shared(),
            &signing,
            shikko_info::InfoMetrics::new(metrics.registry())?,
        )?);
        let tls =
            shikko_info::process::tls_from_files(&info.tls_cert, &info.tls_key, &info.client_ca)?;
        let listener = bind(info.grpc_listen, "the 4-information service").await?;
        info_addr = Some(listener.local_addr()?);
        info_server = Some((
            listener,
            GrpcRoutes::new(shikko_proto::FILE_DESCRIPTOR_SET)
                .service(shikko_info::grpc::InfoGrpc::new(svc.clone()).into_server()),
            tls,
        ));
        routes = routes.service(shikko_info::admin::InfoAdminGrpc::new(svc).into_server());
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
    let closer = registry.clone();
    let mut server = RoleServer::new("registry", metrics, metrics_listener)
        .grpc(grpc, routes)
        // Feed streams never end by themselves: close them so draining can finish.
        .on_shutdown(async move { closer.close_streams() });
    if let Some((listener, routes, tls)) = info_server {
        server = server.grpc_tls(listener, routes, tls);
    }
    Ok(server.serve(shutdown, cfg.shutdown.drain_timeout()).await?)
}
