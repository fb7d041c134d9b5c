//! `shikko-load` runs every scenario from one command against the four
//! roles as processes and prints its table (small sizes: this checks the
//! tool, not the platform's speed; docs/BENCHMARKS.md has the figures).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn every_scenario_runs_and_reports_without_errors() {
    let bin = Path::new(env!("CARGO_BIN_EXE_shikko-load"));
    let shikko = bin.parent().unwrap().join("shikko");
    assert!(
        shikko.exists(),
        "{} is built with the workspace (cargo test --workspace --profile dev)",
        shikko.display()
    );
    let out = Command::new(bin)
        .args([
            "--holders",
            "3000",
            "--certificates",
            "200",
            "--revocations",
            "1000",
            "--duration",
            "2",
            "--ocsp-rate",
            "300",
            "--crl-operators",
            "4",
            "--info-batch",
            "100",
            // Every internal call over mutual TLS, as deployed.
            "--mtls",
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| {
            ["ocsp ", "crl ", "info ", "ingest ", "follow "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert_eq!(rows.len(), 6, "{table}");
    for row in &rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        // The errors column is the one before the note; every row counted work.
        let errors_at = cols.iter().position(|c| c.contains('.')).unwrap() + 5;
        assert_eq!(cols[errors_at], "0", "errors in: {row}");
    }
    assert!(table.contains("conditional hits"), "{table}");
    assert!(table.contains("answered revoked by OCSP"), "{table}");
    assert!(table.contains("internal gRPC over mutual TLS"), "{table}");
    assert!(!table.contains("NOT within"), "{table}");
}
