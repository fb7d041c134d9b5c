//! A holder's own access record (issue 15, item 4) over real gRPC and TLS:
//! a holder proves who they are with their user-authentication
//! certificate's key and reads exactly the audit records about them (a
//! bank's queries and their outcomes, refusals included, consents, their
//! own readings), each with an inclusion proof under a signed tree head;
//! they cannot read another holder's, with or without that holder's
//! certificate, and a used challenge, a certificate the registry did not
//! issue or a revoked one is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use shikko_core::{
    CertKind, EventBody, HolderId, InfoItems, NewCert, RevocationReason, Serial, UnixTime,
};
use shikko_info::audit::AuditRecord;
use shikko_pki::tree_head::{SignedTreeHead, TreeHead};
use shikko_pki::{
    HolderCertRequest, Issuer, KeyAlgorithm, Signer, SoftwareSigner, holder_certificate,
};
use shikko_proto::v1 as pb;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// A card user-authentication certificate of serial `s` for `holder`,
/// with `key` (DER), issued by the world's CA key `ca`.
fn auth_cert(w: &World, holder: &HolderId, key: &SoftwareSigner, s: u128) -> NewCert {
    let now = UnixTime::now();
    let issuer = Issuer::from_certificate(w.sign_ca_key.as_ref(), &w.sign_ca_der).unwrap();
    let serial = Serial::from_u128(s).unwrap();
    let (nb, na) = (UnixTime(now.0 - 86_400), UnixTime(now.0 + 3 * YEAR));
    let der = holder_certificate(
        &issuer,
        &HolderCertRequest {
            kind: CertKind::CardAuth,
            holder,
            municipality: None,
            four_info: None,
            subject_public_key: key.public_key_der(),
            serial,
            not_before: nb,
            not_after: na,
            ocsp_url: None,
        },
    )
    .unwrap();
    NewCert {
        kind: CertKind::CardAuth,
        serial,
        not_before: nb,
        not_after: na,
        municipality: None,
        cert_der: Some(der),
    }
}

async fn holder_client(w: &World) -> pb::holder_access_client::HolderAccessClient<Channel> {
    let cfg = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&w.op_ca_pem))
        .domain_name("localhost");
    let ch = Endpoint::from_shared(format!("https://{}", w.addr))
        .unwrap()
        .tls_config(cfg)
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::holder_access_client::HolderAccessClient::new(ch)
}

/// Asks for a challenge, signs it with `key`, presents `cert_der`.
async fn request(
    c: &mut pb::holder_access_client::HolderAccessClient<Channel>,
    cert_der: &[u8],
    key: &SoftwareSigner,
) -> pb::HolderAccessesRequest {
    let challenge = c
        .challenge(pb::HolderChallengeRequest {})
        .await
        .unwrap()
        .into_inner()
        .challenge;
    pb::HolderAccessesRequest {
        certificate: cert_der.to_vec(),
        signature: key
            .sign(&shikko_info::holder::access_statement(&challenge))
            .unwrap(),
        challenge,
        after_seq: 0,
        until_seq: 0,
        limit: 0,
    }
}

/// [`request`], then the answer.
async fn ask(
    c: &mut pb::holder_access_client::HolderAccessClient<Channel>,
    cert_der: &[u8],
    key: &SoftwareSigner,
) -> Result<pb::HolderAccessesResponse, tonic::Status> {
    let req = request(c, cert_der, key).await;
    c.accesses(req).await.map(tonic::Response::into_inner)
}

/// The records of an answer, each checked: signed head, inclusion proof,
/// the holder's pseudonym.
fn checked(w: &World, a: &pb::HolderAccessesResponse) -> Vec<AuditRecord> {
    let h = a.head.clone().unwrap();
    let head = SignedTreeHead {
        head: TreeHead {
            size: h.size,
            root: h.root.try_into().unwrap(),
            time: UnixTime(h.time),
        },
        signature: h.signature,
    };
    assert!(shikko_pki::tree_head::verify(&head, &w.audit_spki));
    a.accesses
        .iter()
        .map(|e| {
            let r: AuditRecord = serde_json::from_str(&e.record).unwrap();
            assert_eq!(r.holder, a.pseudonym);
            let proof: Vec<[u8; 32]> = e
                .proof
                .iter()
                .map(|p| p.as_slice().try_into().unwrap())
                .collect();
            shikko_info::heads::check_inclusion(&head, r.seq, &e.record, &proof).unwrap();
            // A proof of another record does not pass for this one.
            if r.seq > 1 {
                assert!(
                    shikko_info::heads::check_inclusion(&head, r.seq - 1, &e.record, &proof)
                        .is_err()
                );
            }
            r
        })
        .collect()
}

