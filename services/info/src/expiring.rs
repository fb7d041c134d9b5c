//! Which consenting holders' signing certificates expire soon (issue 13,
//! item 4): for a bank's daily run, so that it can ask its customers to
//! renew before their certificate (and the bank's link to it) lapses. Per
//! holder with a consent in force to the provider: their current signing
//! certificate of the kind the consent was signed with (card or phone: a
//! bank does not learn a serial of the other kind) that expires within the
//! window. Serials,
//! issuers and notAfter only, never 4 information; every listed serial is
//! audited like an answer.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::SecureRandom;
use shikko_core::person::good_at;
use shikko_core::{CertKind, HolderId, ProviderId, Serial, UnixTime};

use crate::audit::AuditEntry;
use crate::consent::consent_of;
use crate::error::InfoError;
use crate::keys;
use crate::operators::Operator;
use crate::service::InfoService;

/// The widest window a call may ask for, in days (renewal opens three
/// months before expiry).
pub const MAX_WITHIN_DAYS: u32 = 120;
/// Most certificates in one page.
pub const MAX_PAGE: usize = 10_000;
/// Most consenting holders looked at in one call, whatever the page (a
/// page may be short: continue from its token).
const MAX_SCANNED: usize = 50_000;

/// A certificate that expires soon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    /// Card or smartphone signing.
    pub kind: CertKind,
    /// Its serial.
    pub serial: Serial,
    /// When it expires.
    pub not_after: UnixTime,
}

const TOKEN_KEY: &[u8] = b"k/page-token";

/// Page tokens: the holder a page ended at, encrypted (AES-256-GCM, the
/// operator and provider as associated data): a holder id is the
/// registry's key for a person and never leaves it.
pub(crate) struct PageTokens {
    key: LessSafeKey,
}

impl PageTokens {
    /// The tokens of `store` (their key made on first use).
    pub(crate) fn open(store: &shikko_store::Store) -> Result<PageTokens, InfoError> {
        let secret = keys::secret(store, TOKEN_KEY, "the page token key")?;
        let key = UnboundKey::new(&AES_256_GCM, &secret)
            .map_err(|_| InfoError::Internal("page token key".into()))?;
        Ok(PageTokens {
            key: LessSafeKey::new(key),
        })
    }

    fn aad(op: &Operator, provider: &ProviderId) -> Vec<u8> {
        format!("shikko expiring v1\0{}\0{}", op.id, provider).into_bytes()
    }

    /// The token that continues after `holder`.
    pub(crate) fn seal(
        &self,
        op: &Operator,
        provider: &ProviderId,
        holder: &HolderId,
    ) -> Result<String, InfoError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| InfoError::Internal("no randomness".into()))?;
        let mut data = holder.as_str().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(op, provider)),
                &mut data,
            )
            .map_err(|_| InfoError::Internal("sealing a page token".into()))?;
        let mut out = nonce.to_vec();
        out.extend(data);
        Ok(hex::encode(out))
    }

    /// The holder a token continues after; a token of another operator or
    /// provider, or a made-up one, is INVALID_ARGUMENT.
    pub(crate) fn open_token(
        &self,
        op: &Operator,
        provider: &ProviderId,
        token: &str,
    ) -> Result<HolderId, InfoError> {
        let bad = || InfoError::Invalid("page_token is not one this service gave you".into());
        let raw = hex::decode(token).map_err(|_| bad())?;
        if raw.len() <= NONCE_LEN {
            return Err(bad());
        }
        let (n, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| bad())?;
        let mut data = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(Self::aad(op, provider)), &mut data)
            .map_err(|_| bad())?;
        let id = std::str::from_utf8(plain).map_err(|_| bad())?;
        HolderId::new(id).map_err(|_| bad())
    }
}

/// Writes the provider index (`q/`) for consents recorded before it
/// existed, once.
pub(crate) fn build_provider_index(store: &shikko_store::Store) -> Result<(), InfoError> {
    if store.info_get(keys::PROVIDER_INDEX_BUILT)?.is_some() {
        return Ok(());
    }
    let mut start = keys::CONSENT_PREFIX.to_vec();
    loop {
        let page = store.info_scan(keys::CONSENT_PREFIX, &start, 10_000)?;
        let Some((last, _)) = page.last() else { break };
        let mut next = last.clone();
        next.push(0);
        let mut puts = Vec::with_capacity(page.len());
        for (_, v) in &page {
            let c: shikko_core::Consent = serde_json::from_slice(v)
                .map_err(|_| InfoError::Corrupt("a consent record does not decode"))?;
            puts.push((
                keys::provider_holder(c.provider.as_str(), c.holder.as_str()),
                Vec::new(),
            ));
        }
        store.info_write(&puts)?;
        start = next;
    }
    store.info_write(&[(keys::PROVIDER_INDEX_BUILT.to_vec(), Vec::new())])?;
    Ok(())
}

