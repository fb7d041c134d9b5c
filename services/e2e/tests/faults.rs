//! Fault tests (their outcomes are written down in docs/FAULTS.md):
//! - the registry killed (SIGKILL) during ingest loses nothing it
//!   acknowledged, and a following OCSP responder catches up after it restarts;
//! - with the registry down, the OCSP responder answers from its index within
//!   the stale-but-valid window (and says so in its metrics), then tryLater,
//!   and answers again once the registry is back;
//! - a synchronous pair: the primary killed (SIGKILL) during ingest and
//!   its data directory deleted (the disk is gone), the standby promoted:
//!   every acknowledged event is there with its sequence number, and the
//!   OCSP responder, which knows both endpoints, follows the new primary;
//! - a CRL build that runs out of disk leaves the published CRL in place;
//! - 10,000 idle connections and slowloris clients do not starve OCSP
//!   clients; an oversized body is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shikko_testkit::process as common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{RoleProcess, run, setup_demo_dir, shikko, start_registry, start_role};
use shikko_proto::v1 as pb;
use shikko_testkit::identities::Identities;
use shikko_testkit::roles::Loopback;
use shikko_testkit::{openssl_ocsp, openssl_ocsp_serial, until};

/// A free loopback port (bound and released), so that a restarted registry
/// comes back at the address its followers know.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The OCSP role following `registry`, answering from its index for
/// `max_stale` seconds without it; `sections` adds whole TOML sections.
fn start_ocsp(
    dir: &Path,
    data: &Path,
    registry: &str,
    max_stale: u64,
    sections: &str,
) -> RoleProcess {
    let cfg = Loopback::new(dir)
        .log_filter("error")
        .with_sections(sections)
        .ocsp(data, registry, &format!("max_stale_secs = {max_stale}\n"))
        .unwrap();
    start_role("ocsp", &cfg)
}

fn metrics(addr: &str) -> String {
    String::from_utf8(common::http_get(addr, "/metrics").1).unwrap()
}

/// A new card user-authentication certificate for a new holder.
fn auth_issue(n: u64) -> pb::Event {
    pb::Event {
        id: format!("fault-{n}"),
        time: 1_800_000_000,
        body: Some(pb::event::Body::Issue(pb::Issue {
            holder_id: format!("FAULT-{n}"),
            cert: Some(pb::NewCert {
                issuer: pb::Issuer::Auth as i32,
                serial: (0x7A00_0000_0000u64 + n).to_be_bytes().to_vec(),
                not_before: 1_700_000_000,
                not_after: 2_100_000_000,
                ..Default::default()
            }),
            four_info: None,
        })),
    }
}

#[test]
fn a_killed_registry_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    setup_demo_dir(&data);
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let config = Loopback::new(dir.path()).registry_on(&data, port).unwrap();
    let mut registry = start_registry(&config);
    let ocsp = start_ocsp(dir.path(), &data, &endpoint, 900, "");
    let url = format!("http://{}/ocsp", ocsp.field("http"));

    // A client ingests batches of 200 as fast as it can; the registry is
    // killed with SIGKILL in the middle of it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let acked = rt.block_on(async {
        let mut c = pb::registry_client::RegistryClient::connect(endpoint.clone())
            .await
            .unwrap();
        let mut acked = 0u64;
        let started = Instant::now();
        let mut killed = false;
        for batch in 0u64.. {
            if !killed && started.elapsed() > Duration::from_millis(700) {
                registry.child.kill().unwrap();
                killed = true;
            }
            let events = (0..200).map(|i| auth_issue(batch * 200 + i)).collect();
            match c
                .ingest(pb::IngestRequest {
                    events,
                    all_or_nothing: true,
                })
                .await
            {
                Ok(_) => acked = (batch + 1) * 200,
                Err(_) if killed => break,
                Err(e) => panic!("ingest failed before the kill: {e}"),
            }
        }
        acked
    });
    registry.child.wait().unwrap();
    assert!(
        acked >= 200,
        "some batches were acknowledged before the kill"
    );
    eprintln!("fault: {acked} events acknowledged before SIGKILL");

    // Restart on the same store and port: every acknowledged event is there.
    let _registry = start_registry(&config);
    rt.block_on(async {
        let mut c = pb::registry_client::RegistryClient::connect(endpoint.clone())
            .await
            .unwrap();
        for n in 0..acked {
            let s = c
                .get_status(pb::GetStatusRequest {
                    issuer: pb::Issuer::Auth as i32,
                    serial: (0x7A00_0000_0000u64 + n).to_be_bytes().to_vec(),
                })
                .await;
            assert!(s.is_ok(), "acknowledged event fault-{n} lost: {s:?}");
        }
    });
    // An event accepted after the restart: the responder must reconnect to
    // the new registry process and follow it to answer for it.
    let after = acked + 1_000;
    rt.block_on(async {
        let mut c = pb::registry_client::RegistryClient::connect(endpoint.clone())
            .await
            .unwrap();
        c.ingest(pb::IngestRequest {
            events: vec![auth_issue(after)],
            all_or_nothing: true,
        })
        .await
        .unwrap();
    });
    let last = format!("{:X}", 0x7A00_0000_0000u64 + after);
    let samples = data.join("samples");
    let restarted = Instant::now();
    assert!(
        until(30, || openssl_ocsp_serial(&samples, &url, "auth", &last)
            .contains(": good")),
        "the responder did not catch up: {}",
        openssl_ocsp_serial(&samples, &url, "auth", &last)
    );
    eprintln!(
        "fault: the responder answered for an event accepted after the restart {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
}

