//! Building CRLs from the store: full (per issuer), partitioned (per
//! municipality) and delta, each streamed to a temporary file, checked, and
//! published by atomic rename.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use shikko_core::{
    CertKind, CertStatus, Municipality, PartitionId, RevocationReason, Serial, UnixTime,
};
use shikko_pki::{Issuer, Signer};
use shikko_store::{RevokedBatch, Snapshot, Store};

use crate::der::{DayCache, EntryFields, push_entry};
use crate::error::{Error, Result};
use crate::extensions;
use crate::publish::{clean_stale, publish};
use crate::state::{Base, State};
use crate::verify::CrlSummary;
use crate::writer::{Body, BodyWriter, TbsFields, assemble, temp_path};

/// Which CRL of an issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CrlName {
    /// Every entry of the issuer: `full.crl`.
    Full,
    /// Changes since the last full CRL: `delta.crl`.
    Delta,
    /// The entries of one municipality's certificates: `NNNNNN.crl`.
    Partition(PartitionId),
}

impl CrlName {
    /// Parses `full`, `delta` or a 6-digit municipality code (not 000000).
    pub fn parse(s: &str) -> Option<CrlName> {
        match s {
            "full" => Some(CrlName::Full),
            "delta" => Some(CrlName::Delta),
            _ if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) => {
                let code: u32 = s.parse().ok()?;
                (code != 0).then_some(CrlName::Partition(PartitionId(code)))
            }
            _ => None,
        }
    }

    /// The published file's name.
    pub fn file_name(&self) -> String {
        format!("{self}.crl")
    }
}

impl fmt::Display for CrlName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrlName::Full => f.write_str("full"),
            CrlName::Delta => f.write_str("delta"),
            CrlName::Partition(p) => write!(f, "{p}"),
        }
    }
}

/// Where and how CRLs are built.
#[derive(Debug, Clone)]
pub struct CrlConfig {
    /// Output directory: `ISSUER/NAME.crl` files and the numbering state.
    pub out_dir: PathBuf,
    /// nextUpdate - thisUpdate of full and partition CRLs (default 48 h).
    pub full_validity: Duration,
    /// nextUpdate - thisUpdate of delta CRLs (default 4 h).
    pub delta_validity: Duration,
    /// Public HTTP base (e.g. `http://crl.example.jp`): when set, full CRLs
    /// carry a freshestCRL pointer to `BASE/crl/ISSUER/delta.crl`.
    pub public_base_url: Option<String>,
    /// Entries per scan batch (bounds memory: a few batches are in flight).
    pub batch_size: usize,
    /// Whether full builds also build the partition CRLs of signing kinds (default true).
    pub partitions: bool,
}

impl CrlConfig {
    /// The defaults, writing to `out_dir`.
    pub fn new(out_dir: impl Into<PathBuf>) -> CrlConfig {
        CrlConfig {
            out_dir: out_dir.into(),
            full_validity: Duration::from_secs(48 * 3600),
            delta_validity: Duration::from_secs(4 * 3600),
            public_base_url: None,
            batch_size: 65_536,
            partitions: true,
        }
    }
}

/// A CA whose CRLs are built: its kind, key and name.
pub struct CrlIssuer {
    kind: CertKind,
    signer: Arc<dyn Signer>,
    name_der: Vec<u8>,
    key_id: [u8; 20],
    sig_alg_der: Vec<u8>,
}

impl fmt::Debug for CrlIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrlIssuer")
            .field("kind", &self.kind)
            .finish()
    }
}

impl CrlIssuer {
    /// The CA of `kind` signing with `signer`, named as in its certificate
    /// (which must certify the signer's key).
    pub fn new(
        kind: CertKind,
        signer: Arc<dyn Signer>,
        ca_certificate: &[u8],
    ) -> Result<CrlIssuer> {
        let issuer = Issuer::from_certificate(signer.as_ref(), ca_certificate)?;
        let name_der = der::Encode::to_der(issuer.name())?;
        let key_id = *issuer.key_hashes().key_identifier();
        let sig_alg_der = der::Encode::to_der(&signer.signature_algorithm())?;
        Ok(CrlIssuer {
            kind,
            signer,
            name_der,
            key_id,
            sig_alg_der,
        })
    }

