//! The presence hub: the in-memory registry of every logged-in notification session, and who
//! learns what about whom.
//!
//! For each online user the hub keeps the session's outbox, its presence (status, client caps,
//! MSNObject), its friendly name and its own privacy data (BLP and the list bits of every
//! contact). That is everything needed to decide, under one short lock and without touching the
//! database, who may see whom (PROTOCOL.md §2.8, [`privacy`]). MSNP11+: `owner`'s personal
//! message (`UUX`) goes as `UBX` to the same watchers, but only to those whose dialect has it
//! ([`Capabilities::psm`]): right away, after `owner`'s `ILN` in a watcher's first burst (and
//! after `ADD`/`ADC` FL), and after the `NLN` that shows `owner` coming online (from offline,
//! hidden or blocked). An MSNP2–10 watcher never gets one.
//!
//! The module is split by concern:
//! - [`outbox`]: each connection's bounded event queue (the one hand-written primitive, and why);
//! - [`registry`]: the online sessions, keyed by interned handle ([`handles`]), and the
//!   recipient sets of each event;
//! - [`privacy`]: the visibility rule and the packed per-user lists it reads;
//! - this file: the [`Hub`] API. Each call decides under the lock what goes where, collects it
//!   ([`Mail`]), releases the lock and only then delivers, so a fan-out to a thousand watchers
//!   holds nobody else up. Events about one user are produced by that user's own session task,
//!   one call after another, so they still reach every watcher in order.
//!
//! Events are version-neutral [`ServerMessage`] values; each connection encodes them in its own
//! dialect (a fan-out is one [`Broadcast`], encoded once per dialect). Outboxes are bounded: when
//! a reader is too slow and its outbox is full, the hub cancels that one connection instead of
//! waiting for it, so nobody else is ever stalled. The hub never holds its lock across an
//! `.await`; every method is synchronous and short.

mod handles;
mod outbox;
mod privacy;
mod registry;
mod replica;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use relive_msnp::psm::PersonalMessage;
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{
    Blp, ClientCaps, ErrorCode, FriendlyName, ListSet, MsnObject, OutReason, Passport, Status, TrId,
};
use relive_msnp::version::{Capabilities, ProtocolVersion};
use tracing::debug;

use outbox::Recipient;
pub use outbox::{
    Broadcast, ConnId, DEFAULT_OUTBOX_CAPACITY, Event, Inbox, Outbox, OutboxFactory, TryRecvError,
};
use privacy::shows;
use registry::{Entry, Registry};
pub use replica::{HubOp, Replicate};

/// What a user shows to others once they have sent `CHG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The status from the last `CHG` (never `FLN`).
    pub status: Status,
    /// Client capabilities (MSNP8+; 0 before).
    pub caps: ClientCaps,
    /// The display-picture object (MSNP9+).
    pub msn_object: Option<MsnObject>,
}

impl Presence {
    /// Whether others see this user online (`HDN` looks offline).
    #[must_use]
    pub fn is_visible(&self) -> bool {
        self.status != Status::Hdn
    }
}

/// Why the hub refused to ring someone on a switchboard's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The callee is offline, hidden, not yet online, or blocks the caller (all look alike).
    #[error("callee unreachable")]
    Unreachable,
    /// The callee's outbox was full; its connection is being closed.
    #[error("callee too slow")]
    Overloaded,
}

impl RingError {
    /// The MSNP error code a `CAL` gets for this (217 in every case, so nothing leaks).
    #[must_use]
    pub const fn code(self) -> ErrorCode {
        ErrorCode::NotOnline
    }
}

/// One logged-in session as [`Hub::online`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineUser {
    /// Handle.
    pub handle: Passport,
    /// The session's connection.
    pub conn: ConnId,
    /// Dialect, once the connection told the hub.
    pub dialect: Option<ProtocolVersion>,
    /// Status, once the session sent its first `CHG`.
    pub status: Option<Status>,
}

/// The registry of online users. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Hub {
    registry: Mutex<Registry>,
    /// Cluster mode: where every change about a local user is published ([`replica`]).
    replica: std::sync::OnceLock<Arc<dyn Replicate>>,
}

/// What one hub call delivers once its lock is released, in order.
#[derive(Debug, Default)]
struct Mail {
    deliveries: Vec<Delivery>,
    /// Outboxes of replaced sessions, dropped after delivery (outside the lock).
    keep: Vec<Outbox>,
}

