//! Issues every kind of certificate with RSA-2048 and P-256 keys and has the
//! system openssl verify and read them.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use common::*;
use der::{Decode, Encode};
use shikko_core::{CertKind, HolderId};
use shikko_pki::x509_cert::Certificate;
use shikko_pki::x509_cert::ext::pkix::SubjectAltName;
use shikko_pki::x509_cert::ext::pkix::name::GeneralName;
use shikko_pki::{
    HolderCertRequest, Issuer, KeyAlgorithm, PublicKeyHashes, Signer, SoftwareSigner,
    ca_certificate, crl_dp_name, holder_certificate, ocsp_responder_certificate,
    operator_ca_certificate, operator_client_certificate, parse_certificate, server_certificate,
};

struct Ca {
    key: SoftwareSigner,
    der: Vec<u8>,
}

fn make_ca(kind: CertKind, alg: KeyAlgorithm, n: u128) -> Ca {
    let key = SoftwareSigner::generate(alg).unwrap();
    let der = ca_certificate(kind, &key, serial(n), not_before(), not_after()).unwrap();
    Ca { key, der }
}

/// The certificate decodes with x509-cert, re-encodes to the same bytes, and its
/// signature verifies with aws-lc-rs under the issuer's key.
fn check_structure(der: &[u8], issuer_key: &dyn Signer) -> Certificate {
    let cert = Certificate::from_der(der).unwrap();
    assert_eq!(cert.to_der().unwrap(), der, "x509-cert round trip");
    let tbs = cert.tbs_certificate().to_der().unwrap();
    let sig = cert.signature().as_bytes().unwrap();
    verify_with_aws_lc(issuer_key, &tbs, sig);
    assert_eq!(
        cert.signature_algorithm(),
        &issuer_key.signature_algorithm()
    );
    cert
}

fn verify_with_aws_lc(key: &dyn Signer, msg: &[u8], sig: &[u8]) {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    };
    let spki = spki::SubjectPublicKeyInfoRef::from_der(key.public_key_der()).unwrap();
    let bits = spki.subject_public_key.raw_bytes();
    match key.algorithm() {
        KeyAlgorithm::Rsa2048 => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, bits)
            .verify(msg, sig)
            .unwrap(),
        KeyAlgorithm::EcdsaP256 => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, bits)
            .verify(msg, sig)
            .unwrap(),
    }
}

