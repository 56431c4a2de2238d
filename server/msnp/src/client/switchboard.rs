//! Switchboard commands: `CAL`, `ANS`, `MSG` (the SB `USR` form lives in `login`).

use bytes::Bytes;

use crate::args::Args;
use crate::error::{ParseError, ParseErrorKind};
use crate::frame::Frame;
use crate::types::{AckMode, Passport, Secret, SessionId, TrId};

/// `CAL`: invite a contact into this switchboard.
///
/// # Format
/// ```text
/// CAL trid <handle>
/// ```
/// Client → SB, all versions. A malformed handle is [`ParseErrorKind::BadPassport`] with the
/// trid (answer `208`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cal {
    /// Transaction id.
    pub trid: TrId,
    /// Who to invite.
    pub handle: Passport,
}

impl Cal {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let handle = a.next_parse("handle", ParseErrorKind::BadPassport)?;
        a.finish()?;
        Ok(Self { trid, handle })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        Frame::new("CAL", words!(self.trid, self.handle))
    }
}

/// `ANS`: join a switchboard after an `RNG`.
///
/// # Format
/// ```text
/// ANS trid <handle> <cookie> <session-id>
/// ```
/// Client → SB, all versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ans {
    /// Transaction id.
    pub trid: TrId,
    /// Who is joining.
    pub handle: Passport,
    /// The cookie from `RNG` (redacted in `Debug`).
    pub cookie: Secret,
    /// The session from `RNG`.
    pub session: SessionId,
}

impl Ans {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let ans = Self {
            trid,
            handle: a.next_parse("handle", ParseErrorKind::BadPassport)?,
            cookie: a.next_parse("cookie", ParseErrorKind::BadValue("cookie"))?,
            session: a.next_parse("session id", ParseErrorKind::BadNumber("session id"))?,
        };
        a.finish()?;
        Ok(ans)
    }

    pub(crate) fn to_frame(&self) -> Frame {
        Frame::new(
            "ANS",
            words!(self.trid, self.handle, self.cookie, self.session),
        )
    }
}

/// `MSG`: send a message to everyone else in the switchboard.
///
/// # Format
/// ```text
/// MSG trid U|N|A|D <len>\r\n<payload>
/// ```
/// Client → SB, all versions (`D` MSNP9+); the payload is at most 1664 bytes (enforced by the
/// frame decoder). A client `MSG` on the NS is illegal (close). An unknown ack letter is
/// [`ParseErrorKind::BadValue`] (close).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// Transaction id.
    pub trid: TrId,
    /// Which acknowledgement the sender wants.
    pub ack: AckMode,
    /// The MIME message, relayed byte for byte.
    pub payload: Bytes,
}

impl Msg {
    pub(crate) fn parse(a: &mut Args<'_>) -> Result<Self, ParseError> {
        let trid = a.next_trid()?;
        let ack = a.next_enum("ack mode")?;
        a.finish()?;
        Ok(Self {
            trid,
            ack,
            payload: a.payload()?,
        })
    }

    pub(crate) fn to_frame(&self) -> Frame {
        Frame::with_payload("MSG", words!(self.trid, self.ack), self.payload.clone())
    }
}
