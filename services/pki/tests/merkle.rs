//! The transparency log's Merkle tree (shikko_core::merkle with SHA-256):
//! tree heads equal to RFC 6962's reference vectors (the leaves and heads
//! every CT implementation tests against), an inclusion proof equal to the
//! reference one, and for every tree up to 70 leaves every inclusion and
//! consistency proof verifies while every tampered one fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shikko_core::merkle::{
    Hash, LeafHashes, ProofError, consistency_proof, empty_root, inclusion_proof, leaf_hash, root,
    verify_consistency, verify_inclusion,
};
use shikko_pki::merkle::Sha256;

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hash(s: &str) -> Hash {
    unhex(s).try_into().unwrap()
}

fn tree(n: usize) -> LeafHashes<Sha256> {
    LeafHashes::new(
        (0..n)
            .map(|i| leaf_hash::<Sha256>(format!("record {i}").as_bytes()))
            .collect(),
    )
}

#[test]
fn tree_heads_and_a_proof_match_rfc_6962s_reference_vectors() {
    let leaves = LeafHashes::<Sha256>::new(
        LEAVES
            .iter()
            .map(|l| leaf_hash::<Sha256>(&unhex(l)))
            .collect(),
    );
    assert_eq!(
        root::<Sha256, _>(&leaves, 0).unwrap(),
        hash("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(
        root::<Sha256, _>(&leaves, 0).unwrap(),
        empty_root::<Sha256>()
    );
    for (n, want) in ROOTS.iter().enumerate() {
        assert_eq!(
            root::<Sha256, _>(&leaves, n as u64 + 1).unwrap(),
            hash(want),
            "size {}",
            n + 1
        );
    }
    let proof = inclusion_proof::<Sha256, _>(&leaves, 0, 8).unwrap();
    assert_eq!(
        proof,
        vec![
            hash("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            hash("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hash("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ]
    );
}

#[test]
fn every_inclusion_proof_verifies_and_every_tampered_one_fails() {
    for n in 1..=70u64 {
        let t = tree(n as usize);
        let head = root::<Sha256, _>(&t, n).unwrap();
        for m in 0..n {
            let leaf = t.leaves[m as usize];
            let proof = inclusion_proof::<Sha256, _>(&t, m, n).unwrap();
            assert_eq!(
                verify_inclusion::<Sha256>(m, n, &leaf, &proof, &head),
                Ok(()),
                "{m} of {n}"
            );
            // Another leaf, another position, another head, a changed hash,
            // a hash short or too many: refused.
            let other = leaf_hash::<Sha256>(b"not in the log");
            assert!(verify_inclusion::<Sha256>(m, n, &other, &proof, &head).is_err());
            if n > 1 {
                assert!(verify_inclusion::<Sha256>((m + 1) % n, n, &leaf, &proof, &head).is_err());
            }
            // (The size is bound by the signed head, not by the proof: a
            // proof of a tree of 3 also verifies "at size 4" against the
            // head of 3. Against the head of another size, it fails.)
            let head_after = root::<Sha256, _>(&tree(n as usize + 1), n + 1).unwrap();
            assert!(verify_inclusion::<Sha256>(m, n, &leaf, &proof, &head_after).is_err());
            assert_eq!(
                verify_inclusion::<Sha256>(n, n, &leaf, &proof, &head),
                Err(ProofError::Range)
            );
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i][7] ^= 1;
                assert!(verify_inclusion::<Sha256>(m, n, &leaf, &bad, &head).is_err());
            }
            if !proof.is_empty() {
                assert!(verify_inclusion::<Sha256>(m, n, &leaf, &proof[1..], &head).is_err());
            }
            let mut longer = proof.clone();
            longer.push(head);
            assert!(verify_inclusion::<Sha256>(m, n, &leaf, &longer, &head).is_err());
        }
    }
}

#[test]
fn every_consistency_proof_verifies_and_every_tampered_one_fails() {
    let t = tree(70);
    for n in 1..=70u64 {
        let new_head = root::<Sha256, _>(&t, n).unwrap();
        for m in 1..n {
            let old_head = root::<Sha256, _>(&t, m).unwrap();
            let proof = consistency_proof::<Sha256, _>(&t, m, n).unwrap();
            assert_eq!(
                verify_consistency::<Sha256>(m, n, &old_head, &new_head, &proof),
                Ok(()),
                "{m} to {n}"
            );
            // A rewritten past (another old head), another new head, other
            // sizes, a changed or missing hash: refused.
            let rewritten = leaf_hash::<Sha256>(b"rewritten");
            assert!(verify_consistency::<Sha256>(m, n, &rewritten, &new_head, &proof).is_err());
            assert!(verify_consistency::<Sha256>(m, n, &old_head, &rewritten, &proof).is_err());
            assert!(verify_consistency::<Sha256>(n, m, &new_head, &old_head, &proof).is_err());
            if m + 1 < n {
                assert!(
                    verify_consistency::<Sha256>(m + 1, n, &old_head, &new_head, &proof).is_err()
                );
            }
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i][0] ^= 0x80;
                assert!(verify_consistency::<Sha256>(m, n, &old_head, &new_head, &bad).is_err());
            }
            assert!(verify_consistency::<Sha256>(m, n, &old_head, &new_head, &proof[1..]).is_err());
        }
        // The same size: the same head, no proof.
        assert_eq!(
            verify_consistency::<Sha256>(n, n, &new_head, &new_head, &[]),
            Ok(())
        );
    }
    // A log cut back to fewer records than a head it signed cannot prove it.
    let t_short = tree(10);
    let old_head = root::<Sha256, _>(&t, 12).unwrap();
    let short_head = root::<Sha256, _>(&t_short, 10).unwrap();
    assert_eq!(
        verify_consistency::<Sha256>(12, 10, &old_head, &short_head, &[]),
        Err(ProofError::Range)
    );
}

#[test]
fn a_streaming_root_is_the_tree_head_at_every_size() {
    let t = tree(70);
    let mut s = shikko_core::merkle::StreamingRoot::default();
    assert_eq!(s.root::<Sha256>(), root::<Sha256, _>(&t, 0).unwrap());
    for n in 1..=70u64 {
        s.push::<Sha256>(leaf_hash::<Sha256>(format!("record {}", n - 1).as_bytes()));
        assert_eq!(s.size(), n);
        assert_eq!(
            s.root::<Sha256>(),
            root::<Sha256, _>(&t, n).unwrap(),
            "size {n}"
        );
    }
}
