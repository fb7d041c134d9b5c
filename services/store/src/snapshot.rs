//! Consistent point-in-time reads for builders that must see one state of
//! the store across several scans: a CRL and the change-feed position it
//! corresponds to, or a base CRL and the deltas that follow it.

use rocksdb::{DB, ReadOptions, SnapshotWithThreadMode};
use shikko_core::{CertKind, Municipality, PartitionId, SERIAL_MAX_OCTETS};

use crate::{Error, META_ISSUED_INDEX, META_KIND, META_LAST_SEQ, Result, Store, cf, keys};
use shikko_core::ChangeRecord;
use shikko_core::RevokedEntry;

const REVOKED_KEY_LEN: usize = 5 + SERIAL_MAX_OCTETS;

/// A read-only view of the store frozen at one point of the change feed.
///
/// Every read through it sees the same state, whatever is ingested meanwhile.
/// Hold it only as long as a build takes: RocksDB keeps what it pins.
pub struct Snapshot<'a> {
    store: &'a Store,
    snap: SnapshotWithThreadMode<'a, DB>,
    seq: u64,
}

impl std::fmt::Debug for Snapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("seq", &self.seq).finish()
    }
}

/// One certificate as the compact revocation filters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedCert {
    /// Its serial.
    pub serial: shikko_core::Serial,
    /// Start of validity (0 when the registry's feed did not say: records
    /// written before it did).
    pub not_before: shikko_core::UnixTime,
    /// End of validity.
    pub not_after: shikko_core::UnixTime,
    /// Revoked or on hold.
    pub listed: bool,
}

/// A run of raw revoked-index entries, decoded on demand with [`RevokedBatch::get`]
/// so that decoding can run in parallel away from the scanning thread.
#[derive(Debug, Default)]
pub struct RevokedBatch {
    kind: Option<CertKind>,
    keys: Vec<u8>,
    values: Vec<u8>,
    value_ends: Vec<u32>,
}

impl RevokedBatch {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.value_ends.len()
    }

    /// Whether the batch holds no entry.
    pub fn is_empty(&self) -> bool {
        self.value_ends.is_empty()
    }

    /// Decodes entry `i` (`i < len()`).
    pub fn get(&self, i: usize) -> Result<RevokedEntry> {
        let corrupt = |why: &str| Error::Corrupt {
            cf: cf::REVOKED,
            why: why.into(),
        };
        let kind = self.kind.ok_or_else(|| corrupt("empty batch"))?;
        let key = self
            .keys
            .get(i * REVOKED_KEY_LEN..(i + 1) * REVOKED_KEY_LEN)
            .ok_or_else(|| corrupt("entry index out of range"))?;
        let start = if i == 0 {
            0
        } else {
            self.value_ends[i - 1] as usize
        };
        let end = self.value_ends[i] as usize;
        crate::query::revoked_entry(kind, key, &self.values[start..end])
    }
}

impl Store {
    /// A consistent view of the store as of now, and the sequence number of
    /// the last event it includes.
    pub fn snapshot(&self) -> Result<Snapshot<'_>> {
        let snap = self.db.snapshot();
        let seq = snap
            .get_cf(self.cf(cf::META), META_LAST_SEQ)?
            .map(|v| keys::decode_u64(&v, cf::META))
            .transpose()?
            .unwrap_or(0);
        Ok(Snapshot {
            store: self,
            snap,
            seq,
        })
    }
}

