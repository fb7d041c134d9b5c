//! The four roles as separate processes on loopback, talking gRPC: the
//! registry; the crl, ocsp and info roles following its feed. The daily
//! flow across them: a bank's customer consents, moves (an event ingested
//! into the registry); OCSP answers the old signing certificate revoked, the
//! next delta CRL lists it, and the bank's query by the old serial returns
//! the new address and serial. Every internal call is over mutual TLS,
//! each role and client with its own identity from a test internal CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shikko_testkit::process as common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{SecureRegistry, http_get, shikko, start_role, start_secure_registry};
use der::Decode;
use shikko_core::{
    CertKind, DateOfBirth, Event, EventBody, EventId, FourInfo, HolderId, NewCert, Serial, Sex,
    UnixTime,
};
use shikko_testkit::identities::Identities;
use shikko_testkit::openssl_ocsp_serial;
use shikko_testkit::roles::InfoTls;

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Runs `args` until its output contains `want` (roles replay the feed at start).
fn until(args: &[&str], want: &str, secs: u64) -> String {
    shikko_testkit::until_contains(secs, want, || text(&shikko().args(args).output().unwrap()))
}

/// `shikko ARGS` presenting the identities in `ids` (the command's own:
/// `authority` to ingest, `admin` for the rest), as an operator does.
fn run(ids: &Identities, args: &[&str]) -> Output {
    shikko()
        .env("SHIKKO_IDENTITY_DIR", &ids.dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_daily_flow_runs_across_four_processes() {
    let dir = tempfile::tempdir().unwrap();
    let SecureRegistry {
        data,
        ids,
        configs,
        registry: _registry,
        url: registry_url,
        ..
    } = start_secure_registry(dir.path(), |_| ());
    let samples = data.join("samples");

    let cfg = configs.ocsp(&data, &registry_url, "").unwrap();
    let ocsp = start_role("ocsp", &cfg);
    let ocsp_url = format!("http://{}/ocsp", ocsp.field("http"));

    let cfg = configs.crl(&data, &registry_url, 3600, "").unwrap();
    let crl = start_role("crl", &cfg);
    let (crl_http, crl_grpc) = (crl.field("http"), format!("https://{}", crl.field("grpc")));

    // The info role: its own data directory, a replica of the registry's store.
    let tls = InfoTls::from_data_dir(&data, &dir.path().join("tls")).unwrap();
    let cfg = configs
        .info(&dir.path().join("info-data"), &registry_url, &tls)
        .unwrap();
    let info = start_role("info", &cfg);
    let (info_url, info_admin) = (
        format!("https://{}", info.field("info")),
        format!("https://{}", info.field("grpc")),
    );
    let info_args = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["info".into()];
        v.extend(args.iter().map(|s| s.to_string()));
        v.extend([
            "--endpoint".into(),
            info_url.clone(),
            "--cert".into(),
            samples.join("operator.pem").to_str().unwrap().into(),
            "--key".into(),
            samples.join("operator-key.pem").to_str().unwrap().into(),
        ]);
        v
    };

    // An administrator registers the bank and its operator with the info role.
    let out = run(
        &ids,
        &[
            "admin",
            "provider-add",
            "demo-bank",
            "--name",
            "Demo Bank",
            "--endpoint",
            &info_admin,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run(
        &ids,
        &[
            "admin",
            "operator-add",
            "demo-operator",
            "--name",
            "Demo Operator",
            "--provider",
            "demo-bank",
            "--cert",
            samples.join("operator.pem").to_str().unwrap(),
            "--endpoint",
            &info_admin,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // The customer: the holder of sign-good.pem. Synthetic holders share a
    // pool of keys: holder index (the serial's low 48 bits) modulo 8.
    let pem = std::fs::read(samples.join("sign-good.pem")).unwrap();
    let der = shikko_pki::certificate_der(&pem).unwrap();
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let serial = Serial::from_be_bytes(cert.tbs_certificate().serial_number().as_bytes()).unwrap();
    let index = u128::from_str_radix(&serial.to_hex(), 16).unwrap() & 0xFFFF_FFFF_FFFF;
    let key = data.join(format!("keys/holder-pool-{}.key", index % 8));
    // Consent, through the operator; the replica may still be catching up.
    let consent = info_args(&[
        "consent",
        "--holder-cert",
        samples.join("sign-good.pem").to_str().unwrap(),
        "--holder-key",
        key.to_str().unwrap(),
        "--provider",
        "demo-bank",
    ]);
    let consent: Vec<&str> = consent.iter().map(String::as_str).collect();
    let said = until(&consent, "active", 30);
    assert!(said.contains("active"), "{said}");
    let query = info_args(&["query", &serial.to_hex()]);
    let query: Vec<&str> = query.iter().map(String::as_str).collect();
    assert!(until(&query, "unchanged", 10).contains("unchanged"));
    assert!(openssl_ocsp_serial(&samples, &ocsp_url, "sign", &serial.to_hex()).contains(": good"));

    // (A) The customer moves: a new signing certificate, linked from the old.
    let holder = cert
        .tbs_certificate()
        .subject()
        .common_name()
        .unwrap()
        .unwrap()
        .value()
        .into_owned();
    let municipality = shikko_population::synthetic::municipalities()[7].clone();
    let new_serial = Serial::from_u128(0x4A50_00FF_FFFF_0001).unwrap();
    let now = UnixTime::now();
    let event = Event {
        id: EventId::new("four-roles-move").unwrap(),
        time: now,
        body: EventBody::FourInfoChange {
            holder: HolderId::new(holder).unwrap(),
            four_info: FourInfo {
                name: "移転 一郎".into(),
                address: format!("{}{}本町1-2-3", municipality.prefecture, municipality.city),
                date_of_birth: DateOfBirth::parse("319700401").unwrap(),
                sex: Sex::Male,
            },
            new_signing: Some(NewCert {
                kind: CertKind::CardSigning,
                serial: new_serial,
                not_before: now,
                not_after: UnixTime(now.0 + 4 * 365 * 86_400),
                municipality: Some(municipality.clone()),
                cert_der: None,
            }),
        },
    };
    let events = dir.path().join("move.jsonl");
    std::fs::write(&events, serde_json::to_string(&event).unwrap() + "\n").unwrap();
    let out = run(
        &ids,
        &[
            "events",
            "ingest",
            "--endpoint",
            &registry_url,
            events.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // (B) OCSP answers revoked (affiliationChanged); the next delta lists it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answer = String::new();
    while Instant::now() < deadline {
        answer = openssl_ocsp_serial(&samples, &ocsp_url, "sign", &serial.to_hex());
        if answer.contains(": revoked") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        answer.contains("Response verify OK") && answer.contains("Reason: affiliationChanged"),
        "{answer}"
    );
    // The crl role builds from its own mirror of the feed: build until the
    // mirror has the move (it follows within moments).
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let out = run(
            &ids,
            &[
                "crl",
                "build",
                "--endpoint",
                &crl_grpc,
                "--delta",
                "--issuer",
                "sign",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        let (status, body) = http_get(&crl_http, "/crl/sign/delta.crl");
        assert_eq!(status, 200);
        let list =
            x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&body)
                .unwrap();
        let listed: Vec<Serial> = list
            .tbs_cert_list
            .revoked_certificates
            .unwrap_or_default()
            .iter()
            .map(|r| Serial::from_be_bytes(r.serial_number.as_bytes()).unwrap())
            .collect();
        if listed.contains(&serial) || Instant::now() > deadline {
            break listed;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        listed.contains(&serial),
        "{serial} not in the delta: {listed:?}"
    );

    // (C) The bank asks the info role by the old serial: the new address and serial.
    let said = until(&query, "changed", 10);
    assert!(said.contains("changed"), "{said}");
    assert!(said.contains(&new_serial.to_hex()), "{said}");
    assert!(
        said.contains(&format!(
            "address={}{}本町1-2-3",
            municipality.prefecture, municipality.city
        )),
        "{said}"
    );
    assert!(said.contains("name=移転 一郎"), "{said}");

    // The info role's own store (consents, audit log) is backed up like the registry's.
    let out = run(
        &ids,
        &[
            "backup",
            "create",
            "--info",
            "--endpoint",
            &info_admin,
            "--name",
            "after-the-move",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        dir.path()
            .join("info-data/backups/after-the-move/CURRENT")
            .exists()
    );
}
