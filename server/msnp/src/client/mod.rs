//! Client → server commands, parsed once at the edge into [`ClientCommand`].
//!
//! Each mnemonic has a struct (in `login`, `lists`, `misc`, `switchboard`) with a `# Format`
//! doc, a parser over [`Args`] and an encoder. [`ClientCommand::from_frame`] dispatches on the
//! name; unknown names become [`ClientCommand::Unknown`], which is not an error, so the server
//! decides how to react (PROTOCOL.md §1.6). [`ClientCommand::encode`] exists for the test client.

mod lists;
mod login;
mod misc;
mod switchboard;

use bytes::BytesMut;

pub use lists::{
    Adc, AdcTarget, Add, Adg, Blp, ContactRef, GroupRef, Gtc, Lsg, Lst, Prp, Rea, Reg, Rem, Rmg,
    Sbp, Syn, SynCache,
};
pub use login::{Cvr, Inf, Usr, Ver, Xfr};
pub use misc::{Chg, Fnd, Gcf, Ims, Pag, Pgd, Qry, Sdc, Snd, Url, Uux};
pub use switchboard::{Ans, Cal, Msg};

use crate::args::Args;
use crate::error::ParseError;
use crate::frame::Frame;
use crate::types::{Token, TrId};
use crate::verb::Verb;
use crate::version::Capabilities;

/// Which kind of server the connection talks to; the `USR` grammar differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Dispatch / notification server.
    Notification,
    /// Switchboard.
    Switchboard,
}

/// A parsed client command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientCommand {
    /// `VER`: version negotiation.
    Ver(Ver),
    /// `CVR`: client version information.
    Cvr(Cvr),
    /// `INF`: authentication method query.
    Inf(Inf),
    /// `USR`: authentication (NS or SB form).
    Usr(Usr),
    /// `XFR`: switchboard referral request.
    Xfr(Xfr),
    /// `SYN`: list synchronisation.
    Syn(Syn),
    /// `LST`: list query.
    Lst(Lst),
    /// `LSG`: group list query.
    Lsg(Lsg),
    /// `GTC`: "prompt when added" preference.
    Gtc(Gtc),
    /// `BLP`: privacy default.
    Blp(Blp),
    /// `ADD`: add to list (MSNP2–9).
    Add(Add),
    /// `ADC`: add to list or group (MSNP10+).
    Adc(Adc),
    /// `REM`: remove from list.
    Rem(Rem),
    /// `REA`: rename.
    Rea(Rea),
    /// `ADG`: add group.
    Adg(Adg),
    /// `RMG`: remove group.
    Rmg(Rmg),
    /// `REG`: rename group.
    Reg(Reg),
    /// `PRP`: phone property, or (MSNP10+) my name.
    Prp(Prp),
    /// `SBP`: a contact's stored name (MSNP10+).
    Sbp(Sbp),
    /// `UUX`: my personal message (MSNP11+).
    Uux(Uux),
    /// `GCF`: a configuration file (MSNP11–12).
    Gcf(Gcf),
    /// `CHG`: status change.
    Chg(Chg),
    /// `PNG`: keep-alive ping (no trid).
    Png,
    /// `OUT`: log out (no trid).
    Out,
    /// `URL`: service URL query.
    Url(Url),
    /// `FND`: directory search.
    Fnd(Fnd),
    /// `SND`: invitation e-mail.
    Snd(Snd),
    /// `SDC`: invitation e-mail with text.
    Sdc(Sdc),
    /// `IMS`: instant messages on/off.
    Ims(Ims),
    /// `PAG`: page.
    Pag(Pag),
    /// `PGD`: page (MSNP9+).
    Pgd(Pgd),
    /// `QRY`: challenge answer.
    Qry(Qry),
    /// `CAL`: switchboard invite.
    Cal(Cal),
    /// `ANS`: switchboard join.
    Ans(Ans),
    /// `MSG`: switchboard message.
    Msg(Msg),
    /// A command name this crate does not model (including server-only names such as `RNG`).
    Unknown {
        /// The three-character name.
        name: Token,
        /// The first argument, if it is a number.
        trid: Option<TrId>,
    },
}

