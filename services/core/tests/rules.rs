//! The rules, checked as a state machine: random event sequences over a small
//! universe, with the invariants checked after every event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use shikko_core::*;

const HOLDERS: u8 = 3;
const SERIALS: u128 = 12;

fn holder(i: u8) -> HolderId {
    HolderId::new(format!("H{i}")).unwrap()
}

fn info(v: u8) -> FourInfo {
    FourInfo {
        name: format!("Name {v}"),
        address: format!("Address {v}"),
        date_of_birth: DateOfBirth::parse("319800101").unwrap(),
        sex: Sex::Female,
    }
}

fn muni() -> Municipality {
    Municipality {
        code: PartitionId(131016),
        prefecture: "Tokyo".into(),
        city: "Chiyoda".into(),
    }
}

fn new_cert(kind: CertKind, serial: u128) -> NewCert {
    NewCert {
        kind,
        serial: Serial::from_u128(serial).unwrap(),
        not_before: UnixTime(1_000),
        not_after: UnixTime(1_000_000),
        municipality: kind.is_signing().then(muni),
        cert_der: None,
    }
}

fn kind_strategy() -> impl Strategy<Value = CertKind> {
    prop::sample::select(CertKind::ALL.to_vec())
}

fn reason_strategy() -> impl Strategy<Value = RevocationReason> {
    prop::sample::select(vec![
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::CertificateHold,
        RevocationReason::RemoveFromCrl,
    ])
}

fn body_strategy() -> impl Strategy<Value = EventBody> {
    let h = (0..HOLDERS).prop_map(holder);
    let s = 1..=SERIALS;
    prop_oneof![
        4 => (h.clone(), kind_strategy(), s.clone(), 0..3u8).prop_map(|(holder, kind, serial, v)| {
            EventBody::Issue {
                holder,
                cert: new_cert(kind, serial),
                four_info: kind.is_signing().then(|| info(v)),
            }
        }),
        2 => (kind_strategy(), s.clone(), reason_strategy()).prop_map(|(kind, serial, reason)| {
            EventBody::Revoke {
                kind,
                serial: Serial::from_u128(serial).unwrap(),
                reason,
                invalidity_date: None,
            }
        }),
        2 => (kind_strategy(), s.clone()).prop_map(|(kind, serial)| EventBody::Suspend {
            kind,
            serial: Serial::from_u128(serial).unwrap()
        }),
        2 => (kind_strategy(), s.clone()).prop_map(|(kind, serial)| EventBody::Resume {
            kind,
            serial: Serial::from_u128(serial).unwrap()
        }),
        2 => (h.clone(), 0..3u8, prop::option::of(s.clone())).prop_map(|(holder, v, n)| {
            EventBody::FourInfoChange {
                holder,
                four_info: info(v),
                new_signing: n.map(|n| new_cert(CertKind::CardSigning, n)),
            }
        }),
        1 => h.clone().prop_map(|holder| EventBody::Death { holder }),
        1 => (h.clone(), any::<bool>()).prop_map(|(holder, keep_user_auth)| EventBody::Emigration { holder, keep_user_auth }),
        1 => h.clone().prop_map(|holder| EventBody::CardLoss { holder }),
        1 => h.clone().prop_map(|holder| EventBody::CardReturn { holder }),
        1 => (h.clone(), prop::option::of(s.clone()), prop::option::of(s.clone())).prop_map(|(holder, a, b)| {
            EventBody::PhoneChange {
                holder,
                new_signing: a.map(|n| new_cert(CertKind::PhoneSigning, n)),
                new_auth: b.map(|n| new_cert(CertKind::PhoneAuth, n)),
            }
        }),
        1 => (h, prop::option::of(s.clone()), prop::option::of(s)).prop_map(|(holder, a, b)| {
            EventBody::Renewal {
                holder,
                new_signing: a.map(|n| new_cert(CertKind::CardSigning, n)),
                new_auth: b.map(|n| new_cert(CertKind::CardAuth, n)),
            }
        }),
    ]
}

