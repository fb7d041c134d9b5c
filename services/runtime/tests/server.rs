//! The one server builder over real sockets on 127.0.0.1:0: health,
//! reflection, metrics, shutdown hooks and the drain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shikko_runtime::{GrpcRoutes, Metrics, RoleServer, Shutdown};

/// A public endpoint's policy that admits every caller, certificate or not.
struct AnyCaller;

impl shikko_runtime::Authorize for AnyCaller {
    fn authorize(
        &self,
        _method: &str,
        _peer: Option<&[shikko_runtime::authz::CertificateDer<'static>]>,
    ) -> Result<shikko_runtime::Caller, shikko_runtime::Denial> {
        Ok(shikko_runtime::Caller(Arc::from("anyone")))
    }

    fn label(&self, _method: &str) -> &'static str {
        "any"
    }
}

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
                GrpcRoutes::new(shikko_runtime::Api::with_default_limits(
                    tonic_health::pb::FILE_DESCRIPTOR_SET,
                )),
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
    let public = start_public(shikko_runtime::AcceptLimits::default()).await;
    let (grpc_addr, metrics_addr, shutdown) =
        (public.grpc, public.metrics, public.shutdown.clone());

    // A TLS client without a certificate: served (health), no reflection.
    let channel = public.anonymous_channel().await;
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

/// A public TLS endpoint (the operator port's kind: clients may withhold a
/// certificate) serving health, with `limits`, every caller admitted.
struct Public {
    _dir: tempfile::TempDir,
    ids: shikko_testkit::identities::Identities,
    grpc: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
    shutdown: Shutdown,
}

impl Public {
    /// A TLS client without a certificate, connected.
    async fn anonymous_channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("https://{}", self.grpc))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(
                        std::fs::read(self.ids.ca()).unwrap(),
                    ))
                    .domain_name("localhost"),
            )
            .unwrap()
            .connect()
            .await
            .unwrap()
    }
}

async fn start_public(limits: shikko_runtime::AcceptLimits) -> Public {
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
                GrpcRoutes::new(shikko_runtime::Api::with_default_limits(
                    tonic_health::pb::FILE_DESCRIPTOR_SET,
                )),
                tls,
                Duration::from_secs(30),
                limits,
                Arc::new(AnyCaller),
            )
            .serve(shutdown.clone(), Duration::from_secs(2)),
    );
    Public {
        _dir: dir,
        ids,
        grpc: grpc_addr,
        metrics: metrics_addr,
        shutdown,
    }
}

fn metrics_text(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut t = String::new();
    s.read_to_string(&mut t).unwrap();
    t
}

