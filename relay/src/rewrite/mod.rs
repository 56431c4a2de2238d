//! The invitation rewriter: the one hook the switchboard calls for every `MSG` it fans out.
//!
//! It is sans-IO: no sockets, no clock, no tasks. The switchboard keeps one [`RoomRelay`] per
//! session and, for **each recipient** of a message, calls [`RoomRelay::rewrite`] with the
//! payload (the bytes after the `MSG` command line), the sender and recipient ([`Hop`]), the
//! operator [`Policy`], an [`Allocate`] implementation (the relay port pool, or [`NoRelay`])
//! and the current time. The [`Outcome`] says what to deliver:
//!
//! ```text
//! for each recipient r ≠ sender:
//!     out = room.rewrite(&policy, &pool, &Hop { sender, recipient: r, room_size }, payload, now)
//!     match out.deliver:
//!         Unchanged      → MSG <sender> <nick> <len>  + the original bytes (no copy)
//!         Replace(list)  → one MSG per payload in list, each with its own length
//!         Withhold       → nothing now (an SLP chunk being reassembled, a suppressed message)
//!     for p in out.to_sender: MSG <r> <r's nick> <len(p)> + p, delivered to the sender
//! ```
//!
//! What it touches (P2P.md §0, §2.3, §4):
//! * `text/x-msmsgsinvite`: the listener's `ACCEPT` (`IP-Address`, `IP-Address-Internal`,
//!   `Port`, `PortX`, `PortX-Internal`); `Connectivity: N` added to an `INVITE` for a role swap;
//!   rendezvous synthesizes two `ACCEPT`s.
//! * `application/x-msnmsgrp2p` with SessionID 0: `transrespbody` address fields and
//!   `Listening`, fixing SLP `Content-Length`, `TotalSize`/`Length` (re-chunking when needed)
//!   and the `ACK` that comes back. Packets with SessionID ≠ 0 return [`Delivery::Unchanged`]
//!   after reading 4 bytes of the body.
//!
//! Every rewritten field is logged at `info` with its name and the old and new address or
//! port; file names, contexts, cookies and nonces are never logged.

mod decision;
mod envelope;
mod fields;
mod msnftp;
pub mod p2p;
mod slp;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use decision::{ClientGeneration, Mode, PeerFacts, Policy, Transport, decide};

use envelope::ContentKind;

/// Largest payload the rewriter inspects; larger ones pass untouched. The switchboard itself
/// caps payloads at 1664 bytes (PROTOCOL.md §3.2).
pub const MAX_INSPECTED_PAYLOAD: usize = 16 * 1024;
/// Largest SLP message (TotalSize) the rewriter reassembles from chunks.
pub const MAX_REASSEMBLED_SLP: u64 = 32 * 1024;
/// How long chunks of one SLP message may take to arrive before they are flushed unmodified.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Transfers (MSNFTP cookies) remembered per room; the oldest is forgotten first.
const MAX_TRANSFERS: usize = 16;
/// SLP messages being reassembled at once per room.
const MAX_REASSEMBLIES: usize = 4;
/// Rewritten SLP messages whose ACK may still need fixing, per room.
const MAX_ACK_FIXES: usize = 16;

/// A room member as the rewriter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The member's handle (e-mail address), as in `P2P-Dest`.
    pub handle: String,
    /// What the server knows about the member's network position.
    pub facts: PeerFacts,
}

/// One delivery of one message: who sent it, who gets it, how many are in the room.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// The member who sent the `MSG`.
    pub sender: &'a Peer,
    /// The member this copy is delivered to.
    pub recipient: &'a Peer,
    /// Members in the switchboard session (invitations are only rewritten with exactly two,
    /// as the official client only negotiates in two-person rooms).
    pub room_size: usize,
}

/// What to deliver to the recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Deliver the original payload, byte for byte.
    Unchanged,
    /// Deliver these payloads instead, one `MSG` each, in order.
    Replace(Vec<Bytes>),
    /// Deliver nothing for now.
    Withhold,
}

/// The result of [`RoomRelay::rewrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What the recipient gets.
    pub deliver: Delivery,
    /// Payloads for the *sender*, as if sent by the recipient (MSNFTP rendezvous).
    pub to_sender: Vec<Bytes>,
}

impl Outcome {
    fn unchanged() -> Self {
        Self {
            deliver: Delivery::Unchanged,
            to_sender: Vec::new(),
        }
    }

    fn replace(payloads: Vec<Vec<u8>>) -> Self {
        Self {
            deliver: Delivery::Replace(payloads.into_iter().map(Bytes::from).collect()),
            to_sender: Vec::new(),
        }
    }

    fn withhold() -> Self {
        Self {
            deliver: Delivery::Withhold,
            to_sender: Vec::new(),
        }
    }
}

/// Identifies a relay port allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocationId(pub u64);

/// A relay port the rewriter may advertise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocated {
    /// The allocation, for [`Allocate::release`].
    pub id: AllocationId,
    /// The TCP port on [`Policy::relay_ip`].
    pub port: u16,
}

