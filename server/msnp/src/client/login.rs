//! Login-stage commands: `VER`, `CVR`, `INF`, `USR` (NS and SB forms) and `XFR`.

use crate::args::Args;
use crate::error::{ParseError, ParseErrorKind};
use crate::frame::Frame;
use crate::types::{AuthMethod, Passport, Secret, Token, TrId};
use crate::version::ProtocolVersion;

use crate::frame::push_opt as opt;

/// `VER`: dialect negotiation.
///
/// # Format
/// ```text
/// VER trid MSNPx [MSNPy ...] [CVR0]
/// ```
/// Client → DS/NS, all versions. Tokens are kept raw so unknown dialects (`MSNP99`) and `CVR0`
/// survive a round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ver {
    /// Transaction id.
    pub trid: TrId,
    /// The offered tokens in client preference order.
    pub dialects: Vec<Token>,
}

impl Ver {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let mut dialects = Vec::new();
        while let Some(s) = a.next_opt() {
            dialects
                .push(Token::parse(s).map_err(|_| a.error(ParseErrorKind::BadValue("dialect")))?);
        }
        if dialects.is_empty() {
            return Err(a.error(ParseErrorKind::Missing("dialect")));
        }
        Ok(Self { trid, dialects })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        let mut v = vec![self.trid.to_string()];
        v.extend(self.dialects.iter().map(ToString::to_string));
        Frame::new("VER", v)
    }

    /// The known dialects offered (unknown tokens skipped), in the client's order.
    #[must_use]
    pub fn offered(&self) -> Vec<ProtocolVersion> {
        self.dialects
            .iter()
            .filter_map(|d| ProtocolVersion::parse(d.as_str()))
            .collect()
    }

    /// Whether the client offered `CVR0` ("I can send CVR").
    #[must_use]
    pub fn offers_cvr0(&self) -> bool {
        self.dialects
            .iter()
            .any(|d| d.as_str().eq_ignore_ascii_case("CVR0"))
    }
}

/// `CVR`: client version information.
///
/// # Format
/// ```text
/// CVR trid <lcid> <os> <osver> <arch> <library> <clientver> [<codebase>] [<handle>]
/// ```
/// Client → NS, all versions; codebase from MSNP4, handle from MSNP8 (both parsed whenever
/// present). MSNP8+ clients send it right after `VER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cvr {
    /// Transaction id.
    pub trid: TrId,
    /// Locale id, e.g. `0x0409`.
    pub lcid: Token,
    /// OS type, e.g. `winnt`.
    pub os: Token,
    /// OS version, e.g. `5.1`.
    pub os_version: Token,
    /// CPU architecture, e.g. `i386`.
    pub arch: Token,
    /// Client library, e.g. `MSNMSGR`.
    pub library: Token,
    /// Client version, e.g. `5.0.0544`.
    pub client_version: Token,
    /// Client codebase, e.g. `MSMSGS` (MSNP4+).
    pub codebase: Option<Token>,
    /// The user's handle (MSNP8+).
    pub handle: Option<Passport>,
}

impl Cvr {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let bad = ParseErrorKind::BadValue("CVR field");
        let cvr = Self {
            trid,
            lcid: a.next_parse("lcid", bad.clone())?,
            os: a.next_parse("os", bad.clone())?,
            os_version: a.next_parse("os version", bad.clone())?,
            arch: a.next_parse("arch", bad.clone())?,
            library: a.next_parse("library", bad.clone())?,
            client_version: a.next_parse("client version", bad.clone())?,
            codebase: a.opt_parse(bad)?,
            handle: a.opt_parse(ParseErrorKind::BadPassport)?,
        };
        a.finish()?;
        Ok(cvr)
    }

    pub(crate) fn to_frame(&self) -> Frame {
        let mut v = words!(
            self.trid,
            self.lcid,
            self.os,
            self.os_version,
            self.arch,
            self.library,
            self.client_version
        );
        opt(&mut v, self.codebase.as_ref());
        opt(&mut v, self.handle.as_ref());
        Frame::new("CVR", v)
    }
}

