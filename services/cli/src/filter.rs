//! `shikko filter check`: a certificate's status from the issuer's compact
//! revocation filters (a full filter and, optionally, the newest delta),
//! each verified (the issuer's signature, its key, freshness, the delta's
//! base). "not covered" (issued after the filters, or expired before the
//! full one) means: ask OCSP.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use shikko_core::UnixTime;
use shikko_filter::{Answer, FilterSet};

/// `shikko filter check`.
#[derive(Args)]
pub(crate) struct CheckArgs {
    /// The issuing CA's certificate (PEM or DER).
    #[arg(long)]
    issuer: PathBuf,
    /// The certificate asked about (PEM or DER).
    #[arg(long)]
    cert: PathBuf,
    /// The full filter (`full.filter`).
    #[arg(long)]
    full: PathBuf,
    /// The newest delta against it (`delta.filter`).
    #[arg(long)]
    delta: Option<PathBuf>,
}

fn read_cert(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    shikko_pki::certificate_der(&bytes).with_context(|| format!("{}", path.display()))
}

/// Runs `shikko filter check`: the exit code, 0 good, 3 revoked, 4 not
/// covered (an error is 1, as every command's).
pub(crate) fn check(a: &CheckArgs) -> Result<i32> {
    let ca = read_cert(&a.issuer)?;
    let cert = read_cert(&a.cert)?;
    let now = UnixTime::now();
    let full = std::fs::read(&a.full).with_context(|| format!("reading {}", a.full.display()))?;
    let mut set = FilterSet::new(&full, &ca, now).with_context(|| a.full.display().to_string())?;
    if let Some(d) = &a.delta {
        let delta = std::fs::read(d).with_context(|| format!("reading {}", d.display()))?;
        set.apply_delta(&delta, now)
            .with_context(|| d.display().to_string())?;
    }
    let answer = set.check_certificate(&cert)?;
    let h = &set.full().header;
    let through = set.delta().map_or(h.number, |d| d.header.number);
    let (word, code) = match answer {
        Answer::Good => ("good", 0),
        Answer::Revoked => ("revoked (or on hold: the CRL or OCSP says which)", 3),
        Answer::NotCovered => ("not covered by these filters: ask OCSP", 4),
    };
    println!(
        "{}: {word} (filters {} to {through}, full filter made at {})",
        a.cert.display(),
        h.number,
        h.this_update
    );
    Ok(code)
}
