//! The registry's feed, read from its store: the one reader behind both the
//! gRPC `Follow` stream and the in-process [`LocalFeed`] of the demo. It
//! reads records from a sequence number on, waits for new ones when there are
//! none, and ends when the registry closes its streams (shutdown).

use std::sync::Arc;

use futures::StreamExt;
use shikko_follow::{
    Content, FeedBatch, FeedSource, FeedStream, FollowError, SnapshotContent, SnapshotStream,
};
use tokio::sync::watch;

use crate::Registry;
use crate::error::{Error, Result};

/// A follower's position in the registry's feed.
pub(crate) struct FeedCursor {
    registry: Arc<Registry>,
    next: u64,
    max: usize,
    content: Content,
    store_id: String,
    first: bool,
    head: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
}

impl FeedCursor {
    /// A cursor at `from_seq` (at least 1), reading up to `max` records a batch.
    pub(crate) async fn open(
        registry: Arc<Registry>,
        from_seq: u64,
        max: usize,
        content: Content,
    ) -> Result<FeedCursor> {
        let store = registry.store().clone();
        let store_id = tokio::task::spawn_blocking(move || store.store_id())
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        Ok(FeedCursor {
            head: registry.head(),
            closing: registry.closing(),
            registry,
            next: from_seq.max(1),
            max,
            content,
            store_id,
            first: true,
        })
    }

    /// The next batch: the records from the cursor on (waiting for new ones
    /// when there are none). The first batch of a stream comes at once, with
    /// every municipality the registry knows and the head, records or not, so
    /// that a follower starting caught up knows it is current. `None` once
    /// the registry closes its streams.
    pub(crate) async fn next_batch(&mut self) -> Result<Option<FeedBatch>> {
        loop {
            if *self.closing.borrow_and_update() {
                return Ok(None);
            }
            // Mark the head seen before reading, so an ingest after the read
            // wakes us; read no further than it (in a synchronous pair,
            // what the standby holds).
            let head_seq = *self.head.borrow_and_update();
            let store = self.registry.store().clone();
            let (next, max, content, first) = (self.next, self.max, self.content, self.first);
            let mut batch = tokio::task::spawn_blocking(move || {
                let visible = usize::try_from((head_seq + 1).saturating_sub(next)).unwrap_or(max);
                let records = store.changes_since(next, max.min(visible))?;
                // Pruned past the cursor (nothing left from it, or its
                // writes gone between the two reads): the follower must
                // load a snapshot.
                let compacted = Err(store.first_seq());
                if records.is_empty() && next < store.first_seq() {
                    return Ok(compacted);
                }
                let mut writes = Vec::new();
                if content == Content::Replication {
                    for r in &records {
                        match store.writes(r.seq)? {
                            Some(w) => writes.push(w),
                            None if r.seq < store.first_seq() => return Ok(compacted),
                            // Stores kept no writes before they were needed:
                            // such a record cannot be replicated without the rules.
                            None => {
                                return Err(shikko_store::Error::Corrupt {
                                    cf: "writes",
                                    why: format!(
                                        "record {} was written before the registry kept its writes: make the replica from a newer history",
                                        r.seq
                                    ),
                                });
                            }
                        }
                    }
                }
                let municipalities = if first {
                    store.municipalities()?
                } else {
                    Vec::new()
                };
                Ok::<_, shikko_store::Error>(Ok(FeedBatch {
                    store_id: String::new(),
                    head_seq,
                    municipalities,
                    records,
                    writes,
                }))
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??
            .map_err(|first_seq| Error::Compacted { first_seq })?;
            // Pruned under the cursor: the records it wanted are gone.
            if batch.records.first().is_some_and(|r| r.seq != self.next) {
                return Err(Error::Compacted {
                    first_seq: self.registry.store().first_seq(),
                });
            }
            if let Some(last) = batch.records.last() {
                self.next = last.seq + 1;
            } else if !self.first {
                tokio::select! {
                    changed = self.head.changed() => if changed.is_err() { return Ok(None) },
                    _ = self.closing.changed() => return Ok(None),
                }
                continue;
            }
            self.first = false;
            batch.store_id.clone_from(&self.store_id);
            return Ok(Some(batch));
        }
    }
}

/// The registry in this process as a feed source: the demo's roles follow
/// it exactly as separate processes follow the gRPC feed, without the network.
#[derive(Debug, Clone)]
pub struct LocalFeed {
    registry: Arc<Registry>,
}

impl LocalFeed {
    /// The feed of `registry`.
    pub fn new(registry: Arc<Registry>) -> LocalFeed {
        LocalFeed { registry }
    }
}

/// Records per batch of the in-process feed.
const LOCAL_BATCH: usize = 10_000;

impl FeedSource for LocalFeed {
    async fn open(&self, from_seq: u64, content: Content) -> Result<FeedStream, FollowError> {
        let head = self.registry.store().last_seq();
        if from_seq > head + 1 {
            return Err(FollowError::Unreachable(format!(
                "from_seq {from_seq} is past this registry's head {head}"
            )));
        }
        let first_seq = self.registry.store().first_seq();
        if from_seq.max(1) < first_seq {
            return Err(FollowError::Compacted { first_seq });
        }
        let cursor = FeedCursor::open(self.registry.clone(), from_seq, LOCAL_BATCH, content)
            .await
            .map_err(|e| FollowError::Unreachable(e.to_string()))?;
        Ok(futures::stream::unfold(Some(cursor), |cursor| async move {
            let mut cursor = cursor?;
            match cursor.next_batch().await {
                Ok(Some(batch)) => Some((Ok(batch), Some(cursor))),
                Ok(None) => None,
                Err(Error::Compacted { first_seq }) => {
                    Some((Err(FollowError::Compacted { first_seq }), None))
                }
                Err(e) => Some((Err(FollowError::Stream(e.to_string())), None)),
            }
        })
        .boxed())
    }

    async fn snapshot(&self, content: SnapshotContent) -> Result<SnapshotStream, FollowError> {
        let rx = crate::snapshot::produce_visible(self.registry.clone(), content)
            .map_err(|e| FollowError::Unreachable(e.to_string()))?;
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx)
            .map(|part| part.map_err(|e| FollowError::Stream(e.to_string())))
            .boxed())
    }

    fn describe(&self) -> String {
        "the registry in this process".into()
    }
}