#[test]
fn ocsp_answers_through_the_stale_window_then_says_try_later() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    setup_demo_dir(&data);
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let config = Loopback::new(dir.path()).registry_on(&data, port).unwrap();
    let mut registry = start_registry(&config);
    let ocsp = start_ocsp(dir.path(), &data, &endpoint, 3, "");
    let (url, metrics_addr) = (
        format!("http://{}/ocsp", ocsp.field("http")),
        ocsp.field("metrics"),
    );
    let samples = data.join("samples");
    let ask = || {
        openssl_ocsp(
            &samples,
            &url,
            &[
                "-no_nonce",
                "-issuer",
                "sign-ca.pem",
                "-CAfile",
                "sign-ca.pem",
                "-cert",
                "sign-good.pem",
            ],
        )
    };
    assert!(until(20, || ask().contains(": good")), "{}", ask());
    assert!(metrics(&metrics_addr).contains(CONNECTED));

    // The registry goes away: answers keep coming, and the metrics say so.
    registry.child.kill().unwrap();
    registry.child.wait().unwrap();
    assert!(
        until(10, || metrics(&metrics_addr).contains(DISCONNECTED)),
        "{}",
        metrics(&metrics_addr)
    );
    let lost = metrics(&metrics_addr)
        .lines()
        .find_map(|l| l.strip_prefix("shikko_feed_stale_since_timestamp_seconds{role=\"ocsp\"} "))
        .unwrap()
        .trim()
        .parse::<i64>()
        .unwrap();
    assert!(lost > 0);
    let now = shikko_core::UnixTime::now().0;
    if now - lost <= 2 {
        let text = ask();
        assert!(
            text.contains(": good") && text.contains("Response verify OK"),
            "{text}"
        );
    }
    // Past the window: tryLater, counted as stale.
    assert!(until(10, || ask().contains("trylater")), "{}", ask());
    assert!(metrics(&metrics_addr).contains("outcome=\"stale\""));

    // The registry comes back: the responder follows again and answers.
    let _registry = start_registry(&config);
    let back = Instant::now();
    assert!(until(40, || ask().contains(": good")), "{}", ask());
    eprintln!(
        "fault: answers again {:.1} s after the registry came back",
        back.elapsed().as_secs_f64()
    );
    assert!(metrics(&metrics_addr).contains(CONNECTED));
}

const CONNECTED: &str = "shikko_feed_connected{role=\"ocsp\"} 1";
const DISCONNECTED: &str = "shikko_feed_connected{role=\"ocsp\"} 0";

