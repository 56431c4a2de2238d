//! Login: `VER`, `CVR`, `USR` (MD5 for MSNP2–7, CTP for MSNP2, Passport `TWN` for MSNP8+), the
//! optional `XFR NS` referral, and what a successful login sends (`USR OK`, the profile `MSG`).
//!
//! ```text
//! C: USR 6 MD5 I alice@example.com      S: USR 6 MD5 S <fresh random challenge>
//! C: USR 7 MD5 S <md5hex(challenge ‖ token)>
//! S: USR 7 OK alice@example.com Alice [1]      (verified flag from MSNP6)
//! S: MSG Hotmail Hotmail <len> + text/x-msmsgsprofile
//! ```
//!
//! From MSNP10 `USR OK` carries no name (the client reads it from `PRP MFN` in the `SYN` dump)
//! and the profile says `ABCHMigrated: 1`; from MSNP11 `SBS 0 null` comes between `USR OK` and
//! the profile (research notes §2.1, §3.1).
//!
//! The secret is one of the account's access tokens (never the password). Every attempt gets a
//! new challenge, so a captured answer cannot be replayed. An unknown account gets a challenge
//! too and fails at `USR … S` with the same `911` after the same store round trip as a wrong
//! answer, so neither the reply nor its timing class tells whether the account exists. A failed
//! login closes the connection.
//!
//! `TWN` (PROTOCOL.md §2.3.3): `USR TWN I` is answered with the same parameters whether or not
//! the account exists; `USR TWN S <ticket>` consumes a ticket `login2.srf` or `RST.srf` issued
//! ([`crate::passport::PassportService::consume_ticket`]); any failure is `911` and a close.
//! The ticket is what precedes the first `,`: tickets never hold one, and msnp11-sdk sends the
//! rest of `Authentication-Info` after it (`t=…&p=…,ru=http://messenger.msn.com`; research
//! notes §5.3).
//!
//! Every MD5, CTP or TWN attempt goes through the Passport rate limiter
//! ([`crate::passport::rate_limit`]): failures count against the (account, source) pair, the
//! source and the account; an attempt from a source that has failed too often is refused with
//! the same `911` without being checked, and one on an account under attack is checked after
//! a short delay (never refused: the owner always gets in). The log says at info level which
//! account failed and why ([`LoginFailure`]: unknown account, wrong secret, revoked token,
//! ticket not accepted; or rate-limited), never the secret.

use std::fmt::Write as _;

use bytes::Bytes;
use rand::Rng as _;
use relive_msnp::client::{Cvr, Usr, Ver};
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{AuthMethod, ErrorCode, FriendlyName, Token, TrId};
use relive_msnp::version::{Capabilities, ProfileGeneration};
use tracing::{Span, info, warn};

use super::{Auth, NsService, User};
use crate::metrics::{LoginMethod, LoginResult};
use crate::net::conn::Replies;
use crate::passport::LoginFailure;
use crate::passport::rate_limit::Ceiling;
use crate::passport::tickets::{TicketError, t_part};
use crate::secret::Secret as StoreSecret;
use crate::store::TokenId;
use crate::store::tokens::TokenCheck;
use crate::store::{Account, LoginState};

/// Lines about logins the limiter refused: a few a minute, the rest counted in the next one.
static REFUSAL_LOG: relive_relay::limits::LogBudget =
    relive_relay::limits::LogBudget::new(10, std::time::Duration::from_secs(60));

/// `Hotmail`, the sender of the profile message.
fn hotmail() -> Token {
    #[allow(clippy::unwrap_used, reason = "a constant, valid token")]
    Token::parse("Hotmail").unwrap()
}

/// A fresh MD5 challenge shaped like the original service's (`<digits>.<digits>`).
fn new_challenge() -> String {
    let mut rng = rand::rng();
    format!(
        "{}.{:09}",
        rng.random_range(1_000_000_000u32..4_000_000_000),
        rng.random_range(0..1_000_000_000u32)
    )
}

/// The `USR TWN S` parameters: the keys libpurple re-emits (PROTOCOL.md §2.3.3), the same for
/// every handle so the reply does not tell whether the account exists.
fn twn_params() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let tpf: String = (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    format!(
        "lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct={now},kpp=1,kv=5,\
         ver=2.1.0173.1,tpf={tpf}"
    )
}

