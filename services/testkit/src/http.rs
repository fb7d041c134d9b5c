//! HTTP/1.1 on a plain socket, as the tests speak it to the servers: whole
//! responses read by their `Content-Length`, on connections kept alive
//! (the OCSP role's fast path takes only those).

use std::io::{Read, Write};
use std::net::TcpStream;

/// One HTTP/1.1 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Its status code.
    pub status: u16,
    /// The status line and header lines, lower-cased, each ending in CRLF.
    pub head: String,
    /// The body (as long as its `Content-Length`; empty without one).
    pub body: Vec<u8>,
}

impl Response {
    /// The value of the header `name` (lower-case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }
}

/// Reads up to `n` responses from `s`, in order: fewer if it closes (or
/// fails) first.
pub fn read_responses(s: &mut impl Read, n: usize) -> Vec<Response> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while out.len() < n {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 2]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().expect("a Content-Length"));
            if buf.len() < end + 4 + len {
                break;
            }
            let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            out.push(Response {
                status,
                head,
                body: buf[end + 4..end + 4 + len].to_vec(),
            });
            buf.drain(..end + 4 + len);
            if out.len() == n {
                return out;
            }
        }
        match s.read(&mut chunk) {
            Ok(got) if got > 0 => buf.extend_from_slice(&chunk[..got]),
            _ => break,
        }
    }
    out
}

/// `GET path` on a new connection to `addr`, kept alive (no `Connection:
/// close`), with `headers`; its response.
pub fn get_kept(addr: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    request_kept(addr, "GET", path, headers, None)
}

/// `METHOD path` on a new connection to `addr`, kept alive, with
/// `headers` and a body (with its `Content-Length`) if given; its response.
pub fn request_kept(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    let mut wire = req.into_bytes();
    wire.extend_from_slice(body.unwrap_or_default());
    s.write_all(&wire).unwrap();
    read_responses(&mut s, 1)
        .pop()
        .expect("a whole response before the connection closed")
}
