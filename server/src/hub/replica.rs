//! The hub in cluster mode: every change about a user is applied on this node and published
//! ([`Replicate`]) so that every other node applies it to its own copy ([`Hub::apply`]).
//!
//! Each node's hub holds every online user of the network: its own sessions, and a stand-in
//! for each session of another node ([`Outbox::remote`], which never queues anything). Every
//! node makes the same decisions the single-node hub makes (who watches whom, `NLN` or `FLN`,
//! the `ILN` burst, whether a `CAL` may ring) and delivers only to its own sessions: a watcher
//! on node B learns about a user on node A when node B applies A's change. Changes about one
//! user come from that user's own session task, one after another, through one queue and one
//! NATS connection per node, so every node applies them in the same order (per-user order).
//! Without a [`Replicate`] (the single-node default) the public methods are the `*_here`
//! ones plus one check of an unset `OnceLock`.

use std::sync::Arc;

use relive_msnp::psm::PersonalMessage;
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{Blp, FriendlyName, ListSet, OutReason, Passport, TrId};
use relive_msnp::version::{Capabilities, ProtocolVersion};

use super::{ConnId, Hub, Outbox, Presence};

/// One change to the hub, as it is replicated between cluster nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubOp {
    /// A session logged in (`conn`: its id on the node it lives on).
    Register {
        /// The user.
        user: Passport,
        /// The session's connection.
        conn: ConnId,
        /// Friendly name.
        name: FriendlyName,
        /// Privacy default.
        blp: Blp,
        /// Every contact and its list bits.
        contacts: Vec<(Passport, ListSet)>,
    },
    /// A session ended.
    Unregister {
        /// The user.
        user: Passport,
        /// The session's connection.
        conn: ConnId,
    },
    /// The session's dialect.
    Dialect {
        /// The user.
        user: Passport,
        /// The protocol version its connection speaks.
        version: ProtocolVersion,
    },
    /// A `CHG`.
    Presence {
        /// The user.
        user: Passport,
        /// The new presence.
        presence: Presence,
    },
    /// A `UUX`.
    Personal {
        /// The user.
        user: Passport,
        /// The personal message.
        message: PersonalMessage,
    },
    /// The user's own friendly name changed.
    Name {
        /// The user.
        user: Passport,
        /// The new name.
        name: FriendlyName,
    },
    /// The bits `contact` has in `user`'s lists changed.
    ContactBits {
        /// Whose lists.
        user: Passport,
        /// The contact.
        contact: Passport,
        /// Its new bits.
        bits: ListSet,
    },
    /// A `BLP`.
    Blp {
        /// The user.
        user: Passport,
        /// The new privacy default.
        blp: Blp,
    },
    /// A server-initiated list notice (`ADD 0 RL`/`REM 0 RL`) for `user`, wherever it lives.
    ListNotice {
        /// Who is told.
        user: Passport,
        /// Whom it is about.
        about: Passport,
        /// The new bits of `about` in `user`'s lists.
        bits: ListSet,
        /// The notice.
        message: ServerMessage,
    },
    /// A switchboard invitation (`RNG`) for a callee on another node.
    Ring {
        /// Who is rung.
        callee: Passport,
        /// The `RNG`.
        message: ServerMessage,
    },
    /// `OUT <reason>` for session `conn` of `user` ([`Hub::kick`] of another node's session:
    /// an admin kick, an account disabled or deleted on the website). Sent only to the node
    /// holding the session ([`Replicate::forward`]).
    Kick {
        /// The user.
        user: Passport,
        /// The session (the sender's stand-in id; the holder's own id on the wire).
        conn: ConnId,
        /// Why.
        reason: OutReason,
    },
    /// A server-initiated message for session `conn` of `user` ([`Hub::send_to`] of another
    /// node's session: the website's mail notices, a page's `IPG`, `REA`/`BLP`/`ADD`/`REM`
    /// made on the website). Sent only to the node holding the session.
    Send {
        /// The user.
        user: Passport,
        /// The session (as for [`HubOp::Kick`]).
        conn: ConnId,
        /// The session's dialect (the message crosses the wire encoded in it).
        version: ProtocolVersion,
        /// The message.
        message: ServerMessage,
    },
    /// A message for every session of every node ([`Hub::send_to_all`]: the admin broadcast,
    /// the maintenance notice). Each node delivers it to its own sessions.
    SendAll {
        /// The message (a `MSG` from Hotmail, the same bytes in every dialect).
        message: ServerMessage,
    },
    /// Access token `token` of `user` was revoked: the node holding session `conn` ends it if
    /// that session logged in with the token (the node's [`crate::web::Devices`] knows; the
    /// hub does not, so the cluster layer acts on this one, not [`Hub::apply`]).
    Revoke {
        /// The user.
        user: Passport,
        /// The session (as for [`HubOp::Kick`]).
        conn: ConnId,
        /// The revoked token's id.
        token: i64,
    },
}

