//! The switchboard (PROTOCOL.md §3): cookies, rooms, and the per-connection SB service.
//!
//! ```text
//! NS:  XFR 10 SB            → XFR 10 SB <sb-addr> CKI <cookie-a>        (cookie for alice)
//! SB:  USR 1 alice <cookie-a> → USR 1 OK alice Alice                    (room created)
//! SB:  CAL 2 bob            → CAL 2 RINGING <session>   + bob's NS: RNG <session> ... <cookie-b>
//! SB:  ANS 1 bob <cookie-b> <session> → IRO ... / ANS 1 OK;  others: JOI bob Bob
//! SB:  MSG 3 A <len>        → MSG alice Alice <len> to everyone else; ACK 3 / NAK 3
//! ```
//!
//! * [`Switchboards`] is shared by every connection (in [`crate::Context`]). Cookies are random,
//!   single-use, bound to one user and one purpose (a new room, or one invitation to one room),
//!   and expire after [`COOKIE_LIFETIME`]; the cookie in `RNG` is never the one from `XFR`.
//! * A room is a list of members, each with its connection's outbox; an empty room is removed.
//! * [`fan_out_message`] is the one place an SB `MSG` is copied to each recipient. The relay's
//!   invitation rewriter hooks in there: each room keeps a [`RoomRelay`], and with the relay
//!   on ([`Switchboards::set_relay`]) every copy goes through [`RoomRelay::rewrite`] with the
//!   members' [`Seat`]s (observed address, client generation) and the agent registry.
//! * [`SbService`] ([`service`]) is the per-connection protocol on top of the driver.
//! * [`history`]: after the fan-out, still under the room lock, a `text/plain` message is
//!   offered to the opt-in history recorder with the members present ([`History::offer`]:
//!   consent of all, a bounded queue, never blocking delivery).
//! * Pages for clients without `IPG` (MSNP2–5, issue 18): [`Switchboards::ring_pager`] opens a
//!   room whose only member is the virtual contact [`relive_msnp::pager::VIRTUAL_HANDLE`]
//!   ("Pager"), a member with no connection, and issues the user's `RNG` cookie for it. The
//!   user's `ANS` gets `IRO` naming it; [`Switchboards::take_pager`] then hands the page
//!   messages to the answering connection, after which the virtual member leaves (`BYE`).
//!   While it is there, what the user sends it is counted as delivered and dropped. A room
//!   nobody answered is removed after [`COOKIE_LIFETIME`] or when the same user is rung again
//!   (their pages stay waiting).

pub mod history;
mod service;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use rand::Rng as _;
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{ClientCaps, FriendlyName, Passport, Secret, SessionId, Token};
use relive_msnp::version::Capabilities;
use relive_relay::rewrite::{self, ClientGeneration, Hop, Peer, PeerFacts, RoomRelay};
use tokio::time::Instant;

use crate::hub::{ConnId, Event, Outbox};
use crate::relay::Relay;
use crate::store::AccountId;

pub use history::History;
pub use service::SbService;

/// How long an `XFR SB` or `RNG` cookie stays valid.
pub const COOKIE_LIFETIME: Duration = Duration::from_secs(120);
/// Most members in one room.
pub const MAX_ROOM_MEMBERS: usize = 32;
/// Most cookies outstanding at once (server-wide); beyond it the oldest expire early.
const MAX_COOKIES: usize = 100_000;

/// What a cookie lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `USR`: open a new room (issued by `XFR SB`).
    NewRoom,
    /// `ANS`: join this room (issued with `RNG`).
    Join(SessionId),
}

/// A redeemed cookie: who it was issued to and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The user it was issued to.
    pub user: Passport,
    /// Their friendly name at the time.
    pub name: FriendlyName,
    /// Their NS dialect (the SB encodes in it and applies its `MSG` rules).
    pub caps: Capabilities,
    /// The client caps of their last `CHG` (MSNP12+ `IRO`/`JOI` show them to the others).
    pub client_caps: ClientCaps,
    /// What it is for.
    pub purpose: Purpose,
}

