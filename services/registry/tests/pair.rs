//! A synchronous pair of registries (issue 14, item 4) on real RocksDB
//! stores and real gRPC servers: the primary acknowledges only what the
//! standby holds and shows followers nothing more; a standby seeds itself,
//! refuses ingest and followers, is promoted only when its primary is
//! silent (or by force), and then serves the same answers; a follower that
//! lists both endpoints goes on against the promoted one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use shikko_core::{CertKind, HolderId, Serial};
use shikko_follow::{
    Binding, Content, FeedSource, Follower, FollowerMetrics, GrpcSource, Readiness, StatusSink,
};
use shikko_registry::Registry;
use shikko_registry::pair::PairSection;
use shikko_store::{IngestMode, Outcome, RegistryStore};

fn synchronous(dir: &std::path::Path) -> Arc<Registry> {
    let store = RegistryStore::open(dir).unwrap();
    let pair = PairSection {
        require_standby: true,
        standby_timeout_secs: 1,
        ..PairSection::default()
    };
    Arc::new(Registry::in_pair(store, &prometheus::Registry::new(), &pair).unwrap())
}

fn standby(dir: &std::path::Path) -> Arc<Registry> {
    let store = RegistryStore::open(dir).unwrap();
    store.make_standby().unwrap();
    Arc::new(
        Registry::in_pair(store, &prometheus::Registry::new(), &PairSection::default()).unwrap(),
    )
}

