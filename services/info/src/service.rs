//! The service object: the store, the audit writer, the operators, the
//! card signing CAs consents are checked against, rate limits and metrics.

use shikko_follow::Readiness;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};
use shikko_core::UnixTime;
use shikko_store::Store;
use x509_cert::Certificate;

use crate::audit::{AuditEntry, AuditLog};
use crate::error::InfoError;
use crate::operators::{Operator, RateBucket};

/// Metrics of the service (no personal data, no serials in labels).
#[derive(Clone)]
pub struct InfoMetrics {
    /// `shikko_info_answers_total{kind, outcome}`: answers per outcome (kind single or batch).
    pub answers: IntCounterVec,
    /// `shikko_info_refusals_total{reason}`.
    pub refusals: IntCounterVec,
    /// `shikko_info_provisions_total{operator}`: billable answers.
    pub provisions: IntCounterVec,
    /// `shikko_info_consents_total{action}`.
    pub consents: IntCounterVec,
    /// `shikko_info_query_seconds{kind}`: from an authenticated call to a durable audit.
    pub query_seconds: prometheus::HistogramVec,
    /// `shikko_info_audit_commit_seconds`.
    pub audit_commit: Histogram,
    /// `shikko_info_unaudited_refusals_total{reason}`: calls refused before
    /// any operator is known (no certificate, or one no operator
    /// registered), counted instead of audited.
    pub unaudited: IntCounterVec,
}

impl InfoMetrics {
    /// Registers the metrics.
    pub fn new(registry: &Registry) -> Result<InfoMetrics, prometheus::Error> {
        let answers = IntCounterVec::new(
            Opts::new(
                "shikko_info_answers_total",
                "4-information answers by outcome",
            ),
            &["kind", "outcome"],
        )?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "shikko_info_refusals_total",
                "refused 4-information calls by reason",
            ),
            &["reason"],
        )?;
        let provisions = IntCounterVec::new(
            Opts::new(
                "shikko_info_provisions_total",
                "billable 4-information provisions by operator",
            ),
            &["operator"],
        )?;
        let consents = IntCounterVec::new(
            Opts::new("shikko_info_consents_total", "consent changes by action"),
            &["action"],
        )?;
        let query_seconds = prometheus::HistogramVec::new(
            HistogramOpts::new(
                "shikko_info_query_seconds",
                "4-information query time, audit included",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["kind"],
        )?;
        let audit_commit = Histogram::with_opts(
            HistogramOpts::new(
                "shikko_info_audit_commit_seconds",
                "audit group commit time",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5,
            ]),
        )?;
        let unaudited = IntCounterVec::new(
            Opts::new(
                "shikko_info_unaudited_refusals_total",
                "calls refused before any operator was known (counted, not audited), by reason",
            ),
            &["reason"],
        )?;
        for c in [&answers, &refusals, &provisions, &consents, &unaudited] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(query_seconds.clone()))?;
        registry.register(Box::new(audit_commit.clone()))?;
        Ok(InfoMetrics {
            answers,
            refusals,
            provisions,
            consents,
            query_seconds,
            audit_commit,
            unaudited,
        })
    }
}

/// How often, at most, anonymous refusals are logged (with how many since).
const ANONYMOUS_LOG_EVERY_SECS: i64 = 10;

/// Locks serializing consent changes, by holder.
const CONSENT_LOCKS: usize = 256;

