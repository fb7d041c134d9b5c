//! `shikko-load`: load scenarios against a Shikko platform of separate
//! processes on loopback, bounded in time, with HDR latency histograms and
//! one summary table.
//!
//! It seeds a population with `shikko seed` (P-256), starts `shikko serve
//! registry`, `ocsp`, `crl` and `info` as child processes on ports chosen by
//! the OS, runs the scenarios one after the other, prints the table, and
//! stops everything:
//!
//! - ocsp: an open-loop GET/POST mix at a fixed rate, 90 % of requests on a
//!   hot 1 % of certificates, 5 % with a nonce;
//! - crl: operators polling the full CRL and the delta with conditional GETs;
//! - info: consents for the seeded signers, then QueryBatch calls;
//! - ingest: a March-peak day of revocations (75,000) in batches of 1,000,
//!   and how long until OCSP answers the last one as revoked;
//! - ocsp-start: new OCSP responder processes, as an autoscaler starts
//!   them: time from start to current, and resident memory then;
//! - follow: the registry's whole feed streamed from sequence 1, status
//!   only and with writes, as a new follower replays it; and the snapshot
//!   a new follower loads instead (every status; the status index image an
//!   OCSP responder loads, read back; the replica's writes).
//!
//! With `--mtls` every internal endpoint and call is mutual TLS, each role
//! and client with its own identity (docs/SECURITY.md); without, plaintext:
//! run both to know what mutual TLS costs.
#![forbid(unsafe_code)]

mod national;
mod platform;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "shikko-load",
    about = "Load scenarios against a Shikko platform on loopback"
)]
struct Args {
    /// Scenarios, comma separated: ocsp, crl, info, ingest, follow, ocsp-start, or all;
    /// or national alone (see --certs).
    #[arg(long, default_value = "all", value_delimiter = ',')]
    scenario: Vec<String>,
    /// Seconds each timed scenario (ocsp, crl, info) runs.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// OCSP requests per second offered.
    #[arg(long, default_value_t = 5_000)]
    ocsp_rate: u64,
    /// OCSP client connections.
    #[arg(long, default_value_t = 32)]
    ocsp_connections: usize,
    /// Operators polling CRLs.
    #[arg(long, default_value_t = 50)]
    crl_operators: usize,
    /// Revocations ingested (a March-peak day: 75,000).
    #[arg(long, default_value_t = 75_000)]
    revocations: usize,
    /// Holders seeded (enough good certificates for the revocations).
    #[arg(long, default_value_t = 100_000)]
    holders: u64,
    /// Holders with real certificates (the info scenario's consents come from them).
    #[arg(long, default_value_t = 2_000)]
    certificates: u64,
    /// Serials per info batch.
    #[arg(long, default_value_t = 1_000)]
    info_batch: usize,
    /// The shikko binary (default: beside this one).
    #[arg(long)]
    shikko: Option<PathBuf>,
    /// Keep the platform's data directory.
    #[arg(long)]
    keep: bool,
    /// Every internal endpoint and call over mutual TLS (else plaintext).
    #[arg(long)]
    mtls: bool,
    /// Certificates of the national scenario's fixture, comma separated
    /// (each size runs in turn, e.g. 1000000,100000000).
    #[arg(long, value_delimiter = ',')]
    certs: Vec<u64>,
    /// The registry as a synchronous pair: a standby (seeded at start) that
    /// holds every record before the primary acknowledges it.
    #[arg(long)]
    standby: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let shikko = match args.shikko {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("the binary's directory")?
            .join("shikko"),
    };
    anyhow::ensure!(
        shikko.exists(),
        "{} not found: build it (cargo build --release --bin shikko) or give --shikko",
        shikko.display()
    );
    if args.scenario.iter().any(|x| x == "national") {
        // Its own platform per size; not part of `all` (minutes to hours).
        let base = national::base_dir();
        std::fs::create_dir_all(&base)?;
        let rows = national::run(
            &shikko,
            &base,
            &national::sizes(&args.certs),
            args.revocations as u64,
        )
        .await;
        let _ = std::fs::remove_dir_all(&base);
        let rows = rows?;
        println!();
        println!(
            "shikko-load national: {} cores, loopback; registry, OCSP and CRL roles as separate processes; internal gRPC plaintext",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        report::print(&rows);
        return Ok(());
    }
    let wants = |s: &str| args.scenario.iter().any(|x| x == s || x == "all");
    let dir = std::env::temp_dir().join(format!("shikko-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let t = std::time::Instant::now();
    let pop = platform::seed(&shikko, &dir, args.holders, args.certificates)?;
    eprintln!(
        "seeded {} holders ({} good card auth certificates, {} signers with DER) in {:.1} s",
        args.holders,
        pop.auth_good.len(),
        pop.signers.len(),
        t.elapsed().as_secs_f64()
    );
    let p = platform::Platform::start(&shikko, &dir, args.keep, args.mtls, args.standby)?;
    // Let the followers replay the feed before loading them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let duration = Duration::from_secs(args.duration);
    let mut rows = Vec::new();
    if wants("ocsp") {
        eprintln!("running ocsp for {} s", args.duration);
        rows.push(
            scenarios::ocsp(
                &p,
                &pop,
                &scenarios::OcspLoad {
                    rate: args.ocsp_rate,
                    connections: args.ocsp_connections,
                    duration,
                    nonce_per_mille: 50,
                },
            )
            .await?,
        );
    }
    if wants("crl") {
        eprintln!("running crl for {} s", args.duration);
        rows.push(scenarios::crl(&p, args.crl_operators, duration).await?);
    }
    if wants("info") {
        eprintln!("running info for {} s", args.duration);
        rows.push(scenarios::info(&p, &pop, args.info_batch, duration).await?);
    }
    if wants("ingest") {
        eprintln!("running ingest of {} revocations", args.revocations);
        rows.push(scenarios::ingest(&p, &pop, args.revocations).await?);
    }
    if wants("ocsp-start") {
        eprintln!("running ocsp-start (three new responders)");
        rows.push(scenarios::ocsp_start(&p).await?);
    }
    if wants("follow") {
        eprintln!("running follow (the whole feed, twice; a snapshot, three ways)");
        rows.push(scenarios::follow(&p, false).await?);
        rows.push(scenarios::follow(&p, true).await?);
        for content in [
            shikko_proto::v1::SnapshotContent::Status,
            shikko_proto::v1::SnapshotContent::StatusImage,
            shikko_proto::v1::SnapshotContent::Replica,
        ] {
            rows.push(scenarios::snapshot(&p, content).await?);
        }
    }
    println!();
    println!(
        "shikko-load: {} holders, {} cores, loopback; roles as separate processes; internal gRPC {}",
        args.holders,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if p.mtls() {
            "over mutual TLS"
        } else {
            "plaintext"
        }
    );
    report::print(&rows);
    if args.keep {
        eprintln!("data kept in {}", p.dir.display());
    }
    Ok(())
}
