//! Running the registry role (`shikko serve registry`), with the
//! 4-information service beside it when its configuration has an `[info]`
//! section. Every role is served by `shikko_runtime::RoleServer`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use shikko_registry::process::RegistryProcess;
use shikko_runtime::{GrpcRoutes, Shutdown};
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

/// `shikko serve registry`: the registry's process
/// (`shikko_registry::process`), and the 4-information service beside it
/// when the configuration has an `[info]` section (its admin service on the
/// registry's port, its operator service on its own port over mutual TLS).
pub(crate) async fn serve_registry(
    cfg: crate::config::RegistryRoleConfig,
    shutdown: Shutdown,
) -> Result<()> {
    let mut process = RegistryProcess::bind(&cfg.registry, &cfg.telemetry, &cfg.tls).await?;
    let mut beside = Vec::new();
    let mut info_server = None;
    if let Some(info) = &cfg.info {
        let signing = shikko_info::process::read_signing_cas(&info.signing_cas)?;
        let svc = shikko_info::InfoService::new(
            process.store().shared(),
            &signing,
            shikko_info::InfoMetrics::new(process.metrics())?,
        )?
        .with_phone_signing_cas(&shikko_info::process::read_signing_cas(
            &info.phone_signing_cas,
        )?)?
        .with_challenge_secs(info.front_door.consent_challenge_secs);
        let svc = Arc::new(info.audit.apply(svc, &cfg.registry.data_dir)?);
        if svc.audit_public_key().is_some() {
            tokio::spawn(shikko_info::heads::publish(
                svc.clone(),
                shutdown.wait_owned(),
            ));
        }
        let tls =
            shikko_info::process::tls_from_files(&info.tls_cert, &info.tls_key, &info.client_ca)?;
        let listener = bind(info.grpc_listen, "the 4-information service").await?;
        beside.push(("info", listener.local_addr()?));
        info_server = Some((
            listener,
            GrpcRoutes::new(shikko_access::api())
                .service(shikko_info::grpc::InfoGrpc::new(svc.clone()).into_server())
                .service(shikko_info::grpc::InfoGrpc::new(svc.clone()).into_link_server())
                .service(shikko_info::grpc::InfoGrpc::new(svc.clone()).into_holder_server()),
            tls,
            info.front_door.accept_limits(),
        ));
        process = process
            .with_routes(|r| r.service(shikko_info::admin::InfoAdminGrpc::new(svc).into_server()));
    }
    Ok(process
        .serve(
            shutdown,
            cfg.shutdown.drain_timeout(),
            &beside,
            |server| match info_server {
                Some((listener, routes, tls, limits)) => server.grpc_tls(
                    listener,
                    routes,
                    tls,
                    shikko_info::process::PUBLIC_TLS_RELOAD,
                    limits,
                    Arc::new(shikko_access::OperatorPort),
                ),
                None => server,
            },
        )
        .await?)
}