#[tokio::test]
async fn a_holder_reads_exactly_their_own_accesses_with_proofs() {
    let mut w = World::new(KeyAlgorithm::EcdsaP256).await;
    let tls = w.register("op-a", 1).await;
    let a = w.holder("HA", 100, KeyAlgorithm::EcdsaP256);
    let b = w.holder("HB", 101, KeyAlgorithm::EcdsaP256);
    let a_auth = auth_cert(&w, &a.id, &a.key, 200);
    let b_auth = auth_cert(&w, &b.id, &b.key, 201);
    let (a_der, b_der) = (
        a_auth.cert_der.clone().unwrap(),
        b_auth.cert_der.clone().unwrap(),
    );
    for (h, c) in [(&a.id, a_auth), (&b.id, b_auth)] {
        w.ingest(EventBody::Issue {
            holder: h.clone(),
            cert: c,
            four_info: None,
        });
    }
    // A consents and is asked about; B never consented and is asked about too.
    let mut info = w.client(Some(&tls)).await;
    let req = consent(&mut info, &a, "bank-1", InfoItems::ALL, UnixTime::now()).await;
    info.record_consent(req).await.unwrap();
    info.query(query("bank-1", &a.serial)).await.unwrap();
    info.query(query("bank-1", &a.serial)).await.unwrap();
    let refused = info.query(query("bank-1", &b.serial)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let mut c = holder_client(&w).await;
    let req = request(&mut c, &a_der, &a.key).await;
    let answer = c.accesses(req.clone()).await.unwrap().into_inner();
    let recs = checked(&w, &answer);
    let summary: Vec<(&str, &str, &str)> = recs
        .iter()
        .map(|r| (r.actor.as_str(), r.action.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "op-a",
                "consent.record",
                "recorded:name,address,date_of_birth,sex"
            ),
            ("op-a", "query", "unchanged"),
            ("op-a", "query", "unchanged"),
            ("holder", "holder.accesses", "listed"),
        ]
    );
    assert!(
        recs[1..3]
            .iter()
            .all(|r| r.subject == a.serial.to_hex() && r.provider == "bank-1")
    );
    assert!(!recs.iter().any(|r| r.subject == b.serial.to_hex()));
    assert!(!answer.more);

    // The same challenge and signature again: refused (single use).
    let again = c.accesses(req).await.unwrap_err();
    assert_eq!(again.code(), Code::PermissionDenied, "{again:?}");

    // B sees the refused query about them, and not A's records.
    let answer_b = ask(&mut c, &b_der, &b.key).await.unwrap();
    assert_ne!(answer_b.pseudonym, answer.pseudonym);
    let recs_b = checked(&w, &answer_b);
    let summary_b: Vec<(&str, &str)> = recs_b
        .iter()
        .map(|r| (r.action.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        summary_b,
        vec![("query", "no_consent"), ("holder.accesses", "listed")]
    );

    // B cannot read A's record: A's certificate with B's key does not
    // verify, and no request names a holder.
    let stolen = ask(&mut c, &a_der, &b.key).await.unwrap_err();
    assert_eq!(stolen.code(), Code::Unauthenticated, "{stolen:?}");
    // A certificate the registry did not issue (A's serial, B's key) is refused.
    let forged = auth_cert(&w, &a.id, &b.key, 200).cert_der.unwrap();
    let e = ask(&mut c, &forged, &b.key).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // A signing certificate is no login.
    let e = ask(&mut c, &a.cert_der, &a.key).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    // Paging: one record at a time, after the last seen.
    let (mut after, mut until) = (0, 0);
    let mut paged = Vec::new();
    loop {
        let mut req = request(&mut c, &a_der, &a.key).await;
        req.after_seq = after;
        req.until_seq = until;
        req.limit = 1;
        let page = c.accesses(req).await.unwrap().into_inner();
        until = page.until_seq;
        let recs = checked(&w, &page);
        if let Some(r) = recs.last() {
            after = r.seq;
        }
        paged.extend(recs);
        if !page.more {
            break;
        }
    }
    // The four above and the first page's own reading: the list ends
    // there, though every page is itself a reading.
    assert_eq!(paged.len(), 5, "{paged:?}");
    assert_eq!(
        paged[..4].iter().map(|r| r.seq).collect::<Vec<_>>(),
        recs.iter().map(|r| r.seq).collect::<Vec<_>>()
    );
    assert_eq!(paged[4].action, "holder.accesses");
    assert!(paged.windows(2).all(|p| p[0].seq < p[1].seq));

    // Once A's certificate is revoked, it reads nothing.
    w.ingest(EventBody::Revoke {
        kind: CertKind::CardAuth,
        serial: Serial::from_u128(200).unwrap(),
        reason: RevocationReason::KeyCompromise,
        invalidity_date: None,
    });
    let e = ask(&mut c, &a_der, &a.key).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
}