#[test]
fn a_crl_build_on_a_full_disk_leaves_the_published_crl() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    setup_demo_dir(&data);
    let d = data.to_str().unwrap();
    let full = data.join("crl/sign/full.crl");
    let before = std::fs::read(&full).unwrap();
    let out = shikko()
        .args(["crl", "build", "--issuer", "sign", "--data-dir", d])
        .env(shikko_crl::FAILPOINT_ENV, "crl-enospc")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(
        std::fs::read(&full).unwrap(),
        before,
        "the published CRL is untouched"
    );
    // Once there is room again, the next build publishes a newer CRL.
    let out = run(&["crl", "build", "--issuer", "sign", "--data-dir", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(std::fs::read(&full).unwrap(), before);
    let leftovers = std::fs::read_dir(data.join("crl/sign"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(leftovers, 0, "no temporary file is left behind");
}

#[test]
fn idle_and_slow_clients_do_not_starve_ocsp_clients() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    setup_demo_dir(&data);
    let registry = start_registry(&common::write_config(dir.path(), &data));
    let ocsp = start_ocsp(
        dir.path(),
        &data,
        &registry.endpoint,
        900,
        "[http]\nheader_read_timeout_secs = 2\n",
    );
    let http = ocsp.field("http");
    let url = format!("http://{http}/ocsp");
    let samples = data.join("samples");
    let ask = || {
        openssl_ocsp(
            &samples,
            &url,
            &[
                "-issuer",
                "sign-ca.pem",
                "-CAfile",
                "sign-ca.pem",
                "-cert",
                "sign-good.pem",
            ],
        )
    };
    assert!(until(20, || ask().contains(": good")));

    // 10,000 idle connections (as many as the descriptor limit allows), and
    // slowloris clients dribbling a request header.
    let limit = 10_000usize;
    let mut idle = Vec::with_capacity(limit);
    for _ in 0..limit {
        match TcpStream::connect(&http) {
            Ok(s) => idle.push(s),
            Err(e) => {
                eprintln!("stopped at {} idle connections: {e}", idle.len());
                break;
            }
        }
    }
    assert!(idle.len() >= 1_000, "only {} connections", idle.len());
    let mut slow: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&http).unwrap())
        .collect();
    for s in &mut slow {
        s.write_all(b"POST /ocsp HTTP/1.1\r\nHost: x\r\n").unwrap();
    }
    // Others are still answered (with a nonce: signed now, not from a cache).
    let text = ask();
    assert!(
        text.contains(": good") && text.contains("Response verify OK"),
        "{text}"
    );
    for s in &mut slow {
        s.write_all(b"X-Slow: 1\r\n").unwrap();
    }
    let text = ask();
    assert!(text.contains(": good"), "{text}");
    // Past the header read timeout (2 s here), the slow and the idle
    // connections are closed by the server: their descriptors come back.
    std::thread::sleep(Duration::from_secs(3));
    let mut closed = 0;
    for s in slow.iter_mut().chain(idle.iter_mut().take(100)) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        // EOF, or a 408 then EOF.
        if matches!(s.read(&mut buf), Ok(0)) || buf.starts_with(b"HTTP/1.1 408") {
            closed += 1;
        }
    }
    assert_eq!(closed, 200, "slow and idle connections are closed");

    // An oversized body is refused, not read to the end.
    let mut s = TcpStream::connect(&http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 10000000\r\n\r\n"
    )
    .unwrap();
    let _ = s.write_all(&vec![0u8; 100_000]);
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head[9..12], b"413", "{}", String::from_utf8_lossy(&head));
    drop(idle);
}

