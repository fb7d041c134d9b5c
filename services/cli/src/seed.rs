//! `shikko seed`: a large synthetic population, records only except for a
//! sample of holders who get real certificates.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use shikko_core::UnixTime;
use shikko_pki::{KeyAlgorithm, Signer};
use shikko_population::synthetic::Population;
use shikko_registry::Registry;
use shikko_runtime::telemetry::Metrics;

use crate::authority::Authority;
use crate::load::load_population;
use crate::serve::open_store;
use shikko_population::history::CertMaker;

/// Runs the seed.
pub(crate) async fn run(
    data_dir: &Path,
    holders: u64,
    certificates: u64,
    alg: KeyAlgorithm,
    seed: u64,
) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(data_dir)?;
    let authority = tokio::task::block_in_place(|| Authority::open_or_create(data_dir, alg))?;
    let store = open_store(data_dir)?;
    let registry = Registry::new(
        store.clone(),
        Metrics::new(env!("CARGO_PKG_VERSION"))?.registry(),
    )?;
    let maker = CertMaker {
        issuers: authority
            .cas
            .iter()
            .map(|c| c.issuer())
            .collect::<shikko_pki::Result<Vec<_>>>()?,
        holder_keys: authority
            .holder_keys
            .iter()
            .map(|k| k.as_ref() as &dyn Signer)
            .collect(),
        ocsp_url: None,
    };
    let report = load_population(
        &registry,
        &Population::new(seed),
        holders,
        certificates.min(holders),
        Some(&maker),
        UnixTime::now(),
        true,
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {holders} holders into {}: {} events applied, {} duplicates (already there), {} rejected, {} certificates with DER, in {secs:.1} s ({:.0} events/s)",
        data_dir.display(),
        report.applied,
        report.duplicates,
        report.rejected(),
        report.with_der.len(),
        report.applied as f64 / secs.max(1e-9),
    );
    for r in &report.first_rejections {
        println!("  rejected: {r}");
    }
    println!("store now at seq {}", store.last_seq());
    Ok(())
}