fn issue_and_verify_everything(alg: KeyAlgorithm, dir: &Path) {
    let url = "http://127.0.0.1:8080/ocsp";
    let cas: Vec<(CertKind, Ca)> = CertKind::ALL
        .iter()
        .zip(1u128..)
        .map(|(k, n)| (*k, make_ca(*k, alg, n)))
        .collect();

    for (kind, ca) in &cas {
        let ca_cert = check_structure(&ca.der, &ca.key);
        let ca_pem = write_pem(dir, &format!("{kind}-ca.pem"), &ca.der);
        let ca_text = x509_text(&ca_pem);
        assert!(ca_text.contains("CA:TRUE"), "{ca_text}");
        assert!(ca_text.contains("Certificate Sign, CRL Sign"), "{ca_text}");
        assert!(ca_text.contains("Version: 3"), "{ca_text}");
        assert!(ca_text.contains("O=JPKI"), "{ca_text}");
        let ski = ca.key.public_key_hashes().unwrap().sha1;
        let ski_hex: Vec<String> = ski.iter().map(|b| format!("{b:02X}")).collect();
        assert!(
            ca_text.contains(&ski_hex.join(":")),
            "SKI missing:\n{ca_text}"
        );
        assert_eq!(
            ca_cert.tbs_certificate().issuer(),
            ca_cert.tbs_certificate().subject()
        );
        // A self-signed root verifies against itself.
        assert_verifies(&ca_pem, &ca_pem, &[]);

        let issuer = Issuer::from_certificate(&ca.key, &ca.der).unwrap();
        let holder_key = SoftwareSigner::generate(alg).unwrap();
        let holder = HolderId::new(format!("H-{kind}-0001")).unwrap();
        let municipality = chiyoda();
        let info = four_info();
        let signing = kind.is_signing();
        let req = HolderCertRequest {
            kind: *kind,
            holder: &holder,
            municipality: signing.then_some(&municipality),
            four_info: signing.then_some(&info),
            subject_public_key: holder_key.public_key_der(),
            serial: serial(0x8000_0000_0000_0001),
            not_before: not_before(),
            not_after: not_after(),
            ocsp_url: Some(url),
        };
        let leaf = holder_certificate(&issuer, &req).unwrap();
        let leaf_cert = check_structure(&leaf, &ca.key);
        let leaf_pem = write_pem(dir, &format!("{kind}-holder.pem"), &leaf);
        assert_verifies(&ca_pem, &leaf_pem, &[]);
        let text = x509_text(&leaf_pem);
        assert!(text.contains("Serial Number:") && text.contains("80:00:00:00:00:00:00:01"));
        assert!(
            text.contains("OCSP - URI:http://127.0.0.1:8080/ocsp"),
            "{text}"
        );
        assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
        assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
        if signing {
            assert!(text.contains("1.2.392.200149.8.5.1.1.20"), "{text}");
            assert!(
                text.contains("Digital Signature, Non Repudiation"),
                "{text}"
            );
            assert!(
                text.contains("Subject: C=JP, L=東京都, L=千代田区, CN=H-"),
                "{text}"
            );
            let ou = if *kind == CertKind::CardSigning {
                "JPKI for digital signature"
            } else {
                "JPKI for smartphone digital signature"
            };
            // openssl prints names inside extensions in its default form,
            // escaping non-ASCII bytes.
            let dp = format!(
                "DirName:C = JP, O = JPKI, OU = {ou}, OU = CRL Distribution Points, OU = {}, CN = {} CRLDP",
                openssl_escape("東京都"),
                openssl_escape("千代田区"),
            );
            assert!(text.contains(&dp), "CRL DP missing:\n{text}");
            check_four_info_alt_name(&leaf_cert, dir, *kind);
        } else {
            assert!(text.contains("1.2.392.200149.8.5.1.3.30"), "{text}");
            assert!(text.contains("Subject: C=JP, CN=H-"), "{text}");
            assert!(!text.contains("Subject Alternative Name"), "{text}");
            assert!(!text.contains("CRL Distribution"), "{text}");
            assert!(!text.contains("Non Repudiation"), "{text}");
        }
        assert!(text.contains("critical"), "{text}");

        // The delegated OCSP responder of this CA.
        let responder_key = SoftwareSigner::generate(alg).unwrap();
        let responder = ocsp_responder_certificate(
            &issuer,
            responder_key.public_key_der(),
            serial(77),
            not_before(),
            not_after(),
            "Shikko OCSP Responder",
        )
        .unwrap();
        check_structure(&responder, &ca.key);
        let responder_pem = write_pem(dir, &format!("{kind}-ocsp.pem"), &responder);
        assert_verifies(&ca_pem, &responder_pem, &["-purpose", "ocsphelper"]);
        let text = x509_text(&responder_pem);
        assert!(text.contains("OCSP Signing"), "{text}");
        assert!(text.contains("OCSP No Check"), "{text}");
        assert!(text.contains("CN=Shikko OCSP Responder"), "{text}");
    }

    // Operator CA, an operator's client certificate and a loopback server certificate.
    let op_key = SoftwareSigner::generate(alg).unwrap();
    let op_ca = operator_ca_certificate(&op_key, serial(100), not_before(), not_after()).unwrap();
    check_structure(&op_ca, &op_key);
    let op_ca_pem = write_pem(dir, "operator-ca.pem", &op_ca);
    assert_verifies(&op_ca_pem, &op_ca_pem, &[]);
    let op_issuer = Issuer::operator_ca(&op_key).unwrap();

    let client_key = SoftwareSigner::generate(alg).unwrap();
    let client = operator_client_certificate(
        &op_issuer,
        "operator-001",
        Some("operator-001.example"),
        client_key.public_key_der(),
        serial(101),
        not_before(),
        not_after(),
    )
    .unwrap();
    check_structure(&client, &op_key);
    let client_pem = write_pem(dir, "operator.pem", &client);
    assert_verifies(&op_ca_pem, &client_pem, &["-purpose", "sslclient"]);
    let text = x509_text(&client_pem);
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(text.contains("CN=operator-001"), "{text}");
    assert!(text.contains("DNS:operator-001.example"), "{text}");

    let server_key = SoftwareSigner::generate(alg).unwrap();
    let server = server_certificate(
        &op_issuer,
        &["localhost"],
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        server_key.public_key_der(),
        serial(102),
        not_before(),
        not_after(),
    )
    .unwrap();
    check_structure(&server, &op_key);
    let server_pem = write_pem(dir, "server.pem", &server);
    assert_verifies(
        &op_ca_pem,
        &server_pem,
        &["-purpose", "sslserver", "-verify_hostname", "localhost"],
    );
    assert_verifies(&op_ca_pem, &server_pem, &["-verify_ip", "127.0.0.1"]);
    let text = x509_text(&server_pem);
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(
        text.contains("DNS:localhost, IP Address:127.0.0.1"),
        "{text}"
    );

    // A certificate must not verify under another purpose's root.
    let sign_pem = dir.join("sign-ca.pem");
    let auth_holder = dir.join("auth-holder.pem");
    let out = openssl(&[
        "verify",
        "-CAfile",
        sign_pem.to_str().unwrap(),
        auth_holder.to_str().unwrap(),
    ]);
    assert!(
        !out.contains(": OK"),
        "auth holder verified under the sign root:\n{out}"
    );
}

