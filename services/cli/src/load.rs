//! Loading a synthetic population into the registry (used by `demo` and `seed`),
//! through the same ingest path as the network: `Registry::ingest`.

use std::collections::BTreeMap;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use shikko_core::{CertKind, Serial, UnixTime};
use shikko_population::synthetic::Population;
use shikko_registry::Registry;
use shikko_store::{IngestMode, Outcome};

use shikko_population::history::{CertMaker, History, holder_history};

/// Holders generated and ingested together; events within a chunk are sorted by time.
const CHUNK_HOLDERS: u64 = 5_000;

/// What a load did.
#[derive(Debug, Default)]
pub(crate) struct LoadReport {
    pub(crate) applied: u64,
    pub(crate) duplicates: u64,
    pub(crate) rejected_by_rule: BTreeMap<&'static str, u64>,
    pub(crate) first_rejections: Vec<String>,
    pub(crate) with_der: Vec<(CertKind, Serial)>,
    pub(crate) by_type: BTreeMap<&'static str, u64>,
}

impl LoadReport {
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected_by_rule.values().sum()
    }
}

/// Generates holders `0..holders` (certificates with DER for the first
/// `der_for`, when `maker` is given) and ingests their histories.
pub(crate) async fn load_population(
    registry: &Registry,
    pop: &Population,
    holders: u64,
    der_for: u64,
    maker: Option<&CertMaker<'_>>,
    now: UnixTime,
    progress: bool,
) -> Result<LoadReport> {
    let bar = if progress {
        let b = ProgressBar::new(holders);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg:12} [{bar:40}] {pos}/{len} holders ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.set_message("loading");
        b
    } else {
        ProgressBar::hidden()
    };
    let mut report = LoadReport::default();
    let mut start = 0;
    while start < holders {
        let end = (start + CHUNK_HOLDERS).min(holders);
        let generated: Vec<History> = tokio::task::block_in_place(|| {
            (start..end)
                .into_par_iter()
                .map(|i| holder_history(pop, i, now, if i < der_for { maker } else { None }))
                .collect::<shikko_pki::Result<Vec<_>>>()
        })?;
        let mut events = Vec::new();
        for (ev, der) in generated {
            events.extend(ev);
            report.with_der.extend(der);
        }
        // Per-holder order is already right; a stable sort by time keeps it.
        events.sort_by_key(|e| e.time);
        for batch in events.chunks(10_000) {
            let outcomes = registry
                .ingest(batch.to_vec(), IngestMode::PerEvent)
                .await?;
            for (e, o) in batch.iter().zip(outcomes) {
                match o {
                    Outcome::Applied { .. } => {
                        report.applied += 1;
                        *report.by_type.entry(e.body.type_name()).or_default() += 1;
                    }
                    Outcome::Duplicate { .. } => report.duplicates += 1,
                    Outcome::Rejected(v) => {
                        *report.rejected_by_rule.entry(v.rule()).or_default() += 1;
                        if report.first_rejections.len() < 5 {
                            report.first_rejections.push(format!("event {}: {v}", e.id));
                        }
                    }
                    Outcome::Aborted => {}
                }
            }
        }
        bar.set_position(end);
        start = end;
    }
    bar.finish_and_clear();
    Ok(report)
}
