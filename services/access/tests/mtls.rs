//! Mutual TLS and the authorization layer over real sockets: a role's
//! server (health and reflection, which every internal endpoint serves)
//! and clients with identities from a test internal CA. Who is refused,
//! how, and what a renewed or expired certificate does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shikko_core::UnixTime;
use shikko_pki::InternalRole;
use shikko_runtime::tls::PeerCheck;
use shikko_runtime::{GrpcRoutes, Metrics, RoleServer, Shutdown, TlsConfig, TlsFiles};
use shikko_testkit::identities::Identities;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

struct Server {
    grpc: SocketAddr,
    metrics: SocketAddr,
    shutdown: Shutdown,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

fn files(ids: &Identities, name: &str) -> TlsFiles {
    TlsFiles {
        cert: ids.cert(name),
        key: ids.key(name),
        ca: ids.ca(),
        crls: Vec::new(),
    }
}

/// A server with `ids`' identity `name`, reading its files every second.
async fn serve(ids: &Identities, name: &str) -> Server {
    serve_with_crls(ids, name, Vec::new()).await
}

/// The same, checking peers against the internal CA's CRLs `crls`.
async fn serve_with_crls(ids: &Identities, name: &str, crls: Vec<std::path::PathBuf>) -> Server {
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc_addr, metrics_addr) = (grpc.local_addr().unwrap(), metrics.local_addr().unwrap());
    let mut cfg = TlsConfig::with_files(&TlsFiles {
        crls,
        ..files(ids, name)
    });
    cfg.reload_secs = 1;
    let security = shikko_access::server_security(&cfg).unwrap();
    let shutdown = Shutdown::new();
    tokio::spawn(
        RoleServer::new("test", Metrics::new("test").unwrap(), metrics)
            .grpc(grpc, GrpcRoutes::new(shikko_access::api()), security)
            .serve(shutdown.clone(), Duration::from_secs(2)),
    );
    Server {
        grpc: grpc_addr,
        metrics: metrics_addr,
        shutdown,
    }
}

async fn channel_as(
    ids: &Identities,
    name: &str,
    addr: SocketAddr,
    check: PeerCheck,
) -> Result<tonic::transport::Channel, shikko_access::AccessError> {
    let tls = shikko_access::client_tls(&TlsConfig::with_files(&files(ids, name)), check)?
        .expect("TLS configured");
    shikko_access::connect(&format!("https://{addr}"), Some(&tls), |ep| {
        ep.connect_timeout(Duration::from_secs(5))
    })
    .await
}

async fn health(channel: tonic::transport::Channel) -> Result<i32, tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status)
}

