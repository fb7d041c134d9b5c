//! Retention and snapshots (issue 14, items 1 and 2), on real RocksDB
//! stores and a real gRPC server: pruning the history keeps every answer,
//! a follower asking for pruned records is told so, event ids outlive the
//! history and then go; a replica behind the retention horizon loads a
//! snapshot and then holds and follows the same state as the registry; a
//! status-only snapshot carries no 4 information.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use prost::Message;
use shikko_core::{CertKind, HolderId, Serial, UnixTime};
use shikko_follow::{
    Binding, Follower, FollowerMetrics, GrpcSource, Readiness, SnapshotContent, StatusSink,
};
use shikko_proto::v1 as pb;
use shikko_store::{IngestMode, Outcome, ReplicaStore, Store};
use tokio::sync::oneshot;

const DAY: i64 = 86_400;
const HISTORY: i64 = 35 * DAY;
const IDS: i64 = 400 * DAY;

/// What a relying party, a CRL and a bank could learn of holders 1..=n:
/// certificates, holders, links, the revoked index, municipalities.
fn answers(store: &Store, n: u32) -> Vec<String> {
    let mut out = Vec::new();
    for i in 1..=n {
        let serial = Serial::from_u128(u128::from(i) + 1).unwrap();
        out.push(format!(
            "{:?}",
            store.cert(CertKind::CardSigning, &serial).unwrap()
        ));
        out.push(format!(
            "{:?}",
            store.successor(CertKind::CardSigning, &serial).unwrap()
        ));
        let holder = HolderId::new(format!("H{i:08}")).unwrap();
        out.push(format!("{:?}", store.holder(&holder).unwrap()));
    }
    let snap = store.snapshot().unwrap();
    for kind in CertKind::ALL {
        snap.scan_revoked::<shikko_store::Error>(kind, None, 100, |b| {
            for i in 0..b.len() {
                out.push(format!("{:?}", b.get(i).unwrap()));
            }
            Ok(())
        })
        .unwrap();
    }
    out.push(format!("{:?}", store.municipalities().unwrap()));
    out
}

