//! Conversions between the protobuf messages and the domain types, in both
//! directions, in one place: `From` / `TryFrom` for messages, and functions
//! for the scalar fields (issuer numbers, serial octets, status fields).
//! Malformed messages become [`ValidationError`]s that name the field, never
//! a value of personal data.

use shikko_core::{
    CertKind, CertStatus, ChangeRecord, DateOfBirth, Event, EventBody, EventId, FourInfo, HolderId,
    Municipality, NewCert, PartitionId, RevocationReason, RevokedEntry, Serial, Sex, StatusChange,
    UnixTime, ValidationError,
};

use crate::v1 as pb;

fn bad(msg: impl Into<String>) -> ValidationError {
    ValidationError::BadEvent(msg.into())
}

impl TryFrom<pb::Issuer> for CertKind {
    type Error = ValidationError;
    fn try_from(issuer: pb::Issuer) -> Result<CertKind, ValidationError> {
        match issuer {
            pb::Issuer::Sign => Ok(CertKind::CardSigning),
            pb::Issuer::Auth => Ok(CertKind::CardAuth),
            pb::Issuer::PhoneSign => Ok(CertKind::PhoneSigning),
            pb::Issuer::PhoneAuth => Ok(CertKind::PhoneAuth),
            pb::Issuer::Unspecified => Err(ValidationError::UnknownIssuerNumber(issuer as i32)),
        }
    }
}

impl From<CertKind> for pb::Issuer {
    fn from(kind: CertKind) -> pb::Issuer {
        match kind {
            CertKind::CardSigning => pb::Issuer::Sign,
            CertKind::CardAuth => pb::Issuer::Auth,
            CertKind::PhoneSigning => pb::Issuer::PhoneSign,
            CertKind::PhoneAuth => pb::Issuer::PhoneAuth,
        }
    }
}

/// The domain kind for the issuer field of a message (an `i32` in prost).
pub fn cert_kind(issuer: i32) -> Result<CertKind, ValidationError> {
    pb::Issuer::try_from(issuer)
        .map_err(|_| ValidationError::UnknownIssuerNumber(issuer))
        .and_then(CertKind::try_from)
}

/// The issuer argument of a request: INVALID_ARGUMENT (naming the number) when it is none of the four.
pub fn cert_kind_arg(issuer: i32) -> Result<CertKind, tonic::Status> {
    cert_kind(issuer).map_err(|e| tonic::Status::invalid_argument(e.to_string()))
}

/// The issuer field of a message for a domain kind.
pub fn issuer(kind: CertKind) -> i32 {
    pb::Issuer::from(kind) as i32
}

/// A serial from its unsigned big-endian octets.
pub fn serial_from_pb(bytes: &[u8]) -> Result<Serial, ValidationError> {
    if bytes.is_empty() {
        return Err(ValidationError::BadSerial("serial number is missing"));
    }
    Serial::from_be_bytes(bytes)
}

fn holder_from_pb(id: &str) -> Result<HolderId, ValidationError> {
    HolderId::new(id)
}

fn four_info_from_pb(f: &pb::FourInfo) -> Result<FourInfo, ValidationError> {
    let sex = u8::try_from(f.sex)
        .ok()
        .and_then(|s| Sex::try_from(s).ok())
        .ok_or(ValidationError::BadFourInfo("sex must be 1, 2 or 3"))?;
    let info = FourInfo {
        name: f.name.clone(),
        address: f.address.clone(),
        date_of_birth: DateOfBirth::parse(&f.date_of_birth)?,
        sex,
    };
    info.validate()?;
    Ok(info)
}

fn four_info_to_pb(f: &FourInfo) -> pb::FourInfo {
    pb::FourInfo {
        name: f.name.clone(),
        address: f.address.clone(),
        date_of_birth: f.date_of_birth.encode(),
        sex: u32::from(f.sex.code()),
    }
}

fn new_cert_from_pb(c: Option<&pb::NewCert>, field: &str) -> Result<NewCert, ValidationError> {
    let c = c.ok_or_else(|| bad(format!("{field} is missing")))?;
    Ok(NewCert {
        kind: cert_kind(c.issuer)?,
        serial: serial_from_pb(&c.serial)?,
        not_before: UnixTime(c.not_before),
        not_after: UnixTime(c.not_after),
        municipality: c.municipality.as_ref().map(Municipality::from),
        cert_der: (!c.cert_der.is_empty()).then(|| c.cert_der.clone()),
    })
}

