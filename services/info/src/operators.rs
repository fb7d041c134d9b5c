//! Operators (platform operators) and the service providers (banks) they act
//! for, registered by an administrator; authentication of a call by its TLS
//! client certificate; per-operator rate limits; billing reports.

use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::digest;
use der::Decode;
use serde::{Deserialize, Serialize};
use shikko_core::{OperatorId, ProviderId, UnixTime};
use x509_cert::Certificate;

use crate::audit::AuditEntry;
use crate::error::InfoError;
use crate::keys;
use crate::service::InfoService;

/// Default sustained rate: serials per second per operator.
pub const DEFAULT_RATE_PER_SEC: u32 = 20_000;
/// Default burst: serials at once (a 10,000-serial batch fits).
pub const DEFAULT_BURST: u32 = 40_000;

/// Most days one usage request may name (a year, leap or not).
pub const MAX_USAGE_DAYS: usize = 366;
const PROVIDER_CORRUPT: &str = "a provider record does not decode";
const OPERATOR_CORRUPT: &str = "an operator record does not decode";

/// What a service provider is registered as: what its operators may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// A bank (or broker): the 4-information service, with consents.
    #[default]
    Bank,
    /// A user-authentication verifier (利用者証明検証者, e.g. a hospital's
    /// eligibility system): the link service, pseudonyms, no 4 information.
    UserAuthVerifier,
}

/// A service provider (a bank, or a user-authentication verifier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// Its id.
    pub id: ProviderId,
    /// Its name.
    pub name: String,
    /// When it was registered.
    pub registered_at: UnixTime,
    /// Bank or user-authentication verifier (records written before: bank).
    #[serde(default)]
    pub kind: ProviderKind,
}

/// One client certificate of an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorCert {
    /// SHA-256 of the DER, hex.
    pub sha256: String,
    /// End of validity.
    pub not_after: UnixTime,
    /// When an administrator revoked it.
    pub revoked_at: Option<UnixTime>,
}

/// A platform operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// Its id: the CN of its client certificates.
    pub id: OperatorId,
    /// Its name.
    pub name: String,
    /// The providers it acts for.
    pub providers: Vec<ProviderId>,
    /// Its client certificates.
    pub certificates: Vec<OperatorCert>,
    /// Sustained serials per second.
    pub rate_per_sec: u32,
    /// Serials at once.
    pub burst: u32,
    /// When it was registered.
    pub registered_at: UnixTime,
}

impl Operator {
    /// Whether it acts for `provider`.
    pub fn acts_for(&self, provider: &ProviderId) -> bool {
        self.providers.contains(provider)
    }
}

/// A token bucket of serials.
#[derive(Debug)]
pub(crate) struct RateBucket {
    tokens: f64,
    at: Instant,
}

/// The SHA-256 (hex) of a certificate's DER.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, der))
}

fn not_after(der: &[u8]) -> Result<UnixTime, InfoError> {
    let cert = Certificate::from_der(der)
        .map_err(|e| InfoError::Invalid(format!("operator certificate: {e}")))?;
    let t = cert
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration();
    Ok(UnixTime(i64::try_from(t.as_secs()).unwrap_or(i64::MAX)))
}

fn admin_entry(action: &'static str, provider: &str, subject: &str) -> AuditEntry {
    AuditEntry {
        actor: "admin".into(),
        action,
        provider: provider.into(),
        subject: subject.into(),
        holder: None,
        outcome: "ok".into(),
    }
}

impl InfoService {
    pub(crate) fn load_operators(&self) -> Result<(), InfoError> {
        let mut map = self
            .by_fingerprint
            .write()
            .unwrap_or_else(|p| p.into_inner());
        map.clear();
        for (_, v) in
            self.store
                .info_scan(keys::OPERATOR_PREFIX, keys::OPERATOR_PREFIX, usize::MAX)?
        {
            let op: Operator = serde_json::from_slice(&v)
                .map_err(|_| InfoError::Corrupt("an operator record does not decode"))?;
            let op = Arc::new(op);
            for c in &op.certificates {
                map.insert(c.sha256.clone(), op.clone());
            }
        }
        Ok(())
    }

    /// A provider's record.
    pub fn provider(&self, id: &ProviderId) -> Result<Option<Provider>, InfoError> {
        keys::get(&self.store, &keys::provider(id.as_str()), PROVIDER_CORRUPT)
    }

