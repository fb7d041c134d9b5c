//! The `ocsp` role: a status index kept current from the registry's change
//! feed, the responder answering from it, and metrics.

use std::future::Future;
use std::sync::Arc;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use shikko_core::CertKind;
use shikko_store::{ChangeRecord, Store};
use tokio::sync::watch;

use crate::index::StatusIndex;
use crate::responder::Responder;

/// The role's metrics (labels bounded: method, outcome, issuer).
#[derive(Clone, Debug)]
pub struct OcspMetrics {
    /// Requests by method (get, post) and outcome (cached, signed,
    /// not_modified, malformed, unauthorized, internal_error, shed).
    pub requests: IntCounterVec,
    /// Time to sign one answer.
    pub signing_seconds: Histogram,
    /// Registry events not yet applied to the index.
    pub feed_lag: IntGauge,
    /// The last change-feed sequence number applied.
    pub index_seq: IntGauge,
    /// Certificates in the index, by issuer.
    pub certificates: IntGaugeVec,
    /// 1 while the role follows the registry, 0 while it is out of reach.
    pub registry_connected: IntGauge,
    /// When the registry went out of reach (Unix seconds; 0 while connected):
    /// answers come from an index at most `time() - this` seconds old.
    pub stale_since: IntGauge,
}

impl OcspMetrics {
    fn new(registry: &Registry) -> prometheus::Result<OcspMetrics> {
        let m = OcspMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "shikko_ocsp_requests_total",
                    "OCSP requests by method and outcome",
                ),
                &["method", "outcome"],
            )?,
            signing_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "shikko_ocsp_signing_seconds",
                    "Time to sign one OCSP answer",
                )
                .buckets(vec![
                    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.05,
                ]),
            )?,
            feed_lag: IntGauge::with_opts(Opts::new(
                "shikko_ocsp_feed_lag",
                "Registry events not yet applied to the OCSP status index",
            ))?,
            index_seq: IntGauge::with_opts(Opts::new(
                "shikko_ocsp_index_seq",
                "The last change-feed sequence number applied to the OCSP status index",
            ))?,
            certificates: IntGaugeVec::new(
                Opts::new(
                    "shikko_ocsp_index_certificates",
                    "Certificates in the OCSP status index by issuer",
                ),
                &["issuer"],
            )?,
            registry_connected: IntGauge::with_opts(Opts::new(
                "shikko_ocsp_registry_connected",
                "1 while the OCSP role follows the registry, 0 while the registry is out of reach",
            ))?,
            stale_since: IntGauge::with_opts(Opts::new(
                "shikko_ocsp_stale_since_timestamp_seconds",
                "When the registry went out of reach (0 while connected): the index is that old",
            ))?,
        };
        m.registry_connected.set(1);
        registry.register(Box::new(m.registry_connected.clone()))?;
        registry.register(Box::new(m.stale_since.clone()))?;
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.signing_seconds.clone()))?;
        registry.register(Box::new(m.feed_lag.clone()))?;
        registry.register(Box::new(m.index_seq.clone()))?;
        registry.register(Box::new(m.certificates.clone()))?;
        Ok(m)
    }
}

/// The ocsp role.
#[derive(Debug)]
pub struct OcspRole {
    /// False until the index has caught up with the registry once: answers
    /// are then tryLater rather than statuses from an incomplete index.
    ready: std::sync::atomic::AtomicBool,
    index: Arc<StatusIndex>,
    responder: Arc<Responder>,
    metrics: OcspMetrics,
    /// When the registry went out of reach (Unix seconds), 0 while in reach.
    lost_at: std::sync::atomic::AtomicI64,
    /// How long answers keep coming from the index after that (seconds).
    max_stale: std::sync::atomic::AtomicI64,
}

impl OcspRole {
    /// The role over `responder` (which answers from `index`); metrics go to `registry`.
    pub fn new(
        index: Arc<StatusIndex>,
        responder: Arc<Responder>,
        registry: &Registry,
    ) -> prometheus::Result<Arc<OcspRole>> {
        Ok(Arc::new(OcspRole {
            ready: std::sync::atomic::AtomicBool::new(true),
            index,
            responder,
            metrics: OcspMetrics::new(registry)?,
            lost_at: std::sync::atomic::AtomicI64::new(0),
            max_stale: std::sync::atomic::AtomicI64::new(i64::MAX),
        }))
    }

