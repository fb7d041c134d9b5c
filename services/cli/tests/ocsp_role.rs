//! `shikko serve ocsp` as its own process beside `shikko serve registry`: it
//! replays and follows the registry's feed into its index and answers OCSP
//! for what the registry accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shikko_testkit::process as common;

use std::path::Path;

use common::{example_event_serial, run, setup_demo_dir, start_registry, start_role, write_config};

use shikko_testkit::openssl_ocsp as ocsp;
use shikko_testkit::roles::Loopback;
use shikko_testkit::until_contains;

/// Asks until `want` shows (the index is replayed at start), at most `secs`.
fn ask_until(samples: &Path, url: &str, args: &[&str], want: &str, secs: u64) -> String {
    until_contains(secs, want, || ocsp(samples, url, args))
}

#[test]
fn the_ocsp_role_follows_the_registry_and_answers_what_it_ingested() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    setup_demo_dir(&data);
    let registry = start_registry(&write_config(dir.path(), &data));
    let cfg = Loopback::new(dir.path())
        .ocsp(&data, &registry.endpoint, "")
        .unwrap();
    let ocsp_process = start_role("ocsp", &cfg);
    let http = ocsp_process.field("http");
    let url = format!("http://{http}/ocsp");
    let samples = data.join("samples");

    for (state, want) in [("good", ": good"), ("revoked", ": revoked")] {
        let cert = format!("sign-{state}.pem");
        let args = [
            "-issuer",
            "sign-ca.pem",
            "-CAfile",
            "sign-ca.pem",
            "-cert",
            cert.as_str(),
        ];
        let text = ask_until(&samples, &url, &args, want, 20);
        assert!(
            text.contains("Response verify OK") && text.contains(want),
            "sign-{state}: {text}"
        );
    }

    // A revocation accepted by the registry reaches the separate responder.
    let events = samples.join("example-events.jsonl");
    let serial = example_event_serial(&samples);
    let out = run(&[
        "events",
        "ingest",
        "--endpoint",
        &registry.endpoint,
        events.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let serial_arg = format!("0x{serial}");
    let args = [
        "-issuer",
        "auth-ca.pem",
        "-CAfile",
        "auth-ca.pem",
        "-serial",
        serial_arg.as_str(),
        "-no_nonce",
    ];
    let text = ask_until(&samples, &url, &args, ": revoked", 5);
    assert!(
        text.contains("Response verify OK") && text.contains("Reason: keyCompromise"),
        "{text}"
    );
}

#[test]
fn a_bad_ocsp_config_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ocsp.toml");
    std::fs::write(&cfg, "[ocsp]\ndata_dir = \"x\"\nvalidity_secs = 5\n").unwrap();
    let out = run(&["serve", "ocsp", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("validity_secs"));
}
