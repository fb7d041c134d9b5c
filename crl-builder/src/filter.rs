//! Compact revocation filters (`full.filter`, `delta.filter`; the format and
//! the client are `shikko-filter`'s), built beside the CRLs from the same
//! snapshot and signed by the same key:
//!
//! - a full build publishes a full filter numbered as the full CRL of its
//!   snapshot, and removes the delta filter of the previous full one;
//! - a delta build publishes a delta filter against the published full
//!   filter, numbered as the delta CRL of its snapshot (a full filter
//!   instead, when none is published or it does not verify).
//!
//! Publication is the CRLs': a temporary file, synced, read back and
//! verified (the decoder, the issuer's signature, the issuer's key hash),
//! refused unless its number exceeds the published file's, then renamed
//! over it.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use shikko_core::{CertKind, UnixTime};
use shikko_filter::{BuildInfo, Entry, FilterError, FilterSigner, Population, SignatureAlgorithm};
use shikko_pki::Signer;
use shikko_store::{IssuedCert, Snapshot};

use crate::build::{BuiltCrl, CrlIssuer, CrlName};
use crate::error::{Error, Result};
use crate::state::sync_dir;
use crate::verify::CrlSummary;
use crate::writer::temp_path;

/// The issuer's key as a filter signer.
struct ByCa<'a>(&'a dyn Signer);

impl FilterSigner for ByCa<'_> {
    fn algorithm(&self) -> SignatureAlgorithm {
        match self.0.algorithm() {
            shikko_pki::KeyAlgorithm::EcdsaP256 => SignatureAlgorithm::EcdsaSha256,
            _ => SignatureAlgorithm::RsaSha256,
        }
    }
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, FilterError> {
        self.0
            .sign(msg)
            .map_err(|e| FilterError::Build(e.to_string()))
    }
}

/// An issuer's certificates in a snapshot, counted as they stream.
struct Issued<'a> {
    snap: &'a Snapshot<'a>,
    kind: CertKind,
    now: i64,
    /// Covered certificates and listed ones among them, of the last pass.
    counts: std::cell::Cell<(u64, u64)>,
    /// A store error of a pass (the filter's own error type cannot carry it).
    failed: std::cell::RefCell<Option<shikko_store::Error>>,
}

impl Population for Issued<'_> {
    fn each(&self, f: &mut dyn FnMut(Entry)) -> std::result::Result<(), FilterError> {
        let (mut covered, mut listed) = (0u64, 0u64);
        let now = self.now;
        let r = self
            .snap
            .scan_issued::<shikko_store::Error>(self.kind, |c: IssuedCert| {
                if c.not_before.0 <= now && c.not_after.0 > now {
                    covered += 1;
                    listed += u64::from(c.listed);
                }
                f(Entry {
                    serial: c.serial,
                    not_before: c.not_before.0,
                    not_after: c.not_after.0,
                    listed: c.listed,
                });
                Ok(())
            });
        match r {
            Ok(_) => {
                self.counts.set((covered, listed));
                Ok(())
            }
            Err(e) => {
                let why = e.to_string();
                *self.failed.borrow_mut() = Some(e);
                Err(FilterError::Build(why))
            }
        }
    }
}

/// What a filter build needs of its CRL build.
pub(crate) struct FilterRun<'a> {
    pub(crate) issuer: &'a CrlIssuer,
    pub(crate) snap: &'a Snapshot<'a>,
    pub(crate) dir: std::path::PathBuf,
    /// The snapshot's time: thisUpdate and coverage.
    pub(crate) now: UnixTime,
    /// The number of the CRL built from the same snapshot: the filter's own.
    pub(crate) number: u64,
    pub(crate) validity: Duration,
}

/// Removes the published filters of the issuer directory `dir` (filters
/// turned off: withdrawn rather than left to go stale).
pub(crate) fn withdraw(dir: &Path) -> Result<()> {
    let mut removed = false;
    for name in [CrlName::DeltaFilter, CrlName::FullFilter] {
        let path = dir.join(name.file_name());
        match fs::remove_file(&path) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    if removed {
        tracing::info!(dir = %dir.display(), "filters are turned off: the published ones are withdrawn");
        sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Builds and publishes a full filter; removes the delta filter of the
/// previous one.
pub(crate) fn full(run: &FilterRun<'_>) -> Result<BuiltCrl> {
    let built = build(run, None)?;
    let stale = run.dir.join(CrlName::DeltaFilter.file_name());
    match fs::remove_file(&stale) {
        Ok(()) => sync_dir(&run.dir).map_err(|e| Error::io(&run.dir, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&stale, e)),
    }
    Ok(built)
}

/// Builds and publishes a delta filter against the published full filter;
/// a full one when none is published (or it does not verify).
pub(crate) fn delta(run: &FilterRun<'_>) -> Result<BuiltCrl> {
    let path = run.dir.join(CrlName::FullFilter.file_name());
    let published = match fs::read(&path) {
        Ok(bytes) => match shikko_filter::verify(&bytes, &run.issuer.ca_der, UnixTime(i64::MIN)) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "the published full filter does not verify: building a full filter");
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&path, e)),
    };
    match published {
        Some(f) => build(run, Some(&f)),
        None => full(run),
    }
}

