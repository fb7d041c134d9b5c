//! Mirror writes ([`crate::MirrorStore`]): a local copy of the parts of a registry's store that the CRL
//! (and later OCSP) roles read, kept by following the registry's change feed.
//!
//! A mirror holds the revoked index, the change feed (for delta CRLs), the
//! municipalities (CRL partitions) and the last sequence number; never
//! events, holders or 4 information. The builders read a mirror exactly as
//! they read the registry's own store (snapshots, scans, feed).

use rocksdb::{WriteBatch, WriteOptions};
use shikko_core::Municipality;

use crate::query::RevokedValue;
use crate::{Error, META_ISSUED_INDEX, META_LAST_SEQ, META_MIRROR_OF, Result, Store, cf, keys};
use shikko_core::{ChangeRecord, StatusChange};

/// The `issued` family's value of a certificate: notBefore, notAfter, listed.
pub(crate) fn issued_value(c: &StatusChange) -> [u8; 17] {
    let mut v = [0u8; 17];
    v[..8].copy_from_slice(&c.not_before.0.to_be_bytes());
    v[8..16].copy_from_slice(&c.not_after.0.to_be_bytes());
    v[16] = u8::from(c.status.is_listed());
    v
}

impl Store {
    /// [`crate::MirrorStore::apply_changes`].
    pub(crate) fn apply_change_records(&self, records: &[ChangeRecord]) -> Result<u64> {
        let _guard = self
            .write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut seq = self.last_seq();
        let mut batch = WriteBatch::default();
        if seq == 0 && !records.is_empty() {
            // Followed from the first record: the issued index sees every certificate.
            batch.put_cf(self.cf(cf::META), META_ISSUED_INDEX, b"1");
        }
        for record in records {
            if record.seq != seq + 1 {
                return Err(Error::Gap {
                    applied: seq,
                    got: record.seq,
                });
            }
            for m in &record.municipalities {
                batch.put_cf(
                    self.cf(cf::MUNICIPALITIES),
                    m.code.0.to_be_bytes(),
                    keys::encode(m, cf::MUNICIPALITIES)?,
                );
            }
            for c in &record.changes {
                batch.put_cf(
                    self.cf(cf::ISSUED),
                    keys::cert_key(c.kind, &c.serial),
                    issued_value(c),
                );
                let key = keys::revoked_key(c.kind, c.partition, &c.serial);
                if c.status.is_listed() {
                    let v = RevokedValue {
                        status: c.status,
                        not_after: c.not_after,
                    };
                    batch.put_cf(self.cf(cf::REVOKED), key, v.encode()?);
                } else {
                    batch.delete_cf(self.cf(cf::REVOKED), key);
                }
            }
            batch.put_cf(
                self.cf(cf::FEED),
                record.seq.to_be_bytes(),
                keys::encode(record, cf::FEED)?,
            );
            seq = record.seq;
        }
        self.commit_followed(batch, seq)
    }

    /// Writes a follower's batch (synced) with its new `last_seq`, unless
    /// it advanced nothing; returns the new `last_seq`.
    pub(crate) fn commit_followed(&self, mut batch: WriteBatch, seq: u64) -> Result<u64> {
        if seq == self.last_seq() {
            return Ok(seq);
        }
        batch.put_cf(self.cf(cf::META), META_LAST_SEQ, seq.to_be_bytes());
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db.write_opt(batch, &w)?;
        self.last_seq
            .store(seq, std::sync::atomic::Ordering::SeqCst);
        Ok(seq)
    }

    /// The registry store (its [`Store::store_id`]) this mirror or replica
    /// was made from, once bound.
    pub fn mirror_of(&self) -> Result<Option<String>> {
        Ok(self
            .meta(META_MIRROR_OF)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Records (synced) the registry store this mirror or replica follows,
    /// before anything of its history is applied; refuses another once bound.
    /// The comparison with the registry's id on every batch is the
    /// follower's (`shikko-follow`'s `Binding`); this keeps the binding
    /// across restarts.
    pub(crate) fn bind_to(&self, source_id: &str) -> Result<()> {
        match self.mirror_of()? {
            Some(bound) if bound == source_id => return Ok(()),
            Some(bound) => {
                return Err(Error::Foreign {
                    bound,
                    offered: source_id.to_string(),
                });
            }
            None => {}
        }
        let mut w = WriteOptions::default();
        w.set_sync(true);
        Ok(self
            .db
            .put_cf_opt(self.cf(cf::META), META_MIRROR_OF, source_id.as_bytes(), &w)?)
    }

    /// Records the registry's municipalities (CRL partitions) in a mirror.
    pub(crate) fn put_municipalities(&self, municipalities: &[Municipality]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for m in municipalities {
            batch.put_cf(
                self.cf(cf::MUNICIPALITIES),
                m.code.0.to_be_bytes(),
                keys::encode(m, cf::MUNICIPALITIES)?,
            );
        }
        let mut w = WriteOptions::default();
        w.set_sync(true);
        Ok(self.db.write_opt(batch, &w)?)
    }

    /// Whether this mirror's `issued` family holds every certificate.
    pub(crate) fn has_issued_index(&self) -> Result<bool> {
        Ok(self.meta(META_ISSUED_INDEX)?.is_some())
    }

    /// Marks (synced) the `issued` family complete, or not.
    pub(crate) fn set_issued_index(&self, complete: bool) -> Result<()> {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        if complete {
            self.db
                .put_cf_opt(self.cf(cf::META), META_ISSUED_INDEX, b"1", &w)?;
        } else {
            self.db
                .delete_cf_opt(self.cf(cf::META), META_ISSUED_INDEX, &w)?;
        }
        Ok(())
    }

    pub(crate) fn holds_events(&self) -> Result<bool> {
        let mut it = self.db.raw_iterator_cf(self.cf(cf::EVENTS));
        it.seek_to_first();
        let any = it.valid();
        it.status()?;
        Ok(any)
    }
}
