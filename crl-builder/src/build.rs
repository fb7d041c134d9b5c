//! Building CRLs from the store: full (per issuer), partitioned (per
//! municipality) and delta, each streamed to a temporary file, checked, and
//! published by atomic rename. This file holds the builder's types and the
//! order of a build; the scan of the revoked index is [`crate::scan`], the
//! delta's change collection [`crate::delta`], the assembly and signature
//! [`crate::writer`], the checks and the rename [`crate::publish`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use shikko_core::{CertKind, Municipality, PartitionId, UnixTime};
use shikko_pki::{Issuer, Signer};
use shikko_store::{Snapshot, Store};

use crate::delta;
use crate::error::{Error, Result};
use crate::extensions;
use crate::publish::{clean_stale, highest_published, publish, strictly_after_published};
use crate::scan::Scan;
use crate::state::{Base, State};
use crate::verify::CrlSummary;
use crate::writer::{Body, TbsFields, assemble, temp_path};

/// Which file of an issuer: one of its CRLs, or one of its compact
/// revocation filters (built and published beside them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CrlName {
    /// Every entry of the issuer: `full.crl`.
    Full,
    /// Changes since the last full CRL: `delta.crl`.
    Delta,
    /// The entries of one municipality's certificates: `NNNNNN.crl`.
    Partition(PartitionId),
    /// The full compact revocation filter: `full.filter` (docs/FILTER.md).
    FullFilter,
    /// The delta filter against it: `delta.filter`.
    DeltaFilter,
}

impl CrlName {
    /// Parses `full`, `delta`, a 6-digit municipality code (not 000000),
    /// `full-filter` or `delta-filter`.
    pub fn parse(s: &str) -> Option<CrlName> {
        match s {
            "full" => Some(CrlName::Full),
            "delta" => Some(CrlName::Delta),
            "full-filter" => Some(CrlName::FullFilter),
            "delta-filter" => Some(CrlName::DeltaFilter),
            _ if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) => {
                let code: u32 = s.parse().ok()?;
                (code != 0).then_some(CrlName::Partition(PartitionId(code)))
            }
            _ => None,
        }
    }

    /// The name of a published file (`full.crl`, `123456.crl`, `full.filter`, ...).
    pub fn from_file_name(file: &str) -> Option<CrlName> {
        match file {
            "full.filter" => Some(CrlName::FullFilter),
            "delta.filter" => Some(CrlName::DeltaFilter),
            _ => file
                .strip_suffix(".crl")
                .and_then(CrlName::parse)
                .filter(|n| !n.is_filter()),
        }
    }

    /// The published file's name.
    pub fn file_name(&self) -> String {
        match self {
            CrlName::FullFilter => "full.filter".into(),
            CrlName::DeltaFilter => "delta.filter".into(),
            _ => format!("{self}.crl"),
        }
    }

    /// A compact revocation filter, not a CRL.
    pub fn is_filter(&self) -> bool {
        matches!(self, CrlName::FullFilter | CrlName::DeltaFilter)
    }

    /// Its path under the HTTP root: `/crl/ISSUER/NAME.crl` or `/filter/ISSUER/NAME.filter`.
    pub fn url_path(&self, kind: CertKind) -> String {
        let root = if self.is_filter() { "filter" } else { "crl" };
        format!("/{root}/{}/{}", kind.issuer_id(), self.file_name())
    }
}

impl fmt::Display for CrlName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrlName::Full => f.write_str("full"),
            CrlName::Delta => f.write_str("delta"),
            CrlName::Partition(p) => write!(f, "{p}"),
            CrlName::FullFilter => f.write_str("full-filter"),
            CrlName::DeltaFilter => f.write_str("delta-filter"),
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
    /// Whether builds also publish compact revocation filters (default
    /// true); when false, builds withdraw the published ones.
    pub filters: bool,
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
            filters: true,
        }
    }
}

