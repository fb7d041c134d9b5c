//! The index as bytes (an image), for a responder that starts empty: the
//! registry builds the index from a snapshot of its state once and sends
//! the image; the responder reads it back in seconds instead of inserting
//! every certificate. About the size of the index in memory (roaring's
//! portable format for the bitmaps).
//!
//! Layout (integers little-endian):
//!
//! ```text
//! "SKSI" 0x01        magic and version
//! seq: u64           the feed position the index reflects
//! 4 x issuer (in CertKind order):
//!   ranges: u64, then per range:
//!     hi: u128       the serials' value above their low 32 bits
//!     form: u8       1 one serial, 2 a few, 3 many
//!     1: lo u32, status
//!     2: n u32, n x (lo u32, status)
//!     3: issued (len u32, roaring), listed (len u32, roaring),
//!        n u64, n x lo u32, n x status     (the non-good, sorted)
//!   wide: u64, then per serial: 20 octets, status
//! status: tag u8 (0 good, 1 on hold, 2 revoked), reason u8, time u32
//! ```
//!
//! Reading checks every length against what is left and every table
//! against its bitmaps; a malformed image is an error, never a panic.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use shikko_core::SERIAL_MAX_OCTETS;

use crate::{IssuerIndex, Packed, Range, Slot, StatusIndex};

const MAGIC: &[u8; 5] = b"SKSI\x01";

/// Why an image could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageError {
    /// Not an image of this version.
    #[error("not a status index image (version 1)")]
    Magic,
    /// It ends before what it announces.
    #[error("the image is cut short")]
    Short,
    /// A value that cannot be.
    #[error("the image is malformed: {0}")]
    Malformed(&'static str),
}

fn put_packed(out: &mut Vec<u8>, p: Packed) {
    out.push(p.tag);
    out.push(p.reason);
    out.extend_from_slice(&p.time.to_le_bytes());
}

