//! The notification server (DS + NS in one, PROTOCOL.md §2): one [`NsService`] per connection,
//! with handlers grouped by domain and written once for every dialect. Version differences live
//! in [`Capabilities`] and the `relive-msnp` encoders; no handler compares version numbers.
//!
//! - [`auth`]: `VER`, `CVR`, `INF`, `USR` (MD5, CTP, TWN), optional `XFR NS` referral,
//!   the login itself, `SBS` (MSNP11+) and the profile message.
//! - [`sync`]: `SYN`, client `LST`/`LSG`.
//! - [`contacts`]: `ADD`, `ADC`, `REM`, `REA`, `ADG`, `RMG`, `REG`, `GTC`, `BLP`,
//!   `PRP`, `SBP`.
//! - [`presence`]: `CHG`, `UUX`, `CHL`/`QRY`.
//! - [`misc`]: `PNG`, `OUT`, `URL`, `FND`, `SND`, `SDC`, `IMS`, `GCF`, `XFR SB`.
//! - [`pager`]: `PAG`, `PGD`, and the mail counts and pages sent at login.
//!
//! Which command may run when is decided by [`NsSession`] (login-stage strictness, removed
//! commands, `207`, `913` …): a command it rejects closes the connection with a log line.
//! List changes are made durable in the store first, then pushed into the hub, then answered.
//! Commands that name another user (`ADD`, `REM`, `REA` of a contact, `FND`) first wait for
//! the account's turn in the lookup throttle ([`crate::limits::lookups`]).

mod auth;
mod contacts;
mod misc;
mod pager;
mod presence;
mod sync;
#[cfg(test)]
mod tests;

pub use misc::{MAX_FND_RESULTS, PING_INTERVAL_SECS, SHIELDS_XML};

use std::net::SocketAddr;
use std::sync::Arc;

use relive_msnp::client::{ClientCommand as C, Role};
use relive_msnp::error::{ParseError, ParseErrorKind};
use relive_msnp::server::ServerMessage;
use relive_msnp::session::{Decision, NsSession};
use relive_msnp::types::{ErrorCode, FriendlyName, OutReason, Passport, Token, TrId};
use relive_msnp::verb::Verb;
use relive_msnp::version::{Capabilities, ProtocolVersion};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::Context;
use crate::hub::Outbox;
use crate::net::conn::{Replies, Service};
use crate::store::{AccountId, ListError};

/// The dialects the NS negotiates (MSNP8–12 log in through Passport `TWN`; MSNP12's ticket
/// comes from `RST.srf`).
pub const SUPPORTED: std::ops::RangeInclusive<ProtocolVersion> = ProtocolVersion::IMPLEMENTED;

/// Most dialect tokens of a `VER` that a log line repeats.
const LOGGED_DIALECTS: usize = 12;

/// The dialects a `VER` offered, for the log (the first [`LOGGED_DIALECTS`], `CVR0` left out).
fn offered_dialects(ver: &relive_msnp::client::Ver) -> String {
    let mut shown: Vec<&str> = ver
        .dialects
        .iter()
        .map(Token::as_str)
        .filter(|d| !d.eq_ignore_ascii_case("CVR0"))
        .collect();
    if shown.len() > LOGGED_DIALECTS {
        shown.truncate(LOGGED_DIALECTS);
        shown.push("…");
    }
    shown.join(" ")
}

/// Where a login attempt stands.
#[derive(Debug)]
enum Auth {
    /// Nothing pending.
    Idle,
    /// `USR MD5 I` answered with this challenge.
    Md5 { handle: Passport, challenge: String },
    /// `USR CTP I` answered (MSNP2).
    Ctp { handle: Passport },
    /// `USR TWN I` answered with the Passport parameters (MSNP8+).
    Twn { handle: Passport },
}

/// The logged-in user of a connection.
#[derive(Debug, Clone)]
struct User {
    id: AccountId,
    handle: Passport,
    name: FriendlyName,
}

