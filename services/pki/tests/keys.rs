//! Key generation, PKCS#8 files and signatures.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use der::Decode;
use shikko_pki::{
    KeyAlgorithm, PublicKeyHashes, Signer, SoftwareSigner, key_identifier, load_signer,
};

fn public_key_bits(signer: &dyn Signer) -> Vec<u8> {
    spki::SubjectPublicKeyInfoRef::from_der(signer.public_key_der())
        .unwrap()
        .subject_public_key
        .raw_bytes()
        .to_vec()
}

#[test]
fn algorithms_parse_and_print() {
    for alg in KeyAlgorithm::ALL {
        assert_eq!(alg.to_string().parse::<KeyAlgorithm>().unwrap(), alg);
    }
    assert_eq!(
        "rsa2048".parse::<KeyAlgorithm>().unwrap(),
        KeyAlgorithm::Rsa2048
    );
    assert_eq!(
        "p256".parse::<KeyAlgorithm>().unwrap(),
        KeyAlgorithm::EcdsaP256
    );
    assert!("ed25519".parse::<KeyAlgorithm>().is_err());
}

#[test]
fn signature_algorithm_identifiers() {
    let rsa = KeyAlgorithm::Rsa2048.signature_algorithm();
    assert_eq!(rsa.oid.to_string(), "1.2.840.113549.1.1.11");
    assert!(rsa.parameters.as_ref().is_some_and(|p| p.is_null()));
    let ec = KeyAlgorithm::EcdsaP256.signature_algorithm();
    assert_eq!(ec.oid.to_string(), "1.2.840.10045.4.3.2");
    assert!(ec.parameters.is_none());
}

/// Verifies a SHA-256 signature of `alg` with aws-lc-rs.
fn verify_sig(
    alg: KeyAlgorithm,
    key_bits: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), aws_lc_rs::error::Unspecified> {
    match alg {
        KeyAlgorithm::Rsa2048 => {
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key_bits).verify(msg, sig)
        }
        KeyAlgorithm::EcdsaP256 => {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key_bits).verify(msg, sig)
        }
    }
}

#[test]
fn signatures_verify_with_aws_lc_rs() {
    let msg = b"to be signed";
    for alg in KeyAlgorithm::ALL {
        let key = SoftwareSigner::generate(alg).unwrap();
        assert_eq!(key.algorithm(), alg);
        let sig = key.sign(msg).unwrap();
        let bits = public_key_bits(&key);
        let verify = |m: &[u8]| verify_sig(alg, &bits, m, &sig);
        assert!(verify(msg).is_ok(), "{alg} signature does not verify");
        assert!(
            verify(b"something else").is_err(),
            "{alg} verifies anything"
        );
        if alg == KeyAlgorithm::Rsa2048 {
            assert_eq!(sig.len(), 256);
            assert_eq!(
                bits.len(),
                270,
                "RSAPublicKey of a 2048-bit modulus, e=65537"
            );
        } else {
            assert_eq!(sig[0], 0x30, "ECDSA signature is a DER SEQUENCE");
            assert_eq!(bits.len(), 65, "uncompressed P-256 point");
        }
    }
}

#[test]
fn key_hashes_are_of_the_public_key_bits() {
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let bits = public_key_bits(&key);
    let h = key.public_key_hashes().unwrap();
    let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &bits);
    let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bits);
    assert_eq!(h.sha1.as_slice(), sha1.as_ref());
    assert_eq!(h.sha256.as_slice(), sha256.as_ref());
    assert_eq!(h.key_identifier(), &h.sha1);
    assert_eq!(key_identifier(key.public_key_der()).unwrap(), h.sha1);
    assert_eq!(
        PublicKeyHashes::from_spki_der(key.public_key_der()).unwrap(),
        h
    );
    assert!(PublicKeyHashes::from_spki_der(b"junk").is_err());
}

