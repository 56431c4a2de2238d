//! The Messenger side of the local mailboxes (issue 18): the Hotmail notifications a session
//! gets, and the "go to my inbox" sign-in grants.
//!
//! # Notifications
//!
//! * At login, after the profile: the initial notification with the unread counts, when the
//!   mailbox has unread mail (the service sent it only then; HYP messages.php). With nothing
//!   unread the client's count starts at 0 anyway.
//! * A mail arriving for an online user: the new-mail notification (a toast in MSN 4–7).
//! * An unread Inbox mail read or deleted (on the website): the active-mail notification with
//!   `Src-Folder: ACTIVE` and `Message-Delta: 1` (MSNP3+), so clients count down.
//!
//! The payloads are built per dialect by [`relive_msnp::mail`], for the dialect the session
//! negotiated ([`Hub::dialect_of`]), and sent with [`Hub::send_to`].
//!
//! # Inbox sign-in
//!
//! The client turns the profile's `MSPAuth`, `sid`, `kv` and `LoginTime` into a form it posts
//! to the `URL` reply's login URL (this site's root):
//! `creds = md5hex(MSPAuth ‖ sl ‖ password)` with `sl` the seconds since `LoginTime`
//! (libpurple `url_cmd`; yellows111 MSNP3). Each login whose secret was an access token leaves
//! a grant here, keyed by SHA-256 of its `MSPAuth`: the account, the token and the highest `sl`
//! accepted so far. A sign-in is accepted when the grant exists (its session is still online
//! and it is at most [`GRANT_LIFETIME`] old), `username` is the grant's handle, `creds` matches
//! the token (constant time), and `sl` is greater than every `sl` accepted before — so a form
//! captured and posted again, or an older one, is refused. Password logins leave no grant (the
//! server cannot recover the password the hash is over): their owner signs in by hand.
//! Nothing here logs `MSPAuth`, `creds` or a secret.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use relive_msnp::mail::{self, MailCounts, MailLinks, NewMail};
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{FriendlyName, Token};
use relive_msnp::version::Capabilities;
use subtle::ConstantTimeEq as _;

use crate::hub::{ConnId, Hub};
use crate::store::{AccountId, Passport, TokenId};

/// How long after its login a grant can be used.
pub const GRANT_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Most grants kept (one per online token login; the oldest go first).
pub const MAX_GRANTS: usize = 100_000;
/// Largest `sl` accepted (about 300 years of seconds: anything above is not a clock).
pub const MAX_SL: u64 = 10_000_000_000;

/// The Inbox path (the `URL INBOX` redirect and `Inbox-URL`).
pub const INBOX_PATH: &str = "/mail";
/// The folder list path.
pub const FOLDERS_PATH: &str = "/mail/folders";
/// The compose path.
pub const COMPOSE_PATH: &str = "/mail/compose";

/// `Hotmail`, the sender of every mail notification.
fn hotmail() -> (Token, FriendlyName) {
    #[allow(clippy::unwrap_used, reason = "constant, valid values")]
    (
        Token::parse("Hotmail").unwrap(),
        FriendlyName::from_display("Hotmail").unwrap(),
    )
}

fn msg(payload: bytes::Bytes) -> ServerMessage {
    let (from, name) = hotmail();
    ServerMessage::Msg {
        from,
        name,
        payload,
    }
}

/// The site's root as the form action (`Post-URL`): `website` + `/`.
fn post_url(website: &str) -> String {
    format!("{website}/")
}

/// The initial mail notification for a session in dialect `caps`, or `None` when nothing is
/// unread (module doc).
#[must_use]
pub fn initial(caps: &Capabilities, counts: MailCounts, website: &str) -> Option<ServerMessage> {
    if counts == MailCounts::default() {
        return None;
    }
    let post = post_url(website);
    Some(msg(mail::initial_notification(
        caps.mail,
        counts,
        MailLinks {
            post_url: &post,
            inbox_url: INBOX_PATH,
            folders_url: FOLDERS_PATH,
        },
    )))
}

/// Tells `to`, if online, that mail `inbox_id` from `from_addr` (`from_name`) arrived.
pub fn notify_new_mail(
    hub: &Hub,
    website: &str,
    to: &Passport,
    from_addr: &str,
    from_name: &str,
    subject: &str,
    inbox_id: i64,
) -> bool {
    let Some(caps) = hub.dialect_of(to) else {
        return false;
    };
    let post = post_url(website);
    let message_url = format!("{INBOX_PATH}/{inbox_id}");
    let payload = mail::new_mail_notification(
        caps.mail,
        &NewMail {
            from_name,
            from_addr,
            subject,
            message_url: &message_url,
            post_url: &post,
        },
    );
    hub.send_to(to, msg(payload))
}