    /// Every registered provider.
    pub fn providers(&self) -> Result<Vec<Provider>, InfoError> {
        keys::scan(&self.store, keys::PROVIDER_PREFIX, PROVIDER_CORRUPT)
    }

    /// Every registered operator.
    pub fn operators(&self) -> Result<Vec<Operator>, InfoError> {
        keys::scan(&self.store, keys::OPERATOR_PREFIX, OPERATOR_CORRUPT)
    }

    /// An operator's record.
    pub fn operator(&self, id: &OperatorId) -> Result<Option<Operator>, InfoError> {
        keys::get(&self.store, &keys::operator(id.as_str()), OPERATOR_CORRUPT)
    }

    /// Registers a bank (administrator).
    pub async fn register_provider(&self, id: ProviderId, name: &str) -> Result<(), InfoError> {
        self.register_provider_of(id, name, ProviderKind::Bank)
            .await
    }

    /// Registers a service provider of `kind` (administrator).
    pub async fn register_provider_of(
        &self,
        id: ProviderId,
        name: &str,
        kind: ProviderKind,
    ) -> Result<(), InfoError> {
        if self.provider(&id)?.is_some() {
            return Err(InfoError::AlreadyExists(format!("provider {id}")));
        }
        let p = Provider {
            id: id.clone(),
            name: name.to_string(),
            registered_at: UnixTime::now(),
            kind,
        };
        let v = keys::encode(&p)?;
        self.audit
            .commit(
                vec![admin_entry("provider.register", id.as_str(), id.as_str())],
                Vec::new(),
                vec![(keys::provider(id.as_str()), v)],
            )
            .await?;
        Ok(())
    }

    /// Registers an operator with its first client certificate (DER), acting
    /// for `providers` (administrator). The certificate's CN must be the id.
    pub async fn register_operator(
        &self,
        id: OperatorId,
        name: &str,
        providers: Vec<ProviderId>,
        cert_der: &[u8],
    ) -> Result<Operator, InfoError> {
        if self.operator(&id)?.is_some() {
            return Err(InfoError::AlreadyExists(format!("operator {id}")));
        }
        for p in &providers {
            if self.provider(p)?.is_none() {
                return Err(InfoError::NotFound(format!("provider {p}")));
            }
        }
        let op = Operator {
            id: id.clone(),
            name: name.to_string(),
            providers,
            certificates: Vec::new(),
            rate_per_sec: DEFAULT_RATE_PER_SEC,
            burst: DEFAULT_BURST,
            registered_at: UnixTime::now(),
        };
        self.put_operator_with_cert(op, cert_der, "operator.register")
            .await
    }

    /// Adds a client certificate to an operator (e.g. before the old one expires).
    pub async fn add_operator_certificate(
        &self,
        id: &OperatorId,
        cert_der: &[u8],
    ) -> Result<Operator, InfoError> {
        let op = self
            .operator(id)?
            .ok_or_else(|| InfoError::NotFound(format!("operator {id}")))?;
        self.put_operator_with_cert(op, cert_der, "operator.add_certificate")
            .await
    }

    async fn put_operator_with_cert(
        &self,
        mut op: Operator,
        cert_der: &[u8],
        action: &'static str,
    ) -> Result<Operator, InfoError> {
        let fp = fingerprint(cert_der);
        if self.store.info_get(&keys::fingerprint(&fp))?.is_some() {
            return Err(InfoError::AlreadyExists(
                "this client certificate is registered already".into(),
            ));
        }
        let cn = shikko_pki::x509_cert::Certificate::from_der(cert_der)
            .ok()
            .and_then(|c| {
                c.tbs_certificate()
                    .subject()
                    .common_name()
                    .ok()
                    .flatten()
                    .map(|cn| cn.value().into_owned())
            });
        if cn.as_deref() != Some(op.id.as_str()) {
            return Err(InfoError::Invalid(format!(
                "the client certificate's CN must be the operator id {}",
                op.id
            )));
        }
        op.certificates.push(OperatorCert {
            sha256: fp.clone(),
            not_after: not_after(cert_der)?,
            revoked_at: None,
        });
        let v = keys::encode(&op)?;
        self.audit
            .commit(
                vec![admin_entry(action, "", op.id.as_str())],
                Vec::new(),
                vec![
                    (keys::operator(op.id.as_str()), v),
                    (keys::fingerprint(&fp), op.id.as_str().as_bytes().to_vec()),
                ],
            )
            .await?;
        self.load_operators()?;
        Ok(op)
    }