#[derive(Debug)]
enum Delivery {
    One(Recipient, Event),
    /// One message for many: encoded once per dialect.
    Many(Vec<Recipient>, ServerMessage),
}

impl Mail {
    fn send(&mut self, to: Recipient, event: Event) {
        self.deliveries.push(Delivery::One(to, event));
    }

    fn broadcast(&mut self, to: Vec<Recipient>, message: ServerMessage) {
        if !to.is_empty() {
            self.deliveries.push(Delivery::Many(to, message));
        }
    }

    fn deliver(self) {
        for delivery in self.deliveries {
            match delivery {
                Delivery::One(to, event) => {
                    to.deliver(event);
                }
                Delivery::Many(to, message) => {
                    let shared = Arc::new(Broadcast::new(message));
                    for r in to {
                        r.deliver(Event::Broadcast(Arc::clone(&shared)));
                    }
                }
            }
        }
        drop(self.keep);
    }
}

impl Hub {
    /// An empty hub.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the map half-updated in a way that matters
        // more than losing every session, so keep serving with the data as it is.
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `decide` under the lock, then delivers what it mailed once the lock is released.
    fn with_mail<R>(&self, decide: impl FnOnce(&mut Registry, &mut Mail) -> R) -> R {
        let mut mail = Mail::default();
        let result = decide(&mut self.lock(), &mut mail);
        mail.deliver();
        result
    }

    /// Number of logged-in sessions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nobody is logged in.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a freshly authenticated session with its privacy default and contacts (later
    /// entries for the same handle replace earlier ones). An older session of the same user is
    /// told `OUT OTH` and closed; people who saw it online get `FLN` until the new session
    /// sends `CHG`.
    fn register_here(
        &self,
        user: &Passport,
        outbox: Outbox,
        name: FriendlyName,
        blp: Blp,
        contacts: &[(Passport, ListSet)],
    ) {
        self.with_mail(|reg, mail| {
            let Some(old) = reg.insert(user, outbox, name, blp, contacts) else {
                return;
            };
            debug!(user = %user.as_str(), "duplicate login; closing the older session");
            mail.send(old.outbox.recipient(), Event::Kick(OutReason::Oth));
            if old.visible_presence().is_some() {
                mail.broadcast(reg.watchers(&old, Entry::wants_presence), old.fln());
            }
            mail.keep.push(reg.release(old));
        });
    }

    /// Removes `user`'s session `id` (a no-op if a newer session replaced it) and tells the
    /// people who saw it online that it went offline.
    fn unregister_here(&self, user: &Passport, id: ConnId) {
        self.with_mail(|reg, mail| {
            if reg.get(user.as_str()).is_none_or(|e| e.outbox.id() != id) {
                return;
            }
            let Some(entry) = reg.remove(user.as_str()) else {
                return;
            };
            if entry.visible_presence().is_some() {
                mail.broadcast(reg.watchers(&entry, Entry::wants_presence), entry.fln());
            }
            mail.keep.push(reg.release(entry));
        });
    }

    /// Applies a `CHG`: stores the presence and sends `NLN` (or `FLN` when going hidden) to every
    /// watcher allowed to see it. On the session's first `CHG`, returns the `ILN` burst: one line
    /// per online FL contact who does not block `user`, all with `trid`, in handle order.
    fn set_presence_here(
        &self,
        user: &Passport,
        presence: Presence,
        trid: TrId,
    ) -> Vec<ServerMessage> {
        self.with_mail(|reg, mail| {
            let Some(entry) = reg.get_mut(user.as_str()) else {
                return Vec::new();
            };
            let first = entry.presence.is_none();
            let was_visible = entry.visible_presence().is_some();
            let unchanged = entry.presence.as_ref() == Some(&presence);
            entry.presence = Some(presence);
            let reg = &*reg;
            let Some(entry) = reg.get(user.as_str()) else {
                return Vec::new();
            };
            if !unchanged {
                if let Some(nln) = entry.nln() {
                    mail.broadcast(reg.watchers(entry, Entry::wants_presence), nln);
                    // Coming online: the watchers that have personal messages get it after
                    // the NLN.
                    if let (false, Some(ubx)) = (was_visible, entry.ubx()) {
                        let to = reg.watchers(entry, Entry::wants_presence_and_personal);
                        mail.broadcast(to, ubx);
                    }
                } else if was_visible {
                    mail.broadcast(reg.watchers(entry, Entry::wants_presence), entry.fln());
                }
            }
            if !first {
                return Vec::new();
            }
            let personal = entry.wants_personal();
            reg.forward_list(entry)
                .into_iter()
                .flat_map(|contact| reg.initial_presence(user.as_str(), contact, trid, personal))
                .collect()
        })
    }

