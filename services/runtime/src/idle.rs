//! An idle timeout for connections, HTTP/2 included (issue 12, item 7).
//!
//! hyper has none for HTTP/2: a connection that answers the server's
//! keep-alive pings stays open forever without a request. [`IdleStream`]
//! reads the HTTP/2 framing of what passes through it (the plaintext side,
//! under TLS where there is TLS) and counts as activity only the frames
//! that carry requests or responses (HEADERS, CONTINUATION, DATA), not
//! PING, SETTINGS or WINDOW_UPDATE; a connection with no such frame either
//! way for the timeout fails its next read, and the server closes it. A
//! connection that is not HTTP/2 (no client preface) is left to the
//! server's HTTP/1 timeouts (hyper closes an idle keep-alive connection
//! after its header timeout) and costs no timer from then on.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types that carry a request or a response.
fn is_exchange(frame_type: u8) -> bool {
    // DATA, HEADERS, CONTINUATION.
    matches!(frame_type, 0x0 | 0x1 | 0x9)
}

/// Follows HTTP/2 frames through a byte stream, split anywhere.
#[derive(Debug, Clone)]
pub(crate) struct FrameScan {
    /// Preface octets still expected (reading side only).
    preface: usize,
    header: [u8; 9],
    header_len: usize,
    payload_left: u32,
}

impl FrameScan {
    /// For what a server reads: the client preface, then frames.
    pub(crate) fn client() -> FrameScan {
        FrameScan {
            preface: PREFACE.len(),
            header: [0; 9],
            header_len: 0,
            payload_left: 0,
        }
    }

    /// For what a server writes: frames from the start.
    pub(crate) fn server() -> FrameScan {
        FrameScan {
            preface: 0,
            ..FrameScan::client()
        }
    }

    /// Follows `data`; `Err(())` when it is not HTTP/2 (the preface does
    /// not match), else whether a request or response frame began in it.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Result<bool, ()> {
        let mut exchange = false;
        while !data.is_empty() {
            if self.preface > 0 {
                let at = PREFACE.len() - self.preface;
                let n = self.preface.min(data.len());
                if data[..n] != PREFACE[at..at + n] {
                    return Err(());
                }
                self.preface -= n;
                data = &data[n..];
                continue;
            }
            if self.payload_left > 0 {
                let n = (self.payload_left as usize).min(data.len());
                self.payload_left -= n as u32;
                data = &data[n..];
                continue;
            }
            let n = (9 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == 9 {
                self.header_len = 0;
                self.payload_left =
                    u32::from_be_bytes([0, self.header[0], self.header[1], self.header[2]]);
                exchange |= is_exchange(self.header[3]);
            }
        }
        Ok(exchange)
    }
}

/// A connection closed after `timeout` without an exchange (see the module).
pub struct IdleStream<S> {
    inner: S,
    idle: Option<Idle>,
}

struct Idle {
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// What the server reads, what it writes.
    scan: (FrameScan, FrameScan),
}

impl<S> std::fmt::Debug for IdleStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleStream").finish_non_exhaustive()
    }
}

impl<S> IdleStream<S> {
    /// `inner`, closed after `timeout` without an exchange (`None`: never).
    pub fn new(inner: S, timeout: Option<Duration>) -> IdleStream<S> {
        IdleStream {
            inner,
            idle: timeout.map(|timeout| Idle {
                timeout,
                sleep: Box::pin(tokio::time::sleep(timeout)),
                scan: (FrameScan::client(), FrameScan::server()),
            }),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn saw(&mut self, data: &[u8], read: bool) {
        let Some(idle) = &mut self.idle else { return };
        if data.is_empty() {
            return;
        }
        let side = if read {
            &mut idle.scan.0
        } else {
            &mut idle.scan.1
        };
        match side.feed(data) {
            Ok(true) => {
                let at = tokio::time::Instant::now() + idle.timeout;
                idle.sleep.as_mut().reset(at);
            }
            Ok(false) => {}
            // Not HTTP/2: HTTP/1's own timeouts apply.
            Err(()) => self.idle = None,
        }
    }

    fn idled(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.idle {
            Some(idle) => std::future::Future::poll(idle.sleep.as_mut(), cx).is_ready(),
            None => false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                self.saw(&buf.filled()[before..], true);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if self.idled(cx) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection idle past its limit",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.saw(&buf[..n], false);
        }
        r
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
    use super::*;

    fn frame(kind: u8, payload: usize) -> Vec<u8> {
        let len = (payload as u32).to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, 0, 0, 0, 0, 1];
        f.extend(std::iter::repeat_n(0u8, payload));
        f
    }

    #[test]
    fn only_request_and_response_frames_are_activity_however_split() {
        // SETTINGS, PING, WINDOW_UPDATE: no exchange.
        let mut quiet = PREFACE.to_vec();
        quiet.extend(frame(0x4, 6));
        quiet.extend(frame(0x6, 8));
        quiet.extend(frame(0x8, 4));
        let mut busy = quiet.clone();
        busy.extend(frame(0x1, 30));
        busy.extend(frame(0x0, 100));
        for split in 0..quiet.len() {
            let mut s = FrameScan::client();
            assert_eq!(s.feed(&quiet[..split]), Ok(false));
            assert_eq!(s.feed(&quiet[split..]), Ok(false));
        }
        for split in 0..busy.len() {
            let mut s = FrameScan::client();
            let a = s.feed(&busy[..split]).unwrap();
            let b = s.feed(&busy[split..]).unwrap();
            assert!(a || b, "{split}");
        }
        // A payload that looks like a HEADERS frame header is skipped as payload.
        let mut s = FrameScan::server();
        let mut ping = frame(0x6, 9);
        ping[9..18].copy_from_slice(&frame(0x1, 0));
        assert_eq!(s.feed(&ping), Ok(false));
    }

    #[test]
    fn http1_is_not_http2() {
        let mut s = FrameScan::client();
        assert_eq!(s.feed(b"GET / HTTP/1.1\r\n"), Err(()));
        let mut s = FrameScan::client();
        assert_eq!(s.feed(b"PRI"), Ok(false));
        assert_eq!(s.feed(b" * HTTP/1.1"), Err(()));
    }

    /// Real time: idle limit 3 s; a request, then pings both ways every
    /// 0.5 s for 2 s. Closed 3 s after the request (not 3 s after the last
    /// ping, had pings counted; not at once, had the request not).
    /// Measured from the request, so a late timer or a slow ping only
    /// makes the close later within the margin, never earlier.
    #[tokio::test]
    async fn pings_do_not_keep_a_connection_open_but_requests_do() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut server = IdleStream::new(server, Some(Duration::from_secs(3)));
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(0x4, 0));
        client.write_all(&hello).await.unwrap();
        let mut buf = vec![0u8; 1 << 16];
        assert!(server.read(&mut buf).await.unwrap() > 0);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let request = tokio::time::Instant::now();
        client.write_all(&frame(0x1, 20)).await.unwrap();
        assert!(server.read(&mut buf).await.unwrap() > 0);
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            server.write_all(&frame(0x6, 8)).await.unwrap();
            client.write_all(&frame(0x6, 8)).await.unwrap();
            assert!(server.read(&mut buf).await.unwrap() > 0);
        }
        let e = server.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        let after = request.elapsed();
        assert!(
            after >= Duration::from_millis(2900) && after <= Duration::from_millis(4500),
            "closed {after:?} after the request (expected 3 s)"
        );
    }
}
