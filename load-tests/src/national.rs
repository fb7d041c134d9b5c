//! The national-scale scenario (issue 14, item 5): a registry store filled
//! with N certificates by a fixture writer (the store's import, not the
//! ingest API), then, against it, the questions a national deployment asks:
//! how long until a new OCSP replica answers and what it holds in memory,
//! how long until a new CRL role publishes, how long the full signing CRL
//! takes, whether ingest of a March-peak day slows down as the store grows
//! (three followers following), and what retention gives back on disk.
//!
//! The fixture's layout, for N certificates: 0.45 N holders, each with a
//! card signing and a card user-authentication certificate; the first
//! 0.05 N of them also with a smartphone pair. Serials are dense per issuer
//! (`serial_for(kind, holder, 0)`), as an authority issues them. 12.5 % are
//! listed (25 million of 200 million, as the issue says): 1 % on hold, the
//! rest revoked for a spread of reasons, over the ~1,900 synthetic
//! municipalities; every certificate is within its validity.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use shikko_core::{
    CertKind, CertRecord, CertStatus, HolderId, HolderRecord, HolderState, PartitionId,
    RevocationReason, Serial, UnixTime,
};
use shikko_population::synthetic::{Population, serial_for};
use shikko_proto::v1 as pb;
use shikko_store::RegistryStore;
use shikko_testkit::process::{RoleProcess, http_get};
use shikko_testkit::roles::Loopback;

use crate::report::Row;

const YEAR: i64 = 365 * 86_400;

/// What the fixture holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) certs: u64,
    pub(crate) holders: u64,
    pub(crate) phones: u64,
}

impl Layout {
    pub(crate) fn new(certs: u64) -> Layout {
        let holders = certs * 45 / 100;
        Layout {
            certs,
            holders,
            phones: certs * 5 / 100,
        }
    }