/// Each method's limits, enforced by the layer on every endpoint: the size
/// of a request message, and the calls in progress at once (a response
/// stream holds its place until it ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_are_held_to_their_limits() {
    use tokio_stream::StreamExt;
    static LIMITS: &[(&str, shikko_runtime::MethodLimits)] = &[(
        "/grpc.health.v1.Health/Watch",
        shikko_runtime::MethodLimits {
            max_message_bytes: 1024,
            concurrency: 1,
            timeout_secs: 30,
        },
    )];
    let api = shikko_runtime::Api {
        descriptors: tonic_health::pb::FILE_DESCRIPTOR_SET,
        limits: LIMITS,
        default_limits: shikko_runtime::MethodLimits::DEFAULT,
    };
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc_addr, metrics_addr) = (
        grpc.local_addr().unwrap(),
        metrics_listener.local_addr().unwrap(),
    );
    let shutdown = Shutdown::new();
    tokio::spawn(
        RoleServer::new("test", Metrics::new("test").unwrap(), metrics_listener)
            .grpc(
                grpc,
                GrpcRoutes::new(api),
                shikko_runtime::Security::InsecureLoopback,
            )
            .serve(shutdown.clone(), Duration::from_secs(2)),
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel)
        .max_encoding_message_size(1 << 20);
    let req = |n: usize| tonic_health::pb::HealthCheckRequest {
        service: "x".repeat(n),
    };
    // Check has the default limits (64 KiB): a message over them is refused.
    let e = health.check(req(100 << 10)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("larger than its limit"), "{e:?}");
    // Under them, the service answers (NOT_FOUND: no such service name).
    let e = health.check(req(10 << 10)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    // Watch: 1 KiB, one at a time.
    let e = health.watch(req(2048)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    let mut first = health.watch(req(0)).await.unwrap().into_inner();
    assert!(first.next().await.unwrap().is_ok());
    let e = health.watch(req(0)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("calls in progress"), "{e:?}");
    // The stream ended: its place is free again.
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        match health.watch(req(0)).await {
            Ok(s) => {
                again = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(
        again.is_some(),
        "the place of an ended stream is given back"
    );
    let text = metrics_text(metrics_addr);
    for line in [
        "shikko_grpc_limited_total{method=\"other\",reason=\"message_size\"} 1",
        "shikko_grpc_limited_total{method=\"/grpc.health.v1.Health/Watch\",reason=\"message_size\"} 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    assert!(
        text.contains("shikko_grpc_limited_total{method=\"/grpc.health.v1.Health/Watch\",reason=\"concurrency\"}"),
        "{text}"
    );
    shutdown.trigger();
}

/// The public TLS endpoint's connections: at most so many from one
/// address (more are closed when accepted, counted), and a connection
/// silent past the idle limit is closed (its place given back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_tls_endpoint_bounds_connections_per_peer_and_idle_time() {
    use tokio::io::AsyncReadExt;
    let public = start_public(shikko_runtime::AcceptLimits {
        max_per_peer: 2,
        idle_timeout: Some(Duration::from_secs(2)),
        ..shikko_runtime::AcceptLimits::default()
    })
    .await;
    let (grpc_addr, metrics_addr, shutdown) =
        (public.grpc, public.metrics, public.shutdown.clone());
    let connect = || async {
        let channel = public.anonymous_channel().await;
        let mut h = tonic_health::pb::health_client::HealthClient::new(channel);
        h.check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
        h
    };
    let (_a, _b) = (connect().await, connect().await);
    // A third from the same address: closed at once.
    let mut third = tokio::net::TcpStream::connect(grpc_addr).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("closed at once, not after the handshake timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        metrics_text(metrics_addr)
            .contains("shikko_tls_handshakes_failed_total{reason=\"peer_limit\"} 1"),
    );
    // The two fall silent: closed after the idle limit, their places free.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut fourth = tokio::net::TcpStream::connect(grpc_addr).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(1), fourth.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "admitted (waiting for its handshake): {waited:?}"
    );
    let _c = connect().await;
    shutdown.trigger();
}

/// Connections without a client certificate, where the port lets a client
/// withhold one: so many at once, more closed after the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_tls_endpoint_bounds_connections_without_a_certificate() {
    let public = start_public(shikko_runtime::AcceptLimits {
        max_anonymous: 1,
        ..shikko_runtime::AcceptLimits::default()
    })
    .await;
    let (metrics_addr, shutdown) = (public.metrics, public.shutdown.clone());
    let check = || async {
        let channel = public.anonymous_channel().await;
        let mut h = tonic_health::pb::health_client::HealthClient::new(channel);
        let r = h
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await;
        (h, r)
    };
    let (_first, r) = check().await;
    assert!(r.is_ok(), "{r:?}");
    let (_second, r) = check().await;
    assert!(r.is_err(), "a second anonymous connection is served");
    // Counted (once per attempt: the client may try again).
    let text = metrics_text(metrics_addr);
    assert!(
        text.contains("shikko_tls_handshakes_failed_total{reason=\"anonymous_limit\"}"),
        "{text}"
    );
    shutdown.trigger();
}

