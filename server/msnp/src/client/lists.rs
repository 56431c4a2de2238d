//! List commands: `SYN`, `LST`, `LSG`, `GTC`, `BLP`, `ADD`, `REM`, `REA`, `ADG`, `RMG`, `REG`,
//! `PRP`.

use crate::args::Args;
use crate::error::{ParseError, ParseErrorKind};
use crate::frame::{Frame, push_opt as opt};
use crate::types::{
    self as t, FriendlyName, GroupId, GroupName, ListKind, Passport, PhoneProp, Token, TrId,
};

/// `SYN`: synchronise lists.
///
/// # Format
/// ```text
/// SYN trid <cached-list-version>                     MSNP2–MSNP9
/// SYN trid <list-version> <settings-version>         MSNP10+ (second number kept if present)
/// ```
/// Client → NS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syn {
    /// Transaction id.
    pub trid: TrId,
    /// The list version the client has cached.
    pub version: u32,
    /// MSNP10+ settings version.
    pub settings_version: Option<u32>,
}

impl Syn {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let version = a.next_u32("list version")?;
        let settings_version = a.opt_parse(ParseErrorKind::BadNumber("settings version"))?;
        a.finish()?;
        Ok(Self {
            trid,
            version,
            settings_version,
        })
    }

    pub(crate) fn to_frame(self) -> Frame {
        let mut v = words!(self.trid, self.version);
        opt(&mut v, self.settings_version);
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

/// `REM`: remove a contact from a list (or, with a group id, from that group only).
///
/// # Format
/// ```text
/// REM trid FL|AL|BL|RL <handle> [<group-id>]
/// ```
/// Client → NS, MSNP2–MSNP9 (group id MSNP7+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rem {
    /// Transaction id.
    pub trid: TrId,
    /// Target list.
    pub list: ListKind,
    /// The contact.
    pub handle: Passport,
    /// Group to remove the FL contact from.
    pub group: Option<GroupId>,
}

impl Rem {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let rem = Self {
            trid,
            list: a.next_enum("list")?,
            handle: a.next_parse("handle", ParseErrorKind::BadPassport)?,
            group: a.opt_parse(ParseErrorKind::BadNumber("group id"))?,
        };
        a.finish()?;
        Ok(rem)
    }

    pub(crate) fn to_frame(&self) -> Frame {
        let mut v = words!(self.trid, self.list, self.handle);
        opt(&mut v, self.group);
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
/// ADG trid <name> 0
/// ```
/// Client → NS, MSNP7–MSNP9 (the trailing `0` is constant; accepted missing). A name over 61
/// bytes is [`ParseErrorKind::BadName`] with the trid (answer `229`).
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
/// RMG trid <group-id>
/// ```
/// Client → NS, MSNP7–MSNP9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rmg {
    /// Transaction id.
    pub trid: TrId,
    /// The group.
    pub group: GroupId,
}

impl Rmg {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let group = a.next_parse("group id", ParseErrorKind::BadNumber("group id"))?;
        a.finish()?;
        Ok(Self { trid, group })
    }

    pub(crate) fn to_frame(self) -> Frame {
        Frame::new("RMG", words!(self.trid, self.group))
    }
}

/// `REG`: rename a group.
///
/// # Format
/// ```text
/// REG trid <group-id> <new-name> 0
/// ```
/// Client → NS, MSNP7–MSNP9 (trailing `0` accepted missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reg {
    /// Transaction id.
    pub trid: TrId,
    /// The group.
    pub group: GroupId,
    /// Its new name.
    pub name: GroupName,
}

impl Reg {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let group = a.next_parse("group id", ParseErrorKind::BadNumber("group id"))?;
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

/// `PRP`: set (or, without a value, clear) a phone property.
///
/// # Format
/// ```text
/// PRP trid PHH|PHW|PHM|MOB|MBE [<url-encoded value>]
/// ```
/// Client → NS, MSNP5+ (`MFN` from MSNP10).
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