#[derive(Debug)]
struct Pending {
    grant: Grant,
    expires: Instant,
}

/// What the relay needs to know about one SB connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    /// The address the server sees for this switchboard connection (`None`: unknown, and
    /// the member's invitations are never rewritten).
    pub observed: Option<IpAddr>,
    /// The client's generation, from its NS dialect.
    pub generation: ClientGeneration,
}

impl Seat {
    /// A seat for a connection from `observed` speaking `caps`' dialect.
    #[must_use]
    pub fn new(observed: Option<IpAddr>, caps: &Capabilities) -> Self {
        Self {
            observed,
            generation: caps.client_generation,
        }
    }
}

impl Default for Seat {
    fn default() -> Self {
        Self {
            observed: None,
            generation: ClientGeneration::Legacy,
        }
    }
}

/// One participant of a room.
#[derive(Debug, Clone)]
struct Member {
    user: Passport,
    name: FriendlyName,
    /// Their client caps (for MSNP12+ `IRO`/`JOI`).
    caps: ClientCaps,
    outbox: Outbox,
    seat: Seat,
}

/// Who is in a room, as an `IRO`/`JOI` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The handle.
    pub user: Passport,
    /// The friendly name.
    pub name: FriendlyName,
    /// The client caps of their last `CHG`.
    pub caps: ClientCaps,
}

/// Pages the virtual pager contact says to one user ([`Switchboards::ring_pager`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagerDelivery {
    /// The user's account (whose pages these are).
    pub account: AccountId,
    /// One `text/plain` payload per page, in order.
    pub messages: Vec<Bytes>,
    /// The pages' row ids, to mark delivered once the messages are written.
    pub page_ids: Vec<i64>,
}

/// The virtual member of a pager room.
#[derive(Debug)]
struct PagerSeat {
    /// The virtual contact as `IRO` names it.
    who: Participant,
    /// The only user who may answer.
    user: Passport,
    delivery: PagerDelivery,
    /// When an unanswered room is dropped.
    expires: Instant,
}

#[derive(Debug, Default)]
struct Room {
    /// Random per room: the history's conversation key (session ids repeat across restarts).
    key: i64,
    members: Vec<Member>,
    /// Users rung and not yet joined (a second `CAL` for them is `215`).
    invited: Vec<Passport>,
    /// The relay rewriter's per-session state.
    relay: RoomRelay,
    /// The virtual pager contact, until it has said its pages.
    pager: Option<PagerSeat>,
}

/// Why joining a room failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// The room no longer exists.
    Gone,
    /// The room is full.
    Full,
}

/// The outcome of relaying one `MSG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// How many recipients there were.
    pub recipients: usize,
    /// How many got it queued.
    pub delivered: usize,
}

impl Delivery {
    /// Whether everyone got it and there was someone to get it (`ACK`; else `NAK`).
    #[must_use]
    pub const fn complete(self) -> bool {
        self.recipients > 0 && self.delivered == self.recipients
    }
}

/// Cookies and rooms of every switchboard session on this server.
#[derive(Debug)]
pub struct Switchboards {
    cookies: Mutex<HashMap<String, Pending>>,
    rooms: Mutex<HashMap<SessionId, Room>>,
    next_session: AtomicU32,
    address: RwLock<Token>,
    relay: RwLock<Option<Arc<Relay>>>,
    /// `MSG`s relayed (one per sender's `MSG`, whatever the number of recipients).
    messages: Counter,
    /// The opt-in history recorder.
    history: Arc<History>,
}

