//! The registry's gRPC `Follow` stream as a [`FeedSource`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shikko_core::{ChangeRecord, Effect, Municipality};
use shikko_proto::v1 as pb;
use shikko_proto::v1::registry_client::RegistryClient;
use shikko_runtime::ClientTls;

use crate::{
    Content, FeedBatch, FeedSource, FeedStream, FollowError, SnapshotContent, SnapshotPart,
    SnapshotStream,
};

/// The trailer (and header) of a `Follow` refused because the feed was
/// pruned below the asked position: the first sequence number kept.
pub const FIRST_SEQ_METADATA: &str = "shikko-first-seq";

/// `Compacted` if `s` says the feed was pruned, else what `other` makes of it.
fn compacted_or(
    s: &tonic::Status,
    other: impl FnOnce(&tonic::Status) -> FollowError,
) -> FollowError {
    let first = s
        .metadata()
        .get(FIRST_SEQ_METADATA)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    match (s.code(), first) {
        (tonic::Code::FailedPrecondition, Some(first_seq)) => FollowError::Compacted { first_seq },
        _ => other(s),
    }
}

/// Records per batch asked of the registry.
const MAX_BATCH: u32 = 1_000;

/// The registry at a gRPC endpoint, or at one of several (a primary and
/// its standby: the standby refuses followers until it is promoted).
#[derive(Debug, Clone)]
pub struct GrpcSource {
    endpoints: Arc<[String]>,
    /// The endpoint tried next: the one that last worked, or the next
    /// after one that failed.
    current: Arc<std::sync::atomic::AtomicUsize>,
    tls: Option<Arc<ClientTls>>,
}

impl GrpcSource {
    /// The registry at `endpoint` (e.g. `https://127.0.0.1:50051`; several
    /// separated by commas are tried in turn, the first that serves the feed
    /// is followed), plaintext until [`GrpcSource::with_tls`].
    pub fn new(endpoint: impl Into<String>) -> GrpcSource {
        let endpoint = endpoint.into();
        let mut endpoints: Vec<String> = endpoint
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect();
        if endpoints.is_empty() {
            endpoints.push(endpoint);
        }
        GrpcSource {
            endpoints: endpoints.into(),
            current: Arc::default(),
            tls: None,
        }
    }

    fn endpoint(&self) -> &str {
        let i = self.current.load(std::sync::atomic::Ordering::Relaxed) % self.endpoints.len();
        &self.endpoints[i]
    }

    /// Moves on to the next endpoint.
    fn next_endpoint(&self) {
        self.current
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Over mutual TLS with `tls` (`None`: plaintext, on loopback only).
    pub fn with_tls(mut self, tls: Option<Arc<ClientTls>>) -> GrpcSource {
        self.tls = tls;
        self
    }
}

impl GrpcSource {
    async fn client(&self) -> Result<RegistryClient<tonic::transport::Channel>, FollowError> {
        // HTTP/2 keepalive: a registry that vanished without closing the
        // connection is noticed within half a minute, not never.
        let channel = shikko_access::connect(self.endpoint(), self.tls.as_ref(), |ep| {
            ep.connect_timeout(Duration::from_secs(10))
                .http2_keep_alive_interval(Duration::from_secs(20))
                .keep_alive_timeout(Duration::from_secs(10))
                .keep_alive_while_idle(true)
        })
        .await
        .map_err(|e| FollowError::Unreachable(e.to_string()))?;
        // A snapshot chunk of a replica can be large (holders with their DER).
        Ok(RegistryClient::new(channel).max_decoding_message_size(64 << 20))
    }
}

impl FeedSource for GrpcSource {
    /// From the endpoint that last worked, or else the next that serves
    /// the feed (a standby refuses until promoted): a failover costs a
    /// connection attempt, not a backoff.
    async fn open(&self, from_seq: u64, content: Content) -> Result<FeedStream, FollowError> {
        let mut tried = 0;
        loop {
            match self.open_here(from_seq, content).await {
                // A pruned position is this registry's answer, not its absence.
                r @ (Ok(_) | Err(FollowError::Compacted { .. })) => return r,
                Err(e) => {
                    tried += 1;
                    if tried >= self.endpoints.len() {
                        return Err(e);
                    }
                    tracing::info!(error = %e, endpoint = self.endpoint(), "trying the next registry endpoint");
                    self.next_endpoint();
                }
            }
        }
    }

