//! Time as whole seconds since the Unix epoch, UTC: the resolution of X.509 times.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// The current time from the system clock.
    pub fn now() -> UnixTime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UnixTime(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    /// This time plus a number of seconds, saturating.
    pub fn plus_secs(self, secs: i64) -> UnixTime {
        UnixTime(self.0.saturating_add(secs))
    }

    /// The civil UTC date and time: (year, month, day, hour, minute, second).
    pub fn to_civil(self) -> (i64, u8, u8, u8, u8, u8) {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        // Howard Hinnant's days_from_civil inverse.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        (
            y,
            m as u8,
            d as u8,
            (secs / 3600) as u8,
            (secs % 3600 / 60) as u8,
            (secs % 60) as u8,
        )
    }

    /// The time at midnight UTC of a civil date.
    pub fn from_civil(year: i64, month: u8, day: u8) -> UnixTime {
        let y = year - i64::from(month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        UnixTime((era * 146_097 + doe - 719_468) * 86_400)
    }
}

impl fmt::Display for UnixTime {
    /// RFC 3339, UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s) = self.to_civil();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

impl fmt::Debug for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(UnixTime(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(UnixTime(1_700_000_000).to_string(), "2023-11-14T22:13:20Z");
        let t = UnixTime::from_civil(2024, 2, 29);
        assert_eq!(t.to_string(), "2024-02-29T00:00:00Z");
        assert_eq!(UnixTime::from_civil(1969, 12, 31).0, -86_400);
    }
}
