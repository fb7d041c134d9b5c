//! A synchronous pair of registries (issue 14): `[registry.pair]`, and the
//! state both sides share in the process.
//!
//! Why a standby and not a consensus library: the registry is one writer
//! whose every batch is already one synced RocksDB write; what was missing
//! is a second disk that holds each batch before its caller hears "done".
//! A primary that ships each stored record to one standby and waits for its
//! "durable" is the design of PostgreSQL's synchronous replication
//! (`synchronous_commit = on` with one synchronous standby), decades in
//! production; promotion is an operator's command, as there. A Raft
//! library (three voters, elections, a log beside RocksDB's) would add
//! automatic failover at the price of a third machine and of a second log
//! of every event; see docs/OPERATOR.md for the trade.
//!
//! The rules that make "an acknowledged event survives the primary's disk":
//! - the primary answers an ingest only once the standby has confirmed every
//!   record the answer names (applied or duplicate) durable;
//! - the primary shows followers (the feed, snapshots) only records the
//!   standby holds: a follower can never be ahead of a promoted standby;
//! - a standby is promoted into a new epoch; a standby of an older epoch
//!   whose history went further is never merged (it must start empty);
//! - with `require_standby`, a primary without a standby acknowledges
//!   nothing (it waits, then answers UNAVAILABLE): an old primary cut off
//!   from its standby, which was promoted meanwhile, cannot acknowledge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge, Registry};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{Error, Result};

/// `[registry.pair]`: a standby registry, and how the primary waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PairSection {
    /// On a standby: its primary's gRPC endpoint (e.g.
    /// `https://registry-0.registry:50051`). The standby calls it with
    /// this process's `[tls]` identity, which must be `standby`. A new,
    /// empty data directory is seeded from the primary. Unset: this
    /// registry is a primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby_of: Option<String>,
    /// On a primary: acknowledge an ingest only once the standby holds it
    /// durably (and show followers only what it holds). Without a standby
    /// connected, ingest waits `standby_timeout_secs` and answers
    /// UNAVAILABLE (the authority retries; the event id makes a retry
    /// safe). Default false (a single registry); deploy/ sets it.
    pub require_standby: bool,
    /// How long an ingest waits for the standby's confirmation, in seconds
    /// (1 to 300). Default 10.
    pub standby_timeout_secs: u64,
}

impl Default for PairSection {
    fn default() -> PairSection {
        PairSection {
            standby_of: None,
            require_standby: false,
            standby_timeout_secs: 10,
        }
    }
}

impl PairSection {
    /// Checks the bounds.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(1..=300).contains(&self.standby_timeout_secs) {
            return Err("standby_timeout_secs must be 1 to 300".into());
        }
        if let Some(e) = &self.standby_of
            && !(e.starts_with("https://") || e.starts_with("http://"))
        {
            return Err("standby_of must be an http:// or https:// endpoint".into());
        }
        Ok(())
    }
}

/// The pair's metrics.
#[derive(Clone)]
pub(crate) struct PairMetrics {
    pub(crate) primary: IntGauge,
    pub(crate) epoch: IntGauge,
    pub(crate) connected: IntGauge,
    pub(crate) acked: IntGauge,
    pub(crate) lag: IntGauge,
    pub(crate) synchronous: IntGauge,
    pub(crate) required: IntGauge,
    pub(crate) unconfirmed: IntCounter,
    pub(crate) last_contact: IntGauge,
}

