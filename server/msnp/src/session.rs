//! Pure phase rules for NS and SB connections (PROTOCOL.md §1.6, §9a.3).
//!
//! The session decides *whether* a parsed command may be handled now; the server's handlers
//! decide *what* it does. Per command the server calls `on_command` and acts on the
//! [`Decision`]. Credential checks need the store, so the server reports their outcome back
//! ([`NsSession::login_succeeded`], [`SbSession::joined`]).
//!
//! ```text
//! NS: Negotiating --VER--> Negotiated --USR I--> Authenticating --(server: OK)--> Online
//! SB: Unauthenticated --USR/ANS (server: cookie OK)--> Joined
//! ```
//!
//! Rules: a second `VER` → `715` and close; a command with no meaning yet → close without a
//! reply; `USR` after success → `207`; commands removed in the dialect (`INF`/`USR MD5` under
//! MSNP8+, client `LST` under MSNP9, `ADD`/`REA` under MSNP10+, `ADC`/`SBP` before MSNP10, `UUX`
//! before MSNP11, `GCF` outside MSNP11–12 …) → close; any client `ADD`/`ADC`/`REM` on RL →
//! close; unknown commands → close; `CHG FLN` → `201`; `XFR SB` before the first `CHG` or while
//! hidden → `913`.

use std::ops::RangeInclusive;

use crate::client::{ClientCommand as C, Usr};
use crate::server::ServerMessage;
use crate::types::{AuthMethod, ErrorCode, ListKind, Status, TrId};
use crate::version::{Capabilities, ProtocolVersion, negotiate};

/// Why the session closes the connection without (or after) a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// `VER` offered no dialect we support.
    NoCommonDialect,
    /// A known command at a moment where it has no meaning.
    NotExpected,
    /// A command the negotiated dialect removed or never had.
    NotInDialect,
    /// A client tried to edit its reverse list.
    ReverseListEdit,
    /// A command this crate does not know (or a server-only command).
    UnknownCommand,
    /// A command of the other server role (e.g. `MSG` on the NS).
    WrongRole,
}

/// What the server should do with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Hand the command to its handler.
    Dispatch,
    /// Answer `<code> <trid>` and keep the connection.
    Reply(ErrorCode, TrId),
    /// Send this message, then close.
    ReplyAndClose(ServerMessage),
    /// Close without a reply.
    Close(CloseReason),
}

/// The login phase of a notification-server connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsPhase {
    /// Waiting for `VER`.
    Negotiating,
    /// Dialect chosen; `CVR`/`INF`/`USR I` expected.
    Negotiated,
    /// `USR ... I` seen; `USR ... S` with this method expected.
    Authenticating(AuthMethod),
    /// Logged in.
    Online,
}

/// The phase rules of one NS connection.
#[derive(Debug, Clone)]
pub struct NsSession {
    supported: RangeInclusive<ProtocolVersion>,
    phase: NsPhase,
    caps: Option<Capabilities>,
    cvr_seen: bool,
    status: Option<Status>,
}

impl NsSession {
    /// A new connection that will accept dialects in `supported`.
    #[must_use]
    pub const fn new(supported: RangeInclusive<ProtocolVersion>) -> Self {
        Self {
            supported,
            phase: NsPhase::Negotiating,
            caps: None,
            cvr_seen: false,
            status: None,
        }
    }

    /// The current phase.
    #[must_use]
    pub const fn phase(&self) -> &NsPhase {
        &self.phase
    }

    /// The negotiated dialect's capabilities (after a successful `VER`).
    #[must_use]
    pub const fn caps(&self) -> Option<&Capabilities> {
        self.caps.as_ref()
    }

    /// The status last set with an accepted `CHG` (`None` before the first).
    #[must_use]
    pub const fn status(&self) -> Option<Status> {
        self.status
    }

    /// Records that the server accepted the credentials (it sends `USR OK`).
    pub fn login_succeeded(&mut self) {
        self.phase = NsPhase::Online;
    }

