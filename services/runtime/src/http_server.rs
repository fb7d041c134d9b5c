//! Serving an axum `Router` over HTTP/1.1 and HTTP/2 (prior knowledge) with
//! what a public endpoint needs and `axum::serve` does not set: a header
//! read timeout (a slowloris client, or a keep-alive connection idle that
//! long, is closed), a cap on open connections (past it, new ones wait in
//! the kernel's accept backlog instead of exhausting descriptors), HTTP/2
//! keepalive pings, a request body read timeout (a body trickled in byte by
//! byte is cut off once the header timeout has passed since the request
//! began), and graceful shutdown (stop accepting, let the requests in
//! flight finish).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits of [`serve_http`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's headers must arrive within this; it also closes a
    /// keep-alive connection that stays idle this long.
    pub header_read_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// An HTTP/2 connection without a request or a response for this long
    /// is closed, keep-alive pings notwithstanding (HTTP/1 keep-alive
    /// connections close after `header_read_timeout`).
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 50_000,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// The SHA-256 of the certificate (DER) a client presented in the TLS
/// handshake, as a request extension on [`serve_https`]'s connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCertificate(pub [u8; 32]);

/// The HTTP/1.1 and HTTP/2 connection builder of both servers.
pub(crate) fn connection_builder(limits: HttpLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

/// `app` with the body timeout, and the client's certificate (if any) in
/// every request's extensions.
pub(crate) fn connection_service(
    app: axum::Router,
    body_timeout: Duration,
    peer: Option<PeerCertificate>,
) -> TowerToHyperService<
    tower::util::MapRequest<
        axum::Router,
        impl FnMut(http::Request<hyper::body::Incoming>) -> http::Request<axum::body::Body> + Clone,
    >,
> {
    TowerToHyperService::new(tower::ServiceExt::map_request(
        app,
        move |req: http::Request<hyper::body::Incoming>| {
            let mut req = req.map(|body| {
                // A request without a body (a GET) costs no timer.
                if http_body::Body::is_end_stream(&body) {
                    axum::body::Body::new(body)
                } else {
                    axum::body::Body::new(TimedBody::new(body, body_timeout))
                }
            });
            if let Some(p) = peer {
                req.extensions_mut().insert(p);
            }
            req
        },
    ))
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for
/// the open connections to finish their requests (bound the wait with
/// [`crate::drain_with_timeout`]).
pub async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let builder = connection_builder(limits);
    tokio::pin!(shutdown);
    while let Some((stream, permit)) = next_connection(&listener, &permits, shutdown.as_mut()).await
    {
        let service = connection_service(app.clone(), limits.header_read_timeout, None);
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let first_byte = limits.header_read_timeout;
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            // The first bytes tell HTTP/1 from HTTP/2; a client that sends
            // none within the header timeout is dropped here (hyper's own
            // header timeout starts only once it knows the protocol).
            let mut probe = [0u8; 1];
            match tokio::time::timeout(first_byte, stream.peek(&mut probe)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return drop(permit),
            }
            let conn = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(crate::idle::IdleStream::new(stream, Some(idle))),
                    service,
                )
                .into_owned();
            // A client that goes away or times out is not an error of ours.
            let _ = watcher.watch(conn).await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The next connection of `listener` (`TCP_NODELAY` set), with its place
/// among `permits` (past the cap, connections wait in the kernel's accept
/// backlog); `None` once `shutdown` completes.
pub(crate) async fn next_connection(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Option<(tokio::net::TcpStream, tokio::sync::OwnedSemaphorePermit)> {
    let permit = tokio::select! {
        p = permits.clone().acquire_owned() => p.ok()?,
        () = &mut shutdown => return None,
    };
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    return Some((s, permit));
                }
                Err(e) => {
                    // Out of descriptors, or a connection reset before accept: go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            () = &mut shutdown => return None,
        }
    }
}

/// Serves `app` over the TLS connections of `incoming` ([`crate::tls::accept_tls`]:
/// handshakes, connection caps and idle time are bounded there) until
/// `shutdown`, then lets the open ones finish their requests. Each
/// request carries the client's certificate as a [`PeerCertificate`]
/// extension when it presented one.
pub async fn serve_https(
    incoming: impl tokio_stream::Stream<Item = std::io::Result<crate::tls::TlsConn>>,
    app: axum::Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use tokio_stream::StreamExt;
    let graceful = GracefulShutdown::new();
    let builder = connection_builder(limits);
    tokio::pin!(shutdown);
    tokio::pin!(incoming);
    loop {
        let conn = tokio::select! {
            c = incoming.next() => match c {
                Some(Ok(c)) => c,
                Some(Err(_)) => continue,
                None => break,
            },
            () = &mut shutdown => break,
        };
        let peer = conn
            .tls()
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|leaf| {
                let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.as_ref());
                let mut sha = [0u8; 32];
                sha.copy_from_slice(d.as_ref());
                PeerCertificate(sha)
            });
        let service = connection_service(app.clone(), limits.header_read_timeout, peer);
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(conn), service)
                .into_owned();
            let _ = watcher.watch(conn).await;
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// A request body that must arrive whole within a time from the start of
/// the request; past it, reading fails (the handler's extractor answers
/// 400 and the connection is closed).
struct TimedBody<B> {
    inner: B,
    until: tokio::time::Instant,
    /// Made the first time the body is not ready (a body that is there at
    /// once costs no timer).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> TimedBody<B> {
    fn new(inner: B, within: Duration) -> TimedBody<B> {
        TimedBody {
            inner,
            until: tokio::time::Instant::now() + within,
            deadline: None,
        }
    }
}

