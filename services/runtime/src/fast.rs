//! A fast path for the HTTP/1.1 GETs a role answers from memory (issue 17):
//! the OCSP responder's pre-signed answers.
//!
//! A connection of an endpoint with a [`FastPath`] is read here first. Each
//! request head is parsed with `httparse`; a GET over HTTP/1.1 without a
//! body, or a POST with a small body announced by its `Content-Length`
//! and arrived whole, that the fast path takes is answered by appending its complete
//! response (status line, headers rendered by the role when the answer was
//! made, body) to the connection's output buffer, and every answer of what
//! has arrived (pipelined requests too) goes out in one write. No hyper, no
//! router, no allocation on the way: the buffers live as long as the
//! connection.
//!
//! Anything else (another method, a chunked or large body, HTTP/1.0,
//! `Connection: close`, an upgrade or `Expect`, a head too large or that `httparse` refuses, the HTTP/2
//! preface, a request the fast path declines) hands the connection to
//! hyper and the role's app, as the other endpoints serve it, with the
//! octets already read put back in front: answers stay in request order,
//! and every limit of [`crate::serve_http`] holds from there on.
//!
//! What the fast path keeps of hyper's limits: a request's head must arrive
//! within the header timeout (which also closes a keep-alive connection
//! idle that long), the client must take some of its answers within it
//! each time (a slow reader is served, one that stops reading is closed,
//! not waited for), the
//! connection cap, and the drain (an idle connection closes at once, one
//! with a request under way answers it first, then closes).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::HttpLimits;

/// Largest request head the fast path reads; a longer one is hyper's
/// (whose own limits apply).
pub const MAX_FAST_HEAD: usize = 8 * 1024;
/// Most header fields the fast path parses; a request with more is hyper's.
const MAX_HEADERS: usize = 32;

/// Largest request body the fast path reads (a POST's, whole, announced
/// by its `Content-Length`); a longer one is hyper's.
pub const MAX_FAST_BODY: usize = 8 * 1024;

/// A request over HTTP/1.1 offered to the fast path: a GET without a body,
/// or a POST whose body (at most [`MAX_FAST_BODY`], by `Content-Length`)
/// has arrived whole.
#[derive(Debug)]
pub struct FastRequest<'a> {
    method: &'a str,
    path: &'a str,
    headers: &'a [httparse::Header<'a>],
    body: &'a [u8],
}

impl<'a> FastRequest<'a> {
    /// `GET` or `POST`.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request target as it arrived (not decoded, not cleaned).
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The body (empty for a GET).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The value of the first header field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// A role's answers to the requests it can make without its app.
pub trait FastPath: Send + Sync + 'static {
    /// Answers `req` with one complete response through `out` and returns
    /// true, or returns false having done nothing (counted nothing, written
    /// nothing): the app answers it then.
    fn answer(&self, req: &FastRequest<'_>, out: &mut Responses<'_>) -> bool;
}

/// Where a fast path writes its answers (the connection's output buffer).
#[derive(Debug)]
pub struct Responses<'a> {
    out: &'a mut Vec<u8>,
}

thread_local! {
    /// The `Date` header's value, rendered once a second per thread.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Appends the current `Date` value (an IMF-fixdate: 29 octets).
fn put_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                d.1.copy_from_slice(text.as_bytes());
                d.0 = secs;
            }
        }
        out.extend_from_slice(&d.1);
    });
}

impl Responses<'_> {
    /// Appends a response: the status line, `Date`, the header `lines`
    /// (each complete: `name: value\r\n`, lower-case names as hyper
    /// writes them), `Content-Length` (not on 204 and 304), and `body`.
    pub fn respond(&mut self, status: StatusCode, lines: &[&[u8]], body: &[u8]) {
        let out = &mut *self.out;
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\ndate: ");
        put_date(out);
        out.extend_from_slice(b"\r\n");
        for l in lines {
            out.extend_from_slice(l);
        }
        if status != StatusCode::NOT_MODIFIED && status != StatusCode::NO_CONTENT {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if status != StatusCode::NOT_MODIFIED && status != StatusCode::NO_CONTENT {
            out.extend_from_slice(body);
        }
    }
}

/// What the octets at the front of a connection's buffer are.
enum Parsed {
    /// A request answered by the fast path, this many octets long.
    Answered(usize),
    /// Not all of a request (head, or a POST's body) yet.
    Partial,
    /// For hyper and the app, from here on.
    HandOff,
}

/// The body length of a request whose framing is the fast path's (a
/// single `Content-Length`, if any, of at most [`MAX_FAST_BODY`]; the
/// connection kept alive; no transfer coding, upgrade or expectation), or
/// `None`.
fn framing(headers: &[httparse::Header<'_>]) -> Option<usize> {
    let mut length = None;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).ok()?;
            // Digits only (no sign, no list): anything else is hyper's to refuse.
            if length.is_some() || v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            length = Some(v.parse::<usize>().ok().filter(|n| *n <= MAX_FAST_BODY)?);
        } else if name.eq_ignore_ascii_case("connection") {
            if !h.value.trim_ascii().eq_ignore_ascii_case(b"keep-alive") {
                return None;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("http2-settings")
        {
            return None;
        }
    }
    Some(length.unwrap_or(0))
}

