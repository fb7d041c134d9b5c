//! The store against a real RocksDB in a temp dir, checked against the
//! in-memory reference model of shikko-core.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use shikko_core::*;
use shikko_store::{
    IngestMode, MirrorStore, Outcome, RegistryStore, ReplicaStore, Store, StoreKind,
};

fn holder(i: u32) -> HolderId {
    HolderId::new(format!("H{i}")).unwrap()
}

fn info(v: u32) -> FourInfo {
    FourInfo {
        name: format!("氏名 {v}"),
        address: format!("東京都千代田区 {v}"),
        date_of_birth: DateOfBirth::parse("319800101").unwrap(),
        sex: Sex::Male,
    }
}

fn muni(code: u32) -> Municipality {
    Municipality {
        code: PartitionId(code),
        prefecture: "東京都".into(),
        city: format!("市{code}"),
    }
}

fn new_cert(kind: CertKind, serial: u128, part: u32) -> NewCert {
    NewCert {
        kind,
        serial: Serial::from_u128(serial).unwrap(),
        not_before: UnixTime(1_000),
        not_after: UnixTime(10_000_000),
        municipality: kind.is_signing().then(|| muni(part)),
        cert_der: None,
    }
}

fn ev(id: &str, t: i64, body: EventBody) -> Event {
    Event {
        id: EventId::new(id).unwrap(),
        time: UnixTime(t),
        body,
    }
}

fn issue(id: &str, h: u32, kind: CertKind, serial: u128) -> Event {
    ev(
        id,
        2_000,
        EventBody::Issue {
            holder: holder(h),
            cert: new_cert(kind, serial, 100_000 + h % 3),
            four_info: kind.is_signing().then(|| info(h)),
        },
    )
}

fn revoke(id: &str, kind: CertKind, serial: u128, reason: RevocationReason) -> Event {
    ev(
        id,
        3_000,
        EventBody::Revoke {
            kind,
            serial: Serial::from_u128(serial).unwrap(),
            reason,
            invalidity_date: None,
        },
    )
}

fn open() -> (tempfile::TempDir, RegistryStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RegistryStore::open(dir.path()).unwrap();
    (dir, store)
}

