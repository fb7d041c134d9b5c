//! `shikko audit`: export the 4-information audit log, verify an export
//! (against the running log's head, or its own chain), print the head.

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
    /// Check an exported audit log: every record's hash, every link, no gap;
    /// with --head or --endpoint, that nothing was cut off the end.
    Verify {
        /// The exported file (`-` for standard input).
        file: PathBuf,
        /// The file starts after seq 1 (its first link is not checked).
        #[arg(long)]
        partial: bool,
        /// The expected hash of the last record.
        #[arg(long)]
        head: Option<String>,
        /// Ask a running platform for its head instead.
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Print the audit log's head (last seq and hash).
    Head {
        /// The platform's internal gRPC endpoint.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
    },
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
        AuditCommand::Verify {
            file,
            partial,
            head,
            endpoint,
        } => {
            let expected = match (head, endpoint) {
                (Some(h), _) => Some(h),
                (None, Some(ep)) => Some(
                    admin_client(&ep, "auditor")
                        .await?
                        .audit_head(pb::AuditHeadRequest {})
                        .await
                        .map_err(status_error)?
                        .into_inner()
                        .hash,
                ),
                (None, None) => None,
            };
            let input: Box<dyn std::io::BufRead> = if file == Path::new("-") {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::io::BufReader::new(
                    std::fs::File::open(&file)
                        .with_context(|| format!("opening {}", file.display()))?,
                ))
            };
            match shikko_info::audit::verify(input, partial, expected.as_deref()) {
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
        }
        AuditCommand::Head { endpoint } => {
            let h = admin_client(&endpoint, "auditor")
                .await?
                .audit_head(pb::AuditHeadRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            println!("seq {} hash {}", h.seq, h.hash);
        }
    }
    Ok(())
}
