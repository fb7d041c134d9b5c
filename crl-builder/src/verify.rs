//! Reading a CRL file back without holding it in memory: a full check before
//! publishing (structure of every entry, SHA-256 of the TBSCertList, the
//! signature against the issuer's key) and a quick summary for serving (the
//! entries are skipped by seeking, so a 1 GB CRL is summarised in microseconds).
//! The entries' own structure is checked by [`entries`].

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use const_oid::db::rfc5280::{ID_CE_CRL_NUMBER, ID_CE_DELTA_CRL_INDICATOR};
use der::Decode;
use shikko_core::UnixTime;
use shikko_pki::KeyAlgorithm;
use spki::SubjectPublicKeyInfoRef;
use x509_cert::ext::Extensions;

use crate::der::{
    TAG_BIT_STRING, TAG_CONTEXT_0, TAG_GENERALIZED_TIME, TAG_INTEGER, TAG_SEQUENCE, TAG_UTC_TIME,
};
use crate::error::{Error, Result};

mod entries;

use entries::parse_entries;

/// What a published CRL says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlSummary {
    /// The cRLNumber.
    pub number: u64,
    /// The deltaCRLIndicator's base CRL number, for a delta CRL.
    pub delta_base: Option<u64>,
    /// thisUpdate.
    pub this_update: UnixTime,
    /// nextUpdate.
    pub next_update: Option<UnixTime>,
    /// Number of entries (known after a full check; `None` from a quick summary).
    pub entries: Option<u64>,
    /// File size in octets.
    pub size: u64,
    /// The first 8 octets of the SHA-256 of the signature value: a
    /// content-derived tag for ETags (an ECDSA signature's own first octets
    /// vary little).
    pub signature_tag: [u8; 8],
}

impl CrlSummary {
    /// The HTTP entity tag of this CRL (quoted): the CRL number and signature
    /// prefix, so replicas serving the same bytes agree on it.
    pub fn etag(&self) -> String {
        let mut s = format!("\"{:x}-", self.number);
        for b in self.signature_tag {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('"');
        s
    }
}

struct Reader<R> {
    inner: R,
    pos: u64,
    /// The file's size: no length may run past it.
    limit: u64,
    hash: Option<digest::Context>,
}

impl<R: Read + Seek> Reader<R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_exact(buf)?;
        self.pos += buf.len() as u64;
        if let Some(h) = self.hash.as_mut() {
            h.update(buf);
        }
        Ok(())
    }

    fn byte(&mut self) -> std::io::Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        let step = i64::try_from(n).map_err(|_| std::io::Error::other("skip too long"))?;
        self.inner.seek_relative(step)?;
        self.pos += n;
        Ok(())
    }
}

/// Reads a tag and a DER length.
fn read_header<R: Read + Seek>(r: &mut Reader<R>, path: &Path) -> Result<(u8, u64)> {
    let io = |e| Error::io(path, e);
    let tag = r.byte().map_err(io)?;
    let first = r.byte().map_err(io)?;
    let len = if first < 0x80 {
        u64::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 8 {
            return Err(Error::malformed(path, "unsupported length encoding"));
        }
        let mut buf = [0u8; 8];
        r.read_exact(&mut buf[8 - n..]).map_err(io)?;
        let len = u64::from_be_bytes(buf);
        if buf[8 - n] == 0 || len < 0x80 {
            return Err(Error::malformed(path, "length not in minimal DER form"));
        }
        len
    };
    if r.pos.checked_add(len).is_none_or(|end| end > r.limit) {
        return Err(Error::malformed(
            path,
            "a length runs past the end of the file",
        ));
    }
    Ok((tag, len))
}

fn expect_header<R: Read + Seek>(
    r: &mut Reader<R>,
    path: &Path,
    tag: u8,
    what: &str,
) -> Result<u64> {
    let (t, len) = read_header(r, path)?;
    if t != tag {
        return Err(Error::malformed(
            path,
            format!("{what}: expected tag {tag:#04x}, found {t:#04x}"),
        ));
    }
    Ok(len)
}

fn read_content<R: Read + Seek>(
    r: &mut Reader<R>,
    path: &Path,
    len: u64,
    max: u64,
    what: &str,
) -> Result<Vec<u8>> {
    if len > max {
        return Err(Error::malformed(
            path,
            format!("{what} is implausibly long"),
        ));
    }
    let mut v = vec![0u8; len as usize];
    r.read_exact(&mut v).map_err(|e| Error::io(path, e))?;
    Ok(v)
}