/// The relay's port allocator as the rewriter needs it. Implemented by the data plane's
/// [`crate::ports::PortPool`]; [`NoRelay`] refuses everything.
pub trait Allocate {
    /// A port that accepts one connection, only from `expected_peer`, and carries it to
    /// `target_port` on the machine of `listener` (through its companion agent). The port
    /// `P ^ 0x3141` (the advertised `PortX`) accepts it too where the relay range allows
    /// ([`crate::ports`]).
    fn forward(&self, listener: &str, expected_peer: IpAddr, target_port: u16)
    -> Option<Allocated>;
    /// Two ports for a rendezvous on behalf of `owner`: the first accepts one connection from
    /// `peers[0]`, the second from `peers[1]`, and the two connections are spliced.
    fn rendezvous(&self, owner: &str, peers: [IpAddr; 2]) -> Option<[Allocated; 2]>;
    /// Ends an allocation early (the transfer was cancelled): a port still waiting closes,
    /// a connection being relayed is cut.
    fn release(&self, id: AllocationId);
}

/// An [`Allocate`] for a server without a relay data plane: every request is refused, so
/// only address rewrites (LAN, VPN, observed) and the switchboard fallback happen.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRelay;

impl Allocate for NoRelay {
    fn forward(&self, _: &str, _: IpAddr, _: u16) -> Option<Allocated> {
        None
    }
    fn rendezvous(&self, _: &str, _: [IpAddr; 2]) -> Option<[Allocated; 2]> {
        None
    }
    fn release(&self, _: AllocationId) {}
}

/// Everything one `rewrite` call needs besides the room state.
pub(crate) struct Ctx<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) ports: &'a dyn Allocate,
    pub(crate) hop: &'a Hop<'a>,
    pub(crate) now: Instant,
}

/// Per-switchboard-session rewriter state: transfers in flight, SLP chunks being reassembled,
/// pending ACK fix-ups. Every table is bounded.
#[derive(Debug, Default)]
pub struct RoomRelay {
    transfers: Vec<msnftp::Transfer>,
    reassembly: Vec<slp::Reassembly>,
    ack_fixes: Vec<slp::AckFix>,
    reachable_hints: Vec<(String, bool)>,
}

impl RoomRelay {
    /// An empty state for a new switchboard session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides what `hop.recipient` receives for `payload` (the bytes after the `MSG` line).
    /// Never panics; anything it cannot parse is delivered unchanged.
    ///
    /// ```
    /// use std::time::Instant;
    /// use relive_relay::rewrite::{ClientGeneration, Delivery, Hop, NoRelay, Peer, PeerFacts, Policy, RoomRelay};
    ///
    /// let peer = |handle: &str, ip: &str| Peer {
    ///     handle: handle.into(),
    ///     facts: PeerFacts::new(ip.parse().unwrap(), ClientGeneration::Msn5),
    /// };
    /// let (alice, bob) = (peer("alice@example.com", "203.0.113.11"), peer("bob@example.com", "203.0.113.12"));
    /// let policy = Policy::new("198.51.100.1".parse().unwrap());
    /// let mut room = RoomRelay::new();
    /// let hop = Hop { sender: &alice, recipient: &bob, room_size: 2 };
    /// let text = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi";
    /// let out = room.rewrite(&policy, &NoRelay, &hop, text, Instant::now());
    /// assert_eq!(out.deliver, Delivery::Unchanged);
    /// assert!(out.to_sender.is_empty());
    /// ```
    pub fn rewrite(
        &mut self,
        policy: &Policy,
        ports: &dyn Allocate,
        hop: &Hop<'_>,
        payload: &[u8],
        now: Instant,
    ) -> Outcome {
        if payload.len() > MAX_INSPECTED_PAYLOAD {
            return Outcome::unchanged();
        }
        let Some(env) = envelope::parse(payload) else {
            return Outcome::unchanged();
        };
        let ctx = Ctx {
            policy,
            ports,
            hop,
            now,
        };
        match env.kind {
            ContentKind::Invitation => msnftp::rewrite(self, &ctx, &env),
            ContentKind::P2p => slp::rewrite(self, &ctx, &env, payload),
            ContentKind::Other => Outcome::unchanged(),
        }
    }

    /// Remembers a hint about whether `handle` can accept connections (from its own SLP
    /// `transreqbody`), used by later decisions in this room.
    fn set_hint(&mut self, handle: &str, reachable: bool) {
        if let Some(entry) = self.reachable_hints.iter_mut().find(|(h, _)| h == handle) {
            entry.1 = reachable;
            return;
        }
        if self.reachable_hints.len() >= MAX_TRANSFERS {
            self.reachable_hints.remove(0);
        }
        self.reachable_hints.push((handle.to_owned(), reachable));
    }

    fn hint(&self, handle: &str) -> bool {
        self.reachable_hints
            .iter()
            .any(|(h, reachable)| h == handle && *reachable)
    }
}

/// Logs one rewritten field (names and addresses only).
fn log_field(transport: Transport, mode: Mode, field: &str, from: &str, to: &str) {
    tracing::info!(
        target: "relive_relay::rewrite",
        protocol = match transport {
            Transport::Msnftp => "msnftp",
            Transport::Msnslp => "msnslp",
        },
        mode = mode.name(),
        unverified = mode.is_unverified(),
        field,
        from,
        to,
        "rewrote field"
    );
}

/// XOR key of `PortX` / `PortX-Internal` (P2P.md §1.3).
pub const PORTX_XOR: u16 = 0x3141;

#[cfg(test)]
mod tests;
