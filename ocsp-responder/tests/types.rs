//! The RFC 6960 types against openssl: requests openssl makes decode (SHA-1
//! and SHA-256 CertIDs, with and without nonce, POST and GET forms), and a
//! response built from these types is read and verified by openssl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der::{Decode, Encode};
use shikko_core::{CertKind, Serial, UnixTime};
use shikko_ocsp::request::{decode_get_path, decode_request};
use shikko_ocsp::types::*;
use shikko_pki::{KeyAlgorithm, Signer, SoftwareSigner, ca_certificate, to_pem};
use x509_cert::Certificate;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::serial_number::SerialNumber;

use shikko_testkit::openssl;

fn sha(alg: &'static aws_lc_rs::digest::Algorithm, data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(alg, data).as_ref().to_vec()
}

struct Ca {
    key: SoftwareSigner,
    der: Vec<u8>,
    subject_der: Vec<u8>,
}

fn ca(dir: &Path) -> Ca {
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let der = ca_certificate(
        CertKind::CardAuth,
        &key,
        Serial::from_u128(1).unwrap(),
        UnixTime(1_600_000_000),
        UnixTime(2_200_000_000),
    )
    .unwrap();
    std::fs::write(dir.join("ca.pem"), to_pem("CERTIFICATE", &der).unwrap()).unwrap();
    let cert = Certificate::from_der(&der).unwrap();
    let subject_der = cert.tbs_certificate().subject().to_der().unwrap();
    Ca {
        key,
        der,
        subject_der,
    }
}

#[test]
fn requests_made_by_openssl_decode() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path());
    let hashes = ca.key.public_key_hashes().unwrap();
    for (digest_flag, nonce_flag, oid, alg) in [
        (
            "-sha1",
            "-nonce",
            "1.3.14.3.2.26",
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        ),
        (
            "-sha256",
            "-no_nonce",
            "2.16.840.1.101.3.4.2.1",
            &aws_lc_rs::digest::SHA256,
        ),
    ] {
        let out = openssl(
            [
                "ocsp",
                "-issuer",
                "ca.pem",
                digest_flag,
                "-serial",
                "0x4A5001",
                "-serial",
                "0x4A5002",
                nonce_flag,
                "-reqout",
                "req.der",
            ],
            dir.path(),
        );
        let der = std::fs::read(dir.path().join("req.der")).unwrap_or_else(|_| panic!("{out}"));
        let parsed = decode_request(&der).unwrap();
        assert_eq!(parsed.cert_ids.len(), 2);
        for (id, serial) in parsed.cert_ids.iter().zip([0x4A5001u32, 0x4A5002]) {
            assert_eq!(id.hash_algorithm.oid.to_string(), oid);
            assert_eq!(
                id.issuer_name_hash.as_bytes(),
                sha(alg, &ca.subject_der).as_slice()
            );
            let key_hash: &[u8] = if oid.starts_with("1.3.14") {
                &hashes.sha1
            } else {
                &hashes.sha256
            };
            assert_eq!(id.issuer_key_hash.as_bytes(), key_hash);
            assert_eq!(
                id.serial_number.as_bytes(),
                serial.to_be_bytes()[1..].to_vec().as_slice()
            );
        }
        match nonce_flag {
            "-nonce" => assert_eq!(parsed.nonce.as_ref().map(Vec::len), Some(16)),
            _ => assert_eq!(parsed.nonce, None),
        }
        // The GET form of the same request.
        let path = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(
            decode_request(&decode_get_path(&path).unwrap()).unwrap(),
            parsed
        );
    }
}

fn time(t: i64) -> GeneralizedTime {
    GeneralizedTime::from_unix_duration(Duration::from_secs(t as u64)).unwrap()
}

#[test]
fn a_response_built_from_these_types_is_verified_by_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path());
    let hashes = ca.key.public_key_hashes().unwrap();
    let now = UnixTime::now().0;
    let cert_id = |serial: u32| CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: const_oid_sha1(),
            parameters: Some(der::Any::null()),
        },
        issuer_name_hash: OctetString::new(sha(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &ca.subject_der,
        ))
        .unwrap(),
        issuer_key_hash: OctetString::new(hashes.sha1.as_slice()).unwrap(),
        serial_number: SerialNumber::new(&serial.to_be_bytes()[1..]).unwrap(),
    };
    let single = |serial: u32, status: CertStatus| SingleResponse {
        cert_id: cert_id(serial),
        cert_status: status,
        this_update: time(now - 60),
        next_update: Some(time(now + 3600)),
        single_extensions: None,
    };
    let tbs = ResponseData {
        version: Default::default(),
        responder_id: ResponderId::ByKey(OctetString::new(hashes.sha1.as_slice()).unwrap()),
        produced_at: time(now),
        responses: vec![
            single(0x4A5001, CertStatus::Good(Null)),
            single(
                0x4A5002,
                CertStatus::Revoked(RevokedInfo {
                    revocation_time: time(1_700_000_000),
                    revocation_reason: Some(CrlReason::KeyCompromise),
                }),
            ),
            single(0x4A5003, CertStatus::Unknown(Null)),
        ],
        response_extensions: None,
    };
    let signature = ca.key.sign(&tbs.to_der().unwrap()).unwrap();
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: ca.key.signature_algorithm(),
        signature: BitString::from_bytes(&signature).unwrap(),
        certs: Some(vec![Certificate::from_der(&ca.der).unwrap()]),
    };
    let response = OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: ID_PKIX_OCSP_BASIC,
            response: OctetString::new(basic.to_der().unwrap()).unwrap(),
        }),
    };
    let der = response.to_der().unwrap();
    assert_eq!(
        OcspResponse::from_der(&der).unwrap(),
        response,
        "round trip"
    );
    std::fs::write(dir.path().join("resp.der"), &der).unwrap();
    let text = openssl(
        [
            "ocsp",
            "-respin",
            "resp.der",
            "-issuer",
            "ca.pem",
            "-VAfile",
            "ca.pem",
            "-serial",
            "0x4A5001",
            "-serial",
            "0x4A5002",
            "-serial",
            "0x4A5003",
            "-resp_text",
        ],
        dir.path(),
    );
    for want in [
        "Response verify OK",
        "0x4A5001: good",
        "0x4A5002: revoked",
        "Reason: keyCompromise",
        "0x4A5003: unknown",
        "Responder Id: ",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(!text.contains("Status times invalid"), "{text}");

    // A bare status answer (no responseBytes) round-trips too.
    let refused = OcspResponse {
        response_status: OcspResponseStatus::Unauthorized,
        response_bytes: None,
    };
    assert_eq!(
        refused.to_der().unwrap(),
        vec![0x30, 0x03, 0x0a, 0x01, 0x06]
    );
}

fn const_oid_sha1() -> der::asn1::ObjectIdentifier {
    der::asn1::ObjectIdentifier::new_unwrap("1.3.14.3.2.26")
}