impl PairMetrics {
    fn register(r: &Registry) -> prometheus::Result<PairMetrics> {
        let m = PairMetrics {
            primary: IntGauge::new(
                "shikko_registry_primary",
                "1 on the primary of a pair (or a single registry), 0 on a standby.",
            )?,
            epoch: IntGauge::new(
                "shikko_registry_epoch",
                "The history's epoch: raised by each promotion of a standby.",
            )?,
            connected: IntGauge::new(
                "shikko_registry_standby_connected",
                "On a primary: 1 while a standby is linked. On a standby: 1 while linked to its primary.",
            )?,
            acked: IntGauge::new(
                "shikko_registry_standby_durable_seq",
                "On a primary: the last sequence number the standby confirmed durable.",
            )?,
            lag: IntGauge::new(
                "shikko_registry_standby_lag_records",
                "On a primary: records stored here and not yet confirmed by the standby.",
            )?,
            synchronous: IntGauge::new(
                "shikko_registry_synchronous",
                "1 while ingest waits for the standby (require_standby, not promoted alone).",
            )?,
            required: IntGauge::new(
                "shikko_registry_standby_required",
                "1 when [registry.pair] require_standby is set.",
            )?,
            unconfirmed: IntCounter::new(
                "shikko_registry_ingest_unconfirmed_total",
                "Ingest calls answered UNAVAILABLE because the standby did not confirm in time.",
            )?,
            last_contact: IntGauge::new(
                "shikko_registry_standby_last_contact_timestamp_seconds",
                "On a standby: when the primary last sent anything (Unix seconds).",
            )?,
        };
        for g in [
            &m.primary,
            &m.epoch,
            &m.connected,
            &m.acked,
            &m.lag,
            &m.synchronous,
            &m.required,
            &m.last_contact,
        ] {
            r.register(Box::new(g.clone()))?;
        }
        r.register(Box::new(m.unconfirmed.clone()))?;
        Ok(m)
    }
}

/// The pair's state in one registry process.
pub(crate) struct Pair {
    standby: AtomicBool,
    require_standby: bool,
    synchronous: AtomicBool,
    timeout: Duration,
    /// On a primary: what the standby confirmed durable.
    acked: watch::Sender<u64>,
    /// On a primary: the store's last sequence number.
    pub(crate) written: watch::Sender<u64>,
    /// The current standby link (a new one replaces the old).
    link: AtomicU64,
    /// On a standby: when the primary last sent anything.
    heard: std::sync::Mutex<Option<Instant>>,
    /// Set when a standby is promoted (its link to the old primary ends).
    pub(crate) promoted: watch::Sender<bool>,
    /// Readiness for traffic: the primary only.
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) metrics: PairMetrics,
}

impl Pair {
    pub(crate) fn new(
        standby: bool,
        section: &PairSection,
        last_seq: u64,
        epoch: u64,
        metrics: &Registry,
    ) -> Result<Pair> {
        let metrics = PairMetrics::register(metrics)?;
        metrics.primary.set(i64::from(!standby));
        metrics.epoch.set(i64::try_from(epoch).unwrap_or(i64::MAX));
        let synchronous = section.require_standby && !standby;
        metrics.synchronous.set(i64::from(synchronous));
        metrics.required.set(i64::from(section.require_standby));
        Ok(Pair {
            standby: AtomicBool::new(standby),
            require_standby: section.require_standby,
            synchronous: AtomicBool::new(synchronous),
            timeout: Duration::from_secs(section.standby_timeout_secs),
            acked: watch::Sender::new(0),
            written: watch::Sender::new(last_seq),
            link: AtomicU64::new(0),
            heard: std::sync::Mutex::new(None),
            promoted: watch::Sender::new(false),
            ready: Arc::new(AtomicBool::new(!standby)),
            metrics,
        })
    }

    /// Whether this registry is a standby (ingests nothing, serves no feed).
    pub(crate) fn is_standby(&self) -> bool {
        self.standby.load(Ordering::SeqCst)
    }

    /// Whether ingest waits for the standby.
    pub(crate) fn is_synchronous(&self) -> bool {
        self.synchronous.load(Ordering::SeqCst)
    }

    /// The head followers may see when the process starts: everything
    /// stored, unless the standby must confirm it first.
    pub(crate) fn initial_head(&self, last_seq: u64) -> u64 {
        if self.is_synchronous() { 0 } else { last_seq }
    }

