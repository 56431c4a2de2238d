//! Switchboard cookies that any node can check: `XFR SB` on one node, `USR` on another.
//!
//! A cookie is `<expiry>.<nonce>.<mac>`: the Unix second it expires, 64 random bits, and the
//! first 12 bytes (hex) of HMAC-SHA256 over the SB node's id, the user's handle, the expiry and
//! the nonce. The key is derived from the network's shared `secret.key` (HMAC of a fixed label
//! and the cluster name), so every node of one network has it and nothing else is configured.
//! A cookie is bound to one user and one SB node (a session lives on one SB node) and is
//! single-use: that node remembers what it redeemed until the expiry ([`CookieKey::redeem`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng as _;
use relive_msnp::types::{Passport, Secret};
use ring::hmac;

/// How long a signed cookie is valid (the same as a local one).
pub const LIFETIME_SECS: u64 = crate::switchboard::COOKIE_LIFETIME.as_secs();
/// Most redeemed cookies remembered (beyond it the set is purged of expired ones first).
const MAX_REDEEMED: usize = 200_000;

/// The signing key and this node's set of redeemed cookies.
pub struct CookieKey {
    key: hmac::Key,
    redeemed: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(***)")
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl CookieKey {
    /// The key of network `cluster`, derived from the shared server key.
    #[must_use]
    pub fn derive(server: &crate::secret::ServerKey, cluster: &str) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, server.as_bytes());
        let tag = hmac::sign(&root, format!("relive sb cookie\u{0}{cluster}").as_bytes());
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref()),
            redeemed: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, node: &str, user: &Passport, expiry: u64, nonce: u64) -> String {
        let tag = hmac::sign(
            &self.key,
            format!("{node}\u{0}{}\u{0}{expiry}\u{0}{nonce}", user.as_str()).as_bytes(),
        );
        hex::encode(&tag.as_ref()[..12])
    }

    /// A cookie for `user` to open a room on SB node `node`.
    #[must_use]
    pub fn issue(&self, node: &str, user: &Passport) -> Secret {
        let expiry = now_secs() + LIFETIME_SECS;
        let nonce: u64 = rand::rng().random();
        let text = format!("{expiry}.{nonce}.{}", self.mac(node, user, expiry, nonce));
        #[allow(clippy::unwrap_used, reason = "digits, dots and hex are a valid token")]
        Secret::parse(&text).unwrap()
    }

    /// Checks `cookie` for `user` on this SB node `node`: signed for both, not expired, not
    /// redeemed before (on this node, where it can only be redeemed).
    #[must_use]
    pub fn redeem(&self, node: &str, user: &Passport, cookie: &str) -> bool {
        let mut parts = cookie.split('.');
        let (Some(expiry), Some(nonce), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let (Ok(expiry), Ok(nonce)) = (expiry.parse::<u64>(), nonce.parse::<u64>()) else {
            return false;
        };
        let now = now_secs();
        if expiry <= now || expiry > now + LIFETIME_SECS {
            return false;
        }
        let expected = self.mac(node, user, expiry, nonce);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            mac.as_bytes(),
        )) {
            return false;
        }
        let mut redeemed = self
            .redeemed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if redeemed.len() >= MAX_REDEEMED {
            redeemed.retain(|_, e| *e > now);
        }
        redeemed.insert(cookie.to_owned(), expiry).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_works_once_for_its_user_on_its_node() {
        let key = CookieKey::derive(&crate::secret::ServerKey::from_bytes([7; 32]), "t");
        let alice = Passport::parse("alice@example.com").unwrap();
        let bob = Passport::parse("bob@example.com").unwrap();
        let cookie = key.issue("sb1", &alice);
        assert!(!key.redeem("sb2", &alice, cookie.as_str()));
        assert!(!key.redeem("sb1", &bob, cookie.as_str()));
        assert!(key.redeem("sb1", &alice, cookie.as_str()));
        assert!(!key.redeem("sb1", &alice, cookie.as_str()), "replayed");
        let other = CookieKey::derive(&crate::secret::ServerKey::from_bytes([8; 32]), "t");
        let forged = other.issue("sb1", &alice);
        assert!(!key.redeem("sb1", &alice, forged.as_str()));
        assert!(!key.redeem("sb1", &alice, "1.2.3"));
    }
}