    /// The `ILN` for `contact` as `viewer` may see it right now (after `ADD`/`ADC` FL), and its
    /// `UBX` for a viewer with personal messages; empty if `contact` is offline, hidden or
    /// blocks `viewer`.
    #[must_use]
    pub fn iln_for(&self, viewer: &Passport, contact: &Passport, trid: TrId) -> Vec<ServerMessage> {
        let reg = self.lock();
        let personal = reg.get(viewer.as_str()).is_some_and(Entry::wants_personal);
        reg.initial_presence(viewer.as_str(), contact.as_str(), trid, personal)
    }

    /// Applies a `UUX`: stores `user`'s personal message and, if `user` is visible, sends it as
    /// `UBX` to every watcher allowed to see `user` whose dialect has personal messages.
    fn set_personal_here(&self, user: &Passport, message: PersonalMessage) {
        self.with_mail(|reg, mail| {
            let Some(entry) = reg.get_mut(user.as_str()) else {
                return;
            };
            entry.personal = Some(message);
            let reg = &*reg;
            if let Some(entry) = reg.get(user.as_str())
                && entry.visible_presence().is_some()
                && let Some(ubx) = entry.ubx()
            {
                mail.broadcast(reg.watchers(entry, Entry::wants_presence_and_personal), ubx);
            }
        });
    }

    /// The client caps `user` announced in its last `CHG`, if online (switchboard `IRO`/`JOI`
    /// carry them from MSNP12).
    #[must_use]
    pub fn caps_of(&self, user: &Passport) -> Option<ClientCaps> {
        self.lock()
            .get(user.as_str())
            .and_then(|e| e.presence.as_ref())
            .map(|p| p.caps)
    }

    /// Applies a change of `user`'s own friendly name; watchers get a fresh `NLN`.
    fn set_name_here(&self, user: &Passport, name: FriendlyName) {
        self.with_mail(|reg, mail| {
            let Some(entry) = reg.get_mut(user.as_str()) else {
                return;
            };
            entry.name = name;
            let reg = &*reg;
            if let Some(entry) = reg.get(user.as_str())
                && let Some(nln) = entry.nln()
            {
                mail.broadcast(reg.watchers(entry, Entry::wants_presence), nln);
            }
        });
    }

    /// Records the dialect of `user`'s session (so a switchboard invitation can carry it).
    fn set_dialect_here(&self, user: &Passport, caps: Capabilities) {
        if let Some(entry) = self.lock().get_mut(user.as_str()) {
            entry.dialect = Some(caps);
        }
    }

    /// This node's logged-in sessions per dialect (`None`: not yet told,
    /// [`Hub::set_dialect`]); in cluster mode other nodes' sessions are not counted (each
    /// node reports its own). Walks every session under the lock: for a scrape now and
    /// then, not for a hot path.
    #[must_use]
    pub fn sessions_by_dialect(&self) -> BTreeMap<Option<ProtocolVersion>, usize> {
        let mut counts = BTreeMap::new();
        for entry in self.lock().entries().filter(|e| !e.outbox.id().is_remote()) {
            *counts.entry(entry.dialect.map(|c| c.version)).or_insert(0) += 1;
        }
        counts
    }

    /// The dialect of `user`'s session, if online and known.
    #[must_use]
    pub fn dialect_of(&self, user: &Passport) -> Option<Capabilities> {
        self.lock().get(user.as_str()).and_then(|e| e.dialect)
    }

    /// The friendly name of an online user.
    #[must_use]
    pub fn name_of(&self, user: &Passport) -> Option<FriendlyName> {
        self.lock().get(user.as_str()).map(|e| e.name.clone())
    }

    /// Applies a change to the bits `contact` has in `user`'s lists, after the store made it
    /// durable. If that changes whether `contact` may see `user` (BL/AL edits), `contact` gets
    /// `FLN user` or `NLN user` accordingly.
    fn set_contact_bits_here(&self, user: &Passport, contact: &Passport, bits: ListSet) {
        self.update_privacy(user, |lists, handles| {
            lists.set_bits(contact.as_str(), bits, handles);
        });
    }

