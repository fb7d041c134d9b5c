//! Identifiers: certificate kinds (one issuing CA each), serial numbers,
//! holder ids, event ids and CRL partitions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ValidationError;

/// The four kinds of certificate a holder can carry; each has its own issuing CA.
///
/// The string forms (`sign`, `auth`, `phone-sign`, `phone-auth`) are the issuer ids
/// used in URLs, file names and APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertKind {
    /// Card signing certificate (署名用電子証明書); carries the 4 information.
    #[serde(rename = "sign")]
    CardSigning,
    /// Card user-authentication certificate (利用者証明用電子証明書); no personal data.
    #[serde(rename = "auth")]
    CardAuth,
    /// Smartphone signing certificate.
    #[serde(rename = "phone-sign")]
    PhoneSigning,
    /// Smartphone user-authentication certificate: the only one whose hold can be lifted.
    #[serde(rename = "phone-auth")]
    PhoneAuth,
}

impl CertKind {
    /// All kinds, in issuer-id order.
    pub const ALL: [CertKind; 4] = [
        CertKind::CardSigning,
        CertKind::CardAuth,
        CertKind::PhoneSigning,
        CertKind::PhoneAuth,
    ];

    /// The issuer id used in URLs, file names and APIs.
    pub fn issuer_id(self) -> &'static str {
        match self {
            CertKind::CardSigning => "sign",
            CertKind::CardAuth => "auth",
            CertKind::PhoneSigning => "phone-sign",
            CertKind::PhoneAuth => "phone-auth",
        }
    }

    /// A stable one-byte code, used in storage keys.
    pub fn code(self) -> u8 {
        match self {
            CertKind::CardSigning => 1,
            CertKind::CardAuth => 2,
            CertKind::PhoneSigning => 3,
            CertKind::PhoneAuth => 4,
        }
    }

    /// The kind for a code written by [`CertKind::code`].
    pub fn from_code(code: u8) -> Option<CertKind> {
        CertKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Position in [`CertKind::ALL`], for per-kind arrays.
    pub fn index(self) -> usize {
        usize::from(self.code() - 1)
    }

    /// Signing certificates carry the 4 information and a per-municipality CRL partition.
    pub fn is_signing(self) -> bool {
        matches!(self, CertKind::CardSigning | CertKind::PhoneSigning)
    }

    /// Certificates held on a smartphone's secure element.
    pub fn is_phone(self) -> bool {
        matches!(self, CertKind::PhoneSigning | CertKind::PhoneAuth)
    }
}

impl fmt::Display for CertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.issuer_id())
    }
}

impl FromStr for CertKind {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CertKind::ALL
            .into_iter()
            .find(|k| k.issuer_id() == s)
            .ok_or_else(|| ValidationError::UnknownIssuer(s.chars().take(32).collect()))
    }
}

/// Maximum length of a certificate serial number in octets (RFC 5280 §4.1.2.2).
pub const SERIAL_MAX_OCTETS: usize = 20;

/// A certificate serial number: a positive integer of at most 20 octets (RFC 5280).
///
/// Held as 20 big-endian octets, left-padded with zeros, so that byte order is
/// numeric order and the value can be a fixed-width storage key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial([u8; SERIAL_MAX_OCTETS]);

impl Serial {
    /// A serial from unsigned big-endian magnitude octets (leading zeros allowed).
    ///
    /// Rejects zero and anything whose DER INTEGER encoding would exceed 20 octets.
    pub fn from_be_bytes(bytes: &[u8]) -> Result<Serial, ValidationError> {
        let first = bytes.iter().position(|&b| b != 0);
        let Some(first) = first else {
            return Err(ValidationError::BadSerial("serial number must be positive"));
        };
        let mag = &bytes[first..];
        let der_len = mag.len() + usize::from(mag[0] & 0x80 != 0);
        if der_len > SERIAL_MAX_OCTETS {
            return Err(ValidationError::BadSerial(
                "serial number longer than 20 octets (RFC 5280 4.1.2.2)",
            ));
        }
        let mut out = [0u8; SERIAL_MAX_OCTETS];
        out[SERIAL_MAX_OCTETS - mag.len()..].copy_from_slice(mag);
        Ok(Serial(out))
    }

