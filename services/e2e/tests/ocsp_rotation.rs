//! Short-lived OCSP responder certificates rotated into a running
//! responder (issue 12, item 4): `shikko ocsp renew-responder` issues a new
//! certificate (and key) where the CA key is; the ocsp role process, which
//! holds no CA key, reads the files again and signs with the new pair from
//! then on, without a restart. A pair that fails its checks (not issued by
//! the issuer's CA) is refused, counted, and the old pair keeps signing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use shikko_testkit::process::{SecureRegistry, run, start_role, start_secure_registry};
use shikko_testkit::{openssl_ocsp, until};

/// The serial of the responder certificate inside an answer about
/// sign-good.pem (asked with a nonce, so freshly signed), if it verified.
fn responder_serial(samples: &std::path::Path, url: &str) -> Option<String> {
    let text = openssl_ocsp(
        samples,
        url,
        &[
            "-issuer",
            "sign-ca.pem",
            "-cert",
            "sign-good.pem",
            "-CAfile",
            "sign-ca.pem",
            "-resp_text",
        ],
    );
    if !text.contains("Response verify OK") || !text.contains(": good") {
        return None;
    }
    // The certificate the answer carries, printed after the single
    // responses (whose "Serial Number:" is the one asked about).
    let cert = &text[text.find("Certificate:")?..];
    let at = cert.find("Serial Number:")?;
    let rest = &cert[at + "Serial Number:".len()..];
    let line = rest.trim_start().lines().next()?.trim();
    let serial = if line.is_empty() {
        rest.trim_start().lines().nth(1)?.trim()
    } else {
        line
    };
    Some(serial.to_string())
}

fn metrics(addr: &str) -> String {
    String::from_utf8_lossy(&shikko_testkit::process::http_get(addr, "/metrics").1).into_owned()
}

#[test]
fn a_renewed_responder_certificate_signs_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let SecureRegistry {
        data,
        configs,
        registry: _registry,
        url: registry_url,
        ..
    } = start_secure_registry(dir.path(), |_| ());
    let samples = data.join("samples");

    // The ocsp role's own directory: CA certificates and responder pairs,
    // no CA key (as deployed).
    let ocsp_dir = dir.path().join("ocsp");
    for sub in ["keys", "certs"] {
        std::fs::create_dir_all(ocsp_dir.join(sub)).unwrap();
    }
    let copy = |rel: &str| {
        std::fs::copy(data.join(rel), ocsp_dir.join(rel)).unwrap();
    };
    for id in ["sign", "auth", "phone-sign", "phone-auth"] {
        copy(&format!("certs/{id}-ca.der"));
        copy(&format!("certs/{id}-ocsp.der"));
        copy(&format!("keys/{id}-ocsp.key"));
    }
    let ocsp = start_role(
        "ocsp",
        &configs
            .ocsp(&ocsp_dir, &registry_url, "responder_reload_secs = 1\n")
            .unwrap(),
    );
    let url = format!("http://{}/ocsp", ocsp.field("http"));
    let metrics_addr = ocsp.field("metrics");
    let mut first = None;
    assert!(until(30, || {
        first = responder_serial(&samples, &url);
        first.is_some()
    }));
    let first = first.unwrap();

    // Renewed with a new key where the CA key is, then put in place.
    let out = run(&[
        "ocsp",
        "renew-responder",
        "--data-dir",
        data.to_str().unwrap(),
        "--issuer",
        "sign",
        "--new-key",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("sign: responder certificate") && said.contains("(new key)"),
        "{said}"
    );
    copy("keys/sign-ocsp.key");
    copy("certs/sign-ocsp.der");

    let mut now = None;
    assert!(
        until(30, || {
            now = responder_serial(&samples, &url);
            now.as_ref().is_some_and(|s| *s != first)
        }),
        "still signed by {first}"
    );
    let renewed = now.unwrap();
    let text = metrics(&metrics_addr);
    assert!(
        text.contains("shikko_ocsp_responder_reloads_total{issuer=\"sign\",outcome=\"rotated\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("shikko_ocsp_responder_not_after_seconds{issuer=\"sign\"}"),
        "{text}"
    );

    // A certificate of another issuer's responder put in place by mistake:
    // refused and counted; the renewed pair keeps signing.
    std::fs::copy(
        data.join("certs/auth-ocsp.der"),
        ocsp_dir.join("certs/sign-ocsp.der"),
    )
    .unwrap();
    assert!(until(30, || metrics(&metrics_addr).contains(
        "shikko_ocsp_responder_reloads_total{issuer=\"sign\",outcome=\"refused\"} 1"
    )));
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        responder_serial(&samples, &url).as_deref(),
        Some(renewed.as_str())
    );
}
