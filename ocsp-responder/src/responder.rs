//! Answering requests: match each CertID to an issuer (by name and key hash,
//! SHA-1 or SHA-256), read the status index, and sign a BasicOCSPResponse
//! with the issuer's delegated responder key (responderID by key hash, the
//! responder certificate included). Answers without a nonce are pre-signed
//! and cached per certificate for half their validity (RFC 5019); a status
//! change drops the cached answer at once. The responder key is
//! [`key`], the assembly of answers [`assemble`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;

use der::asn1::{Null, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use shikko_core::{CertKind, SERIAL_MAX_OCTETS, Serial, UnixTime};
use shikko_pki::{PublicKeyHashes, Signer};
use x509_cert::Certificate;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::ext::{Extension, Extensions};

mod assemble;
mod key;

pub use assemble::status_only;
use assemble::{crl_reason, etag_of, gtime, successful_response};
pub use key::ResponderKey;

use crate::index::{IndexedStatus, StatusIndex};
use crate::request::ParsedRequest;
use crate::types::*;

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// Errors setting up a responder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A certificate or key that does not fit.
    #[error("{0}")]
    Setup(String),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(#[from] shikko_pki::Error),
    /// Encoding failed.
    #[error("DER: {0}")]
    Der(#[from] der::Error),
}

/// A signed answer (DER), the statuses it was signed from, and the
/// responder key that signed it.
type Signed = (Vec<u8>, Vec<Option<IndexedStatus>>, Arc<ResponderKey>);

/// One issuer this responder answers for.
#[derive(Debug)]
struct IssuerEntry {
    kind: CertKind,
    name_sha1: [u8; 20],
    name_sha256: [u8; 32],
    key: PublicKeyHashes,
    responder: RwLock<Arc<ResponderKey>>,
}

/// An answer, with what HTTP caching needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The DER OCSPResponse (shared, not copied, between the cache and answers).
    pub der: Bytes,
    /// The HTTP entity tag of a cacheable answer (quoted), made once when it was signed.
    pub etag: Option<Arc<str>>,
    /// thisUpdate of a single-certificate answer without nonce (cacheable).
    pub this_update: Option<UnixTime>,
    /// nextUpdate of the same.
    pub next_update: Option<UnixTime>,
    /// How the answer was made, for metrics.
    pub outcome: Outcome,
    /// The certificate's status it gives (`good`, `revoked`, `unknown`;
    /// `multiple` for several CertIDs, `-` for an unsigned answer), for metering.
    pub status: &'static str,
}

/// The name of a status an answer gives.
pub(crate) fn status_name(s: Option<IndexedStatus>) -> &'static str {
    match s {
        None => "unknown",
        Some(IndexedStatus::Good) => "good",
        Some(_) => "revoked",
    }
}

/// How an answer was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A pre-signed answer from the cache.
    Cached,
    /// Signed for this request (a cache miss, a nonce, several CertIDs).
    Signed,
    /// malformedRequest (not signed).
    Malformed,
    /// unauthorized: an issuer this responder does not serve (not signed).
    Unauthorized,
    /// internalError (not signed).
    Internal,
}

impl Outcome {
    /// A short stable name (a metric label).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Cached => "cached",
            Outcome::Signed => "signed",
            Outcome::Malformed => "malformed",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Internal => "internal_error",
        }
    }
}

/// (issuer, SHA-256?, hashAlgorithm parameters present?, serial): answers
/// repeat the request's CertID, so two encodings of it are two answers.
type CacheKey = (CertKind, bool, bool, [u8; SERIAL_MAX_OCTETS]);

/// Most answers kept pre-signed by default (each about 1 KB with the
/// responder certificate). A full cache makes room for a new answer: first
/// it drops every answer no longer fresh (at most once per quarter of the
/// freshness window), then, still full, one answer at random; so the hot set
/// of the moment stays cached instead of the first million ever asked for.
pub const MAX_CACHED_ANSWERS: usize = 1_000_000;

/// A pre-signed answer, with its HTTP header lines rendered when it was
/// signed (for the fast path, [`crate::http::FastOcsp`]).
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) der: Bytes,
    pub(crate) etag: Arc<str>,
    /// The certificate it answers for.
    pub(crate) kind: CertKind,
    pub(crate) serial: Serial,
    /// The status it was signed from: served only while the index agrees.
    pub(crate) status: Option<IndexedStatus>,
    pub(crate) this_update: UnixTime,
    pub(crate) next_update: UnixTime,
    /// `content-type`, `etag`, `last-modified` and `expires` lines.
    pub(crate) head: Bytes,
    /// Where the lines a 304 repeats begin in `head` (after `content-type`).
    pub(crate) validators: usize,
}