#[test]
fn pkcs8_files_round_trip_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    for alg in KeyAlgorithm::ALL {
        for ext in ["der", "pem"] {
            let key = SoftwareSigner::generate(alg).unwrap();
            let path = dir.path().join(format!("{alg}-key.{ext}"));
            key.save(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{path:?} has mode {mode:o}");
            let text = std::fs::read(&path).unwrap();
            assert_eq!(
                text.starts_with(b"-----BEGIN PRIVATE KEY-----"),
                ext == "pem"
            );

            let loaded: Arc<dyn Signer> = load_signer(&path).unwrap();
            assert_eq!(loaded.algorithm(), alg);
            assert_eq!(loaded.public_key_der(), key.public_key_der());
            // A signature by the loaded key verifies under the original public key.
            let sig = loaded.sign(b"m").unwrap();
            let bits = public_key_bits(&key);
            let ok = match alg {
                KeyAlgorithm::Rsa2048 => {
                    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &bits).verify(b"m", &sig)
                }
                KeyAlgorithm::EcdsaP256 => {
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &bits).verify(b"m", &sig)
                }
            };
            assert!(ok.is_ok());
            assert_eq!(
                SoftwareSigner::from_pkcs8_der(&key.to_pkcs8_der().unwrap())
                    .unwrap()
                    .public_key_der(),
                key.public_key_der()
            );
            // Overwriting keeps the mode and leaves no temporary file behind.
            key.save(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn openssl_reads_the_key_files() {
    let dir = tempfile::tempdir().unwrap();
    for alg in KeyAlgorithm::ALL {
        let key = SoftwareSigner::generate(alg).unwrap();
        let path = dir.path().join(format!("{alg}.pem"));
        key.save(&path).unwrap();
        let out = std::process::Command::new("/usr/bin/openssl")
            .args(["pkey", "-noout", "-text", "-in", path.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        match alg {
            KeyAlgorithm::Rsa2048 => assert!(text.contains("Private-Key: (2048 bit"), "{text}"),
            KeyAlgorithm::EcdsaP256 => assert!(text.contains("NIST CURVE: P-256"), "{text}"),
        }
        if alg == KeyAlgorithm::Rsa2048 {
            assert!(text.contains("publicExponent: 65537"), "{text}");
        }
    }
}

#[test]
fn garbage_keys_are_rejected() {
    assert!(SoftwareSigner::from_pkcs8_der(b"").is_err());
    assert!(SoftwareSigner::from_pkcs8_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
    assert!(
        SoftwareSigner::from_pkcs8_bytes(
            b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
        )
        .is_err()
    );
    let dir = tempfile::tempdir().unwrap();
    assert!(load_signer(&dir.path().join("missing.der")).is_err());
}

#[test]
fn digest_signatures_verify_as_message_signatures() {
    let msg = b"a CRL too large to hold in memory";
    let digest: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg)
        .as_ref()
        .try_into()
        .unwrap();
    for alg in KeyAlgorithm::ALL {
        let key = SoftwareSigner::generate(alg).unwrap();
        let sig = key.sign_sha256_digest(&digest).unwrap();
        let bits = public_key_bits(&key);
        let verify = |m: &[u8]| verify_sig(alg, &bits, m, &sig);
        assert!(
            verify(msg).is_ok(),
            "{alg} digest signature does not verify"
        );
        assert!(
            verify(b"another message").is_err(),
            "{alg} verifies anything"
        );
        if alg == KeyAlgorithm::Rsa2048 {
            // PKCS#1 v1.5 is deterministic: the same bytes as signing the message.
            assert_eq!(sig, key.sign(msg).unwrap());
        }
    }
}

#[test]
fn a_key_file_others_could_read_or_change_is_refused() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("role.key");
    SoftwareSigner::generate(KeyAlgorithm::EcdsaP256)
        .unwrap()
        .save(&path)
        .unwrap();
    let chmod = |mode: u32| {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // As written: 0600, the process's own.
    shikko_pki::check_key_file(&path).unwrap();
    chmod(0o400);
    shikko_pki::check_key_file(&path).unwrap();
    for bad in [0o644, 0o604, 0o602, 0o620, 0o666] {
        chmod(bad);
        let err = shikko_pki::check_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{bad:o}: {err}");
        assert!(err.contains("role.key"), "{bad:o}: {err}");
    }
    // The data directory's loader checks too.
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::rename(&path, keys.join("role.key")).unwrap();
    let data = shikko_pki::DataDir::new(dir.path());
    let err = data.load_key("role").unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(
        keys.join("role.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    data.load_key("role").unwrap();

    // Another user's key file (only root can make one to try).
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    if me == 0 {
        let theirs = keys.join("role.key");
        std::os::unix::fs::chown(&theirs, Some(12_345), None).unwrap();
        let err = shikko_pki::check_key_file(&theirs).unwrap_err().to_string();
        assert!(err.contains("owned by user 12345"), "{err}");
    }
}
