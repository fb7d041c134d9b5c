//! The responder over a real HTTP server on 127.0.0.1:0, asked by `openssl
//! ocsp` (POST, with and without nonce, several certificates), by GET with
//! RFC 5019 caching headers, and its answers linted by pkilint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use shikko_core::{CertKind, CertStatus, EventId, PartitionId, RevocationReason, Serial, UnixTime};
use shikko_core::{ChangeRecord, StatusChange};
use shikko_ocsp::index::StatusIndex;
use shikko_ocsp::responder::{Responder, ResponderKey};
use shikko_pki::{
    Issuer, KeyAlgorithm, Signer, SoftwareSigner, ca_certificate, ocsp_responder_certificate,
    to_pem,
};

use shikko_testkit::openssl;

fn record(seq: u64, serial: u32, status: CertStatus) -> ChangeRecord {
    ChangeRecord {
        seq,
        event_id: EventId::new(format!("e{seq}")).unwrap(),
        event_type: "test".into(),
        time: UnixTime(1_700_000_000),
        changes: vec![StatusChange {
            kind: CertKind::CardAuth,
            serial: Serial::from_u128(u128::from(serial)).unwrap(),
            partition: PartitionId::WHOLE,
            not_after: UnixTime(2_100_000_000),
            status,
            not_before: UnixTime(0),
        }],
        municipalities: Vec::new(),
    }
}

struct Setup {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    /// The fast path alone (an app that answers nothing behind it: a 200
    /// here is the fast path's own; what it declines is a 404).
    fast: SocketAddr,
    grpc: SocketAddr,
    index: Arc<StatusIndex>,
    responder: Arc<Responder>,
    role: Arc<shikko_ocsp::role::OcspRole>,
    /// The auth CA's key and certificate (to issue a new responder certificate).
    ca: (SoftwareSigner, Vec<u8>),
    _rt: tokio::runtime::Runtime,
}

/// CAs for auth (served) and sign (not served), a delegated responder for
/// auth, an index with good / revoked / held certificates, a server.
fn setup(alg: KeyAlgorithm) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_ders = Vec::new();
    let mut keys = Vec::new();
    for (i, kind) in [CertKind::CardAuth, CertKind::CardSigning]
        .into_iter()
        .enumerate()
    {
        let key = SoftwareSigner::generate(alg).unwrap();
        let der = ca_certificate(
            kind,
            &key,
            Serial::from_u128(i as u128 + 1).unwrap(),
            UnixTime(1_600_000_000),
            UnixTime(2_200_000_000),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(format!("{}-ca.pem", kind.issuer_id())),
            to_pem("CERTIFICATE", &der).unwrap(),
        )
        .unwrap();
        ca_ders.push(der);
        keys.push(key);
    }
    let responder_key = Arc::new(SoftwareSigner::generate(alg).unwrap());
    let issuer = Issuer::from_certificate(&keys[0], &ca_ders[0]).unwrap();
    let now = UnixTime::now().0;
    let responder_cert = ocsp_responder_certificate(
        &issuer,
        responder_key.public_key_der(),
        Serial::from_u128(0x200).unwrap(),
        UnixTime(now - 86_400),
        UnixTime(now + 365 * 86_400),
        "Shikko OCSP Responder (auth)",
    )
    .unwrap();
    let index = Arc::new(StatusIndex::new());
    index.apply(&[
        record(1, 0x4A5001, CertStatus::Good),
        record(2, 0x4A5002, CertStatus::Good),
        record(3, 0x4A5003, CertStatus::Good),
        record(
            4,
            0x4A5002,
            CertStatus::Revoked {
                reason: RevocationReason::KeyCompromise,
                at: UnixTime(1_700_000_000),
                invalidity_date: None,
            },
        ),
        record(
            5,
            0x4A5003,
            CertStatus::OnHold {
                since: UnixTime(1_700_000_100),
            },
        ),
    ]);
    let responder = Arc::new(
        Responder::new(
            vec![(
                CertKind::CardAuth,
                ca_ders[0].clone(),
                ResponderKey::new(responder_key, &responder_cert).unwrap(),
            )],
            index.clone(),
            Duration::from_secs(3600),
        )
        .unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let role = shikko_ocsp::role::OcspRole::new(
        index.clone(),
        responder.clone(),
        &prometheus::Registry::new(),
        shikko_follow::Readiness::always_current(),
    )
    .unwrap();
    let svc = shikko_ocsp::grpc::OcspService::new(role.clone()).into_service();
    let app = shikko_ocsp::http::router(role.clone(), 4);
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    let flistener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let fast = flistener.local_addr().unwrap();
    rt.spawn(shikko_runtime::serve_http_fast(
        flistener,
        axum::Router::new(),
        shikko_ocsp::http::FastOcsp::new(role.clone(), None),
        shikko_runtime::HttpLimits::default(),
        std::future::pending(),
    ));
    let glistener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let grpc = glistener.local_addr().unwrap();
    rt.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(glistener))
            .await
            .unwrap()
    });
    let ca = (keys.remove(0), ca_ders.remove(0));
    Setup {
        dir,
        addr,
        fast,
        grpc,
        index,
        responder,
        role,
        ca,
        _rt: rt,
    }
}

fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

/// A GET on a keep-alive connection (what the fast path takes).
fn http_get_kept(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let r = shikko_testkit::http::get_kept(&addr.to_string(), path, headers);
    (r.status, r.head, r.body)
}

/// A header's value in a lower-cased head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

fn lint(dir: &Path, der: &[u8]) {
    let bin = shikko_testkit::venv_bin("lint_ocsp_response");
    let file = dir.join("lint.der");
    std::fs::write(&file, der).unwrap();
    let out = Command::new(bin)
        .args(["lint", "-f", "JSON"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("pkilint said: {text}"));
    for result in json["results"].as_array().unwrap() {
        for f in result["finding_descriptions"].as_array().unwrap() {
            let sev = f["severity"].as_str().unwrap();
            assert!(!matches!(sev, "FATAL" | "ERROR"), "pkilint: {result}");
        }
    }
}

/// `openssl ocsp -respin` of a saved answer about `serial` of the auth CA
/// (`sha256`: the CertID's hash), its output.
fn respin(dir: &Path, file: &str, serial: &str, sha256: bool) -> String {
    let mut args = vec![
        "ocsp",
        "-respin",
        file,
        "-issuer",
        "auth-ca.pem",
        "-CAfile",
        "auth-ca.pem",
    ];
    if sha256 {
        args.push("-sha256");
    }
    args.extend(["-serial", serial]);
    openssl(&args, dir)
}

/// Python `cryptography` parses and verifies an answer (tests/check_ocsp.py).
fn check_with_cryptography(
    dir: &Path,
    der: &str,
    serial: &str,
    status: &str,
    reason: Option<&str>,
) {
    let python = shikko_testkit::venv_bin("python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_ocsp.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(dir.join(der))
        .arg(dir.join("auth-ca.pem"))
        .args([serial, status]);
    if let Some(r) = reason {
        cmd.arg(r);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "cryptography on {der}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn answers_openssl(alg: KeyAlgorithm) {
    let s = setup(alg);
    let url = format!("http://{}/ocsp", s.addr);
    let d = s.dir.path();
    // POST, several certificates, with a nonce (openssl's default).
    let text = openssl(
        [
            "ocsp",
            "-issuer",
            "auth-ca.pem",
            "-CAfile",
            "auth-ca.pem",
            "-url",
            &url,
            "-serial",
            "0x4A5001",
            "-serial",
            "0x4A5002",
            "-serial",
            "0x4A5003",
            "-serial",
            "0x4A5009",
        ],
        d,
    );
    for want in [
        "Response verify OK",
        "0x4A5001: good",
        "0x4A5002: revoked",
        "Reason: keyCompromise",
        "0x4A5003: revoked",
        "Reason: certificateHold",
        "0x4A5009: unknown",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(
        !text.contains("Status times invalid") && !text.contains("nonce"),
        "{text}"
    );

    // POST without nonce: the cached path.
    let text = openssl(
        [
            "ocsp",
            "-issuer",
            "auth-ca.pem",
            "-CAfile",
            "auth-ca.pem",
            "-url",
            &url,
            "-serial",
            "0x4A5002",
            "-no_nonce",
            "-respout",
            "resp.der",
        ],
        d,
    );
    assert!(
        text.contains("Response verify OK") && text.contains("0x4A5002: revoked"),
        "{text}"
    );
    lint(d, &std::fs::read(d.join("resp.der")).unwrap());
    check_with_cryptography(d, "resp.der", "4A5002", "revoked", Some("key_compromise"));

    // An issuer this responder does not serve: unauthorized, nothing signed.
    let text = openssl(
        [
            "ocsp",
            "-issuer",
            "sign-ca.pem",
            "-url",
            &url,
            "-serial",
            "0x4A5001",
            "-no_nonce",
        ],
        d,
    );
    assert!(text.contains("unauthorized"), "{text}");
}

#[test]
fn p256_answers_verify_with_openssl_and_pass_pkilint() {
    answers_openssl(KeyAlgorithm::EcdsaP256);
}

#[test]
fn rsa_answers_verify_with_openssl_and_pass_pkilint() {
    answers_openssl(KeyAlgorithm::Rsa2048);
}

#[test]
fn get_answers_carry_rfc5019_caching_and_follow_revocations() {
    let s = setup(KeyAlgorithm::EcdsaP256);
    let d = s.dir.path();
    let out = openssl(
        [
            "ocsp",
            "-issuer",
            "auth-ca.pem",
            "-serial",
            "0x4A5001",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
        d,
    );
    let req = std::fs::read(d.join("req.der")).unwrap_or_else(|_| panic!("{out}"));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&req);
    let path = format!("/ocsp/{}", b64.replace('+', "%2B"));
    let (status, head, body) = http_get(s.addr, &path, &[]);
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: application/ocsp-response"),
        "{head}"
    );
    assert!(
        head.contains("public, no-transform, must-revalidate"),
        "{head}"
    );
    let max_age: i64 = head
        .split("max-age=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&max_age), "{head}");
    assert!(
        head.contains("last-modified: ") && head.contains("expires: "),
        "{head}"
    );
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .to_string();
    std::fs::write(d.join("get.der"), &body).unwrap();
    let text = respin(d, "get.der", "0x4A5001", false);
    assert!(
        text.contains("Response verify OK") && text.contains("0x4A5001: good"),
        "{text}"
    );
    check_with_cryptography(d, "get.der", "4A5001", "good", None);
    // The same answer again is not modified.
    let (status, _, body) = http_get(s.addr, &path, &[("If-None-Match", &etag)]);
    assert_eq!((status, body.len()), (304, 0));

    // The fast path gives the same answer with the same headers, rendered
    // when it was signed (Cache-Control's max-age counts down), and 304.
    let (status, fhead, fbody) = http_get_kept(s.fast, &path, &[]);
    assert_eq!(status, 200, "{fhead}");
    assert_eq!(fbody, std::fs::read(d.join("get.der")).unwrap());
    for name in ["content-type", "etag", "last-modified", "expires"] {
        assert_eq!(header(&fhead, name), header(&head, name), "{name}: {fhead}");
    }
    let cc = header(&fhead, "cache-control").unwrap();
    assert!(
        cc.ends_with(", public, no-transform, must-revalidate"),
        "{cc}"
    );
    let fast_age: i64 = cc
        .strip_prefix("max-age=")
        .and_then(|v| v.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((max_age - 5..=max_age).contains(&fast_age), "{fhead}");
    assert!(header(&fhead, "date").is_some(), "{fhead}");
    assert_eq!(
        header(&fhead, "content-length"),
        Some(&*fbody.len().to_string())
    );
    for inm in [etag.clone(), format!("\"x\", {etag}"), "*".into()] {
        let (status, h304, body) = http_get_kept(s.fast, &path, &[("If-None-Match", &inm)]);
        assert_eq!((status, body.len()), (304, 0), "{inm}: {h304}");
        assert_eq!(header(&h304, "etag"), Some(&*etag));
        assert!(header(&h304, "content-type").is_none(), "{h304}");
        assert!(header(&h304, "cache-control").is_some(), "{h304}");
    }
    let (status, _, _) = http_get_kept(s.fast, &path, &[("If-None-Match", "\"other\"")]);
    assert_eq!(status, 200);
    // The same request by POST: the same answer and headers from the fast
    // path; of another content type, not the fast path's (the router
    // answers 415; here the empty app's 404).
    let post = |ct: &str| {
        shikko_testkit::http::request_kept(
            &s.fast.to_string(),
            "POST",
            "/ocsp",
            &[("Content-Type", ct)],
            Some(&req),
        )
    };
    let p = post("application/ocsp-request");
    assert_eq!((p.status, &p.body), (200, &fbody), "{}", p.head);
    for name in ["content-type", "etag", "last-modified", "expires"] {
        assert_eq!(p.header(name), header(&fhead, name), "{name}: {}", p.head);
    }
    assert_eq!(post("application/octet-stream").status, 404);
    let hits = s
        .role
        .metrics()
        .requests
        .with_label_values(&["get", "cached"])
        .get();
    let (status, _, _) = http_get_kept(s.fast, &path, &[]);
    assert_eq!(status, 200);
    assert_eq!(
        s.role
            .metrics()
            .requests
            .with_label_values(&["get", "cached"])
            .get(),
        hits + 1,
        "the fast path counts its answers as the full path does"
    );

    // A revocation reaches the index: the cached good answer is dropped.
    let changed = s.index.apply(&[record(
        6,
        0x4A5001,
        CertStatus::Revoked {
            reason: RevocationReason::Superseded,
            at: UnixTime(1_700_000_500),
            invalidity_date: None,
        },
    )]);
    // Before the cache drops it, the fast path (its memo of paths
    // included) no longer serves it: the status it was signed from is not
    // the index's.
    assert_eq!(http_get_kept(s.fast, &path, &[]).0, 404);
    s.responder.invalidate(&changed);
    // The fast path no longer has it (declined: the empty app's 404).
    assert_eq!(http_get_kept(s.fast, &path, &[]).0, 404);
    let (status, _, body) = http_get(s.addr, &path, &[("If-None-Match", &etag)]);
    assert_eq!(status, 200);
    // Signed again: the fast path serves the revoked answer.
    let (status, _, fbody) = http_get_kept(s.fast, &path, &[]);
    assert_eq!((status, &fbody), (200, &body));
    std::fs::write(d.join("get2.der"), &body).unwrap();
    let text = respin(d, "get2.der", "0x4A5001", false);
    assert!(
        text.contains("0x4A5001: revoked") && text.contains("Reason: superseded"),
        "{text}"
    );

    // HTTP/2 (prior knowledge), as load balancers speak it to backends.
    let out = Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-o",
            "h2.der",
            "-w",
            "%{http_version}",
        ])
        .args([
            "-H",
            "Content-Type: application/ocsp-request",
            "--data-binary",
            "@req.der",
        ])
        .arg(format!("http://{}/ocsp", s.addr))
        .current_dir(d)
        .output()
        .expect("curl runs (scripts/install-deps installs it)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2", "{out:?}");
    let text = respin(d, "h2.der", "0x4A5001", false);
    assert!(
        text.contains("Response verify OK") && text.contains("0x4A5001: revoked"),
        "{text}"
    );

    // Malformed GET and POST bodies are malformedRequest, never a server error.
    let (status, _, body) = http_get(s.addr, "/ocsp/not*base64", &[]);
    assert_eq!((status, body), (200, vec![0x30, 0x03, 0x0a, 0x01, 0x01]));
    let (status, _, body) = http_get(s.addr, "/ocsp/MAA=", &[]);
    assert_eq!((status, body), (200, vec![0x30, 0x03, 0x0a, 0x01, 0x01]));
}

#[test]
fn grpc_check_answers_from_the_index_with_the_signed_response_on_request() {
    use shikko_proto::v1 as pb;
    let s = setup(KeyAlgorithm::EcdsaP256);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c =
            pb::ocsp_responder_client::OcspResponderClient::connect(format!("http://{}", s.grpc))
                .await
                .unwrap();
        let check = |serial: u32, der: bool| pb::CheckRequest {
            issuer: pb::Issuer::Auth as i32,
            serial: serial.to_be_bytes().to_vec(),
            include_response: der,
        };
        for (serial, state, reason) in [
            (0x4A5001, pb::CertState::Good, 0),
            (0x4A5002, pb::CertState::Revoked, 1),
            (0x4A5003, pb::CertState::OnHold, 6),
            (0x4A5009, pb::CertState::Unknown, 0),
        ] {
            let r = c.check(check(serial, false)).await.unwrap().into_inner();
            assert_eq!((r.state, r.reason), (state as i32, reason), "{serial:x}");
            assert!(r.ocsp_response.is_empty());
            assert_eq!(r.index_seq, 5);
        }
        let r = c.check(check(0x4A5002, true)).await.unwrap().into_inner();
        std::fs::write(s.dir.path().join("grpc.der"), &r.ocsp_response).unwrap();
        let err = c
            .check(pb::CheckRequest {
                issuer: pb::Issuer::Sign as i32,
                serial: vec![1],
                include_response: false,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        let err = c
            .check(pb::CheckRequest {
                issuer: 0,
                serial: vec![1],
                include_response: false,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);

        // Signing over gRPC takes the role's permits, the ones the HTTP
        // router was given (4 here): with all of them taken, an answer not
        // cached is refused and a cached one is served.
        let permits = s.role.signing_permits();
        let held = permits.clone().acquire_many_owned(4).await.unwrap();
        let err = c.check(check(0x4A5001, true)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
        let r = c.check(check(0x4A5002, true)).await.unwrap().into_inner();
        assert!(
            !r.ocsp_response.is_empty(),
            "the cached answer needs no permit"
        );
        drop(held);
        let r = c.check(check(0x4A5001, true)).await.unwrap().into_inner();
        assert!(!r.ocsp_response.is_empty());
        assert_eq!(permits.available_permits(), 4);
    });
    let text = respin(s.dir.path(), "grpc.der", "0x4A5002", true);
    assert!(
        text.contains("Response verify OK") && text.contains("0x4A5002: revoked"),
        "{text}"
    );
}

#[test]
fn the_responder_key_rotates_without_downtime() {
    let s = setup(KeyAlgorithm::EcdsaP256);
    let d = s.dir.path();
    let url = format!("http://{}/ocsp", s.addr);
    let ask = || {
        openssl(
            [
                "ocsp",
                "-issuer",
                "auth-ca.pem",
                "-CAfile",
                "auth-ca.pem",
                "-url",
                &url,
                "-serial",
                "0x4A5001",
                "-no_nonce",
                "-resp_text",
            ],
            d,
        )
    };
    let responder_id = |text: &str| {
        text.lines()
            .find(|l| l.contains("Responder Id:"))
            .unwrap_or_else(|| panic!("{text}"))
            .to_string()
    };
    let before = ask();
    assert!(before.contains("Response verify OK"), "{before}");
    // The same request by GET, on the fast path (twice: the second from
    // its memo of paths).
    let out = openssl(
        [
            "ocsp",
            "-issuer",
            "auth-ca.pem",
            "-serial",
            "0x4A5001",
            "-no_nonce",
            "-reqout",
            "rot.der",
        ],
        d,
    );
    let req = std::fs::read(d.join("rot.der")).unwrap_or_else(|_| panic!("{out}"));
    let path = format!(
        "/ocsp/{}",
        base64::engine::general_purpose::STANDARD
            .encode(&req)
            .replace('+', "%2B")
    );
    let (status, _, old_answer) = http_get_kept(s.fast, &path, &[]);
    assert_eq!(status, 200);
    assert_eq!(http_get_kept(s.fast, &path, &[]).2, old_answer);

    // A new key and certificate, swapped in while the server runs.
    let new_key = Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap());
    let now = UnixTime::now().0;
    let cert = ocsp_responder_certificate(
        &Issuer::from_certificate(&s.ca.0, &s.ca.1).unwrap(),
        new_key.public_key_der(),
        Serial::from_u128(0x201).unwrap(),
        UnixTime(now - 60),
        UnixTime(now + 86_400),
        "Shikko OCSP Responder (auth, next)",
    )
    .unwrap();
    s.responder
        .rotate(
            CertKind::CardAuth,
            ResponderKey::new(new_key, &cert).unwrap(),
        )
        .unwrap();
    // The old key's answer is gone from the fast path too (declined: the
    // empty app's 404), until one is signed with the new key.
    assert_eq!(http_get_kept(s.fast, &path, &[]).0, 404);
    let after = ask();
    let (status, _, new_answer) = http_get_kept(s.fast, &path, &[]);
    assert_eq!(status, 200);
    assert_ne!(new_answer, old_answer);
    assert!(
        after.contains("Response verify OK") && after.contains("0x4A5001: good"),
        "{after}"
    );
    assert_ne!(
        responder_id(&before),
        responder_id(&after),
        "the cached answer of the old key was dropped"
    );
    // A certificate that does not certify the key is refused.
    let other = Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap());
    assert!(ResponderKey::new(other, &cert).is_err());
}

#[test]
fn each_certid_encoding_gets_its_own_answer_and_unready_answers_try_later() {
    use der::{Decode, Encode};
    use shikko_ocsp::request::ParsedRequest;
    use shikko_ocsp::types::{BasicOcspResponse, OcspResponse};
    let s = setup(KeyAlgorithm::EcdsaP256);
    let serial = Serial::from_u128(0x4A5001).unwrap();
    let with_null = s.responder.cert_id(CertKind::CardAuth, &serial).unwrap();
    let mut without = with_null.clone();
    without.hash_algorithm.parameters = None;
    let now = UnixTime::now();
    for id in [with_null.clone(), without.clone(), with_null] {
        let answer = s.responder.respond(
            &ParsedRequest {
                cert_ids: vec![id.clone()],
                nonce: None,
            },
            now,
        );
        let resp = OcspResponse::from_der(&answer.der).unwrap();
        let basic =
            BasicOcspResponse::from_der(resp.response_bytes.unwrap().response.as_bytes()).unwrap();
        assert_eq!(
            basic.tbs_response_data.responses[0]
                .cert_id
                .to_der()
                .unwrap(),
            id.to_der().unwrap(),
            "the answer repeats the request's CertID as sent"
        );
    }
    // An empty request is malformed, not a panic.
    let empty = s.responder.respond(
        &ParsedRequest {
            cert_ids: vec![],
            nonce: None,
        },
        now,
    );
    assert_eq!(empty.der.as_ref(), [0x30, 0x03, 0x0a, 0x01, 0x01]);

    // While the index catches up, answers are tryLater, unsigned.
    s.role.readiness().set_catching_up();
    let d = s.dir.path();
    openssl(
        [
            "ocsp",
            "-issuer",
            "auth-ca.pem",
            "-serial",
            "0x4A5001",
            "-no_nonce",
            "-reqout",
            "r.der",
        ],
        d,
    );
    let b64 =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(d.join("r.der")).unwrap());
    let (status, _, body) = http_get(s.addr, &format!("/ocsp/{}", b64.replace('+', "%2B")), &[]);
    assert_eq!((status, body), (200, vec![0x30, 0x03, 0x0a, 0x01, 0x03]));
    s.role.readiness().set_current();
    let (_, _, body) = http_get(s.addr, &format!("/ocsp/{}", b64.replace('+', "%2B")), &[]);
    assert!(body.len() > 100, "a signed answer once ready");
}

#[test]
fn a_full_cache_makes_room_for_the_answers_asked_for_now() {
    use shikko_ocsp::request::ParsedRequest;
    use shikko_ocsp::responder::Outcome;
    let s = setup(KeyAlgorithm::EcdsaP256);
    let (ca_key, ca_der) = &s.ca;
    let key = Arc::new(SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap());
    let now = UnixTime::now();
    let cert = ocsp_responder_certificate(
        &Issuer::from_certificate(ca_key, ca_der).unwrap(),
        key.public_key_der(),
        Serial::from_u128(0x201).unwrap(),
        UnixTime(now.0 - 86_400),
        UnixTime(now.0 + 365 * 86_400),
        "Shikko OCSP Responder (auth)",
    )
    .unwrap();
    let responder = Responder::new(
        vec![(
            CertKind::CardAuth,
            ca_der.clone(),
            ResponderKey::new(key, &cert).unwrap(),
        )],
        s.index.clone(),
        Duration::from_secs(3600),
    )
    .unwrap()
    .with_cache_capacity(2);
    let ask = |serial: u128, at: UnixTime| {
        let id = responder
            .cert_id(CertKind::CardAuth, &Serial::from_u128(serial).unwrap())
            .unwrap();
        let req = ParsedRequest {
            cert_ids: vec![id],
            nonce: None,
        };
        responder.respond(&req, at).outcome
    };
    // Good, revoked, on hold: all known, all cacheable.
    assert_eq!(ask(0x4A5001, now), Outcome::Signed);
    assert_eq!(ask(0x4A5002, now), Outcome::Signed);
    assert_eq!(ask(0x4A5001, now), Outcome::Cached);
    assert_eq!(responder.cached_answers(), 2);
    // Full: a third answer is kept all the same, in place of another.
    assert_eq!(ask(0x4A5003, now), Outcome::Signed);
    assert_eq!(responder.cached_answers(), 2);
    assert_eq!(ask(0x4A5003, now), Outcome::Cached);
    // Half the validity later every kept answer is stale: the next new one
    // asked for sweeps them all out (not one at random).
    s.index.apply(&[record(6, 0x4A5004, CertStatus::Good)]);
    let later = UnixTime(now.0 + 1_801);
    assert_eq!(ask(0x4A5004, later), Outcome::Signed);
    assert_eq!(responder.cached_answers(), 1, "the stale answers are gone");
    assert_eq!(ask(0x4A5004, later), Outcome::Cached);
    assert_eq!(ask(0x4A5001, later), Outcome::Signed);
    assert_eq!(responder.cached_answers(), 2);
    assert_eq!(ask(0x4A5001, later), Outcome::Cached);
}
