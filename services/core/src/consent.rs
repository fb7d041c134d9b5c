//! Consent (同意) to the latest-4-information service, and the answers the
//! service gives (no I/O: the `shikko-info` crate stores and serves them).
//!
//! A consent is given by a holder to one service provider (a bank), for all
//! or some of the 4 items, by signing a [`consent_statement`] with their card
//! signing certificate. It is keyed by the holder, not by a certificate, so it
//! survives any number of revocations; it runs 10 years counted from the day
//! after it was granted (初日不算入, days in Japan time), and can be withdrawn at
//! any time. A new consent is a new record that replaces the old one.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::holder::FourInfo;
use crate::ids::{HolderId, ProviderId, Serial};
use crate::time::UnixTime;

/// Japan Standard Time, UTC+9: the days a consent's term is counted in.
const JST_OFFSET_SECS: i64 = 9 * 3600;
/// The term of a consent, in years.
pub const CONSENT_YEARS: i64 = 10;

/// Which of the 4 items a consent covers (and an answer carries).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct InfoItems(u8);

impl InfoItems {
    /// 氏名.
    pub const NAME: InfoItems = InfoItems(1);
    /// 住所.
    pub const ADDRESS: InfoItems = InfoItems(2);
    /// 生年月日.
    pub const DATE_OF_BIRTH: InfoItems = InfoItems(4);
    /// 性別.
    pub const SEX: InfoItems = InfoItems(8);
    /// All four.
    pub const ALL: InfoItems = InfoItems(15);
    /// None.
    pub const NONE: InfoItems = InfoItems(0);

    /// The four, in the order of [`crate::FourInfo::item_digests`].
    pub const ORDER: [InfoItems; 4] = [
        InfoItems::NAME,
        InfoItems::ADDRESS,
        InfoItems::DATE_OF_BIRTH,
        InfoItems::SEX,
    ];

    const NAMES: [(InfoItems, &'static str); 4] = [
        (InfoItems::NAME, "name"),
        (InfoItems::ADDRESS, "address"),
        (InfoItems::DATE_OF_BIRTH, "date_of_birth"),
        (InfoItems::SEX, "sex"),
    ];

    /// From the stored bits; unknown bits are an error.
    pub fn from_bits(bits: u8) -> Result<InfoItems, ValidationError> {
        if bits & !InfoItems::ALL.0 != 0 {
            return Err(ValidationError::BadConsent("unknown item bits"));
        }
        Ok(InfoItems(bits))
    }

    /// The bits: name 1, address 2, date of birth 4, sex 8.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether every item of `other` is in `self`.
    pub fn contains(self, other: InfoItems) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no item is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The items named `name`, `address`, `date_of_birth`, `sex` (or `all`).
    pub fn parse_list(names: &[&str]) -> Result<InfoItems, ValidationError> {
        let mut bits = 0;
        for n in names {
            match InfoItems::NAMES.iter().find(|(_, s)| s == n) {
                Some((item, _)) => bits |= item.0,
                None if *n == "all" => bits |= InfoItems::ALL.0,
                None => {
                    return Err(ValidationError::BadConsent(
                        "items are name, address, date_of_birth, sex or all",
                    ));
                }
            }
        }
        if bits == 0 {
            return Err(ValidationError::BadConsent(
                "a consent covers at least one item",
            ));
        }
        Ok(InfoItems(bits))
    }

    /// The item names, in the fixed order name, address, date_of_birth, sex.
    pub fn names(self) -> Vec<&'static str> {
        InfoItems::NAMES
            .iter()
            .filter(|(i, _)| self.contains(*i))
            .map(|(_, n)| *n)
            .collect()
    }

    /// Only the items of `info` this set covers.
    pub fn select(self, info: &FourInfo) -> ConsentedInfo {
        ConsentedInfo {
            name: self.contains(InfoItems::NAME).then(|| info.name.clone()),
            address: self
                .contains(InfoItems::ADDRESS)
                .then(|| info.address.clone()),
            date_of_birth: self
                .contains(InfoItems::DATE_OF_BIRTH)
                .then(|| info.date_of_birth.encode()),
            sex: self
                .contains(InfoItems::SEX)
                .then(|| info.sex.code().to_string()),
        }
    }
}

