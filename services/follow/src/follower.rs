//! The follower: open the feed from the sink's position, check the registry's
//! identity, apply batch after batch on a blocking thread, say when current,
//! and on any failure mark the role lost and reconnect with backoff (1 s,
//! doubling to 30 s; back to 1 s after a minute of following). A sink that
//! is empty, or whose position the registry's feed no longer keeps, first
//! loads a snapshot of the state and follows from the point it reflects.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use shikko_core::UnixTime;

use crate::{
    Binding, Content, FeedBatch, FeedSource, FollowError, FollowerMetrics, Readiness, ReplicaSink,
    SnapshotContent, SnapshotPart, StatusBatch, StatusSink,
};

/// Follows one source into one sink until shutdown.
#[derive(Debug)]
pub struct Follower<S> {
    source: S,
    binding: Binding,
    readiness: Arc<Readiness>,
    metrics: FollowerMetrics,
}

#[derive(Clone)]
enum Target {
    Status(Arc<dyn StatusSink>),
    Replica(Arc<dyn ReplicaSink>),
}

impl Target {
    fn position(&self) -> u64 {
        match self {
            Target::Status(s) => s.position(),
            Target::Replica(s) => s.position(),
        }
    }

    fn content(&self) -> Content {
        match self {
            Target::Status(_) => Content::Status,
            Target::Replica(_) => Content::Replication,
        }
    }

    fn snapshot_content(&self) -> SnapshotContent {
        match self {
            Target::Status(s) => s.snapshot_content(),
            Target::Replica(_) => SnapshotContent::Replication,
        }
    }

    fn begin_snapshot(&self) -> Result<(), FollowError> {
        match self {
            Target::Status(s) => s.begin_snapshot(),
            Target::Replica(s) => s.begin_snapshot(),
        }
    }

    /// Loads one part (blocking); an image's pieces are gathered in `image`
    /// and loaded whole with the last.
    fn load_snapshot(&self, part: SnapshotPart, image: &mut Vec<u8>) -> Result<(), FollowError> {
        match self {
            Target::Status(s) if s.snapshot_content() == SnapshotContent::StatusImage => {
                image.extend_from_slice(&part.image);
                if part.last {
                    s.load_image(std::mem::take(image))?;
                }
                Ok(())
            }
            Target::Status(s) => {
                if part.changes.is_empty() && part.municipalities.is_empty() {
                    return Ok(());
                }
                s.load_snapshot(part.municipalities, part.changes)
            }
            Target::Replica(s) => {
                // A replica's municipalities come as writes.
                let mut writes: Vec<shikko_core::Effect> = part
                    .municipalities
                    .into_iter()
                    .map(shikko_core::Effect::PutMunicipality)
                    .collect();
                writes.extend(part.writes);
                if writes.is_empty() {
                    return Ok(());
                }
                s.load_snapshot(writes)
            }
        }
    }

    fn end_snapshot(&self, seq: u64) -> Result<u64, FollowError> {
        match self {
            Target::Status(s) => s.end_snapshot(seq),
            Target::Replica(s) => s.end_snapshot(seq),
        }
    }

    /// Applies one batch (blocking); returns the new position.
    fn apply(&self, batch: FeedBatch) -> Result<u64, FollowError> {
        let position = self.position();
        if let Some(first) = batch.records.first()
            && first.seq != position + 1
        {
            return Err(FollowError::Gap {
                applied: position,
                got: first.seq,
            });
        }
        match self {
            Target::Status(s) => {
                if batch.records.is_empty() && batch.municipalities.is_empty() {
                    return Ok(position);
                }
                s.apply(StatusBatch {
                    municipalities: batch.municipalities,
                    records: batch.records,
                })
            }
            Target::Replica(s) => {
                if batch.writes.len() != batch.records.len() {
                    return Err(FollowError::Malformed(format!(
                        "{} records but {} sets of writes",
                        batch.records.len(),
                        batch.writes.len()
                    )));
                }
                if batch.records.is_empty() {
                    return Ok(position);
                }
                s.apply(batch.records.into_iter().zip(batch.writes).collect())
            }
        }
    }
}

impl<S: FeedSource> Follower<S> {
    /// A follower of `source`, bound by `binding`, reporting through
    /// `readiness` and `metrics`.
    pub fn new(
        source: S,
        binding: Binding,
        readiness: Arc<Readiness>,
        metrics: FollowerMetrics,
    ) -> Follower<S> {
        Follower {
            source,
            binding,
            readiness,
            metrics,
        }
    }

