//! Answers keyed by the person (issue 13), checked over random histories of
//! one holder: every way a signing certificate is replaced (a move, a name
//! change, renewal, card return and a new card, loss, key compromise and
//! re-issue, emigration and return, expiry and a new issue, a new phone),
//! with the user-authentication certificates beside them (the link).
//! A model that knows nothing of the rules' internals keeps, per kind, the
//! certificate the holder was last given and whether it was taken away;
//! after every event, a query on any serial the holder ever had must answer
//! about that certificate (if it is still within its validity), and tell a
//! newer certificate with changed consented items (`Changed`) from one
//! without (`Renewed`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use proptest::prelude::*;
use shikko_core::memory::MemoryState;
use shikko_core::person::{current_of, info_outcome};
use shikko_core::*;

const YEAR: i64 = 365 * 86_400;
/// Validity of every certificate here: four years (a 5th birthday, roughly).
const VALIDITY: i64 = 4 * YEAR;

#[derive(Debug, Clone)]
enum Op {
    Move { address: u8, new_card: bool },
    NameChange { name: u8, new_card: bool },
    IssueCard,
    IssuePhone,
    IssueAuth { phone: bool },
    Renewal,
    CardReturn,
    CardLoss,
    RevokeCard { reason: RevocationReason },
    PhoneChange,
    Emigration,
    Advance { days: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..3u8, any::<bool>()).prop_map(|(address, new_card)| Op::Move { address, new_card }),
        1 => (0..3u8, any::<bool>()).prop_map(|(name, new_card)| Op::NameChange { name, new_card }),
        3 => Just(Op::IssueCard),
        2 => Just(Op::IssuePhone),
        2 => any::<bool>().prop_map(|phone| Op::IssueAuth { phone }),
        2 => Just(Op::Renewal),
        1 => Just(Op::CardReturn),
        1 => Just(Op::CardLoss),
        1 => prop::sample::select(vec![
            RevocationReason::KeyCompromise,
            RevocationReason::Unspecified,
            RevocationReason::Superseded,
        ])
        .prop_map(|reason| Op::RevokeCard { reason }),
        1 => Just(Op::PhoneChange),
        1 => Just(Op::Emigration),
        3 => (1..900u16).prop_map(|days| Op::Advance { days }),
    ]
}

fn info(name: u8, address: u8) -> FourInfo {
    FourInfo {
        name: format!("Name {name}"),
        address: format!("Address {address}"),
        date_of_birth: DateOfBirth::parse("319800101").unwrap(),
        sex: Sex::Female,
    }
}

/// What the model knows: per kind, the certificate last given and not
/// taken away (serial, notAfter), the 4 information each serial was issued
/// with, and every serial ever issued.
struct Model {
    now: i64,
    next_serial: u128,
    name: u8,
    address: u8,
    current: HashMap<CertKind, (Serial, i64)>,
    issued_with: HashMap<(CertKind, Serial), (u8, u8)>,
    ever: Vec<(CertKind, Serial)>,
    gone: bool,
    /// The card signing certificate on hold after a loss (revocable).
    held: Option<Serial>,
}

fn muni() -> Municipality {
    Municipality {
        code: PartitionId(131016),
        prefecture: "Tokyo".into(),
        city: "Chiyoda".into(),
    }
}

