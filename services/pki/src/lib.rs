//! # shikko-pki
//!
//! Keys and certificates for Shikko: the [`Signer`] trait every CA, OCSP
//! responder and operator key sits behind (RSA-2048 and ECDSA P-256 in
//! software through aws-lc-rs today, room for a PKCS#11 token later), PKCS#8 key
//! files, and issuance of certificates in the JPKI profile: a self-signed root
//! per purpose, holder certificates (the signing ones carrying the 4
//! information and a per-municipality CRL distribution point), delegated OCSP
//! responders, and an operator CA with client and server certificates for
//! mutual TLS. [`layout`] reads a data directory's keys and certificates.
//! (Synthetic holders live in `shikko-population`.)
//!
//! Depends on `shikko-core` only; never on the store, the network or a role.
//!
//! Certificates are built from x509-cert types and der derives, signed with a
//! [`Signer`], and returned as DER.
//!
//! ```
//! use shikko_core::{CertKind, HolderId, Serial, UnixTime};
//! use shikko_pki::{
//!     ca_certificate, holder_certificate, parse_certificate, HolderCertRequest, Issuer,
//!     KeyAlgorithm, Signer, SoftwareSigner,
//! };
//!
//! let ca_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
//! let now = UnixTime::from_civil(2025, 4, 1);
//! let until = UnixTime::from_civil(2030, 4, 1);
//! let ca = ca_certificate(CertKind::CardAuth, &ca_key, Serial::from_u128(1).unwrap(), now, until)
//!     .unwrap();
//!
//! let holder_key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
//! let issuer = Issuer::from_certificate(&ca_key, &ca).unwrap();
//! let id = HolderId::new("H-0001").unwrap();
//! let leaf = holder_certificate(&issuer, &HolderCertRequest {
//!     kind: CertKind::CardAuth,
//!     holder: &id,
//!     municipality: None,
//!     four_info: None,
//!     subject_public_key: holder_key.public_key_der(),
//!     serial: Serial::from_u128(2).unwrap(),
//!     not_before: now,
//!     not_after: until,
//!     ocsp_url: Some("http://127.0.0.1:8080/ocsp"),
//! })
//! .unwrap();
//! let cert = parse_certificate(&leaf).unwrap();
//! assert_eq!(cert.tbs_certificate().subject().to_string(), "CN=H-0001,C=JP");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod cert;
pub mod error;
pub mod internal;
pub mod issue;
pub mod keys;
pub mod layout;
pub mod merkle;
pub mod name;
pub mod pem;
pub mod profile;
pub mod signer;
pub mod tlv;
pub mod tree_head;
pub mod verify;

pub use cert::x509_time;
pub use error::{Error, Result};
pub use internal::{
    InternalRole, RoleCertRequest, identity_of, internal_ca_certificate, internal_ca_name,
    internal_crl, not_after_of, role_certificate,
};
pub use issue::{
    HolderCertRequest, Issuer, ca_certificate, holder_certificate, ocsp_responder_certificate,
    operator_ca_certificate, operator_client_certificate, server_certificate,
};
pub use keys::{SoftwareSigner, check_key_file, generate_signer, load_signer, write_file_atomic};
pub use layout::{DataDir, IssuingCa};
pub use name::{ca_name, crl_dp_name, crl_dp_name_for, holder_subject, operator_ca_name};
pub use pem::{certificate_der, parse_certificate, parse_certificates_pem, to_pem};
pub use signer::{KeyAlgorithm, PublicKeyHashes, Signer, key_identifier};
pub use verify::{issued_by, signature_algorithm_for, verify_signature};

// Re-exported so callers can name the types this crate's API speaks.
pub use x509_cert;