    /// Revokes one of an operator's client certificates (by its SHA-256):
    /// calls with it are refused from now on.
    pub async fn revoke_operator_certificate(&self, sha256_hex: &str) -> Result<(), InfoError> {
        let id = self
            .store
            .info_get(&keys::fingerprint(sha256_hex))?
            .ok_or_else(|| InfoError::NotFound("no operator has this certificate".into()))?;
        let id = OperatorId::new(String::from_utf8_lossy(&id).into_owned())?;
        let mut op = self
            .operator(&id)?
            .ok_or(InfoError::Corrupt("a certificate names a missing operator"))?;
        let now = UnixTime::now();
        for c in &mut op.certificates {
            if c.sha256 == sha256_hex && c.revoked_at.is_none() {
                c.revoked_at = Some(now);
            }
        }
        let v = keys::encode(&op)?;
        self.audit
            .commit(
                vec![admin_entry("operator.revoke_certificate", "", id.as_str())],
                Vec::new(),
                vec![(keys::operator(id.as_str()), v)],
            )
            .await?;
        self.load_operators()
    }

    /// Replaces the providers an operator acts for (administrator): each
    /// registered, at least one.
    pub async fn set_operator_providers(
        &self,
        id: &OperatorId,
        providers: Vec<ProviderId>,
    ) -> Result<Operator, InfoError> {
        if providers.is_empty() {
            return Err(InfoError::Invalid(
                "an operator acts for at least one provider".into(),
            ));
        }
        for p in &providers {
            if self.provider(p)?.is_none() {
                return Err(InfoError::NotFound(format!("provider {p}")));
            }
        }
        let mut op = self
            .operator(id)?
            .ok_or_else(|| InfoError::NotFound(format!("operator {id}")))?;
        op.providers = providers;
        op.providers.sort();
        op.providers.dedup();
        let names: Vec<&str> = op.providers.iter().map(ProviderId::as_str).collect();
        let v = keys::encode(&op)?;
        self.audit
            .commit(
                vec![admin_entry(
                    "operator.providers",
                    &names.join(","),
                    id.as_str(),
                )],
                Vec::new(),
                vec![(keys::operator(id.as_str()), v)],
            )
            .await?;
        self.load_operators()?;
        Ok(op)
    }