#[test]
fn redelivery_is_acknowledged_not_reapplied() {
    let (_d, store) = open();
    let e = issue("e1", 1, CertKind::CardAuth, 7);
    assert_eq!(
        store
            .ingest(std::slice::from_ref(&e), IngestMode::PerEvent)
            .unwrap(),
        vec![Outcome::Applied { seq: 1 }]
    );
    // Again, alone and inside a batch with a new event.
    assert_eq!(
        store
            .ingest(std::slice::from_ref(&e), IngestMode::PerEvent)
            .unwrap(),
        vec![Outcome::Duplicate { seq: 1 }]
    );
    let e2 = issue("e2", 2, CertKind::CardAuth, 8);
    assert_eq!(
        store
            .ingest(&[e2.clone(), e.clone(), e2], IngestMode::PerEvent)
            .unwrap(),
        vec![
            Outcome::Applied { seq: 2 },
            Outcome::Duplicate { seq: 1 },
            Outcome::Duplicate { seq: 2 }
        ]
    );
    assert_eq!(store.last_seq(), 2);
    // Same id, different content: refused by name.
    let forged = issue("e1", 3, CertKind::CardAuth, 9);
    let out = store.ingest(&[forged], IngestMode::PerEvent).unwrap();
    assert!(
        matches!(&out[0], Outcome::Rejected(v) if v.rule() == "event-id-reused"),
        "{out:?}"
    );
    assert!(
        store
            .cert(CertKind::CardAuth, &Serial::from_u128(9).unwrap())
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_rejected_event_leaves_the_rest_of_its_batch_alone() {
    let (_d, store) = open();
    let batch = vec![
        issue("a", 1, CertKind::CardSigning, 10),
        revoke(
            "b",
            CertKind::CardSigning,
            999,
            RevocationReason::KeyCompromise,
        ),
        issue("c", 1, CertKind::CardSigning, 10),
        revoke(
            "d",
            CertKind::CardSigning,
            10,
            RevocationReason::KeyCompromise,
        ),
    ];
    let out = store.ingest(&batch, IngestMode::PerEvent).unwrap();
    assert_eq!(out[0], Outcome::Applied { seq: 1 });
    assert!(matches!(&out[1], Outcome::Rejected(v) if v.rule() == "unknown-serial"));
    assert!(matches!(&out[2], Outcome::Rejected(v) if v.rule() == "serial-issued-once"));
    assert_eq!(out[3], Outcome::Applied { seq: 2 });
    let c = store
        .cert(CertKind::CardSigning, &Serial::from_u128(10).unwrap())
        .unwrap()
        .unwrap();
    assert!(matches!(
        c.status,
        CertStatus::Revoked {
            reason: RevocationReason::KeyCompromise,
            ..
        }
    ));
    // Sequence numbers have no gaps: rejected events take none.
    let feed = store.changes_since(1, 100).unwrap();
    assert_eq!(feed.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
}

#[test]
fn all_or_nothing_batches_write_nothing_when_one_event_breaks_a_rule() {
    let (_d, store) = open();
    let batch = vec![
        issue("a", 1, CertKind::CardAuth, 10),
        revoke(
            "b",
            CertKind::CardAuth,
            10,
            RevocationReason::CertificateHold,
        ),
    ];
    let out = store.ingest(&batch, IngestMode::AllOrNothing).unwrap();
    assert_eq!(out[0], Outcome::Aborted);
    assert!(matches!(&out[1], Outcome::Rejected(v) if v.rule() == "reason-not-allowed"));
    assert_eq!(store.last_seq(), 0);
    // A repeated id inside an aborted batch is not acknowledged as a duplicate of nothing.
    let a = issue("a", 1, CertKind::CardAuth, 10);
    let bad = revoke("b", CertKind::CardAuth, 99, RevocationReason::Unspecified);
    let out = store
        .ingest(&[a.clone(), a, bad], IngestMode::AllOrNothing)
        .unwrap();
    assert_eq!(out[0], Outcome::Aborted);
    assert_eq!(out[1], Outcome::Aborted);
    assert!(matches!(&out[2], Outcome::Rejected(_)));
    assert_eq!(store.last_seq(), 0);
    assert!(
        store
            .cert(CertKind::CardAuth, &Serial::from_u128(10).unwrap())
            .unwrap()
            .is_none()
    );
    assert!(store.holder(&holder(1)).unwrap().is_none());
}

#[test]
fn revoked_index_follows_status_and_partitions() {
    let (_d, store) = open();
    let mut batch = Vec::new();
    for h in 0..9u32 {
        batch.push(issue(
            &format!("i{h}"),
            h,
            CertKind::CardSigning,
            100 + u128::from(h),
        ));
        batch.push(issue(
            &format!("p{h}"),
            h,
            CertKind::PhoneAuth,
            200 + u128::from(h),
        ));
    }
    store.ingest(&batch, IngestMode::PerEvent).unwrap();
    let mut batch = Vec::new();
    for h in 0..9u32 {
        if h.is_multiple_of(2) {
            batch.push(ev(
                &format!("m{h}"),
                4_000,
                EventBody::FourInfoChange {
                    holder: holder(h),
                    four_info: info(h + 100),
                    new_signing: Some(new_cert(
                        CertKind::CardSigning,
                        300 + u128::from(h),
                        100_000 + h % 3,
                    )),
                },
            ));
        }
        batch.push(ev(
            &format!("s{h}"),
            4_000,
            EventBody::Suspend {
                kind: CertKind::PhoneAuth,
                serial: Serial::from_u128(200 + u128::from(h)).unwrap(),
            },
        ));
    }
    store.ingest(&batch, IngestMode::PerEvent).unwrap();
    let all: Vec<_> = store
        .revoked(CertKind::CardSigning, None)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all.len(), 5);
    // In pages of 2 (and of 1, and of more than all): the same entries, in order.
    for size in [1, 2, 5, 100] {
        let mut paged = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (page, next) = store
                .revoked_page(CertKind::CardSigning, None, after.as_deref(), size)
                .unwrap();
            assert!(page.len() <= size);
            paged.extend(page);
            match next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        assert_eq!(paged, all, "pages of {size}");
    }
    assert!(all.iter().all(|e| matches!(
        e.status,
        CertStatus::Revoked {
            reason: RevocationReason::AffiliationChanged,
            ..
        }
    )));
    // Partition 100000 holds holders 0, 3, 6 of which 0 and 6 moved.
    let part: Vec<_> = store
        .revoked(CertKind::CardSigning, Some(PartitionId(100_000)))
        .collect::<Result<_, _>>()
        .unwrap();
    let serials: Vec<_> = part.iter().map(|e| e.serial).collect();
    assert_eq!(
        serials,
        vec![
            Serial::from_u128(100).unwrap(),
            Serial::from_u128(106).unwrap()
        ]
    );
    // The chain old -> new is followed.
    let (newest, hops) = store
        .newest(CertKind::CardSigning, &Serial::from_u128(104).unwrap())
        .unwrap();
    assert_eq!((newest, hops), (Serial::from_u128(304).unwrap(), 1));
    assert_eq!(
        store.holder(&holder(4)).unwrap().unwrap().four_info,
        Some(info(104))
    );
    // Held phone-auth certificates are listed, and leave the list when released.
    assert_eq!(store.revoked(CertKind::PhoneAuth, None).count(), 9);
    store
        .ingest(
            &[ev(
                "r1",
                5_000,
                EventBody::Resume {
                    kind: CertKind::PhoneAuth,
                    serial: Serial::from_u128(201).unwrap(),
                },
            )],
            IngestMode::PerEvent,
        )
        .unwrap();
    assert_eq!(store.revoked(CertKind::PhoneAuth, None).count(), 8);
    let munis = store.municipalities().unwrap();
    assert_eq!(
        munis.iter().map(|m| m.code.0).collect::<Vec<_>>(),
        vec![100_000, 100_001, 100_002]
    );
}

#[test]
fn a_snapshot_sees_one_state_whatever_is_ingested_after_it() {
    let (_dir, store) = open();
    let mut events = Vec::new();
    for h in 0..10u32 {
        events.push(issue(
            &format!("i{h}"),
            h,
            CertKind::CardAuth,
            1_000 + u128::from(h),
        ));
    }
    for h in 0..6u32 {
        events.push(revoke(
            &format!("r{h}"),
            CertKind::CardAuth,
            1_000 + u128::from(h),
            RevocationReason::KeyCompromise,
        ));
    }
    store.ingest(&events, IngestMode::PerEvent).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.seq(), 16);

    // Later events are invisible to the snapshot.
    store
        .ingest(
            &[revoke(
                "r-late",
                CertKind::CardAuth,
                1_008,
                RevocationReason::Superseded,
            )],
            IngestMode::PerEvent,
        )
        .unwrap();
    let mut seen = Vec::new();
    let mut batches = 0;
    let total = snap
        .scan_revoked(
            CertKind::CardAuth,
            None,
            4,
            |batch| -> Result<(), shikko_store::Error> {
                batches += 1;
                assert!(batch.len() <= 4);
                for i in 0..batch.len() {
                    seen.push(batch.get(i)?.serial);
                }
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(total, 6);
    assert_eq!(batches, 2, "6 entries in batches of 4");
    let expected: Vec<Serial> = (1_000..1_006u128)
        .map(|s| Serial::from_u128(s).unwrap())
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(snap.changes(1, 1_000).unwrap().len(), 16);
    assert_eq!(snap.changes(15, 1_000).unwrap().len(), 2);

    // A fresh snapshot sees the late revocation; other issuers are not mixed in.
    let fresh = store.snapshot().unwrap();
    assert_eq!(fresh.seq(), 17);
    let n = fresh
        .scan_revoked(CertKind::CardAuth, None, 100, |_| {
            Ok::<_, shikko_store::Error>(())
        })
        .unwrap();
    assert_eq!(n, 7);
    let other = fresh
        .scan_revoked(CertKind::CardSigning, None, 100, |_| {
            Ok::<_, shikko_store::Error>(())
        })
        .unwrap();
    assert_eq!(other, 0);
}

fn revoked_of(store: &Store) -> Vec<(CertKind, Serial, CertStatus)> {
    let mut out = Vec::new();
    for kind in CertKind::ALL {
        for e in store.revoked(kind, None) {
            let e = e.unwrap();
            out.push((kind, e.serial, e.status));
        }
    }
    out
}

#[test]
fn a_mirror_fed_from_the_change_feed_has_the_registrys_revoked_index() {
    let (_a, registry) = open();
    let mirror_dir = tempfile::tempdir().unwrap();
    let mirror = MirrorStore::open(mirror_dir.path()).unwrap();
    let mut events = Vec::new();
    for h in 0..12u32 {
        events.push(issue(
            &format!("i{h}"),
            h,
            CertKind::CardAuth,
            500 + u128::from(h),
        ));
        events.push(issue(
            &format!("p{h}"),
            h,
            CertKind::PhoneAuth,
            700 + u128::from(h),
        ));
    }
    for h in 0..5u32 {
        events.push(revoke(
            &format!("r{h}"),
            CertKind::CardAuth,
            500 + u128::from(h),
            RevocationReason::KeyCompromise,
        ));
        events.push(ev(
            &format!("s{h}"),
            3_500,
            EventBody::Suspend {
                kind: CertKind::PhoneAuth,
                serial: Serial::from_u128(700 + u128::from(h)).unwrap(),
            },
        ));
    }
    events.push(ev(
        "resume",
        3_600,
        EventBody::Resume {
            kind: CertKind::PhoneAuth,
            serial: Serial::from_u128(701).unwrap(),
        },
    ));
    registry.ingest(&events, IngestMode::PerEvent).unwrap();

    // Followed in two pieces, as a follower would after a reconnect.
    let all = registry.changes_since(1, 10_000).unwrap();
    assert_eq!(mirror.apply_changes(&all[..7]).unwrap(), 7);
    let err = mirror.apply_changes(&all[3..]).unwrap_err();
    assert!(
        matches!(err, shikko_store::Error::Gap { applied: 7, got: 4 }),
        "{err}"
    );
    assert!(err.to_string().contains("resume from 8"), "{err}");
    assert_eq!(mirror.last_seq(), 7, "a refused batch changes nothing");
    assert_eq!(
        mirror.apply_changes(&all[7..]).unwrap(),
        registry.last_seq()
    );
    assert_eq!(revoked_of(&mirror), revoked_of(&registry));
    assert_eq!(mirror.changes_since(1, 10_000).unwrap(), all);
    // The records carry the municipalities they made known, once each.
    assert_eq!(
        mirror.municipalities().unwrap(),
        registry.municipalities().unwrap()
    );
    let named: Vec<u32> = all
        .iter()
        .flat_map(|r| r.municipalities.iter().map(|m| m.code.0))
        .collect();
    let mut unique = named.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        named.len(),
        unique.len(),
        "a municipality is named by one record only"
    );
    assert_eq!(unique.len(), registry.municipalities().unwrap().len());
    let snap = mirror.snapshot().unwrap();
    assert_eq!(snap.seq(), registry.last_seq());

    // A mirror is bound to the history it follows, and to no other.
    let id = registry.store_id().unwrap();
    assert_eq!(id.len(), 32);
    assert_ne!(id, mirror.store_id().unwrap());
    assert_eq!(mirror.mirror_of().unwrap(), None);
    mirror.bind(&id).unwrap();
    mirror.bind(&id).unwrap();
    assert_eq!(mirror.mirror_of().unwrap(), Some(id.clone()));
    let err = mirror.bind(&"0".repeat(32)).unwrap_err();
    assert!(matches!(err, shikko_store::Error::Foreign { .. }), "{err}");
    assert_eq!(mirror.mirror_of().unwrap(), Some(id.clone()));

    mirror.put_municipalities(&[muni(131_016)]).unwrap();
    assert!(mirror.municipalities().unwrap().contains(&muni(131_016)));
}

#[test]
fn state_and_feed_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RegistryStore::open(dir.path()).unwrap();
        store
            .ingest(
                &[
                    issue("a", 1, CertKind::CardAuth, 5),
                    issue("b", 2, CertKind::CardAuth, 6),
                ],
                IngestMode::PerEvent,
            )
            .unwrap();
    }
    let store = RegistryStore::open(dir.path()).unwrap();
    assert_eq!(store.last_seq(), 2);
    let out = store
        .ingest(
            &[
                issue("c", 3, CertKind::CardAuth, 7),
                issue("a", 1, CertKind::CardAuth, 5),
            ],
            IngestMode::PerEvent,
        )
        .unwrap();
    assert_eq!(
        out,
        vec![Outcome::Applied { seq: 3 }, Outcome::Duplicate { seq: 1 }]
    );
    let feed = store.changes_since(2, 10).unwrap();
    assert_eq!(feed.len(), 2);
    assert_eq!(feed[0].event_id.as_str(), "b");
    assert_eq!(feed[1].changes[0].serial, Serial::from_u128(7).unwrap());
    assert_eq!(store.event(1).unwrap().unwrap().id.as_str(), "a");
    // A checkpoint opens as a store of its own.
    let cp = tempfile::tempdir().unwrap();
    let cp_path = cp.path().join("cp");
    store.checkpoint(&cp_path).unwrap();
    drop(store);
    assert_eq!(Store::open(&cp_path).unwrap().last_seq(), 3);
}