    /// The issuer's kind.
    pub fn kind(&self) -> CertKind {
        self.kind
    }
}

/// One published CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltCrl {
    /// Issuer.
    pub kind: CertKind,
    /// Which CRL.
    pub name: CrlName,
    /// Its cRLNumber.
    pub number: u64,
    /// Entries listed.
    pub entries: u64,
    /// Size in octets.
    pub bytes: u64,
    /// Wall time of its build (scan, encode, sign, check, publish).
    pub elapsed: Duration,
    /// Of which: scanning and encoding the entries into the body file.
    pub encode: Duration,
    /// Of which: assembling, hashing and signing the CRL file.
    pub sign: Duration,
    /// Of which: re-reading and verifying it, then publishing.
    pub check: Duration,
}

/// What a build published, and the registry position it reflects.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    /// The sequence number of the last event reflected.
    pub seq: u64,
    /// The CRLs published, in order.
    pub crls: Vec<BuiltCrl>,
}

/// Observes a build: for progress bars and metrics.
pub trait Progress: Sync {
    /// A build of `name` started.
    fn started(&self, _kind: CertKind, _name: CrlName) {}
    /// `n` more entries were encoded.
    fn entries(&self, _n: u64) {}
    /// A CRL was published.
    fn published(&self, _crl: &BuiltCrl) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// Builds and publishes the CRLs of a set of issuers from a store.
pub struct Builder {
    store: Arc<Store>,
    issuers: Vec<CrlIssuer>,
    config: CrlConfig,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("issuers", &self.issuers)
            .field("config", &self.config)
            .finish()
    }
}

fn add(t: UnixTime, d: Duration) -> UnixTime {
    UnixTime(t.0.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
}

/// The CRL entry of an indexed status (none for a good certificate).
fn fields_of<'a>(serial: &'a Serial, status: &CertStatus) -> Option<EntryFields<'a>> {
    match *status {
        CertStatus::Good => None,
        CertStatus::OnHold { since } => Some(EntryFields {
            serial,
            date: since,
            reason: Some(RevocationReason::CertificateHold),
            invalidity_date: None,
        }),
        CertStatus::Revoked {
            reason,
            at,
            invalidity_date,
        } => Some(EntryFields {
            serial,
            date: at,
            reason: Some(reason),
            invalidity_date,
        }),
    }
}

/// Encodes entries `range` of a batch, dropping those expired before `cutoff`.
fn encode_range(
    batch: &RevokedBatch,
    range: std::ops::Range<usize>,
    cutoff: UnixTime,
    out: &mut Vec<u8>,
    days: &mut DayCache,
) -> Result<u64> {
    let mut n = 0;
    for i in range {
        let e = batch.get(i)?;
        if e.not_after < cutoff {
            continue;
        }
        if let Some(f) = fields_of(&e.serial, &e.status) {
            push_entry(out, &f, days)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Up to `n - 1` keys strictly between `first` and `last`, increasing, that
/// split the key range into `n` parts of about equal width: keys are read as
/// numbers from the first octet where `first` and `last` differ. Uneven
/// key density only makes the parts uneven, never wrong.
fn split_points(first: &[u8], last: &[u8], n: usize) -> Vec<Vec<u8>> {
    if n < 2 || first >= last {
        return Vec::new();
    }
    let d = first
        .iter()
        .zip(last)
        .position(|(a, b)| a != b)
        .unwrap_or(first.len().min(last.len()));
    let window = |k: &[u8]| {
        let mut b = [0u8; 8];
        for (i, x) in b.iter_mut().enumerate() {
            *x = k.get(d + i).copied().unwrap_or(0);
        }
        u64::from_be_bytes(b)
    };
    let (lo, hi) = (window(first), window(last));
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(n - 1);
    for i in 1..n {
        let v = lo + ((u128::from(hi - lo) * i as u128) / n as u128) as u64;
        let mut key = first[..d].to_vec();
        key.extend_from_slice(&v.to_be_bytes());
        key.truncate(first.len().max(d + 1));
        if key.as_slice() > first && key.as_slice() <= last && out.last().is_none_or(|p| *p < key) {
            out.push(key);
        }
    }
    out
}

/// The highest CRL number among the published CRLs of an issuer directory
/// (0 when none): numbering continues above it even if the state was lost.
fn highest_published(dir: &Path) -> Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut highest = 0;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let is_crl = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".crl"))
            .and_then(CrlName::parse)
            .is_some();
        if !is_crl {
            continue;
        }
        match crate::verify::read_summary(&path) {
            Ok(s) => highest = highest.max(s.number),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "unreadable published CRL ignored for numbering")
            }
        }
    }
    Ok(highest)
}

