//! The seeds' flow end to end over real gRPC with mutual TLS: (A) a holder
//! moves, (B) the old signing serial appears on the next delta CRL, (C) the
//! bank asks by the old serial and gets the new address and serial. Partial
//! consent, withdrawal, death, emigration, a caller without a certificate, an
//! unregistered and a revoked operator, batches, billing and the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use der::Decode;
use shikko_core::{CertKind, EventBody, InfoItems, ProviderId, Serial, UnixTime};
use shikko_crl::{Builder, CrlConfig, CrlIssuer, CrlName, NoProgress};
use shikko_pki::{KeyAlgorithm, Signer};
use shikko_proto::v1 as pb;
use tonic::Code;

fn serials_in(crl: &[u8]) -> Vec<Serial> {
    let list =
        x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(crl).unwrap();
    list.tbs_cert_list
        .revoked_certificates
        .unwrap_or_default()
        .iter()
        .map(|r| Serial::from_be_bytes(r.serial_number.as_bytes()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_flow_over_mutual_tls() {
    let mut w = World::new(KeyAlgorithm::EcdsaP256).await;
    let op1 = w.register("op-1", 1).await;
    let h1 = w.holder("H1", 0x1001, KeyAlgorithm::EcdsaP256);
    let h2 = w.holder("H2", 0x2001, KeyAlgorithm::Rsa2048);
    let h3 = w.holder("H3", 0x3001, KeyAlgorithm::EcdsaP256);
    let h4 = w.holder("H4", 0x4001, KeyAlgorithm::EcdsaP256);
    let h5 = w.holder("H5", 0x5001, KeyAlgorithm::EcdsaP256);
    let mut c = w.client(Some(&op1)).await;
    // The holders signed their consents a minute ago; what happens next happens now.
    let now = UnixTime(UnixTime::now().0 - 60);

    // No consent yet: refused, distinctly.
    let e = c.query(query("bank-1", &h1.serial)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // Consents: H1, H3, H4 all items; H2 (an RSA key) only its address.
    let h1_consent = consent(&mut c, &h1, "bank-1", InfoItems::ALL, now).await;
    for req in [
        h1_consent.clone(),
        consent(&mut c, &h3, "bank-1", InfoItems::ALL, now).await,
        consent(&mut c, &h4, "bank-1", InfoItems::ALL, now).await,
    ] {
        let r = c.record_consent(req).await.unwrap().into_inner();
        assert_eq!(r.state, pb::ConsentState::Active as i32);
        assert_eq!(r.items.len(), 4);
    }
    let req = consent(&mut c, &h2, "bank-1", InfoItems::ADDRESS, now).await;
    let r = c.record_consent(req).await.unwrap().into_inner();
    assert_eq!(r.items, vec![pb::InfoItem::Address as i32]);
    // The term: 10 years counted from the next day.
    assert!(r.expires_at > now.0 + 10 * YEAR && r.expires_at < now.0 + 10 * YEAR + 5 * 86_400);

    // A consent whose signature is not the holder's is refused.
    let mut forged = consent(&mut c, &h5, "bank-1", InfoItems::ALL, now).await;
    forged.signature = h1
        .key
        .sign(&shikko_core::consent::consent_statement(
            &ProviderId::new("bank-1").unwrap(),
            InfoItems::ALL,
            &h5.serial,
            now,
            &forged.challenge,
        ))
        .unwrap();
    let e = c.record_consent(forged).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // A statement signed for other items does not prove these.
    let mut widened = consent(&mut c, &h5, "bank-1", InfoItems::ADDRESS, now).await;
    widened.items = vec![pb::InfoItem::Name as i32, pb::InfoItem::Address as i32];
    assert_eq!(
        c.record_consent(widened).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // A card lost after the holder signed (on hold now): the consent it
    // signed is refused; the holder signs again with a good certificate.
    let h6 = w.holder("H6", 0x6001, KeyAlgorithm::EcdsaP256);
    w.ingest_at(
        EventBody::CardLoss {
            holder: h6.id.clone(),
        },
        UnixTime(UnixTime::now().0 - 30),
    );
    let req = consent(&mut c, &h6, "bank-1", InfoItems::ALL, now).await;
    let e = c.record_consent(req).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("not good now"), "{e:?}");
    // A provider this operator does not act for.
    let req = consent(&mut c, &h5, "bank-2", InfoItems::ALL, now).await;
    let e = c.record_consent(req).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // The challenge: the service's own, for this operator and provider,
    // once. Without one, or with one made up, nothing is recorded.
    let h7 = w.holder("H7", 0x7001, KeyAlgorithm::EcdsaP256);
    let e = c
        .record_consent(signed_consent(&h7, "bank-1", InfoItems::ALL, now, ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let made_up = "01".repeat(41);
    let e = c
        .record_consent(signed_consent(&h7, "bank-1", InfoItems::ALL, now, &made_up))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("not one this service issued"), "{e:?}");
    // Another operator's challenge (acting for the same bank) does not do.
    let op2 = w.register("op-2", 2).await;
    let mut c2 = w.client(Some(&op2)).await;
    let theirs = consent(&mut c2, &h7, "bank-1", InfoItems::ALL, now).await;
    let e = c.record_consent(theirs.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // Its own operator records it; the same signature again is the same
    // record (a retry); a new signature over the used challenge is refused.
    let first = c2
        .record_consent(theirs.clone())
        .await
        .unwrap()
        .into_inner();
    let again = c2
        .record_consent(theirs.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let reused = signed_consent(
        &h7,
        "bank-1",
        InfoItems::ADDRESS,
        UnixTime(now.0 + 1),
        &theirs.challenge,
    );
    let e = c2.record_consent(reused).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("used already"), "{e:?}");

    // Before anything happens: unchanged, no data.
    let a = c
        .query(query("bank-1", &h1.serial))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.outcome, pb::InfoOutcome::Unchanged as i32);
    assert!(a.address.is_none() && a.name.is_none() && a.current_serial.is_empty());

    // A full CRL before the move, so that the move shows in a delta.
    let crl_dir = w.dir.path().join("crl");
    let builder = Builder::new(
        w.store.shared(),
        vec![CrlIssuer::new(CertKind::CardSigning, w.sign_ca_key.clone(), &w.sign_ca_der).unwrap()],
        CrlConfig::new(&crl_dir),
    );
    builder
        .build_full(&[CertKind::CardSigning], &NoProgress)
        .unwrap();

    // (A) H1 and H2 move; each gets a new signing certificate.
    let new_info = four_info("大阪府大阪市北区梅田3-3");
    for (h, s) in [(&h1, 0x1002u128), (&h2, 0x2002)] {
        let cert = w.signing_cert(&h.id, &h.key, s, &new_info);
        w.ingest_at(
            EventBody::FourInfoChange {
                holder: h.id.clone(),
                four_info: new_info.clone(),
                new_signing: Some(cert),
            },
            UnixTime::now(),
        );
    }
    // (B) The old serials are on the next delta CRL.
    builder
        .build_delta(&[CertKind::CardSigning], &NoProgress)
        .unwrap();
    let delta = std::fs::read(
        crl_dir
            .join(CertKind::CardSigning.issuer_id())
            .join(CrlName::Delta.file_name()),
    )
    .unwrap();
    let listed = serials_in(&delta);
    assert!(
        listed.contains(&h1.serial) && listed.contains(&h2.serial),
        "{listed:?}"
    );

    // (C) The bank asks by the old serial: the new address and serial.
    let a = c
        .query(query("bank-1", &h1.serial))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.outcome, pb::InfoOutcome::Changed as i32);
    assert_eq!(
        a.current_serial,
        Serial::from_u128(0x1002).unwrap().magnitude()
    );
    assert_eq!(a.address.as_deref(), Some("大阪府大阪市北区梅田3-3"));
    assert_eq!(a.name.as_deref(), Some("試験 花子"));
    assert_eq!(a.date_of_birth.as_deref(), Some("319850615"));
    assert_eq!(a.sex.as_deref(), Some("2"));
    // Partial consent: only the address.
    let a = c
        .query(query("bank-1", &h2.serial))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.outcome, pb::InfoOutcome::Changed as i32);
    assert_eq!(a.address.as_deref(), Some("大阪府大阪市北区梅田3-3"));
    assert!(a.name.is_none() && a.date_of_birth.is_none() && a.sex.is_none());
    // The new serial itself is unchanged.
    let a = c
        .query(query("bank-1", &Serial::from_u128(0x1002).unwrap()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.outcome, pb::InfoOutcome::Unchanged as i32);

    // H2 moves again, the town has not issued the new certificate yet.
    w.ingest_at(
        EventBody::FourInfoChange {
            holder: h2.id.clone(),
            four_info: four_info("京都府京都市左京区1-1"),
            new_signing: None,
        },
        UnixTime::now(),
    );
    // H3 dies, H4 emigrates.
    w.ingest_at(
        EventBody::Death {
            holder: h3.id.clone(),
        },
        UnixTime::now(),
    );
    w.ingest_at(
        EventBody::Emigration {
            holder: h4.id.clone(),
            keep_user_auth: false,
        },
        UnixTime::now(),
    );
    let unknown = Serial::from_u128(0x9999).unwrap();
    let batch = c
        .query_batch(pb::InfoBatchRequest {
            provider: "bank-1".into(),
            serials: [
                &h1.serial, &h2.serial, &h3.serial, &h4.serial, &h5.serial, &unknown,
            ]
            .iter()
            .map(|s| s.magnitude().to_vec())
            .collect(),
            issuer: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<i32> = batch.answers.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            pb::InfoOutcome::Changed as i32,
            pb::InfoOutcome::NoNewCertificate as i32,
            pb::InfoOutcome::Deceased as i32,
            pb::InfoOutcome::Emigrated as i32,
            pb::InfoOutcome::NoConsent as i32,
            pb::InfoOutcome::UnknownSerial as i32,
        ]
    );
    for a in &batch.answers[1..] {
        assert!(
            a.name.is_none() && a.address.is_none(),
            "no data but for changed"
        );
    }
    assert_eq!(batch.answers[0].serial, h1.serial.magnitude());
    // Single queries answer deceased the same way, without data.
    let a = c
        .query(query("bank-1", &h3.serial))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.outcome, pb::InfoOutcome::Deceased as i32);
    assert!(a.name.is_none() && a.address.is_none());

    // Withdrawal: nothing more is provided.
    let r = c
        .withdraw_consent(pb::WithdrawConsentRequest {
            issuer: 0,
            provider: "bank-1".into(),
            serial: Serial::from_u128(0x1002).unwrap().magnitude().to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.state, pb::ConsentState::Withdrawn as i32);
    let e = c.query(query("bank-1", &h1.serial)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // The old consent, sent again, is the withdrawn record it made.
    let replay = c
        .record_consent(h1_consent.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.state, pb::ConsentState::Withdrawn as i32);
    // Another signature dated before the withdrawal does not revive it.
    let req = consent(&mut c, &h1, "bank-1", InfoItems::ALL, now).await;
    let e = c.record_consent(req).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(
        c.query(query("bank-1", &h1.serial))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    // Billing: changed answers only (H1 and H2 single, H1 in the batch).
    let usage = c
        .usage(pb::UsageRequest { days: vec![] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.operator, "op-1");
    assert_eq!(usage.days.len(), 1);
    assert_eq!(
        (usage.days[0].provider.as_str(), usage.days[0].provisions),
        ("bank-1", 3)
    );
    // The same day three times is read once; more days than a year, refused.
    let today = usage.days[0].day.clone();
    let usage = c
        .usage(pb::UsageRequest {
            days: vec![today.clone(), today.clone(), today.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.days.len(), 1);
    assert_eq!(usage.days[0].provisions, 3);
    let err = c
        .usage(pb::UsageRequest {
            days: vec![today; 367],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Callers without a certificate, with an unregistered one, with a revoked one.
    let mut anonymous = w.client(None).await;
    let e = anonymous
        .query(query("bank-1", &h5.serial))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let (stranger, _) = w.operator_tls("op-x", 9);
    let e = w
        .client(Some(&stranger))
        .await
        .query(query("bank-1", &h5.serial))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let fp = shikko_info::operators::fingerprint(
        &shikko_pki::certificate_der(op1.cert_pem.as_bytes()).unwrap(),
    );
    w.svc.revoke_operator_certificate(&fp).await.unwrap();
    let e = c.query(query("bank-1", &h5.serial)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // The first two were counted, not audited; the registered operator's
    // revoked certificate is audited.
    let metrics = prometheus::TextEncoder::new()
        .encode_to_string(&w.registry.gather())
        .unwrap();
    for reason in ["no_certificate", "unregistered_certificate"] {
        assert!(
            metrics.contains(&format!(
                "shikko_info_unaudited_refusals_total{{reason=\"{reason}\"}} 1"
            )),
            "{metrics}"
        );
    }

    // The audit log: intact, with every refusal of an operator, and no 4 information.
    let mut out = Vec::new();
    shikko_info::audit::export(&w.store, 1, &mut out).unwrap();
    let summary =
        shikko_info::audit::verify(&out[..], false, Some(&w.svc.audit_head().unwrap().1)).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(summary.records as usize, text.lines().count());
    assert!(
        !text.contains("\"actor\":\"-\""),
        "an anonymous call was audited"
    );
    for needle in ["大阪", "千代田", "試験", "319850615", "京都"] {
        assert!(!text.contains(needle), "the audit log holds personal data");
    }
    for outcome in [
        "refused:unauthenticated",
        "refused:permission_denied",
        "no_consent",
        "changed",
        "unchanged",
        "deceased",
        "withdrawn",
    ] {
        assert!(text.contains(outcome), "no audit record with {outcome}");
    }
    // Metered use (the invoice's rows) is the audit log's answers, counted.
    let endpoints = assert_usage_matches_audit(&w);
    assert_eq!(endpoints, ["info_batch", "info_query"]);
    let month = shikko_info::billing_day(UnixTime::now())[..7].to_string();
    let batch_rows: Vec<(String, u64)> = w
        .svc
        .verifier_usage(&month)
        .unwrap()
        .into_iter()
        .filter(|(k, _)| {
            k.endpoint == "info_batch" && k.verifier == "op-1" && k.purpose == "bank-1"
        })
        .map(|(k, n)| (k.outcome, n))
        .collect();
    for outcome in [
        "changed",
        "no_new_certificate",
        "deceased",
        "emigrated",
        "no_consent",
        "unknown_serial",
    ] {
        assert!(
            batch_rows.contains(&(outcome.to_string(), 1)),
            "{outcome}: {batch_rows:?}"
        );
    }
    // ... nor in the metrics.
    let metrics = prometheus::TextEncoder::new()
        .encode_to_string(&w.registry.gather())
        .unwrap();
    assert!(!metrics.contains("大阪") && metrics.contains("shikko_info_answers_total"));
}