/// A token built from our own text (never client input); `fallback` if it somehow is not one.
fn token(text: &str, fallback: &str) -> Token {
    Token::parse(text).unwrap_or_else(|_| {
        #[allow(clippy::unwrap_used, reason = "callers pass constant, valid fallbacks")]
        Token::parse(fallback).unwrap()
    })
}

impl NsService {
    pub(super) fn handle_ver(&mut self, ver: &Ver, caps: &Capabilities, out: &mut Replies) {
        out.push(ServerMessage::Ver {
            trid: ver.trid,
            versions: vec![caps.version],
            // MSNP8+ clients expect the CVR0 echo (transcripts 10, 12); older ones got the bare
            // dialect (transcripts 01, 02).
            cvr0: ver.offers_cvr0() && caps.cvr_before_usr,
        });
    }

    pub(super) fn handle_cvr(&mut self, cvr: &Cvr, out: &mut Replies) {
        let base = self.ctx.http.website();
        let v = cvr.client_version.clone();
        self.client_version = Some(v.as_str().to_owned());
        if let Some(user) = &self.user {
            self.ctx
                .devices
                .set_client(&user.handle, self.outbox.id(), v.as_str());
        }
        out.push(ServerMessage::Cvr {
            trid: cvr.trid,
            // The client's own version in every slot, so it is never told to upgrade.
            latest: v.clone(),
            recommended: v.clone(),
            minimum: v,
            download_url: token(&format!("{base}/download"), "http://127.0.0.1/"),
            info_url: token(&format!("{base}/"), "http://127.0.0.1/"),
        });
    }

    pub(super) async fn handle_usr(&mut self, usr: Usr, caps: &Capabilities, out: &mut Replies) {
        match usr {
            Usr::Initial {
                trid,
                method,
                handle,
            } => {
                if let Some(referral) = self.referral(trid, &handle) {
                    out.push(referral);
                    return out.close();
                }
                match method {
                    AuthMethod::Md5 => {
                        let challenge = new_challenge();
                        out.push(ServerMessage::UsrChallenge {
                            trid,
                            method,
                            challenge: Some(token(&challenge, "0.0")),
                        });
                        self.auth = Auth::Md5 { handle, challenge };
                    }
                    AuthMethod::Ctp => {
                        out.push(ServerMessage::UsrChallenge {
                            trid,
                            method,
                            challenge: None,
                        });
                        self.auth = Auth::Ctp { handle };
                    }
                    AuthMethod::Twn => {
                        out.push(ServerMessage::UsrChallenge {
                            trid,
                            method,
                            challenge: Some(token(&twn_params(), "lc=1033,id=507,tw=40")),
                        });
                        self.auth = Auth::Twn { handle };
                    }
                }
            }
            Usr::Subsequent {
                trid,
                method: _,
                response,
            } => {
                let auth = std::mem::replace(&mut self.auth, Auth::Idle);
                let handle = match &auth {
                    Auth::Md5 { handle, .. } | Auth::Ctp { handle } | Auth::Twn { handle } => {
                        handle.clone()
                    }
                    Auth::Idle => return Self::fail(trid, out),
                };
                let method = match &auth {
                    Auth::Md5 { .. } | Auth::Idle => LoginMethod::Md5,
                    Auth::Ctp { .. } => LoginMethod::Ctp,
                    Auth::Twn { .. } => LoginMethod::Twn,
                };
                let limiter = std::sync::Arc::clone(self.ctx.passport.rate_limiter());
                let passport = self.ctx.passport.clone();
                let twn = matches!(auth, Auth::Twn { .. });
                // The ticket is what precedes the first comma (module doc).
                let ticket = response.as_str().split(',').next().unwrap_or_default();
                let ticket_t = twn.then(|| t_part(ticket).map(str::to_owned)).flatten();
                let verify = async {
                    match auth {
                        Auth::Md5 { handle, challenge } => {
                            let check = TokenCheck::Md5 {
                                challenge,
                                response: response.as_str().to_owned(),
                            };
                            self.verify(&handle, check).await
                        }
                        Auth::Ctp { handle } => {
                            let check =
                                TokenCheck::Plain(StoreSecret::new(response.as_str().to_owned()));
                            self.verify(&handle, check).await
                        }
                        Auth::Twn { handle } => self.verify_ticket(&handle, ticket).await,
                        Auth::Idle => Ok(Err(LoginFailure::WrongSecret)),
                    }
                };
                let now = move || passport.now();
                let ip = self.peer.ip();
                // A TWN ticket comes from a login2.srf login that already waited out any
                // account delay.
                let ceiling = if twn {
                    Ceiling::AlreadyWaited
                } else {
                    Ceiling::Wait
                };
                let verified = limiter
                    .attempt(handle.as_str(), ip, &now, ceiling, verify)
                    .await;
                let logins = self.ctx.passport.logins();
                match verified {
                    Ok(Ok(Ok((state, token)))) => {
                        logins.record(method, LoginResult::Ok);
                        // What waits for the user: read before the (synchronous) login.
                        let waiting = self.waiting_for(state.account.id).await;
                        let member_id = state.account.member_id;
                        self.logged_in(trid, state, token, ticket_t.as_deref(), caps, out);
                        self.deliver_waiting(waiting, member_id, caps, out).await;
                    }
                    Ok(Ok(Err(why))) => {
                        logins.record(method, LoginResult::Failed);
                        info!(handle = handle.as_str(), reason = %why, "login failed");
                        Self::fail(trid, out);
                    }
                    Ok(Err(error)) => {
                        logins.record(method, LoginResult::Error);
                        warn!(%error, "login check failed");
                        Self::fail(trid, out);
                    }
                    Err(refused) => {
                        logins.record(method, LoginResult::Refused);
                        if let Some(suppressed) = REFUSAL_LOG.take(std::time::Instant::now()) {
                            info!(
                                handle = handle.as_str(),
                                reason = %"rate-limited",
                                %refused,
                                suppressed,
                                "login failed"
                            );
                        }
                        Self::fail(trid, out);
                    }
                }
            }
            Usr::Switchboard { trid, .. } => Self::fail(trid, out),
        }
    }

