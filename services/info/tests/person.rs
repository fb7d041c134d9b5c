//! The 4-information service answers about the person (issue 13), over
//! mutual TLS: every way a holder's signing certificate is replaced leads
//! from the serial a bank stored to the holder's current certificate of
//! that kind; a newer certificate with no consented item changed is
//! RENEWED (its serial, no data, not billed); a consent signed with a
//! smartphone signing certificate, and queries by smartphone serials.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use shikko_core::{CertKind, EventBody, InfoItems, Serial, UnixTime};
use shikko_pki::{KeyAlgorithm, SoftwareSigner};
use shikko_proto::v1 as pb;
use tonic::transport::Channel;

fn serial(v: u128) -> Serial {
    Serial::from_u128(v).unwrap()
}

async fn ask(
    c: &mut pb::info_client::InfoClient<Channel>,
    kind: CertKind,
    s: &Serial,
) -> (pb::InfoOutcome, Option<Serial>, Option<String>) {
    let a = c
        .query(pb::InfoQueryRequest {
            provider: "bank-1".into(),
            serial: s.magnitude().to_vec(),
            issuer: shikko_proto::convert::issuer(kind),
        })
        .await
        .unwrap()
        .into_inner();
    (
        pb::InfoOutcome::try_from(a.outcome).unwrap(),
        (!a.current_serial.is_empty()).then(|| Serial::from_be_bytes(&a.current_serial).unwrap()),
        a.address,
    )
}