/// Issue 14, item 4, over real processes and mutual TLS.
#[test]
fn a_promoted_standby_holds_every_acknowledged_event_after_the_primary_and_its_disk_are_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    setup_demo_dir(&data);
    // The primary's store (the demo's) on its own disk: its own directory.
    let primary_dir = dir.path().join("primary");
    std::fs::create_dir_all(&primary_dir).unwrap();
    std::fs::rename(data.join("db"), primary_dir.join("db")).unwrap();
    let ids = Identities::create(&dir.path().join("identities")).unwrap();
    let configs = Loopback::new(dir.path())
        .log_filter("warn")
        .with_identities(&ids);
    let primary_cfg = configs
        .registry_in_pair(
            "primary",
            "registry",
            &primary_dir,
            "require_standby = true\nstandby_timeout_secs = 5\n",
        )
        .unwrap();
    let mut primary = start_role("registry", &primary_cfg);
    let p_addr = primary.field("grpc");
    let standby_cfg = configs
        .registry_in_pair(
            "standby",
            "standby",
            &dir.path().join("standby"),
            &format!("standby_of = \"https://{p_addr}\"\n"),
        )
        .unwrap();
    let standby = start_role("registry", &standby_cfg);
    let s_addr = standby.field("grpc");
    let ocsp_cfg = configs
        .ocsp(
            &data,
            &format!("https://{p_addr},https://{s_addr}"),
            "max_stale_secs = 900\n",
        )
        .unwrap();
    let ocsp = start_role("ocsp", &ocsp_cfg);
    let url = format!("http://{}/ocsp", ocsp.field("http"));
    let samples = data.join("samples");

    // The standby is linked (and seeded); it is not ready for traffic, the primary is.
    assert!(until(30, || metrics(&primary.field("metrics"))
        .contains("shikko_registry_standby_connected 1")));
    assert_eq!(
        common::http_get(&standby.field("metrics"), "/readyz").0,
        503
    );
    assert_eq!(
        common::http_get(&primary.field("metrics"), "/readyz").0,
        200
    );

    // The authority ingests batches of 100 as fast as it can; the primary
    // is killed with SIGKILL in the middle of it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let acked: Vec<(String, u64)> = rt.block_on(async {
        let mut c = pb::registry_client::RegistryClient::new(
            ids.channel(&p_addr, Some("authority")).await.unwrap(),
        );
        let mut acked = Vec::new();
        let mut killed = false;
        let started = Instant::now();
        for batch in 0u64.. {
            if !killed && acked.len() >= 2_000 && started.elapsed() > Duration::from_millis(500) {
                primary.child.kill().unwrap();
                killed = true;
            }
            let events = (0..100).map(|i| auth_issue(batch * 100 + i)).collect();
            match c
                .ingest(pb::IngestRequest {
                    events,
                    all_or_nothing: false,
                })
                .await
            {
                Ok(r) => acked.extend(
                    r.into_inner()
                        .outcomes
                        .into_iter()
                        .map(|o| (o.event_id, o.seq)),
                ),
                Err(_) if killed => break,
                Err(e) => panic!("ingest failed before the kill: {e}"),
            }
        }
        acked
    });
    primary.child.wait().unwrap();
    std::fs::remove_dir_all(&primary_dir).unwrap();
    assert!(acked.len() >= 2_000);
    eprintln!(
        "failover: {} events acknowledged before SIGKILL",
        acked.len()
    );

    // Promote: refused while the primary was heard from moments ago, then done.
    let promote = || {
        run(&[
            "admin",
            "promote",
            "--endpoint",
            &format!("https://{s_addr}"),
            "--identity-dir",
            ids.dir.to_str().unwrap(),
            "--without-standby",
        ])
    };
    let killed_at = Instant::now();
    let mut said = String::new();
    assert!(
        until(30, || {
            let out = promote();
            said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            out.status.success()
        }),
        "{said}"
    );
    assert!(said.contains("primary of epoch 2"), "{said}");
    eprintln!(
        "failover: promoted {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );

    // Every acknowledged event is there, under the sequence number it was acknowledged with.
    let last_acked = acked.iter().map(|(_, s)| *s).max().unwrap();
    let stored = rt.block_on(async {
        let mut c = pb::registry_client::RegistryClient::new(
            ids.channel(&s_addr, Some("ocsp")).await.unwrap(),
        );
        common::event_seqs(&mut c, last_acked).await
    });
    for (id, seq) in &acked {
        assert_eq!(stored.get(id), Some(seq), "acknowledged event {id} lost");
    }

    // The new primary takes events, and the responder follows it there.
    let (last_id, _) = acked.last().unwrap();
    let n: u64 = last_id.trim_start_matches("fault-").parse().unwrap();
    let serial = 0x7A00_0000_0000u64 + n;
    rt.block_on(async {
        let mut c = pb::registry_client::RegistryClient::new(
            ids.channel(&s_addr, Some("authority")).await.unwrap(),
        );
        c.ingest(pb::IngestRequest {
            events: vec![pb::Event {
                id: "failover-revoke".into(),
                time: 1_800_000_100,
                body: Some(pb::event::Body::Revoke(pb::Revoke {
                    issuer: pb::Issuer::Auth as i32,
                    serial: serial.to_be_bytes().to_vec(),
                    reason: 1,
                    invalidity_date: None,
                })),
            }],
            all_or_nothing: true,
        })
        .await
        .unwrap();
    });
    let hex = format!("{serial:X}");
    assert!(
        until(60, || openssl_ocsp_serial(&samples, &url, "auth", &hex)
            .contains(": revoked")),
        "the responder did not follow the promoted standby: {}",
        openssl_ocsp_serial(&samples, &url, "auth", &hex)
    );
    eprintln!(
        "failover: the responder answered for an event of the new primary {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
}
