//! The compact revocation filters the builder publishes beside the CRLs:
//! for every certificate of the fixture's registry (good, revoked, held,
//! released, expired, issued after the full filter), the client's answer
//! through the published full filter and the newest delta equals the
//! registry's; a mirror that followed the feed, or loaded a snapshot of
//! every status, publishes filters with the same answers; a mirror without
//! its certificate index publishes CRLs but no filter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use shikko_core::{CertKind, EventBody, HolderId, NewCert, RevocationReason, Serial, UnixTime};
use shikko_crl::{Builder, CrlIssuer, CrlName, NoProgress};
use shikko_filter::{Answer, FilterSet};
use shikko_pki::{KeyAlgorithm, Signer};
use shikko_store::MirrorStore;

/// What the registry says of one certificate, kept by the test itself.
#[derive(Debug, Clone, Copy)]
struct Cert {
    not_before: i64,
    not_after: i64,
}

/// Every certificate the test issued, per issuer: the fixture's holders and
/// the ones issued later.
fn population(extra: &BTreeMap<(CertKind, Serial), Cert>) -> Vec<(CertKind, Serial, Cert)> {
    let now = UnixTime::now().0;
    let mut out = Vec::new();
    for kind in CertKind::ALL {
        for h in 0..HOLDERS {
            let not_after = if h == EXPIRED_HOLDER {
                1_650_000_000
            } else {
                now + 5 * 365 * 86_400 - 3600
            };
            out.push((
                kind,
                serial(kind, h),
                Cert {
                    not_before: 1_640_000_000,
                    not_after,
                },
            ));
        }
    }
    out.extend(extra.iter().map(|((k, s), c)| (*k, *s, *c)));
    out
}

fn filters(out: &Path, kind: CertKind, ca: &[u8]) -> FilterSet {
    let dir = out.join(kind.issuer_id());
    let now = UnixTime::now();
    let mut set =
        FilterSet::new(&std::fs::read(dir.join("full.filter")).unwrap(), ca, now).unwrap();
    if let Ok(delta) = std::fs::read(dir.join("delta.filter")) {
        set.apply_delta(&delta, now).unwrap();
    }
    set
}

/// Every certificate's answer equals the registry's: listed -> revoked,
/// else good; expired -> not covered; issued after the newest filter ->
/// not covered.
fn check_all(f: &Fixture, out: &Path, extra: &BTreeMap<(CertKind, Serial), Cert>, what: &str) {
    let sets: BTreeMap<CertKind, FilterSet> = CertKind::ALL
        .into_iter()
        .map(|k| (k, filters(out, k, f.ca_der(k))))
        .collect();
    let mut counts = BTreeMap::<&str, usize>::new();
    for (kind, s, c) in population(extra) {
        let set = &sets[&kind];
        let covered_until = set.delta().unwrap_or(set.full()).header.covered_until;
        let now = UnixTime::now().0;
        let expected = if c.not_after <= now || c.not_before > covered_until {
            Answer::NotCovered
        } else if f.model[&kind].contains_key(&s) {
            Answer::Revoked
        } else {
            Answer::Good
        };
        let got = set.check_serial(&s, c.not_before, c.not_after);
        assert_eq!(got, expected, "{what}: {} {s:?}", kind.issuer_id());
        *counts
            .entry(match got {
                Answer::Good => "good",
                Answer::Revoked => "revoked",
                Answer::NotCovered => "not covered",
            })
            .or_default() += 1;
    }
    // The population exercises every answer.
    assert_eq!(counts.len(), 3, "{what}: {counts:?}");
}

fn issue(f: &mut Fixture, kind: CertKind, h: u32, not_before: i64) -> ((CertKind, Serial), Cert) {
    let not_after = UnixTime::now().0 + 365 * 86_400;
    f.ingest(
        EventBody::Issue {
            holder: HolderId::new(format!("N{h:04}")).unwrap(),
            cert: NewCert {
                kind,
                serial: serial(kind, h),
                not_before: UnixTime(not_before),
                not_after: UnixTime(not_after),
                municipality: kind.is_signing().then(|| municipality(131_001)),
                cert_der: None,
            },
            four_info: kind.is_signing().then(|| shikko_core::FourInfo {
                name: format!("氏名 {h}"),
                address: "東京都千代田区1-1".into(),
                date_of_birth: shikko_core::DateOfBirth::parse("319800101").unwrap(),
                sex: shikko_core::Sex::Male,
            }),
        },
        not_before,
    );
    (
        (kind, serial(kind, h)),
        Cert {
            not_before,
            not_after,
        },
    )
}

