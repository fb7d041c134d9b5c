//! The user-authentication link (issue 13, item 5) over mutual TLS: a
//! registered verifier (a hospital's eligibility system, through its
//! operator) resolves a user-authentication serial to its status and a
//! pseudonym of the holder that survives renewal and differs per verifier;
//! its pseudonyms lead to the holder's current serials; banks and verifiers
//! each stay in their own service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use shikko_core::{CertKind, EventBody, NewCert, OperatorId, ProviderId, Serial, UnixTime};
use shikko_info::operators::ProviderKind;
use shikko_pki::KeyAlgorithm;
use shikko_proto::v1 as pb;
use tonic::Code;

fn serial(v: u128) -> Serial {
    Serial::from_u128(v).unwrap()
}

fn auth_cert(kind: CertKind, s: u128) -> NewCert {
    let now = UnixTime::now();
    NewCert {
        kind,
        serial: serial(s),
        not_before: UnixTime(now.0 - 2 * 86_400),
        not_after: UnixTime(now.0 + 3 * YEAR),
        municipality: None,
        cert_der: None,
    }
}

async fn resolve(
    c: &mut pb::link_client::LinkClient<tonic::transport::Channel>,
    verifier: &str,
    kind: CertKind,
    s: u128,
) -> Result<(pb::LinkStatus, String), tonic::Status> {
    let r = c
        .resolve(pb::LinkResolveRequest {
            provider: verifier.into(),
            issuer: shikko_proto::convert::issuer(kind),
            serials: vec![serial(s).magnitude().to_vec()],
        })
        .await?
        .into_inner();
    let a = &r.answers[0];
    Ok((
        pb::LinkStatus::try_from(a.status).unwrap(),
        a.pseudonym.clone(),
    ))
}