    /// Follows status changes into `sink` until `shutdown`.
    pub async fn run_status(
        self,
        sink: Arc<dyn StatusSink>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        self.run(Target::Status(sink), shutdown).await;
    }

    /// Follows the registry's events into a replica until `shutdown`.
    pub async fn run_replica(
        self,
        sink: Arc<dyn ReplicaSink>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        self.run(Target::Replica(sink), shutdown).await;
    }

    async fn run(self, target: Target, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = Instant::now();
            tokio::select! {
                r = self.follow_once(&target) => match r {
                    Ok(()) => tracing::info!(source = %self.source.describe(), "the registry closed the feed; reconnecting"),
                    Err(e @ FollowError::ForeignRegistry { .. }) => {
                        tracing::error!(error = %e, "refusing to follow another registry history");
                    }
                    Err(e) => tracing::warn!(error = %e, source = %self.source.describe(), "following the registry failed; reconnecting"),
                },
                () = &mut shutdown => return,
            }
            let now = UnixTime::now();
            self.readiness.set_lost(now);
            self.metrics.lost(self.readiness.lost_since(), now);
            if started.elapsed() > Duration::from_secs(60) {
                backoff = Duration::from_secs(1);
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = &mut shutdown => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    async fn follow_once(&self, target: &Target) -> Result<(), FollowError> {
        if target.position() == 0 {
            self.load_snapshot(target, "empty").await?;
        }
        let mut stream = match self
            .source
            .open(target.position() + 1, target.content())
            .await
        {
            Err(FollowError::Compacted { first_seq }) => {
                tracing::warn!(
                    position = target.position(),
                    first_seq,
                    source = %self.source.describe(),
                    "the registry's feed no longer reaches this role's position: loading a snapshot"
                );
                self.load_snapshot(target, "compacted").await?;
                self.source
                    .open(target.position() + 1, target.content())
                    .await?
            }
            other => other?,
        };
        let from_seq = target.position() + 1;
        tracing::info!(from_seq, source = %self.source.describe(), "following the registry");
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            self.binding.check(&batch.store_id)?;
            let head = batch.head_seq;
            let t = target.clone();
            let applied = tokio::task::spawn_blocking(move || t.apply(batch))
                .await
                .map_err(|e| FollowError::Sink(format!("apply task: {e}")))??;
            self.metrics.applied(applied, head, UnixTime::now());
            if applied >= head {
                self.readiness.set_current();
            }
        }
        Ok(())
    }

    /// Replaces the sink's state by a snapshot of the registry's; `why`
    /// labels the metric (`empty`, `compacted`).
    async fn load_snapshot(&self, target: &Target, why: &'static str) -> Result<(), FollowError> {
        let started = Instant::now();
        let mut stream = self.source.snapshot(target.snapshot_content()).await?;
        let mut begun = false;
        let mut loaded = 0u64;
        let image = Arc::new(std::sync::Mutex::new(Vec::new()));
        let _loading = self.metrics.snapshot_loading();
        while let Some(part) = stream.next().await {
            let part = part?;
            self.binding.check(&part.store_id)?;
            let t = target.clone();
            if !begun {
                // Not current from here until the snapshot is loaded and
                // followed up to the head: roles refuse to answer meanwhile.
                self.readiness.set_catching_up();
                tokio::task::spawn_blocking(move || t.begin_snapshot())
                    .await
                    .map_err(|e| FollowError::Sink(format!("snapshot task: {e}")))??;
                begun = true;
            }
            let (seq, last) = (part.seq, part.last);
            loaded += (part.changes.len() + part.writes.len() + part.image.len()) as u64;
            let t = target.clone();
            let image = image.clone();
            tokio::task::spawn_blocking(move || {
                let mut image = image
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                t.load_snapshot(part, &mut image)
            })
            .await
            .map_err(|e| FollowError::Sink(format!("snapshot task: {e}")))??;
            if last {
                let t = target.clone();
                let position = tokio::task::spawn_blocking(move || t.end_snapshot(seq))
                    .await
                    .map_err(|e| FollowError::Sink(format!("snapshot task: {e}")))??;
                self.metrics.snapshot_loaded(why, position);
                tracing::info!(
                    seq = position,
                    entries = loaded,
                    secs = started.elapsed().as_secs_f64(),
                    why,
                    source = %self.source.describe(),
                    "loaded a snapshot of the registry's state"
                );
                return Ok(());
            }
        }
        Err(FollowError::Stream(
            "the snapshot ended before its last part".into(),
        ))
    }
}
