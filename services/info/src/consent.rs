//! Recording and withdrawing consents. A consent is proven by the holder's
//! signature, made with their card signing certificate, over the
//! [`consent_statement`]; the certificate must come from a card signing CA,
//! be the registry's, and be valid when the holder signed.

use aws_lc_rs::digest;
use der::{Decode, Encode};
use shikko_core::consent::{challenge_is_well_formed, consent_expiry, consent_statement};
use shikko_core::{
    CertKind, CertStatus, Consent, ConsentState, HolderId, InfoItems, ProviderId, Serial, UnixTime,
};
use shikko_store::Store;
use x509_cert::Certificate;

use crate::audit::AuditEntry;
use crate::challenge::{Challenge, Challenges, Checked};
use crate::error::InfoError;
use crate::keys;
use crate::operators::Operator;
use crate::service::InfoService;

/// A consent as the operator submits it.
#[derive(Debug, Clone)]
pub struct ConsentRequest {
    /// The provider the holder consents to.
    pub provider: ProviderId,
    /// The items.
    pub items: InfoItems,
    /// The holder's card signing certificate (DER).
    pub signing_certificate: Vec<u8>,
    /// When the holder signed.
    pub granted_at: UnixTime,
    /// The challenge the service issued for this consent
    /// ([`InfoService::consent_challenge`]), carried in the statement.
    pub challenge: String,
    /// The signature over the statement.
    pub signature: Vec<u8>,
}

fn status_at(status: &CertStatus, t: UnixTime) -> bool {
    match status {
        CertStatus::Good => true,
        CertStatus::OnHold { since } => *since > t,
        CertStatus::Revoked { at, .. } => *at > t,
    }
}

/// The holder's latest consent to `provider` (in force or not).
pub fn consent_of(
    store: &Store,
    holder: &HolderId,
    provider: &ProviderId,
) -> Result<Option<Consent>, InfoError> {
    let Some(id) = store.info_get(&keys::holder_consent(holder.as_str(), provider.as_str()))?
    else {
        return Ok(None);
    };
    consent_by_id(store, &String::from_utf8_lossy(&id))
}

fn consent_by_id(store: &Store, id: &str) -> Result<Option<Consent>, InfoError> {
    keys::get(
        store,
        &keys::consent(id),
        "a consent record does not decode",
    )
}

impl InfoService {
    /// Checks a consent's proof; returns the holder, the signing serial and
    /// the challenge (not yet reserved: see [`Challenges::reserve`]).
    /// Cheapest first: the form, the challenge's MAC, one signature; the
    /// registry only for a statement the holder really signed.
    fn check_consent(
        &self,
        op: &Operator,
        req: &ConsentRequest,
        now: UnixTime,
    ) -> Result<(HolderId, CertKind, Serial, Checked), InfoError> {
        if req.items.is_empty() {
            return Err(InfoError::Invalid(
                "a consent covers at least one item".into(),
            ));
        }
        if !challenge_is_well_formed(&req.challenge) {
            return Err(InfoError::Invalid(
                "the consent carries no challenge: ask the service for one (ConsentChallenge) and have the holder sign a statement with it".into(),
            ));
        }
        let checked =
            self.challenges
                .check(&req.challenge, &op.id, &req.provider, req.granted_at, now)?;
        let cert = Certificate::from_der(&req.signing_certificate)
            .map_err(|_| InfoError::Invalid("the signing certificate is not DER X.509".into()))?;
        let kind = if self
            .signing_cas
            .iter()
            .any(|ca| shikko_pki::issued_by(&cert, ca))
        {
            CertKind::CardSigning
        } else if self
            .phone_signing_cas
            .iter()
            .any(|ca| shikko_pki::issued_by(&cert, ca))
        {
            CertKind::PhoneSigning
        } else {
            return Err(InfoError::PermissionDenied(
                "the signing certificate was not issued by a card or smartphone signing CA".into(),
            ));
        };
        let serial = Serial::from_be_bytes(cert.tbs_certificate().serial_number().as_bytes())?;
        // The signature first: a junk request costs one verification and
        // learns nothing of the registry (whether a serial exists, its status).
        let statement = consent_statement(
            &req.provider,
            req.items,
            &serial,
            req.granted_at,
            &req.challenge,
        );
        let spki = cert.tbs_certificate().subject_public_key_info();
        let alg = shikko_pki::signature_algorithm_for(spki);
        if !shikko_pki::verify_signature(spki, &alg, &statement, &req.signature) {
            return Err(InfoError::PermissionDenied(
                "the consent signature does not verify with the signing certificate".into(),
            ));
        }
        let record = self.store.cert(kind, &serial)?.ok_or_else(|| {
            InfoError::PermissionDenied(format!(
                "signing certificate {serial} is not in the registry"
            ))
        })?;
        if let Some(stored) = self.store.cert_der(kind, &serial)?
            && stored != req.signing_certificate
        {
            return Err(InfoError::PermissionDenied(format!(
                "signing certificate {serial} differs from the registry's"
            )));
        }
        if req.granted_at < record.not_before
            || req.granted_at >= record.not_after
            || !status_at(&record.status, req.granted_at)
        {
            return Err(InfoError::PermissionDenied(format!(
                "signing certificate {serial} was not valid when the consent was signed"
            )));
        }
        // And good now: a consent is not recorded on a certificate revoked
        // or on hold since (a lost card), nor expired.
        if now >= record.not_after || !status_at(&record.status, now) {
            return Err(InfoError::PermissionDenied(format!(
                "signing certificate {serial} is not good now (revoked, on hold or expired): ask the holder to sign with their current certificate"
            )));
        }
        // The DER must be canonical: what was checked is what is kept.
        if cert.to_der().ok().as_deref() != Some(req.signing_certificate.as_slice()) {
            return Err(InfoError::Invalid(
                "the signing certificate is not DER".into(),
            ));
        }
        Ok((record.holder, kind, serial, checked))
    }