/// The HTTP endpoint served by a thread per listener: one address for all
/// (SO_REUSEPORT), every connection answered by one of the role's own HTTP
/// threads (the kernel spreading them), and a drain that ends them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_per_core_serves_every_connection_on_its_threads_then_drains() {
    let listeners =
        shikko_runtime::bind_per_core("127.0.0.1:0".parse().unwrap(), "HTTP", 3).unwrap();
    let addr = listeners[0].local_addr().unwrap();
    assert!(
        listeners.iter().all(|l| l.local_addr().unwrap() == addr),
        "one address for all"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async { std::thread::current().name().unwrap_or("?").to_string() }),
    );
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(
        RoleServer::new("test", Metrics::new("test").unwrap(), metrics_listener)
            .http_per_core(listeners, app, shikko_runtime::HttpLimits::default())
            .serve(shutdown.clone(), Duration::from_secs(5)),
    );
    let names = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        (0..60)
            .map(|_| {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                assert!(out.starts_with("HTTP/1.1 200"), "{out}");
                out.rsplit("\r\n\r\n").next().unwrap().to_string()
            })
            .collect::<std::collections::BTreeSet<String>>()
    })
    .await
    .unwrap();
    assert!(
        names.iter().all(|n| n.starts_with("test-http-")),
        "{names:?}"
    );
    assert!(
        names.len() >= 2,
        "the kernel spreads connections: {names:?}"
    );
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the threads drain and end")
        .unwrap()
        .unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer listening"
    );
}

/// A per-core HTTP endpoint over an app that echoes what it was asked.
async fn echo_per_core() -> (std::net::SocketAddr, Shutdown) {
    let listeners =
        shikko_runtime::bind_per_core("127.0.0.1:0".parse().unwrap(), "HTTP", 2).unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/echo/{n}",
            axum::routing::get(
                |axum::extract::Path(n): axum::extract::Path<String>| async move { n },
            ),
        )
        .route(
            "/len",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = Shutdown::new();
    tokio::spawn(
        RoleServer::new("test", Metrics::new("test").unwrap(), metrics_listener)
            .http_per_core(listeners, app, shikko_runtime::HttpLimits::default())
            .serve(shutdown.clone(), Duration::from_secs(5)),
    );
    (addr, shutdown)
}

/// The bodies of `n` HTTP/1.1 responses read from `s`, in order (each
/// a 200).
fn read_responses(s: &mut std::net::TcpStream, n: usize) -> Vec<String> {
    let got = shikko_testkit::http::read_responses(s, n);
    assert_eq!(got.len(), n, "closed after {} responses", got.len());
    got.iter()
        .map(|r| {
            assert!(r.head.starts_with("http/1.1 200"), "{}", r.head);
            String::from_utf8_lossy(&r.body).into_owned()
        })
        .collect()
}

/// What a fast path must not break: pipelined requests answered in
/// order, a request split at every byte boundary, a body in pieces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_per_core_answers_pipelined_split_and_partial_requests() {
    let (addr, shutdown) = echo_per_core().await;
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        // Twenty requests in one write, one connection: twenty answers, in order.
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let mut all = Vec::new();
        for i in 0..20 {
            all.extend_from_slice(format!("GET /echo/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        }
        s.write_all(&all).unwrap();
        let bodies = read_responses(&mut s, 20);
        assert_eq!(bodies, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());

        // One request split at every byte boundary, on one keep-alive connection.
        let req = b"GET /echo/split HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        for k in 1..req.len() {
            let a = answer_split(&mut s, req, k);
            assert!(a.head.starts_with("http/1.1 200"), "{}", a.head);
            assert_eq!(text(&a), "split", "split at {k}");
        }

        // A body in three pieces, the headers alone first.
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
            .unwrap();
        for piece in [&b"abc"[..], b"defg", b"hij"] {
            std::thread::sleep(Duration::from_millis(20));
            s.write_all(piece).unwrap();
        }
        assert_eq!(read_responses(&mut s, 1), ["10"]);
    })
    .await
    .unwrap();
    shutdown.trigger();
}

/// A fast path over the echo app's GETs: the same answers, marked
/// `x-fast: 1`; `/echo/big` is 64 KiB; `/echo/slow` is declined (the app
/// answers it).
struct FastEcho;

/// What `/echo/N` answers, by either path.
fn echo_body(n: &str) -> Vec<u8> {
    if n == "big" {
        vec![b'x'; 64 * 1024]
    } else {
        n.as_bytes().to_vec()
    }
}

