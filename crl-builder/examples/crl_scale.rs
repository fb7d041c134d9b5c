//! Scale benchmark of the CRL builder, and fixtures for `openssl ca -gencrl`
//! over the same revocations (see `load-tests/crl-vs-openssl.sh`).
//!
//! ```text
//! crl_scale fill  --dir DIR --entries N [--alg p256|rsa2048] [--issued M]
//! crl_scale build --dir DIR [--batch N] [--filters]
//! ```
//!
//! With `--issued M`, the store is a crl role's mirror holding M
//! certificates (the N revoked ones among them) in its issued index, and
//! `build --filters` builds the full compact revocation filter beside the
//! full CRL, from the store, as the role does.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use shikko_core::RevokedEntry;
use shikko_core::{CertKind, CertStatus, PartitionId, RevocationReason, Serial, UnixTime};
use shikko_crl::{Builder, CrlConfig, CrlIssuer, CrlName, NoProgress};
use shikko_pki::{KeyAlgorithm, SoftwareSigner};
use shikko_store::Store;

const USAGE: &str = "usage:
  crl_scale fill  --dir DIR --entries N [--alg p256|rsa2048] [--issued M]
  crl_scale build --dir DIR [--batch N] [--filters]";

/// Entries per `put_revoked_fixture` call.
const FILL_BATCH: u64 = 100_000;
const NOT_AFTER: UnixTime = UnixTime(2_100_000_000);
const REASONS: [(RevocationReason, &str); 5] = [
    (RevocationReason::KeyCompromise, "keyCompromise"),
    (RevocationReason::AffiliationChanged, "affiliationChanged"),
    (RevocationReason::Superseded, "superseded"),
    (
        RevocationReason::CessationOfOperation,
        "cessationOfOperation",
    ),
    (RevocationReason::Unspecified, "unspecified"),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        bail!("{USAGE}");
    };
    let opts = parse_opts(rest)?;
    let get = |name: &str| {
        opts.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let dir = PathBuf::from(get("dir").ok_or_else(|| anyhow!("--dir is required\n{USAGE}"))?);
    match cmd.as_str() {
        "fill" => {
            let entries: u64 = get("entries")
                .ok_or_else(|| anyhow!("--entries is required\n{USAGE}"))?
                .parse()
                .context("--entries")?;
            let alg: KeyAlgorithm = get("alg").unwrap_or("p256").parse()?;
            let issued = get("issued")
                .map(|n| n.parse::<u64>().context("--issued"))
                .transpose()?;
            fill(&dir, entries, alg, issued)
        }
        "build" => {
            let batch = get("batch")
                .map(|b| b.parse::<usize>().context("--batch"))
                .transpose()?;
            build(&dir, batch, get("filters").is_some_and(|v| v != "false"))
        }
        _ => bail!("unknown subcommand {cmd:?}\n{USAGE}"),
    }
}

fn parse_opts(args: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(name) = a.strip_prefix("--") else {
            bail!("unexpected argument {a:?}\n{USAGE}");
        };
        if let Some((k, v)) = name.split_once('=') {
            out.push((k.to_owned(), v.to_owned()));
        } else if name == "filters" {
            // A flag.
            out.push((name.to_owned(), "true".to_owned()));
        } else {
            let v = it
                .next()
                .ok_or_else(|| anyhow!("--{name} needs a value\n{USAGE}"))?;
            out.push((name.to_owned(), v.clone()));
        }
    }
    Ok(out)
}

/// `YYMMDDHHMMSSZ` (UTCTime, as in openssl's index.txt).
fn utc_time(t: UnixTime) -> String {
    let (y, mo, d, h, mi, s) = t.to_civil();
    format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y.rem_euclid(100))
}