    fn count(&self, kind: CertKind) -> u64 {
        if kind.is_phone() {
            self.phones
        } else {
            self.holders
        }
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn holder_id(h: u64) -> HolderId {
    HolderId::new(format!("N{h:016X}")).unwrap_or_else(|_| unreachable!("a valid id"))
}

/// The status of the certificate of `kind` of holder `h` at `now`.
fn status(kind: CertKind, h: u64, now: i64) -> CertStatus {
    let r = mix(h.wrapping_mul(4).wrapping_add(u64::from(kind.code())));
    let per_mille = r % 1000;
    if per_mille >= 125 {
        return CertStatus::Good;
    }
    let at = UnixTime(now - ((r >> 20) % 365) as i64 * 86_400);
    if per_mille < 10 {
        return CertStatus::OnHold { since: at };
    }
    let reason = match per_mille % 4 {
        0 => RevocationReason::KeyCompromise,
        1 => RevocationReason::AffiliationChanged,
        2 => RevocationReason::Superseded,
        _ => RevocationReason::CessationOfOperation,
    };
    CertStatus::Revoked {
        reason,
        at,
        invalidity_date: None,
    }
}

fn cert(kind: CertKind, h: u64, now: i64, municipalities: &[PartitionId]) -> CertRecord {
    let not_before = UnixTime(now - (mix(h) % (4 * YEAR as u64)) as i64 - 86_400);
    CertRecord {
        kind,
        serial: serial_for(kind, h, 0),
        holder: holder_id(h),
        not_before,
        not_after: UnixTime(not_before.0 + 5 * YEAR),
        partition: if kind.is_signing() {
            municipalities[(mix(h ^ 0x5eed) % municipalities.len() as u64) as usize]
        } else {
            PartitionId::default()
        },
        status: status(kind, h, now),
        info_digests: None,
    }
}

/// Writes the fixture into the empty registry store `db`; returns what it wrote.
pub(crate) fn write(db: &Path, layout: Layout, now: i64) -> Result<(u64, u64, Duration)> {
    let started = Instant::now();
    let store = RegistryStore::open(db)?;
    let pop = Population::new(2026);
    let municipalities = pop.municipalities().to_vec();
    let codes: Vec<PartitionId> = municipalities.iter().map(|m| m.code).collect();
    let mut import = store.import()?;
    import.municipalities(&municipalities)?;
    for kind in CertKind::ALL {
        let t = Instant::now();
        import.certificates(
            kind,
            (0..layout.count(kind)).map(|h| cert(kind, h, now, &codes)),
        )?;
        eprintln!(
            "  {kind}: {} certificates in {:.1} s",
            layout.count(kind),
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    import.holders((0..layout.holders).map(|h| {
        let mut live = [None; 4];
        for kind in CertKind::ALL {
            if h < layout.count(kind) && status(kind, h, now).is_live() {
                live[kind.index()] = Some(serial_for(kind, h, 0));
            }
        }
        HolderRecord {
            id: holder_id(h),
            four_info: Some(pop.holder(h).four_info),
            state: HolderState::Active,
            live,
            awaiting_successor: None,
        }
    }))?;
    eprintln!(
        "  holders: {} in {:.1} s",
        layout.holders,
        t.elapsed().as_secs_f64()
    );
    let listed = import.listed;
    let certs = import.certificates;
    import.finish(1)?;
    Ok((certs, listed, started.elapsed()))
}

/// Bytes under `dir`.
pub(crate) fn disk(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += disk(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn gib(bytes: u64) -> String {
    if bytes < 1 << 30 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    } else {
        format!("{:.2} GiB", bytes as f64 / f64::from(1u32 << 30))
    }
}

fn rss_mib(pid: u32) -> u64 {
    crate::scenarios::resident_kib(pid).map_or(0, |kb| kb / 1024)
}

/// The labels of the full signing CRL's metrics.
const SIGN_FULL: [&str; 2] = ["issuer=\"sign\"", "crl=\"full\""];

/// Starts an OCSP replica following `endpoint` and waits until it is
/// current: the process, its metrics address, the time it took and its
/// resident memory then (MiB).
fn new_ocsp(
    shikko: &Path,
    configs: &Loopback,
    dir: &Path,
    endpoint: &str,
) -> Result<(RoleProcess, String, Duration, u64)> {
    let t = Instant::now();
    let ocsp = spawn(shikko, "ocsp", &configs.ocsp(dir, endpoint, "")?)?;
    let metrics = ocsp.try_field("metrics").context("ocsp metrics")?;
    wait_metrics(&metrics, 1_800, current("ocsp"))?;
    let took = t.elapsed();
    let rss = rss_mib(ocsp.child.id());
    Ok((ocsp, metrics, took, rss))
}

fn metrics(addr: &str) -> String {
    String::from_utf8_lossy(&http_get(addr, "/metrics").1).into_owned()
}

/// Waits until `ok` holds of the metrics at `addr` (at most `secs`).
fn wait_metrics(addr: &str, secs: u64, ok: impl Fn(&str) -> bool) -> Result<Duration> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if ok(&metrics(addr)) {
            return Ok(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("{addr}: not there within {secs} s")
}

fn current(role: &str) -> impl Fn(&str) -> bool + '_ {
    move |text: &str| {
        text.lines()
            .any(|l| l == format!("shikko_feed_lag_events{{role=\"{role}\"}} 0"))
            && text
                .lines()
                .any(|l| l == format!("shikko_feed_connected{{role=\"{role}\"}} 1"))
    }
}

/// A metric's value (the first line of `name` with every `label` in it).
fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Runs the scenario for each size in `sizes`, one after the other, in
/// `base` (authority keys from a small `shikko seed`); returns one row per
/// measurement and size.
pub(crate) async fn run(
    shikko: &Path,
    base: &Path,
    sizes: &[u64],
    revocations: u64,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &n in sizes {
        let dir = base.join(format!("national-{n}"));
        crate::platform::seed(shikko, &dir, 10, 10)?;
        std::fs::remove_dir_all(dir.join("db"))?;
        rows.extend(one(shikko, &dir, Layout::new(n), revocations).await?);
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(rows)
}

fn spawn(shikko: &Path, role: &str, cfg: &Path) -> Result<RoleProcess> {
    RoleProcess::spawn(shikko, role, cfg, Stdio::inherit())
        .with_context(|| format!("starting the {role} role"))
}

/// A registry process over `cfg`, and its plaintext endpoint.
fn spawn_registry(shikko: &Path, cfg: &Path) -> Result<(RoleProcess, String)> {
    let r = spawn(shikko, "registry", cfg)?;
    let endpoint = format!(
        "http://{}",
        r.try_field("grpc").context("the registry's address")?
    );
    Ok((r, endpoint))
}

async fn one(shikko: &Path, dir: &Path, layout: Layout, revocations: u64) -> Result<Vec<Row>> {
    let n = layout.certs;
    let label = |what: &str| format!("{what} @{}M", n / 1_000_000);
    let now = UnixTime::now().0;
    eprintln!("national {n}: writing the fixture");
    let (certs, listed, took) = write(&dir.join("db"), layout, now)?;
    let fixture_disk = disk(&dir.join("db"));
    let mut rows = Vec::new();
    let mut row = Row::once(label("fixture write"), took);
    row.note = format!(
        "{:.0} s: {certs} certificates ({listed} listed), {} holders; {} on disk ({:.0} B/certificate with holders)",
        took.as_secs_f64(),
        layout.holders,
        gib(fixture_disk),
        fixture_disk as f64 / certs as f64
    );
    rows.push(row);

    let configs = Loopback::new(dir).log_filter("error");
    let (registry, endpoint) = spawn_registry(shikko, &configs.registry(dir)?)?;

    // A new OCSP replica: start to current, and its memory.
    eprintln!("national {n}: a new OCSP replica");
    let (ocsp, ocsp_metrics, took, rss) = new_ocsp(shikko, &configs, dir, &endpoint)?;
    let mut row = Row::once(label("new OCSP replica, registry just up"), took);
    row.note = format!(
        "resident {rss} MiB when current; the registry built the status image at its start meanwhile"
    );
    rows.push(row);

    // A new CRL role: start to its first published full signing CRL.
    eprintln!("national {n}: a new CRL role");
    let t = Instant::now();
    let crl = spawn(shikko, "crl", &configs.crl(dir, &endpoint, 3_600, "")?)?;
    let crl_metrics = crl.try_field("metrics").context("crl metrics")?;
    wait_metrics(&crl_metrics, 3_600, |text| {
        value(text, "shikko_crl_number", &SIGN_FULL).is_some_and(|v| v >= 1.0)
    })?;
    let published = t.elapsed();
    let text = metrics(&crl_metrics);
    let entries = value(&text, "shikko_crl_entries", &SIGN_FULL).unwrap_or(0.0);
    let build_sum = value(&text, "shikko_crl_build_seconds_sum", &SIGN_FULL).unwrap_or(0.0);
    let full = std::fs::metadata(dir.join("crl/sign/full.crl")).map_or(0, |m| m.len());
    let mut row = Row::once(label("new CRL role to published"), published);
    row.note = format!(
        "full signing CRL: {entries:.0} entries, {}, built (encode + sign) in {build_sum:.2} s",
        gib(full)
    );
    rows.push(row);

    // Three followers (two OCSP replicas and the CRL role) while a
    // March-peak day of revocations is ingested.
    // The second replica is the one an autoscaler adds to a running
    // platform: the registry has its image already.
    let (ocsp2, ocsp2_metrics, took, rss) = new_ocsp(shikko, &configs, dir, &endpoint)?;
    let mut row = Row::once(label("new OCSP replica (autoscaler)"), took);
    row.note = format!("resident {rss} MiB when current (goal: under 60 s and 1 GiB at 200M)");
    rows.push(row);
    wait_metrics(&crl_metrics, 600, current("crl"))?;
    eprintln!("national {n}: ingesting {revocations} revocations, three followers");
    let serials: Vec<Serial> = good_auth(layout, now).take(revocations as usize).collect();
    let mut row = ingest(
        &endpoint,
        &serials,
        now,
        "march",
        label("ingest a March-peak day"),
    )
    .await?;
    let acked = Instant::now();
    for m in [&ocsp_metrics, &ocsp2_metrics] {
        wait_metrics(m, 600, current("ocsp"))?;
    }
    wait_metrics(&crl_metrics, 600, current("crl"))?;
    row.note = format!(
        "{:.0} events/s, batches of 1,000; all three followers current {:.2} s after the last ack",
        serials.len() as f64 / row.elapsed.as_secs_f64(),
        acked.elapsed().as_secs_f64()
    );
    rows.push(row);
    drop((ocsp, ocsp2, crl, registry));

    // The registry as a synchronous pair: a new standby seeded from it,
    // then the next day's revocations acknowledged only once it holds them.
    eprintln!("national {n}: a new standby, then a day of revocations through the pair");
    let (primary, endpoint) = spawn_registry(
        shikko,
        &configs.registry_in_pair("registry", "registry", dir, "require_standby = true\n")?,
    )?;
    let primary_metrics = primary.try_field("metrics").context("registry metrics")?;
    let t = Instant::now();
    let standby = spawn(
        shikko,
        "registry",
        &configs.registry_in_pair(
            "standby",
            "standby",
            &dir.join("standby"),
            &format!("standby_of = {endpoint:?}\n"),
        )?,
    )?;
    wait_metrics(&primary_metrics, 7_200, |text| {
        text.contains("shikko_registry_standby_connected 1")
            && text.contains("shikko_registry_standby_lag_records 0")
            && !text.contains("shikko_registry_standby_durable_seq 0\n")
    })?;
    let mut row = Row::once(label("new standby seeded"), t.elapsed());
    row.note = format!(
        "a copy of the whole store ({} on the standby's disk) from one snapshot",
        gib(disk(&dir.join("standby")))
    );
    rows.push(row);
    let next: Vec<Serial> = good_auth(layout, now)
        .skip(revocations as usize)
        .take(revocations as usize)
        .collect();
    let mut row = ingest(
        &endpoint,
        &next,
        now,
        "pair",
        label("ingest a day, synchronous pair"),
    )
    .await?;
    row.note = format!(
        "{:.0} events/s, batches of 1,000, each acknowledged once on the standby's disk too",
        next.len() as f64 / row.elapsed.as_secs_f64()
    );
    rows.push(row);
    drop((standby, primary));
    std::fs::remove_dir_all(dir.join("standby"))?;

    // The same, alone, with a block cache of 2 GiB instead of 256 MiB:
    // what a larger store asks of the registry's memory.
    let cfg = configs.registry(dir)?;
    let text = std::fs::read_to_string(&cfg)?.replacen(
        "[registry]\n",
        "[registry]\nblock_cache_mib = 2048\n",
        1,
    );
    std::fs::write(&cfg, text)?;
    let (registry, endpoint) = spawn_registry(shikko, &cfg)?;
    let third: Vec<Serial> = good_auth(layout, now)
        .skip(2 * revocations as usize)
        .take(revocations as usize)
        .collect();
    let mut row = ingest(
        &endpoint,
        &third,
        now,
        "cache",
        label("ingest a day, 2 GiB cache"),
    )
    .await?;
    row.note = format!(
        "{:.0} events/s, batches of 1,000, block_cache_mib = 2048",
        third.len() as f64 / row.elapsed.as_secs_f64()
    );
    rows.push(row);
    drop(registry);

    // Disk: with the day's history, and once retention pruned it.
    let with_history = disk(&dir.join("db"));
    let store = RegistryStore::open(&dir.join("db"))?;
    let t = Instant::now();
    let mut pruned = 0;
    for day in 0..=37 {
        let p = store.retain(UnixTime(now + day * 86_400), 35 * 86_400, 400 * 86_400)?;
        pruned += p.first_seq - p.from;
    }
    drop(store);
    let after = disk(&dir.join("db"));
    let mut row = Row::once(label("registry disk, retention"), t.elapsed());
    row.note = format!(
        "fixture {}, after three days' ingest {}, after 35 days' retention pruned {pruned} records {}",
        gib(fixture_disk),
        gib(with_history),
        gib(after)
    );
    rows.push(row);
    Ok(rows)
}

/// The default sizes: 1 million and the largest asked.
pub(crate) fn sizes(arg: &[u64]) -> Vec<u64> {
    if arg.is_empty() {
        vec![1_000_000]
    } else {
        arg.to_vec()
    }
}

/// Where the scenario works (`--keep` keeps nothing here: each size is removed after).
pub(crate) fn base_dir() -> PathBuf {
    std::env::temp_dir().join(format!("shikko-national-{}", std::process::id()))
}

/// Good card user-authentication serials of the fixture, from the last holder down.
fn good_auth(layout: Layout, now: i64) -> impl Iterator<Item = Serial> {
    (0..layout.holders)
        .rev()
        .filter(move |h| status(CertKind::CardAuth, *h, now) == CertStatus::Good)
        .map(|h| serial_for(CertKind::CardAuth, h, 0))
}

/// Revokes `serials` through the registry at `endpoint` in batches of 1,000.
async fn ingest(
    endpoint: &str,
    serials: &[Serial],
    now: i64,
    id: &str,
    name: String,
) -> Result<Row> {
    let mut row = Row::new(name);
    let mut client = pb::registry_client::RegistryClient::connect(endpoint.to_string()).await?;
    let t = Instant::now();
    crate::scenarios::revoke_in_batches(&mut client, serials, now, id, &mut row).await?;
    row.elapsed = t.elapsed();
    Ok(row)
}