fn two(b: &[u8]) -> Option<u8> {
    match b {
        [a @ b'0'..=b'9', c @ b'0'..=b'9'] => Some((a - b'0') * 10 + (c - b'0')),
        _ => None,
    }
}

/// Parses UTCTime / GeneralizedTime content in the `...Z` form RFC 5280 requires.
pub(super) fn parse_time(tag: u8, v: &[u8]) -> Option<UnixTime> {
    let (year, rest) = match (tag, v.len()) {
        (TAG_UTC_TIME, 13) => {
            let yy = i64::from(two(&v[0..2])?);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &v[2..])
        }
        (TAG_GENERALIZED_TIME, 15) => (
            i64::from(two(&v[0..2])?) * 100 + i64::from(two(&v[2..4])?),
            &v[4..],
        ),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let (mo, d, h, mi, s) = (
        two(&rest[0..2])?,
        two(&rest[2..4])?,
        two(&rest[4..6])?,
        two(&rest[6..8])?,
        two(&rest[8..10])?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let day = UnixTime::from_civil(year, mo, d).0;
    Some(UnixTime(
        day + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s),
    ))
}

fn read_time<R: Read + Seek>(
    r: &mut Reader<R>,
    path: &Path,
    tag: u8,
    len: u64,
    what: &str,
) -> Result<UnixTime> {
    let v = read_content(r, path, len, 32, what)?;
    parse_time(tag, &v).ok_or_else(|| Error::malformed(path, format!("{what} is not a valid time")))
}

fn uint_u64(bytes: &[u8]) -> Option<u64> {
    let bytes = match bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        b => b,
    };
    if bytes.len() > 8 {
        return None;
    }
    let mut buf = [0u8; 8];
    buf[8 - bytes.len()..].copy_from_slice(bytes);
    Some(u64::from_be_bytes(buf))
}

/// How far to read.
enum Mode<'a> {
    /// Walk every entry and verify the signature with this SubjectPublicKeyInfo.
    Verify(&'a [u8]),
    /// Seek past the entries; no signature check.
    Summary,
}

fn read(path: &Path, mode: Mode<'_>) -> Result<CrlSummary> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    read_file(file, path, mode)
}

fn read_file(file: File, path: &Path, mode: Mode<'_>) -> Result<CrlSummary> {
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    read_from(BufReader::with_capacity(1 << 20, file), size, path, mode)
}