/// `CHL`/`QRY` state (PROTOCOL.md §2.5).
#[derive(Debug, Default)]
struct Challenge {
    /// The last challenge sent.
    current: Option<String>,
    /// When an unanswered challenge times out.
    deadline: Option<Instant>,
}

/// The notification protocol of one connection.
#[derive(Debug)]
pub struct NsService {
    ctx: Arc<Context>,
    peer: SocketAddr,
    outbox: Outbox,
    session: NsSession,
    auth: Auth,
    user: Option<User>,
    registered: bool,
    challenge: Challenge,
    last_read: Instant,
    /// The client version from `CVR`, if sent (the website's admin page shows it).
    client_version: Option<String>,
    /// Until `USR OK`: the moment the connection must have logged in by (connect +
    /// `[limits] login_timeout_secs`). Bytes do not move it, so neither a trickle nor blank
    /// lines keep a connection that never logs in.
    login_deadline: Instant,
    /// Pages for the virtual pager contact to say (clients without `IPG`), read at login and
    /// rung for at the first visible `CHG` ([`pager`]).
    pager_waiting: Option<Box<crate::switchboard::PagerDelivery>>,
}

impl NsService {
    /// A new connection from `peer` whose hub outbox is `outbox`.
    #[must_use]
    pub fn new(ctx: Arc<Context>, peer: SocketAddr, outbox: Outbox) -> Self {
        let ctx_login_timeout = ctx.settings.abuse.login_timeout;
        Self {
            ctx,
            peer,
            outbox,
            session: NsSession::new(SUPPORTED),
            auth: Auth::Idle,
            user: None,
            registered: false,
            challenge: Challenge::default(),
            last_read: Instant::now(),
            client_version: None,
            login_deadline: Instant::now() + ctx_login_timeout,
            pager_waiting: None,
        }
    }

    /// The negotiated dialect (MSNP2 before `VER`, which only matters for `VER trid 0`).
    fn dialect(&self) -> Capabilities {
        self.session
            .caps()
            .copied()
            .unwrap_or_else(|| Capabilities::for_version(ProtocolVersion::MSNP2))
    }

    /// Answers a store error the MSNP way ([`list_error_code`]), or closes for RL edits.
    fn list_error(&self, error: &ListError, trid: TrId, out: &mut Replies) {
        match list_error_code(error, &self.dialect()) {
            Some(code) => {
                if matches!(error, ListError::Store(_) | ListError::NoSuchAccount) {
                    warn!(%error, trid = trid.0, "store failure");
                }
                out.push(ServerMessage::error(code, trid));
            }
            None => {
                info!(%error, "closing");
                out.close();
            }
        }
    }

    /// An infrastructure failure: `500` and keep going.
    fn internal_error(what: &str, error: &dyn std::fmt::Display, trid: TrId, out: &mut Replies) {
        warn!(%error, trid = trid.0, what, "internal error");
        out.push(ServerMessage::error(ErrorCode::InternalServerError, trid));
    }

    async fn dispatch(&mut self, cmd: C, out: &mut Replies) {
        let caps = self.dialect();
        let user = self.user.clone();
        match (cmd, user) {
            (C::Ver(v), _) => self.handle_ver(&v, &caps, out),
            (C::Cvr(c), _) => self.handle_cvr(&c, out),
            (C::Inf(i), _) => out.push(ServerMessage::Inf {
                trid: i.trid,
                method: relive_msnp::types::AuthMethod::Md5,
            }),
            (C::Usr(u), None) => self.handle_usr(u, &caps, out).await,
            (C::Png, _) => self.handle_png(out),
            (C::Out, _) => {
                out.push(ServerMessage::Out { reason: None });
                out.close();
            }
            (cmd, Some(user)) => self.dispatch_online(cmd, &user, &caps, out).await,
            (cmd, None) => {
                info!(command = ?cmd.trid(), "command before login; closing");
                out.close();
            }
        }
    }

