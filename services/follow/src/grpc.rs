//! The registry's gRPC `Follow` stream as a [`FeedSource`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shikko_core::{ChangeRecord, Effect, Municipality};
use shikko_proto::v1 as pb;
use shikko_proto::v1::registry_client::RegistryClient;
use shikko_runtime::ClientTls;

use crate::{Content, FeedBatch, FeedSource, FeedStream, FollowError};

/// Records per batch asked of the registry.
const MAX_BATCH: u32 = 1_000;

/// The registry at a gRPC endpoint.
#[derive(Debug, Clone)]
pub struct GrpcSource {
    endpoint: String,
    tls: Option<Arc<ClientTls>>,
}

impl GrpcSource {
    /// The registry at `endpoint` (e.g. `https://127.0.0.1:50051`),
    /// plaintext until [`GrpcSource::with_tls`].
    pub fn new(endpoint: impl Into<String>) -> GrpcSource {
        GrpcSource {
            endpoint: endpoint.into(),
            tls: None,
        }
    }

    /// Over mutual TLS with `tls` (`None`: plaintext, on loopback only).
    pub fn with_tls(mut self, tls: Option<Arc<ClientTls>>) -> GrpcSource {
        self.tls = tls;
        self
    }
}

impl FeedSource for GrpcSource {
    async fn open(&self, from_seq: u64, content: Content) -> Result<FeedStream, FollowError> {
        // HTTP/2 keepalive: a registry that vanished without closing the
        // connection is noticed within half a minute, not never.
        let channel = shikko_access::connect(&self.endpoint, self.tls.as_ref(), |ep| {
            ep.connect_timeout(Duration::from_secs(10))
                .http2_keep_alive_interval(Duration::from_secs(20))
                .keep_alive_timeout(Duration::from_secs(10))
                .keep_alive_while_idle(true)
        })
        .await
        .map_err(|e| FollowError::Unreachable(e.to_string()))?;
        let stream = RegistryClient::new(channel)
            .follow(pb::FollowRequest {
                from_seq,
                max_batch: MAX_BATCH,
                with_writes: content == Content::Replication,
            })
            .await
            .map_err(|s| FollowError::Unreachable(format!("Follow: {}", s.message())))?
            .into_inner();
        Ok(stream
            .map(move |item| match item {
                Ok(batch) => batch_from_pb(batch, content),
                Err(s) => Err(FollowError::Stream(format!(
                    "{:?}: {}",
                    s.code(),
                    s.message()
                ))),
            })
            .boxed())
    }

    fn describe(&self) -> String {
        self.endpoint.clone()
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
