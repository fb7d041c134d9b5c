//! Events from the issuing authority's feed (J-LIS style).
//!
//! Every event has an id (re-delivery is idempotent) and a time; the revocation
//! time of everything an event revokes is the event's time.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::holder::FourInfo;
use crate::ids::{CertKind, EventId, HolderId, Municipality, Serial};
use crate::status::RevocationReason;
use crate::time::UnixTime;

/// Largest certificate DER accepted in an issue event.
pub const CERT_DER_MAX_BYTES: usize = 16 * 1024;

/// One event of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Unique id; the same id delivered again is acknowledged and not re-applied.
    pub id: EventId,
    /// When it happened (seconds since the epoch, UTC).
    pub time: UnixTime,
    /// What happened.
    pub body: EventBody,
}

/// A certificate being issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCert {
    /// Issuer.
    pub kind: CertKind,
    /// Serial, unique per issuer.
    pub serial: Serial,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
    /// The municipality of the CRL distribution point: required for signing kinds, absent otherwise.
    #[serde(default)]
    pub municipality: Option<Municipality>,
    /// The DER certificate, when the feed carries it.
    #[serde(default, with = "opt_hex")]
    pub cert_der: Option<Vec<u8>>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventBody {
    /// A certificate issued to a holder (first issuance registers the holder).
    Issue {
        /// The holder.
        holder: HolderId,
        /// The certificate.
        cert: NewCert,
        /// The 4 information: required for a signing certificate of a holder
        /// the registry has none for; must match the holder's if given later.
        #[serde(default)]
        four_info: Option<FourInfo>,
    },
    /// An explicit revocation (key compromise, destroyed before delivery, holder's request...).
    Revoke {
        /// Issuer.
        kind: CertKind,
        /// Serial.
        serial: Serial,
        /// Reason: one of unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation.
        reason: RevocationReason,
        /// Invalidity date, not after the event time.
        #[serde(default)]
        invalidity_date: Option<UnixTime>,
    },
    /// A hold (一時利用停止), e.g. a lost phone.
    Suspend {
        /// Issuer.
        kind: CertKind,
        /// Serial.
        serial: Serial,
    },
    /// The lifting of a hold: smartphone user-authentication certificates only.
    Resume {
        /// Issuer.
        kind: CertKind,
        /// Serial.
        serial: Serial,
    },
    /// The 4 information changed (move, marriage): the signing certificates are
    /// revoked (affiliationChanged) and the new card signing certificate, now or
    /// later, is linked from the old one.
    FourInfoChange {
        /// The holder.
        holder: HolderId,
        /// The new 4 information.
        four_info: FourInfo,
        /// The new card signing certificate, if issued at once.
        #[serde(default)]
        new_signing: Option<NewCert>,
    },
    /// Death (死亡): every certificate revoked.
    Death {
        /// The holder.
        holder: HolderId,
    },
    /// Emigration (国外転出): every certificate revoked, the card
    /// user-authentication one kept if asked.
    Emigration {
        /// The holder.
        holder: HolderId,
        /// Keep the card user-authentication certificate.
        #[serde(default)]
        keep_user_auth: bool,
    },
    /// Card lost or stolen: the card's certificates go on hold.
    CardLoss {
        /// The holder.
        holder: HolderId,
    },
    /// Card returned (holder's request): the card's certificates revoked.
    CardReturn {
        /// The holder.
        holder: HolderId,
    },
    /// A new phone: the old phone's certificates superseded, the new ones issued.
    PhoneChange {
        /// The holder.
        holder: HolderId,
        /// New smartphone signing certificate.
        #[serde(default)]
        new_signing: Option<NewCert>,
        /// New smartphone user-authentication certificate.
        #[serde(default)]
        new_auth: Option<NewCert>,
    },
    /// Renewal or card reissue: the card's certificates superseded, new ones issued.
    Renewal {
        /// The holder.
        holder: HolderId,
        /// New card signing certificate.
        #[serde(default)]
        new_signing: Option<NewCert>,
        /// New card user-authentication certificate.
        #[serde(default)]
        new_auth: Option<NewCert>,
    },
}

impl EventBody {
    /// A short stable name for the event type (for metrics and messages).
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::Issue { .. } => "issue",
            EventBody::Revoke { .. } => "revoke",
            EventBody::Suspend { .. } => "suspend",
            EventBody::Resume { .. } => "resume",
            EventBody::FourInfoChange { .. } => "four_info_change",
            EventBody::Death { .. } => "death",
            EventBody::Emigration { .. } => "emigration",
            EventBody::CardLoss { .. } => "card_loss",
            EventBody::CardReturn { .. } => "card_return",
            EventBody::PhoneChange { .. } => "phone_change",
            EventBody::Renewal { .. } => "renewal",
        }
    }
}

