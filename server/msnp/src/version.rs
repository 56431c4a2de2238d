//! Protocol dialects and the single table of what changed between them.
//!
//! [`Capabilities::for_version`] is the only place in the workspace that knows which dialect
//! introduced or removed what (PROTOCOL.md §2.1, §6, §8). Handlers never compare version numbers;
//! encoders branch on these flags.

use std::fmt;
use std::ops::RangeInclusive;

/// A negotiated MSNP dialect, ordered by number (`MSNP2 < MSNP9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion(u8);

impl ProtocolVersion {
    /// MSNP2 (MSN 1.0).
    pub const MSNP2: Self = Self(2);
    /// MSNP3 (MSN 2.0).
    pub const MSNP3: Self = Self(3);
    /// MSNP4 (MSN 2.1/2.2).
    pub const MSNP4: Self = Self(4);
    /// MSNP5 (MSN 3.0/3.5).
    pub const MSNP5: Self = Self(5);
    /// MSNP6 (MSN 3.6).
    pub const MSNP6: Self = Self(6);
    /// MSNP7 (MSN 4.5–4.7).
    pub const MSNP7: Self = Self(7);
    /// MSNP8 (MSN 5.0).
    pub const MSNP8: Self = Self(8);
    /// MSNP9 (MSN 6.0).
    pub const MSNP9: Self = Self(9);
    /// MSNP10 (MSN 6.1/6.2); only partly modelled (see [`Capabilities`]).
    pub const MSNP10: Self = Self(10);
    /// MSNP11 (MSN 7.0); only partly modelled.
    pub const MSNP11: Self = Self(11);

    /// Every dialect this crate can parse from `VER`.
    pub const KNOWN: RangeInclusive<Self> = Self::MSNP2..=Self::MSNP11;
    /// The dialects whose commands this crate fully models (MSNP2–MSNP9).
    pub const IMPLEMENTED: RangeInclusive<Self> = Self::MSNP2..=Self::MSNP9;

    /// The dialect with number `n`, if known.
    #[must_use]
    pub fn new(n: u8) -> Option<Self> {
        Self::KNOWN.contains(&Self(n)).then_some(Self(n))
    }

    /// The dialect number (`8` for MSNP8).
    #[must_use]
    pub const fn number(self) -> u8 {
        self.0
    }

    /// Parses `MSNPn` case-insensitively; `None` for unknown dialects and other tokens (`CVR0`).
    ///
    /// ```
    /// use relive_msnp::version::ProtocolVersion;
    /// assert_eq!(ProtocolVersion::parse("msnp8"), Some(ProtocolVersion::MSNP8));
    /// assert_eq!(ProtocolVersion::parse("MSNP99"), None);
    /// ```
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let prefix = s.get(..4)?;
        if !prefix.eq_ignore_ascii_case("MSNP") {
            return None;
        }
        let digits = &s[4..];
        if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Self::new(digits.parse().ok()?)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MSNP{}", self.0)
    }
}

/// The highest dialect both in `offered` and in `supported`, if any.
#[must_use]
pub fn negotiate(
    offered: &[ProtocolVersion],
    supported: RangeInclusive<ProtocolVersion>,
) -> Option<ProtocolVersion> {
    offered
        .iter()
        .copied()
        .filter(|v| supported.contains(v))
        .max()
}

/// The shape of a `XFR ... NS` referral (PROTOCOL.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XfrNsForm {
    /// `XFR trid NS <addr>` (MSNP2).
    Bare,
    /// `XFR trid NS <addr> 0` (MSNP3–MSNP6).
    TrailingZero,
    /// `XFR trid NS <addr> 0 <current-addr>` (MSNP7+).
    ZeroAndCurrent,
}

/// What the initial profile message (`text/x-msmsgsprofile`) contains (PROTOCOL.md §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProfileGeneration {
    /// `LoginTime` only (MSNP2).
    LoginTimeOnly,
    /// Passport fields added (MSNP3–MSNP7).
    PassportFields,
    /// `ClientIP` / `ClientPort` added (MSNP8+).
    ClientAddress,
}