/// A CA whose CRLs are built: its kind, key and name.
pub struct CrlIssuer {
    kind: CertKind,
    pub(crate) signer: Arc<dyn Signer>,
    /// The CA certificate (DER): what filters are verified against.
    pub(crate) ca_der: Vec<u8>,
    /// Its key hash: the filters' issuer.
    pub(crate) filter_key: [u8; 32],
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
        let filter_key =
            shikko_filter::issuer_key_hash(ca_certificate).map_err(|e| Error::Filter {
                path: PathBuf::from("<CA certificate>"),
                why: e.to_string(),
            })?;
        Ok(CrlIssuer {
            kind,
            signer,
            ca_der: ca_certificate.to_vec(),
            filter_key,
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
    /// The CRLs (and filters) published, in order.
    pub crls: Vec<BuiltCrl>,
    /// Filters that failed (issuer, why): logged and counted, but a CRL
    /// build does not fail for them (its CRLs are published).
    pub filter_failures: Vec<(CertKind, String)>,
}

impl BuildReport {
    /// Records a filter's build: published, or failed (logged).
    fn filter(&mut self, kind: CertKind, built: Result<BuiltCrl>) {
        match built {
            Ok(b) => self.crls.push(b),
            Err(e) => {
                tracing::error!(issuer = kind.issuer_id(), error = %e, "filter build failed (the CRLs are published)");
                self.filter_failures.push((kind, e.to_string()));
            }
        }
    }
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

            let run = Run {
                issuer,
                snap: &snap,
                now,
                cutoff,
                progress,
            };
            report.crls.push(self.full_crl(&run, first)?);

            let parts: Vec<Result<BuiltCrl>> = munis
                .par_iter()
                .enumerate()
                .map(|(i, m)| self.partition_crl(&run, m, first + 1 + i as u64))
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
            report.crls.push(self.delta_crl(&run, base, delta_number)?);
            self.filters(&mut report, &run, first, true)?;
        }
        Ok(report)
    }

    /// The filter step of a CRL build (a full filter after a full CRL, a
    /// delta after a delta), from its snapshot and numbered as its CRL; a
    /// failed filter is reported, not an error. Filters turned off: the
    /// published ones are withdrawn.
    fn filters(
        &self,
        report: &mut BuildReport,
        run: &Run<'_>,
        number: u64,
        full: bool,
    ) -> Result<()> {
        let kind = run.issuer.kind;
        if !self.config.filters {
            return crate::filter::withdraw(&self.dir(kind));
        }
        let filter_run = self.filter_run(run, number, full);
        let built = if full {
            crate::filter::full(&filter_run)
        } else {
            crate::filter::delta(&filter_run)
        };
        report.filter(kind, built);
        Ok(())
    }