impl Default for Switchboards {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the maps consistent between statements; keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Switchboards {
    /// An empty registry advertising `127.0.0.1:1864` until [`Switchboards::set_address`].
    #[must_use]
    pub fn new() -> Self {
        #[allow(clippy::unwrap_used, reason = "a constant, valid token")]
        let address = Token::parse("127.0.0.1:1864").unwrap();
        Self {
            cookies: Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            next_session: AtomicU32::new(rand::rng().random_range(10_000..1_000_000)),
            address: RwLock::new(address),
            relay: RwLock::new(None),
            messages: Counter::default(),
            history: Arc::new(History::new()),
        }
    }

    /// The history recorder messages are offered to.
    #[must_use]
    pub fn history(&self) -> &Arc<History> {
        &self.history
    }

    /// How many `MSG`s were relayed to a room (one per sender's `MSG`); shares its value with
    /// the metrics endpoint.
    #[must_use]
    pub fn messages(&self) -> &Counter {
        &self.messages
    }

    /// Sets the `host:port` clients are sent to in `XFR SB` and `RNG`.
    pub fn set_address(&self, address: Token) {
        *self.address.write().unwrap_or_else(PoisonError::into_inner) = address;
    }

    /// Turns invitation rewriting on with `relay` (`None`: off, messages pass untouched).
    pub fn set_relay(&self, relay: Option<Arc<Relay>>) {
        *self.relay.write().unwrap_or_else(PoisonError::into_inner) = relay;
    }