fn body(h: u32, op: u8, serial: u128) -> EventBody {
    let kind = CertKind::ALL[usize::from(op % 4)];
    match op / 4 {
        0 | 1 => EventBody::Issue {
            holder: holder(h),
            cert: new_cert(kind, serial, 100_000),
            four_info: kind.is_signing().then(|| info(h)),
        },
        2 => EventBody::Revoke {
            kind,
            serial: Serial::from_u128(serial).unwrap(),
            reason: RevocationReason::Superseded,
            invalidity_date: None,
        },
        3 => EventBody::Suspend {
            kind,
            serial: Serial::from_u128(serial).unwrap(),
        },
        4 => EventBody::Resume {
            kind,
            serial: Serial::from_u128(serial).unwrap(),
        },
        5 => EventBody::FourInfoChange {
            holder: holder(h),
            four_info: info(h + 7),
            new_signing: op
                .is_multiple_of(2)
                .then(|| new_cert(CertKind::CardSigning, serial, 100_001)),
        },
        6 => EventBody::Death { holder: holder(h) },
        _ => EventBody::CardLoss { holder: holder(h) },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random events in random batches: the store ends in the same state as the
    /// reference model, and its revoked index is exactly the listed certificates.
    #[test]
    fn store_matches_the_reference_model(
        ops in prop::collection::vec((0..4u32, 0..32u8, 1..16u128), 1..80),
        batch_size in 1..10usize,
    ) {
        let (_d, store) = open();
        let mut model = MemoryState::default();
        let events: Vec<Event> = ops
            .iter()
            .enumerate()
            .map(|(i, (h, op, s))| ev(&format!("e{i}"), 2_000 + i as i64, body(*h, *op, *s)))
            .collect();
        for chunk in events.chunks(batch_size) {
            let out = store.ingest(chunk, IngestMode::PerEvent).unwrap();
            for (e, o) in chunk.iter().zip(out) {
                let m = model.ingest(e);
                prop_assert_eq!(m.is_ok(), matches!(o, Outcome::Applied { .. }), "{:?} vs {:?}", m, o);
            }
        }
        for ((kind, serial), c) in &model.certs {
            let got = store.cert(*kind, serial).unwrap();
            prop_assert_eq!(got.as_ref(), Some(c));
        }
        for (id, h) in &model.holders {
            let got = store.holder(id).unwrap();
            prop_assert_eq!(got.as_ref(), Some(h));
        }
        for kind in CertKind::ALL {
            let listed: Vec<Serial> = store.revoked(kind, None).map(|e| e.unwrap().serial).collect();
            let mut expect: Vec<Serial> = model.certs.values().filter(|c| c.kind == kind && c.status.is_listed()).map(|c| c.serial).collect();
            expect.sort();
            let mut listed_sorted = listed.clone();
            listed_sorted.sort();
            prop_assert_eq!(listed_sorted, expect);
        }
    }
}

#[test]
fn a_replica_applying_the_registrys_writes_holds_its_state_without_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let registry = RegistryStore::open(&dir.path().join("registry")).unwrap();
    let replica = ReplicaStore::open(&dir.path().join("replica")).unwrap();
    let events = vec![
        issue("a", 1, CertKind::CardSigning, 11),
        issue("b", 2, CertKind::CardAuth, 12),
        ev(
            "r",
            3_000,
            EventBody::Revoke {
                kind: CertKind::CardSigning,
                serial: Serial::from_u128(11).unwrap(),
                reason: RevocationReason::KeyCompromise,
                invalidity_date: None,
            },
        ),
    ];
    registry.ingest(&events, IngestMode::PerEvent).unwrap();
    let records: Vec<(ChangeRecord, Vec<Effect>)> = registry
        .changes_since(1, 100)
        .unwrap()
        .into_iter()
        .map(|r| {
            let w = registry.writes(r.seq).unwrap().expect("writes kept");
            (r, w)
        })
        .collect();
    assert_eq!(records.len(), 3);

    // Out of order: refused, nothing written.
    let err = replica.apply_replicated(&records[1..]).unwrap_err();
    assert!(
        matches!(err, shikko_store::Error::Gap { applied: 0, got: 2 }),
        "{err}"
    );
    // Writes that do not make the record's status changes: refused.
    let mut forged = records[..1].to_vec();
    forged[0].1.retain(|w| !matches!(w, Effect::PutCert(_)));
    assert!(replica.apply_replicated(&forged).is_err());
    assert_eq!(replica.last_seq(), 0);

    assert_eq!(replica.apply_replicated(&records[..2]).unwrap(), 2);
    assert_eq!(replica.apply_replicated(&records[2..]).unwrap(), 3);
    for (kind, serial) in [(CertKind::CardSigning, 11), (CertKind::CardAuth, 12)] {
        let s = Serial::from_u128(serial).unwrap();
        assert_eq!(
            replica.cert(kind, &s).unwrap(),
            registry.cert(kind, &s).unwrap()
        );
    }
    for h in [1, 2] {
        assert_eq!(
            replica.holder(&holder(h)).unwrap(),
            registry.holder(&holder(h)).unwrap()
        );
    }
    assert_eq!(revoked_of(&replica), revoked_of(&registry));
    assert_eq!(
        replica.changes_since(1, 100).unwrap(),
        registry.changes_since(1, 100).unwrap()
    );
    assert!(
        replica.event(1).unwrap().is_none(),
        "a replica holds no events"
    );
}

