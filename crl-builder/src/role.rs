//! The `crl` role: a builder, the catalog of what it published, builds on
//! demand and on a schedule (full daily, delta more often), and metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};
use shikko_core::{CertKind, UnixTime};
use shikko_follow::Readiness;
use tokio::sync::Mutex;

use crate::build::{BuildReport, Builder, CrlName, NoProgress};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::state::read_issuer_state;

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildKind {
    /// Full CRLs, every partition, and a fresh delta.
    Full,
    /// A delta against the last full CRL.
    Delta,
}

/// When the scheduler builds.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Full CRLs this often (default daily).
    pub full_every: Duration,
    /// Delta CRLs this often (default 15 minutes).
    pub delta_every: Duration,
    /// How often to look for CRLs published by another process (default 2 s).
    pub rescan_every: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            full_every: Duration::from_secs(24 * 3600),
            delta_every: Duration::from_secs(15 * 60),
            rescan_every: Duration::from_secs(2),
        }
    }
}

#[derive(Clone)]
struct Metrics {
    builds: IntCounterVec,
    failures: IntCounterVec,
    seconds: HistogramVec,
    entries: IntGaugeVec,
    number: IntGaugeVec,
    next_update: GaugeVec,
    coalesced: prometheus::IntCounter,
}

impl Metrics {
    fn new(registry: &Registry) -> prometheus::Result<Metrics> {
        let m = Metrics {
            builds: IntCounterVec::new(
                Opts::new(
                    "shikko_crl_builds_total",
                    "CRL builds by issuer and kind (full, delta)",
                ),
                &["issuer", "kind"],
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    "shikko_crl_build_failures_total",
                    "Failed CRL builds by issuer and kind (full, delta; full_filter, delta_filter: a filter failed, its CRLs were published)",
                ),
                &["issuer", "kind"],
            )?,
            seconds: HistogramVec::new(
                HistogramOpts::new(
                    "shikko_crl_build_seconds",
                    "Wall time of one CRL's build by issuer and CRL (full, delta, partition)",
                )
                .buckets(vec![
                    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                ]),
                &["issuer", "crl"],
            )?,
            entries: IntGaugeVec::new(
                Opts::new(
                    "shikko_crl_entries",
                    "Entries of the published full and delta CRLs",
                ),
                &["issuer", "crl"],
            )?,
            number: IntGaugeVec::new(
                Opts::new(
                    "shikko_crl_number",
                    "cRLNumber of the published full and delta CRLs",
                ),
                &["issuer", "crl"],
            )?,
            next_update: GaugeVec::new(
                Opts::new(
                    "shikko_crl_next_update_timestamp_seconds",
                    "nextUpdate of the published full and delta CRLs (alert when time() passes it)",
                ),
                &["issuer", "crl"],
            )?,
            coalesced: prometheus::IntCounter::new(
                "shikko_crl_builds_coalesced_total",
                "Build requests answered by joining an identical build already waiting",
            )?,
        };
        registry.register(Box::new(m.coalesced.clone()))?;
        registry.register(Box::new(m.builds.clone()))?;
        registry.register(Box::new(m.failures.clone()))?;
        registry.register(Box::new(m.seconds.clone()))?;
        registry.register(Box::new(m.entries.clone()))?;
        registry.register(Box::new(m.number.clone()))?;
        registry.register(Box::new(m.next_update.clone()))?;
        Ok(m)
    }
}

/// The crl role.
pub struct CrlRole {
    /// Whether the store it builds from is current: builds are refused
    /// while a mirror catches up with the registry or has lost it (an empty
    /// or stale mirror would publish CRLs that drop revocations).
    readiness: Arc<Readiness>,
    builder: Arc<Builder>,
    catalog: Arc<Catalog>,
    lock: Arc<Mutex<()>>,
    metrics: Metrics,
    /// On-demand builds waiting for the lock (not started): a request of
    /// the same kind for the same or fewer issuers joins one of them
    /// instead of queueing another build.
    waiting: std::sync::Mutex<Vec<Waiting>>,
    next_waiting: std::sync::atomic::AtomicU64,
}

/// What a joined build reports: its report, or why it failed.
type Outcome = Option<std::result::Result<BuildReport, String>>;

/// An on-demand build waiting to start.
struct Waiting {
    id: u64,
    kind: BuildKind,
    kinds: Vec<CertKind>,
    done: tokio::sync::watch::Receiver<Outcome>,
}

/// Removes a waiting build from the list when its caller goes away (or it
/// starts, or ends), whatever comes first.
struct Unlist<'a> {
    waiting: &'a std::sync::Mutex<Vec<Waiting>>,
    id: u64,
}

impl Unlist<'_> {
    fn now(&self) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|w| w.id != self.id);
    }
}

impl Drop for Unlist<'_> {
    fn drop(&mut self) {
        self.now();
    }
}

impl std::fmt::Debug for CrlRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlRole")
            .field("builder", &self.builder)
            .finish()
    }
}

