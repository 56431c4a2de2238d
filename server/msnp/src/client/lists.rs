//! List commands: `SYN`, `LST`, `LSG`, `GTC`, `BLP`, `ADD`, `ADC`, `REM`, `REA`, `ADG`,
//! `RMG`, `REG`, `PRP`, `SBP`.
//!
//! From MSNP10 the address-book model names FL contacts and groups by GUID
//! ([`crate::version::Capabilities::abch`]): the same `REM`, `RMG` and `REG` commands then take a
//! [`ContactRef::Guid`] / [`GroupRef::Guid`] where MSNP2–9 took a handle or a group number, and
//! the parsers choose the grammar from the dialect.

use std::fmt;

use crate::args::Args;
use crate::error::{ParseError, ParseErrorKind};
use crate::frame::{Frame, push_opt as opt};
use crate::types::{
    self as t, FriendlyName, GroupId, GroupName, Guid, ListKind, Passport, PhoneProp, Token, TrId,
};
use crate::version::Capabilities;

/// A contact as a list command names it: by handle (every list before MSNP10; AL/BL/RL/PL
/// after) or by its GUID (FL from MSNP10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContactRef {
    /// By handle.
    Handle(Passport),
    /// By contact GUID (`C=` in `LST`).
    Guid(Guid),
}

impl fmt::Display for ContactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Handle(h) => h.fmt(f),
            Self::Guid(g) => g.fmt(f),
        }
    }
}

/// A group as a command names it: by number (MSNP7–9), by GUID (MSNP10+), or — what MSN 7.0
/// sends in one known case instead of the GUID — by its URL-encoded name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupRef {
    /// By MSNP7–9 number.
    Id(GroupId),
    /// By MSNP10+ GUID.
    Guid(Guid),
    /// By name (MSNP10+, when the argument is not a GUID).
    Name(GroupName),
}

impl GroupRef {
    /// Parses a group argument in the dialect `caps`: a number before MSNP10, a GUID (or a
    /// name) after.
    fn parse(a: &mut Args<'_>, caps: &Capabilities) -> Result<Self, ParseError> {
        if caps.abch {
            let s = a.next_str("group")?;
            match Guid::parse(s) {
                Ok(g) => Ok(Self::Guid(g)),
                Err(_) => GroupName::parse(s)
                    .map(Self::Name)
                    .map_err(|_| a.error(ParseErrorKind::BadValue("group"))),
            }
        } else {
            a.next_parse("group id", ParseErrorKind::BadNumber("group id"))
                .map(Self::Id)
        }
    }
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(g) => g.fmt(f),
            Self::Guid(g) => g.fmt(f),
            Self::Name(n) => n.fmt(f),
        }
    }
}

/// What a client has cached when it sends `SYN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SynCache {
    /// `SYN trid <list-version>` (MSNP2–9; `0`: nothing cached).
    Version(u32),
    /// `SYN trid <list-stamp> <settings-stamp>` (MSNP10+; `0 0`: nothing cached). Kept as sent:
    /// the server compares them with the stamps it handed out.
    Stamps {
        /// The contact-list timestamp.
        list: Token,
        /// The settings timestamp.
        settings: Token,
    },
}

/// `SYN`: synchronise lists.
///
/// # Format
/// ```text
/// SYN trid <cached-list-version>                     MSNP2–MSNP9
/// SYN trid <list-timestamp> <settings-timestamp>     MSNP10+ (`0 0` = nothing cached)
/// ```
/// Client → NS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syn {
    /// Transaction id.
    pub trid: TrId,
    /// What the client has cached.
    pub cache: SynCache,
}

impl Syn {
    pub(crate) fn parse(a: &mut Args<'_>, caps: &Capabilities) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let cache = if caps.abch {
            let bad = ParseErrorKind::BadValue("timestamp");
            SynCache::Stamps {
                list: a.next_parse("list timestamp", bad.clone())?,
                settings: a.next_parse("settings timestamp", bad)?,
            }
        } else {
            SynCache::Version(a.next_u32("list version")?)
        };
        a.finish()?;
        Ok(Self { trid, cache })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        let v = match &self.cache {
            SynCache::Version(v) => words!(self.trid, v),
            SynCache::Stamps { list, settings } => words!(self.trid, list, settings),
        };
        Frame::new("SYN", v)
    }
}