impl shikko_runtime::FastPath for FastEcho {
    fn answer(
        &self,
        req: &shikko_runtime::FastRequest<'_>,
        out: &mut shikko_runtime::Responses<'_>,
    ) -> bool {
        if req.method() == "POST" && req.path() == "/len" {
            let len = req.body().len().to_string();
            out.respond(
                axum::http::StatusCode::OK,
                &[b"x-fast: 1\r\n"],
                len.as_bytes(),
            );
            return true;
        }
        let Some(n) = req.path().strip_prefix("/echo/") else {
            return false;
        };
        if n == "slow" {
            return false;
        }
        out.respond(
            axum::http::StatusCode::OK,
            &[b"x-fast: 1\r\n"],
            &echo_body(n),
        );
        true
    }
}

/// [`echo_per_core`] with [`FastEcho`] in front, and these limits.
async fn fast_echo(
    limits: shikko_runtime::HttpLimits,
) -> (
    std::net::SocketAddr,
    Shutdown,
    tokio::task::JoinHandle<Result<(), shikko_runtime::ServeError>>,
) {
    let listeners =
        shikko_runtime::bind_per_core("127.0.0.1:0".parse().unwrap(), "HTTP", 2).unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/echo/{n}",
            axum::routing::get(
                |axum::extract::Path(n): axum::extract::Path<String>| async move { echo_body(&n) },
            ),
        )
        .route(
            "/len",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(
        RoleServer::new("test", Metrics::new("test").unwrap(), metrics_listener)
            .http_per_core(listeners, app, limits)
            .fast_path(Arc::new(FastEcho))
            .serve(shutdown.clone(), Duration::from_secs(5)),
    );
    (addr, shutdown, server)
}

type Answer = shikko_testkit::http::Response;

/// Whether the fast path answered it.
fn fast(a: &Answer) -> bool {
    a.header("x-fast") == Some("1")
}

fn text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

use shikko_testkit::http::read_responses as read_answers;

/// Sends `req` on `s` in two writes cut at octet `k` (a pause between)
/// and reads its one answer.
fn answer_split(s: &mut std::net::TcpStream, req: &[u8], k: usize) -> Answer {
    use std::io::Write;
    s.write_all(&req[..k]).unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(2));
    s.write_all(&req[k..]).unwrap();
    let mut a = read_answers(s, 1);
    assert_eq!(a.len(), 1, "split at {k}");
    a.remove(0)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

/// Pipelined GETs answered by the fast path, in order, then a POST handed
/// to the app with the rest of the connection; a request split at every
/// octet; what the fast path declines or does not take (HTTP/1.0,
/// `Connection: close`) answered by the app, the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_answers_in_order_and_hands_the_rest_to_the_app() {
    let (addr, shutdown, _server) = fast_echo(shikko_runtime::HttpLimits::default()).await;
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let mut all = Vec::new();
        for i in 0..10 {
            all.extend(get(&format!("/echo/{i}")));
        }
        // A body the fast path does not read (chunked): the app's, from here on.
        all.extend_from_slice(
            b"POST /len HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        );
        for i in 10..20 {
            all.extend(get(&format!("/echo/{i}")));
        }
        s.write_all(&all).unwrap();
        let answers = read_answers(&mut s, 21);
        let bodies: Vec<String> = answers.iter().map(text).collect();
        let mut expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        expected.push("3".into());
        expected.extend((10..20).map(|i| i.to_string()));
        assert_eq!(bodies, expected);
        assert!(answers[..10].iter().all(fast), "the GETs before the POST");
        assert!(
            answers[10..].iter().all(|a| !fast(a)),
            "the connection is the app's from the POST on"
        );
        assert!(
            answers
                .iter()
                .all(|a| a.head.starts_with("http/1.1 200 ok\r\n"))
        );
        assert!(
            answers[0].head.contains("\r\ndate: "),
            "{}",
            answers[0].head
        );

        // Split at every octet, one keep-alive connection: the fast path each time.
        let req = get("/echo/split");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        for k in 1..req.len() {
            let a = answer_split(&mut s, &req, k);
            assert!(fast(&a) && text(&a) == "split", "split at {k}");
        }

        // A POST with its body split at every octet (the head included):
        // the fast path each time, once the body is whole.
        let post = b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789";
        for k in 1..post.len() {
            let a = answer_split(&mut s, post, k);
            assert!(fast(&a) && text(&a) == "10", "split at {k}");
        }

        // Declined by the fast path, HTTP/1.0, Connection: close: the app's.
        for req in [
            get("/echo/slow"),
            b"GET /echo/old HTTP/1.0\r\n\r\n".to_vec(),
            b"GET /echo/closing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ] {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(&req).unwrap();
            let a = read_answers(&mut s, 1);
            assert_eq!(a.len(), 1);
            assert!(!fast(&a[0]), "{}", a[0].head);
            let want = String::from_utf8_lossy(&req[10..])
                .split(' ')
                .next()
                .unwrap()
                .to_string();
            assert_eq!(text(&a[0]), want);
        }
        // The app closes after `Connection: close`.
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /echo/bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.ends_with(b"bye"));
    })
    .await
    .unwrap();
    shutdown.trigger();
}

