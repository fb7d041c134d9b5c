//! Keys only where they are used (issue 12, item 4): the crl role builds
//! and signs with the issuing CA keys and serves no HTTP
//! (`serve_http = false`); `shikko serve crl-http` serves what it publishes
//! from the output directory, with no key and no identity. A CRL built on
//! demand reaches the HTTP side without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use der::Decode;
use shikko_testkit::process::{
    SecureRegistry, http_get, shikko, start_role, start_secure_registry,
};
use x509_cert::crl::CertificateList;

/// The CRL number of a DER CRL.
fn crl_number(der: &[u8]) -> u64 {
    let list = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der).unwrap();
    let ext = list
        .tbs_cert_list
        .crl_extensions
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_NUMBER)
        .expect("a CRL number");
    let n = der::asn1::Uint::from_der(ext.extn_value.as_bytes()).unwrap();
    n.as_bytes()
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// GETs `path` from `addr` until it answers 200 and `ok` likes the body.
fn get_until(addr: &str, path: &str, ok: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http_get(addr, path);
        if status == 200 && ok(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path}: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_internet_facing_crl_server_holds_no_key_and_serves_what_the_builder_signs() {
    let dir = tempfile::tempdir().unwrap();
    let SecureRegistry {
        data,
        ids,
        configs,
        registry: _registry,
        url: registry_url,
        ..
    } = start_secure_registry(dir.path(), |_| ());

    let builder = start_role(
        "crl",
        &configs
            .crl(&data, &registry_url, 3600, "serve_http = false\n")
            .unwrap(),
    );
    assert_eq!(builder.try_field("http"), None, "{}", builder.line);
    let grpc = format!("https://{}", builder.field("grpc"));

    // The HTTP side reads a copy of nothing but the output directory.
    let served = start_role("crl-http", &configs.crl_http(&data.join("crl")).unwrap());
    let http = served.field("http");
    assert_eq!(served.try_field("grpc"), None, "{}", served.line);

    let full = get_until(&http, "/crl/sign/full.crl", |_| true);
    let delta = get_until(&http, "/crl/sign/delta.crl", |_| true);
    let before = crl_number(&delta);
    assert!(crl_number(&full) >= 1);

    // A delta built on demand (as admin, over mutual TLS) is served within
    // a rescan, by the process that never saw a key.
    // The builder may still be catching up with the registry: ask again then.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = shikko()
            .env("SHIKKO_IDENTITY_DIR", &ids.dir)
            .args([
                "crl",
                "build",
                "--endpoint",
                &grpc,
                "--delta",
                "--issuer",
                "sign",
            ])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            break;
        }
        assert!(
            said.contains("catching up") && Instant::now() < deadline,
            "{said}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let newer = get_until(&http, "/crl/sign/delta.crl", |b| crl_number(b) > before);
    assert!(crl_number(&newer) > before);
    // Signed by the issuing CA: openssl checks it.
    let crl_path = dir.path().join("delta.crl");
    std::fs::write(&crl_path, &newer).unwrap();
    let text = shikko_testkit::openssl(
        [
            "crl",
            "-inform",
            "DER",
            "-in",
            crl_path.to_str().unwrap(),
            "-CAfile",
            data.join("samples/sign-ca.pem").to_str().unwrap(),
            "-noout",
        ],
        dir.path(),
    );
    assert!(text.contains("verify OK"), "{text}");
}
