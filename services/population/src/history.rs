//! A synthetic population and a realistic history of events for it: issuance,
//! moves (with and without an immediate new certificate), phone changes,
//! phone holds and releases, card losses, key compromise, renewals, deaths and
//! emigrations. Deterministic from a seed; every event is valid under the rules.

use shikko_core::{
    CertKind, Event, EventBody, EventId, FourInfo, HolderId, NewCert, RevocationReason, Serial,
    UnixTime,
};
use shikko_pki::{HolderCertRequest, Issuer, Result, Signer};

use crate::synthetic::{Population, SplitMix64, SyntheticHolder};

const DAY: i64 = 86_400;

/// Makes the DER of holder certificates (for the holders that get one).
pub struct CertMaker<'a> {
    /// The four issuing CAs, in `CertKind::ALL` order.
    pub issuers: Vec<Issuer<'a>>,
    /// The pool of holder keys (holder `i` gets key `i % len`).
    pub holder_keys: Vec<&'a dyn Signer>,
    /// The OCSP URL written into the certificates' AIA, if any.
    pub ocsp_url: Option<String>,
}

use crate::synthetic::serial_for;

/// The 5th birthday after `issued` (the JPKI validity rule), at midnight UTC.
fn fifth_birthday_after(info: &FourInfo, issued: UnixTime) -> UnixTime {
    let dob = info.date_of_birth.encode();
    let month: u8 = dob[5..7].parse().unwrap_or(1);
    let mut day: u8 = dob[7..9].parse().unwrap_or(1);
    if month == 2 && day == 29 {
        day = 28;
    }
    let (year, ..) = issued.to_civil();
    // The first birthday after issue is this year's or next year's; the 5th is four years on.
    let first_year = if UnixTime::from_civil(year, month, day) > issued {
        year
    } else {
        year + 1
    };
    UnixTime::from_civil(first_year + 4, month, day)
}

struct Live {
    sign: Option<Serial>,
    sign_good: bool,
    auth: Option<Serial>,
    auth_good: bool,
    psign: Option<Serial>,
    pauth: Option<Serial>,
    pauth_good: bool,
}

struct Builder<'p, 'm> {
    pop: &'p Population,
    maker: Option<&'m CertMaker<'m>>,
    holder: SyntheticHolder,
    generation: [u64; 4],
    events: Vec<Event>,
    with_der: Vec<(CertKind, Serial)>,
}

impl Builder<'_, '_> {
    fn push(&mut self, time: UnixTime, body: EventBody) -> Result<()> {
        let id = EventId::new(format!("{}-{}", self.holder.id, self.events.len()))?;
        self.events.push(Event { id, time, body });
        Ok(())
    }

    fn new_cert(&mut self, kind: CertKind, at: UnixTime) -> Result<NewCert> {
        let g = &mut self.generation[kind.index()];
        let serial = serial_for(kind, self.holder.index, *g);
        *g += 1;
        let not_after = fifth_birthday_after(&self.holder.four_info, at);
        let municipality = if kind.is_signing() {
            self.pop.municipality(self.holder.municipality).cloned()
        } else {
            None
        };
        let cert_der = match self.maker {
            Some(m) => {
                let key = m.holder_keys[(self.holder.index as usize) % m.holder_keys.len()];
                let der = shikko_pki::holder_certificate(
                    &m.issuers[kind.index()],
                    &HolderCertRequest {
                        kind,
                        holder: &self.holder.id,
                        municipality: municipality.as_ref(),
                        four_info: kind.is_signing().then_some(&self.holder.four_info),
                        subject_public_key: key.public_key_der(),
                        serial,
                        not_before: at,
                        not_after,
                        ocsp_url: m.ocsp_url.as_deref(),
                    },
                )?;
                self.with_der.push((kind, serial));
                Some(der)
            }
            None => None,
        };
        Ok(NewCert {
            kind,
            serial,
            not_before: at,
            not_after,
            municipality,
            cert_der,
        })
    }

    /// Certificates on a (new) phone; the rules supersede the old phone's.
    fn new_phone(&mut self, live: &mut Live, at: UnixTime) -> Result<()> {
        let ps = self.new_cert(CertKind::PhoneSigning, at)?;
        let pa = self.new_cert(CertKind::PhoneAuth, at)?;
        live.psign = Some(ps.serial);
        live.pauth = Some(pa.serial);
        live.pauth_good = true;
        let holder = self.holder_id();
        self.push(
            at,
            EventBody::PhoneChange {
                holder,
                new_signing: Some(ps),
                new_auth: Some(pa),
            },
        )
    }

    fn holder_id(&self) -> HolderId {
        self.holder.id.clone()
    }
}

/// A holder's events, and the certificates issued with DER.
pub type History = (Vec<Event>, Vec<(CertKind, Serial)>);

