//! The `ocsp` role: a status index kept current from the registry's change
//! feed (through `shikko-follow`: the role is a [`StatusSink`]), the
//! responder answering from it, and metrics.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry};
use shikko_core::{CertKind, ChangeRecord, Municipality, StatusChange, UnixTime};
use shikko_follow::{FollowError, Readiness, SnapshotContent, StatusBatch, StatusSink};

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
    /// Certificates in the index, by issuer.
    pub certificates: IntGaugeVec,
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
            certificates: IntGaugeVec::new(
                Opts::new(
                    "shikko_ocsp_index_certificates",
                    "Certificates in the OCSP status index by issuer",
                ),
                &["issuer"],
            )?,
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.signing_seconds.clone()))?;
        registry.register(Box::new(m.certificates.clone()))?;
        Ok(m)
    }
}

/// The ocsp role.
#[derive(Debug)]
pub struct OcspRole {
    /// Where the index stands with the registry: answers are tryLater until
    /// it has caught up once, and again once the registry has been out of
    /// reach longer than `max_stale`.
    readiness: Arc<Readiness>,
    index: Arc<StatusIndex>,
    responder: Arc<Responder>,
    metrics: OcspMetrics,
    /// The stale-but-valid window (seconds).
    max_stale: std::sync::atomic::AtomicU64,
    /// The permits every signature takes, over HTTP and gRPC alike.
    signing: std::sync::OnceLock<Arc<tokio::sync::Semaphore>>,
}

/// Answers signed at once when nothing else is configured (`[ocsp] max_signing`'s default).
pub const DEFAULT_MAX_SIGNING: usize = 64;

impl OcspRole {
    /// The role over `responder` (which answers from `index`), answering as
    /// `readiness` allows; metrics go to `registry`.
    pub fn new(
        index: Arc<StatusIndex>,
        responder: Arc<Responder>,
        registry: &Registry,
        readiness: Arc<Readiness>,
    ) -> prometheus::Result<Arc<OcspRole>> {
        Ok(Arc::new(OcspRole {
            readiness,
            index,
            responder,
            metrics: OcspMetrics::new(registry)?,
            max_stale: std::sync::atomic::AtomicU64::new(u64::MAX),
            signing: std::sync::OnceLock::new(),
        }))
    }

    /// Sets how many answers may be signed at once, over HTTP and gRPC
    /// together; only the first call counts (returns whether it was this one).
    pub fn limit_signing(&self, max: usize) -> bool {
        self.signing
            .set(Arc::new(tokio::sync::Semaphore::new(max.max(1))))
            .is_ok()
    }

    /// The permits every signature takes: a flood of misses (nonces,
    /// uncached serials) on either protocol cannot take more than these.
    pub fn signing_permits(&self) -> Arc<tokio::sync::Semaphore> {
        self.signing
            .get_or_init(|| Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_SIGNING)))
            .clone()
    }

    /// How long the role keeps answering from its index once the registry is
    /// out of reach (the stale-but-valid window); beyond it, tryLater.
    pub fn set_max_stale(&self, window: Duration) {
        self.max_stale
            .store(window.as_secs(), std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the index is older than the stale-but-valid window allows:
    /// answers are then tryLater (no status vouched for from data that old).
    pub fn too_stale(&self, now: UnixTime) -> bool {
        let window = Duration::from_secs(self.max_stale.load(std::sync::atomic::Ordering::SeqCst));
        self.readiness.lost_since().is_some() && self.readiness.too_stale(now, window)
    }

    /// Whether answers come from an index that has caught up with the registry.
    pub fn is_ready(&self) -> bool {
        self.readiness.caught_up_once()
    }

    /// Where the index stands with the registry.
    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.readiness
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
    /// the certificates they changed.
    pub fn apply(&self, records: &[ChangeRecord]) {
        let changed = self.index.apply(records);
        self.responder.invalidate(&changed);
        if !changed.is_empty() {
            for kind in CertKind::ALL {
                self.metrics
                    .certificates
                    .with_label_values(&[kind.issuer_id()])
                    .set(self.index.len(kind) as i64);
            }
        }
    }
}

/// The role follows the registry's status changes into its index.
impl StatusSink for OcspRole {
    fn position(&self) -> u64 {
        self.index.seq()
    }

    fn apply(&self, batch: StatusBatch) -> Result<u64, FollowError> {
        OcspRole::apply(self, &batch.records);
        Ok(self.index.seq())
    }

    /// Every certificate ("good" and "unknown" differ only by being
    /// issued), as an image of the index: read back in seconds.
    fn snapshot_content(&self) -> SnapshotContent {
        SnapshotContent::StatusImage
    }

    fn load_image(&self, image: Vec<u8>) -> Result<(), FollowError> {
        self.index
            .read_image(&image)
            .map(drop)
            .map_err(FollowError::sink)
    }

    /// The index is not cleared: the image replaces it whole. The role
    /// answers tryLater meanwhile (the follower says it is catching up).
    fn begin_snapshot(&self) -> Result<(), FollowError> {
        self.index.set_seq(0);
        Ok(())
    }

    fn load_snapshot(
        &self,
        _municipalities: Vec<Municipality>,
        changes: Vec<StatusChange>,
    ) -> Result<(), FollowError> {
        self.index.load(&changes);
        Ok(())
    }

    fn end_snapshot(&self, seq: u64) -> Result<u64, FollowError> {
        // An image carries its own sequence number: it must be the snapshot's.
        let loaded = self.index.seq();
        if loaded != 0 && loaded != seq {
            return Err(FollowError::Sink(format!(
                "the status image is at {loaded}, the snapshot at {seq}"
            )));
        }
        self.index.set_seq(seq);
        // Answers cached while loading (tryLater is not cached, but be sure).
        self.responder.clear_cache();
        for kind in CertKind::ALL {
            self.metrics
                .certificates
                .with_label_values(&[kind.issuer_id()])
                .set(self.index.len(kind) as i64);
        }
        Ok(seq)
    }
}