fn openssl_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii() {
                char::from(b).to_string()
            } else {
                format!("\\{b:02X}")
            }
        })
        .collect()
}

/// The SAN's otherName values are UTF8Strings under 1.2.392.200149.8.5.5, as
/// both x509-cert and openssl asn1parse read them.
fn check_four_info_alt_name(cert: &Certificate, dir: &Path, kind: CertKind) {
    let (critical, san) = cert
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .unwrap()
        .expect("signing certificates carry a subjectAltName");
    assert!(!critical);
    let mut seen = Vec::new();
    for name in &san.0 {
        let GeneralName::OtherName(other) = name else {
            panic!("unexpected general name {name:?}");
        };
        let value = der::asn1::Utf8StringRef::try_from(&other.value).unwrap();
        seen.push((other.type_id.to_string(), value.as_str().to_owned()));
    }
    let expected = [
        ("1.2.392.200149.8.5.5.1", "山田\u{3000}花子"),
        ("1.2.392.200149.8.5.5.3", "2"),
        ("1.2.392.200149.8.5.5.4", "319850412"),
        ("1.2.392.200149.8.5.5.5", "東京都千代田区千代田1番1号"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(o, v)| (o.to_string(), v.to_string()))
        .collect();
    assert_eq!(seen, expected);

    let ext = cert
        .tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == shikko_pki::x509_cert::ext::pkix::ID_CE_SUBJECT_ALT_NAME)
        .unwrap();
    let san_path = dir.join(format!("{kind}-san.der"));
    std::fs::write(&san_path, ext.extn_value.as_bytes()).unwrap();
    let parsed = openssl(&[
        "asn1parse",
        "-inform",
        "DER",
        "-in",
        san_path.to_str().unwrap(),
    ]);
    assert_eq!(parsed.matches("UTF8STRING").count(), 4, "{parsed}");
    for (oid, value) in &expected {
        assert!(
            parsed.contains(&format!(":{oid}")),
            "{oid} missing:\n{parsed}"
        );
        assert!(
            parsed.contains(&format!("UTF8STRING        :{value}")),
            "{parsed}"
        );
    }
    assert!(
        parsed.contains("cont [ 0 ]"),
        "explicit [0] missing:\n{parsed}"
    );
}

#[test]
fn rsa2048_certificates_verify_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    issue_and_verify_everything(KeyAlgorithm::Rsa2048, dir.path());
}

#[test]
fn p256_certificates_verify_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    issue_and_verify_everything(KeyAlgorithm::EcdsaP256, dir.path());
}

