//! The visibility rule (PROTOCOL.md §2.8) and the per-user list data it reads.
//!
//! * `owner` **blocks** `viewer` when `viewer` is on `owner`'s BL; otherwise when `viewer` is on
//!   `owner`'s AL they are allowed; otherwise `owner` blocks `viewer` iff `owner`'s BLP is `BL`
//!   (Escargot's `_is_blocking`): [`blocks`].
//! * `owner`'s presence goes to every online user on `owner`'s RL (they have `owner` on their
//!   FL) whom `owner` does not block: [`ListView::shows_to`]. A hidden (`HDN`) user looks
//!   offline to everybody (the registry's `visible_presence`).
//!
//! A [`ListView`] is what the hub keeps of a user's lists while they are online: the BLP and a
//! packed table of (handle id, list bits), the ids counted in the hub's [`Handles`].

use relive_msnp::types::{Blp, ListKind, ListSet, Passport};

use super::handles::{HandleId, Handles};

/// Whether a user with privacy default `blp` blocks someone who has `bits` in that user's lists.
#[must_use]
pub(super) fn blocks(blp: Blp, bits: ListSet) -> bool {
    if bits.contains(ListKind::Bl) {
        true
    } else if bits.contains(ListKind::Al) {
        false
    } else {
        blp == Blp::Bl
    }
}

/// Whether someone with `bits` in the lists of a user with privacy default `blp` gets that
/// user's presence: they watch (RL) and are not blocked.
#[must_use]
pub(super) fn shows(blp: Blp, bits: ListSet) -> bool {
    bits.contains(ListKind::Rl) && !blocks(blp, bits)
}

/// The privacy and list data of an online user, loaded from the store at login.
///
/// Packed for memory: every online user holds one, of up to a few hundred entries, for as long
/// as they are online. Each entry is the contact's handle id and its bits (8 bytes), sorted by
/// id; lookups are a binary search, changes (rare: `ADD`/`REM`/RL updates) rebuild the table.
/// The ids are references in the hub's [`Handles`]: [`ListView::new`] and
/// [`ListView::set_bits`] take them, [`ListView::release`] gives them back. A `clone` is a
/// snapshot for comparison and must not be released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListView {
    /// The user's privacy default.
    pub(super) blp: Blp,
    entries: Box<[(HandleId, ListSet)]>,
}

impl ListView {
    /// Lists with privacy default `blp` and `contacts` (later entries for the same handle
    /// replace earlier ones; empty sets are left out).
    pub(super) fn new(blp: Blp, contacts: &[(Passport, ListSet)], handles: &mut Handles) -> Self {
        // One reference per input entry; duplicates and empty sets give theirs back below
        // (the store sends neither, so that is rare). Sorting ids, not strings, keeps login cheap.
        let mut all: Vec<(HandleId, ListSet)> = contacts
            .iter()
            .map(|(contact, bits)| (handles.acquire(contact.as_str()), *bits))
            .collect();
        // Stable: of several entries for one handle, the last one stays last.
        all.sort_by_key(|&(id, _)| id);
        let mut entries: Vec<(HandleId, ListSet)> = Vec::with_capacity(all.len());
        for (id, bits) in all {
            match entries.last_mut() {
                Some(last) if last.0 == id => {
                    last.1 = bits;
                    handles.release(id);
                }
                _ => entries.push((id, bits)),
            }
        }
        entries.retain(|&(id, bits)| {
            let keep = bits != ListSet::EMPTY;
            if !keep {
                handles.release(id);
            }
            keep
        });
        Self {
            blp,
            entries: entries.into_boxed_slice(),
        }
    }

    /// Gives back the handle references of every entry (the user went offline).
    pub(super) fn release(self, handles: &mut Handles) {
        for &(id, _) in &self.entries {
            handles.release(id);
        }
    }

    /// The bits the contact numbered `contact` has in these lists.
    #[must_use]
    pub(super) fn bits(&self, contact: Option<HandleId>) -> ListSet {
        contact
            .and_then(|id| self.entries.binary_search_by_key(&id, |&(i, _)| i).ok())
            .map_or(ListSet::EMPTY, |at| self.entries[at].1)
    }

    /// Whether the owner of these lists blocks `viewer` ([`blocks`]).
    #[must_use]
    pub(super) fn blocks(&self, viewer: Option<HandleId>) -> bool {
        blocks(self.blp, self.bits(viewer))
    }

