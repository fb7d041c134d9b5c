//! # shikko-store
//!
//! The RocksDB store behind the registry, and the only crate that knows
//! RocksDB. Its API is shaped by the domain: ingest a batch of events, read a
//! certificate or a holder, follow the change feed from a sequence number, scan
//! the revoked entries of an issuer or a CRL partition.
//!
//! Depends on `shikko-core` (and RocksDB); never on the network, the
//! follower or a role. Roles that must not compile RocksDB (OCSP) must not
//! depend on it.
//!
//! Three handles write, one reads: [`RegistryStore`] ingests events,
//! [`MirrorStore`] applies the change feed (the CRL role's copy),
//! [`ReplicaStore`] applies the registry's writes (the info role's copy);
//! each derefs to [`Store`], the read side, and a store opens only as the
//! kind it was made for ([`Error::WrongKind`]).
//!
//! Every accepted batch is one atomic `WriteBatch`, synced to the write-ahead
//! log before [`RegistryStore::ingest`] returns: what it acknowledges survives a crash.
//!
//! ```no_run
//! # fn main() -> Result<(), shikko_store::Error> {
//! let store = shikko_store::RegistryStore::open(std::path::Path::new("/tmp/shikko-db"))?;
//! println!("last sequence number: {}", store.last_seq());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod feed;
mod handle;
mod import;
mod info;
mod ingest;
mod keys;
mod mirror;
mod query;
mod reload;
mod replica;
mod retention;
mod snapshot;
mod standby;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, Options, WriteOptions,
};

pub use handle::{MirrorStore, RegistryStore, ReplicaStore, StoreKind};
pub use import::Import;
pub use ingest::{IngestMode, Outcome};
pub use retention::Pruned;
pub use snapshot::{IssuedCert, RevokedBatch, Snapshot};
pub use standby::{Continuation, Replicated, Role, SEED_FAMILIES};

/// A store failure: RocksDB itself, or a record that does not decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored record could not be decoded: the store is corrupt or from an incompatible version.
    #[error("corrupt record in column family {cf}: {why}")]
    Corrupt {
        /// Column family.
        cf: &'static str,
        /// What failed.
        why: String,
    },
    /// Change records that do not follow the last one applied (a follower
    /// resumes from `applied + 1`).
    #[error("change record {got} does not follow {applied}: resume from {}", applied + 1)]
    Gap {
        /// The last sequence number applied.
        applied: u64,
        /// The sequence number received.
        got: u64,
    },
    /// A standby's store ingests nothing until it is promoted.
    #[error(
        "this store is a standby's: it ingests nothing until it is promoted (shikko admin promote)"
    )]
    Standby,
    /// A store opened for another purpose than the one it was made for
    /// (a mirror's directory opened as a registry, or the other way round).
    #[error("{path}: this is a {found} store, not a {expected} store")]
    WrongKind {
        /// The store's directory.
        path: PathBuf,
        /// What it was opened as.
        expected: StoreKind,
        /// What it was made as.
        found: StoreKind,
    },
    /// A mirror or replica bound to one registry history offered another's.
    #[error("this store follows registry {bound}, not {offered}")]
    Foreign {
        /// The history it was made from.
        bound: String,
        /// The history offered.
        offered: String,
    },
    /// A mirror made before it kept every certificate (the universe of the
    /// compact revocation filters) and not yet reloaded.
    #[error(
        "this mirror does not hold every certificate yet: it loads them with its next snapshot of the registry (restart the role)"
    )]
    NoIssuedIndex,
    /// A meta key that the store keeps for itself.
    #[error("meta key {0:?} is reserved by the store")]
    ReservedKey(String),
    /// The store's directory could not be made.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The store was opened by a newer, incompatible version.
    #[error("store format version {found} is not supported (expected {expected})")]
    Version {
        /// Found on disk.
        found: u32,
        /// Supported.
        expected: u32,
    },
}

/// Why a named checkpoint was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Not a name [`Store::checkpoint_named`] accepts.
    #[error("a checkpoint name is 1 to 64 of A-Z a-z 0-9 . _ - and does not start with a dot")]
    BadName,
    /// A checkpoint of that name exists already.
    #[error("checkpoint {0} exists already")]
    Exists(String),
    /// The backups directory could not be made.
    #[error("{0}")]
    Io(String),
    /// RocksDB failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Column families. Values are MessagePack-encoded, keys are fixed-width big-endian where ordered.