/// `LST`: ask for one list.
///
/// # Format
/// ```text
/// LST trid FL|AL|BL|RL
/// ```
/// Client → NS, MSNP2–MSNP8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lst {
    /// Transaction id.
    pub trid: TrId,
    /// Which list.
    pub list: ListKind,
}

impl Lst {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let list = a.next_enum("list")?;
        a.finish()?;
        Ok(Self { trid, list })
    }

    pub(crate) fn to_frame(self) -> Frame {
        Frame::new("LST", words!(self.trid, self.list))
    }
}

/// `LSG`: ask for the group list.
///
/// # Format
/// ```text
/// LSG trid
/// ```
/// Client → NS, MSNP7–MSNP8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lsg {
    /// Transaction id.
    pub trid: TrId,
}

impl Lsg {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        a.finish()?;
        Ok(Self { trid })
    }

    pub(crate) fn to_frame(self) -> Frame {
        Frame::new("LSG", words!(self.trid))
    }
}

/// `GTC`: set the "prompt when added" preference.
///
/// # Format
/// ```text
/// GTC trid A|N
/// ```
/// Client → NS, all versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gtc {
    /// Transaction id.
    pub trid: TrId,
    /// The new value.
    pub value: t::Gtc,
}

impl Gtc {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let value = a.next_parse("GTC value", ParseErrorKind::BadValue("GTC value"))?;
        a.finish()?;
        Ok(Self { trid, value })
    }

    pub(crate) fn to_frame(self) -> Frame {
        Frame::new("GTC", words!(self.trid, self.value))
    }
}

/// `BLP`: set the privacy default.
///
/// # Format
/// ```text
/// BLP trid AL|BL
/// ```
/// Client → NS, all versions. A bad value is answered with `201`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blp {
    /// Transaction id.
    pub trid: TrId,
    /// The new value.
    pub value: t::Blp,
}

impl Blp {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let value = a.next_parse("BLP value", ParseErrorKind::BadValue("BLP value"))?;
        a.finish()?;
        Ok(Self { trid, value })
    }

    pub(crate) fn to_frame(self) -> Frame {
        Frame::new("BLP", words!(self.trid, self.value))
    }
}

/// `ADD`: add a contact to a list.
///
/// # Format
/// ```text
/// ADD trid FL|AL|BL|RL <handle> <name> [<group-id>]
/// ```
/// Client → NS, MSNP2–MSNP9; the group id only for FL, MSNP7+. `RL` parses (so the server can
/// recognise it) but must close the connection. A malformed handle is a
/// [`ParseErrorKind::BadPassport`] with the trid, answered with `201`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// Transaction id.
    pub trid: TrId,
    /// Target list.
    pub list: ListKind,
    /// The contact.
    pub handle: Passport,
    /// The contact's name as the client knows it.
    pub name: FriendlyName,
    /// Group to add the FL contact to (MSNP7+).
    pub group: Option<GroupId>,
}

impl Add {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let add = Self {
            trid,
            list: a.next_enum("list")?,
            handle: a.next_parse("handle", ParseErrorKind::BadPassport)?,
            name: a.next_text("name", ParseErrorKind::BadName("friendly name"))?,
            group: a.opt_parse(ParseErrorKind::BadNumber("group id"))?,
        };
        a.finish()?;
        Ok(add)
    }

    pub(crate) fn to_frame(&self) -> Frame {
        let mut v = words!(self.trid, self.list, self.handle, self.name);
        opt(&mut v, self.group);
        Frame::new("ADD", v)
    }
}

/// `ADC`: add a contact to a list, or an FL contact to a group (MSNP10+, replaces `ADD`).
///
/// # Format
/// ```text
/// ADC trid FL|AL|BL|RL|PL N=<handle> [F=<name>]
/// ADC trid FL C=<contact-guid> <group-guid>
/// ```
/// Client → NS, MSNP10+. `RL` parses (the server closes the connection for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adc {
    /// Transaction id.
    pub trid: TrId,
    /// Target list.
    pub list: ListKind,
    /// Who, and where.
    pub target: AdcTarget,
}

/// The two shapes of `ADC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdcTarget {
    /// `N=<handle> [F=<name>]`: a contact put on the list.
    Contact {
        /// The contact.
        handle: Passport,
        /// The name the client gives it (FL).
        name: Option<FriendlyName>,
    },
    /// `C=<guid> <group-guid>`: an FL contact filed into a group.
    ToGroup {
        /// The contact's GUID.
        contact: Guid,
        /// The group's GUID.
        group: Guid,
    },
}

