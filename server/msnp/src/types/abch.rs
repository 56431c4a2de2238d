//! The values of the MSNP10+ address-book list model: [`Guid`]s naming contacts and groups,
//! [`GroupKey`] (a group as every dialect names it), and the [`ListStamp`] that replaces the
//! list version in `SYN`.

use std::fmt;

use crate::error::InvalidValue;

use super::GroupId;

/// A GUID as MSNP10+ names contacts (`C=`) and groups: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`,
/// written in lower-case hex, parsed in either case.
///
/// ```
/// use relive_msnp::types::Guid;
/// let g = Guid::parse("7B7F3A8E-0C41-4A3A-9D3A-2F4C2D1B9E10").unwrap();
/// assert_eq!(g.to_string(), "7b7f3a8e-0c41-4a3a-9d3a-2f4c2d1b9e10");
/// assert!(Guid::parse("7b7f3a8e0c414a3a9d3a2f4c2d1b9e10").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid([u8; 16]);

/// Where the dashes of a GUID's text form are.
const DASHES: [usize; 4] = [8, 13, 18, 23];

impl Guid {
    /// The all-zero GUID: what a decoder fills in where a dialect sends none.
    pub const NIL: Self = Self([0; 16]);

    /// The GUID with these bytes, in text order.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// A random (version 4, RFC 4122 variant) GUID from 16 random bytes.
    #[must_use]
    pub const fn from_random(mut bytes: [u8; 16]) -> Self {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Self(bytes)
    }

    /// The bytes, in text order.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Whether this is [`Guid::NIL`].
    #[must_use]
    pub fn is_nil(&self) -> bool {
        *self == Self::NIL
    }

    /// Parses the 36-character text form (hex digits in either case).
    ///
    /// # Errors
    /// [`InvalidValue`] for anything else.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let err = InvalidValue::new("GUID");
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(err);
        }
        let mut out = [0u8; 16];
        let mut nibbles = 0usize;
        for (i, &c) in b.iter().enumerate() {
            if DASHES.contains(&i) {
                if c != b'-' {
                    return Err(err);
                }
                continue;
            }
            let v = char::from(c).to_digit(16).ok_or(err.clone())?;
            // A hex digit is below 16; the cast cannot truncate.
            out[nibbles / 2] |= u8::try_from(v).unwrap_or(0) << (4 * (1 - nibbles % 2));
            nibbles += 1;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

from_str_via_parse!(Guid);

/// A contact group as every dialect names it: MSNP7–9 by its small number, MSNP10+ by its
/// GUID. Group 0 ("Other Contacts" in MSNP7–9) has no MSNP10+ form: there it means "no group".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct GroupKey {
    /// The MSNP7–9 id.
    pub id: GroupId,
    /// The MSNP10+ GUID.
    pub guid: Guid,
}

impl GroupKey {
    /// The key of group `id` whose GUID is `guid`.
    #[must_use]
    pub const fn new(id: GroupId, guid: Guid) -> Self {
        Self { id, guid }
    }

    /// Whether this is group 0, which MSNP10+ does not show.
    #[must_use]
    pub const fn is_group_zero(&self) -> bool {
        self.id.0 == 0
    }
}

/// The timestamp MSNP10+ `SYN` carries where MSNP2–9 carried the list version (PROTOCOL.md §8):
/// microseconds since the Unix epoch, written `2005-04-23T18:57:44.8130000-00:00`. Clients keep
/// it with their cached lists and send it back; equal stamps mean "nothing changed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ListStamp(pub u64);

/// Seconds in a day.
const DAY: u64 = 86_400;

impl ListStamp {
    /// The stamp of an account created at `created_unix` (seconds) whose list version is
    /// `version`: the creation time plus the version in microseconds. It moves forward with
    /// every change, as the version does, and survives restarts with it.
    #[must_use]
    pub const fn of_version(created_unix: u64, version: u32) -> Self {
        Self(
            created_unix
                .saturating_mul(1_000_000)
                .saturating_add(version as u64),
        )
    }

