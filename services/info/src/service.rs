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
    /// `shikko_info_audit_signed_size`: records under the newest signed tree head.
    pub signed_size: prometheus::IntGauge,
    /// `shikko_info_audit_signed_timestamp_seconds`: when it was signed.
    pub signed_time: prometheus::IntGauge,
    /// `shikko_info_audit_head_conflict`: 1 while no head is signed because
    /// the log contradicts one signed before.
    pub head_conflict: prometheus::IntGauge,
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
        let signed_size = prometheus::IntGauge::new(
            "shikko_info_audit_signed_size",
            "audit records under the newest signed tree head",
        )?;
        let signed_time = prometheus::IntGauge::new(
            "shikko_info_audit_signed_timestamp_seconds",
            "when the newest tree head of the audit log was signed",
        )?;
        let head_conflict = prometheus::IntGauge::new(
            "shikko_info_audit_head_conflict",
            "1 while no tree head is signed because the audit log contradicts one signed before",
        )?;
        for g in [&signed_size, &signed_time, &head_conflict] {
            registry.register(Box::new(g.clone()))?;
        }
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
            signed_size,
            signed_time,
            head_conflict,
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
    /// Serializes changes of verifier records.
    pub(crate) verifier_lock: tokio::sync::Mutex<()>,
    /// Serializes usage reports (read, add, write).
    pub(crate) usage_lock: tokio::sync::Mutex<()>,
    /// The pseudonyms of holders in audit records.
    pub(crate) holder_pseudonyms: crate::audit::HolderPseudonyms,
    /// Signs the audit log's tree heads, with the audit key (none: no heads).
    heads: Option<crate::heads::HeadSigner>,
    /// A head is signed again, though the log did not grow, once this old (seconds).
    head_max_age_secs: i64,
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
        let holder_pseudonyms = crate::audit::HolderPseudonyms::open(&store)?;
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
            holder_pseudonyms,
            verifier_lock: tokio::sync::Mutex::new(()),
            usage_lock: tokio::sync::Mutex::new(()),
            heads: None,
            head_max_age_secs: crate::heads::DEFAULT_HEAD_SECS,
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

    /// Signs tree heads of the audit log with `key` (the audit key: a file
    /// outside the data directory), writing them to `heads_dir` if given,
    /// and signing again at least every `every_secs` seconds.
    pub fn with_audit_key(
        mut self,
        key: Arc<dyn shikko_pki::Signer>,
        heads_dir: Option<std::path::PathBuf>,
        every_secs: i64,
    ) -> Result<InfoService, InfoError> {
        let signer = crate::heads::HeadSigner::new(&self.store, key, heads_dir)?;
        self.metrics
            .head_conflict
            .set(i64::from(signer.conflict().is_some()));
        self.heads = Some(signer);
        self.head_max_age_secs = every_secs.max(1);
        Ok(self)
    }

    /// How often heads are signed when the log does not grow (seconds).
    pub fn head_every_secs(&self) -> i64 {
        self.head_max_age_secs
    }

    /// The audit key's public key (SubjectPublicKeyInfo, DER), if heads are signed.
    pub fn audit_public_key(&self) -> Option<&[u8]> {
        self.heads.as_ref().map(|h| h.public_key_der())
    }

    /// The newest signed tree head of the durable audit log (signed now if
    /// the log grew since the last one, or that one is older than the
    /// signing interval).
    pub fn signed_head(&self) -> Result<shikko_pki::tree_head::SignedTreeHead, InfoError> {
        let signer = self.heads.as_ref().ok_or_else(|| {
            InfoError::FailedPrecondition(
                "no audit key is configured: tree heads are not signed ([info] audit_key)".into(),
            )
        })?;
        let size = crate::audit::last_seq(&self.store)?;
        let r = signer.current(&self.store, size, self.head_max_age_secs);
        match &r {
            Ok(sth) => {
                self.metrics.signed_size.set(sth.head.size as i64);
                self.metrics.signed_time.set(sth.head.time.0);
            }
            Err(_) => self
                .metrics
                .head_conflict
                .set(i64::from(signer.conflict().is_some())),
        }
        r
    }

    /// The consistency proof of the log's first `old` records with its first `new`.
    pub fn audit_consistency(
        &self,
        old: u64,
        new: u64,
    ) -> Result<Vec<shikko_core::merkle::Hash>, InfoError> {
        let size = crate::audit::last_seq(&self.store)?;
        if old > new || new > size {
            return Err(InfoError::Invalid(format!(
                "no consistency proof from {old} to {new} records: the log holds {size}"
            )));
        }
        crate::tree::consistency(&self.store, old, new)
    }

    /// The first audit record still stored (1 unless records were pruned).
    pub fn audit_first_seq(&self) -> Result<u64, InfoError> {
        Ok(self
            .store
            .info_get(crate::keys::AUDIT_FIRST)?
            .map_or(1, |v| crate::keys::decode_count(&v).max(1)))
    }

    /// Deletes the audit records below `below` (administrator; audited):
    /// only under a signed head, and never the last record. The Merkle
    /// tree's nodes stay: heads, inclusion proofs of the records after and
    /// consistency proofs keep verifying, and an archive of the deleted
    /// records (`shikko audit archive`) verifies against a signed head.
    /// Returns how many were deleted and the first record still stored.
    pub async fn prune_audit(&self, below: u64) -> Result<(u64, u64), InfoError> {
        let sth = self.signed_head()?;
        if below > sth.head.size {
            return Err(InfoError::FailedPrecondition(format!(
                "records below {below} are not all under a signed head (the newest covers {}): only what a head vouches for is pruned",
                sth.head.size
            )));
        }
        let first = self.audit_first_seq()?;
        if below <= first {
            return Ok((0, first));
        }
        // The act first, durably; then the mark, then the records.
        self.audit_only(vec![AuditEntry {
            actor: "admin".into(),
            action: "audit.prune",
            provider: String::new(),
            subject: format!("below:{below}"),
            outcome: format!("head:{}", sth.head.size),
            holder: None,
        }])
        .await?;
        self.store.info_write(&[(
            crate::keys::AUDIT_FIRST.to_vec(),
            below.to_be_bytes().to_vec(),
        )])?;
        self.store
            .info_delete_range(&crate::keys::audit(first), &crate::keys::audit(below))?;
        Ok((below - first, below))
    }

    /// The record of sequence number `seq` (its stored JSON) and its
    /// inclusion proof in the tree of the first `size` records.
    pub fn audit_inclusion(
        &self,
        seq: u64,
        size: u64,
    ) -> Result<(String, Vec<shikko_core::merkle::Hash>), InfoError> {
        let durable = crate::audit::last_seq(&self.store)?;
        if seq == 0 || seq > size || size > durable {
            return Err(InfoError::Invalid(format!(
                "no record {seq} in a tree of {size} records: the log holds {durable}"
            )));
        }
        let record = match self.store.info_get(&crate::keys::audit(seq))? {
            Some(r) => r,
            None if seq < self.audit_first_seq()? => {
                return Err(InfoError::NotFound(format!(
                    "record {seq} was archived and pruned (its proof comes from the archive and a signed head)"
                )));
            }
            None => {
                return Err(InfoError::Corrupt(
                    "an audit record below the head is missing",
                ));
            }
        };
        let record = String::from_utf8(record)
            .map_err(|_| InfoError::Corrupt("an audit record is not UTF-8"))?;
        Ok((record, crate::tree::inclusion(&self.store, seq, size)?))
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
            holder: None,
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
        Ok(match crate::audit::last(&self.store)? {
            Some(r) => (r.seq, r.hash),
            None => (0, crate::audit::GENESIS.to_string()),
        })
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
