//! Protocol dialects and the single table of what changed between them.
//!
//! [`Capabilities::for_version`] is the only place in the workspace that knows which dialect
//! introduced or removed what (PROTOCOL.md §2.1, §6, §8). Handlers never compare version numbers;
//! encoders branch on these flags.
//!
//! MSNP10–12 in one paragraph (research notes for issue 16): MSNP10 (MSN 6.1/6.2) switches the
//! lists to the address-book model ([`Capabilities::abch`]: contacts and groups by GUID, `ADC`,
//! `SBP`, `PRP MFN`, `SYN` by timestamps, no list versions, no "Other Contacts" group, `USR OK`
//! without the name); MSNP11 (MSN 7.0) adds the personal message (`UUX`/`UBX`), `SBS 0 null`,
//! `GCF Shields.xml` and the product-key challenge ([`QryScheme::ProductKey`]); MSNP12 (MSN 7.5)
//! adds the network type to `LST` and the caps to switchboard `IRO`/`JOI`, and logs in through
//! the SOAP `RST.srf` service (an HTTP matter, invisible here).

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
    /// MSNP10 (MSN 6.1/6.2).
    pub const MSNP10: Self = Self(10);
    /// MSNP11 (MSN 7.0).
    pub const MSNP11: Self = Self(11);
    /// MSNP12 (MSN 7.5).
    pub const MSNP12: Self = Self(12);

    /// Every dialect this crate can parse from `VER`.
    pub const KNOWN: RangeInclusive<Self> = Self::MSNP2..=Self::MSNP12;
    /// The dialects whose commands this crate fully models (MSNP2–MSNP12).
    pub const IMPLEMENTED: RangeInclusive<Self> = Self::MSNP2..=Self::MSNP12;

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
    /// `ClientIP` / `ClientPort` added (MSNP8–9).
    ClientAddress,
    /// `ABCHMigrated: 1` added: the client uses the GUID/timestamp list model (MSNP10+).
    Abch,
}

/// Which Hotmail notifications a dialect gets (research note for issue 18, §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MailGeneration {
    /// MSNP2: `application/x-msmsgsemailnotification` for both the initial and the new-mail
    /// message, no site `id`, no active-mail message.
    Legacy,
    /// MSNP3+: `text/x-msmsgsinitialemailnotification`, `text/x-msmsgsemailnotification` with
    /// the site `id`, and `text/x-msmsgsactivemailnotification`.
    Text,
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
    /// MSNP8–9: counts in `SYN`, no trid/version on sub-lines, one LST per contact with a bitmask.
    Bitmask,
    /// MSNP10+: as `Bitmask`, but `SYN` carries timestamps, `PRP MFN` names the user, `LSG`
    /// lines carry GUIDs (no group 0), and `LST N=<h> F=<name> C=<guid> <bits> <group guids>`.
    Abch,
}

impl SynGeneration {
    /// Whether the dump is the MSNP8+ one (counts, one `LST` per contact with a bitmask).
    #[must_use]
    pub fn is_bitmask(self) -> bool {
        self >= Self::Bitmask
    }
}

/// How a `QRY` answer to a `CHL` is computed (PROTOCOL.md §2.5, §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QryScheme {
    /// MSNP6–MSNP10: `md5(challenge ‖ key)` with the MSNP6–10 client ids.
    Md5,
    /// MSNP11+: the 64-bit "product key" hash with the MSNP11+ product ids.
    ProductKey,
}