fn plus(t: UnixTime, d: Duration) -> UnixTime {
    UnixTime(t.0.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
}

/// Answers OCSP requests from a status index.
pub struct Responder {
    issuers: Vec<IssuerEntry>,
    index: Arc<StatusIndex>,
    validity: Duration,
    cache: Mutex<HashMap<CacheKey, Arc<Cached>>>,
    cache_capacity: usize,
    /// When the cache last dropped its stale answers (Unix seconds).
    last_sweep: AtomicI64,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("issuers", &self.issuers)
            .field("validity", &self.validity)
            .finish()
    }
}

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut out = [0u8; 20];
    out.copy_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref(),
    );
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref());
    out
}

impl Responder {
    /// A responder for `issuers` (kind, the CA certificate's DER, its
    /// delegated responder key), answering from `index`; answers are valid
    /// (nextUpdate - thisUpdate) for `validity`.
    pub fn new(
        issuers: Vec<(CertKind, Vec<u8>, ResponderKey)>,
        index: Arc<StatusIndex>,
        validity: Duration,
    ) -> Result<Responder, Error> {
        let issuers = issuers
            .into_iter()
            .map(|(kind, ca_der, responder)| {
                let ca = Certificate::from_der(&ca_der)?;
                let name = ca.tbs_certificate().subject().to_der()?;
                let spki = ca.tbs_certificate().subject_public_key_info().to_der()?;
                Ok(IssuerEntry {
                    kind,
                    name_sha1: sha1(&name),
                    name_sha256: sha256(&name),
                    key: PublicKeyHashes::from_spki_der(&spki)?,
                    responder: RwLock::new(Arc::new(responder)),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Responder {
            issuers,
            index,
            validity,
            cache: Mutex::new(HashMap::new()),
            cache_capacity: MAX_CACHED_ANSWERS,
            last_sweep: AtomicI64::new(i64::MIN),
        })
    }

    /// Keeps at most `answers` pre-signed answers (default [`MAX_CACHED_ANSWERS`]).
    pub fn with_cache_capacity(mut self, answers: usize) -> Responder {
        self.cache_capacity = answers.max(1);
        self
    }

    /// How many pre-signed answers are kept.
    pub fn cached_answers(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Makes room in a full cache for one more answer (see [`MAX_CACHED_ANSWERS`]).
    fn make_room(&self, cache: &mut HashMap<CacheKey, Arc<Cached>>, now: UnixTime) {
        let fresh_for = self.validity / 2;
        let last = self.last_sweep.load(Ordering::Relaxed);
        if last == i64::MIN || now >= plus(UnixTime(last), fresh_for / 4) {
            self.last_sweep.store(now.0, Ordering::Relaxed);
            cache.retain(|_, c| now < plus(c.this_update, fresh_for) && now >= c.this_update);
        }
        if cache.len() >= self.cache_capacity
            && let Some(k) = cache.keys().next().copied()
        {
            cache.remove(&k);
        }
    }

    /// Replaces an issuer's responder key (rotation without downtime):
    /// answers signed from now on use the new key; cached answers are dropped.
    pub fn rotate(&self, kind: CertKind, key: ResponderKey) -> Result<(), Error> {
        let entry = self
            .issuers
            .iter()
            .find(|i| i.kind == kind)
            .ok_or_else(|| Error::Setup(format!("no issuer {kind}")))?;
        *entry.responder.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| k.0 != kind);
        Ok(())
    }

    /// Drops every cached answer (the index was replaced by a snapshot).
    pub fn clear_cache(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Drops cached answers of certificates whose status changed.
    pub fn invalidate(&self, changed: &[(CertKind, Serial)]) {
        if changed.is_empty() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        for (kind, serial) in changed {
            for sha2 in [false, true] {
                for params in [false, true] {
                    cache.remove(&(*kind, sha2, params, *serial.as_padded()));
                }
            }
        }
    }

    /// The SHA-256 CertID of `kind`'s certificate `serial`, if this
    /// responder serves `kind` (what a relying party would send).
    pub fn cert_id(&self, kind: CertKind, serial: &Serial) -> Option<CertId> {
        let issuer = self.issuers.iter().find(|i| i.kind == kind)?;
        Some(CertId {
            hash_algorithm: spki::AlgorithmIdentifierOwned {
                oid: SHA256,
                parameters: Some(der::Any::null()),
            },
            issuer_name_hash: OctetString::new(issuer.name_sha256.as_slice()).ok()?,
            issuer_key_hash: OctetString::new(issuer.key.sha256.as_slice()).ok()?,
            serial_number: x509_cert::serial_number::SerialNumber::new(&serial.to_der_integer())
                .ok()?,
        })
    }

    /// Whether every responder key signs in microseconds (ECDSA): such
    /// answers are signed on the request's own task; RSA signatures (about a
    /// millisecond) go to a blocking thread.
    pub fn signs_fast(&self) -> bool {
        self.issuers.iter().all(|i| {
            i.responder
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .signer
                .algorithm()
                == shikko_pki::KeyAlgorithm::EcdsaP256
        })
    }

    /// Whether this responder answers for `kind`.
    pub fn serves(&self, kind: CertKind) -> bool {
        self.issuers.iter().any(|i| i.kind == kind)
    }

    fn issuer_of(&self, id: &CertId) -> Option<(&IssuerEntry, bool)> {
        let (name, key) = (
            id.issuer_name_hash.as_bytes(),
            id.issuer_key_hash.as_bytes(),
        );
        if id.hash_algorithm.oid == SHA1 {
            self.issuers
                .iter()
                .find(|i| i.name_sha1 == name && i.key.sha1 == key)
                .map(|i| (i, false))
        } else if id.hash_algorithm.oid == SHA256 {
            self.issuers
                .iter()
                .find(|i| i.name_sha256 == name && i.key.sha256 == key)
                .map(|i| (i, true))
        } else {
            None
        }
    }

    /// Which issuer answers a request (all CertIDs must be of one issuer this
    /// responder serves), the serials, and the cache key of a cacheable one.
    #[allow(clippy::type_complexity)]
    fn resolve(
        &self,
        req: &ParsedRequest,
    ) -> Result<(&IssuerEntry, Vec<Option<Serial>>, Option<CacheKey>), Outcome> {
        let first_id = req.cert_ids.first().ok_or(Outcome::Malformed)?;
        // No signing for strangers.
        let (issuer, sha2) = self.issuer_of(first_id).ok_or(Outcome::Unauthorized)?;
        for id in &req.cert_ids[1..] {
            match self.issuer_of(id) {
                Some((i, _)) if i.kind == issuer.kind => {}
                _ => return Err(Outcome::Unauthorized),
            }
        }
        let serials: Vec<Option<Serial>> = req
            .cert_ids
            .iter()
            .map(|id| Serial::from_der_integer(id.serial_number.as_bytes()).ok())
            .collect();
        let key = match (req.cert_ids.len(), &req.nonce, serials[0]) {
            (1, None, Some(s)) => Some((
                issuer.kind,
                sha2,
                first_id.hash_algorithm.parameters.is_some(),
                *s.as_padded(),
            )),
            _ => None,
        };
        Ok((issuer, serials, key))
    }

    fn bare(outcome: Outcome) -> Answer {
        let status = match outcome {
            Outcome::Malformed => OcspResponseStatus::MalformedRequest,
            Outcome::Unauthorized => OcspResponseStatus::Unauthorized,
            _ => OcspResponseStatus::InternalError,
        };
        Answer {
            der: Bytes::from(status_only(status)),
            etag: None,
            this_update: None,
            next_update: None,
            outcome,
            status: "-",
        }
    }

    /// A pre-signed answer, if one is fresh (within half its validity) and
    /// its status is still the index's; `None` when it must be signed.
    pub fn cached(&self, req: &ParsedRequest, now: UnixTime) -> Option<Answer> {
        let c = self.cached_entry(req, now)?;
        Some(Answer {
            der: c.der.clone(),
            etag: Some(c.etag.clone()),
            this_update: Some(c.this_update),
            next_update: Some(c.next_update),
            outcome: Outcome::Cached,
            status: status_name(c.status),
        })
    }

    /// The pre-signed answer to `req` at `now`, if fresh and still the index's.
    pub(crate) fn cached_entry(&self, req: &ParsedRequest, now: UnixTime) -> Option<Arc<Cached>> {
        let (_, _, key) = self.resolve(req).ok()?;
        let c = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key?)
            .cloned()?;
        self.still_good(&c, now).then_some(c)
    }

    /// Whether a pre-signed answer may still be served at `now`: fresh
    /// (within half its validity), and signed from the status the index
    /// has now. (One dropped from the cache is no longer anyone's: the
    /// fast path holds answers weakly.)
    pub(crate) fn still_good(&self, c: &Cached, now: UnixTime) -> bool {
        let fresh_until = plus(c.this_update, self.validity / 2);
        now < fresh_until && now >= c.this_update && self.index.get(c.kind, &c.serial) == c.status
    }

    /// The answer to a parsed request at time `now`: pre-signed when fresh,
    /// else signed now (and kept, when cacheable).
    pub fn respond(&self, req: &ParsedRequest, now: UnixTime) -> Answer {
        match self.cached(req, now) {
            Some(a) => a,
            None => self.sign_now(req, now),
        }
    }

    /// The answer signed now (for a caller that has just missed [`Responder::cached`]),
    /// kept when cacheable.
    pub fn sign_now(&self, req: &ParsedRequest, now: UnixTime) -> Answer {
        let (issuer, serials, key) = match self.resolve(req) {
            Ok(r) => r,
            Err(outcome) => return Self::bare(outcome),
        };
        let first = issuer.kind;
        let single = key.is_some();
        let next_update = plus(now, self.validity);
        match self.sign(issuer, req, &serials, now, next_update) {
            Ok((der, statuses, signed_by)) => {
                let der = Bytes::from(der);
                let etag: Option<Arc<str>> = single.then(|| etag_of(&der).into());
                // Unknown serials are not kept: random ones must not fill memory.
                if let (Some(k), Some(etag), Some(serial), Some(Some(_))) =
                    (key, &etag, serials[0], statuses.first())
                {
                    // Cached only if the status it was signed from is still the
                    // index's, checked under the cache lock: a status change
                    // applied meanwhile either shows here, or its invalidation
                    // (which takes this lock after the index changed) removes
                    // the entry right after.
                    // Nor if the responder key was rotated meanwhile: `rotate`
                    // swaps the key, then clears the cache under this lock.
                    // (Its HTTP head rendered before the lock.)
                    let (head, validators) = crate::http::cached_head(etag, now, next_update);
                    let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                    let current = issuer
                        .responder
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    if self.index.get(first, &serial) == statuses[0]
                        && Arc::ptr_eq(&current, &signed_by)
                    {
                        if cache.len() >= self.cache_capacity && !cache.contains_key(&k) {
                            self.make_room(&mut cache, now);
                        }
                        cache.insert(
                            k,
                            Arc::new(Cached {
                                der: der.clone(),
                                etag: etag.clone(),
                                kind: first,
                                serial,
                                status: statuses[0],
                                this_update: now,
                                next_update,
                                head,
                                validators,
                            }),
                        );
                    }
                }
                Answer {
                    der,
                    etag,
                    this_update: single.then_some(now),
                    next_update: single.then_some(next_update),
                    outcome: Outcome::Signed,
                    status: match statuses.as_slice() {
                        [one] => status_name(*one),
                        _ => "multiple",
                    },
                }
            }
            Err(_) => Self::bare(Outcome::Internal),
        }
    }

    fn sign(
        &self,
        issuer: &IssuerEntry,
        req: &ParsedRequest,
        serials: &[Option<Serial>],
        now: UnixTime,
        next_update: UnixTime,
    ) -> Result<Signed, Error> {
        let responder = issuer
            .responder
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut responses = Vec::with_capacity(req.cert_ids.len());
        let mut statuses = Vec::with_capacity(req.cert_ids.len());
        for (id, serial) in req.cert_ids.iter().zip(serials) {
            let status = serial.and_then(|s| self.index.get(issuer.kind, &s));
            statuses.push(status);
            let cert_status = match status {
                Some(IndexedStatus::Good) => CertStatus::Good(Null),
                Some(IndexedStatus::OnHold { since }) => CertStatus::Revoked(RevokedInfo {
                    revocation_time: gtime(since)?,
                    revocation_reason: Some(CrlReason::CertificateHold),
                }),
                Some(IndexedStatus::Revoked { reason, at }) => CertStatus::Revoked(RevokedInfo {
                    revocation_time: gtime(at)?,
                    revocation_reason: crl_reason(reason.code()),
                }),
                // Never issued by this issuer (or a serial that is not one).
                None => CertStatus::Unknown(Null),
            };
            responses.push(SingleResponse {
                cert_id: id.clone(),
                cert_status,
                this_update: gtime(now)?,
                next_update: Some(gtime(next_update)?),
                single_extensions: None,
            });
        }
        let response_extensions = match &req.nonce {
            Some(n) => Some(Extensions::from(vec![Extension {
                extn_id: ID_PKIX_OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(OctetString::new(n.as_slice())?.to_der()?)?,
            }])),
            None => None,
        };
        let tbs = ResponseData {
            version: Default::default(),
            responder_id: ResponderId::ByKey(OctetString::new(responder.key_hash.as_slice())?),
            produced_at: gtime(now)?,
            responses,
            response_extensions,
        };
        let tbs_der = tbs.to_der()?;
        let signature = responder.signer.sign(&tbs_der)?;
        let der = successful_response(&tbs_der, &responder, &signature);
        Ok((der, statuses, responder))
    }
}