fn new_cert_to_pb(c: &NewCert) -> pb::NewCert {
    pb::NewCert {
        issuer: issuer(c.kind),
        serial: c.serial.magnitude().to_vec(),
        not_before: c.not_before.0,
        not_after: c.not_after.0,
        municipality: c.municipality.as_ref().map(pb::Municipality::from),
        cert_der: c.cert_der.clone().unwrap_or_default(),
    }
}

fn opt_cert_from_pb(
    c: Option<&pb::NewCert>,
    field: &str,
) -> Result<Option<NewCert>, ValidationError> {
    c.map(|c| new_cert_from_pb(Some(c), field)).transpose()
}

/// A domain event from its protobuf form; the error names the bad field.
impl TryFrom<&pb::Event> for Event {
    type Error = ValidationError;
    fn try_from(e: &pb::Event) -> Result<Event, ValidationError> {
        event_from_pb(e)
    }
}

fn event_from_pb(e: &pb::Event) -> Result<Event, ValidationError> {
    use pb::event::Body;
    let body = match e.body.as_ref().ok_or_else(|| bad("event has no body"))? {
        Body::Issue(i) => EventBody::Issue {
            holder: holder_from_pb(&i.holder_id)?,
            cert: new_cert_from_pb(i.cert.as_ref(), "issue.cert")?,
            four_info: i.four_info.as_ref().map(four_info_from_pb).transpose()?,
        },
        Body::Revoke(r) => EventBody::Revoke {
            kind: cert_kind(r.issuer)?,
            serial: serial_from_pb(&r.serial)?,
            reason: u8::try_from(r.reason)
                .map_err(|_| bad(format!("unknown CRL reason code {}", r.reason)))
                .and_then(RevocationReason::from_code)?,
            invalidity_date: r.invalidity_date.map(UnixTime),
        },
        Body::Suspend(s) => EventBody::Suspend {
            kind: cert_kind(s.issuer)?,
            serial: serial_from_pb(&s.serial)?,
        },
        Body::Resume(s) => EventBody::Resume {
            kind: cert_kind(s.issuer)?,
            serial: serial_from_pb(&s.serial)?,
        },
        Body::FourInfoChange(c) => EventBody::FourInfoChange {
            holder: holder_from_pb(&c.holder_id)?,
            four_info: four_info_from_pb(
                c.four_info
                    .as_ref()
                    .ok_or_else(|| bad("four_info_change.four_info is missing"))?,
            )?,
            new_signing: opt_cert_from_pb(c.new_signing.as_ref(), "four_info_change.new_signing")?,
        },
        Body::Death(d) => EventBody::Death {
            holder: holder_from_pb(&d.holder_id)?,
        },
        Body::Emigration(d) => EventBody::Emigration {
            holder: holder_from_pb(&d.holder_id)?,
            keep_user_auth: d.keep_user_auth,
        },
        Body::CardLoss(d) => EventBody::CardLoss {
            holder: holder_from_pb(&d.holder_id)?,
        },
        Body::CardReturn(d) => EventBody::CardReturn {
            holder: holder_from_pb(&d.holder_id)?,
        },
        Body::PhoneChange(p) => EventBody::PhoneChange {
            holder: holder_from_pb(&p.holder_id)?,
            new_signing: opt_cert_from_pb(p.new_signing.as_ref(), "phone_change.new_signing")?,
            new_auth: opt_cert_from_pb(p.new_auth.as_ref(), "phone_change.new_auth")?,
        },
        Body::Renewal(p) => EventBody::Renewal {
            holder: holder_from_pb(&p.holder_id)?,
            new_signing: opt_cert_from_pb(p.new_signing.as_ref(), "renewal.new_signing")?,
            new_auth: opt_cert_from_pb(p.new_auth.as_ref(), "renewal.new_auth")?,
        },
    };
    let event = Event {
        id: EventId::new(e.id.clone())?,
        time: UnixTime(e.time),
        body,
    };
    event.validate()?;
    Ok(event)
}

