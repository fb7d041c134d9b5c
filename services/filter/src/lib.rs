//! Compact revocation filters (issue 16): the answer of an issuer's CRLs for
//! every certificate the registry knows, in a few megabytes, exact by
//! construction. A CRLite-style filter on Mozilla's `clubcard` (a
//! partitioned two-level ribbon filter): it encodes, for every certificate
//! of a known universe, whether it is listed (revoked or on hold); for a
//! certificate outside the universe its answer means nothing, so the file
//! says what it covers and the client answers "not covered" there.
//!
//! - A **full** filter covers the issuer's certificates with notBefore at
//!   or before `covered_until` and notAfter after `expired_before` (both the
//!   snapshot's time), and encodes which of them are listed.
//! - A **delta** against a full filter holds two clubcards: `listed`, over
//!   the certificates good in the full filter or issued since (up to the
//!   delta's own `covered_until`), which of them are listed now; and
//!   `released`, over the certificates listed in the full filter, which of
//!   them are not listed now (a hold released: removeFromCRL). Each is
//!   consulted only for the certificates of its universe, so both stay
//!   exact; only the newest delta is needed (each is against the full).
//!
//! The file format (signed by the issuing CA's key, checkable with the
//! openssl command line) is in docs/FILTER.md and [`format`]. This crate
//! needs neither RocksDB nor tokio.

pub mod format;

use std::sync::Arc;

use clubcard::builder::{ApproximateRibbon, ClubcardBuilder, ExactRibbon};
use clubcard::{AsQuery, Equation, Filterable, Membership, Queryable};
use der::{Decode, Encode};
use shikko_core::{Serial, UnixTime};
use x509_cert::Certificate;

pub use format::{Card, FilterFile, Header, Kind, SignatureAlgorithm, W};

/// Why a filter was refused.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// Not a well-formed filter file.
    #[error("malformed filter: {0}")]
    Malformed(String),
    /// The signature does not verify with the issuer's key.
    #[error("the filter's signature does not verify with the issuer's key")]
    BadSignature,
    /// A filter of another issuer (by key).
    #[error("the filter is of another issuer (key hash {0})")]
    WrongIssuer(String),
    /// Past its nextUpdate.
    #[error("the filter is stale: its nextUpdate {next_update} is past (now {now})")]
    Stale {
        /// Its nextUpdate.
        next_update: i64,
        /// Now.
        now: i64,
    },
    /// A delta that does not apply to the full filter held.
    #[error("the delta applies to full filter {base}, not to {full}")]
    WrongBase {
        /// The delta's base.
        base: u64,
        /// The full filter's number.
        full: u64,
    },
    /// A certificate that cannot be read, or not of this issuer.
    #[error("certificate: {0}")]
    Certificate(String),
    /// Building failed.
    #[error("building the filter: {0}")]
    Build(String),
}

/// The answer for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Covered and not listed.
    Good,
    /// Covered and listed: revoked or on hold (the CRL says which).
    Revoked,
    /// Outside what the filters cover (issued after them, expired before
    /// them): ask OCSP. Never "good".
    NotCovered,
}

/// One certificate as the builder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its serial.
    pub serial: Serial,
    /// notBefore (Unix seconds).
    pub not_before: i64,
    /// notAfter (Unix seconds).
    pub not_after: i64,
    /// Revoked or on hold now.
    pub listed: bool,
}

/// A certificate as a filter key: the issuer's key hash (the block) and
/// the serial; hashed once.
struct Item {
    issuer: [u8; 32],
    serial: Vec<u8>,
    hash: [u8; 32],
    included: bool,
}

impl Item {
    fn new(issuer: &[u8; 32], serial: &Serial, included: bool) -> Item {
        let serial = serial.magnitude().to_vec();
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(b"shikko filter v1\0");
        ctx.update(issuer);
        ctx.update(&serial);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(ctx.finish().as_ref());
        Item {
            issuer: *issuer,
            serial,
            hash,
            included,
        }
    }
}

impl AsQuery<W> for Item {
    fn as_query(&self, m: usize) -> Equation<W> {
        let mut a = [0u64; W];
        for (i, c) in self.hash.chunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            a[i] = u64::from_le_bytes(w);
        }
        a[0] |= 1;
        let s = (a[3] % (m.max(1) as u64)) as usize;
        Equation::homogeneous(s, a)
    }

    fn block(&self) -> &[u8] {
        &self.issuer
    }

    fn discriminant(&self) -> &[u8] {
        &self.serial
    }
}

impl Filterable<W> for Item {
    fn included(&self) -> bool {
        self.included
    }
}