    /// Parses the form [`fmt::Display`] writes (offset `-00:00` or `Z`).
    ///
    /// # Errors
    /// [`InvalidValue`] for anything else.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let err = || InvalidValue::new("timestamp");
        let body = s
            .strip_suffix("-00:00")
            .or_else(|| s.strip_suffix("+00:00"))
            .or_else(|| s.strip_suffix('Z'))
            .ok_or_else(err)?;
        let b = body.as_bytes();
        let shape = b.len() == 27
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'.';
        if !shape {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u64, InvalidValue> {
            let t = &body[r];
            if t.bytes().all(|c| c.is_ascii_digit()) {
                t.parse().map_err(|_| err())
            } else {
                Err(err())
            }
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec, frac) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..27)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
            return Err(err());
        }
        if frac % 10 != 0 || y < 1970 {
            return Err(err());
        }
        let days = days_from_civil(y, mo, d);
        let secs = days * DAY + h * 3600 + mi * 60 + sec;
        Ok(Self(secs * 1_000_000 + frac / 10))
    }
}

impl fmt::Display for ListStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0 % 1_000_000;
        write!(
            f,
            "{}.{:07}-00:00",
            date_time(self.0 / 1_000_000),
            micros * 10
        )
    }
}

from_str_via_parse!(ListStamp);

/// `secs` (Unix time) as `YYYY-MM-DDTHH:MM:SSZ`, the form of WS-Trust lifetimes.
#[must_use]
pub fn utc_seconds(secs: u64) -> String {
    format!("{}Z", date_time(secs))
}

/// `secs` (Unix time) as `YYYY-MM-DDTHH:MM:SS` (UTC).
fn date_time(secs: u64) -> String {
    let (y, m, d) = civil_from_days(secs / DAY);
    let t = secs % DAY;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Year, month, day of the `days`-th day after 1970-01-01 (H. Hinnant's `civil_from_days`).
const fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// The inverse of [`civil_from_days`] for dates from 1970 on.
const fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_round_trip_in_lower_case() {
        let g = Guid::from_random([0xff; 16]);
        assert_eq!(g.to_string(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(Guid::parse(&g.to_string()), Ok(g));
        assert_eq!(
            Guid::NIL.to_string(),
            "00000000-0000-0000-0000-000000000000"
        );
        assert!(Guid::NIL.is_nil() && !g.is_nil());
        for bad in [
            "",
            "7b7f3a8e-0c41-4a3a-9d3a-2f4c2d1b9e1",
            "7b7f3a8e-0c41-4a3a-9d3a-2f4c2d1b9e100",
            "7b7f3a8e_0c41-4a3a-9d3a-2f4c2d1b9e10",
            "7b7f3a8e-0c41-4a3a-9d3a-2f4c2d1b9eg0",
            "+b7f3a8e-0c41-4a3a-9d3a-2f4c2d1b9e10",
        ] {
            assert!(Guid::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stamps_look_like_the_services_and_round_trip() {
        // 2005-04-23T18:57:44.813Z
        let s = ListStamp(1_114_282_664_813_000);
        assert_eq!(s.to_string(), "2005-04-23T18:57:44.8130000-00:00");
        assert_eq!(ListStamp::parse(&s.to_string()), Ok(s));
        assert_eq!(
            ListStamp(0).to_string(),
            "1970-01-01T00:00:00.0000000-00:00"
        );
        assert_eq!(
            ListStamp::parse("2000-02-29T23:59:59.9999990Z"),
            Ok(ListStamp(951_868_799_999_999))
        );
        assert!(ListStamp::parse("2005-04-23T18:57:44.8130000-07:00").is_err());
        assert!(ListStamp::parse("0").is_err());
        // Version 7 of an account made at 2024-01-01T00:00:00Z.
        let v = ListStamp::of_version(1_704_067_200, 7);
        assert_eq!(v.to_string(), "2024-01-01T00:00:00.0000070-00:00");
        assert!(ListStamp::of_version(1_704_067_200, 8) > v);
        assert_eq!(utc_seconds(1_131_624_000), "2005-11-10T12:00:00Z");
        for day in (0..80_000u64).step_by(997) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }
}
