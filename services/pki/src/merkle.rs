//! SHA-256 for the transparency log's Merkle tree ([`shikko_core::merkle`]).

use shikko_core::merkle::{Digest, Hash};

/// SHA-256 (aws-lc-rs), the hash of RFC 9162's tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sha256;

impl Digest for Sha256 {
    fn digest(parts: &[&[u8]]) -> Hash {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for p in parts {
            ctx.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}