/// Retention at `t`, days after the last run: the first run after a gap
/// prunes nothing (a clock that jumped must not prune by itself); the next
/// one, an hour later, does.
fn retain_after_gap(store: &shikko_store::RegistryStore, t: i64) -> shikko_store::Pruned {
    let first = store.retain(UnixTime(t), HISTORY, IDS).unwrap();
    assert_eq!(
        first.first_seq, first.from,
        "the run after a gap prunes nothing"
    );
    store.retain(UnixTime(t + 3600), HISTORY, IDS).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_every_answer_and_refuses_to_follow_from_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    let store = registry.store().clone();
    let now = UnixTime::now().0;
    // Day 0: four events.
    registry
        .ingest(
            vec![
                signing_issue(1, 131_016),
                signing_issue(2, 131_016),
                revoke(1),
                signing_issue(3, 272_001),
            ],
            IngestMode::PerEvent,
        )
        .await
        .unwrap();
    // The first pruning marks the day; nothing is older than the window.
    let p = store.retain(UnixTime(now), HISTORY, IDS).unwrap();
    assert_eq!((p.from, p.first_seq), (1, 1));
    // Later that day: two more.
    registry
        .ingest(
            vec![signing_issue(4, 131_016), revoke(2)],
            IngestMode::PerEvent,
        )
        .await
        .unwrap();
    let before = answers(&store, 4);

    // 40 days on: what was ingested before day 0's mark is past the window.
    let p = retain_after_gap(&store, now + 40 * DAY);
    assert_eq!((p.from, p.first_seq), (1, 5));
    assert_eq!(store.first_seq(), 5);
    assert_eq!(answers(&store, 4), before, "pruning changes no answer");
    assert!(store.event(4).unwrap().is_none(), "the event log is pruned");
    assert!(store.writes(4).unwrap().is_none(), "and the writes");
    assert!(store.event(5).unwrap().is_some());
    assert_eq!(
        store.changes_since(1, 10).unwrap().first().map(|r| r.seq),
        Some(5)
    );

    // A follower asking for pruned records is told where the feed starts.
    let (endpoint, _stop) = serve(&registry).await;
    let mut client = pb::registry_client::RegistryClient::connect(endpoint)
        .await
        .unwrap();
    let e = client
        .follow(pb::FollowRequest {
            from_seq: 4,
            max_batch: 10,
            with_writes: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert_eq!(
        e.metadata()
            .get(shikko_follow::FIRST_SEQ_METADATA)
            .unwrap()
            .to_str()
            .unwrap(),
        "5"
    );
    let mut stream = client
        .follow(pb::FollowRequest {
            from_seq: 5,
            max_batch: 10,
            with_writes: false,
        })
        .await
        .unwrap()
        .into_inner();
    let batch = stream.message().await.unwrap().unwrap();
    assert_eq!(batch.records.first().map(|r| r.seq), Some(5));

    // Event ids outlive the history: a re-delivery is still a duplicate...
    let out = registry
        .ingest(vec![signing_issue(1, 131_016)], IngestMode::PerEvent)
        .await
        .unwrap();
    assert_eq!(out, vec![Outcome::Duplicate { seq: 1 }]);
    // ... until they are past their own window: then the rules judge it
    // as a new event (its serial exists: refused).
    retain_after_gap(&store, now + 500 * DAY);
    let out = registry
        .ingest(vec![signing_issue(1, 131_016)], IngestMode::PerEvent)
        .await
        .unwrap();
    assert!(matches!(out[0], Outcome::Rejected(_)), "{out:?}");
    assert_eq!(answers(&store, 4), before);
    // A clock that went back prunes nothing and marks nothing.
    let first = store.first_seq();
    let p = store
        .retain(UnixTime(now + 100 * DAY), HISTORY, IDS)
        .unwrap();
    assert_eq!((p.from, p.first_seq), (first, first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_the_horizon_loads_a_snapshot_and_then_holds_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir.path().join("registry"));
    let store = registry.store().clone();
    let (endpoint, _stop) = serve(&registry).await;
    let now = UnixTime::now().0;
    let replica = Arc::new(StoreReplica(
        ReplicaStore::open(&dir.path().join("replica")).unwrap(),
    ));
    let metrics = prometheus::Registry::new();
    let feed_metrics = shikko_follow::FeedMetrics::register(&metrics).unwrap();
    let follow = |replica: Arc<StoreReplica>| {
        let readiness = Readiness::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let follower = Follower::new(
            GrpcSource::new(endpoint.clone()),
            Binding::in_memory(),
            readiness.clone(),
            feed_metrics.role("info"),
        );
        let task = tokio::spawn(follower.run_replica(replica, async move {
            let _ = stopped.await;
        }));
        (readiness, stop, task)
    };

    // The replica follows the first two events, then is away.
    let (readiness, stop, task) = follow(replica.clone());
    readiness.wait_current().await;
    registry
        .ingest(
            vec![signing_issue(1, 131_016), signing_issue(2, 131_016)],
            IngestMode::PerEvent,
        )
        .await
        .unwrap();
    wait_for("the replica", || replica.0.last_seq() == 2).await;
    stop.send(()).unwrap();
    task.await.unwrap();

    // Meanwhile: more events, and 40 days of retention prune its position away.
    registry
        .ingest(
            vec![revoke(1), signing_issue(3, 272_001)],
            IngestMode::PerEvent,
        )
        .await
        .unwrap();
    store.retain(UnixTime(now), HISTORY, IDS).unwrap();
    registry
        .ingest(
            vec![signing_issue(4, 131_016), revoke(2)],
            IngestMode::PerEvent,
        )
        .await
        .unwrap();
    retain_after_gap(&store, now + 40 * DAY);
    assert_eq!(store.first_seq(), 5);

    // Back: it loads a snapshot, then holds what the registry holds.
    let (readiness, _stop, _task) = follow(replica.clone());
    tokio::time::timeout(Duration::from_secs(10), readiness.wait_current())
        .await
        .expect("current after the snapshot");
    assert_eq!(replica.0.last_seq(), 6);
    assert_eq!(answers(&replica.0, 4), answers(&store, 4));
    assert_eq!(
        metrics
            .gather()
            .iter()
            .find(|f| f.name() == "shikko_feed_snapshots_loaded_total")
            .and_then(|f| {
                f.get_metric()
                    .iter()
                    .find(|m| m.get_label().iter().any(|l| l.value() == "compacted"))
                    .map(|m| m.get_counter().get_value() as u64)
            }),
        Some(1)
    );
    // And follows from there.
    registry
        .ingest(vec![revoke(4)], IngestMode::PerEvent)
        .await
        .unwrap();
    wait_for("the next record", || replica.0.last_seq() == 7).await;
    assert_eq!(answers(&replica.0, 4), answers(&store, 4));
}

/// Every chunk of a snapshot of `content`, encoded as on the wire; how
/// many statuses; the image it carries.
async fn snapshot_bytes(endpoint: &str, content: pb::SnapshotContent) -> (Vec<u8>, usize, Vec<u8>) {
    let mut client = pb::registry_client::RegistryClient::connect(endpoint.to_string())
        .await
        .unwrap();
    let mut stream = client
        .snapshot(pb::SnapshotRequest {
            content: content as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let (mut bytes, mut changes, mut image) = (Vec::new(), 0, Vec::new());
    while let Some(chunk) = stream.message().await.unwrap() {
        changes += chunk.changes.len();
        image.extend_from_slice(&chunk.image);
        let last = chunk.last;
        bytes.extend(chunk.encode_to_vec());
        if last {
            return (bytes, changes, image);
        }
    }
    panic!("the snapshot ended before its last chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_snapshot_carries_every_status_and_no_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    registry
        .ingest(
            (1..=30)
                .map(|n| signing_issue(n, 131_016))
                .chain([revoke(3), revoke(7)])
                .collect(),
            IngestMode::PerEvent,
        )
        .await
        .unwrap();
    let (endpoint, _stop) = serve(&registry).await;
    let personal: Vec<String> = (1..=30)
        .flat_map(|n| [format!("氏名 {n}"), format!("東京都千代田区 {n}")])
        .collect();
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());

    let (status, n, _) = snapshot_bytes(&endpoint, pb::SnapshotContent::Status).await;
    assert_eq!(n, 30, "every certificate");
    let (listed, m, _) = snapshot_bytes(&endpoint, pb::SnapshotContent::Listed).await;
    assert_eq!(m, 2, "the revoked ones");
    let (wire, _, image) = snapshot_bytes(&endpoint, pb::SnapshotContent::StatusImage).await;
    for p in &personal {
        assert!(
            !contains(&status, p) && !contains(&listed, p) && !contains(&wire, p),
            "{p} in a status snapshot"
        );
    }
    // The image is an index that answers as the registry does.
    let index = shikko_status_index::StatusIndex::new();
    assert_eq!(index.read_image(&image), Ok(32));
    for n in 1..=31u32 {
        let serial = Serial::from_u128(u128::from(n) + 1).unwrap();
        let ours = index.get(CertKind::CardSigning, &serial);
        let theirs = registry
            .store()
            .cert(CertKind::CardSigning, &serial)
            .unwrap();
        assert_eq!(ours.is_some(), theirs.is_some(), "{serial}");
        if let Some(c) = theirs {
            assert_eq!(
                matches!(ours, Some(shikko_status_index::IndexedStatus::Good)),
                c.status == shikko_core::CertStatus::Good,
                "{serial}"
            );
        }
    }
    // The replica's snapshot does carry it (this test can see it).
    let (replica, _, _) = snapshot_bytes(&endpoint, pb::SnapshotContent::Replica).await;
    assert!(contains(&replica, &personal[0]));

    // A status follower loads it into what it answers from.
    let sink = Arc::new(Kept::default());
    let readiness = Readiness::new();
    let follower = Follower::new(
        GrpcSource::new(endpoint.clone()),
        Binding::in_memory(),
        readiness.clone(),
        FollowerMetrics::new(&prometheus::Registry::new(), "ocsp").unwrap(),
    );
    tokio::spawn(follower.run_status(sink.clone(), std::future::pending()));
    tokio::time::timeout(Duration::from_secs(10), readiness.wait_current())
        .await
        .unwrap();
    assert_eq!(sink.position(), 32);
    let loaded = sink.loaded.lock().unwrap().clone();
    assert_eq!(loaded.len(), 30);
    for c in &loaded {
        assert_eq!(
            Some(c.status),
            registry
                .store()
                .cert(c.kind, &c.serial)
                .unwrap()
                .map(|r| r.status)
        );
    }
    assert!(sink.records.lock().unwrap().is_empty(), "no replay");
    assert_eq!(sink.snapshot_content(), SnapshotContent::Status);
}

/// A status sink that notes whether its role could answer (was current)
/// when a snapshot's load began.
struct Watching {
    kept: Kept,
    readiness: Arc<Readiness>,
    current_at_begin: std::sync::Mutex<Vec<bool>>,
}

impl StatusSink for Watching {
    fn position(&self) -> u64 {
        self.kept.position()
    }
    fn apply(&self, batch: shikko_follow::StatusBatch) -> Result<u64, shikko_follow::FollowError> {
        self.kept.apply(batch)
    }
    fn snapshot_content(&self) -> SnapshotContent {
        SnapshotContent::Status
    }
    fn begin_snapshot(&self) -> Result<(), shikko_follow::FollowError> {
        self.current_at_begin
            .lock()
            .unwrap()
            .push(self.readiness.is_current());
        self.kept.begin_snapshot()
    }
    fn load_snapshot(
        &self,
        municipalities: Vec<shikko_core::Municipality>,
        changes: Vec<shikko_core::StatusChange>,
    ) -> Result<(), shikko_follow::FollowError> {
        self.kept.load_snapshot(municipalities, changes)
    }
    fn end_snapshot(&self, seq: u64) -> Result<u64, shikko_follow::FollowError> {
        self.kept.end_snapshot(seq)
    }
}

/// A role that was current and comes back behind the horizon is not
/// current while it loads (it must not answer from a state being replaced),
/// and is current again after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_reloading_a_snapshot_is_not_current_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    let store = registry.store().clone();
    let (endpoint, _stop) = serve(&registry).await;
    let now = UnixTime::now().0;
    let readiness = Readiness::new();
    let sink = Arc::new(Watching {
        kept: Kept::default(),
        readiness: readiness.clone(),
        current_at_begin: std::sync::Mutex::new(Vec::new()),
    });
    let run = |sink: Arc<Watching>| {
        let (stop, stopped) = oneshot::channel::<()>();
        let follower = Follower::new(
            GrpcSource::new(endpoint.clone()),
            Binding::in_memory(),
            readiness.clone(),
            FollowerMetrics::new(&prometheus::Registry::new(), "ocsp").unwrap(),
        );
        let task = tokio::spawn(follower.run_status(sink, async move {
            let _ = stopped.await;
        }));
        (stop, task)
    };
    let (stop, task) = run(sink.clone());
    readiness.wait_current().await;
    registry
        .ingest(vec![signing_issue(1, 131_016)], IngestMode::PerEvent)
        .await
        .unwrap();
    wait_for("the first record", || sink.position() == 1).await;
    assert!(readiness.is_current());
    stop.send(()).unwrap();
    task.await.unwrap();

    registry
        .ingest(vec![signing_issue(2, 131_016)], IngestMode::PerEvent)
        .await
        .unwrap();
    store.retain(UnixTime(now), HISTORY, IDS).unwrap();
    registry
        .ingest(vec![revoke(1)], IngestMode::PerEvent)
        .await
        .unwrap();
    retain_after_gap(&store, now + 40 * DAY);
    assert_eq!(store.first_seq(), 3, "the role's next record (2) is pruned");
    let (_stop, _task) = run(sink.clone());
    wait_for("the reload", || sink.position() == 3).await;
    tokio::time::timeout(Duration::from_secs(10), readiness.wait_current())
        .await
        .unwrap();
    // Loaded twice: empty at the start (nothing to answer yet), then behind the horizon.
    assert_eq!(*sink.current_at_begin.lock().unwrap(), vec![false, false]);
}
