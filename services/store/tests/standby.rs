//! A standby's store (issue 14) against a real RocksDB: records shipped as
//! the primary stored them make a byte-identical copy; a seed from one
//! snapshot does too; the continuation rules and the refusals. And an
//! imported state (no history) reads as an ingested one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shikko_core::*;
use shikko_store::{
    Continuation, Error, IngestMode, Outcome, RegistryStore, Role, SEED_FAMILIES, Store,
};

fn holder(i: u32) -> HolderId {
    HolderId::new(format!("H{i}")).unwrap()
}

fn four(v: u32) -> FourInfo {
    FourInfo {
        name: format!("氏名 {v}"),
        address: format!("東京都千代田区 {v}"),
        date_of_birth: DateOfBirth::parse("319800101").unwrap(),
        sex: Sex::Female,
    }
}

fn event(id: usize, body: EventBody) -> Event {
    Event {
        id: EventId::new(format!("e{id}")).unwrap(),
        time: UnixTime(2_000 + id as i64),
        body,
    }
}

/// A history of issues (with 4 information), moves, revocations, holds
/// and releases over `n` holders, in the order an authority sends them.
fn history(n: u32) -> Vec<Event> {
    let mut out = Vec::new();
    let serial = |h: u32| Serial::from_u128(u128::from(h) + 100).unwrap();
    for h in 0..n {
        out.push(event(
            out.len(),
            EventBody::Issue {
                holder: holder(h),
                cert: NewCert {
                    kind: CertKind::CardSigning,
                    serial: serial(h),
                    not_before: UnixTime(1_000),
                    not_after: UnixTime(4_000_000_000),
                    municipality: Some(Municipality {
                        code: PartitionId(1_000 + h % 7),
                        prefecture: "東京都".into(),
                        city: format!("市{}", h % 7),
                    }),
                    cert_der: None,
                },
                four_info: Some(four(h)),
            },
        ));
    }
    for h in 0..n {
        let body = match h % 4 {
            0 => EventBody::Revoke {
                kind: CertKind::CardSigning,
                serial: serial(h),
                reason: RevocationReason::KeyCompromise,
                invalidity_date: None,
            },
            1 => EventBody::Suspend {
                kind: CertKind::CardSigning,
                serial: serial(h),
            },
            2 => EventBody::FourInfoChange {
                holder: holder(h),
                four_info: four(h + 1_000),
                new_signing: None,
            },
            _ => continue,
        };
        out.push(event(out.len(), body));
    }
    for h in (0..n).filter(|h| h % 4 == 1) {
        out.push(event(
            out.len(),
            EventBody::Resume {
                kind: CertKind::CardSigning,
                serial: serial(h),
            },
        ));
    }
    out
}

/// Every key and value of the families a standby copies.
fn contents(store: &Store) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let snap = store.snapshot().unwrap();
    let mut out = Vec::new();
    for family in SEED_FAMILIES {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (page, next) = snap.raw_page(family, after.as_deref(), 1 << 10).unwrap();
            out.extend(page.into_iter().map(|(k, v)| (family.to_string(), k, v)));
            match next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
    }
    out
}

fn ship(primary: &RegistryStore, standby: &RegistryStore) -> u64 {
    let records = primary
        .replication_records(standby.last_seq() + 1, 7, 1 << 20)
        .unwrap();
    standby.apply_standby(&records).unwrap()
}

fn stores() -> (tempfile::TempDir, RegistryStore, RegistryStore) {
    let dir = tempfile::tempdir().unwrap();
    let primary = RegistryStore::open(&dir.path().join("primary")).unwrap();
    let standby = RegistryStore::open(&dir.path().join("standby")).unwrap();
    standby.make_standby().unwrap();
    (dir, primary, standby)
}