fn parse(buf: &[u8], fast: &dyn FastPath, out: &mut Vec<u8>) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            let method = req.method.unwrap_or("");
            let Some(len) = framing(req.headers) else {
                return Parsed::HandOff;
            };
            let fits = match method {
                "GET" => len == 0,
                "POST" => true,
                _ => false,
            };
            if req.version != Some(1) || !fits {
                return Parsed::HandOff;
            }
            let Some(body) = buf.get(n..n + len) else {
                // The body is not all here yet.
                return Parsed::Partial;
            };
            let r = FastRequest {
                method,
                path: req.path.unwrap_or(""),
                headers: req.headers,
                body,
            };
            if fast.answer(&r, &mut Responses { out }) {
                Parsed::Answered(n + len)
            } else {
                Parsed::HandOff
            }
        }
        Ok(httparse::Status::Partial) if buf.len() < MAX_FAST_HEAD => Parsed::Partial,
        // Too long, too many headers, or not HTTP/1 (the HTTP/2 preface):
        // hyper answers it (431, 400) or speaks HTTP/2.
        Ok(httparse::Status::Partial) | Err(_) => Parsed::HandOff,
    }
}

/// Writes `out` whole, as long as the client takes some of it within
/// `timeout` each time (as nginx's `send_timeout`): a slow reader is
/// served, one that stops reading is not waited for.
async fn write_out(stream: &mut TcpStream, out: &[u8], timeout: Duration) -> bool {
    let mut at = 0;
    while at < out.len() {
        match tokio::time::timeout(timeout, stream.write(&out[at..])).await {
            Ok(Ok(n)) if n > 0 => at += n,
            _ => return false,
        }
    }
    true
}