/// The latest-4-information service.
pub struct InfoService {
    pub(crate) store: Arc<Store>,
    pub(crate) audit: AuditLog,
    /// Operators by the SHA-256 (hex) of each of their client certificates.
    pub(crate) by_fingerprint: RwLock<HashMap<String, Arc<Operator>>>,
    pub(crate) buckets: Mutex<HashMap<String, RateBucket>>,
    /// Card signing CA certificates (every generation) consents are checked against.
    pub(crate) signing_cas: Vec<Certificate>,
    /// Smartphone signing CA certificates: consents signed on a phone.
    pub(crate) phone_signing_cas: Vec<Certificate>,
    /// The consent challenges this service issues and checks.
    pub(crate) challenges: crate::challenge::Challenges,
    /// The page tokens of `Expiring`.
    pub(crate) page_tokens: crate::expiring::PageTokens,
    /// The keys of the user-authentication link's pseudonyms.
    pub(crate) link_keys: RwLock<Arc<crate::link::LinkKeys>>,
    /// Serializes rotations and retirements of the link key.
    pub(crate) link_admin: tokio::sync::Mutex<()>,
    /// Serializes the consent changes of one holder (by hash of the holder
    /// id into these locks) so that reading the current consent and replacing
    /// it cannot interleave; different holders proceed in parallel.
    consent_locks: Vec<Arc<tokio::sync::Mutex<()>>>,
    pub(crate) metrics: InfoMetrics,
    /// Whether the store is current: operator calls are refused
    /// (UNAVAILABLE) while a replica catches up with the registry or has
    /// lost it, rather than answered from old data.
    readiness: Arc<Readiness>,
    /// When anonymous refusals were last logged (Unix seconds), and how many
    /// since.
    anonymous_logged: std::sync::atomic::AtomicI64,
    anonymous_since: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for InfoService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfoService").finish_non_exhaustive()
    }
}

impl InfoService {
    /// The service over `store` (the registry's), checking consents against
    /// the card signing CA certificates `signing_cas` (DER).
    pub fn new(
        store: Arc<Store>,
        signing_cas: &[Vec<u8>],
        metrics: InfoMetrics,
    ) -> Result<InfoService, InfoError> {
        use der::Decode;
        let signing_cas = signing_cas
            .iter()
            .map(|d| Certificate::from_der(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| InfoError::Invalid(format!("a signing CA certificate: {e}")))?;
        let audit = AuditLog::start(store.clone())?;
        let challenges = crate::challenge::Challenges::open(&store)?;
        let page_tokens = crate::expiring::PageTokens::open(&store)?;
        let link_keys = RwLock::new(Arc::new(crate::link::LinkKeys::open(&store)?));
        let svc = InfoService {
            store,
            audit,
            by_fingerprint: RwLock::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            signing_cas,
            phone_signing_cas: Vec::new(),
            challenges,
            page_tokens,
            link_keys,
            link_admin: tokio::sync::Mutex::new(()),
            consent_locks: (0..CONSENT_LOCKS)
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
            metrics,
            readiness: Readiness::always_current(),
            anonymous_logged: std::sync::atomic::AtomicI64::new(0),
            anonymous_since: std::sync::atomic::AtomicU64::new(0),
        };
        svc.load_operators()?;
        crate::expiring::build_provider_index(&svc.store)?;
        Ok(svc)
    }

    /// The lock of a holder's consent changes (owned: it goes with the
    /// audit job that writes the change, [`crate::audit::AuditLog::commit_holding`]).
    pub(crate) async fn consent_lock(
        &self,
        holder: &shikko_core::HolderId,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        holder.hash(&mut h);
        self.consent_locks[(h.finish() % CONSENT_LOCKS as u64) as usize]
            .clone()
            .lock_owned()
            .await
    }

    /// Also accepts consents signed with smartphone signing certificates of
    /// these CAs (DER; every generation).
    pub fn with_phone_signing_cas(mut self, cas: &[Vec<u8>]) -> Result<InfoService, InfoError> {
        use der::Decode;
        self.phone_signing_cas = cas
            .iter()
            .map(|d| Certificate::from_der(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| InfoError::Invalid(format!("a phone signing CA certificate: {e}")))?;
        Ok(self)
    }

    /// Consent challenges valid for `secs` (default
    /// [`crate::challenge::DEFAULT_CHALLENGE_SECS`], at most
    /// [`crate::challenge::MAX_CHALLENGE_SECS`]).
    pub fn with_challenge_secs(mut self, secs: i64) -> InfoService {
        self.challenges.set_ttl(secs);
        self
    }

    /// The service answers as `readiness` says (a replica's follower sets
    /// it); without it, the store is the registry's own and always current.
    pub fn with_readiness(mut self, readiness: Arc<Readiness>) -> InfoService {
        self.readiness = readiness;
        self
    }

    /// Where the store stands with the registry.
    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.readiness
    }

    /// Whether operator calls are answered.
    pub fn is_ready(&self) -> bool {
        self.readiness.is_current()
    }

    /// The store the service reads holders and certificates from.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &InfoMetrics {
        &self.metrics
    }