/// Where a clustered hub publishes its changes (implemented by [`crate::cluster`]). Must not
/// block: it is called right after the hub's lock is released, on the session's task.
pub trait Replicate: Send + Sync + std::fmt::Debug {
    /// Publishes `op` to the other nodes.
    fn publish(&self, op: HubOp);

    /// Hands a notice ([`HubOp::Kick`], [`HubOp::Send`], [`HubOp::Revoke`] for a stand-in
    /// session, [`HubOp::SendAll`]) to the node(s) that must act on it, without waiting.
    /// `false`: the session is not (or no longer) known to live on another node, or the
    /// outgoing queue is full.
    fn forward(&self, op: HubOp) -> bool;
}

impl Hub {
    /// Turns cluster mode on: from now on every change is published through `replica`.
    /// Returns `false` if a replica was already set.
    pub fn set_replica(&self, replica: Arc<dyn Replicate>) -> bool {
        self.replica.set(replica).is_ok()
    }

    /// The change to publish once it is applied here (built only in cluster mode). Applied
    /// first, published after: a snapshot for a joining node ([`Self::local_snapshot`]) then
    /// never misses a change that is published before it.
    fn prepare(&self, op: impl FnOnce() -> HubOp) -> Option<HubOp> {
        self.replica.get().map(|_| op())
    }

    /// Hands a notice to the node holding the session it is for (or to every node for a
    /// [`HubOp::SendAll`]); `false` in single-node mode, for a session this hub does not
    /// know on another node, or when the cluster's queue is full ([`Replicate::forward`]).
    pub fn forward(&self, op: HubOp) -> bool {
        self.replica.get().is_some_and(|r| r.forward(op))
    }

    fn publish(&self, op: Option<HubOp>) {
        if let (Some(replica), Some(op)) = (self.replica.get(), op) {
            replica.publish(op);
        }
    }

    /// The connection of `user`'s session, if online (a stand-in's id on other nodes'
    /// sessions: [`ConnId::is_remote`]).
    #[must_use]
    pub fn conn_of(&self, user: &Passport) -> Option<ConnId> {
        self.lock().get(user.as_str()).map(|e| e.outbox.id())
    }

    /// Applies a change another node published. A [`HubOp::Register`]'s `conn` and a
    /// [`HubOp::Unregister`]'s `conn` are this node's stand-in id for that session.
    pub fn apply(&self, op: HubOp) {
        match op {
            HubOp::Register {
                user,
                conn,
                name,
                blp,
                contacts,
            } => self.register_here(&user, Outbox::remote(conn), name, blp, &contacts),
            HubOp::Unregister { user, conn } => self.unregister_here(&user, conn),
            HubOp::Dialect { user, version } => {
                self.set_dialect_here(&user, Capabilities::for_version(version));
            }
            HubOp::Presence { user, presence } => {
                // The ILN burst is the session's own business, on its own node.
                let _ = self.set_presence_here(&user, presence, TrId(0));
            }
            HubOp::Personal { user, message } => self.set_personal_here(&user, message),
            HubOp::Name { user, name } => self.set_name_here(&user, name),
            HubOp::ContactBits {
                user,
                contact,
                bits,
            } => self.set_contact_bits_here(&user, &contact, bits),
            HubOp::Blp { user, blp } => self.set_blp_here(&user, blp),
            HubOp::ListNotice {
                user,
                about,
                bits,
                message,
            } => self.notify_list_change_here(&user, &about, bits, message),
            HubOp::Ring { callee, message } => {
                let to = self
                    .lock()
                    .get(callee.as_str())
                    .filter(|e| !e.outbox.id().is_remote() && e.visible_presence().is_some())
                    .map(|e| e.outbox.recipient());
                if let Some(to) = to {
                    to.deliver(super::Event::Send(message));
                }
            }
            HubOp::Kick { user, conn, reason } => {
                if !conn.is_remote() {
                    self.kick(&user, Some(conn), reason);
                }
            }
            HubOp::Send {
                user,
                conn,
                message,
                ..
            } => {
                if !conn.is_remote() {
                    self.send_to_session(&user, conn, message);
                }
            }
            HubOp::SendAll { message } => {
                self.send_to_local(message);
            }
            // The cluster layer acts on it (it knows the devices).
            HubOp::Revoke { .. } => {}
        }
    }

    /// Everything another node needs to know about this node's own sessions (sent to a node
    /// that joins): per session its `Register`, `Dialect`, `Presence` and `Personal`.
    #[must_use]
    pub fn local_snapshot(&self) -> Vec<HubOp> {
        let reg = self.lock();
        let mut ops = Vec::new();
        for e in reg.entries().filter(|e| !e.outbox.id().is_remote()) {
            let contacts = e
                .lists
                .entries()
                .filter_map(|(id, bits)| {
                    let handle = Passport::parse(reg.handles.name(id)?).ok()?;
                    Some((handle, bits))
                })
                .collect();
            ops.push(HubOp::Register {
                user: e.handle.clone(),
                conn: e.outbox.id(),
                name: e.name.clone(),
                blp: e.lists.blp,
                contacts,
            });
            if let Some(caps) = e.dialect {
                ops.push(HubOp::Dialect {
                    user: e.handle.clone(),
                    version: caps.version,
                });
            }
            if let Some(presence) = &e.presence {
                ops.push(HubOp::Presence {
                    user: e.handle.clone(),
                    presence: presence.clone(),
                });
            }
            if let Some(message) = &e.personal {
                ops.push(HubOp::Personal {
                    user: e.handle.clone(),
                    message: message.clone(),
                });
            }
        }
        ops
    }