    /// Applies a `BLP` change; watchers whose visibility flips get `FLN`/`NLN`.
    fn set_blp_here(&self, user: &Passport, blp: Blp) {
        self.update_privacy(user, |lists, _| lists.blp = blp);
    }

    fn update_privacy(
        &self,
        user: &Passport,
        change: impl FnOnce(&mut privacy::ListView, &mut handles::Handles),
    ) {
        self.with_mail(|reg, mail| {
            let Some(before) = reg.change_lists(user.as_str(), change) else {
                return;
            };
            let reg = &*reg;
            let Some(entry) = reg.get(user.as_str()) else {
                return;
            };
            let Some(nln) = entry.nln() else {
                return;
            };
            // Only watchers (RL before or after) can notice; compare their visibility.
            let rl = |&(_, bits): &(handles::HandleId, ListSet)| {
                bits.contains(relive_msnp::types::ListKind::Rl)
            };
            let mut watchers: Vec<handles::HandleId> = before
                .entries()
                .filter(rl)
                .chain(entry.lists.entries().filter(rl))
                .map(|(id, _)| id)
                .collect();
            watchers.sort_unstable();
            watchers.dedup();
            for id in watchers {
                let saw = shows(before.blp, before.bits(Some(id)));
                let sees = entry.lists.shows_to(Some(id));
                let Some(w) = reg.session(id, Entry::wants_presence) else {
                    continue;
                };
                match (saw, sees) {
                    (true, false) => mail.send(w.outbox.recipient(), Event::Send(entry.fln())),
                    (false, true) => {
                        mail.send(w.outbox.recipient(), Event::Send(nln.clone()));
                        if let (true, Some(ubx)) = (w.wants_personal(), entry.ubx()) {
                            mail.send(w.outbox.recipient(), Event::Send(ubx));
                        }
                    }
                    _ => {}
                }
            }
        });
    }

    /// Delivers `message` to `user` if online, first applying `bits` as the new list bits of
    /// `about` in `user`'s lists (server-initiated `ADD 0 RL` / `REM 0 RL`).
    fn notify_list_change_here(
        &self,
        user: &Passport,
        about: &Passport,
        bits: ListSet,
        message: ServerMessage,
    ) {
        self.with_mail(|reg, mail| {
            if reg
                .change_lists(user.as_str(), |lists, handles| {
                    lists.set_bits(about.as_str(), bits, handles);
                })
                .is_some()
                && let Some(entry) = reg.get(user.as_str())
            {
                mail.send(entry.outbox.recipient(), Event::Send(message));
            }
        });
    }

    /// Rings `callee` for a switchboard invitation from `caller`: `ring` builds the `RNG` message
    /// once the callee is known to be reachable (online, not hidden, not blocking the caller).
    ///
    /// # Errors
    /// [`RingError`] when the callee cannot be rung; the `CAL` gets `217` either way.
    pub fn ring(
        &self,
        caller: &Passport,
        callee: &Passport,
        ring: impl FnOnce() -> ServerMessage,
    ) -> Result<(), RingError> {
        let to = {
            let reg = self.lock();
            let entry = reg.get(callee.as_str()).ok_or(RingError::Unreachable)?;
            if entry.visible_presence().is_none()
                || entry.lists.blocks(reg.handles.id(caller.as_str()))
            {
                return Err(RingError::Unreachable);
            }
            if entry.outbox.id().is_remote() {
                // On another node: that node rings its own session (and checks again).
                let replica = self.replica.get().ok_or(RingError::Unreachable)?;
                let op = HubOp::Ring {
                    callee: callee.clone(),
                    message: ring(),
                };
                drop(reg);
                replica.publish(op);
                return Ok(());
            }
            entry.outbox.recipient()
        };
        if to.deliver(Event::Send(ring())) {
            Ok(())
        } else {
            Err(RingError::Overloaded)
        }
    }

    /// Whether `user` is online and visible (used by `XFR SB` and `CAL` checks).
    #[must_use]
    pub fn is_visible(&self, user: &Passport) -> bool {
        self.lock()
            .get(user.as_str())
            .is_some_and(|e| e.visible_presence().is_some())
    }