/// Seeds `standby` from one snapshot of `primary`.
fn seed(primary: &RegistryStore, standby: &RegistryStore) -> u64 {
    let snap = primary.snapshot().unwrap();
    standby.begin_seed().unwrap();
    for family in SEED_FAMILIES {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (page, next) = snap.raw_page(family, after.as_deref(), 300).unwrap();
            standby.seed(family, &page).unwrap();
            match next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
    }
    standby
        .end_seed(snap.seq(), &snap.seed_meta().unwrap())
        .unwrap()
}

#[test]
fn records_shipped_as_stored_make_a_byte_identical_copy() {
    let (_d, primary, standby) = stores();
    // Seeded while empty: the same history from then on.
    assert_eq!(seed(&primary, &standby), 0);
    assert_eq!(standby.store_id().unwrap(), primary.store_id().unwrap());
    let events = history(40);
    for (i, batch) in events.chunks(9).enumerate() {
        primary.ingest(batch, IngestMode::PerEvent).unwrap();
        // A re-delivery in between: a duplicate, nothing new to ship.
        if i == 2 {
            let again = primary.ingest(&events[..3], IngestMode::PerEvent).unwrap();
            assert!(again.iter().all(|o| matches!(o, Outcome::Duplicate { .. })));
        }
        while standby.last_seq() < primary.last_seq() {
            ship(&primary, &standby);
        }
    }
    assert!(primary.last_seq() > 60);
    assert_eq!(standby.last_seq(), primary.last_seq());
    assert_eq!(contents(&standby), contents(&primary));
    // The state reads the same, 4 information included.
    for h in 0..40 {
        assert_eq!(
            standby.holder(&holder(h)).unwrap(),
            primary.holder(&holder(h)).unwrap()
        );
    }
}

#[test]
fn a_seed_from_one_snapshot_then_records_make_the_same_history() {
    let (_d, primary, standby) = stores();
    let events = history(30);
    primary.ingest(&events[..40], IngestMode::PerEvent).unwrap();
    // Retention pruned the first records: the standby cannot follow from 1.
    for day in [10, 11, 12] {
        primary
            .retain(UnixTime(day * 86_400), 86_400, 86_400)
            .unwrap();
    }
    assert!(primary.first_seq() > 1, "{}", primary.first_seq());
    assert_eq!(
        primary.continuation("", 1, 0).unwrap(),
        Continuation::Seed,
        "a new standby is seeded"
    );
    let at = seed(&primary, &standby);
    assert_eq!(at, 40);
    assert_eq!(standby.replication_role().unwrap(), Role::Standby);
    assert_eq!(standby.first_seq(), primary.first_seq());
    primary.ingest(&events[40..], IngestMode::PerEvent).unwrap();
    while standby.last_seq() < primary.last_seq() {
        ship(&primary, &standby);
    }
    assert_eq!(contents(&standby), contents(&primary));

    // Promoted, it knows every event id: a re-delivery is a duplicate
    // under the same sequence number, not a second application.
    let epoch = standby.promote().unwrap();
    assert_eq!(epoch, 2);
    let again = standby.ingest(&events[5..6], IngestMode::PerEvent).unwrap();
    let first = primary.ingest(&events[5..6], IngestMode::PerEvent).unwrap();
    assert_eq!(again, first);
    assert!(matches!(again[0], Outcome::Duplicate { .. }));
}

#[test]
fn a_seed_cut_short_is_no_copy_and_cannot_be_promoted() {
    let (_d, primary, standby) = stores();
    primary.ingest(&history(10), IngestMode::PerEvent).unwrap();
    seed(&primary, &standby);
    standby.begin_seed().unwrap();
    let snap = primary.snapshot().unwrap();
    let (page, _) = snap.raw_page(SEED_FAMILIES[0], None, 100).unwrap();
    standby.seed(SEED_FAMILIES[0], &page).unwrap();
    // The process dies here; the store reopens still seeding.
    let path = standby.path().to_path_buf();
    drop(standby);
    let standby = RegistryStore::open(&path).unwrap();
    assert_eq!(standby.replication_role().unwrap(), Role::Seeding);
    assert_eq!(standby.last_seq(), 0);
    assert!(standby.promote().is_err());
    assert!(
        standby
            .apply_standby(&primary.replication_records(1, 10, 1 << 20).unwrap())
            .is_err(),
        "records are not applied over half a seed"
    );
    // A family a seed does not copy, and meta it does not carry: refused.
    assert!(standby.seed("info", &page).is_err());
    assert!(matches!(
        standby.end_seed(3, &[(b"store_kind".to_vec(), b"mirror".to_vec())]),
        Err(Error::ReservedKey(_))
    ));
}

