//! Replica writes ([`crate::ReplicaStore`]): a copy of the registry's state (holders, certificates,
//! links, certificate DER, municipalities, revoked index, change feed) made
//! by applying the writes the registry recorded for each event, never by
//! running the rules again: a replica of another version cannot diverge.

use rocksdb::WriteBatch;
use shikko_core::{ChangeRecord, Effect};

use crate::ingest::BatchView;
use crate::{Error, Result, Store, cf, keys};

impl Store {
    /// [`crate::ReplicaStore::apply_replicated`].
    pub(crate) fn apply_replicated_records(
        &self,
        records: &[(ChangeRecord, Vec<Effect>)],
    ) -> Result<u64> {
        let _guard = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut seq = self.last_seq();
        let mut batch = WriteBatch::default();
        let mut view = BatchView::new(self);
        for (record, writes) in records {
            if record.seq != seq + 1 {
                return Err(Error::Gap {
                    applied: seq,
                    got: record.seq,
                });
            }
            let (changes, _) = self.write_effects(&mut batch, &mut view, writes.clone())?;
            if changes != record.changes {
                return Err(Error::Corrupt {
                    cf: cf::WRITES,
                    why: format!(
                        "the writes of record {} do not make its status changes",
                        record.seq
                    ),
                });
            }
            // Municipalities are recorded by the writes; the record keeps
            // naming them for this replica's own followers.
            batch.put_cf(
                self.cf(cf::FEED),
                record.seq.to_be_bytes(),
                keys::encode(record, cf::FEED)?,
            );
            batch.put_cf(
                self.cf(cf::WRITES),
                record.seq.to_be_bytes(),
                keys::encode(writes, cf::WRITES)?,
            );
            seq = record.seq;
        }
        self.commit_followed(batch, seq)
    }
}
