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
