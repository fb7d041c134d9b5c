//! Importing a state without its history (issue 14, item 5): the
//! certificates, holders and municipalities of an existing registry (an
//! authority's database migrated to Shikko, or the national-scale
//! fixtures of the load tests) written straight into SST files and
//! ingested by RocksDB, at a few million records a second, instead of
//! replaying years of events through the rules.
//!
//! The store must be a registry's and empty. Records come in key order
//! (certificates of one issuer by serial, holders by id); the revoked index
//! is derived from the certificates' statuses. [`Import::finish`] makes the
//! imported state the store's position `seq` with no history before it
//! (`first_seq = seq + 1`): followers load it as a snapshot.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use rocksdb::{IngestExternalFileOptions, Options, SstFileWriter, WriteBatch, WriteOptions};
use shikko_core::{CertKind, CertRecord, HolderRecord, Municipality};

use crate::query::RevokedValue;
use crate::retention::META_FIRST_SEQ;
use crate::{Error, META_LAST_SEQ, RegistryStore, Result, cf, keys};

/// Records per SST file.
const FILE_RECORDS: u64 = 4_000_000;

/// An import in progress (see the module's documentation).
#[derive(Debug)]
pub struct Import<'s> {
    store: &'s RegistryStore,
    dir: PathBuf,
    files: u64,
    /// Counts, for the caller's report.
    pub certificates: u64,
    /// Holders imported.
    pub holders: u64,
    /// Certificates on the revoked index (revoked or on hold).
    pub listed: u64,
}

/// One SST file being written for a family.
struct Writer<'o> {
    sst: SstFileWriter<'o>,
    path: PathBuf,
    records: u64,
}

impl RegistryStore {
    /// Starts an import into this store, which must be empty.
    pub fn import(&self) -> Result<Import<'_>> {
        if self.last_seq() != 0 || self.replication_role()? != crate::Role::Primary {
            return Err(Error::Corrupt {
                cf: cf::META,
                why: "an import goes into a new, empty registry store".into(),
            });
        }
        let dir = self.path().join("import");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Import {
            store: self,
            dir,
            files: 0,
            certificates: 0,
            holders: 0,
            listed: 0,
        })
    }
}

fn sst_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o
}

impl Import<'_> {
    fn ingest(&self, family: &'static str, paths: Vec<PathBuf>) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let mut o = IngestExternalFileOptions::default();
        o.set_move_files(true);
        Ok(self
            .store
            .db
            .ingest_external_file_cf_opts(self.store.cf(family), &o, paths)?)
    }

    /// Writes `entries` (in strictly ascending key order) of `family` into
    /// SST files and ingests them; on an error, nothing of them is ingested.
    fn write_sorted<I>(&mut self, family: &'static str, entries: I) -> Result<u64>
    where
        I: Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    {
        let mut written = Vec::new();
        let r = self.write_files(family, entries, &mut written);
        if r.is_err() {
            for p in &written {
                let _ = std::fs::remove_file(p);
            }
        }
        let (n, paths) = r?;
        self.ingest(family, paths)?;
        Ok(n)
    }

    /// [`Import::write_sorted`]'s files; `written` names every file begun.
    fn write_files<I>(
        &mut self,
        family: &'static str,
        entries: I,
        written: &mut Vec<PathBuf>,
    ) -> Result<(u64, Vec<PathBuf>)>
    where
        I: Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    {
        let opts = sst_options();
        let mut paths = Vec::new();
        let mut current: Option<Writer<'_>> = None;
        let mut n = 0u64;
        let mut last: Option<Vec<u8>> = None;
        for entry in entries {
            let (k, v) = entry?;
            if last.as_deref().is_some_and(|l| l >= k.as_slice()) {
                return Err(Error::Corrupt {
                    cf: family,
                    why: "imported records are not in ascending key order".into(),
                });
            }
            if current.is_none() {
                self.files += 1;
                let path = self.dir.join(format!("{family}-{}.sst", self.files));
                let sst = SstFileWriter::create(&opts);
                written.push(path.clone());
                sst.open(&path)?;
                current = Some(Writer {
                    sst,
                    path,
                    records: 0,
                });
            }
            if let Some(w) = current.as_mut() {
                w.sst.put(&k, &v)?;
                w.records += 1;
                if w.records == FILE_RECORDS {
                    w.sst.finish()?;
                    paths.push(w.path.clone());
                    current = None;
                }
            }
            last = Some(k);
            n += 1;
        }
        if let Some(mut w) = current {
            w.sst.finish()?;
            paths.push(w.path);
        }
        Ok((n, paths))
    }

    /// The municipalities (CRL partitions).
    pub fn municipalities(&mut self, municipalities: &[Municipality]) -> Result<()> {
        let mut sorted: Vec<&Municipality> = municipalities.iter().collect();
        sorted.sort_by_key(|m| m.code.0);
        sorted.dedup_by_key(|m| m.code.0);
        let entries = sorted.into_iter().map(|m| {
            Ok((
                m.code.0.to_be_bytes().to_vec(),
                keys::encode(m, cf::MUNICIPALITIES)?,
            ))
        });
        self.write_sorted(cf::MUNICIPALITIES, entries)?;
        Ok(())
    }

    /// The certificates of one issuer, by ascending serial (all of `kind`);
    /// the listed ones go on the revoked index.
    pub fn certificates(
        &mut self,
        kind: CertKind,
        certs: impl Iterator<Item = CertRecord>,
    ) -> Result<()> {
        let mut listed: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let entries = certs.map(|c| {
            if c.kind != kind {
                return Err(Error::Corrupt {
                    cf: cf::CERTS,
                    why: format!("a certificate of {} among {kind}'s", c.kind),
                });
            }
            if c.status.is_listed() {
                let v = RevokedValue {
                    status: c.status,
                    not_after: c.not_after,
                };
                listed.push((
                    keys::revoked_key(c.kind, c.partition, &c.serial).to_vec(),
                    v.encode()?,
                ));
            }
            Ok((
                keys::cert_key(c.kind, &c.serial).to_vec(),
                keys::encode(&c, cf::CERTS)?,
            ))
        });
        let n = self.write_sorted(cf::CERTS, entries)?;
        // The index is ordered by partition, then serial.
        listed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.listed += listed.len() as u64;
        self.write_sorted(cf::REVOKED, listed.into_iter().map(Ok))?;
        self.certificates += n;
        Ok(())
    }

    /// Holders, by ascending id.
    pub fn holders(&mut self, holders: impl Iterator<Item = HolderRecord>) -> Result<()> {
        let entries = holders.map(|h| {
            Ok((
                h.id.as_str().as_bytes().to_vec(),
                keys::encode(&h, cf::HOLDERS)?,
            ))
        });
        self.holders += self.write_sorted(cf::HOLDERS, entries)?;
        Ok(())
    }

    /// Makes the imported state the store's position `seq` (at least 1),
    /// with no history before it. Returns `seq`.
    pub fn finish(self, seq: u64) -> Result<u64> {
        let seq = seq.max(1);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.store.cf(cf::META), META_LAST_SEQ, seq.to_be_bytes());
        batch.put_cf(
            self.store.cf(cf::META),
            META_FIRST_SEQ,
            (seq + 1).to_be_bytes(),
        );
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.store.db.write_opt(batch, &w)?;
        self.store.last_seq.store(seq, Ordering::SeqCst);
        self.store.first_seq.store(seq + 1, Ordering::SeqCst);
        let _ = std::fs::remove_dir(&self.dir);
        Ok(seq)
    }
}
