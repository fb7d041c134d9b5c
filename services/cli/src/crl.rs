//! `shikko crl build`: builds and publishes CRLs, from a data directory (the
//! store opened directly) or on a running platform (gRPC `Build`), and the
//! crl role's wiring shared with the demo.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use shikko_core::CertKind;
use shikko_crl::{BuildReport, BuiltCrl, CrlName, Progress};
use shikko_proto::convert::{cert_kind, issuer};
use shikko_proto::v1 as pb;
use shikko_store::Store;

use crate::authority::load_cas;

pub(crate) use shikko_crl::process::{builder, out_dir};

/// A progress display on a terminal: a spinner with the entries encoded.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn started(&self, kind: CertKind, name: CrlName) {
        if matches!(name, CrlName::Full | CrlName::Delta) {
            self.0.set_message(format!("{} {name}", kind.issuer_id()));
        }
    }
    fn entries(&self, n: u64) {
        self.0.inc(n);
    }
}

/// Prints one line per full and delta CRL and filter, and one per issuer's partitions.
pub(crate) fn print_report(report: &BuildReport, verbose: bool) {
    for (kind, why) in &report.filter_failures {
        eprintln!(
            "the {} filter failed (its CRLs are published): {why}",
            kind.issuer_id()
        );
    }
    println!(
        "{:<11} {:<12} {:>7} {:>11} {:>14} {:>9}",
        "issuer", "file", "number", "entries", "bytes", "ms"
    );
    let line = |issuer: &str, crl: &str, number: String, c: (u64, u64, Duration)| {
        println!(
            "{issuer:<11} {crl:<12} {number:>7} {:>11} {:>14} {:>9}",
            c.0,
            c.1,
            c.2.as_millis()
        );
    };
    for kind in CertKind::ALL {
        let mine: Vec<&BuiltCrl> = report.crls.iter().filter(|c| c.kind == kind).collect();
        if mine.is_empty() {
            continue;
        }
        let mut parts = (0u64, 0u64, 0u64, Duration::ZERO);
        for c in &mine {
            match c.name {
                CrlName::Partition(_) if !verbose => {
                    parts.0 += 1;
                    parts.1 += c.entries;
                    parts.2 += c.bytes;
                    parts.3 += c.elapsed;
                }
                name => line(
                    kind.issuer_id(),
                    &name.to_string(),
                    c.number.to_string(),
                    (c.entries, c.bytes, c.elapsed),
                ),
            }
        }
        if parts.0 > 0 {
            line(
                kind.issuer_id(),
                "partitions",
                format!("({})", parts.0),
                (parts.1, parts.2, parts.3),
            );
        }
    }
    println!("reflecting registry events up to seq {}", report.seq);
}

/// `shikko crl build --data-dir DIR`: builds with the store opened directly.
pub(crate) fn build_local(
    data_dir: &Path,
    kinds: &[CertKind],
    delta: bool,
    verbose: bool,
    public_url: &str,
) -> Result<()> {
    if !data_dir.join("keys").is_dir() || !data_dir.join("db").is_dir() {
        bail!(
            "{} is not a Shikko data directory (no keys/ or db/): create one with `shikko demo --setup-only` or `shikko seed`",
            data_dir.display()
        );
    }
    let store = Store::open(&data_dir.join("db")).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the store at {}: {e}\n(is a demo or registry running on it? then ask it: shikko crl build --endpoint http://127.0.0.1:50051)",
            data_dir.join("db").display()
        )
    })?;
    let cas = load_cas(data_dir)?;
    let builder = builder(
        Arc::new(store),
        &cas,
        data_dir,
        Some(public_url.trim_end_matches('/').to_string()),
    )?;
    let kinds = if kinds.is_empty() {
        CertKind::ALL.to_vec()
    } else {
        kinds.to_vec()
    };
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} {msg}: {pos} entries ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        Some(b)
    } else {
        None
    };
    let progress: Box<dyn Progress> = match &bar {
        Some(b) => Box::new(Bar(b.clone())),
        None => Box::new(shikko_crl::NoProgress),
    };
    let t = Instant::now();
    // One issuer after another; a failure does not stop the others.
    let mut report = BuildReport::default();
    let mut failed = Vec::new();
    for kind in &kinds {
        let r = if delta {
            builder.build_delta(&[*kind], progress.as_ref())
        } else {
            builder.build_full(&[*kind], progress.as_ref())
        };
        match r {
            Ok(r) => {
                report.seq = report.seq.max(r.seq);
                report.crls.extend(r.crls);
            }
            Err(e) => failed.push(format!("{}: {e}", kind.issuer_id())),
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if !report.crls.is_empty() {
        print_report(&report, verbose);
        println!(
            "{} CRLs and {} filters published under {} in {:.2} s",
            report.crls.iter().filter(|c| !c.name.is_filter()).count(),
            report.crls.iter().filter(|c| c.name.is_filter()).count(),
            out_dir(data_dir).display(),
            t.elapsed().as_secs_f64()
        );
    }
    if !failed.is_empty() {
        bail!("CRL builds failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

/// `shikko crl build --endpoint URL`: asks a running crl role to build.
pub(crate) async fn build_remote(
    endpoint: &str,
    kinds: &[CertKind],
    delta: bool,
    verbose: bool,
) -> Result<()> {
    let mut client = pb::crl_publisher_client::CrlPublisherClient::new(
        crate::identity::channel(endpoint, "admin", crate::identity::CRL_PUBLISHER).await?,
    );
    let t = Instant::now();
    let resp = client
        .build(pb::BuildCrlsRequest {
            issuers: kinds.iter().map(|k| issuer(*k)).collect(),
            kind: if delta {
                pb::BuildKind::Delta
            } else {
                pb::BuildKind::Full
            } as i32,
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}: {}", endpoint, s.message()))?
        .into_inner();
    let report = BuildReport {
        filter_failures: Vec::new(),
        seq: resp.seq,
        crls: resp
            .crls
            .iter()
            .filter_map(|c| {
                let kind = cert_kind(c.issuer).ok()?;
                Some(BuiltCrl {
                    kind,
                    name: CrlName::parse(&c.name)?,
                    number: c.crl_number,
                    entries: c.entries,
                    bytes: c.bytes,
                    elapsed: Duration::from_millis(c.millis),
                    encode: Duration::ZERO,
                    sign: Duration::ZERO,
                    check: Duration::ZERO,
                })
            })
            .collect(),
    };
    print_report(&report, verbose);
    println!(
        "{} CRLs and {} filters published by {endpoint} in {:.2} s",
        report.crls.iter().filter(|c| !c.name.is_filter()).count(),
        report.crls.iter().filter(|c| c.name.is_filter()).count(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
