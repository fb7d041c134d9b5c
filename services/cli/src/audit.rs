//! `shikko audit`: export the 4-information audit log, verify an export
//! (its chain, the running log's head, signed tree heads), a record's
//! inclusion and a head's consistency with an earlier one; print the head;
//! and `shikko witness`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use shikko_proto::v1 as pb;

use crate::info::{admin_client, status_error};

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Write the audit log (JSON lines) from a running platform.
    Export {
        /// The platform's internal gRPC endpoint.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// From this sequence number.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check the audit log. An export (FILE): every record's hash, every
    /// link, no gap; with --head or --endpoint, that nothing was cut off the
    /// end; with --signed-head, that its records are those the signed heads
    /// vouch for. With --endpoint and --audit-key: --record SEQ checks a
    /// record's inclusion under the current signed head, --since HEAD.json
    /// that the current head extends one obtained before.
    Verify(VerifyArgs),
    /// Archive the records below SEQ to a file (JSON lines, synced, their
    /// chain checked) with the signed head that vouches for them
    /// (OUT.head.json), then delete them from the store (retention). The
    /// tree stays: what remains keeps verifying, and the archive followed by
    /// a later export verifies against the signed heads (`verify
    /// ARCHIVE+EXPORT --signed-head`).
    Archive {
        /// The platform's internal gRPC endpoint.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// Archive and prune the records below this sequence number.
        #[arg(long)]
        below: u64,
        /// The archive file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the audit log's head (last seq and hash), or its signed tree head.
    Head {
        /// The platform's internal gRPC endpoint.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// The signed tree head, as JSON (keep it: `verify --since` checks later heads against it).
        #[arg(long)]
        signed: bool,
        /// Write it to this file too.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `shikko witness`: the audit log's witness.
#[derive(clap::Args)]
pub(crate) struct WitnessArgs {
    /// The platform's internal gRPC endpoint serving InfoAdmin.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    endpoint: String,
    /// The audit key's public key (PEM).
    #[arg(long)]
    audit_key: PathBuf,
    /// The witness's own state directory (its key, the last head, cosignatures, alarms).
    #[arg(long)]
    state: PathBuf,
    /// Check once and exit: 0 cosigned, 2 alarm, 1 could not check.
    #[arg(long)]
    once: bool,
    /// Seconds between checks.
    #[arg(long, default_value_t = 60)]
    interval_secs: u64,
    /// A head older than this (seconds) is an alarm (stale: the log signs nothing new).
    #[arg(long, default_value_t = 600)]
    max_age_secs: i64,
    /// Take this head (JSON) as the starting point, on the first run only.
    #[arg(long)]
    trust: Option<PathBuf>,
    /// Serve /metrics here (`shikko_witness_*`); without --once.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
}

/// Runs `shikko audit ...`.
pub(crate) async fn audit(cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Export {
            endpoint,
            from,
            out,
        } => {
            let mut stream = admin_client(&endpoint, "auditor")
                .await?
                .export_audit(pb::ExportAuditRequest { from_seq: from })
                .await
                .map_err(status_error)?
                .into_inner();
            let mut w: Box<dyn std::io::Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut n = 0u64;
            while let Some(chunk) = stream.message().await.map_err(status_error)? {
                for line in chunk.lines {
                    writeln!(w, "{line}")?;
                    n += 1;
                }
            }
            w.flush()?;
            if out.is_some() {
                eprintln!("{n} audit records written");
            }
        }
        AuditCommand::Verify(args) => verify(args).await?,
        AuditCommand::Archive {
            endpoint,
            below,
            out,
        } => archive(&endpoint, below, &out).await?,
        AuditCommand::Head {
            endpoint,
            signed,
            out,
        } => {
            let line = if signed {
                let sth = signed_head(&endpoint, "auditor").await?;
                shikko_info::heads::HeadFile::of(&sth).to_json()
            } else {
                let h = admin_client(&endpoint, "auditor")
                    .await?
                    .audit_head(pb::AuditHeadRequest {})
                    .await
                    .map_err(status_error)?
                    .into_inner();
                format!("seq {} hash {}", h.seq, h.hash)
            };
            if let Some(p) = out {
                std::fs::write(&p, format!("{line}\n"))
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            println!("{line}");
        }
    }
    Ok(())
}

/// `shikko audit verify`.
#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    /// The exported file (`-` for standard input).
    file: Option<PathBuf>,
    /// The file starts after seq 1 (its first link is not checked).
    #[arg(long)]
    partial: bool,
    /// The expected hash of the last record.
    #[arg(long)]
    head: Option<String>,
    /// Ask a running platform for its head instead.
    #[arg(long)]
    endpoint: Option<String>,
    /// The audit key's public key (PEM), to check signed heads with.
    #[arg(long)]
    audit_key: Option<PathBuf>,
    /// A signed head (JSON, from `shikko audit head --signed` or the
    /// heads directory) the export must match (repeatable).
    #[arg(long)]
    signed_head: Vec<PathBuf>,
    /// Check that this record is in the log under the current signed head.
    #[arg(long)]
    record: Option<u64>,
    /// Check that the current signed head extends this earlier one (JSON).
    #[arg(long)]
    since: Option<PathBuf>,
}

fn open_input(file: &Path) -> Result<Box<dyn std::io::BufRead>> {
    Ok(if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
        ))
    })
}