impl fmt::Debug for InfoItems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoItems({})", self.names().join(","))
    }
}

impl fmt::Display for InfoItems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// The consented items of a holder's latest 4 information, in the JPKI
/// encodings (date of birth `EYYYYMMDD`, sex `1`/`2`/`3`). `Debug` redacts.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ConsentedInfo {
    /// 氏名, when consented.
    pub name: Option<String>,
    /// 住所, when consented.
    pub address: Option<String>,
    /// 生年月日, when consented.
    pub date_of_birth: Option<String>,
    /// 性別, when consented.
    pub sex: Option<String>,
}

impl fmt::Debug for ConsentedInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConsentedInfo(<redacted>)")
    }
}

/// The longest challenge a statement carries (the service issues 82).
pub const MAX_CHALLENGE_LEN: usize = 128;

/// Whether `challenge` can stand in a statement: 1 to [`MAX_CHALLENGE_LEN`]
/// characters of base64url or hex (`A-Z a-z 0-9 - _`), so that no value can
/// add a line to the signed text.
pub fn challenge_is_well_formed(challenge: &str) -> bool {
    !challenge.is_empty()
        && challenge.len() <= MAX_CHALLENGE_LEN
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The text a holder signs with their card signing certificate to consent:
/// UTF-8, one field per line, every field the consent depends on, and the
/// challenge the service issued to the operator for this signature (single
/// use, valid minutes): a signed statement cannot be replayed later, nor
/// through another operator. The caller checks the challenge with
/// [`challenge_is_well_formed`] first.
pub fn consent_statement(
    provider: &ProviderId,
    items: InfoItems,
    signing_serial: &Serial,
    granted_at: UnixTime,
    challenge: &str,
) -> Vec<u8> {
    format!(
        "shikko consent v2\n\
         最新の利用者情報の提供に同意します\n\
         provider: {provider}\n\
         items: {items}\n\
         signing certificate: {}\n\
         granted at: {}\n\
         challenge: {challenge}\n",
        signing_serial.to_hex(),
        granted_at.0
    )
    .into_bytes()
}

/// When a consent granted at `granted_at` ends: counted from the next day
/// (Japan time), 10 years, ending at midnight (JST) that starts the day after
/// the term (a consent granted 2026-05-10 runs through 2036-05-10 JST).
/// A term that would end on a 29 February of a common year ends on 1 March.
pub fn consent_expiry(granted_at: UnixTime) -> UnixTime {
    let local = UnixTime(granted_at.0 + JST_OFFSET_SECS);
    let (y, m, d, ..) = local.to_civil();
    // Midnight (JST) at the start of the day after the anniversary of the
    // first counted day: the term covers 10 years of whole days.
    let first_day = UnixTime::from_civil(y, m, d).plus_secs(86_400);
    let (fy, fm, fd, ..) = first_day.to_civil();
    let end_local = UnixTime::from_civil(fy + CONSENT_YEARS, fm, fd);
    UnixTime(end_local.0 - JST_OFFSET_SECS)
}

/// Where a consent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConsentState {
    /// In force.
    Active,
    /// Withdrawn by the holder at the given time: nothing more is provided.
    Withdrawn {
        /// When.
        at: UnixTime,
    },
    /// Replaced by a newer consent of the same holder to the same provider.
    Replaced {
        /// When.
        at: UnixTime,
    },
}

