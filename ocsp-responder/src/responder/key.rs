//! A delegated responder's key and certificate, with the parts of every
//! answer that depend only on them encoded once.

use std::sync::Arc;

use der::{Decode, Encode};
use shikko_pki::Signer;
use shikko_pki::tlv::{TAG_CONTEXT_0, TAG_SEQUENCE, header, push_header, tlv_len};
use x509_cert::Certificate;

use super::Error;

/// A delegated responder: its key and certificate (issued by the CA it answers for).
pub struct ResponderKey {
    pub(super) signer: Arc<dyn Signer>,
    pub(super) key_hash: [u8; 20],
    /// The signatureAlgorithm of every answer, encoded once.
    pub(super) sig_alg_der: Vec<u8>,
    /// `certs [0] EXPLICIT SEQUENCE OF Certificate` holding the responder
    /// certificate exactly as its CA signed it, encoded once.
    pub(super) certs_field: Vec<u8>,
}

impl std::fmt::Debug for ResponderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponderKey")
            .field("key_hash", &self.key_hash)
            .finish()
    }
}

impl ResponderKey {
    /// A responder key and its certificate (DER), which must certify the key.
    pub fn new(signer: Arc<dyn Signer>, cert_der: &[u8]) -> Result<ResponderKey, Error> {
        let cert = Certificate::from_der(cert_der)?;
        let spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
        if spki != signer.public_key_der() {
            return Err(Error::Setup(
                "the responder certificate does not certify its key".into(),
            ));
        }
        let certs = tlv_len(cert_der.len());
        let mut certs_field = header(TAG_CONTEXT_0, certs);
        push_header(&mut certs_field, TAG_SEQUENCE, cert_der.len());
        certs_field.extend_from_slice(cert_der);
        Ok(ResponderKey {
            key_hash: signer.public_key_hashes()?.sha1,
            sig_alg_der: signer.signature_algorithm().to_der()?,
            signer,
            certs_field,
        })
    }
}
