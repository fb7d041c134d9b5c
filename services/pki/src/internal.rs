//! Internal identities: who a Shikko component is on the internal network.
//!
//! An internal CA (`C=JP, O=Shikko, OU=Internal CA`), separate from the
//! issuing CAs and the operator CA, issues one short-lived certificate per
//! role and per client. The identity is the certificate's
//! uniformResourceIdentifier subjectAltName, `spiffe://shikko/role/NAME`
//! (SPIFFE's form, so that a SPIRE deployment could issue the same
//! identities); the subject's CN repeats the name for people reading logs,
//! but only the URI is trusted. A server role's certificate is also a TLS
//! server certificate (DNS names and IP addresses, serverAuth); a client's
//! (`authority`, `admin`, `auditor`) has clientAuth only.

use std::net::IpAddr;

use const_oid::db::rfc5280::{ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};
use const_oid::db::rfc5912::ID_CE_SUBJECT_ALT_NAME;
use der::Decode;
use shikko_core::{Serial, UnixTime};
use x509_cert::Certificate;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

use crate::error::{Error, Result};
use crate::issue::{Draft, Issuer, issue, self_signed_ca};
use crate::name::{shikko_unit_name, with_common_name};
use crate::profile;
use crate::signer::Signer;

/// The URI prefix of every internal identity.
pub const IDENTITY_PREFIX: &str = "spiffe://shikko/role/";

/// An internal identity: a role process, or a client of the internal services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InternalRole {
    /// The registry (serves ingest, the feed, status, scans, checkpoints).
    Registry,
    /// The CRL role (follows the feed, scans; serves CRLs and its builder).
    Crl,
    /// The OCSP role (follows the status feed; serves OCSP).
    Ocsp,
    /// The 4-information role (follows events and writes; serves banks and admin).
    Info,
    /// The issuing authority's ingest client.
    Authority,
    /// An administrator (operators, rate limits, checkpoints, builds).
    Admin,
    /// An auditor (reads the audit log).
    Auditor,
    /// A standby registry or backup taker (follows everything the info role may).
    Standby,
    /// A witness of the audit log (reads its signed heads and consistency proofs, no records).
    Witness,
}

impl InternalRole {
    /// Every internal identity.
    pub const ALL: [InternalRole; 9] = [
        InternalRole::Registry,
        InternalRole::Crl,
        InternalRole::Ocsp,
        InternalRole::Info,
        InternalRole::Authority,
        InternalRole::Admin,
        InternalRole::Auditor,
        InternalRole::Standby,
        InternalRole::Witness,
    ];

    /// Its name (`registry`, `crl`, ..., `standby`).
    pub fn as_str(self) -> &'static str {
        match self {
            InternalRole::Registry => "registry",
            InternalRole::Crl => "crl",
            InternalRole::Ocsp => "ocsp",
            InternalRole::Info => "info",
            InternalRole::Authority => "authority",
            InternalRole::Admin => "admin",
            InternalRole::Auditor => "auditor",
            InternalRole::Standby => "standby",
            InternalRole::Witness => "witness",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<InternalRole> {
        InternalRole::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Its identity URI, `spiffe://shikko/role/NAME`.
    pub fn uri(self) -> String {
        format!("{IDENTITY_PREFIX}{}", self.as_str())
    }

    /// The role an identity URI names, if it is one of ours.
    pub fn from_uri(uri: &str) -> Option<InternalRole> {
        uri.strip_prefix(IDENTITY_PREFIX)
            .and_then(InternalRole::parse)
    }

    /// Whether it serves (a server certificate) or only calls (a client certificate).
    pub fn serves(self) -> bool {
        matches!(
            self,
            InternalRole::Registry
                | InternalRole::Crl
                | InternalRole::Ocsp
                | InternalRole::Info
                | InternalRole::Standby
        )
    }
}

impl std::fmt::Display for InternalRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The internal CA's name: `C=JP, O=Shikko, OU=Internal CA`.
pub fn internal_ca_name() -> Name {
    shikko_unit_name("Internal CA").expect("constant internal CA name is valid")
}

/// The internal CA's self-signed certificate ([`internal_ca_name`]).
pub fn internal_ca_certificate(
    signer: &dyn Signer,
    serial: Serial,
    not_before: UnixTime,
    not_after: UnixTime,
) -> Result<Vec<u8>> {
    self_signed_ca(
        &Issuer::new(signer, internal_ca_name())?,
        serial,
        not_before,
        not_after,
    )
}

/// What a role's certificate says, besides its issuer.
#[derive(Clone, Debug)]
pub struct RoleCertRequest<'a> {
    /// Whose certificate it is.
    pub role: InternalRole,
    /// The DNS names it serves under (serving roles only).
    pub dns_names: &'a [&'a str],
    /// The IP addresses it serves on (serving roles only).
    pub ip_addresses: &'a [IpAddr],
    /// Its public key, a DER SubjectPublicKeyInfo.
    pub subject_public_key: &'a [u8],
    /// The serial number.
    pub serial: Serial,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity: days, not years (renewed files are reloaded).
    pub not_after: UnixTime,
}

