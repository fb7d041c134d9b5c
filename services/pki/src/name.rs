//! Distinguished names of the JPKI profile: CA names per purpose, holder
//! subjects, per-municipality CRL distribution point names, and Shikko's
//! operator names.
//!
//! Every RDN holds one attribute. countryName is a PrintableString; every other
//! attribute is a UTF8String, so Japanese prefecture and municipality names
//! encode as they are. Names are listed here, as in openssl's output, from the
//! first RDN of the DER sequence (`C=JP`) to the last.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc4519::{
    COMMON_NAME, COUNTRY_NAME, LOCALITY_NAME, ORGANIZATION_NAME, ORGANIZATIONAL_UNIT_NAME,
};
use der::asn1::{PrintableStringRef, Utf8StringRef};
use der::{Any, Decode, Encode};
use shikko_core::{CertKind, HolderId, Municipality};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use crate::error::{Error, Result};

/// The organizational unit naming the operating authority in every JPKI CA name.
pub const JLIS_OU: &str = "Japan Agency for Local Authority Information Systems";

/// The purpose OU of a CA: `JPKI for digital signature`, `JPKI for user
/// authentication`, and for the smartphone CAs (not given by public material,
/// our choice) `JPKI for smartphone digital signature` and `JPKI for smartphone
/// user authentication`.
pub fn ca_purpose_ou(kind: CertKind) -> &'static str {
    match kind {
        CertKind::CardSigning => "JPKI for digital signature",
        CertKind::CardAuth => "JPKI for user authentication",
        CertKind::PhoneSigning => "JPKI for smartphone digital signature",
        CertKind::PhoneAuth => "JPKI for smartphone user authentication",
    }
}

/// The issuer and subject name of the self-signed root of a kind:
/// `C=JP, O=JPKI, OU=<purpose>, OU=Japan Agency for Local Authority Information Systems`
/// (purpose from [`ca_purpose_ou`]).
pub fn ca_name(kind: CertKind) -> Name {
    build_name(&[
        (COUNTRY_NAME, "JP"),
        (ORGANIZATION_NAME, "JPKI"),
        (ORGANIZATIONAL_UNIT_NAME, ca_purpose_ou(kind)),
        (ORGANIZATIONAL_UNIT_NAME, JLIS_OU),
    ])
    .expect("constant CA names are valid")
}

/// The CRL distribution point name of a municipality's card signing certificates:
/// `C=JP, O=JPKI, OU=JPKI for digital signature, OU=CRL Distribution Points,
/// OU=<prefecture>, CN=<city> CRLDP` (in RFC 4514 order: `CN=<city> CRLDP,
/// OU=<prefecture>, OU=CRL Distribution Points, OU=JPKI for digital signature, O=JPKI, C=JP`).
///
/// The CRL builder puts this same name in the partition's IssuingDistributionPoint;
/// it depends only on the municipality's names, so it is reproducible byte for byte.
pub fn crl_dp_name(municipality: &Municipality) -> Result<Name> {
    crl_dp_name_for(CertKind::CardSigning, municipality)
}

/// The CRL distribution point name of a municipality for a signing kind: as
/// [`crl_dp_name`], with the purpose OU of the kind's CA (so smartphone signing
/// partitions read `OU=JPKI for smartphone digital signature`). Fails for
/// user-authentication kinds, whose CRLs are not partitioned.
pub fn crl_dp_name_for(kind: CertKind, municipality: &Municipality) -> Result<Name> {
    if !kind.is_signing() {
        return Err(Error::InvalidInput(
            "only signing certificates have per-municipality CRL distribution points",
        ));
    }
    municipality.validate()?;
    let cn = format!("{} CRLDP", municipality.city);
    build_name(&[
        (COUNTRY_NAME, "JP"),
        (ORGANIZATION_NAME, "JPKI"),
        (ORGANIZATIONAL_UNIT_NAME, ca_purpose_ou(kind)),
        (ORGANIZATIONAL_UNIT_NAME, "CRL Distribution Points"),
        (ORGANIZATIONAL_UNIT_NAME, &municipality.prefecture),
        (COMMON_NAME, &cn),
    ])
}

/// A holder's subject: `C=JP, L=<prefecture>, L=<municipality>, CN=<holder id>`
/// for signing kinds (the municipality is required), `C=JP, CN=<holder id>` for
/// user-authentication kinds (no personal data; the municipality is ignored).
pub fn holder_subject(
    kind: CertKind,
    holder: &HolderId,
    municipality: Option<&Municipality>,
) -> Result<Name> {
    if kind.is_signing() {
        let m = municipality.ok_or(Error::InvalidInput(
            "a signing certificate needs the holder's municipality",
        ))?;
        m.validate()?;
        build_name(&[
            (COUNTRY_NAME, "JP"),
            (LOCALITY_NAME, &m.prefecture),
            (LOCALITY_NAME, &m.city),
            (COMMON_NAME, holder.as_str()),
        ])
    } else {
        build_name(&[(COUNTRY_NAME, "JP"), (COMMON_NAME, holder.as_str())])
    }
}

