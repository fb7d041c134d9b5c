//! The change feed: for each accepted event, in sequence order, the status
//! changes it made. It carries no personal data, so OCSP and CRL roles can
//! follow it.

use serde::{Deserialize, Serialize};
use shikko_core::{CertKind, CertStatus, Event, EventId, PartitionId, Serial, UnixTime};

use crate::{Result, Store, cf, keys};

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
}

impl Store {
    /// Up to `limit` change records with sequence number `>= from_seq`, in order.
    pub fn changes_since(&self, from_seq: u64, limit: usize) -> Result<Vec<ChangeRecord>> {
        let mut out = Vec::with_capacity(limit.min(4096));
        let start = from_seq.max(1).to_be_bytes();
        let iter = self.db.iterator_cf(
            self.cf(cf::FEED),
            rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for item in iter.take(limit) {
            let (_, v) = item?;
            out.push(keys::decode(&v, cf::FEED)?);
        }
        Ok(out)
    }

    /// The event accepted with sequence number `seq`, as received.
    pub fn event(&self, seq: u64) -> Result<Option<Event>> {
        self.db
            .get_cf(self.cf(cf::EVENTS), seq.to_be_bytes())?
            .map(|v| keys::decode(&v, cf::EVENTS))
            .transpose()
    }
}
