//! The audit chain detects tampering (edit, delete, reorder, insert, a cut
//! tail, a missing head); it survives a restart and continues its chain;
//! rate limits refuse with RESOURCE_EXHAUSTED and are audited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use shikko_core::{CertKind, InfoItems, InfoOutcome, OperatorId, ProviderId, UnixTime};
use shikko_info::audit::{AuditRecord, ChainError, verify};
use shikko_info::consent::ConsentRequest;
use shikko_info::{InfoMetrics, InfoService};
use shikko_pki::KeyAlgorithm;
use shikko_store::Store;
use tonic::Code;

/// A log of a few dozen records of every kind, exported.
async fn exported_log() -> (World, Vec<String>) {
    let mut w = World::new(KeyAlgorithm::EcdsaP256).await;
    let op = w.register("op-1", 1).await;
    let h = w.holder("H1", 0x1001, KeyAlgorithm::EcdsaP256);
    let mut c = w.client(Some(&op)).await;
    let _ = c.query(query("bank-1", &h.serial)).await.unwrap_err();
    let req = consent(
        &mut c,
        &h,
        "bank-1",
        InfoItems::ALL,
        UnixTime(UnixTime::now().0 - 60),
    )
    .await;
    c.record_consent(req).await.unwrap();
    for _ in 0..10 {
        c.query(query("bank-1", &h.serial)).await.unwrap();
    }
    let mut out = Vec::new();
    shikko_info::audit::export(&w.store, 1, &mut out).unwrap();
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (w, lines)
}