impl Adc {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let list = a.next_enum("list")?;
        let first = a.next_str("N= or C=")?;
        let target = if let Some(handle) = first.strip_prefix("N=") {
            let handle =
                Passport::parse(handle).map_err(|_| a.error(ParseErrorKind::BadPassport))?;
            let name = match a.next_opt() {
                None => None,
                Some(f) => {
                    let name = f
                        .strip_prefix("F=")
                        .and_then(|n| FriendlyName::parse(n).ok())
                        .ok_or_else(|| a.error(ParseErrorKind::BadName("friendly name")))?;
                    if !t::decodes_to_utf8(name.as_str()) {
                        return Err(a.error(ParseErrorKind::NotUtf8("friendly name")));
                    }
                    Some(name)
                }
            };
            AdcTarget::Contact { handle, name }
        } else if let Some(guid) = first.strip_prefix("C=") {
            let contact = Guid::parse(guid).map_err(|_| a.error(ParseErrorKind::BadValue("C=")))?;
            let group = a.next_parse("group", ParseErrorKind::BadValue("group"))?;
            AdcTarget::ToGroup { contact, group }
        } else {
            return Err(a.error(ParseErrorKind::BadValue("N= or C=")));
        };
        a.finish()?;
        Ok(Self { trid, list, target })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        let mut v = words!(self.trid, self.list);
        match &self.target {
            AdcTarget::Contact { handle, name } => {
                v.push(format!("N={handle}"));
                opt(&mut v, name.as_ref().map(|n| format!("F={n}")));
            }
            AdcTarget::ToGroup { contact, group } => {
                v.push(format!("C={contact}"));
                v.push(group.to_string());
            }
        }
        Frame::new("ADC", v)
    }
}

/// `REM`: remove a contact from a list (or, with a group, from that group only).
///
/// # Format
/// ```text
/// REM trid FL|AL|BL|RL <handle> [<group-id>]          MSNP2–MSNP9 (group id MSNP7+)
/// REM trid FL <contact-guid> [<group-guid>]           MSNP10+
/// REM trid AL|BL|RL|PL <handle>                       MSNP10+
/// ```
/// Client → NS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rem {
    /// Transaction id.
    pub trid: TrId,
    /// Target list.
    pub list: ListKind,
    /// The contact.
    pub contact: ContactRef,
    /// Group to remove the FL contact from.
    pub group: Option<GroupRef>,
}

impl Rem {
    pub(crate) fn parse(a: &mut Args<'_>, caps: &Capabilities) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let list = a.next_enum("list")?;
        let s = a.next_str("contact")?;
        let by_guid = caps.abch && list == ListKind::Fl;
        let contact = match Guid::parse(s) {
            Ok(g) if by_guid => ContactRef::Guid(g),
            _ => ContactRef::Handle(
                Passport::parse(s).map_err(|_| a.error(ParseErrorKind::BadPassport))?,
            ),
        };
        let group = if a.remaining() > 0 {
            Some(GroupRef::parse(a, caps)?)
        } else {
            None
        };
        a.finish()?;
        Ok(Self {
            trid,
            list,
            contact,
            group,
        })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        let mut v = words!(self.trid, self.list, self.contact);
        opt(&mut v, self.group.as_ref());
        Frame::new("REM", v)
    }
}

/// `REA`: rename myself (own handle) or a stored contact.
///
/// # Format
/// ```text
/// REA trid <handle> <name>
/// ```
/// Client → NS, MSNP2–MSNP9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rea {
    /// Transaction id.
    pub trid: TrId,
    /// Whose name.
    pub handle: Passport,
    /// The new name.
    pub name: FriendlyName,
}

impl Rea {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let rea = Self {
            trid,
            handle: a.next_parse("handle", ParseErrorKind::BadPassport)?,
            name: a.next_text("name", ParseErrorKind::BadName("friendly name"))?,
        };
        a.finish()?;
        Ok(rea)
    }

    pub(crate) fn to_frame(&self) -> Frame {
        Frame::new("REA", words!(self.trid, self.handle, self.name))
    }
}