/// A client that reads its pipelined answers slowly gets every one (the
/// server's writes wait for it in pieces); one that stops reading is
/// closed once the header timeout passes without progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_served_and_one_that_stops_reading_is_closed() {
    let (addr, shutdown, _server) = fast_echo(shikko_runtime::HttpLimits {
        header_read_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let n = 300;
        let all: Vec<u8> = (0..n).flat_map(|_| get("/echo/big")).collect();

        // Reads 16 KiB at a time, pausing: 300 x 64 KiB in all.
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(&all).unwrap();
        struct Slow<'a>(&'a mut std::net::TcpStream);
        impl std::io::Read for Slow<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_micros(200));
                let k = buf.len().min(16 * 1024);
                self.0.read(&mut buf[..k])
            }
        }
        let answers = read_answers(&mut Slow(&mut s), n);
        assert_eq!(answers.len(), n);
        assert!(answers.iter().all(|a| fast(a) && a.body.len() == 64 * 1024));

        // Asks for 300 x 64 KiB and reads nothing for 5 s: closed meanwhile.
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(&all).unwrap();
        std::thread::sleep(Duration::from_secs(5));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = 0usize;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut chunk) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("still open after {got} octets: {e}"),
            }
        }
        assert!(
            got < n * 64 * 1024,
            "a client that stopped reading was waited for ({got} octets)"
        );
    })
    .await
    .unwrap();
    shutdown.trigger();
}

/// The header timeout on the fast path: a head trickled in (never whole),
/// a head left half-sent, and a keep-alive connection left idle are all
/// closed within it; then the drain closes an idle connection at once and
/// ends the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_closes_slow_and_idle_clients_and_drains() {
    let (addr, shutdown, server) = fast_echo(shikko_runtime::HttpLimits {
        header_read_timeout: Duration::from_millis(800),
        ..Default::default()
    })
    .await;
    let drained = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let closed_within = |s: &mut std::net::TcpStream, secs: u64| {
            s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
            let mut rest = Vec::new();
            match s.read_to_end(&mut rest) {
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        };
        // One octet every 200 ms, never a whole head.
        let mut trickle = std::net::TcpStream::connect(addr).unwrap();
        let started = std::time::Instant::now();
        let mut cut = false;
        for b in b"GET /echo/1 HTTP/1.1\r\nHost: x\r\nX-Long: abcdefghijklmnopqrstuvwxyz" {
            if trickle.write_all(&[*b]).is_err() {
                cut = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            cut || closed_within(&mut trickle, 1),
            "a trickled head kept the connection"
        );
        assert!(started.elapsed() < Duration::from_secs(12));

        // Half a head, then nothing.
        let mut half = std::net::TcpStream::connect(addr).unwrap();
        half.write_all(b"GET /echo/1 HTTP/1.1\r\nHo").unwrap();
        assert!(
            closed_within(&mut half, 5),
            "a half head kept the connection"
        );

        // Answered, then idle.
        let mut idle = std::net::TcpStream::connect(addr).unwrap();
        idle.write_all(&get("/echo/1")).unwrap();
        assert!(fast(&read_answers(&mut idle, 1)[0]));
        assert!(
            closed_within(&mut idle, 5),
            "an idle keep-alive connection stayed"
        );

        // Answered and kept open, then the drain.
        let mut kept = std::net::TcpStream::connect(addr).unwrap();
        kept.write_all(&get("/echo/2")).unwrap();
        assert_eq!(text(&read_answers(&mut kept, 1)[0]), "2");
        kept
    })
    .await
    .unwrap();
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("the drain closes idle connections at once")
        .unwrap()
        .unwrap();
    let mut drained = drained;
    let mut rest = Vec::new();
    use std::io::Read;
    drained
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    match drained.read_to_end(&mut rest) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
}

