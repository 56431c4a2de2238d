//! One switchboard connection: `USR`/`ANS` with a cookie, then `CAL`, `MSG` and `OUT`
//! (PROTOCOL.md §3). Phase rules come from [`SbSession`]; everything else is here.
//!
//! ```text
//! USR trid <handle> <cookie>             → USR trid OK <handle> <name>   | 911 + close
//! ANS trid <handle> <cookie> <session>   → IRO trid i n <h> <name>... ANS trid OK | 911 + close
//! CAL trid <handle>                      → CAL trid RINGING <session> | 215 | 208 | 217 | 913
//! MSG trid U|N|A|D <len>                 → (relay) ACK trid | NAK trid | nothing
//! OUT                                    → close; the others get BYE <handle>
//! ```
//!
//! An `ANS` to a room of the virtual pager contact ([`super::Switchboards::ring_pager`]) gets,
//! after `ANS OK`, one `MSG` per waiting page from that contact and its `BYE`; the pages are
//! marked delivered once those messages are written to this connection's socket
//! ([`Replies::on_written`]); if it ends first they stay waiting for the next login.
//!
//! A connection that has not authenticated within `Settings::sb_auth_timeout` of connecting
//! is closed (bytes do not extend it). A `CAL` names another user, so it first waits for the
//! account's turn in the lookup throttle ([`crate::limits::lookups`]); unknown and offline
//! handles both get `217`.

use std::sync::Arc;

use relive_msnp::client::{Ans, Cal, ClientCommand, Msg, Role, Usr};
use relive_msnp::error::{ParseError, ParseErrorKind};
use relive_msnp::server::ServerMessage;
use relive_msnp::session::{Decision, SbSession};
use relive_msnp::types::{AckMode, ErrorCode, FriendlyName, Passport, SessionId, Token, TrId};
use relive_msnp::verb::Verb;
use relive_msnp::version::{Capabilities, ProtocolVersion};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Grant, JoinError, PagerDelivery, Participant, Purpose, Seat};
use crate::Context;
use crate::hub::Outbox;
use crate::net::conn::{Replies, Service};

/// Who this connection is once authenticated.
#[derive(Debug, Clone)]
struct Joined {
    user: Passport,
    name: FriendlyName,
    room: SessionId,
}

/// The switchboard protocol of one connection.
#[derive(Debug)]
pub struct SbService {
    ctx: Arc<Context>,
    outbox: Outbox,
    session: SbSession,
    caps: Capabilities,
    joined: Option<Joined>,
    auth_deadline: Instant,
    /// The connection's peer address (what the relay calls the observed address).
    observed: Option<std::net::IpAddr>,
}

impl SbService {
    /// A new, unauthenticated connection whose hub outbox is `outbox`.
    #[must_use]
    pub fn new(ctx: Arc<Context>, outbox: Outbox) -> Self {
        let auth_deadline = Instant::now() + ctx.settings.sb_auth_timeout;
        Self {
            ctx,
            outbox,
            session: SbSession::new(),
            // Until a cookie tells us the user's NS dialect (the SB speaks the dialect of the NS
            // session that got the cookie: MSNP12 adds caps to IRO/JOI).
            caps: Capabilities::for_version(ProtocolVersion::MSNP2),
            joined: None,
            auth_deadline,
            observed: None,
        }
    }

    /// Records the connection's peer address, so the relay can rewrite this member's
    /// invitations (without it they pass untouched).
    #[must_use]
    pub fn with_peer(mut self, peer: std::net::SocketAddr) -> Self {
        self.observed = Some(peer.ip().to_canonical());
        self
    }

    fn fail_auth(trid: TrId, out: &mut Replies) {
        out.push(ServerMessage::error(ErrorCode::AuthenticationFailed, trid));
        out.close();
    }

    fn usr(
        &mut self,
        trid: TrId,
        handle: &Passport,
        cookie: &relive_msnp::types::Secret,
        out: &mut Replies,
    ) {
        let grant = self
            .ctx
            .switchboards
            .redeem(cookie, handle, Instant::now())
            .or_else(|| self.signed_grant(handle, cookie));
        let Some(Grant {
            user,
            name,
            caps,
            client_caps,
            purpose: Purpose::NewRoom,
        }) = grant
        else {
            info!(trid = trid.0, "SB USR with an invalid cookie");
            return Self::fail_auth(trid, out);
        };
        let room = self.ctx.switchboards.create_room(
            &Participant {
                user: user.clone(),
                name: name.clone(),
                caps: client_caps,
            },
            self.outbox.clone(),
            Seat::new(self.observed, &caps),
        );
        self.caps = caps;
        self.session.joined();
        out.push(ServerMessage::SbUsrOk {
            trid,
            handle: user.clone(),
            name: name.clone(),
        });
        debug!(session = room.0, "room opened");
        self.joined = Some(Joined { user, name, room });
    }

