//! Following the registry with shikko-follow, through both sources: the gRPC
//! `Follow` stream (a real server on 127.0.0.1:0) and the in-process
//! `LocalFeed`; real RocksDB stores in temp dirs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use shikko_core::{CertKind, HolderId, Serial};
use shikko_follow::{
    Binding, FeedSource, FeedState, Follower, FollowerMetrics, GrpcSource, Readiness, StatusSink,
};
use shikko_registry::{LocalFeed, Registry};
use shikko_store::{IngestMode, ReplicaStore};
use tokio::sync::oneshot;

/// A status follower over any source, started on an empty registry (its
/// snapshot is empty): every record arrives in order, each municipality
/// once, and it becomes current.
async fn follows_status<S: FeedSource>(source: S, registry: &Arc<Registry>) {
    let sink = Arc::new(Kept::default());
    let readiness = Readiness::new();
    let metrics_registry = prometheus::Registry::new();
    let follower = Follower::new(
        source,
        Binding::in_memory(),
        readiness.clone(),
        FollowerMetrics::new(&metrics_registry, "test").unwrap(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(follower.run_status(sink.clone(), async move {
        let _ = stopped.await;
    }));
    tokio::time::timeout(Duration::from_secs(10), readiness.wait_current())
        .await
        .expect("current within 10 s");
    registry
        .ingest(
            vec![signing_issue(1, 131_016), signing_issue(2, 131_016)],
            IngestMode::PerEvent,
        )
        .await
        .unwrap();
    wait_for("the first records", || sink.position() == 2).await;
    assert_eq!(sink.position(), 2);
    assert!(sink.loaded.lock().unwrap().is_empty(), "an empty snapshot");

    registry
        .ingest(
            vec![signing_issue(3, 272_001), revoke(1)],
            IngestMode::PerEvent,
        )
        .await
        .unwrap();
    wait_for("the new records", || sink.position() == 4).await;
    let seqs: Vec<u64> = sink.records.lock().unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    let mut codes: Vec<u32> = sink
        .municipalities
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.code.0)
        .collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(
        codes,
        vec![131_016, 272_001],
        "every municipality reached the follower"
    );
    let named: Vec<u32> = sink
        .records
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.municipalities.iter().map(|m| m.code.0))
        .collect();
    assert_eq!(
        named,
        vec![131_016, 272_001],
        "records name each once, when new"
    );
    assert!(readiness.is_current());
    assert_eq!(
        metric(&metrics_registry, "shikko_feed_applied_seq", "test"),
        4
    );
    assert_eq!(
        metric(&metrics_registry, "shikko_feed_lag_events", "test"),
        0
    );
    assert_eq!(
        metric(&metrics_registry, "shikko_feed_connected", "test"),
        1
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the follower stops on shutdown")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_follower_follows_the_registry_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    follows_status(LocalFeed::new(registry.clone()), &registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_follower_follows_the_registry_over_grpc_and_notices_its_loss() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_server, server_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(shikko_registry::serve(
        registry.clone(),
        listener,
        async move {
            let _ = server_stopped.await;
        },
    ));
    follows_status(GrpcSource::new(format!("http://{addr}")), &registry).await;

    // A follower that loses the registry says so, and since when.
    let readiness = Readiness::new();
    let metrics_registry = prometheus::Registry::new();
    let follower = Follower::new(
        GrpcSource::new(format!("http://{addr}")),
        Binding::in_memory(),
        readiness.clone(),
        FollowerMetrics::new(&metrics_registry, "ocsp").unwrap(),
    );
    let sink = Arc::new(Kept::default());
    tokio::spawn(follower.run_status(sink, std::future::pending()));
    tokio::time::timeout(Duration::from_secs(10), readiness.wait_current())
        .await
        .unwrap();
    stop_server.send(()).unwrap();
    server.await.unwrap().unwrap();
    wait_for("the loss", || readiness.lost_since().is_some()).await;
    assert!(matches!(readiness.state(), FeedState::Lost { .. }));
    assert_eq!(
        metric(&metrics_registry, "shikko_feed_connected", "ocsp"),
        0
    );
    assert_eq!(
        metric(&metrics_registry, "shikko_feed_lag_events", "ocsp"),
        -1
    );
    assert!(
        metric(
            &metrics_registry,
            "shikko_feed_stale_since_timestamp_seconds",
            "ocsp"
        ) > 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_bound_to_another_history_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    registry
        .ingest(vec![signing_issue(1, 131_016)], IngestMode::PerEvent)
        .await
        .unwrap();
    let readiness = Readiness::new();
    let sink = Arc::new(Kept::default());
    let follower = Follower::new(
        LocalFeed::new(registry.clone()),
        Binding::persistent(Some("another-history".into()), |_| Ok(())),
        readiness.clone(),
        FollowerMetrics::new(&prometheus::Registry::new(), "crl").unwrap(),
    );
    let task = tokio::spawn(follower.run_status(sink.clone(), std::future::pending()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.position(), 0, "nothing of another history applied");
    assert_eq!(readiness.state(), FeedState::CatchingUp);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_applies_the_registrys_writes_and_holds_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir.path().join("registry"));
    let events = vec![
        signing_issue(1, 131_016),
        revoke(1),
        signing_issue(2, 131_016),
    ];
    let readiness = Readiness::new();
    let replica = Arc::new(StoreReplica(
        ReplicaStore::open(&dir.path().join("replica")).unwrap(),
    ));
    let follower = Follower::new(
        LocalFeed::new(registry.clone()),
        Binding::in_memory(),
        readiness.clone(),
        FollowerMetrics::new(&prometheus::Registry::new(), "info").unwrap(),
    );
    tokio::spawn(follower.run_replica(replica.clone(), std::future::pending()));
    tokio::time::timeout(Duration::from_secs(10), readiness.wait_current())
        .await
        .unwrap();
    registry
        .ingest(events.clone(), IngestMode::PerEvent)
        .await
        .unwrap();
    wait_for("the replica", || replica.0.last_seq() == 3).await;
    let (theirs, ours) = (registry.store(), &replica.0);
    assert_eq!(ours.last_seq(), 3);
    assert_eq!(
        ours.changes_since(1, 100).unwrap(),
        theirs.changes_since(1, 100).unwrap()
    );
    for n in [1u32, 2] {
        let holder = HolderId::new(format!("H{n:08}")).unwrap();
        assert_eq!(
            ours.holder(&holder).unwrap(),
            theirs.holder(&holder).unwrap()
        );
        assert!(ours.holder(&holder).unwrap().is_some());
        let serial = Serial::from_u128(u128::from(n) + 1).unwrap();
        assert_eq!(
            ours.cert(CertKind::CardSigning, &serial).unwrap(),
            theirs.cert(CertKind::CardSigning, &serial).unwrap()
        );
    }
    assert_eq!(
        ours.municipalities().unwrap(),
        theirs.municipalities().unwrap()
    );
    // The replica holds no events: it never ran the rules.
    assert!(ours.event(1).unwrap().is_none());
}
