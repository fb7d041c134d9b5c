//! Fixtures, a server and a load generator for `load-tests/info-load.sh`.
//!
//! - `info_bench setup --dir DIR --holders N`: CAs, operator and server TLS
//!   material, N holders with real card signing certificates (P-256), each
//!   consenting to `bank-1` (proven by signature), one in ten moved since.
//! - `info_bench serve --dir DIR --addr ADDR`: the 4-information service over
//!   mutual TLS on ADDR.
//! - `info_bench load --dir DIR --addr ADDR --seconds S --conns C`: C
//!   connections asking single queries for S seconds (random serials of the
//!   population); latency percentiles and rate.
//! - `info_bench batch --dir DIR --addr ADDR --size N --runs R`: R batches of
//!   N serials, each timed.
//! - `info_bench resolve --dir DIR --seconds S`: the same answers computed in
//!   process from the store (no network, TLS or audit): the comparison.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shikko_core::consent::consent_statement;
use shikko_core::{
    CertKind, DateOfBirth, Event, EventBody, EventId, FourInfo, HolderId, InfoItems, NewCert,
    OperatorId, ProviderId, Serial, Sex, UnixTime,
};
use shikko_info::consent::ConsentRequest;
use shikko_info::{InfoMetrics, InfoService};
use shikko_pki::{
    HolderCertRequest, Issuer, KeyAlgorithm, Signer, SoftwareSigner, ca_certificate,
    holder_certificate, operator_ca_certificate, operator_client_certificate, server_certificate,
    to_pem,
};
use shikko_population::synthetic::SplitMix64;
use shikko_proto::v1 as pb;
use shikko_store::{IngestMode, RegistryStore, Store};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const YEAR: i64 = 365 * 86_400;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn serial(index: u64, generation: u64) -> Serial {
    Serial::from_u128((0x4A50u128 << 64) | (u128::from(generation) << 40) | u128::from(index))
        .unwrap()
}

fn info(i: u64, moved: bool) -> FourInfo {
    FourInfo {
        name: format!("試験 {i}"),
        address: if moved {
            format!("大阪府大阪市北区梅田{}丁目", 1 + i % 9)
        } else {
            format!("東京都千代田区千代田{}番", 1 + i % 30)
        },
        date_of_birth: DateOfBirth::parse("319850615").unwrap(),
        sex: if i.is_multiple_of(2) {
            Sex::Female
        } else {
            Sex::Male
        },
    }
}

