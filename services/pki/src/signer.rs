//! The [`Signer`] trait every CA, responder and operator key sits behind, the
//! key algorithms it supports, and the hashes of a public key that certificates
//! (key identifiers) and OCSP (`issuerKeyHash`) are keyed by.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, SHA_256_WITH_RSA_ENCRYPTION};
use der::{Any, Decode};
use serde::{Deserialize, Serialize};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};

use crate::error::{Error, Result};

/// The key algorithms Shikko signs with: a configuration choice per CA.
///
/// RSA-2048 is the JPKI profile; ECDSA P-256 is the fast option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// RSA, 2048-bit modulus, e = 65537; signs with sha256WithRSAEncryption (PKCS#1 v1.5).
    #[serde(rename = "rsa2048")]
    Rsa2048,
    /// ECDSA on NIST P-256; signs with ecdsa-with-SHA256 (DER `Ecdsa-Sig-Value`).
    #[serde(rename = "p256")]
    EcdsaP256,
}

impl KeyAlgorithm {
    /// Both algorithms, in declaration order.
    pub const ALL: [KeyAlgorithm; 2] = [KeyAlgorithm::Rsa2048, KeyAlgorithm::EcdsaP256];

    /// The configuration name: `rsa2048` or `p256`.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "rsa2048",
            KeyAlgorithm::EcdsaP256 => "p256",
        }
    }

    /// The AlgorithmIdentifier of this algorithm's SHA-256 signatures (RFC 4055, RFC 5758):
    /// sha256WithRSAEncryption with NULL parameters, ecdsa-with-SHA256 with absent parameters.
    pub fn signature_algorithm(self) -> AlgorithmIdentifierOwned {
        match self {
            KeyAlgorithm::Rsa2048 => AlgorithmIdentifierOwned {
                oid: SHA_256_WITH_RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
            KeyAlgorithm::EcdsaP256 => AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA_256,
                parameters: None,
            },
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rsa2048" | "rsa-2048" | "rsa" => Ok(KeyAlgorithm::Rsa2048),
            "p256" | "p-256" | "ecdsa-p256" | "ec" => Ok(KeyAlgorithm::EcdsaP256),
            _ => Err(Error::InvalidInput(
                "key algorithm must be \"rsa2048\" or \"p256\"",
            )),
        }
    }
}

/// A signing key: in memory ([`crate::SoftwareSigner`]) or, later, in an HSM.
///
/// Nothing here assumes the private key is readable: a PKCS#11 implementation
/// knows its public key and algorithm and forwards [`Signer::sign`] to the token.
pub trait Signer: Send + Sync {
    /// The key's algorithm.
    fn algorithm(&self) -> KeyAlgorithm;

    /// The AlgorithmIdentifier to put next to this key's signatures.
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        self.algorithm().signature_algorithm()
    }

    /// The public key as a DER SubjectPublicKeyInfo.
    fn public_key_der(&self) -> &[u8];

    /// Signs `msg` (the whole message, hashed here with SHA-256): PKCS#1 v1.5 for
    /// RSA, a DER `Ecdsa-Sig-Value` for ECDSA.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>>;

    /// Signs a message by its SHA-256 digest, computed by the caller: how a
    /// message too large to hold in memory (a CRL of millions of entries) is
    /// signed while it streams to disk. Same signature as [`Signer::sign`] of
    /// the message whose digest this is.
    fn sign_sha256_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>>;

    /// The hashes of the public key: key identifier and OCSP issuerKeyHash.
    ///
    /// Implementations may cache; the default recomputes from [`Signer::public_key_der`].
    fn public_key_hashes(&self) -> Result<PublicKeyHashes> {
        PublicKeyHashes::from_spki_der(self.public_key_der())
    }
}

impl<S: Signer + ?Sized> Signer for std::sync::Arc<S> {
    fn algorithm(&self) -> KeyAlgorithm {
        (**self).algorithm()
    }
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        (**self).signature_algorithm()
    }
    fn public_key_der(&self) -> &[u8] {
        (**self).public_key_der()
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        (**self).sign(msg)
    }
    fn sign_sha256_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        (**self).sign_sha256_digest(digest)
    }
    fn public_key_hashes(&self) -> Result<PublicKeyHashes> {
        (**self).public_key_hashes()
    }
}

impl<S: Signer + ?Sized> Signer for Box<S> {
    fn algorithm(&self) -> KeyAlgorithm {
        (**self).algorithm()
    }
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        (**self).signature_algorithm()
    }
    fn public_key_der(&self) -> &[u8] {
        (**self).public_key_der()
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        (**self).sign(msg)
    }
    fn sign_sha256_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        (**self).sign_sha256_digest(digest)
    }
    fn public_key_hashes(&self) -> Result<PublicKeyHashes> {
        (**self).public_key_hashes()
    }
}

/// Hashes of a public key's `subjectPublicKey` BIT STRING contents (excluding
/// tag, length and the unused-bits octet).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKeyHashes {
    /// SHA-1: the key identifier (RFC 5280 §4.2.1.2 method 1) and OCSP's usual issuerKeyHash.
    pub sha1: [u8; 20],
    /// SHA-256: the issuerKeyHash of a CertID that uses SHA-256.
    pub sha256: [u8; 32],
}

impl PublicKeyHashes {
    /// Hashes the subjectPublicKey bits of a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(spki_der: &[u8]) -> Result<PublicKeyHashes> {
        let spki = SubjectPublicKeyInfoRef::from_der(spki_der)?;
        Ok(PublicKeyHashes::from_key_bits(
            spki.subject_public_key.raw_bytes(),
        ))
    }

    /// Hashes the subjectPublicKey bits themselves.
    pub fn from_key_bits(bits: &[u8]) -> PublicKeyHashes {
        let mut sha1 = [0u8; 20];
        sha1.copy_from_slice(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, bits).as_ref());
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest::digest(&digest::SHA256, bits).as_ref());
        PublicKeyHashes { sha1, sha256 }
    }

    /// The key identifier for subjectKeyIdentifier / authorityKeyIdentifier: the SHA-1 hash.
    pub fn key_identifier(&self) -> &[u8; 20] {
        &self.sha1
    }
}

impl fmt::Debug for PublicKeyHashes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        f.debug_struct("PublicKeyHashes")
            .field("sha1", &hex(&self.sha1))
            .field("sha256", &hex(&self.sha256))
            .finish()
    }
}

/// The key identifier (SHA-1 of the subjectPublicKey bits) of a DER SubjectPublicKeyInfo.
pub fn key_identifier(spki_der: &[u8]) -> Result<[u8; 20]> {
    Ok(PublicKeyHashes::from_spki_der(spki_der)?.sha1)
}
