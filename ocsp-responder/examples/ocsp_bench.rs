//! Fixtures and a server for `load-tests/ocsp-vs-openssl.sh`.
//!
//! - `ocsp_bench setup --dir DIR --alg p256|rsa2048 --certs N`: a CA, a
//!   delegated responder (PEM keys and certificates) and an openssl
//!   `index.txt` of N certificates, every tenth revoked (keyCompromise).
//! - `ocsp_bench serve --dir DIR --addr ADDR --certs N`: Shikko's responder
//!   over the same certificates, on ADDR, until killed.
//! - `ocsp_bench sign --dir DIR --seconds S`: raw signing speed of the
//!   responder key on every core (the ceiling of the nonce path).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shikko_core::{CertKind, CertStatus, EventId, PartitionId, RevocationReason, Serial, UnixTime};
use shikko_core::{ChangeRecord, StatusChange};
use shikko_ocsp::index::StatusIndex;
use shikko_ocsp::responder::{Responder, ResponderKey};
use shikko_ocsp::role::OcspRole;
use shikko_pki::{
    Issuer, KeyAlgorithm, Signer, SoftwareSigner, ca_certificate, certificate_der,
    ocsp_responder_certificate, to_pem,
};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn serial(i: u64) -> Serial {
    Serial::from_u128(0x4A50_0000_0000 + u128::from(i)).unwrap()
}

fn utc(t: i64) -> String {
    let (y, mo, d, h, mi, s) = UnixTime(t).to_civil();
    format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100)
}

fn setup(dir: &Path, alg: KeyAlgorithm, certs: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = SoftwareSigner::generate(alg).unwrap();
    let ca = ca_certificate(
        CertKind::CardAuth,
        &ca_key,
        Serial::from_u128(1).unwrap(),
        UnixTime(1_600_000_000),
        UnixTime(2_200_000_000),
    )
    .unwrap();
    let resp_key = SoftwareSigner::generate(alg).unwrap();
    let now = UnixTime::now().0;
    let resp = ocsp_responder_certificate(
        &Issuer::from_certificate(&ca_key, &ca).unwrap(),
        resp_key.public_key_der(),
        Serial::from_u128(2).unwrap(),
        UnixTime(now - 86_400),
        UnixTime(now + 365 * 86_400),
        "Shikko OCSP Responder (bench)",
    )
    .unwrap();
    std::fs::write(dir.join("ca.pem"), to_pem("CERTIFICATE", &ca).unwrap()).unwrap();
    std::fs::write(dir.join("resp.pem"), to_pem("CERTIFICATE", &resp).unwrap()).unwrap();
    resp_key.save(&dir.join("resp-key.pem")).unwrap();
    ca_key.save(&dir.join("ca-key.pem")).unwrap();
    let mut index = String::new();
    for i in 0..certs {
        let s = serial(i).to_hex();
        if i % 10 == 0 {
            index.push_str(&format!(
                "R\t{}\t{},keyCompromise\t{s}\tunknown\t/CN=H{i}\n",
                utc(2_100_000_000),
                utc(1_700_000_000)
            ));
        } else {
            index.push_str(&format!(
                "V\t{}\t\t{s}\tunknown\t/CN=H{i}\n",
                utc(2_100_000_000)
            ));
        }
    }
    std::fs::write(dir.join("index.txt"), index).unwrap();
    std::fs::write(dir.join("index.txt.attr"), "unique_subject = no\n").unwrap();
    println!("setup: {certs} certificates ({alg}) in {}", dir.display());
}

fn signer(dir: &Path) -> (Arc<SoftwareSigner>, Vec<u8>, Vec<u8>) {
    let key = Arc::new(SoftwareSigner::load(&dir.join("resp-key.pem")).unwrap());
    let resp = certificate_der(&std::fs::read(dir.join("resp.pem")).unwrap()).unwrap();
    let ca = certificate_der(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    (key, resp, ca)
}

fn serve(dir: &Path, addr: &str, certs: u64) {
    let (key, resp, ca) = signer(dir);
    let index = Arc::new(StatusIndex::new());
    let mut records = Vec::with_capacity(10_000);
    for i in 0..certs {
        let status = if i % 10 == 0 {
            CertStatus::Revoked {
                reason: RevocationReason::KeyCompromise,
                at: UnixTime(1_700_000_000),
                invalidity_date: None,
            }
        } else {
            CertStatus::Good
        };
        records.push(ChangeRecord {
            seq: i + 1,
            event_id: EventId::new(format!("b{i}")).unwrap(),
            event_type: "issue".into(),
            time: UnixTime(1_700_000_000),
            changes: vec![StatusChange {
                kind: CertKind::CardAuth,
                serial: serial(i),
                partition: PartitionId::WHOLE,
                not_after: UnixTime(2_100_000_000),
                status,
                not_before: UnixTime(0),
            }],
            municipalities: Vec::new(),
        });
        if records.len() == 10_000 {
            index.apply(&records);
            records.clear();
        }
    }
    index.apply(&records);
    let responder = Arc::new(
        Responder::new(
            vec![(
                CertKind::CardAuth,
                ca,
                ResponderKey::new(key, &resp).unwrap(),
            )],
            index.clone(),
            Duration::from_secs(3600),
        )
        .unwrap(),
    );
    let role = OcspRole::new(
        index,
        responder,
        &prometheus::Registry::new(),
        shikko_follow::Readiness::always_current(),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        println!("listening {}", listener.local_addr().unwrap());
        axum::serve(listener, shikko_ocsp::http::router(role, 256))
            .await
            .unwrap();
    });
}

fn sign(dir: &Path, seconds: u64) {
    let (key, _, _) = signer(dir);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tbs = vec![0x5au8; 200]; // about the size of a one-certificate ResponseData
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let key = key.clone();
                let tbs = tbs.clone();
                s.spawn(move || {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        key.sign(&tbs).unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    println!(
        "raw signing: {:.0} signatures/s on {threads} threads ({})",
        total as f64 / seconds as f64,
        key.algorithm()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(arg(&args, "--dir").unwrap_or_else(|| "/tmp/shikko-ocsp-bench".into()));
    let certs: u64 = arg(&args, "--certs").map_or(100_000, |v| v.parse().unwrap());
    match args.get(1).map(String::as_str) {
        Some("setup") => {
            let alg: KeyAlgorithm = arg(&args, "--alg")
                .unwrap_or_else(|| "p256".into())
                .parse()
                .unwrap();
            setup(&dir, alg, certs);
        }
        Some("serve") => serve(
            &dir,
            &arg(&args, "--addr").unwrap_or_else(|| "127.0.0.1:18080".into()),
            certs,
        ),
        Some("sign") => sign(
            &dir,
            arg(&args, "--seconds").map_or(5, |v| v.parse().unwrap()),
        ),
        _ => {
            eprintln!(
                "usage: ocsp_bench setup|serve|sign --dir DIR [--alg p256|rsa2048] [--certs N] [--addr A] [--seconds S]"
            );
            std::process::exit(2);
        }
    }
}
