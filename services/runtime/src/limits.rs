//! Per-method limits on every gRPC endpoint (issue 12, item 7), from the
//! table of the endpoint's [`Api`] (Shikko's is `shikko_proto::access::LIMITS`,
//! handed over by `shikko_access::api()`), in one layer beside the
//! authorization: calls in progress at once (a response stream holds its
//! place until it ends), the time to answer, and the size of each request
//! message (counted in the gRPC framing as the body arrives, so an
//! oversized message is refused before it is buffered). Refusals are
//! RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED, counted in
//! `shikko_grpc_limited_total{method, reason}`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How much of a server one method may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodLimits {
    /// The largest request message (each message of a request stream).
    pub max_message_bytes: u32,
    /// Calls in progress at once, per endpoint (a response stream holds
    /// its place until it ends); one more is refused, RESOURCE_EXHAUSTED.
    pub concurrency: u32,
    /// How long the call may take to answer (to its first response, for
    /// a stream; for a request stream that includes reading all of it);
    /// DEADLINE_EXCEEDED past it. 0: no limit (a request stream that runs
    /// as long as its caller sends).
    pub timeout_secs: u32,
}

impl MethodLimits {
    /// For methods an [`Api`] does not list: 64 KiB, 64 at once, 30 s.
    pub const DEFAULT: MethodLimits = MethodLimits {
        max_message_bytes: 64 << 10,
        concurrency: 64,
        timeout_secs: 30,
    };
}

/// What an endpoint serves: the encoded `FileDescriptorSet` of its
/// services (for reflection) and the limits of their methods.
#[derive(Clone, Copy, Debug)]
pub struct Api {
    /// An encoded `FileDescriptorSet`.
    pub descriptors: &'static [u8],
    /// `(/package.Service/Method, limits)`.
    pub limits: &'static [(&'static str, MethodLimits)],
    /// For a method not in `limits` (health, reflection, unknown paths).
    pub default_limits: MethodLimits,
}

impl Api {
    /// Services described by `descriptors`, every method with
    /// [`MethodLimits::DEFAULT`] (tests, examples).
    pub const fn with_default_limits(descriptors: &'static [u8]) -> Api {
        Api {
            descriptors,
            limits: &[],
            default_limits: MethodLimits::DEFAULT,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

struct Method {
    label: &'static str,
    limits: MethodLimits,
    in_progress: Arc<Semaphore>,
}

impl Method {
    fn new(label: &'static str, limits: MethodLimits) -> Arc<Method> {
        Arc::new(Method {
            label,
            limits,
            in_progress: Arc::new(Semaphore::new(limits.concurrency as usize)),
        })
    }
}

/// The layer; one per endpoint (the places are the endpoint's).
#[derive(Clone)]
pub struct LimitsLayer {
    methods: Arc<HashMap<&'static str, Arc<Method>>>,
    /// Methods not in the table (health, reflection, unknown paths) share these.
    other: Arc<Method>,
    limited: prometheus::IntCounterVec,
}

impl std::fmt::Debug for LimitsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LimitsLayer")
    }
}

impl LimitsLayer {
    /// `api`'s limits, refusals counted in `limited` (labels `method`, `reason`).
    pub fn new(api: &Api, limited: prometheus::IntCounterVec) -> LimitsLayer {
        let methods = api
            .limits
            .iter()
            .map(|(m, l)| (*m, Method::new(m, *l)))
            .collect();
        LimitsLayer {
            methods: Arc::new(methods),
            other: Method::new("other", api.default_limits),
            limited,
        }
    }
}

impl<S> tower::Layer<S> for LimitsLayer {
    type Service = Limited<S>;
    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`LimitsLayer`] wraps around an endpoint's routes.
#[derive(Clone, Debug)]
pub struct Limited<S> {
    inner: S,
    layer: LimitsLayer,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for Limited<S>
where
    S: tower_service::Service<http::Request<MessageLimit<B>>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<BoxError>,
    R: Body<Data = bytes::Bytes> + Unpin + Send + 'static,
    R::Error: Into<BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<tonic::body::Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = self
            .layer
            .methods
            .get(req.uri().path())
            .unwrap_or(&self.layer.other)
            .clone();
        let limited = self.layer.limited.clone();
        let Ok(place) = method.in_progress.clone().try_acquire_owned() else {
            limited
                .with_label_values(&[method.label, "concurrency"])
                .inc();
            let status = tonic::Status::resource_exhausted(format!(
                "{} has {} calls in progress, its limit: retry shortly",
                method.label, method.limits.concurrency
            ));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let req = req.map(|body| MessageLimit {
            inner: body,
            max: method.limits.max_message_bytes,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
            refused: false,
            on_refusal: Some(limited.with_label_values(&[method.label, "message_size"])),
            label: method.label,
        });
        let call = self.inner.call(req);
        let timeout = Duration::from_secs(u64::from(method.limits.timeout_secs));
        let held = move |response: http::Response<R>| {
            response.map(|body| {
                tonic::body::Body::new(HoldPlace {
                    inner: body,
                    _place: place,
                })
            })
        };
        if timeout.is_zero() {
            return Box::pin(async move { call.await.map(held) });
        }
        Box::pin(async move {
            match tokio::time::timeout(timeout, call).await {
                Ok(r) => r.map(held),
                Err(_) => {
                    limited.with_label_values(&[method.label, "timeout"]).inc();
                    Ok(tonic::Status::deadline_exceeded(format!(
                        "{} did not answer within {} s",
                        method.label, method.limits.timeout_secs
                    ))
                    .into_http())
                }
            }
        })
    }
}

/// A response body that holds its call's place until it ends.
struct HoldPlace<R> {
    inner: R,
    _place: OwnedSemaphorePermit,
}

impl<R: Body + Unpin> Body for HoldPlace<R> {
    type Data = R::Data;
    type Error = R::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body whose gRPC messages may not exceed a size: read through
/// the framing (1 octet flag, 4 octets length, the message) as it arrives;
/// a length over the limit ends the body with RESOURCE_EXHAUSTED.
pub struct MessageLimit<B> {
    inner: B,
    max: u32,
    header: [u8; 5],
    header_len: usize,
    remaining: u64,
    refused: bool,
    on_refusal: Option<prometheus::IntCounter>,
    label: &'static str,
}

impl<B> std::fmt::Debug for MessageLimit<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageLimit")
            .field("max", &self.max)
            .finish()
    }
}