fn entry(i: u64) -> Result<(RevokedEntry, &'static str)> {
    let (reason, name) = REASONS[(i % 5) as usize];
    let e = RevokedEntry {
        kind: CertKind::CardSigning,
        partition: PartitionId(10_000 + (i % 1900) as u32),
        serial: Serial::from_u128((0x4A50u128 << 72) | (1u128 << 64) | u128::from(i))?,
        status: CertStatus::Revoked {
            reason,
            at: UnixTime(1_700_000_000 + (i % 86_400_000) as i64),
            invalidity_date: None,
        },
        not_after: NOT_AFTER,
    };
    Ok((e, name))
}

fn fill(dir: &Path, entries: u64, alg: KeyAlgorithm, issued: Option<u64>) -> Result<()> {
    let marker = dir.join(match issued {
        None => format!("filled-{entries}"),
        Some(m) => format!("filled-{entries}-of-{m}"),
    });
    if marker.exists() {
        println!(
            "fill: {} already holds {entries} entries ({} exists), skipped",
            dir.display(),
            marker.display()
        );
        return Ok(());
    }
    let started = Instant::now();
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Start from scratch: a store or output of another fill must not mix in.
    for sub in ["db", "out"] {
        let p = dir.join(sub);
        if p.exists() {
            fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    for f in fs::read_dir(dir)? {
        let f = f?;
        if f.file_name().to_string_lossy().starts_with("filled-") {
            fs::remove_file(f.path())?;
        }
    }

    // The CA.
    let key = SoftwareSigner::generate(alg)?;
    key.save(&dir.join("ca-key.pem"))?;
    let ca_der = shikko_pki::ca_certificate(
        CertKind::CardSigning,
        &key,
        Serial::from_u128(1)?,
        UnixTime(1_600_000_000),
        UnixTime(2_200_000_000),
    )?;
    fs::write(dir.join("ca.der"), &ca_der)?;
    fs::write(
        dir.join("ca.pem"),
        shikko_pki::to_pem("CERTIFICATE", &ca_der)?,
    )?;

    // The store, and openssl's index of the same revocations.
    let store = match issued {
        None => Arc::new(Store::open(&dir.join("db"))?),
        Some(_) => shikko_store::MirrorStore::open(&dir.join("db"))?.shared(),
    };
    let index_path = dir.join("index.txt");
    let mut index = BufWriter::with_capacity(
        1 << 20,
        fs::File::create(&index_path)
            .with_context(|| format!("creating {}", index_path.display()))?,
    );
    let expiry = utc_time(NOT_AFTER);
    let mut store_time = std::time::Duration::ZERO;
    let mut batch = Vec::with_capacity(FILL_BATCH.min(entries) as usize);
    let mut start = 0u64;
    while start < entries {
        let end = (start + FILL_BATCH).min(entries);
        batch.clear();
        for i in start..end {
            let (e, reason_name) = entry(i)?;
            let CertStatus::Revoked { at, .. } = e.status else {
                unreachable!("fixtures are revoked")
            };
            writeln!(
                index,
                "R\t{expiry}\t{},{reason_name}\t{}\tunknown\t/CN=H{i}",
                utc_time(at),
                e.serial.to_hex()
            )?;
            batch.push(e);
        }
        let t = Instant::now();
        store.put_revoked_fixture(&batch)?;
        store_time += t.elapsed();
        start = end;
    }
    if let Some(m) = issued {
        let t = Instant::now();
        fill_issued(&store, entries, m)?;
        store_time += t.elapsed();
    }
    let t = Instant::now();
    store.flush_fixtures()?;
    store_time += t.elapsed();
    index.flush()?;
    drop(index);
    drop(store);

    fs::write(dir.join("index.txt.attr"), "unique_subject = no\n")?;
    fs::write(dir.join("crlnumber"), "01\n")?;
    fs::write(
        dir.join("openssl.cnf"),
        format!(
            "# openssl ca -gencrl over the revocations of crl_scale fill\n\
             [ ca ]\n\
             default_ca = CA_default\n\
             \n\
             [ CA_default ]\n\
             dir              = {dir}\n\
             database         = $dir/index.txt\n\
             certificate      = $dir/ca.pem\n\
             private_key      = $dir/ca-key.pem\n\
             crlnumber        = $dir/crlnumber\n\
             new_certs_dir    = $dir\n\
             default_md       = sha256\n\
             default_crl_days = 2\n\
             unique_subject   = no\n\
             crl_extensions   = crl_ext\n\
             \n\
             [ crl_ext ]\n\
             authorityKeyIdentifier = keyid:always\n",
            dir = fs::canonicalize(dir)?.display()
        ),
    )?;
    fs::write(&marker, format!("{entries}\n"))?;
    println!(
        "fill: entries={entries} alg={alg} seconds={:.2} store_seconds={:.2} dir={}",
        started.elapsed().as_secs_f64(),
        store_time.as_secs_f64(),
        dir.display()
    );
    Ok(())
}

/// The issued index of a mirror of `issued` certificates: the `entries`
/// revoked ones (listed), and good ones with serials of their own.
fn fill_issued(store: &Store, entries: u64, issued: u64) -> Result<()> {
    if issued < entries {
        bail!("--issued must be at least --entries");
    }
    let cert = |serial: Serial, listed: bool| shikko_store::IssuedCert {
        serial,
        not_before: UnixTime(1_700_000_000),
        not_after: NOT_AFTER,
        listed,
    };
    let mut batch = Vec::with_capacity(FILL_BATCH as usize);
    let flush = |batch: &mut Vec<shikko_store::IssuedCert>| -> Result<()> {
        store.put_issued_fixture(CertKind::CardSigning, batch)?;
        batch.clear();
        Ok(())
    };
    for i in 0..entries {
        batch.push(cert(entry(i)?.0.serial, true));
        if batch.len() as u64 == FILL_BATCH {
            flush(&mut batch)?;
        }
    }
    for i in 0..issued - entries {
        let serial = Serial::from_u128((0x4A50u128 << 72) | (2u128 << 64) | u128::from(i))?;
        batch.push(cert(serial, false));
        if batch.len() as u64 == FILL_BATCH {
            flush(&mut batch)?;
        }
    }
    flush(&mut batch)
}

fn build(dir: &Path, batch: Option<usize>, filters: bool) -> Result<()> {
    let key = SoftwareSigner::load(&dir.join("ca-key.pem"))?;
    let ca_der = fs::read(dir.join("ca.der")).context("reading ca.der (run fill first)")?;
    let store = Arc::new(Store::open(&dir.join("db"))?);
    let issuer = CrlIssuer::new(CertKind::CardSigning, Arc::new(key), &ca_der)?;
    let out = dir.join("out");
    let mut cfg = CrlConfig::new(&out);
    cfg.partitions = false;
    // Filters need a store filled with --issued (an issued index).
    cfg.filters = filters;
    if let Some(b) = batch {
        cfg.batch_size = b;
    }
    let builder = Builder::new(store, vec![issuer], cfg);
    let t = Instant::now();
    let report = builder.build_full(&[CertKind::CardSigning], &NoProgress)?;
    let seconds = t.elapsed().as_secs_f64();
    let full = report
        .crls
        .iter()
        .find(|c| c.name == CrlName::Full)
        .ok_or_else(|| anyhow!("build_full published no full CRL"))?;
    println!(
        "full: entries={} bytes={} seconds={seconds:.3} threads={} encode={:.3} sign={:.3} check={:.3}",
        full.entries,
        full.bytes,
        rayon::current_num_threads(),
        full.encode.as_secs_f64(),
        full.sign.as_secs_f64(),
        full.check.as_secs_f64(),
    );
    for f in report.crls.iter().filter(|c| c.name.is_filter()) {
        println!(
            "{}: listed={} bytes={} seconds={:.3}",
            f.name,
            f.entries,
            f.bytes,
            f.elapsed.as_secs_f64()
        );
    }
    for (_, why) in &report.filter_failures {
        bail!("the filter failed: {why}");
    }
    println!(
        "{}",
        out.join(CertKind::CardSigning.issuer_id())
            .join(CrlName::Full.file_name())
            .display()
    );
    Ok(())
}
