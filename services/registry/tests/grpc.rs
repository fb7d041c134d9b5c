//! The registry over real gRPC on 127.0.0.1:0 with a real RocksDB in a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use shikko_proto::v1 as pb;
use shikko_proto::v1::registry_client::RegistryClient;
use shikko_registry::Registry;
use shikko_store::Store;
use tokio::sync::oneshot;
use tonic::Code;
use tonic::transport::Channel;

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: Option<tempfile::TempDir>,
}

async fn start(dir: &std::path::Path) -> Server {
    let store = shikko_store::RegistryStore::open(dir).unwrap();
    let registry = Arc::new(Registry::new(store, &prometheus::Registry::new()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(shikko_registry::serve(registry, listener, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        task,
        _dir: None,
    }
}

impl Server {
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        // Graceful shutdown must finish even with open feed streams.
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server drains within 10 s")
            .unwrap()
            .unwrap();
    }
}

async fn client(addr: std::net::SocketAddr) -> RegistryClient<Channel> {
    RegistryClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn issue(id: &str, holder: &str, serial: u32) -> pb::Event {
    pb::Event {
        id: id.into(),
        time: 2_000,
        body: Some(pb::event::Body::Issue(pb::Issue {
            holder_id: holder.into(),
            cert: Some(pb::NewCert {
                issuer: pb::Issuer::Auth as i32,
                serial: serial.to_be_bytes().to_vec(),
                not_before: 1_000,
                not_after: 100_000,
                municipality: None,
                cert_der: vec![],
            }),
            four_info: None,
        })),
    }
}

fn revoke(id: &str, serial: u32, reason: u32) -> pb::Event {
    pb::Event {
        id: id.into(),
        time: 3_000,
        body: Some(pb::event::Body::Revoke(pb::Revoke {
            issuer: pb::Issuer::Auth as i32,
            serial: serial.to_be_bytes().to_vec(),
            reason,
            invalidity_date: None,
        })),
    }
}

async fn ingest(c: &mut RegistryClient<Channel>, events: Vec<pb::Event>) -> pb::IngestResponse {
    c.ingest(pb::IngestRequest {
        events,
        all_or_nothing: false,
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test]
async fn change_feed_resumes_from_a_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut c = client(server.addr).await;
    let resp = ingest(
        &mut c,
        (1..=5)
            .map(|i| issue(&format!("i{i}"), &format!("H{i}"), i))
            .collect(),
    )
    .await;
    assert_eq!(resp.last_seq, 5);
    assert!(
        resp.outcomes
            .iter()
            .all(|o| o.kind == pb::OutcomeKind::Applied as i32)
    );

    // Read the history, then stop after seq 3.
    let mut stream = c
        .follow(pb::FollowRequest {
            from_seq: 1,
            max_batch: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let batch = stream.message().await.unwrap().unwrap();
        assert_eq!(batch.head_seq, 5);
        seen.extend(batch.records.iter().map(|r| r.seq));
    }
    assert_eq!(seen[..3], [1, 2, 3]);
    drop(stream);

    // Meanwhile more events arrive, including a revocation.
    ingest(&mut c, vec![revoke("r1", 2, 1), issue("i6", "H6", 6)]).await;

    // Resume from where we stopped: exactly the records after 3, nothing twice.
    let mut stream = c
        .follow(pb::FollowRequest {
            from_seq: 4,
            max_batch: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let batch = stream.message().await.unwrap().unwrap();
    let seqs: Vec<u64> = batch.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![4, 5, 6, 7]);
    let revoked = &batch.records[2];
    assert_eq!(revoked.event_type, "revoke");
    assert!(revoked.writes.is_empty(), "writes only on request");
    assert_eq!(revoked.changes[0].status, pb::Status::Revoked as i32);
    assert_eq!(revoked.changes[0].reason, 1);

    // A replica asks for the writes: each record carries what its event wrote.
    let mut replica = c
        .follow(pb::FollowRequest {
            from_seq: 6,
            max_batch: 0,
            with_writes: true,
        })
        .await
        .unwrap()
        .into_inner();
    let batch = replica.message().await.unwrap().unwrap();
    let writes: Vec<Vec<shikko_core::Effect>> = batch
        .records
        .iter()
        .map(|r| rmp_serde::from_slice(&r.writes).unwrap())
        .collect();
    assert_eq!(writes.len(), 2);
    assert_eq!(batch.records[0].event_id, "r1");
    assert!(
        writes[0].iter().any(|w| matches!(
            w,
            shikko_core::Effect::PutCert(c) if c.status.is_listed()
        )),
        "the revocation's writes hold the revoked certificate: {:?}",
        writes[0]
    );
    assert_eq!(batch.records[1].event_id, "i6");
    assert!(
        writes[1]
            .iter()
            .any(|w| matches!(w, shikko_core::Effect::PutHolder(_)))
    );
    drop(replica);

    // Caught up, the stream waits and delivers new events as they are accepted.
    ingest(&mut c, vec![revoke("r2", 6, 5)]).await;
    let live = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("live change delivered")
        .unwrap()
        .unwrap();
    assert_eq!(live.records[0].seq, 8);
    assert_eq!(live.records[0].event_id, "r2");

    // Shutdown drains although this stream is still open.
    server.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap();
    assert!(!matches!(end, Ok(Some(_))));
}

#[tokio::test]
async fn the_feed_survives_a_registry_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut c = client(server.addr).await;
    ingest(&mut c, vec![issue("i1", "H1", 1), issue("i2", "H2", 2)]).await;
    server.stop().await;

    let server = start(dir.path()).await;
    let mut c = client(server.addr).await;
    // Re-delivery after the restart is acknowledged with the original sequence number.
    let resp = ingest(&mut c, vec![issue("i2", "H2", 2), issue("i3", "H3", 3)]).await;
    assert_eq!(resp.outcomes[0].kind, pb::OutcomeKind::Duplicate as i32);
    assert_eq!(resp.outcomes[0].seq, 2);
    assert_eq!(resp.outcomes[1].seq, 3);
    let mut stream = c
        .follow(pb::FollowRequest {
            from_seq: 2,
            max_batch: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let batch = stream.message().await.unwrap().unwrap();
    assert_eq!(
        batch
            .records
            .iter()
            .map(|r| r.event_id.as_str())
            .collect::<Vec<_>>(),
        vec!["i2", "i3"]
    );
    // The store's identity is the same across the restart.
    assert_eq!(batch.store_id.len(), 32, "{:?}", batch.store_id);
    drop(stream);

    // A follower at the head gets one empty batch carrying the head; one
    // past it is told its history is not this registry's.
    let mut at_head = c
        .follow(pb::FollowRequest {
            from_seq: 4,
            max_batch: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let empty = at_head.message().await.unwrap().unwrap();
    assert!(empty.records.is_empty());
    assert_eq!((empty.head_seq, &empty.store_id), (3, &batch.store_id));
    drop(at_head);
    let err = c
        .follow(pb::FollowRequest {
            from_seq: 5,
            max_batch: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    server.stop().await;

    // Another store has another identity.
    let other_dir = tempfile::tempdir().unwrap();
    let other = start(other_dir.path()).await;
    let mut c = client(other.addr).await;
    let mut s = c
        .follow(pb::FollowRequest {
            from_seq: 1,
            max_batch: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let b = s.message().await.unwrap().unwrap();
    assert_ne!(b.store_id, batch.store_id);
    drop(s);
    other.stop().await;
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut c = client(server.addr).await;
    ingest(&mut c, vec![issue("i1", "H1", 1)]).await;

    // Malformed: a zero serial. The whole call fails, naming the event.
    let mut bad = issue("i2", "H2", 0);
    bad.id = "bad-serial".into();
    let err = c
        .ingest(pb::IngestRequest {
            events: vec![issue("ok", "H9", 9), bad],
            all_or_nothing: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("event #1") && err.message().contains("bad-serial"),
        "{}",
        err.message()
    );
    // A missing body.
    let err = c
        .ingest(pb::IngestRequest {
            events: vec![pb::Event {
                id: "nobody".into(),
                time: 1,
                body: None,
            }],
            all_or_nothing: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Rule-breaking, per event: the outcome names the rule, the good event is applied.
    let resp = ingest(
        &mut c,
        vec![revoke("r-unknown", 77, 1), issue("i3", "H3", 3)],
    )
    .await;
    assert_eq!(resp.outcomes[0].kind, pb::OutcomeKind::Rejected as i32);
    assert_eq!(resp.outcomes[0].rule, "unknown-serial");
    assert!(resp.outcomes[0].message.contains("r-unknown"));
    assert_eq!(resp.outcomes[1].kind, pb::OutcomeKind::Applied as i32);

    // Rule-breaking, all or nothing: FAILED_PRECONDITION naming event and rule; nothing applied.
    let err = c
        .ingest(pb::IngestRequest {
            events: vec![issue("i4", "H4", 4), revoke("hold-by-revoke", 1, 6)],
            all_or_nothing: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("hold-by-revoke") && err.message().contains("reason-not-allowed"),
        "{}",
        err.message()
    );
    let err = c
        .get_status(pb::GetStatusRequest {
            issuer: pb::Issuer::Auth as i32,
            serial: vec![4],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Status of a known certificate, and a bad issuer.
    let st = c
        .get_status(pb::GetStatusRequest {
            issuer: pb::Issuer::Auth as i32,
            serial: vec![0, 0, 1],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.status, pb::Status::Good as i32);
    let err = c
        .get_status(pb::GetStatusRequest {
            issuer: 42,
            serial: vec![1],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test]
async fn bulk_ingest_and_revoked_scans_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut c = client(server.addr).await;
    let batches: Vec<pb::IngestRequest> = (0..5u32)
        .map(|b| pb::IngestRequest {
            events: (0..100u32)
                .map(|i| issue(&format!("b{b}-{i}"), &format!("H{b}-{i}"), b * 100 + i + 1))
                .collect(),
            all_or_nothing: false,
        })
        .collect();
    let summary = c
        .ingest_stream(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (summary.applied, summary.duplicates, summary.rejected),
        (500, 0, 0)
    );
    let revokes: Vec<pb::Event> = (1..=250u32)
        .map(|s| revoke(&format!("r{s}"), s * 2, 4))
        .collect();
    ingest(&mut c, revokes).await;

    let mut stream = c
        .scan_revoked(pb::ScanRevokedRequest {
            issuer: pb::Issuer::Auth as i32,
            partition: None,
            chunk_size: 100,
        })
        .await
        .unwrap()
        .into_inner();
    let mut sizes = Vec::new();
    let mut total = 0;
    while let Some(chunk) = stream.message().await.unwrap() {
        sizes.push(chunk.entries.len());
        total += chunk.entries.len();
        assert!(
            chunk
                .entries
                .iter()
                .all(|e| e.reason == 4 && e.status == pb::Status::Revoked as i32)
        );
    }
    assert_eq!(total, 250);
    assert_eq!(sizes, vec![100, 100, 50]);

    // The health service reports serving.
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "shikko.v1.Registry".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    server.stop().await;
}

#[tokio::test]
async fn a_checkpoint_is_an_openable_copy_with_the_same_identity() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let server = start(&db).await;
    let mut c = client(server.addr).await;
    ingest(&mut c, vec![issue("i1", "H1", 1), issue("i2", "H2", 2)]).await;
    let made = c
        .checkpoint(pb::CheckpointRequest {
            name: "nightly-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(made.last_seq, 2);
    assert_eq!(
        std::path::Path::new(&made.path),
        dir.path().join("backups").join("nightly-1")
    );
    // The same name twice, and names that could escape the backups folder: refused.
    for name in ["nightly-1", "../db", ".hidden", "a/b", &"x".repeat(65)] {
        let e = c
            .checkpoint(pb::CheckpointRequest { name: name.into() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{name}");
    }
    // Unnamed: the time.
    let timed = c
        .checkpoint(pb::CheckpointRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(timed.path.ends_with('Z'), "{}", timed.path);
    // Later events do not reach the copy; the copy opens as a store of its own.
    ingest(&mut c, vec![issue("i3", "H3", 3)]).await;
    server.stop().await;
    let copy = Store::open(std::path::Path::new(&made.path)).unwrap();
    assert_eq!(copy.last_seq(), 2);
    assert_eq!(copy.store_id().unwrap(), made.store_id);
    assert!(copy.event(2).unwrap().is_some() && copy.event(3).unwrap().is_none());
}
