//! `SYN` and the client list queries `LST`/`LSG` (PROTOCOL.md §2.6–§2.7).
//!
//! The store's [`ListSnapshot`] becomes one dialect-neutral [`SynDump`]; the `relive-msnp`
//! encoder lays it out in the client's generation (MSNP2–4, 5–6, 7, 8–9, 10+). A client whose
//! cache is current gets only the `SYN` line: MSNP2–9 send the list version they have, MSNP10+
//! the two timestamps of their last dump. Relive keeps one list version per account, bumped by
//! every change (the account's own and the RL changes others cause), and writes it as one
//! timestamp ([`relive_msnp::types::ListStamp::of_version`]) in both places; `0 0` (or anything
//! else) gets the whole dump.

use relive_msnp::client::{Lsg, Lst, Syn, SynCache};
use relive_msnp::server::{DumpContact, ServerMessage, SynDump};
use relive_msnp::types::{ListKind, TrId};
use relive_msnp::version::Capabilities;

use super::{NsService, User};
use crate::net::conn::Replies;
use crate::store::ListSnapshot;

/// The dump for `snapshot`, answering transaction `trid`.
fn dump(trid: TrId, snapshot: ListSnapshot) -> SynDump {
    SynDump {
        trid,
        version: snapshot.version,
        stamp: snapshot.stamp,
        name: snapshot.name,
        gtc: snapshot.gtc,
        blp: snapshot.blp,
        props: snapshot.phones,
        groups: snapshot
            .groups
            .into_iter()
            .map(|g| (g.key, g.name))
            .collect(),
        contacts: snapshot
            .contacts
            .into_iter()
            .map(|c| DumpContact {
                handle: c.email,
                name: c.friendly_name,
                lists: c.lists,
                groups: c.groups,
                guid: c.guid,
                props: c.phones,
            })
            .collect(),
    }
}

impl NsService {
    async fn snapshot(&self, user: &User, trid: TrId, out: &mut Replies) -> Option<ListSnapshot> {
        match self.ctx.store.list_snapshot(user.id).await {
            Ok(s) => Some(s),
            Err(e) => {
                self.list_error(&e, trid, out);
                None
            }
        }
    }

    pub(super) async fn handle_syn(
        &mut self,
        syn: &Syn,
        user: &User,
        caps: &Capabilities,
        out: &mut Replies,
    ) {
        let Some(snapshot) = self.snapshot(user, syn.trid, out).await else {
            return;
        };
        let current = match &syn.cache {
            // A client that sends 0 has no cached lists at all, so it always gets the dump, even
            // for a new account still at version 0 (transcript 01).
            SynCache::Version(v) => *v != 0 && *v == snapshot.version,
            SynCache::Stamps { list, settings } => {
                let stamp = snapshot.stamp.to_string();
                list.as_str() == stamp && settings.as_str() == stamp
            }
        };
        if current {
            // Every generation answers a current cache with the bare `SYN` line.
            return out.push(ServerMessage::Syn {
                trid: syn.trid,
                version: snapshot.version,
                stamp: snapshot.stamp,
                counts: None,
            });
        }
        for m in dump(syn.trid, snapshot).to_messages(caps) {
            out.push(m);
        }
    }

    pub(super) async fn handle_lst(
        &mut self,
        lst: &Lst,
        user: &User,
        caps: &Capabilities,
        out: &mut Replies,
    ) {
        let Some(snapshot) = self.snapshot(user, lst.trid, out).await else {
            return;
        };
        let list = lst.list;
        // A `BPR` belongs to the `LST` line before it (§2.6): it goes out only after its own
        // contact's line, and only in the forward list.
        let mut contact_kept = false;
        for m in dump(lst.trid, snapshot).to_messages(caps) {
            let keep = match &m {
                ServerMessage::LstEntry { list: l, .. } => *l == list,
                ServerMessage::LstContact { lists, .. } => {
                    contact_kept = lists.contains(list);
                    contact_kept
                }
                ServerMessage::Bpr { .. } => contact_kept && list == ListKind::Fl,
                _ => false,
            };
            if keep {
                out.push(m);
            }
        }
    }

    pub(super) async fn handle_lsg(
        &mut self,
        lsg: &Lsg,
        user: &User,
        caps: &Capabilities,
        out: &mut Replies,
    ) {
        let Some(snapshot) = self.snapshot(user, lsg.trid, out).await else {
            return;
        };
        for m in dump(lsg.trid, snapshot).to_messages(caps) {
            if matches!(m, ServerMessage::Lsg { .. }) {
                out.push(m);
            }
        }
    }
}