impl ClientCommand {
    /// Parses a frame received from a client on a `role` connection.
    ///
    /// Parsing is purely syntactic and lenient about dialect: optional trailing fields are
    /// accepted whenever present, and commands a dialect forbids (`INF` under MSNP8, `ADD RL`)
    /// still parse, so the session rules can recognise and reject them. `caps` selects the
    /// grammar where it changed incompatibly: MSNP10's `SYN` timestamps and the GUIDs of `REM`,
    /// `RMG` and `REG` ([`Capabilities::abch`]).
    ///
    /// # Errors
    /// [`ParseError`] if the arguments do not fit the command; its `trid` is set when the
    /// transaction id could be read.
    pub fn from_frame(frame: &Frame, role: Role, caps: &Capabilities) -> Result<Self, ParseError> {
        let mut a = Args::new(frame);
        let a = &mut a;
        let verb = Verb::parse(&frame.name);
        if frame.payload.is_some() != verb.and_then(Verb::payload_limit).is_some() {
            let _ = a.next_trid();
            return Err(a.error(crate::error::ParseErrorKind::Payload));
        }
        Ok(match verb {
            Some(Verb::Ver) => Self::Ver(Ver::parse(a)?),
            Some(Verb::Cvr) => Self::Cvr(Cvr::parse(a)?),
            Some(Verb::Inf) => Self::Inf(Inf::parse(a)?),
            Some(Verb::Usr) => Self::Usr(match role {
                Role::Notification => Usr::parse_ns(a)?,
                Role::Switchboard => Usr::parse_sb(a)?,
            }),
            Some(Verb::Xfr) => Self::Xfr(Xfr::parse(a)?),
            Some(Verb::Syn) => Self::Syn(Syn::parse(a, caps)?),
            Some(Verb::Lst) => Self::Lst(Lst::parse(a)?),
            Some(Verb::Lsg) => Self::Lsg(Lsg::parse(a)?),
            Some(Verb::Gtc) => Self::Gtc(Gtc::parse(a)?),
            Some(Verb::Blp) => Self::Blp(Blp::parse(a)?),
            Some(Verb::Add) => Self::Add(Add::parse(a)?),
            Some(Verb::Adc) => Self::Adc(Adc::parse(a)?),
            Some(Verb::Rem) => Self::Rem(Rem::parse(a, caps)?),
            Some(Verb::Rea) => Self::Rea(Rea::parse(a)?),
            Some(Verb::Adg) => Self::Adg(Adg::parse(a)?),
            Some(Verb::Rmg) => Self::Rmg(Rmg::parse(a, caps)?),
            Some(Verb::Reg) => Self::Reg(Reg::parse(a, caps)?),
            Some(Verb::Prp) => Self::Prp(Prp::parse(a)?),
            Some(Verb::Sbp) => Self::Sbp(Sbp::parse(a)?),
            Some(Verb::Uux) => Self::Uux(Uux::parse(a)?),
            Some(Verb::Gcf) => Self::Gcf(Gcf::parse(a)?),
            Some(Verb::Chg) => Self::Chg(Chg::parse(a)?),
            Some(Verb::Png) => misc::parse_bare(a).map(|()| Self::Png)?,
            Some(Verb::Out) => misc::parse_bare(a).map(|()| Self::Out)?,
            Some(Verb::Url) => Self::Url(Url::parse(a)?),
            Some(Verb::Fnd) => Self::Fnd(Fnd::parse(a)?),
            Some(Verb::Snd) => Self::Snd(Snd::parse(a)?),
            Some(Verb::Sdc) => Self::Sdc(Sdc::parse(a)?),
            Some(Verb::Ims) => Self::Ims(Ims::parse(a)?),
            Some(Verb::Pag) => Self::Pag(Pag::parse(a)?),
            Some(Verb::Pgd) => Self::Pgd(Pgd::parse(a)?),
            Some(Verb::Qry) => Self::Qry(Qry::parse(a)?),
            Some(Verb::Cal) => Self::Cal(Cal::parse(a)?),
            Some(Verb::Ans) => Self::Ans(Ans::parse(a)?),
            Some(Verb::Msg) => Self::Msg(Msg::parse(a)?),
            None | Some(Verb::Uun | Verb::Uum | Verb::Adl | Verb::Rml | Verb::Fqy) => {
                Self::Unknown {
                    name: Token::parse(&frame.name)
                        .map_err(|_| a.error(crate::error::ParseErrorKind::BadValue("name")))?,
                    trid: a.peek().and_then(|s| TrId::parse(s).ok()),
                }
            }
        })
    }

