//! List edits (PROTOCOL.md §2.7, §8): `ADD`, `ADC`, `REM`, `REA`, `ADG`, `RMG`, `REG`, `GTC`,
//! `BLP`, `PRP`, `SBP`.
//!
//! Order for every change: the store makes it durable and bumps the list version(s); then the
//! hub learns the new list bits (so presence fan-out and `FLN`/`NLN` flips follow at once);
//! then the reply is queued. An FL change also changes the other user's RL: if that user is
//! online they get `ADD 0 RL <their version> <me> <my name>` or `REM 0 RL <their version> <me>`
//! in their own dialect (`ADC 0 RL N=<me> F=<my name>` / `REM 0 RL <me>` from MSNP10).
//! An unregistered handle is added like a registered one that never comes online (no `205`,
//! no MSNP10 `208`, which is kept for malformed handles: the answer does not tell which handles
//! exist); `ADD`, `ADC`, `REM`, `SBP` and `REA` of a contact first wait for the account's turn
//! in the lookup throttle.
//! A handle under the reserved `.invalid` domain (the virtual pager contact,
//! [`relive_msnp::pager::is_reserved_handle`]) is `208` for `ADD` and `ADC` on every list (the
//! store refuses it, [`ListError::ReservedHandle`], for the website's block form as well).
//! Store errors map to their MSNP codes (201, 210, 215, 216, 219, 223, 224, 225, 228, 229,
//! 230, 218); client RL edits never get here (the session closes the connection first).
//!
//! MSNP10+ clients name FL contacts and groups by GUID: the handlers look the GUID up in the
//! caller's own lists first (a contact GUID that names nobody there is `208` for `ADC`/`SBP`
//! and `216` for `REM`; an unknown group `224`), then make the same store change the MSNP2–9
//! commands make, and answer in the form of the request. `PRP MFN` is `REA` on one's own
//! handle, `SBP … MFN` `REA` on a contact's.
//!
//! The pending list (PL, bit 16 from MSNP10) is never set: as in Escargot and rusty-retro, a
//! client learns who added it from `ADC 0 RL` while online and, at login, from RL entries on
//! neither AL nor BL (no source documents when the service set PL; research notes §2.7). `ADC`
//! and `REM` on PL are answered `201`.

use relive_msnp::client::{
    Adc, AdcTarget, Add, Adg, Blp, ContactRef, GroupRef, Gtc, Prp, Rea, Reg, Rem, Rmg, Sbp,
};
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{
    ErrorCode, FriendlyName, GroupKey, Guid, ListKind, Passport, PhoneProp, TrId, decodes_to_utf8,
};
use relive_msnp::version::Capabilities;