#[test]
fn continuation_tells_a_standby_to_follow_be_seeded_or_start_empty() {
    let (_d, primary, standby) = stores();
    let events = history(12);
    primary.ingest(&events[..10], IngestMode::PerEvent).unwrap();
    seed(&primary, &standby);
    let id = primary.store_id().unwrap();
    assert_eq!(
        primary.continuation(&id, 1, 10).unwrap(),
        Continuation::Continue
    );
    assert_eq!(
        primary.continuation(&id, 1, 4).unwrap(),
        Continuation::Continue
    );
    assert_eq!(
        primary.continuation("another history", 1, 4).unwrap(),
        Continuation::Seed
    );
    // The standby is promoted at 10; the old primary stored more before it
    // died (never acknowledged: the standby did not have it).
    primary.ingest(&events[10..], IngestMode::PerEvent).unwrap();
    assert!(primary.last_seq() > 10);
    assert_eq!(standby.promote().unwrap(), 2);
    assert_eq!(
        standby.continuation(&id, 1, primary.last_seq()).unwrap(),
        Continuation::Diverged { common: 10 },
        "the old primary's extra records are never merged"
    );
    assert_eq!(
        standby.continuation(&id, 1, 10).unwrap(),
        Continuation::Continue,
        "a store of the old epoch that stopped where the new one began follows"
    );
    assert_eq!(
        standby.continuation(&id, 3, 10).unwrap(),
        Continuation::Superseded { epoch: 3 }
    );
    assert_eq!(
        standby.continuation(&id, 2, 11).unwrap(),
        Continuation::Ahead { primary_last: 10 }
    );
}

#[test]
fn a_standby_ingests_nothing_and_a_primary_with_a_history_is_no_standby() {
    let (_d, primary, standby) = stores();
    let events = history(4);
    assert!(matches!(
        standby.ingest(&events, IngestMode::PerEvent),
        Err(Error::Standby)
    ));
    primary.ingest(&events, IngestMode::PerEvent).unwrap();
    assert!(primary.make_standby().is_err());
    assert!(primary.begin_seed().is_err());
    let records = primary.replication_records(1, 100, 1 << 20).unwrap();
    assert_eq!(records.len() as u64, primary.last_seq());
    assert!(
        primary.apply_standby(&records).is_err(),
        "a primary applies nothing shipped"
    );
    seed(
        &RegistryStore::open(&_d.path().join("empty")).unwrap(),
        &standby,
    );
    // Out of order: a gap.
    assert!(matches!(
        standby.apply_standby(&records[1..]),
        Err(Error::Gap { applied: 0, got: 2 })
    ));
    // Writes that do not make the record's changes: refused, nothing written.
    let mut forged = records[..1].to_vec();
    forged[0].writes = records[1].writes.clone();
    assert!(standby.apply_standby(&forged).is_err());
    assert_eq!(standby.last_seq(), 0);
    // Roles and epochs are the store's own: no one writes them as meta.
    assert!(standby.put_meta(b"replication_role", b"primary").is_err());
    assert!(standby.put_meta(b"epoch", &9u64.to_be_bytes()).is_err());
}

