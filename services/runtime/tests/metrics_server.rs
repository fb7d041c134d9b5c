//! The metrics endpoint over real TCP: scrape, health, 404, graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use shikko_runtime::metrics_server::serve_metrics;
use shikko_runtime::shutdown::{Shutdown, drain_with_timeout};
use shikko_runtime::telemetry::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const LIMIT: Duration = Duration::from_secs(10);

/// A running endpoint on an ephemeral loopback port.
struct Endpoint {
    addr: std::net::SocketAddr,
    shutdown: Shutdown,
    server: JoinHandle<std::io::Result<()>>,
}

async fn start(metrics: Metrics) -> Result<Endpoint> {
    // Bound before serving: connections queue in the backlog until accepted,
    // so no readiness wait is needed.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = Shutdown::new();
    let server = tokio::spawn(serve_metrics(listener, metrics, shutdown.wait_owned()));
    Ok(Endpoint {
        addr,
        shutdown,
        server,
    })
}

impl Endpoint {
    async fn stop(self) -> Result<()> {
        self.shutdown.trigger();
        drain_with_timeout(self.server, LIMIT)
            .await
            .context("server did not stop")???;
        Ok(())
    }
}

/// A parsed HTTP/1.1 response.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_head(head: &str) -> Result<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("no status line")?;
    let status = status_line
        .split(' ')
        .nth(1)
        .context("no status code")?
        .parse()?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').context("header without colon")?;
            Ok((n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect::<Result<_>>()?;
    Ok((status, headers))
}

/// Sends one request with `Connection: close` and reads to EOF.
async fn get(addr: std::net::SocketAddr, path: &str) -> Result<Response> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    drain_with_timeout(stream.read_to_end(&mut raw), LIMIT).await??;
    let raw = String::from_utf8(raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").context("no end of headers")?;
    let (status, headers) = parse_head(head)?;
    Ok(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// Sends one keep-alive request on `stream` and reads exactly its response
/// (by Content-Length), leaving the connection open.
async fn get_keep_alive(stream: &mut TcpStream, path: &str) -> Result<Response> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let (status, headers) = parse_head(std::str::from_utf8(&raw[..end])?)?;
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .context("no content-length")?
                .1
                .parse()?;
            if raw.len() >= end + 4 + len {
                let body = String::from_utf8(raw[end + 4..end + 4 + len].to_vec())?;
                return Ok(Response {
                    status,
                    headers,
                    body,
                });
            }
        }
        let n = drain_with_timeout(stream.read(&mut chunk), LIMIT).await??;
        ensure!(n > 0, "connection closed mid-response");
        raw.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn scrape_shows_registered_counter_and_content_type() -> Result<()> {
    let metrics = Metrics::new("9.9.9")?;
    let requests = metrics.register_int_counter_vec(
        "shikko_test_requests_total",
        "Requests handled in the test, by outcome.",
        &["outcome"],
    )?;
    requests.with_label_values(&["ok"]).inc_by(3);
    requests.with_label_values(&["error"]).inc();
    let endpoint = start(metrics.clone()).await?;

    let response = get(endpoint.addr, "/metrics").await?;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let body = &response.body;
    assert!(
        body.contains("# TYPE shikko_test_requests_total counter"),
        "{body}"
    );
    assert!(
        body.contains(r#"shikko_test_requests_total{outcome="ok"} 3"#),
        "{body}"
    );
    assert!(
        body.contains(r#"shikko_test_requests_total{outcome="error"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(r#"shikko_build_info{version="9.9.9"} 1"#),
        "{body}"
    );
    assert!(body.contains("shikko_start_time_seconds "), "{body}");

    // The endpoint reads the live registry, not a snapshot.
    requests.with_label_values(&["ok"]).inc();
    let body = get(endpoint.addr, "/metrics").await?.body;
    assert!(
        body.contains(r#"shikko_test_requests_total{outcome="ok"} 4"#),
        "{body}"
    );

    endpoint.stop().await
}

#[tokio::test]
async fn healthz_says_ok_and_unknown_paths_are_404() -> Result<()> {
    let endpoint = start(Metrics::new("0")?).await?;

    let health = get(endpoint.addr, "/healthz").await?;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, "ok");

    assert_eq!(get(endpoint.addr, "/nope").await?.status, 404);

    endpoint.stop().await
}

#[tokio::test]
async fn shutdown_ends_the_server_and_closes_the_port() -> Result<()> {
    let endpoint = start(Metrics::new("0")?).await?;
    let addr = endpoint.addr;
    assert_eq!(get(addr, "/healthz").await?.status, 200);

    endpoint.stop().await?;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener still accepting after shutdown"
    );
    Ok(())
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections() -> Result<()> {
    let endpoint = start(Metrics::new("0")?).await?;
    let mut stream = TcpStream::connect(endpoint.addr).await?;
    let response = get_keep_alive(&mut stream, "/healthz").await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "ok");

    // The connection stays open and idle; the drain must not wait for the
    // client to hang up.
    endpoint.stop().await?;
    let mut rest = Vec::new();
    let n = drain_with_timeout(stream.read_to_end(&mut rest), LIMIT).await??;
    assert_eq!(
        n, 0,
        "server closed the idle connection without sending more"
    );
    Ok(())
}

#[tokio::test]
async fn shutdown_before_serving_returns_at_once() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let shutdown = Shutdown::new();
    shutdown.trigger();
    drain_with_timeout(
        serve_metrics(listener, Metrics::new("0")?, shutdown.wait_owned()),
        LIMIT,
    )
    .await??;
    Ok(())
}
