//! The rules of the registry, once: what each event does to which certificate,
//! with which CRL reason.
//!
//! [`apply`] reads the current state through a [`StateView`] and returns the
//! [`Effect`]s to write, or the [`RuleViolation`] that rejects the event. It has
//! no side effects: a rejected event changes nothing.
//!
//! | event | card signing | card user-auth | phone signing | phone user-auth |
//! |---|---|---|---|---|
//! | `four_info_change` | revoked, affiliationChanged (3), successor linked | kept | revoked, affiliationChanged (3) | kept |
//! | `renewal` | superseded (4), successor linked | superseded (4) | kept | kept |
//! | `phone_change` | kept | kept | superseded (4) | superseded (4) |
//! | `death` | cessationOfOperation (5) | cessationOfOperation (5) | cessationOfOperation (5) | cessationOfOperation (5) |
//! | `emigration` | cessationOfOperation (5) | (5), or kept if `keep_user_auth` | cessationOfOperation (5) | cessationOfOperation (5) |
//! | `card_return` | cessationOfOperation (5) | cessationOfOperation (5) | kept | kept |
//! | `card_loss` | certificateHold (6) | certificateHold (6) | kept | kept |
//! | `suspend` | certificateHold (6) | certificateHold (6) | certificateHold (6) | certificateHold (6) |
//! | `resume` | refused | refused | refused | hold lifted (removeFromCRL (8) in the next delta CRL) |
//! | `revoke` | the stated reason: unspecified (0), keyCompromise (1), affiliationChanged (3), superseded (4) or cessationOfOperation (5) | | | |
//!
//! A hold on anything but a phone user-authentication certificate ends only in
//! revocation. A revoked certificate stays revoked. A serial is issued once per
//! issuer. A holder has at most one live (good or on hold, and not expired)
//! certificate per kind: expiry is time, not an event, so a certificate past
//! its notAfter frees its holder's slot (a plain `issue` follows it) and is
//! not revoked by later events.

use crate::error::{RuleViolation, ValidationError};
use crate::event::{Event, EventBody, NewCert};
use crate::holder::{FourInfo, HolderRecord, HolderState};
use crate::ids::{CertKind, HolderId, Municipality, Serial};
use crate::status::{CertRecord, CertStatus, RevocationReason};
use crate::time::UnixTime;

/// Why the registry itself revokes a certificate; [`reason_for`] maps each to its CRL reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationCause {
    /// The 4 information changed (move, marriage).
    FourInfoChanged,
    /// Renewal, card reissue, phone change.
    Replaced,
    /// Death.
    Death,
    /// Emigration.
    Emigration,
    /// The holder returned the card or asked for revocation.
    HolderRequest,
}

/// The CRL reason for each cause: the one place this mapping is decided.
pub fn reason_for(cause: RevocationCause) -> RevocationReason {
    match cause {
        RevocationCause::FourInfoChanged => RevocationReason::AffiliationChanged,
        RevocationCause::Replaced => RevocationReason::Superseded,
        RevocationCause::Death | RevocationCause::Emigration | RevocationCause::HolderRequest => {
            RevocationReason::CessationOfOperation
        }
    }
}

/// Read access to the current state.
pub trait StateView {
    /// A storage failure.
    type Error;
    /// A certificate by issuer and serial.
    fn cert(&self, kind: CertKind, serial: &Serial) -> Result<Option<CertRecord>, Self::Error>;
    /// A holder by id.
    fn holder(&self, id: &HolderId) -> Result<Option<HolderRecord>, Self::Error>;
}

/// A write that an accepted event makes. The registry keeps each event's
/// writes and sends them to replicas, which apply them as they are: a
/// replica never runs these rules, so a replica of another version cannot
/// diverge from the registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Effect {
    /// A certificate created or its status changed.
    PutCert(CertRecord),
    /// A holder created or changed.
    PutHolder(HolderRecord),
    /// `old` was replaced by `new` (same kind): the chain a 4-information query follows.
    Link {
        /// Issuer.
        kind: CertKind,
        /// Replaced serial.
        old: Serial,
        /// Replacing serial.
        new: Serial,
    },
    /// The DER of an issued certificate.
    PutCertDer {
        /// Issuer.
        kind: CertKind,
        /// Serial.
        serial: Serial,
        /// DER bytes.
        der: Vec<u8>,
    },
    /// A municipality (CRL partition) seen in an issued certificate.
    PutMunicipality(Municipality),
}

