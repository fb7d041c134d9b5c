//! Reading the change feed ([`ChangeRecord`]s, defined in the core) and the
//! events behind it.

use shikko_core::{ChangeRecord, Effect, Event};

use crate::{Result, Store, cf, keys};

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

    /// The writes the event with sequence number `seq` made (`None` for
    /// events accepted before the store kept them).
    pub fn writes(&self, seq: u64) -> Result<Option<Vec<Effect>>> {
        self.db
            .get_cf(self.cf(cf::WRITES), seq.to_be_bytes())?
            .map(|v| keys::decode(&v, cf::WRITES))
            .transpose()
    }

    /// The event accepted with sequence number `seq`, as received.
    pub fn event(&self, seq: u64) -> Result<Option<Event>> {
        self.db
            .get_cf(self.cf(cf::EVENTS), seq.to_be_bytes())?
            .map(|v| keys::decode(&v, cf::EVENTS))
            .transpose()
    }
}
