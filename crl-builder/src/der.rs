//! The few DER encodings a CRL's hot path needs, written by hand: a CRL of
//! twenty million entries is twenty million tiny SEQUENCEs, and building each
//! through a generic encoder would cost more than the rest of the build.
//! Everything else (names, extensions) goes through `der`/`x509-cert`.

use shikko_core::{RevocationReason, Serial, UnixTime};

use crate::error::{Error, Result};

pub(crate) use shikko_pki::tlv::{
    TAG_BIT_STRING, TAG_CONTEXT_0, TAG_ENUMERATED, TAG_GENERALIZED_TIME, TAG_INTEGER,
    TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, TAG_UTC_TIME, header, len_octets, push_header,
    tlv_len,
};

/// id-ce-cRLReasons (2.5.29.21), content octets.
const OID_REASON: [u8; 3] = [0x55, 0x1d, 0x15];
/// id-ce-invalidityDate (2.5.29.24), content octets.
const OID_INVALIDITY_DATE: [u8; 3] = [0x55, 0x1d, 0x18];

fn serial_content(serial: &Serial) -> (bool, &[u8]) {
    let mag = serial.magnitude();
    if mag.is_empty() {
        (true, &[])
    } else {
        (mag[0] & 0x80 != 0, mag)
    }
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 (and before 1950).
fn time_len(t: UnixTime) -> usize {
    let (y, ..) = t.to_civil();
    if (1950..2050).contains(&y) { 15 } else { 17 }
}

fn push_digits(out: &mut Vec<u8>, v: u32, width: usize) {
    let mut buf = [b'0'; 4];
    let mut v = v;
    for i in (0..width).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

fn push_civil(out: &mut Vec<u8>, t: UnixTime, four_digit_year: bool) -> Result<()> {
    let (y, mo, d, h, mi, s) = t.to_civil();
    if !(0..=9999).contains(&y) {
        return Err(Error::Input("a time outside the years 0000 to 9999"));
    }
    if four_digit_year {
        push_digits(out, y as u32, 4);
    } else {
        push_digits(out, (y % 100) as u32, 2);
    }
    for v in [mo, d, h, mi, s] {
        push_digits(out, u32::from(v), 2);
    }
    out.push(b'Z');
    Ok(())
}

/// The civil date of the last day encoded: entries of one CRL share few
/// days, and the calendar arithmetic costs more than the rest of an entry.
#[derive(Debug, Default)]
pub(crate) struct DayCache {
    day: Option<i64>,
    /// Tag, length and `YYMMDD` / `YYYYMMDD` of that day.
    prefix: Vec<u8>,
}

/// [`push_time`] through a [`DayCache`].
pub(crate) fn push_time_cached(out: &mut Vec<u8>, t: UnixTime, cache: &mut DayCache) -> Result<()> {
    let day = t.0.div_euclid(86_400);
    if cache.day != Some(day) {
        let mut full = Vec::with_capacity(17);
        push_time(&mut full, UnixTime(day * 86_400))?;
        full.truncate(full.len() - 7); // drop "HHMMSSZ"
        cache.prefix = full;
        cache.day = Some(day);
    }
    out.extend_from_slice(&cache.prefix);
    let secs = t.0.rem_euclid(86_400) as u32;
    push_digits(out, secs / 3600, 2);
    push_digits(out, secs / 60 % 60, 2);
    push_digits(out, secs % 60, 2);
    out.push(b'Z');
    Ok(())
}

/// Appends a Time (RFC 5280 §4.1.2.5 / §5.1.2.4: UTCTime through 2049).
pub(crate) fn push_time(out: &mut Vec<u8>, t: UnixTime) -> Result<()> {
    let (y, ..) = t.to_civil();
    if (1950..2050).contains(&y) {
        out.extend_from_slice(&[TAG_UTC_TIME, 13]);
        push_civil(out, t, false)
    } else {
        out.extend_from_slice(&[TAG_GENERALIZED_TIME, 15]);
        push_civil(out, t, true)
    }
}

/// Appends a GeneralizedTime (invalidityDate is always one, RFC 5280 §5.3.2).
fn push_generalized_time(out: &mut Vec<u8>, t: UnixTime) -> Result<()> {
    out.extend_from_slice(&[TAG_GENERALIZED_TIME, 15]);
    push_civil(out, t, true)
}

/// What one CRL entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryFields<'a> {
    pub(crate) serial: &'a Serial,
    pub(crate) date: UnixTime,
    /// `None` (or unspecified, which RFC 5280 §5.3.1 says to omit) writes no reasonCode.
    pub(crate) reason: Option<RevocationReason>,
    pub(crate) invalidity_date: Option<UnixTime>,
}

/// Appends one `revokedCertificates` element:
///
/// ```text
/// SEQUENCE  {
///      userCertificate         CertificateSerialNumber,
///      revocationDate          Time,
///      crlEntryExtensions      Extensions OPTIONAL }
/// ```
/// with the reasonCode (2.5.29.21) and invalidityDate (2.5.29.24) extensions, non-critical.
pub(crate) fn push_entry(
    out: &mut Vec<u8>,
    e: &EntryFields<'_>,
    days: &mut DayCache,
) -> Result<()> {
    let (pad, mag) = serial_content(e.serial);
    let int_content = if mag.is_empty() {
        1
    } else {
        mag.len() + usize::from(pad)
    };
    let reason = e
        .reason
        .filter(|r| *r != RevocationReason::Unspecified)
        .map(RevocationReason::code);
    // Extension SEQUENCE { OID, OCTET STRING { ENUMERATED } }: 2+5 + 2+3.
    let reason_ext = reason.map_or(0, |_| tlv_len(5 + 5));
    // Extension SEQUENCE { OID, OCTET STRING { GeneralizedTime } }: 5 + 2+17.
    let inval_ext = e.invalidity_date.map_or(0, |_| tlv_len(5 + 2 + 17));
    let exts = reason_ext + inval_ext;
    let content =
        tlv_len(int_content) + time_len(e.date) + if exts > 0 { tlv_len(exts) } else { 0 };
    push_header(out, TAG_SEQUENCE, content);
    push_header(out, TAG_INTEGER, int_content);
    if mag.is_empty() {
        out.push(0);
    } else {
        if pad {
            out.push(0);
        }
        out.extend_from_slice(mag);
    }
    push_time_cached(out, e.date, days)?;
    if exts > 0 {
        push_header(out, TAG_SEQUENCE, exts);
        if let Some(code) = reason {
            out.extend_from_slice(&[TAG_SEQUENCE, 10, TAG_OID, 3]);
            out.extend_from_slice(&OID_REASON);
            out.extend_from_slice(&[TAG_OCTET_STRING, 3, TAG_ENUMERATED, 1, code]);
        }
        if let Some(t) = e.invalidity_date {
            out.extend_from_slice(&[TAG_SEQUENCE, 24, TAG_OID, 3]);
            out.extend_from_slice(&OID_INVALIDITY_DATE);
            out.extend_from_slice(&[TAG_OCTET_STRING, 17]);
            push_generalized_time(out, t)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode;
    use x509_cert::crl::RevokedCert;

    fn serial(v: u128) -> Serial {
        Serial::from_u128(v).unwrap()
    }

    #[test]
    fn cached_times_match_uncached_ones() {
        let mut cache = DayCache::default();
        for t in [
            0i64,
            59,
            86_399,
            86_400,
            1_700_000_000,
            1_700_003_601,
            2_524_607_999,
            2_524_608_000,
            2_524_694_399,
        ] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            push_time(&mut a, UnixTime(t)).unwrap();
            push_time_cached(&mut b, UnixTime(t), &mut cache).unwrap();
            assert_eq!(a, b, "{t}");
        }
    }

    #[test]
    fn lengths_are_minimal() {
        for (len, want) in [
            (0usize, vec![0x30, 0x00]),
            (127, vec![0x30, 0x7f]),
            (128, vec![0x30, 0x81, 0x80]),
            (255, vec![0x30, 0x81, 0xff]),
            (256, vec![0x30, 0x82, 0x01, 0x00]),
            (65_536, vec![0x30, 0x83, 0x01, 0x00, 0x00]),
            (16_777_216, vec![0x30, 0x84, 0x01, 0x00, 0x00, 0x00]),
            (
                0x1_0000_0000,
                vec![0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00],
            ),
        ] {
            let h = header(0x30, len);
            assert_eq!(h, want, "length {len}");
            assert_eq!(h.len(), 1 + len_octets(len));
        }
    }

    #[test]
    fn entries_decode_with_x509_cert_and_match_the_fields() {
        let cases = [
            (serial(1), UnixTime(1_700_000_000), None, None),
            (
                serial(0x80),
                UnixTime(1_700_000_000),
                Some(RevocationReason::KeyCompromise),
                Some(UnixTime(1_699_000_000)),
            ),
            (
                serial(0x4A50_0000_0000_0000_0001),
                UnixTime(2_600_000_000), // 2052: GeneralizedTime
                Some(RevocationReason::CertificateHold),
                None,
            ),
            (
                Serial::from_be_bytes(&[0x7f; 20]).unwrap(),
                UnixTime(0),
                Some(RevocationReason::Unspecified),
                Some(UnixTime(86_400)),
            ),
        ];
        for (s, date, reason, inval) in cases {
            let mut out = Vec::new();
            push_entry(
                &mut out,
                &EntryFields {
                    serial: &s,
                    date,
                    reason,
                    invalidity_date: inval,
                },
                &mut DayCache::default(),
            )
            .unwrap();
            let rc = RevokedCert::<x509_cert::certificate::Rfc5280>::from_der(&out).unwrap();
            assert_eq!(rc.serial_number.as_bytes(), s.to_der_integer().as_slice());
            assert_eq!(
                rc.revocation_date.to_unix_duration().as_secs() as i64,
                date.0
            );
            let exts = rc.crl_entry_extensions.unwrap_or_default();
            let want = usize::from(reason.is_some_and(|r| r != RevocationReason::Unspecified))
                + usize::from(inval.is_some());
            assert_eq!(exts.len(), want, "{s:?} {reason:?}");
            for e in exts {
                assert!(!e.critical);
            }
        }
    }
}