    /// Cluster mode: a cookie `XFR SB` signed on some NS node for this SB node; the rest of
    /// the grant comes from the hub, which knows every online user of the network.
    fn signed_grant(
        &self,
        handle: &Passport,
        cookie: &relive_msnp::types::Secret,
    ) -> Option<Grant> {
        let cluster = self.ctx.cluster.as_ref()?;
        if !cluster
            .cookies()
            .redeem(&cluster.settings().node_id, handle, cookie.as_str())
        {
            return None;
        }
        let hub = &self.ctx.hub;
        Some(Grant {
            user: handle.clone(),
            name: hub.name_of(handle)?,
            caps: hub.dialect_of(handle)?,
            client_caps: hub.caps_of(handle).unwrap_or_default(),
            purpose: Purpose::NewRoom,
        })
    }

    fn ans(&mut self, ans: &Ans, out: &mut Replies) {
        let grant = self
            .ctx
            .switchboards
            .redeem(&ans.cookie, &ans.handle, Instant::now());
        let Some(Grant {
            user,
            name,
            caps,
            client_caps,
            purpose: Purpose::Join(room),
        }) = grant.filter(|g| g.purpose == Purpose::Join(ans.session))
        else {
            info!(trid = ans.trid.0, "SB ANS with an invalid cookie");
            return Self::fail_auth(ans.trid, out);
        };
        let me = Participant {
            user: user.clone(),
            name: name.clone(),
            caps: client_caps,
        };
        let present = match self.ctx.switchboards.join(
            room,
            &me,
            self.outbox.clone(),
            Seat::new(self.observed, &caps),
        ) {
            Ok(present) => present,
            Err(JoinError::Gone | JoinError::Full) => return Self::fail_auth(ans.trid, out),
        };
        self.caps = caps;
        self.session.joined();
        let total = u32::try_from(present.len()).unwrap_or(u32::MAX);
        for (i, p) in present.into_iter().enumerate() {
            out.push(ServerMessage::Iro {
                trid: ans.trid,
                index: u32::try_from(i + 1).unwrap_or(u32::MAX),
                total,
                handle: p.user,
                name: p.name,
                caps: p.caps,
            });
        }
        out.push(ServerMessage::AnsOk { trid: ans.trid });
        debug!(session = room.0, "joined room");
        if let Some((pager, delivery)) = self.ctx.switchboards.take_pager(room, &user) {
            self.say_pages(&pager, delivery, out);
        }
        self.joined = Some(Joined { user, name, room });
    }

    /// The virtual pager contact says each page and leaves; the pages are marked delivered
    /// once all that is written.
    fn say_pages(&self, pager: &Participant, delivery: PagerDelivery, out: &mut Replies) {
        for payload in delivery.messages {
            out.push(ServerMessage::Msg {
                from: Token::from(&pager.user),
                name: pager.name.clone(),
                payload,
            });
        }
        out.push(ServerMessage::Bye {
            handle: pager.user.clone(),
            timed_out: false,
        });
        let written = out.on_written();
        let ctx = Arc::clone(&self.ctx);
        tokio::spawn(async move {
            let pages = delivery.page_ids.len();
            if written.await.is_err() {
                info!(
                    pages,
                    "connection ended before the pages were written; they wait"
                );
                return;
            }
            match ctx
                .store
                .mark_pages_delivered(delivery.account, delivery.page_ids)
                .await
            {
                Ok(()) => info!(pages, "pages delivered by the virtual pager contact"),
                Err(error) => warn!(%error, "could not mark pages delivered"),
            }
        });
    }

    fn cal(&self, cal: &Cal, me: &Joined, out: &mut Replies) {
        let sbs = &self.ctx.switchboards;
        let hub = &self.ctx.hub;
        if !hub.is_visible(&me.user) {
            // Hidden (or logged out of the NS): no invitations (PROTOCOL.md §1.2).
            return out.push(ServerMessage::error(
                ErrorCode::NotAllowedWhenOffline,
                cal.trid,
            ));
        }
        if cal.handle == me.user || sbs.is_present_or_invited(me.room, &cal.handle) {
            return out.push(ServerMessage::error(ErrorCode::AlreadyThere, cal.trid));
        }
        let now = Instant::now();
        let address = sbs.address();
        // Looked up before `ring`, which holds the hub lock while it builds the message.
        let callee_caps = hub.dialect_of(&cal.handle).unwrap_or(self.caps);
        let callee_client_caps = hub.caps_of(&cal.handle).unwrap_or_default();
        let callee_name = hub
            .name_of(&cal.handle)
            .unwrap_or_else(|| FriendlyName::from(cal.handle.clone()));
        let rung = hub.ring(&me.user, &cal.handle, || {
            // Built only once the callee is known to be reachable: its own fresh cookie.
            let cookie = sbs.issue(
                Grant {
                    user: cal.handle.clone(),
                    name: callee_name,
                    caps: callee_caps,
                    client_caps: callee_client_caps,
                    purpose: Purpose::Join(me.room),
                },
                now,
            );
            ServerMessage::Rng {
                session: me.room,
                addr: address.clone(),
                cookie,
                caller: me.user.clone(),
                caller_name: me.name.clone(),
            }
        });
        match rung {
            Ok(()) => {
                sbs.mark_invited(me.room, &cal.handle);
                out.push(ServerMessage::CalRinging {
                    trid: cal.trid,
                    session: me.room,
                });
            }
            Err(e) => out.push(ServerMessage::error(e.code(), cal.trid)),
        }
    }