#[test]
fn a_store_opens_only_as_what_it_was_made_for() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, mir, rep) = (
        dir.path().join("registry"),
        dir.path().join("mirror"),
        dir.path().join("replica"),
    );
    RegistryStore::open(&reg)
        .unwrap()
        .ingest(
            &[issue("a", 1, CertKind::CardAuth, 5)],
            IngestMode::PerEvent,
        )
        .unwrap();
    MirrorStore::open(&mir).unwrap();
    ReplicaStore::open(&rep).unwrap();
    let refused = |r: shikko_store::Result<()>, expected, found| match r {
        Err(shikko_store::Error::WrongKind {
            expected: e,
            found: f,
            ..
        }) => assert_eq!((e, f), (expected, found)),
        other => panic!("expected a wrong-kind refusal, got {other:?}"),
    };
    refused(
        MirrorStore::open(&reg).map(drop),
        StoreKind::Mirror,
        StoreKind::Registry,
    );
    refused(
        ReplicaStore::open(&reg).map(drop),
        StoreKind::Replica,
        StoreKind::Registry,
    );
    refused(
        RegistryStore::open(&mir).map(drop),
        StoreKind::Registry,
        StoreKind::Mirror,
    );
    refused(
        ReplicaStore::open(&mir).map(drop),
        StoreKind::Replica,
        StoreKind::Mirror,
    );
    refused(
        RegistryStore::open(&rep).map(drop),
        StoreKind::Registry,
        StoreKind::Replica,
    );
    // Reopening as what it is works, and any store opens for reading.
    assert_eq!(RegistryStore::open(&reg).unwrap().last_seq(), 1);
    assert_eq!(Store::open(&mir).unwrap().last_seq(), 0);
    let err = MirrorStore::open(&reg).unwrap_err().to_string();
    assert!(err.contains("registry store, not a mirror store"), "{err}");
}