/// The audit key's SubjectPublicKeyInfo from `--audit-key`.
fn audit_spki(path: Option<&Path>, why: &str) -> Result<Vec<u8>> {
    let Some(p) = path else {
        bail!("{why} needs --audit-key (the audit key's public key, PEM)")
    };
    shikko_info::heads::read_public_key(p).map_err(anyhow::Error::msg)
}

/// A signed head from a file, its signature checked.
fn read_signed(path: &Path, spki: &[u8]) -> Result<shikko_pki::tree_head::SignedTreeHead> {
    let sth = shikko_info::heads::HeadFile::read(path).map_err(anyhow::Error::msg)?;
    if !shikko_pki::tree_head::verify(&sth, spki) {
        bail!("{} is NOT signed by the audit key", path.display());
    }
    Ok(sth)
}

/// The current signed head from a running platform.
pub(crate) async fn signed_head(
    endpoint: &str,
    identity: &str,
) -> Result<shikko_pki::tree_head::SignedTreeHead> {
    let h = admin_client(endpoint, identity)
        .await?
        .audit_tree_head(pb::AuditTreeHeadRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    head_of(h)
}

/// A signed head as the wire carries it (not verified).
pub(crate) fn head_of(h: pb::SignedTreeHead) -> Result<shikko_pki::tree_head::SignedTreeHead> {
    Ok(shikko_pki::tree_head::SignedTreeHead {
        head: shikko_pki::tree_head::TreeHead {
            size: h.size,
            root: h
                .root
                .try_into()
                .map_err(|_| anyhow::anyhow!("the head's root is not 32 octets"))?,
            time: shikko_core::UnixTime(h.time),
        },
        signature: h.signature,
    })
}

/// The consistency proof `last` needs for `sth`, from the platform (empty
/// when none is needed).
async fn consistency_for(
    client: &mut shikko_proto::v1::info_admin_client::InfoAdminClient<tonic::transport::Channel>,
    last: Option<&shikko_pki::tree_head::SignedTreeHead>,
    sth: &shikko_pki::tree_head::SignedTreeHead,
) -> Result<Vec<shikko_core::merkle::Hash>> {
    match shikko_info::witness::proof_needed(last, sth) {
        Some((o, n)) => hashes(
            client
                .audit_consistency(pb::AuditConsistencyRequest {
                    old_size: o,
                    new_size: n,
                })
                .await
                .map_err(status_error)?
                .into_inner()
                .hashes,
        ),
        None => Ok(Vec::new()),
    }
}

fn hashes(v: Vec<Vec<u8>>) -> Result<Vec<shikko_core::merkle::Hash>> {
    v.into_iter()
        .map(|h| {
            h.try_into()
                .map_err(|_| anyhow::anyhow!("a proof hash is not 32 octets"))
        })
        .collect()
}

async fn verify(a: VerifyArgs) -> Result<()> {
    if a.file.is_none() && a.record.is_none() && a.since.is_none() {
        bail!("nothing to verify: give an exported FILE, --record SEQ or --since HEAD.json");
    }
    if let Some(file) = &a.file {
        let expected = match (&a.head, &a.endpoint) {
            (Some(h), _) => Some(h.clone()),
            (None, Some(ep)) if a.signed_head.is_empty() => Some(
                admin_client(ep, "auditor")
                    .await?
                    .audit_head(pb::AuditHeadRequest {})
                    .await
                    .map_err(status_error)?
                    .into_inner()
                    .hash,
            ),
            _ => None,
        };
        match shikko_info::audit::verify(open_input(file)?, a.partial, expected.as_deref()) {
            Ok(s) => println!(
                "audit log intact: {} records, seq {} to {}, head {}{}",
                s.records,
                s.first_seq,
                s.last_seq,
                s.head,
                if expected.is_some() {
                    " (the expected head)"
                } else {
                    ""
                }
            ),
            Err(e) => bail!("audit log NOT intact: {e}"),
        }
        if !a.signed_head.is_empty() {
            if a.partial {
                bail!("--signed-head needs an export from seq 1 (not --partial)");
            }
            let spki = audit_spki(a.audit_key.as_deref(), "--signed-head")?;
            let heads = a
                .signed_head
                .iter()
                .map(|p| read_signed(p, &spki))
                .collect::<Result<Vec<_>>>()?;
            match shikko_info::heads::check_export(open_input(file)?, &heads) {
                Ok(_) => {
                    for h in &heads {
                        println!(
                            "the export's first {} records are those of the head signed at {} (signature checked)",
                            h.head.size, h.head.time.0
                        );
                    }
                }
                Err(e) => bail!("audit log NOT intact: {e}"),
            }
        }
    }
    if a.record.is_none() && a.since.is_none() {
        return Ok(());
    }
    let Some(ep) = &a.endpoint else {
        bail!("--record and --since ask a running platform: give --endpoint")
    };
    let spki = audit_spki(a.audit_key.as_deref(), "--record or --since")?;
    let current = signed_head(ep, "auditor").await?;
    if !shikko_pki::tree_head::verify(&current, &spki) {
        bail!(
            "the platform's head of {} records is NOT signed by the audit key",
            current.head.size
        );
    }
    println!(
        "signed head: {} records, signed at {}, root {}",
        current.head.size,
        current.head.time.0,
        hex::encode(current.head.root)
    );
    let mut client = admin_client(ep, "auditor").await?;
    if let Some(seq) = a.record {
        let r = client
            .audit_inclusion(pb::AuditInclusionRequest {
                seq,
                size: current.head.size,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        shikko_info::heads::check_inclusion(&current, seq, &r.record, &hashes(r.hashes)?)
            .map_err(|e| anyhow::anyhow!("audit log NOT intact: {e}"))?;
        println!(
            "record {seq} is in the log under the signed head:\n{}",
            r.record
        );
    }
    if let Some(old) = &a.since {
        let old = read_signed(old, &spki)?;
        let proof = consistency_for(&mut client, Some(&old), &current).await?;
        // The age of the current head is not this command's question.
        shikko_info::witness::judge(
            Some(&old),
            &current,
            &spki,
            &proof,
            current.head.time,
            i64::MAX,
        )
        .map_err(|e| anyhow::anyhow!("audit log NOT intact: {e}"))?;
        println!(
            "the log of {} records extends the one of {} signed at {}: nothing under that head was changed",
            current.head.size, old.head.size, old.head.time.0
        );
    }
    Ok(())
}

/// Runs `shikko witness`.
pub(crate) async fn witness(a: WitnessArgs) -> Result<()> {
    use shikko_info::witness::{WitnessState, judge};
    let spki = shikko_info::heads::read_public_key(&a.audit_key).map_err(anyhow::Error::msg)?;
    let mut state = WitnessState::open(&a.state).map_err(anyhow::Error::msg)?;
    if let Some(t) = a.trust.as_ref().filter(|_| state.last().is_none()) {
        let sth = read_signed(t, &spki)?;
        state.trust(&sth).map_err(anyhow::Error::msg)?;
        eprintln!(
            "witness: starting from the head of {} records in {}",
            sth.head.size,
            t.display()
        );
    }
    let metrics = WitnessMetrics::new()?;
    let mut server = None;
    if let (Some(addr), false) = (a.metrics_listen, a.once) {
        let listener = crate::serve::bind(addr, "the witness's metrics").await?;
        shikko_runtime::announce("witness", &[("metrics", &listener)]);
        let shutdown = shikko_runtime::Shutdown::new();
        shutdown.trigger_on_signal();
        let s = shikko_runtime::RoleServer::new("witness", metrics.process.clone(), listener);
        server = Some(tokio::spawn(async move {
            s.serve(shutdown, std::time::Duration::from_secs(1)).await
        }));
    }
    loop {
        let outcome = async {
            if let Some(a) = state.standing_alarm() {
                return Ok::<_, anyhow::Error>(Err(format!(
                    "a standing alarm (remove {} once explained):\n{a}",
                    "ALARM in the state directory"
                )));
            }
            let sth = signed_head(&a.endpoint, "witness").await?;
            let mut client = admin_client(&a.endpoint, "witness").await?;
            let proof = consistency_for(&mut client, state.last(), &sth).await?;
            match judge(
                state.last(),
                &sth,
                &spki,
                &proof,
                shikko_core::UnixTime::now(),
                a.max_age_secs,
            ) {
                Ok(()) => {
                    state.accept(&sth).map_err(anyhow::Error::msg)?;
                    metrics.accepted(&sth);
                    Ok(Ok(sth.head.size))
                }
                Err(alarm) => {
                    metrics.alarm(alarm.kind());
                    if alarm.is_tampering() {
                        state.raise(&alarm, &sth).map_err(anyhow::Error::msg)?;
                    }
                    Ok(Err(format!("{}: {alarm}", alarm.kind())))
                }
            }
        }
        .await;
        match outcome {
            Ok(Ok(size)) => {
                eprintln!("witness: cosigned the head of {size} records");
                if a.once {
                    return Ok(());
                }
            }
            Ok(Err(alarm)) => {
                tracing::error!(alarm = %alarm, "WITNESS ALARM");
                eprintln!("witness ALARM: {alarm}");
                if a.once {
                    std::process::exit(2);
                }
            }
            Err(e) => {
                metrics.failed.inc();
                eprintln!("witness: could not check the log: {e:#}");
                if a.once {
                    return Err(e);
                }
            }
        }
        if server.as_ref().is_some_and(|s| s.is_finished()) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(a.interval_secs.max(1))).await;
    }
}

struct WitnessMetrics {
    process: shikko_runtime::Metrics,
    size: prometheus::IntGauge,
    checked: prometheus::IntGauge,
    alarms: prometheus::IntCounterVec,
    failed: prometheus::IntCounter,
}

impl WitnessMetrics {
    fn new() -> Result<WitnessMetrics> {
        let process = shikko_runtime::Metrics::new(env!("CARGO_PKG_VERSION"))?;
        let size = prometheus::IntGauge::new(
            "shikko_witness_size",
            "records under the last head the witness cosigned",
        )?;
        let checked = prometheus::IntGauge::new(
            "shikko_witness_last_cosigned_timestamp_seconds",
            "when the witness last cosigned a head",
        )?;
        let alarms = prometheus::IntCounterVec::new(
            prometheus::Opts::new("shikko_witness_alarms_total", "heads refused, by kind"),
            &["kind"],
        )?;
        let failed = prometheus::IntCounter::new(
            "shikko_witness_failures_total",
            "checks that could not be made (the log out of reach)",
        )?;
        let r = process.registry();
        r.register(Box::new(size.clone()))?;
        r.register(Box::new(checked.clone()))?;
        r.register(Box::new(alarms.clone()))?;
        r.register(Box::new(failed.clone()))?;
        Ok(WitnessMetrics {
            process,
            size,
            checked,
            alarms,
            failed,
        })
    }

    fn accepted(&self, sth: &shikko_pki::tree_head::SignedTreeHead) {
        self.size.set(sth.head.size as i64);
        self.checked.set(shikko_core::UnixTime::now().0);
    }

    fn alarm(&self, kind: &str) {
        self.alarms.with_label_values(&[kind]).inc();
    }
}

/// `shikko usage ...`.
#[derive(Subcommand)]
pub(crate) enum UsageCommand {
    /// The month's counters (Japanese days): per verifier, day, endpoint,
    /// purpose and outcome, as CSV (default) or JSON.
    Export {
        /// YYYY-MM.
        #[arg(long)]
        month: String,
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: String,
        /// The internal endpoint serving InfoAdmin.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `shikko usage ...`.
pub(crate) async fn usage(cmd: UsageCommand) -> Result<()> {
    let UsageCommand::Export {
        month,
        format,
        endpoint,
        out,
    } = cmd;
    if format != "csv" && format != "json" {
        bail!("--format is csv or json");
    }
    let counts = admin_client(&endpoint, "auditor")
        .await?
        .verifier_usage(pb::VerifierUsageRequest { month })
        .await
        .map_err(status_error)?
        .into_inner()
        .counts;
    let mut text = String::new();
    if format == "csv" {
        text.push_str("day,verifier,endpoint,purpose,outcome,count\n");
        for c in &counts {
            text.push_str(&format!(
                "{},{},{},{},{},{}\n",
                c.day, c.verifier, c.endpoint, c.purpose, c.outcome, c.count
            ));
        }
    } else {
        let rows: Vec<serde_json::Value> = counts
            .iter()
            .map(|c| {
                serde_json::json!({
                    "day": c.day, "verifier": c.verifier, "endpoint": c.endpoint,
                    "purpose": c.purpose, "outcome": c.outcome, "count": c.count,
                })
            })
            .collect();
        text = serde_json::to_string_pretty(&rows)? + "\n";
    }
    match out {
        Some(p) => std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

/// `shikko audit archive`.
async fn archive(endpoint: &str, below: u64, out: &Path) -> Result<()> {
    use std::io::Write as _;
    let head = signed_head(endpoint, "admin").await?;
    if below > head.head.size {
        bail!(
            "the newest signed head covers {} records: archive below at most that",
            head.head.size
        );
    }
    let mut client = admin_client(endpoint, "admin").await?;
    let mut stream = client
        .export_audit(pb::ExportAuditRequest { from_seq: 1 })
        .await
        .map_err(status_error)?
        .into_inner();
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let (mut n, mut first, mut last) = (0u64, 0u64, 0u64);
    'chunks: while let Some(chunk) = stream.message().await.map_err(status_error)? {
        for line in chunk.lines {
            let r: shikko_info::audit::AuditRecord =
                serde_json::from_str(&line).context("an exported record")?;
            if r.seq >= below {
                break 'chunks;
            }
            if first == 0 {
                first = r.seq;
            }
            last = r.seq;
            writeln!(w, "{line}")?;
            n += 1;
        }
    }
    drop(stream);
    let file = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing: {e}"))?;
    file.sync_all()?;
    if n == 0 {
        println!("nothing below {below} is stored (archived and pruned before)");
        return Ok(());
    }
    if last + 1 != below {
        bail!("the archive ends at {last}, not {}: not pruning", below - 1);
    }
    shikko_info::audit::verify(open_input(out)?, first > 1, None)
        .map_err(|e| anyhow::anyhow!("the archive does not verify, not pruning: {e}"))?;
    let head_file = PathBuf::from(format!("{}.head.json", out.display()));
    std::fs::write(
        &head_file,
        shikko_info::heads::HeadFile::of(&head).to_json() + "\n",
    )?;
    let r = client
        .prune_audit(pb::PruneAuditRequest { below_seq: below })
        .await
        .map_err(status_error)?
        .into_inner();
    println!(
        "{n} records (seq {first} to {last}) archived to {} with the head of {} records signed at {} ({}); {} pruned, the log now starts at {}",
        out.display(),
        head.head.size,
        head.head.time.0,
        head_file.display(),
        r.pruned,
        r.first_seq
    );
    Ok(())
}