    fn msg(&self, msg: &Msg, me: &Joined, out: &mut Replies) {
        if msg.ack == AckMode::D && !self.caps.msg_ack_d {
            info!(trid = msg.trid.0, "MSG ack mode D before MSNP9; closing");
            return out.close();
        }
        if msg.ack == AckMode::D && !is_p2p_message(&msg.payload) {
            info!(trid = msg.trid.0, "malformed MSG D");
            return out.push(ServerMessage::error(ErrorCode::P2pError, msg.trid));
        }
        let delivery = self.ctx.switchboards.relay(
            me.room,
            self.outbox.id(),
            &me.user,
            &me.name,
            &msg.payload,
        );
        debug!(
            trid = msg.trid.0,
            bytes = msg.payload.len(),
            recipients = delivery.recipients,
            delivered = delivery.delivered,
            "relayed"
        );
        let reply = match (msg.ack, delivery.complete()) {
            (AckMode::U, _) | (AckMode::N, true) => return,
            (AckMode::A | AckMode::D, true) => ServerMessage::Ack { trid: msg.trid },
            (_, false) => ServerMessage::Nak { trid: msg.trid },
        };
        out.push(reply);
    }
}

/// Length of the binary MSNC header that starts every P2P message body (PROTOCOL.md §5.1).
const P2P_HEADER_BYTES: usize = 48;

/// Whether `payload` is an `application/x-msnmsgrp2p` MIME message whose body holds at least
/// the 48-byte binary header (what `MSG D` must carry; anything else is answered `282`).
fn is_p2p_message(payload: &[u8]) -> bool {
    let Some(split) = payload.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let (head, body) = (&payload[..split], &payload[split + 4..]);
    let p2p = head.split(|b| *b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return false;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        name.eq_ignore_ascii_case(b"Content-Type")
            && value
                .trim_ascii()
                .eq_ignore_ascii_case(b"application/x-msnmsgrp2p")
    });
    p2p && body.len() >= P2P_HEADER_BYTES
}

impl Service for SbService {
    fn role(&self) -> Role {
        Role::Switchboard
    }

    fn caps(&self) -> Capabilities {
        self.caps
    }

    async fn handle(&mut self, cmd: ClientCommand, out: &mut Replies) {
        match self.session.on_command(&cmd) {
            Decision::Dispatch => {}
            Decision::Reply(code, trid) => return out.push(ServerMessage::error(code, trid)),
            Decision::ReplyAndClose(m) => {
                out.push(m);
                return out.close();
            }
            Decision::Close(reason) => {
                info!(?reason, "closing SB connection");
                return out.close();
            }
        }
        match (&cmd, self.joined.clone()) {
            (
                ClientCommand::Usr(Usr::Switchboard {
                    trid,
                    handle,
                    cookie,
                }),
                None,
            ) => {
                self.usr(*trid, handle, cookie, out);
            }
            (ClientCommand::Ans(ans), None) => self.ans(ans, out),
            (ClientCommand::Cal(cal), Some(me)) => {
                // A CAL names another user: the account's turn in the lookup throttle.
                self.ctx.lookups.turn(&me.user).await;
                self.cal(cal, &me, out);
            }
            (ClientCommand::Msg(msg), Some(me)) => self.msg(msg, &me, out),
            (ClientCommand::Out, _) => out.close(),
            _ => {
                info!("SB command out of state; closing");
                out.close();
            }
        }
    }

    fn parse_error(&mut self, verb: Option<Verb>, error: &ParseError, out: &mut Replies) {
        // A malformed handle in CAL is answered 208 (transcript 09); anything else closes,
        // including a bad ack letter (PROTOCOL.md §3.2).
        if self.session.is_joined()
            && verb == Some(Verb::Cal)
            && error.kind == ParseErrorKind::BadPassport
            && let Some(trid) = error.trid
        {
            return out.push(ServerMessage::error(ErrorCode::InvalidUsername, trid));
        }
        info!(?verb, %error, "malformed SB command; closing");
        out.close();
    }

    fn activity(&mut self, _now: Instant) {}

    fn deadline(&self) -> Option<Instant> {
        self.joined.is_none().then_some(self.auth_deadline)
    }

    fn timeout(&mut self, now: Instant, out: &mut Replies) {
        if self.joined.is_none() && now >= self.auth_deadline {
            info!("SB connection did not authenticate in time; closing");
            out.close();
        }
    }

    fn shutdown(&mut self, out: &mut Replies) {
        out.close();
    }

    fn finish(&mut self) {
        if let Some(me) = self.joined.take() {
            self.ctx
                .switchboards
                .leave(me.room, &me.user, self.outbox.id(), false);
        }
    }
}
