//! Loading a snapshot of the registry's state into a follower's store (a
//! mirror or a replica) that starts empty or fell behind the registry's
//! retention horizon; and reading such a snapshot out of the registry's.
//!
//! Loading is three steps: [`Store::begin_reload`] forgets the followed
//! state durably (the position is 0 first, so a crash while loading starts
//! the load over at the next start), the parts are written as they come,
//! and [`Store::end_reload`] sets the position to the snapshot's sequence
//! number and the first kept feed record after it (the follower's own feed
//! starts there: a delta CRL that needs older records is not built from it).

use std::sync::atomic::Ordering;

use rocksdb::{WriteBatch, WriteOptions};
use shikko_core::{CertKind, CertRecord, Effect, HolderRecord, Municipality, StatusChange};

use crate::ingest::BatchView;
use crate::query::RevokedValue;
use crate::retention::META_FIRST_SEQ;
use crate::snapshot::Snapshot;
use crate::{Error, META_LAST_SEQ, Result, Store, cf, keys};

/// Past every key of the families cleared (ids are at most 128 octets).
const KEY_END: [u8; 256] = [0xff; 256];

/// What a mirror keeps of the registry's state.
pub(crate) const MIRROR_FAMILIES: [&str; 4] =
    [cf::REVOKED, cf::FEED, cf::MUNICIPALITIES, cf::ISSUED];
/// What a replica keeps of the registry's state (its `info` family is its own).
pub(crate) const REPLICA_FAMILIES: [&str; 8] = [
    cf::CERTS,
    cf::CERT_DER,
    cf::HOLDERS,
    cf::LINKS,
    cf::REVOKED,
    cf::MUNICIPALITIES,
    cf::FEED,
    cf::WRITES,
];

impl Store {
    /// Forgets the followed state in `families`: position 0 first (synced),
    /// then range deletions of every key.
    pub(crate) fn begin_reload(&self, families: &[&'static str]) -> Result<()> {
        let _w = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut w = WriteOptions::default();
        w.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(cf::META), META_LAST_SEQ, 0u64.to_be_bytes());
        batch.put_cf(self.cf(cf::META), META_FIRST_SEQ, 1u64.to_be_bytes());
        self.db.write_opt(batch, &w)?;
        self.last_seq.store(0, Ordering::SeqCst);
        self.first_seq.store(1, Ordering::SeqCst);
        let mut batch = WriteBatch::default();
        for family in families {
            batch.delete_range_cf(self.cf(family), &[] as &[u8], &KEY_END[..]);
        }
        self.db.write_opt(batch, &w)?;
        Ok(())
    }

    /// Writes a mirror's part of a snapshot: municipalities, and statuses
    /// (every certificate into the issued index, the listed ones into the
    /// revoked index).
    pub(crate) fn reload_statuses(
        &self,
        municipalities: &[Municipality],
        changes: &[StatusChange],
    ) -> Result<()> {
        let mut batch = WriteBatch::default();
        for m in municipalities {
            batch.put_cf(
                self.cf(cf::MUNICIPALITIES),
                m.code.0.to_be_bytes(),
                keys::encode(m, cf::MUNICIPALITIES)?,
            );
        }
        for c in changes {
            batch.put_cf(
                self.cf(cf::ISSUED),
                keys::cert_key(c.kind, &c.serial),
                crate::mirror::issued_value(c),
            );
            if !c.status.is_listed() {
                continue;
            }
            let v = RevokedValue {
                status: c.status,
                not_after: c.not_after,
            };
            batch.put_cf(
                self.cf(cf::REVOKED),
                keys::revoked_key(c.kind, c.partition, &c.serial),
                v.encode()?,
            );
        }
        Ok(self.db.write(batch)?)
    }

    /// Writes a replica's part of a snapshot: the writes, as they are.
    pub(crate) fn reload_writes(&self, writes: Vec<Effect>) -> Result<()> {
        let mut batch = WriteBatch::default();
        // The revoked index was emptied by `begin_reload`: a good
        // certificate needs no delete there (no tombstone per certificate).
        let mut view = BatchView::over_empty_index(self);
        self.write_effects(&mut batch, &mut view, writes)?;
        Ok(self.db.write(batch)?)
    }