/// The protobuf form of a domain event.
impl From<&Event> for pb::Event {
    fn from(e: &Event) -> pb::Event {
        event_to_pb(e)
    }
}

fn event_to_pb(e: &Event) -> pb::Event {
    use pb::event::Body;
    let body = match &e.body {
        EventBody::Issue {
            holder,
            cert,
            four_info,
        } => Body::Issue(pb::Issue {
            holder_id: holder.to_string(),
            cert: Some(new_cert_to_pb(cert)),
            four_info: four_info.as_ref().map(four_info_to_pb),
        }),
        EventBody::Revoke {
            kind,
            serial,
            reason,
            invalidity_date,
        } => Body::Revoke(pb::Revoke {
            issuer: issuer(*kind),
            serial: serial.magnitude().to_vec(),
            reason: u32::from(reason.code()),
            invalidity_date: invalidity_date.map(|t| t.0),
        }),
        EventBody::Suspend { kind, serial } => Body::Suspend(pb::Suspend {
            issuer: issuer(*kind),
            serial: serial.magnitude().to_vec(),
        }),
        EventBody::Resume { kind, serial } => Body::Resume(pb::Resume {
            issuer: issuer(*kind),
            serial: serial.magnitude().to_vec(),
        }),
        EventBody::FourInfoChange {
            holder,
            four_info,
            new_signing,
        } => Body::FourInfoChange(pb::FourInfoChange {
            holder_id: holder.to_string(),
            four_info: Some(four_info_to_pb(four_info)),
            new_signing: new_signing.as_ref().map(new_cert_to_pb),
        }),
        EventBody::Death { holder } => Body::Death(pb::Death {
            holder_id: holder.to_string(),
        }),
        EventBody::Emigration {
            holder,
            keep_user_auth,
        } => Body::Emigration(pb::Emigration {
            holder_id: holder.to_string(),
            keep_user_auth: *keep_user_auth,
        }),
        EventBody::CardLoss { holder } => Body::CardLoss(pb::CardLoss {
            holder_id: holder.to_string(),
        }),
        EventBody::CardReturn { holder } => Body::CardReturn(pb::CardReturn {
            holder_id: holder.to_string(),
        }),
        EventBody::PhoneChange {
            holder,
            new_signing,
            new_auth,
        } => Body::PhoneChange(pb::PhoneChange {
            holder_id: holder.to_string(),
            new_signing: new_signing.as_ref().map(new_cert_to_pb),
            new_auth: new_auth.as_ref().map(new_cert_to_pb),
        }),
        EventBody::Renewal {
            holder,
            new_signing,
            new_auth,
        } => Body::Renewal(pb::Renewal {
            holder_id: holder.to_string(),
            new_signing: new_signing.as_ref().map(new_cert_to_pb),
            new_auth: new_auth.as_ref().map(new_cert_to_pb),
        }),
    };
    pb::Event {
        id: e.id.to_string(),
        time: e.time.0,
        body: Some(body),
    }
}

/// Status, reason code, time and invalidity date of a status, as protobuf fields.
pub fn status_fields(s: &CertStatus) -> (pb::Status, u32, i64, Option<i64>) {
    match s {
        CertStatus::Good => (pb::Status::Good, 0, 0, None),
        CertStatus::OnHold { since } => (
            pb::Status::OnHold,
            u32::from(RevocationReason::CertificateHold.code()),
            since.0,
            None,
        ),
        CertStatus::Revoked {
            reason,
            at,
            invalidity_date,
        } => (
            pb::Status::Revoked,
            u32::from(reason.code()),
            at.0,
            invalidity_date.map(|t| t.0),
        ),
    }
}