use super::{NsService, User};
use crate::net::conn::Replies;
use crate::store::{ListError, ReverseChange};

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
                guid: Guid::NIL,
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

    /// The key of the group `group` names in the user's lists (`Ok(None)`: no such group). A
    /// group number (MSNP7–9) is taken as it is: the store checks it with the change.
    async fn group_key(
        &self,
        user: &User,
        group: &GroupRef,
    ) -> Result<Option<GroupKey>, ListError> {
        let store = &self.ctx.store;
        match group {
            GroupRef::Id(id) => Ok(Some(GroupKey::new(*id, Guid::NIL))),
            GroupRef::Guid(guid) => store.group_by_guid(user.id, *guid).await,
            GroupRef::Name(name) => store.group_key(user.id, None, Some(name.as_str())).await,
        }
    }

    /// Puts `handle` on `list` (FL: in `group`, else group 0) under `name` (`None`: the stored
    /// name stays), tells the hub and the other side, and answers `ADD`/`ADC`; then, for a new
    /// FL contact who is online and lets the user see them, their `ILN` (and `UBX`) with the
    /// same trid.
    async fn add_contact(
        &mut self,
        (trid, list): (TrId, ListKind),
        (handle, name): (&Passport, Option<&FriendlyName>),
        group: Option<GroupKey>,
        user: &User,
        out: &mut Replies,
    ) {
        let store = &self.ctx.store;
        let result = match name {
            Some(n) => {
                store
                    .add_to_list(user.id, list, handle, n.as_str(), group.map(|g| g.id))
                    .await
            }
            None => store.add_to_list_unnamed(user.id, list, handle).await,
        };
        let outcome = match result {
            Ok(o) => o,
            Err(e) => return self.list_error(&e, trid, out),
        };
        self.ctx
            .hub
            .set_contact_bits(&user.handle, handle, outcome.bits);
        if let Some(reverse) = &outcome.reverse {
            self.notify_reverse(user, reverse);
        }
        out.push(ServerMessage::Add {
            trid,
            list,
            version: outcome.version,
            handle: handle.clone(),
            // The reply of an ADC FL without F= names the contact after its handle.
            name: name.cloned().unwrap_or_else(|| handle.clone().into()),
            group,
            guid: outcome.guid,
        });
        if list == ListKind::Fl && outcome.reverse.is_some() && self.session.status().is_some() {
            for m in self.ctx.hub.iln_for(&user.handle, handle, trid) {
                out.push(m);
            }
        }
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
        let group = add
            .group
            .filter(|_| caps.groups)
            .map(|id| GroupKey::new(id, Guid::NIL));
        self.add_contact(
            (add.trid, add.list),
            (&add.handle, Some(&add.name)),
            group,
            user,
            out,
        )
        .await;
    }

    pub(super) async fn handle_adc(&mut self, adc: &Adc, user: &User, out: &mut Replies) {
        self.ctx.lookups.turn(&user.handle).await;
        match &adc.target {
            AdcTarget::Contact { handle, name } => {
                self.add_contact(
                    (adc.trid, adc.list),
                    (handle, name.as_ref()),
                    None,
                    user,
                    out,
                )
                .await;
            }
            AdcTarget::ToGroup { contact, group } => {
                if adc.list != ListKind::Fl {
                    return out.push(ServerMessage::error(ErrorCode::InvalidParameter, adc.trid));
                }
                let store = &self.ctx.store;
                let handle = match store.contact_by_guid(user.id, *contact).await {
                    Ok(Some(h)) => h,
                    Ok(None) => {
                        return out
                            .push(ServerMessage::error(ErrorCode::InvalidUsername, adc.trid));
                    }
                    Err(e) => return self.list_error(&e, adc.trid, out),
                };
                let key = match store.group_by_guid(user.id, *group).await {
                    Ok(Some(k)) => k,
                    Ok(None) => return self.list_error(&ListError::NoSuchGroup, adc.trid, out),
                    Err(e) => return self.list_error(&e, adc.trid, out),
                };
                match store.file_in_group(user.id, &handle, key.id).await {
                    Ok(_) => out.push(ServerMessage::AdcToGroup {
                        trid: adc.trid,
                        contact: *contact,
                        group: *group,
                    }),
                    Err(e) => self.list_error(&e, adc.trid, out),
                }
            }
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
        let handle = match &rem.contact {
            ContactRef::Handle(h) => h.clone(),
            ContactRef::Guid(g) => match self.ctx.store.contact_by_guid(user.id, *g).await {
                Ok(Some(h)) => h,
                Ok(None) => return self.list_error(&ListError::NotOnList, rem.trid, out),
                Err(e) => return self.list_error(&e, rem.trid, out),
            },
        };
        let group = match rem.group.as_ref().filter(|_| caps.groups) {
            None => None,
            Some(g) => match self.group_key(user, g).await {
                Ok(Some(k)) => Some(k),
                Ok(None) => return self.list_error(&ListError::NoSuchGroup, rem.trid, out),
                Err(e) => return self.list_error(&e, rem.trid, out),
            },
        };
        let result = self
            .ctx
            .store
            .remove_from_list(user.id, rem.list, &handle, group.map(|g| g.id))
            .await;
        let outcome = match result {
            Ok(o) => o,
            Err(e) => return self.list_error(&e, rem.trid, out),
        };
        self.ctx
            .hub
            .set_contact_bits(&user.handle, &handle, outcome.bits);
        if let Some(reverse) = &outcome.reverse {
            self.notify_reverse(user, reverse);
        }
        // The answer names the contact and the group as the request did.
        out.push(match &rem.contact {
            ContactRef::Guid(contact) => ServerMessage::RemGuid {
                trid: rem.trid,
                contact: *contact,
                group: group.map(|g| g.guid),
            },
            ContactRef::Handle(_) => ServerMessage::Rem {
                trid: rem.trid,
                list: rem.list,
                version: outcome.version,
                handle,
                group,
            },
        });
    }

    /// Changes the user's own friendly name (`REA` on one's handle, `PRP MFN`): stored, then
    /// watchers get a fresh `NLN`. Returns the new list version.
    async fn rename_self(
        &mut self,
        user: &User,
        name: &FriendlyName,
        trid: TrId,
        out: &mut Replies,
    ) -> Option<u32> {
        match self
            .ctx
            .store
            .set_friendly_name(user.id, name.as_str())
            .await
        {
            Ok(version) => {
                self.ctx.hub.set_name(&user.handle, name.clone());
                if let Some(u) = &mut self.user {
                    u.name = name.clone();
                }
                Some(version)
            }
            Err(e) => {
                self.list_error(&e, trid, out);
                None
            }
        }
    }

    pub(super) async fn handle_rea(&mut self, rea: &Rea, user: &User, out: &mut Replies) {
        if rea.handle != user.handle {
            self.ctx.lookups.turn(&user.handle).await;
        }
        let version = if rea.handle == user.handle {
            self.rename_self(user, &rea.name, rea.trid, out).await
        } else {
            match self
                .ctx
                .store
                .rename_contact(user.id, &rea.handle, rea.name.as_str())
                .await
            {
                Ok(v) => Some(v),
                Err(e) => {
                    self.list_error(&e, rea.trid, out);
                    None
                }
            }
        };
        if let Some(version) = version {
            out.push(ServerMessage::Rea {
                trid: rea.trid,
                version,
                handle: rea.handle.clone(),
                name: rea.name.clone(),
            });
        }
    }

    pub(super) async fn handle_sbp(&mut self, sbp: &Sbp, user: &User, out: &mut Replies) {
        // A name, so UTF-8 once decoded (as REA's).
        if sbp.prop.as_str() != PhoneProp::Mfn.as_str() || !decodes_to_utf8(sbp.value.as_str()) {
            return out.push(ServerMessage::error(ErrorCode::InvalidParameter, sbp.trid));
        }
        self.ctx.lookups.turn(&user.handle).await;
        let store = &self.ctx.store;
        let handle = match store.contact_by_guid(user.id, sbp.contact).await {
            Ok(Some(h)) => h,
            Ok(None) => {
                return out.push(ServerMessage::error(ErrorCode::InvalidUsername, sbp.trid));
            }
            Err(e) => return self.list_error(&e, sbp.trid, out),
        };
        match store
            .rename_contact(user.id, &handle, sbp.value.as_str())
            .await
        {
            // Echoed byte for byte: clients compare the value with the one they sent.
            Ok(_) => out.push(ServerMessage::Sbp {
                trid: sbp.trid,
                contact: sbp.contact,
                prop: sbp.prop.clone(),
                value: sbp.value.clone(),
            }),
            Err(e) => self.list_error(&e, sbp.trid, out),
        }
    }

    pub(super) async fn handle_adg(&mut self, adg: &Adg, user: &User, out: &mut Replies) {
        match self.ctx.store.add_group(user.id, adg.name.as_str()).await {
            Ok((version, group)) => out.push(ServerMessage::Adg {
                trid: adg.trid,
                version,
                name: adg.name.clone(),
                group,
            }),
            Err(e) => self.list_error(&e, adg.trid, out),
        }
    }

    /// The group an `RMG`/`REG` names, with its GUID; `None` after answering `224` (or a store
    /// error).
    async fn existing_group(
        &mut self,
        user: &User,
        group: &GroupRef,
        trid: TrId,
        out: &mut Replies,
    ) -> Option<GroupKey> {
        let found = match group {
            // The store checks a number itself; its GUID is only needed by MSNP10+ answers.
            GroupRef::Id(id) => Ok(Some(GroupKey::new(*id, Guid::NIL))),
            other => self.group_key(user, other).await,
        };
        match found {
            Ok(Some(k)) => Some(k),
            Ok(None) => {
                self.list_error(&ListError::NoSuchGroup, trid, out);
                None
            }
            Err(e) => {
                self.list_error(&e, trid, out);
                None
            }
        }
    }

    pub(super) async fn handle_rmg(&mut self, rmg: &Rmg, user: &User, out: &mut Replies) {
        let Some(group) = self.existing_group(user, &rmg.group, rmg.trid, out).await else {
            return;
        };
        match self.ctx.store.remove_group(user.id, group.id).await {
            Ok(version) => out.push(ServerMessage::Rmg {
                trid: rmg.trid,
                version,
                group,
            }),
            Err(e) => self.list_error(&e, rmg.trid, out),
        }
    }

    pub(super) async fn handle_reg(&mut self, reg: &Reg, user: &User, out: &mut Replies) {
        let Some(group) = self.existing_group(user, &reg.group, reg.trid, out).await else {
            return;
        };
        match self
            .ctx
            .store
            .rename_group(user.id, group.id, reg.name.as_str())
            .await
        {
            Ok(version) => out.push(ServerMessage::Reg {
                trid: reg.trid,
                version,
                group,
                name: reg.name.clone(),
            }),
            Err(e) => self.list_error(&e, reg.trid, out),
        }
    }

    pub(super) async fn handle_gtc(&mut self, gtc: &Gtc, user: &User, out: &mut Replies) {
        match self.ctx.store.set_gtc(user.id, gtc.value).await {
            Ok(version) => out.push(ServerMessage::Gtc {
                trid: gtc.trid,
                version,
                value: gtc.value,
            }),
            Err(e) => self.list_error(&e, gtc.trid, out),
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
            Err(e) => self.list_error(&e, blp.trid, out),
        }
    }

    pub(super) async fn handle_prp(
        &mut self,
        prp: &Prp,
        user: &User,
        caps: &Capabilities,
        out: &mut Replies,
    ) {
        let version = if prp.prop == PhoneProp::Mfn && caps.abch {
            // MSNP10+: my friendly name, as REA on my handle was.
            let name = prp
                .value
                .as_ref()
                .filter(|v| decodes_to_utf8(v.as_str()))
                .and_then(|v| FriendlyName::parse(v.as_str()).ok());
            let Some(name) = name else {
                return out.push(ServerMessage::error(ErrorCode::InvalidParameter, prp.trid));
            };
            self.rename_self(user, &name, prp.trid, out).await
        } else {
            let value = prp.value.as_ref().map(|v| v.as_str());
            match self.ctx.store.set_phone(user.id, prp.prop, value).await {
                Ok(v) => Some(v),
                Err(e) => {
                    self.list_error(&e, prp.trid, out);
                    None
                }
            }
        };
        if let Some(version) = version {
            out.push(ServerMessage::Prp {
                trid: prp.trid,
                version,
                prop: prp.prop,
                value: prp.value.clone(),
            });
        }
    }
}