impl StatusIndex {
    /// The index as an image (see the module).
    pub fn write_image(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.seq().to_le_bytes());
        for issuer in &self.issuers {
            let issuer = issuer.read().unwrap_or_else(|p| p.into_inner());
            out.extend_from_slice(&(issuer.ranges.len() as u64).to_le_bytes());
            for (hi, slot) in &issuer.ranges {
                out.extend_from_slice(&hi.to_le_bytes());
                match slot {
                    Slot::One(lo, p) => {
                        out.push(1);
                        out.extend_from_slice(&lo.to_le_bytes());
                        put_packed(&mut out, *p);
                    }
                    Slot::Few(v) => {
                        out.push(2);
                        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                        for (lo, p) in v {
                            out.extend_from_slice(&lo.to_le_bytes());
                            put_packed(&mut out, *p);
                        }
                    }
                    Slot::Many(r) => {
                        out.push(3);
                        for bitmap in [&r.issued, &r.listed] {
                            out.extend_from_slice(&(bitmap.serialized_size() as u32).to_le_bytes());
                            // Writing into a Vec cannot fail.
                            let _ = bitmap.serialize_into(&mut out);
                        }
                        let (keys, vals) = r.merged();
                        out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
                        for k in &keys {
                            out.extend_from_slice(&k.to_le_bytes());
                        }
                        for v in vals {
                            put_packed(&mut out, v);
                        }
                    }
                }
            }
            out.extend_from_slice(&(issuer.wide.len() as u64).to_le_bytes());
            for (serial, p) in &issuer.wide {
                out.extend_from_slice(serial);
                put_packed(&mut out, *p);
            }
        }
        out
    }

    /// Replaces the index by the one `image` holds; returns its sequence
    /// number. On error the index is left as it was.
    pub fn read_image(&self, image: &[u8]) -> Result<u64, ImageError> {
        let mut r = Reader(image);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(ImageError::Magic);
        }
        let seq = r.u64()?;
        let mut issuers: Vec<IssuerIndex> = Vec::with_capacity(4);
        for _ in 0..4 {
            let mut issuer = IssuerIndex::default();
            let n = r.count(16 + 1)?;
            issuer.ranges.reserve(n);
            for _ in 0..n {
                let hi = u128::from_le_bytes(r.array()?);
                let slot = match r.u8()? {
                    1 => Slot::One(r.u32()?, r.packed()?),
                    2 => {
                        let n = r.u32()? as usize;
                        if n > r.0.len() / 10 {
                            return Err(ImageError::Short);
                        }
                        let mut v = Vec::with_capacity(n);
                        for _ in 0..n {
                            v.push((r.u32()?, r.packed()?));
                        }
                        Slot::Few(v)
                    }
                    3 => Slot::Many(Box::new(r.range()?)),
                    _ => return Err(ImageError::Malformed("a range's form")),
                };
                if issuer.ranges.insert(hi, slot).is_some() {
                    return Err(ImageError::Malformed("a range twice"));
                }
            }
            let n = r.count(SERIAL_MAX_OCTETS + 6)?;
            let mut wide = HashMap::with_capacity(n);
            for _ in 0..n {
                let serial: [u8; SERIAL_MAX_OCTETS] = r.array()?;
                wide.insert(serial, r.packed()?);
            }
            issuer.wide = wide;
            issuers.push(issuer);
        }
        if !r.0.is_empty() {
            return Err(ImageError::Malformed("octets after the last issuer"));
        }
        for (slot, new) in self.issuers.iter().zip(issuers) {
            *slot.write().unwrap_or_else(|p| p.into_inner()) = new;
        }
        self.seq.store(seq, Ordering::SeqCst);
        Ok(seq)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ImageError> {
        if self.0.len() < n {
            return Err(ImageError::Short);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ImageError> {
        self.take(N)?.try_into().map_err(|_| ImageError::Short)
    }

    fn u8(&mut self) -> Result<u8, ImageError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, ImageError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ImageError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A count of items of at least `min` octets each: no more than what is left allows.
    fn count(&mut self, min: usize) -> Result<usize, ImageError> {
        let n = usize::try_from(self.u64()?).map_err(|_| ImageError::Short)?;
        if n > self.0.len() / min {
            return Err(ImageError::Short);
        }
        Ok(n)
    }

    fn packed(&mut self) -> Result<Packed, ImageError> {
        let tag = self.u8()?;
        let reason = self.u8()?;
        if tag > 2 {
            return Err(ImageError::Malformed("a status tag"));
        }
        Ok(Packed {
            tag,
            reason,
            time: self.u32()?,
        })
    }

    fn bitmap(&mut self) -> Result<roaring::RoaringBitmap, ImageError> {
        let n = self.u32()? as usize;
        roaring::RoaringBitmap::deserialize_from(self.take(n)?)
            .map_err(|_| ImageError::Malformed("a bitmap"))
    }

    fn range(&mut self) -> Result<Range, ImageError> {
        let issued = self.bitmap()?;
        let listed = self.bitmap()?;
        let n = self.count(4 + 6)?;
        if n as u64 != listed.len() || !listed.is_subset(&issued) {
            return Err(ImageError::Malformed(
                "a range's table and bitmaps disagree",
            ));
        }
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            keys.push(self.u32()?);
        }
        let mut vals = Vec::with_capacity(n);
        for _ in 0..n {
            let p = self.packed()?;
            if p.tag == 0 {
                return Err(ImageError::Malformed("a good status in the non-good table"));
            }
            vals.push(p);
        }
        if keys.windows(2).any(|w| w[0] >= w[1]) || keys.iter().any(|k| !listed.contains(*k)) {
            return Err(ImageError::Malformed(
                "a range's table is not its listed positions",
            ));
        }
        let mut range = Range {
            issued,
            listed,
            ..Range::default()
        };
        range.set_table(keys, vals);
        Ok(range)
    }
}