    /// A filter build from a CRL build's snapshot, numbered as its CRL.
    fn filter_run<'a>(
        &self,
        run: &'a Run<'a>,
        number: u64,
        full: bool,
    ) -> crate::filter::FilterRun<'a> {
        crate::filter::FilterRun {
            issuer: run.issuer,
            snap: run.snap,
            dir: self.dir(run.issuer.kind),
            now: run.now,
            number,
            validity: if full {
                self.config.full_validity
            } else {
                self.config.delta_validity
            },
        }
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
            // The mirror's feed starts after a snapshot it loaded: a base
            // older than that cannot be brought up to date by a delta
            // (the changes in between are not in the feed), so a full CRL
            // (and a fresh delta) is built instead.
            let first_seq = self.store.first_seq();
            if base.seq + 1 < first_seq {
                drop(state);
                tracing::info!(
                    issuer = kind.issuer_id(),
                    base_seq = base.seq,
                    first_seq,
                    "the feed no longer reaches back to the base CRL: building a full CRL"
                );
                let full = self.build_full(&[kind], progress)?;
                report.seq = report.seq.max(full.seq);
                report.crls.extend(full.crls);
                continue;
            }
            let snap = self.store.snapshot()?;
            state.at_least(kind, highest_published(&self.dir(kind))? + 1)?;
            let number = state.reserve(kind, 1)?;
            report.seq = snap.seq();
            let run = Run {
                issuer,
                snap: &snap,
                now: UnixTime::now(),
                // Deltas list changes since the base: no expiry cutoff of their own.
                cutoff: base.this_update,
                progress,
            };
            report.crls.push(self.delta_crl(&run, base, number)?);
            self.filters(&mut report, &run, number, false)?;
        }
        Ok(report)
    }

    fn finish(&self, draft: Draft<'_>, progress: &dyn Progress) -> Result<BuiltCrl> {
        let Draft {
            issuer,
            name,
            bodies,
            this_update,
            validity,
            extensions,
            started,
        } = draft;
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
            extensions: &extensions,
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

    /// The scan of `run`'s issuer, written into its directory.
    fn scan<'a>(&self, run: &'a Run<'a>, dir: &'a Path) -> Scan<'a> {
        Scan {
            snap: run.snap,
            kind: run.issuer.kind,
            dir,
            cutoff: run.cutoff,
            batch_size: self.config.batch_size,
            progress: run.progress,
        }
    }

    fn full_crl(&self, run: &Run<'_>, number: u64) -> Result<BuiltCrl> {
        let issuer = run.issuer;
        let started = Instant::now();
        run.progress.started(issuer.kind, CrlName::Full);
        let dir = self.dir(issuer.kind);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let bodies = self.scan(run, &dir).parallel()?;
        let freshest = self.config.public_base_url.as_deref().map(|base| {
            format!(
                "{}/crl/{}/delta.crl",
                base.trim_end_matches('/'),
                issuer.kind.issuer_id()
            )
        });
        let extensions = extensions::full(&issuer.key_id, number, freshest.as_deref())?;
        let draft = Draft {
            issuer,
            name: CrlName::Full,
            bodies,
            this_update: run.now,
            validity: self.config.full_validity,
            extensions,
            started,
        };
        self.finish(draft, run.progress)
    }

    fn partition_crl(&self, run: &Run<'_>, m: &Municipality, number: u64) -> Result<BuiltCrl> {
        let issuer = run.issuer;
        let started = Instant::now();
        let name = CrlName::Partition(m.code);
        run.progress.started(issuer.kind, name);
        let dir = self.dir(issuer.kind);
        let body = self.scan(run, &dir).range(Some(m.code), (&[], None))?;
        let dp = shikko_pki::crl_dp_name_for(issuer.kind, m)?;
        let extensions = extensions::partition(&issuer.key_id, number, dp)?;
        let draft = Draft {
            issuer,
            name,
            bodies: vec![body],
            this_update: run.now,
            validity: self.config.full_validity,
            extensions,
            started,
        };
        self.finish(draft, run.progress)
    }

    /// The changes of the issuer's certificates from `base.seq` to the
    /// snapshot (see [`crate::delta`]).
    fn delta_crl(&self, run: &Run<'_>, base: Base, number: u64) -> Result<BuiltCrl> {
        let issuer = run.issuer;
        let started = Instant::now();
        run.progress.started(issuer.kind, CrlName::Delta);
        let dir = self.dir(issuer.kind);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let body = delta::encode(run.snap, issuer.kind, base, &dir)?;
        run.progress.entries(body.entries());
        let extensions = extensions::delta(&issuer.key_id, number, base.number)?;
        let draft = Draft {
            issuer,
            name: CrlName::Delta,
            bodies: vec![body],
            this_update: run.now,
            validity: self.config.delta_validity,
            extensions,
            started,
        };
        self.finish(draft, run.progress)
    }
}

/// One issuer's build: what every CRL of it is made from.
struct Run<'a> {
    issuer: &'a CrlIssuer,
    snap: &'a Snapshot<'a>,
    /// thisUpdate of the CRLs.
    now: UnixTime,
    /// Entries of certificates that expired before this are left out.
    cutoff: UnixTime,
    progress: &'a dyn Progress,
}

/// A CRL's parts before it is assembled, signed, checked and published.
struct Draft<'a> {
    issuer: &'a CrlIssuer,
    name: CrlName,
    bodies: Vec<Body>,
    this_update: UnixTime,
    validity: Duration,
    extensions: Vec<u8>,
    started: Instant,
}
