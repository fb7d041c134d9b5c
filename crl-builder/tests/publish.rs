//! Publication over real servers on 127.0.0.1:0: HTTP with caching headers
//! and 304s, gRPC list / download / watch / build, and readers during
//! rebuilds always getting a whole CRL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use shikko_core::{
    CertKind, Event, EventBody, EventId, HolderId, NewCert, RevocationReason, Serial, UnixTime,
};
use shikko_crl::{BuildKind, CrlName, CrlRole, grpc::CrlService, read_summary, verify_file};
use shikko_pki::{KeyAlgorithm, Signer};
use shikko_proto::v1 as pb;
use shikko_store::IngestMode;

struct HttpResponse {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A plain HTTP/1.1 GET (no client library between the test and the server).
fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        b = &b[eol + 2..];
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}

/// A crl role over the fixture's registry store (always current).
fn role_over(f: &Fixture, reg: &prometheus::Registry) -> Arc<CrlRole> {
    CrlRole::new(f.builder(), reg, shikko_follow::Readiness::always_current()).unwrap()
}

async fn start_http(role: &Arc<CrlRole>, reg: &prometheus::Registry) -> SocketAddr {
    let app = shikko_crl::http::router(role.catalog().clone(), reg).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn http_date(t: UnixTime) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.0 as u64))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_serves_crls_with_caching_headers_and_not_modified() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let reg = prometheus::Registry::new();
    let role = role_over(&f, &reg);
    role.build(BuildKind::Full, &CertKind::ALL).await.unwrap();
    let addr = start_http(&role, &reg).await;

    let path = f.crl_path(CertKind::CardSigning, CrlName::Full);
    let summary = read_summary(&path).unwrap();
    let r = tokio::task::spawn_blocking(move || http_get(addr, "/crl/sign/full.crl", &[]))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/pkix-crl");
    assert_eq!(
        r.body,
        std::fs::read(&path).unwrap(),
        "the bytes of the published file"
    );
    assert_eq!(r.headers["etag"], summary.etag());
    assert_eq!(r.headers["last-modified"], http_date(summary.this_update));
    assert_eq!(
        r.headers["expires"],
        http_date(summary.next_update.unwrap())
    );
    let max_age: i64 = r.headers["cache-control"]
        .split("max-age=")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (48 * 3600 - 120..=48 * 3600).contains(&max_age),
        "{}",
        r.headers["cache-control"]
    );
    assert!(r.headers["cache-control"].contains("public"));

    let etag = summary.etag();
    let lm = r.headers["last-modified"].clone();
    let r = tokio::task::spawn_blocking(move || {
        (
            http_get(addr, "/crl/sign/full.crl", &[("If-None-Match", &etag)]),
            http_get(addr, "/crl/sign/full.crl", &[("If-Modified-Since", &lm)]),
            http_get(
                addr,
                "/crl/sign/full.crl",
                &[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")],
            ),
            http_get(
                addr,
                "/crl/sign/full.crl",
                &[("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)],
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(r.0.status, 304);
    assert!(r.0.body.is_empty());
    assert_eq!(r.0.headers["etag"], summary.etag());
    assert_eq!(r.1.status, 304, "not modified since thisUpdate");
    assert_eq!(r.2.status, 200, "modified since 1994");
    assert_eq!(r.3.status, 200, "If-None-Match wins over If-Modified-Since");

    // Partitions and deltas, and what is not a CRL.
    let m = f.municipalities()[0].code;
    let part = format!("/crl/sign/{m}.crl");
    let statuses = tokio::task::spawn_blocking(move || {
        [
            part.as_str(),
            "/crl/phone-auth/delta.crl",
            "/crl/auth/000000.crl",
            "/crl/auth/999999.crl",
            "/crl/nope/full.crl",
            "/crl/sign/state.json",
            "/crl/sign/%2e%2e%2fstate.json",
            "/crl/sign/..%2fstate.json",
            "/crl/sign/.lock",
        ]
        .map(|p| http_get(addr, p, &[]).status)
    })
    .await
    .unwrap();
    assert_eq!(statuses, [200, 200, 404, 404, 404, 404, 404, 404, 404]);

    // A new delta gets a new ETag; the old one no longer matches.
    let delta = f.crl_path(CertKind::CardAuth, CrlName::Delta);
    let old = read_summary(&delta).unwrap().etag();
    role.build(BuildKind::Delta, &[CertKind::CardAuth])
        .await
        .unwrap();
    let new = read_summary(&delta).unwrap().etag();
    assert_ne!(old, new);
    let r = tokio::task::spawn_blocking(move || {
        http_get(addr, "/crl/auth/delta.crl", &[("If-None-Match", &old)])
    })
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["etag"], new);

    let text = prometheus::TextEncoder::new()
        .encode_to_string(&reg.gather())
        .unwrap();
    assert!(
        text.contains("shikko_crl_http_requests_total{issuer=\"sign\",outcome=\"not_modified\"} 2"),
        "{text}"
    );
    assert!(text.contains("shikko_crl_builds_total{issuer=\"auth\",kind=\"delta\"} 1"));
}

/// Filters are served as the CRLs are: their bytes, an ETag of their
/// signature, Cache-Control up to their nextUpdate (bounded), 304 on a
/// matching If-None-Match; a delta filter only once a delta was built, and
/// gone again when a full build starts a new base.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_serves_filters_with_caching_headers_and_not_modified() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let reg = prometheus::Registry::new();
    let role = role_over(&f, &reg);
    role.build(BuildKind::Full, &CertKind::ALL).await.unwrap();
    let addr = start_http(&role, &reg).await;
    let kind = CertKind::CardAuth;
    let path = f.crl_path(kind, CrlName::FullFilter);
    let file = std::fs::read(&path).unwrap();
    let parsed = shikko_filter::verify(&file, f.ca_der(kind), UnixTime::now()).unwrap();
    let crl = read_summary(&f.crl_path(kind, CrlName::Full)).unwrap();
    assert_eq!(parsed.header.number, crl.number, "numbered as its CRL");
    assert_eq!(
        parsed.header.crl_number,
        crl.number.to_be_bytes()[7..].to_vec()
    );

    let r = tokio::task::spawn_blocking(move || {
        (
            http_get(addr, "/filter/auth/full.filter", &[]),
            http_get(addr, "/filter/auth/delta.filter", &[]),
        )
    })
    .await
    .unwrap();
    assert_eq!(r.0.status, 200);
    assert_eq!(r.0.headers["content-type"], "application/octet-stream");
    assert_eq!(r.0.body, file);
    let etag = r.0.headers["etag"].clone();
    assert!(
        etag.starts_with(&format!("\"{:x}-", parsed.header.number)),
        "{etag}"
    );
    assert_eq!(
        r.0.headers["expires"],
        http_date(UnixTime(parsed.header.next_update))
    );
    assert!(r.0.headers["cache-control"].starts_with("public, no-transform, max-age="));
    assert_eq!(r.1.status, 404, "no delta filter before a delta build");

    let statuses = tokio::task::spawn_blocking({
        let etag = etag.clone();
        move || {
            [
                http_get(
                    addr,
                    "/filter/auth/full.filter",
                    &[("If-None-Match", &etag)],
                )
                .status,
                http_get(addr, "/filter/auth/full.crl", &[]).status,
                http_get(addr, "/crl/auth/full.filter", &[]).status,
                http_get(addr, "/filter/auth/state.json", &[]).status,
                http_get(addr, "/filter/nope/full.filter", &[]).status,
                http_get(addr, "/filter/auth/..%2fstate.json", &[]).status,
            ]
        }
    })
    .await
    .unwrap();
    assert_eq!(statuses, [304, 404, 404, 404, 404, 404]);

    // A delta build publishes a delta filter against the full one.
    role.build(BuildKind::Delta, &[kind]).await.unwrap();
    let r = tokio::task::spawn_blocking(move || http_get(addr, "/filter/auth/delta.filter", &[]))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let delta = shikko_filter::verify(&r.body, f.ca_der(kind), UnixTime::now()).unwrap();
    assert_eq!(delta.header.kind, shikko_filter::Kind::Delta);
    assert_eq!(delta.header.base, parsed.header.number);
    let delta_crl = read_summary(&f.crl_path(kind, CrlName::Delta)).unwrap();
    assert_eq!(delta.header.number, delta_crl.number);
    let max_age: i64 = r.headers["cache-control"]
        .split("max-age=")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!((4 * 3600 - 120..=4 * 3600).contains(&max_age), "{max_age}");

    // A full build: a new full filter, and the delta of the old one is gone.
    role.build(BuildKind::Full, &[kind]).await.unwrap();
    let r = tokio::task::spawn_blocking(move || {
        (
            http_get(
                addr,
                "/filter/auth/full.filter",
                &[("If-None-Match", &etag)],
            ),
            http_get(addr, "/filter/auth/delta.filter", &[]),
        )
    })
    .await
    .unwrap();
    assert_eq!(r.0.status, 200, "a new full filter, a new ETag");
    assert_eq!(r.1.status, 404);
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&reg.gather())
        .unwrap();
    assert!(
        text.contains("shikko_crl_number{crl=\"full_filter\",issuer=\"auth\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_lists_downloads_watches_and_builds() {
    let f = Fixture::new(KeyAlgorithm::Rsa2048);
    let reg = prometheus::Registry::new();
    let role = role_over(&f, &reg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = CrlService::new(role.clone()).into_service();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap()
    });
    let mut client =
        pb::crl_publisher_client::CrlPublisherClient::connect(format!("http://{addr}"))
            .await
            .unwrap();

    // Nothing yet; a delta without a full CRL is a failed precondition.
    assert!(
        client
            .list(pb::ListCrlsRequest { issuer: None })
            .await
            .unwrap()
            .into_inner()
            .crls
            .is_empty()
    );
    let err = client
        .build(pb::BuildCrlsRequest {
            issuers: vec![],
            kind: pb::BuildKind::Delta as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");

    // A request naming more issuers than there are is refused before any work.
    let err = client
        .build(pb::BuildCrlsRequest {
            issuers: vec![pb::Issuer::Auth as i32; 100_000],
            kind: pb::BuildKind::Full as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        client
            .list(pb::ListCrlsRequest { issuer: None })
            .await
            .unwrap()
            .into_inner()
            .crls
            .is_empty(),
        "nothing was built"
    );

    let mut watch = client
        .watch(pb::WatchCrlsRequest {
            issuer: Some(pb::Issuer::Auth as i32),
            send_current: false,
        })
        .await
        .unwrap()
        .into_inner();
    let built = client
        .build(pb::BuildCrlsRequest {
            issuers: vec![],
            kind: pb::BuildKind::Full as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(built.seq, f.store.last_seq());
    // 4 full, 4 delta, 3 municipalities x 2 signing kinds, 4 full filters.
    assert_eq!(built.crls.len(), 18);
    let listed = client
        .list(pb::ListCrlsRequest { issuer: None })
        .await
        .unwrap()
        .into_inner()
        .crls;
    assert_eq!(listed.len(), 18);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let info = watch.message().await.unwrap().unwrap();
        assert_eq!(info.issuer, pb::Issuer::Auth as i32, "filtered by issuer");
        seen.push(info.name);
    }
    seen.sort();
    assert_eq!(seen, ["delta", "full", "full-filter"]);
    // A filter is listed with its HTTP path, and downloads as its file.
    let filter = listed
        .iter()
        .find(|c| c.issuer == pb::Issuer::Auth as i32 && c.name == "full-filter")
        .unwrap();
    assert_eq!(filter.path, "/filter/auth/full.filter");
    assert_eq!(filter.delta_base, None);
    let mut stream = client
        .download(pb::DownloadCrlRequest {
            issuer: pb::Issuer::Auth as i32,
            name: "full-filter".into(),
            chunk_size: 0,
            if_none_match: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(c) = stream.message().await.unwrap() {
        bytes.extend_from_slice(&c.data);
    }
    assert_eq!(
        bytes,
        std::fs::read(f.crl_path(CertKind::CardAuth, CrlName::FullFilter)).unwrap()
    );
    assert_eq!(bytes.len() as u64, filter.size);

    // Chunked download reassembles to the file.
    let full = listed
        .iter()
        .find(|c| c.issuer == pb::Issuer::Sign as i32 && c.name == "full")
        .unwrap();
    let mut stream = client
        .download(pb::DownloadCrlRequest {
            issuer: pb::Issuer::Sign as i32,
            name: "full".into(),
            chunk_size: 100,
            if_none_match: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    let mut chunks = 0;
    while let Some(c) = stream.message().await.unwrap() {
        if chunks == 0 {
            assert_eq!(c.info.as_ref().unwrap().etag, full.etag);
        } else {
            assert!(c.info.is_none());
        }
        // A chunk size below 16 KiB is raised to it (no 1-byte messages).
        assert!(c.data.len() <= 16 * 1024);
        assert_eq!(c.offset, bytes.len() as u64);
        bytes.extend_from_slice(&c.data);
        chunks += 1;
    }
    let file = std::fs::read(f.crl_path(CertKind::CardSigning, CrlName::Full)).unwrap();
    assert_eq!(bytes, file);
    assert_eq!(chunks, file.len().div_ceil(16 * 1024));
    let mut stream = client
        .download(pb::DownloadCrlRequest {
            issuer: pb::Issuer::Sign as i32,
            name: "full".into(),
            chunk_size: 0,
            if_none_match: Some(full.etag.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let only = stream.message().await.unwrap().unwrap();
    assert!(only.not_modified && only.data.is_empty());
    assert!(stream.message().await.unwrap().is_none());
    let err = client
        .download(pb::DownloadCrlRequest {
            issuer: pb::Issuer::Sign as i32,
            name: "../state".into(),
            chunk_size: 0,
            if_none_match: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client
        .download(pb::DownloadCrlRequest {
            issuer: pb::Issuer::Auth as i32,
            name: "131001".into(),
            chunk_size: 0,
            if_none_match: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    // A delta build is announced to the watcher; an issuer named three
    // times is built once.
    let built = client
        .build(pb::BuildCrlsRequest {
            issuers: vec![pb::Issuer::Auth as i32; 3],
            kind: pb::BuildKind::Delta as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        built.crls.len(),
        2,
        "a delta CRL and a delta filter: {:?}",
        built.crls
    );
    let mut seen = Vec::new();
    for _ in 0..2 {
        let info = watch.message().await.unwrap().unwrap();
        assert!(info.delta_base.is_some());
        seen.push(info.name);
    }
    seen.sort();
    assert_eq!(seen, ["delta", "delta-filter"]);
}

#[test]
fn readers_during_rebuilds_get_a_whole_crl() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    // Enough entries that a build takes a while: 20,000 revoked authentication certificates.
    let mut events = Vec::new();
    for i in 0..20_000u32 {
        let serial = Serial::from_u128(0x4A51_0000_0000 + u128::from(i)).unwrap();
        events.push(Event {
            id: EventId::new(format!("bulk-i{i}")).unwrap(),
            time: UnixTime(1_700_000_000),
            body: EventBody::Issue {
                holder: HolderId::new(format!("B{i:06}")).unwrap(),
                cert: NewCert {
                    kind: CertKind::CardAuth,
                    serial,
                    not_before: UnixTime(1_690_000_000),
                    not_after: UnixTime(UnixTime::now().0 + 86_400 * 365),
                    municipality: None,
                    cert_der: None,
                },
                four_info: None,
            },
        });
        events.push(Event {
            id: EventId::new(format!("bulk-r{i}")).unwrap(),
            time: UnixTime(1_700_000_100),
            body: EventBody::Revoke {
                kind: CertKind::CardAuth,
                serial,
                reason: RevocationReason::CessationOfOperation,
                invalidity_date: None,
            },
        });
    }
    for chunk in events.chunks(10_000) {
        f.store.ingest(chunk, IngestMode::PerEvent).unwrap();
    }
    let mut cfg = f.config();
    cfg.batch_size = 4_096;
    let issuers = vec![
        shikko_crl::CrlIssuer::new(
            CertKind::CardAuth,
            f.cas[&CertKind::CardAuth].0.clone() as Arc<dyn Signer>,
            f.ca_der(CertKind::CardAuth),
        )
        .unwrap(),
    ];
    let builder = shikko_crl::Builder::new(f.store.shared(), issuers, cfg);
    builder
        .build_full(&[CertKind::CardAuth], &shikko_crl::NoProgress)
        .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let reg = prometheus::Registry::new();
    let catalog = shikko_crl::Catalog::open(f.out_dir()).unwrap();
    let app = shikko_crl::http::router(catalog, &reg).unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let path = f.crl_path(CertKind::CardAuth, CrlName::Full);
    let spki = f.cas[&CertKind::CardAuth].0.public_key_der().to_vec();
    let expected_entries = 20_000 + f.model[&CertKind::CardAuth].len() as u64;
    let done = Arc::new(AtomicBool::new(false));
    let check_dir = tempfile::tempdir().unwrap();
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (done, path, spki) = (done.clone(), path.clone(), spki.clone());
            let copy = check_dir.path().join(format!("reader-{r}.crl"));
            std::thread::spawn(move || {
                let mut numbers = Vec::new();
                while !done.load(Ordering::SeqCst) || numbers.len() < 3 {
                    let bytes = if r == 0 {
                        std::fs::read(&path).unwrap()
                    } else {
                        let resp = http_get(addr, "/crl/auth/full.crl", &[]);
                        assert_eq!(resp.status, 200);
                        assert_eq!(resp.headers["content-length"], resp.body.len().to_string());
                        resp.body
                    };
                    std::fs::write(&copy, &bytes).unwrap();
                    let s = verify_file(&copy, &spki)
                        .unwrap_or_else(|e| panic!("reader {r} got a bad CRL: {e}"));
                    assert_eq!(s.entries, Some(expected_entries), "every entry, whole");
                    numbers.push(s.number);
                }
                numbers
            })
        })
        .collect();
    for _ in 0..6 {
        builder
            .build_full(&[CertKind::CardAuth], &shikko_crl::NoProgress)
            .unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        let numbers = r.join().unwrap();
        assert!(
            numbers.windows(2).all(|w| w[0] <= w[1]),
            "a reader went back in time: {numbers:?}"
        );
    }
}

/// Builds asked for coalesce: while one waits for the build in progress,
/// requests of the same kind for the same or fewer issuers join it (one
/// build, the same report for all); a request for another issuer, or one
/// that comes once the waiting build has started, is a build of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_asked_for_while_one_waits_join_it() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let reg = prometheus::Registry::new();
    let role = role_over(&f, &reg);
    role.build(BuildKind::Full, &CertKind::ALL).await.unwrap();

    // A build in progress (the lock held), and requests arriving meanwhile.
    let busy = role.hold_builds().await;
    let ask = |kinds: Vec<CertKind>| {
        let role = role.clone();
        tokio::spawn(async move { role.build_on_demand(BuildKind::Delta, &kinds).await })
    };
    let first = ask(vec![CertKind::CardAuth, CertKind::CardSigning]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while role.builds_waiting() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first request never waited"
        );
        tokio::task::yield_now().await;
    }
    let joiners: Vec<_> = (0..5).map(|_| ask(vec![CertKind::CardAuth])).collect();
    let other = {
        // Another issuer: not covered by the waiting build, so its own.
        let role = role.clone();
        tokio::spawn(async move {
            role.build_on_demand(BuildKind::Delta, &[CertKind::PhoneAuth])
                .await
        })
    };
    // Every request has looked for a build to join before the lock goes:
    // the five joined, the other waits on its own.
    let coalesced = || {
        prometheus::TextEncoder::new()
            .encode_to_string(&reg.gather())
            .unwrap()
            .contains("shikko_crl_builds_coalesced_total 5")
    };
    while role.builds_waiting() < 2 || !coalesced() {
        assert!(
            std::time::Instant::now() < deadline,
            "the requests never waited"
        );
        tokio::task::yield_now().await;
    }
    drop(busy);

    let first = first.await.unwrap().unwrap();
    for j in joiners {
        let joined = j.await.unwrap().unwrap();
        // The very same build: the same CRLs, numbers and position.
        assert_eq!(joined.seq, first.seq);
        let numbers = |r: &shikko_crl::BuildReport| -> Vec<(CertKind, u64)> {
            r.crls.iter().map(|c| (c.kind, c.number)).collect()
        };
        assert_eq!(numbers(&joined), numbers(&first));
    }
    let other = other.await.unwrap().unwrap();
    assert!(other.crls.iter().all(|c| c.kind == CertKind::PhoneAuth));
    assert_eq!(role.builds_waiting(), 0);

    let text = prometheus::TextEncoder::new()
        .encode_to_string(&reg.gather())
        .unwrap();
    // One delta build of auth for six requests; five joined.
    assert!(
        text.contains("shikko_crl_builds_total{issuer=\"auth\",kind=\"delta\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("shikko_crl_builds_coalesced_total 5"),
        "{text}"
    );
}