/// Reads a CRL of `size` octets from `input` (`path` only names it in errors).
fn read_from<R: Read + Seek + Send>(
    input: R,
    size: u64,
    path: &Path,
    mode: Mode<'_>,
) -> Result<CrlSummary> {
    let verify = matches!(mode, Mode::Verify(_));
    let mut r = Reader {
        inner: input,
        pos: 0,
        limit: size,
        hash: None,
    };
    let outer = expect_header(&mut r, path, TAG_SEQUENCE, "CertificateList")?;
    if r.pos + outer != size {
        return Err(Error::malformed(
            path,
            "the CertificateList length is not the file's",
        ));
    }
    if verify {
        r.hash = Some(digest::Context::new(&digest::SHA256));
    }
    let tbs_len = expect_header(&mut r, path, TAG_SEQUENCE, "TBSCertList")?;
    let tbs_end = r.pos + tbs_len;
    let version = expect_header(&mut r, path, TAG_INTEGER, "version")?;
    if read_content(&mut r, path, version, 4, "version")? != [1] {
        return Err(Error::malformed(path, "not a v2 CRL"));
    }
    let alg_len = expect_header(&mut r, path, TAG_SEQUENCE, "signature")?;
    let tbs_alg = read_content(&mut r, path, alg_len, 64, "signature algorithm")?;
    let issuer_len = expect_header(&mut r, path, TAG_SEQUENCE, "issuer")?;
    read_content(&mut r, path, issuer_len, 64 << 10, "issuer")?;
    let (tag, len) = read_header(&mut r, path)?;
    let this_update = read_time(&mut r, path, tag, len, "thisUpdate")?;
    let mut next_update = None;
    let mut entries = None;
    let mut extensions = None;
    while r.pos < tbs_end {
        let (tag, len) = read_header(&mut r, path)?;
        match tag {
            TAG_UTC_TIME | TAG_GENERALIZED_TIME if next_update.is_none() && entries.is_none() => {
                next_update = Some(read_time(&mut r, path, tag, len, "nextUpdate")?);
            }
            TAG_SEQUENCE if entries.is_none() && extensions.is_none() => {
                if len == 0 {
                    return Err(Error::malformed(path, "an empty revokedCertificates list"));
                }
                if verify {
                    entries = Some(walk_entries(&mut r, path, len)?);
                } else {
                    r.skip(len).map_err(|e| Error::io(path, e))?;
                    entries = Some(0);
                }
            }
            TAG_CONTEXT_0 if extensions.is_none() => {
                extensions = Some(read_content(&mut r, path, len, 1 << 20, "crlExtensions")?);
            }
            _ => {
                return Err(Error::malformed(
                    path,
                    format!("unexpected field {tag:#04x} in TBSCertList"),
                ));
            }
        }
    }
    if r.pos != tbs_end {
        return Err(Error::malformed(path, "TBSCertList overruns its length"));
    }
    let tbs_digest = r.hash.take().map(digest::Context::finish);
    let alg_len = expect_header(&mut r, path, TAG_SEQUENCE, "signatureAlgorithm")?;
    if read_content(&mut r, path, alg_len, 64, "signature algorithm")? != tbs_alg {
        return Err(Error::malformed(
            path,
            "signatureAlgorithm differs from the TBSCertList's",
        ));
    }
    let sig_len = expect_header(&mut r, path, TAG_BIT_STRING, "signatureValue")?;
    let sig = read_content(&mut r, path, sig_len, 4096, "signatureValue")?;
    if r.pos != size {
        return Err(Error::malformed(
            path,
            "trailing octets after the CertificateList",
        ));
    }
    let Some((&0, sig)) = sig.split_first() else {
        return Err(Error::malformed(path, "signatureValue has unused bits"));
    };
    if sig.len() < 8 {
        return Err(Error::malformed(path, "signatureValue too short"));
    }

    let ext_der = extensions.ok_or_else(|| Error::malformed(path, "no crlExtensions"))?;
    let exts = Extensions::from_der(&ext_der)
        .map_err(|e| Error::malformed(path, format!("crlExtensions: {e}")))?;
    let mut number = None;
    let mut delta_base = None;
    for e in &exts {
        if e.extn_id == ID_CE_CRL_NUMBER {
            let n = der::asn1::Uint::from_der(e.extn_value.as_bytes())?;
            number = uint_u64(n.as_bytes());
        } else if e.extn_id == ID_CE_DELTA_CRL_INDICATOR {
            let n = der::asn1::Uint::from_der(e.extn_value.as_bytes())?;
            delta_base = Some(
                uint_u64(n.as_bytes())
                    .ok_or_else(|| Error::malformed(path, "base CRL number too large"))?,
            );
        }
    }
    let number = number.ok_or_else(|| Error::malformed(path, "no cRLNumber"))?;

    if let (Mode::Verify(spki), Some(d)) = (mode, tbs_digest) {
        let key = SubjectPublicKeyInfoRef::from_der(spki)?;
        let bits = key
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| Error::malformed(path, "issuer key has unused bits"))?;
        let alg = if key.algorithm.oid == const_oid::db::rfc5912::RSA_ENCRYPTION {
            KeyAlgorithm::Rsa2048
        } else {
            KeyAlgorithm::EcdsaP256
        };
        let expected_alg = der::Encode::to_der(&alg.signature_algorithm())?;
        if expected_alg.get(2..) != Some(tbs_alg.as_slice()) {
            return Err(Error::malformed(
                path,
                "signature algorithm does not match the issuer's key",
            ));
        }
        let ok = match alg {
            KeyAlgorithm::Rsa2048 => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, bits).verify_digest(&d, sig)
            }
            KeyAlgorithm::EcdsaP256 => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, bits).verify_digest(&d, sig)
            }
        };
        if ok.is_err() {
            return Err(Error::BadSignature(path.to_path_buf()));
        }
    }
    let mut signature_tag = [0u8; 8];
    signature_tag.copy_from_slice(&digest::digest(&digest::SHA256, sig).as_ref()[..8]);
    Ok(CrlSummary {
        number,
        delta_base,
        this_update,
        next_update,
        entries: if verify {
            Some(entries.unwrap_or(0))
        } else {
            None
        },
        size,
        signature_tag,
    })
}

