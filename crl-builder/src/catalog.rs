//! What is published: the CRL files under the output directory, described by
//! their own bytes (number, times, signature prefix for the ETag), rescanned
//! when a build publishes or when a directory changes (a build by another
//! process), and announced to watchers.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use shikko_core::CertKind;
use tokio::sync::broadcast;

use crate::build::CrlName;
use crate::error::{Error, Result};
use crate::verify::{CrlSummary, read_summary_of};

/// Identity of one version of a file: a rename gives a new inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileKey {
    ino: u64,
    dev: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileKey {
    pub(crate) fn of(meta: &fs::Metadata) -> FileKey {
        FileKey {
            ino: meta.ino(),
            dev: meta.dev(),
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// One published CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCrl {
    /// Issuer.
    pub kind: CertKind,
    /// Which CRL.
    pub name: CrlName,
    /// What its bytes say.
    pub summary: CrlSummary,
}

impl PublishedCrl {
    /// Its path under the HTTP root: `/crl/ISSUER/NAME.crl` (a filter's
    /// `/filter/ISSUER/NAME.filter`).
    pub fn url_path(&self) -> String {
        self.name.url_path(self.kind)
    }
}

/// What a published file's bytes say (a CRL's or a filter's header); the
/// file's offset is left at 0.
fn summary_of(name: CrlName, file: &fs::File, path: &Path) -> Result<CrlSummary> {
    if !name.is_filter() {
        return read_summary_of(file, path);
    }
    use std::io::{Read, Seek};
    let mut bytes = Vec::new();
    let mut f = file;
    f.seek(std::io::SeekFrom::Start(0))
        .and_then(|_| f.read_to_end(&mut bytes))
        .and_then(|_| f.seek(std::io::SeekFrom::Start(0)))
        .map_err(|e| Error::io(path, e))?;
    crate::filter::summary(&bytes, path)
}

#[derive(Default)]
struct Inner {
    files: BTreeMap<(CertKind, CrlName), (FileKey, PublishedCrl)>,
    dir_mtimes: BTreeMap<CertKind, Option<SystemTime>>,
}

/// The published CRLs of an output directory.
pub struct Catalog {
    root: PathBuf,
    inner: Mutex<Inner>,
    rescanning: Mutex<()>,
    tx: broadcast::Sender<PublishedCrl>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("root", &self.root).finish()
    }
}

impl Catalog {
    /// The catalog of `root` (the builder's output directory), scanned now.
    pub fn open(root: impl Into<PathBuf>) -> Result<Arc<Catalog>> {
        let (tx, _) = broadcast::channel(4096);
        let c = Arc::new(Catalog {
            root: root.into(),
            inner: Mutex::new(Inner::default()),
            rescanning: Mutex::new(()),
            tx,
        });
        c.rescan(true)?;
        Ok(c)
    }

    /// The output directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a CRL file.
    pub fn path_of(&self, kind: CertKind, name: CrlName) -> PathBuf {
        self.root.join(kind.issuer_id()).join(name.file_name())
    }

    /// Receives every CRL published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PublishedCrl> {
        self.tx.subscribe()
    }

    /// The published CRLs (of one issuer, or all), ordered by issuer and name.
    pub fn list(&self, kind: Option<CertKind>) -> Vec<PublishedCrl> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .files
            .values()
            .filter(|(_, p)| kind.is_none_or(|k| p.kind == k))
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// The description of an open CRL file (the version about to be served,
    /// whatever has been renamed over `path` since it was opened), from the
    /// cache or read from the file itself; the file's offset is left at 0.
    pub(crate) fn describe(
        &self,
        kind: CertKind,
        name: CrlName,
        path: &Path,
        file: &fs::File,
    ) -> Result<PublishedCrl> {
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        let key = FileKey::of(&meta);
        {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((k, p)) = inner.files.get(&(kind, name))
                && *k == key
            {
                return Ok(p.clone());
            }
        }
        let summary = summary_of(name, file, path)?;
        Ok(PublishedCrl {
            kind,
            name,
            summary,
        })
    }

    /// Re-reads every issuer directory whose modification time changed (or
    /// all, with `force`); announces new and changed CRLs. Returns how many changed.
    pub fn rescan(&self, force: bool) -> Result<usize> {
        // One rescan at a time: a slower one must not overwrite a newer one's findings.
        let _serial = self.rescanning.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = Vec::new();
        for kind in CertKind::ALL {
            let dir = self.root.join(kind.issuer_id());
            // Read before listing: a rename during the listing changes it again.
            let mtime = fs::metadata(&dir).and_then(|m| m.modified()).ok();
            {
                let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                if !force && inner.dir_mtimes.get(&kind) == Some(&mtime) {
                    continue;
                }
            }
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                    inner.files.retain(|(k, _), _| *k != kind);
                    inner.dir_mtimes.insert(kind, mtime);
                    continue;
                }
                Err(e) => {
                    // Keep what is listed; try again at the next rescan.
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot list CRLs");
                    continue;
                }
            };
            let mut seen = std::collections::BTreeSet::new();
            for entry in entries.flatten() {
                let file_name = entry.file_name();
                let Some(name) = file_name.to_str().and_then(CrlName::from_file_name) else {
                    continue;
                };
                let path = entry.path();
                // Key and summary from one open file: the same version.
                let Ok(file) = fs::File::open(&path) else {
                    continue;
                };
                let Ok(meta) = file.metadata() else { continue };
                let key = FileKey::of(&meta);
                seen.insert(name);
                let known = {
                    let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                    inner
                        .files
                        .get(&(kind, name))
                        .is_some_and(|(k, _)| *k == key)
                };
                if known {
                    continue;
                }
                match summary_of(name, &file, &path) {
                    Ok(summary) => {
                        let p = PublishedCrl {
                            kind,
                            name,
                            summary,
                        };
                        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                        inner.files.insert((kind, name), (key, p.clone()));
                        changed.push(p);
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "unreadable CRL file not listed")
                    }
                }
            }
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner
                .files
                .retain(|(k, n), _| *k != kind || seen.contains(n));
            inner.dir_mtimes.insert(kind, mtime);
        }
        let n = changed.len();
        for p in changed {
            // No receiver is not an error.
            let _ = self.tx.send(p);
        }
        Ok(n)
    }
}
