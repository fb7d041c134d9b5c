//! Signature checks with a certificate's public key: the two algorithms the
//! platform issues (sha256WithRSAEncryption, ecdsa-with-SHA256).

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, SHA_256_WITH_RSA_ENCRYPTION};
use der::Encode;
use der::asn1::ObjectIdentifier;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

/// Whether `sig` is a signature under `alg` (sha256WithRSAEncryption or
/// ecdsa-with-SHA256) of `msg` by the key of `spki`. Any other algorithm: no.
pub fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &ObjectIdentifier,
    msg: &[u8],
    sig: &[u8],
) -> bool {
    let key = spki.subject_public_key.raw_bytes();
    let r = if *alg == ECDSA_WITH_SHA_256 {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key).verify(msg, sig)
    } else if *alg == SHA_256_WITH_RSA_ENCRYPTION {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key).verify(msg, sig)
    } else {
        return false;
    };
    r.is_ok()
}

/// The signature algorithm a holder key signs with: sha256WithRSAEncryption
/// for an RSA key, ecdsa-with-SHA256 for a P-256 one.
pub fn signature_algorithm_for(spki: &SubjectPublicKeyInfoOwned) -> ObjectIdentifier {
    if spki.algorithm.oid == const_oid::db::rfc5912::RSA_ENCRYPTION {
        SHA_256_WITH_RSA_ENCRYPTION
    } else {
        ECDSA_WITH_SHA_256
    }
}

/// Whether `cert` was signed by the key of `issuer` (and names it as issuer).
pub fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    if cert.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return false;
    }
    let Ok(tbs) = cert.tbs_certificate().to_der() else {
        return false;
    };
    let Some(sig) = cert.signature().as_bytes() else {
        return false;
    };
    verify_signature(
        issuer.tbs_certificate().subject_public_key_info(),
        &cert.signature_algorithm().oid,
        &tbs,
        sig,
    )
}
