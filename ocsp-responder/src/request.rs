//! Reading what a relying party asks: an OCSPRequest from a POST body or from
//! the path of a GET (RFC 6960 appendix A.1), its CertIDs, and its nonce
//! (RFC 8954). Every way a request can be wrong is a [`RequestError`]
//! (answered with malformedRequest), never a panic.

use base64::Engine;
use der::Decode;
use der::asn1::OctetString;

use crate::types::{CertId, ID_PKIX_OCSP_NONCE, OcspRequest};

/// Most CertIDs one request may ask about.
pub const MAX_CERT_IDS: usize = 64;
/// Largest request accepted (a POST body or a decoded GET path).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// RFC 8954: a nonce of 1 to 32 octets.
pub const MAX_NONCE_OCTETS: usize = 32;

/// Why a request cannot be answered (all answered with malformedRequest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request is larger than [`MAX_REQUEST_BYTES`].
    #[error("request of {0} octets is larger than {MAX_REQUEST_BYTES}")]
    TooLarge(usize),
    /// A GET path that is not percent-encoded base64.
    #[error("the GET path is not base64 of a DER OCSPRequest")]
    BadBase64,
    /// Not a DER OCSPRequest.
    #[error("not a DER OCSPRequest: {0}")]
    BadDer(String),
    /// No CertID at all.
    #[error("the request lists no certificate")]
    Empty,
    /// More CertIDs than [`MAX_CERT_IDS`].
    #[error("the request lists {0} certificates; at most {MAX_CERT_IDS} are answered")]
    TooManyCertIds(usize),
    /// A nonce outside 1 to 32 octets (RFC 8954), or not an OCTET STRING.
    #[error("the nonce must be an OCTET STRING of 1 to 32 octets (RFC 8954)")]
    BadNonce,
    /// A critical extension this responder does not understand.
    #[error("a critical request extension is not understood")]
    UnknownCriticalExtension,
}

/// A request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    /// The certificates asked about, in order.
    pub cert_ids: Vec<CertId>,
    /// The nonce to echo, if any (1 to 32 octets).
    pub nonce: Option<Vec<u8>>,
}

/// Decodes and checks a DER OCSPRequest (a POST body).
pub fn decode_request(der: &[u8]) -> Result<ParsedRequest, RequestError> {
    if der.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge(der.len()));
    }
    let req = OcspRequest::from_der(der).map_err(|e| RequestError::BadDer(e.to_string()))?;
    let tbs = req.tbs_request;
    match tbs.request_list.len() {
        0 => return Err(RequestError::Empty),
        n if n > MAX_CERT_IDS => return Err(RequestError::TooManyCertIds(n)),
        _ => {}
    }
    let mut nonce = None;
    for ext in tbs.request_extensions.iter().flatten() {
        if ext.extn_id == ID_PKIX_OCSP_NONCE {
            let inner = OctetString::from_der(ext.extn_value.as_bytes())
                .map_err(|_| RequestError::BadNonce)?;
            let n = inner.as_bytes();
            if n.is_empty() || n.len() > MAX_NONCE_OCTETS {
                return Err(RequestError::BadNonce);
            }
            nonce = Some(n.to_vec());
        } else if ext.critical {
            return Err(RequestError::UnknownCriticalExtension);
        }
    }
    let mut cert_ids = Vec::with_capacity(tbs.request_list.len());
    for r in tbs.request_list {
        if r.single_request_extensions
            .iter()
            .flatten()
            .any(|e| e.critical)
        {
            return Err(RequestError::UnknownCriticalExtension);
        }
        cert_ids.push(r.req_cert);
    }
    Ok(ParsedRequest { cert_ids, nonce })
}

