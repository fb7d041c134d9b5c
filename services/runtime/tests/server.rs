//! The one server builder over real sockets on 127.0.0.1:0: health,
//! reflection, metrics, shutdown hooks and the drain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shikko_runtime::{GrpcRoutes, Metrics, RoleServer, Shutdown};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_reflection_and_metrics_then_drains() {
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc_addr, metrics_addr) = (
        grpc.local_addr().unwrap(),
        metrics_listener.local_addr().unwrap(),
    );
    let metrics = Metrics::new("test").unwrap();
    let shutdown = Shutdown::new();
    let hook_ran = Arc::new(AtomicBool::new(false));
    let ran = hook_ran.clone();
    let server = tokio::spawn(
        RoleServer::new("test", metrics, metrics_listener)
            .grpc(
                grpc,
                GrpcRoutes::new(tonic_health::pb::FILE_DESCRIPTOR_SET),
                shikko_runtime::Security::InsecureLoopback,
            )
            .on_shutdown(async move { ran.store(true, Ordering::SeqCst) })
            .serve(shutdown.clone(), Duration::from_secs(5)),
    );

    let services = shikko_testkit::reflected_services(&format!("http://{grpc_addr}")).await;
    assert!(
        services.iter().any(|s| s == "grpc.health.v1.Health"),
        "{services:?}"
    );
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let mut metrics = tokio::net::TcpStream::connect(metrics_addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut metrics,
        b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut metrics, &mut text)
        .await
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("shikko_build_info"), "{text}");

    assert!(!hook_ran.load(Ordering::SeqCst));
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("drains within 10 s")
        .unwrap()
        .unwrap();
    assert!(hook_ran.load(Ordering::SeqCst), "the shutdown hook ran");
    assert!(
        tokio::net::TcpStream::connect(grpc_addr).await.is_err(),
        "the gRPC endpoint is closed after the drain"
    );
}

/// The public TLS endpoint (the 4-information service's operator port):
/// a client may come without a certificate (its service refuses it
/// itself), reflection is not served there, and a client that never
/// finishes its handshake is dropped after the handshake timeout, counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_tls_endpoint_bounds_handshakes_and_serves_no_reflection() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let ids = shikko_testkit::identities::Identities::create(dir.path()).unwrap();
    let files = shikko_runtime::TlsFiles {
        cert: ids.cert("info"),
        key: ids.key("info"),
        ca: ids.ca(),
        crls: Vec::new(),
    };
    let tls = Arc::new(shikko_runtime::ServerTls::load_public(&files).unwrap());
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc_addr, metrics_addr) = (
        grpc.local_addr().unwrap(),
        metrics_listener.local_addr().unwrap(),
    );
    let shutdown = Shutdown::new();
    tokio::spawn(
        RoleServer::new("test", Metrics::new("test").unwrap(), metrics_listener)
            .grpc_tls(
                grpc,
                GrpcRoutes::new(tonic_health::pb::FILE_DESCRIPTOR_SET),
                tls,
                Duration::from_secs(30),
            )
            .serve(shutdown.clone(), Duration::from_secs(2)),
    );

    // A TLS client without a certificate: served (health), no reflection.
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{grpc_addr}"))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(
                    std::fs::read(ids.ca()).unwrap(),
                ))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let refused = shikko_testkit::reflected_services_over(channel)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented, "{refused:?}");

    // A client that connects and says nothing is dropped after the
    // handshake timeout (10 s), and counted.
    let mut silent = tokio::net::TcpStream::connect(grpc_addr).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buf))
        .await
        .expect("the server closes a silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let text = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(metrics_addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut t = String::new();
        s.read_to_string(&mut t).unwrap();
        t
    };
    assert!(
        text.contains("shikko_tls_handshakes_failed_total{reason=\"timeout\"} 1"),
        "{text}"
    );
    shutdown.trigger();
}