/// Once the drain has begun.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves one connection: the fast path while it answers, then hyper.
async fn connection(
    mut stream: TcpStream,
    fast: Arc<dyn FastPath>,
    app: axum::Router,
    builder: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let timeout = limits.header_read_timeout;
    let mut buf = BytesMut::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    // A request's head must be whole by then (reset once one is answered).
    let mut deadline = tokio::time::Instant::now() + timeout;
    let hand_off = loop {
        let mut answered = false;
        let hand_off = loop {
            if buf.is_empty() {
                break false;
            }
            match parse(&buf, &*fast, &mut out) {
                Parsed::Answered(n) => {
                    buf.advance(n);
                    answered = true;
                }
                Parsed::Partial => break false,
                Parsed::HandOff => break true,
            }
        };
        if !out.is_empty() {
            if !write_out(&mut stream, &out, timeout).await {
                // Gone, or not reading what it asked for.
                return;
            }
            out.clear();
        }
        if hand_off {
            break true;
        }
        if answered {
            deadline = tokio::time::Instant::now() + timeout;
        }
        let stopping = *stop.borrow();
        if stopping && (buf.is_empty() || answered) {
            // Draining: nothing under way on this connection, or the
            // request that was is answered (as hyper, which closes after
            // the response in flight, reads no more pipelined requests).
            return;
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let idle = buf.is_empty();
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)) => r,
            () = stopped(&mut stop), if idle => return,
        };
        match read {
            Ok(Ok(n)) if n > 0 => {}
            // Closed, failed, or too slow.
            _ => break false,
        }
    };
    if !hand_off {
        return;
    }
    let io = Rewind {
        prefix: buf.freeze(),
        inner: stream,
    };
    let service = crate::http_server::connection_service(app, timeout, None);
    let conn = builder.serve_connection_with_upgrades(
        TokioIo::new(crate::idle::IdleStream::new(io, Some(limits.idle_timeout))),
        service,
    );
    tokio::pin!(conn);
    tokio::select! {
        // The connection first: handed over while draining, it must read
        // the request it was given before it is told to shut down (told
        // earlier, hyper would close without reading it).
        biased;
        // A client that goes away or times out is not an error of ours.
        _ = conn.as_mut() => {}
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Serves `app` on `listener`, with `fast` answering the requests it takes
/// first (see the module), until `shutdown` completes; then the open
/// connections finish what is under way (bound the wait with
/// [`crate::drain_with_timeout`]).
pub async fn serve_http_fast(
    listener: TcpListener,
    app: axum::Router,
    fast: Arc<dyn FastPath>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let cap = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS >> 1);
    let permits = Arc::new(Semaphore::new(cap));
    let (stop_tx, stop_rx) = watch::channel(false);
    let builder = crate::http_server::connection_builder(limits);
    tokio::pin!(shutdown);
    while let Some((stream, permit)) =
        crate::http_server::next_connection(&listener, &permits, shutdown.as_mut()).await
    {
        let (fast, app, builder, stop) =
            (fast.clone(), app.clone(), builder.clone(), stop_rx.clone());
        tokio::spawn(async move {
            connection(stream, fast, app, builder, limits, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends.
    let _ = permits
        .acquire_many(u32::try_from(cap).unwrap_or(u32::MAX))
        .await;
    Ok(())
}

/// A stream with octets already read put back in front of it.
struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    struct Echo;
    impl FastPath for Echo {
        fn answer(&self, req: &FastRequest<'_>, out: &mut Responses<'_>) -> bool {
            let Some(n) = req.path().strip_prefix("/fast/") else {
                return false;
            };
            let body = if req.method() == "POST" {
                req.body()
            } else {
                n.as_bytes()
            };
            out.respond(StatusCode::OK, &[b"x-fast: 1\r\n"], body);
            true
        }
    }

    #[test]
    fn framing_and_methods_decide_what_is_fast() {
        let mut out = Vec::new();
        let mut parsed = |req: &[u8]| match parse(req, &Echo, &mut out) {
            Parsed::Answered(n) => Some(n),
            Parsed::Partial => Some(0),
            Parsed::HandOff => None,
        };
        let get = b"GET /fast/1 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(parsed(get), Some(get.len()));
        assert_eq!(parsed(&get[..10]), Some(0), "partial");
        assert_eq!(parsed(b"GET /fast/1 HTTP/1.0\r\n\r\n"), None);
        assert_eq!(parsed(b"HEAD /fast/1 HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parsed(b"GET /slow HTTP/1.1\r\n\r\n"), None, "declined");
        assert_eq!(
            parsed(b"GET /fast/1 HTTP/1.1\r\nConnection: close\r\n\r\n"),
            None
        );
        assert_eq!(
            parsed(b"GET /fast/1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
            None
        );
        assert_eq!(
            parsed(b"GET /fast/1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            None
        );
        let kept = b"GET /fast/1 HTTP/1.1\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parsed(kept), Some(kept.len()));
        // A POST whose body is all here; not yet; framed otherwise.
        let post = b"POST /fast/p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(parsed(post), Some(post.len()));
        assert_eq!(parsed(&post[..post.len() - 1]), Some(0), "partial body");
        let mut two = post.to_vec();
        two.extend_from_slice(b"GET /fast/2 HTTP/1.1\r\n\r\n");
        assert_eq!(
            parsed(&two),
            Some(post.len()),
            "the next request is not the body"
        );
        for other in [
            &b"POST /fast/p HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"[..],
            b"POST /fast/p HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc",
            b"POST /fast/p HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc",
            b"POST /fast/p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"POST /fast/p HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
            b"POST /fast/p HTTP/1.1\r\nContent-Length: 8193\r\n\r\n",
            b"PUT /fast/p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        ] {
            assert_eq!(parsed(other), None, "{}", String::from_utf8_lossy(other));
        }
        assert_eq!(parsed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), None);
        let long = format!("GET /fast/{} HTTP/1.1\r\n", "a".repeat(MAX_FAST_HEAD));
        assert_eq!(parsed(long.as_bytes()), None, "a head too long is hyper's");
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.matches("HTTP/1.1 200 OK\r\ndate: ").count(),
            4,
            "{text}"
        );
        assert!(text.contains("content-length: 3\r\n\r\nabc"), "{text}");
        assert!(
            text.contains("\r\nx-fast: 1\r\ncontent-length: 1\r\n\r\n1"),
            "{text}"
        );
    }

    proptest::proptest! {
        /// Any octets: parsed without a panic, and an answered request is
        /// never longer than what arrived.
        #[test]
        fn any_octets_are_parsed_without_a_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut out = Vec::new();
            if let Parsed::Answered(n) = parse(&bytes, &Echo, &mut out) {
                proptest::prop_assert!(n <= bytes.len());
                proptest::prop_assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
            }
        }

        /// A GET with any header names and values: answered (its length
        /// exactly), or handed off; the same either way it is cut.
        #[test]
        fn any_get_is_answered_whole_or_handed_off(
            path in "/(fast|other)/[!-~]{0,40}",
            headers in proptest::collection::vec(("[A-Za-z-]{1,20}", "[ -~]{0,40}"), 0..40),
            cut in 0usize..2000,
        ) {
            let mut req = format!("GET {path} HTTP/1.1\r\n");
            for (k, v) in &headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("\r\n");
            let bytes = req.as_bytes();
            let mut out = Vec::new();
            match parse(bytes, &Echo, &mut out) {
                Parsed::Answered(n) => proptest::prop_assert_eq!(n, bytes.len()),
                Parsed::Partial => proptest::prop_assert!(false, "a whole head is not partial"),
                Parsed::HandOff => proptest::prop_assert!(out.is_empty()),
            }
            let cut = cut % bytes.len();
            proptest::prop_assert!(matches!(
                parse(&bytes[..cut], &Echo, &mut Vec::new()),
                Parsed::Partial | Parsed::HandOff
            ));
        }
    }

    #[test]
    fn a_not_modified_has_no_length_and_no_body() {
        let mut out = Vec::new();
        Responses { out: &mut out }.respond(StatusCode::NOT_MODIFIED, &[b"etag: \"a\"\r\n"], b"x");
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 304 Not Modified\r\ndate: "),
            "{text}"
        );
        assert!(text.ends_with("GMT\r\netag: \"a\"\r\n\r\n"), "{text}");
    }
}