/// The certificate of `holder`'s that expires by `until`, of the kind their
/// consent to `provider` (in force) was signed with.
fn expiring_of(
    store: &shikko_store::Store,
    holder: &HolderId,
    provider: &ProviderId,
    now: UnixTime,
    until: UnixTime,
) -> Result<Option<Expiring>, InfoError> {
    let Some(consent) = consent_of(store, holder, provider)?.filter(|c| c.in_force(now)) else {
        return Ok(None);
    };
    let kind = consent.signing_kind;
    let Some(serial) = store.holder(holder)?.and_then(|h| h.live(kind)) else {
        return Ok(None);
    };
    Ok(store
        .cert(kind, &serial)?
        .filter(|c| good_at(c, now) && c.not_after <= until)
        .map(|c| Expiring {
            kind,
            serial,
            not_after: c.not_after,
        }))
}

impl InfoService {
    /// About `page` certificates (one more when a holder's card and phone
    /// certificates straddle the page) of holders consenting to `provider`
    /// that expire within `within_days` (from now), continuing after holder
    /// `token` (of the previous page; empty for the first); returns them
    /// and the token of the next page (`None`: the end). A page may be short, even
    /// empty, with a token: at most 50,000 consenting holders are looked
    /// at per call.
    pub async fn expiring(
        &self,
        op: &Operator,
        provider: &ProviderId,
        within_days: u32,
        page: usize,
        token: &str,
    ) -> Result<(Vec<Expiring>, Option<String>), InfoError> {
        const ACTION: &str = "expiring";
        let after = if token.is_empty() {
            None
        } else {
            match self.page_tokens.open_token(op, provider, token) {
                Ok(h) => Some(h),
                Err(e) => {
                    return Err(self
                        .refuse(op.id.as_str(), ACTION, provider.as_str(), "", e)
                        .await);
                }
            }
        };
        if !(1..=MAX_WITHIN_DAYS).contains(&within_days) {
            let e = InfoError::Invalid(format!("within_days must be 1 to {MAX_WITHIN_DAYS}"));
            return Err(self
                .refuse(op.id.as_str(), ACTION, provider.as_str(), "", e)
                .await);
        }
        // Never more than the operator's burst (a larger page could never
        // pass its rate limit).
        let page = page.clamp(1, MAX_PAGE.min(op.burst.max(1) as usize));
        // Charged like a batch of `page` serials; the holders looked at are
        // bounded by the page (ten per certificate asked for).
        self.admit(op, provider, page, ACTION).await?;
        let scan = (page * 10).clamp(100, MAX_SCANNED);
        let now = UnixTime::now();
        let until = now.plus_secs(i64::from(within_days) * 86_400);
        let store = self.store.clone();
        let prefix = keys::provider_holders(provider.as_str());
        let provider2 = provider.clone();
        let (found, next) = tokio::task::spawn_blocking(move || {
            let mut start = prefix.clone();
            if let Some(h) = &after {
                start = keys::provider_holder(provider2.as_str(), h.as_str());
                start.push(0);
            }
            let mut found = Vec::new();
            let mut next = None;
            let entries = store.info_scan(&prefix, &start, scan)?;
            let scanned_all = entries.len() < scan;
            for (k, _) in &entries {
                let holder = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                let holder = HolderId::new(holder)
                    .map_err(|_| InfoError::Corrupt("a provider index key names no holder"))?;
                // Only the kind the customer consented with: a bank that
                // holds a card serial does not learn the phone's.
                if let Some(e) = expiring_of(&store, &holder, &provider2, now, until)? {
                    found.push((holder.clone(), e));
                }
                if found.len() >= page {
                    next = Some(holder);
                    break;
                }
                next = Some(holder);
            }
            if next.is_some() && scanned_all && found.len() < page {
                // Looked at every consenting holder: the end.
                next = None;
            }
            Ok::<_, InfoError>((found, next))
        })
        .await
        .map_err(|e| InfoError::Internal(format!("expiring task: {e}")))??;
        let entries = found
            .iter()
            .map(|(h, e)| AuditEntry {
                actor: op.id.as_str().into(),
                action: ACTION,
                provider: provider.as_str().into(),
                subject: format!("{}:{}", e.kind.issuer_id(), e.serial.to_hex()),
                outcome: format!("expires:{}", e.not_after.0),
                holder: Some(h.clone()),
            })
            .collect();
        let found: Vec<Expiring> = found.into_iter().map(|(_, e)| e).collect();
        if !found.is_empty() {
            self.audit_only(entries).await?;
        }
        self.metrics
            .answers
            .with_label_values(&["expiring", "listed"])
            .inc_by(found.len() as u64);
        let next = next
            .map(|h| self.page_tokens.seal(op, provider, &h))
            .transpose()?;
        Ok((found, next))
    }
}