/// Tells `owner`, if online, that one unread Inbox mail stopped being one (read: moved to
/// `dest` [`mail::READ_FOLDER`]; deleted: [`mail::TRASH_FOLDER`]).
pub fn notify_unread_left(hub: &Hub, owner: &Passport, dest: &str) -> bool {
    let Some(caps) = hub.dialect_of(owner) else {
        return false;
    };
    mail::active_mail_notification(caps.mail, mail::INBOX_FOLDER, dest, 1)
        .is_some_and(|p| hub.send_to(owner, msg(p)))
}

/// Whether `creds` is `md5hex(auth ‖ sl ‖ secret)` (compared in constant time, case-blind).
#[must_use]
pub fn creds_match(auth: &str, sl: &str, secret: &str, creds: &str) -> bool {
    let want = relive_msnp::auth::md5_response(&format!("{auth}{sl}"), secret);
    creds.len() == want.len()
        && bool::from(want.as_bytes().ct_eq(creds.to_ascii_lowercase().as_bytes()))
}

/// `sl` as the client posts it: decimal digits only, at most [`MAX_SL`].
#[must_use]
pub fn parse_sl(sl: &str) -> Option<u64> {
    if sl.is_empty() || sl.len() > 11 || !sl.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    sl.parse().ok().filter(|n| *n <= MAX_SL)
}

fn key(auth: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, auth.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

/// One login's grant.
#[derive(Debug, Clone)]
struct Grant {
    account: AccountId,
    handle: Passport,
    token: TokenId,
    conn: ConnId,
    issued: Instant,
    /// The highest `sl` accepted.
    last_sl: Option<u64>,
}

/// What a grant allows, once its `creds` are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The account to sign in.
    pub account: AccountId,
    /// The token whose secret `creds` must be over.
    pub token: TokenId,
}

/// Why an inbox sign-in was refused (logged; the visitor sees the same page for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SigninRefusal {
    /// A field is missing or malformed.
    #[error("malformed form")]
    Malformed,
    /// No live grant for this `auth` (never issued, session over, expired).
    #[error("unknown or expired auth")]
    NoGrant,
    /// `username` is not the grant's account.
    #[error("username does not match")]
    WrongUser,
    /// `sl` is not above the last one accepted.
    #[error("replayed sl")]
    Replayed,
    /// `creds` does not match.
    #[error("wrong creds")]
    WrongCreds,
    /// The token was revoked since the login.
    #[error("token revoked")]
    Revoked,
}

/// The inbox sign-in grants of the sessions online now (module doc).
#[derive(Debug, Default)]
pub struct InboxGrants {
    grants: Mutex<HashMap<[u8; 32], Grant>>,
}

impl InboxGrants {
    /// No grants.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the grant of a login that got `auth` as its `MSPAuth`.
    pub fn issue(
        &self,
        auth: &str,
        account: AccountId,
        handle: &Passport,
        token: TokenId,
        conn: ConnId,
    ) {
        let mut grants = self.grants.lock().unwrap_or_else(PoisonError::into_inner);
        if grants.len() >= MAX_GRANTS {
            let now = Instant::now();
            grants.retain(|_, g| now.duration_since(g.issued) < GRANT_LIFETIME);
            if grants.len() >= MAX_GRANTS
                && let Some(oldest) = grants.iter().min_by_key(|(_, g)| g.issued).map(|(k, _)| *k)
            {
                grants.remove(&oldest);
            }
        }
        grants.insert(
            key(auth),
            Grant {
                account,
                handle: handle.clone(),
                token,
                conn,
                issued: Instant::now(),
                last_sl: None,
            },
        );
    }

