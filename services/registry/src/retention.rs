//! The registry's retention (`[registry.retention]`): how long it keeps its
//! history, and the task that prunes what is older. The state answers
//! every question; the history (the change feed, the events as received
//! with their 4 information, the writes each event made) is for followers
//! catching up, and for a while as the record of what was ingested. A
//! follower behind the window loads a snapshot instead.

use std::time::Duration;

use prometheus::{IntCounter, IntGauge, Registry};
use serde::{Deserialize, Serialize};
use shikko_core::UnixTime;
use shikko_store::RegistryStore;

/// `[registry.retention]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Days of history kept: the change feed, the events as received (with
    /// the 4 information they carried) and the writes each made. 1 to
    /// 3,650. Default 35: a month of events for the authority's
    /// reconciliation, and a follower may be away that long before it must
    /// load a snapshot.
    pub history_days: u32,
    /// Days the ids of ingested events are kept, so that a re-delivery is
    /// recognised as one (ids carry no personal data). At least
    /// `history_days`. Default 400.
    pub event_id_days: u32,
    /// How often the pruning runs, in seconds (60 to 86,400). Default 3,600.
    pub prune_every_secs: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            history_days: 35,
            event_id_days: 400,
            prune_every_secs: 3600,
        }
    }
}

impl Retention {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=3650).contains(&self.history_days) {
            return Err("history_days must be 1 to 3650".into());
        }
        if self.event_id_days < self.history_days || self.event_id_days > 36_500 {
            return Err("event_id_days must be at least history_days (and at most 36500)".into());
        }
        if !(60..=86_400).contains(&self.prune_every_secs) {
            return Err("prune_every_secs must be 60 to 86400".into());
        }
        Ok(())
    }
}

/// The pruning's metrics.
#[derive(Clone, Debug)]
pub(crate) struct PruneMetrics {
    first_seq: IntGauge,
    pruned: IntCounter,
    last_run: IntGauge,
}

impl PruneMetrics {
    pub(crate) fn register(r: &Registry) -> prometheus::Result<PruneMetrics> {
        let m = PruneMetrics {
            first_seq: IntGauge::new(
                "shikko_registry_feed_first_seq",
                "The first sequence number the registry's feed keeps: a follower below it loads a snapshot.",
            )?,
            pruned: IntCounter::new(
                "shikko_registry_pruned_records_total",
                "Records of history (feed, events, writes) pruned by retention.",
            )?,
            last_run: IntGauge::new(
                "shikko_registry_prune_last_success_timestamp_seconds",
                "When the retention's pruning last completed (Unix seconds).",
            )?,
        };
        r.register(Box::new(m.first_seq.clone()))?;
        r.register(Box::new(m.pruned.clone()))?;
        r.register(Box::new(m.last_run.clone()))?;
        Ok(m)
    }
}

/// Prunes `store` by `retention` now and then every `prune_every_secs`,
/// until `shutdown`.
pub(crate) async fn run(
    store: RegistryStore,
    retention: Retention,
    metrics: PruneMetrics,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    metrics
        .first_seq
        .set(i64::try_from(store.first_seq()).unwrap_or(i64::MAX));
    loop {
        let s = store.clone();
        let r = tokio::task::spawn_blocking(move || {
            s.retain(
                UnixTime::now(),
                i64::from(retention.history_days) * 86_400,
                i64::from(retention.event_id_days) * 86_400,
            )
        })
        .await;
        match r {
            Ok(Ok(p)) => {
                let n = p.first_seq - p.from;
                metrics.pruned.inc_by(n);
                metrics
                    .first_seq
                    .set(i64::try_from(p.first_seq).unwrap_or(i64::MAX));
                metrics.last_run.set(UnixTime::now().0);
                if n > 0 {
                    tracing::info!(
                        pruned = n,
                        first_seq = p.first_seq,
                        "history pruned by retention"
                    );
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "pruning the history failed"),
            Err(e) => tracing::error!(error = %e, "the pruning task failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(retention.prune_every_secs)) => {}
            () = &mut shutdown => return,
        }
    }
}