#[test]
fn filters_answer_every_certificate_as_the_registry_does_through_full_and_delta() {
    let mut f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let builder = f.builder();
    let mut extra = BTreeMap::new();
    builder.build_full(&CertKind::ALL, &NoProgress).unwrap();
    check_all(&f, &f.out_dir(), &extra, "full");

    // A second later: holds released and new ones, revocations, and
    // certificates issued after the full filter (one revoked at once).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let later = UnixTime::now().0;
    f.resume(CertKind::PhoneAuth, 3);
    f.resume(CertKind::PhoneAuth, 9);
    f.suspend(CertKind::PhoneAuth, 8);
    f.revoke(CertKind::CardAuth, 7, RevocationReason::KeyCompromise, None);
    for (i, kind) in CertKind::ALL.into_iter().enumerate() {
        let (k, c) = issue(&mut f, kind, 200 + i as u32, later);
        extra.insert(k, c);
        let (k, c) = issue(&mut f, kind, 300 + i as u32, later);
        extra.insert(k, c);
        // Revoked after its notBefore (the fixture's revocations are older).
        let s = serial(kind, 300 + i as u32);
        f.ingest(
            EventBody::Revoke {
                kind,
                serial: s,
                reason: RevocationReason::Superseded,
                invalidity_date: None,
            },
            later + 1,
        );
        f.model.get_mut(&kind).unwrap().insert(
            s,
            Expected {
                reason: Some(RevocationReason::Superseded),
                invalidity: None,
                partition: shikko_core::PartitionId::WHOLE,
            },
        );
    }
    // The full filter alone: the new certificates are not covered, and it
    // still says what it said (the model moved on: only old answers hold).
    let full_only = filters(
        &f.out_dir(),
        CertKind::CardAuth,
        f.ca_der(CertKind::CardAuth),
    );
    assert_eq!(
        full_only.check_serial(&serial(CertKind::CardAuth, 200), later, later + 86_400),
        Answer::NotCovered
    );
    builder.build_delta(&CertKind::ALL, &NoProgress).unwrap();
    check_all(&f, &f.out_dir(), &extra, "full + delta");

    // A hold released after a first delta, the newest delta replaces it.
    f.resume(CertKind::PhoneAuth, 8);
    f.suspend(CertKind::PhoneAuth, 3);
    builder.build_delta(&CertKind::ALL, &NoProgress).unwrap();
    check_all(&f, &f.out_dir(), &extra, "full + second delta");

    // A new full filter carries everything; its delta is gone until the next.
    builder.build_full(&CertKind::ALL, &NoProgress).unwrap();
    assert!(
        !f.crl_path(CertKind::CardAuth, CrlName::DeltaFilter)
            .exists()
    );
    check_all(&f, &f.out_dir(), &extra, "second full");
}

fn mirror_builder(f: &Fixture, mirror: &MirrorStore, out: &Path) -> Builder {
    let issuers = f
        .cas
        .iter()
        .map(|(k, (key, cert))| {
            CrlIssuer::new(*k, key.clone() as std::sync::Arc<dyn Signer>, cert).unwrap()
        })
        .collect();
    let mut cfg = f.config();
    cfg.out_dir = out.to_path_buf();
    Builder::new(mirror.shared(), issuers, cfg)
}

#[test]
fn a_mirror_builds_the_same_answers_and_one_without_its_certificate_index_builds_none() {
    let f = Fixture::new(KeyAlgorithm::Rsa2048);
    let extra = BTreeMap::new();
    let tmp = tempfile::tempdir().unwrap();

    // Followed from the first record.
    let followed = MirrorStore::open(&tmp.path().join("followed")).unwrap();
    followed
        .apply_changes(&f.store.changes_since(1, 100_000).unwrap())
        .unwrap();
    assert!(followed.has_issued_index().unwrap());
    let out = tmp.path().join("out-followed");
    mirror_builder(&f, &followed, &out)
        .build_full(&CertKind::ALL, &NoProgress)
        .unwrap();
    check_all(&f, &out, &extra, "a followed mirror");

    // Loaded from a snapshot of every status.
    let loaded = MirrorStore::open(&tmp.path().join("loaded")).unwrap();
    let snap = f.store.snapshot().unwrap();
    loaded.begin_reload().unwrap();
    loaded.reload(&snap.municipalities().unwrap(), &[]).unwrap();
    snap.scan_statuses::<shikko_store::Error>(5, |changes| loaded.reload(&[], &changes))
        .unwrap();
    loaded.end_reload(snap.seq(), true).unwrap();
    let out = tmp.path().join("out-loaded");
    mirror_builder(&f, &loaded, &out)
        .build_full(&CertKind::ALL, &NoProgress)
        .unwrap();
    check_all(&f, &out, &extra, "a mirror loaded from a snapshot");

    // Loaded from the listed certificates only (as mirrors did before the
    // filters): the CRLs are built, the filter is refused, none published.
    let listed = MirrorStore::open(&tmp.path().join("listed")).unwrap();
    listed.begin_reload().unwrap();
    listed.reload(&snap.municipalities().unwrap(), &[]).unwrap();
    snap.scan_listed::<shikko_store::Error>(5, |changes| listed.reload(&[], &changes))
        .unwrap();
    listed.end_reload(snap.seq(), false).unwrap();
    let out = tmp.path().join("out-listed");
    let report = mirror_builder(&f, &listed, &out)
        .build_full(&[CertKind::CardAuth], &NoProgress)
        .unwrap();
    assert_eq!(report.filter_failures.len(), 1);
    assert_eq!(
        report.filter_failures[0].1,
        shikko_crl::Error::Store(shikko_store::Error::NoIssuedIndex).to_string()
    );
    assert!(report.crls.iter().all(|c| !c.name.is_filter()));
    assert!(out.join("auth/full.crl").exists(), "the CRLs are published");
    assert!(!out.join("auth/full.filter").exists());
    // Such a mirror forgets its state at the role's start, to load a snapshot.
    assert!(listed.reload_without_issued_index().unwrap());
    assert_eq!(listed.last_seq(), 0);
    assert!(!followed.reload_without_issued_index().unwrap());
}
