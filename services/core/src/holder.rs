//! Holders and their 4 information (基本4情報), in the JPKI encodings.
//!
//! `Debug` for [`FourInfo`] never prints the data: personal data stays out of logs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::{CertKind, HolderId, Serial};
use crate::time::UnixTime;

/// Maximum length of the address, in characters (JPKI profile).
pub const ADDRESS_MAX_CHARS: usize = 200;
/// Maximum length of the name, in characters.
pub const NAME_MAX_CHARS: usize = 100;

/// Sex as encoded in the signing certificate: 1 male, 2 female, 3 unknown.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Sex {
    /// 1
    Male,
    /// 2
    Female,
    /// 3
    Unknown,
}

impl Sex {
    /// The JPKI code: `1`, `2` or `3`.
    pub fn code(self) -> u8 {
        match self {
            Sex::Male => 1,
            Sex::Female => 2,
            Sex::Unknown => 3,
        }
    }
}

impl TryFrom<u8> for Sex {
    type Error = ValidationError;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        match v {
            1 => Ok(Sex::Male),
            2 => Ok(Sex::Female),
            3 => Ok(Sex::Unknown),
            _ => Err(ValidationError::BadFourInfo("sex must be 1, 2 or 3")),
        }
    }
}

impl From<Sex> for u8 {
    fn from(s: Sex) -> u8 {
        s.code()
    }
}

impl fmt::Debug for Sex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sex(<redacted>)")
    }
}

/// A date of birth in the JPKI form `EYYYYMMDD`: a Japanese era digit
/// (1 Meiji, 2 Taisho, 3 Showa, 4 Heisei, 5 Reiwa) and the Gregorian date.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DateOfBirth {
    era: u8,
    year: u16,
    month: u8,
    day: u8,
}

impl DateOfBirth {
    /// A date, checked: era 1 to 5, a real calendar day.
    pub fn new(era: u8, year: u16, month: u8, day: u8) -> Result<Self, ValidationError> {
        if !(1..=5).contains(&era) {
            return Err(ValidationError::BadFourInfo(
                "date of birth era must be 1 to 5",
            ));
        }
        if !(1868..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(ValidationError::BadFourInfo("date of birth out of range"));
        }
        let leap =
            (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day == 0 || day > days {
            return Err(ValidationError::BadFourInfo(
                "date of birth is not a calendar day",
            ));
        }
        Ok(DateOfBirth {
            era,
            year,
            month,
            day,
        })
    }

    /// The JPKI encoding, `EYYYYMMDD`.
    pub fn encode(&self) -> String {
        format!(
            "{}{:04}{:02}{:02}",
            self.era, self.year, self.month, self.day
        )
    }

    /// Parses `EYYYYMMDD`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        const BAD: ValidationError =
            ValidationError::BadFourInfo("date of birth must be EYYYYMMDD (9 digits)");
        if s.len() != 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BAD);
        }
        let n = |r: std::ops::Range<usize>| s[r].parse::<u16>().map_err(|_| BAD);
        DateOfBirth::new(n(0..1)? as u8, n(1..5)?, n(5..7)? as u8, n(7..9)? as u8)
    }
}

impl TryFrom<String> for DateOfBirth {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DateOfBirth::parse(&s)
    }
}

impl From<DateOfBirth> for String {
    fn from(d: DateOfBirth) -> String {
        d.encode()
    }
}

impl fmt::Debug for DateOfBirth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DateOfBirth(<redacted>)")
    }
}

/// The 4 information carried by a signing certificate: name, address, date of birth, sex.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FourInfo {
    /// 氏名
    pub name: String,
    /// 住所, up to 200 characters.
    pub address: String,
    /// 生年月日
    pub date_of_birth: DateOfBirth,
    /// 性別
    pub sex: Sex,
}

impl FourInfo {
    /// Checks lengths and characters; the error names the field, never its value.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let name_len = self.name.chars().count();
        if name_len == 0 || name_len > NAME_MAX_CHARS || self.name.chars().any(char::is_control) {
            return Err(ValidationError::BadFourInfo(
                "name must be 1 to 100 characters without control characters",
            ));
        }
        let addr_len = self.address.chars().count();
        if addr_len == 0
            || addr_len > ADDRESS_MAX_CHARS
            || self.address.chars().any(char::is_control)
        {
            return Err(ValidationError::BadFourInfo(
                "address must be 1 to 200 characters without control characters",
            ));
        }
        Ok(())
    }
}

