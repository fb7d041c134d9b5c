//! Memory, load time and lookups of the OCSP status index (issue 14, item
//! 3), against the hash table of whole serials it replaced, rebuilt here
//! as the baseline: one index per process, so that the resident memory is
//! that index's.
//!
//! `index_bench --index compact|hash --certs N [--serials dense|random]`
//!
//! N certificates of one issuer, one in eight revoked (25 million of 200
//! million), serials dense (`0x4A50 || kind || generation || index`, as
//! the demo's) or random 16-octet values. Prints the load time, the
//! resident memory after loading (VmRSS), and single-thread lookups of
//! good, revoked and never-issued serials.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Instant;

use shikko_core::{
    CertKind, CertStatus, PartitionId, RevocationReason, Serial, StatusChange, UnixTime,
};
use shikko_ocsp::index::StatusIndex;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn serial(i: u64, random: bool) -> Serial {
    if random {
        // A bijection of i onto scattered 127-bit values (never zero).
        let v = u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) | 1;
        Serial::from_u128(v >> 1 | 1 << 120).unwrap()
    } else {
        Serial::from_u128((0x4A50 << 72) | (2 << 64) | u128::from(i)).unwrap()
    }
}

fn status(i: u64) -> CertStatus {
    if i.is_multiple_of(8) {
        CertStatus::Revoked {
            reason: RevocationReason::KeyCompromise,
            at: UnixTime(1_700_000_000),
            invalidity_date: None,
        }
    } else {
        CertStatus::Good
    }
}

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The index this replaced: whole padded serials to an 8-octet status.
#[derive(Default)]
struct HashIndex(RwLock<HashMap<[u8; 20], u64>>);

fn packed(s: &CertStatus) -> u64 {
    match s {
        CertStatus::Good => 0,
        CertStatus::OnHold { since } => 1 << 56 | since.0 as u64,
        CertStatus::Revoked { reason, at, .. } => {
            2 << 56 | u64::from(reason.code()) << 48 | at.0 as u64
        }
    }
}

enum Index {
    Compact(Box<StatusIndex>),
    Hash(HashIndex),
}

impl Index {
    fn load(&self, changes: &[StatusChange]) {
        match self {
            Index::Compact(i) => i.load(changes),
            Index::Hash(h) => {
                let mut m = h.0.write().unwrap();
                for c in changes {
                    m.insert(*c.serial.as_padded(), packed(&c.status));
                }
            }
        }
    }

    fn found(&self, s: &Serial) -> bool {
        match self {
            Index::Compact(i) => i.get(CertKind::PhoneAuth, s).is_some(),
            Index::Hash(h) => h.0.read().unwrap().get(s.as_padded()).is_some(),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = arg(&args, "--index").unwrap_or_else(|| "compact".into());
    let certs: u64 = arg(&args, "--certs").map_or(1_000_000, |v| v.parse().unwrap());
    let random = arg(&args, "--serials").as_deref() == Some("random");
    let index = match which.as_str() {
        "hash" => Index::Hash(HashIndex::default()),
        _ => Index::Compact(Box::new(StatusIndex::new())),
    };
    let base = rss_mib();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..certs {
        batch.push(StatusChange {
            kind: CertKind::PhoneAuth,
            serial: serial(i, random),
            partition: PartitionId::WHOLE,
            not_after: UnixTime(2_000_000_000),
            status: status(i),
            not_before: UnixTime(0),
        });
        if batch.len() == batch.capacity() {
            index.load(&batch);
            batch.clear();
        }
    }
    index.load(&batch);
    if let Index::Compact(i) = &index {
        i.compact();
    }
    let load = started.elapsed().as_secs_f64();
    let rss = rss_mib() - base;

    // Lookups: good, revoked, never issued; a fixed pseudo-random order.
    let n = 2_000_000u64;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut probe = |kind: u8| {
        let mut found = 0u64;
        let t = Instant::now();
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = x % certs;
            let s = match kind {
                0 => serial(i | 1, random),     // odd: good
                1 => serial(i & !7, random),    // a multiple of 8: revoked
                _ => serial(certs + i, random), // never issued
            };
            found += u64::from(index.found(&s));
        }
        (t.elapsed().as_nanos() as f64 / n as f64, found)
    };
    let (good, g) = probe(0);
    let (revoked, r) = probe(1);
    let (unknown, u) = probe(2);
    assert_eq!((g, r, u), (n, n, 0), "every answer as issued");
    // The image a new responder reads instead of loading every status.
    let image = match &index {
        Index::Compact(i) => {
            let t = Instant::now();
            let bytes = i.write_image();
            let write = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let back = StatusIndex::new();
            back.read_image(&bytes).unwrap();
            format!(
                " image_mib={:.0} write_s={write:.2} read_s={:.2}",
                bytes.len() as f64 / 1048576.0,
                t.elapsed().as_secs_f64()
            )
        }
        Index::Hash(_) => String::new(),
    };
    println!(
        "{which} {} certs={certs} load_s={load:.1} rss_mib={rss:.0} bytes_per_cert={:.1} lookup_ns good={good:.0} revoked={revoked:.0} unknown={unknown:.0}{image}",
        if random { "random" } else { "dense" },
        rss * 1024.0 * 1024.0 / certs as f64
    );
}
