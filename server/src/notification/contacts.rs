//! List edits (PROTOCOL.md §2.7): `ADD`, `REM`, `REA`, `ADG`, `RMG`, `REG`, `GTC`, `BLP`, `PRP`.
//!
//! Order for every change: the store makes it durable and bumps the list version(s); then the
//! hub learns the new list bits (so presence fan-out and `FLN`/`NLN` flips follow at once);
//! then the reply is queued. An FL change also changes the other user's RL: if that user is
//! online they get `ADD 0 RL <their version> <me> <my name>` or `REM 0 RL <their version> <me>`.
//! An unregistered handle is added like a registered one that never comes online (no `205`:
//! the answer does not tell which handles exist); `ADD`, `REM` and `REA` of a contact first
//! wait for the account's turn in the lookup throttle.
//! Store errors map to their MSNP codes (201, 210, 215, 216, 219, 223, 224, 225, 228, 229,
//! 230, 218); client RL edits never get here (the session closes the connection first).

use relive_msnp::client::{Add, Adg, Blp, Gtc, Prp, Rea, Reg, Rem, Rmg};
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{ListKind, TrId};
use relive_msnp::version::Capabilities;

use super::{NsService, User};
use crate::net::conn::Replies;
use crate::store::ReverseChange;

impl NsService {
    /// Tells the other side of an FL change about its RL, and updates the hub's view of it.
    fn notify_reverse(&self, user: &User, reverse: &ReverseChange) {
        let message = if reverse.added {
            ServerMessage::Add {
                trid: TrId(0),
                list: ListKind::Rl,
                version: reverse.version,
                handle: user.handle.clone(),
                name: user.name.clone(),
                group: None,
            }
        } else {
            ServerMessage::Rem {
                trid: TrId(0),
                list: ListKind::Rl,
                version: reverse.version,
                handle: user.handle.clone(),
                group: None,
            }
        };
        self.ctx
            .hub
            .notify_list_change(&reverse.email, &user.handle, reverse.bits, message);
    }

    pub(super) async fn handle_add(
        &mut self,
        add: &Add,
        user: &User,
        caps: &Capabilities,
        out: &mut Replies,
    ) {
        self.ctx.lookups.turn(&user.handle).await;
        // Group ids exist from MSNP7; an older client's extra field is ignored.
        let group = add.group.filter(|_| caps.groups);
        let result = self
            .ctx
            .store
            .add_to_list(user.id, add.list, &add.handle, add.name.as_str(), group)
            .await;
        let outcome = match result {
            Ok(o) => o,
            Err(e) => return Self::list_error(&e, add.trid, out),
        };
        self.ctx
            .hub
            .set_contact_bits(&user.handle, &add.handle, outcome.bits);
        if let Some(reverse) = &outcome.reverse {
            self.notify_reverse(user, reverse);
        }
        out.push(ServerMessage::Add {
            trid: add.trid,
            list: add.list,
            version: outcome.version,
            handle: add.handle.clone(),
            name: add.name.clone(),
            group,
        });
        // A new FL contact who is online and lets me see them: their ILN, same trid.
        if add.list == ListKind::Fl
            && outcome.reverse.is_some()
            && self.session.status().is_some()
            && let Some(iln) = self.ctx.hub.iln_for(&user.handle, &add.handle, add.trid)
        {
            out.push(iln);
        }
    }

    pub(super) async fn handle_rem(
        &mut self,
        rem: &Rem,
        user: &User,
        caps: &Capabilities,
        out: &mut Replies,
    ) {
        self.ctx.lookups.turn(&user.handle).await;
        let group = rem.group.filter(|_| caps.groups);
        let result = self
            .ctx
            .store
            .remove_from_list(user.id, rem.list, &rem.handle, group)
            .await;
        let outcome = match result {
            Ok(o) => o,
            Err(e) => return Self::list_error(&e, rem.trid, out),
        };
        self.ctx
            .hub
            .set_contact_bits(&user.handle, &rem.handle, outcome.bits);
        if let Some(reverse) = &outcome.reverse {
            self.notify_reverse(user, reverse);
        }
        out.push(ServerMessage::Rem {
            trid: rem.trid,
            list: rem.list,
            version: outcome.version,
            handle: rem.handle.clone(),
            group,
        });
    }