    /// Whether `viewer` gets the owner's presence ([`shows`]).
    #[must_use]
    pub(super) fn shows_to(&self, viewer: Option<HandleId>) -> bool {
        shows(self.blp, self.bits(viewer))
    }

    /// Every entry, in id order.
    pub(super) fn entries(&self) -> impl Iterator<Item = (HandleId, ListSet)> + '_ {
        self.entries.iter().copied()
    }

    /// Sets the bits of `contact` (`EMPTY`: removes it), taking or giving back its reference.
    pub(super) fn set_bits(&mut self, contact: &str, bits: ListSet, handles: &mut Handles) {
        let found = handles
            .id(contact)
            .and_then(|id| self.position(id).ok().map(|at| (id, at)));
        let mut entries = std::mem::take(&mut self.entries).into_vec();
        match found {
            Some((id, at)) if bits == ListSet::EMPTY => {
                entries.remove(at);
                handles.release(id);
            }
            Some((_, at)) => entries[at].1 = bits,
            None if bits == ListSet::EMPTY => {}
            None => {
                let id = handles.acquire(contact);
                let at = entries
                    .binary_search_by_key(&id, |&(i, _)| i)
                    .unwrap_or_else(|at| at);
                entries.insert(at, (id, bits));
            }
        }
        self.entries = entries.into_boxed_slice();
    }

    fn position(&self, id: HandleId) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&id, |&(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Passport {
        Passport::parse(s).unwrap()
    }

    #[test]
    fn blocking_follows_bl_then_al_then_blp() {
        let on = |kinds: &[ListKind]| kinds.iter().fold(ListSet::EMPTY, |s, k| s.with(*k));
        use ListKind::{Al, Bl, Rl};
        for blp in [Blp::Al, Blp::Bl] {
            assert!(blocks(blp, on(&[Bl])) && blocks(blp, on(&[Al, Bl])));
            assert!(!blocks(blp, on(&[Al])));
            assert!(!shows(blp, on(&[Al])), "not a watcher");
            assert!(shows(blp, on(&[Al, Rl])) && !shows(blp, on(&[Bl, Rl])));
        }
        assert!(blocks(Blp::Bl, on(&[Rl])) && !blocks(Blp::Al, on(&[Rl])));
    }

    #[test]
    fn list_views_pack_look_up_change_and_release_contacts() {
        let mut h = Handles::default();
        let fl = ListSet::EMPTY.with(ListKind::Fl);
        let bl = ListSet::EMPTY.with(ListKind::Bl);
        let al = ListSet::EMPTY.with(ListKind::Al);
        let (c, a, b) = (p("carol@x.com"), p("alice@x.com"), p("bob@x.com"));
        // Unsorted input, a duplicate (the later wins) and an empty set (left out).
        let mut v = ListView::new(
            Blp::Bl,
            &[
                (c.clone(), fl),
                (a.clone(), fl),
                (c, al),
                (b, ListSet::EMPTY),
            ],
            &mut h,
        );
        let named = |v: &ListView, h: &Handles| {
            let mut all: Vec<(String, ListSet)> = v
                .entries()
                .map(|(id, bits)| (h.name(id).unwrap().to_owned(), bits))
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all
        };
        assert_eq!(
            named(&v, &h),
            vec![("alice@x.com".into(), fl), ("carol@x.com".into(), al)]
        );
        assert_eq!(h.len(), 2, "bob was never on a list");
        assert_eq!(v.bits(h.id("alice@x.com")), fl);
        assert_eq!(v.bits(h.id("bob@x.com")), ListSet::EMPTY);
        // BLP BL: blocked unless on AL.
        assert!(v.blocks(h.id("alice@x.com")) && !v.blocks(h.id("carol@x.com")));
        assert!(v.blocks(h.id("nobody@x.com")));
        v.set_bits("bob@x.com", bl, &mut h);
        v.set_bits("alice@x.com", ListSet::EMPTY, &mut h);
        v.set_bits("carol@x.com", al.with(ListKind::Rl), &mut h);
        assert_eq!(
            named(&v, &h),
            vec![
                ("bob@x.com".into(), bl),
                ("carol@x.com".into(), al.with(ListKind::Rl))
            ]
        );
        assert_eq!(h.id("alice@x.com"), None, "alice's handle was freed");
        assert!(v.blocks(h.id("bob@x.com")) && v.shows_to(h.id("carol@x.com")));
        v.release(&mut h);
        assert_eq!(h.len(), 0);
    }
}