impl<B> http_body::Body for TimedBody<B>
where
    B: http_body::Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this
                .deadline
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(this.until)))
                .as_mut()
                .poll(cx)
            {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body arrived too slowly",
                ))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(limits: HttpLimits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .route(
                "/echo",
                axum::routing::post(|body: axum::body::Bytes| async move { body }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_http(listener, app, limits, async {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    #[tokio::test]
    async fn a_slow_header_is_cut_off_and_others_are_served() {
        let (addr, _stop) = start(HttpLimits {
            header_read_timeout: Duration::from_millis(300),
            max_connections: 100,
            idle_timeout: Duration::from_secs(120),
        })
        .await;
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut fast = tokio::net::TcpStream::connect(addr).await.unwrap();
        fast.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        fast.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"),
            "{answer}"
        );
        // The slow one is closed once its headers are late (EOF or a 408).
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf))
            .await
            .expect("closed within the timeout")
            .unwrap_or(0);
        assert!(
            n == 0 || String::from_utf8_lossy(&buf).contains("408"),
            "{buf:?}"
        );
    }

    #[tokio::test]
    async fn a_slow_body_is_cut_off_and_a_prompt_one_is_read() {
        let (addr, _stop) = start(HttpLimits {
            header_read_timeout: Duration::from_millis(300),
            max_connections: 100,
            idle_timeout: Duration::from_secs(120),
        })
        .await;
        // Whole at once: echoed.
        let mut prompt = tokio::net::TcpStream::connect(addr).await.unwrap();
        prompt
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            .await
            .unwrap();
        let mut answer = String::new();
        prompt.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"),
            "{answer}"
        );
        // Headers at once, then 10 of 100 announced bytes and nothing more:
        // refused once the time is up, and the connection closed.
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf))
            .await
            .expect("closed within the timeout")
            .ok();
        let text = String::from_utf8_lossy(&buf);
        assert!(buf.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
        assert!(!text.contains("0123456789"), "{text}");
    }

    #[tokio::test]
    async fn a_connection_that_never_speaks_is_closed() {
        let (addr, _stop) = start(HttpLimits {
            header_read_timeout: Duration::from_millis(300),
            max_connections: 100,
            idle_timeout: Duration::from_secs(120),
        })
        .await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut buf))
            .await
            .expect("closed within the timeout")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn past_the_cap_connections_wait_until_a_slot_frees() {
        let (addr, _stop) = start(HttpLimits {
            header_read_timeout: Duration::from_millis(500),
            max_connections: 2,
            idle_timeout: Duration::from_secs(120),
        })
        .await;
        let idle1 = tokio::net::TcpStream::connect(addr).await.unwrap();
        let idle2 = tokio::net::TcpStream::connect(addr).await.unwrap();
        // A third is accepted only when an idle one is dropped (or times out).
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        third
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        let early = tokio::time::timeout(
            Duration::from_millis(200),
            third.read_to_string(&mut answer),
        )
        .await;
        assert!(early.is_err(), "served past the cap: {answer}");
        drop(idle1);
        tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        drop(idle2);
    }

    /// An HTTP/2 connection (prior knowledge, as h2c clients and CDNs
    /// speak it) that makes no request is closed after the idle timeout;
    /// one within it is not.
    #[tokio::test]
    async fn an_idle_http2_connection_is_closed() {
        async fn hello(s: &mut tokio::net::TcpStream) -> std::io::Result<()> {
            let mut b = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            // An empty SETTINGS frame.
            b.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
            s.write_all(&b).await
        }
        let (addr, _stop) = start(HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 100,
            idle_timeout: Duration::from_secs(1),
        })
        .await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        hello(&mut c).await.unwrap();
        let mut buf = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
        assert!(closed.is_ok(), "an idle HTTP/2 connection stays open");
        // The server's SETTINGS came first: it spoke HTTP/2 before closing.
        assert!(buf.len() >= 9 && buf[3] == 4, "{buf:?}");

        let (addr, _stop) = start(HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 100,
            idle_timeout: Duration::from_secs(30),
        })
        .await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        hello(&mut c).await.unwrap();
        let open =
            tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut Vec::new())).await;
        assert!(open.is_err(), "closed before its idle timeout");
    }
}