    /// Everyone logged in now, by handle: dialect (if told) and status (if `CHG`ed). For the
    /// website's admin pages: walks every session under the lock.
    #[must_use]
    pub fn online(&self) -> Vec<OnlineUser> {
        let mut all: Vec<OnlineUser> = self
            .lock()
            .entries()
            .map(|e| OnlineUser {
                handle: e.handle.clone(),
                conn: e.outbox.id(),
                dialect: e.dialect.map(|c| c.version),
                status: e.presence.as_ref().map(|p| p.status),
            })
            .collect();
        all.sort_by(|a, b| a.handle.as_str().cmp(b.handle.as_str()));
        all
    }

    /// Ends `user`'s session with `OUT <reason>`, if it is session `id` (or any session when
    /// `id` is `None`). Returns whether a session was told: queued on this node, or (cluster
    /// mode, a session of another node) handed to that node, which ends it if it is still
    /// that session when the notice arrives.
    pub fn kick(&self, user: &Passport, id: Option<ConnId>, reason: OutReason) -> bool {
        let Some((conn, to)) = self
            .lock()
            .get(user.as_str())
            .filter(|e| id.is_none_or(|id| e.outbox.id() == id))
            .map(|e| (e.outbox.id(), e.outbox.recipient()))
        else {
            return false;
        };
        if conn.is_remote() {
            return self.forward(HubOp::Kick {
                user: user.clone(),
                conn,
                reason,
            });
        }
        to.deliver(Event::Kick(reason))
    }

    /// Sends `message` to `user`'s session, if online (a change made elsewhere, e.g. on the
    /// website, that the client must learn as if the server had initiated it). Returns
    /// whether it was queued for the session on this node, or (cluster mode) handed to the
    /// node holding the session, which delivers it if that session still lives. A session
    /// of another node whose dialect is not known yet (a moment after its login) is not
    /// reached.
    pub fn send_to(&self, user: &Passport, message: ServerMessage) -> bool {
        let Some((conn, dialect, to)) = self
            .lock()
            .get(user.as_str())
            .map(|e| (e.outbox.id(), e.dialect, e.outbox.recipient()))
        else {
            return false;
        };
        if conn.is_remote() {
            return dialect.is_some_and(|caps| {
                self.forward(HubOp::Send {
                    user: user.clone(),
                    conn,
                    version: caps.version,
                    message,
                })
            });
        }
        to.deliver(Event::Send(message))
    }

    /// Delivers `message` to `user`'s session on this node if it is session `id`.
    fn send_to_session(&self, user: &Passport, id: ConnId, message: ServerMessage) -> bool {
        let to = self
            .lock()
            .get(user.as_str())
            .filter(|e| e.outbox.id() == id)
            .map(|e| e.outbox.recipient());
        to.is_some_and(|to| to.deliver(Event::Send(message)))
    }

    /// Sends `message` to every logged-in session of the network (encoded once per dialect);
    /// returns how many sessions it was queued for: on this node, plus (cluster mode) the
    /// sessions of other nodes when it was handed to them (each node delivers it to its own).
    pub fn send_to_all(&self, message: ServerMessage) -> usize {
        // One walk under the lock: this node's recipients, and how many sessions live elsewhere.
        let (local, remote) = {
            let sessions = self.lock();
            let mut local = Vec::new();
            let mut remote = 0;
            for e in sessions.entries() {
                if e.outbox.id().is_remote() {
                    remote += 1;
                } else {
                    local.push(e.outbox.recipient());
                }
            }
            (local, remote)
        };
        let forwarded = if remote > 0
            && self.forward(HubOp::SendAll {
                message: message.clone(),
            }) {
            remote
        } else {
            0
        };
        deliver_broadcast(local, message) + forwarded
    }

    /// Sends `message` to every session of this node; returns how many it was queued for.
    fn send_to_local(&self, message: ServerMessage) -> usize {
        let to: Vec<Recipient> = self
            .lock()
            .entries()
            .filter(|e| !e.outbox.id().is_remote())
            .map(|e| e.outbox.recipient())
            .collect();
        deliver_broadcast(to, message)
    }
}

/// Queues `message` for each of `to` (encoded once per dialect); how many took it.
fn deliver_broadcast(to: Vec<Recipient>, message: ServerMessage) -> usize {
    let shared = Arc::new(Broadcast::new(message));
    to.into_iter()
        .filter(|r| r.deliver(Event::Broadcast(Arc::clone(&shared))))
        .count()
}