    /// The transaction id, for commands that carry one.
    #[must_use]
    pub fn trid(&self) -> Option<TrId> {
        Some(match self {
            Self::Ver(c) => c.trid,
            Self::Cvr(c) => c.trid,
            Self::Inf(c) => c.trid,
            Self::Usr(c) => c.trid(),
            Self::Xfr(c) => c.trid,
            Self::Syn(c) => c.trid,
            Self::Lst(c) => c.trid,
            Self::Lsg(c) => c.trid,
            Self::Gtc(c) => c.trid,
            Self::Blp(c) => c.trid,
            Self::Add(c) => c.trid,
            Self::Adc(c) => c.trid,
            Self::Rem(c) => c.trid,
            Self::Rea(c) => c.trid,
            Self::Adg(c) => c.trid,
            Self::Rmg(c) => c.trid,
            Self::Reg(c) => c.trid,
            Self::Prp(c) => c.trid,
            Self::Sbp(c) => c.trid,
            Self::Uux(c) => c.trid,
            Self::Gcf(c) => c.trid,
            Self::Chg(c) => c.trid,
            Self::Url(c) => c.trid,
            Self::Fnd(c) => c.trid,
            Self::Snd(c) => c.trid,
            Self::Sdc(c) => c.trid,
            Self::Ims(c) => c.trid,
            Self::Pag(c) => c.trid,
            Self::Pgd(c) => c.trid,
            Self::Qry(c) => c.trid,
            Self::Cal(c) => c.trid,
            Self::Ans(c) => c.trid,
            Self::Msg(c) => c.trid,
            Self::Png | Self::Out => return None,
            Self::Unknown { trid, .. } => return *trid,
        })
    }

    /// The command as a frame.
    #[must_use]
    pub fn to_frame(&self) -> Frame {
        match self {
            Self::Ver(c) => c.to_frame(),
            Self::Cvr(c) => c.to_frame(),
            Self::Inf(c) => c.to_frame(),
            Self::Usr(c) => c.to_frame(),
            Self::Xfr(c) => c.to_frame(),
            Self::Syn(c) => c.to_frame(),
            Self::Lst(c) => c.to_frame(),
            Self::Lsg(c) => c.to_frame(),
            Self::Gtc(c) => c.to_frame(),
            Self::Blp(c) => c.to_frame(),
            Self::Add(c) => c.to_frame(),
            Self::Adc(c) => c.to_frame(),
            Self::Rem(c) => c.to_frame(),
            Self::Rea(c) => c.to_frame(),
            Self::Adg(c) => c.to_frame(),
            Self::Rmg(c) => c.to_frame(),
            Self::Reg(c) => c.to_frame(),
            Self::Prp(c) => c.to_frame(),
            Self::Sbp(c) => c.to_frame(),
            Self::Uux(c) => c.to_frame(),
            Self::Gcf(c) => c.to_frame(),
            Self::Chg(c) => c.to_frame(),
            Self::Png => Frame::new("PNG", Vec::new()),
            Self::Out => Frame::new("OUT", Vec::new()),
            Self::Url(c) => c.to_frame(),
            Self::Fnd(c) => c.to_frame(),
            Self::Snd(c) => c.to_frame(),
            Self::Sdc(c) => c.to_frame(),
            Self::Ims(c) => c.to_frame(),
            Self::Pag(c) => c.to_frame(),
            Self::Pgd(c) => c.to_frame(),
            Self::Qry(c) => c.to_frame(),
            Self::Cal(c) => c.to_frame(),
            Self::Ans(c) => c.to_frame(),
            Self::Msg(c) => c.to_frame(),
            Self::Unknown { name, trid } => {
                let mut v = Vec::new();
                crate::frame::push_opt(&mut v, *trid);
                Frame::new(name.as_str(), v)
            }
        }
    }

    /// Writes the command's wire form (used by test clients).
    pub fn encode(&self, dst: &mut BytesMut) {
        self.to_frame().encode(dst);
    }
}