pub(crate) mod cf {
    /// `seq (u64 BE)` -> the event as received (contains 4 information; never leaves the registry).
    pub(crate) const EVENTS: &str = "events";
    /// `seq (u64 BE)` -> the status changes the event made: the change feed (no personal data).
    pub(crate) const FEED: &str = "feed";
    /// `event id` -> `seq (u64 BE) ++ SHA-256 of the event`: idempotent re-delivery.
    pub(crate) const EVENT_IDS: &str = "event_ids";
    /// `kind (u8) ++ serial (20)` -> certificate record.
    pub(crate) const CERTS: &str = "certs";
    /// `kind (u8) ++ serial (20)` -> certificate DER.
    pub(crate) const CERT_DER: &str = "cert_der";
    /// `holder id` -> holder record.
    pub(crate) const HOLDERS: &str = "holders";
    /// `kind (u8) ++ old serial (20)` -> new serial (20).
    pub(crate) const LINKS: &str = "links";
    /// `kind (u8) ++ partition (u32 BE) ++ serial (20)` -> revoked entry: what a CRL build scans.
    pub(crate) const REVOKED: &str = "revoked";
    /// `municipality code (u32 BE)` -> municipality.
    pub(crate) const MUNICIPALITIES: &str = "municipalities";
    /// Small named values: format version, last sequence number, CRL numbers.
    pub(crate) const META: &str = "meta";
    /// Reserved for the 4-information service: operators, consents, audit log.
    pub(crate) const INFO: &str = "info";
    /// `seq (u64 BE)` -> the writes the event made (`Vec<Effect>`, with 4
    /// information): what a replica applies instead of re-running the rules.
    pub(crate) const WRITES: &str = "writes";
    /// In a mirror only: `kind (u8) ++ serial (20)` -> `notBefore (i64 BE)
    /// ++ notAfter (i64 BE) ++ listed (u8)`: every certificate, the universe
    /// of the compact revocation filters (a registry reads `certs`).
    pub(crate) const ISSUED: &str = "issued";

    pub(crate) const ALL: [&str; 13] = [
        EVENTS,
        FEED,
        EVENT_IDS,
        CERTS,
        CERT_DER,
        HOLDERS,
        LINKS,
        REVOKED,
        MUNICIPALITIES,
        META,
        INFO,
        WRITES,
        ISSUED,
    ];
}

const FORMAT_VERSION: u32 = 1;
/// The block cache of a store opened without saying (256 MiB).
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;
const META_VERSION: &[u8] = b"format_version";
const META_LAST_SEQ: &[u8] = b"last_seq";
/// A random identity of this store's history, made when it is created.
const META_STORE_ID: &[u8] = b"store_id";
/// In a mirror: the identity of the registry store it follows.
const META_MIRROR_OF: &[u8] = b"mirror_of";
/// What the store is for ([`StoreKind`]), once opened for a purpose.
pub(crate) const META_KIND: &[u8] = b"store_kind";
/// In a mirror: present once its `issued` family holds every certificate
/// (loaded from a snapshot of every status, or followed from the first record).
pub(crate) const META_ISSUED_INDEX: &[u8] = b"issued_index";

/// The read side of a store, shared by every role: snapshots, queries, the
/// change feed, meta values and the info family. Writing the registry's
/// state takes one of the typed handles ([`RegistryStore`], [`MirrorStore`],
/// [`ReplicaStore`]). One writer at a time; reads are concurrent.
pub struct Store {
    db: DB,
    path: PathBuf,
    write_lock: Mutex<()>,
    last_seq: AtomicU64,
    /// The first sequence number whose history is kept ([`Store::first_seq`]).
    first_seq: AtomicU64,
    /// Event ids of events below this are dropped by compaction.
    event_id_floor: std::sync::Arc<AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("last_seq", &self.last_seq())
            .finish()
    }
}

/// Makes `dir` reachable by its owner only (mode 0700): the files in it
/// (RocksDB's, made with the process's umask) are then out of other users'
/// reach whatever their own mode.
fn private_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| Error::Io {
                path: dir.to_path_buf(),
                source,
            },
        )?;
    }
    Ok(())
}

