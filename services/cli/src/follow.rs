//! Following a registry's change feed over gRPC, for the roles that run as
//! their own processes (`serve crl`, `serve ocsp`, `serve info`): resume from the last
//! sequence number applied, reconnect with backoff, notice a vanished
//! registry (HTTP/2 keepalive), say when the follower is current.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use shikko_core::{Event, Municipality};
use shikko_proto::v1 as pb;
use shikko_proto::v1::registry_client::RegistryClient;
use shikko_registry::convert::{municipality_from_pb, record_from_pb};
use shikko_runtime::Shutdown;
use shikko_store::ChangeRecord;

/// Where followed change records go.
pub(crate) trait Sink: Send + Sync + 'static {
    /// The last sequence number applied (the follower resumes after it).
    fn position(&self) -> u64;
    /// Applies records in order (called on a blocking thread); `source_id`
    /// is the registry store's identity, `head` its last sequence number.
    /// Returns the new position.
    fn apply(&self, records: Vec<ChangeRecord>, source_id: &str, head: u64) -> Result<u64>;
    /// Whether the sink wants the registry's municipalities (CRL partitions).
    fn wants_partitions(&self) -> bool {
        false
    }
    /// Records the registry's municipalities (called on a blocking thread).
    fn partitions(&self, _municipalities: Vec<Municipality>) -> Result<()> {
        Ok(())
    }
    /// Current: caught up with the registry; not current: out of reach.
    fn set_current(&self, current: bool);
    /// Whether the sink wants whole events (a replica) rather than status changes.
    fn wants_events(&self) -> bool {
        false
    }
    /// Applies whole events with their sequence numbers, in order (called on
    /// a blocking thread, for a sink that [`Sink::wants_events`]).
    fn apply_events(
        &self,
        _events: Vec<(u64, Event)>,
        _source_id: &str,
        _head: u64,
    ) -> Result<u64> {
        anyhow::bail!("this follower does not take events")
    }
}

/// Follows `endpoint` into `sink` until shutdown, reconnecting (1 s,
/// doubling to 30 s) whenever the registry goes away.
pub(crate) async fn follow(sink: Arc<dyn Sink>, endpoint: String, shutdown: Shutdown) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        tokio::select! {
            r = follow_once(&sink, &endpoint) => match r {
                Ok(()) => tracing::info!("registry closed the feed; reconnecting"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "following the registry failed; reconnecting"),
            },
            () = shutdown.wait() => return,
        }
        sink.set_current(false);
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.wait() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("blocking task")?
}

async fn follow_once(sink: &Arc<dyn Sink>, endpoint: &str) -> Result<()> {
    // HTTP/2 keepalive: a registry that vanished without closing the
    // connection is noticed within half a minute, not never.
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .with_context(|| format!("registry endpoint {endpoint}"))?
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        .connect()
        .await
        .with_context(|| format!("connecting to the registry at {endpoint}"))?;
    let mut client = RegistryClient::new(channel);
    let mut known = if sink.wants_partitions() {
        refresh_partitions(sink, &mut client).await?
    } else {
        Default::default()
    };
    let from_seq = sink.position() + 1;
    let mut stream = client
        .follow(pb::FollowRequest {
            from_seq,
            max_batch: 1_000,
            with_events: sink.wants_events(),
        })
        .await
        .context("Follow")?
        .into_inner();
    tracing::info!(from_seq, "following the registry");
    while let Some(batch) = stream.message().await.context("reading the feed")? {
        if sink.wants_events() {
            let events = batch
                .records
                .iter()
                .map(|r| {
                    serde_json::from_slice::<Event>(&r.event_json)
                        .map(|e| (r.seq, e))
                        .with_context(|| format!("event {} from the registry", r.seq))
                })
                .collect::<Result<Vec<_>>>()?;
            let s = sink.clone();
            let (source, head) = (batch.store_id.clone(), batch.head_seq);
            let applied = blocking(move || s.apply_events(events, &source, head)).await?;
            if applied >= batch.head_seq {
                sink.set_current(true);
            }
            continue;
        }
        let records = batch
            .records
            .iter()
            .map(record_from_pb)
            .collect::<std::result::Result<Vec<_>, _>>()
            .context("a change record from the registry")?;
        // A municipality not seen before comes with new signing
        // certificates: record it before their changes, so that no build
        // sees the certificates without their partition.
        if sink.wants_partitions()
            && records
                .iter()
                .flat_map(|r| &r.changes)
                .any(|c| c.partition.0 != 0 && !known.contains(&c.partition.0))
        {
            known = refresh_partitions(sink, &mut client).await?;
        }
        let s = sink.clone();
        let (source, head) = (batch.store_id.clone(), batch.head_seq);
        let applied = blocking(move || s.apply(records, &source, head)).await?;
        if applied >= batch.head_seq {
            sink.set_current(true);
        }
    }
    Ok(())
}

/// Gives the sink the registry's municipalities; returns their codes.
async fn refresh_partitions(
    sink: &Arc<dyn Sink>,
    client: &mut RegistryClient<tonic::transport::Channel>,
) -> Result<std::collections::HashSet<u32>> {
    let parts = client
        .list_partitions(pb::ListPartitionsRequest {})
        .await
        .context("ListPartitions")?
        .into_inner()
        .partitions;
    let munis: Vec<_> = parts.iter().map(municipality_from_pb).collect();
    let codes = munis.iter().map(|m| m.code.0).collect();
    let s = sink.clone();
    blocking(move || s.partitions(munis)).await?;
    Ok(codes)
}