    /// A serial from the content octets of a DER INTEGER (two's complement, must be positive).
    pub fn from_der_integer(content: &[u8]) -> Result<Serial, ValidationError> {
        if content.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(ValidationError::BadSerial("serial number must be positive"));
        }
        Serial::from_be_bytes(content)
    }

    /// A serial from a non-zero integer.
    pub fn from_u128(v: u128) -> Result<Serial, ValidationError> {
        Serial::from_be_bytes(&v.to_be_bytes())
    }

    /// A serial from hexadecimal digits (an optional `0x` prefix and `:` separators allowed).
    pub fn from_hex(s: &str) -> Result<Serial, ValidationError> {
        let s = s.trim();
        let s = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        let digits: String = s.chars().filter(|c| *c != ':').collect();
        if digits.is_empty() || digits.len() > 2 * SERIAL_MAX_OCTETS + 2 {
            return Err(ValidationError::BadSerial(
                "serial number must be 1 to 40 hexadecimal digits",
            ));
        }
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes = hex::decode(padded)
            .map_err(|_| ValidationError::BadSerial("serial number is not hexadecimal"))?;
        Serial::from_be_bytes(&bytes)
    }

    /// The fixed-width, zero-padded big-endian form (a storage key).
    pub fn as_padded(&self) -> &[u8; SERIAL_MAX_OCTETS] {
        &self.0
    }

    /// A serial from its padded form, as written by [`Serial::as_padded`].
    pub fn from_padded(bytes: [u8; SERIAL_MAX_OCTETS]) -> Result<Serial, ValidationError> {
        Serial::from_be_bytes(&bytes)
    }

    /// The unsigned magnitude without leading zeros.
    pub fn magnitude(&self) -> &[u8] {
        let first = self
            .0
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(SERIAL_MAX_OCTETS - 1);
        &self.0[first..]
    }

    /// The content octets of the DER INTEGER that encodes this serial.
    pub fn to_der_integer(&self) -> Vec<u8> {
        let mag = self.magnitude();
        let mut v = Vec::with_capacity(mag.len() + 1);
        if mag[0] & 0x80 != 0 {
            v.push(0);
        }
        v.extend_from_slice(mag);
        v
    }

    /// Upper-case hexadecimal without leading zero octets, as openssl prints serials.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.magnitude())
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

impl FromStr for Serial {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Serial::from_hex(s)
    }
}

