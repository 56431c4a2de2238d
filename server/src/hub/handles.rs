//! The hub's handle interner: every handle that an online user is or has on a list, stored once
//! and numbered, so each user's contact table holds 4-byte ids instead of copies of the handles
//! (50 contacts: about 1 KiB less per online user), and the registry is keyed by those ids.
//!
//! Owned by the [`Hub`](super::Hub) and used under its lock. Every id is counted: the registry
//! takes one reference per online user and one per contact entry of an online user's lists, and
//! gives them back on logout, so a handle is freed (and its id may be reused) as soon as no
//! online user involves it. Nothing outlives the hub.

use std::collections::HashMap;
use std::sync::Arc;

use slab::Slab;

/// The number of an interned handle, valid while a reference to it is held.
pub(super) type HandleId = u32;

/// Interned handles with their reference counts.
#[derive(Debug, Default)]
pub(super) struct Handles {
    ids: HashMap<Arc<str>, HandleId>,
    slots: Slab<Slot>,
}

#[derive(Debug)]
struct Slot {
    name: Arc<str>,
    refs: u32,
}

impl Handles {
    /// The id of `handle`, if some online user involves it.
    pub(super) fn id(&self, handle: &str) -> Option<HandleId> {
        self.ids.get(handle).copied()
    }

    /// The handle numbered `id`.
    pub(super) fn name(&self, id: HandleId) -> Option<&str> {
        self.slots.get(id as usize).map(|slot| &*slot.name)
    }

    /// Takes one reference to `handle`, numbering it if it is new.
    pub(super) fn acquire(&mut self, handle: &str) -> HandleId {
        if let Some(&id) = self.ids.get(handle) {
            if let Some(slot) = self.slots.get_mut(id as usize) {
                slot.refs = slot.refs.saturating_add(1);
            }
            return id;
        }
        let name: Arc<str> = Arc::from(handle);
        let key = self.slots.insert(Slot {
            name: Arc::clone(&name),
            refs: 1,
        });
        // The slab holds one slot per live handle, far fewer than 2^32; the fallback only keeps
        // the conversion total.
        let id = HandleId::try_from(key).unwrap_or(HandleId::MAX);
        self.ids.insert(name, id);
        id
    }

    /// Gives back one reference to `id`; the last one frees the handle.
    pub(super) fn release(&mut self, id: HandleId) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        slot.refs = slot.refs.saturating_sub(1);
        if slot.refs == 0 {
            let slot = self.slots.remove(id as usize);
            self.ids.remove(&slot.name);
        }
    }

    /// How many handles are interned.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_lives_while_referenced_and_its_id_is_reused_after() {
        let mut h = Handles::default();
        let a = h.acquire("alice@x.com");
        assert_eq!(h.acquire("alice@x.com"), a, "same handle, same id");
        let b = h.acquire("bob@x.com");
        assert_ne!(a, b);
        assert_eq!(
            (h.id("bob@x.com"), h.name(a)),
            (Some(b), Some("alice@x.com"))
        );
        h.release(a);
        assert_eq!(h.name(a), Some("alice@x.com"), "one reference left");
        h.release(a);
        assert_eq!((h.id("alice@x.com"), h.name(a), h.len()), (None, None, 1));
        // A freed id is given to the next new handle; releasing an unknown id is a no-op.
        assert_eq!(h.acquire("carol@x.com"), a);
        h.release(999);
        h.release(b);
        h.release(a);
        assert_eq!(h.len(), 0);
        assert!(h.ids.is_empty(), "nothing is kept once unused");
    }
}