/// A domain status from protobuf fields (the inverse of [`status_fields`]).
pub fn status_from_pb(
    status: i32,
    reason: u32,
    time: i64,
    invalidity_date: Option<i64>,
) -> Result<CertStatus, ValidationError> {
    match pb::Status::try_from(status) {
        Ok(pb::Status::Good) => Ok(CertStatus::Good),
        Ok(pb::Status::OnHold) => Ok(CertStatus::OnHold {
            since: UnixTime(time),
        }),
        Ok(pb::Status::Revoked) => Ok(CertStatus::Revoked {
            reason: u8::try_from(reason)
                .map_err(|_| bad(format!("unknown CRL reason code {reason}")))
                .and_then(RevocationReason::from_code)
                .and_then(|r| {
                    if r.allowed_in_revoke_event() {
                        Ok(r)
                    } else {
                        Err(bad(format!(
                            "reason {r} is not a revocation reason of this PKI"
                        )))
                    }
                })?,
            at: UnixTime(time),
            invalidity_date: invalidity_date.map(UnixTime),
        }),
        _ => Err(bad(format!(
            "status {status} is not good, on hold or revoked"
        ))),
    }
}

impl From<&StatusChange> for pb::StatusChange {
    fn from(c: &StatusChange) -> pb::StatusChange {
        let (status, reason, time, inv) = status_fields(&c.status);
        pb::StatusChange {
            issuer: issuer(c.kind),
            serial: c.serial.magnitude().to_vec(),
            partition: c.partition.0,
            not_after: c.not_after.0,
            status: status as i32,
            reason,
            revocation_time: time,
            invalidity_date: inv,
            not_before: c.not_before.0,
        }
    }
}

/// The protobuf form of one change record (without the event).
impl From<&ChangeRecord> for pb::ChangeRecord {
    fn from(r: &ChangeRecord) -> pb::ChangeRecord {
        pb::ChangeRecord {
            seq: r.seq,
            event_id: r.event_id.to_string(),
            event_type: r.event_type.clone(),
            time: r.time.0,
            changes: r.changes.iter().map(pb::StatusChange::from).collect(),
            writes: Vec::new(),
            municipalities: r
                .municipalities
                .iter()
                .map(pb::Municipality::from)
                .collect(),
        }
    }
}

impl From<&pb::Municipality> for Municipality {
    fn from(m: &pb::Municipality) -> Municipality {
        Municipality {
            code: PartitionId(m.code),
            prefecture: m.prefecture.clone(),
            city: m.city.clone(),
        }
    }
}

impl From<&Municipality> for pb::Municipality {
    fn from(m: &Municipality) -> pb::Municipality {
        pb::Municipality {
            code: m.code.0,
            prefecture: m.prefecture.clone(),
            city: m.city.clone(),
        }
    }
}

/// A change record from the feed's protobuf form (for followers).
impl TryFrom<&pb::ChangeRecord> for ChangeRecord {
    type Error = ValidationError;
    fn try_from(r: &pb::ChangeRecord) -> Result<ChangeRecord, ValidationError> {
        Ok(ChangeRecord {
            seq: r.seq,
            event_id: EventId::new(r.event_id.clone())?,
            event_type: r.event_type.clone(),
            time: UnixTime(r.time),
            changes: r
                .changes
                .iter()
                .map(StatusChange::try_from)
                .collect::<Result<_, _>>()?,
            municipalities: r.municipalities.iter().map(Municipality::from).collect(),
        })
    }
}

/// A status change from the feed's protobuf form (for followers).
impl TryFrom<&pb::StatusChange> for StatusChange {
    type Error = ValidationError;
    fn try_from(c: &pb::StatusChange) -> Result<StatusChange, ValidationError> {
        Ok(StatusChange {
            kind: cert_kind(c.issuer)?,
            serial: serial_from_pb(&c.serial)?,
            partition: PartitionId(c.partition),
            not_after: UnixTime(c.not_after),
            status: status_from_pb(c.status, c.reason, c.revocation_time, c.invalidity_date)?,
            not_before: UnixTime(c.not_before),
        })
    }
}

/// The protobuf form of one revoked entry.
impl From<&RevokedEntry> for pb::RevokedEntry {
    fn from(e: &RevokedEntry) -> pb::RevokedEntry {
        let (status, reason, time, inv) = status_fields(&e.status);
        pb::RevokedEntry {
            serial: e.serial.magnitude().to_vec(),
            partition: e.partition.0,
            status: status as i32,
            reason,
            revocation_time: time,
            invalidity_date: inv,
            not_after: e.not_after.0,
        }
    }
}