fn seq_of(o: &Outcome) -> u64 {
    match o {
        Outcome::Applied { seq } | Outcome::Duplicate { seq } => *seq,
        other => panic!("not stored: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_pair_acknowledges_only_what_the_standby_holds_and_fails_over() {
    let dir = tempfile::tempdir().unwrap();
    let primary = synchronous(&dir.path().join("primary"));
    let (p_addr, p_stop) = serve(&primary).await;

    // No standby yet: stored here, not acknowledged, not shown.
    let err = primary
        .ingest(vec![signing_issue(1, 13101)], IngestMode::PerEvent)
        .await
        .unwrap_err();
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::Unavailable);
    assert_eq!(primary.store().last_seq(), 1);
    let mut feed = GrpcSource::new(p_addr.clone())
        .open(1, Content::Status)
        .await
        .unwrap();
    let first = feed.next().await.unwrap().unwrap();
    assert!(first.records.is_empty(), "{:?}", first.records);
    assert_eq!(first.head_seq, 0, "followers see nothing unconfirmed");

    // A standby links: it is seeded (it was empty), confirms, and the
    // authority's retry is acknowledged as a duplicate of seq 1.
    let standby = standby(&dir.path().join("standby"));
    let (s_addr, _s_stop) = serve(&standby).await;
    let (stop_link, link_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        standby
            .clone()
            .follow_primary(p_addr.clone(), None, async move {
                let _ = link_stopped.await;
            }),
    );
    let mut retried = None;
    for _ in 0..20 {
        match primary
            .ingest(vec![signing_issue(1, 13101)], IngestMode::PerEvent)
            .await
        {
            Ok(out) => {
                retried = Some(out);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(retried.unwrap(), vec![Outcome::Duplicate { seq: 1 }]);
    let shown = feed.next().await.unwrap().unwrap();
    assert_eq!(shown.records.len(), 1, "confirmed: now shown");

    // Every acknowledged event is on the standby's disk when the answer comes.
    for n in 2..=60 {
        let mut events = vec![signing_issue(n, 13101 + n % 3)];
        if n % 5 == 0 {
            events.push(revoke(n - 1));
        }
        let out = primary.ingest(events, IngestMode::PerEvent).await.unwrap();
        let seq = out.iter().map(seq_of).max().unwrap();
        assert!(
            standby.store().last_seq() >= seq,
            "acknowledged {seq}, the standby holds {}",
            standby.store().last_seq()
        );
    }

    // The standby takes no events and serves no feed.
    let refused = standby
        .ingest(vec![signing_issue(99, 13101)], IngestMode::PerEvent)
        .await
        .unwrap_err();
    assert_eq!(
        tonic::Status::from(refused).code(),
        tonic::Code::Unavailable
    );
    assert!(
        GrpcSource::new(s_addr.clone())
            .open(1, Content::Status)
            .await
            .is_err()
    );

    // A follower that knows both endpoints follows whichever serves the feed.
    let kept = Arc::new(Kept::default());
    let readiness = Readiness::new();
    let follower = Follower::new(
        GrpcSource::new(format!("{s_addr},{p_addr}")),
        Binding::in_memory(),
        readiness.clone(),
        FollowerMetrics::new(&prometheus::Registry::new(), "ocsp").unwrap(),
    );
    let (stop_follower, follower_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(follower.run_status(kept.clone(), async move {
        let _ = follower_stopped.await;
    }));
    let last = primary.store().last_seq();
    wait_for("the follower to reach the primary's head", || {
        kept.position() == last
    })
    .await;

    // Promotion is refused while the primary is alive.
    let alive = standby.promote(false, false).await.unwrap_err();
    assert!(alive.to_string().contains("alive"), "{alive}");

    // The primary goes away; promoted (by force: it was heard a moment ago).
    p_stop.send(()).unwrap();
    drop(feed);
    let (epoch, promoted_last) = standby.promote(true, true).await.unwrap();
    assert_eq!(epoch, 2);
    assert_eq!(promoted_last, last, "every acknowledged record is there");
    let _ = stop_link.send(());
    for n in 1..=60u32 {
        let serial = Serial::from_u128(u128::from(n) + 1).unwrap();
        assert_eq!(
            standby
                .store()
                .cert(CertKind::CardSigning, &serial)
                .unwrap(),
            primary
                .store()
                .cert(CertKind::CardSigning, &serial)
                .unwrap()
        );
        let holder = HolderId::new(format!("H{n:08}")).unwrap();
        assert_eq!(
            standby.store().holder(&holder).unwrap(),
            primary.store().holder(&holder).unwrap()
        );
    }

    // The new primary takes events (alone, as promoted) and the follower
    // goes on against it from where it was.
    let out = standby
        .ingest(vec![revoke(60)], IngestMode::PerEvent)
        .await
        .unwrap();
    assert_eq!(out, vec![Outcome::Applied { seq: last + 1 }]);
    for _ in 0..300 {
        if kept.position() == last + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        kept.position(),
        last + 1,
        "the follower follows the promoted standby"
    );
    // It started empty: a snapshot (of what the standby held), then records.
    let base = kept
        .snapshot_seq
        .lock()
        .unwrap()
        .expect("loaded a snapshot");
    let records = kept.records.lock().unwrap();
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (base + 1..=last + 1).collect::<Vec<_>>(),
        "no record missed or repeated"
    );
    drop(records);
    let _ = stop_follower.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_whose_standby_is_lost_acknowledges_alone_until_a_new_one_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = prometheus::Registry::new();
    let pair = PairSection {
        require_standby: true,
        standby_timeout_secs: 1,
        ..PairSection::default()
    };
    let primary = Arc::new(
        Registry::in_pair(
            RegistryStore::open(&dir.path().join("primary")).unwrap(),
            &metrics,
            &pair,
        )
        .unwrap(),
    );
    let (p_addr, _p_stop) = serve(&primary).await;
    let synchronous = || {
        metrics
            .gather()
            .iter()
            .find(|f| f.name() == "shikko_registry_synchronous")
            .map(|f| f.get_metric()[0].get_gauge().get_value() as i64)
            .unwrap()
    };

    // No standby: revocations are not acknowledged.
    assert!(
        primary
            .ingest(vec![signing_issue(1, 13101)], IngestMode::PerEvent)
            .await
            .is_err()
    );
    // The administrator gives up the second disk for now: they are.
    assert_eq!(primary.acknowledge_alone().await.unwrap(), (1, 1));
    assert_eq!(synchronous(), 0);
    let out = primary
        .ingest(
            vec![signing_issue(2, 13101), revoke(1)],
            IngestMode::PerEvent,
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![Outcome::Applied { seq: 2 }, Outcome::Applied { seq: 3 }]
    );
    // And followers see them.
    let mut feed = GrpcSource::new(p_addr.clone())
        .open(1, Content::Status)
        .await
        .unwrap();
    assert_eq!(feed.next().await.unwrap().unwrap().records.len(), 3);

    // A new standby is seeded and catches up: the primary waits for it again.
    let standby = standby(&dir.path().join("standby"));
    tokio::spawn(
        standby
            .clone()
            .follow_primary(p_addr, None, std::future::pending()),
    );
    wait_for("the primary to wait for its new standby again", || {
        synchronous() == 1
    })
    .await;
    let out = primary
        .ingest(vec![revoke(2)], IngestMode::PerEvent)
        .await
        .unwrap();
    let seq = seq_of(&out[0]);
    assert!(
        standby.store().last_seq() >= seq,
        "confirmed before the answer"
    );
    // A standby is never told to acknowledge alone.
    assert!(standby.acknowledge_alone().await.is_err());
}