async fn setup(dir: &Path, holders: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let t = Instant::now();
    let now = UnixTime::now();
    let start = UnixTime(now.0 - YEAR);
    let write = |name: &str, label: &str, der: &[u8]| {
        std::fs::write(dir.join(name), to_pem(label, der).unwrap()).unwrap();
    };
    let ca_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let ca_der = ca_certificate(
        CertKind::CardSigning,
        &ca_key,
        Serial::from_u128(1).unwrap(),
        start,
        UnixTime(now.0 + 20 * YEAR),
    )
    .unwrap();
    let op_ca_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let op_ca_der = operator_ca_certificate(
        &op_ca_key,
        Serial::from_u128(2).unwrap(),
        start,
        UnixTime(now.0 + 10 * YEAR),
    )
    .unwrap();
    let op_issuer = Issuer::from_certificate(&op_ca_key, &op_ca_der).unwrap();
    let server_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let server_der = server_certificate(
        &op_issuer,
        &["localhost"],
        &[],
        server_key.public_key_der(),
        Serial::from_u128(3).unwrap(),
        start,
        UnixTime(now.0 + YEAR),
    )
    .unwrap();
    let op_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let op_der = operator_client_certificate(
        &op_issuer,
        "op-bench",
        None,
        op_key.public_key_der(),
        Serial::from_u128(4).unwrap(),
        start,
        UnixTime(now.0 + YEAR),
    )
    .unwrap();
    write("sign-ca.pem", "CERTIFICATE", &ca_der);
    write("operator-ca.pem", "CERTIFICATE", &op_ca_der);
    write("server.pem", "CERTIFICATE", &server_der);
    write(
        "server-key.pem",
        "PRIVATE KEY",
        &server_key.to_pkcs8_der().unwrap(),
    );
    write("operator.pem", "CERTIFICATE", &op_der);
    write(
        "operator-key.pem",
        "PRIVATE KEY",
        &op_key.to_pkcs8_der().unwrap(),
    );

    let store = RegistryStore::open(&dir.join("db")).unwrap();
    let issuer = Issuer::from_certificate(&ca_key, &ca_der).unwrap();
    let holder_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let m = shikko_population::synthetic::municipalities()[0].clone();
    let (nb, na) = (UnixTime(now.0 - 30 * 86_400), UnixTime(now.0 + 3 * YEAR));
    let mut ders = Vec::with_capacity(holders as usize);
    let mut events = Vec::new();
    for i in 0..holders {
        let id = HolderId::new(format!("H{i}")).unwrap();
        let four = info(i, false);
        let der = holder_certificate(
            &issuer,
            &HolderCertRequest {
                kind: CertKind::CardSigning,
                holder: &id,
                municipality: Some(&m),
                four_info: Some(&four),
                subject_public_key: holder_key.public_key_der(),
                serial: serial(i, 0),
                not_before: nb,
                not_after: na,
                ocsp_url: None,
            },
        )
        .unwrap();
        ders.push(der.clone());
        events.push(Event {
            id: EventId::new(format!("issue-{i}")).unwrap(),
            time: UnixTime(now.0 - 20 * 86_400),
            body: EventBody::Issue {
                holder: id,
                cert: NewCert {
                    kind: CertKind::CardSigning,
                    serial: serial(i, 0),
                    not_before: nb,
                    not_after: na,
                    municipality: Some(m.clone()),
                    cert_der: Some(der),
                },
                four_info: Some(four),
            },
        });
        if events.len() == 10_000 {
            store.ingest(&events, IngestMode::AllOrNothing).unwrap();
            events.clear();
        }
    }
    store.ingest(&events, IngestMode::AllOrNothing).unwrap();
    events.clear();
    println!(
        "setup: {holders} holders issued in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let svc = Arc::new(
        InfoService::new(
            store.shared(),
            std::slice::from_ref(&ca_der),
            InfoMetrics::new(&prometheus::Registry::new()).unwrap(),
        )
        .unwrap(),
    );
    let bank = ProviderId::new("bank-1").unwrap();
    svc.register_provider(bank.clone(), "bench bank")
        .await
        .unwrap();
    let op_id = OperatorId::new("op-bench").unwrap();
    let op = svc
        .register_operator(op_id.clone(), "bench operator", vec![bank.clone()], &op_der)
        .await
        .unwrap();
    svc.set_rate_limit(&op_id, 1_000_000_000, 1_000_000_000)
        .await
        .unwrap();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..holders {
        // As an operator does: a challenge, then the holder's signature.
        let challenge = svc.consent_challenge(&op, &bank).await.unwrap().value;
        let granted = UnixTime::now();
        let statement =
            consent_statement(&bank, InfoItems::ALL, &serial(i, 0), granted, &challenge);
        let req = ConsentRequest {
            provider: bank.clone(),
            items: InfoItems::ALL,
            signing_certificate: std::mem::take(&mut ders[i as usize]),
            granted_at: granted,
            challenge,
            signature: holder_key.sign(&statement).unwrap(),
        };
        let (svc, op) = (svc.clone(), op.clone());
        tasks.spawn(async move { svc.record_consent(&op, req).await.unwrap() });
        while tasks.len() >= 256 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    println!(
        "setup: {holders} consents recorded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // One holder in ten moved (a new signing certificate, linked).
    for i in (0..holders).step_by(10) {
        events.push(Event {
            id: EventId::new(format!("move-{i}")).unwrap(),
            time: UnixTime(now.0 - 60),
            body: EventBody::FourInfoChange {
                holder: HolderId::new(format!("H{i}")).unwrap(),
                four_info: info(i, true),
                new_signing: Some(NewCert {
                    kind: CertKind::CardSigning,
                    serial: serial(i, 1),
                    not_before: UnixTime(now.0 - 60),
                    not_after: na,
                    municipality: Some(m.clone()),
                    cert_der: None,
                }),
            },
        });
        if events.len() == 10_000 {
            store.ingest(&events, IngestMode::AllOrNothing).unwrap();
            events.clear();
        }
    }
    store.ingest(&events, IngestMode::AllOrNothing).unwrap();
    std::fs::write(dir.join("holders"), holders.to_string()).unwrap();
    println!("setup: done");
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

async fn serve(dir: &Path, addr: SocketAddr) {
    let store = RegistryStore::open(&dir.join("db")).unwrap();
    let ca = shikko_pki::certificate_der(&read(dir, "sign-ca.pem")).unwrap();
    let svc = Arc::new(
        InfoService::new(
            store.shared(),
            &[ca],
            InfoMetrics::new(&prometheus::Registry::new()).unwrap(),
        )
        .unwrap(),
    );
    let tls = shikko_info::grpc::server_tls(
        &read(dir, "server.pem"),
        &read(dir, "server-key.pem"),
        &read(dir, "operator-ca.pem"),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    println!("listening {}", listener.local_addr().unwrap());
    tonic::transport::Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(shikko_info::grpc::InfoGrpc::new(svc).into_server())
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await
        .unwrap();
}

async fn client(dir: &Path, addr: SocketAddr) -> pb::info_client::InfoClient<Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(dir, "operator-ca.pem")))
        .identity(Identity::from_pem(
            read(dir, "operator.pem"),
            read(dir, "operator-key.pem"),
        ))
        .domain_name("localhost");
    let ch = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::info_client::InfoClient::new(ch).max_decoding_message_size(64 << 20)
}

fn holders(dir: &Path) -> u64 {
    String::from_utf8(read(dir, "holders"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn load(dir: &Path, addr: SocketAddr, secs: u64, conns: usize) {
    let n = holders(dir);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let mut client = client(dir, addr).await;
        tasks.spawn(async move {
            let mut rng = SplitMix64::new(c as u64 + 1);
            let mut lat = Vec::new();
            let mut changed = 0u64;
            while Instant::now() < deadline {
                let s = serial(rng.below(n), 0);
                let t = Instant::now();
                let a = client
                    .query(pb::InfoQueryRequest {
                        provider: "bank-1".into(),
                        serial: s.magnitude().to_vec(),
                        issuer: 0,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                lat.push(t.elapsed());
                changed += u64::from(a.outcome == pb::InfoOutcome::Changed as i32);
            }
            (lat, changed)
        });
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut changed = 0;
    while let Some(r) = tasks.join_next().await {
        let (l, c) = r.unwrap();
        all.extend(l);
        changed += c;
    }
    let elapsed = started.elapsed().as_secs_f64().max(secs as f64);
    all.sort();
    println!(
        "single: {} queries in {secs} s over {conns} mTLS connections: {:.0} queries/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} changed)",
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        percentile(&all, 1.0),
        changed
    );
}

async fn batch(dir: &Path, addr: SocketAddr, size: u64, runs: u64) {
    let n = holders(dir);
    let mut client = client(dir, addr).await;
    let mut rng = SplitMix64::new(7);
    let mut times = Vec::new();
    for _ in 0..runs {
        let serials: Vec<Vec<u8>> = (0..size)
            .map(|_| serial(rng.below(n), 0).magnitude().to_vec())
            .collect();
        let t = Instant::now();
        let r = client
            .query_batch(pb::InfoBatchRequest {
                provider: "bank-1".into(),
                serials,
                issuer: 0,
            })
            .await
            .unwrap()
            .into_inner();
        times.push(t.elapsed());
        assert_eq!(r.answers.len() as u64, size);
    }
    times.sort();
    println!(
        "batch: {runs} batches of {size} serials: min {:.0} ms, median {:.0} ms, max {:.0} ms",
        percentile(&times, 0.0),
        percentile(&times, 0.5),
        percentile(&times, 1.0)
    );
}

fn resolve(dir: &Path, secs: u64) {
    let n = holders(dir);
    let store = Store::open(&dir.join("db")).unwrap();
    let bank = ProviderId::new("bank-1").unwrap();
    let mut rng = SplitMix64::new(3);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut done, now) = (0u64, UnixTime::now());
    let t = Instant::now();
    while Instant::now() < deadline {
        for _ in 0..1000 {
            shikko_info::query::resolve(
                &store,
                &bank,
                CertKind::CardSigning,
                &serial(rng.below(n), 0),
                now,
            )
            .unwrap();
        }
        done += 1000;
    }
    println!(
        "in-process resolve (store reads only, one thread): {:.0} answers/s",
        done as f64 / t.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(arg(&args, "--dir").expect("--dir"));
    let addr = || -> SocketAddr {
        arg(&args, "--addr")
            .unwrap_or_else(|| "127.0.0.1:18095".into())
            .parse()
            .unwrap()
    };
    let num = |name: &str, default: u64| -> u64 {
        arg(&args, name).map_or(default, |v| v.parse().unwrap())
    };
    match args.get(1).map(String::as_str) {
        Some("setup") => setup(&dir, num("--holders", 100_000)).await,
        Some("serve") => serve(&dir, addr()).await,
        Some("load") => {
            load(
                &dir,
                addr(),
                num("--seconds", 10),
                num("--conns", 32) as usize,
            )
            .await
        }
        Some("batch") => batch(&dir, addr(), num("--size", 10_000), num("--runs", 10)).await,
        Some("resolve") => resolve(&dir, num("--seconds", 5)),
        _ => eprintln!("usage: info_bench setup|serve|load|batch|resolve --dir DIR [...]"),
    }
}