    /// How long the role keeps answering from its index once the registry is
    /// out of reach (the stale-but-valid window); beyond it, tryLater.
    pub fn set_max_stale(&self, window: std::time::Duration) {
        let secs = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        self.max_stale
            .store(secs, std::sync::atomic::Ordering::SeqCst);
    }

    /// The registry went out of reach at `now` (the first call counts).
    pub fn lost_registry(&self, now: shikko_core::UnixTime) {
        use std::sync::atomic::Ordering;
        if self
            .lost_at
            .compare_exchange(0, now.0.max(1), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.metrics.registry_connected.set(0);
            self.metrics.stale_since.set(now.0);
        }
    }

    /// The registry is in reach again (the feed is followed).
    pub fn reached_registry(&self) {
        self.lost_at.store(0, std::sync::atomic::Ordering::SeqCst);
        self.metrics.registry_connected.set(1);
        self.metrics.stale_since.set(0);
    }

    /// Whether the index is older than the stale-but-valid window allows:
    /// answers are then tryLater (no status vouched for from data that old).
    pub fn too_stale(&self, now: shikko_core::UnixTime) -> bool {
        use std::sync::atomic::Ordering;
        let lost = self.lost_at.load(Ordering::SeqCst);
        lost != 0 && now.0.saturating_sub(lost) > self.max_stale.load(Ordering::SeqCst)
    }

    /// Answers tryLater until [`OcspRole::set_ready`]: for a role whose index
    /// is still being replayed from the feed.
    pub fn hold_until_ready(&self) {
        self.ready.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// The index has caught up with the registry.
    pub fn set_ready(&self) {
        self.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether answers come from a caught-up index.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The status index.
    pub fn index(&self) -> &Arc<StatusIndex> {
        &self.index
    }

    /// The responder.
    pub fn responder(&self) -> &Arc<Responder> {
        &self.responder
    }

    /// The metrics.
    pub fn metrics(&self) -> &OcspMetrics {
        &self.metrics
    }

    /// Applies change records to the index and drops the cached answers of
    /// the certificates they changed; `head` is the registry's last sequence
    /// number, for the lag metric.
    pub fn apply(&self, records: &[ChangeRecord], head: u64) {
        let changed = self.index.apply(records);
        self.responder.invalidate(&changed);
        let seq = self.index.seq();
        self.metrics.index_seq.set(seq as i64);
        self.metrics.feed_lag.set(head.saturating_sub(seq) as i64);
        if !changed.is_empty() {
            for kind in CertKind::ALL {
                self.metrics
                    .certificates
                    .with_label_values(&[kind.issuer_id()])
                    .set(self.index.len(kind) as i64);
            }
        }
    }

    /// Follows a store in the same process until `stop`: replays its feed
    /// from the index's position, then applies each new event as the
    /// registry accepts it (`head` changes), well within a second.
    pub async fn follow_store(
        self: Arc<Self>,
        store: Arc<Store>,
        mut head: watch::Receiver<u64>,
        stop: impl Future<Output = ()>,
    ) {
        const PAGE: usize = 10_000;
        tokio::pin!(stop);
        loop {
            let target = *head.borrow_and_update();
            let from = self.index.seq() + 1;
            let s = store.clone();
            let read = tokio::task::spawn_blocking(move || s.changes_since(from, PAGE)).await;
            match read {
                Ok(Ok(records)) if !records.is_empty() => {
                    self.apply(&records, target.max(records.last().map_or(0, |r| r.seq)));
                    continue;
                }
                Ok(Ok(_)) => self.set_ready(),
                failed => {
                    match failed {
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "reading the change feed for OCSP failed")
                        }
                        _ => tracing::error!("the change-feed read task failed"),
                    }
                    // Try again shortly, whether or not new events arrive.
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                        () = &mut stop => return,
                    }
                }
            }
            tokio::select! {
                changed = head.changed() => if changed.is_err() { return },
                () = &mut stop => return,
            }
        }
    }
}