/// Registers the user-authentication verifiers `verifiers` and one
/// operator, `op-clinic`, acting for them all: its client TLS.
async fn clinic_operator(w: &World, verifiers: &[&str]) -> Tls {
    for v in verifiers {
        w.svc
            .register_provider_of(
                ProviderId::new(*v).unwrap(),
                "診療所",
                ProviderKind::UserAuthVerifier,
            )
            .await
            .unwrap();
    }
    let (tls, der) = w.operator_tls("op-clinic", 2);
    w.svc
        .register_operator(
            OperatorId::new("op-clinic").unwrap(),
            "eligibility platform",
            verifiers
                .iter()
                .map(|v| ProviderId::new(*v).unwrap())
                .collect(),
            &der,
        )
        .await
        .unwrap();
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifiers_pseudonym_survives_renewal_and_differs_per_verifier() {
    let mut w = World::new(KeyAlgorithm::EcdsaP256).await;
    let bank_op = w.register("op-bank", 1).await;
    let verifier_tls = clinic_operator(&w, &["clinic-1", "clinic-2"]).await;
    let h = w.holder("H1", 0x1001, KeyAlgorithm::EcdsaP256);
    w.ingest(EventBody::Issue {
        holder: h.id.clone(),
        cert: auth_cert(CertKind::CardAuth, 0xa001),
        four_info: None,
    });
    let mut link = w.link_client(Some(&verifier_tls)).await;

    let (status, p1) = resolve(&mut link, "clinic-1", CertKind::CardAuth, 0xa001)
        .await
        .unwrap();
    assert_eq!(status, pb::LinkStatus::Good);
    assert!(p1.starts_with("L1-") && p1.len() == 35, "{p1}");
    // The card is renewed: the old serial is revoked, the new one good; one pseudonym.
    let renewed = w.signing_cert(&h.id, &h.key, 0x1002, &h.info);
    w.ingest(EventBody::Renewal {
        holder: h.id.clone(),
        new_signing: Some(renewed),
        new_auth: Some(auth_cert(CertKind::CardAuth, 0xa002)),
    });
    assert_eq!(
        resolve(&mut link, "clinic-1", CertKind::CardAuth, 0xa001)
            .await
            .unwrap(),
        (pb::LinkStatus::Revoked, p1.clone())
    );
    assert_eq!(
        resolve(&mut link, "clinic-1", CertKind::CardAuth, 0xa002)
            .await
            .unwrap(),
        (pb::LinkStatus::Good, p1.clone())
    );
    // The holder's phone: its user-authentication serial names the same person.
    w.ingest(EventBody::Issue {
        holder: h.id.clone(),
        cert: auth_cert(CertKind::PhoneAuth, 0xb001),
        four_info: None,
    });
    assert_eq!(
        resolve(&mut link, "clinic-1", CertKind::PhoneAuth, 0xb001)
            .await
            .unwrap(),
        (pb::LinkStatus::Good, p1.clone())
    );
    // Another verifier: another pseudonym for the same person.
    let (_, p2) = resolve(&mut link, "clinic-2", CertKind::CardAuth, 0xa002)
        .await
        .unwrap();
    assert!(p2.starts_with("L1-") && p2 != p1);
    // A serial the registry does not know: no pseudonym.
    assert_eq!(
        resolve(&mut link, "clinic-1", CertKind::CardAuth, 0xdead)
            .await
            .unwrap(),
        (pb::LinkStatus::Unknown, String::new())
    );
    // Signing serials are not the link's business.
    let e = resolve(&mut link, "clinic-1", CertKind::CardSigning, 0x1002)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // The batch run after renewals: the pseudonym's current serial; a
    // pseudonym this verifier was never given is unknown to it.
    let cur = link
        .current(pb::LinkCurrentRequest {
            provider: "clinic-1".into(),
            pseudonyms: vec![p1.clone(), p2.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .answers;
    assert!(cur[0].known);
    assert_eq!(
        Serial::from_be_bytes(&cur[0].card_serial).unwrap(),
        serial(0xa002)
    );
    assert_eq!(
        Serial::from_be_bytes(&cur[0].phone_serial).unwrap(),
        serial(0xb001)
    );
    assert!(!cur[1].known && cur[1].card_serial.is_empty());

    // Each in its own service: a verifier is not a bank, a bank not a verifier.
    let mut info = w.client(Some(&verifier_tls)).await;
    let e = info.query(query("clinic-1", &h.serial)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let mut bank_link = w.link_client(Some(&bank_op)).await;
    let e = resolve(&mut bank_link, "bank-1", CertKind::CardAuth, 0xa002)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // An operator that does not act for the verifier.
    let e = resolve(&mut bank_link, "clinic-1", CertKind::CardAuth, 0xa002)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // Every answer audited, no 4 information in it.
    let mut out = Vec::new();
    shikko_info::audit::export(&w.store, 1, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\"action\":\"link.resolve\""), "{text}");
    assert!(text.contains("\"subject\":\"auth:A002\""), "{text}");
    assert!(text.contains("\"action\":\"link.current\""), "{text}");
    assert!(!text.contains(&h.info.address));
    // And metered: per operator, verifier and outcome, as audited.
    let endpoints = assert_usage_matches_audit(&w);
    for e in ["link_current", "link_resolve"] {
        assert!(endpoints.iter().any(|x| x == e), "{endpoints:?}");
    }
}

async fn current(
    c: &mut pb::link_client::LinkClient<tonic::transport::Channel>,
    verifier: &str,
    pseudonym: &str,
) -> pb::LinkCurrentAnswer {
    c.current(pb::LinkCurrentRequest {
        provider: verifier.into(),
        pseudonyms: vec![pseudonym.into()],
    })
    .await
    .unwrap()
    .into_inner()
    .answers
    .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_key_rotation_changes_every_pseudonym_and_answers_both_until_retired() {
    let mut w = World::new(KeyAlgorithm::EcdsaP256).await;
    let tls = clinic_operator(&w, &["clinic-1"]).await;
    let h = w.holder("H1", 0x1001, KeyAlgorithm::EcdsaP256);
    w.ingest(EventBody::Issue {
        holder: h.id.clone(),
        cert: auth_cert(CertKind::CardAuth, 0xa001),
        four_info: None,
    });
    let mut link = w.link_client(Some(&tls)).await;
    let (_, p1) = resolve(&mut link, "clinic-1", CertKind::CardAuth, 0xa001)
        .await
        .unwrap();
    assert!(p1.starts_with("L1-"), "{p1}");
    // Retiring with no changeover under way is refused.
    assert!(matches!(
        w.svc.retire_link_key().await,
        Err(shikko_info::InfoError::FailedPrecondition(_))
    ));

    // Rotate: a new pseudonym (L2-), the previous one beside it.
    let state = w.svc.rotate_link_key().await.unwrap();
    assert_eq!((state.current, state.previous), (2, Some(1)));
    let r = link
        .resolve(pb::LinkResolveRequest {
            provider: "clinic-1".into(),
            issuer: shikko_proto::convert::issuer(CertKind::CardAuth),
            serials: vec![serial(0xa001).magnitude().to_vec()],
        })
        .await
        .unwrap()
        .into_inner();
    let p2 = r.answers[0].pseudonym.clone();
    assert!(p2.starts_with("L2-") && p2.len() == 35, "{p2}");
    assert_eq!(r.answers[0].previous_pseudonym, p1);
    assert_ne!(p2[3..], p1[3..], "a new key, a new pseudonym");
    // A verifier that stored p1 re-keys its table with Current.
    let a = current(&mut link, "clinic-1", &p1).await;
    assert!(a.known);
    assert_eq!(a.pseudonym_now, p2);
    assert_eq!(
        Serial::from_be_bytes(&a.card_serial).unwrap(),
        serial(0xa001)
    );
    let a = current(&mut link, "clinic-1", &p2).await;
    assert!(a.known && a.pseudonym_now == p2);
    // One changeover at a time.
    assert!(matches!(
        w.svc.rotate_link_key().await,
        Err(shikko_info::InfoError::FailedPrecondition(_))
    ));

    // Retire: the previous pseudonyms are unknown; resolve gives one.
    let state = w.svc.retire_link_key().await.unwrap();
    assert_eq!((state.current, state.previous), (2, None));
    assert!(!current(&mut link, "clinic-1", &p1).await.known);
    assert!(current(&mut link, "clinic-1", &p2).await.known);
    assert_eq!(
        resolve(&mut link, "clinic-1", CertKind::CardAuth, 0xa001)
            .await
            .unwrap(),
        (pb::LinkStatus::Good, p2.clone())
    );
    // Nothing of version 1 is left in the store: not its key, not its pseudonyms.
    assert!(w.store.info_get(b"k/link-1").unwrap().is_none());
    assert!(
        w.store
            .info_scan(b"n/0001/", b"n/0001/", 1)
            .unwrap()
            .is_empty()
    );
    assert!(
        !w.store
            .info_scan(b"n/0002/", b"n/0002/", 1)
            .unwrap()
            .is_empty()
    );

    // Audited, as administrators' acts.
    let mut out = Vec::new();
    shikko_info::audit::export(&w.store, 1, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\"action\":\"link.rotate\""), "{text}");
    assert!(text.contains("\"action\":\"link.retire\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_comes_to_act_for_a_verifier_when_the_administrator_says_so() {
    let mut w = World::new(KeyAlgorithm::EcdsaP256).await;
    let bank_op = w.register("op-bank", 1).await;
    let clinic = ProviderId::new("clinic-1").unwrap();
    w.svc
        .register_provider_of(clinic.clone(), "診療所", ProviderKind::UserAuthVerifier)
        .await
        .unwrap();
    let h = w.holder("H1", 0x1001, KeyAlgorithm::EcdsaP256);
    w.ingest(EventBody::Issue {
        holder: h.id.clone(),
        cert: auth_cert(CertKind::CardAuth, 0xa001),
        four_info: None,
    });
    let mut link = w.link_client(Some(&bank_op)).await;
    let e = resolve(&mut link, "clinic-1", CertKind::CardAuth, 0xa001)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    let op = OperatorId::new("op-bank").unwrap();
    let bank = ProviderId::new("bank-1").unwrap();
    // Unknown providers and an empty list are refused, and change nothing.
    assert!(matches!(
        w.svc
            .set_operator_providers(&op, vec![ProviderId::new("nobody").unwrap()])
            .await,
        Err(shikko_info::InfoError::NotFound(_))
    ));
    assert!(matches!(
        w.svc.set_operator_providers(&op, Vec::new()).await,
        Err(shikko_info::InfoError::Invalid(_))
    ));
    let updated = w
        .svc
        .set_operator_providers(&op, vec![clinic.clone(), bank.clone(), clinic.clone()])
        .await
        .unwrap();
    assert_eq!(updated.providers, vec![bank.clone(), clinic.clone()]);
    let (status, p) = resolve(&mut link, "clinic-1", CertKind::CardAuth, 0xa001)
        .await
        .unwrap();
    assert_eq!(status, pb::LinkStatus::Good);
    assert!(p.starts_with("L1-"));

    // And stops acting for it.
    w.svc.set_operator_providers(&op, vec![bank]).await.unwrap();
    let e = resolve(&mut link, "clinic-1", CertKind::CardAuth, 0xa001)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let mut out = Vec::new();
    shikko_info::audit::export(&w.store, 1, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\"action\":\"operator.providers\""), "{text}");
}
