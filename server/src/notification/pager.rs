//! Pages and what waits for a user at login (issue 18).
//!
//! * `PAG trid <handle> <len>` (MSNP5–8) and `PGD trid <handle> <device> <len>` (MSNP9+): the
//!   body is parsed ([`relive_msnp::pager::parse_page`]) and stored for the target by
//!   [`crate::store::Store::send_page`], which enforces the rules: the target allows pages
//!   (`MOB Y`), does not block the sender (BL, or BLP `BL` without AL), the sender's rate limits
//!   and the target's pager inbox size. Success has no reply (there is none in the protocol);
//!   every refusal, and a body that is not page XML or too long, is `800` — one answer, so a
//!   sender cannot tell a block from an unknown or unpageable target. A page to a target online
//!   with an `IPG`-capable client (MSNP6+) is delivered at once.
//! * At login: the initial mail notification ([`crate::mailbox::initial`]) right after the
//!   profile, then each page not yet delivered as an `IPG` (MSNP6+). A client without `IPG`
//!   (MSNP2–5) has its pages read at login and is rung, at its first `CHG` to a visible status
//!   (the server's own rule: no switchboard before the first `CHG`, none while hidden), into a
//!   switchboard with the virtual contact [`pager::VIRTUAL_HANDLE`] ("Pager"):
//!   `RNG <session> <sb> CKI <cookie> pager@pager.invalid Pager`; its `ANS` gets `IRO` naming
//!   the contact, one `text/plain` `MSG` per page ([`pager::page_message`]: sender's name and
//!   handle, time, text, callback number) and the contact's `BYE` ([`crate::switchboard`]).
//!   The pages are marked delivered once that is written to the SB socket; a client that never
//!   answers (within the cookie's lifetime) or stays hidden finds them at its next login.
//!   Either way every page is listed on the website's Mobile page.
//!
//! Page text is never logged; the log names sender, target and the refusal.

use bytes::Bytes;
use relive_msnp::mail::MailCounts;
use relive_msnp::pager::{self, PageParty, PageSender};
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{ClientCaps, ErrorCode, FriendlyName, Passport, Status, Token, TrId};
use relive_msnp::version::Capabilities;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{NsService, User};
use crate::net::conn::Replies;
use crate::store::AccountId;
use crate::store::pages::{NewPage, StoredPage};
use crate::switchboard::{PagerDelivery, Participant};

/// What waits for a user at login.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    counts: MailCounts,
    pages: Vec<StoredPage>,
}

impl NsService {
    /// Reads the unread counts and the undelivered pages of `account` (a store failure is
    /// logged and leaves nothing waiting: the login goes on).
    pub(super) async fn waiting_for(&self, account: AccountId) -> Waiting {
        let (counts, pages) = self
            .ctx
            .store
            .waiting_at_login(account)
            .await
            .unwrap_or_else(|error| {
                warn!(%error, "mail counts and pending pages unavailable at login");
                (MailCounts::default(), Vec::new())
            });
        Waiting { counts, pages }
    }

    /// Sends what waits, after `USR OK` and the profile: the mail counts, then the pages.
    pub(super) async fn deliver_waiting(
        &mut self,
        waiting: Waiting,
        member_id: u64,
        caps: &Capabilities,
        out: &mut Replies,
    ) {
        let Some(user) = self.user.clone() else {
            return;
        };
        let website = self.ctx.http.website();
        if let Some(m) = crate::mailbox::initial(caps, waiting.counts, &website) {
            out.push(m);
        }
        if waiting.pages.is_empty() {
            return;
        }
        if !caps.ipg {
            self.pager_waiting = Some(Box::new(self.pager_delivery(&user, waiting.pages).await));
            return;
        }
        let mut ids = Vec::with_capacity(waiting.pages.len());
        for page in &waiting.pages {
            out.push(ipg(&user.handle, member_id, page, &website));
            ids.push(page.id);
        }
        info!(
            user = user.handle.as_str(),
            pages = ids.len(),
            "pages delivered at login"
        );
        if let Err(error) = self.ctx.store.mark_pages_delivered(user.id, ids).await {
            warn!(%error, "could not mark pages delivered");
        }
    }

    /// What the virtual pager contact will say to `user`: one message per page.
    async fn pager_delivery(&self, user: &User, pages: Vec<StoredPage>) -> PagerDelivery {
        let mut messages = Vec::with_capacity(pages.len());
        let mut page_ids = Vec::with_capacity(pages.len());
        for page in pages {
            let sender_name = match Passport::parse(&page.from_addr) {
                Ok(from) => self.ctx.store.account(&from).await.ok().flatten(),
                Err(_) => None,
            }
            .map_or_else(|| page.from_addr.clone(), |a| a.friendly_name.to_display());
            messages.push(pager::page_message(
                PageSender {
                    name: &sender_name,
                    handle: &page.from_addr,
                },
                &crate::web::when(page.created_at),
                &page.body,
                page.callback
                    .as_ref()
                    .map(|(l, n)| (l.as_str(), n.as_str())),
            ));
            page_ids.push(page.id);
        }
        PagerDelivery {
            account: user.id,
            messages,
            page_ids,
        }
    }