fn provisions(w: &World) -> u64 {
    use prometheus::Encoder;
    let mut out = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&w.registry.gather(), &mut out)
        .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("shikko_info_provisions_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replacement_leads_to_the_holders_current_certificate() {
    let mut w = World::new(KeyAlgorithm::EcdsaP256).await;
    let op = w.register("op-1", 1).await;
    let mut c = w.client(Some(&op)).await;
    let now = UnixTime(UnixTime::now().0 - 60);
    let h = w.holder("H1", 0x1001, KeyAlgorithm::EcdsaP256);
    let req = consent(&mut c, &h, "bank-1", InfoItems::ALL, now).await;
    c.record_consent(req).await.unwrap();
    assert_eq!(
        ask(&mut c, CertKind::CardSigning, &h.serial).await.0,
        pb::InfoOutcome::Unchanged
    );

    // A renewal, nothing changed: RENEWED with the new serial, not billed.
    let renewed = w.signing_cert(&h.id, &h.key, 0x1002, &h.info);
    w.ingest(EventBody::Renewal {
        holder: h.id.clone(),
        new_signing: Some(renewed),
        new_auth: None,
    });
    let (o, current, address) = ask(&mut c, CertKind::CardSigning, &h.serial).await;
    assert_eq!(
        (o, current, address),
        (pb::InfoOutcome::Renewed, Some(serial(0x1002)), None)
    );
    assert_eq!(provisions(&w), 0, "a renewal is not billed");

    // A move with a new card: CHANGED from either old serial, billed.
    let moved = four_info("大阪府大阪市北区梅田3-3");
    let new_card = w.signing_cert(&h.id, &h.key, 0x1003, &moved);
    w.ingest(EventBody::FourInfoChange {
        holder: h.id.clone(),
        four_info: moved.clone(),
        new_signing: Some(new_card),
    });
    for old in [0x1001, 0x1002] {
        let (o, current, address) = ask(&mut c, CertKind::CardSigning, &serial(old)).await;
        assert_eq!(o, pb::InfoOutcome::Changed, "{old:x}");
        assert_eq!(current, Some(serial(0x1003)));
        assert_eq!(address.as_deref(), Some(moved.address.as_str()));
    }
    assert_eq!(provisions(&w), 2);

    // The card returned: nothing good now. A new card (a plain issue): from
    // the pre-move serial CHANGED, from the post-move one RENEWED.
    w.ingest(EventBody::CardReturn {
        holder: h.id.clone(),
    });
    assert_eq!(
        ask(&mut c, CertKind::CardSigning, &h.serial).await.0,
        pb::InfoOutcome::NoNewCertificate
    );
    let again = w.signing_cert(&h.id, &h.key, 0x1004, &moved);
    w.ingest(EventBody::Issue {
        holder: h.id.clone(),
        cert: again,
        four_info: None,
    });
    let (o, current, _) = ask(&mut c, CertKind::CardSigning, &h.serial).await;
    assert_eq!(
        (o, current),
        (pb::InfoOutcome::Changed, Some(serial(0x1004)))
    );
    let (o, current, _) = ask(&mut c, CertKind::CardSigning, &serial(0x1003)).await;
    assert_eq!(
        (o, current),
        (pb::InfoOutcome::Renewed, Some(serial(0x1004)))
    );

    // Loss, then revocation for key compromise, then a new card.
    w.ingest(EventBody::CardLoss {
        holder: h.id.clone(),
    });
    assert_eq!(
        ask(&mut c, CertKind::CardSigning, &serial(0x1003)).await.0,
        pb::InfoOutcome::NoNewCertificate
    );
    w.ingest(EventBody::Revoke {
        kind: CertKind::CardSigning,
        serial: serial(0x1004),
        reason: shikko_core::status::RevocationReason::KeyCompromise,
        invalidity_date: None,
    });
    let reissued = w.signing_cert(&h.id, &h.key, 0x1005, &moved);
    w.ingest(EventBody::Issue {
        holder: h.id.clone(),
        cert: reissued,
        four_info: None,
    });
    let (o, current, _) = ask(&mut c, CertKind::CardSigning, &serial(0x1004)).await;
    assert_eq!(
        (o, current),
        (pb::InfoOutcome::Renewed, Some(serial(0x1005)))
    );

    // Emigration, return, a new card.
    w.ingest(EventBody::Emigration {
        holder: h.id.clone(),
        keep_user_auth: false,
    });
    assert_eq!(
        ask(&mut c, CertKind::CardSigning, &h.serial).await.0,
        pb::InfoOutcome::Emigrated
    );
    let back = w.signing_cert(&h.id, &h.key, 0x1006, &moved);
    w.ingest(EventBody::Issue {
        holder: h.id.clone(),
        cert: back,
        four_info: None,
    });
    let (o, current, _) = ask(&mut c, CertKind::CardSigning, &serial(0x1005)).await;
    assert_eq!(
        (o, current),
        (pb::InfoOutcome::Renewed, Some(serial(0x1006)))
    );
    // Every answer is audited with its outcome.
    let mut out = Vec::new();
    shikko_info::audit::export(&w.store, 1, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\"outcome\":\"renewed\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_signed_on_a_phone_and_queries_by_phone_serial() {
    let mut w = World::new(KeyAlgorithm::EcdsaP256).await;
    let op = w.register("op-1", 1).await;
    let mut c = w.client(Some(&op)).await;
    let now = UnixTime(UnixTime::now().0 - 60);
    // A holder with a card, and a phone signing certificate on their phone.
    let card = w.holder("H2", 0x2001, KeyAlgorithm::EcdsaP256);
    let phone_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let phone = w.signing_cert_of(
        CertKind::PhoneSigning,
        &card.id,
        &phone_key,
        0x2001,
        &card.info,
    );
    let phone_der = phone.cert_der.clone().unwrap();
    w.ingest(EventBody::Issue {
        holder: card.id.clone(),
        cert: phone,
        four_info: None,
    });
    let on_phone = Holder {
        id: card.id.clone(),
        key: phone_key,
        serial: serial(0x2001),
        cert_der: phone_der,
        info: card.info.clone(),
    };
    // The account was opened with the phone alone: the consent is signed there.
    let req = consent(&mut c, &on_phone, "bank-1", InfoItems::ADDRESS, now).await;
    let r = c.record_consent(req).await.unwrap().into_inner();
    assert_eq!(r.state, pb::ConsentState::Active as i32);
    assert_eq!(
        ask(&mut c, CertKind::PhoneSigning, &serial(0x2001)).await.0,
        pb::InfoOutcome::Unchanged
    );
    // A new phone: RENEWED with the new phone's serial.
    let key2 = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let phone2 = w.signing_cert_of(CertKind::PhoneSigning, &card.id, &key2, 0x2002, &card.info);
    w.ingest(EventBody::PhoneChange {
        holder: card.id.clone(),
        new_signing: Some(phone2),
        new_auth: None,
    });
    let (o, current, _) = ask(&mut c, CertKind::PhoneSigning, &serial(0x2001)).await;
    assert_eq!(
        (o, current),
        (pb::InfoOutcome::Renewed, Some(serial(0x2002)))
    );
    // A move revokes the phone signing certificate (it carries the old
    // address): nothing good on the phone until it is issued again.
    let moved = four_info("北海道札幌市中央区北1条西2");
    let new_card = w.signing_cert(&card.id, &card.key, 0x2003, &moved);
    w.ingest(EventBody::FourInfoChange {
        holder: card.id.clone(),
        four_info: moved.clone(),
        new_signing: Some(new_card),
    });
    assert_eq!(
        ask(&mut c, CertKind::PhoneSigning, &serial(0x2001)).await.0,
        pb::InfoOutcome::NoNewCertificate
    );
    let phone3 = w.signing_cert_of(CertKind::PhoneSigning, &card.id, &key2, 0x2004, &moved);
    w.ingest(EventBody::PhoneChange {
        holder: card.id.clone(),
        new_signing: Some(phone3),
        new_auth: None,
    });
    let (o, current, address) = ask(&mut c, CertKind::PhoneSigning, &serial(0x2001)).await;
    assert_eq!(o, pb::InfoOutcome::Changed);
    assert_eq!(current, Some(serial(0x2004)));
    assert_eq!(address.as_deref(), Some(moved.address.as_str()));
    // The consent is the holder's: the card serial answers too.
    let (o, current, _) = ask(&mut c, CertKind::CardSigning, &serial(0x2001)).await;
    assert_eq!(
        (o, current),
        (pb::InfoOutcome::Changed, Some(serial(0x2003)))
    );
    // A user-authentication issuer is not a 4-information query.
    let e = c
        .query(pb::InfoQueryRequest {
            provider: "bank-1".into(),
            serial: serial(0x2001).magnitude().to_vec(),
            issuer: shikko_proto::convert::issuer(CertKind::CardAuth),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // Withdrawn by the phone serial.
    let r = c
        .withdraw_consent(pb::WithdrawConsentRequest {
            provider: "bank-1".into(),
            serial: serial(0x2004).magnitude().to_vec(),
            issuer: shikko_proto::convert::issuer(CertKind::PhoneSigning),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.state, pb::ConsentState::Withdrawn as i32);
}

/// For the bank's daily run: the consenting holders' signing certificates
/// (card and phone) that expire within the window, paged with opaque
/// tokens, audited; not those of holders without a consent, nor later ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consenting_holders_whose_certificates_expire_soon() {
    let mut w = World::new(KeyAlgorithm::EcdsaP256).await;
    let op = w.register("op-1", 1).await;
    let mut c = w.client(Some(&op)).await;
    let now = UnixTime(UnixTime::now().0 - 60);
    let soon = UnixTime(UnixTime::now().0 + 20 * 86_400);
    let later = UnixTime(UnixTime::now().0 + 2 * YEAR);
    let issue = |w: &mut World, id: &str, kind: CertKind, s: u128, until: UnixTime| {
        let hid = shikko_core::HolderId::new(id).unwrap();
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let info = four_info("東京都千代田区千代田1-1");
        let cert = w.signing_cert_until(kind, &hid, &key, s, &info, until);
        let der = cert.cert_der.clone().unwrap();
        w.ingest(EventBody::Issue {
            holder: hid.clone(),
            cert,
            four_info: Some(info.clone()),
        });
        Holder {
            id: hid,
            key,
            serial: serial(s),
            cert_der: der,
            info,
        }
    };
    let a = issue(&mut w, "A", CertKind::CardSigning, 0xa1, soon);
    let b = issue(&mut w, "B", CertKind::CardSigning, 0xb1, soon);
    let _no_consent = issue(&mut w, "C", CertKind::CardSigning, 0xc1, soon);
    let d = issue(&mut w, "D", CertKind::CardSigning, 0xd1, later);
    let e = issue(&mut w, "E", CertKind::PhoneSigning, 0xe1, soon);
    for h in [&a, &b, &d, &e] {
        let req = consent(&mut c, h, "bank-1", InfoItems::ALL, now).await;
        c.record_consent(req).await.unwrap();
    }
    // A (consented with the card) also has a phone expiring soon: the bank,
    // which holds a card serial, is not told the phone's.
    let a_phone = w.signing_cert_until(CertKind::PhoneSigning, &a.id, &a.key, 0xa2, &a.info, soon);
    w.ingest(EventBody::Issue {
        holder: a.id.clone(),
        cert: a_phone,
        four_info: None,
    });
    let mut listed = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = c
            .expiring(pb::ExpiringRequest {
                provider: "bank-1".into(),
                within_days: 30,
                page_size: 1,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        for x in &r.certificates {
            listed.push((
                x.issuer,
                Serial::from_be_bytes(&x.serial).unwrap(),
                x.not_after,
            ));
        }
        if r.next_page_token.is_empty() {
            break;
        }
        // Opaque: hex of an encrypted holder id, not the id.
        assert!(r.next_page_token.len() > 40);
        assert!(r.next_page_token.bytes().all(|b| b.is_ascii_hexdigit()));
        token = r.next_page_token;
        assert!(pages < 10);
    }
    listed.sort();
    let sign = shikko_proto::convert::issuer(CertKind::CardSigning);
    let phone = shikko_proto::convert::issuer(CertKind::PhoneSigning);
    let mut want = vec![
        (sign, serial(0xa1), soon.0),
        (sign, serial(0xb1), soon.0),
        (phone, serial(0xe1), soon.0),
    ];
    want.sort();
    assert_eq!(listed, want);
    assert!(pages >= 3, "paged: {pages}");
    // A token is this operator's, for this provider.
    let op2 = w.register("op-2", 2).await;
    let mut c2 = w.client(Some(&op2)).await;
    let first = c
        .expiring(pb::ExpiringRequest {
            provider: "bank-1".into(),
            within_days: 30,
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let e = c2
        .expiring(pb::ExpiringRequest {
            provider: "bank-1".into(),
            within_days: 30,
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // The window is bounded.
    let e = c
        .expiring(pb::ExpiringRequest {
            provider: "bank-1".into(),
            within_days: 400,
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // Every listed serial is audited.
    let mut out = Vec::new();
    shikko_info::audit::export(&w.store, 1, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\"subject\":\"phone-sign:E1\""), "{text}");
    assert!(!text.contains("\"subject\":\"sign:C1\""), "{text}");
}