/// A consent record (kept by the bank, the operator and the authority alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Its id: hex of the SHA-256 of the holder's signature (a replayed
    /// signature is the same consent, never a new one).
    pub id: String,
    /// The holder.
    pub holder: HolderId,
    /// The service provider it is given to.
    pub provider: ProviderId,
    /// The items it covers.
    pub items: InfoItems,
    /// The card signing certificate that signed it.
    pub signing_serial: Serial,
    /// When the holder signed it.
    pub granted_at: UnixTime,
    /// When it ends by itself ([`consent_expiry`]).
    pub expires_at: UnixTime,
    /// Active, withdrawn or replaced.
    pub state: ConsentState,
    /// The kind of the certificate that signed it: card or smartphone
    /// signing (records written before read card).
    #[serde(default = "card_signing")]
    pub signing_kind: crate::ids::CertKind,
}

fn card_signing() -> crate::ids::CertKind {
    crate::ids::CertKind::CardSigning
}

impl Consent {
    /// Whether it lets the provider receive data at `now`.
    pub fn in_force(&self, now: UnixTime) -> bool {
        self.state == ConsentState::Active && now >= self.granted_at && now < self.expires_at
    }
}

/// The answer to a query for one serial, each distinct. Only `Changed` carries
/// data, and only `Changed` is billable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoOutcome {
    /// The certificate is still valid: nothing changed, no data, no fee.
    Unchanged,
    /// A newer signing certificate exists and at least one consented item
    /// changed: the consented items and its serial (billable).
    Changed {
        /// The consented items of the latest 4 information.
        info: ConsentedInfo,
        /// The holder's current signing certificate (of the kind asked about).
        current_serial: Serial,
    },
    /// A newer signing certificate exists but none of the consented items
    /// changed (renewal, a new card or phone): its serial only, no data, no
    /// fee.
    Renewed {
        /// The holder's current signing certificate (of the kind asked about).
        current_serial: Serial,
    },
    /// No good signing certificate of the kind asked about now (revoked, on
    /// hold or expired, and no newer one issued yet).
    NoNewCertificate,
    /// The holder died (死亡): no data.
    Deceased,
    /// The holder emigrated (国外転出): no data.
    Emigrated,
    /// No consent in force from this holder to this provider.
    NoConsent,
    /// Not a card signing certificate the registry knows.
    UnknownSerial,
}