/// The events of one holder's life so far, in time order, and the certificates
/// issued with DER.
pub fn holder_history(
    pop: &Population,
    index: u64,
    now: UnixTime,
    maker: Option<&CertMaker<'_>>,
) -> Result<History> {
    let mut rng = SplitMix64::new(pop.seed() ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let holder = pop.holder(index);
    let mut b = Builder {
        pop,
        maker,
        holder,
        generation: [0; 4],
        events: Vec::new(),
        with_der: Vec::new(),
    };
    let end = now.plus_secs(-3_600);
    // Issued within the last four years, at least 30 days ago.
    let t0 = now.plus_secs(-(30 * DAY) - (rng.below(4 * 365) as i64) * DAY);
    let sign = b.new_cert(CertKind::CardSigning, t0)?;
    let auth = b.new_cert(CertKind::CardAuth, t0)?;
    let mut live = Live {
        sign: Some(sign.serial),
        sign_good: true,
        auth: Some(auth.serial),
        auth_good: true,
        psign: None,
        pauth: None,
        pauth_good: false,
    };
    let four_info = b.holder.four_info.clone();
    let h = b.holder_id();
    b.push(
        t0,
        EventBody::Issue {
            holder: h.clone(),
            cert: sign,
            four_info: Some(four_info),
        },
    )?;
    b.push(
        t0,
        EventBody::Issue {
            holder: h.clone(),
            cert: auth,
            four_info: None,
        },
    )?;
    let mut t = t0;
    // Each step moves time forward by up to a quarter of what is left.
    let next = |t: &mut UnixTime, rng: &mut SplitMix64| {
        let left = (end.0 - t.0).max(8);
        *t = t.plus_secs(1 + rng.below((left / 4) as u64) as i64);
        *t
    };

    if rng.chance(300) {
        let at = next(&mut t, &mut rng);
        b.new_phone(&mut live, at)?;
    }
    // A move (6%): the signing certificates are revoked; usually the new one is issued at once.
    if rng.chance(60) {
        let at = next(&mut t, &mut rng);
        b.holder = pop.moved(&b.holder, 1);
        let info = b.holder.four_info.clone();
        let pending = rng.chance(100);
        let new_signing = if pending {
            None
        } else {
            Some(b.new_cert(CertKind::CardSigning, at)?)
        };
        live.sign = new_signing.as_ref().map(|c| c.serial);
        live.sign_good = live.sign.is_some();
        live.psign = None;
        b.push(
            at,
            EventBody::FourInfoChange {
                holder: h.clone(),
                four_info: info,
                new_signing,
            },
        )?;
    }
    if live.pauth.is_some() && rng.chance(60) {
        let at = next(&mut t, &mut rng);
        b.new_phone(&mut live, at)?;
    }
    if let (Some(pa), true) = (live.pauth, live.pauth_good)
        && rng.chance(40)
    {
        let at = next(&mut t, &mut rng);
        // A lost phone: both of its certificates are suspended; only the
        // user-authentication one can come back.
        b.push(
            at,
            EventBody::Suspend {
                kind: CertKind::PhoneAuth,
                serial: pa,
            },
        )?;
        if let Some(ps) = live.psign {
            b.push(
                at,
                EventBody::Suspend {
                    kind: CertKind::PhoneSigning,
                    serial: ps,
                },
            )?;
        }
        live.pauth_good = false;
        if rng.chance(500) {
            let at = next(&mut t, &mut rng);
            b.push(
                at,
                EventBody::Resume {
                    kind: CertKind::PhoneAuth,
                    serial: pa,
                },
            )?;
            live.pauth_good = true;
        }
    }
    if rng.chance(15) && (live.sign_good || live.auth_good) {
        let at = next(&mut t, &mut rng);
        b.push(at, EventBody::CardLoss { holder: h.clone() })?;
        live.sign_good = false;
        live.auth_good = false;
    }
    if let Some(a) = live.auth
        && rng.chance(5)
    {
        let at = next(&mut t, &mut rng);
        b.push(
            at,
            EventBody::Revoke {
                kind: CertKind::CardAuth,
                serial: a,
                reason: RevocationReason::KeyCompromise,
                invalidity_date: Some(at.plus_secs(-DAY)),
            },
        )?;
    }
    if rng.chance(10) {
        let at = next(&mut t, &mut rng);
        let new_signing = Some(b.new_cert(CertKind::CardSigning, at)?);
        let new_auth = Some(b.new_cert(CertKind::CardAuth, at)?);
        b.push(
            at,
            EventBody::Renewal {
                holder: h.clone(),
                new_signing,
                new_auth,
            },
        )?;
    }
    if rng.chance(10) {
        let at = next(&mut t, &mut rng);
        b.push(at, EventBody::Death { holder: h.clone() })?;
    } else if rng.chance(5) {
        let at = next(&mut t, &mut rng);
        b.push(
            at,
            EventBody::Emigration {
                holder: h,
                keep_user_auth: rng.chance(500),
            },
        )?;
    }
    Ok((b.events, b.with_der))
}
