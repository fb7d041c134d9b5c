//! `shikko filter check` on filters of the demo's issuer (its CA key signs
//! them): good, revoked, released through a delta, not covered; a filter of
//! another issuer or tampered with is an error, never an answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use shikko_core::{Serial, UnixTime};
use shikko_filter::{BuildInfo, Entry, build_delta, build_full, issuer_key_hash, verify};
use shikko_pki::x509_cert::Certificate;
use shikko_testkit::process::{run, setup_demo_dir};

fn entry(pem: &Path, listed: bool) -> Entry {
    use der::Decode;
    let der = shikko_pki::certificate_der(&std::fs::read(pem).unwrap()).unwrap();
    let c = Certificate::from_der(&der).unwrap();
    let t = c.tbs_certificate();
    let secs = |x: &shikko_pki::x509_cert::time::Time| x.to_unix_duration().as_secs() as i64;
    Entry {
        serial: Serial::from_be_bytes(t.serial_number().as_bytes()).unwrap(),
        not_before: secs(&t.validity().not_before),
        not_after: secs(&t.validity().not_after),
        listed,
    }
}

fn check(samples: &Path, cert: &str, full: &Path, delta: Option<&Path>) -> (i32, String) {
    let mut args = vec![
        "filter".to_string(),
        "check".into(),
        "--issuer".into(),
        samples.join("sign-ca.pem").display().to_string(),
        "--cert".into(),
        samples.join(cert).display().to_string(),
        "--full".into(),
        full.display().to_string(),
    ];
    if let Some(d) = delta {
        args.push("--delta".into());
        args.push(d.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn filter_check_answers_good_revoked_released_and_not_covered() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    setup_demo_dir(&data);
    let samples = data.join("samples");
    let dd = shikko_pki::DataDir::new(&data);
    let key = dd.load_key("sign-ca").unwrap();
    let ca_der = dd.read_cert("sign-ca").unwrap();
    let good = entry(&samples.join("sign-good.pem"), false);
    let revoked = entry(&samples.join("sign-revoked.pem"), true);
    let held = entry(&samples.join("sign-hold.pem"), true);
    let now = UnixTime::now().0;
    let info = |number: u64, at: i64| BuildInfo {
        issuer_key_hash: issuer_key_hash(&ca_der).unwrap(),
        number,
        crl_number: vec![1],
        now: UnixTime(at),
        next_update: UnixTime(now + 86_400),
    };
    // The full filter, made once all three were issued.
    let at = good.not_before.max(revoked.not_before).max(held.not_before);
    let population = [good.clone(), revoked.clone(), held.clone()];
    let full = build_full(&info(1, at), || population.clone().into_iter(), &key).unwrap();
    let full_path = dir.path().join("full.filter");
    std::fs::write(&full_path, &full).unwrap();
    let (code, text) = check(&samples, "sign-good.pem", &full_path, None);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(": good"), "{text}");
    for cert in ["sign-revoked.pem", "sign-hold.pem"] {
        let (code, text) = check(&samples, cert, &full_path, None);
        assert_eq!(code, 3, "{cert}: {text}");
    }

    // A delta made now: the hold released.
    let mut released = held.clone();
    released.listed = false;
    let now_population = [good.clone(), revoked.clone(), released];
    let delta = build_delta(
        &info(2, now),
        &verify(&full, &ca_der, UnixTime(now)).unwrap(),
        || now_population.clone().into_iter(),
        &key,
    )
    .unwrap();
    let delta_path = dir.path().join("delta.filter");
    std::fs::write(&delta_path, &delta).unwrap();
    let (code, text) = check(&samples, "sign-hold.pem", &full_path, Some(&delta_path));
    assert_eq!(code, 0, "{text}");
    let (code, text) = check(&samples, "sign-revoked.pem", &full_path, Some(&delta_path));
    assert_eq!(code, 3, "{text}");

    // A full filter made before any of them was issued covers none.
    let early = build_full(
        &info(
            3,
            good.not_before.min(revoked.not_before).min(held.not_before) - 1,
        ),
        || population.clone().into_iter(),
        &key,
    )
    .unwrap();
    let early_path = dir.path().join("early.filter");
    std::fs::write(&early_path, &early).unwrap();
    let (code, text) = check(&samples, "sign-good.pem", &early_path, None);
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("not covered"), "{text}");

    // Another issuer's certificate, a tampered filter: errors.
    let (code, text) = check(&samples, "auth-good.pem", &full_path, None);
    assert_eq!(code, 1, "{text}");
    let mut bad = full.clone();
    let n = bad.len() / 2;
    bad[n] ^= 1;
    std::fs::write(&full_path, &bad).unwrap();
    let (code, text) = check(&samples, "sign-good.pem", &full_path, None);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("filter"), "{text}");
}