impl<'a> Snapshot<'a> {
    /// The sequence number of the last event this view includes (0 when empty).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The RocksDB snapshot, for reads of this view.
    pub(crate) fn raw(&self) -> &SnapshotWithThreadMode<'a, DB> {
        &self.snap
    }

    /// The store it is a view of.
    pub(crate) fn store(&self) -> &'a Store {
        self.store
    }

    fn read_options(&self, bulk: bool) -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&self.snap);
        if bulk {
            // A scan of millions of entries must not evict what point reads keep hot.
            ro.fill_cache(false);
            ro.set_readahead_size(4 << 20);
        }
        ro
    }

    /// Streams the revoked and held entries of an issuer (or one partition of
    /// it) in (partition, serial) order, `batch_size` entries at a time, still
    /// encoded: memory stays bounded by one batch whatever the index holds
    /// (the batch is reused: `each` sees it only for the call).
    /// Returns the number of entries seen.
    /// `each` may fail with its own error type, which ends the scan.
    pub fn scan_revoked<E: From<Error>>(
        &self,
        kind: CertKind,
        partition: Option<PartitionId>,
        batch_size: usize,
        each: impl FnMut(&RevokedBatch) -> Result<(), E>,
    ) -> Result<u64, E> {
        self.scan_revoked_range(kind, partition, &[], None, batch_size, each)
    }

    /// The first and last index keys of an issuer's (or a partition's)
    /// entries, for splitting a scan into ranges ([`Snapshot::scan_revoked_range`]);
    /// `None` when there is no entry.
    pub fn revoked_key_bounds(
        &self,
        kind: CertKind,
        partition: Option<PartitionId>,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let prefix = keys::revoked_prefix(kind, partition);
        let mut it = self
            .store
            .db
            .raw_iterator_cf_opt(self.store.cf(cf::REVOKED), self.read_options(false));
        it.seek(&prefix);
        let first = match it.key() {
            Some(k) if k.starts_with(&prefix) => k.to_vec(),
            _ => {
                it.status()?;
                return Ok(None);
            }
        };
        // The last key under the prefix: seek before the prefix's successor.
        let mut upper = prefix.clone();
        upper.resize(REVOKED_KEY_LEN, 0xff);
        it.seek_for_prev(&upper);
        let last = match it.key() {
            Some(k) if k.starts_with(&prefix) => k.to_vec(),
            _ => first.clone(),
        };
        it.status()?;
        Ok(Some((first, last)))
    }

    /// [`Snapshot::scan_revoked`] of the keys `from <= key < to` (no upper
    /// bound when `to` is `None`) under the issuer's (or partition's) prefix.
    /// Ranges that split the prefix's keys scan every entry exactly once.
    pub fn scan_revoked_range<E: From<Error>>(
        &self,
        kind: CertKind,
        partition: Option<PartitionId>,
        from: &[u8],
        to: Option<&[u8]>,
        batch_size: usize,
        mut each: impl FnMut(&RevokedBatch) -> Result<(), E>,
    ) -> Result<u64, E> {
        let batch_size = batch_size.max(1);
        let prefix = keys::revoked_prefix(kind, partition);
        let mut it = self
            .store
            .db
            .raw_iterator_cf_opt(self.store.cf(cf::REVOKED), self.read_options(true));
        it.seek(prefix.as_slice().max(from));
        let mut total = 0u64;
        let mut batch = new_batch(kind, batch_size);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&prefix) || to.is_some_and(|to| k >= to) {
                break;
            }
            if k.len() != REVOKED_KEY_LEN {
                return Err(Error::Corrupt {
                    cf: cf::REVOKED,
                    why: "bad key length".into(),
                }
                .into());
            }
            batch.keys.extend_from_slice(k);
            batch.values.extend_from_slice(v);
            let end = u32::try_from(batch.values.len()).map_err(|_| Error::Corrupt {
                cf: cf::REVOKED,
                why: "values too large for one batch".into(),
            })?;
            batch.value_ends.push(end);
            total += 1;
            if batch.len() == batch_size {
                // One batch's buffers serve the whole scan.
                each(&batch)?;
                batch.keys.clear();
                batch.values.clear();
                batch.value_ends.clear();
            }
            it.next();
        }
        it.status().map_err(Error::from)?;
        if !batch.is_empty() {
            each(&batch)?;
        }
        Ok(total)
    }

    /// Up to `limit` change records with `from_seq <= seq <= self.seq()`, in order.
    pub fn changes(&self, from_seq: u64, limit: usize) -> Result<Vec<ChangeRecord>> {
        let mut out = Vec::with_capacity(limit.min(4096));
        let start = from_seq.max(1).to_be_bytes();
        let mut it = self
            .store
            .db
            .raw_iterator_cf_opt(self.store.cf(cf::FEED), self.read_options(false));
        it.seek(start);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if out.len() >= limit || keys::decode_u64(k, cf::FEED)? > self.seq {
                break;
            }
            out.push(keys::decode(v, cf::FEED)?);
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Calls `f` with every key and value of `family`, in key order.
    pub(crate) fn each_raw<E: From<Error>>(
        &self,
        family: &'static str,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut it = self
            .store
            .db
            .raw_iterator_cf_opt(self.store.cf(family), self.read_options(true));
        it.seek_to_first();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            f(k, v)?;
            it.next();
        }
        it.status().map_err(Error::from)?;
        Ok(())
    }

    /// Every certificate of `kind` the store knows, in serial order, to
    /// `each`: a mirror reads its issued index (refused while it is
    /// incomplete: [`Error::NoIssuedIndex`]), a registry or replica its
    /// certificate records. Returns how many.
    pub fn scan_issued<E: From<Error>>(
        &self,
        kind: CertKind,
        mut each: impl FnMut(IssuedCert) -> Result<(), E>,
    ) -> Result<u64, E> {
        let meta = |key: &[u8]| -> Result<Option<Vec<u8>>> {
            Ok(self.snap.get_cf(self.store.cf(cf::META), key)?)
        };
        let mirror = meta(META_KIND)?.as_deref() == Some(b"mirror");
        if mirror && meta(META_ISSUED_INDEX)?.is_none() {
            return Err(Error::NoIssuedIndex.into());
        }
        let family = if mirror { cf::ISSUED } else { cf::CERTS };
        let mut it = self
            .store
            .db
            .raw_iterator_cf_opt(self.store.cf(family), self.read_options(true));
        it.seek([kind.code()]);
        let mut n = 0;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if k.first() != Some(&kind.code()) {
                break;
            }
            let cert = if mirror {
                let serial = keys::serial_from(&k[1..], cf::ISSUED)?;
                let v: [u8; 17] = v.try_into().map_err(|_| Error::Corrupt {
                    cf: cf::ISSUED,
                    why: format!("a value of {} octets", v.len()),
                })?;
                let int = |b: &[u8]| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    i64::from_be_bytes(a)
                };
                IssuedCert {
                    serial,
                    not_before: shikko_core::UnixTime(int(&v[..8])),
                    not_after: shikko_core::UnixTime(int(&v[8..16])),
                    listed: v[16] != 0,
                }
            } else {
                let c: shikko_core::CertRecord = keys::decode(v, cf::CERTS)?;
                IssuedCert {
                    serial: c.serial,
                    not_before: c.not_before,
                    not_after: c.not_after,
                    listed: c.status.is_listed(),
                }
            };
            each(cert)?;
            n += 1;
            it.next();
        }
        it.status().map_err(Error::from)?;
        Ok(n)
    }

    /// Every municipality (CRL partition) seen in an issued signing certificate.
    pub fn municipalities(&self) -> Result<Vec<Municipality>> {
        let mut out = Vec::new();
        let mut it = self
            .store
            .db
            .raw_iterator_cf_opt(self.store.cf(cf::MUNICIPALITIES), self.read_options(false));
        it.seek_to_first();
        while let Some(v) = it.value() {
            out.push(keys::decode(v, cf::MUNICIPALITIES)?);
            it.next();
        }
        it.status()?;
        Ok(out)
    }
}