    /// `911` and close.
    fn fail(trid: TrId, out: &mut Replies) {
        out.push(ServerMessage::error(ErrorCode::AuthenticationFailed, trid));
        out.close();
    }

    /// Looks the account up, runs `check` against its tokens and, if one matches, reads the
    /// contacts' list bits, in one store round trip. For an unknown account the same check
    /// runs against an id no token belongs to, so the work done is the same.
    async fn verify(
        &self,
        handle: &relive_msnp::types::Passport,
        check: TokenCheck,
    ) -> Result<Result<(LoginState, Option<TokenId>), LoginFailure>, crate::store::StoreError> {
        let found = self.ctx.store.token_login(handle, check, true).await?;
        Ok(match found {
            None => Err(LoginFailure::UnknownAccount),
            Some(login) if login.token.is_some() => Ok((
                LoginState {
                    account: login.account,
                    contacts: login.contacts,
                },
                login.token,
            )),
            Some(login) if login.revoked => Err(LoginFailure::RevokedToken),
            Some(_) => Err(LoginFailure::WrongSecret),
        })
    }

    /// Consumes a Passport ticket for `handle` and loads the account it was issued for.
    async fn verify_ticket(
        &self,
        handle: &relive_msnp::types::Passport,
        ticket: &str,
    ) -> Result<Result<(LoginState, Option<TokenId>), LoginFailure>, crate::store::StoreError> {
        let (id, token) = match self
            .ctx
            .passport
            .consume_ticket_anywhere(ticket, handle)
            .await
        {
            Ok(found) => found,
            Err(error) => return Ok(Err(error.into())),
        };
        Ok(match self.ctx.store.login_state(handle).await? {
            None => Err(LoginFailure::UnknownAccount),
            Some(state) if state.account.id == id => Ok((state, token)),
            Some(_) => Err(TicketError::WrongAccount.into()),
        })
    }

    /// `XFR NS` when a separate NS host is configured (PROTOCOL.md §1.2), or on a cluster's
    /// dispatch node (role `ds` without `ns`): to the live NS node the handle hashes to
    /// ([`crate::cluster::Cluster::pick_ns`]); with none live, `600` (server busy) and a close.
    fn referral(&self, trid: TrId, handle: &relive_msnp::types::Passport) -> Option<ServerMessage> {
        let s = &self.ctx.settings;
        let current = self
            .ctx
            .ns_address
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(cluster) = &self.ctx.cluster
            && cluster.settings().ds
            && !cluster.settings().ns
        {
            return Some(match cluster.pick_ns(handle, current.as_str()) {
                Some(addr) => ServerMessage::XfrNs {
                    trid,
                    addr: token(&addr, "127.0.0.1:1863"),
                    current,
                },
                None => ServerMessage::error(ErrorCode::ServerBusy, trid),
            });
        }
        if s.ns_referral_host == s.public_host {
            return None;
        }
        let port = current
            .as_str()
            .rsplit_once(':')
            .map_or("1863", |(_, p)| p)
            .to_owned();
        Some(ServerMessage::XfrNs {
            trid,
            addr: token(&format!("{}:{port}", s.ns_referral_host), "127.0.0.1:1863"),
            current,
        })
    }