fn check_invariants(before: &MemoryState, after: &MemoryState) -> Result<(), TestCaseError> {
    for (key, old) in &before.certs {
        let new = after
            .certs
            .get(key)
            .ok_or_else(|| TestCaseError::fail("a certificate disappeared"))?;
        // A serial is issued once: identity never changes.
        prop_assert_eq!(&old.holder, &new.holder);
        prop_assert_eq!(old.not_before, new.not_before);
        match (old.status, new.status) {
            // A revoked certificate stays revoked, unchanged.
            (CertStatus::Revoked { .. }, s) => prop_assert_eq!(old.status, s),
            // Only a phone-auth hold can return to good.
            (CertStatus::OnHold { .. }, CertStatus::Good) => {
                prop_assert_eq!(key.0, CertKind::PhoneAuth)
            }
            _ => {}
        }
    }
    for c in after.certs.values() {
        if let CertStatus::Revoked { reason, .. } = c.status {
            prop_assert!(
                reason.allowed_in_revoke_event(),
                "reason {reason} on a revoked entry"
            );
        }
        prop_assert_eq!(c.partition != PartitionId::WHOLE, c.kind.is_signing());
    }
    for h in after.holders.values() {
        for kind in CertKind::ALL {
            if let Some(serial) = h.live(kind) {
                let c = after
                    .certs
                    .get(&(kind, serial))
                    .ok_or_else(|| TestCaseError::fail("live slot names an unknown certificate"))?;
                prop_assert!(c.status.is_live(), "live slot names a revoked certificate");
                prop_assert_eq!(&c.holder, &h.id);
            }
        }
        // Every certificate of the holder that is live is in its live slot.
        for c in after
            .certs
            .values()
            .filter(|c| c.holder == h.id && c.status.is_live())
        {
            prop_assert_eq!(h.live(c.kind), Some(c.serial));
        }
        match h.state {
            HolderState::Deceased { .. } => {
                prop_assert!(h.live.iter().all(Option::is_none))
            }
            HolderState::Emigrated { .. } => prop_assert!(
                CertKind::ALL
                    .iter()
                    .filter(|k| **k != CertKind::CardAuth)
                    .all(|k| h.live(*k).is_none())
            ),
            HolderState::Active => {}
        }
    }
    for ((kind, old), new) in &after.links {
        prop_assert_eq!(*kind, CertKind::CardSigning);
        prop_assert!(old != new);
        prop_assert!(after.certs.contains_key(&(*kind, *new)));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_for_any_event_sequence(bodies in prop::collection::vec(body_strategy(), 1..60)) {
        let mut state = MemoryState::default();
        for (i, body) in bodies.into_iter().enumerate() {
            let event = Event {
                id: EventId::new(format!("e{i}")).unwrap(),
                time: UnixTime(2_000 + i as i64),
                body,
            };
            let before = state.clone();
            match state.ingest(&event) {
                Ok(_) => check_invariants(&before, &state)?,
                // A rejected event changes nothing.
                Err(_) => prop_assert_eq!(&before, &state),
            }
        }
    }

    #[test]
    fn serial_json_round_trips(v in 1u128..) {
        let s = Serial::from_u128(v).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        prop_assert_eq!(serde_json::from_str::<Serial>(&json).unwrap(), s);
        prop_assert_eq!(Serial::from_der_integer(&s.to_der_integer()).unwrap(), s);
    }
}

fn ev(i: u32, body: EventBody) -> Event {
    Event {
        id: EventId::new(format!("t{i}")).unwrap(),
        time: UnixTime(5_000 + i64::from(i)),
        body,
    }
}

fn serial(n: u128) -> Serial {
    Serial::from_u128(n).unwrap()
}

fn issue_all(state: &mut MemoryState) {
    for (i, kind) in CertKind::ALL.into_iter().enumerate() {
        state
            .ingest(&ev(
                i as u32,
                EventBody::Issue {
                    holder: holder(0),
                    cert: new_cert(kind, 100 + i as u128),
                    four_info: kind.is_signing().then(|| info(0)),
                },
            ))
            .unwrap();
    }
}

fn reason_of(state: &MemoryState, kind: CertKind, n: u128) -> Option<RevocationReason> {
    match state.certs[&(kind, serial(n))].status {
        CertStatus::Revoked { reason, .. } => Some(reason),
        _ => None,
    }
}

#[test]
fn a_move_revokes_signing_with_affiliation_changed_and_links_successor() {
    let mut s = MemoryState::default();
    issue_all(&mut s);
    s.ingest(&ev(
        10,
        EventBody::FourInfoChange {
            holder: holder(0),
            four_info: info(1),
            new_signing: None,
        },
    ))
    .unwrap();
    assert_eq!(
        reason_of(&s, CertKind::CardSigning, 100),
        Some(RevocationReason::AffiliationChanged)
    );
    assert_eq!(
        reason_of(&s, CertKind::PhoneSigning, 102),
        Some(RevocationReason::AffiliationChanged)
    );
    assert_eq!(
        reason_of(&s, CertKind::CardAuth, 101),
        None,
        "user-auth is kept"
    );
    // No successor yet: the chain ends at the revoked serial.
    assert_eq!(s.newest(CertKind::CardSigning, serial(100)), serial(100));
    s.ingest(&ev(
        11,
        EventBody::Issue {
            holder: holder(0),
            cert: new_cert(CertKind::CardSigning, 200),
            four_info: None,
        },
    ))
    .unwrap();
    assert_eq!(s.newest(CertKind::CardSigning, serial(100)), serial(200));
    assert_eq!(s.holders[&holder(0)].four_info, Some(info(1)));
}

#[test]
fn holds_end_in_revocation_except_phone_auth() {
    let mut s = MemoryState::default();
    issue_all(&mut s);
    s.ingest(&ev(10, EventBody::CardLoss { holder: holder(0) }))
        .unwrap();
    let err = s
        .ingest(&ev(
            11,
            EventBody::Resume {
                kind: CertKind::CardAuth,
                serial: serial(101),
            },
        ))
        .unwrap_err();
    assert_eq!(err.rule(), "hold-not-releasable");
    s.ingest(&ev(
        12,
        EventBody::Suspend {
            kind: CertKind::PhoneAuth,
            serial: serial(103),
        },
    ))
    .unwrap();
    s.ingest(&ev(
        13,
        EventBody::Resume {
            kind: CertKind::PhoneAuth,
            serial: serial(103),
        },
    ))
    .unwrap();
    assert_eq!(
        s.certs[&(CertKind::PhoneAuth, serial(103))].status,
        CertStatus::Good
    );
    s.ingest(&ev(
        14,
        EventBody::Revoke {
            kind: CertKind::CardAuth,
            serial: serial(101),
            reason: RevocationReason::KeyCompromise,
            invalidity_date: Some(UnixTime(5_000)),
        },
    ))
    .unwrap();
    assert_eq!(
        reason_of(&s, CertKind::CardAuth, 101),
        Some(RevocationReason::KeyCompromise)
    );
}

#[test]
fn death_and_emigration_revoke_with_cessation() {
    let mut s = MemoryState::default();
    issue_all(&mut s);
    s.ingest(&ev(
        10,
        EventBody::Emigration {
            holder: holder(0),
            keep_user_auth: true,
        },
    ))
    .unwrap();
    assert_eq!(reason_of(&s, CertKind::CardAuth, 101), None);
    for (k, n) in [
        (CertKind::CardSigning, 100),
        (CertKind::PhoneSigning, 102),
        (CertKind::PhoneAuth, 103),
    ] {
        assert_eq!(
            reason_of(&s, k, n),
            Some(RevocationReason::CessationOfOperation)
        );
    }
    let err = s
        .ingest(&ev(11, EventBody::Death { holder: holder(0) }))
        .unwrap_err();
    assert_eq!(err.rule(), "holder-inactive");
}

#[test]
fn rule_breaking_events_name_their_rule() {
    let mut s = MemoryState::default();
    issue_all(&mut s);
    let dup = s
        .ingest(&ev(
            20,
            EventBody::Issue {
                holder: holder(1),
                cert: new_cert(CertKind::CardAuth, 101),
                four_info: None,
            },
        ))
        .unwrap_err();
    assert_eq!(dup.rule(), "serial-issued-once");
    let unknown = s
        .ingest(&ev(
            21,
            EventBody::Revoke {
                kind: CertKind::CardAuth,
                serial: serial(999),
                reason: RevocationReason::Unspecified,
                invalidity_date: None,
            },
        ))
        .unwrap_err();
    assert_eq!(unknown.rule(), "unknown-serial");
    assert!(unknown.to_string().contains("3E7"), "{unknown}");
    let hold = s
        .ingest(&ev(
            22,
            EventBody::Revoke {
                kind: CertKind::CardAuth,
                serial: serial(101),
                reason: RevocationReason::CertificateHold,
                invalidity_date: None,
            },
        ))
        .unwrap_err();
    assert_eq!(hold.rule(), "reason-not-allowed");
}

#[test]
fn events_read_from_json() {
    let json = r#"{"id":"ev-1","time":1700000000,"body":{"type":"revoke","kind":"phone-auth","serial":"0A1B","reason":"keyCompromise"}}"#;
    let e: Event = serde_json::from_str(json).unwrap();
    assert!(matches!(
        e.body,
        EventBody::Revoke {
            kind: CertKind::PhoneAuth,
            ..
        }
    ));
    let bad = r#"{"id":"ev-1","time":1,"body":{"type":"revoke","kind":"phone-auth","serial":"0A1B","reason":"keyCompromise","x":1}}"#;
    assert!(serde_json::from_str::<Event>(bad).is_err());
}