    pub(crate) fn relay_state(&self) -> Option<Arc<Relay>> {
        self.relay
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Open rooms (an SB node's load in cluster mode).
    #[must_use]
    pub fn rooms(&self) -> usize {
        lock(&self.rooms).len()
    }

    /// The advertised `host:port`.
    #[must_use]
    pub fn address(&self) -> Token {
        self.address
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Issues a fresh single-use cookie for `grant`, valid until `now + COOKIE_LIFETIME`.
    #[must_use]
    pub fn issue(&self, grant: Grant, now: Instant) -> Secret {
        let mut cookies = lock(&self.cookies);
        cookies.retain(|_, p| p.expires > now);
        if cookies.len() >= MAX_COOKIES {
            // Under a flood, drop the ones closest to expiry rather than grow without bound.
            let mut by_age: Vec<(Instant, String)> = cookies
                .iter()
                .map(|(k, p)| (p.expires, k.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, k) in by_age.into_iter().take(cookies.len() / 10 + 1) {
                cookies.remove(&k);
            }
        }
        loop {
            let mut rng = rand::rng();
            // Shaped like the original service's cookies (`digits.digits`), 96 random bits.
            let text = format!("{}.{}", rng.random::<u32>(), rng.random::<u64>());
            if cookies.contains_key(&text) {
                continue;
            }
            #[allow(
                clippy::unwrap_used,
                reason = "digits and a dot are always a valid token"
            )]
            let secret = Secret::parse(&text).unwrap();
            cookies.insert(
                text,
                Pending {
                    grant,
                    expires: now + COOKIE_LIFETIME,
                },
            );
            return secret;
        }
    }

    /// Redeems `cookie` for `user`: valid only once, before it expires, for the user it was
    /// issued to. A cookie presented by the wrong user is burnt as well.
    #[must_use]
    pub fn redeem(&self, cookie: &Secret, user: &Passport, now: Instant) -> Option<Grant> {
        let pending = lock(&self.cookies).remove(cookie.as_str())?;
        (pending.expires > now && &pending.grant.user == user).then_some(pending.grant)
    }

    /// Creates a room with `who` as its only member.
    #[must_use]
    pub fn create_room(&self, who: &Participant, outbox: Outbox, seat: Seat) -> SessionId {
        let member = Member {
            user: who.user.clone(),
            name: who.name.clone(),
            caps: who.caps,
            outbox,
            seat,
        };
        self.insert_room(&mut lock(&self.rooms), vec![member], Vec::new(), None)
    }

    fn insert_room(
        &self,
        rooms: &mut HashMap<SessionId, Room>,
        members: Vec<Member>,
        invited: Vec<Passport>,
        pager: Option<PagerSeat>,
    ) -> SessionId {
        loop {
            let id = SessionId(self.next_session.fetch_add(1, Ordering::Relaxed));
            if id.0 == 0 || rooms.contains_key(&id) {
                continue;
            }
            rooms.insert(
                id,
                Room {
                    key: rand::rng().random_range(1..i64::MAX),
                    members,
                    invited,
                    relay: RoomRelay::new(),
                    pager,
                },
            );
            return id;
        }
    }

    /// Opens a room whose only member is the virtual pager contact `pager`, with `delivery`
    /// for `user` (their NS dialect `caps`), and issues `user`'s cookie to join it: the caller
    /// sends `RNG <session> <address> CKI <cookie> <pager>`. Any earlier unanswered pager room
    /// of `user`, and every expired one, is removed first (its cookie then finds it gone).
    #[must_use]
    pub fn ring_pager(
        &self,
        pager: Participant,
        user: &Participant,
        caps: Capabilities,
        delivery: PagerDelivery,
        now: Instant,
    ) -> (SessionId, Secret) {
        let id = {
            let mut rooms = lock(&self.rooms);
            rooms.retain(|_, r| {
                !(r.members.is_empty()
                    && r.pager
                        .as_ref()
                        .is_some_and(|p| p.expires <= now || p.user == user.user))
            });
            let seat = PagerSeat {
                who: pager,
                user: user.user.clone(),
                delivery,
                expires: now + COOKIE_LIFETIME,
            };
            self.insert_room(&mut rooms, Vec::new(), vec![user.user.clone()], Some(seat))
        };
        let cookie = self.issue(
            Grant {
                user: user.user.clone(),
                name: user.name.clone(),
                caps,
                client_caps: user.caps,
                purpose: Purpose::Join(id),
            },
            now,
        );
        (id, cookie)
    }

    /// Takes the pages of room `id`'s virtual pager contact, if `user` is the one it waits
    /// for: the contact leaves the room (the caller writes its messages, then its `BYE`).
    #[must_use]
    pub fn take_pager(
        &self,
        id: SessionId,
        user: &Passport,
    ) -> Option<(Participant, PagerDelivery)> {
        let mut rooms = lock(&self.rooms);
        let room = rooms.get_mut(&id)?;
        if room.pager.as_ref().is_none_or(|p| &p.user != user) {
            return None;
        }
        let seat = room.pager.take()?;
        Some((seat.who, seat.delivery))
    }

    /// Whether `user` is in room `id` or already rung for it.
    #[must_use]
    pub fn is_present_or_invited(&self, id: SessionId, user: &Passport) -> bool {
        lock(&self.rooms)
            .get(&id)
            .is_some_and(|r| r.members.iter().any(|m| &m.user == user) || r.invited.contains(user))
    }

    /// Records that `user` was rung for room `id`.
    pub fn mark_invited(&self, id: SessionId, user: &Passport) {
        if let Some(room) = lock(&self.rooms).get_mut(&id)
            && !room.invited.contains(user)
        {
            room.invited.push(user.clone());
        }
    }

    /// Adds `who` to room `id`: returns the members already present (for `IRO`) and sends
    /// `JOI` to each of them.
    ///
    /// # Errors
    /// [`JoinError`] when the room is gone or full.
    pub fn join(
        &self,
        id: SessionId,
        who: &Participant,
        outbox: Outbox,
        seat: Seat,
    ) -> Result<Vec<Participant>, JoinError> {
        let mut rooms = lock(&self.rooms);
        let room = rooms.get_mut(&id).ok_or(JoinError::Gone)?;
        if room.members.len() >= MAX_ROOM_MEMBERS {
            return Err(JoinError::Full);
        }
        room.invited.retain(|u| u != &who.user);
        // A user joining twice (two windows) replaces nothing: both connections take part.
        let present: Vec<Participant> = room
            .pager
            .iter()
            .map(|p| p.who.clone())
            .chain(room.members.iter().map(|m| Participant {
                user: m.user.clone(),
                name: m.name.clone(),
                caps: m.caps,
            }))
            .collect();
        let joi = ServerMessage::Joi {
            handle: who.user.clone(),
            name: who.name.clone(),
            caps: who.caps,
        };
        for m in &room.members {
            m.outbox.deliver(Event::Send(joi.clone()));
        }
        room.members.push(Member {
            user: who.user.clone(),
            name: who.name.clone(),
            caps: who.caps,
            outbox,
            seat,
        });
        Ok(present)
    }

    /// Removes connection `conn` (user `user`) from room `id`; the others get
    /// `BYE <user> [1]`. The room is removed when nobody is left.
    pub fn leave(&self, id: SessionId, user: &Passport, conn: ConnId, timed_out: bool) {
        let mut rooms = lock(&self.rooms);
        let Some(room) = rooms.get_mut(&id) else {
            return;
        };
        let before = room.members.len();
        room.members.retain(|m| m.outbox.id() != conn);
        if room.members.len() == before {
            return;
        }
        let bye = ServerMessage::Bye {
            handle: user.clone(),
            timed_out,
        };
        for m in &room.members {
            m.outbox.deliver(Event::Send(bye.clone()));
        }
        if room.members.is_empty() {
            rooms.remove(&id);
        }
    }

    /// Number of live rooms.
    #[must_use]
    pub fn room_count(&self) -> usize {
        lock(&self.rooms).len()
    }

    /// Relays an SB `MSG` from connection `from` in room `id` to every other member (see
    /// [`fan_out_message`]).
    #[must_use]
    pub fn relay(
        &self,
        id: SessionId,
        from: ConnId,
        sender: &Passport,
        sender_name: &FriendlyName,
        payload: &Bytes,
    ) -> Delivery {
        // Plain messages skip the rewriter (and the per-recipient peer lookups) altogether.
        let relay = self.relay_state().filter(|_| may_need_rewriting(payload));
        // Parsed outside the lock, and only when somebody records at all.
        let text = if self.history.anyone() {
            history::plain_text(payload)
        } else {
            None
        };
        let mut rooms = lock(&self.rooms);
        let Some(room) = rooms.get_mut(&id) else {
            return Delivery {
                recipients: 0,
                delivered: 0,
            };
        };
        self.messages.inc();
        let mut delivery =
            fan_out_message(room, relay.as_deref(), from, sender, sender_name, payload);
        if text.is_some() && delivery.recipients > 0 {
            let members: Vec<Passport> = room.members.iter().map(|m| m.user.clone()).collect();
            self.history
                .offer(room.key, sender, &sender_name.to_display(), text, &members);
        }
        if room.pager.is_some() {
            // The virtual pager contact takes everything and keeps nothing (not even history).
            delivery.recipients += 1;
            delivery.delivered += 1;
        }
        delivery
    }
}

/// How far into a payload a content type the rewriter acts on can appear: its head must end
/// within the first 1024 + 4 bytes (`relive_relay`'s envelope parser looks no further).
const REWRITE_HEAD_WINDOW: usize = 1028;

/// Whether the rewriter could change `payload`: it only acts on `text/x-msmsgsinvite` and
/// `application/x-msnmsgrp2p` messages, whose heads name those types. A payload whose first
/// [`REWRITE_HEAD_WINDOW`] bytes contain neither name (in any case) is relayed unchanged by it
/// (`ContentKind::Other`), so it need not be offered to it; typing notifications and text,
/// nearly all traffic, are answered here without parsing their heads.
fn may_need_rewriting(payload: &[u8]) -> bool {
    if payload.len() > rewrite::MAX_INSPECTED_PAYLOAD {
        return false;
    }
    let window = &payload[..payload.len().min(REWRITE_HEAD_WINDOW)];
    let starts_with = |at: usize, name: &[u8]| {
        window
            .get(at..at + name.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(name))
    };
    // Both names are `x-` + a rest: look at the few hyphens instead of every offset.
    (1..window.len()).any(|i| {
        window[i] == b'-'
            && window[i - 1].eq_ignore_ascii_case(&b'x')
            && (starts_with(i + 1, b"msmsgsinvite") || starts_with(i + 1, b"msnmsgrp2p"))
    })
}

/// The rewriter's view of a member (`None` when its address is unknown). `reachable` stays
/// `false` here: the relay never probes (it would use up an MSNFTP listener's one accept);
/// the rewriter takes reachability from the listener's own messages
/// (`relive_relay::rewrite` decision docs).
fn peer_of(member: &Member, relay: &Relay) -> Option<Peer> {
    let mut facts = PeerFacts::new(member.seat.observed?, member.seat.generation);
    facts.agent = relay.agent_connected(member.user.as_str());
    Some(Peer {
        handle: member.user.as_str().to_owned(),
        facts,
    })
}

fn msg(from: &Passport, name: &FriendlyName, payload: Bytes) -> Event {
    Event::Send(ServerMessage::Msg {
        from: Token::from(from),
        name: name.clone(),
        payload,
    })
}

/// The one place an SB `MSG` is fanned out: every member except connection `from` gets
/// `MSG <sender> <sender-name> <len>` with the payload.
///
/// Without a relay (or for a message the rewriter leaves alone) every recipient gets the same
/// `Bytes`, shared by reference count, never copied. With a relay each copy is decided by
/// [`RoomRelay::rewrite`]: [`rewrite::Delivery::Unchanged`] delivers the original bytes,
/// `Replace` one `MSG` per payload (the encoder writes each length), `Withhold` nothing now
/// (it counts as delivered), and every `to_sender` payload goes back to the sender as a `MSG`
/// from that recipient.
fn fan_out_message(
    room: &mut Room,
    relay: Option<&Relay>,
    from: ConnId,
    sender: &Passport,
    sender_name: &FriendlyName,
    payload: &Bytes,
) -> Delivery {
    let mut delivery = Delivery {
        recipients: 0,
        delivered: 0,
    };
    let room_size = room.members.len();
    let sending = room.members.iter().find(|m| m.outbox.id() == from).cloned();
    let sender_peer = relay.zip(sending.as_ref()).and_then(|(r, m)| peer_of(m, r));
    let now = std::time::Instant::now();
    for m in room.members.iter().filter(|m| m.outbox.id() != from) {
        delivery.recipients += 1;
        let rewritten = relay.zip(sender_peer.as_ref()).and_then(|(r, s)| {
            let recipient = peer_of(m, r)?;
            let hop = Hop {
                sender: s,
                recipient: &recipient,
                room_size,
            };
            Some(
                room.relay
                    .rewrite(&r.policy, r.allocator(), &hop, payload, now),
            )
        });
        let Some(outcome) = rewritten else {
            if m.outbox.deliver(msg(sender, sender_name, payload.clone())) {
                delivery.delivered += 1;
            }
            continue;
        };
        let queued = match outcome.deliver {
            rewrite::Delivery::Unchanged => {
                m.outbox.deliver(msg(sender, sender_name, payload.clone()))
            }
            rewrite::Delivery::Replace(payloads) => {
                // Every payload is offered even if an earlier one was refused.
                let mut ok = true;
                for p in payloads {
                    ok &= m.outbox.deliver(msg(sender, sender_name, p));
                }
                ok
            }
            rewrite::Delivery::Withhold => true,
        };
        if queued {
            delivery.delivered += 1;
        }
        if let Some(back) = &sending {
            for p in outcome.to_sender {
                back.outbox.deliver(msg(&m.user, &m.name, p));
            }
        }
    }
    delivery
}
