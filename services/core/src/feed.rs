//! The change feed's records: for each accepted event, in sequence order, the
//! status changes it made. They carry no personal data, so the status-only
//! roles (OCSP, CRL) can follow them.

use serde::{Deserialize, Serialize};

use crate::{CertKind, CertStatus, EventId, Municipality, PartitionId, Serial, UnixTime};

/// One certificate's new status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// Issuer.
    pub kind: CertKind,
    /// Serial.
    pub serial: Serial,
    /// CRL partition.
    pub partition: PartitionId,
    /// End of validity (CRL entries leave after it).
    pub not_after: UnixTime,
    /// The status after the event.
    pub status: CertStatus,
    /// Start of validity: what the compact revocation filters' coverage is
    /// decided by. (0 in records written before it existed, and in
    /// snapshots of the listed certificates only: covered from the start.)
    #[serde(default)]
    pub not_before: UnixTime,
}

/// What one accepted event changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// The event's id.
    pub event_id: EventId,
    /// The event's type (`issue`, `revoke`, ...).
    pub event_type: String,
    /// The event's time.
    pub time: UnixTime,
    /// Status changes, in the order the rules made them.
    pub changes: Vec<StatusChange>,
    /// Municipalities (CRL partitions) this event made known to the
    /// registry: followers record them before the changes, so that no CRL
    /// build sees a certificate without its partition. (Absent in records
    /// written before it existed: the stream's first batch lists them all.)
    #[serde(default)]
    pub municipalities: Vec<Municipality>,
}

/// A certificate on hold or revoked: one entry of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Issuer.
    pub kind: CertKind,
    /// CRL partition.
    pub partition: PartitionId,
    /// Serial.
    pub serial: Serial,
    /// `OnHold` or `Revoked`.
    pub status: CertStatus,
    /// End of validity: the entry leaves the CRL after it.
    pub not_after: UnixTime,
}
