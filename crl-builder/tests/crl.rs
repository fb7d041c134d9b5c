//! Every kind of CRL the builder emits (full, partitioned, delta, empty; RSA
//! and ECDSA) against openssl, Python `cryptography` and pkilint, from a real
//! RocksDB store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use shikko_core::{CertKind, PartitionId, RevocationReason};
use shikko_crl::{BuildReport, CrlName, Error, NoProgress, read_summary, verify_file};
use shikko_pki::{KeyAlgorithm, Signer};

fn number_of(report: &BuildReport, kind: CertKind, name: CrlName) -> u64 {
    report
        .crls
        .iter()
        .find(|c| c.kind == kind && c.name == name)
        .unwrap_or_else(|| panic!("{kind:?} {name} not built"))
        .number
}

fn check_full_and_partitions(f: &Fixture, report: &BuildReport) {
    for kind in CertKind::ALL {
        let model = &f.model[&kind];
        let full_number = number_of(report, kind, CrlName::Full);
        let built = report
            .crls
            .iter()
            .find(|c| c.kind == kind && c.name == CrlName::Full)
            .unwrap();
        assert_eq!(
            built.entries,
            model.len() as u64,
            "{kind:?} full entry count"
        );
        check_externally(
            f,
            kind,
            &f.crl_path(kind, CrlName::Full),
            &Expect {
                number: full_number,
                delta_base: None,
                entries: model.iter().map(|(s, e)| (*s, *e)).collect(),
                idp: None,
                freshest: Some(format!(
                    "http://127.0.0.1:8080/crl/{}/delta.crl",
                    kind.issuer_id()
                )),
            },
        );
        if kind.is_signing() {
            for m in f.municipalities() {
                let name = CrlName::Partition(m.code);
                let entries: Vec<_> = model
                    .iter()
                    .filter(|(_, e)| e.partition == m.code)
                    .map(|(s, e)| (*s, *e))
                    .collect();
                check_externally(
                    f,
                    kind,
                    &f.crl_path(kind, name),
                    &Expect {
                        number: number_of(report, kind, name),
                        delta_base: None,
                        entries,
                        idp: Some(&m),
                        freshest: None,
                    },
                );
            }
        } else {
            assert!(
                !report
                    .crls
                    .iter()
                    .any(|c| c.kind == kind && matches!(c.name, CrlName::Partition(_))),
                "{kind:?} is not partitioned"
            );
        }
        // The fresh delta against the new full CRL is empty.
        check_externally(
            f,
            kind,
            &f.crl_path(kind, CrlName::Delta),
            &Expect {
                number: number_of(report, kind, CrlName::Delta),
                delta_base: Some(full_number),
                entries: Vec::new(),
                idp: None,
                freshest: None,
            },
        );
    }
}

fn every_crl_passes_the_external_checks(alg: KeyAlgorithm) {
    let mut f = Fixture::new(alg);
    let builder = f.builder();
    let first = builder.build_full(&CertKind::ALL, &NoProgress).unwrap();
    assert_eq!(first.seq, f.store.last_seq());
    check_full_and_partitions(&f, &first);
    // The expired holder's revoked certificate is not listed.
    let expired = serial(CertKind::CardSigning, EXPIRED_HOLDER);
    assert!(!f.model[&CertKind::CardSigning].contains_key(&expired));

    // A day's changes: a move (signing revoked), a released smartphone hold,
    // a compromised authentication key; and new certificates, which are good
    // and never listed, so no delta mentions them.
    for kind in CertKind::ALL {
        f.ingest(
            shikko_core::EventBody::Issue {
                holder: shikko_core::HolderId::new("H-NEW").unwrap(),
                cert: shikko_core::NewCert {
                    kind,
                    serial: serial(kind, 900),
                    not_before: shikko_core::UnixTime(1_700_000_000),
                    not_after: shikko_core::UnixTime(shikko_core::UnixTime::now().0 + 86_400 * 365),
                    municipality: kind.is_signing().then(|| municipality(131_001)),
                    cert_der: None,
                },
                four_info: kind.is_signing().then(|| shikko_core::FourInfo {
                    name: "新規 太郎".into(),
                    address: "東京都千代田区1-1".into(),
                    date_of_birth: shikko_core::DateOfBirth::parse("319900101").unwrap(),
                    sex: shikko_core::Sex::Male,
                }),
            },
            1_700_300_000,
        );
    }
    f.revoke(
        CertKind::CardSigning,
        2,
        RevocationReason::AffiliationChanged,
        None,
    );
    f.resume(CertKind::PhoneAuth, 3);
    f.revoke(
        CertKind::CardAuth,
        4,
        RevocationReason::KeyCompromise,
        Some(1_699_999_000),
    );
    let delta = builder.build_delta(&CertKind::ALL, &NoProgress).unwrap();
    for kind in CertKind::ALL {
        let base = number_of(&first, kind, CrlName::Full);
        let number = number_of(&delta, kind, CrlName::Delta);
        assert!(number > number_of(&first, kind, CrlName::Delta));
        let entries = match kind {
            CertKind::CardSigning => vec![(serial(kind, 2), f.model[&kind][&serial(kind, 2)])],
            CertKind::CardAuth => vec![(serial(kind, 4), f.model[&kind][&serial(kind, 4)])],
            CertKind::PhoneAuth => vec![(
                serial(kind, 3),
                Expected {
                    reason: Some(RevocationReason::RemoveFromCrl),
                    invalidity: None,
                    partition: PartitionId::WHOLE,
                },
            )],
            CertKind::PhoneSigning => Vec::new(),
        };
        check_externally(
            &f,
            kind,
            &f.crl_path(kind, CrlName::Delta),
            &Expect {
                number,
                delta_base: Some(base),
                entries,
                idp: None,
                freshest: None,
            },
        );
    }

    // The next full CRL lists the day's changes, with higher numbers everywhere.
    let second = builder.build_full(&CertKind::ALL, &NoProgress).unwrap();
    check_full_and_partitions(&f, &second);
    for c in &second.crls {
        let before = first
            .crls
            .iter()
            .find(|p| p.kind == c.kind && p.name == c.name)
            .unwrap();
        assert!(
            c.number > before.number,
            "{:?} {} number went from {} to {}",
            c.kind,
            c.name,
            before.number,
            c.number
        );
    }
}