/// The DER of a request sent by GET: the path after `/ocsp/`, taken as it
/// arrived (never path-cleaned: base64 may hold `/` and `//`), percent-decoded,
/// then base64. Tolerant of what clients and proxies do to it: `+` turned
/// into a space, the URL-safe alphabet (`-`, `_`), and missing padding.
pub fn decode_get_path(raw: &str) -> Result<Vec<u8>, RequestError> {
    if raw.len() > MAX_REQUEST_BYTES * 2 {
        return Err(RequestError::TooLarge(raw.len()));
    }
    let decoded = percent_encoding::percent_decode_str(raw).collect::<Vec<u8>>();
    let mut b64: Vec<u8> = decoded
        .into_iter()
        .filter(|c| !matches!(c, b'\r' | b'\n'))
        .map(|c| match c {
            b' ' => b'+',
            b'-' => b'+',
            b'_' => b'/',
            c => c,
        })
        .collect();
    while b64.last() == Some(&b'=') {
        b64.pop();
    }
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&b64)
        .map_err(|_| RequestError::BadBase64)
}

/// An OCSPRequest (DER) for one certificate of the issuer whose certificate
/// is `issuer_der`: a SHA-1 CertID (what most clients send), with the nonce
/// when given. For clients and load generators.
pub fn build_request(
    issuer_der: &[u8],
    serial: &shikko_core::Serial,
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, der::Error> {
    use der::Encode;
    let ca = x509_cert::Certificate::from_der(issuer_der)?;
    let name = ca.tbs_certificate().subject().to_der()?;
    let key_bits = ca
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    let sha1 =
        |d: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, d);
    let cert_id = CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: der::asn1::ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
            parameters: Some(der::Any::null()),
        },
        issuer_name_hash: OctetString::new(sha1(&name).as_ref())?,
        issuer_key_hash: OctetString::new(sha1(key_bits).as_ref())?,
        serial_number: x509_cert::serial_number::SerialNumber::new(&serial.to_der_integer())?,
    };
    let request_extensions = match nonce {
        Some(n) => Some(x509_cert::ext::Extensions::from(vec![
            x509_cert::ext::Extension {
                extn_id: ID_PKIX_OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(OctetString::new(n)?.to_der()?)?,
            },
        ])),
        None => None,
    };
    OcspRequest {
        tbs_request: crate::types::TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![crate::types::Request {
                req_cert: cert_id,
                single_request_extensions: None,
            }],
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_paths_tolerate_what_transports_do_to_base64() {
        let der: Vec<u8> = (0u8..=255).collect();
        let std = base64::engine::general_purpose::STANDARD.encode(&der);
        assert!(std.contains('+') && std.contains('/'));
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
        let percent = std
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let spaced = std.replace('+', " ");
        for form in [
            &std,
            &url,
            &percent,
            &spaced,
            &std.trim_end_matches('=').to_string(),
        ] {
            assert_eq!(decode_get_path(form).unwrap(), der, "{form}");
        }
        assert_eq!(decode_get_path("%%%"), Err(RequestError::BadBase64));
        assert_eq!(decode_get_path("not*base64"), Err(RequestError::BadBase64));
    }

    proptest::proptest! {
        /// Arbitrary bytes as a body or a GET path: an answer or an error, never a panic.
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode_request(&bytes);
            let _ = decode_get_path(&String::from_utf8_lossy(&bytes));
        }
    }

    fn request_with(n_ids: usize, exts: Option<Vec<x509_cert::ext::Extension>>) -> Vec<u8> {
        use crate::types::{CertId, OcspRequest, Request, TbsRequest};
        use der::Encode;
        let id = CertId {
            hash_algorithm: spki::AlgorithmIdentifierOwned {
                oid: der::asn1::ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
                parameters: Some(der::Any::null()),
            },
            issuer_name_hash: OctetString::new([1u8; 20].as_slice()).unwrap(),
            issuer_key_hash: OctetString::new([2u8; 20].as_slice()).unwrap(),
            serial_number: x509_cert::serial_number::SerialNumber::new(&[0x4a, 0x50]).unwrap(),
        };
        OcspRequest {
            tbs_request: TbsRequest {
                version: Default::default(),
                requestor_name: None,
                request_list: (0..n_ids)
                    .map(|_| Request {
                        req_cert: id.clone(),
                        single_request_extensions: None,
                    })
                    .collect(),
                request_extensions: exts,
            },
            optional_signature: None,
        }
        .to_der()
        .unwrap()
    }

    fn nonce_ext(value: Vec<u8>, critical: bool) -> x509_cert::ext::Extension {
        x509_cert::ext::Extension {
            extn_id: ID_PKIX_OCSP_NONCE,
            critical,
            extn_value: OctetString::new(value).unwrap(),
        }
    }

    fn octets(n: usize) -> Vec<u8> {
        use der::Encode;
        OctetString::new(vec![7u8; n]).unwrap().to_der().unwrap()
    }

    #[test]
    fn every_malformed_form_found_is_refused() {
        // The well-formed base cases.
        assert_eq!(
            decode_request(&request_with(1, None))
                .unwrap()
                .cert_ids
                .len(),
            1
        );
        let one =
            decode_request(&request_with(1, Some(vec![nonce_ext(octets(1), false)]))).unwrap();
        assert_eq!(one.nonce, Some(vec![7]));
        let max = decode_request(&request_with(
            MAX_CERT_IDS,
            Some(vec![nonce_ext(octets(32), false)]),
        ))
        .unwrap();
        assert_eq!(
            (max.cert_ids.len(), max.nonce.map(|n| n.len())),
            (MAX_CERT_IDS, Some(32))
        );
        // Nonces: longer than 32 octets, empty, not an OCTET STRING.
        for bad in [octets(33), octets(0), vec![7u8; 8]] {
            assert_eq!(
                decode_request(&request_with(1, Some(vec![nonce_ext(bad, false)]))),
                Err(RequestError::BadNonce)
            );
        }
        // A critical extension not understood.
        let unknown = x509_cert::ext::Extension {
            extn_id: der::asn1::ObjectIdentifier::new_unwrap("1.2.3.4"),
            critical: true,
            extn_value: OctetString::new(vec![5u8, 0]).unwrap(),
        };
        assert_eq!(
            decode_request(&request_with(1, Some(vec![unknown.clone()]))),
            Err(RequestError::UnknownCriticalExtension)
        );
        // ... which is ignored when not critical.
        let ignorable = x509_cert::ext::Extension {
            critical: false,
            ..unknown
        };
        assert!(decode_request(&request_with(1, Some(vec![ignorable]))).is_ok());
        // Too many CertIDs.
        assert_eq!(
            decode_request(&request_with(MAX_CERT_IDS + 1, None)),
            Err(RequestError::TooManyCertIds(MAX_CERT_IDS + 1))
        );
        // Trailing octets after the DER, and a truncated request.
        let mut trailing = request_with(1, None);
        trailing.push(0);
        assert!(matches!(
            decode_request(&trailing),
            Err(RequestError::BadDer(_))
        ));
        let whole = request_with(1, None);
        assert!(matches!(
            decode_request(&whole[..whole.len() - 1]),
            Err(RequestError::BadDer(_))
        ));
    }

    #[test]
    fn malformed_requests_are_errors() {
        assert!(matches!(decode_request(b""), Err(RequestError::BadDer(_))));
        assert!(matches!(
            decode_request(&[0x30, 0x03, 0x30, 0x01]),
            Err(RequestError::BadDer(_))
        ));
        assert!(matches!(
            decode_request(&vec![0u8; MAX_REQUEST_BYTES + 1]),
            Err(RequestError::TooLarge(_))
        ));
        // An empty requestList: SEQUENCE { SEQUENCE { SEQUENCE {} } }.
        assert_eq!(
            decode_request(&[0x30, 0x04, 0x30, 0x02, 0x30, 0x00]),
            Err(RequestError::Empty)
        );
    }
}
