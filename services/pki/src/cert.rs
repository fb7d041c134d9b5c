//! The X.509 v3 certificate structure as Shikko encodes it, and its signing.
//!
//! x509-cert 0.3 keeps the fields of its `TbsCertificate` crate-private: the
//! only way to build one is its `builder` feature, which wants RustCrypto
//! `signature` traits rather than our [`Signer`]. So the two outer SEQUENCEs are
//! declared here with der derives, field for field as RFC 5280 and x509-cert
//! declare them, over x509-cert's own field types (Name, Validity, Extension,
//! SerialNumber); the result decodes as an `x509_cert::Certificate` (tested).

use der::asn1::{AnyRef, BitString};
use der::{Decode, Encode, Sequence};
use shikko_core::{Serial, UnixTime};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::Version;
use x509_cert::ext::Extensions;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::error::{Error, Result};
use crate::signer::Signer;

/// ```text
/// TBSCertificate  ::=  SEQUENCE  {
///      version         [0]  EXPLICIT Version DEFAULT v1,
///      serialNumber         CertificateSerialNumber,
///      signature            AlgorithmIdentifier,
///      issuer               Name,
///      validity             Validity,
///      subject              Name,
///      subjectPublicKeyInfo SubjectPublicKeyInfo,
///      issuerUniqueID  [1]  IMPLICIT UniqueIdentifier OPTIONAL,
///      subjectUniqueID [2]  IMPLICIT UniqueIdentifier OPTIONAL,
///      extensions      [3]  EXPLICIT Extensions OPTIONAL }
/// ```
/// The unique identifiers are never generated (RFC 5280 §4.1.2.8), so they are left out.
#[derive(Clone, Debug, Sequence)]
pub(crate) struct TbsCertificateV3 {
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        default = "Default::default"
    )]
    pub(crate) version: Version,
    pub(crate) serial_number: SerialNumber,
    pub(crate) signature: AlgorithmIdentifierOwned,
    pub(crate) issuer: Name,
    pub(crate) validity: Validity,
    pub(crate) subject: Name,
    pub(crate) subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub(crate) extensions: Option<Extensions>,
}

/// ```text
/// Certificate  ::=  SEQUENCE  {
///      tbsCertificate       TBSCertificate,
///      signatureAlgorithm   AlgorithmIdentifier,
///      signatureValue       BIT STRING  }
/// ```
/// The TBS is carried as the exact bytes that were signed.
#[derive(Sequence)]
struct SignedCertificate<'a> {
    tbs_certificate: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature_value: BitString,
}

/// Encodes the TBS, signs it with `signer` and returns the certificate's DER.
pub(crate) fn sign_certificate(tbs: &TbsCertificateV3, signer: &dyn Signer) -> Result<Vec<u8>> {
    if tbs.signature != signer.signature_algorithm() {
        return Err(Error::InvalidInput(
            "the TBS signature algorithm differs from the signer's",
        ));
    }
    let tbs_der = tbs.to_der()?;
    let signature = signer.sign(&tbs_der)?;
    let cert = SignedCertificate {
        tbs_certificate: AnyRef::from_der(&tbs_der)?,
        signature_algorithm: tbs.signature.clone(),
        signature_value: BitString::from_bytes(&signature)?,
    };
    Ok(cert.to_der()?)
}

/// An X.509 Time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
pub fn x509_time(t: UnixTime) -> Result<Time> {
    let (y, mo, d, h, mi, s) = t.to_civil();
    let year = u16::try_from(y)
        .ok()
        .filter(|y| (1970..=9999).contains(y))
        .ok_or(Error::InvalidInput(
            "certificate times must be within 1970 to 9999",
        ))?;
    Ok(Time::from(der::DateTime::new(year, mo, d, h, mi, s)?))
}

/// The validity period, checked to be non-empty.
pub(crate) fn validity(not_before: UnixTime, not_after: UnixTime) -> Result<Validity> {
    if not_after < not_before {
        return Err(Error::InvalidInput("notAfter is before notBefore"));
    }
    Ok(Validity::new(x509_time(not_before)?, x509_time(not_after)?))
}

/// The certificate serial number field for a domain serial.
pub(crate) fn serial_number(serial: Serial) -> Result<SerialNumber> {
    // SerialNumber::new takes unsigned magnitude octets and adds the sign octet itself.
    Ok(SerialNumber::new(serial.magnitude())?)
}

/// Parses a subject's public key, accepting only the algorithms Shikko issues for.
pub(crate) fn subject_public_key(spki_der: &[u8]) -> Result<SubjectPublicKeyInfoOwned> {
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der)?;
    if spki.subject_public_key.has_unused_bits() || spki.subject_public_key.raw_bytes().is_empty() {
        return Err(Error::InvalidInput(
            "subject public key BIT STRING is empty or not octet-aligned",
        ));
    }
    Ok(spki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_switch_to_generalized_in_2050() {
        let t = x509_time(UnixTime::from_civil(2049, 12, 31)).unwrap();
        assert!(matches!(t, Time::UtcTime(_)));
        let t = x509_time(UnixTime::from_civil(2050, 1, 1)).unwrap();
        assert!(matches!(t, Time::GeneralTime(_)));
        assert!(x509_time(UnixTime(-1)).is_err());
        assert!(validity(UnixTime(10), UnixTime(5)).is_err());
    }

    #[test]
    fn serial_numbers_keep_their_value() {
        let s = Serial::from_u128(0x80_00).unwrap();
        let n = serial_number(s).unwrap();
        assert_eq!(n.as_bytes(), s.to_der_integer().as_slice());
    }
}
