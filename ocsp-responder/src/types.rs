//! The OCSP structures of RFC 6960 §4 (module `OCSP-2013-88`, explicit tags
//! unless a field says IMPLICIT), with der derives over x509-cert's types.
//!
//! Not the `ocsp` crate (it cannot sign, panics on some certificates, and
//! knows neither ECDSA nor SHA-256 CertIDs) and not `x509-ocsp` 0.2 (on der
//! 0.7, which does not mix with x509-cert 0.3 and der 0.8).

use der::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use der::{Choice, Enumerated, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::certificate::Version;
use x509_cert::ext::Extensions;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

/// id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1): the responseType of a BasicOCSPResponse.
pub const ID_PKIX_OCSP_BASIC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-pkix-ocsp-nonce (1.3.6.1.5.5.7.48.1.2), RFC 8954.
pub const ID_PKIX_OCSP_NONCE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// ```text
/// OCSPRequest ::= SEQUENCE {
///     tbsRequest                  TBSRequest,
///     optionalSignature   [0]     EXPLICIT Signature OPTIONAL }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct OcspRequest {
    /// What is asked.
    pub tbs_request: TbsRequest,
    /// A requester's signature (accepted, not required, not checked).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub optional_signature: Option<Signature>,
}

/// ```text
/// TBSRequest ::= SEQUENCE {
///     version             [0]     EXPLICIT Version DEFAULT v1,
///     requestorName       [1]     EXPLICIT GeneralName OPTIONAL,
///     requestList                 SEQUENCE OF Request,
///     requestExtensions   [2]     EXPLICIT Extensions OPTIONAL }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct TbsRequest {
    /// v1 (0).
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        default = "Default::default"
    )]
    pub version: Version,
    /// Who asks (informational).
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub requestor_name: Option<GeneralName>,
    /// One entry per certificate asked about.
    pub request_list: Vec<Request>,
    /// The nonce (RFC 8954) lives here.
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    pub request_extensions: Option<Extensions>,
}

/// ```text
/// Signature ::= SEQUENCE {
///     signatureAlgorithm      AlgorithmIdentifier,
///     signature               BIT STRING,
///     certs               [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct Signature {
    /// Algorithm of the requester's signature.
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// The signature.
    pub signature: BitString,
    /// Certificates to verify it with.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub certs: Option<Vec<Certificate>>,
}

/// ```text
/// Request ::= SEQUENCE {
///     reqCert                     CertID,
///     singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct Request {
    /// The certificate asked about.
    pub req_cert: CertId,
    /// Per-certificate extensions (none are understood).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub single_request_extensions: Option<Extensions>,
}

/// ```text
/// CertID ::= SEQUENCE {
///     hashAlgorithm           AlgorithmIdentifier,
///     issuerNameHash          OCTET STRING, -- Hash of issuer's DN
///     issuerKeyHash           OCTET STRING, -- Hash of issuer's public key
///     serialNumber            CertificateSerialNumber }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CertId {
    /// SHA-1 or SHA-256 here.
    pub hash_algorithm: AlgorithmIdentifierOwned,
    /// Hash of the DER of the issuer's subject name.
    pub issuer_name_hash: OctetString,
    /// Hash of the issuer's subjectPublicKey BIT STRING contents.
    pub issuer_key_hash: OctetString,
    /// The certificate's serial number.
    pub serial_number: SerialNumber,
}

/// ```text
/// OCSPResponse ::= SEQUENCE {
///    responseStatus         OCSPResponseStatus,
///    responseBytes          [0] EXPLICIT ResponseBytes OPTIONAL }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct OcspResponse {
    /// Whether the request was understood and answered.
    pub response_status: OcspResponseStatus,
    /// The answer, when `successful`.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub response_bytes: Option<ResponseBytes>,
}