/// How the `SYN` list dump is laid out (PROTOCOL.md §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SynGeneration {
    /// MSNP2–4: GTC, BLP, LST per list; all lines carry trid and version.
    First,
    /// MSNP5–6: as first, plus PRP after BLP and BPR after LST entries.
    Second,
    /// MSNP7: as second, plus LSG group lines and FL group lists.
    Third,
    /// MSNP8+: counts in `SYN`, no trid/version on sub-lines, one LST per contact with a bitmask.
    /// (The MSNP10 ABCH form is not modelled yet.)
    Bitmask,
}

/// Everything that differs between dialects, derived from the version alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // a flag table is the point of this type
pub struct Capabilities {
    /// The dialect these capabilities describe.
    pub version: ProtocolVersion,
    /// Shape of `XFR NS`.
    pub xfr_ns_form: XfrNsForm,
    /// `CVR`/`SND` carry a client codebase parameter (MSNP4+).
    pub cvr_codebase: bool,
    /// `CVR` carries the user handle as 8th parameter (MSNP8+).
    pub cvr_handle: bool,
    /// `CVR` must come right after `VER`, before `USR` (MSNP8+).
    pub cvr_before_usr: bool,
    /// Clear-text `CTP` authentication allowed (MSNP2 only).
    pub ctp_allowed: bool,
    /// `MD5` authentication and `INF` allowed (MSNP2–MSNP7); otherwise they close the connection.
    pub md5_allowed: bool,
    /// Passport 1.4 `TWN` authentication (MSNP8+).
    pub twn: bool,
    /// `USR OK` carries the friendly name (MSNP2–MSNP9).
    pub usr_ok_name: bool,
    /// `USR OK` carries the "verified" flag (MSNP6+).
    pub usr_ok_verified: bool,
    /// `USR OK` carries the "restricted" flag (MSNP8+).
    pub usr_ok_restricted: bool,
    /// Profile message contents.
    pub profile: ProfileGeneration,
    /// `SYN` dump layout.
    pub syn: SynGeneration,
    /// Contact groups: `LSG`, `ADG`, `RMG`, `REG`, group ids on `ADD`/`REM`/`LST` (MSNP7+).
    pub groups: bool,
    /// Phone properties: `PRP`, `BPR` (MSNP5+).
    pub phone_props: bool,
    /// Server challenges `CHL`/`QRY` (MSNP6+).
    pub chl_qry: bool,
    /// Client capabilities in `CHG`/`ILN`/`NLN` (MSNP8+).
    pub presence_caps: bool,
    /// MSNObject as optional last parameter of `CHG`/`ILN`/`NLN` (MSNP9+).
    pub msn_object: bool,
    /// `QNG` carries the seconds until the next ping (MSNP9+).
    pub qng_seconds: bool,
    /// SB `MSG` ack mode `D` (MSNP9+).
    pub msg_ack_d: bool,
    /// Client-initiated `LST`/`LSG` allowed (MSNP2–MSNP8).
    pub client_list_query: bool,
    /// `ADD`/`REA` exist (MSNP2–MSNP9; replaced by `ADC`/`PRP MFN` in MSNP10).
    pub add_rea: bool,
    /// `PAG` paging (MSNP5–MSNP8).
    pub pag: bool,
    /// `NOT` notifications and `SDC` (MSNP5+).
    pub notifications: bool,
    /// `IPG` incoming pages (MSNP6+).
    pub ipg: bool,
    /// `IMS` and the `URL` site id (MSNP3+).
    pub ims: bool,
    /// `SND` invite e-mail (MSNP2–MSNP4).
    pub snd: bool,
    /// `FND` directory search (MSNP2–MSNP7).
    pub fnd: bool,
    /// Error `502` (command disabled) understood (MSNP7+).
    pub error_502: bool,
}

