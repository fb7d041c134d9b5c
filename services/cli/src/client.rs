//! Client subcommands: they talk gRPC to a running registry.

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result, bail};
use shikko_core::{CertKind, Event, Serial, UnixTime};
use shikko_proto::convert;
use shikko_proto::v1 as pb;
use shikko_proto::v1::registry_client::RegistryClient;
use tonic::transport::Channel;

/// Connects to a registry as `identity` (unless another was chosen).
pub(crate) async fn connect(endpoint: &str, identity: &str) -> Result<RegistryClient<Channel>> {
    let client = RegistryClient::new(
        crate::identity::channel(endpoint, identity, crate::identity::REGISTRY).await?,
    );
    Ok(client
        .max_decoding_message_size(shikko_registry::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(shikko_registry::MAX_MESSAGE_BYTES))
}

/// Reads events from JSON Lines (one event per line; blank lines and lines
/// starting with `#` skipped) or from one JSON array.
pub(crate) fn read_events(path: &Path) -> Result<Vec<Event>> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        ))
    };
    let mut text = String::new();
    let mut lines = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        text.push_str(&line);
        text.push('\n');
        lines.push((n + 1, line));
    }
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON array of events", path.display()));
    }
    let mut events = Vec::new();
    for (n, line) in lines {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        events.push(
            serde_json::from_str(l)
                .with_context(|| format!("{}:{n}: not a valid event", path.display()))?,
        );
    }
    Ok(events)
}

/// `shikko events ingest`: sends events in batches; exits non-zero if any is rejected.
pub(crate) async fn ingest(
    endpoint: &str,
    file: &Path,
    batch_size: usize,
    all_or_nothing: bool,
) -> Result<()> {
    let events = read_events(file)?;
    if events.is_empty() {
        bail!("{}: no events", file.display());
    }
    let mut client = connect(endpoint, "authority").await?;
    let (mut applied, mut duplicates, mut rejected) = (0u64, 0u64, 0u64);
    let mut last_seq = 0;
    for batch in events.chunks(batch_size.max(1)) {
        let req = pb::IngestRequest {
            events: batch.iter().map(pb::Event::from).collect(),
            all_or_nothing,
        };
        let resp = client
            .ingest(req)
            .await
            .map_err(|s| anyhow::anyhow!("ingest refused ({:?}): {}", s.code(), s.message()))?
            .into_inner();
        last_seq = resp.last_seq;
        for o in resp.outcomes {
            match pb::OutcomeKind::try_from(o.kind) {
                Ok(pb::OutcomeKind::Applied) => applied += 1,
                Ok(pb::OutcomeKind::Duplicate) => {
                    duplicates += 1;
                    println!(
                        "duplicate  {} (applied before as seq {})",
                        o.event_id, o.seq
                    );
                }
                _ => {
                    rejected += 1;
                    println!("rejected   {} [{}] {}", o.event_id, o.rule, o.message);
                }
            }
        }
    }
    println!(
        "{applied} applied, {duplicates} duplicates, {rejected} rejected; registry at seq {last_seq}"
    );
    if rejected > 0 {
        bail!("{rejected} events rejected");
    }
    Ok(())
}

/// The issuer of a certificate file, recognised by its issuer name.
fn cert_identity(path: &Path) -> Result<(CertKind, Serial)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let cert = shikko_pki::parse_certificate(&bytes)
        .with_context(|| format!("{}: not a certificate", path.display()))?;
    let tbs = cert.tbs_certificate();
    let kind = CertKind::ALL
        .into_iter()
        .find(|k| shikko_pki::ca_name(*k) == *tbs.issuer())
        .with_context(|| format!("{}: not issued by one of Shikko's four CAs", path.display()))?;
    let serial = Serial::from_der_integer(tbs.serial_number().as_bytes())?;
    Ok((kind, serial))
}

/// `shikko cert status`.
pub(crate) async fn status(
    endpoint: &str,
    issuer: Option<CertKind>,
    serial: Option<Serial>,
    cert: Option<&Path>,
) -> Result<()> {
    let (kind, serial) = match (cert, issuer, serial) {
        (Some(path), _, _) => cert_identity(path)?,
        (None, Some(k), Some(s)) => (k, s),
        _ => bail!("give --cert FILE, or --issuer ISSUER and SERIAL"),
    };
    let mut client = connect(endpoint, "admin").await?;
    let st = client
        .get_status(pb::GetStatusRequest {
            issuer: convert::issuer(kind),
            serial: serial.magnitude().to_vec(),
        })
        .await;
    let st = match st {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::NotFound => {
            println!("{kind} {serial}: unknown (never issued by this issuer)");
            bail!("unknown certificate");
        }
        Err(s) => bail!("status refused ({:?}): {}", s.code(), s.message()),
    };
    let status =
        convert::status_from_pb(st.status, st.reason, st.revocation_time, st.invalidity_date)?;
    println!("issuer      {kind}\nserial      {serial}");
    println!(
        "validity    {} .. {}",
        UnixTime(st.not_before),
        UnixTime(st.not_after)
    );
    if st.partition != 0 {
        println!("partition   {:06}", st.partition);
    }
    match status {
        shikko_core::CertStatus::Good => println!("status      good"),
        shikko_core::CertStatus::OnHold { since } => {
            println!("status      on hold (certificateHold) since {since}")
        }
        shikko_core::CertStatus::Revoked {
            reason,
            at,
            invalidity_date,
        } => {
            println!(
                "status      revoked ({reason}, code {}) at {at}",
                reason.code()
            );
            if let Some(d) = invalidity_date {
                println!("invalid     since {d}");
            }
        }
    }
    if !st.newest_serial.is_empty() {
        println!("replaced by {}", Serial::from_be_bytes(&st.newest_serial)?);
    }
    Ok(())
}

/// `shikko backup create`: a checkpoint of the registry's store (or of an
/// info role's, with `info`).
pub(crate) async fn checkpoint(endpoint: &str, name: String, info: bool) -> Result<()> {
    let req = pb::CheckpointRequest { name };
    let made = if info {
        shikko_proto::v1::info_admin_client::InfoAdminClient::new(
            crate::identity::channel(endpoint, "admin", crate::identity::INFO_ADMIN).await?,
        )
        .checkpoint(req)
        .await
    } else {
        connect(endpoint, "admin").await?.checkpoint(req).await
    }
    .map_err(|e| anyhow::anyhow!("{:?}: {}", e.code(), e.message()))?
    .into_inner();
    println!(
        "checkpoint {} (store {}, up to seq {} at least)",
        made.path, made.store_id, made.last_seq
    );
    Ok(())
}