    /// At a `CHG` to `status`: if pages wait for the virtual contact and `status` is visible,
    /// rings `user` into a room with it (module doc).
    pub(super) fn ring_pager_if_waiting(
        &mut self,
        status: Status,
        user: &User,
        caps: &Capabilities,
        out: &mut Replies,
    ) {
        if status == Status::Hdn {
            return;
        }
        let Some(delivery) = self.pager_waiting.take() else {
            return;
        };
        #[allow(clippy::unwrap_used, reason = "a constant, valid handle")]
        let handle = Passport::parse(pager::VIRTUAL_HANDLE).unwrap();
        #[allow(clippy::unwrap_used, reason = "a constant, valid name")]
        let name = FriendlyName::from_display(pager::VIRTUAL_NAME).unwrap();
        let count = delivery.page_ids.len();
        let me = Participant {
            user: user.handle.clone(),
            name: user.name.clone(),
            caps: self.ctx.hub.caps_of(&user.handle).unwrap_or_default(),
        };
        let sbs = &self.ctx.switchboards;
        let (session, cookie) = sbs.ring_pager(
            Participant {
                user: handle.clone(),
                name: name.clone(),
                caps: ClientCaps::default(),
            },
            &me,
            *caps,
            *delivery,
            Instant::now(),
        );
        info!(
            user = user.handle.as_str(),
            pages = count,
            "ringing the virtual pager contact"
        );
        out.push(ServerMessage::Rng {
            session,
            addr: sbs.address(),
            cookie,
            caller: handle,
            caller_name: name,
        });
    }

    /// `PAG` / `PGD` (module doc). `fields` are the arguments before the length; the first is
    /// the target's handle.
    pub(super) async fn handle_page(
        &mut self,
        trid: TrId,
        fields: &[Token],
        payload: &Bytes,
        user: &User,
        out: &mut Replies,
    ) {
        let refuse = |out: &mut Replies, reason: &dyn std::fmt::Display| {
            info!(user = user.handle.as_str(), bytes = payload.len(), %reason, "page refused");
            out.push(ServerMessage::error(ErrorCode::ChangingTooRapidly, trid));
        };
        let Some(Ok(target)) = fields.first().map(|f| Passport::parse(f.as_str())) else {
            return refuse(out, &"no target handle");
        };
        let page = match pager::parse_page(payload) {
            Ok(p) => p,
            Err(e) => return refuse(out, &e),
        };
        let new = NewPage {
            text: page.text,
            callback: page.callback,
        };
        let stored = match self
            .ctx
            .store
            .send_page(user.id, &user.handle, &target, new)
            .await
        {
            Ok(Ok(stored)) => stored,
            Ok(Err(refusal)) => return refuse(out, &refusal),
            Err(error) => {
                warn!(%error, "page not stored");
                return out.push(ServerMessage::error(ErrorCode::ChangingTooRapidly, trid));
            }
        };
        info!(
            user = user.handle.as_str(),
            to = target.as_str(),
            bytes = payload.len(),
            "page stored"
        );
        let (to, id) = stored;
        if self.ctx.hub.dialect_of(&to.email).is_some_and(|c| c.ipg) {
            let pending = self
                .ctx
                .store
                .pending_pages(to.id)
                .await
                .unwrap_or_default();
            let website = self.ctx.http.website();
            if let Some(page) = pending.iter().find(|p| p.id == id)
                && self
                    .ctx
                    .hub
                    .send_to(&to.email, ipg(&to.email, to.member_id, page, &website))
                && let Err(error) = self.ctx.store.mark_pages_delivered(to.id, vec![id]).await
            {
                warn!(%error, "could not mark a page delivered");
            }
        }
    }
}

/// The `IPG` that delivers `page` to `to`.
fn ipg(to: &Passport, to_member_id: u64, page: &StoredPage, website: &str) -> ServerMessage {
    ServerMessage::Ipg {
        payload: pager::ipg_payload(
            PageParty {
                handle: to.as_str(),
                member_id: to_member_id,
            },
            PageParty {
                handle: &page.from_addr,
                member_id: page.from_member_id.unwrap_or(0),
            },
            &page.body,
            &format!("{website}/"),
        ),
    }
}