    async fn snapshot(&self, content: SnapshotContent) -> Result<SnapshotStream, FollowError> {
        let mut tried = 0;
        loop {
            match self.snapshot_here(content).await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    tried += 1;
                    if tried >= self.endpoints.len() {
                        return Err(e);
                    }
                    self.next_endpoint();
                }
            }
        }
    }

    /// The endpoint, or all of them (the one tried next first): a log line
    /// written after a failure names the one that failed among them.
    fn describe(&self) -> String {
        if self.endpoints.len() == 1 {
            return self.endpoint().to_string();
        }
        let next = self.current.load(std::sync::atomic::Ordering::Relaxed) % self.endpoints.len();
        let mut order: Vec<&str> = self.endpoints[next..].iter().map(String::as_str).collect();
        order.extend(self.endpoints[..next].iter().map(String::as_str));
        order.join(",")
    }
}

impl GrpcSource {
    async fn open_here(&self, from_seq: u64, content: Content) -> Result<FeedStream, FollowError> {
        let stream = self
            .client()
            .await?
            .follow(pb::FollowRequest {
                from_seq,
                max_batch: MAX_BATCH,
                with_writes: content == Content::Replication,
            })
            .await
            .map_err(|s| {
                compacted_or(&s, |s| {
                    FollowError::Unreachable(format!("Follow: {}", s.message()))
                })
            })?
            .into_inner();
        Ok(stream
            .map(move |item| match item {
                Ok(batch) => batch_from_pb(batch, content),
                Err(s) => Err(compacted_or(&s, |s| {
                    FollowError::Stream(format!("{:?}: {}", s.code(), s.message()))
                })),
            })
            .boxed())
    }

    async fn snapshot_here(&self, content: SnapshotContent) -> Result<SnapshotStream, FollowError> {
        let pb_content = match content {
            SnapshotContent::Status => pb::SnapshotContent::Status,
            SnapshotContent::Listed => pb::SnapshotContent::Listed,
            SnapshotContent::Replication => pb::SnapshotContent::Replica,
            SnapshotContent::StatusImage => pb::SnapshotContent::StatusImage,
        };
        let stream = self
            .client()
            .await?
            .snapshot(pb::SnapshotRequest {
                content: pb_content as i32,
            })
            .await
            .map_err(|s| FollowError::Unreachable(format!("Snapshot: {}", s.message())))?
            .into_inner();
        Ok(stream
            .map(move |item| match item {
                Ok(chunk) => part_from_pb(chunk, content),
                Err(s) => Err(FollowError::Stream(format!(
                    "{:?}: {}",
                    s.code(),
                    s.message()
                ))),
            })
            .boxed())
    }
}

fn batch_from_pb(batch: pb::ChangeBatch, content: Content) -> Result<FeedBatch, FollowError> {
    let records = batch
        .records
        .iter()
        .map(ChangeRecord::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FollowError::Malformed(format!("a change record: {e}")))?;
    let writes = if content == Content::Replication {
        batch
            .records
            .iter()
            .map(|r| {
                // The decoder's text could quote a value (personal data): say which record only.
                rmp_serde::from_slice::<Vec<Effect>>(&r.writes).map_err(|_| {
                    FollowError::Malformed(format!("the writes of record {} do not decode", r.seq))
                })
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    Ok(FeedBatch {
        store_id: batch.store_id,
        head_seq: batch.head_seq,
        municipalities: batch
            .municipalities
            .iter()
            .map(Municipality::from)
            .collect(),
        records,
        writes,
    })
}

fn part_from_pb(
    chunk: pb::SnapshotChunk,
    content: SnapshotContent,
) -> Result<SnapshotPart, FollowError> {
    let changes = chunk
        .changes
        .iter()
        .map(shikko_core::StatusChange::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FollowError::Malformed(format!("a snapshot's status: {e}")))?;
    let writes = if content == SnapshotContent::Replication && !chunk.writes.is_empty() {
        // The decoder's text could quote a value (personal data): say what only.
        rmp_serde::from_slice::<Vec<Effect>>(&chunk.writes)
            .map_err(|_| FollowError::Malformed("a snapshot's writes do not decode".into()))?
    } else {
        Vec::new()
    };
    Ok(SnapshotPart {
        store_id: chunk.store_id,
        seq: chunk.seq,
        municipalities: chunk
            .municipalities
            .iter()
            .map(Municipality::from)
            .collect(),
        changes,
        writes,
        image: chunk.image,
        last: chunk.last,
    })
}