/// Checks the shape of every entry (serial INTEGER, a time, optional
/// extensions) and counts them. Reads (and hashes) the list in large chunks
/// and parses the entries in memory: per-entry reads would cost more than
/// everything else in the check.
fn walk_entries<R: Read + Seek + Send>(r: &mut Reader<R>, path: &Path, len: u64) -> Result<u64> {
    const CHUNK: u64 = 1 << 20;
    let mut count = 0u64;
    let mut left = len;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK as usize + 2048);
    // Hashing and parsing each chunk run side by side.
    let mut hash = r.hash.take();
    while left > 0 {
        let n = left.min(CHUNK) as usize;
        let carried = buf.len();
        buf.resize(carried + n, 0);
        r.inner
            .read_exact(&mut buf[carried..])
            .map_err(|e| Error::io(path, e))?;
        r.pos += n as u64;
        left -= n as u64;
        let (fresh, all) = (&buf[carried..], &buf[..]);
        let ((), parsed) = rayon::join(
            || {
                if let Some(h) = hash.as_mut() {
                    h.update(fresh);
                }
            },
            || parse_entries(all, left > 0),
        );
        let (used, n) = parsed.ok_or_else(|| {
            Error::malformed(path, format!("revoked entry {} is malformed", count + 1))
        })?;
        count += n;
        buf.drain(..used);
    }
    r.hash = hash;
    if !buf.is_empty() {
        return Err(Error::malformed(
            path,
            "revokedCertificates ends inside an entry",
        ));
    }
    Ok(count)
}

/// Fully checks a CRL file: every entry's structure, the TBSCertList's hash,
/// the signature against `issuer_spki` (DER SubjectPublicKeyInfo).
pub fn verify_file(path: &Path, issuer_spki: &[u8]) -> Result<CrlSummary> {
    read(path, Mode::Verify(issuer_spki))
}

/// Reads a CRL file's header and trailer (number, times, signature prefix),
/// seeking past the entries: cheap at any size. Does not check the signature.
pub fn read_summary(path: &Path) -> Result<CrlSummary> {
    read(path, Mode::Summary)
}

/// [`verify_file`] of a CRL in memory (a download, a fuzzer's input).
pub fn verify_bytes(crl: &[u8], issuer_spki: &[u8]) -> Result<CrlSummary> {
    read_from(
        std::io::Cursor::new(crl),
        crl.len() as u64,
        Path::new("<memory>"),
        Mode::Verify(issuer_spki),
    )
}

/// [`read_summary`] of a CRL in memory.
pub fn summary_of_bytes(crl: &[u8]) -> Result<CrlSummary> {
    read_from(
        std::io::Cursor::new(crl),
        crl.len() as u64,
        Path::new("<memory>"),
        Mode::Summary,
    )
}

/// [`read_summary`] of a file already open (the version a reader is about to
/// stream, whatever has been renamed over its path since); leaves the file's
/// offset at its start.
pub(crate) fn read_summary_of(file: &File, path: &Path) -> Result<CrlSummary> {
    let clone = file.try_clone().map_err(|e| Error::io(path, e))?;
    let summary = read_file(clone, path, Mode::Summary);
    // The clone shares the offset: rewind for the reader.
    let mut f = file;
    f.seek(std::io::SeekFrom::Start(0))
        .map_err(|e| Error::io(path, e))?;
    summary
}

#[cfg(test)]
mod tests {
    use super::entries::check_entry;
    use super::*;
    use proptest::prelude::*;
    use shikko_core::{CertKind, RevocationReason, Serial};
    use shikko_pki::{Signer, SoftwareSigner};