/// A card signing certificate valid for [`VALIDITY`] from `from`.
fn cert(serial: u128, from: i64) -> NewCert {
    NewCert {
        kind: CertKind::CardSigning,
        serial: Serial::from_u128(serial).unwrap(),
        not_before: UnixTime(from),
        not_after: UnixTime(from + VALIDITY),
        municipality: Some(muni()),
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

/// An event, and what the model does if the registry accepts it.
type Step = (EventBody, Box<dyn FnOnce(&mut Model)>);

fn holder() -> HolderId {
    HolderId::new("H1").unwrap()
}

impl Model {
    fn new_cert(&mut self, kind: CertKind) -> NewCert {
        self.next_serial += 1;
        NewCert {
            kind,
            serial: Serial::from_u128(self.next_serial).unwrap(),
            not_before: UnixTime(self.now),
            not_after: UnixTime(self.now + VALIDITY),
            municipality: kind.is_signing().then(muni),
            cert_der: None,
        }
    }

    fn given(&mut self, c: &NewCert) {
        if c.kind == CertKind::CardSigning {
            self.held = None;
        }
        self.current.insert(c.kind, (c.serial, c.not_after.0));
        self.issued_with
            .insert((c.kind, c.serial), (self.name, self.address));
        self.ever.push((c.kind, c.serial));
    }

    /// A new signing and user-authentication certificate in one event
    /// (`body`: a renewal, a phone change), and what the model does if it
    /// is accepted.
    fn new_pair(
        &mut self,
        signing: CertKind,
        auth: CertKind,
        body: fn(HolderId, NewCert, NewCert) -> EventBody,
    ) -> Step {
        let c = self.new_cert(signing);
        let a = self.new_cert(auth);
        let given = (c.clone(), a.clone());
        (
            body(holder(), c, a),
            Box::new(move |m: &mut Model| {
                m.given(&given.0);
                m.given(&given.1);
            }),
        )
    }

    /// A 4-information change, and what the model does if it is accepted.
    fn info_change(&mut self, name: u8, address: u8, new_card: bool) -> Step {
        let new = new_card.then(|| self.new_cert(CertKind::CardSigning));
        let n = new.clone();
        (
            EventBody::FourInfoChange {
                holder: holder(),
                four_info: info(name, address),
                new_signing: new,
            },
            Box::new(move |m: &mut Model| {
                m.current.remove(&CertKind::CardSigning);
                m.current.remove(&CertKind::PhoneSigning);
                m.held = None;
                m.name = name;
                m.address = address;
                if let Some(c) = n {
                    m.given(&c);
                }
            }),
        )
    }

    /// The event for `op`, and what the model does if the registry accepts it.
    fn event(&mut self, op: &Op) -> Option<Step> {
        let h = holder();
        Some(match op {
            Op::Move { address, new_card } => self.info_change(self.name, *address, *new_card),
            Op::NameChange { name, new_card } => self.info_change(*name, self.address, *new_card),
            Op::IssueCard | Op::IssuePhone => {
                let kind = if matches!(op, Op::IssueCard) {
                    CertKind::CardSigning
                } else {
                    CertKind::PhoneSigning
                };
                let c = self.new_cert(kind);
                let given = c.clone();
                (
                    EventBody::Issue {
                        holder: h,
                        cert: c,
                        four_info: Some(info(self.name, self.address)),
                    },
                    Box::new(move |m: &mut Model| {
                        m.gone = false;
                        m.given(&given);
                    }),
                )
            }
            Op::IssueAuth { phone } => {
                let kind = if *phone {
                    CertKind::PhoneAuth
                } else {
                    CertKind::CardAuth
                };
                let c = self.new_cert(kind);
                let given = c.clone();
                (
                    EventBody::Issue {
                        holder: h,
                        cert: c,
                        four_info: None,
                    },
                    // Back from abroad with a card that has no signing
                    // certificate: resident again, no new one to answer.
                    Box::new(move |m: &mut Model| {
                        m.gone = false;
                        m.given(&given);
                    }),
                )
            }
            Op::Renewal => {
                self.new_pair(CertKind::CardSigning, CertKind::CardAuth, |holder, c, a| {
                    EventBody::Renewal {
                        holder,
                        new_signing: Some(c),
                        new_auth: Some(a),
                    }
                })
            }
            Op::CardReturn => (
                EventBody::CardReturn { holder: h },
                Box::new(|m: &mut Model| {
                    m.current.remove(&CertKind::CardSigning);
                    m.current.remove(&CertKind::CardAuth);
                    m.held = None;
                }),
            ),
            Op::CardLoss => (
                EventBody::CardLoss { holder: h },
                Box::new(|m: &mut Model| {
                    m.held = m.current.remove(&CertKind::CardSigning).map(|(s, _)| s);
                    m.current.remove(&CertKind::CardAuth);
                }),
            ),
            Op::RevokeCard { reason } => {
                let serial = self
                    .current
                    .get(&CertKind::CardSigning)
                    .map(|(s, _)| *s)
                    .or(self.held)?;
                (
                    EventBody::Revoke {
                        kind: CertKind::CardSigning,
                        serial,
                        reason: *reason,
                        invalidity_date: None,
                    },
                    Box::new(|m: &mut Model| {
                        m.current.remove(&CertKind::CardSigning);
                        m.held = None;
                    }),
                )
            }
            Op::PhoneChange => self.new_pair(
                CertKind::PhoneSigning,
                CertKind::PhoneAuth,
                |holder, c, a| EventBody::PhoneChange {
                    holder,
                    new_signing: Some(c),
                    new_auth: Some(a),
                },
            ),
            Op::Emigration => (
                EventBody::Emigration {
                    holder: h,
                    keep_user_auth: false,
                },
                Box::new(|m: &mut Model| {
                    m.current.clear();
                    m.held = None;
                    m.gone = true;
                }),
            ),
            Op::Advance { .. } => return None,
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_serial_the_holder_ever_had_answers_about_their_current_certificate(
        ops in prop::collection::vec(op(), 1..40)
    ) {
        let mut state = MemoryState::default();
        let mut m = Model {
            now: 10 * YEAR,
            next_serial: 0x1000,
            name: 0,
            address: 0,
            current: HashMap::new(),
            issued_with: HashMap::new(),
            ever: Vec::new(),
            gone: false,
            held: None,
        };
        // The holder's first card.
        let first = m.new_cert(CertKind::CardSigning);
        state.ingest(&Event {
            id: EventId::new("e0").unwrap(),
            time: UnixTime(m.now),
            body: EventBody::Issue { holder: holder(), cert: first.clone(), four_info: Some(info(0, 0)) },
        }).unwrap();
        m.given(&first);
        for (i, op) in ops.iter().enumerate() {
            if let Op::Advance { days } = op {
                m.now += i64::from(*days) * 86_400;
            } else if let Some((body, then)) = m.event(op) {
                let e = Event { id: EventId::new(format!("e{}", i + 1)).unwrap(), time: UnixTime(m.now), body };
                if state.ingest(&e).is_ok() {
                    then(&mut m);
                }
            }
            let now = UnixTime(m.now);
            for &(kind, serial) in &m.ever {
                let cur = current_of(&state, kind, &serial, now).unwrap().expect("a serial it issued");
                let want = m.current.get(&kind).filter(|(_, not_after)| m.now < *not_after).map(|(s, _)| *s);
                prop_assert_eq!(cur.current.as_ref().map(|c| c.serial), want, "{:?} {} after {:?}", kind, serial, op);
                if !kind.is_signing() {
                    // The user-authentication link: any serial leads to the
                    // holder (one pseudonym), and the holder's live
                    // certificate of the kind is the current one.
                    prop_assert_eq!(&cur.holder.id, &holder());
                    let live = cur.holder.live(kind).filter(|s| {
                        state.cert(kind, s).unwrap().is_some_and(|c| person::good_at(&c, now))
                    });
                    prop_assert_eq!(live, want, "live {:?} after {:?}", kind, op);
                    continue;
                }
                // The 4-information answer, for a consent to the address only and to all.
                for items in [InfoItems::ADDRESS, InfoItems::NAME, InfoItems::ALL] {
                    let got = info_outcome(&cur, items);
                    let expected = if m.gone {
                        "emigrated"
                    } else {
                        match want {
                            None => "no_new_certificate",
                            Some(s) if s == serial => "unchanged",
                            Some(s) => {
                                let then = m.issued_with[&(kind, serial)];
                                let now_ = m.issued_with[&(kind, s)];
                                let differs = (items.contains(InfoItems::NAME) && then.0 != now_.0)
                                    || (items.contains(InfoItems::ADDRESS) && then.1 != now_.1);
                                if differs { "changed" } else { "renewed" }
                            }
                        }
                    };
                    prop_assert_eq!(got.name(), expected, "{:?} {} {:?} after {:?}", kind, serial, items, op);
                    if let InfoOutcome::Changed { current_serial, .. } | InfoOutcome::Renewed { current_serial } = &got {
                        prop_assert_eq!(Some(*current_serial), want);
                    }
                    if let InfoOutcome::Changed { info, .. } = &got {
                        prop_assert_eq!(info.address.clone(), items.contains(InfoItems::ADDRESS).then(|| format!("Address {}", m.address)));
                    }
                }
            }
        }
    }
}

/// Expiry is time: a certificate past its notAfter frees the slot (a plain
/// issue follows it), is not revoked by later events, and a renewal of an
/// expired one only issues.
#[test]
fn an_expired_certificate_frees_its_holders_slot() {
    let mut state = MemoryState::default();
    let h = holder();
    let t0 = 10 * YEAR;
    state
        .ingest(&ev(
            "a",
            t0,
            EventBody::Issue {
                holder: h.clone(),
                cert: cert(1, t0),
                four_info: Some(info(0, 0)),
            },
        ))
        .unwrap();
    // Before expiry: a second card signing certificate is refused.
    let early = state.ingest(&ev(
        "b",
        t0 + YEAR,
        EventBody::Issue {
            holder: h.clone(),
            cert: cert(2, t0 + YEAR),
            four_info: None,
        },
    ));
    assert!(
        matches!(early, Err(RuleViolation::LiveCertificateExists { .. })),
        "{early:?}"
    );
    // After: accepted as a plain issue, the old one not revoked.
    let later = t0 + VALIDITY + 1;
    state
        .ingest(&ev(
            "c",
            later,
            EventBody::Issue {
                holder: h.clone(),
                cert: cert(3, later),
                four_info: None,
            },
        ))
        .unwrap();
    let old = state.certs[&(CertKind::CardSigning, Serial::from_u128(1).unwrap())].clone();
    assert_eq!(old.status, CertStatus::Good, "expired, not revoked");
    let cur = current_of(
        &state,
        CertKind::CardSigning,
        &Serial::from_u128(1).unwrap(),
        UnixTime(later),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        cur.current.map(|c| c.serial),
        Some(Serial::from_u128(3).unwrap())
    );
    assert_eq!(
        info_outcome(&cur_again(&state, later), InfoItems::ALL).name(),
        "renewed"
    );
    // A death later does not revoke the expired one.
    let effects = state
        .ingest(&ev("d", later + 10, EventBody::Death { holder: h.clone() }))
        .unwrap();
    assert!(!effects.iter().any(
        |e| matches!(e, rules::Effect::PutCert(c) if c.serial == Serial::from_u128(1).unwrap())
    ));

    fn cur_again(state: &MemoryState, now: i64) -> person::Current {
        current_of(
            state,
            CertKind::CardSigning,
            &Serial::from_u128(1).unwrap(),
            UnixTime(now),
        )
        .unwrap()
        .unwrap()
    }
}

/// Each item's digest depends on that item only, and on its value only.
#[test]
fn item_digests_follow_each_item() {
    let a = info(0, 0).item_digests();
    let moved = info(0, 1).item_digests();
    assert_eq!((a[0], a[2], a[3]), (moved[0], moved[2], moved[3]));
    assert_ne!(a[1], moved[1]);
    assert_eq!(info(0, 0).item_digests(), a, "back to the same address");
    let renamed = info(1, 0).item_digests();
    assert_ne!(a[0], renamed[0]);
    assert_eq!(a[1], renamed[1]);
}

/// A town that revoked the card signing certificate first (affiliationChanged)
/// and then sends the 4-information change with the new certificate: the
/// new one is linked from the revoked one (the links GetStatus follows).
/// And a card whose certificates expired can still be returned.
#[test]
fn a_late_successor_is_linked_and_an_expired_card_can_be_returned() {
    let mut state = MemoryState::default();
    let h = holder();
    let t0 = 10 * YEAR;
    state
        .ingest(&ev(
            "a",
            t0,
            EventBody::Issue {
                holder: h.clone(),
                cert: cert(1, t0),
                four_info: Some(info(0, 0)),
            },
        ))
        .unwrap();
    state
        .ingest(&ev(
            "b",
            t0 + 10,
            EventBody::Revoke {
                kind: CertKind::CardSigning,
                serial: Serial::from_u128(1).unwrap(),
                reason: RevocationReason::AffiliationChanged,
                invalidity_date: None,
            },
        ))
        .unwrap();
    state
        .ingest(&ev(
            "c",
            t0 + 20,
            EventBody::FourInfoChange {
                holder: h.clone(),
                four_info: info(0, 1),
                new_signing: Some(cert(2, t0 + 20)),
            },
        ))
        .unwrap();
    assert_eq!(
        state.newest(CertKind::CardSigning, Serial::from_u128(1).unwrap()),
        Serial::from_u128(2).unwrap()
    );
    // Years later, both expired: the card is returned all the same.
    let later = t0 + 20 + VALIDITY + 1;
    state
        .ingest(&ev("d", later, EventBody::CardReturn { holder: h.clone() }))
        .unwrap();
    assert_eq!(state.holders[&h].live(CertKind::CardSigning), None);
    // A holder who never had a card cannot return one.
    let stranger = HolderId::new("H2").unwrap();
    state
        .ingest(&ev(
            "e",
            later,
            EventBody::Issue {
                holder: stranger.clone(),
                cert: NewCert {
                    kind: CertKind::PhoneSigning,
                    ..cert(9, later)
                },
                four_info: Some(info(0, 0)),
            },
        ))
        .unwrap();
    assert!(matches!(
        state.ingest(&ev(
            "f",
            later + 1,
            EventBody::CardReturn { holder: stranger }
        )),
        Err(RuleViolation::NoLiveCertificate { .. })
    ));
}
