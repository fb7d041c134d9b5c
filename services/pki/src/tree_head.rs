//! Signed tree heads of the audit log (issue 15): the size of the log, its
//! Merkle tree head ([`shikko_core::merkle`]) and the time, signed with the
//! audit key. A head binds the size and the root together (an inclusion
//! proof alone does not bind the size), so a verifier checks proofs
//! against a signed head, and two heads against each other with a
//! consistency proof.
//!
//! The signed bytes are fixed, so that another implementation, or
//! `openssl dgst -sha256 -verify KEY.pem -signature SIG.der HEAD.bin`,
//! checks a head without Shikko: the ASCII line `shikko audit tree head v1`
//! and a newline (26 octets), the size (u64 big-endian), the time (Unix
//! seconds, i64 big-endian), the root (32 octets): 74 octets. The
//! signature is ECDSA P-256 with SHA-256 (a DER `Ecdsa-Sig-Value`) or
//! RSA PKCS#1 v1.5 with SHA-256, as the key is.

use der::Decode;
use shikko_core::UnixTime;
use shikko_core::merkle::Hash;
use spki::SubjectPublicKeyInfoOwned;

use crate::Result;
use crate::signer::Signer;

/// What a signed head's bytes start with.
pub const DOMAIN: &[u8] = b"shikko audit tree head v1\n";

/// A tree head: the log's size, its Merkle tree head, when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Records in the log.
    pub size: u64,
    /// The Merkle tree head of those records.
    pub root: Hash,
    /// When the head was signed.
    pub time: UnixTime,
}

impl TreeHead {
    /// The bytes the signature covers (see the module's documentation).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(DOMAIN.len() + 48);
        out.extend_from_slice(DOMAIN);
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.time.0.to_be_bytes());
        out.extend_from_slice(&self.root);
        out
    }
}

/// A tree head and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTreeHead {
    /// The head.
    pub head: TreeHead,
    /// The audit key's signature over [`TreeHead::signed_bytes`].
    pub signature: Vec<u8>,
}

/// Signs `head` with the audit key.
pub fn sign(head: TreeHead, key: &dyn Signer) -> Result<SignedTreeHead> {
    Ok(SignedTreeHead {
        signature: key.sign(&head.signed_bytes())?,
        head,
    })
}

/// Whether `sth` is signed by the key whose SubjectPublicKeyInfo is
/// `spki_der` (a key that does not parse: no).
pub fn verify(sth: &SignedTreeHead, spki_der: &[u8]) -> bool {
    let Ok(spki) = SubjectPublicKeyInfoOwned::from_der(spki_der) else {
        return false;
    };
    let alg = crate::verify::signature_algorithm_for(&spki);
    crate::verify::verify_signature(&spki, &alg, &sth.head.signed_bytes(), &sth.signature)
}