impl FourInfo {
    /// A digest of each item (name, address, date of birth, sex, in
    /// [`crate::InfoItems::ORDER`]): what a signing certificate's record
    /// keeps of the information it carries, so that an answer can tell a
    /// newer certificate with a changed item from one without. FNV-1a, 64
    /// bits, over a per-item tag and the item's JPKI encoding: stable
    /// across versions (it is stored), not a secret and not meant to be
    /// one (the information itself sits beside it in the same store).
    pub fn item_digests(&self) -> [u64; 4] {
        fn fnv(tag: u8, bytes: &[u8]) -> u64 {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in std::iter::once(tag).chain(bytes.iter().copied()) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h
        }
        [
            fnv(1, self.name.as_bytes()),
            fnv(2, self.address.as_bytes()),
            fnv(3, self.date_of_birth.encode().as_bytes()),
            fnv(4, &[self.sex.code()]),
        ]
    }
}

impl fmt::Debug for FourInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FourInfo(<redacted>)")
    }
}

/// Whether a holder can still be issued certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HolderState {
    /// Living and resident.
    Active,
    /// Died (死亡) at the given time; every certificate revoked.
    Deceased {
        /// When the death was recorded.
        at: UnixTime,
    },
    /// Emigrated (国外転出); every certificate revoked, the card user-authentication one may be kept.
    Emigrated {
        /// When the emigration was recorded.
        at: UnixTime,
    },
}

impl HolderState {
    /// `deceased` or `emigrated` for inactive holders.
    pub fn inactive_name(&self) -> Option<&'static str> {
        match self {
            HolderState::Active => None,
            HolderState::Deceased { .. } => Some("deceased"),
            HolderState::Emigrated { .. } => Some("emigrated"),
        }
    }
}

/// What the registry knows of a holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderRecord {
    /// The holder's opaque id.
    pub id: HolderId,
    /// The latest 4 information, once a signing certificate was issued.
    pub four_info: Option<FourInfo>,
    /// Active, deceased or emigrated.
    pub state: HolderState,
    /// The live (good or on hold) certificate of each kind, indexed by [`CertKind::index`].
    pub live: [Option<Serial>; 4],
    /// The card signing serial revoked by a 4-information change whose successor
    /// is not issued yet; the next card signing issuance is linked from it.
    pub awaiting_successor: Option<Serial>,
}

impl HolderRecord {
    /// A new, active holder with no certificates.
    pub fn new(id: HolderId) -> Self {
        HolderRecord {
            id,
            four_info: None,
            state: HolderState::Active,
            live: [None; 4],
            awaiting_successor: None,
        }
    }

    /// The live certificate of a kind (it may have expired since: see
    /// [`crate::person`] for the current one).
    pub fn live(&self, kind: CertKind) -> Option<Serial> {
        self.live[kind.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_of_birth_round_trips_and_checks_calendar() {
        assert!(
            DateOfBirth::parse("319870229").is_err(),
            "1987 is not a leap year"
        );
        assert!(
            DateOfBirth::parse("319880229").is_ok(),
            "1988 is a leap year"
        );
        assert!(
            DateOfBirth::parse("519000229").is_err(),
            "1900 is not a leap year"
        );
        let ok = DateOfBirth::parse("319880301").unwrap();
        assert_eq!(ok.encode(), "319880301");
        assert!(DateOfBirth::parse("520240229").is_ok());
        assert!(DateOfBirth::parse("620240101").is_err());
        assert!(DateOfBirth::parse("5202401").is_err());
    }

    #[test]
    fn debug_never_prints_personal_data() {
        let info = FourInfo {
            name: "山田太郎".into(),
            address: "東京都千代田区".into(),
            date_of_birth: DateOfBirth::parse("319800101").unwrap(),
            sex: Sex::Male,
        };
        let s = format!(
            "{info:?} {:?}",
            HolderRecord {
                four_info: Some(info.clone()),
                ..HolderRecord::new(HolderId::new("H1").unwrap())
            }
        );
        assert!(!s.contains("山田") && !s.contains("東京") && !s.contains("1980"));
        assert!(info.validate().is_ok());
        let long = FourInfo {
            address: "あ".repeat(201),
            ..info
        };
        assert!(long.validate().is_err());
    }
}
