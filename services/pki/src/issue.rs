//! Certificate issuance: self-signed roots per purpose, holder certificates in
//! the JPKI profile, delegated OCSP responders, and the operator CA with its
//! client and server certificates. Every function returns the certificate's DER.
//!
//! Every certificate is v3 and carries subjectKeyIdentifier and
//! authorityKeyIdentifier (keyIdentifier, SHA-1 of the public key bits).

use std::net::IpAddr;

use const_oid::db::rfc5280::{ID_KP_CLIENT_AUTH, ID_KP_OCSP_SIGNING, ID_KP_SERVER_AUTH};
use shikko_core::{CertKind, FourInfo, HolderId, Municipality, Serial, UnixTime};
use x509_cert::certificate::Version;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::name::Name;

use crate::cert::{self, TbsCertificateV3};
use crate::error::{Error, Result};
use crate::name::{self as names, ca_name, operator_ca_name};
use crate::pem::parse_certificate;
use crate::profile;
use crate::signer::{PublicKeyHashes, Signer};

/// A certificate issuer: its signing key and its name (the issuer field of what it signs).
#[derive(Clone)]
pub struct Issuer<'a> {
    signer: &'a dyn Signer,
    name: Name,
    hashes: PublicKeyHashes,
}

impl std::fmt::Debug for Issuer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("name", &self.name.to_string())
            .field("key", &self.hashes)
            .finish()
    }
}

