//! Presence and other NS commands: `CHG`, `PNG`, `OUT`, `URL`, `FND`, `SND`, `SDC`, `IMS`,
//! `PAG`, `PGD`, `QRY`, and MSNP11's `UUX` and `GCF`.

use bytes::Bytes;

use crate::args::Args;
use crate::error::{ParseError, ParseErrorKind};
use crate::frame::{Frame, push_opt as opt};
use crate::psm::PersonalMessage;
use crate::types::{ClientCaps, MsnObject, Status, Token, TrId};

/// `CHG`: change my status.
///
/// # Format
/// ```text
/// CHG trid <status>                         MSNP2–MSNP7
/// CHG trid <status> <caps>                  MSNP8
/// CHG trid <status> <caps> [<msnobject>]    MSNP9+
/// ```
/// Client → NS. Optional fields are parsed whenever present. `FLN` parses; the server answers
/// it with `201`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chg {
    /// Transaction id.
    pub trid: TrId,
    /// The new status.
    pub status: Status,
    /// Client capabilities (MSNP8+).
    pub caps: Option<ClientCaps>,
    /// URL-encoded MSNObject (MSNP9+).
    pub msn_object: Option<MsnObject>,
}

impl Chg {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let status = a.next_enum("status")?;
        let caps = a.opt_parse(ParseErrorKind::BadNumber("client caps"))?;
        let msn_object = a.opt_parse(ParseErrorKind::BadValue("MSNObject"))?;
        a.finish()?;
        Ok(Self {
            trid,
            status,
            caps,
            msn_object,
        })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        let mut v = words!(self.trid, self.status);
        opt(&mut v, self.caps);
        if self.caps.is_some() {
            opt(&mut v, self.msn_object.as_ref());
        }
        Frame::new("CHG", v)
    }
}

/// `URL`: ask for a web service URL.
///
/// # Format
/// ```text
/// URL trid <service> [<lcid>]
/// ```
/// Client → NS, all versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Transaction id.
    pub trid: TrId,
    /// Service name (`INBOX`, `FOLDERS`, `COMPOSE`, `PROFILE`, …).
    pub service: Token,
    /// Optional locale id.
    pub lcid: Option<Token>,
}

impl Url {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let service = a.next_enum("service")?;
        let lcid = a.opt_parse(ParseErrorKind::BadValue("lcid"))?;
        a.finish()?;
        Ok(Self {
            trid,
            service,
            lcid,
        })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        let mut v = words!(self.trid, self.service);
        opt(&mut v, self.lcid.as_ref());
        Frame::new("URL", v)
    }
}

/// Parses all remaining arguments as tokens (at least one).
fn tokens(a: &mut Args<'_>, what: &'static str) -> Result<Vec<Token>, ParseError> {
    let rest = a.rest();
    if rest.is_empty() {
        return Err(a.error(ParseErrorKind::Missing(what)));
    }
    rest.iter()
        .map(|s| Token::parse(s).map_err(|_| a.error(ParseErrorKind::BadValue(what))))
        .collect()
}

/// Defines a command of the shape `NAME trid <token>...` kept raw; with `payload:`, the shape
/// `NAME trid <token>... <len>\r\n<payload>` (the string is the payload field's doc).
macro_rules! raw_command {
    ($(#[$meta:meta])* $name:ident, $wire:literal, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// Transaction id.
            pub trid: TrId,
            /// The arguments after the transaction id, verbatim.
            pub fields: Vec<Token>,
        }

        impl $name {
            pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
                let trid = a.next_trid()?;
                let fields = tokens(a, $what)?;
                Ok(Self { trid, fields })
            }

            pub(crate) fn to_frame(&self) -> Frame {
                let mut v = words!(self.trid);
                v.extend(self.fields.iter().map(ToString::to_string));
                Frame::new($wire, v)
            }
        }
    };
    ($(#[$meta:meta])* $name:ident, $wire:literal, $what:literal, payload: $payload:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// Transaction id.
            pub trid: TrId,
            /// The arguments between trid and length, verbatim.
            pub fields: Vec<Token>,
            #[doc = $payload]
            pub payload: Bytes,
        }

        impl $name {
            pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
                let trid = a.next_trid()?;
                let fields = tokens(a, $what)?;
                Ok(Self {
                    trid,
                    fields,
                    payload: a.payload()?,
                })
            }

            pub(crate) fn to_frame(&self) -> Frame {
                let mut v = words!(self.trid);
                v.extend(self.fields.iter().map(ToString::to_string));
                Frame::with_payload($wire, v, self.payload.clone())
            }
        }
    };
}