/// ```text
/// OCSPResponseStatus ::= ENUMERATED {
///     successful            (0),  -- Response has valid confirmations
///     malformedRequest      (1),  -- Illegal confirmation request
///     internalError         (2),  -- Internal error in issuer
///     tryLater              (3),  -- Try again later
///                                 -- (4) is not used
///     sigRequired           (5),  -- Must sign the request
///     unauthorized          (6)   -- Request unauthorized }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enumerated)]
#[repr(u32)]
pub enum OcspResponseStatus {
    /// Response has valid confirmations.
    Successful = 0,
    /// Illegal confirmation request.
    MalformedRequest = 1,
    /// Internal error in issuer.
    InternalError = 2,
    /// Try again later.
    TryLater = 3,
    /// Must sign the request.
    SigRequired = 5,
    /// Request unauthorized (here: an issuer this responder does not serve).
    Unauthorized = 6,
}

/// ```text
/// ResponseBytes ::= SEQUENCE {
///     responseType   OBJECT IDENTIFIER,
///     response       OCTET STRING }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct ResponseBytes {
    /// [`ID_PKIX_OCSP_BASIC`].
    pub response_type: ObjectIdentifier,
    /// The DER of a [`BasicOcspResponse`].
    pub response: OctetString,
}

/// ```text
/// BasicOCSPResponse ::= SEQUENCE {
///    tbsResponseData      ResponseData,
///    signatureAlgorithm   AlgorithmIdentifier,
///    signature            BIT STRING,
///    certs            [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct BasicOcspResponse {
    /// What is signed.
    pub tbs_response_data: ResponseData,
    /// The responder key's signature algorithm.
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// The signature over the DER of `tbs_response_data`.
    pub signature: BitString,
    /// The delegated responder's certificate.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub certs: Option<Vec<Certificate>>,
}

/// ```text
/// ResponseData ::= SEQUENCE {
///    version              [0] EXPLICIT Version DEFAULT v1,
///    responderID              ResponderID,
///    producedAt               GeneralizedTime,
///    responses                SEQUENCE OF SingleResponse,
///    responseExtensions   [1] EXPLICIT Extensions OPTIONAL }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct ResponseData {
    /// v1 (0).
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        default = "Default::default"
    )]
    pub version: Version,
    /// The signer, by key hash here.
    pub responder_id: ResponderId,
    /// When this response was signed.
    pub produced_at: GeneralizedTime,
    /// One per request entry.
    pub responses: Vec<SingleResponse>,
    /// The nonce echoed (RFC 8954).
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub response_extensions: Option<Extensions>,
}

/// ```text
/// ResponderID ::= CHOICE {
///    byName   [1] Name,
///    byKey    [2] KeyHash }
///
/// KeyHash ::= OCTET STRING -- SHA-1 hash of responder's public key
///                          -- (excluding the tag and length fields)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Choice)]
pub enum ResponderId {
    /// By the responder certificate's subject.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    ByName(Name),
    /// By the SHA-1 of the responder's public key.
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

/// ```text
/// SingleResponse ::= SEQUENCE {
///    certID                       CertID,
///    certStatus                   CertStatus,
///    thisUpdate                   GeneralizedTime,
///    nextUpdate         [0]       EXPLICIT GeneralizedTime OPTIONAL,
///    singleExtensions   [1]       EXPLICIT Extensions OPTIONAL }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct SingleResponse {
    /// The CertID as asked (same hash algorithm).
    pub cert_id: CertId,
    /// good, revoked or unknown.
    pub cert_status: CertStatus,
    /// When the status was known to be correct.
    pub this_update: GeneralizedTime,
    /// Until when it may be cached (RFC 5019).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub next_update: Option<GeneralizedTime>,
    /// None are written.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub single_extensions: Option<Extensions>,
}

/// ```text
/// CertStatus ::= CHOICE {
///     good        [0]     IMPLICIT NULL,
///     revoked     [1]     IMPLICIT RevokedInfo,
///     unknown     [2]     IMPLICIT UnknownInfo }
///
/// UnknownInfo ::= NULL
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Choice)]
pub enum CertStatus {
    /// Not revoked (as far as this responder knows).
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    /// Revoked or on hold.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    /// Not issued by this issuer, as far as the responder knows.
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

/// ```text
/// RevokedInfo ::= SEQUENCE {
///     revocationTime              GeneralizedTime,
///     revocationReason    [0]     EXPLICIT CRLReason OPTIONAL }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct RevokedInfo {
    /// When it was revoked (or put on hold).
    pub revocation_time: GeneralizedTime,
    /// Why (certificateHold for a hold).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub revocation_reason: Option<CrlReason>,
}
