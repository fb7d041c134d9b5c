//! How big, how fast: a full filter over N issued certificates of which
//! about R are listed, then a day's delta of C changes, against the
//! information-theoretic floor N * H(R / N) and the CRLs' size; build
//! times, the client's query time, the process's peak memory.
//!
//! usage: filter_scale ISSUED REVOKED CHANGES[,CHANGES...]
//! (e.g. `filter_scale 200000000 1000000 25000,70000`; the certificates are
//! generated on the fly, twice per build: they never sit in memory).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use shikko_core::{CertKind, Serial, UnixTime};
use shikko_filter::{
    BuildInfo, Entry, FilterSet, build_delta, build_full, issuer_key_hash, verify,
};
use shikko_pki::{KeyAlgorithm, SoftwareSigner};

/// The signing CRL measured in docs/BENCHMARKS.md: 824 MB for 20,000,000
/// entries (serial, revocationDate, reasonCode, invalidityDate).
const CRL_OCTETS_PER_ENTRY: f64 = 824e6 / 20e6;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn serial(i: u64) -> Serial {
    // 72-bit serials, distinct for distinct i (mix is a bijection).
    Serial::from_u128(u128::from(mix(i)) << 8 | 1).unwrap()
}

/// Whether certificate `i` is listed at the full filter's time.
fn listed0(i: u64, n: u64, r: u64) -> bool {
    mix(i ^ 0x5eed) % n < r
}

/// The `n` certificates, their statuses flipped where `flip` says.
fn population(
    n: u64,
    r: u64,
    t0: i64,
    flip: &'static (dyn Fn(u64) -> bool + Sync),
) -> impl Iterator<Item = Entry> {
    (0..n).map(move |i| Entry {
        serial: serial(i),
        not_before: t0 - 86_400,
        not_after: t0 + 5 * 365 * 86_400,
        listed: listed0(i, n, r) ^ flip(i),
    })
}

fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn floor_octets(n: f64, r: f64) -> f64 {
    let p = r / n;
    n * (-(p * p.log2()) - (1.0 - p) * (1.0 - p).log2()) / 8.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let r: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let changes: Vec<u64> = args
        .get(3)
        .map_or("25000,70000", String::as_str)
        .split(',')
        .filter_map(|c| c.parse().ok())
        .collect();
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let now = UnixTime::now();
    let ca = shikko_pki::ca_certificate(
        CertKind::CardSigning,
        &key,
        Serial::from_u128(1).unwrap(),
        UnixTime(now.0 - 86_400),
        UnixTime(now.0 + 3650 * 86_400),
    )
    .unwrap();
    let hash = issuer_key_hash(&ca).unwrap();
    let t0 = now.0 - 7200;
    let entries = |flip: &'static (dyn Fn(u64) -> bool + Sync)| population(n, r, t0, flip);
    let revoked = (0..n).filter(|i| listed0(*i, n, r)).count() as f64;
    let info = |number: u64, at: i64| BuildInfo {
        issuer_key_hash: hash,
        number,
        crl_number: vec![number as u8],
        now: UnixTime(at),
        next_update: UnixTime(now.0 + 2 * 86_400),
    };
    let t = Instant::now();
    let full = build_full(&info(1, t0), || entries(&|_| false), &key).unwrap();
    let full_secs = t.elapsed().as_secs_f64();
    let floor = floor_octets(n as f64, revoked);
    println!(
        "full: {n} issued, {revoked} listed: {} octets ({:.2} MB), floor N*H(R/N) {:.2} MB, {:.3}x the floor; the full CRL ~{:.0} MB; built in {full_secs:.1} s; peak {:.0} MiB",
        full.len(),
        full.len() as f64 / 1e6,
        floor / 1e6,
        full.len() as f64 / floor,
        revoked * CRL_OCTETS_PER_ENTRY / 1e6,
        peak_mib()
    );
    let parsed = verify(&full, &ca, now).unwrap();
    for c in changes {
        // A day's changes: C certificates change status (most good ones
        // listed, the listed ones among them released).
        let flip: &'static (dyn Fn(u64) -> bool + Sync) =
            Box::leak(Box::new(move |i: u64| mix(i ^ 0xde17a) % n < c));
        let flipped = (0..n).filter(|i| flip(*i)).count();
        let t = Instant::now();
        let delta = build_delta(&info(2, t0 + 3600), &parsed, || entries(flip), &key).unwrap();
        let delta_secs = t.elapsed().as_secs_f64();
        let mut set = FilterSet::new(&full, &ca, now).unwrap();
        set.apply_delta(&delta, now).unwrap();
        // The client: random covered serials, full + delta.
        let q = 1_000_000u64;
        let t = Instant::now();
        let mut revoked_answers = 0u64;
        for j in 0..q {
            let i = mix(j ^ 0xc0ffee) % n;
            if set.check_serial(&serial(i), t0 - 86_400, t0 + 86_400)
                == shikko_filter::Answer::Revoked
            {
                revoked_answers += 1;
            }
        }
        let ns = t.elapsed().as_secs_f64() * 1e9 / q as f64;
        println!(
            "delta: {flipped} changes: {} octets ({:.1} kB); the delta CRL ~{:.0} kB; built in {delta_secs:.1} s; query (full + delta) {ns:.0} ns ({revoked_answers} revoked of {q}); peak {:.0} MiB",
            delta.len(),
            delta.len() as f64 / 1e3,
            flipped as f64 * CRL_OCTETS_PER_ENTRY / 1e3,
            peak_mib()
        );
    }
}