    /// Decides what to do with `cmd` and advances the phase.
    pub fn on_command(&mut self, cmd: &C) -> Decision {
        let not_expected = Decision::Close(CloseReason::NotExpected);
        if let C::Unknown { .. } = cmd {
            return Decision::Close(CloseReason::UnknownCommand);
        }
        let Some(caps) = self.caps else {
            let C::Ver(ver) = cmd else {
                return not_expected;
            };
            return match negotiate(&ver.offered(), self.supported.clone()) {
                Some(v) => {
                    self.caps = Some(Capabilities::for_version(v));
                    self.phase = NsPhase::Negotiated;
                    Decision::Dispatch
                }
                None => Decision::ReplyAndClose(ServerMessage::Ver {
                    trid: ver.trid,
                    versions: Vec::new(),
                    cvr0: false,
                }),
            };
        };
        match cmd {
            C::Ver(v) => {
                return Decision::ReplyAndClose(ServerMessage::error(
                    ErrorCode::NotExpected,
                    v.trid,
                ));
            }
            C::Cvr(_) => {
                self.cvr_seen = true;
                return Decision::Dispatch;
            }
            // Before login only VER/CVR/INF/USR have a meaning (PROTOCOL.md §9a.3); `OUT` is the
            // client leaving, which the server honours at any point.
            C::Out => return Decision::Dispatch,
            C::Png if self.phase != NsPhase::Online => return not_expected,
            C::Png => return Decision::Dispatch,
            C::Inf(_) if !caps.md5_allowed => return Decision::Close(CloseReason::NotInDialect),
            C::Cal(_) | C::Ans(_) | C::Msg(_) => return Decision::Close(CloseReason::WrongRole),
            _ => {}
        }
        match self.phase {
            NsPhase::Negotiating => not_expected,
            NsPhase::Negotiated | NsPhase::Authenticating(_) => self.login_stage(cmd, &caps),
            NsPhase::Online => self.online(cmd, &caps),
        }
    }

    fn login_stage(&mut self, cmd: &C, caps: &Capabilities) -> Decision {
        match (cmd, &self.phase) {
            (C::Inf(_), _) => Decision::Dispatch,
            (C::Usr(Usr::Initial { method, .. }), _) => {
                let allowed = match method {
                    AuthMethod::Md5 => caps.md5_allowed,
                    AuthMethod::Ctp => caps.ctp_allowed,
                    AuthMethod::Twn => caps.twn,
                };
                if !allowed {
                    return Decision::Close(CloseReason::NotInDialect);
                }
                if caps.cvr_before_usr && !self.cvr_seen {
                    return Decision::Close(CloseReason::NotExpected);
                }
                self.phase = NsPhase::Authenticating(*method);
                Decision::Dispatch
            }
            (C::Usr(Usr::Subsequent { method, .. }), NsPhase::Authenticating(m)) if method == m => {
                Decision::Dispatch
            }
            _ => Decision::Close(CloseReason::NotExpected),
        }
    }

    fn online(&mut self, cmd: &C, caps: &Capabilities) -> Decision {
        let removed = Decision::Close(CloseReason::NotInDialect);
        match cmd {
            C::Usr(u) => Decision::Reply(ErrorCode::AlreadyLoggedIn, u.trid()),
            C::Add(a) if a.list == ListKind::Rl => Decision::Close(CloseReason::ReverseListEdit),
            C::Adc(a) if a.list == ListKind::Rl => Decision::Close(CloseReason::ReverseListEdit),
            C::Rem(r) if r.list == ListKind::Rl => Decision::Close(CloseReason::ReverseListEdit),
            C::Add(_) | C::Rea(_) if !caps.add_rea => removed,
            C::Adc(_) | C::Sbp(_) if !caps.abch => removed,
            C::Uux(_) if !caps.psm => removed,
            C::Gcf(_) if !caps.gcf => removed,
            C::Adg(_) | C::Rmg(_) | C::Reg(_) if !caps.groups => removed,
            C::Lst(_) if !caps.client_list_query => removed,
            C::Lsg(_) if !(caps.client_list_query && caps.groups) => removed,
            C::Prp(_) if !caps.phone_props => removed,
            C::Qry(_) if !caps.chl_qry => removed,
            // MSNP9+ answers the old pager command `715` (yellows111 `PAG`); older dialects
            // never had it.
            C::Pag(p) if !caps.pag && caps.pgd => Decision::Reply(ErrorCode::NotExpected, p.trid),
            C::Pag(_) if !caps.pag => removed,
            C::Pgd(_) if !caps.pgd => removed,
            C::Sdc(_) if !caps.notifications => removed,
            C::Snd(_) if !caps.snd => removed,
            C::Fnd(_) if !caps.fnd => removed,
            C::Ims(_) if !caps.ims => removed,
            C::Chg(c) if c.status == Status::Fln => {
                Decision::Reply(ErrorCode::InvalidParameter, c.trid)
            }
            C::Chg(c) => {
                self.status = Some(c.status);
                Decision::Dispatch
            }
            C::Xfr(x) if matches!(self.status, None | Some(Status::Hdn)) => {
                Decision::Reply(ErrorCode::NotAllowedWhenOffline, x.trid)
            }
            _ => Decision::Dispatch,
        }
    }
}