impl NewCert {
    /// Checks the certificate on its own: validity order, municipality iff signing, DER size.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.not_after <= self.not_before {
            return Err(ValidationError::BadEvent(format!(
                "{} serial {}: not_after must be after not_before",
                self.kind, self.serial
            )));
        }
        match (&self.municipality, self.kind.is_signing()) {
            (Some(m), true) => m.validate()?,
            (None, true) => {
                return Err(ValidationError::BadEvent(format!(
                    "{} serial {}: a signing certificate needs a municipality (its CRL partition)",
                    self.kind, self.serial
                )));
            }
            (Some(_), false) => {
                return Err(ValidationError::BadEvent(format!(
                    "{} serial {}: only signing certificates carry a municipality",
                    self.kind, self.serial
                )));
            }
            (None, false) => {}
        }
        if self
            .cert_der
            .as_ref()
            .is_some_and(|d| d.is_empty() || d.len() > CERT_DER_MAX_BYTES)
        {
            return Err(ValidationError::BadEvent(format!(
                "{} serial {}: cert_der must be 1 to {CERT_DER_MAX_BYTES} bytes",
                self.kind, self.serial
            )));
        }
        Ok(())
    }

    fn expect_kind(&self, want: CertKind, field: &str) -> Result<(), ValidationError> {
        if self.kind == want {
            Ok(())
        } else {
            Err(ValidationError::BadEvent(format!(
                "{field} must be a {want} certificate, not {}",
                self.kind
            )))
        }
    }
}

impl Event {
    /// Checks the event on its own, before any state is consulted.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.time.0 <= 0 {
            return Err(ValidationError::BadEvent(format!(
                "event {}: time is missing or not after 1970",
                self.id
            )));
        }
        match &self.body {
            EventBody::Issue {
                cert, four_info, ..
            } => {
                cert.validate()?;
                if let Some(info) = four_info {
                    if !cert.kind.is_signing() {
                        return Err(ValidationError::BadEvent(format!(
                            "{} certificates carry no 4 information",
                            cert.kind
                        )));
                    }
                    info.validate()?;
                }
            }
            EventBody::Revoke {
                invalidity_date, ..
            } => {
                if invalidity_date.is_some_and(|d| d > self.time) {
                    return Err(ValidationError::BadEvent(
                        "invalidity_date must not be after the event time".into(),
                    ));
                }
            }
            EventBody::FourInfoChange {
                four_info,
                new_signing,
                ..
            } => {
                four_info.validate()?;
                if let Some(c) = new_signing {
                    c.validate()?;
                    c.expect_kind(CertKind::CardSigning, "new_signing")?;
                }
            }
            EventBody::PhoneChange {
                new_signing,
                new_auth,
                ..
            } => {
                for (c, want, f) in [
                    (new_signing, CertKind::PhoneSigning, "new_signing"),
                    (new_auth, CertKind::PhoneAuth, "new_auth"),
                ] {
                    if let Some(c) = c {
                        c.validate()?;
                        c.expect_kind(want, f)?;
                    }
                }
            }
            EventBody::Renewal {
                new_signing,
                new_auth,
                ..
            } => {
                if new_signing.is_none() && new_auth.is_none() {
                    return Err(ValidationError::BadEvent(
                        "a renewal issues at least one new certificate".into(),
                    ));
                }
                for (c, want, f) in [
                    (new_signing, CertKind::CardSigning, "new_signing"),
                    (new_auth, CertKind::CardAuth, "new_auth"),
                ] {
                    if let Some(c) = c {
                        c.validate()?;
                        c.expect_kind(want, f)?;
                    }
                }
            }
            EventBody::Suspend { .. }
            | EventBody::Resume { .. }
            | EventBody::Death { .. }
            | EventBody::Emigration { .. }
            | EventBody::CardLoss { .. }
            | EventBody::CardReturn { .. } => {}
        }
        Ok(())
    }
}

mod opt_hex {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) if s.is_human_readable() => s.serialize_some(&hex::encode(b)),
            Some(b) => s.serialize_some(b),
            None => s.serialize_none(),
        }
    }

    /// Accepts hex text or octets (see `Serial`'s deserializer for why both).
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Option<Vec<u8>>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("DER as hex text or octets")
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                d.deserialize_any(V)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                hex::decode(v).map(Some).map_err(E::custom)
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(Some(v.to_vec()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    if out.len() == super::CERT_DER_MAX_BYTES {
                        return Err(serde::de::Error::custom("cert_der too long"));
                    }
                    out.push(b);
                }
                Ok(Some(out))
            }
        }
        d.deserialize_option(V)
    }
}
