//! Follower metrics: the same names for every role, told apart by the
//! `role` label (bounded: the roles only), so that one alert and one
//! dashboard panel cover them all, and the demo (every role in one process)
//! registers the families once and hands each role its own children.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use shikko_core::UnixTime;

/// The metric families of following, registered once per metrics registry.
#[derive(Clone, Debug)]
pub struct FeedMetrics {
    applied_seq: IntGaugeVec,
    lag_events: IntGaugeVec,
    lag_seconds: IntGaugeVec,
    connected: IntGaugeVec,
    stale_since: IntGaugeVec,
    snapshots: IntCounterVec,
    snapshot_loading: IntGaugeVec,
}

impl FeedMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<FeedMetrics> {
        let g = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["role"]);
        let f = FeedMetrics {
            applied_seq: g(
                "shikko_feed_applied_seq",
                "The last registry sequence number this role has applied",
            )?,
            lag_events: g(
                "shikko_feed_lag_events",
                "Registry events not yet applied by this role (-1 while the registry is out of reach)",
            )?,
            lag_seconds: g(
                "shikko_feed_lag_seconds",
                "Seconds since this role last held every event the registry had (0 while current)",
            )?,
            connected: g(
                "shikko_feed_connected",
                "1 while this role follows the registry, 0 while the registry is out of reach",
            )?,
            stale_since: g(
                "shikko_feed_stale_since_timestamp_seconds",
                "When the registry went out of reach (Unix seconds; 0 while connected): this role's data is that old",
            )?,
            snapshots: IntCounterVec::new(
                Opts::new(
                    "shikko_feed_snapshots_loaded_total",
                    "Snapshots of the registry's state this role loaded, by why (empty: it started without state; compacted: the registry's feed no longer reached its position)",
                ),
                &["role", "why"],
            )?,
            snapshot_loading: g(
                "shikko_feed_snapshot_loading",
                "1 while this role loads a snapshot of the registry's state (it does not answer meanwhile)",
            )?,
        };
        registry.register(Box::new(f.snapshots.clone()))?;
        for c in [
            &f.snapshot_loading,
            &f.applied_seq,
            &f.lag_events,
            &f.lag_seconds,
            &f.connected,
            &f.stale_since,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        Ok(f)
    }

    /// The metrics of one role (`ocsp`, `crl`, `info`).
    pub fn role(&self, role: &str) -> FollowerMetrics {
        let m = FollowerMetrics {
            applied_seq: self.applied_seq.with_label_values(&[role]),
            lag_events: self.lag_events.with_label_values(&[role]),
            lag_seconds: self.lag_seconds.with_label_values(&[role]),
            connected: self.connected.with_label_values(&[role]),
            stale_since: self.stale_since.with_label_values(&[role]),
            snapshots: [
                self.snapshots.with_label_values(&[role, "empty"]),
                self.snapshots.with_label_values(&[role, "compacted"]),
            ],
            snapshot_loading: self.snapshot_loading.with_label_values(&[role]),
            current_at: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0)),
        };
        m.lag_events.set(-1);
        m
    }
}

/// One role's follower metrics.
#[derive(Clone, Debug)]
pub struct FollowerMetrics {
    applied_seq: IntGauge,
    lag_events: IntGauge,
    lag_seconds: IntGauge,
    connected: IntGauge,
    stale_since: IntGauge,
    snapshots: [prometheus::IntCounter; 2],
    snapshot_loading: IntGauge,
    /// When the follower was last current (Unix seconds; 0: never).
    current_at: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl FollowerMetrics {
    /// The families registered in `registry`, and the children of `role`:
    /// for a process that runs one following role.
    pub fn new(registry: &Registry, role: &str) -> prometheus::Result<FollowerMetrics> {
        Ok(FeedMetrics::register(registry)?.role(role))
    }

    pub(crate) fn applied(&self, applied: u64, head: u64, now: UnixTime) {
        use std::sync::atomic::Ordering;
        self.applied_seq.set(clamp(applied));
        self.lag_events.set(clamp(head.saturating_sub(applied)));
        self.connected.set(1);
        self.stale_since.set(0);
        if applied >= head {
            self.current_at.store(now.0, Ordering::SeqCst);
            self.lag_seconds.set(0);
        } else {
            self.behind(now);
        }
    }

    pub(crate) fn lost(&self, since: Option<UnixTime>, now: UnixTime) {
        self.connected.set(0);
        self.lag_events.set(-1);
        if let Some(since) = since {
            self.stale_since.set(since.0);
        }
        self.behind(now);
    }

    /// Says a snapshot is loading until the guard is dropped.
    pub(crate) fn snapshot_loading(&self) -> impl Drop + use<> {
        struct Loading(IntGauge);
        impl Drop for Loading {
            fn drop(&mut self) {
                self.0.set(0);
            }
        }
        self.snapshot_loading.set(1);
        Loading(self.snapshot_loading.clone())
    }

    pub(crate) fn snapshot_loaded(&self, why: &str, seq: u64) {
        let i = usize::from(why == "compacted");
        self.snapshots[i].inc();
        self.applied_seq.set(clamp(seq));
    }

    fn behind(&self, now: UnixTime) {
        let at = self.current_at.load(std::sync::atomic::Ordering::SeqCst);
        if at > 0 {
            self.lag_seconds.set(now.0.saturating_sub(at).max(0));
        }
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