/// A role's certificate from the internal CA: subject
/// `C=JP, O=Shikko, OU=Internal, CN=<role>`, subjectAltName
/// `spiffe://shikko/role/<role>` (then the DNS names and IP addresses of a
/// serving role), keyUsage digitalSignature (critical), extendedKeyUsage
/// clientAuth, plus serverAuth for a serving role. A serving role needs at
/// least one DNS name or IP address; a client names none.
pub fn role_certificate(issuer: &Issuer<'_>, req: &RoleCertRequest<'_>) -> Result<Vec<u8>> {
    let role = req.role;
    let serves = role.serves();
    let hosts = !(req.dns_names.is_empty() && req.ip_addresses.is_empty());
    if serves && !hosts {
        return Err(Error::InvalidInput(
            "a serving role's certificate needs at least one DNS name or IP address",
        ));
    }
    if !serves && hosts {
        return Err(Error::InvalidInput(
            "a client identity's certificate names no host",
        ));
    }
    let purposes: &[_] = if serves {
        &[ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH]
    } else {
        &[ID_KP_CLIENT_AUTH]
    };
    let extensions = vec![
        profile::key_usage(KeyUsages::DigitalSignature.into())?,
        profile::extended_key_usage(purposes)?,
        profile::identity_alt_name(&role.uri(), req.dns_names, req.ip_addresses)?,
    ];
    let subject = with_common_name(&shikko_unit_name("Internal")?, role.as_str())?;
    issue(
        issuer,
        Draft {
            serial: req.serial,
            not_before: req.not_before,
            not_after: req.not_after,
            subject,
            subject_public_key: req.subject_public_key,
            extensions,
        },
    )
}

/// The internal CA's CRL (RFC 5280 v2): the certificates in `revoked`
/// (serial, revocation time), in that order, signed by `issuer`, with a
/// cRLNumber and the authorityKeyIdentifier of the issuer's key. Every
/// role's `[tls] crls` takes it (DER or PEM): a revoked identity is refused
/// at the handshake by servers and clients alike, from the next re-read of
/// the files. `number` must grow with each CRL of the issuer.
pub fn internal_crl(
    issuer: &Issuer<'_>,
    number: u64,
    this_update: UnixTime,
    next_update: UnixTime,
    revoked: &[(Serial, UnixTime)],
) -> Result<Vec<u8>> {
    if next_update <= this_update {
        return Err(Error::InvalidInput("nextUpdate is not after thisUpdate"));
    }
    let entries = revoked
        .iter()
        .map(|(serial, at)| {
            Ok(RevokedCert {
                serial_number: crate::cert::serial_number(*serial)?,
                revocation_date: crate::cert::x509_time(*at)?,
                crl_entry_extensions: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: issuer.signer().signature_algorithm(),
        issuer: issuer.name().clone(),
        this_update: crate::cert::x509_time(this_update)?,
        next_update: Some(crate::cert::x509_time(next_update)?),
        revoked_certificates: (!entries.is_empty()).then_some(entries),
        crl_extensions: Some(vec![
            profile::authority_key_identifier(issuer.key_hashes())?,
            profile::crl_number(number)?,
        ]),
    };
    let tbs_der = der::Encode::to_der(&tbs)?;
    let signature = issuer.signer().sign(&tbs_der)?;
    let list = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: issuer.signer().signature_algorithm(),
        signature: der::asn1::BitString::from_bytes(&signature)?,
    };
    Ok(der::Encode::to_der(&list)?)
}

/// The end of a certificate's validity (DER), to renew it before then.
pub fn not_after_of(certificate_der: &[u8]) -> Result<UnixTime> {
    let cert = Certificate::from_der(certificate_der)?;
    let secs = cert
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration()
        .as_secs();
    Ok(UnixTime(i64::try_from(secs).unwrap_or(i64::MAX)))
}

/// The internal identity a certificate (DER) carries: the one
/// `spiffe://shikko/role/...` URI of its subjectAltName. `None` when it has
/// none; an error when it has two (a certificate is one identity) or does
/// not decode. The caller has verified the chain (the TLS handshake has).
pub fn identity_of(certificate_der: &[u8]) -> Result<Option<InternalRole>> {
    let cert = Certificate::from_der(certificate_der)?;
    let mut found = None;
    for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
        if ext.extn_id != ID_CE_SUBJECT_ALT_NAME {
            continue;
        }
        let san = SubjectAltName::from_der(ext.extn_value.as_bytes())?;
        for name in san.0 {
            let GeneralName::UniformResourceIdentifier(uri) = name else {
                continue;
            };
            if !uri.as_str().starts_with(IDENTITY_PREFIX) {
                continue;
            }
            let Some(role) = InternalRole::from_uri(uri.as_str()) else {
                return Err(Error::InvalidInput("an identity URI names no known role"));
            };
            if found.replace(role).is_some() {
                return Err(Error::InvalidInput("a certificate carries two identities"));
            }
        }
    }
    Ok(found)
}