    /// A challenge for a consent to `provider` that `op` will submit
    /// ([`InfoService::record_consent`]): single use, valid minutes.
    /// Rate-limited like any call; not audited (it discloses and changes
    /// nothing; the consent it is used for is).
    pub async fn consent_challenge(
        &self,
        op: &Operator,
        provider: &ProviderId,
    ) -> Result<Challenge, InfoError> {
        self.admit(op, provider, 1, "consent.challenge").await?;
        let now = UnixTime::now();
        self.challenges.prune(&self.store, now)?;
        let c = self.challenges.issue(&op.id, provider, now)?;
        self.metrics
            .consents
            .with_label_values(&["challenge"])
            .inc();
        Ok(c)
    }

    /// Records a consent submitted by `op`. A replayed signature returns the
    /// consent it made, changing nothing; a consent signed before the
    /// holder's latest decision for this provider is refused.
    pub async fn record_consent(
        &self,
        op: &Operator,
        req: ConsentRequest,
    ) -> Result<Consent, InfoError> {
        const ACTION: &str = "consent.record";
        self.admit(op, &req.provider, 1, ACTION).await?;
        let now = UnixTime::now();
        let id = hex::encode(digest::digest(&digest::SHA256, &req.signature));
        // The same consent sent again (a retry): the record it made, whatever
        // happened since (withdrawn stays withdrawn).
        if let Some(existing) = consent_by_id(&self.store, &id)?
            && existing.provider == req.provider
            && existing.items == req.items
            && existing.granted_at == req.granted_at
            && Serial::from_be_bytes(
                Certificate::from_der(&req.signing_certificate)
                    .map(|c| c.tbs_certificate().serial_number().as_bytes().to_vec())
                    .unwrap_or_default()
                    .as_slice(),
            )
            .ok()
                == Some(existing.signing_serial)
        {
            return Ok(existing);
        }
        let (holder, kind, serial, checked) = match self.check_consent(op, &req, now) {
            Ok(v) => v,
            Err(e) => {
                return Err(self
                    .refuse(op.id.as_str(), ACTION, req.provider.as_str(), &id, e)
                    .await);
            }
        };
        let in_use = match self.challenges.reserve(&self.store, &checked) {
            Ok(g) => g,
            Err(e) => {
                return Err(self
                    .refuse(op.id.as_str(), ACTION, req.provider.as_str(), &id, e)
                    .await);
            }
        };
        let guard = self.consent_lock(&holder).await;
        if let Some(existing) = consent_by_id(&self.store, &id)? {
            return Ok(existing);
        }
        let mut puts = vec![Challenges::used_marker(&checked)];
        if let Some(mut current) = consent_of(&self.store, &holder, &req.provider)? {
            let decided = match current.state {
                ConsentState::Active => current.granted_at,
                ConsentState::Withdrawn { at } | ConsentState::Replaced { at } => at,
            };
            if req.granted_at <= decided {
                let e = InfoError::PermissionDenied(
                    "the holder decided later for this provider: this consent is superseded".into(),
                );
                return Err(self
                    .refuse(op.id.as_str(), ACTION, req.provider.as_str(), &id, e)
                    .await);
            }
            if current.state == ConsentState::Active {
                current.state = ConsentState::Replaced { at: now };
                puts.push((keys::consent(&current.id), keys::encode(&current)?));
            }
        }
        let consent = Consent {
            signing_kind: kind,
            id: id.clone(),
            holder: holder.clone(),
            provider: req.provider.clone(),
            items: req.items,
            signing_serial: serial,
            granted_at: req.granted_at,
            expires_at: consent_expiry(req.granted_at),
            state: ConsentState::Active,
        };
        puts.push((keys::consent(&id), keys::encode(&consent)?));
        puts.push((
            keys::provider_holder(req.provider.as_str(), holder.as_str()),
            Vec::new(),
        ));
        puts.push((
            keys::holder_consent(holder.as_str(), req.provider.as_str()),
            id.as_bytes().to_vec(),
        ));
        // The lock and the challenge's reservation go with the job: held
        // until it is written, even if this call is cancelled meanwhile.
        self.audit
            .commit_holding(
                vec![AuditEntry {
                    actor: op.id.as_str().into(),
                    action: ACTION,
                    provider: req.provider.as_str().into(),
                    subject: id,
                    outcome: format!("recorded:{}", req.items),
                    holder: Some(holder.clone()),
                }],
                Vec::new(),
                puts,
                vec![Box::new(in_use), Box::new(guard)],
            )
            .await?;
        self.metrics.consents.with_label_values(&["record"]).inc();
        Ok(consent)
    }