impl Serialize for Serial {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Serial {
    /// Accepts hex text, raw bytes or a sequence of octets, whatever the format
    /// claims: serde's buffering of internally tagged enums always claims to be
    /// human-readable, even when the bytes were written by a binary format.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Serial;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a serial number as hex text or octets")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Serial, E> {
                Serial::from_hex(v).map_err(E::custom)
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Serial, E> {
                Serial::from_be_bytes(v).map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Serial, A::Error> {
                let mut bytes = Vec::with_capacity(SERIAL_MAX_OCTETS);
                while let Some(b) = seq.next_element::<u8>()? {
                    if bytes.len() == SERIAL_MAX_OCTETS {
                        return Err(serde::de::Error::custom("serial longer than 20 octets"));
                    }
                    bytes.push(b);
                }
                Serial::from_be_bytes(&bytes).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Maximum length of an opaque id (holder or event), in bytes.
pub const ID_MAX_LEN: usize = 128;

fn check_opaque_id(s: &str, what: &'static str) -> Result<(), ValidationError> {
    if s.is_empty() || s.len() > ID_MAX_LEN {
        return Err(ValidationError::BadId {
            what,
            why: "must be 1 to 128 bytes",
        });
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(ValidationError::BadId {
            what,
            why: "may contain only ASCII letters, digits and - _ . :",
        });
    }
    Ok(())
}

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an id: 1 to 128 bytes of ASCII letters, digits and `-_.:`.
            pub fn new(s: impl Into<String>) -> Result<Self, ValidationError> {
                let s = s.into();
                check_opaque_id(&s, $what)?;
                Ok($name(s))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

opaque_id!(
    /// A holder's opaque id: the CN of their certificates. Not personal data.
    HolderId,
    "holder id"
);
opaque_id!(
    /// An event's id, unique per event: re-delivery of the same id is acknowledged, not re-applied.
    EventId,
    "event id"
);

opaque_id!(
    /// A platform operator (プラットフォーム事業者): the CN of its client certificate.
    OperatorId,
    "operator id"
);
opaque_id!(
    /// A service provider (a bank, 金融機関) an operator acts for; consents name it.
    ProviderId,
    "service provider id"
);

/// A CRL partition: the municipality code (全国地方公共団体コード, 6 digits) of a
/// signing certificate's CRL distribution point; [`PartitionId::WHOLE`] for
/// kinds whose CRL is not partitioned.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct PartitionId(pub u32);

impl PartitionId {
    /// The partition of certificates whose CRL is not split.
    pub const WHOLE: PartitionId = PartitionId(0);
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// A municipality: the CRL distribution point of the signing certificates it issues.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Municipality {
    /// The municipality code; the CRL partition id.
    pub code: PartitionId,
    /// Prefecture name, as written in the subject's first L and the CRL DP's OU.
    pub prefecture: String,
    /// Municipality name, as written in the subject's second L and the CRL DP's CN.
    pub city: String,
}

impl Municipality {
    /// Checks the code and the names (non-empty, at most 64 characters, no control characters).
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.code == PartitionId::WHOLE || self.code.0 > 999_999 {
            return Err(ValidationError::BadMunicipality("code must be 1 to 999999"));
        }
        for name in [&self.prefecture, &self.city] {
            let n = name.chars().count();
            if n == 0 || n > 64 || name.chars().any(char::is_control) {
                return Err(ValidationError::BadMunicipality(
                    "names must be 1 to 64 characters without control characters",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_encodings_round_trip() {
        let s = Serial::from_u128(0x80).unwrap();
        assert_eq!(s.to_der_integer(), vec![0x00, 0x80]);
        assert_eq!(s.to_hex(), "80");
        assert_eq!(Serial::from_hex("0x0080").unwrap(), s);
        assert_eq!(Serial::from_der_integer(&[0x00, 0x80]).unwrap(), s);
        assert!(Serial::from_der_integer(&[0x80]).is_err());
        assert!(Serial::from_u128(0).is_err());
        assert!(Serial::from_be_bytes(&[0xff; 20]).is_err());
        assert!(Serial::from_be_bytes(&[0x7f; 20]).is_ok());
        assert!(Serial::from_hex("zz").is_err());
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"80\"");
    }

    #[test]
    fn serial_order_is_numeric() {
        let a = Serial::from_u128(255).unwrap();
        let b = Serial::from_u128(256).unwrap();
        assert!(a < b);
        assert!(a.as_padded() < b.as_padded());
    }

    #[test]
    fn issuer_ids_round_trip() {
        for k in CertKind::ALL {
            assert_eq!(k.issuer_id().parse::<CertKind>().unwrap(), k);
            assert_eq!(CertKind::from_code(k.code()), Some(k));
            assert_eq!(CertKind::ALL[k.index()], k);
        }
        assert!("ca".parse::<CertKind>().is_err());
    }

    #[test]
    fn ids_reject_bad_text() {
        assert!(HolderId::new("H-0001").is_ok());
        assert!(HolderId::new("").is_err());
        assert!(HolderId::new("a b").is_err());
        assert!(EventId::new("x".repeat(129)).is_err());
    }
}
