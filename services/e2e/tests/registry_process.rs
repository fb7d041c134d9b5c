//! `shikko serve registry` as a child process: client commands against it, and
//! kill -9 during ingest losing no acknowledged event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shikko_testkit::process as common;

use std::sync::{Arc, Mutex};

use common::{run, start_registry, write_config};
use shikko_proto::v1 as pb;
use shikko_proto::v1::registry_client::RegistryClient;

fn issue(id: &str, holder: &str, serial: u64) -> pb::Event {
    pb::Event {
        id: id.into(),
        time: 2_000,
        body: Some(pb::event::Body::Issue(pb::Issue {
            holder_id: holder.into(),
            cert: Some(pb::NewCert {
                issuer: pb::Issuer::Auth as i32,
                serial: serial.to_be_bytes().to_vec(),
                not_before: 1_000,
                not_after: 4_000_000_000,
                municipality: None,
                cert_der: vec![],
            }),
            four_info: None,
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_ingest_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &dir.path().join("data"));
    let mut registry = start_registry(&config);
    let endpoint = registry.endpoint.clone();
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();

    // Ingest batches as fast as possible until the process dies under us.
    let writer_acked = acked.clone();
    let writer = tokio::spawn(async move {
        let mut client = RegistryClient::connect(endpoint).await.unwrap();
        for b in 0u64.. {
            let events: Vec<pb::Event> = (0..200u64)
                .map(|i| {
                    issue(
                        &format!("e{b}-{i}"),
                        &format!("H{b}-{i}"),
                        b * 1_000 + i + 1,
                    )
                })
                .collect();
            match client
                .ingest(pb::IngestRequest {
                    events,
                    all_or_nothing: false,
                })
                .await
            {
                Ok(resp) => {
                    let mut a = writer_acked.lock().unwrap();
                    for o in resp.into_inner().outcomes {
                        assert_eq!(o.kind, pb::OutcomeKind::Applied as i32);
                        a.push((o.event_id, o.seq));
                    }
                }
                Err(_) => return b,
            }
        }
        unreachable!()
    });
    // Let some batches be acknowledged, then SIGKILL mid-stream.
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if acked.lock().unwrap().len() >= 4_000 {
            break;
        }
    }
    registry.child.kill().unwrap(); // SIGKILL
    registry.child.wait().unwrap();
    let batches_tried = writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 4_000 && batches_tried >= 20);

    // Restart on the same data: every acknowledged event is there, with its sequence number.
    let registry = start_registry(&config);
    let mut client = RegistryClient::connect(registry.endpoint.clone())
        .await
        .unwrap();
    let last = acked.iter().map(|(_, seq)| *seq).max().unwrap();
    let stored = common::event_seqs(&mut client, last).await;
    for (id, seq) in &acked {
        assert_eq!(stored.get(id), Some(seq), "acknowledged event {id} lost");
    }
    // Sequence numbers have no gaps after recovery.
    let max = *stored.values().max().unwrap();
    assert_eq!(max as usize, stored.len());
}

#[test]
fn client_commands_against_a_registry_process() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &dir.path().join("data"));
    let registry = start_registry(&config);
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        concat!(
            "# a holder and a revocation\n",
            r#"{"id":"i1","time":1700000000,"body":{"type":"issue","holder":"H1","cert":{"kind":"phone-auth","serial":"0A1B","not_before":1690000000,"not_after":1900000000}}}"#, "\n",
            r#"{"id":"s1","time":1700000100,"body":{"type":"suspend","kind":"phone-auth","serial":"0A1B"}}"#, "\n",
        ),
    )
    .unwrap();
    let ep = registry.endpoint.as_str();
    let out = ingest_file(ep, events.to_str().unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 applied, 0 duplicates, 0 rejected"),
        "{stdout}"
    );

    // Again: acknowledged as duplicates, nothing applied twice.
    let out = ingest_file(ep, events.to_str().unwrap());
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 applied, 2 duplicates"));

    let out = run(&[
        "cert",
        "status",
        "--endpoint",
        ep,
        "--issuer",
        "phone-auth",
        "A1B",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("on hold (certificateHold)"), "{stdout}");

    // A rule-breaking event: named with its rule, exit status 1.
    std::fs::write(
        &events,
        r#"{"id":"r1","time":1700000200,"body":{"type":"resume","kind":"phone-auth","serial":"0A1C"}}"#,
    )
    .unwrap();
    let out = ingest_file(ep, events.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[unknown-serial]"));

    // A malformed file: the line is named.
    std::fs::write(&events, "{\"id\":\"x\"}\n").unwrap();
    let out = ingest_file(ep, events.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("events.jsonl:1"));

    // An unknown certificate.
    let out = run(&[
        "cert",
        "status",
        "--endpoint",
        ep,
        "--issuer",
        "sign",
        "FFFF",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown"));

    // Metrics are served and count the events.
    let metrics = http_get(&registry.metrics, "/metrics");
    assert!(
        metrics.contains("shikko_registry_events_total{outcome=\"applied\",type=\"issue\"} 1"),
        "{metrics}"
    );

    // Reflection lists what this endpoint serves, so grpcurl needs no .proto files.
    let services = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(shikko_testkit::reflected_services(ep));
    assert!(
        services.iter().any(|s| s == "shikko.v1.Registry"),
        "{services:?}"
    );
    assert!(
        !services.iter().any(|s| s == "shikko.v1.Info"),
        "a service this endpoint does not serve is not advertised: {services:?}"
    );
}

fn http_get(addr: &str, path: &str) -> String {
    String::from_utf8(common::http_get(addr, path).1).unwrap()
}

/// The event examples in the README ingest as shown.
#[test]
fn readme_event_examples_are_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let block = readme
        .split("```json\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    assert!(block.lines().count() >= 4);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &dir.path().join("data"));
    let registry = start_registry(&config);
    let file = dir.path().join("readme.jsonl");
    std::fs::write(&file, block).unwrap();
    let out = ingest_file(&registry.endpoint, file.to_str().unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "cert",
        "status",
        "--endpoint",
        &registry.endpoint,
        "--issuer",
        "sign",
        "0A1B",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("revoked (affiliationChanged, code 3)")
            && stdout.contains("replaced by 0B00"),
        "{stdout}"
    );
}

/// `shikko events ingest --endpoint EP FILE`.
fn ingest_file(endpoint: &str, file: &str) -> std::process::Output {
    run(&["events", "ingest", "--endpoint", endpoint, file])
}

#[test]
fn a_backup_restores_into_a_registry_that_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::setup_demo_dir(&data);
    let config = write_config(dir.path(), &data);
    let samples = data.join("samples");
    let status = |endpoint: &str| {
        run(&[
            "cert",
            "status",
            "--endpoint",
            endpoint,
            "--cert",
            samples.join("sign-revoked.pem").to_str().unwrap(),
        ])
    };
    let registry = start_registry(&config);
    let before = String::from_utf8_lossy(&status(&registry.endpoint).stdout).into_owned();
    assert!(before.contains("revoked"), "{before}");
    let out = run(&[
        "backup",
        "create",
        "--endpoint",
        &registry.endpoint,
        "--name",
        "before-disaster",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let backup = data.join("backups/before-disaster");
    assert!(said.contains(backup.to_str().unwrap()), "{said}");
    drop(registry);
    // Disaster: the store is lost. Restore the checkpoint in its place.
    std::fs::remove_dir_all(data.join("db")).unwrap();
    std::fs::rename(&backup, data.join("db")).unwrap();
    let registry = start_registry(&config);
    let after = String::from_utf8_lossy(&status(&registry.endpoint).stdout).into_owned();
    assert_eq!(after, before);
}
