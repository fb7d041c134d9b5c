//! Checking CRL entries in memory, a chunk at a time: each
//! `revokedCertificates` entry is a SEQUENCE of a serial (a positive
//! INTEGER of at most 20 octets of magnitude), a Time, and optional
//! extensions; a partial entry at the end of a chunk waits for the next.

use crate::der::{TAG_INTEGER, TAG_SEQUENCE};

use super::parse_time;

/// Parses the complete entries at the start of `b`: (octets used, entries).
/// A trailing partial entry is left for the next chunk when `more` follows.
pub(super) fn parse_entries(b: &[u8], more: bool) -> Option<(usize, u64)> {
    let mut at = 0;
    let mut n = 0;
    loop {
        match next_entry(&b[at..]) {
            Entry::Complete(used) => {
                at += used;
                n += 1;
            }
            Entry::Partial if more => return Some((at, n)),
            Entry::Partial | Entry::Bad => return None,
            Entry::End => return Some((at, n)),
        }
    }
}

enum Entry {
    /// A well-formed entry of this many octets.
    Complete(usize),
    /// The buffer ends inside an entry.
    Partial,
    /// Not a well-formed entry.
    Bad,
    /// The buffer is empty.
    End,
}

fn next_entry(b: &[u8]) -> Entry {
    if b.is_empty() {
        return Entry::End;
    }
    let Some((tag, content, _)) = tlv(b) else {
        // An entry is at most a few hundred octets: a short buffer may just
        // end inside one; a long one that does not parse is malformed.
        return if b.len() < 1024 {
            Entry::Partial
        } else {
            Entry::Bad
        };
    };
    if tag != TAG_SEQUENCE || content.len() > 1024 {
        return Entry::Bad;
    }
    let used = header_octets(b) + content.len();
    match check_entry(content) {
        Some(()) => Entry::Complete(used),
        None => Entry::Bad,
    }
}

/// Octets of the tag and length at the start of `b` (which `tlv` accepted).
fn header_octets(b: &[u8]) -> usize {
    match b.get(1) {
        Some(&l) if l >= 0x80 => 2 + usize::from(l & 0x7f),
        _ => 2,
    }
}

/// One TLV at the start of `b`: tag, content, rest. Lengths up to 3 octets,
/// minimal (DER).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 || rest.len() < n || rest[0] == 0 {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, x| a << 8 | usize::from(*x));
        if len < 0x80 {
            return None;
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

/// `revokedCertificates` element content: a positive minimal INTEGER of 1 to
/// 21 octets, a valid Time, and optionally Extensions (each a SEQUENCE of an
/// OID, an optional BOOLEAN and an OCTET STRING).
pub(super) fn check_entry(b: &[u8]) -> Option<()> {
    let (tag, int, rest) = tlv(b)?;
    if tag != TAG_INTEGER || int.is_empty() || int.len() > 21 {
        return None;
    }
    if int[0] & 0x80 != 0 || (int.len() > 1 && int[0] == 0 && int[1] & 0x80 == 0) {
        return None;
    }
    let (ttag, t, rest) = tlv(rest)?;
    parse_time(ttag, t)?;
    if rest.is_empty() {
        return Some(());
    }
    let (tag, mut exts, rest) = tlv(rest)?;
    if tag != TAG_SEQUENCE || exts.is_empty() || !rest.is_empty() {
        return None;
    }
    while !exts.is_empty() {
        let (tag, ext, next) = tlv(exts)?;
        if tag != TAG_SEQUENCE {
            return None;
        }
        let (tag, oid, mut inner) = tlv(ext)?;
        if tag != 0x06 || oid.is_empty() {
            return None;
        }
        if inner.first() == Some(&0x01) {
            let (_, critical, after) = tlv(inner)?;
            // DER: BOOLEAN TRUE is 0xff, and a FALSE default is omitted.
            if critical != [0xff] {
                return None;
            }
            inner = after;
        }
        let (tag, _value, after) = tlv(inner)?;
        if tag != 0x04 || !after.is_empty() {
            return None;
        }
        exts = next;
    }
    Some(())
}