#[test]
fn rsa_crls_pass_openssl_cryptography_and_pkilint() {
    every_crl_passes_the_external_checks(KeyAlgorithm::Rsa2048);
}

#[test]
fn ecdsa_crls_pass_openssl_cryptography_and_pkilint() {
    every_crl_passes_the_external_checks(KeyAlgorithm::EcdsaP256);
}

#[test]
fn a_delta_needs_a_full_crl_first() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let err = f
        .builder()
        .build_delta(&[CertKind::CardAuth], &NoProgress)
        .unwrap_err();
    assert!(matches!(err, Error::NoBase("auth")), "{err}");
}

#[test]
fn numbering_continues_above_the_published_crls_when_the_state_is_lost() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let builder = f.builder();
    let first = builder
        .build_full(&[CertKind::CardAuth], &NoProgress)
        .unwrap();
    let highest = first.crls.iter().map(|c| c.number).max().unwrap();
    // The numbering state is lost (say, restored from an old backup): the
    // published CRLs still tell where numbering stands, full and delta alike.
    std::fs::remove_file(f.out_dir().join("state.json")).unwrap();
    let second = builder
        .build_full(&[CertKind::CardAuth], &NoProgress)
        .unwrap();
    for c in &second.crls {
        assert!(
            c.number > highest,
            "{} got {} after {highest}",
            c.name,
            c.number
        );
    }
    // No temporary file is left behind.
    let dir = f.crl_path(CertKind::CardAuth, CrlName::Full);
    let leftovers: Vec<_> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_crl_signed_by_another_key_fails_verification() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    f.builder()
        .build_full(&[CertKind::CardAuth], &NoProgress)
        .unwrap();
    let path = f.crl_path(CertKind::CardAuth, CrlName::Full);
    let right = f.cas[&CertKind::CardAuth].0.public_key_der().to_vec();
    let wrong = f.cas[&CertKind::PhoneAuth].0.public_key_der().to_vec();
    let s = verify_file(&path, &right).unwrap();
    let quick = read_summary(&path).unwrap();
    assert_eq!(
        (s.number, s.this_update, s.size),
        (quick.number, quick.this_update, quick.size)
    );
    assert_eq!(s.entries, Some(f.model[&CertKind::CardAuth].len() as u64));
    assert_eq!(quick.entries, None, "a summary does not walk the entries");
    assert!(matches!(
        verify_file(&path, &wrong),
        Err(Error::BadSignature(_))
    ));
    // One flipped octet in an entry breaks the signature.
    let mut bytes = std::fs::read(&path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    let tampered = f.dir.path().join("tampered.crl");
    std::fs::write(&tampered, &bytes).unwrap();
    assert!(verify_file(&tampered, &right).is_err());
    // A truncated file is malformed, not a panic.
    std::fs::write(&tampered, &bytes[..bytes.len() - 10]).unwrap();
    assert!(matches!(
        verify_file(&tampered, &right),
        Err(Error::Malformed { .. })
    ));
}

/// A delta lists the feed's changes since its base. When retention has
/// pruned the feed past the base (or a mirror's feed starts after a
/// snapshot it loaded), a delta would miss changes: a full CRL is built
/// instead, listing everything.
#[test]
fn a_delta_whose_base_the_feed_no_longer_reaches_becomes_a_full_crl() {
    use shikko_core::UnixTime;
    const DAY: i64 = 86_400;
    let mut f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let builder = f.builder();
    let kind = CertKind::CardAuth;
    let first = builder.build_full(&[kind], &NoProgress).unwrap();
    let full_number = number_of(&first, kind, CrlName::Full);
    // Two revocations, the first of them then past the retention window.
    f.revoke(kind, 2, RevocationReason::Unspecified, None);
    let now = UnixTime::now().0;
    f.store.retain(UnixTime(now), 35 * DAY, 400 * DAY).unwrap();
    f.revoke(kind, 3, RevocationReason::Unspecified, None);
    // The first run after a gap prunes nothing; the next does.
    for t in [now + 40 * DAY, now + 40 * DAY + 3600] {
        f.store.retain(UnixTime(t), 35 * DAY, 400 * DAY).unwrap();
    }
    assert!(f.store.first_seq() > first.seq + 1);

    let report = builder.build_delta(&[kind], &NoProgress).unwrap();
    assert!(number_of(&report, kind, CrlName::Full) > full_number);
    let spki = f.cas[&kind].0.public_key_der().to_vec();
    let full = verify_file(&f.crl_path(kind, CrlName::Full), &spki).unwrap();
    assert_eq!(full.entries, Some(f.model[&kind].len() as u64));
    // And the next delta, against the new base, is a delta again.
    f.revoke(kind, 4, RevocationReason::Unspecified, None);
    let next = builder.build_delta(&[kind], &NoProgress).unwrap();
    // A delta CRL and, beside it, a delta filter.
    assert_eq!(
        next.crls.iter().map(|c| c.name).collect::<Vec<_>>(),
        [CrlName::Delta, CrlName::DeltaFilter]
    );
    let delta = verify_file(&f.crl_path(kind, CrlName::Delta), &spki).unwrap();
    assert_eq!(delta.entries, Some(1));
}