    /// Withdraws the consent of the holder of signing certificate `serial`
    /// of `kind` (card or smartphone, any of theirs) to `provider`: nothing
    /// more is provided.
    pub async fn withdraw_consent(
        &self,
        op: &Operator,
        provider: &ProviderId,
        kind: CertKind,
        serial: &Serial,
    ) -> Result<Consent, InfoError> {
        const ACTION: &str = "consent.withdraw";
        self.admit(op, provider, 1, ACTION).await?;
        let subject = crate::query::audit_subject(kind, serial);
        let found = if kind.is_signing() {
            self.store.cert(kind, serial)?
        } else {
            None
        };
        let holder = match found {
            Some(c) => c.holder,
            None => {
                let e = InfoError::NotFound(format!("signing certificate {serial}"));
                return Err(self
                    .refuse(op.id.as_str(), ACTION, provider.as_str(), &subject, e)
                    .await);
            }
        };
        let guard = self.consent_lock(&holder).await;
        let current =
            consent_of(&self.store, &holder, provider)?.filter(|c| c.state == ConsentState::Active);
        let Some(mut consent) = current else {
            let e = InfoError::NotFound("no active consent of this holder to this provider".into());
            return Err(self
                .refuse(op.id.as_str(), ACTION, provider.as_str(), &subject, e)
                .await);
        };
        consent.state = ConsentState::Withdrawn {
            at: UnixTime::now(),
        };
        let v = keys::encode(&consent)?;
        self.audit
            .commit_holding(
                vec![AuditEntry {
                    actor: op.id.as_str().into(),
                    action: ACTION,
                    provider: provider.as_str().into(),
                    subject: consent.id.clone(),
                    outcome: "withdrawn".into(),
                    holder: Some(consent.holder.clone()),
                }],
                Vec::new(),
                vec![(keys::consent(&consent.id), v)],
                vec![Box::new(guard)],
            )
            .await?;
        self.metrics.consents.with_label_values(&["withdraw"]).inc();
        Ok(consent)
    }
}