impl Queryable<W> for Item {
    type UniverseMetadata = ();
    type PartitionMetadata = ();
    fn in_universe(&self, _: &()) -> bool {
        true
    }
}

/// Whether `serial` is a member of `card` (an issuer with no block in it
/// has no member).
fn member(card: &Card, issuer: &[u8; 32], serial: &Serial) -> bool {
    matches!(
        card.contains(&Item::new(issuer, serial, false)),
        Membership::Member
    )
}

/// Streams every (serial, member?) of a clubcard's universe to its argument.
type Universe<'a> = dyn Fn(&mut dyn FnMut(Serial, bool)) -> Result<(), FilterError> + 'a;

/// A clubcard over a universe of one issuer: `universe` yields every
/// (serial, member?) of it, and is run twice (the approximate level takes
/// the members, the exact level every element), so that a universe of
/// hundreds of millions streams instead of sitting in memory.
fn card(issuer: &[u8; 32], universe: &Universe<'_>) -> Result<Card, FilterError> {
    let mut b = ClubcardBuilder::<W, Item>::new();
    let mut approx = b.new_approx_builder(issuer);
    let mut size = 0usize;
    universe(&mut |s, m| {
        size += 1;
        if m {
            approx.insert(Item::new(issuer, &s, true));
        }
    })?;
    approx.set_universe_size(size);
    b.collect_approx_ribbons(vec![ApproximateRibbon::from(approx)]);
    let mut exact = b.new_exact_builder(issuer);
    let mut again = 0usize;
    universe(&mut |s, m| {
        again += 1;
        exact.insert(Item::new(issuer, &s, m));
    })?;
    if again != size {
        return Err(FilterError::Build(format!(
            "the universe changed between two passes ({size} then {again} certificates)"
        )));
    }
    let exact = ExactRibbon::from(exact);
    b.collect_exact_ribbons(vec![exact]);
    Ok(b.build::<Item>((), ()))
}

/// Every certificate of an issuer the registry knows, streamed as often as
/// a build asks (twice or three times): from a store snapshot, or
/// [`FromIter`] over a closure that makes an iterator.
pub trait Population {
    /// Calls `f` with every certificate, in the same order each time.
    fn each(&self, f: &mut dyn FnMut(Entry)) -> Result<(), FilterError>;
}

/// A [`Population`] of the iterators a closure makes.
pub struct FromIter<F>(pub F);

impl<I: Iterator<Item = Entry>, F: Fn() -> I> Population for FromIter<F> {
    fn each(&self, f: &mut dyn FnMut(Entry)) -> Result<(), FilterError> {
        for e in (self.0)() {
            f(e);
        }
        Ok(())
    }
}

/// Who signs filters: the issuing CA's key.
pub trait FilterSigner {
    /// The algorithm of its signatures.
    fn algorithm(&self) -> SignatureAlgorithm;
    /// Signs `msg` (SHA-256 inside).
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, FilterError>;
}

impl<S: shikko_pki::Signer + ?Sized> FilterSigner for S {
    fn algorithm(&self) -> SignatureAlgorithm {
        match shikko_pki::Signer::algorithm(self) {
            shikko_pki::KeyAlgorithm::EcdsaP256 => SignatureAlgorithm::EcdsaSha256,
            _ => SignatureAlgorithm::RsaSha256,
        }
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, FilterError> {
        shikko_pki::Signer::sign(self, msg).map_err(|e| FilterError::Build(e.to_string()))
    }
}

/// What a build needs besides the certificates.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// The issuer's key hash ([`issuer_key_hash`]).
    pub issuer_key_hash: [u8; 32],
    /// This filter's number.
    pub number: u64,
    /// The CRL number of the same snapshot.
    pub crl_number: Vec<u8>,
    /// The snapshot's time: thisUpdate and the coverage.
    pub now: UnixTime,
    /// nextUpdate.
    pub next_update: UnixTime,
}

/// Builds and signs a full filter over `entries()` (every certificate of
/// the issuer the registry knows; the covered ones are taken). `entries`
/// is called twice: the certificates stream, they need not fit in memory.
pub fn build_full<I: Iterator<Item = Entry>>(
    info: &BuildInfo,
    entries: impl Fn() -> I,
    signer: &dyn FilterSigner,
) -> Result<Vec<u8>, FilterError> {
    build_full_from(info, &FromIter(entries), signer)
}

