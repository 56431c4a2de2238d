//! The registry: every logged-in notification session, keyed by the interned handle of its
//! user, with what others may learn about it. Used only under the hub's lock; it decides who
//! gets what ([`Registry::watchers`], [`Registry::initial_presence`]) but delivers nothing.

use std::collections::HashMap;

use relive_msnp::psm::PersonalMessage;
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{Blp, FriendlyName, ListSet, Passport, TrId};
use relive_msnp::version::Capabilities;

use super::Presence;
use super::handles::{HandleId, Handles};
use super::outbox::{Outbox, Recipient};
use super::privacy::{ListView, shows};

/// A logged-in notification session as the hub sees it.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) handle: Passport,
    pub(super) outbox: Outbox,
    /// The session's dialect, if its connection told us ([`super::Hub::set_dialect`]).
    pub(super) dialect: Option<Capabilities>,
    pub(super) name: FriendlyName,
    pub(super) presence: Option<Presence>,
    /// The personal message set with `UUX` this session (MSNP11+), if any.
    pub(super) personal: Option<PersonalMessage>,
    pub(super) lists: ListView,
}

impl Entry {
    /// Whether this session's dialect has personal messages (gets `UBX`).
    pub(super) fn wants_personal(&self) -> bool {
        self.dialect.is_some_and(|c| c.psm)
    }

    /// Whether this session receives presence events (it has sent its first `CHG`).
    pub(super) fn wants_presence(&self) -> bool {
        self.presence.is_some()
    }

    /// Whether this session receives `UBX` fan-out.
    pub(super) fn wants_presence_and_personal(&self) -> bool {
        self.wants_presence() && self.wants_personal()
    }

    /// Presence as others see it: `None` when offline, hidden or not yet `CHG`ed.
    pub(super) fn visible_presence(&self) -> Option<&Presence> {
        self.presence.as_ref().filter(|p| p.is_visible())
    }

    /// This user's `UBX`, when a personal message is set.
    pub(super) fn ubx(&self) -> Option<ServerMessage> {
        self.personal.as_ref().map(|message| ServerMessage::Ubx {
            handle: self.handle.clone(),
            message: message.clone(),
        })
    }

    /// This user's `FLN`.
    pub(super) fn fln(&self) -> ServerMessage {
        ServerMessage::Fln {
            handle: self.handle.clone(),
        }
    }

    /// This user's `NLN`, when visible.
    pub(super) fn nln(&self) -> Option<ServerMessage> {
        self.visible_presence().map(|p| ServerMessage::Nln {
            status: p.status,
            handle: self.handle.clone(),
            name: self.name.clone(),
            caps: p.caps,
            msn_object: p.msn_object.clone(),
        })
    }

    fn iln(&self, trid: TrId) -> Option<ServerMessage> {
        self.visible_presence().map(|p| ServerMessage::Iln {
            trid,
            status: p.status,
            handle: self.handle.clone(),
            name: self.name.clone(),
            caps: p.caps,
            msn_object: p.msn_object.clone(),
        })
    }
}

/// The online sessions and the handle interner their lists point into.
#[derive(Debug, Default)]
pub(super) struct Registry {
    users: HashMap<HandleId, Entry>,
    pub(super) handles: Handles,
}

impl Registry {
    /// Number of sessions.
    pub(super) fn len(&self) -> usize {
        self.users.len()
    }

    /// Every session.
    pub(super) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.users.values()
    }

    /// `user`'s session, if online.
    pub(super) fn get(&self, user: &str) -> Option<&Entry> {
        self.users.get(&self.handles.id(user)?)
    }

    /// `user`'s session, if online.
    pub(super) fn get_mut(&mut self, user: &str) -> Option<&mut Entry> {
        self.users.get_mut(&self.handles.id(user)?)
    }

    /// Registers `user`'s session with lists `blp` and `contacts`. Returns the session it
    /// replaces, whose references are still held: compute what it needs, then
    /// [`Registry::release`] it.
    pub(super) fn insert(
        &mut self,
        user: &Passport,
        outbox: Outbox,
        name: FriendlyName,
        blp: Blp,
        contacts: &[(Passport, ListSet)],
    ) -> Option<Entry> {
        let id = self.handles.acquire(user.as_str());
        let lists = ListView::new(blp, contacts, &mut self.handles);
        let entry = Entry {
            handle: user.clone(),
            outbox,
            dialect: None,
            name,
            presence: None,
            personal: None,
            lists,
        };
        self.users.insert(id, entry)
    }

    /// Takes `user`'s session out; release it with [`Registry::release`] once done with it.
    pub(super) fn remove(&mut self, user: &str) -> Option<Entry> {
        self.users.remove(&self.handles.id(user)?)
    }

    /// Gives back the handle references of a session taken out, and its outbox (to drop once
    /// the lock is released).
    pub(super) fn release(&mut self, entry: Entry) -> Outbox {
        let Entry {
            handle,
            outbox,
            lists,
            ..
        } = entry;
        lists.release(&mut self.handles);
        if let Some(id) = self.handles.id(handle.as_str()) {
            self.handles.release(id);
        }
        outbox
    }

    /// Applies `change` to `user`'s lists; returns their state before, if `user` is online.
    pub(super) fn change_lists(
        &mut self,
        user: &str,
        change: impl FnOnce(&mut ListView, &mut Handles),
    ) -> Option<ListView> {
        let entry = self.users.get_mut(&self.handles.id(user)?)?;
        let before = entry.lists.clone();
        change(&mut entry.lists, &mut self.handles);
        Some(before)
    }

    /// The online session numbered `id` if it passes `wants`.
    pub(super) fn session(&self, id: HandleId, wants: impl Fn(&Entry) -> bool) -> Option<&Entry> {
        self.users.get(&id).filter(|e| wants(e))
    }

    /// Where `entry`'s presence goes: every online session on its RL that it does not block
    /// (not itself) and that passes `wants`.
    pub(super) fn watchers(&self, entry: &Entry, wants: impl Fn(&Entry) -> bool) -> Vec<Recipient> {
        let own = self.handles.id(entry.handle.as_str());
        entry
            .lists
            .entries()
            .filter(|&(id, bits)| shows(entry.lists.blp, bits) && Some(id) != own)
            .filter_map(|(id, _)| self.session(id, &wants))
            .map(|w| w.outbox.recipient())
            .collect()
    }

    /// The handles on `entry`'s FL, in handle order (the order of an `ILN` burst).
    pub(super) fn forward_list(&self, entry: &Entry) -> Vec<&str> {
        let mut all: Vec<&str> = entry
            .lists
            .entries()
            .filter(|(_, bits)| bits.contains(relive_msnp::types::ListKind::Fl))
            .filter_map(|(id, _)| self.handles.name(id))
            .collect();
        all.sort_unstable();
        all
    }

    /// What `viewer` learns about `contact` when it comes online or adds it: its `ILN` with
    /// `trid` and, for a viewer with personal messages, its `UBX`; nothing when `contact` is
    /// offline, hidden or blocks `viewer`.
    pub(super) fn initial_presence(
        &self,
        viewer: &str,
        contact: &str,
        trid: TrId,
        personal: bool,
    ) -> Vec<ServerMessage> {
        let Some(other) = self.get(contact) else {
            return Vec::new();
        };
        if other.lists.blocks(self.handles.id(viewer)) {
            return Vec::new();
        }
        let Some(iln) = other.iln(trid) else {
            return Vec::new();
        };
        let ubx = other.ubx().filter(|_| personal);
        std::iter::once(iln).chain(ubx).collect()
    }
}