#[test]
fn a_store_opened_only_for_reading_takes_the_kind_it_is_first_opened_as() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    Store::open(&plain).unwrap();
    MirrorStore::open(&plain).unwrap();
    assert!(matches!(
        RegistryStore::open(&plain),
        Err(shikko_store::Error::WrongKind {
            found: StoreKind::Mirror,
            ..
        })
    ));
}

#[cfg(unix)]
#[test]
fn the_store_and_its_backups_are_reachable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = RegistryStore::open(&db).unwrap();
    assert_eq!(mode(&db), 0o700, "an existing directory is tightened");
    store
        .ingest(
            &[issue("a", 1, CertKind::CardAuth, 5)],
            IngestMode::PerEvent,
        )
        .unwrap();
    let (copy, seq) = store.checkpoint_named("before-upgrade").unwrap();
    assert_eq!(seq, 1);
    assert_eq!(mode(&dir.path().join("backups")), 0o700);
    assert!(copy.starts_with(dir.path().join("backups")));
    // A data directory's store is made private too.
    let data = dir.path().join("data");
    drop(ReplicaStore::open_data_dir(&data).unwrap());
    assert_eq!(mode(&data.join("db")), 0o700);
}

/// A mirror loaded from a snapshot has the registry's revoked index and a
/// feed that starts after it; its own feed is pruned by day but never
/// from the record a delta still needs; a load cut short starts over.
#[test]
fn a_mirror_loads_a_snapshot_and_prunes_its_feed_only_below_what_deltas_need() {
    use shikko_core::UnixTime;
    const DAY: i64 = 86_400;
    let (_a, registry) = open();
    let mut events = Vec::new();
    for h in 0..8u32 {
        events.push(issue(
            &format!("i{h}"),
            h,
            CertKind::CardAuth,
            500 + u128::from(h),
        ));
    }
    for h in 0..3u32 {
        events.push(revoke(
            &format!("r{h}"),
            CertKind::CardAuth,
            500 + u128::from(h),
            RevocationReason::KeyCompromise,
        ));
    }
    registry.ingest(&events, IngestMode::PerEvent).unwrap();
    let mirror_dir = tempfile::tempdir().unwrap();
    let mirror = MirrorStore::open(mirror_dir.path()).unwrap();

    // A load cut short (a crash after the state was forgotten): position 0.
    mirror.begin_reload().unwrap();
    assert_eq!(mirror.last_seq(), 0);
    // The whole load: every listed certificate, the feed after the snapshot.
    let snap = registry.snapshot().unwrap();
    mirror.begin_reload().unwrap();
    mirror.reload(&snap.municipalities().unwrap(), &[]).unwrap();
    snap.scan_listed::<shikko_store::Error>(2, |changes| mirror.reload(&[], &changes))
        .unwrap();
    assert_eq!(mirror.end_reload(snap.seq(), false).unwrap(), 11);
    assert!(!mirror.has_issued_index().unwrap());
    assert_eq!(revoked_of(&mirror), revoked_of(&registry));
    assert_eq!(mirror.first_seq(), 12);
    assert!(mirror.changes_since(1, 100).unwrap().is_empty());

    // It follows on: four more records, on day 0.
    registry
        .ingest(
            &[
                revoke("r5", CertKind::CardAuth, 505, RevocationReason::Unspecified),
                revoke("r6", CertKind::CardAuth, 506, RevocationReason::Unspecified),
            ],
            IngestMode::PerEvent,
        )
        .unwrap();
    mirror
        .apply_changes(&registry.changes_since(12, 100).unwrap())
        .unwrap();
    let now = UnixTime::now().0;
    mirror.retain(UnixTime(now), 2 * DAY, u64::MAX).unwrap();
    // Ten days on: the first run after the gap prunes nothing...
    let p = mirror
        .retain(UnixTime(now + 10 * DAY), 2 * DAY, 13)
        .unwrap();
    assert_eq!(p.first_seq, p.from);
    // ... the next: day 0 is past two days, but a delta's base is at 12.
    let p = mirror
        .retain(UnixTime(now + 10 * DAY + 3600), 2 * DAY, 13)
        .unwrap();
    assert_eq!(p.first_seq, 13, "kept from the record the next delta needs");
    assert_eq!(revoked_of(&mirror), revoked_of(&registry));
    let p = mirror
        .retain(UnixTime(now + 10 * DAY + 7200), 2 * DAY, u64::MAX)
        .unwrap();
    assert_eq!(
        p.first_seq, 14,
        "then everything applied before day 0 ended"
    );
}
