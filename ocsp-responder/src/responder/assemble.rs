//! Assembling answers: a successful OCSPResponse around a signed
//! ResponseData from the responder key's pre-encoded parts, bare error
//! answers, times, entity tags and reason codes.

use std::time::Duration;

use der::asn1::GeneralizedTime;
use shikko_core::UnixTime;
use shikko_pki::tlv::{
    TAG_BIT_STRING, TAG_CONTEXT_0, TAG_ENUMERATED, TAG_OCTET_STRING, TAG_SEQUENCE, push_header,
    tlv_len,
};
use x509_cert::ext::pkix::crl::CrlReason;

use super::{Error, ResponderKey};
use crate::types::OcspResponseStatus;

pub(super) fn gtime(t: UnixTime) -> Result<GeneralizedTime, Error> {
    Ok(GeneralizedTime::from_unix_duration(Duration::from_secs(
        u64::try_from(t.0).map_err(|_| Error::Setup("a time before 1970".into()))?,
    ))?)
}

/// The entity tag of an answer: the first 12 octets of its SHA-256, quoted.
pub(super) fn etag_of(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut s = String::with_capacity(26);
    s.push('"');
    for b in &digest.as_ref()[..12] {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('"');
    s
}

/// A bare OCSPResponse with an error status (never signed).
pub fn status_only(status: OcspResponseStatus) -> Vec<u8> {
    vec![0x30, 0x03, 0x0a, 0x01, status as u8]
}

/// id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1), the whole TLV.
const OID_OCSP_BASIC_TLV: [u8; 11] = [
    0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01,
];

/// A successful OCSPResponse around a signed ResponseData, assembled from
/// the responder key's pre-encoded parts (signatureAlgorithm, certs): the
/// per-request cost is copying octets, not re-encoding the certificate.
///
/// ```text
/// OCSPResponse ::= SEQUENCE { responseStatus successful (0),
///    responseBytes [0] EXPLICIT SEQUENCE { responseType id-pkix-ocsp-basic,
///       response OCTET STRING (BasicOCSPResponse) } }
/// BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm,
///    signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate }
/// ```
pub(super) fn successful_response(tbs: &[u8], key: &ResponderKey, signature: &[u8]) -> Vec<u8> {
    let bits = 1 + signature.len();
    let basic_content = tbs.len() + key.sig_alg_der.len() + tlv_len(bits) + key.certs_field.len();
    let basic = tlv_len(basic_content);
    let bytes_content = OID_OCSP_BASIC_TLV.len() + tlv_len(basic);
    let bytes = tlv_len(bytes_content);
    let outer_content = 3 + tlv_len(bytes);
    let mut out = Vec::with_capacity(tlv_len(outer_content));
    push_header(&mut out, TAG_SEQUENCE, outer_content);
    out.extend_from_slice(&[TAG_ENUMERATED, 1, OcspResponseStatus::Successful as u8]);
    push_header(&mut out, TAG_CONTEXT_0, bytes);
    push_header(&mut out, TAG_SEQUENCE, bytes_content);
    out.extend_from_slice(&OID_OCSP_BASIC_TLV);
    push_header(&mut out, TAG_OCTET_STRING, basic);
    push_header(&mut out, TAG_SEQUENCE, basic_content);
    out.extend_from_slice(tbs);
    out.extend_from_slice(&key.sig_alg_der);
    push_header(&mut out, TAG_BIT_STRING, bits);
    out.push(0); // no unused bits
    out.extend_from_slice(signature);
    out.extend_from_slice(&key.certs_field);
    out
}

/// The CRLReason of an RFC 5280 reason code (unspecified is omitted).
pub(super) fn crl_reason(code: u8) -> Option<CrlReason> {
    Some(match code {
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        8 => CrlReason::RemoveFromCRL,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::types::*;
    use der::asn1::BitString;
    use der::asn1::{Null, OctetString};
    use der::{Decode, Encode};
    use shikko_core::{CertKind, Serial};
    use shikko_pki::Signer;
    use shikko_pki::{
        Issuer, KeyAlgorithm, SoftwareSigner, ca_certificate, ocsp_responder_certificate,
    };
    use std::sync::Arc;
    use x509_cert::Certificate;

    /// The hand-assembled answer is octet for octet what the `der` derives
    /// of [`OcspResponse`] and [`BasicOcspResponse`] encode, for both key
    /// algorithms and for a ResponseData long enough to need long-form lengths.
    #[test]
    fn assembled_answers_equal_the_derived_encoding() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
            let ca_key = SoftwareSigner::generate(alg).unwrap();
            let ca = ca_certificate(
                CertKind::CardAuth,
                &ca_key,
                Serial::from_u128(1).unwrap(),
                UnixTime(1_600_000_000),
                UnixTime(2_200_000_000),
            )
            .unwrap();
            let issuer = Issuer::from_certificate(&ca_key, &ca).unwrap();
            let signer = Arc::new(SoftwareSigner::generate(alg).unwrap());
            let cert_der = ocsp_responder_certificate(
                &issuer,
                signer.public_key_der(),
                Serial::from_u128(2).unwrap(),
                UnixTime(1_600_000_000),
                UnixTime(2_200_000_000),
                "test responder",
            )
            .unwrap();
            let key = ResponderKey::new(signer.clone(), &cert_der).unwrap();
            let id = CertId {
                hash_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
                    oid: super::super::SHA1,
                    parameters: None,
                },
                issuer_name_hash: OctetString::new([1u8; 20]).unwrap(),
                issuer_key_hash: OctetString::new([2u8; 20]).unwrap(),
                serial_number: x509_cert::serial_number::SerialNumber::new(&[0x4a, 0x50]).unwrap(),
            };
            for n in [1usize, 40] {
                let single = SingleResponse {
                    cert_id: id.clone(),
                    cert_status: CertStatus::Good(Null),
                    this_update: gtime(UnixTime(1_700_000_000)).unwrap(),
                    next_update: Some(gtime(UnixTime(1_700_086_400)).unwrap()),
                    single_extensions: None,
                };
                let tbs = ResponseData {
                    version: Default::default(),
                    responder_id: ResponderId::ByKey(
                        OctetString::new(key.key_hash.as_slice()).unwrap(),
                    ),
                    produced_at: gtime(UnixTime(1_700_000_000)).unwrap(),
                    responses: vec![single; n],
                    response_extensions: None,
                };
                let tbs_der = tbs.to_der().unwrap();
                let signature = signer.sign(&tbs_der).unwrap();
                let ours = successful_response(&tbs_der, &key, &signature);
                let basic = BasicOcspResponse {
                    tbs_response_data: tbs,
                    signature_algorithm: signer.signature_algorithm(),
                    signature: BitString::from_bytes(&signature).unwrap(),
                    certs: Some(vec![Certificate::from_der(&cert_der).unwrap()]),
                };
                let derived = OcspResponse {
                    response_status: OcspResponseStatus::Successful,
                    response_bytes: Some(ResponseBytes {
                        response_type: ID_PKIX_OCSP_BASIC,
                        response: OctetString::new(basic.to_der().unwrap()).unwrap(),
                    }),
                }
                .to_der()
                .unwrap();
                assert_eq!(ours, derived, "{alg:?}, {n} responses");
            }
        }
    }
}