    /// Waits until the standby confirmed `seq` durable (at once when not
    /// synchronous); UNAVAILABLE after the timeout.
    pub(crate) async fn wait_durable(&self, seq: u64) -> Result<()> {
        if seq == 0 || !self.is_synchronous() {
            return Ok(());
        }
        let mut rx = self.acked.subscribe();
        match tokio::time::timeout(self.timeout, rx.wait_for(|a| *a >= seq)).await {
            Ok(Ok(_)) => Ok(()),
            _ => {
                self.metrics.unconfirmed.inc();
                Err(Error::Unavailable(format!(
                    "stored here up to sequence number {seq}, but the standby has not confirmed it within {} s: not acknowledged. Retry the same events (their ids make a retry safe)",
                    self.timeout.as_secs()
                )))
            }
        }
    }

    /// A new standby link at `durable` (0 for one being seeded): the
    /// previous link, if any, is superseded. Returns the link's number.
    pub(crate) fn new_link(&self, durable: u64) -> u64 {
        let link = self.link.fetch_add(1, Ordering::SeqCst) + 1;
        self.acked.send_replace(durable);
        self.metrics.connected.set(1);
        self.set_acked_metrics(durable);
        link
    }

    /// Whether `link` is the current link.
    pub(crate) fn is_current(&self, link: u64) -> bool {
        self.link.load(Ordering::SeqCst) == link
    }

    /// `link` ended.
    pub(crate) fn link_ended(&self, link: u64) {
        if self.is_current(link) {
            self.metrics.connected.set(0);
        }
    }

    fn set_acked_metrics(&self, acked: u64) {
        let written = *self.written.borrow();
        self.metrics
            .acked
            .set(i64::try_from(acked).unwrap_or(i64::MAX));
        self.metrics
            .lag
            .set(i64::try_from(written.saturating_sub(acked)).unwrap_or(i64::MAX));
    }

    /// The standby of `link` confirmed `durable`: followers may see up to
    /// it; a primary promoted alone becomes synchronous again once the
    /// standby has everything.
    pub(crate) fn confirmed(&self, link: u64, durable: u64, head: &watch::Sender<u64>) {
        if !self.is_current(link) {
            return;
        }
        self.acked.send_if_modified(|a| {
            let newer = durable > *a;
            if newer {
                *a = durable;
            }
            newer
        });
        let written = *self.written.borrow();
        let visible = durable.min(written);
        head.send_if_modified(|h| {
            let newer = visible > *h;
            if newer {
                *h = visible;
            }
            newer
        });
        self.set_acked_metrics(durable);
        if self.require_standby && !self.is_synchronous() && durable >= written {
            self.synchronous.store(true, Ordering::SeqCst);
            self.metrics.synchronous.set(1);
            tracing::info!(
                durable,
                "the standby holds every record: ingest waits for it again"
            );
        }
    }

    /// The standby heard from its primary.
    pub(crate) fn heard_from_primary(&self) {
        *self
            .heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        self.metrics
            .last_contact
            .set(shikko_core::UnixTime::now().0);
    }

    /// How long ago the primary last sent anything (`None`: never, since start).
    pub(crate) fn primary_silent_for(&self) -> Option<Duration> {
        self.heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map(|t| t.elapsed())
    }

    /// A primary gives up waiting for its standby until one has caught up
    /// (see [`Pair::confirmed`]). Returns whether it was waiting.
    pub(crate) fn alone_until_caught_up(&self) -> bool {
        let was = self.synchronous.swap(false, Ordering::SeqCst);
        self.metrics.synchronous.set(0);
        was
    }

    /// The standby became the primary of `epoch`: ingest waits for a new
    /// standby unless `alone` (then until one has caught up).
    pub(crate) fn became_primary(&self, epoch: u64, alone: bool) {
        let synchronous = self.require_standby && !alone;
        self.synchronous.store(synchronous, Ordering::SeqCst);
        self.metrics.synchronous.set(i64::from(synchronous));
        self.standby.store(false, Ordering::SeqCst);
        self.metrics.primary.set(1);
        self.metrics.connected.set(0);
        self.metrics
            .epoch
            .set(i64::try_from(epoch).unwrap_or(i64::MAX));
        self.ready.store(true, Ordering::SeqCst);
        self.promoted.send_replace(true);
    }
}