/// HTTP/2 with prior knowledge (h2c) reaches the app behind the fast path:
/// twenty requests multiplexed on one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_passes_the_fast_path_to_the_app() {
    let (addr, shutdown, _server) = fast_echo(shikko_runtime::HttpLimits::default()).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<axum::body::Body>();
    let asks = (0..20).map(|i| {
        let client = client.clone();
        async move {
            let resp = client
                .get(format!("http://{addr}/echo/{i}").parse().unwrap())
                .await
                .unwrap();
            assert_eq!(resp.version(), axum::http::Version::HTTP_2);
            assert!(resp.headers().get("x-fast").is_none());
            let body = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), 1 << 20)
                .await
                .unwrap();
            String::from_utf8(body.to_vec()).unwrap()
        }
    });
    let bodies = futures::future::join_all(asks).await;
    assert_eq!(bodies, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
    shutdown.trigger();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// Pipelined GETs (fast, declined, app) cut into pieces anywhere are
    /// answered whole and in order.
    #[test]
    fn pipelined_requests_cut_anywhere_are_answered_in_order(
        kinds in proptest::collection::vec(0u8..3, 1..12),
        cuts in proptest::collection::vec(1usize..400, 0..6),
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (addr, shutdown, _server) = rt.block_on(fast_echo(shikko_runtime::HttpLimits::default()));
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for (i, k) in kinds.iter().enumerate() {
            let path = match k {
                0 => format!("/echo/{i}"),
                1 => "/echo/slow".to_string(),
                _ => format!("/echo/p{i}"),
            };
            want.push(path.trim_start_matches("/echo/").to_string());
            wire.extend(get(&path));
        }
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        let mut at = 0;
        for c in cuts {
            let end = (at + c).min(wire.len());
            s.write_all(&wire[at..end]).unwrap();
            std::thread::sleep(Duration::from_millis(3));
            at = end;
        }
        s.write_all(&wire[at..]).unwrap();
        let got: Vec<String> = read_answers(&mut s, want.len()).iter().map(text).collect();
        shutdown.trigger();
        proptest::prop_assert_eq!(got, want);
    }
}

/// Draining with a request under way: one the fast path does not take,
/// completed after the drain began, is handed to the app and answered
/// (not closed unread), every time; one the fast path takes is answered,
/// and the connection closes without waiting for the next pipelined one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_under_way_when_the_drain_begins_is_answered_then_the_connection_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for round in 0..8 {
        let (addr, shutdown, server) = fast_echo(shikko_runtime::HttpLimits::default()).await;
        let mut declined = tokio::net::TcpStream::connect(addr).await.unwrap();
        declined
            .write_all(b"GET /echo/slow HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut taken = tokio::net::TcpStream::connect(addr).await.unwrap();
        taken
            .write_all(b"GET /echo/1 HTTP/1.1\r\nHo")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        shutdown.trigger();
        tokio::time::sleep(Duration::from_millis(100)).await;
        declined.write_all(b"\r\n").await.unwrap();
        taken
            .write_all(b"st: x\r\n\r\nGET /echo/2 HTTP/1.1\r\nHo")
            .await
            .unwrap();
        for (c, want, by_fast) in [(&mut declined, "slow", false), (&mut taken, "1", true)] {
            let mut all = Vec::new();
            tokio::time::timeout(Duration::from_secs(3), c.read_to_end(&mut all))
                .await
                .unwrap_or_else(|_| panic!("round {round}: {want}: not closed after its answer"))
                .ok();
            let got = shikko_testkit::http::read_responses(&mut all.as_slice(), 2);
            assert_eq!(got.len(), 1, "round {round}: {want}: {all:?}");
            assert_eq!(
                (text(&got[0]).as_str(), fast(&got[0])),
                (want, by_fast),
                "round {round}"
            );
        }
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("drained")
            .unwrap()
            .unwrap();
    }
}