/// [`build_full`] over a [`Population`].
pub fn build_full_from(
    info: &BuildInfo,
    population: &dyn Population,
    signer: &dyn FilterSigner,
) -> Result<Vec<u8>, FilterError> {
    let now = info.now.0;
    let listed = card(&info.issuer_key_hash, &|f| {
        population.each(&mut |e| {
            if e.not_before <= now && e.not_after > now {
                f(e.serial, e.listed)
            }
        })
    })?;
    let header = Header {
        kind: Kind::Full,
        issuer_key_hash: info.issuer_key_hash,
        number: info.number,
        base: info.number,
        crl_number: info.crl_number.clone(),
        this_update: now,
        next_update: info.next_update.0,
        covered_until: now,
        expired_before: now,
    };
    sign(&header, &listed, None, signer)
}

/// Builds and signs a delta against `full` (verified by the caller) over
/// `entries()` (every certificate of the issuer the registry knows now;
/// called several times, as for [`build_full`]).
pub fn build_delta<I: Iterator<Item = Entry>>(
    info: &BuildInfo,
    full: &FilterFile,
    entries: impl Fn() -> I,
    signer: &dyn FilterSigner,
) -> Result<Vec<u8>, FilterError> {
    build_delta_from(info, full, &FromIter(entries), signer)
}

/// [`build_delta`] over a [`Population`].
pub fn build_delta_from(
    info: &BuildInfo,
    full: &FilterFile,
    population: &dyn Population,
    signer: &dyn FilterSigner,
) -> Result<Vec<u8>, FilterError> {
    let f = &full.header;
    if f.kind != Kind::Full || f.issuer_key_hash != info.issuer_key_hash {
        return Err(FilterError::Build(
            "a delta is built against a full filter of the same issuer".into(),
        ));
    }
    let now = info.now.0;
    let key = info.issuer_key_hash;
    // The full filter's own answer decides which universe a certificate is
    // in: what a client reads there is what the delta corrects. The full
    // filter's listed ones are few: kept; the rest stream.
    let covered = |e: &Entry| e.not_after > f.expired_before && e.not_before <= now;
    let listed_in_full =
        |e: &Entry| e.not_before <= f.covered_until && member(&full.listed, &key, &e.serial);
    // One query of the full filter per certificate: the ones it lists are
    // kept (few), and the passes of the `listed` card look them up.
    let mut released: Vec<(Serial, bool)> = Vec::new();
    population.each(&mut |e| {
        if covered(&e) && listed_in_full(&e) {
            released.push((e.serial, !e.listed));
        }
    })?;
    let in_full: std::collections::HashSet<Serial> = released.iter().map(|(s, _)| *s).collect();
    let listed = card(&key, &|out| {
        population.each(&mut |e| {
            if covered(&e) && !in_full.contains(&e.serial) {
                out(e.serial, e.listed)
            }
        })
    })?;
    let released = card(&key, &|out| {
        for (s, m) in &released {
            out(*s, *m);
        }
        Ok(())
    })?;
    let header = Header {
        kind: Kind::Delta,
        issuer_key_hash: key,
        number: info.number,
        base: f.number,
        crl_number: info.crl_number.clone(),
        this_update: now,
        next_update: info.next_update.0,
        covered_until: now,
        expired_before: f.expired_before,
    };
    sign(&header, &listed, Some(&released), signer)
}

fn sign(
    header: &Header,
    listed: &Card,
    released: Option<&Card>,
    signer: &dyn FilterSigner,
) -> Result<Vec<u8>, FilterError> {
    let body = format::encode_body(header, listed, released, signer.algorithm())?;
    let sig = signer.sign(&body)?;
    format::assemble(body, &sig)
}

/// The issuer key hash of a CA certificate (DER): SHA-256 of its
/// subjectPublicKey.
pub fn issuer_key_hash(ca_der: &[u8]) -> Result<[u8; 32], FilterError> {
    let ca = Certificate::from_der(ca_der).map_err(|e| FilterError::Certificate(e.to_string()))?;
    let spki = ca
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| FilterError::Certificate(e.to_string()))?;
    shikko_pki::PublicKeyHashes::from_spki_der(&spki)
        .map(|h| h.sha256)
        .map_err(|e| FilterError::Certificate(e.to_string()))
}