    async fn dispatch_online(
        &mut self,
        cmd: C,
        user: &User,
        caps: &Capabilities,
        out: &mut Replies,
    ) {
        match cmd {
            C::Syn(s) => self.handle_syn(&s, user, caps, out).await,
            C::Lst(l) => self.handle_lst(&l, user, caps, out).await,
            C::Lsg(l) => self.handle_lsg(&l, user, caps, out).await,
            C::Add(a) => self.handle_add(&a, user, caps, out).await,
            C::Adc(a) => self.handle_adc(&a, user, out).await,
            C::Rem(r) => self.handle_rem(&r, user, caps, out).await,
            C::Rea(r) => self.handle_rea(&r, user, out).await,
            C::Adg(a) => self.handle_adg(&a, user, out).await,
            C::Rmg(r) => self.handle_rmg(&r, user, out).await,
            C::Reg(r) => self.handle_reg(&r, user, out).await,
            C::Gtc(g) => self.handle_gtc(&g, user, out).await,
            C::Blp(b) => self.handle_blp(&b, user, out).await,
            C::Prp(p) => self.handle_prp(&p, user, caps, out).await,
            C::Sbp(s) => self.handle_sbp(&s, user, out).await,
            C::Chg(c) => self.handle_chg(&c, user, caps, out),
            C::Uux(u) => self.handle_uux(&u, user, out),
            C::Gcf(g) => self.handle_gcf(&g, out),
            C::Qry(q) => self.handle_qry(&q, caps, out),
            C::Xfr(x) => self.handle_xfr(x.trid, user, caps, out),
            C::Url(u) => self.handle_url(&u, out),
            C::Fnd(f) => {
                self.ctx.lookups.turn(&user.handle).await;
                self.handle_fnd(&f, out).await;
            }
            C::Snd(s) => out.push(ServerMessage::SndOk { trid: s.trid }),
            C::Sdc(s) => out.push(ServerMessage::SdcOk { trid: s.trid }),
            C::Ims(i) => out.push(ServerMessage::Ims {
                trid: i.trid,
                on: i.on,
            }),
            C::Pag(p) => {
                self.handle_page(p.trid, &p.fields, &p.payload, user, out)
                    .await
            }
            C::Pgd(p) => {
                self.handle_page(p.trid, &p.fields, &p.payload, user, out)
                    .await
            }
            other => {
                info!(trid = ?other.trid(), "command out of state; closing");
                out.close();
            }
        }
    }
}

/// The MSNP error code a violation of the list model is answered with in dialect `caps`, or
/// `None` where the connection is closed instead (an RL edit: MSN servers disconnect for it).
/// The one mapping from [`ListError`] to the protocol; `205` for an unknown user is `208` from
/// MSNP10 (the address book).
#[must_use]
pub fn list_error_code(error: &ListError, caps: &Capabilities) -> Option<ErrorCode> {
    Some(match error {
        ListError::AlreadyOnList => ErrorCode::AlreadyThere,
        ListError::NotOnList => ErrorCode::NotOnList,
        ListError::InOppositeList => ErrorCode::AlreadyInOppositeList,
        ListError::NoSuchUser if caps.abch => ErrorCode::InvalidUsername,
        ListError::ReservedHandle => ErrorCode::InvalidUsername,
        ListError::NoSuchUser => ErrorCode::InvalidUser,
        ListError::ListFull => ErrorCode::ListFull,
        ListError::NoSuchGroup => ErrorCode::InvalidGroup,
        ListError::NotInGroup => ErrorCode::UserNotInGroup,
        ListError::TooManyGroups => ErrorCode::TooManyGroups,
        ListError::GroupNameTooLong => ErrorCode::GroupNameTooLong,
        ListError::GroupExists => ErrorCode::GroupAlreadyExists,
        ListError::CannotRemoveGroupZero => ErrorCode::CannotRemoveGroupZero,
        ListError::SameValue => ErrorCode::AlreadyInMode,
        ListError::InvalidName | ListError::InvalidParameter => ErrorCode::InvalidParameter,
        ListError::ReverseListReadOnly => return None,
        ListError::NoSuchAccount | ListError::Store(_) => ErrorCode::InternalServerError,
    })
}

