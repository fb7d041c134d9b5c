//! Internal identities: the internal CA and one certificate per role or
//! client, verified by the system openssl for the purpose each is for, and
//! read back to the identity they carry.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::*;
use shikko_core::UnixTime;
use shikko_pki::{
    InternalRole, Issuer, KeyAlgorithm, RoleCertRequest, Signer, SoftwareSigner, identity_of,
    internal_ca_certificate, internal_ca_name, operator_ca_certificate,
    operator_client_certificate, role_certificate,
};

fn request<'a>(
    role: InternalRole,
    key: &'a [u8],
    dns: &'a [&'a str],
    ips: &'a [IpAddr],
    n: u128,
) -> RoleCertRequest<'a> {
    RoleCertRequest {
        role,
        dns_names: dns,
        ip_addresses: ips,
        subject_public_key: key,
        serial: serial(n),
        not_before: not_before(),
        not_after: UnixTime::now().plus_secs(7 * 86_400),
    }
}

#[test]
fn every_role_gets_a_certificate_that_openssl_verifies_for_its_purpose() {
    let dir = tempfile::tempdir().unwrap();
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let ca_key = SoftwareSigner::generate(alg).unwrap();
        let ca_der =
            internal_ca_certificate(&ca_key, serial(1), not_before(), not_after()).unwrap();
        let ca = write_pem(dir.path(), "internal-ca.pem", &ca_der);
        let issuer = Issuer::from_certificate(&ca_key, &ca_der).unwrap();
        assert_eq!(issuer.name(), &internal_ca_name());
        let localhost = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
        for (n, role) in InternalRole::ALL.into_iter().enumerate() {
            let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
            let (dns, ips): (&[&str], &[IpAddr]) = if role.serves() {
                (&["localhost"], &localhost)
            } else {
                (&[], &[])
            };
            let der = role_certificate(
                &issuer,
                &request(role, key.public_key_der(), dns, ips, 100 + n as u128),
            )
            .unwrap();
            assert_eq!(identity_of(&der).unwrap(), Some(role), "{role}");
            let pem = write_pem(dir.path(), &format!("{role}.pem"), &der);
            assert_verifies(&ca, &pem, &["-purpose", "sslclient"]);
            let text = x509_text(&pem);
            assert!(
                text.contains(&format!("URI:spiffe://shikko/role/{role}")),
                "{text}"
            );
            assert!(text.contains(&format!("CN={role}")), "{text}");
            if role.serves() {
                assert_verifies(&ca, &pem, &["-purpose", "sslserver"]);
                assert!(
                    text.contains("DNS:localhost, IP Address:127.0.0.1"),
                    "{text}"
                );
            } else {
                // A client identity is no server: openssl refuses it as one.
                let out = openssl(&[
                    "verify",
                    "-x509_strict",
                    "-purpose",
                    "sslserver",
                    "-CAfile",
                    ca.to_str().unwrap(),
                    pem.to_str().unwrap(),
                ]);
                assert!(!out.contains(": OK"), "{role} verified as a server:\n{out}");
            }
        }
    }
}

#[test]
fn names_and_uris_round_trip_and_strangers_carry_no_identity() {
    for role in InternalRole::ALL {
        assert_eq!(InternalRole::parse(role.as_str()), Some(role));
        assert_eq!(InternalRole::from_uri(&role.uri()), Some(role));
    }
    assert_eq!(InternalRole::from_uri("spiffe://shikko/role/root"), None);
    assert_eq!(InternalRole::from_uri("spiffe://other/role/admin"), None);
    assert_eq!(InternalRole::parse("Admin"), None);

    // An operator's client certificate (another CA, no URI): no identity.
    let op_ca_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let op_ca = operator_ca_certificate(&op_ca_key, serial(1), not_before(), not_after()).unwrap();
    let op_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let op = operator_client_certificate(
        &Issuer::from_certificate(&op_ca_key, &op_ca).unwrap(),
        "bank-op-1",
        None,
        op_key.public_key_der(),
        serial(2),
        not_before(),
        not_after(),
    )
    .unwrap();
    assert_eq!(identity_of(&op).unwrap(), None);
    assert!(identity_of(b"not a certificate").is_err());
}

#[test]
fn a_serving_role_names_its_host_and_a_client_names_none() {
    let ca_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let ca_der = internal_ca_certificate(&ca_key, serial(1), not_before(), not_after()).unwrap();
    let issuer = Issuer::from_certificate(&ca_key, &ca_der).unwrap();
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let spki = key.public_key_der();
    let err = role_certificate(&issuer, &request(InternalRole::Ocsp, spki, &[], &[], 2));
    assert!(err.is_err(), "a server without a host name");
    let err = role_certificate(
        &issuer,
        &request(InternalRole::Admin, spki, &["admin.example"], &[], 3),
    );
    assert!(err.is_err(), "a client with a host name");
}

#[test]
fn the_internal_crl_is_checked_by_openssl_and_revokes_what_it_lists() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let ca_der = internal_ca_certificate(&ca_key, serial(1), not_before(), not_after()).unwrap();
    let ca = write_pem(dir.path(), "internal-ca.pem", &ca_der);
    let issuer = Issuer::from_certificate(&ca_key, &ca_der).unwrap();
    let localhost = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let mut pems = Vec::new();
    for (n, role) in [InternalRole::Ocsp, InternalRole::Crl]
        .into_iter()
        .enumerate()
    {
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let der = role_certificate(
            &issuer,
            &request(
                role,
                key.public_key_der(),
                &["localhost"],
                &localhost,
                200 + n as u128,
            ),
        )
        .unwrap();
        pems.push(write_pem(dir.path(), &format!("{role}.pem"), &der));
    }
    let now = UnixTime::now();
    // The ocsp identity (serial 200) is revoked; the crl identity is not.
    let crl = shikko_pki::internal_crl(
        &issuer,
        7,
        now.plus_secs(-60),
        now.plus_secs(86_400),
        &[(serial(200), now.plus_secs(-30))],
    )
    .unwrap();
    let crl_pem = dir.path().join("internal-ca.crl");
    std::fs::write(&crl_pem, shikko_pki::to_pem("X509 CRL", &crl).unwrap()).unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();

    let text = openssl(&[
        "crl",
        "-in",
        &path(&crl_pem),
        "-CAfile",
        &path(&ca),
        "-noout",
        "-text",
    ]);
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.contains("Version 2"), "{text}");
    assert!(
        text.contains("X509v3 CRL Number") && text.contains("7"),
        "{text}"
    );
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(text.contains("Serial Number: C8"), "{text}");

    let verify = |leaf: &std::path::Path| {
        openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            &path(&ca),
            "-CRLfile",
            &path(&crl_pem),
            &path(leaf),
        ])
    };
    let out = verify(&pems[0]);
    assert!(out.contains("certificate revoked"), "{out}");
    let out = verify(&pems[1]);
    assert!(out.contains(": OK"), "{out}");

    // nextUpdate must follow thisUpdate.
    assert!(shikko_pki::internal_crl(&issuer, 8, now, now, &[]).is_err());
}