fn metrics_text(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_identity_may_call_what_the_table_says_and_refusals_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ids = Identities::create(dir.path()).unwrap();
    let server = serve(&ids, "registry").await;
    let registry = shikko_access::expect_server(InternalRole::Registry);

    // Health: any internal identity.
    for who in ["ocsp", "authority", "auditor"] {
        let ch = channel_as(&ids, who, server.grpc, registry.clone())
            .await
            .unwrap();
        assert_eq!(
            health(ch).await.unwrap(),
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{who}"
        );
    }
    // Reflection: administrators and auditors only.
    let ch = channel_as(&ids, "admin", server.grpc, registry.clone())
        .await
        .unwrap();
    let listed = shikko_testkit::reflected_services_over(ch).await.unwrap();
    assert!(
        listed.iter().any(|s| s == "grpc.health.v1.Health"),
        "{listed:?}"
    );
    let ch = channel_as(&ids, "ocsp", server.grpc, registry.clone())
        .await
        .unwrap();
    let refused = shikko_testkit::reflected_services_over(ch)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("ocsp may not call"),
        "{refused:?}"
    );

    let text = metrics_text(server.metrics);
    assert!(
        text.contains(
            "shikko_authz_denied_total{method=\"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo\",reason=\"permission_denied\"} 1"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_an_internal_identity_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ids = Identities::create(&dir.path().join("ours")).unwrap();
    let server = serve(&ids, "registry").await;

    // Plaintext to a TLS port: no answer.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    match plain.connect().await {
        Err(_) => {}
        Ok(ch) => assert!(health(ch).await.is_err(), "plaintext answered"),
    }

    // A certificate from another internal CA, naming the admin: the
    // handshake refuses it (the client trusts our CA to see the refusal).
    let theirs = Identities::create(&dir.path().join("theirs")).unwrap();
    let forged = TlsFiles {
        cert: theirs.cert("admin"),
        key: theirs.key("admin"),
        ca: ids.ca(),
        crls: Vec::new(),
    };
    let tls = shikko_access::client_tls(
        &TlsConfig::with_files(&forged),
        shikko_access::expect_serving_role(),
    )
    .unwrap()
    .unwrap();
    let outcome = match shikko_access::connect(
        &format!("https://{}", server.grpc),
        Some(&tls),
        |ep| ep,
    )
    .await
    {
        Err(e) => Err(e.to_string()),
        Ok(ch) => health(ch).await.map_err(|s| format!("{s:?}")),
    };
    assert!(outcome.is_err(), "a foreign CA's certificate was admitted");

    // An expired certificate of ours.
    let now = UnixTime::now();
    ids.issue(
        InternalRole::Admin,
        "expired-admin",
        now.plus_secs(-7_200),
        now.plus_secs(-60),
    )
    .unwrap();
    let outcome = match channel_as(
        &ids,
        "expired-admin",
        server.grpc,
        shikko_access::expect_serving_role(),
    )
    .await
    {
        Err(e) => Err(e.to_string()),
        Ok(ch) => health(ch).await.map_err(|s| format!("{s:?}")),
    };
    assert!(outcome.is_err(), "an expired certificate was admitted");

    let text = metrics_text(server.metrics);
    let failed: u64 = text
        .lines()
        .filter(|l| l.starts_with("shikko_tls_handshakes_failed_total{reason=\"refused\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(failed >= 2, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refuses_a_server_with_another_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ids = Identities::create(dir.path()).unwrap();
    // An OCSP responder's identity where the registry was expected.
    let server = serve(&ids, "ocsp").await;
    let err = channel_as(
        &ids,
        "crl",
        server.grpc,
        shikko_access::expect_server(InternalRole::Registry),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("the server is ocsp, not registry"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_renewed_on_disk_is_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ids = Identities::create(dir.path()).unwrap();
    let server = serve(&ids, "registry").await;
    let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let record = {
        let seen = seen.clone();
        Arc::new(move |leaf: &[u8]| {
            *seen.lock().unwrap() = leaf.to_vec();
            Ok(())
        }) as PeerCheck
    };
    let pem_der = |path: &std::path::Path| {
        shikko_pki::certificate_der(&std::fs::read(path).unwrap()).unwrap()
    };
    let ch = channel_as(&ids, "admin", server.grpc, record.clone())
        .await
        .unwrap();
    health(ch).await.unwrap();
    let first = pem_der(&ids.cert("registry"));
    assert_eq!(*seen.lock().unwrap(), first);

    // The registry's certificate is renewed (new key, new serial) in place.
    let now = UnixTime::now();
    ids.issue(
        InternalRole::Registry,
        "registry",
        now.plus_secs(-60),
        now.plus_secs(86_400),
    )
    .unwrap();
    let renewed = pem_der(&ids.cert("registry"));
    assert_ne!(renewed, first);
    let picked_up = shikko_testkit::until(15, || {
        let rt = tokio::runtime::Handle::current();
        let record = record.clone();
        let ids = ids.clone();
        let addr = server.grpc;
        tokio::task::block_in_place(|| {
            rt.block_on(async {
                if let Ok(ch) = channel_as(&ids, "admin", addr, record).await {
                    let _ = health(ch).await;
                }
            })
        });
        *seen.lock().unwrap() == renewed
    });
    assert!(picked_up, "the server still presents the old certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_identity_is_refused_from_the_next_reading_of_the_crl() {
    let dir = tempfile::tempdir().unwrap();
    let ids = Identities::create(dir.path()).unwrap();
    let crl = ids.revoke(&[], 1).unwrap();
    let server = serve_with_crls(&ids, "registry", vec![crl.clone()]).await;
    let registry = shikko_access::expect_server(InternalRole::Registry);
    let healthy = |who: &'static str| {
        let ids = ids.clone();
        let registry = registry.clone();
        let addr = server.grpc;
        async move {
            match channel_as(&ids, who, addr, registry).await {
                Ok(ch) => health(ch).await.is_ok(),
                Err(_) => false,
            }
        }
    };
    assert!(healthy("ocsp").await, "not yet revoked");

    // The internal CA revokes the ocsp identity (a stolen key, say); the
    // server re-reads the CRL within a second and refuses it from then on.
    ids.revoke(&["ocsp"], 2).unwrap();
    let refused = shikko_testkit::until(15, || {
        let rt = tokio::runtime::Handle::current();
        !tokio::task::block_in_place(|| rt.block_on(healthy("ocsp")))
    });
    assert!(refused, "the revoked ocsp identity is still admitted");
    assert!(
        healthy("admin").await,
        "an identity not on the CRL is refused"
    );

    // A client with the CRL refuses a server whose identity is revoked.
    ids.revoke(&["registry"], 3).unwrap();
    let tls = shikko_access::client_tls(
        &TlsConfig::with_files(&TlsFiles {
            crls: vec![crl],
            ..files(&ids, "admin")
        }),
        registry.clone(),
    )
    .unwrap()
    .expect("TLS configured");
    let outcome =
        match shikko_access::connect(&format!("https://{}", server.grpc), Some(&tls), |ep| {
            ep.connect_timeout(Duration::from_secs(5))
        })
        .await
        {
            Err(e) => Err(e.to_string()),
            Ok(ch) => health(ch).await.map_err(|s| format!("{s:?}")),
        };
    assert!(
        outcome.is_err(),
        "a revoked server was trusted: {outcome:?}"
    );
}
