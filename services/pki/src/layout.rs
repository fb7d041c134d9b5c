//! The data directory's key and certificate layout, read in one place.
//!
//! ```text
//! DIR/keys/ISSUER-ca.key     an issuing CA's private key (PKCS#8, 0600)
//! DIR/certs/ISSUER-ca.der    its certificate
//! DIR/keys/ISSUER-ocsp.key   the issuer's delegated OCSP responder key
//! DIR/certs/ISSUER-ocsp.der  its certificate
//! DIR/keys/NAME.key, DIR/certs/NAME.der   the rest (operator CA, server, ...)
//! ```
//!
//! ISSUER is one of `sign`, `auth`, `phone-sign`, `phone-auth`. Roles load
//! what exists and never create a key: a CRL or OCSP answer signed by a fresh
//! key would be refused by every relying party. (The demo creates them.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shikko_core::CertKind;

use crate::{Error, Issuer, Result, SoftwareSigner};

/// A data directory's key and certificate files.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// One issuing CA: its kind, its signing key and its certificate.
#[derive(Clone)]
pub struct IssuingCa {
    /// Which of the four issuers.
    pub kind: CertKind,
    /// The CA's signing key.
    pub signer: Arc<SoftwareSigner>,
    /// The CA's certificate (DER).
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for IssuingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingCa")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl IssuingCa {
    /// The CA as an issuer of certificates.
    pub fn issuer(&self) -> Result<Issuer<'_>> {
        Issuer::from_certificate(self.signer.as_ref(), &self.cert_der)
    }
}

impl DataDir {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the private key `NAME` lives (`keys/NAME.key`).
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.root.join("keys").join(format!("{name}.key"))
    }

    /// Where the certificate `NAME` lives (`certs/NAME.der`).
    pub fn cert_path(&self, name: &str) -> PathBuf {
        self.root.join("certs").join(format!("{name}.der"))
    }

    /// Loads the key `NAME`, refusing a file others could read or change
    /// ([`crate::keys::check_key_file`]).
    pub fn load_key(&self, name: &str) -> Result<SoftwareSigner> {
        let path = self.key_path(name);
        crate::keys::check_key_file(&path)?;
        SoftwareSigner::load(&path)
    }

    /// Reads the certificate `NAME` (DER).
    pub fn read_cert(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.cert_path(name);
        std::fs::read(&path).map_err(|e| Error::io(path, e))
    }

    /// The four issuing CAs, loaded only: a missing key or certificate is an error.
    pub fn issuing_cas(&self) -> Result<Vec<IssuingCa>> {
        CertKind::ALL
            .into_iter()
            .map(|kind| {
                let name = format!("{}-ca", kind.issuer_id());
                Ok(IssuingCa {
                    kind,
                    signer: Arc::new(self.load_key(&name)?),
                    cert_der: self.read_cert(&name)?,
                })
            })
            .collect()
    }

    /// The four issuing CAs' certificates (DER), without their keys: for the
    /// roles that check what a CA signed but sign nothing with its key.
    pub fn issuing_ca_certs(&self) -> Result<Vec<(CertKind, Vec<u8>)>> {
        CertKind::ALL
            .into_iter()
            .map(|kind| Ok((kind, self.read_cert(&format!("{}-ca", kind.issuer_id()))?)))
            .collect()
    }

    /// The issuer's delegated OCSP responder: its key and certificate (DER).
    pub fn ocsp_responder(&self, kind: CertKind) -> Result<(SoftwareSigner, Vec<u8>)> {
        let name = format!("{}-ocsp", kind.issuer_id());
        Ok((self.load_key(&name)?, self.read_cert(&name)?))
    }
}