    pub(super) async fn handle_rea(&mut self, rea: &Rea, user: &User, out: &mut Replies) {
        if rea.handle != user.handle {
            self.ctx.lookups.turn(&user.handle).await;
        }
        let store = &self.ctx.store;
        let result = if rea.handle == user.handle {
            store.set_friendly_name(user.id, rea.name.as_str()).await
        } else {
            store
                .rename_contact(user.id, &rea.handle, rea.name.as_str())
                .await
        };
        let version = match result {
            Ok(v) => v,
            Err(e) => return Self::list_error(&e, rea.trid, out),
        };
        if rea.handle == user.handle {
            // Contacts who may see me get a fresh NLN with the new name.
            self.ctx.hub.set_name(&user.handle, rea.name.clone());
            if let Some(u) = &mut self.user {
                u.name = rea.name.clone();
            }
        }
        out.push(ServerMessage::Rea {
            trid: rea.trid,
            version,
            handle: rea.handle.clone(),
            name: rea.name.clone(),
        });
    }

    pub(super) async fn handle_adg(&mut self, adg: &Adg, user: &User, out: &mut Replies) {
        match self.ctx.store.add_group(user.id, adg.name.as_str()).await {
            Ok((version, group)) => out.push(ServerMessage::Adg {
                trid: adg.trid,
                version,
                name: adg.name.clone(),
                group,
            }),
            Err(e) => Self::list_error(&e, adg.trid, out),
        }
    }

    pub(super) async fn handle_rmg(&mut self, rmg: &Rmg, user: &User, out: &mut Replies) {
        match self.ctx.store.remove_group(user.id, rmg.group).await {
            Ok(version) => out.push(ServerMessage::Rmg {
                trid: rmg.trid,
                version,
                group: rmg.group,
            }),
            Err(e) => Self::list_error(&e, rmg.trid, out),
        }
    }

    pub(super) async fn handle_reg(&mut self, reg: &Reg, user: &User, out: &mut Replies) {
        match self
            .ctx
            .store
            .rename_group(user.id, reg.group, reg.name.as_str())
            .await
        {
            Ok(version) => out.push(ServerMessage::Reg {
                trid: reg.trid,
                version,
                group: reg.group,
                name: reg.name.clone(),
            }),
            Err(e) => Self::list_error(&e, reg.trid, out),
        }
    }

    pub(super) async fn handle_gtc(&mut self, gtc: &Gtc, user: &User, out: &mut Replies) {
        match self.ctx.store.set_gtc(user.id, gtc.value).await {
            Ok(version) => out.push(ServerMessage::Gtc {
                trid: gtc.trid,
                version,
                value: gtc.value,
            }),
            Err(e) => Self::list_error(&e, gtc.trid, out),
        }
    }

    pub(super) async fn handle_blp(&mut self, blp: &Blp, user: &User, out: &mut Replies) {
        match self.ctx.store.set_blp(user.id, blp.value).await {
            Ok(version) => {
                // Watchers whose visibility flips get FLN/NLN now.
                self.ctx.hub.set_blp(&user.handle, blp.value);
                out.push(ServerMessage::Blp {
                    trid: blp.trid,
                    version,
                    value: blp.value,
                });
            }
            Err(e) => Self::list_error(&e, blp.trid, out),
        }
    }

    pub(super) async fn handle_prp(&mut self, prp: &Prp, user: &User, out: &mut Replies) {
        let value = prp.value.as_ref().map(|v| v.as_str());
        match self.ctx.store.set_phone(user.id, prp.prop, value).await {
            Ok(version) => out.push(ServerMessage::Prp {
                trid: prp.trid,
                version,
                prop: prp.prop,
                value: prp.value.clone(),
            }),
            Err(e) => Self::list_error(&e, prp.trid, out),
        }
    }
}
