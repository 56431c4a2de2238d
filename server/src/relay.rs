//! The embedded relay (DESIGN.md "Relay"): the `[relay]` settings, the per-server relay state
//! the switchboard's fan-out uses (operator [`Policy`], the [`PortPool`], the [`AgentHub`]),
//! and agent authentication against the store's access tokens.
//!
//! ```text
//! relive.toml [relay] ──validate──▶ RelaySettings ──Relay::start (in run_with_relay)──▶ Relay
//!                                                                                       │
//! SB MSG fan-out ──RoomRelay::rewrite(policy, pool, hop)──────────────────────────────────┘
//! agent ──QUIC Hello("<handle> <token>")──▶ AgentHub ──StoreAuth──▶ Store::verify_plain
//! ```
//!
//! The relay is on by default. Its public address is `[relay] public_ip`, else `public_host`
//! when that is an IP address; with neither, the relay is off (logged once at start).

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;

use ipnet::IpNet;
use relive_msnp::types::Passport;
use relive_relay::agent_hub::{AgentHub, AuthFuture, Authenticate};
use relive_relay::dial::Dial;
use relive_relay::ports::{PoolConfig, PortPool};
use relive_relay::quic;
use relive_relay::rewrite::{Allocate, Policy};
use serde::Deserialize;

use crate::config::ConfigError;
use crate::secret::Secret;
use crate::store::Store;

/// The relay library itself, for programs that embed a companion agent next to the server
/// (the NAT end-to-end tests); see [`trust_anchors`].
pub use relive_relay as engine;

/// The certificates in `pem` (the server's `relive-ca.crt`), for an agent's
/// [`quic::client_config`]. Unparsable input gives none.
#[must_use]
pub fn trust_anchors(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default()
}

/// Default first port of the relay's TCP allocation range.
pub const DEFAULT_PORT_MIN: u16 = 6891;
/// Default last port of the relay's TCP allocation range.
pub const DEFAULT_PORT_MAX: u16 = 6990;
/// Default QUIC (companion agent) listen address.
pub const DEFAULT_QUIC: &str = "0.0.0.0:1865";
/// Most VPN ranges accepted in the configuration.
const MAX_VPN_RANGES: usize = 64;
/// Longest `handle token` string an agent may present (handles are short, tokens shorter).
const MAX_AGENT_CREDENTIAL: usize = 512;

/// The raw `[relay]` table of `relive.toml`. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Rewrite invitations and relay transfers at all.
    pub enabled: bool,
    /// The relay's public IP written into invitations (default: `public_host` if an IP).
    pub public_ip: Option<IpAddr>,
    /// Address the allocation ports bind on.
    pub bind_ip: IpAddr,
    /// First port of the allocation range (`0` with `port_max = 0`: the OS chooses).
    pub port_min: u16,
    /// Last port of the allocation range.
    pub port_max: u16,
    /// VPN ranges (CIDR) whose addresses peers reach each other on.
    pub vpn_ranges: Vec<String>,
    /// QUIC listen address for companion agents (UDP).
    pub quic: SocketAddr,
    /// Concurrent allocations per user (a rendezvous holds two).
    pub per_user_limit: usize,
    /// Allow MSNFTP rendezvous (both peers dial the relay; P2P.md §6.1).
    pub msnftp_rendezvous: bool,
    /// Make MSN 6+ clients use the switchboard when no direct connection can work.
    pub slp_fallback: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            public_ip: None,
            bind_ip: IpAddr::from([0, 0, 0, 0]),
            port_min: DEFAULT_PORT_MIN,
            port_max: DEFAULT_PORT_MAX,
            vpn_ranges: vec!["25.0.0.0/8".to_owned(), "26.0.0.0/8".to_owned()],
            quic: SocketAddr::from(([0, 0, 0, 0], 1865)),
            per_user_limit: relive_relay::ports::DEFAULT_PER_USER_LIMIT,
            // Experimental upstream (unverified against real MSN 5.0 clients): opt-in.
            msnftp_rendezvous: false,
            slp_fallback: true,
        }
    }
}

/// Validated relay settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Rewrite and relay at all (`false` also when no public IP is known).
    pub enabled: bool,
    /// The relay's public IP, if known.
    pub public_ip: Option<IpAddr>,
    /// Bind address of allocation ports.
    pub bind_ip: IpAddr,
    /// Allocation port range.
    pub ports: RangeInclusive<u16>,
    /// VPN ranges.
    pub vpn_ranges: Vec<IpNet>,
    /// QUIC listen address.
    pub quic: SocketAddr,
    /// Allocations per user.
    pub per_user_limit: usize,
    /// MSNFTP rendezvous allowed.
    pub msnftp_rendezvous: bool,
    /// MSNSLP switchboard fallback.
    pub slp_fallback: bool,
}