/// The phase rules of one SB connection.
#[derive(Debug, Clone, Default)]
pub struct SbSession {
    joined: bool,
}

impl SbSession {
    /// A new, unauthenticated SB connection.
    #[must_use]
    pub const fn new() -> Self {
        Self { joined: false }
    }

    /// Whether the server accepted the `USR`/`ANS` cookie.
    #[must_use]
    pub const fn is_joined(&self) -> bool {
        self.joined
    }

    /// Records that the cookie was accepted (the server sent `USR OK` or `ANS OK`).
    pub fn joined(&mut self) {
        self.joined = true;
    }

    /// Decides what to do with `cmd`: `USR`/`ANS` first, then `CAL`/`MSG`/`OUT`.
    #[must_use]
    pub fn on_command(&self, cmd: &C) -> Decision {
        match (self.joined, cmd) {
            (_, C::Unknown { .. }) => Decision::Close(CloseReason::UnknownCommand),
            (_, C::Out) | (false, C::Usr(Usr::Switchboard { .. }) | C::Ans(_)) => {
                Decision::Dispatch
            }
            (true, C::Cal(_) | C::Msg(_)) => Decision::Dispatch,
            (_, C::Usr(Usr::Initial { .. } | Usr::Subsequent { .. })) => {
                Decision::Close(CloseReason::WrongRole)
            }
            _ => Decision::Close(CloseReason::NotExpected),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Role;
    use crate::frame::{Direction, decode};
    use bytes::BytesMut;

    fn cmd(line: &str, role: Role) -> C {
        let mut b = BytesMut::from(format!("{line}\r\n").as_bytes());
        let f = decode(&mut b, Direction::ClientToServer).unwrap().unwrap();
        C::from_frame(&f, role, &Capabilities::for_version(ProtocolVersion::MSNP8)).unwrap()
    }

    fn run(s: &mut NsSession, line: &str) -> Decision {
        s.on_command(&cmd(line, Role::Notification))
    }

    fn ns() -> NsSession {
        NsSession::new(ProtocolVersion::IMPLEMENTED)
    }

    #[test]
    fn msnp7_md5_login_then_usr_again_is_207() {
        let mut s = ns();
        assert_eq!(run(&mut s, "VER 1 MSNP7 CVR0"), Decision::Dispatch);
        assert_eq!(s.caps().map(|c| c.version), Some(ProtocolVersion::MSNP7));
        assert_eq!(run(&mut s, "INF 2"), Decision::Dispatch);
        assert_eq!(
            run(&mut s, "USR 3 MD5 I alice@example.com"),
            Decision::Dispatch
        );
        assert_eq!(
            run(&mut s, "USR 4 MD5 S 12d89a1b85366cad162178f5de0fff5d"),
            Decision::Dispatch
        );
        s.login_succeeded();
        assert_eq!(
            run(&mut s, "USR 5 MD5 I alice@example.com"),
            Decision::Reply(ErrorCode::AlreadyLoggedIn, TrId(5))
        );
        assert_eq!(run(&mut s, "SYN 6 0"), Decision::Dispatch);
        assert_eq!(
            run(&mut s, "XFR 7 SB"),
            Decision::Reply(ErrorCode::NotAllowedWhenOffline, TrId(7))
        );
        assert_eq!(
            run(&mut s, "CHG 8 FLN"),
            Decision::Reply(ErrorCode::InvalidParameter, TrId(8))
        );
        assert_eq!(run(&mut s, "CHG 9 NLN"), Decision::Dispatch);
        assert_eq!(run(&mut s, "XFR 10 SB"), Decision::Dispatch);
        assert_eq!(
            run(&mut s, "ADD 11 RL bob@example.com Bob"),
            Decision::Close(CloseReason::ReverseListEdit)
        );
        assert_eq!(
            run(&mut s, "XYZ 12 foo"),
            Decision::Close(CloseReason::UnknownCommand)
        );
    }

    #[test]
    fn ping_is_for_logged_in_clients_and_out_for_anyone() {
        let mut s = ns();
        assert_eq!(run(&mut s, "VER 1 MSNP8 CVR0"), Decision::Dispatch);
        assert_eq!(
            run(&mut s, "PNG"),
            Decision::Close(CloseReason::NotExpected)
        );
        let mut s = ns();
        run(&mut s, "VER 1 MSNP8 CVR0");
        run(
            &mut s,
            "CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.0.0602 MSMSGS a@b.c",
        );
        run(&mut s, "USR 3 TWN I a@b.c");
        assert_eq!(
            run(&mut s, "PNG"),
            Decision::Close(CloseReason::NotExpected)
        );
        assert_eq!(run(&mut s, "OUT"), Decision::Dispatch);
        s.login_succeeded();
        assert_eq!(run(&mut s, "PNG"), Decision::Dispatch);
    }

    #[test]
    fn login_stage_violations() {
        let mut s = ns();
        assert_eq!(
            run(&mut s, "VER 1 MSNP99 CVR0"),
            Decision::ReplyAndClose(ServerMessage::Ver {
                trid: TrId(1),
                versions: vec![],
                cvr0: false
            })
        );
        let mut s = ns();
        assert_eq!(
            run(&mut s, "SYN 1 0"),
            Decision::Close(CloseReason::NotExpected)
        );
        let mut s = ns();
        run(&mut s, "VER 1 MSNP7 CVR0");
        assert_eq!(
            run(&mut s, "VER 2 MSNP7 CVR0"),
            Decision::ReplyAndClose(ServerMessage::error(ErrorCode::NotExpected, TrId(2)))
        );
        let mut s = ns();
        run(&mut s, "VER 1 MSNP7 CVR0");
        assert_eq!(
            run(&mut s, "SYN 2 0"),
            Decision::Close(CloseReason::NotExpected)
        );
        let mut s = ns();
        run(&mut s, "VER 1 MSNP8 CVR0");
        assert_eq!(
            run(&mut s, "INF 2"),
            Decision::Close(CloseReason::NotInDialect)
        );
        let mut s = ns();
        run(&mut s, "VER 1 MSNP8 CVR0");
        run(
            &mut s,
            "CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 5.0.0544 MSMSGS alice@example.com",
        );
        assert_eq!(
            run(&mut s, "USR 3 MD5 I alice@example.com"),
            Decision::Close(CloseReason::NotInDialect)
        );
        let mut s = ns();
        run(&mut s, "VER 1 MSNP8 CVR0");
        assert_eq!(
            run(&mut s, "USR 3 TWN I alice@example.com"),
            Decision::Close(CloseReason::NotExpected)
        );
        let mut s = ns();
        run(&mut s, "VER 1 MSNP8 CVR0");
        assert_eq!(
            run(&mut s, "RNG 2"),
            Decision::Close(CloseReason::UnknownCommand)
        );
    }

    #[test]
    fn removed_commands_close_online_sessions() {
        let mut s = ns();
        run(&mut s, "VER 1 MSNP9 CVR0");
        run(
            &mut s,
            "CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.0.0602 MSMSGS alice@example.com",
        );
        assert_eq!(
            run(&mut s, "USR 3 TWN I alice@example.com"),
            Decision::Dispatch
        );
        assert_eq!(
            run(&mut s, "USR 4 MD5 S x"),
            Decision::Close(CloseReason::NotExpected)
        );
        let mut s = ns();
        run(&mut s, "VER 1 MSNP9 CVR0");
        run(
            &mut s,
            "CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.0.0602 MSMSGS alice@example.com",
        );
        run(&mut s, "USR 3 TWN I alice@example.com");
        s.login_succeeded();
        assert_eq!(
            run(&mut s, "LST 5 FL"),
            Decision::Close(CloseReason::NotInDialect)
        );
        assert_eq!(run(&mut s, "ADG 6 Work 0"), Decision::Dispatch);
        assert_eq!(
            run(&mut s, "MSG 7 A 0"),
            Decision::Close(CloseReason::WrongRole)
        );
    }

    /// An online session in dialect `v` (the commands are parsed in that dialect).
    fn online_in(v: &str) -> (NsSession, Capabilities) {
        let mut s = ns();
        let caps = Capabilities::for_version(ProtocolVersion::parse(v).unwrap());
        let mut go = |line: &str| {
            let mut b = BytesMut::from(format!("{line}\r\n").as_bytes());
            let f = decode(&mut b, Direction::ClientToServer).unwrap().unwrap();
            s.on_command(&C::from_frame(&f, Role::Notification, &caps).unwrap())
        };
        go(&format!("VER 1 {v} CVR0"));
        go("CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 7.0.0813 MSMSGS alice@example.com");
        go("USR 3 TWN I alice@example.com");
        s.login_succeeded();
        (s, caps)
    }

    fn run_in(s: &mut NsSession, caps: &Capabilities, line: &str) -> Decision {
        let mut b = BytesMut::from(format!("{line}\r\n").as_bytes());
        let f = decode(&mut b, Direction::ClientToServer).unwrap().unwrap();
        s.on_command(&C::from_frame(&f, Role::Notification, caps).unwrap())
    }

    #[test]
    fn address_book_commands_follow_the_dialect() {
        let closed = Decision::Close(CloseReason::NotInDialect);
        // MSNP9 has no ADC, SBP, UUX or GCF.
        let (mut s, caps) = online_in("MSNP9");
        assert_eq!(run_in(&mut s, &caps, "ADC 5 AL N=bob@example.com"), closed);
        let (mut s, caps) = online_in("MSNP9");
        assert_eq!(run_in(&mut s, &caps, "GCF 5 Shields.xml"), closed);
        // MSNP10: ADD and REA are gone, ADC/SBP exist, UUX and GCF not yet.
        let (mut s, caps) = online_in("MSNP10");
        assert_eq!(
            run_in(&mut s, &caps, "ADC 5 FL N=bob@example.com F=Bob"),
            Decision::Dispatch
        );
        assert_eq!(
            run_in(
                &mut s,
                &caps,
                "SBP 6 7b7f3a8e-0c41-4a3a-9d3a-2f4c2d1b9e10 MFN Bobby"
            ),
            Decision::Dispatch
        );
        assert_eq!(
            run_in(&mut s, &caps, "ADC 7 RL N=bob@example.com"),
            Decision::Close(CloseReason::ReverseListEdit)
        );
        let (mut s, caps) = online_in("MSNP10");
        assert_eq!(
            run_in(&mut s, &caps, "ADD 5 FL bob@example.com Bob"),
            closed
        );
        let (mut s, caps) = online_in("MSNP10");
        assert_eq!(run_in(&mut s, &caps, "REA 5 alice@example.com Al"), closed);
        let (mut s, caps) = online_in("MSNP10");
        assert_eq!(run_in(&mut s, &caps, "GCF 5 Shields.xml"), closed);
        // MSNP11/12: UUX and GCF.
        let (mut s, caps) = online_in("MSNP12");
        assert_eq!(
            run_in(&mut s, &caps, "GCF 5 Shields.xml"),
            Decision::Dispatch
        );
        let mut b = BytesMut::from(&b"UUX 6 25\r\n<Data><PSM>x</PSM></Data>"[..]);
        let f = decode(&mut b, Direction::ClientToServer).unwrap().unwrap();
        let uux = C::from_frame(&f, Role::Notification, &caps).unwrap();
        assert_eq!(s.on_command(&uux), Decision::Dispatch);
        let (mut s10, _) = online_in("MSNP10");
        assert_eq!(s10.on_command(&uux), closed);
    }

    #[test]
    fn switchboard_order() {
        let mut s = SbSession::new();
        let c = |l| cmd(l, Role::Switchboard);
        assert_eq!(
            s.on_command(&c("CAL 2 bob@example.com")),
            Decision::Close(CloseReason::NotExpected)
        );
        assert_eq!(
            s.on_command(&c("USR 1 alice@example.com 1.2")),
            Decision::Dispatch
        );
        s.joined();
        assert_eq!(
            s.on_command(&c("CAL 2 bob@example.com")),
            Decision::Dispatch
        );
        assert_eq!(s.on_command(&c("MSG 3 A 0")), Decision::Dispatch);
        assert_eq!(
            s.on_command(&c("USR 4 alice@example.com 1.2")),
            Decision::Close(CloseReason::NotExpected)
        );
        assert_eq!(s.on_command(&c("OUT")), Decision::Dispatch);
    }
}