fn check(lines: &[String]) -> Result<shikko_info::audit::ChainSummary, ChainError> {
    verify(lines.join("\n").as_bytes(), false, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_detects_every_kind_of_tampering() {
    let (w, lines) = exported_log().await;
    assert!(lines.len() >= 15, "{} records", lines.len());
    let intact = check(&lines).unwrap();
    assert_eq!(intact.records as usize, lines.len());
    assert_eq!((intact.first_seq, intact.last_seq), (1, lines.len() as u64));
    assert_eq!(intact.head, w.svc.audit_head().unwrap().1);

    // Edit: a refusal turned into a success.
    let mut edited = lines.clone();
    let i = edited
        .iter()
        .position(|l| l.contains("no_consent"))
        .expect("a query without consent is audited");
    edited[i] = edited[i].replace("no_consent", "unchanged");
    assert!(
        matches!(check(&edited), Err(ChainError::Altered { .. })),
        "{:?}",
        check(&edited)
    );
    // Edit with the hash recomputed: the next record's link breaks.
    let mut forged = lines.clone();
    let mut r: AuditRecord = serde_json::from_str(&forged[i]).unwrap();
    r.outcome = "unchanged".into();
    r.hash = r.compute_hash();
    forged[i] = serde_json::to_string(&r).unwrap();
    assert!(
        matches!(check(&forged), Err(ChainError::Broken { .. })),
        "{:?}",
        check(&forged)
    );

    // Delete a record in the middle.
    let mut deleted = lines.clone();
    deleted.remove(5);
    assert!(
        matches!(check(&deleted), Err(ChainError::Broken { seq: 7, .. })),
        "{:?}",
        check(&deleted)
    );
    // Reorder two records.
    let mut swapped = lines.clone();
    swapped.swap(6, 7);
    assert!(matches!(check(&swapped), Err(ChainError::Broken { .. })));
    // Insert a copy.
    let mut inserted = lines.clone();
    inserted.insert(4, lines[3].clone());
    assert!(matches!(check(&inserted), Err(ChainError::Broken { .. })));
    // Delete the first record.
    assert!(matches!(
        check(&lines[1..]),
        Err(ChainError::NotFromGenesis(2))
    ));
    // ... though an export from a later seq checks as a partial log.
    assert_eq!(
        verify(lines[1..].join("\n").as_bytes(), true, None)
            .unwrap()
            .first_seq,
        2
    );
    // Cut the tail: the chain is intact, the head is not the service's.
    let head = w.svc.audit_head().unwrap().1;
    let cut = &lines[..lines.len() - 2];
    assert!(check(cut).is_ok());
    assert!(matches!(
        verify(cut.join("\n").as_bytes(), false, Some(&head)),
        Err(ChainError::HeadMismatch { .. })
    ));
    // Garbage.
    let mut garbage = lines.clone();
    garbage[3] = "{not json".into();
    assert!(matches!(
        check(&garbage),
        Err(ChainError::Malformed { line: 4 })
    ));
    assert!(matches!(check(&[]), Err(ChainError::Empty)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_continues_its_chain_after_a_restart() {
    let mut w = World::without_server(KeyAlgorithm::EcdsaP256).await;
    let _ = w.register("op-1", 1).await;
    let h = w.holder("H1", 0x1001, KeyAlgorithm::EcdsaP256);
    let op = w
        .svc
        .operator(&OperatorId::new("op-1").unwrap())
        .unwrap()
        .unwrap();
    let bank = ProviderId::new("bank-1").unwrap();
    let challenge = w.svc.consent_challenge(&op, &bank).await.unwrap();
    let req = signed_consent(
        &h,
        "bank-1",
        InfoItems::ADDRESS,
        UnixTime(UnixTime::now().0 - 60),
        &challenge.value,
    );
    w.svc
        .record_consent(
            &op,
            ConsentRequest {
                provider: bank.clone(),
                items: InfoItems::ADDRESS,
                signing_certificate: req.signing_certificate,
                granted_at: UnixTime(req.granted_at),
                challenge: req.challenge,
                signature: req.signature,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        w.svc
            .query(&op, &bank, CertKind::CardSigning, h.serial)
            .await
            .unwrap(),
        InfoOutcome::Unchanged
    );
    let (before, head) = w.svc.audit_head().unwrap();
    // Stop: the service (and its audit writer) let go of the store.
    let World {
        dir, svc, store, ..
    } = w;
    drop(svc);
    drop(store);
    let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
    let svc = InfoService::new(
        store.clone(),
        &[],
        InfoMetrics::new(&prometheus::Registry::new()).unwrap(),
    )
    .unwrap();
    assert_eq!(svc.audit_head().unwrap(), (before, head));
    let op = svc
        .operator(&OperatorId::new("op-1").unwrap())
        .unwrap()
        .expect("the operator survived");
    assert_eq!(
        svc.query(&op, &bank, CertKind::CardSigning, h.serial)
            .await
            .unwrap(),
        InfoOutcome::Unchanged,
        "the consent survived"
    );
    let mut out = Vec::new();
    shikko_info::audit::export(&store, 1, &mut out).unwrap();
    let summary = verify(&out[..], false, None).unwrap();
    assert_eq!(summary.last_seq, before + 1, "one chain across the restart");
    // One Merkle tree across the restart too: its stored head is the tree
    // of the exported records, and each record's inclusion proof holds.
    let records: Vec<shikko_info::audit::AuditRecord> = std::str::from_utf8(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let leaves: Vec<_> = records
        .iter()
        .map(|r| shikko_info::tree::leaf_of(r).unwrap())
        .collect();
    let size = records.len() as u64;
    let head = shikko_info::tree::head(&store, size).unwrap();
    let reference =
        shikko_core::merkle::LeafHashes::<shikko_pki::merkle::Sha256>::new(leaves.clone());
    assert_eq!(
        head,
        shikko_core::merkle::root::<shikko_pki::merkle::Sha256, _>(&reference, size).unwrap()
    );
    for (i, leaf) in leaves.iter().enumerate() {
        let proof = shikko_info::tree::inclusion(&store, i as u64 + 1, size).unwrap();
        shikko_core::merkle::verify_inclusion::<shikko_pki::merkle::Sha256>(
            i as u64, size, leaf, &proof, &head,
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_refuse_with_resource_exhausted() {
    let mut w = World::new(KeyAlgorithm::EcdsaP256).await;
    let op = w.register("op-1", 1).await;
    let h = w.holder("H1", 0x1001, KeyAlgorithm::EcdsaP256);
    w.svc
        .set_rate_limit(&OperatorId::new("op-1").unwrap(), 1, 4)
        .await
        .unwrap();
    let mut c = w.client(Some(&op)).await;
    let req = consent(
        &mut c,
        &h,
        "bank-1",
        InfoItems::ALL,
        UnixTime(UnixTime::now().0 - 60),
    )
    .await;
    c.record_consent(req).await.unwrap();
    // The challenge and the consent took two tokens of four: two queries
    // pass, the third does not.
    for _ in 0..2 {
        c.query(query("bank-1", &h.serial)).await.unwrap();
    }
    let e = c.query(query("bank-1", &h.serial)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("retry in"), "{}", e.message());
    // A batch larger than the burst can never pass: said so.
    let e = c
        .query_batch(shikko_proto::v1::InfoBatchRequest {
            issuer: 0,
            provider: "bank-1".into(),
            serials: vec![h.serial.magnitude().to_vec(); 5],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("burst"), "{}", e.message());
    let mut out = Vec::new();
    shikko_info::audit::export(&w.store, 1, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out)
            .unwrap()
            .matches("refused:rate_limited")
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_foreign_requests_are_refused_clearly_and_audited() {
    let mut w = World::new(KeyAlgorithm::EcdsaP256).await;
    let op = w.register("op-1", 1).await;
    let h = w.holder("H1", 0x1001, KeyAlgorithm::EcdsaP256);
    let mut c = w.client(Some(&op)).await;
    let bad_serials: [&[u8]; 3] = [&[], &[0u8; 21], &[0, 0, 0]];
    for s in bad_serials {
        let e = c
            .query(shikko_proto::v1::InfoQueryRequest {
                issuer: 0,
                provider: "bank-1".into(),
                serial: s.to_vec(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{s:?}: {e:?}");
    }
    for p in ["", "bank 1", &"b".repeat(200)] {
        let e = c.query(query(p, &h.serial)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{p:?}: {e:?}");
    }
    // A provider this operator does not act for.
    let e = c.query(query("bank-2", &h.serial)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Consents: no items, unknown items, garbage certificate, old or future dates.
    let now = UnixTime::now();
    let mut no_items = consent(&mut c, &h, "bank-1", InfoItems::ALL, now).await;
    no_items.items.clear();
    let mut unknown_item = consent(&mut c, &h, "bank-1", InfoItems::ALL, now).await;
    unknown_item.items.push(42);
    let mut garbage = consent(&mut c, &h, "bank-1", InfoItems::ALL, now).await;
    garbage.signing_certificate = vec![0x30, 0x03, 0x02, 0x01];
    for (what, req, code) in [
        ("no items", no_items, Code::InvalidArgument),
        ("unknown item", unknown_item, Code::InvalidArgument),
        ("garbage certificate", garbage, Code::InvalidArgument),
        (
            "signed 8 days ago",
            consent(
                &mut c,
                &h,
                "bank-1",
                InfoItems::ALL,
                UnixTime(now.0 - 8 * 86_400),
            )
            .await,
            Code::InvalidArgument,
        ),
        (
            "dated tomorrow",
            consent(
                &mut c,
                &h,
                "bank-1",
                InfoItems::ALL,
                UnixTime(now.0 + 86_400),
            )
            .await,
            Code::InvalidArgument,
        ),
    ] {
        let e = c.record_consent(req).await.unwrap_err();
        assert_eq!(e.code(), code, "{what}: {e:?}");
    }
    // A batch over the limit.
    let e = c
        .query_batch(shikko_proto::v1::InfoBatchRequest {
            issuer: 0,
            provider: "bank-1".into(),
            serials: vec![h.serial.magnitude().to_vec(); shikko_info::query::MAX_BATCH + 1],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Every refusal is in the audit log, and the service still answers.
    let mut out = Vec::new();
    shikko_info::audit::export(&w.store, 1, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches("refused:invalid").count(), 12, "{text}");
    assert_eq!(text.matches("refused:permission_denied").count(), 1);
    let req = consent(&mut c, &h, "bank-1", InfoItems::ALL, now).await;
    c.record_consent(req).await.unwrap();
    assert!(c.query(query("bank-1", &h.serial)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_is_not_caught_up_answers_unavailable() {
    let mut w = World::new(KeyAlgorithm::EcdsaP256).await;
    let op = w.register("op-1", 1).await;
    let h = w.holder("H1", 0x1001, KeyAlgorithm::EcdsaP256);
    let mut c = w.client(Some(&op)).await;
    w.svc.readiness().set_catching_up();
    let e = c.query(query("bank-1", &h.serial)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let req = consent(&mut c, &h, "bank-1", InfoItems::ALL, UnixTime::now()).await;
    let e = c.record_consent(req).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    w.svc.readiness().set_current();
    let req = consent(&mut c, &h, "bank-1", InfoItems::ALL, UnixTime::now()).await;
    c.record_consent(req).await.unwrap();
    assert!(c.query(query("bank-1", &h.serial)).await.is_ok());
}