    /// The snapshot is loaded: the position is `seq` (synced, after
    /// everything loaded is flushed to the write-ahead log), the own feed
    /// starts after it.
    pub(crate) fn end_reload(&self, seq: u64) -> Result<u64> {
        let _w = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(cf::META), META_LAST_SEQ, seq.to_be_bytes());
        batch.put_cf(self.cf(cf::META), META_FIRST_SEQ, (seq + 1).to_be_bytes());
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db.write_opt(batch, &w)?;
        self.last_seq.store(seq, Ordering::SeqCst);
        self.first_seq.store(seq + 1, Ordering::SeqCst);
        Ok(seq)
    }
}

fn status_of(c: &CertRecord) -> StatusChange {
    StatusChange {
        kind: c.kind,
        serial: c.serial,
        partition: c.partition,
        not_after: c.not_after,
        status: c.status,
        not_before: c.not_before,
    }
}

impl Snapshot<'_> {
    /// Every certificate's status, in (issuer, serial) order, `batch_size`
    /// at a time. Returns how many.
    pub fn scan_statuses<E: From<Error>>(
        &self,
        batch_size: usize,
        mut each: impl FnMut(Vec<StatusChange>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut out = Vec::with_capacity(batch_size);
        let mut total = 0;
        self.each_raw::<E>(cf::CERTS, |_, v| {
            let c: CertRecord = keys::decode(v, cf::CERTS)?;
            out.push(status_of(&c));
            total += 1;
            if out.len() >= batch_size {
                each(std::mem::take(&mut out))?;
            }
            Ok(())
        })?;
        if !out.is_empty() {
            each(out)?;
        }
        Ok(total)
    }

    /// The revoked and held certificates of every issuer, `batch_size` at a time.
    pub fn scan_listed<E: From<Error>>(
        &self,
        batch_size: usize,
        mut each: impl FnMut(Vec<StatusChange>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut total = 0;
        for kind in CertKind::ALL {
            total += self.scan_revoked(kind, None, batch_size, |b: &crate::RevokedBatch| {
                let mut out = Vec::with_capacity(b.len());
                for i in 0..b.len() {
                    let e = b.get(i)?;
                    out.push(StatusChange {
                        kind: e.kind,
                        serial: e.serial,
                        partition: e.partition,
                        not_after: e.not_after,
                        status: e.status,
                        // The revoked index does not keep it: unknown.
                        not_before: shikko_core::UnixTime(0),
                    });
                }
                each(out)
            })?;
        }
        Ok(total)
    }

    /// The state as writes that rebuild it (certificates, holders, links,
    /// DER; municipalities come apart), `batch_size` at a time. Returns how many.
    pub fn scan_writes<E: From<Error>>(
        &self,
        batch_size: usize,
        mut each: impl FnMut(Vec<Effect>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut out = Vec::with_capacity(batch_size);
        let mut total = 0u64;
        let mut push = |e: Effect, out: &mut Vec<Effect>| -> Result<(), E> {
            out.push(e);
            total += 1;
            if out.len() >= batch_size {
                each(std::mem::take(out))?;
            }
            Ok(())
        };
        self.each_raw::<E>(cf::CERTS, |_, v| {
            push(Effect::PutCert(keys::decode(v, cf::CERTS)?), &mut out)
        })?;
        self.each_raw::<E>(cf::HOLDERS, |_, v| {
            let h: HolderRecord = keys::decode(v, cf::HOLDERS)?;
            push(Effect::PutHolder(h), &mut out)
        })?;
        self.each_raw::<E>(cf::LINKS, |k, v| {
            let (kind, old) = cert_key_parts(k, cf::LINKS)?;
            let new = keys::serial_from(v, cf::LINKS)?;
            push(Effect::Link { kind, old, new }, &mut out)
        })?;
        self.each_raw::<E>(cf::CERT_DER, |k, v| {
            let (kind, serial) = cert_key_parts(k, cf::CERT_DER)?;
            push(
                Effect::PutCertDer {
                    kind,
                    serial,
                    der: v.to_vec(),
                },
                &mut out,
            )
        })?;
        if !out.is_empty() {
            each(out)?;
        }
        Ok(total)
    }
}

fn cert_key_parts(k: &[u8], family: &'static str) -> Result<(CertKind, shikko_core::Serial)> {
    let kind = k
        .first()
        .and_then(|c| CertKind::from_code(*c))
        .ok_or_else(|| Error::Corrupt {
            cf: family,
            why: "a key with no issuer".into(),
        })?;
    Ok((kind, keys::serial_from(&k[1..], family)?))
}
