//! `shikko serve crl` as its own process beside `shikko serve registry`: it
//! follows the registry's feed into its mirror, builds on demand over gRPC,
//! and serves what it built over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shikko_testkit::process as common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    crl_build_when_ready, example_event_serial, http_get, run, setup_demo_dir, start_registry,
    start_role, write_config,
};
use shikko_testkit::roles::Loopback;

/// `openssl crl -text` of a DER CRL, with the verification verdict.
fn openssl_text(crl: &Path, ca: &Path) -> String {
    let (crl, ca) = (crl.to_str().unwrap(), ca.to_str().unwrap());
    shikko_testkit::openssl(
        [
            "crl", "-inform", "DER", "-noout", "-text", "-in", crl, "-CAfile", ca,
        ],
        Path::new("."),
    )
}

#[test]
fn the_crl_role_follows_the_registry_and_publishes_what_it_ingested() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    setup_demo_dir(&data);
    let registry = start_registry(&write_config(dir.path(), &data));

    let cfg = Loopback::new(dir.path())
        .crl(
            &data,
            &registry.endpoint,
            3600,
            // Without filters: the mirror loads the listed certificates only.
            "public_url = \"http://crl.test\"\nfilters = false\n",
        )
        .unwrap();
    let crl = start_role("crl", &cfg);
    let (http, grpc) = (crl.field("http"), format!("http://{}", crl.field("grpc")));

    // What the registry accepts now reaches the role through the feed: the
    // sample event revokes a good authentication certificate.
    let events = data.join("samples/example-events.jsonl");
    let serial = example_event_serial(&data.join("samples")).to_uppercase();
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

    // A delta from the role's mirror lists it (keyCompromise)...
    let deadline = Instant::now() + Duration::from_secs(30);
    let fetched = dir.path().join("delta.crl");
    let ca = data.join("samples/auth-ca.pem");
    loop {
        crl_build_when_ready(&grpc, &["--delta", "--issuer", "auth"]);
        let (status, body) = http_get(&http, "/crl/auth/delta.crl");
        assert_eq!(status, 200);
        std::fs::write(&fetched, &body).unwrap();
        let text = openssl_text(&fetched, &ca);
        assert!(text.contains("verify OK"), "{text}");
        if text.contains(&serial) {
            assert!(text.contains("Key Compromise"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revocation never reached the delta:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // ...and the full CRL the role builds from its mirror lists what the
    // registry's own store lists.
    let out = crl_build_when_ready(&grpc, &["--issuer", "auth"]);
    assert!(out.contains("full"), "{out}");
    let (status, body) = http_get(&http, "/crl/auth/full.crl");
    assert_eq!(status, 200);
    let from_role = dir.path().join("role-full.crl");
    std::fs::write(&from_role, &body).unwrap();
    let text = openssl_text(&from_role, &ca);
    assert!(
        text.contains("verify OK") && text.contains(&serial),
        "{text}"
    );
    assert!(
        text.contains("URI:http://crl.test/crl/auth/delta.crl"),
        "{text}"
    );
    let role_entries = text.matches("Serial Number:").count();
    assert_eq!(
        http_get(&http, "/filter/auth/full.filter").0,
        404,
        "filters = false"
    );
    drop(registry); // killed: the role stops building from what may now be stale
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = run(&[
            "crl",
            "build",
            "--endpoint",
            &grpc,
            "--delta",
            "--issuer",
            "auth",
        ]);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("catching up"), "{err}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the role kept building without its registry"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The registry's store is free: build from it directly.
    let direct = run(&["crl", "build", "--data-dir", d, "--issuer", "auth"]);
    assert!(
        direct.status.success(),
        "{}",
        String::from_utf8_lossy(&direct.stderr)
    );
    let text = openssl_text(&data.join("crl/auth/full.crl"), &ca);
    assert_eq!(text.matches("Serial Number:").count(), role_entries);
}

#[test]
fn a_bad_crl_config_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("crl.toml");
    std::fs::write(&cfg, "[crl]\ndata_dir = \"x\"\ndelta_every_secs = 0\n").unwrap();
    let out = run(&["serve", "crl", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("delta_every_secs"));
    std::fs::write(&cfg, "[crl]\ndata_dir = \"x\"\nregistri = \"y\"\n").unwrap();
    let out = run(&["serve", "crl", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("registri"));
}
