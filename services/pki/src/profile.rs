//! The JPKI profile's object identifiers and the certificate extensions Shikko
//! puts in its certificates, each built from an x509-cert extension type.

use std::net::IpAddr;

use const_oid::db::rfc5280::ID_AD_OCSP;
use const_oid::db::rfc6960::ID_PKIX_OCSP_NOCHECK;
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{Ia5String, Null, OctetString, Utf8StringRef};
use der::flagset::FlagSet;
use der::{Any, Encode};
use shikko_core::{CertKind, FourInfo};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;

use crate::error::{Error, Result};
use crate::signer::PublicKeyHashes;

/// Certificate policy of signing certificates (署名用電子証明書).
pub const POLICY_SIGNING: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.1.20");
/// Certificate policy of user-authentication certificates (利用者証明用電子証明書).
pub const POLICY_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.3.30");
/// The arc of the 4-information otherName types in subjectAltName.
pub const FOUR_INFO_ARC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5");
/// otherName type of the holder's name (氏名).
pub const FOUR_INFO_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.1");
/// otherName type of the sex code, `1`, `2` or `3` (性別).
pub const FOUR_INFO_SEX: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.3");
/// otherName type of the date of birth, `EYYYYMMDD` (生年月日).
pub const FOUR_INFO_DATE_OF_BIRTH: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.4");
/// otherName type of the address (住所).
pub const FOUR_INFO_ADDRESS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.5");
/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1), for delegated OCSP responders.
pub const OCSP_NOCHECK: ObjectIdentifier = ID_PKIX_OCSP_NOCHECK;

/// The certificate policy of a holder certificate of a kind. The smartphone
/// certificates carry their card counterpart's policy (our choice: public
/// material gives no separate smartphone policy OIDs).
pub fn policy_for(kind: CertKind) -> ObjectIdentifier {
    if kind.is_signing() {
        POLICY_SIGNING
    } else {
        POLICY_AUTH
    }
}

/// An extension from an x509-cert extension value.
fn extension<T: AssociatedOid + Encode>(critical: bool, value: &T) -> Result<Extension> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// basicConstraints, critical: `CA:TRUE` for CAs; `CA:FALSE` (an empty SEQUENCE) otherwise.
pub(crate) fn basic_constraints(ca: bool) -> Result<Extension> {
    extension(
        true,
        &BasicConstraints {
            ca,
            path_len_constraint: None,
        },
    )
}

/// keyUsage, critical.
pub(crate) fn key_usage(usages: FlagSet<KeyUsages>) -> Result<Extension> {
    extension(true, &KeyUsage(usages))
}

/// extendedKeyUsage, not critical.
pub(crate) fn extended_key_usage(purposes: &[ObjectIdentifier]) -> Result<Extension> {
    extension(false, &ExtendedKeyUsage(purposes.to_vec()))
}

/// certificatePolicies with one policy and no qualifiers, not critical.
pub(crate) fn certificate_policy(policy: ObjectIdentifier) -> Result<Extension> {
    extension(
        false,
        &CertificatePolicies(vec![PolicyInformation {
            policy_identifier: policy,
            policy_qualifiers: None,
        }]),
    )
}

/// subjectKeyIdentifier: SHA-1 of the subject's public key bits.
pub(crate) fn subject_key_identifier(subject: &PublicKeyHashes) -> Result<Extension> {
    extension(
        false,
        &SubjectKeyIdentifier(OctetString::new(subject.key_identifier().as_slice())?),
    )
}

/// cRLNumber (not critical).
pub(crate) fn crl_number(number: u64) -> Result<Extension> {
    extension(
        false,
        &x509_cert::ext::pkix::CrlNumber(der::asn1::Uint::new(&number.to_be_bytes())?),
    )
}

/// authorityKeyIdentifier with keyIdentifier only: several CA generations share
/// a name, so the key, not the name, picks the issuer.
pub(crate) fn authority_key_identifier(issuer: &PublicKeyHashes) -> Result<Extension> {
    extension(
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(issuer.key_identifier().as_slice())?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )
}

fn other_name(type_id: ObjectIdentifier, value: &str) -> Result<GeneralName> {
    // otherName ::= SEQUENCE { type-id OID, value [0] EXPLICIT ANY }; the JPKI
    // values are UTF8Strings inside the explicit [0].
    Ok(GeneralName::OtherName(OtherName {
        type_id,
        value: Any::encode_from(&Utf8StringRef::new(value)?)?,
    }))
}