impl InfoOutcome {
    /// A stable name, for metrics and the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            InfoOutcome::Unchanged => "unchanged",
            InfoOutcome::Changed { .. } => "changed",
            InfoOutcome::Renewed { .. } => "renewed",
            InfoOutcome::NoNewCertificate => "no_new_certificate",
            InfoOutcome::Deceased => "deceased",
            InfoOutcome::Emigrated => "emigrated",
            InfoOutcome::NoConsent => "no_consent",
            InfoOutcome::UnknownSerial => "unknown_serial",
        }
    }

    /// Whether it is a provision (billable: 20 yen at J-LIS).
    pub fn billable(&self) -> bool {
        matches!(self, InfoOutcome::Changed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::holder::{DateOfBirth, Sex};

    fn jst(y: i64, m: u8, d: u8, h: i64) -> UnixTime {
        UnixTime(UnixTime::from_civil(y, m, d).0 + h * 3600 - JST_OFFSET_SECS)
    }

    #[test]
    fn term_counts_from_the_next_japanese_day() {
        // Granted at 10:00 JST on 2026-05-10: through 2036-05-10, ends at
        // midnight JST starting 2036-05-11.
        assert_eq!(consent_expiry(jst(2026, 5, 10, 10)), jst(2036, 5, 11, 0));
        // 23:30 JST is still 2026-05-10 in Japan (14:30 UTC).
        assert_eq!(consent_expiry(jst(2026, 5, 10, 23)), jst(2036, 5, 11, 0));
        // 00:30 JST on 2026-05-11 is 15:30 UTC on 2026-05-10: a Japanese day later.
        assert_eq!(consent_expiry(jst(2026, 5, 11, 0)), jst(2036, 5, 12, 0));
        // Granted 2028-02-28: first day 2028-02-29, which 2038 does not have.
        assert_eq!(consent_expiry(jst(2028, 2, 28, 12)), jst(2038, 3, 1, 0));
        // Year end.
        assert_eq!(consent_expiry(jst(2026, 12, 31, 9)), jst(2037, 1, 1, 0));
    }

    #[test]
    fn items_parse_select_and_name() {
        let items = InfoItems::parse_list(&["address", "name"]).unwrap();
        assert_eq!(items.names(), vec!["name", "address"]);
        assert_eq!(InfoItems::parse_list(&["all"]).unwrap(), InfoItems::ALL);
        assert!(InfoItems::parse_list(&[]).is_err());
        assert!(InfoItems::parse_list(&["phone"]).is_err());
        assert!(InfoItems::from_bits(16).is_err());
        let info = FourInfo {
            name: "山田太郎".into(),
            address: "東京都千代田区1-1".into(),
            date_of_birth: DateOfBirth::parse("319800101").unwrap(),
            sex: Sex::Male,
        };
        let only = items.select(&info);
        assert_eq!(only.name.as_deref(), Some("山田太郎"));
        assert_eq!(only.address.as_deref(), Some("東京都千代田区1-1"));
        assert_eq!((only.date_of_birth, only.sex), (None, None));
        let all = InfoItems::ALL.select(&info);
        assert_eq!(all.date_of_birth.as_deref(), Some("319800101"));
        assert_eq!(all.sex.as_deref(), Some("1"));
        assert!(!format!("{all:?}").contains("山田"));
    }

    #[test]
    fn statement_binds_every_field() {
        let p = ProviderId::new("bank-1").unwrap();
        let s = Serial::from_u128(0x4a50).unwrap();
        let t = UnixTime(1_800_000_000);
        let base = consent_statement(&p, InfoItems::ALL, &s, t, "abc");
        for other in [
            consent_statement(
                &ProviderId::new("bank-2").unwrap(),
                InfoItems::ALL,
                &s,
                t,
                "abc",
            ),
            consent_statement(&p, InfoItems::NAME, &s, t, "abc"),
            consent_statement(
                &p,
                InfoItems::ALL,
                &Serial::from_u128(0x4a51).unwrap(),
                t,
                "abc",
            ),
            consent_statement(&p, InfoItems::ALL, &s, UnixTime(1_800_000_001), "abc"),
            consent_statement(&p, InfoItems::ALL, &s, t, "abd"),
        ] {
            assert_ne!(base, other);
        }
        assert!(
            String::from_utf8(base)
                .unwrap()
                .ends_with("challenge: abc\n")
        );
    }

    #[test]
    fn only_base64url_challenges_are_well_formed() {
        assert!(challenge_is_well_formed("aZ09-_"));
        assert!(challenge_is_well_formed(&"a".repeat(MAX_CHALLENGE_LEN)));
        for bad in ["", "a\nprovider: x", "a b", "a=", "a/b", "ä"] {
            assert!(!challenge_is_well_formed(bad), "{bad:?}");
        }
        assert!(!challenge_is_well_formed(
            &"a".repeat(MAX_CHALLENGE_LEN + 1)
        ));
    }

    #[test]
    fn in_force_only_while_active_and_in_term() {
        let granted = UnixTime(1_800_000_000);
        let mut c = Consent {
            signing_kind: crate::ids::CertKind::CardSigning,
            id: "x".into(),
            holder: HolderId::new("H1").unwrap(),
            provider: ProviderId::new("bank-1").unwrap(),
            items: InfoItems::ALL,
            signing_serial: Serial::from_u128(1).unwrap(),
            granted_at: granted,
            expires_at: consent_expiry(granted),
            state: ConsentState::Active,
        };
        assert!(c.in_force(granted));
        assert!(c.in_force(UnixTime(c.expires_at.0 - 1)));
        assert!(!c.in_force(c.expires_at));
        assert!(!c.in_force(UnixTime(granted.0 - 1)));
        c.state = ConsentState::Withdrawn {
            at: UnixTime(granted.0 + 10),
        };
        assert!(!c.in_force(UnixTime(granted.0 + 20)));
    }
}
