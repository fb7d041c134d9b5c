//! The CRL extensions Shikko writes (RFC 5280 §5.2), as DER `Extensions`.
//!
//! - authorityKeyIdentifier (keyIdentifier only): several CA generations share
//!   one name, so the key picks the issuer.
//! - cRLNumber, non-critical; one counter per issuer (see `state`).
//! - full CRLs: freshestCRL (non-critical) pointing at the delta, when a
//!   public URL is configured.
//! - partition CRLs: issuingDistributionPoint, **critical**, with OID
//!   2.5.29.28 written explicitly (x509-cert 0.3 associates the wrong OID with
//!   its `IssuingDistributionPoint`, RustCrypto/formats#2389); its fullName is
//!   the same directoryName as the cRLDistributionPoints of the partition's
//!   certificates, and onlyContainsUserCerts is set.
//! - delta CRLs: deltaCRLIndicator, **critical**, naming the base CRL number.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_CRL_NUMBER, ID_CE_DELTA_CRL_INDICATOR, ID_CE_FRESHEST_CRL,
};
use der::Encode;
use der::asn1::{Ia5String, OctetString, Uint};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use x509_cert::ext::pkix::crl::dp::{DistributionPoint, IssuingDistributionPoint};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::name::Name;

use crate::error::Result;

/// id-ce-issuingDistributionPoint (RFC 5280 §5.2.5).
pub const ID_CE_ISSUING_DISTRIBUTION_POINT: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.5.29.28");

fn ext(oid: ObjectIdentifier, critical: bool, value: &impl Encode) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

fn common(key_id: &[u8; 20], number: u64) -> Result<Vec<Extension>> {
    Ok(vec![
        ext(
            ID_CE_AUTHORITY_KEY_IDENTIFIER,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(key_id.as_slice())?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
        ext(ID_CE_CRL_NUMBER, false, &Uint::new(&number.to_be_bytes())?)?,
    ])
}

fn encode(exts: Vec<Extension>) -> Result<Vec<u8>> {
    Ok(exts.to_der()?)
}

/// A full CRL's extensions.
pub(crate) fn full(key_id: &[u8; 20], number: u64, freshest_url: Option<&str>) -> Result<Vec<u8>> {
    let mut exts = common(key_id, number)?;
    if let Some(url) = freshest_url {
        let dp = vec![DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![
                GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
            ])),
            reasons: None,
            crl_issuer: None,
        }];
        exts.push(ext(ID_CE_FRESHEST_CRL, false, &dp)?);
    }
    encode(exts)
}

/// A partition CRL's extensions.
pub(crate) fn partition(key_id: &[u8; 20], number: u64, dp_name: Name) -> Result<Vec<u8>> {
    let mut exts = common(key_id, number)?;
    let idp = IssuingDistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![
            GeneralName::DirectoryName(dp_name),
        ])),
        only_contains_user_certs: true,
        only_contains_ca_certs: false,
        only_some_reasons: None,
        indirect_crl: false,
        only_contains_attribute_certs: false,
    };
    exts.push(ext(ID_CE_ISSUING_DISTRIBUTION_POINT, true, &idp)?);
    encode(exts)
}

/// A delta CRL's extensions.
pub(crate) fn delta(key_id: &[u8; 20], number: u64, base: u64) -> Result<Vec<u8>> {
    let mut exts = common(key_id, number)?;
    exts.push(ext(
        ID_CE_DELTA_CRL_INDICATOR,
        true,
        &Uint::new(&base.to_be_bytes())?,
    )?);
    encode(exts)
}
