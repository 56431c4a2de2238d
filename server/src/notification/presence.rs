//! Presence (`CHG`, PROTOCOL.md §2.8), the personal message (`UUX`, §8) and server challenges
//! (`CHL`/`QRY`, §2.5, §8).
//!
//! `CHG` is echoed, stored in the hub (which sends `NLN`/`FLN` to exactly the watchers the
//! visibility rule allows) and, on the first one, answered with the `ILN` burst (each `ILN`
//! followed by that contact's `UBX` for an MSNP11+ client). `UUX` is answered `UUX trid 0` and
//! its message goes to the hub, which sends `UBX` to the MSNP11+ watchers. With
//! `Settings::chl` on and a dialect that has challenges, the first `CHG` is followed by
//! `CHL 0 <challenge>`; the answer must arrive within `Settings::chl_timeout` and match one of
//! the known client-id/key pairs of the dialect's scheme ([`relive_msnp::auth::verify_qry`]: MD5
//! for MSNP6–10, the product-key hash for MSNP11+), else `540` and close.

use rand::Rng as _;
use relive_msnp::auth::verify_qry;
use relive_msnp::client::{Chg, Qry, Uux};
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{ClientCaps, ErrorCode, Token, TrId};
use relive_msnp::version::Capabilities;
use tokio::time::Instant;
use tracing::info;

use super::{NsService, User};
use crate::hub::Presence;
use crate::net::conn::Replies;

/// A 20-digit decimal challenge, as the original servers sent.
fn new_challenge() -> String {
    let mut rng = rand::rng();
    format!(
        "{}{:010}",
        rng.random_range(1_000_000_000u64..10_000_000_000),
        rng.random_range(0..10_000_000_000u64)
    )
}

impl NsService {
    pub(super) fn handle_chg(
        &mut self,
        chg: &Chg,
        user: &User,
        caps: &Capabilities,
        out: &mut Replies,
    ) {
        let first_chg_of_session = self.challenge.current.is_none();
        let presence = Presence {
            status: chg.status,
            caps: chg.caps.unwrap_or(ClientCaps(0)),
            msn_object: chg.msn_object.clone().filter(|_| caps.msn_object),
        };
        out.push(ServerMessage::Chg {
            trid: chg.trid,
            status: presence.status,
            caps: presence.caps,
            msn_object: presence.msn_object.clone(),
        });
        for iln in self.ctx.hub.set_presence(&user.handle, presence, chg.trid) {
            out.push(iln);
        }
        if self.ctx.settings.chl && caps.chl_qry && first_chg_of_session {
            let challenge = new_challenge();
            if let Ok(token) = Token::parse(&challenge) {
                out.push(ServerMessage::Chl {
                    trid: TrId(0),
                    challenge: token,
                });
                self.challenge.current = Some(challenge);
                self.challenge.deadline = Some(Instant::now() + self.ctx.settings.chl_timeout);
            }
        }
        self.ring_pager_if_waiting(chg.status, user, caps, out);
    }

    pub(super) fn handle_uux(&mut self, uux: &Uux, user: &User, out: &mut Replies) {
        self.ctx.hub.set_personal(&user.handle, uux.message.clone());
        out.push(ServerMessage::UuxOk { trid: uux.trid });
    }

    pub(super) fn handle_qry(&mut self, qry: &Qry, caps: &Capabilities, out: &mut Replies) {
        let Some(challenge) = &self.challenge.current else {
            info!(trid = qry.trid.0, "QRY without a challenge; closing");
            return out.close();
        };
        if verify_qry(caps.qry, challenge, qry.client_id.as_str(), &qry.payload) {
            self.challenge.deadline = None;
            out.push(ServerMessage::QryAck { trid: qry.trid });
        } else {
            info!(trid = qry.trid.0, "wrong CHL answer; closing");
            out.push(ServerMessage::error(
                ErrorCode::ChallengeResponseFailed,
                qry.trid,
            ));
            out.close();
        }
    }
}