fn build(run: &FilterRun<'_>, base: Option<&shikko_filter::FilterFile>) -> Result<BuiltCrl> {
    let started = Instant::now();
    let kind = run.issuer.kind();
    let name = if base.is_some() {
        CrlName::DeltaFilter
    } else {
        CrlName::FullFilter
    };
    let dest = run.dir.join(name.file_name());
    let info = BuildInfo {
        issuer_key_hash: run.issuer.filter_key,
        number: run.number,
        crl_number: crl_number_octets(run.number),
        now: run.now,
        next_update: UnixTime(
            run.now
                .0
                .saturating_add(i64::try_from(run.validity.as_secs()).unwrap_or(i64::MAX)),
        ),
    };
    let population = Issued {
        snap: run.snap,
        kind,
        now: run.now.0,
        counts: Default::default(),
        failed: Default::default(),
    };
    let signer = ByCa(run.issuer.signer.as_ref());
    let built = match base {
        None => shikko_filter::build_full_from(&info, &population, &signer),
        Some(f) => shikko_filter::build_delta_from(&info, f, &population, &signer),
    };
    let bytes = match built {
        Ok(b) => b,
        Err(e) => {
            if let Some(store) = population.failed.borrow_mut().take() {
                return Err(Error::Store(store));
            }
            return Err(Error::Filter {
                path: dest,
                why: e.to_string(),
            });
        }
    };
    let encode = started.elapsed();
    let t = Instant::now();
    publish(&bytes, &dest, run.issuer)?;
    let (_, listed) = population.counts.get();
    let built = BuiltCrl {
        kind,
        name,
        number: run.number,
        entries: listed,
        bytes: bytes.len() as u64,
        elapsed: started.elapsed(),
        encode,
        sign: Duration::ZERO,
        check: t.elapsed(),
    };
    tracing::info!(
        issuer = kind.issuer_id(),
        filter = %name,
        number = run.number,
        listed,
        bytes = built.bytes,
        millis = built.elapsed.as_millis() as u64,
        "filter published"
    );
    Ok(built)
}

/// The CRL number, big-endian, without leading zero octets (one octet for 0).
fn crl_number_octets(n: u64) -> Vec<u8> {
    let b = n.to_be_bytes();
    let first = b.iter().position(|&x| x != 0).unwrap_or(7);
    b[first..].to_vec()
}

/// Writes `bytes` to a temporary file beside `dest`, syncs it, reads it
/// back and verifies it, and renames it over `dest` if its number exceeds
/// the published one's. The temporary file is removed on refusal.
fn publish(bytes: &[u8], dest: &Path, issuer: &CrlIssuer) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(dir, "filter");
    let result = (|| {
        let write = || -> std::io::Result<()> {
            crate::publish::io_failpoint("crl-enospc")?;
            let mut f = fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()
        };
        write().map_err(|e| Error::io(&tmp, e))?;
        let back = fs::read(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let new = shikko_filter::verify(&back, &issuer.ca_der, UnixTime::now()).map_err(|e| {
            Error::Filter {
                path: tmp.clone(),
                why: e.to_string(),
            }
        })?;
        match fs::read(dest) {
            Ok(old) => match shikko_filter::format::decode(&old) {
                Ok(old) if old.header.number >= new.header.number => {
                    return Err(Error::NumberNotIncreasing {
                        path: dest.to_path_buf(),
                        published: old.header.number,
                        new: new.header.number,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(file = %dest.display(), error = %e, "replacing an unreadable published filter")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(dest, e)),
        }
        fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))?;
        sync_dir(dir).map_err(|e| Error::io(dest, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What a filter file's header says, as the catalog describes files: its
/// number, base (a delta's), times, size and a tag of its signature.
pub(crate) fn summary(bytes: &[u8], path: &Path) -> Result<CrlSummary> {
    let f = shikko_filter::format::decode(bytes).map_err(|e| Error::Filter {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    let h = &f.header;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &f.signature);
    let mut signature_tag = [0u8; 8];
    signature_tag.copy_from_slice(&digest.as_ref()[..8]);
    Ok(CrlSummary {
        number: h.number,
        delta_base: (h.kind == shikko_filter::Kind::Delta).then_some(h.base),
        this_update: UnixTime(h.this_update),
        next_update: Some(UnixTime(h.next_update)),
        entries: None,
        size: bytes.len() as u64,
        signature_tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_numbers_are_minimal_big_endian() {
        assert_eq!(crl_number_octets(0), vec![0]);
        assert_eq!(crl_number_octets(1), vec![1]);
        assert_eq!(crl_number_octets(0x80), vec![0x80]);
        assert_eq!(crl_number_octets(0x1234), vec![0x12, 0x34]);
    }
}