#[test]
fn crl_dp_name_matches_the_certificate_bytes() {
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let ca = ca_certificate(
        CertKind::CardSigning,
        &key,
        serial(1),
        not_before(),
        not_after(),
    )
    .unwrap();
    let issuer = Issuer::from_certificate(&key, &ca).unwrap();
    let holder = HolderId::new("H-1").unwrap();
    let m = chiyoda();
    let info = four_info();
    let leaf = holder_certificate(
        &issuer,
        &HolderCertRequest {
            kind: CertKind::CardSigning,
            holder: &holder,
            municipality: Some(&m),
            four_info: Some(&info),
            subject_public_key: key.public_key_der(),
            serial: serial(2),
            not_before: not_before(),
            not_after: not_after(),
            ocsp_url: None,
        },
    )
    .unwrap();
    let cert = parse_certificate(&leaf).unwrap();
    let (_, dps) = cert
        .tbs_certificate()
        .get_extension::<shikko_pki::x509_cert::ext::pkix::CrlDistributionPoints>()
        .unwrap()
        .unwrap();
    assert_eq!(dps.0.len(), 1);
    let Some(shikko_pki::x509_cert::ext::pkix::name::DistributionPointName::FullName(names)) =
        &dps.0[0].distribution_point
    else {
        panic!("fullName expected");
    };
    let [GeneralName::DirectoryName(dn)] = names.as_slice() else {
        panic!("one directoryName expected");
    };
    assert_eq!(
        dn.to_der().unwrap(),
        crl_dp_name(&m).unwrap().to_der().unwrap()
    );
    // No AIA when no URL is given.
    let text_has_aia = cert
        .tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .any(|e| e.extn_id == const_oid::db::rfc5280::ID_PE_AUTHORITY_INFO_ACCESS);
    assert!(!text_has_aia);
    // The issuer key hashes computed from the CA certificate match the signer's.
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .unwrap();
    assert_eq!(
        PublicKeyHashes::from_spki_der(&spki).unwrap(),
        key.public_key_hashes().unwrap()
    );
}

#[test]
fn bad_requests_are_refused() {
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let issuer = Issuer::ca(CertKind::CardSigning, &key).unwrap();
    let holder = HolderId::new("H-1").unwrap();
    let info = four_info();
    let m = chiyoda();
    let base = HolderCertRequest {
        kind: CertKind::CardSigning,
        holder: &holder,
        municipality: Some(&m),
        four_info: Some(&info),
        subject_public_key: key.public_key_der(),
        serial: serial(2),
        not_before: not_before(),
        not_after: not_after(),
        ocsp_url: None,
    };
    assert!(holder_certificate(&issuer, &base).is_ok());
    let no_info = HolderCertRequest {
        four_info: None,
        ..base
    };
    assert!(holder_certificate(&issuer, &no_info).is_err());
    let auth_with_info = HolderCertRequest {
        kind: CertKind::CardAuth,
        ..base
    };
    assert!(holder_certificate(&issuer, &auth_with_info).is_err());
    let backwards = HolderCertRequest {
        not_after: base.not_before.plus_secs(-1),
        ..base
    };
    assert!(holder_certificate(&issuer, &backwards).is_err());
    let garbage_key = HolderCertRequest {
        subject_public_key: b"not a key",
        ..base
    };
    assert!(holder_certificate(&issuer, &garbage_key).is_err());
    let other_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let ca = ca_certificate(
        CertKind::CardSigning,
        &key,
        serial(1),
        not_before(),
        not_after(),
    )
    .unwrap();
    assert!(Issuer::from_certificate(&other_key, &ca).is_err());
}

#[test]
fn far_validity_uses_generalized_time() {
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let until = shikko_core::UnixTime::from_civil(2055, 1, 1);
    let ca = ca_certificate(CertKind::PhoneAuth, &key, serial(9), not_before(), until).unwrap();
    let cert = parse_certificate(&ca).unwrap();
    let v = cert.tbs_certificate().validity();
    assert!(matches!(
        v.not_before,
        shikko_pki::x509_cert::time::Time::UtcTime(_)
    ));
    assert!(matches!(
        v.not_after,
        shikko_pki::x509_cert::time::Time::GeneralTime(_)
    ));
    let dir = tempfile::tempdir().unwrap();
    let pem = write_pem(dir.path(), "ca.pem", &ca);
    assert!(x509_text(&pem).contains("Not After : Jan  1 00:00:00 2055 GMT"));
}