/// subjectAltName carrying the 4 information as otherNames (UTF8String values):
/// name, sex code, date of birth `EYYYYMMDD`, address. Not critical: the subject is not empty.
pub(crate) fn four_info_alt_name(info: &FourInfo) -> Result<Extension> {
    info.validate()?;
    let sex = info.sex.code().to_string();
    let dob = info.date_of_birth.encode();
    let names = vec![
        other_name(FOUR_INFO_NAME, &info.name)?,
        other_name(FOUR_INFO_SEX, &sex)?,
        other_name(FOUR_INFO_DATE_OF_BIRTH, &dob)?,
        other_name(FOUR_INFO_ADDRESS, &info.address)?,
    ];
    extension(false, &SubjectAltName(names))
}

/// subjectAltName with DNS names and IP addresses, for TLS certificates.
pub(crate) fn network_alt_name(dns_names: &[&str], ips: &[IpAddr]) -> Result<Extension> {
    alt_name_with(Vec::new(), dns_names, ips)
}

/// subjectAltName with a uniformResourceIdentifier first (an internal
/// identity, `spiffe://shikko/role/NAME`), then DNS names and IP addresses.
pub(crate) fn identity_alt_name(
    uri: &str,
    dns_names: &[&str],
    ips: &[IpAddr],
) -> Result<Extension> {
    if uri.is_empty() || !uri.is_ascii() {
        return Err(Error::InvalidInput(
            "an identity URI must be non-empty ASCII",
        ));
    }
    alt_name_with(
        vec![GeneralName::UniformResourceIdentifier(Ia5String::new(uri)?)],
        dns_names,
        ips,
    )
}

fn alt_name_with(
    mut names: Vec<GeneralName>,
    dns_names: &[&str],
    ips: &[IpAddr],
) -> Result<Extension> {
    for dns in dns_names {
        if dns.is_empty() || !dns.is_ascii() {
            return Err(Error::InvalidInput("DNS names must be non-empty ASCII"));
        }
        names.push(GeneralName::DnsName(Ia5String::new(dns)?));
    }
    names.extend(ips.iter().map(|ip| GeneralName::from(*ip)));
    if names.is_empty() {
        return Err(Error::InvalidInput(
            "a TLS certificate needs at least one DNS name or IP address",
        ));
    }
    extension(false, &SubjectAltName(names))
}

/// cRLDistributionPoints with one distribution point whose fullName is a directoryName.
pub(crate) fn crl_distribution_point(dp_name: Name) -> Result<Extension> {
    extension(
        false,
        &CrlDistributionPoints(vec![DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![
                GeneralName::DirectoryName(dp_name),
            ])),
            reasons: None,
            crl_issuer: None,
        }]),
    )
}

/// authorityInfoAccess with one id-ad-ocsp URI.
pub(crate) fn ocsp_access(url: &str) -> Result<Extension> {
    if !(url.starts_with("http://") || url.starts_with("https://")) || !url.is_ascii() {
        return Err(Error::InvalidInput(
            "the OCSP URL must be an ASCII http:// or https:// URL",
        ));
    }
    extension(
        false,
        &AuthorityInfoAccessSyntax(vec![AccessDescription {
            access_method: ID_AD_OCSP,
            access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
        }]),
    )
}

/// id-pkix-ocsp-nocheck with a NULL value, not critical.
pub(crate) fn ocsp_nocheck() -> Result<Extension> {
    Ok(Extension {
        extn_id: OCSP_NOCHECK,
        critical: false,
        extn_value: OctetString::new(Null.to_der()?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_info_types_sit_under_the_arc() {
        for oid in [
            FOUR_INFO_NAME,
            FOUR_INFO_SEX,
            FOUR_INFO_DATE_OF_BIRTH,
            FOUR_INFO_ADDRESS,
        ] {
            assert_eq!(oid.parent(), Some(FOUR_INFO_ARC));
        }
    }

    #[test]
    fn nocheck_value_is_der_null() {
        let e = ocsp_nocheck().unwrap();
        assert_eq!(e.extn_value.as_bytes(), &[0x05, 0x00]);
    }

    #[test]
    fn tls_names_are_required() {
        assert!(network_alt_name(&[], &[]).is_err());
        assert!(network_alt_name(&["localhost"], &[]).is_ok());
        assert!(ocsp_access("ftp://x").is_err());
    }
}