fn new_batch(kind: CertKind, capacity: usize) -> RevokedBatch {
    RevokedBatch {
        kind: Some(kind),
        keys: Vec::with_capacity(capacity * REVOKED_KEY_LEN),
        values: Vec::with_capacity(capacity * 16),
        value_ends: Vec::with_capacity(capacity),
    }
}

#[cfg(feature = "fixtures")]
impl Store {
    /// **Benchmarks only** (feature `fixtures`): writes entries straight into
    /// the revoked index, bypassing events, rules and certificates, so that a
    /// CRL of tens of millions of entries can be built without ingesting their
    /// history first. A store written this way is not a valid registry.
    pub fn put_revoked_fixture(&self, entries: &[RevokedEntry]) -> Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        for e in entries {
            let value = crate::query::RevokedValue {
                status: e.status,
                not_after: e.not_after,
            };
            batch.put_cf(
                self.cf(cf::REVOKED),
                keys::revoked_key(e.kind, e.partition, &e.serial),
                value.encode()?,
            );
        }
        let mut w = rocksdb::WriteOptions::default();
        w.disable_wal(true);
        Ok(self.db.write_opt(batch, &w)?)
    }

    /// **Benchmarks only** (feature `fixtures`): writes certificates of
    /// `kind` straight into a mirror's issued index (the filters'
    /// universe), as [`Store::put_revoked_fixture`] does for the revoked
    /// index; [`Store::flush_fixtures`] marks the index complete.
    pub fn put_issued_fixture(&self, kind: CertKind, certs: &[IssuedCert]) -> Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        for c in certs {
            let change = shikko_core::StatusChange {
                kind,
                serial: c.serial,
                partition: PartitionId::WHOLE,
                not_after: c.not_after,
                status: if c.listed {
                    shikko_core::CertStatus::OnHold {
                        since: c.not_before,
                    }
                } else {
                    shikko_core::CertStatus::Good
                },
                not_before: c.not_before,
            };
            batch.put_cf(
                self.cf(cf::ISSUED),
                keys::cert_key(kind, &c.serial),
                crate::mirror::issued_value(&change),
            );
        }
        let mut w = rocksdb::WriteOptions::default();
        w.disable_wal(true);
        Ok(self.db.write_opt(batch, &w)?)
    }

    /// **Benchmarks only**: flushes memtables so that fixture data written
    /// without a WAL survives the process; an issued index written is
    /// marked complete.
    pub fn flush_fixtures(&self) -> Result<()> {
        self.db.flush_cf(self.cf(cf::REVOKED))?;
        let mut it = self.db.raw_iterator_cf(self.cf(cf::ISSUED));
        it.seek_to_first();
        if it.valid() {
            self.db.flush_cf(self.cf(cf::ISSUED))?;
            self.set_issued_index(true)?;
        }
        Ok(())
    }
}