impl CrlRole {
    /// The role over `builder`, publishing into its output directory,
    /// building while `readiness` is current (a store that is the
    /// registry's own: [`Readiness::always_current`]); metrics go to `registry`.
    pub fn new(
        builder: Builder,
        registry: &Registry,
        readiness: Arc<Readiness>,
    ) -> Result<Arc<CrlRole>> {
        let catalog = Catalog::open(builder.config().out_dir.clone())?;
        let metrics =
            Metrics::new(registry).map_err(|_| Error::Input("CRL metrics registered twice"))?;
        Ok(Arc::new(CrlRole {
            readiness,
            builder: Arc::new(builder),
            catalog,
            lock: Arc::new(Mutex::new(())),
            metrics,
            waiting: std::sync::Mutex::new(Vec::new()),
            next_waiting: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// Whether the store built from is current (builds run only then).
    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.readiness
    }

    /// The catalog of published CRLs.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The issuers this role builds for.
    pub fn kinds(&self) -> Vec<CertKind> {
        self.builder.kinds()
    }

    /// Builds now, one issuer after another (one build at a time; callers
    /// queue), then refreshes the catalog. An issuer's failure does not stop
    /// the others: what succeeded is published, and the error names the
    /// issuers that failed (a single issuer's error is returned as it is).
    pub async fn build(&self, kind: BuildKind, kinds: &[CertKind]) -> Result<BuildReport> {
        self.build_then(kind, kinds, || {}).await
    }

    /// A build asked for (CrlPublisher.Build): as [`CrlRole::build`], but
    /// requests coalesce. While one waits for the build in progress to end,
    /// another of the same kind for the same or fewer issuers joins it and
    /// gets its report, instead of queueing one more build: many requests
    /// cost one build, and scheduled builds do not fall behind a queue of
    /// them. A request that finds the waiting build already started
    /// queues a new one (it may need events the started one does not see).
    pub async fn build_on_demand(
        &self,
        kind: BuildKind,
        kinds: &[CertKind],
    ) -> Result<BuildReport> {
        let joined = {
            let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            waiting
                .iter()
                .find(|w| w.kind == kind && kinds.iter().all(|k| w.kinds.contains(k)))
                .map(|w| w.done.clone())
        };
        if let Some(mut done) = joined {
            self.metrics.coalesced.inc();
            loop {
                if let Some(outcome) = done.borrow_and_update().clone() {
                    return outcome.map_err(Error::Joined);
                }
                if done.changed().await.is_err() {
                    return Err(Error::JoinedCancelled);
                }
            }
        }
        let (tx, rx) = tokio::sync::watch::channel(None);
        let id = self
            .next_waiting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Waiting {
                id,
                kind,
                kinds: kinds.to_vec(),
                done: rx,
            });
        let unlist = Unlist {
            waiting: &self.waiting,
            id,
        };
        let result = self.build_then(kind, kinds, || unlist.now()).await;
        drop(unlist);
        let _ = tx.send(Some(match &result {
            Ok(r) => Ok(r.clone()),
            Err(e) => Err(e.to_string()),
        }));
        result
    }

    /// On-demand builds waiting to start (for tests and diagnostics).
    pub fn builds_waiting(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The build lock, for the mirror to hold while it loads a snapshot: no
    /// CRL is built from a mirror half loaded.
    pub fn build_lock(&self) -> Arc<Mutex<()>> {
        self.lock.clone()
    }

    /// Holds the build lock: no build starts until the guard is dropped
    /// (for tests of what waits; a role never needs it).
    #[doc(hidden)]
    pub async fn hold_builds(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.lock.clone().lock_owned().await
    }

    /// [`CrlRole::build`], calling `started` once the build lock is held.
    async fn build_then(
        &self,
        kind: BuildKind,
        kinds: &[CertKind],
        started: impl FnOnce(),
    ) -> Result<BuildReport> {
        // Owned, and moved into the blocking task: a caller that goes away
        // (a cancelled gRPC call) does not release the lock while the build runs.
        let guard = self.lock.clone().lock_owned().await;
        started();
        // Checked under the lock: readiness may have changed while queued.
        if !self.readiness.is_current() {
            return Err(Error::NotReady);
        }
        let builder = self.builder.clone();
        let list = kinds.to_vec();
        let results = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            list.iter()
                .map(|k| {
                    let r = match kind {
                        BuildKind::Full => builder.build_full(&[*k], &NoProgress),
                        BuildKind::Delta => builder.build_delta(&[*k], &NoProgress),
                    };
                    (*k, r)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| Error::Internal("CRL build task failed"))?;
        let label = match kind {
            BuildKind::Full => "full",
            BuildKind::Delta => "delta",
        };
        let mut report = BuildReport::default();
        let mut failed = Vec::new();
        for (k, r) in results {
            match r {
                Ok(r) => {
                    self.metrics
                        .builds
                        .with_label_values(&[k.issuer_id(), label])
                        .inc();
                    self.record(&r);
                    for (kind, _) in &r.filter_failures {
                        let label = if label == "full" {
                            "full_filter"
                        } else {
                            "delta_filter"
                        };
                        self.metrics
                            .failures
                            .with_label_values(&[kind.issuer_id(), label])
                            .inc();
                    }
                    report.seq = report.seq.max(r.seq);
                    report.crls.extend(r.crls);
                    report.filter_failures.extend(r.filter_failures);
                }
                Err(e) => {
                    self.metrics
                        .failures
                        .with_label_values(&[k.issuer_id(), label])
                        .inc();
                    tracing::error!(issuer = k.issuer_id(), kind = label, error = %e, "CRL build failed");
                    failed.push((k.issuer_id(), e));
                }
            }
        }
        let catalog = self.catalog.clone();
        match tokio::task::spawn_blocking(move || catalog.rescan(false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "CRL catalog rescan failed"),
            Err(_) => tracing::warn!("CRL catalog rescan task failed"),
        }
        if failed.is_empty() {
            return Ok(report);
        }
        if failed.len() == 1 && kinds.len() == 1 {
            return Err(failed.remove(0).1);
        }
        let issuers = failed.iter().map(|(i, _)| *i).collect();
        Err(Error::Failed {
            issuers,
            first: Box::new(failed.remove(0).1),
        })
    }

    fn record(&self, r: &BuildReport) {
        for c in &r.crls {
            let crl = match c.name {
                CrlName::Full => "full",
                CrlName::Delta => "delta",
                CrlName::Partition(_) => "partition",
                CrlName::FullFilter => "full_filter",
                CrlName::DeltaFilter => "delta_filter",
            };
            let issuer = c.kind.issuer_id();
            self.metrics
                .seconds
                .with_label_values(&[issuer, crl])
                .observe(c.elapsed.as_secs_f64());
            if crl != "partition" {
                self.metrics
                    .entries
                    .with_label_values(&[issuer, crl])
                    .set(c.entries as i64);
                self.metrics
                    .number
                    .with_label_values(&[issuer, crl])
                    .set(c.number as i64);
                let validity = if matches!(crl, "full" | "full_filter") {
                    self.builder.config().full_validity
                } else {
                    self.builder.config().delta_validity
                };
                self.metrics
                    .next_update
                    .with_label_values(&[issuer, crl])
                    .set(UnixTime::now().0 as f64 + validity.as_secs_f64());
            }
        }
    }

    /// Runs the schedule until `stop` resolves: a full build at start when an
    /// issuer has none (or its last is older than `full_every`), then deltas
    /// every `delta_every` and full builds every `full_every`.
    pub async fn run_schedule(
        self: Arc<Self>,
        schedule: Schedule,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let kinds = self.kinds();
        let now = UnixTime::now().0;
        let out = self.builder.config().out_dir.clone();
        // Periods outside [1 s, 10 years] are clamped: a zero period would
        // spin, an enormous one would overflow the clock.
        let clamp = |d: Duration| {
            d.clamp(
                Duration::from_secs(1),
                Duration::from_secs(10 * 365 * 86_400),
            )
        };
        let (full_every, delta_every, rescan_every) = (
            clamp(schedule.full_every),
            clamp(schedule.delta_every),
            clamp(schedule.rescan_every),
        );
        // A failed full build is tried again soon, not a day later.
        let retry = Duration::from_secs(60).min(full_every);
        // Seconds since each issuer's last full CRL (None: never built).
        let age = |k: CertKind| {
            read_issuer_state(&out, k)
                .ok()
                .and_then(|s| s.base)
                .map(|b| (now - b.this_update.0).max(0) as u64)
        };
        let overdue: Vec<CertKind> = kinds
            .iter()
            .copied()
            .filter(|k| age(*k).is_none_or(|a| a >= full_every.as_secs()))
            .collect();
        let mut next_full =
            if overdue.is_empty() || self.build(BuildKind::Full, &overdue).await.is_ok() {
                let oldest = kinds.iter().filter_map(|k| age(*k)).max().unwrap_or(0);
                Instant::now() + full_every.saturating_sub(Duration::from_secs(oldest))
            } else {
                Instant::now() + retry
            };
        let mut next_delta = Instant::now() + delta_every;
        let mut next_scan = Instant::now() + rescan_every;
        loop {
            let wake = next_full.min(next_delta).min(next_scan);
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            let t = Instant::now();
            if t >= next_full {
                let ok = self.build(BuildKind::Full, &kinds).await.is_ok();
                next_full = Instant::now() + if ok { full_every } else { retry };
                next_delta = Instant::now() + delta_every;
            } else if t >= next_delta {
                // Failures are logged and counted; the next delta comes at its time.
                let _ = self.build(BuildKind::Delta, &kinds).await;
                next_delta = Instant::now() + delta_every;
            }
            if t >= next_scan {
                let catalog = self.catalog.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || catalog.rescan(false)).await
                {
                    tracing::warn!(error = %e, "CRL catalog rescan failed");
                }
                next_scan = Instant::now() + rescan_every;
            }
        }
    }
}
