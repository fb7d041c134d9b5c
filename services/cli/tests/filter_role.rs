//! Compact revocation filters over real processes: `shikko serve registry`,
//! `shikko serve crl` (its mirror follows the registry's feed), builds
//! asked for with `shikko crl build`, and `shikko filter check --url`
//! answering from what the role serves over HTTP: good, revoked, a hold
//! released, a certificate issued after the full filter (not covered, then
//! covered by the delta), one expired before the full filter (not
//! covered), and a second fetch answered 304 from `--cache`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use shikko_core::{
    CertKind, Event, EventBody, EventId, HolderId, NewCert, RevocationReason, Serial, UnixTime,
};
use shikko_pki::{
    HolderCertRequest, Issuer, KeyAlgorithm, Signer, SoftwareSigner, holder_certificate,
};
use shikko_testkit::process::{
    crl_build_when_ready, http_get, run, setup_demo_dir, start_registry, start_role, write_config,
};
use shikko_testkit::roles::Loopback;

/// `shikko filter check --url`: the exit code (0 good, 3 revoked, 4 not covered).
fn check(http: &str, samples: &Path, ca: &str, cert: &Path, cache: &Path) -> i32 {
    let out = run(&[
        "filter",
        "check",
        "--issuer",
        samples.join(ca).to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--url",
        &format!("http://{http}"),
        "--cache",
        cache.to_str().unwrap(),
    ]);
    let code = out.status.code().unwrap_or(-1);
    assert!(
        [0, 3, 4].contains(&code),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    code
}

fn ingest(endpoint: &str, dir: &Path, events: &[Event]) {
    let path = dir.join(format!("events-{}.jsonl", events[0].id.as_str()));
    let lines: String = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    std::fs::write(&path, lines).unwrap();
    let out = run(&[
        "events",
        "ingest",
        "--endpoint",
        endpoint,
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The serial of a PEM certificate.
fn serial_of(pem: &Path) -> Serial {
    use der::Decode;
    let der = shikko_pki::certificate_der(&std::fs::read(pem).unwrap()).unwrap();
    let c = shikko_pki::x509_cert::Certificate::from_der(&der).unwrap();
    Serial::from_be_bytes(c.tbs_certificate().serial_number().as_bytes()).unwrap()
}

/// A card user-authentication certificate issued now by the demo's CA:
/// its issue event, and its PEM file.
fn new_auth_cert(
    data: &Path,
    dir: &Path,
    n: u128,
    not_after: UnixTime,
) -> (Event, std::path::PathBuf) {
    let dd = shikko_pki::DataDir::new(data);
    let ca_key = dd.load_key("auth-ca").unwrap();
    let ca_der = dd.read_cert("auth-ca").unwrap();
    let issuer = Issuer::from_certificate(&ca_key, &ca_der).unwrap();
    let holder = HolderId::new(format!("FILTER{n}")).unwrap();
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let serial = Serial::from_u128(0x5F17_0000_0000 + n).unwrap();
    let not_before = UnixTime::now();
    let der = holder_certificate(
        &issuer,
        &HolderCertRequest {
            kind: CertKind::CardAuth,
            holder: &holder,
            municipality: None,
            four_info: None,
            subject_public_key: key.public_key_der(),
            serial,
            not_before,
            not_after,
            ocsp_url: None,
        },
    )
    .unwrap();
    let pem = dir.join(format!("new-{n}.pem"));
    std::fs::write(&pem, shikko_pki::to_pem("CERTIFICATE", &der).unwrap()).unwrap();
    let event = Event {
        id: EventId::new(format!("filter-issue-{n}")).unwrap(),
        time: not_before,
        body: EventBody::Issue {
            holder,
            cert: NewCert {
                kind: CertKind::CardAuth,
                serial,
                not_before,
                not_after,
                municipality: None,
                cert_der: Some(der),
            },
            four_info: None,
        },
    };
    (event, pem)
}

#[test]
fn filters_served_by_the_crl_role_answer_as_the_registry_through_holds_releases_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    setup_demo_dir(&data);
    let samples = data.join("samples");
    let registry = start_registry(&write_config(dir.path(), &data));
    let cfg = Loopback::new(dir.path())
        .crl(&data, &registry.endpoint, 3600, "")
        .unwrap();
    let crl = start_role("crl", &cfg);
    let (http, grpc) = (crl.field("http"), format!("http://{}", crl.field("grpc")));
    let metrics = crl.field("metrics");
    let cache = dir.path().join("cache");

    // Before the full filter: a smartphone certificate put on hold, and a
    // certificate that expires in two seconds.
    let phone_hold = samples.join("phone-auth-good.pem");
    let (short, short_pem) = new_auth_cert(&data, dir.path(), 1, UnixTime(UnixTime::now().0 + 2));
    let hold = Event {
        id: EventId::new("filter-hold").unwrap(),
        time: UnixTime::now(),
        body: EventBody::Suspend {
            kind: CertKind::PhoneAuth,
            serial: serial_of(&phone_hold),
        },
    };
    ingest(&registry.endpoint, dir.path(), &[short, hold]);
    std::thread::sleep(Duration::from_secs(3));
    crl_build_when_ready(&grpc, &[]);
    let s = |f: &str| samples.join(f);
    let answers = |pem: &[(&str, &Path)]| -> Vec<i32> {
        pem.iter()
            .map(|(ca, cert)| check(&http, &samples, ca, cert, &cache))
            .collect()
    };
    let auth_good = s("auth-good.pem");
    let base = [
        ("sign-ca.pem", s("sign-good.pem")),
        ("sign-ca.pem", s("sign-revoked.pem")),
        ("auth-ca.pem", auth_good.clone()),
        ("phone-auth-ca.pem", phone_hold.clone()),
        ("auth-ca.pem", short_pem.clone()),
    ];
    let refs: Vec<(&str, &Path)> = base.iter().map(|(c, p)| (*c, p.as_path())).collect();
    // The short-lived one expired before the full filter: not covered.
    // (The mirror may not have had the hold yet: build again until it does.)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = answers(&refs);
        if got == [0, 3, 0, 3, 4] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the full filter never had the hold: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
        crl_build_when_ready(&grpc, &[]);
    }

    // After the full filter: a revocation, a hold released, and a new certificate.
    std::thread::sleep(Duration::from_millis(1100));
    let (late, late_pem) = new_auth_cert(
        &data,
        dir.path(),
        2,
        UnixTime(UnixTime::now().0 + 365 * 86_400),
    );
    // Before any delta the full filter does not cover the new certificate.
    assert_eq!(check(&http, &samples, "auth-ca.pem", &late_pem, &cache), 4);
    let now = UnixTime::now();
    ingest(
        &registry.endpoint,
        dir.path(),
        &[
            late,
            Event {
                id: EventId::new("filter-revoke").unwrap(),
                time: now,
                body: EventBody::Revoke {
                    kind: CertKind::CardAuth,
                    serial: serial_of(&auth_good),
                    reason: RevocationReason::KeyCompromise,
                    invalidity_date: None,
                },
            },
            Event {
                id: EventId::new("filter-release").unwrap(),
                time: now,
                body: EventBody::Resume {
                    kind: CertKind::PhoneAuth,
                    serial: serial_of(&phone_hold),
                },
            },
        ],
    );
    // A delta from the role's mirror, once the mirror has the events.
    let mut refs = refs.clone();
    refs.push(("auth-ca.pem", late_pem.as_path()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        crl_build_when_ready(&grpc, &["--delta"]);
        let got = answers(&refs);
        if got == [0, 3, 3, 0, 4, 0] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the delta never answered the changes: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // The cache's ETags were sent again and answered 304.
    let (status, body) = http_get(&metrics, "/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    let not_modified: u64 = text
        .lines()
        .filter(|l| {
            l.starts_with("shikko_crl_http_requests_total{")
                && l.contains("outcome=\"not_modified\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(not_modified > 0, "{text}");
}
