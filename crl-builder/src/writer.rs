//! Writing a CRL to disk without holding it in memory.
//!
//! A DER length comes before its content, so the revokedCertificates list is
//! first written to a body file (its length is known only at its end). Then
//! the CRL file is assembled: the TBSCertList is written and hashed in one
//! pass (header, body copied in, extensions), signed by its SHA-256 digest,
//! and the signature appended. The outer SEQUENCE's length depends on the
//! signature's length (an ECDSA signature varies by a few octets), so its
//! header goes into a slot reserved at the start of the file, sized for the
//! longest signature; in the rare case the real header is shorter (a length
//! right at a boundary), the file is rewritten without the gap.
//!
//! ```text
//! CertificateList  ::=  SEQUENCE  {
//!      tbsCertList          TBSCertList,
//!      signatureAlgorithm   AlgorithmIdentifier,
//!      signatureValue       BIT STRING  }
//!
//! TBSCertList  ::=  SEQUENCE  {
//!      version                 Version OPTIONAL, -- if present, MUST be v2
//!      signature               AlgorithmIdentifier,
//!      issuer                  Name,
//!      thisUpdate              Time,
//!      nextUpdate              Time OPTIONAL,
//!      revokedCertificates     SEQUENCE OF SEQUENCE  { ... }  OPTIONAL,
//!      crlExtensions           [0]  EXPLICIT Extensions OPTIONAL }
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::digest;
use shikko_core::UnixTime;
use shikko_pki::{KeyAlgorithm, Signer};

use crate::der::{self as d, TAG_BIT_STRING, TAG_INTEGER, TAG_SEQUENCE};
use crate::error::{Error, Result};

/// Prefix of temporary files in an output directory; stale ones (a crash
/// mid-build) are removed before the next build.
pub(crate) const TMP_PREFIX: &str = ".tmp-";

const IO_BUF: usize = 1 << 20;

