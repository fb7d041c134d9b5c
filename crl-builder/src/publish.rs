//! Publishing: check the new file whole, refuse a CRL number that does not
//! increase, then rename it over the published one. A reader that opened the
//! old file keeps reading the old bytes; a new reader gets the new file: no
//! one ever sees a partial CRL. A crash before the rename leaves the old CRL
//! in place and a temporary file that the next build removes.

use std::fs;
use std::path::Path;
use std::time::Duration;

use shikko_core::UnixTime;

use crate::build::CrlName;
use crate::error::{Error, Result};
use crate::state::sync_dir;
use crate::verify::{CrlSummary, read_summary, verify_file};
use crate::writer::TMP_PREFIX;

/// Environment variable naming a fault point, for fault tests: when it is
/// `crl-before-rename`, the process aborts after a CRL is written and checked
/// but before it is published; when it is `crl-enospc`, writing a CRL file
/// fails as on a full disk (ENOSPC).
pub const FAILPOINT_ENV: &str = "SHIKKO_FAILPOINT";

fn failpoint(name: &str) {
    if std::env::var_os(FAILPOINT_ENV).is_some_and(|v| v == name) {
        tracing::error!(failpoint = name, "failpoint reached: aborting");
        std::process::abort();
    }
}

/// A simulated full disk at `name`: ENOSPC when the fault point is set.
pub(crate) fn io_failpoint(name: &str) -> std::io::Result<()> {
    if std::env::var_os(FAILPOINT_ENV).is_some_and(|v| v == name) {
        tracing::error!(
            failpoint = name,
            "failpoint reached: no space left on device"
        );
        return Err(std::io::Error::from_raw_os_error(28));
    }
    Ok(())
}

/// Removes temporary files left in `dir` by an interrupted build.
pub(crate) fn clean_stale(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            tracing::warn!(file = %entry.path().display(), "removing a temporary file of an interrupted build");
            fs::remove_file(entry.path()).map_err(|e| Error::io(&entry.path(), e))?;
        }
    }
    Ok(())
}

/// Verifies `tmp` against the issuer's key and renames it to `dest` if its
/// CRL number is greater than the published one's. `tmp` is removed on refusal.
pub(crate) fn publish(tmp: &Path, dest: &Path, issuer_spki: &[u8]) -> Result<CrlSummary> {
    let result = (|| {
        // The new file reaches the disk while it is read back and checked;
        // both must be done before the rename makes it the published one.
        let (synced, verified) = rayon::join(
            || fs::File::open(tmp).and_then(|f| f.sync_all()),
            || verify_file(tmp, issuer_spki),
        );
        synced.map_err(|e| Error::io(tmp, e))?;
        let new = verified?;
        match read_summary(dest) {
            Ok(old) if old.number >= new.number => {
                return Err(Error::NumberNotIncreasing {
                    path: dest.to_path_buf(),
                    published: old.number,
                    new: new.number,
                });
            }
            Ok(_) => {}
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                // An unreadable published file is replaced, loudly.
                tracing::warn!(file = %dest.display(), error = %e, "replacing an unreadable published CRL");
            }
        }
        failpoint("crl-before-rename");
        fs::rename(tmp, dest).map_err(|e| Error::io(dest, e))?;
        sync_dir(dest.parent().unwrap_or(Path::new("."))).map_err(|e| Error::io(dest, e))?;
        Ok(new)
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// The highest CRL number among the published CRLs of an issuer directory
/// (0 when none): numbering continues above it even if the state was lost.
pub(crate) fn highest_published(dir: &Path) -> Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut highest = 0;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let is_crl = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(CrlName::from_file_name)
            .is_some_and(|n| !n.is_filter());
        if !is_crl {
            continue;
        }
        match crate::verify::read_summary(&path) {
            Ok(s) => highest = highest.max(s.number),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "unreadable published CRL ignored for numbering")
            }
        }
    }
    Ok(highest)
}

/// A thisUpdate strictly after the published file's, so that versions of a
/// file never share a Last-Modified second (If-Modified-Since would then
/// answer 304 for a changed CRL). Waits out the rest of a second if needed.
pub(crate) fn strictly_after_published(dest: &Path, this_update: UnixTime) -> Result<UnixTime> {
    let published = match crate::verify::read_summary(dest) {
        Ok(s) => s.this_update,
        Err(_) => return Ok(this_update),
    };
    if published < this_update {
        return Ok(this_update);
    }
    // A published thisUpdate well ahead of this clock (a clock stepped back,
    // or files from a host whose clock ran fast): waiting for it would stall
    // every build behind this one.
    if published.0 > this_update.0 + 5 {
        return Err(Error::malformed(
            dest,
            format!(
                "its thisUpdate {published} is ahead of this host's clock ({this_update}); fix the clock"
            ),
        ));
    }
    let next = UnixTime(published.0 + 1);
    while UnixTime::now() < next {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::{TbsFields, assemble};
    use shikko_core::{CertKind, UnixTime};
    use shikko_pki::{KeyAlgorithm, Signer, SoftwareSigner};

    fn crl(dir: &Path, signer: &SoftwareSigner, number: u64) -> std::path::PathBuf {
        let name = der::Encode::to_der(&shikko_pki::ca_name(CertKind::CardAuth)).unwrap();
        let alg = der::Encode::to_der(&signer.signature_algorithm()).unwrap();
        let key_id = *signer.public_key_hashes().unwrap().key_identifier();
        let exts = crate::extensions::full(&key_id, number, None).unwrap();
        let path = crate::writer::temp_path(dir, "crl");
        assemble(
            Vec::new(),
            &TbsFields {
                signature_algorithm: &alg,
                issuer: &name,
                this_update: UnixTime(1_800_000_000),
                next_update: UnixTime(1_800_172_800),
                extensions: &exts,
            },
            signer,
            &path,
        )
        .unwrap();
        path
    }

    #[test]
    fn only_a_verified_crl_with_a_higher_number_replaces_the_published_one() {
        let dir = tempfile::tempdir().unwrap();
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let other = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let dest = dir.path().join("full.crl");
        let spki = key.public_key_der();

        assert_eq!(
            publish(&crl(dir.path(), &key, 5), &dest, spki)
                .unwrap()
                .number,
            5
        );
        let published = fs::read(&dest).unwrap();
        for n in [5, 4] {
            let tmp = crl(dir.path(), &key, n);
            let err = publish(&tmp, &dest, spki).unwrap_err();
            assert!(
                matches!(err, Error::NumberNotIncreasing { published: 5, .. }),
                "{err}"
            );
            assert!(!tmp.exists(), "a refused CRL is removed");
            assert_eq!(fs::read(&dest).unwrap(), published);
        }
        let tmp = crl(dir.path(), &other, 6);
        assert!(matches!(
            publish(&tmp, &dest, spki),
            Err(Error::BadSignature(_))
        ));
        assert!(!tmp.exists());
        assert_eq!(fs::read(&dest).unwrap(), published);
        assert_eq!(
            publish(&crl(dir.path(), &key, 6), &dest, spki)
                .unwrap()
                .number,
            6
        );
    }
}