/// Certificates of one issuer for an import: serials 1..=n, every fourth
/// revoked, every seventh on hold, in two partitions.
fn imported(kind: CertKind, n: u128) -> Vec<CertRecord> {
    (1..=n)
        .map(|s| CertRecord {
            kind,
            serial: Serial::from_u128(s).unwrap(),
            holder: holder(s as u32),
            not_before: UnixTime(1_000),
            not_after: UnixTime(4_000_000_000),
            partition: PartitionId(1_000 + (s % 2) as u32),
            status: if s % 4 == 0 {
                CertStatus::Revoked {
                    reason: RevocationReason::Superseded,
                    at: UnixTime(2_000),
                    invalidity_date: None,
                }
            } else if s % 7 == 0 {
                CertStatus::OnHold {
                    since: UnixTime(2_500),
                }
            } else {
                CertStatus::Good
            },
            info_digests: None,
        })
        .collect()
}

#[test]
fn an_imported_state_reads_as_ingested_and_ingest_goes_on_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = RegistryStore::open(&dir.path().join("db")).unwrap();
    let certs = imported(CertKind::CardSigning, 200);
    let mut import = store.import().unwrap();
    import
        .municipalities(&[Municipality {
            code: PartitionId(1_000),
            prefecture: "東京都".into(),
            city: "市".into(),
        }])
        .unwrap();
    import
        .certificates(CertKind::CardSigning, certs.clone().into_iter())
        .unwrap();
    // Out of order, or of another issuer: refused.
    let mut shuffled = imported(CertKind::CardAuth, 10);
    shuffled.swap(2, 5);
    assert!(
        import
            .certificates(CertKind::CardAuth, shuffled.into_iter())
            .is_err()
    );
    assert!(
        import
            .certificates(
                CertKind::PhoneAuth,
                imported(CertKind::CardAuth, 3).into_iter()
            )
            .is_err()
    );
    let mut h = HolderRecord::new(holder(1));
    h.four_info = Some(four(1));
    import.holders(std::iter::once(h.clone())).unwrap();
    let listed = import.listed;
    assert_eq!(
        listed,
        50 + 21,
        "fourths revoked, the other sevenths on hold; nothing of the refused imports"
    );
    assert!(
        store
            .cert(CertKind::CardAuth, &Serial::from_u128(1).unwrap())
            .unwrap()
            .is_none(),
        "a refused import leaves nothing"
    );
    assert_eq!(import.finish(1).unwrap(), 1);
    assert_eq!((store.last_seq(), store.first_seq()), (1, 2));

    for c in &certs {
        assert_eq!(store.cert(c.kind, &c.serial).unwrap().as_ref(), Some(c));
    }
    assert_eq!(store.holder(&holder(1)).unwrap(), Some(h));
    // The revoked index: exactly the listed ones, by partition then serial.
    let index: Vec<(PartitionId, Serial)> = store
        .revoked(CertKind::CardSigning, None)
        .map(|e| {
            let e = e.unwrap();
            (e.partition, e.serial)
        })
        .collect();
    let mut expect: Vec<(PartitionId, Serial)> = certs
        .iter()
        .filter(|c| c.status.is_listed())
        .map(|c| (c.partition, c.serial))
        .collect();
    expect.sort();
    assert_eq!(index, expect);
    assert_eq!(index.len() as u64, listed);

    // Ingest goes on after the imported position, through the rules.
    let out = store
        .ingest(
            &[event(
                0,
                EventBody::Revoke {
                    kind: CertKind::CardSigning,
                    serial: Serial::from_u128(1).unwrap(),
                    reason: RevocationReason::KeyCompromise,
                    invalidity_date: None,
                },
            )],
            IngestMode::PerEvent,
        )
        .unwrap();
    assert_eq!(out, vec![Outcome::Applied { seq: 2 }]);
    assert!(
        store
            .cert(CertKind::CardSigning, &Serial::from_u128(1).unwrap())
            .unwrap()
            .unwrap()
            .status
            .is_listed()
    );
    // An import goes into an empty store only.
    assert!(store.import().is_err());
}