    /// The credentials were right: register with the hub (an older session gets `OUT OTH`),
    /// answer `USR OK` and send the profile.
    fn logged_in(
        &mut self,
        trid: TrId,
        state: LoginState,
        token: Option<TokenId>,
        ticket_t: Option<&str>,
        caps: &Capabilities,
        out: &mut Replies,
    ) {
        let LoginState { account, contacts } = state;
        let handle = account.email.clone();
        Span::current().record("user", handle.as_str());
        info!(user = handle.as_str(), "logged in");
        self.ctx.hub.register(
            &handle,
            self.outbox.clone(),
            account.friendly_name.clone(),
            account.blp,
            &contacts,
        );
        self.ctx.hub.set_dialect(&handle, *caps);
        self.ctx.devices.logged_in(
            &self.ctx.store,
            &handle,
            self.outbox.id(),
            token,
            self.peer.ip(),
        );
        if let Some(version) = &self.client_version {
            self.ctx
                .devices
                .set_client(&handle, self.outbox.id(), version);
        }
        self.registered = true;
        self.session.login_succeeded();
        // MSPAuth: the ticket's `t` part after a Passport login, random otherwise; a token
        // login leaves an inbox sign-in grant for it (crate::mailbox).
        let auth: String = ticket_t.map_or_else(
            || {
                (0..16)
                    .map(|_| format!("{:02x}", rand::random::<u8>()))
                    .collect()
            },
            str::to_owned,
        );
        if let Some(token) = token
            && caps.profile >= ProfileGeneration::PassportFields
        {
            self.ctx
                .web
                .inbox()
                .issue(&auth, account.id, &handle, token, self.outbox.id());
        }
        out.push(ServerMessage::UsrOk {
            trid,
            handle: handle.clone(),
            name: account.friendly_name.clone(),
            verified: true,
        });
        if caps.sbs {
            out.push(ServerMessage::Sbs);
        }
        out.push(ServerMessage::Msg {
            from: hotmail(),
            name: FriendlyName::from_display("Hotmail")
                .unwrap_or_else(|_| FriendlyName::from(handle.clone())),
            payload: self.profile(&account, &auth, caps),
        });
        self.user = Some(User {
            id: account.id,
            handle,
            name: account.friendly_name,
        });
    }

    /// The `text/x-msmsgsprofile` payload for the dialect (PROTOCOL.md §2.4) with `auth` as
    /// its `MSPAuth`.
    fn profile(&self, account: &Account, auth: &str, caps: &Capabilities) -> Bytes {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut p = String::from(
            "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\n",
        );
        let _ = write!(p, "LoginTime: {now}\r\n");
        if caps.profile >= ProfileGeneration::PassportFields {
            let id = account.member_id;
            let _ = write!(
                p,
                "EmailEnabled: 1\r\nMemberIdHigh: {}\r\nMemberIdLow: {}\r\n\
                 lang_preference: 1033\r\npreferredEmail: {}\r\ncountry: US\r\n\
                 PostalCode: \r\nGender: \r\nKid: 0\r\nAge: \r\nBDayPre: \r\nBirthday: \r\n\
                 Wallet: \r\nFlags: 1027\r\nsid: 507\r\nkv: 5\r\nMSPAuth: {auth}\r\n",
                id >> 32,
                id & 0xffff_ffff,
                account.email,
            );
        }
        if caps.profile >= ProfileGeneration::ClientAddress {
            let port = self.peer.port();
            let swapped = (port & 0xff) * 256 + ((port & 0xff00) >> 8);
            let _ = write!(
                p,
                "ClientIP: {}\r\nClientPort: {swapped}\r\n",
                self.peer.ip()
            );
        }
        if caps.profile >= ProfileGeneration::Abch {
            p.push_str("ABCHMigrated: 1\r\n");
        }
        p.push_str("\r\n");
        Bytes::from(p)
    }
}