/// Which generation of client a participant runs, as far as file transfers and direct
/// connections go (P2P.md): what the relay's invitation rewriter may write for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientGeneration {
    /// MSN 1.x–4.x (MSNP2–7): MSNFTP only; ignores every optional invitation field.
    Legacy,
    /// MSN 5.0 (MSNP8): MSNFTP; honours `Connectivity` and `Sender-Connect`.
    Msn5,
    /// MSN 6.x and later (MSNP9+): MSNSLP file transfer and direct connections.
    Msn6,
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
    /// How a `QRY` answer is computed.
    pub qry: QryScheme,
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
    /// `PGD` paging (MSNP9+; `PAG` is then answered `715`).
    pub pgd: bool,
    /// Hotmail notifications from `Hotmail`: the content types and fields of the initial,
    /// new-mail and active-mail messages ([`crate::mail`]).
    pub mail: MailGeneration,
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
    /// The address-book list model (MSNP10+, `ABCHMigrated: 1`): `ADC`, `REM` of FL contacts
    /// and `ADG`/`RMG`/`REG` by GUID, `SBP`, `PRP MFN`, `ADC 0 RL` notifications, `SYN` by
    /// timestamps, no list versions in any reply, no group 0, `208` for an unknown user.
    pub abch: bool,
    /// Personal message: client `UUX`, server `UBX` after `ILN`/`NLN` (MSNP11+).
    pub psm: bool,
    /// `SBS 0 null` right after `USR OK` (MSNP11+).
    pub sbs: bool,
    /// `GCF trid Shields.xml` (MSNP11–MSNP12).
    pub gcf: bool,
    /// `LST` lines carry the contact's network type after the list bits (MSNP12+).
    pub lst_network: bool,
    /// Switchboard `IRO`/`JOI` carry the participant's client caps (MSNP12+).
    pub sb_caps: bool,
    /// File transfers and direct connections (MSNFTP to MSNP8, MSNSLP from MSNP9).
    pub client_generation: ClientGeneration,
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
                8 | 9 => ProfileGeneration::ClientAddress,
                _ => ProfileGeneration::Abch,
            },
            syn: match n {
                2..=4 => SynGeneration::First,
                5 | 6 => SynGeneration::Second,
                7 => SynGeneration::Third,
                8 | 9 => SynGeneration::Bitmask,
                _ => SynGeneration::Abch,
            },
            groups: n >= 7,
            phone_props: n >= 5,
            chl_qry: n >= 6,
            qry: if n >= 11 {
                QryScheme::ProductKey
            } else {
                QryScheme::Md5
            },
            presence_caps: n >= 8,
            msn_object: n >= 9,
            qng_seconds: n >= 9,
            msg_ack_d: n >= 9,
            client_list_query: n <= 8,
            add_rea: n <= 9,
            pag: (5..=8).contains(&n),
            pgd: n >= 9,
            mail: if n == 2 {
                MailGeneration::Legacy
            } else {
                MailGeneration::Text
            },
            notifications: n >= 5,
            ipg: n >= 6,
            ims: n >= 3,
            snd: n <= 4,
            fnd: n <= 7,
            error_502: n >= 7,
            abch: n >= 10,
            psm: n >= 11,
            sbs: n >= 11,
            gcf: (11..=12).contains(&n),
            lst_network: n >= 12,
            sb_caps: n >= 12,
            client_generation: match n {
                ..=7 => ClientGeneration::Legacy,
                8 => ClientGeneration::Msn5,
                _ => ClientGeneration::Msn6,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        for n in 2..=12 {
            let v = ProtocolVersion::new(n).unwrap();
            assert_eq!(ProtocolVersion::parse(&v.to_string()), Some(v));
            assert_eq!(
                ProtocolVersion::parse(&v.to_string().to_lowercase()),
                Some(v)
            );
        }
        assert_eq!(ProtocolVersion::new(1), None);
        assert_eq!(ProtocolVersion::new(13), None);
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
        assert_eq!(
            negotiate(&[V::MSNP11, V::MSNP10], V::IMPLEMENTED),
            Some(V::MSNP11)
        );
        assert_eq!(
            negotiate(&[V::MSNP11, V::MSNP10], V::MSNP2..=V::MSNP9),
            None
        );
        assert_eq!(
            negotiate(&[V::MSNP9, V::MSNP8], V::MSNP2..=V::MSNP8),
            Some(V::MSNP8)
        );
        assert_eq!(negotiate(&[], V::KNOWN), None);
    }

    #[test]
    fn client_generations_follow_the_file_transfer_protocols() {
        use ClientGeneration::{Legacy, Msn5, Msn6};
        let generation = |n| Capabilities::for_version(ProtocolVersion(n)).client_generation;
        let got: Vec<_> = (2..=12).map(generation).collect();
        let expected = [
            Legacy, Legacy, Legacy, Legacy, Legacy, Legacy, Msn5, Msn6, Msn6, Msn6, Msn6,
        ];
        assert_eq!(got, expected);
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
        assert!(c(9).pgd && c(11).pgd && !c(8).pgd);
        assert!(c(2).mail == MailGeneration::Legacy && c(3).mail == MailGeneration::Text);
        assert_eq!(c(8).profile, ProfileGeneration::ClientAddress);
        // MSNP10–12 (issue 16).
        assert!(!c(9).abch && c(10).abch && !c(10).usr_ok_name && !c(10).add_rea);
        assert_eq!(c(9).syn, SynGeneration::Bitmask);
        assert_eq!(c(10).syn, SynGeneration::Abch);
        assert!(c(10).syn.is_bitmask() && !c(7).syn.is_bitmask());
        assert_eq!(c(10).profile, ProfileGeneration::Abch);
        assert!(!c(10).psm && c(11).psm && c(11).sbs && !c(10).sbs);
        assert!(!c(10).gcf && c(11).gcf && c(12).gcf);
        assert_eq!(c(10).qry, QryScheme::Md5);
        assert_eq!(c(11).qry, QryScheme::ProductKey);
        assert!(!c(11).lst_network && c(12).lst_network);
        assert!(!c(11).sb_caps && c(12).sb_caps);
    }
}