impl<'a> Issuer<'a> {
    /// An issuer of the given name signing with `signer`.
    pub fn new(signer: &'a dyn Signer, name: Name) -> Result<Issuer<'a>> {
        let hashes = signer.public_key_hashes()?;
        Ok(Issuer {
            signer,
            name,
            hashes,
        })
    }

    /// The JPKI root of a kind ([`ca_name`]).
    pub fn ca(kind: CertKind, signer: &'a dyn Signer) -> Result<Issuer<'a>> {
        Issuer::new(signer, ca_name(kind))
    }

    /// Shikko's operator CA ([`operator_ca_name`]).
    pub fn operator_ca(signer: &'a dyn Signer) -> Result<Issuer<'a>> {
        Issuer::new(signer, operator_ca_name())
    }

    /// The issuer described by its own certificate (DER or PEM): the subject
    /// name of `certificate`, which must certify `signer`'s public key.
    pub fn from_certificate(signer: &'a dyn Signer, certificate: &[u8]) -> Result<Issuer<'a>> {
        let cert = parse_certificate(certificate)?;
        let tbs = cert.tbs_certificate();
        let cert_key = der::Encode::to_der(tbs.subject_public_key_info())?;
        if cert_key != signer.public_key_der() {
            return Err(Error::InvalidInput(
                "the certificate does not certify the signer's public key",
            ));
        }
        Issuer::new(signer, tbs.subject().clone())
    }

    /// The issuer's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The issuer's signing key.
    pub fn signer(&self) -> &'a dyn Signer {
        self.signer
    }

    /// The hashes of the issuer's public key (authorityKeyIdentifier, OCSP issuerKeyHash).
    pub fn key_hashes(&self) -> &PublicKeyHashes {
        &self.hashes
    }
}

/// What a holder certificate says; [`holder_certificate`] issues it.
#[derive(Debug, Clone, Copy)]
pub struct HolderCertRequest<'a> {
    /// Which of the four certificates.
    pub kind: CertKind,
    /// The holder's opaque id: the subject CN.
    pub holder: &'a HolderId,
    /// The holder's municipality: required for signing kinds (subject L and the
    /// CRL distribution point), ignored for user-authentication kinds.
    pub municipality: Option<&'a Municipality>,
    /// The 4 information: required for signing kinds, refused for user-authentication kinds.
    pub four_info: Option<&'a FourInfo>,
    /// The holder's public key as a DER SubjectPublicKeyInfo.
    pub subject_public_key: &'a [u8],
    /// The serial number.
    pub serial: Serial,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity (in the profile: the 5th birthday after issue, or card expiry).
    pub not_after: UnixTime,
    /// An OCSP responder URL for authorityInfoAccess, if any.
    pub ocsp_url: Option<&'a str>,
}

/// The self-signed root of a kind: name [`ca_name`], basicConstraints CA:TRUE
/// (critical), keyUsage keyCertSign and cRLSign (critical).
pub fn ca_certificate(
    kind: CertKind,
    signer: &dyn Signer,
    serial: Serial,
    not_before: UnixTime,
    not_after: UnixTime,
) -> Result<Vec<u8>> {
    self_signed_ca(&Issuer::ca(kind, signer)?, serial, not_before, not_after)
}

/// Shikko's self-signed operator CA, named [`operator_ca_name`]; it issues the
/// operators' client certificates and the servers' TLS certificates.
pub fn operator_ca_certificate(
    signer: &dyn Signer,
    serial: Serial,
    not_before: UnixTime,
    not_after: UnixTime,
) -> Result<Vec<u8>> {
    self_signed_ca(&Issuer::operator_ca(signer)?, serial, not_before, not_after)
}

pub(crate) fn self_signed_ca(
    issuer: &Issuer<'_>,
    serial: Serial,
    not_before: UnixTime,
    not_after: UnixTime,
) -> Result<Vec<u8>> {
    let extensions = vec![
        profile::basic_constraints(true)?,
        profile::key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
    ];
    issue(
        issuer,
        Draft {
            serial,
            not_before,
            not_after,
            subject: issuer.name.clone(),
            subject_public_key: issuer.signer.public_key_der(),
            extensions,
        },
    )
}

/// A holder's end-entity certificate in the JPKI profile.
///
/// Signing kinds: subject `C=JP, L=<prefecture>, L=<municipality>, CN=<holder id>`,
/// keyUsage digitalSignature + nonRepudiation, policy [`profile::POLICY_SIGNING`],
/// the 4 information in subjectAltName otherNames, and a cRLDistributionPoints
/// naming the municipality's partition ([`names::crl_dp_name_for`]).
/// User-authentication kinds: subject `C=JP, CN=<holder id>`, keyUsage
/// digitalSignature, policy [`profile::POLICY_AUTH`], no personal data.
/// Both: authorityInfoAccess OCSP when a URL is given.
pub fn holder_certificate(issuer: &Issuer<'_>, req: &HolderCertRequest<'_>) -> Result<Vec<u8>> {
    let kind = req.kind;
    let subject = names::holder_subject(kind, req.holder, req.municipality)?;
    let mut extensions = Vec::with_capacity(7);
    if kind.is_signing() {
        extensions.push(profile::key_usage(
            KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
        )?);
    } else {
        extensions.push(profile::key_usage(KeyUsages::DigitalSignature.into())?);
    }
    extensions.push(profile::certificate_policy(profile::policy_for(kind))?);
    if kind.is_signing() {
        let info = req.four_info.ok_or(Error::InvalidInput(
            "a signing certificate needs the 4 information",
        ))?;
        let municipality = req.municipality.ok_or(Error::InvalidInput(
            "a signing certificate needs the holder's municipality",
        ))?;
        extensions.push(profile::four_info_alt_name(info)?);
        extensions.push(profile::crl_distribution_point(names::crl_dp_name_for(
            kind,
            municipality,
        )?)?);
    } else if req.four_info.is_some() {
        return Err(Error::InvalidInput(
            "user-authentication certificates carry no 4 information",
        ));
    }
    if let Some(url) = req.ocsp_url {
        extensions.push(profile::ocsp_access(url)?);
    }
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

/// A delegated OCSP responder certificate, issued by the CA whose certificates
/// it answers for: subject = the issuer's name plus `CN=<common_name>`,
/// extendedKeyUsage id-kp-OCSPSigning, id-pkix-ocsp-nocheck (NULL), keyUsage
/// digitalSignature (critical).
pub fn ocsp_responder_certificate(
    issuer: &Issuer<'_>,
    responder_public_key: &[u8],
    serial: Serial,
    not_before: UnixTime,
    not_after: UnixTime,
    common_name: &str,
) -> Result<Vec<u8>> {
    let extensions = vec![
        profile::key_usage(KeyUsages::DigitalSignature.into())?,
        profile::extended_key_usage(&[ID_KP_OCSP_SIGNING])?,
        profile::ocsp_nocheck()?,
    ];
    issue(
        issuer,
        Draft {
            serial,
            not_before,
            not_after,
            subject: names::with_common_name(&issuer.name, common_name)?,
            subject_public_key: responder_public_key,
            extensions,
        },
    )
}

/// An operator's TLS client certificate for the 4-information service: subject
/// [`names::operator_subject`] (CN = operator id), extendedKeyUsage clientAuth,
/// keyUsage digitalSignature (critical), and a subjectAltName dNSName if given.
pub fn operator_client_certificate(
    issuer: &Issuer<'_>,
    operator_id: &str,
    dns_name: Option<&str>,
    subject_public_key: &[u8],
    serial: Serial,
    not_before: UnixTime,
    not_after: UnixTime,
) -> Result<Vec<u8>> {
    let mut extensions = vec![
        profile::key_usage(KeyUsages::DigitalSignature.into())?,
        profile::extended_key_usage(&[ID_KP_CLIENT_AUTH])?,
    ];
    if let Some(dns) = dns_name {
        extensions.push(profile::network_alt_name(&[dns], &[])?);
    }
    issue(
        issuer,
        Draft {
            serial,
            not_before,
            not_after,
            subject: names::operator_subject(operator_id)?,
            subject_public_key,
            extensions,
        },
    )
}

/// A TLS server certificate: subject `C=JP, O=Shikko, OU=Servers, CN=<first name>`,
/// subjectAltName with the given DNS names and IP addresses (at least one; for
/// loopback use `localhost` and 127.0.0.1), extendedKeyUsage serverAuth,
/// keyUsage digitalSignature (critical; TLS 1.3 and ECDHE need nothing else).
pub fn server_certificate(
    issuer: &Issuer<'_>,
    dns_names: &[&str],
    ip_addresses: &[IpAddr],
    subject_public_key: &[u8],
    serial: Serial,
    not_before: UnixTime,
    not_after: UnixTime,
) -> Result<Vec<u8>> {
    let first = match (dns_names.first(), ip_addresses.first()) {
        (Some(dns), _) => (*dns).to_owned(),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => {
            return Err(Error::InvalidInput(
                "a TLS certificate needs at least one DNS name or IP address",
            ));
        }
    };
    let extensions = vec![
        profile::key_usage(KeyUsages::DigitalSignature.into())?,
        profile::extended_key_usage(&[ID_KP_SERVER_AUTH])?,
        profile::network_alt_name(dns_names, ip_addresses)?,
    ];
    let subject = names::with_common_name(&names::shikko_unit_name("Servers")?, &first)?;
    issue(
        issuer,
        Draft {
            serial,
            not_before,
            not_after,
            subject,
            subject_public_key,
            extensions,
        },
    )
}

/// Everything about a certificate but its issuer and key identifiers.
pub(crate) struct Draft<'a> {
    pub(crate) serial: Serial,
    pub(crate) not_before: UnixTime,
    pub(crate) not_after: UnixTime,
    pub(crate) subject: Name,
    pub(crate) subject_public_key: &'a [u8],
    pub(crate) extensions: Vec<Extension>,
}

pub(crate) fn issue(issuer: &Issuer<'_>, draft: Draft<'_>) -> Result<Vec<u8>> {
    let spki = cert::subject_public_key(draft.subject_public_key)?;
    let subject_hashes = PublicKeyHashes::from_key_bits(spki.subject_public_key.raw_bytes());
    let mut extensions = draft.extensions;
    extensions.push(profile::subject_key_identifier(&subject_hashes)?);
    extensions.push(profile::authority_key_identifier(&issuer.hashes)?);
    let tbs = TbsCertificateV3 {
        version: Version::V3,
        serial_number: cert::serial_number(draft.serial)?,
        signature: issuer.signer.signature_algorithm(),
        issuer: issuer.name.clone(),
        validity: cert::validity(draft.not_before, draft.not_after)?,
        subject: draft.subject,
        subject_public_key_info: spki,
        extensions: Some(extensions),
    };
    cert::sign_certificate(&tbs, issuer.signer)
}