/// `C=JP, O=Shikko, OU=<unit>`: the base of every name Shikko's own CAs
/// (operator, internal) use for themselves and their subjects.
pub fn shikko_unit_name(unit: &str) -> Result<Name> {
    build_name(&[
        (COUNTRY_NAME, "JP"),
        (ORGANIZATION_NAME, "Shikko"),
        (ORGANIZATIONAL_UNIT_NAME, unit),
    ])
}

/// The name of Shikko's operator CA (issuer of operator client and server
/// certificates for the 4-information service's mutual TLS):
/// `C=JP, O=Shikko, OU=Operator CA`.
pub fn operator_ca_name() -> Name {
    shikko_unit_name("Operator CA").expect("constant operator CA name is valid")
}

/// An operator's client certificate subject: `C=JP, O=Shikko, OU=Operators, CN=<operator id>`.
pub fn operator_subject(operator_id: &str) -> Result<Name> {
    check_text(
        operator_id,
        "operator id must be 1 to 64 characters without control characters",
    )?;
    build_name(&[
        (COUNTRY_NAME, "JP"),
        (ORGANIZATION_NAME, "Shikko"),
        (ORGANIZATIONAL_UNIT_NAME, "Operators"),
        (COMMON_NAME, operator_id),
    ])
}

/// `base` with one more RDN, `CN=<common_name>`, at the end.
pub fn with_common_name(base: &Name, common_name: &str) -> Result<Name> {
    check_text(
        common_name,
        "common name must be 1 to 64 characters without control characters",
    )?;
    let mut rdns = RdnSequence::from(base.clone());
    rdns.push(rdn(COMMON_NAME, common_name)?);
    name_from_rdns(rdns)
}

/// Builds a name of single-attribute RDNs, in DER order.
pub fn build_name(attributes: &[(ObjectIdentifier, &str)]) -> Result<Name> {
    let rdns = attributes
        .iter()
        .map(|(oid, value)| rdn(*oid, value))
        .collect::<Result<Vec<_>>>()?;
    name_from_rdns(RdnSequence::from(rdns))
}

fn rdn(oid: ObjectIdentifier, value: &str) -> Result<RelativeDistinguishedName> {
    let value = if oid == COUNTRY_NAME {
        Any::encode_from(&PrintableStringRef::new(value)?)?
    } else {
        Any::encode_from(&Utf8StringRef::new(value)?)?
    };
    Ok(RelativeDistinguishedName::try_from(vec![
        AttributeTypeAndValue { oid, value },
    ])?)
}

// x509-cert 0.3 keeps `Name`'s field private (a public constructor needs its
// `hazmat` feature); an RDNSequence encodes exactly as a Name, so re-read it.
fn name_from_rdns(rdns: RdnSequence) -> Result<Name> {
    Ok(Name::from_der(&rdns.to_der()?)?)
}

fn check_text(s: &str, error: &'static str) -> Result<()> {
    let n = s.chars().count();
    if n == 0 || n > 64 || s.chars().any(char::is_control) {
        return Err(Error::InvalidInput(error));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shikko_core::PartitionId;

    #[test]
    fn ca_names_read_as_the_profile() {
        assert_eq!(
            ca_name(CertKind::CardSigning).to_string(),
            "OU=Japan Agency for Local Authority Information Systems,\
             OU=JPKI for digital signature,O=JPKI,C=JP"
        );
        let all: Vec<_> = CertKind::ALL.iter().map(|k| ca_name(*k)).collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn crl_dp_name_is_reproducible_and_japanese() {
        let m = Municipality {
            code: PartitionId(131_016),
            prefecture: "東京都".into(),
            city: "千代田区".into(),
        };
        let a = crl_dp_name(&m).unwrap();
        let b = crl_dp_name(&m).unwrap();
        assert_eq!(a.to_der().unwrap(), b.to_der().unwrap());
        assert_eq!(
            a.to_string(),
            "CN=千代田区 CRLDP,OU=東京都,OU=CRL Distribution Points,\
             OU=JPKI for digital signature,O=JPKI,C=JP"
        );
        assert!(crl_dp_name_for(CertKind::CardAuth, &m).is_err());
        assert_ne!(crl_dp_name_for(CertKind::PhoneSigning, &m).unwrap(), a);
    }

    #[test]
    fn auth_subject_carries_no_locality() {
        let id = HolderId::new("H-1").unwrap();
        let s = holder_subject(CertKind::CardAuth, &id, None).unwrap();
        assert_eq!(s.to_string(), "CN=H-1,C=JP");
        assert!(holder_subject(CertKind::CardSigning, &id, None).is_err());
    }
}