/// `INF`: ask for the supported authentication methods.
///
/// # Format
/// ```text
/// INF trid
/// ```
/// Client → NS, MSNP2–MSNP7 (under MSNP8+ the server closes the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inf {
    /// Transaction id.
    pub trid: TrId,
}

impl Inf {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        a.finish()?;
        Ok(Self { trid })
    }

    pub(crate) fn to_frame(self) -> Frame {
        Frame::new("INF", words!(self.trid))
    }
}

/// `USR`: authentication. The notification and switchboard forms differ.
///
/// # Format
/// ```text
/// USR trid MD5|TWN|CTP I <handle>        NS, initial step
/// USR trid MD5|TWN|CTP S <response>      NS, subsequent step (hash, ticket or password)
/// USR trid <handle> <cookie>             SB
/// ```
/// Client → NS (MD5/CTP MSNP2–7, TWN MSNP8+) and client → SB (all versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usr {
    /// `USR trid <method> I <handle>`.
    Initial {
        /// Transaction id.
        trid: TrId,
        /// Authentication method.
        method: AuthMethod,
        /// Who is logging in.
        handle: Passport,
    },
    /// `USR trid <method> S <response>`: MD5 hex, TWN ticket or CTP password.
    Subsequent {
        /// Transaction id.
        trid: TrId,
        /// Authentication method.
        method: AuthMethod,
        /// The credential (redacted in `Debug`).
        response: Secret,
    },
    /// `USR trid <handle> <cookie>` on a switchboard.
    Switchboard {
        /// Transaction id.
        trid: TrId,
        /// Who is joining.
        handle: Passport,
        /// The cookie from `XFR SB` (redacted in `Debug`).
        cookie: Secret,
    },
}

impl Usr {
    pub(crate) fn parse_ns(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let method = a.next_enum("auth method")?;
        let usr = match a.next_str("stage")? {
            "I" => Self::Initial {
                trid,
                method,
                handle: a.next_parse("handle", ParseErrorKind::BadPassport)?,
            },
            "S" => Self::Subsequent {
                trid,
                method,
                response: a.next_parse("response", ParseErrorKind::BadValue("response"))?,
            },
            _ => return Err(a.error(ParseErrorKind::BadValue("stage"))),
        };
        a.finish()?;
        Ok(usr)
    }

    pub(crate) fn parse_sb(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let usr = Self::Switchboard {
            trid,
            handle: a.next_parse("handle", ParseErrorKind::BadPassport)?,
            cookie: a.next_parse("cookie", ParseErrorKind::BadValue("cookie"))?,
        };
        a.finish()?;
        Ok(usr)
    }

    /// The transaction id.
    #[must_use]
    pub const fn trid(&self) -> TrId {
        match self {
            Self::Initial { trid, .. }
            | Self::Subsequent { trid, .. }
            | Self::Switchboard { trid, .. } => *trid,
        }
    }

    pub(crate) fn to_frame(&self) -> Frame {
        let v = match self {
            Self::Initial {
                trid,
                method,
                handle,
            } => words!(trid, method, "I", handle),
            Self::Subsequent {
                trid,
                method,
                response,
            } => words!(trid, method, "S", response),
            Self::Switchboard {
                trid,
                handle,
                cookie,
            } => words!(trid, handle, cookie),
        };
        Frame::new("USR", v)
    }
}

/// `XFR`: ask for a referral.
///
/// # Format
/// ```text
/// XFR trid SB
/// ```
/// Client → NS, all versions. (Clients never ask for `NS`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Xfr {
    /// Transaction id.
    pub trid: TrId,
}

impl Xfr {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        a.expect_literal("SB")?;
        a.finish()?;
        Ok(Self { trid })
    }

    pub(crate) fn to_frame(self) -> Frame {
        Frame::new("XFR", words!(self.trid, "SB"))
    }
}
