//! Which access token (device) and client version each logged-in session uses, so that
//! revoking a token ends exactly the session it opened, and the admin page can show what
//! everyone runs.
//!
//! The NS tells this registry at `USR OK` ([`Devices::logged_in`]) and at `CVR`
//! ([`Devices::set_client`]); the hub stays the authority on who is online (an entry whose
//! connection is no longer the user's session is ignored by [`crate::hub::Hub::kick`]). One
//! entry per handle at most, so the map is bounded by the number of accounts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use relive_msnp::types::{OutReason, Passport};

use crate::hub::{ConnId, Hub};
use crate::store::{Store, TokenId};

/// One session's device facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The session's connection.
    pub conn: ConnId,
    /// The token it logged in with (`None`: the password through Passport).
    pub token: Option<TokenId>,
    /// The client version from `CVR`, if sent.
    pub client: Option<String>,
}

/// The registry. Shared behind an `Arc` in [`crate::Context`].
#[derive(Debug, Default)]
pub struct Devices {
    sessions: Mutex<HashMap<Passport, Device>>,
}

/// The class of an address, as the token list shows it (never the address itself).
#[must_use]
pub fn address_class(ip: IpAddr) -> &'static str {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => "loopback",
        IpAddr::V4(v4) if v4.is_private() || v4.is_link_local() => "private",
        // 100.64.0.0/10: carrier-grade NAT and VPNs such as Tailscale.
        IpAddr::V4(v4) if v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 => {
            "shared (CGNAT/VPN)"
        }
        IpAddr::V6(v6) if v6.is_loopback() => "loopback",
        IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => "private",
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => "private",
        _ => "public",
    }
}

impl Devices {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Passport, Device>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `user` logged in on connection `conn` with `token` from `ip`: records the session and,
    /// in the background, the token's address class.
    pub fn logged_in(
        &self,
        store: &Store,
        user: &Passport,
        conn: ConnId,
        token: Option<TokenId>,
        ip: IpAddr,
    ) {
        self.lock().insert(
            user.clone(),
            Device {
                conn,
                token,
                client: None,
            },
        );
        if let Some(token) = token {
            let store = store.clone();
            let class = address_class(ip);
            tokio::spawn(async move {
                if let Err(error) = store.note_token_address(token, class).await {
                    tracing::warn!(%error, "cannot record a token's address class");
                }
            });
        }
    }

    /// The client version `user`'s session `conn` sent in `CVR`.
    pub fn set_client(&self, user: &Passport, conn: ConnId, version: &str) {
        if let Some(device) = self.lock().get_mut(user).filter(|d| d.conn == conn) {
            device.client = Some(version.chars().take(32).collect());
        }
    }

    /// The device facts of `user`'s latest session.
    #[must_use]
    pub fn get(&self, user: &Passport) -> Option<Device> {
        self.lock().get(user).cloned()
    }

    /// Token `token` of `user` was revoked: the session it opened, if still online, gets
    /// `OUT OTH` and closes. Returns whether a session was ended here, or (cluster mode)
    /// whether the revocation was handed to the node holding `user`'s session, which ends
    /// it if that session logged in with `token` ([`Self::revoked_here`] there).
    pub fn revoked(&self, hub: &Hub, user: &Passport, token: TokenId) -> bool {
        if self.revoked_here(hub, user, token) {
            return true;
        }
        hub.conn_of(user).is_some_and(|conn| {
            conn.is_remote()
                && hub.forward(crate::hub::HubOp::Revoke {
                    user: user.clone(),
                    conn,
                    token: token.0,
                })
        })
    }

    /// [`Self::revoked`] for this node's own session only.
    pub fn revoked_here(&self, hub: &Hub, user: &Passport, token: TokenId) -> bool {
        let conn = self
            .lock()
            .get(user)
            .filter(|d| d.token == Some(token) && !d.conn.is_remote())
            .map(|d| d.conn);
        conn.is_some_and(|conn| hub.kick(user, Some(conn), OutReason::Oth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        let class = |s: &str| address_class(s.parse().unwrap());
        assert_eq!(class("127.0.0.1"), "loopback");
        assert_eq!(class("::1"), "loopback");
        assert_eq!(class("192.168.1.5"), "private");
        assert_eq!(class("10.0.0.1"), "private");
        assert_eq!(class("100.101.1.1"), "shared (CGNAT/VPN)");
        assert_eq!(class("::ffff:10.1.2.3"), "private");
        assert_eq!(class("fd00::1"), "private");
        assert_eq!(class("8.8.8.8"), "public");
        assert_eq!(class("2001:db8::1"), "public");
    }
}