    /// Sets an operator's rate limit (serials per second, burst).
    pub async fn set_rate_limit(
        &self,
        id: &OperatorId,
        rate_per_sec: u32,
        burst: u32,
    ) -> Result<(), InfoError> {
        let mut op = self
            .operator(id)?
            .ok_or_else(|| InfoError::NotFound(format!("operator {id}")))?;
        op.rate_per_sec = rate_per_sec.max(1);
        op.burst = burst.max(1);
        let v = keys::encode(&op)?;
        self.audit
            .commit(
                vec![admin_entry("operator.rate_limit", "", id.as_str())],
                Vec::new(),
                vec![(keys::operator(id.as_str()), v)],
            )
            .await?;
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id.as_str());
        self.load_operators()
    }

    /// The operator a call comes from, by its TLS client certificate (DER,
    /// already chain-checked against the operator CA by TLS). No certificate,
    /// or one no operator registered: refused, counted and sampled in the
    /// log, not audited (no operator to audit; an anonymous flood must not
    /// cost a synced record each). A registered operator's revoked or
    /// expired certificate: refused and audited.
    pub async fn authenticate(
        &self,
        client_cert: Option<&[u8]>,
        action: &'static str,
    ) -> Result<Arc<Operator>, InfoError> {
        let Some(der) = client_cert else {
            return Err(self.refuse_anonymous(
                action,
                "no_certificate",
                "",
                InfoError::Unauthenticated("a client certificate is required"),
            ));
        };
        let fp = fingerprint(der);
        let op = self
            .by_fingerprint
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fp)
            .cloned();
        let Some(op) = op else {
            return Err(self.refuse_anonymous(
                action,
                "unregistered_certificate",
                &fp,
                InfoError::Unauthenticated(
                    "this client certificate is not a registered operator's",
                ),
            ));
        };
        let now = UnixTime::now();
        let cert = op.certificates.iter().find(|c| c.sha256 == fp);
        let why = match cert {
            Some(c) if c.revoked_at.is_some() => Some("this operator certificate is revoked"),
            Some(c) if c.not_after <= now => Some("this operator certificate has expired"),
            Some(_) => None,
            None => Some("this client certificate is not a registered operator's"),
        };
        if let Some(why) = why {
            return Err(self
                .refuse(
                    op.id.as_str(),
                    action,
                    "",
                    &fp,
                    InfoError::Unauthenticated(why),
                )
                .await);
        }
        Ok(op)
    }

    /// Checks that `op` acts for `provider` and may ask for `serials` more
    /// serials now; refusals are audited.
    pub(crate) async fn admit(
        &self,
        op: &Operator,
        provider: &ProviderId,
        serials: usize,
        action: &'static str,
    ) -> Result<(), InfoError> {
        match self.admission(op, provider, serials, action)? {
            None => Ok(()),
            Some(e) => Err(self
                .refuse(op.id.as_str(), action, provider.as_str(), "", e)
                .await),
        }
    }

    /// Why [`InfoService::admit`] refuses, if it does (`Err`: the store failed).
    fn admission(
        &self,
        op: &Operator,
        provider: &ProviderId,
        serials: usize,
        action: &'static str,
    ) -> Result<Option<InfoError>, InfoError> {
        if !self.is_ready() {
            return Ok(Some(InfoError::Unavailable(
                "the 4-information service is catching up with the registry; retry shortly",
            )));
        }
        if !op.acts_for(provider) {
            return Ok(Some(InfoError::PermissionDenied(format!(
                "operator {} does not act for provider {provider}",
                op.id
            ))));
        }
        // A bank's operator asks 4-information questions, a verifier's asks
        // the link service: never the other way round.
        let wants = if action.starts_with("link.") {
            ProviderKind::UserAuthVerifier
        } else {
            ProviderKind::Bank
        };
        let kind = self.provider(provider)?.map(|p| p.kind);
        if kind != Some(wants) {
            return Ok(Some(InfoError::PermissionDenied(format!(
                "provider {provider} is not registered as a {}",
                match wants {
                    ProviderKind::Bank => "bank (4-information service)",
                    ProviderKind::UserAuthVerifier => "user-authentication verifier (link service)",
                }
            ))));
        }
        let cost = serials as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets
            .entry(op.id.as_str().to_string())
            .or_insert_with(|| RateBucket {
                tokens: f64::from(op.burst),
                at: Instant::now(),
            });
        let now = Instant::now();
        let refill = now.duration_since(b.at).as_secs_f64() * f64::from(op.rate_per_sec);
        b.tokens = (b.tokens + refill).min(f64::from(op.burst));
        b.at = now;
        Ok(if cost > f64::from(op.burst) {
            Some(InfoError::RateLimited(format!(
                "{serials} serials in one call exceed operator {}'s burst of {}",
                op.id, op.burst
            )))
        } else if cost > b.tokens {
            let wait = (cost - b.tokens) / f64::from(op.rate_per_sec);
            Some(InfoError::RateLimited(format!(
                "operator {} is over its limit of {} serials/s; retry in {:.0} ms",
                op.id,
                op.rate_per_sec,
                (wait * 1000.0).ceil()
            )))
        } else {
            b.tokens -= cost;
            None
        })
    }

    /// Provisions per (provider, day) for an operator, for the given days
    /// (`YYYY-MM-DD`, at most [`MAX_USAGE_DAYS`], a day named twice read once);
    /// reads only that operator's rows.
    pub fn usage(
        &self,
        op: &OperatorId,
        days: &[String],
    ) -> Result<Vec<(String, String, u64)>, InfoError> {
        if days.len() > MAX_USAGE_DAYS {
            return Err(InfoError::Invalid(format!(
                "at most {MAX_USAGE_DAYS} days per request"
            )));
        }
        let mut out = Vec::new();
        let mut seen: Vec<&String> = Vec::with_capacity(days.len());
        for day in days {
            if day.len() != 10 || !day.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                return Err(InfoError::Invalid("days are YYYY-MM-DD".into()));
            }
            if seen.contains(&day) {
                continue;
            }
            seen.push(day);
            // Only this operator's rows of the day: `b/DAY/OPERATOR/PROVIDER`.
            let mut prefix = keys::billing_day(day);
            prefix.extend_from_slice(op.as_str().as_bytes());
            prefix.push(b'/');
            for (k, v) in self.store.info_scan(&prefix, &prefix, usize::MAX)? {
                let provider = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                out.push((day.clone(), provider, keys::decode_count(&v)));
            }
        }
        Ok(out)
    }
}
