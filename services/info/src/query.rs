//! Queries: the latest 4 information of the holder of a signing
//! certificate (card or smartphone), keyed by the serial the bank holds and
//! answered about the person: the serial's holder and their current
//! certificate of the same kind, however it was replaced.
//!
//! In order: a serial the registry does not know as a signing certificate
//! of that issuer is `UnknownSerial`; a holder whose consent to the provider
//! is not in force gets `NoConsent` (nothing else is revealed, not even a
//! death); then [`shikko_core::person::info_outcome`]: deceased, emigrated,
//! `NoNewCertificate` (no good certificate of that kind now), `Unchanged`
//! (the serial asked about is the current one), `Changed` (a newer one and a
//! consented item changed: the items and its serial, billable) or `Renewed`
//! (a newer one, nothing consented changed: its serial, not billable).

use std::time::Instant;

use shikko_core::person::{CurrentError, current_of, info_outcome};
use shikko_core::{CertKind, InfoOutcome, ProviderId, Serial, UnixTime};

use shikko_store::Store;

use crate::audit::{AuditEntry, Billing};
use crate::consent::consent_of;
use crate::error::InfoError;
use crate::operators::Operator;
use crate::service::{InfoService, billing_day};

/// Most serials in one batch call.
pub const MAX_BATCH: usize = 20_000;

/// The answer for one signing serial of `kind` (card or smartphone), read
/// from the store (no audit, no billing): about the serial's holder and
/// their current certificate of that kind ([`shikko_core::person`]).
pub fn resolve(
    store: &Store,
    provider: &ProviderId,
    kind: CertKind,
    serial: &Serial,
    now: UnixTime,
) -> Result<InfoOutcome, InfoError> {
    Ok(resolve_holder(store, provider, kind, serial, now)?.0)
}

/// [`resolve`], with the holder the serial is theirs (when it is known).
pub(crate) fn resolve_holder(
    store: &Store,
    provider: &ProviderId,
    kind: CertKind,
    serial: &Serial,
    now: UnixTime,
) -> Result<(InfoOutcome, Option<shikko_core::HolderId>), InfoError> {
    if !kind.is_signing() {
        return Ok((InfoOutcome::UnknownSerial, None));
    }
    let cur = match current_of(store, kind, serial, now) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok((InfoOutcome::UnknownSerial, None)),
        Err(CurrentError::View(e)) => return Err(e.into()),
        Err(CurrentError::MissingHolder) => {
            return Err(InfoError::Corrupt("a certificate names a missing holder"));
        }
    };
    let holder = Some(cur.holder.id.clone());
    let consent = consent_of(store, &cur.holder.id, provider)?;
    let Some(consent) = consent.filter(|c| c.in_force(now)) else {
        return Ok((InfoOutcome::NoConsent, holder));
    };
    Ok((info_outcome(&cur, consent.items), holder))
}

/// How an answer names its serial in the audit log: the hex serial for a
/// card signing certificate (as always), `phone-sign:HEX` for a smartphone
/// one (the two issuers' serials may coincide).
pub(crate) fn audit_subject(kind: CertKind, s: &Serial) -> String {
    match kind {
        CertKind::CardSigning => s.to_hex(),
        other => format!("{}:{}", other.issuer_id(), s.to_hex()),
    }
}

impl InfoService {
    /// Answers `serials` for `provider`, audits every answer and counts the
    /// billable ones, durably, before returning.
    async fn answer(
        &self,
        op: &Operator,
        provider: &ProviderId,
        kind: CertKind,
        serials: Vec<Serial>,
        action: &'static str,
    ) -> Result<Vec<InfoOutcome>, InfoError> {
        let now = UnixTime::now();
        let outcomes = if serials.len() <= 4 {
            serials
                .iter()
                .map(|s| resolve_holder(&self.store, provider, kind, s, now))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            // Thousands of point reads: off the async workers.
            let store = self.store.clone();
            let provider = provider.clone();
            let serials2 = serials.clone();
            tokio::task::spawn_blocking(move || {
                serials2
                    .iter()
                    .map(|s| resolve_holder(&store, &provider, kind, s, now))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| InfoError::Internal(format!("query task: {e}")))??
        };
        let mut entries = Vec::with_capacity(serials.len());
        let mut billable = 0u64;
        let (outcomes, holders): (Vec<InfoOutcome>, Vec<_>) = outcomes.into_iter().unzip();
        for ((s, o), holder) in serials.iter().zip(&outcomes).zip(holders) {
            billable += u64::from(o.billable());
            entries.push(AuditEntry {
                actor: op.id.as_str().into(),
                action,
                provider: provider.as_str().into(),
                subject: audit_subject(kind, s),
                outcome: o.name().into(),
                holder,
            });
        }
        let billing = if billable > 0 {
            vec![(
                Billing {
                    day: billing_day(now),
                    operator: op.id.as_str().into(),
                    provider: provider.as_str().into(),
                },
                billable,
            )]
        } else {
            Vec::new()
        };
        let t = Instant::now();
        self.audit.commit(entries, billing, Vec::new()).await?;
        self.metrics.audit_commit.observe(t.elapsed().as_secs_f64());
        let kind = if action == "query" { "single" } else { "batch" };
        for o in &outcomes {
            self.metrics
                .answers
                .with_label_values(&[kind, o.name()])
                .inc();
        }
        if billable > 0 {
            self.metrics
                .provisions
                .with_label_values(&[op.id.as_str()])
                .inc_by(billable);
        }
        Ok(outcomes)
    }

    /// One serial of `kind` (card or smartphone signing). No consent in
    /// force: `PermissionDenied` (audited).
    pub async fn query(
        &self,
        op: &Operator,
        provider: &ProviderId,
        kind: CertKind,
        serial: Serial,
    ) -> Result<InfoOutcome, InfoError> {
        let t = Instant::now();
        self.admit(op, provider, 1, "query").await?;
        let mut out = self
            .answer(op, provider, kind, vec![serial], "query")
            .await?;
        let outcome = out
            .pop()
            .ok_or_else(|| InfoError::Internal("no answer".into()))?;
        self.metrics
            .query_seconds
            .with_label_values(&["single"])
            .observe(t.elapsed().as_secs_f64());
        if outcome == InfoOutcome::NoConsent {
            self.metrics
                .refusals
                .with_label_values(&["no_consent"])
                .inc();
            return Err(InfoError::PermissionDenied(
                "no consent of this holder to this provider is in force".into(),
            ));
        }
        Ok(outcome)
    }

    /// Many serials of `kind`, answered per serial (`NoConsent` is an
    /// answer here).
    pub async fn query_batch(
        &self,
        op: &Operator,
        provider: &ProviderId,
        kind: CertKind,
        serials: Vec<Serial>,
    ) -> Result<Vec<InfoOutcome>, InfoError> {
        let t = Instant::now();
        if serials.len() > MAX_BATCH {
            return Err(self
                .refuse(
                    op.id.as_str(),
                    "query_batch",
                    provider.as_str(),
                    "",
                    InfoError::Invalid(format!(
                        "{} serials in one batch; at most {MAX_BATCH}",
                        serials.len()
                    )),
                )
                .await);
        }
        self.admit(op, provider, serials.len(), "query_batch")
            .await?;
        let out = self
            .answer(op, provider, kind, serials, "query_batch")
            .await?;
        self.metrics
            .query_seconds
            .with_label_values(&["batch"])
            .observe(t.elapsed().as_secs_f64());
        Ok(out)
    }
}
