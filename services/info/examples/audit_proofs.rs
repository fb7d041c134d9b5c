//! How long an inclusion or consistency proof of the audit log takes at
//! national scale (issue 15): the Merkle tree of N records (nodes only: the
//! records themselves would not fit a test machine at 100 million, and no
//! proof reads them) written into a real store, then random inclusion
//! proofs (leaf, size N) and consistency proofs (random old size, N), each
//! verified, timed after reopening the store (cold block cache) and again
//! warm.
//!
//! `audit_proofs --dir DIR --leaves N [--proofs P]` (DIR is kept: run again
//! with a larger N to grow the same tree).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use shikko_core::merkle::{self, Hash, verify_consistency, verify_inclusion};
use shikko_pki::merkle::Sha256;
use shikko_store::Store;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn leaf(i: u64) -> Hash {
    merkle::leaf_hash::<Sha256>(format!("{{\"seq\":{}}}", i + 1).as_bytes())
}

/// A small deterministic generator (no dependency).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e6
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        dir_bytes(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let dir = std::path::PathBuf::from(arg("--dir").expect("--dir DIR"));
    let n: u64 = arg("--leaves").expect("--leaves N").parse().unwrap();
    let proofs: usize = arg("--proofs").map_or(10_000, |p| p.parse().unwrap());
    let size_file = dir.join("leaves");
    let have: u64 = std::fs::read_to_string(&size_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    {
        let store = Store::open(&dir.join("db")).unwrap();
        if have < n {
            let t = Instant::now();
            let size = shikko_info::tree::append_nodes(&store, have, (have..n).map(leaf)).unwrap();
            assert_eq!(size, n);
            std::fs::write(&size_file, n.to_string()).unwrap();
            println!(
                "tree of {n} records written ({} new) in {:.1} s",
                n - have,
                t.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "store: {:.2} GiB",
        dir_bytes(&dir.join("db")) as f64 / (1u64 << 30) as f64
    );
    let store = Store::open(&dir.join("db")).unwrap();
    let root = shikko_info::tree::head(&store, n).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in ["cold", "warm"] {
        let (mut inc, mut con) = (Vec::with_capacity(proofs), Vec::with_capacity(proofs));
        let mut hashes = 0usize;
        for _ in 0..proofs {
            let i = rng.below(n);
            let t = Instant::now();
            let p = shikko_info::tree::inclusion(&store, i + 1, n).unwrap();
            inc.push(t.elapsed());
            hashes += p.len();
            verify_inclusion::<Sha256>(i, n, &leaf(i), &p, &root).unwrap();
            let old = 1 + rng.below(n - 1);
            let t = Instant::now();
            let p = shikko_info::tree::consistency(&store, old, n).unwrap();
            let old_root = shikko_info::tree::head(&store, old).unwrap();
            con.push(t.elapsed());
            verify_consistency::<Sha256>(old, n, &old_root, &root, &p).unwrap();
        }
        println!(
            "{round}: inclusion proof p50 {:.0} us, p99 {:.0} us, {:.1} hashes; consistency proof and old head p50 {:.0} us, p99 {:.0} us ({proofs} each, all verified)",
            pct(&mut inc, 0.5),
            pct(&mut inc, 0.99),
            hashes as f64 / proofs as f64,
            pct(&mut con, 0.5),
            pct(&mut con, 0.99),
        );
    }
}