raw_command!(
    /// `FND`: directory search (switched off in 2003; answer `502` or `FND trid 0 0`).
    ///
    /// # Format
    /// ```text
    /// FND trid fname=<f> lname=<l> city=<c> state=<s> country=<cc>
    /// ```
    /// Client → NS, MSNP2–MSNP7.
    Fnd, "FND", "search field"
);
raw_command!(
    /// `SND`: send an invitation e-mail (accept and ignore).
    ///
    /// # Format
    /// ```text
    /// SND trid <email> [<lcid> <library> [<codebase>]]
    /// ```
    /// Client → NS, MSNP2–MSNP4.
    Snd, "SND", "SND field"
);

raw_command!(
    /// `SDC`: send an invitation e-mail with a personal message (accept and ignore).
    ///
    /// # Format
    /// ```text
    /// SDC trid <email|FND-index> <lcid> <library> <codebase> X X <myname> <len>\r\n<text>
    /// ```
    /// Client → NS, MSNP5+.
    Sdc,
    "SDC",
    "SDC field",
    payload: " The message text."
);

raw_command!(
    /// `PAG`: page a contact's mobile device.
    ///
    /// # Format
    /// ```text
    /// PAG trid <handle> <len>\r\n<message>
    /// ```
    /// Client → NS, MSNP5–MSNP8. The arguments before the length are kept verbatim.
    Pag,
    "PAG",
    "PAG field",
    payload: " The page body."
);

raw_command!(
    /// `PGD`: page a contact's mobile device or MSN Direct watch (replaces `PAG`).
    ///
    /// # Format
    /// ```text
    /// PGD trid <handle> <device-type> <len>\r\n<TEXT xml:space="preserve" enc="utf-8">…</TEXT>
    /// ```
    /// Client → NS, MSNP9+ (device type 1 = mobile device, 2 = MSN Direct). The arguments
    /// before the length are kept verbatim.
    Pgd,
    "PGD",
    "PGD field",
    payload: " The page body."
);

/// `IMS`: switch instant messages on or off (WebTV).
///
/// # Format
/// ```text
/// IMS trid ON|OFF
/// ```
/// Client → NS, MSNP3+.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ims {
    /// Transaction id.
    pub trid: TrId,
    /// `true` for `ON`.
    pub on: bool,
}

impl Ims {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let on = match a.next_str("ON|OFF")? {
            "ON" => true,
            "OFF" => false,
            _ => return Err(a.error(ParseErrorKind::BadValue("ON|OFF"))),
        };
        a.finish()?;
        Ok(Self { trid, on })
    }

    pub(crate) fn to_frame(self) -> Frame {
        Frame::new("IMS", words!(self.trid, if self.on { "ON" } else { "OFF" }))
    }
}

/// `QRY`: answer to a server challenge (`CHL`).
///
/// # Format
/// ```text
/// QRY trid <client-id> 32\r\n<32 lowercase hex digits>
/// ```
/// Client → NS, MSNP6+. Check with [`crate::auth::verify_qry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qry {
    /// Transaction id.
    pub trid: TrId,
    /// The client id whose key was used, e.g. `msmsgs@msnmsgr.com`.
    pub client_id: Token,
    /// The answer.
    pub payload: Bytes,
}

impl Qry {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let client_id = a.next_enum("client id")?;
        a.finish()?;
        Ok(Self {
            trid,
            client_id,
            payload: a.payload()?,
        })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        Frame::with_payload(
            "QRY",
            words!(self.trid, self.client_id),
            self.payload.clone(),
        )
    }
}

/// `UUX`: set my personal message and current media (MSNP11+).
///
/// # Format
/// ```text
/// UUX trid <len>\r\n<Data><PSM>…</PSM><CurrentMedia>…</CurrentMedia></Data>
/// ```
/// Client → NS, MSNP11+. The XML is parsed here ([`PersonalMessage::parse`]); a payload that is
/// not a `<Data>` document is a [`ParseErrorKind::BadValue`] (the server closes, as the
/// service did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uux {
    /// Transaction id.
    pub trid: TrId,
    /// The message.
    pub message: PersonalMessage,
}

impl Uux {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        a.finish()?;
        let payload = a.payload()?;
        let message = PersonalMessage::parse(&payload)
            .map_err(|_| a.error(ParseErrorKind::BadValue("personal message")))?;
        Ok(Self { trid, message })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        Frame::with_payload("UUX", words!(self.trid), Bytes::from(self.message.to_xml()))
    }
}

/// `GCF`: fetch a configuration file (MSNP11–12: `Shields.xml`).
///
/// # Format
/// ```text
/// GCF trid <file-name>
/// ```
/// Client → NS, MSNP11–MSNP12.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gcf {
    /// Transaction id.
    pub trid: TrId,
    /// The file asked for.
    pub file: Token,
}

impl Gcf {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let file = a.next_enum("file name")?;
        a.finish()?;
        Ok(Self { trid, file })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        Frame::new("GCF", words!(self.trid, self.file))
    }
}

/// Parses a command that is only a name (`PNG`, `OUT`).
pub(crate) fn parse_bare(a: &Args<'_>) -> Result<(), ParseError> {
    a.finish()
}
