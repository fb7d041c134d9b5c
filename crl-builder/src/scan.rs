//! Scanning an issuer's (or a partition's) revoked index from a snapshot and
//! encoding the entries into body segments: in parallel over key ranges for
//! a full CRL, in one range for a partition. A batch at a time, so memory
//! stays bounded whatever the size of the index.

use std::path::Path;

use rayon::prelude::*;
use shikko_core::{CertKind, CertStatus, PartitionId, RevocationReason, Serial, UnixTime};
use shikko_store::{RevokedBatch, Snapshot};

use crate::build::Progress;
use crate::der::{DayCache, EntryFields, push_entry};
use crate::error::Result;
use crate::writer::{Body, BodyWriter};

/// What one scan reads, where it writes, and what it leaves out.
pub(crate) struct Scan<'a> {
    pub(crate) snap: &'a Snapshot<'a>,
    pub(crate) kind: CertKind,
    /// Where the body segments are written (the issuer's CRL directory).
    pub(crate) dir: &'a Path,
    /// Entries of certificates that expired before this are left out.
    pub(crate) cutoff: UnixTime,
    /// Entries read per batch.
    pub(crate) batch_size: usize,
    pub(crate) progress: &'a dyn Progress,
}

impl Scan<'_> {
    /// Scans and encodes the issuer's whole index in parallel: the key range
    /// is split into a few ranges per rayon thread, each scanned and encoded
    /// into its own body segment (bounded by one batch in memory per
    /// thread); the segments are concatenated in key order when the CRL is
    /// assembled, so the output does not depend on the thread count.
    pub(crate) fn parallel(&self) -> Result<Vec<Body>> {
        let Some((first, last)) = self.snap.revoked_key_bounds(self.kind, None)? else {
            return Ok(Vec::new());
        };
        let splits = split_points(&first, &last, rayon::current_num_threads() * 4);
        let mut ranges: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(splits.len() + 1);
        let mut from = first;
        for s in splits {
            ranges.push((std::mem::replace(&mut from, s.clone()), Some(s)));
        }
        ranges.push((from, None));
        ranges
            .par_iter()
            .map(|(from, to)| self.range(None, (from, to.as_deref())))
            .collect()
    }

    /// Scans the keys `range.0 <= key < range.1` of the issuer (or of one
    /// partition) and encodes them into one body segment, a batch at a time.
    pub(crate) fn range(
        &self,
        partition: Option<PartitionId>,
        range: (&[u8], Option<&[u8]>),
    ) -> Result<Body> {
        let mut body = BodyWriter::create(self.dir)?;
        let mut buf = Vec::with_capacity(self.batch_size.min(1 << 16) * 48);
        let mut days = DayCache::default();
        self.snap.scan_revoked_range(
            self.kind,
            partition,
            range.0,
            range.1,
            self.batch_size,
            |batch| -> Result<()> {
                buf.clear();
                let n = encode_range(batch, 0..batch.len(), self.cutoff, &mut buf, &mut days)?;
                body.write(&buf, n)?;
                self.progress.entries(batch.len() as u64);
                Ok(())
            },
        )?;
        body.finish()
    }
}

/// The CRL entry of an indexed status (none for a good certificate).
pub(crate) fn fields_of<'a>(serial: &'a Serial, status: &CertStatus) -> Option<EntryFields<'a>> {
    match *status {
        CertStatus::Good => None,
        CertStatus::OnHold { since } => Some(EntryFields {
            serial,
            date: since,
            reason: Some(RevocationReason::CertificateHold),
            invalidity_date: None,
        }),
        CertStatus::Revoked {
            reason,
            at,
            invalidity_date,
        } => Some(EntryFields {
            serial,
            date: at,
            reason: Some(reason),
            invalidity_date,
        }),
    }
}

/// Encodes entries `range` of a batch, dropping those expired before `cutoff`.
fn encode_range(
    batch: &RevokedBatch,
    range: std::ops::Range<usize>,
    cutoff: UnixTime,
    out: &mut Vec<u8>,
    days: &mut DayCache,
) -> Result<u64> {
    let mut n = 0;
    for i in range {
        let e = batch.get(i)?;
        if e.not_after < cutoff {
            continue;
        }
        if let Some(f) = fields_of(&e.serial, &e.status) {
            push_entry(out, &f, days)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Up to `n - 1` keys strictly between `first` and `last`, increasing, that
/// split the key range into `n` parts of about equal width: keys are read as
/// numbers from the first octet where `first` and `last` differ. Uneven
/// key density only makes the parts uneven, never wrong.
fn split_points(first: &[u8], last: &[u8], n: usize) -> Vec<Vec<u8>> {
    if n < 2 || first >= last {
        return Vec::new();
    }
    let d = first
        .iter()
        .zip(last)
        .position(|(a, b)| a != b)
        .unwrap_or(first.len().min(last.len()));
    let window = |k: &[u8]| {
        let mut b = [0u8; 8];
        for (i, x) in b.iter_mut().enumerate() {
            *x = k.get(d + i).copied().unwrap_or(0);
        }
        u64::from_be_bytes(b)
    };
    let (lo, hi) = (window(first), window(last));
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(n - 1);
    for i in 1..n {
        let v = lo + ((u128::from(hi - lo) * i as u128) / n as u128) as u64;
        let mut key = first[..d].to_vec();
        key.extend_from_slice(&v.to_be_bytes());
        key.truncate(first.len().max(d + 1));
        if key.as_slice() > first && key.as_slice() <= last && out.last().is_none_or(|p| *p < key) {
            out.push(key);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_are_increasing_and_strictly_inside() {
        let key = |p: u32, s: u128| {
            let mut k = vec![1u8];
            k.extend_from_slice(&p.to_be_bytes());
            k.extend_from_slice(&[0u8; 4]);
            k.extend_from_slice(&s.to_be_bytes());
            k
        };
        for (first, last) in [
            (key(0, 0x4A50_0000), key(0, 0x4A50_FFFF)),
            (key(10_000, 5), key(11_899, 7)),
            (key(7, 1), key(7, 2)),
        ] {
            for n in [1, 2, 8, 64] {
                let splits = split_points(&first, &last, n);
                assert!(splits.len() < n.max(1));
                let mut prev = first.clone();
                for s in &splits {
                    assert!(*s > prev && s.as_slice() <= last.as_slice(), "{n}");
                    prev = s.clone();
                }
            }
        }
        assert_eq!(
            split_points(&key(0, 0x4A50_0000), &key(0, 0x4A50_FFFF), 8).len(),
            7
        );
        assert!(split_points(&key(1, 1), &key(1, 1), 8).is_empty());
    }
}