/// A thisUpdate strictly after the published file's, so that versions of a
/// file never share a Last-Modified second (If-Modified-Since would then
/// answer 304 for a changed CRL). Waits out the rest of a second if needed.
fn strictly_after_published(dest: &Path, this_update: UnixTime) -> Result<UnixTime> {
    let published = match crate::verify::read_summary(dest) {
        Ok(s) => s.this_update,
        Err(_) => return Ok(this_update),
    };
    if published < this_update {
        return Ok(this_update);
    }
    // A published thisUpdate well ahead of this clock (a clock stepped back,
    // or files from a host whose clock ran fast): waiting for it would stall
    // every build behind this one.
    if published.0 > this_update.0 + 5 {
        return Err(Error::malformed(
            dest,
            format!(
                "its thisUpdate {published} is ahead of this host's clock ({this_update}); fix the clock"
            ),
        ));
    }
    let next = UnixTime(published.0 + 1);
    while UnixTime::now() < next {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(next)
}

impl Builder {
    /// A builder over `store` for `issuers`.
    pub fn new(store: Arc<Store>, issuers: Vec<CrlIssuer>, config: CrlConfig) -> Builder {
        Builder {
            store,
            issuers,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CrlConfig {
        &self.config
    }

    /// The configuration, to adjust before building.
    pub fn config_mut(&mut self) -> &mut CrlConfig {
        &mut self.config
    }

    /// The issuers this builder signs for.
    pub fn kinds(&self) -> Vec<CertKind> {
        self.issuers.iter().map(|i| i.kind).collect()
    }

    fn issuer(&self, kind: CertKind) -> Result<&CrlIssuer> {
        self.issuers
            .iter()
            .find(|i| i.kind == kind)
            .ok_or(Error::UnknownIssuer(kind.issuer_id()))
    }

    fn dir(&self, kind: CertKind) -> PathBuf {
        self.config.out_dir.join(kind.issuer_id())
    }

    /// Builds, for each of `kinds`, the full CRL, every partition CRL (signing
    /// kinds: one per municipality) and an empty delta against the new full
    /// CRL, from one consistent snapshot per issuer.
    pub fn build_full(&self, kinds: &[CertKind], progress: &dyn Progress) -> Result<BuildReport> {
        let mut report = BuildReport::default();
        for &kind in kinds {
            let issuer = self.issuer(kind)?;
            let mut state = State::lock(&self.config.out_dir)?;
            let dir = self.dir(kind);
            clean_stale(&dir)?;
            let snap = self.store.snapshot()?;
            let now = UnixTime::now();
            // RFC 5280 §3.3: an entry stays until one regularly scheduled CRL
            // issued after the certificate expired has listed it.
            let cutoff = state
                .issuer(kind)
                .base
                .map_or(now, |b| b.this_update)
                .min(now);
            let munis = if kind.is_signing() && self.config.partitions {
                snap.municipalities()?
            } else {
                Vec::new()
            };
            state.at_least(kind, highest_published(&dir)? + 1)?;
            let first = state.reserve(kind, 2 + munis.len() as u64)?;
            report.seq = snap.seq();

            let full = self.full_crl(issuer, &snap, first, now, cutoff, progress)?;
            report.crls.push(full);

            let parts: Vec<Result<BuiltCrl>> = munis
                .par_iter()
                .enumerate()
                .map(|(i, m)| {
                    self.partition_crl(
                        issuer,
                        &snap,
                        m,
                        first + 1 + i as u64,
                        now,
                        cutoff,
                        progress,
                    )
                })
                .collect();
            for p in parts {
                report.crls.push(p?);
            }
            let base = Base {
                number: first,
                seq: snap.seq(),
                this_update: now,
            };
            state.set_base(kind, base)?;
            let delta_number = first + 1 + munis.len() as u64;
            report
                .crls
                .push(self.delta_crl(issuer, &snap, base, delta_number, now, progress)?);
        }
        Ok(report)
    }

    /// Builds, for each of `kinds`, a delta CRL of the changes since its last full CRL.
    pub fn build_delta(&self, kinds: &[CertKind], progress: &dyn Progress) -> Result<BuildReport> {
        let mut report = BuildReport::default();
        for &kind in kinds {
            let issuer = self.issuer(kind)?;
            let mut state = State::lock(&self.config.out_dir)?;
            clean_stale(&self.dir(kind))?;
            let base = state
                .issuer(kind)
                .base
                .ok_or(Error::NoBase(kind.issuer_id()))?;
            let snap = self.store.snapshot()?;
            state.at_least(kind, highest_published(&self.dir(kind))? + 1)?;
            let number = state.reserve(kind, 1)?;
            report.seq = snap.seq();
            report.crls.push(self.delta_crl(
                issuer,
                &snap,
                base,
                number,
                UnixTime::now(),
                progress,
            )?);
        }
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        issuer: &CrlIssuer,
        name: CrlName,
        bodies: Vec<Body>,
        this_update: UnixTime,
        validity: Duration,
        extensions: &[u8],
        started: Instant,
        progress: &dyn Progress,
    ) -> Result<BuiltCrl> {
        let dir = self.dir(issuer.kind);
        let dest = dir.join(name.file_name());
        let this_update = strictly_after_published(&dest, this_update)?;
        let tmp = temp_path(&dir, "crl");
        let entries = bodies.iter().map(Body::entries).sum();
        let encode = started.elapsed();
        let t = Instant::now();
        let tbs = TbsFields {
            signature_algorithm: &issuer.sig_alg_der,
            issuer: &issuer.name_der,
            this_update,
            next_update: add(this_update, validity),
            extensions,
        };
        let bytes = match assemble(bodies, &tbs, issuer.signer.as_ref(), &tmp) {
            Ok(b) => b,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let sign = t.elapsed();
        let t = Instant::now();
        let summary: CrlSummary = publish(&tmp, &dest, issuer.signer.public_key_der())?;
        debug_assert_eq!(summary.size, bytes);
        let built = BuiltCrl {
            kind: issuer.kind,
            name,
            number: summary.number,
            entries,
            bytes,
            elapsed: started.elapsed(),
            encode,
            sign,
            check: t.elapsed(),
        };
        progress.published(&built);
        let millis = built.elapsed.as_millis() as u64;
        let number = built.number;
        let issuer_id = issuer.kind.issuer_id();
        // Thousands of partitions a day: only full and delta CRLs log at info.
        if matches!(name, CrlName::Partition(_)) {
            tracing::debug!(issuer = issuer_id, crl = %name, number, entries, bytes, millis, "CRL published");
        } else {
            tracing::info!(issuer = issuer_id, crl = %name, number, entries, bytes, millis, "CRL published");
        }
        Ok(built)
    }

    fn full_crl(
        &self,
        issuer: &CrlIssuer,
        snap: &Snapshot<'_>,
        number: u64,
        now: UnixTime,
        cutoff: UnixTime,
        progress: &dyn Progress,
    ) -> Result<BuiltCrl> {
        let started = Instant::now();
        progress.started(issuer.kind, CrlName::Full);
        let dir = self.dir(issuer.kind);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let body = self.write_body_parallel(snap, issuer.kind, &dir, cutoff, progress)?;
        let freshest = self.config.public_base_url.as_deref().map(|base| {
            format!(
                "{}/crl/{}/delta.crl",
                base.trim_end_matches('/'),
                issuer.kind.issuer_id()
            )
        });
        let exts = extensions::full(&issuer.key_id, number, freshest.as_deref())?;
        self.finish(
            issuer,
            CrlName::Full,
            body,
            now,
            self.config.full_validity,
            &exts,
            started,
            progress,
        )
    }

    /// Scans and encodes the issuer's whole index in parallel: the key range
    /// is split into a few ranges per rayon thread, each scanned and encoded
    /// into its own body segment (bounded by one batch in memory per
    /// thread); the segments are concatenated in key order when the CRL is
    /// assembled, so the output does not depend on the thread count.
    fn write_body_parallel(
        &self,
        snap: &Snapshot<'_>,
        kind: CertKind,
        dir: &Path,
        cutoff: UnixTime,
        progress: &dyn Progress,
    ) -> Result<Vec<Body>> {
        let Some((first, last)) = snap.revoked_key_bounds(kind, None)? else {
            return Ok(Vec::new());
        };
        let splits = split_points(&first, &last, rayon::current_num_threads() * 4);
        let mut ranges: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(splits.len() + 1);
        let mut from = first;
        for s in splits {
            ranges.push((std::mem::replace(&mut from, s.clone()), Some(s)));
        }
        ranges.push((from, None));
        ranges
            .par_iter()
            .map(|(from, to)| {
                self.encode_scan(
                    snap,
                    kind,
                    None,
                    (from, to.as_deref()),
                    dir,
                    cutoff,
                    progress,
                )
            })
            .collect()
    }

    /// Scans the keys `range.0 <= key < range.1` of an issuer (or partition)
    /// and encodes them into one body segment, a batch at a time.
    #[allow(clippy::too_many_arguments)]
    fn encode_scan(
        &self,
        snap: &Snapshot<'_>,
        kind: CertKind,
        partition: Option<PartitionId>,
        range: (&[u8], Option<&[u8]>),
        dir: &Path,
        cutoff: UnixTime,
        progress: &dyn Progress,
    ) -> Result<Body> {
        let mut body = BodyWriter::create(dir)?;
        let mut buf = Vec::with_capacity(self.config.batch_size.min(1 << 16) * 48);
        let mut days = DayCache::default();
        snap.scan_revoked_range(
            kind,
            partition,
            range.0,
            range.1,
            self.config.batch_size,
            |batch| -> Result<()> {
                buf.clear();
                let n = encode_range(batch, 0..batch.len(), cutoff, &mut buf, &mut days)?;
                body.write(&buf, n)?;
                progress.entries(batch.len() as u64);
                Ok(())
            },
        )?;
        body.finish()
    }

    #[allow(clippy::too_many_arguments)]
    fn partition_crl(
        &self,
        issuer: &CrlIssuer,
        snap: &Snapshot<'_>,
        m: &Municipality,
        number: u64,
        now: UnixTime,
        cutoff: UnixTime,
        progress: &dyn Progress,
    ) -> Result<BuiltCrl> {
        let started = Instant::now();
        let name = CrlName::Partition(m.code);
        progress.started(issuer.kind, name);
        let dir = self.dir(issuer.kind);
        let body = self.encode_scan(
            snap,
            issuer.kind,
            Some(m.code),
            (&[], None),
            &dir,
            cutoff,
            progress,
        )?;
        let dp = shikko_pki::crl_dp_name_for(issuer.kind, m)?;
        let exts = extensions::partition(&issuer.key_id, number, dp)?;
        self.finish(
            issuer,
            name,
            vec![body],
            now,
            self.config.full_validity,
            &exts,
            started,
            progress,
        )
    }

    /// The changes of `issuer`'s certificates from `base.seq` to the
    /// snapshot, one entry per certificate (its status at the snapshot); a
    /// certificate back to good (a released hold) as removeFromCRL.
    fn delta_crl(
        &self,
        issuer: &CrlIssuer,
        snap: &Snapshot<'_>,
        base: Base,
        number: u64,
        now: UnixTime,
        progress: &dyn Progress,
    ) -> Result<BuiltCrl> {
        const PAGE: usize = 10_000;
        let started = Instant::now();
        progress.started(issuer.kind, CrlName::Delta);
        let dir = self.dir(issuer.kind);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        // The last status of every certificate that was listed (revoked or
        // held) at some point since the base, or released from a hold. Newly
        // issued certificates (good, never listed) are not tracked: memory is
        // bounded by the revocations and holds since the last full CRL (a
        // day: what a delta carries), not by issuance or the population.
        let mut latest: BTreeMap<Serial, (CertStatus, UnixTime, UnixTime)> = BTreeMap::new();
        let mut from = base.seq + 1;
        loop {
            let page = snap.changes(from, PAGE)?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            for rec in &page {
                // Only a resume event turns a listed certificate good again.
                let release = rec.event_type == "resume";
                for c in rec.changes.iter().filter(|c| c.kind == issuer.kind) {
                    if c.status.is_listed() || release || latest.contains_key(&c.serial) {
                        latest.insert(c.serial, (c.status, c.not_after, rec.time));
                    }
                }
            }
            if page.len() < PAGE {
                break;
            }
        }
        let mut body = BodyWriter::create(&dir)?;
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut days = DayCache::default();
        for (serial, (status, not_after, time)) in &latest {
            if *not_after < base.this_update {
                continue;
            }
            let fields = fields_of(serial, status).unwrap_or(EntryFields {
                serial,
                date: *time,
                reason: Some(RevocationReason::RemoveFromCrl),
                invalidity_date: None,
            });
            push_entry(&mut buf, &fields, &mut days)?;
            body.write(&buf, 1)?;
            buf.clear();
        }
        progress.entries(body.entries());
        let exts = extensions::delta(&issuer.key_id, number, base.number)?;
        self.finish(
            issuer,
            CrlName::Delta,
            vec![body.finish()?],
            now,
            self.config.delta_validity,
            &exts,
            started,
            progress,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_are_increasing_and_strictly_inside() {
        let key = |p: u32, s: u128| {
            let mut k = vec![1u8];
            k.extend_from_slice(&p.to_be_bytes());
            k.extend_from_slice(&[0u8; 4]);
            k.extend_from_slice(&s.to_be_bytes());
            k
        };
        for (first, last) in [
            (key(0, 0x4A50_0000), key(0, 0x4A50_FFFF)),
            (key(10_000, 5), key(11_899, 7)),
            (key(7, 1), key(7, 2)),
        ] {
            for n in [1, 2, 8, 64] {
                let splits = split_points(&first, &last, n);
                assert!(splits.len() < n.max(1));
                let mut prev = first.clone();
                for s in &splits {
                    assert!(*s > prev && s.as_slice() <= last.as_slice(), "{n}");
                    prev = s.clone();
                }
            }
        }
        assert_eq!(
            split_points(&key(0, 0x4A50_0000), &key(0, 0x4A50_FFFF), 8).len(),
            7
        );
        assert!(split_points(&key(1, 1), &key(1, 1), 8).is_empty());
    }
}