/// Why [`apply`] did not produce effects.
#[derive(Debug)]
pub enum ApplyError<E> {
    /// The event breaks a rule; nothing changes.
    Rule(RuleViolation),
    /// The state could not be read.
    View(E),
}

impl<E> From<RuleViolation> for ApplyError<E> {
    fn from(v: RuleViolation) -> Self {
        ApplyError::Rule(v)
    }
}

impl<E> From<ValidationError> for ApplyError<E> {
    fn from(v: ValidationError) -> Self {
        ApplyError::Rule(RuleViolation::Invalid(v))
    }
}

/// Decides what an event does, given the current state.
pub fn apply<V: StateView>(event: &Event, view: &V) -> Result<Vec<Effect>, ApplyError<V::Error>> {
    event.validate()?;
    let mut tx = Tx {
        view,
        time: event.time,
        effects: Vec::new(),
    };
    match &event.body {
        EventBody::Issue {
            holder,
            cert,
            four_info,
        } => tx.issue_event(holder, cert, four_info.as_ref())?,
        EventBody::Revoke {
            kind,
            serial,
            reason,
            invalidity_date,
        } => tx.revoke_event(*kind, serial, *reason, *invalidity_date)?,
        EventBody::Suspend { kind, serial } => tx.suspend_event(*kind, serial)?,
        EventBody::Resume { kind, serial } => tx.resume_event(*kind, serial)?,
        EventBody::FourInfoChange {
            holder,
            four_info,
            new_signing,
        } => tx.four_info_change(holder, four_info, new_signing.as_ref())?,
        EventBody::Death { holder } => {
            let mut h = tx.active_holder(holder)?;
            tx.revoke_live(&mut h, &CertKind::ALL, RevocationCause::Death)?;
            h.state = HolderState::Deceased { at: tx.time };
            h.awaiting_successor = None;
            tx.effects.push(Effect::PutHolder(h));
        }
        EventBody::Emigration {
            holder,
            keep_user_auth,
        } => {
            let mut h = tx.active_holder(holder)?;
            let kinds: Vec<CertKind> = CertKind::ALL
                .into_iter()
                .filter(|k| !(*keep_user_auth && *k == CertKind::CardAuth))
                .collect();
            tx.revoke_live(&mut h, &kinds, RevocationCause::Emigration)?;
            h.state = HolderState::Emigrated { at: tx.time };
            h.awaiting_successor = None;
            tx.effects.push(Effect::PutHolder(h));
        }
        EventBody::CardLoss { holder } => tx.card_loss(holder)?,
        EventBody::CardReturn { holder } => {
            let mut h = tx.active_holder(holder)?;
            // A card whose certificates expired is returned too: nothing
            // to revoke, the slots are cleared.
            let had_card =
                h.live(CertKind::CardSigning).is_some() || h.live(CertKind::CardAuth).is_some();
            let n = tx.revoke_live(
                &mut h,
                &[CertKind::CardSigning, CertKind::CardAuth],
                RevocationCause::HolderRequest,
            )?;
            if n == 0 && !had_card {
                return Err(RuleViolation::NoLiveCertificate {
                    holder: holder.clone(),
                    what: "card certificate",
                }
                .into());
            }
            tx.effects.push(Effect::PutHolder(h));
        }
        EventBody::PhoneChange {
            holder,
            new_signing,
            new_auth,
        } => {
            let mut h = tx.active_holder(holder)?;
            // One device at a time: the new phone supersedes both of the old phone's certificates.
            let n = tx.revoke_live(
                &mut h,
                &[CertKind::PhoneSigning, CertKind::PhoneAuth],
                RevocationCause::Replaced,
            )?;
            if n == 0 && new_signing.is_none() && new_auth.is_none() {
                return Err(RuleViolation::NoLiveCertificate {
                    holder: holder.clone(),
                    what: "phone certificate to replace, and the event issues none",
                }
                .into());
            }
            for c in [new_signing, new_auth].into_iter().flatten() {
                tx.issue(&mut h, c)?;
            }
            tx.effects.push(Effect::PutHolder(h));
        }
        EventBody::Renewal {
            holder,
            new_signing,
            new_auth,
        } => {
            let mut h = tx.active_holder(holder)?;
            for c in [new_signing, new_auth].into_iter().flatten() {
                let old = match tx.live_now(&mut h, c.kind)? {
                    Some(old) => {
                        tx.revoke_serial(&mut h, c.kind, &old, RevocationCause::Replaced)?;
                        Some(old)
                    }
                    None => None,
                };
                tx.issue(&mut h, c)?;
                if c.kind == CertKind::CardSigning {
                    let from = old.or(h.awaiting_successor.take());
                    if let Some(from) = from {
                        tx.link(c.kind, from, c.serial);
                    }
                }
            }
            tx.effects.push(Effect::PutHolder(h));
        }
    }
    Ok(tx.effects)
}