impl Capabilities {
    /// The capabilities of dialect `v`.
    #[must_use]
    pub fn for_version(v: ProtocolVersion) -> Self {
        let n = v.number();
        Self {
            version: v,
            xfr_ns_form: match n {
                2 => XfrNsForm::Bare,
                3..=6 => XfrNsForm::TrailingZero,
                _ => XfrNsForm::ZeroAndCurrent,
            },
            cvr_codebase: n >= 4,
            cvr_handle: n >= 8,
            cvr_before_usr: n >= 8,
            ctp_allowed: n == 2,
            md5_allowed: n <= 7,
            twn: n >= 8,
            usr_ok_name: n <= 9,
            usr_ok_verified: n >= 6,
            usr_ok_restricted: n >= 8,
            profile: match n {
                2 => ProfileGeneration::LoginTimeOnly,
                3..=7 => ProfileGeneration::PassportFields,
                _ => ProfileGeneration::ClientAddress,
            },
            syn: match n {
                2..=4 => SynGeneration::First,
                5 | 6 => SynGeneration::Second,
                7 => SynGeneration::Third,
                _ => SynGeneration::Bitmask,
            },
            groups: n >= 7,
            phone_props: n >= 5,
            chl_qry: n >= 6,
            presence_caps: n >= 8,
            msn_object: n >= 9,
            qng_seconds: n >= 9,
            msg_ack_d: n >= 9,
            client_list_query: n <= 8,
            add_rea: n <= 9,
            pag: (5..=8).contains(&n),
            notifications: n >= 5,
            ipg: n >= 6,
            ims: n >= 3,
            snd: n <= 4,
            fnd: n <= 7,
            error_502: n >= 7,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        for n in 2..=11 {
            let v = ProtocolVersion::new(n).unwrap();
            assert_eq!(ProtocolVersion::parse(&v.to_string()), Some(v));
            assert_eq!(
                ProtocolVersion::parse(&v.to_string().to_lowercase()),
                Some(v)
            );
        }
        assert_eq!(ProtocolVersion::new(1), None);
        assert_eq!(ProtocolVersion::new(12), None);
        assert_eq!(ProtocolVersion::parse("CVR0"), None);
        assert_eq!(ProtocolVersion::parse("MSNP"), None);
        assert_eq!(ProtocolVersion::parse("MSNP+8"), None);
        assert_eq!(ProtocolVersion::parse("MSNP08"), ProtocolVersion::new(8));
    }

    #[test]
    fn negotiate_picks_highest_common() {
        use ProtocolVersion as V;
        let offered = [V::MSNP7, V::MSNP6, V::MSNP5, V::MSNP4];
        assert_eq!(negotiate(&offered, V::IMPLEMENTED), Some(V::MSNP7));
        assert_eq!(negotiate(&[V::MSNP11, V::MSNP10], V::IMPLEMENTED), None);
        assert_eq!(
            negotiate(&[V::MSNP9, V::MSNP8], V::MSNP2..=V::MSNP8),
            Some(V::MSNP8)
        );
        assert_eq!(negotiate(&[], V::KNOWN), None);
    }

    #[test]
    fn dialect_boundaries() {
        let c = |n| Capabilities::for_version(ProtocolVersion::new(n).unwrap());
        assert_eq!(c(2).xfr_ns_form, XfrNsForm::Bare);
        assert_eq!(c(6).xfr_ns_form, XfrNsForm::TrailingZero);
        assert_eq!(c(7).xfr_ns_form, XfrNsForm::ZeroAndCurrent);
        assert!(c(2).ctp_allowed && !c(3).ctp_allowed);
        assert!(c(7).md5_allowed && !c(8).md5_allowed && c(8).twn);
        assert!(!c(5).usr_ok_verified && c(6).usr_ok_verified && !c(7).usr_ok_restricted);
        assert_eq!(c(4).syn, SynGeneration::First);
        assert_eq!(c(5).syn, SynGeneration::Second);
        assert_eq!(c(7).syn, SynGeneration::Third);
        assert_eq!(c(9).syn, SynGeneration::Bitmask);
        assert!(!c(6).groups && c(7).groups);
        assert!(!c(8).msn_object && c(9).msn_object && c(9).qng_seconds);
        assert!(c(8).client_list_query && !c(9).client_list_query);
        assert!(c(8).pag && !c(9).pag && !c(4).pag);
        assert_eq!(c(8).profile, ProfileGeneration::ClientAddress);
    }
}
