//! Tag-length-value headers written by hand, for the hot paths that build
//! DER around pre-encoded parts (CRL entries, OCSP answers) instead of going
//! through a generic encoder for every object.

/// INTEGER.
pub const TAG_INTEGER: u8 = 0x02;
/// BIT STRING.
pub const TAG_BIT_STRING: u8 = 0x03;
/// OCTET STRING.
pub const TAG_OCTET_STRING: u8 = 0x04;
/// OBJECT IDENTIFIER.
pub const TAG_OID: u8 = 0x06;
/// ENUMERATED.
pub const TAG_ENUMERATED: u8 = 0x0a;
/// UTCTime.
pub const TAG_UTC_TIME: u8 = 0x17;
/// GeneralizedTime.
pub const TAG_GENERALIZED_TIME: u8 = 0x18;
/// SEQUENCE (constructed).
pub const TAG_SEQUENCE: u8 = 0x30;
/// `[0]` constructed (context-specific).
pub const TAG_CONTEXT_0: u8 = 0xa0;

/// Octets a definite length takes (DER: short form below 128, else minimal long form).
pub fn len_octets(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        // One octet of count, then the length's significant octets.
        1 + (64 - (len as u64).leading_zeros() as usize).div_ceil(8)
    }
}

/// Octets of a whole TLV with `content` octets of content.
pub fn tlv_len(content: usize) -> usize {
    1 + len_octets(content) + content
}

/// Appends a tag and a DER length.
pub fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A tag and length as a fresh buffer.
pub fn header(tag: u8, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + len_octets(len));
    push_header(&mut v, tag, len);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Encode, asn1::OctetString};

    #[test]
    fn headers_match_the_der_crate_at_every_length_boundary() {
        for len in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536, 1 << 20] {
            let content = vec![0x5a; len];
            let ours = [header(TAG_OCTET_STRING, len), content.clone()].concat();
            let theirs = OctetString::new(content).unwrap().to_der().unwrap();
            assert_eq!(ours, theirs, "length {len}");
            assert_eq!(tlv_len(len), theirs.len(), "length {len}");
        }
    }
}