    /// Appends audit records (and nothing else), durably.
    pub(crate) async fn audit_only(&self, entries: Vec<AuditEntry>) -> Result<u64, InfoError> {
        let t = std::time::Instant::now();
        let r = self.audit.commit(entries, Vec::new(), Vec::new()).await;
        self.metrics.audit_commit.observe(t.elapsed().as_secs_f64());
        r
    }

    /// Records a refusal in the audit log and the metrics, and returns the error.
    pub(crate) async fn refuse(
        &self,
        actor: &str,
        action: &'static str,
        provider: &str,
        subject: &str,
        err: InfoError,
    ) -> InfoError {
        self.metrics.refusals.with_label_values(&[err.code()]).inc();
        let entry = AuditEntry {
            actor: actor.to_string(),
            action,
            provider: provider.to_string(),
            subject: subject.to_string(),
            outcome: format!("refused:{}", err.code()),
        };
        if let Err(e) = self.audit_only(vec![entry]).await {
            // The refusal stands; the failure to audit it is itself an error.
            return e;
        }
        err
    }

    /// A call refused before any operator is known: no client certificate,
    /// or one no operator registered. Counted and logged (at most once every
    /// 10 s, with the number since), never audited: a flood of anonymous
    /// calls must not cost a synced audit record each, nor bury the records
    /// of operators' calls. Refusals of registered operators (revoked or
    /// expired certificates, rate limits, consents) stay audited.
    pub(crate) fn refuse_anonymous(
        &self,
        action: &'static str,
        reason: &'static str,
        fingerprint: &str,
        err: InfoError,
    ) -> InfoError {
        self.metrics.refusals.with_label_values(&[err.code()]).inc();
        self.metrics.unaudited.with_label_values(&[reason]).inc();
        let now = UnixTime::now().0;
        let last = self
            .anonymous_logged
            .load(std::sync::atomic::Ordering::Relaxed);
        let since = self
            .anonymous_since
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if now - last >= ANONYMOUS_LOG_EVERY_SECS
            && self
                .anonymous_logged
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
        {
            self.anonymous_since
                .fetch_sub(since, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                action,
                reason,
                certificate = fingerprint,
                refused_since_last_log = since,
                "4-information calls refused before any operator was known (counted, not audited)"
            );
        }
        err
    }

    /// The audit log's head: (last seq, its hash).
    pub fn audit_head(&self) -> Result<(u64, String), InfoError> {
        match self.store.info_last(crate::keys::AUDIT_PREFIX)? {
            Some((_, v)) => {
                let r: crate::audit::AuditRecord = serde_json::from_slice(&v)
                    .map_err(|_| InfoError::Corrupt("the last audit record does not decode"))?;
                Ok((r.seq, r.hash))
            }
            None => Ok((0, crate::audit::GENESIS.to_string())),
        }
    }
}

/// The billing day of a time: the date in Japan (JST, UTC+9), `YYYY-MM-DD`,
/// the days a provider is invoiced in.
pub fn billing_day(t: UnixTime) -> String {
    let (y, m, d, ..) = t.plus_secs(9 * 3600).to_civil();
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_days_are_japanese_days() {
        // 2026-05-10 14:59:59 UTC is 23:59:59 JST; a second later it is the 11th in Japan.
        let t = UnixTime(UnixTime::from_civil(2026, 5, 10).0 + 14 * 3600 + 59 * 60 + 59);
        assert_eq!(billing_day(t), "2026-05-10");
        assert_eq!(billing_day(t.plus_secs(1)), "2026-05-11");
    }
}
