//! The builder's own durable state, beside the CRLs it publishes: the next
//! CRL number of each issuer, and the base (number, feed position, time) of
//! the last full CRL that delta CRLs are built against.
//!
//! CRL numbers are drawn from one counter per issuer for all its scopes (full,
//! delta, partitions): each scope's sequence still increases, as RFC 5280
//! §5.2.3 asks, and a full CRL and its deltas share one sequence, as §5.2.4
//! asks. Numbers are reserved (written and synced) **before** a build starts,
//! so a crash can skip numbers but never reuse one.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shikko_core::{CertKind, UnixTime};

use crate::error::{Error, Result};
use crate::writer::temp_path;

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = ".lock";
/// How long [`State::lock`] waits for a lock that is held before it says busy.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// The last full CRL of an issuer: what its deltas complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// Its CRL number.
    pub number: u64,
    /// The registry sequence number it reflects.
    pub seq: u64,
    /// Its thisUpdate.
    pub this_update: UnixTime,
}

/// One issuer's numbering state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerState {
    /// The next unused CRL number.
    pub next_number: u64,
    /// The last full CRL, once one is published.
    pub base: Option<Base>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    issuers: BTreeMap<String, IssuerState>,
}

/// The state, loaded under the output directory's lock.
#[derive(Debug)]
pub(crate) struct State {
    path: PathBuf,
    file: StateFile,
    _lock: File,
}

impl State {
    /// Takes the output directory's lock (refusing if another build holds it)
    /// and loads the state.
    pub(crate) fn lock(dir: &Path) -> Result<State> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        // An flock lock belongs to the open file, which a process forked
        // in the meantime (any thread spawning openssl, say) shares until
        // it execs: released by us, it can stay held for a moment. Ask
        // again for a short while before calling the directory busy; a
        // real build elsewhere holds it for far longer.
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Busy(lock_path)),
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
            }
        }
        // Temporary state files of an interrupted save.
        crate::publish::clean_stale(dir)?;
        let path = dir.join(STATE_FILE);
        let file = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::State {
                path: path.clone(),
                why: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile {
                version: 1,
                issuers: BTreeMap::new(),
            },
            Err(e) => return Err(Error::io(&path, e)),
        };
        Ok(State {
            path,
            file,
            _lock: lock,
        })
    }

    /// An issuer's state (default when never built).
    pub(crate) fn issuer(&self, kind: CertKind) -> IssuerState {
        self.file
            .issuers
            .get(kind.issuer_id())
            .cloned()
            .unwrap_or_default()
    }

    /// Reserves `count` consecutive CRL numbers for `kind`, durably, and
    /// returns the first. Numbers start at 1.
    pub(crate) fn reserve(&mut self, kind: CertKind, count: u64) -> Result<u64> {
        let entry = self
            .file
            .issuers
            .entry(kind.issuer_id().to_owned())
            .or_default();
        let first = entry.next_number.max(1);
        entry.next_number = first.checked_add(count).ok_or(Error::State {
            path: self.path.clone(),
            why: "CRL numbers exhausted".into(),
        })?;
        self.save()?;
        Ok(first)
    }

    /// Raises `kind`'s next number to at least `next` (durably, if it changes):
    /// numbering continues above every published CRL even after the state
    /// file was lost or restored from an old backup.
    pub(crate) fn at_least(&mut self, kind: CertKind, next: u64) -> Result<()> {
        let entry = self
            .file
            .issuers
            .entry(kind.issuer_id().to_owned())
            .or_default();
        if entry.next_number < next {
            // A first build (nothing published, no state) starts at 1: no news.
            if next > 1 {
                tracing::warn!(
                    issuer = kind.issuer_id(),
                    from = entry.next_number,
                    to = next,
                    "CRL numbering raised above the published CRLs (state lost or restored?)"
                );
            }
            entry.next_number = next;
            self.save()?;
        }
        Ok(())
    }

    /// Records the new base of `kind`'s deltas.
    pub(crate) fn set_base(&mut self, kind: CertKind, base: Base) -> Result<()> {
        self.file
            .issuers
            .entry(kind.issuer_id().to_owned())
            .or_default()
            .base = Some(base);
        self.save()
    }

    fn save(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = temp_path(dir, "state");
        let bytes = serde_json::to_vec_pretty(&self.file).map_err(|e| Error::State {
            path: self.path.clone(),
            why: e.to_string(),
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            sync_dir(dir)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io(&self.path, e)
        })
    }
}

/// Syncs a directory, so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads an issuer's state without taking the lock (for status displays).
pub fn read_issuer_state(dir: &Path, kind: CertKind) -> Result<IssuerState> {
    let path = dir.join(STATE_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let f: StateFile = serde_json::from_slice(&bytes).map_err(|e| Error::State {
                path: path.clone(),
                why: e.to_string(),
            })?;
            Ok(f.issuers.get(kind.issuer_id()).cloned().unwrap_or_default())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(IssuerState::default()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_reserved_durably_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::lock(dir.path()).unwrap();
        assert_eq!(s.reserve(CertKind::CardSigning, 3).unwrap(), 1);
        assert_eq!(s.reserve(CertKind::CardSigning, 1).unwrap(), 4);
        assert_eq!(s.reserve(CertKind::CardAuth, 1).unwrap(), 1);
        // A second builder is refused while the lock is held.
        assert!(matches!(State::lock(dir.path()), Err(Error::Busy(_))));
        drop(s);
        // Reopened (as after a crash): numbering continues after the reserved ones.
        let mut s = State::lock(dir.path()).unwrap();
        assert_eq!(s.reserve(CertKind::CardSigning, 1).unwrap(), 5);
        s.set_base(
            CertKind::CardSigning,
            Base {
                number: 5,
                seq: 9,
                this_update: UnixTime(1),
            },
        )
        .unwrap();
        drop(s);
        let st = read_issuer_state(dir.path(), CertKind::CardSigning).unwrap();
        assert_eq!(st.next_number, 6);
        assert_eq!(st.base.unwrap().seq, 9);
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_a_restart_from_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        assert!(matches!(State::lock(dir.path()), Err(Error::State { .. })));
    }
}
