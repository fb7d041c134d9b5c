//! PEM armour (RFC 7468) and reading certificates back from DER or PEM.

use der::Decode;
use der::pem::{self, LineEnding};
use x509_cert::Certificate;

use crate::error::{Error, Result};

/// Wraps DER in PEM armour with the given label (`CERTIFICATE`, `PRIVATE KEY`,
/// `X509 CRL`, ...), 64-column base64 lines, LF line endings.
pub fn to_pem(label: &str, der: &[u8]) -> Result<String> {
    pem::encode_string(label, LineEnding::LF, der).map_err(|e| Error::Pem(e.to_string()))
}

/// Whether bytes look like PEM rather than DER (DER always starts with a tag byte,
/// never with a dash or whitespace).
pub fn looks_like_pem(bytes: &[u8]) -> bool {
    let trimmed = bytes.trim_ascii_start();
    trimmed.starts_with(b"-----BEGIN ")
}

/// Decodes one PEM block, checking its label.
pub fn decode_pem(bytes: &[u8], expected_label: &str) -> Result<Vec<u8>> {
    let (label, der) =
        pem::decode_vec(bytes.trim_ascii()).map_err(|e| Error::Pem(e.to_string()))?;
    if label != expected_label {
        return Err(Error::Pem(format!(
            "expected a {expected_label} block, found {}",
            label.chars().take(32).collect::<String>()
        )));
    }
    Ok(der)
}

/// Parses one certificate given as DER or PEM.
pub fn parse_certificate(bytes: &[u8]) -> Result<Certificate> {
    if looks_like_pem(bytes) {
        let der = decode_pem(bytes, "CERTIFICATE")?;
        Ok(Certificate::from_der(&der)?)
    } else {
        Ok(Certificate::from_der(bytes)?)
    }
}

/// The DER of one certificate given as DER or PEM.
pub fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>> {
    if looks_like_pem(bytes) {
        decode_pem(bytes, "CERTIFICATE")
    } else {
        // Parse to reject garbage early; return the caller's exact bytes.
        Certificate::from_der(bytes)?;
        Ok(bytes.to_vec())
    }
}

/// Parses every certificate of a PEM bundle, in order.
pub fn parse_certificates_pem(bytes: &[u8]) -> Result<Vec<Certificate>> {
    Certificate::load_pem_chain(bytes.trim_ascii()).map_err(Error::from)
}