/// Decodes `file` and checks it: signed by the key of `ca_der`, of that
/// issuer, not stale at `now`.
pub fn verify(file: &[u8], ca_der: &[u8], now: UnixTime) -> Result<FilterFile, FilterError> {
    let f = format::decode(file)?;
    let ca = Certificate::from_der(ca_der).map_err(|e| FilterError::Certificate(e.to_string()))?;
    let key_hash = issuer_key_hash(ca_der)?;
    if f.header.issuer_key_hash != key_hash {
        return Err(FilterError::WrongIssuer(hex(&f.header.issuer_key_hash)));
    }
    if !shikko_pki::verify_signature(
        ca.tbs_certificate().subject_public_key_info(),
        &f.algorithm.oid(),
        &f.signed,
        &f.signature,
    ) {
        return Err(FilterError::BadSignature);
    }
    if f.header.next_update <= now.0 {
        return Err(FilterError::Stale {
            next_update: f.header.next_update,
            now: now.0,
        });
    }
    Ok(f)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A full filter and, optionally, the newest delta against it, both
/// verified: what a client queries.
#[derive(Debug, Clone)]
pub struct FilterSet {
    full: Arc<FilterFile>,
    delta: Option<Arc<FilterFile>>,
    ca_der: Vec<u8>,
}

impl FilterSet {
    /// A full filter (checked against the CA certificate `ca_der` at `now`).
    pub fn new(full: &[u8], ca_der: &[u8], now: UnixTime) -> Result<FilterSet, FilterError> {
        let f = verify(full, ca_der, now)?;
        if f.header.kind != Kind::Full {
            return Err(FilterError::Malformed(
                "a filter set starts with a full filter".into(),
            ));
        }
        Ok(FilterSet {
            full: Arc::new(f),
            delta: None,
            ca_der: ca_der.to_vec(),
        })
    }

    /// Applies a delta (checked; it must be against the full filter held,
    /// and newer than the delta held, which it replaces).
    pub fn apply_delta(&mut self, delta: &[u8], now: UnixTime) -> Result<(), FilterError> {
        let d = verify(delta, &self.ca_der, now)?;
        if d.header.kind != Kind::Delta {
            return Err(FilterError::Malformed("not a delta".into()));
        }
        if d.header.base != self.full.header.number {
            return Err(FilterError::WrongBase {
                base: d.header.base,
                full: self.full.header.number,
            });
        }
        if let Some(held) = &self.delta
            && held.header.number >= d.header.number
        {
            return Ok(());
        }
        self.delta = Some(Arc::new(d));
        Ok(())
    }

    /// The full filter held.
    pub fn full(&self) -> &FilterFile {
        &self.full
    }

    /// The delta held.
    pub fn delta(&self) -> Option<&FilterFile> {
        self.delta.as_deref()
    }

    /// Whether the set is still fresh at `now` (a stale set answers, but a
    /// caller should fetch newer filters).
    pub fn fresh(&self, now: UnixTime) -> bool {
        let next = self
            .delta
            .as_ref()
            .map_or(self.full.header.next_update, |d| d.header.next_update);
        now.0 < next
    }

    /// The answer for a certificate of this issuer by serial and validity.
    pub fn check_serial(&self, serial: &Serial, not_before: i64, not_after: i64) -> Answer {
        let f = &self.full.header;
        let k = &f.issuer_key_hash;
        if not_after <= f.expired_before {
            return Answer::NotCovered;
        }
        let in_full = not_before <= f.covered_until;
        let listed_in_full = in_full && member(&self.full.listed, k, serial);
        let listed = match &self.delta {
            None if in_full => listed_in_full,
            None => return Answer::NotCovered,
            Some(d) => {
                if not_before > d.header.covered_until {
                    return Answer::NotCovered;
                }
                match (&d.released, listed_in_full) {
                    (Some(r), true) => !member(r, k, serial),
                    _ => member(&d.listed, k, serial),
                }
            }
        };
        if listed {
            Answer::Revoked
        } else {
            Answer::Good
        }
    }

    /// The answer for a certificate (DER), which must be issued by this
    /// set's CA (its signature is checked: a made-up certificate is not
    /// answered).
    pub fn check_certificate(&self, cert_der: &[u8]) -> Result<Answer, FilterError> {
        let cert =
            Certificate::from_der(cert_der).map_err(|e| FilterError::Certificate(e.to_string()))?;
        let ca = Certificate::from_der(&self.ca_der)
            .map_err(|e| FilterError::Certificate(e.to_string()))?;
        if !shikko_pki::issued_by(&cert, &ca) {
            return Err(FilterError::Certificate(
                "not issued by this filter's CA (name or signature)".into(),
            ));
        }
        let tbs = cert.tbs_certificate();
        let serial = Serial::from_be_bytes(tbs.serial_number().as_bytes())
            .map_err(|e| FilterError::Certificate(e.to_string()))?;
        let secs = |t: &x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        Ok(self.check_serial(
            &serial,
            secs(&tbs.validity().not_before),
            secs(&tbs.validity().not_after),
        ))
    }
}
