//! `shikko crl build` on a data directory (including a crash just before
//! publishing), and the demo serving its CRLs over HTTP and building on
//! demand over gRPC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shikko_testkit::process as common;

use std::ffi::OsStr;
use std::path::Path;

use common::{example_event_serial, http_get, run, setup_demo_dir, shikko, start_demo};

/// `openssl crl -verify` of a DER CRL; returns (verified, CRL number).
fn openssl_crl(crl: &Path, ca: &Path) -> (bool, u64) {
    let text = shikko_testkit::openssl(
        [
            OsStr::new("crl"),
            OsStr::new("-inform"),
            OsStr::new("DER"),
            OsStr::new("-noout"),
            OsStr::new("-crlnumber"),
            OsStr::new("-in"),
            crl.as_os_str(),
            OsStr::new("-CAfile"),
            ca.as_os_str(),
        ],
        Path::new("."),
    );
    let number = text
        .lines()
        .find_map(|l| l.strip_prefix("crlNumber=0x"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap_or_else(|| panic!("no crlNumber in {text}"));
    (
        text.contains("verify OK") && !text.contains("failure"),
        number,
    )
}

fn temp_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .count()
}

#[test]
fn crl_build_publishes_and_a_crash_before_publishing_leaves_the_old_crl() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    setup_demo_dir(&data);
    let ca = data.join("samples/sign-ca.pem");
    let full = data.join("crl/sign/full.crl");
    let (ok, first) = openssl_crl(&full, &ca);
    assert!(ok, "the demo's setup builds verifiable CRLs");

    let out = run(&["crl", "build", "--data-dir", d]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "issuer",
        "entries",
        "sign ",
        "phone-auth",
        "full",
        "delta",
        "partitions",
        "CRLs and 4 filters published",
        "full-filter",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
    let (ok, second) = openssl_crl(&full, &ca);
    assert!(ok && second > first, "{first} -> {second}");

    // A crash after the new CRL is written, before it is renamed in place.
    let before = std::fs::read(&full).unwrap();
    let out = shikko()
        .args(["crl", "build", "--issuer", "sign", "--data-dir", d])
        .env(shikko_crl::FAILPOINT_ENV, "crl-before-rename")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the failpoint aborts the process");
    assert_eq!(
        std::fs::read(&full).unwrap(),
        before,
        "the old CRL is still the published one"
    );
    assert!(
        temp_files(&data.join("crl/sign")) > 0,
        "the crash left its temporary file"
    );

    // The next build cleans up and publishes a higher number than any before.
    let out = run(&["crl", "build", "--issuer", "sign", "--data-dir", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(temp_files(&data.join("crl/sign")), 0);
    let (ok, third) = openssl_crl(&full, &ca);
    assert!(
        ok && third > second + 1,
        "numbers reserved by the crashed build are not reused: {second} -> {third}"
    );

    let out = run(&[
        "crl",
        "build",
        "--delta",
        "--issuer",
        "auth",
        "--data-dir",
        d,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("delta"));
    let (ok, _) = openssl_crl(
        &data.join("crl/auth/delta.crl"),
        &data.join("samples/auth-ca.pem"),
    );
    assert!(ok);

    // Bad invocations.
    let out = run(&["crl", "build"]);
    assert_eq!(out.status.code(), Some(64));
    let out = run(&["crl", "build", "--data-dir", d, "--issuer", "nope"]);
    assert_eq!(out.status.code(), Some(64));
    let out = run(&[
        "crl",
        "build",
        "--data-dir",
        dir.path().join("missing").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Shikko data directory"));
}

#[test]
fn the_demo_serves_its_crls_and_builds_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let demo = start_demo(&data, "300");
    let (grpc, http) = (demo.grpc.clone(), demo.http.clone());
    let ca = data.join("samples/auth-ca.pem");
    let fetched = dir.path().join("fetched.crl");
    let (status, body) = http_get(&http, "/crl/auth/delta.crl");
    assert_eq!(status, 200);
    std::fs::write(&fetched, &body).unwrap();
    let (ok, before) = openssl_crl(&fetched, &ca);
    assert!(ok);

    let out = demo.run(&[
        "crl",
        "build",
        "--endpoint",
        &grpc,
        "--delta",
        "--issuer",
        "auth",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = http_get(&http, "/crl/auth/delta.crl");
    assert_eq!(status, 200);
    std::fs::write(&fetched, &body).unwrap();
    let (ok, after) = openssl_crl(&fetched, &ca);
    assert!(ok && after > before, "{before} -> {after}");
    assert_eq!(http_get(&http, "/crl/sign/none.crl").0, 404);

    // OCSP on the same port: the samples answer as their names say.
    let samples = data.join("samples");
    let url = format!("http://{http}/ocsp");
    let ocsp = |args: &[&str]| shikko_testkit::openssl_ocsp(&samples, &url, args);
    let mut cases = vec![
        ("sign", "good", ": good"),
        ("sign", "revoked", ": revoked"),
        ("auth", "good", ": good"),
    ];
    // Holds exist in larger populations (card loss, lost phone).
    if let Some(issuer) = ["phone-auth", "phone-sign", "sign", "auth"]
        .into_iter()
        .find(|i| samples.join(format!("{i}-hold.pem")).exists())
    {
        cases.push((issuer, "hold", "Reason: certificateHold"));
    }
    for (issuer, state, want) in cases {
        let text = ocsp(&[
            "-issuer",
            &format!("{issuer}-ca.pem"),
            "-CAfile",
            &format!("{issuer}-ca.pem"),
            "-cert",
            &format!("{issuer}-{state}.pem"),
        ]);
        assert!(
            text.contains("Response verify OK") && text.contains(want),
            "{issuer}-{state}: {text}"
        );
    }

    // The small client of `shikko ocsp check`, with and without nonce.
    let url = format!("http://{http}/ocsp");
    for (state, nonce) in [("revoked", true), ("good", true), ("good", false)] {
        let mut args = vec![
            "ocsp".to_string(),
            "check".into(),
            "--issuer".into(),
            samples.join("sign-ca.pem").to_str().unwrap().into(),
            "--cert".into(),
            samples
                .join(format!("sign-{state}.pem"))
                .to_str()
                .unwrap()
                .into(),
            "--url".into(),
            url.clone(),
        ];
        if !nonce {
            args.push("--no-nonce".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && stdout.contains("Response verify OK")
                && stdout.contains(&format!(": {state}")),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = demo.run(&[
        "ocsp",
        "check",
        "--issuer",
        samples.join("auth-ca.pem").to_str().unwrap(),
        "--cert",
        samples.join("sign-good.pem").to_str().unwrap(),
        "--url",
        &url,
    ]);
    // Asked of the wrong (but served) issuer: that issuer never issued this serial.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(": unknown"),
        "{stdout}"
    );

    // A revocation ingested into the registry is answered as revoked within a second.
    let events = samples.join("example-events.jsonl");
    let serial = example_event_serial(&samples);
    let query = [
        "-issuer",
        "auth-ca.pem",
        "-CAfile",
        "auth-ca.pem",
        "-serial",
        &format!("0x{serial}"),
        "-no_nonce",
    ];
    assert!(
        ocsp(&query).contains(": good"),
        "the example certificate starts good"
    );
    let out = demo.run(&[
        "events",
        "ingest",
        "--endpoint",
        &grpc,
        events.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ingested = std::time::Instant::now();
    let answer = loop {
        let text = ocsp(&query);
        if text.contains(": revoked") || ingested.elapsed() > std::time::Duration::from_secs(1) {
            break text;
        }
    };
    assert!(
        answer.contains(": revoked") && answer.contains("Reason: keyCompromise"),
        "not revoked within 1 s of the ingest: {answer}"
    );
    drop(demo);
}