impl<B> MessageLimit<B> {
    /// Follows the framing through `data`; false when a message is too large.
    fn admit(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = (self.remaining.min(data.len() as u64)) as usize;
                self.remaining -= take as u64;
                data = &data[take..];
                continue;
            }
            self.header[self.header_len] = data[0];
            self.header_len += 1;
            data = &data[1..];
            if self.header_len == 5 {
                self.header_len = 0;
                let mut n = [0u8; 4];
                n.copy_from_slice(&self.header[1..5]);
                let len = u32::from_be_bytes(n);
                if len > self.max {
                    return false;
                }
                self.remaining = u64::from(len);
            }
        }
        true
    }
}

impl<B> Body for MessageLimit<B>
where
    B: Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, BoxError>>> {
        if self.refused {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && !self.admit(data)
                {
                    self.refused = true;
                    if let Some(c) = self.on_refusal.take() {
                        c.inc();
                    }
                    let status = tonic::Status::resource_exhausted(format!(
                        "a request message of {} is larger than its limit of {} octets",
                        self.label, self.max
                    ));
                    return Poll::Ready(Some(Err(Box::new(status))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.refused || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: u32) -> MessageLimit<tonic::body::Body> {
        MessageLimit {
            inner: tonic::body::Body::empty(),
            max,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
            refused: false,
            on_refusal: None,
            label: "test",
        }
    }

    fn frame(len: u32) -> Vec<u8> {
        let mut f = vec![0u8];
        f.extend_from_slice(&len.to_be_bytes());
        f.extend(std::iter::repeat_n(7u8, len as usize));
        f
    }

    #[test]
    fn messages_are_measured_through_the_framing_however_it_is_split() {
        let mut stream = frame(10);
        stream.extend(frame(100));
        stream.extend(frame(0));
        stream.extend(frame(100));
        // At the limit: admitted, split at every boundary.
        for split in 1..stream.len() {
            let mut l = limit(100);
            assert!(
                l.admit(&stream[..split]) && l.admit(&stream[split..]),
                "{split}"
            );
        }
        // One octet over: refused wherever the header is split.
        let mut over = frame(10);
        over.extend(frame(101));
        for split in 1..over.len() {
            let mut l = limit(100);
            let ok = l.admit(&over[..split]) && l.admit(&over[split..]);
            assert!(!ok, "{split}");
        }
        // Byte by byte.
        let mut l = limit(100);
        assert!(stream.iter().all(|b| l.admit(std::slice::from_ref(b))));
    }
}