impl Service for NsService {
    fn role(&self) -> Role {
        Role::Notification
    }

    fn caps(&self) -> Capabilities {
        self.dialect()
    }

    async fn handle(&mut self, cmd: C, out: &mut Replies) {
        match self.session.on_command(&cmd) {
            Decision::Dispatch => self.dispatch(cmd, out).await,
            Decision::Reply(code, trid) => out.push(ServerMessage::error(code, trid)),
            Decision::ReplyAndClose(message) => {
                match (&cmd, &message) {
                    (C::Ver(ver), ServerMessage::Ver { .. }) => info!(
                        offered = %offered_dialects(ver),
                        supported = %format_args!("{}-{}", SUPPORTED.start(), SUPPORTED.end()),
                        "VER: none of the offered dialects is supported; answering VER 0 and \
                         closing"
                    ),
                    _ => info!(trid = ?cmd.trid(), "login-stage violation; replying and closing"),
                }
                out.push(message);
                out.close();
            }
            Decision::Close(reason) => {
                info!(?reason, trid = ?cmd.trid(), "closing NS connection");
                out.close();
            }
        }
    }

    fn parse_error(&mut self, verb: Option<Verb>, error: &ParseError, out: &mut Replies) {
        use ParseErrorKind as K;
        use Verb as V;
        let online = self.user.is_some();
        let code = match (verb, &error.kind) {
            // MSNP10's "invalid user name"; a well-formed handle nobody has is no error.
            (Some(V::Adc), K::BadPassport) if self.dialect().abch => {
                Some(ErrorCode::InvalidUsername)
            }
            (Some(V::Add | V::Adc | V::Rem | V::Rea), K::BadPassport)
            | (Some(V::Add | V::Adc | V::Rea), K::BadName(_))
            | (Some(V::Add | V::Adc | V::Rea | V::Adg | V::Reg), K::NotUtf8(_))
            | (Some(V::Gtc | V::Blp | V::Chg | V::Prp | V::Sbp | V::Adc), K::BadValue(_)) => {
                Some(ErrorCode::InvalidParameter)
            }
            (Some(V::Adg | V::Reg), K::BadName(_)) => Some(ErrorCode::GroupNameTooLong),
            _ => None,
        };
        match (online, code, error.trid) {
            (true, Some(code), Some(trid)) => out.push(ServerMessage::error(code, trid)),
            _ => {
                info!(?verb, %error, "malformed NS command; closing");
                out.close();
            }
        }
    }

    fn activity(&mut self, now: Instant) {
        self.last_read = now;
    }

    fn deadline(&self) -> Option<Instant> {
        let idle = self.last_read + self.ctx.settings.ns_idle_timeout;
        let login = self.user.is_none().then_some(self.login_deadline);
        [Some(idle), self.challenge.deadline, login]
            .into_iter()
            .flatten()
            .min()
    }

    fn timeout(&mut self, now: Instant, out: &mut Replies) {
        if self.user.is_none() && now >= self.login_deadline {
            info!("NS connection did not log in in time; closing");
            out.close();
        } else if self.challenge.deadline.is_some_and(|d| now >= d) {
            info!("CHL not answered in time; closing");
            self.challenge.deadline = None;
            out.push(ServerMessage::Out { reason: None });
            out.close();
        } else if now >= self.last_read + self.ctx.settings.ns_idle_timeout {
            info!("NS connection idle too long; closing");
            out.close();
        }
    }

    fn shutdown(&mut self, out: &mut Replies) {
        out.push(ServerMessage::Out {
            reason: Some(OutReason::Ssd),
        });
        out.close();
    }

    fn finish(&mut self) {
        if let Some(user) = &self.user
            && self.registered
        {
            self.ctx.hub.unregister(&user.handle, self.outbox.id());
            self.ctx
                .web
                .inbox()
                .end_session(&user.handle, self.outbox.id());
        }
    }
}