    /// Registers a freshly authenticated session with its privacy default and contacts (later
    /// entries for the same handle replace earlier ones). An older session of the same user is
    /// told `OUT OTH` and closed (on whichever node it is); people who saw it online get `FLN`
    /// until the new session sends `CHG`.
    pub fn register(
        &self,
        user: &Passport,
        outbox: Outbox,
        name: FriendlyName,
        blp: Blp,
        contacts: &[(Passport, ListSet)],
    ) {
        let op = self.prepare(|| HubOp::Register {
            user: user.clone(),
            conn: outbox.id(),
            name: name.clone(),
            blp,
            contacts: contacts.to_vec(),
        });
        self.register_here(user, outbox, name, blp, contacts);
        self.publish(op);
    }

    /// Removes `user`'s session `id` (a no-op if a newer session replaced it) and tells the
    /// people who saw it online that it went offline.
    pub fn unregister(&self, user: &Passport, id: ConnId) {
        self.unregister_here(user, id);
        self.publish(self.prepare(|| HubOp::Unregister {
            user: user.clone(),
            conn: id,
        }));
    }

    /// Applies a `CHG`: stores the presence and sends `NLN` (or `FLN` when going hidden) to every
    /// watcher allowed to see it. On the session's first `CHG`, returns the `ILN` burst: one line
    /// per online FL contact who does not block `user`, all with `trid`, in handle order.
    pub fn set_presence(
        &self,
        user: &Passport,
        presence: Presence,
        trid: TrId,
    ) -> Vec<ServerMessage> {
        let op = self.prepare(|| HubOp::Presence {
            user: user.clone(),
            presence: presence.clone(),
        });
        let iln = self.set_presence_here(user, presence, trid);
        self.publish(op);
        iln
    }

    /// Applies a `UUX`: stores `user`'s personal message and, if `user` is visible, sends it as
    /// `UBX` to every watcher allowed to see `user` whose dialect has personal messages.
    pub fn set_personal(&self, user: &Passport, message: PersonalMessage) {
        let op = self.prepare(|| HubOp::Personal {
            user: user.clone(),
            message: message.clone(),
        });
        self.set_personal_here(user, message);
        self.publish(op);
    }

    /// Applies a change of `user`'s own friendly name; watchers get a fresh `NLN`.
    pub fn set_name(&self, user: &Passport, name: FriendlyName) {
        let op = self.prepare(|| HubOp::Name {
            user: user.clone(),
            name: name.clone(),
        });
        self.set_name_here(user, name);
        self.publish(op);
    }

    /// Records the dialect of `user`'s session (so a switchboard invitation can carry it).
    pub fn set_dialect(&self, user: &Passport, caps: Capabilities) {
        let op = self.prepare(|| HubOp::Dialect {
            user: user.clone(),
            version: caps.version,
        });
        self.set_dialect_here(user, caps);
        self.publish(op);
    }

    /// Applies a change to the bits `contact` has in `user`'s lists, after the store made it
    /// durable. If that changes whether `contact` may see `user` (BL/AL edits), `contact` gets
    /// `FLN user` or `NLN user` accordingly.
    pub fn set_contact_bits(&self, user: &Passport, contact: &Passport, bits: ListSet) {
        let op = self.prepare(|| HubOp::ContactBits {
            user: user.clone(),
            contact: contact.clone(),
            bits,
        });
        self.set_contact_bits_here(user, contact, bits);
        self.publish(op);
    }

    /// Applies a `BLP` change; watchers whose visibility flips get `FLN`/`NLN`.
    pub fn set_blp(&self, user: &Passport, blp: Blp) {
        let op = self.prepare(|| HubOp::Blp {
            user: user.clone(),
            blp,
        });
        self.set_blp_here(user, blp);
        self.publish(op);
    }

    /// Delivers `message` to `user` if online (on any node), first applying `bits` as the new
    /// list bits of `about` in `user`'s lists (server-initiated `ADD 0 RL` / `REM 0 RL`).
    pub fn notify_list_change(
        &self,
        user: &Passport,
        about: &Passport,
        bits: ListSet,
        message: ServerMessage,
    ) {
        let op = self.prepare(|| HubOp::ListNotice {
            user: user.clone(),
            about: about.clone(),
            bits,
            message: message.clone(),
        });
        self.notify_list_change_here(user, about, bits, message);
        self.publish(op);
    }
}