/// `ADG`: create a group.
///
/// # Format
/// ```text
/// ADG trid <name> 0                      MSNP7–MSNP9 (the trailing `0` accepted missing)
/// ADG trid <name>                        MSNP10+
/// ```
/// Client → NS. A name over 61 bytes is [`ParseErrorKind::BadName`] with the trid (answer
/// `229`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adg {
    /// Transaction id.
    pub trid: TrId,
    /// The new group's name.
    pub name: GroupName,
}

impl Adg {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let name = a.next_text("name", ParseErrorKind::BadName("group name"))?;
        if a.remaining() > 0 {
            a.expect_literal("0")?;
        }
        a.finish()?;
        Ok(Self { trid, name })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        Frame::new("ADG", words!(self.trid, self.name, "0"))
    }
}

/// `RMG`: remove a group.
///
/// # Format
/// ```text
/// RMG trid <group-id>                    MSNP7–MSNP9
/// RMG trid <group-guid>                  MSNP10+ (MSN 7.0 sometimes sends the name instead)
/// ```
/// Client → NS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rmg {
    /// Transaction id.
    pub trid: TrId,
    /// The group.
    pub group: GroupRef,
}

impl Rmg {
    pub(crate) fn parse(a: &mut Args<'_>, caps: &Capabilities) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let group = GroupRef::parse(a, caps)?;
        a.finish()?;
        Ok(Self { trid, group })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        Frame::new("RMG", words!(self.trid, self.group))
    }
}

/// `REG`: rename a group.
///
/// # Format
/// ```text
/// REG trid <group-id> <new-name> 0       MSNP7–MSNP9 (trailing `0` accepted missing)
/// REG trid <group-guid> <new-name>       MSNP10+
/// ```
/// Client → NS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reg {
    /// Transaction id.
    pub trid: TrId,
    /// The group.
    pub group: GroupRef,
    /// Its new name.
    pub name: GroupName,
}

impl Reg {
    pub(crate) fn parse(a: &mut Args<'_>, caps: &Capabilities) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let group = GroupRef::parse(a, caps)?;
        let name = a.next_text("name", ParseErrorKind::BadName("group name"))?;
        if a.remaining() > 0 {
            a.expect_literal("0")?;
        }
        a.finish()?;
        Ok(Self { trid, group, name })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        Frame::new("REG", words!(self.trid, self.group, self.name, "0"))
    }
}

/// `PRP`: set (or, without a value, clear) a phone property; from MSNP10 also the user's own
/// friendly name (`MFN`, which replaced `REA` on one's own handle).
///
/// # Format
/// ```text
/// PRP trid PHH|PHW|PHM|MOB|MBE [<url-encoded value>]     MSNP5+
/// PRP trid MFN <url-encoded name>                         MSNP10+
/// ```
/// Client → NS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prp {
    /// Transaction id.
    pub trid: TrId,
    /// Which property.
    pub prop: PhoneProp,
    /// The new value; `None` clears it.
    pub value: Option<Token>,
}

impl Prp {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let prop = a.next_enum("property")?;
        let value = a.opt_parse(ParseErrorKind::BadValue("property value"))?;
        a.finish()?;
        Ok(Self { trid, prop, value })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        let mut v = words!(self.trid, self.prop);
        opt(&mut v, self.value.as_ref());
        Frame::new("PRP", v)
    }
}

/// `SBP`: set a property of a contact in one's list; `MFN` renames it (MSNP10+, replaced
/// `REA` on another handle).
///
/// # Format
/// ```text
/// SBP trid <contact-guid> MFN <url-encoded name>
/// ```
/// Client → NS, MSNP10+.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbp {
    /// Transaction id.
    pub trid: TrId,
    /// The contact.
    pub contact: Guid,
    /// The property (`MFN`; others are answered `201`).
    pub prop: Token,
    /// The new value, echoed as sent.
    pub value: Token,
}

impl Sbp {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let sbp = Self {
            trid,
            contact: a.next_parse("contact", ParseErrorKind::BadValue("contact GUID"))?,
            prop: a.next_enum("property")?,
            value: a.next_parse("value", ParseErrorKind::BadValue("property value"))?,
        };
        a.finish()?;
        Ok(sbp)
    }

    pub(crate) fn to_frame(&self) -> Frame {
        Frame::new(
            "SBP",
            words!(self.trid, self.contact, self.prop, self.value),
        )
    }
}