fn cf_options(cache: &Cache, point_lookups: bool) -> Options {
    let mut block = BlockBasedOptions::default();
    block.set_block_cache(cache);
    let mut o = Options::default();
    if point_lookups {
        block.set_bloom_filter(10.0, false);
        block.set_cache_index_and_filter_blocks(true);
        // Most ingest lookups miss (new event ids, new serials, new holders):
        // a memtable bloom filter answers those without a skip-list search.
        o.set_memtable_whole_key_filtering(true);
        o.set_memtable_prefix_bloom_ratio(0.05);
    }
    o.set_block_based_table_factory(&block);
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o
}

impl Store {
    /// Opens (creating if needed) the store at `path` for reading, whatever
    /// it was made for (a checkpoint, an offline CRL build).
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with a block cache of `cache_bytes` (shared by every
    /// family: data blocks, and the index and filter blocks point lookups
    /// need; a store of hundreds of millions of certificates reads faster
    /// when they stay in it).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Store> {
        let cache = Cache::new_lru_cache(cache_bytes);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        let event_id_floor = std::sync::Arc::new(AtomicU64::new(0));
        let cfs = cf::ALL.iter().map(|name| {
            let point = matches!(
                *name,
                cf::CERTS | cf::HOLDERS | cf::EVENT_IDS | cf::LINKS | cf::CERT_DER
            );
            let mut o = cf_options(&cache, point);
            if *name == cf::EVENT_IDS {
                o.set_compaction_filter(
                    "shikko-event-id-retention",
                    retention::event_id_filter(event_id_floor.clone()),
                );
            }
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        // Holders' 4 information lives here: no one but the owner may enter.
        private_dir(path)?;
        let store = Store {
            db,
            path: path.to_path_buf(),
            write_lock: Mutex::new(()),
            last_seq: AtomicU64::new(0),
            first_seq: AtomicU64::new(1),
            event_id_floor,
        };
        store.check_version()?;
        store.ensure_store_id()?;
        let last = store
            .meta(META_LAST_SEQ)?
            .map(|v| keys::decode_u64(&v, cf::META))
            .transpose()?
            .unwrap_or(0);
        store.last_seq.store(last, Ordering::SeqCst);
        store.load_first_seq()?;
        store.load_event_id_floor()?;
        Ok(store)
    }

    /// Opens (creating if needed) the store of a data directory, `DATA_DIR/db`, for reading.
    pub fn open_data_dir(data_dir: &Path) -> Result<Store> {
        Store::open(&Store::data_dir_db(data_dir)?)
    }

    fn data_dir_db(data_dir: &Path) -> Result<PathBuf> {
        let path = data_dir.join("db");
        std::fs::create_dir_all(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    pub(crate) fn open_data_dir_as(
        data_dir: &Path,
        kind: StoreKind,
        cache_bytes: usize,
    ) -> Result<Store> {
        Store::open_as(&Store::data_dir_db(data_dir)?, kind, cache_bytes)
    }

    /// Opens the store at `path` as `kind`: a store made for another purpose
    /// is refused; one made before kinds were recorded is recognised by its
    /// contents (events: a registry) and then marked.
    pub(crate) fn open_as(path: &Path, kind: StoreKind, cache_bytes: usize) -> Result<Store> {
        let store = Store::open_with_cache(path, cache_bytes)?;
        let recorded = store
            .meta(META_KIND)?
            .map(|v| {
                StoreKind::parse(&v).ok_or_else(|| Error::Corrupt {
                    cf: cf::META,
                    why: format!("unknown store kind {:?}", String::from_utf8_lossy(&v)),
                })
            })
            .transpose()?;
        let found = match recorded {
            Some(k) => k,
            None if store.holds_events()? => StoreKind::Registry,
            None if store.mirror_of()?.is_some() && kind == StoreKind::Registry => {
                StoreKind::Mirror
            }
            None => kind,
        };
        if recorded.is_none() && found == kind {
            let mut w = WriteOptions::default();
            w.set_sync(true);
            store
                .db
                .put_cf_opt(store.cf(cf::META), META_KIND, kind.as_str(), &w)?;
        }
        if found != kind {
            return Err(Error::WrongKind {
                path: path.to_path_buf(),
                expected: kind,
                found,
            });
        }
        Ok(store)
    }

    fn ensure_store_id(&self) -> Result<()> {
        if self.meta(META_STORE_ID)?.is_none() {
            let mut id = [0u8; 16];
            aws_lc_rs::rand::fill(&mut id).map_err(|_| Error::Corrupt {
                cf: cf::META,
                why: "no randomness for a store id".into(),
            })?;
            let mut w = WriteOptions::default();
            w.set_sync(true);
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            self.db
                .put_cf_opt(self.cf(cf::META), META_STORE_ID, hex.as_bytes(), &w)?;
        }
        Ok(())
    }

    /// The identity of this store's history: random, made when the store was
    /// created, kept by checkpoints and backups. A follower that sees another
    /// identity behind the same endpoint knows it is following another history.
    pub fn store_id(&self) -> Result<String> {
        let v = self.meta(META_STORE_ID)?.unwrap_or_default();
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    fn check_version(&self) -> Result<()> {
        match self.meta(META_VERSION)? {
            Some(v) => {
                let found =
                    u32::from_be_bytes(v.as_slice().try_into().map_err(|_| Error::Corrupt {
                        cf: cf::META,
                        why: "format version is not 4 bytes".into(),
                    })?);
                if found != FORMAT_VERSION {
                    return Err(Error::Version {
                        found,
                        expected: FORMAT_VERSION,
                    });
                }
            }
            None => {
                let mut w = WriteOptions::default();
                w.set_sync(true);
                self.db.put_cf_opt(
                    self.cf(cf::META),
                    META_VERSION,
                    FORMAT_VERSION.to_be_bytes(),
                    &w,
                )?;
            }
        }
        Ok(())
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sequence number of the last accepted event (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::SeqCst)
    }

    /// A named small value of the `meta` family (e.g. a CRL number).
    pub fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf::META), key)?)
    }

    /// Writes a named small value of the `meta` family, synced.
    pub fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<()> {
        if [
            META_VERSION,
            META_LAST_SEQ,
            META_STORE_ID,
            META_MIRROR_OF,
            META_KIND,
            META_ISSUED_INDEX,
            retention::META_FIRST_SEQ,
            retention::META_ID_FLOOR,
            standby::META_ROLE,
            standby::META_EPOCH,
        ]
        .contains(&key)
            || key.starts_with(b"seq_at/")
            || key.starts_with(standby::EPOCH_BEGAN)
        {
            return Err(Error::ReservedKey(
                String::from_utf8_lossy(key).into_owned(),
            ));
        }
        let mut w = WriteOptions::default();
        w.set_sync(true);
        Ok(self.db.put_cf_opt(self.cf(cf::META), key, value, &w)?)
    }

    /// Writes a consistent, openable copy of the store to `dir` (RocksDB checkpoint: hard links where possible).
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.db)?;
        Ok(cp.create_checkpoint(dir)?)
    }

    /// A checkpoint named `name` in `backups/` beside the store's directory
    /// (an empty name: the UTC time, `YYYYMMDDTHHMMSSZ`). Names are 1 to 64
    /// of `A-Z a-z 0-9 . _ -`, not starting with a dot, and never reused.
    /// Returns where it was written and the last sequence number before it
    /// was taken (the copy holds at least that).
    pub fn checkpoint_named(&self, name: &str) -> Result<(PathBuf, u64), CheckpointError> {
        let name = if name.is_empty() {
            let (y, mo, d, h, mi, s) = shikko_core::UnixTime::now().to_civil();
            format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
        } else {
            name.to_string()
        };
        let ok = (1..=64).contains(&name.len())
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(CheckpointError::BadName);
        }
        let base = self.path.parent().unwrap_or(&self.path).join("backups");
        std::fs::create_dir_all(&base)
            .map_err(|e| CheckpointError::Io(format!("{}: {e}", base.display())))?;
        private_dir(&base)?;
        let dir = base.join(&name);
        if dir.exists() {
            return Err(CheckpointError::Exists(name));
        }
        let seq = self.last_seq();
        self.checkpoint(&dir)?;
        Ok((dir, seq))
    }

    pub(crate) fn cf(&self, name: &'static str) -> &ColumnFamily {
        // Every name in cf::ALL is created at open; a missing one is a programming error.
        #[allow(clippy::expect_used)]
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }
}