    /// A small valid CRL: (its bytes, the issuer's SubjectPublicKeyInfo).
    fn sample_crl() -> (Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let mut body = crate::writer::BodyWriter::create(dir.path()).unwrap();
        let mut days = crate::der::DayCache::default();
        let mut buf = Vec::new();
        for i in 0..40u128 {
            let serial = Serial::from_u128(0x4A50_0000 + i).unwrap();
            crate::der::push_entry(
                &mut buf,
                &crate::der::EntryFields {
                    serial: &serial,
                    date: UnixTime(1_700_000_000 + i as i64),
                    reason: Some(RevocationReason::KeyCompromise),
                    invalidity_date: (i % 2 == 0).then_some(UnixTime(1_690_000_000)),
                },
                &mut days,
            )
            .unwrap();
        }
        body.write(&buf, 40).unwrap();
        let name = der::Encode::to_der(&shikko_pki::ca_name(CertKind::CardAuth)).unwrap();
        let alg = der::Encode::to_der(&key.signature_algorithm()).unwrap();
        let exts =
            crate::extensions::delta(key.public_key_hashes().unwrap().key_identifier(), 9, 7)
                .unwrap();
        let out = dir.path().join("sample.crl");
        crate::writer::assemble(
            vec![body.finish().unwrap()],
            &crate::writer::TbsFields {
                signature_algorithm: &alg,
                issuer: &name,
                this_update: UnixTime(1_800_000_000),
                next_update: UnixTime(1_800_003_600),
                extensions: &exts,
            },
            &key,
            &out,
        )
        .unwrap();
        (std::fs::read(&out).unwrap(), key.public_key_der().to_vec())
    }

    fn check_bytes(bytes: &[u8], spki: &[u8]) -> (Result<CrlSummary>, Result<CrlSummary>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.crl");
        std::fs::write(&path, bytes).unwrap();
        (verify_file(&path, spki), read_summary(&path))
    }

    #[test]
    fn the_sample_verifies() {
        let (crl, spki) = sample_crl();
        let (full, quick) = check_bytes(&crl, &spki);
        let full = full.unwrap();
        assert_eq!(
            (full.number, full.delta_base, full.entries),
            (9, Some(7), Some(40))
        );
        assert_eq!(quick.unwrap().number, 9);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Damaged files (flipped octets, truncations, appended garbage) are
        /// errors, never panics, and never verify.
        #[test]
        fn damaged_crls_are_errors_not_panics(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
            cut in proptest::option::of(any::<prop::sample::Index>()),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let (mut crl, spki) = sample_crl();
            let original = crl.clone();
            for (at, x) in &flips {
                let i = at.index(crl.len());
                crl[i] ^= x;
            }
            if let Some(c) = cut {
                crl.truncate(c.index(crl.len()));
            }
            crl.extend_from_slice(&tail);
            // Two flips of one octet can cancel out.
            let damaged = crl != original;
            let (full, _quick) = check_bytes(&crl, &spki);
            prop_assert_eq!(full.is_ok(), verify_bytes(&crl, &spki).is_ok());
            let _ = summary_of_bytes(&crl);
            if damaged {
                prop_assert!(full.is_err());
            }
        }
    }

    #[test]
    fn times_parse_in_both_forms() {
        assert_eq!(
            parse_time(TAG_UTC_TIME, b"700101000000Z"),
            Some(UnixTime(0))
        );
        assert_eq!(
            parse_time(TAG_UTC_TIME, b"491231235959Z"),
            Some(UnixTime(2_524_607_999))
        );
        assert_eq!(
            parse_time(TAG_GENERALIZED_TIME, b"20500101000000Z"),
            Some(UnixTime(2_524_608_000))
        );
        assert_eq!(parse_time(TAG_UTC_TIME, b"701301000000Z"), None);
        assert_eq!(parse_time(TAG_UTC_TIME, b"7001010000000"), None);
        assert_eq!(parse_time(TAG_GENERALIZED_TIME, b"700101000000Z"), None);
    }

    #[test]
    fn malformed_entries_are_caught() {
        let mut good = Vec::new();
        let serial = shikko_core::Serial::from_u128(0x4a50).unwrap();
        crate::der::push_entry(
            &mut good,
            &crate::der::EntryFields {
                serial: &serial,
                date: UnixTime(1_700_000_000),
                reason: Some(shikko_core::RevocationReason::Superseded),
                invalidity_date: None,
            },
            &mut crate::der::DayCache::default(),
        )
        .unwrap();
        assert!(check_entry(&good[2..]).is_some());
        let mut neg = good[2..].to_vec();
        neg[2] = 0x80; // negative serial
        assert!(check_entry(&neg).is_none());
        assert!(check_entry(&good[2..good.len() - 3]).is_none(), "truncated");
    }
}