/// A fresh temporary path in `dir` (same file system as the published file, for rename).
pub(crate) fn temp_path(dir: &Path, what: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    dir.join(format!(
        "{TMP_PREFIX}{}-{}-{what}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

fn create(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// The revokedCertificates elements, streamed to a temporary file.
pub(crate) struct BodyWriter {
    out: Option<BufWriter<File>>,
    path: PathBuf,
    len: u64,
    entries: u64,
}

impl BodyWriter {
    pub(crate) fn create(dir: &Path) -> Result<BodyWriter> {
        let path = temp_path(dir, "body");
        let file = create(&path)?;
        Ok(BodyWriter {
            out: Some(BufWriter::with_capacity(IO_BUF, file)),
            path,
            len: 0,
            entries: 0,
        })
    }

    /// Appends encoded entries (`count` of them).
    pub(crate) fn write(&mut self, encoded: &[u8], count: u64) -> Result<()> {
        let out = self
            .out
            .as_mut()
            .ok_or(Error::Internal("body already finished"))?;
        out.write_all(encoded)
            .map_err(|e| Error::io(&self.path, e))?;
        self.len += encoded.len() as u64;
        self.entries += count;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<Body> {
        let out = self
            .out
            .take()
            .ok_or(Error::Internal("body already finished"))?;
        // On error, Drop removes the file; on success, Body owns (and removes) it.
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        let path = std::mem::take(&mut self.path);
        Ok(Body {
            file,
            path,
            len: self.len,
            entries: self.entries,
        })
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        // A build that failed midway leaves no body file behind.
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A finished body file; deleted when dropped.
pub(crate) struct Body {
    file: File,
    path: PathBuf,
    len: u64,
    entries: u64,
}

impl Body {
    pub(crate) fn entries(&self) -> u64 {
        self.entries
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The fields of a TBSCertList other than the entries.
pub(crate) struct TbsFields<'a> {
    pub(crate) signature_algorithm: &'a [u8],
    pub(crate) issuer: &'a [u8],
    pub(crate) this_update: UnixTime,
    pub(crate) next_update: UnixTime,
    /// The DER of the `Extensions` SEQUENCE (wrapped in `[0]` here).
    pub(crate) extensions: &'a [u8],
}

/// A writer that hashes what passes through it while hashing is on.
struct HashingWriter<W: Write> {
    inner: W,
    ctx: digest::Context,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.ctx.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Feeds the first `len` octets of the file at `path` to `ctx`.
fn hash_file(path: &Path, len: u64, ctx: &mut digest::Context) -> Result<()> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; IO_BUF];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = f.read(&mut buf[..want]).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Err(Error::malformed(path, "body file shorter than written"));
        }
        ctx.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// The longest and shortest signature values of an algorithm.
fn signature_len_range(alg: KeyAlgorithm) -> (usize, usize) {
    match alg {
        KeyAlgorithm::Rsa2048 => (256, 256),
        // Ecdsa-Sig-Value: SEQUENCE { INTEGER r, INTEGER s }, each 1 to 33 octets.
        KeyAlgorithm::EcdsaP256 => (8, 72),
    }
}

/// Writes the signed CRL to `out` (a new file). Returns its size. The file
/// is not synced here: publishing syncs it while it verifies it.
pub(crate) fn assemble(
    bodies: Vec<Body>,
    tbs: &TbsFields<'_>,
    signer: &dyn Signer,
    out: &Path,
) -> Result<u64> {
    let body_len = usize::try_from(bodies.iter().map(|b| b.len).sum::<u64>())
        .map_err(|_| Error::Input("a CRL larger than the address space"))?;
    let entries: u64 = bodies.iter().map(|b| b.entries).sum();
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(&[TAG_INTEGER, 1, 1]); // version v2
    head.extend_from_slice(tbs.signature_algorithm);
    head.extend_from_slice(tbs.issuer);
    d::push_time(&mut head, tbs.this_update)?;
    d::push_time(&mut head, tbs.next_update)?;
    // RFC 5280 §5.1.2.6: no revoked certificates, no (empty) list.
    let list_header = if entries > 0 {
        d::header(TAG_SEQUENCE, body_len)
    } else {
        Vec::new()
    };
    let mut tail = Vec::with_capacity(tbs.extensions.len() + 8);
    if !tbs.extensions.is_empty() {
        d::push_header(&mut tail, d::TAG_CONTEXT_0, tbs.extensions.len());
        tail.extend_from_slice(tbs.extensions);
    }
    let tbs_content =
        head.len() + list_header.len() + if entries > 0 { body_len } else { 0 } + tail.len();
    let tbs_len = d::tlv_len(tbs_content);
    let outer_content =
        |sig_len: usize| tbs_len + tbs.signature_algorithm.len() + d::tlv_len(sig_len + 1);
    let (_, max_sig) = signature_len_range(signer.algorithm());
    let slot = 1 + d::len_octets(outer_content(max_sig));

    let file = create(out)?;
    let mut w = HashingWriter {
        inner: BufWriter::with_capacity(IO_BUF, file),
        ctx: digest::Context::new(&digest::SHA256),
    };
    let io = |e: std::io::Error| Error::io(out, e);
    // The slot for the outer header: not part of the signed bytes.
    w.inner.write_all(&vec![0u8; slot]).map_err(io)?;
    crate::publish::io_failpoint("crl-enospc").map_err(io)?;
    w.write_all(&d::header(TAG_SEQUENCE, tbs_content))
        .map_err(io)?;
    w.write_all(&head).map_err(io)?;
    if entries > 0 {
        w.write_all(&list_header).map_err(io)?;
    }
    w.inner.flush().map_err(io)?;
    for mut body in bodies.into_iter().filter(|_| entries > 0) {
        // The segment is copied in the kernel (copy_file_range) while this
        // thread's partner hashes it from its own handle: the copy costs no
        // user-space pass, and the two overlap.
        body.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(&body.path, e))?;
        let ctx = &mut w.ctx;
        let out_file = w.inner.get_mut();
        let (copied, hashed) = rayon::join(
            || std::io::copy(&mut body.file, out_file),
            || hash_file(&body.path, body.len, ctx),
        );
        let copied = copied.map_err(io)?;
        hashed?;
        if copied != body.len {
            return Err(Error::malformed(
                &body.path,
                "body file shorter than written",
            ));
        }
    }
    w.write_all(&tail).map_err(io)?;
    let digest = w.ctx.finish();
    let digest: [u8; 32] = digest
        .as_ref()
        .try_into()
        .map_err(|_| Error::Internal("SHA-256 digest length"))?;
    let signature = signer.sign_sha256_digest(&digest)?;

    let mut inner = w.inner;
    inner.write_all(tbs.signature_algorithm).map_err(io)?;
    let mut bits = d::header(TAG_BIT_STRING, signature.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(&signature);
    inner.write_all(&bits).map_err(io)?;
    let mut file = inner
        .into_inner()
        .map_err(|e| Error::io(out, e.into_error()))?;

    let outer = d::header(TAG_SEQUENCE, outer_content(signature.len()));
    let size = if outer.len() == slot {
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&outer).map_err(io)?;
        (slot + outer_content(signature.len())) as u64
    } else {
        // The length crossed a boundary: rewrite without the gap (rare).
        drop(file);
        close_gap(out, slot, &outer)?
    };
    Ok(size)
}

/// Rewrites `path` as `header` followed by its bytes from `skip` on.
fn close_gap(path: &Path, skip: usize, header: &[u8]) -> Result<u64> {
    let tmp = temp_path(path.parent().unwrap_or(Path::new(".")), "regap");
    let result = (|| {
        let io = |e: std::io::Error| Error::io(path, e);
        let mut src = File::open(path).map_err(io)?;
        src.seek(SeekFrom::Start(skip as u64)).map_err(io)?;
        let mut dst = BufWriter::with_capacity(IO_BUF, create(&tmp)?);
        dst.write_all(header).map_err(io)?;
        let copied = std::io::copy(&mut src, &mut dst).map_err(io)?;
        let file = dst
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(io)?;
        Ok(header.len() as u64 + copied)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
