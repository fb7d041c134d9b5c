//! `shikko demo --setup-only`: the data directory a user gets, checked with openssl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shikko_testkit::process as common;

use std::os::unix::fs::PermissionsExt;

use common::run;

fn openssl_verify(ca: &std::path::Path, cert: &std::path::Path) -> String {
    shikko_testkit::openssl(
        [
            std::ffi::OsStr::new("verify"),
            "-CAfile".as_ref(),
            ca.as_os_str(),
            cert.as_os_str(),
        ],
        std::path::Path::new("."),
    )
}

fn check_demo_dir(alg: &str, holders: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(&[
        "demo",
        "--setup-only",
        "--holders",
        holders,
        "--key-algorithm",
        alg,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("WARNING"),
        "every generated event is valid:\n{stdout}"
    );
    assert!(stdout.contains("openssl verify"), "the tour is printed");

    let samples = data.join("samples");
    for issuer in ["sign", "auth", "phone-sign", "phone-auth"] {
        let ca = samples.join(format!("{issuer}-ca.pem"));
        for state in ["good", "revoked"] {
            let cert = samples.join(format!("{issuer}-{state}.pem"));
            let verdict = openssl_verify(&ca, &cert);
            assert!(
                verdict.trim_end().ends_with(": OK"),
                "{issuer}-{state}: {verdict}"
            );
        }
        // The CA of another issuer must not verify it.
        let other = if issuer == "sign" { "auth" } else { "sign" };
        let verdict = openssl_verify(
            &samples.join(format!("{other}-ca.pem")),
            &samples.join(format!("{issuer}-good.pem")),
        );
        assert!(!verdict.trim_end().ends_with(": OK"), "{verdict}");
    }
    for f in [
        "ocsp-responder.pem",
        "operator-ca.pem",
        "operator.pem",
        "operator-key.pem",
        "README.txt",
        "example-events.jsonl",
    ] {
        assert!(samples.join(f).exists(), "{f} missing");
    }
    let mode = std::fs::metadata(samples.join("operator-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let verdict = openssl_verify(
        &samples.join("operator-ca.pem"),
        &samples.join("operator.pem"),
    );
    assert!(verdict.trim_end().ends_with(": OK"), "{verdict}");
    let readme = std::fs::read_to_string(samples.join("README.txt")).unwrap();
    assert!(readme.contains("/crl/sign/full.crl") && readme.contains("/ocsp"));

    // Internal identities: the internal CA issues them, each says who it is,
    // the operator CA does not vouch for them, and their keys are private.
    let internal = samples.join("internal-ca.pem");
    for who in ["admin", "authority", "auditor", "witness"] {
        let cert = samples.join(format!("{who}.pem"));
        let verdict = shikko_testkit::openssl(
            [
                "verify",
                "-purpose",
                "sslclient",
                "-CAfile",
                internal.to_str().unwrap(),
                cert.to_str().unwrap(),
            ],
            dir.path(),
        );
        assert!(verdict.trim_end().ends_with(": OK"), "{who}: {verdict}");
        let text = shikko_testkit::openssl(
            [
                "x509",
                "-noout",
                "-ext",
                "subjectAltName",
                "-in",
                cert.to_str().unwrap(),
            ],
            dir.path(),
        );
        assert!(
            text.contains(&format!("URI:spiffe://shikko/role/{who}")),
            "{text}"
        );
        let verdict = openssl_verify(&samples.join("operator-ca.pem"), &cert);
        assert!(!verdict.trim_end().ends_with(": OK"), "{verdict}");
        let mode = std::fs::metadata(samples.join(format!("{who}-key.pem")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{who}-key.pem");
    }
    // The audit key's public key is a sample; the key itself is private.
    let audit_pub = std::fs::read_to_string(samples.join("audit-key.pem")).unwrap();
    assert!(audit_pub.starts_with("-----BEGIN PUBLIC KEY-----"));
    let mode = std::fs::metadata(data.join("keys/audit.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "keys/audit.key");
    // The roles' own identities stay in the data directory, not the samples.
    for role in ["registry", "crl", "ocsp", "info", "standby"] {
        assert!(
            data.join(format!("certs/role-{role}.der")).exists(),
            "{role}"
        );
        assert!(!samples.join(format!("{role}.pem")).exists(), "{role}");
    }

    // A relying party checking a signing certificate against its
    // municipality's partition CRL (openssl matches the CRL's
    // issuingDistributionPoint to the certificate's CRL distribution point).
    for (state, verdict) in [("revoked", "certificate revoked"), ("good", ": OK")] {
        let line = readme
            .lines()
            .find(|l| l.contains(&format!("sign-{state}.pem")))
            .unwrap_or_else(|| panic!("sign-{state}.pem not listed:\n{readme}"));
        let url = line
            .split("partition CRL: ")
            .nth(1)
            .unwrap()
            .trim_end_matches(')');
        let file = url.rsplit('/').next().unwrap();
        let crl = data.join("crl/sign").join(file);
        let pem = dir.path().join(format!("{file}.pem"));
        let (ok, msg) = shikko_testkit::openssl_status(
            [
                "crl",
                "-inform",
                "DER",
                "-in",
                crl.to_str().unwrap(),
                "-out",
                pem.to_str().unwrap(),
            ],
            dir.path(),
        );
        assert!(ok, "{}: {msg}", crl.display());
        let cert = format!("sign-{state}.pem");
        let text = shikko_testkit::openssl(
            [
                "verify",
                "-crl_check",
                "-CRLfile",
                pem.to_str().unwrap(),
                "-CAfile",
                "sign-ca.pem",
                &cert,
            ],
            &samples,
        );
        assert!(
            text.contains(verdict),
            "sign-{state} against {}: {text}",
            crl.display()
        );
    }

    // Running it again reuses the directory instead of re-generating.
    let again = run(&[
        "demo",
        "--setup-only",
        "--holders",
        holders,
        "--key-algorithm",
        alg,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("reusing the existing population"));
}

#[test]
fn demo_with_ecdsa_keys_writes_verifiable_samples() {
    check_demo_dir("p256", "1500");
}

#[test]
fn demo_with_rsa_keys_writes_verifiable_samples() {
    check_demo_dir("rsa2048", "1500");
}

#[test]
fn bad_arguments_exit_64_with_one_line() {
    let out = run(&["demo", "--holders", "many"]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().next().unwrap().contains("many"), "{err}");
    let out = run(&["serve", "registry", "--config", "/nonexistent/shikko.toml"]);
    assert_eq!(out.status.code(), Some(64));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[registry]\ndata_dir = \"x\"\nlisten_on = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = run(&["serve", "registry", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_on"));
}
