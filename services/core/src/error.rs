//! Errors: malformed input ([`ValidationError`]) and broken rules ([`RuleViolation`]).
//!
//! Messages name events, serials and holder ids (opaque), never 4 information.

use crate::ids::{CertKind, EventId, HolderId, Serial};
use crate::status::RevocationReason;

/// Input that is malformed in itself, whatever the state of the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// Not one of `sign`, `auth`, `phone-sign`, `phone-auth`.
    #[error("unknown issuer id {0:?} (expected sign, auth, phone-sign or phone-auth)")]
    UnknownIssuer(String),
    /// A serial number that RFC 5280 does not allow.
    #[error("bad serial number: {0}")]
    BadSerial(&'static str),
    /// A malformed holder or event id.
    #[error("bad {what}: {why}")]
    BadId {
        /// Which id.
        what: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A malformed municipality.
    #[error("bad municipality: {0}")]
    BadMunicipality(&'static str),
    /// Malformed 4 information; the message names the field, never its value.
    #[error("bad 4 information: {0}")]
    BadFourInfo(&'static str),
    /// A field that is missing or inconsistent with the rest of the event.
    #[error("bad event: {0}")]
    BadEvent(String),
    /// An issuer number that is none of the four issuers.
    #[error("issuer {0} is not one of sign (1), auth (2), phone-sign (3), phone-auth (4)")]
    UnknownIssuerNumber(i32),
    /// A reason code that RFC 5280 does not define.
    #[error("unknown CRL reason code {0}")]
    UnknownReason(u8),
    /// A malformed consent (items, times).
    #[error("bad consent: {0}")]
    BadConsent(&'static str),
}

/// An event that is well formed but breaks a rule of the registry.
///
/// Each variant is one rule; [`RuleViolation::rule`] is its stable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleViolation {
    /// The event is malformed.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The event id was seen before with different content.
    #[error("event id {0} was already used for a different event")]
    EventIdReused(EventId),
    /// A serial number is issued once per issuer.
    #[error("{kind} serial {serial} was already issued")]
    SerialAlreadyIssued {
        /// Issuer.
        kind: CertKind,
        /// Serial.
        serial: Serial,
    },
    /// The certificate is not known to the registry.
    #[error("{kind} serial {serial} is unknown")]
    UnknownSerial {
        /// Issuer.
        kind: CertKind,
        /// Serial.
        serial: Serial,
    },
    /// The holder is not known to the registry.
    #[error("holder {0} is unknown")]
    UnknownHolder(HolderId),
    /// A revoked certificate stays revoked.
    #[error("{kind} serial {serial} is already revoked")]
    AlreadyRevoked {
        /// Issuer.
        kind: CertKind,
        /// Serial.
        serial: Serial,
    },
    /// Only a good certificate can be put on hold.
    #[error("{kind} serial {serial} is already on hold")]
    AlreadyOnHold {
        /// Issuer.
        kind: CertKind,
        /// Serial.
        serial: Serial,
    },
    /// Only a certificate on hold can be resumed.
    #[error("{kind} serial {serial} is not on hold")]
    NotOnHold {
        /// Issuer.
        kind: CertKind,
        /// Serial.
        serial: Serial,
    },
    /// Only a smartphone user-authentication certificate's hold can be lifted.
    #[error(
        "the hold on {kind} serial {serial} cannot be lifted: only a phone-auth hold can be released, every other hold ends in revocation"
    )]
    HoldNotReleasable {
        /// Issuer.
        kind: CertKind,
        /// Serial.
        serial: Serial,
    },
    /// This reason is not given through a revoke event.
    #[error("reason {0} cannot be used in a revoke event (use suspend/resume for holds)")]
    ReasonNotAllowed(RevocationReason),
    /// The holder already has a live certificate of this kind.
    #[error(
        "holder {holder} already has a live {kind} certificate ({serial}); replace it with a renewal, phone change or 4-information change event"
    )]
    LiveCertificateExists {
        /// Holder.
        holder: HolderId,
        /// Issuer.
        kind: CertKind,
        /// The live certificate.
        serial: Serial,
    },
    /// The event needs a live certificate the holder does not have.
    #[error("holder {holder} has no live {what}")]
    NoLiveCertificate {
        /// Holder.
        holder: HolderId,
        /// What was looked for.
        what: &'static str,
    },
    /// Nothing more is issued to or changed for a deceased or emigrated holder.
    #[error("holder {holder} is {state}; no further events apply")]
    HolderInactive {
        /// Holder.
        holder: HolderId,
        /// `deceased` or `emigrated`.
        state: &'static str,
    },
    /// A certificate named in the event belongs to another holder.
    #[error("{kind} serial {serial} does not belong to holder {holder}")]
    HolderMismatch {
        /// Holder.
        holder: HolderId,
        /// Issuer.
        kind: CertKind,
        /// Serial.
        serial: Serial,
    },
    /// The event is earlier than the state it would change.
    #[error("out of order: {0}")]
    OutOfOrder(String),
}

impl RuleViolation {
    /// A stable, machine-readable name of the rule that was broken.
    pub fn rule(&self) -> &'static str {
        match self {
            RuleViolation::Invalid(_) => "malformed-event",
            RuleViolation::EventIdReused(_) => "event-id-reused",
            RuleViolation::SerialAlreadyIssued { .. } => "serial-issued-once",
            RuleViolation::UnknownSerial { .. } => "unknown-serial",
            RuleViolation::UnknownHolder(_) => "unknown-holder",
            RuleViolation::AlreadyRevoked { .. } => "revoked-stays-revoked",
            RuleViolation::AlreadyOnHold { .. } => "already-on-hold",
            RuleViolation::NotOnHold { .. } => "not-on-hold",
            RuleViolation::HoldNotReleasable { .. } => "hold-not-releasable",
            RuleViolation::ReasonNotAllowed(_) => "reason-not-allowed",
            RuleViolation::LiveCertificateExists { .. } => "one-live-certificate-per-kind",
            RuleViolation::NoLiveCertificate { .. } => "no-live-certificate",
            RuleViolation::HolderInactive { .. } => "holder-inactive",
            RuleViolation::HolderMismatch { .. } => "holder-mismatch",
            RuleViolation::OutOfOrder(_) => "out-of-order",
        }
    }
}