    /// Drops the grants of session `conn` of `handle` (it logged out or was closed).
    pub fn end_session(&self, handle: &Passport, conn: ConnId) {
        self.grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, g| !(g.conn == conn && g.handle == *handle));
    }

    /// The first checks of a sign-in: a live grant for `auth`, for `username`, with `sl` above
    /// the last accepted one. The caller then checks `creds` against the token and, if they
    /// match, [`Self::accept`]s.
    ///
    /// # Errors
    ///
    /// [`SigninRefusal`].
    pub fn candidate(
        &self,
        auth: &str,
        username: &str,
        sl: u64,
    ) -> Result<Candidate, SigninRefusal> {
        let grants = self.grants.lock().unwrap_or_else(PoisonError::into_inner);
        let g = grants.get(&key(auth)).ok_or(SigninRefusal::NoGrant)?;
        if g.issued.elapsed() >= GRANT_LIFETIME {
            return Err(SigninRefusal::NoGrant);
        }
        if !g.handle.as_str().eq_ignore_ascii_case(username.trim()) {
            return Err(SigninRefusal::WrongUser);
        }
        if g.last_sl.is_some_and(|last| sl <= last) {
            return Err(SigninRefusal::Replayed);
        }
        Ok(Candidate {
            account: g.account,
            token: g.token,
        })
    }

    /// Records `sl` as used for `auth` if it is still above the last one (two posts of the
    /// same form racing: only one wins).
    ///
    /// # Errors
    ///
    /// [`SigninRefusal::Replayed`] when another post used it first; `NoGrant` if it is gone.
    pub fn accept(&self, auth: &str, sl: u64) -> Result<(), SigninRefusal> {
        let mut grants = self.grants.lock().unwrap_or_else(PoisonError::into_inner);
        let g = grants.get_mut(&key(auth)).ok_or(SigninRefusal::NoGrant)?;
        if g.last_sl.is_some_and(|last| sl <= last) {
            return Err(SigninRefusal::Replayed);
        }
        g.last_sl = Some(sl);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_are_md5_of_auth_sl_secret() {
        // md5("abc12tok"), computed with coreutils' md5sum.
        let creds = "4d4dae0cd1232995b384136168120ae6".to_owned();
        assert!(creds_match("abc", "12", "tok", &creds));
        assert!(creds_match("abc", "12", "tok", &creds.to_uppercase()));
        assert!(!creds_match("abc", "13", "tok", &creds));
        assert!(!creds_match("abc", "12", "tok2", &creds));
        assert!(!creds_match("abc", "12", "tok", &creds[1..]));
    }

    #[test]
    fn sl_is_digits_only_and_bounded() {
        assert_eq!(parse_sl("0"), Some(0));
        assert_eq!(parse_sl("42"), Some(42));
        for bad in ["", "-1", "+1", "1e3", " 1", "99999999999", "123456789012"] {
            assert_eq!(parse_sl(bad), None, "{bad}");
        }
    }

    #[test]
    fn grants_refuse_replays_other_users_and_ended_sessions() {
        let grants = InboxGrants::new();
        let alice = Passport::parse("alice@example.com").unwrap();
        grants.issue("AUTH", AccountId(1), &alice, TokenId(7), ConnId(3));
        assert_eq!(
            grants.candidate("nope", "alice@example.com", 1),
            Err(SigninRefusal::NoGrant)
        );
        assert_eq!(
            grants.candidate("AUTH", "bob@example.com", 1),
            Err(SigninRefusal::WrongUser)
        );
        let c = grants.candidate("AUTH", "Alice@Example.com", 5).unwrap();
        assert_eq!(
            c,
            Candidate {
                account: AccountId(1),
                token: TokenId(7)
            }
        );
        grants.accept("AUTH", 5).unwrap();
        assert_eq!(
            grants.candidate("AUTH", "alice@example.com", 5),
            Err(SigninRefusal::Replayed)
        );
        assert_eq!(
            grants.candidate("AUTH", "alice@example.com", 4),
            Err(SigninRefusal::Replayed)
        );
        assert_eq!(grants.accept("AUTH", 5), Err(SigninRefusal::Replayed));
        assert!(grants.candidate("AUTH", "alice@example.com", 6).is_ok());
        grants.end_session(&alice, ConnId(4));
        assert!(
            grants.candidate("AUTH", "alice@example.com", 6).is_ok(),
            "other session"
        );
        grants.end_session(&alice, ConnId(3));
        assert_eq!(
            grants.candidate("AUTH", "alice@example.com", 6),
            Err(SigninRefusal::NoGrant)
        );
    }

    #[test]
    fn no_initial_notification_without_unread_mail() {
        let caps = Capabilities::for_version(relive_msnp::version::ProtocolVersion::MSNP7);
        assert!(initial(&caps, MailCounts::default(), "http://h").is_none());
        let m = initial(
            &caps,
            MailCounts {
                inbox_unread: 2,
                folders_unread: 0,
            },
            "http://h",
        )
        .unwrap();
        let ServerMessage::Msg { from, payload, .. } = m else {
            panic!("not a MSG");
        };
        assert_eq!(from.as_str(), "Hotmail");
        assert!(
            std::str::from_utf8(&payload)
                .unwrap()
                .contains("Inbox-Unread: 2\r\nFolders-Unread: 0\r\n")
        );
    }
}