struct Tx<'v, V> {
    view: &'v V,
    time: UnixTime,
    effects: Vec<Effect>,
}

impl<V: StateView> Tx<'_, V> {
    /// The latest version of a certificate: this event's own writes first.
    fn cert(
        &self,
        kind: CertKind,
        serial: &Serial,
    ) -> Result<Option<CertRecord>, ApplyError<V::Error>> {
        for e in self.effects.iter().rev() {
            if let Effect::PutCert(c) = e
                && c.kind == kind
                && c.serial == *serial
            {
                return Ok(Some(c.clone()));
            }
        }
        self.view.cert(kind, serial).map_err(ApplyError::View)
    }

    fn require_cert(
        &self,
        kind: CertKind,
        serial: &Serial,
    ) -> Result<CertRecord, ApplyError<V::Error>> {
        self.cert(kind, serial)?.ok_or_else(|| {
            RuleViolation::UnknownSerial {
                kind,
                serial: *serial,
            }
            .into()
        })
    }

    fn holder(&self, id: &HolderId) -> Result<Option<HolderRecord>, ApplyError<V::Error>> {
        self.view.holder(id).map_err(ApplyError::View)
    }

    fn active_holder(&self, id: &HolderId) -> Result<HolderRecord, ApplyError<V::Error>> {
        let h = self
            .holder(id)?
            .ok_or_else(|| RuleViolation::UnknownHolder(id.clone()))?;
        if let Some(state) = h.state.inactive_name() {
            return Err(RuleViolation::HolderInactive {
                holder: id.clone(),
                state,
            }
            .into());
        }
        Ok(h)
    }

    fn link(&mut self, kind: CertKind, old: Serial, new: Serial) {
        self.effects.push(Effect::Link { kind, old, new });
    }

    /// `h`'s live certificate of `kind` at this event's time: one whose
    /// notAfter has passed no longer holds the slot (expiry is time, not an
    /// event), and is cleared from `h` (whose record the caller writes).
    fn live_now(
        &self,
        h: &mut HolderRecord,
        kind: CertKind,
    ) -> Result<Option<Serial>, ApplyError<V::Error>> {
        let Some(serial) = h.live(kind) else {
            return Ok(None);
        };
        match self.cert(kind, &serial)? {
            Some(c) if c.not_after <= self.time => {
                h.live[kind.index()] = None;
                Ok(None)
            }
            _ => Ok(Some(serial)),
        }
    }

    /// Issues a certificate to `h` (whose record the caller writes).
    fn issue(&mut self, h: &mut HolderRecord, c: &NewCert) -> Result<(), ApplyError<V::Error>> {
        if self.cert(c.kind, &c.serial)?.is_some() {
            return Err(RuleViolation::SerialAlreadyIssued {
                kind: c.kind,
                serial: c.serial,
            }
            .into());
        }
        if let Some(live) = self.live_now(h, c.kind)? {
            return Err(RuleViolation::LiveCertificateExists {
                holder: h.id.clone(),
                kind: c.kind,
                serial: live,
            }
            .into());
        }
        if c.kind.is_signing() && h.four_info.is_none() {
            return Err(ValidationError::BadEvent(format!(
                "{} serial {}: holder {} has no 4 information on record; the issue event must carry four_info",
                c.kind, c.serial, h.id
            ))
            .into());
        }
        let partition = c.municipality.as_ref().map(|m| m.code).unwrap_or_default();
        if let Some(m) = &c.municipality {
            self.effects.push(Effect::PutMunicipality(m.clone()));
        }
        self.effects.push(Effect::PutCert(CertRecord {
            kind: c.kind,
            serial: c.serial,
            holder: h.id.clone(),
            not_before: c.not_before,
            not_after: c.not_after,
            partition,
            status: CertStatus::Good,
            info_digests: if c.kind.is_signing() {
                h.four_info.as_ref().map(FourInfo::item_digests)
            } else {
                None
            },
        }));
        if let Some(der) = &c.cert_der {
            self.effects.push(Effect::PutCertDer {
                kind: c.kind,
                serial: c.serial,
                der: der.clone(),
            });
        }
        h.live[c.kind.index()] = Some(c.serial);
        Ok(())
    }

    fn issue_event(
        &mut self,
        holder: &HolderId,
        cert: &NewCert,
        four_info: Option<&FourInfo>,
    ) -> Result<(), ApplyError<V::Error>> {
        let mut h = self
            .holder(holder)?
            .unwrap_or_else(|| HolderRecord::new(holder.clone()));
        match h.state {
            HolderState::Deceased { .. } => {
                return Err(RuleViolation::HolderInactive {
                    holder: holder.clone(),
                    state: "deceased",
                }
                .into());
            }
            // A returning resident is issued a new card.
            HolderState::Emigrated { .. } => h.state = HolderState::Active,
            HolderState::Active => {}
        }
        if let Some(info) = four_info {
            match &h.four_info {
                Some(known) if known != info => {
                    return Err(ValidationError::BadEvent(format!(
                        "{} serial {}: four_info differs from holder {}'s record; send a four_info_change event",
                        cert.kind, cert.serial, holder
                    ))
                    .into());
                }
                _ => h.four_info = Some(info.clone()),
            }
        }
        self.issue(&mut h, cert)?;
        if cert.kind == CertKind::CardSigning
            && let Some(old) = h.awaiting_successor.take()
        {
            self.link(cert.kind, old, cert.serial);
        }
        self.effects.push(Effect::PutHolder(h));
        Ok(())
    }

    /// Revokes a live certificate of `h`'s; the caller writes `h`.
    fn revoke_serial(
        &mut self,
        h: &mut HolderRecord,
        kind: CertKind,
        serial: &Serial,
        cause: RevocationCause,
    ) -> Result<(), ApplyError<V::Error>> {
        let mut c = self.require_cert(kind, serial)?;
        self.set_revoked(&mut c, reason_for(cause), None)?;
        if h.live(kind) == Some(*serial) {
            h.live[kind.index()] = None;
        }
        self.effects.push(Effect::PutCert(c));
        Ok(())
    }

    /// Revokes every live certificate of the given kinds; returns how many.
    fn revoke_live(
        &mut self,
        h: &mut HolderRecord,
        kinds: &[CertKind],
        cause: RevocationCause,
    ) -> Result<usize, ApplyError<V::Error>> {
        let mut n = 0;
        for &kind in kinds {
            // An expired certificate is not revoked: it left the CRL's
            // concern at its notAfter.
            if let Some(serial) = self.live_now(h, kind)? {
                self.revoke_serial(h, kind, &serial, cause)?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn set_revoked(
        &self,
        c: &mut CertRecord,
        reason: RevocationReason,
        invalidity_date: Option<UnixTime>,
    ) -> Result<(), ApplyError<V::Error>> {
        match c.status {
            CertStatus::Revoked { .. } => {
                return Err(RuleViolation::AlreadyRevoked {
                    kind: c.kind,
                    serial: c.serial,
                }
                .into());
            }
            CertStatus::OnHold { since } if self.time < since => {
                return Err(RuleViolation::OutOfOrder(format!(
                    "{} serial {} went on hold at {since}, after this revocation time {}",
                    c.kind, c.serial, self.time
                ))
                .into());
            }
            _ => {}
        }
        if self.time < c.not_before {
            return Err(RuleViolation::OutOfOrder(format!(
                "{} serial {} is valid from {}, after this revocation time {}",
                c.kind, c.serial, c.not_before, self.time
            ))
            .into());
        }
        c.status = CertStatus::Revoked {
            reason,
            at: self.time,
            invalidity_date,
        };
        Ok(())
    }

    fn revoke_event(
        &mut self,
        kind: CertKind,
        serial: &Serial,
        reason: RevocationReason,
        invalidity_date: Option<UnixTime>,
    ) -> Result<(), ApplyError<V::Error>> {
        if !reason.allowed_in_revoke_event() {
            return Err(RuleViolation::ReasonNotAllowed(reason).into());
        }
        let mut c = self.require_cert(kind, serial)?;
        self.set_revoked(&mut c, reason, invalidity_date)?;
        let mut h = self
            .holder(&c.holder)?
            .ok_or_else(|| RuleViolation::UnknownHolder(c.holder.clone()))?;
        if h.live(kind) == Some(*serial) {
            h.live[kind.index()] = None;
            // A town may revoke first and issue the successor later: link it then.
            if kind == CertKind::CardSigning
                && matches!(
                    reason,
                    RevocationReason::AffiliationChanged | RevocationReason::Superseded
                )
                && h.state == HolderState::Active
            {
                h.awaiting_successor = Some(*serial);
            }
        }
        self.effects.push(Effect::PutCert(c));
        self.effects.push(Effect::PutHolder(h));
        Ok(())
    }

    fn suspend_event(
        &mut self,
        kind: CertKind,
        serial: &Serial,
    ) -> Result<(), ApplyError<V::Error>> {
        let mut c = self.require_cert(kind, serial)?;
        self.put_on_hold(&mut c)?;
        self.effects.push(Effect::PutCert(c));
        Ok(())
    }

    fn put_on_hold(&self, c: &mut CertRecord) -> Result<(), ApplyError<V::Error>> {
        match c.status {
            CertStatus::Good if self.time < c.not_before => {
                Err(RuleViolation::OutOfOrder(format!(
                    "{} serial {} is valid from {}, after this hold time {}",
                    c.kind, c.serial, c.not_before, self.time
                ))
                .into())
            }
            CertStatus::Good => {
                c.status = CertStatus::OnHold { since: self.time };
                Ok(())
            }
            CertStatus::OnHold { .. } => Err(RuleViolation::AlreadyOnHold {
                kind: c.kind,
                serial: c.serial,
            }
            .into()),
            CertStatus::Revoked { .. } => Err(RuleViolation::AlreadyRevoked {
                kind: c.kind,
                serial: c.serial,
            }
            .into()),
        }
    }

    fn resume_event(
        &mut self,
        kind: CertKind,
        serial: &Serial,
    ) -> Result<(), ApplyError<V::Error>> {
        let mut c = self.require_cert(kind, serial)?;
        match c.status {
            CertStatus::Revoked { .. } => {
                return Err(RuleViolation::AlreadyRevoked {
                    kind,
                    serial: *serial,
                }
                .into());
            }
            CertStatus::Good => {
                return Err(RuleViolation::NotOnHold {
                    kind,
                    serial: *serial,
                }
                .into());
            }
            CertStatus::OnHold { .. } if kind != CertKind::PhoneAuth => {
                return Err(RuleViolation::HoldNotReleasable {
                    kind,
                    serial: *serial,
                }
                .into());
            }
            CertStatus::OnHold { since } if self.time < since => {
                return Err(RuleViolation::OutOfOrder(format!(
                    "{kind} serial {serial} went on hold at {since}, after this release time {}",
                    self.time
                ))
                .into());
            }
            CertStatus::OnHold { .. } => c.status = CertStatus::Good,
        }
        self.effects.push(Effect::PutCert(c));
        Ok(())
    }

    fn card_loss(&mut self, holder: &HolderId) -> Result<(), ApplyError<V::Error>> {
        let h = self.active_holder(holder)?;
        let mut n = 0;
        for kind in [CertKind::CardSigning, CertKind::CardAuth] {
            let Some(serial) = h.live(kind) else { continue };
            let mut c = self.require_cert(kind, &serial)?;
            if c.status == CertStatus::Good && self.time < c.not_after {
                self.put_on_hold(&mut c)?;
                self.effects.push(Effect::PutCert(c));
                n += 1;
            }
        }
        if n == 0 {
            return Err(RuleViolation::NoLiveCertificate {
                holder: holder.clone(),
                what: "good card certificate",
            }
            .into());
        }
        Ok(())
    }

    fn four_info_change(
        &mut self,
        holder: &HolderId,
        four_info: &FourInfo,
        new_signing: Option<&NewCert>,
    ) -> Result<(), ApplyError<V::Error>> {
        let mut h = self.active_holder(holder)?;
        if h.four_info.is_none() {
            return Err(RuleViolation::NoLiveCertificate {
                holder: holder.clone(),
                what: "signing certificate ever issued (no 4 information on record)",
            }
            .into());
        }
        // A holder whose card signing certificate expired still moves: the
        // change is recorded, the next certificate carries it.
        let old = self.live_now(&mut h, CertKind::CardSigning)?;
        // Both signing certificates carry the old 4 information.
        self.revoke_live(
            &mut h,
            &[CertKind::CardSigning, CertKind::PhoneSigning],
            RevocationCause::FourInfoChanged,
        )?;
        h.four_info = Some(four_info.clone());
        // The serial a successor is linked from: the one revoked now, or
        // one a town revoked earlier whose successor this is.
        let from = old.or(h.awaiting_successor.take());
        match (new_signing, from) {
            (Some(c), from) => {
                self.issue(&mut h, c)?;
                if let Some(from) = from {
                    self.link(CertKind::CardSigning, from, c.serial);
                }
            }
            (None, from) => h.awaiting_successor = from,
        }
        self.effects.push(Effect::PutHolder(h));
        Ok(())
    }
}