impl RelayConfig {
    /// Validates the table; `public_host` is the server's advertised host.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the bad key.
    pub fn validate(self, public_host: &str) -> Result<RelaySettings, ConfigError> {
        let invalid = |key, reason| ConfigError::Invalid { key, reason };
        if self.port_min > self.port_max || (self.port_min == 0 && self.port_max != 0) {
            return Err(invalid(
                "relay.port_min",
                "port_min must be 1..=port_max (or both 0 for OS-chosen ports)",
            ));
        }
        if !(1..=1000).contains(&self.per_user_limit) {
            return Err(invalid("relay.per_user_limit", "must be 1..=1000"));
        }
        if self.vpn_ranges.len() > MAX_VPN_RANGES {
            return Err(invalid("relay.vpn_ranges", "at most 64 ranges"));
        }
        let vpn_ranges = self
            .vpn_ranges
            .iter()
            .map(|r| r.trim().parse::<IpNet>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                invalid(
                    "relay.vpn_ranges",
                    "each range must be CIDR, e.g. 25.0.0.0/8",
                )
            })?;
        let public_ip = self.public_ip.or_else(|| public_host.parse().ok());
        Ok(RelaySettings {
            enabled: self.enabled,
            public_ip,
            bind_ip: self.bind_ip,
            ports: self.port_min..=self.port_max,
            vpn_ranges,
            quic: self.quic,
            per_user_limit: self.per_user_limit,
            msnftp_rendezvous: self.msnftp_rendezvous,
            slp_fallback: self.slp_fallback,
        })
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The port pool configuration was refused.
    #[error("relay port pool")]
    Pool(#[from] relive_relay::ports::PoolError),
    /// The QUIC endpoint could not be set up.
    #[error("relay QUIC endpoint")]
    Quic(#[from] quic::QuicError),
}

/// The running relay as the switchboard uses it.
#[derive(Debug, Clone)]
pub struct Relay {
    /// Operator policy for the rewriter.
    pub policy: Policy,
    /// The allocation ports.
    pub pool: PortPool,
    /// Connected companion agents (none without a QUIC socket).
    pub agents: Option<AgentHub>,
}

impl Relay {
    /// Starts the relay for `settings` (must be inside a tokio runtime): the port pool and,
    /// with `quic_socket`, the agent endpoint (its task ends when `shutdown` is cancelled).
    /// The endpoint presents the server certificate of `data_dir` (so agents trust
    /// `relive-ca.crt`), or a self-signed one for `public_host` when there is none.
    /// `Ok(None)` when the relay is disabled or has no public IP.
    ///
    /// # Errors
    ///
    /// [`RelayError`] when the pool or the QUIC endpoint cannot be set up.
    pub fn start(
        settings: &RelaySettings,
        data_dir: &std::path::Path,
        public_host: &str,
        store: &Store,
        quic_socket: Option<std::net::UdpSocket>,
        tasks: &tokio_util::task::TaskTracker,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<Option<Self>, RelayError> {
        if !settings.enabled {
            tracing::info!("relay disabled by configuration");
            return Ok(None);
        }
        let Some(public_ip) = settings.public_ip else {
            tracing::warn!("relay off: set [relay] public_ip (public_host is not an IP address)");
            return Ok(None);
        };
        let agents = match quic_socket {
            Some(socket) => {
                let identity = identity(data_dir, public_host)?;
                let endpoint = quic::server_endpoint(quic::server_config(identity)?, socket)?;
                let hub = AgentHub::new(Arc::new(StoreAuth {
                    store: store.clone(),
                }));
                let (run, stop) = (hub.clone(), shutdown.clone());
                tasks.spawn(async move {
                    tokio::select! {
                        () = run.run(endpoint.clone()) => {}
                        () = stop.cancelled() => endpoint.close(0u32.into(), b"shutdown"),
                    }
                });
                Some(hub)
            }
            None => None,
        };
        let dial = agents.clone().map(|h| Arc::new(h) as Arc<dyn Dial>);
        let mut pool_config = PoolConfig::new(settings.bind_ip, settings.ports.clone());
        pool_config.per_user_limit = settings.per_user_limit;
        let pool = PortPool::new(pool_config, dial)?;
        let mut policy = Policy::new(public_ip);
        policy.vpn_ranges.clone_from(&settings.vpn_ranges);
        policy.msnftp_rendezvous = settings.msnftp_rendezvous;
        policy.slp_fallback = settings.slp_fallback;
        tracing::info!(%public_ip, agents = agents.is_some(), "relay on");
        Ok(Some(Self {
            policy,
            pool,
            agents,
        }))
    }

    /// Whether `handle`'s companion agent is connected.
    #[must_use]
    pub fn agent_connected(&self, handle: &str) -> bool {
        self.agents.as_ref().is_some_and(|a| a.connected(handle))
    }

    /// The allocator the rewriter uses.
    #[must_use]
    pub fn allocator(&self) -> &dyn Allocate {
        &self.pool
    }
}

/// The server's certificate chain and key from `data_dir` (see [`crate::tls::CertPaths`]),
/// else a fresh self-signed certificate for `public_host`.
fn identity(data_dir: &std::path::Path, public_host: &str) -> Result<quic::Identity, RelayError> {
    let paths = crate::tls::CertPaths::in_data_dir(data_dir);
    let load = || -> Option<quic::Identity> {
        let mut certs = Vec::new();
        for path in [&paths.server_cert, &paths.ca_cert] {
            let text = std::fs::read(path).ok()?;
            certs.extend(
                rustls_pemfile::certs(&mut text.as_slice())
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?,
            );
        }
        let key_text = std::fs::read(&paths.server_key).ok()?;
        let key = rustls_pemfile::private_key(&mut key_text.as_slice()).ok()??;
        Some(quic::Identity { certs, key })
    };
    match load() {
        Some(identity) => Ok(identity),
        None => {
            tracing::info!("no server certificate in the data directory; relay QUIC self-signed");
            Ok(quic::Identity::self_signed(&[public_host.to_owned()])?)
        }
    }
}

/// Authenticates companion agents against the store: the agent's token field is
/// `<handle> <access token>`, checked with [`Store::verify_plain`] on that account.
#[derive(Debug, Clone)]
pub struct StoreAuth {
    store: Store,
}

impl StoreAuth {
    /// An authenticator over `store`.
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Authenticate for StoreAuth {
    fn authenticate(&self, credential: &str) -> AuthFuture {
        let store = self.store.clone();
        let parsed = (credential.len() <= MAX_AGENT_CREDENTIAL)
            .then(|| credential.split_once(' '))
            .flatten()
            .and_then(|(handle, token)| {
                Some((Passport::parse(handle).ok()?, Secret::new(token.to_owned())))
            });
        Box::pin(async move {
            let (handle, token) = parsed?;
            let account = store.account(&handle).await.ok()??;
            store.verify_plain(account.id, &token).await.ok()??;
            Some(handle.as_str().to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{account, context};

    #[test]
    fn defaults_and_bad_values() {
        let s = RelayConfig::default().validate("203.0.113.5").unwrap();
        assert!(s.enabled);
        assert_eq!(s.public_ip, Some("203.0.113.5".parse().unwrap()));
        assert_eq!(s.ports, 6891..=6990);
        assert_eq!(s.vpn_ranges.len(), 2);
        assert_eq!(s.quic.port(), 1865);
        // A host name gives no relay address unless public_ip is set.
        let s = RelayConfig::default().validate("msn.example").unwrap();
        assert_eq!(s.public_ip, None);
        let reversed = RelayConfig {
            port_min: 7000,
            port_max: 6999,
            ..RelayConfig::default()
        };
        assert!(reversed.validate("msn.example").is_err());
        let bad_range = RelayConfig {
            vpn_ranges: vec!["25.0.0.0/99".to_owned()],
            ..RelayConfig::default()
        };
        assert!(bad_range.validate("msn.example").is_err());
        let parsed: RelayConfig = toml::from_str("port_min = 0\nport_max = 0\n").unwrap();
        assert_eq!(parsed.validate("127.0.0.1").unwrap().ports, 0..=0);
    }

    #[tokio::test]
    async fn agents_authenticate_with_handle_and_access_token() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), |_| {}).await;
        let token = account(&ctx, "alice@example.com", "Alice").await;
        account(&ctx, "bob@example.com", "Bob").await;
        let auth = StoreAuth::new(ctx.store.clone());
        assert_eq!(
            auth.authenticate(&format!("alice@example.com {token}"))
                .await,
            Some("alice@example.com".to_owned())
        );
        // Someone else's token, a bare token, an unknown account, junk: refused.
        assert_eq!(
            auth.authenticate(&format!("bob@example.com {token}")).await,
            None
        );
        assert_eq!(auth.authenticate(&token).await, None);
        assert_eq!(
            auth.authenticate(&format!("carol@example.com {token}"))
                .await,
            None
        );
        assert_eq!(auth.authenticate(&"x".repeat(4096)).await, None);
    }
}
