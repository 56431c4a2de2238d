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
//!
//! # A standalone relay
//!
//! With `[relay] remote = "host:port"` the data plane runs in another process,
//! `relive-relay serve` (usually on another host), and this server drives it over the control
//! protocol (`relive_relay::control`): the rewriter still runs here, in the switchboard
//! fan-out, with a [`RemoteRelay`] as its allocator (ports leased ahead of time, armed
//! asynchronously); agents connect to the standalone relay, which asks this server to verify
//! their `<handle> <token>` ([`StoreAuth`], so tokens never leave the store) and reports
//! their presence. The connection is re-established with a backoff when it drops.
//!
//! ```text
//! [relay] remote = "relay.example:1865"          the relay's QUIC address
//!         remote_secret_file = "relay-control-secret"  its DIR/control-secret, copied here
//!         remote_ca = "relay-cert.pem"            its DIR/relay-cert.pem, copied here
//!         remote_name = "relay.example"           name in that certificate (default: host)
//!         public_ip = "203.0.113.9"               the relay host's public IP (invitations)
//! ```
//!
//! Relative file paths are taken in the data directory. In remote mode `quic` is the local
//! UDP address of the control connection (the default `0.0.0.0:1865` becomes any port), and
//! `bind_ip`, `port_min`/`port_max`, `per_user_limit` are set on the relay's command line.

use rustls::pki_types::pem::PemObject as _;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use relive_msnp::types::Passport;
use relive_relay::agent_hub::{AgentHub, AuthFuture, Authenticate};
use relive_relay::dial::Dial;
use relive_relay::ports::{PoolConfig, PortPool};
use relive_relay::quic;
use relive_relay::remote::{RemoteConfig, RemoteRelay};
use relive_relay::rewrite::{Allocate, Policy};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::passport::PassportService;
use crate::passport::rate_limit::Ceiling;
use crate::secret::Secret;
use crate::store::Store;
use crate::store::tokens::TokenCheck;

/// The relay library itself, for programs that embed a companion agent next to the server
/// (the NAT end-to-end tests); see [`trust_anchors`].
pub use relive_relay as engine;

/// The certificates in `pem` (the server's `relive-ca.crt`), for an agent's
/// [`quic::client_config`]. Unparsable input gives none.
#[must_use]
pub fn trust_anchors(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default()
}

/// Default first port of the relay's TCP allocation range.
pub const DEFAULT_PORT_MIN: u16 = 6891;
/// Default last port of the relay's TCP allocation range.
pub const DEFAULT_PORT_MAX: u16 = 6990;
/// Default QUIC (companion agent) port, on the NS listener's address.
pub const DEFAULT_QUIC_PORT: u16 = 1865;
/// Most VPN ranges accepted in the configuration.
const MAX_VPN_RANGES: usize = 64;
/// Longest `handle token` string an agent may present (handles are short, tokens shorter).
const MAX_AGENT_CREDENTIAL: usize = 512;
/// Default UDP port of a standalone relay (`relive-relay serve`).
pub const DEFAULT_REMOTE_PORT: u16 = 1865;

/// The raw `[relay]` table of `relive.toml`. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Rewrite invitations and relay transfers at all.
    pub enabled: bool,
    /// The relay's public IP written into invitations (default: `public_host` if an IP).
    pub public_ip: Option<IpAddr>,
    /// Address the allocation ports bind on (default: the NS listener's address).
    pub bind_ip: Option<IpAddr>,
    /// First port of the allocation range (`0` with `port_max = 0`: the OS chooses).
    pub port_min: u16,
    /// Last port of the allocation range.
    pub port_max: u16,
    /// VPN ranges (CIDR) whose addresses peers reach each other on.
    pub vpn_ranges: Vec<String>,
    /// QUIC listen address for companion agents (UDP; default: the NS listener's address,
    /// port 1865).
    pub quic: Option<SocketAddr>,
    /// Concurrent allocations per user (a rendezvous holds two).
    pub per_user_limit: usize,
    /// Allow MSNFTP rendezvous (both peers dial the relay; P2P.md §6.1).
    pub msnftp_rendezvous: bool,
    /// Make MSN 6+ clients use the switchboard when no direct connection can work.
    pub slp_fallback: bool,
    /// A standalone relay (`relive-relay serve`) at `host:port` instead of the embedded one.
    pub remote: Option<String>,
    /// The standalone relay's control secret file (required with `remote`).
    pub remote_secret_file: Option<PathBuf>,
    /// The standalone relay's certificate, PEM (required with `remote`).
    pub remote_ca: Option<PathBuf>,
    /// The name the standalone relay's certificate is checked against (default: its host).
    pub remote_name: Option<String>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            public_ip: None,
            bind_ip: None,
            port_min: DEFAULT_PORT_MIN,
            port_max: DEFAULT_PORT_MAX,
            vpn_ranges: vec!["25.0.0.0/8".to_owned(), "26.0.0.0/8".to_owned()],
            quic: None,
            per_user_limit: relive_relay::ports::DEFAULT_PER_USER_LIMIT,
            // Experimental upstream (unverified against real MSN 5.0 clients): opt-in.
            msnftp_rendezvous: false,
            slp_fallback: true,
            remote: None,
            remote_secret_file: None,
            remote_ca: None,
            remote_name: None,
        }
    }
}

/// Validated `remote*` keys: where the standalone relay is and how to trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSettings {
    /// Host name or IP address.
    pub host: String,
    /// UDP port.
    pub port: u16,
    /// Name its certificate is checked against.
    pub server_name: String,
    /// Control secret file (relative: in the data directory).
    pub secret_file: PathBuf,
    /// Its certificate (relative: in the data directory).
    pub ca: PathBuf,
}

/// Splits `host:port`, `[v6]:port`, `host` or a bare IPv6 address.
fn split_remote(remote: &str) -> Option<(String, u16)> {
    let remote = remote.trim();
    if let Some(rest) = remote.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => DEFAULT_REMOTE_PORT,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match remote.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host.to_owned(), port.parse().ok()?)),
        _ => Some((remote.to_owned(), DEFAULT_REMOTE_PORT)),
    }
    .filter(|(host, _)| !host.is_empty() && !host.contains(char::is_whitespace))
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
    /// A standalone relay instead of the embedded data plane.
    pub remote: Option<RemoteSettings>,
}

impl RelayConfig {
    /// Validates the table for a server listening on every address; `public_host` is the
    /// server's advertised host. See [`RelayConfig::validate_listening_on`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the bad key.
    pub fn validate(self, public_host: &str) -> Result<RelaySettings, ConfigError> {
        self.validate_listening_on(public_host, IpAddr::from([0, 0, 0, 0]))
    }

    /// Validates the table; `public_host` is the server's advertised host and `listen_ip` the
    /// address its NS listener binds, which the allocation ports and the QUIC socket follow
    /// unless `bind_ip` and `quic` say otherwise (a server given `127.0.0.1` everywhere opens
    /// nothing on other interfaces).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the bad key.
    pub fn validate_listening_on(
        self,
        public_host: &str,
        listen_ip: IpAddr,
    ) -> Result<RelaySettings, ConfigError> {
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
        let remote = match self.remote.as_deref() {
            None => None,
            Some(remote) => {
                let (host, port) = split_remote(remote).ok_or_else(|| {
                    invalid(
                        "relay.remote",
                        "must be host:port, e.g. \"relay.example:1865\"",
                    )
                })?;
                let secret_file = self.remote_secret_file.clone().ok_or_else(|| {
                    invalid(
                        "relay.remote_secret_file",
                        "required with remote: the relay's control-secret file",
                    )
                })?;
                let ca = self.remote_ca.clone().ok_or_else(|| {
                    invalid(
                        "relay.remote_ca",
                        "required with remote: the relay's relay-cert.pem",
                    )
                })?;
                let server_name = self.remote_name.clone().unwrap_or_else(|| host.clone());
                Some(RemoteSettings {
                    host,
                    port,
                    server_name,
                    secret_file,
                    ca,
                })
            }
        };
        // Remote mode: `quic` is only the control connection's local address, by default any
        // (the relay is usually on another host; the agent port would clash with one on this
        // host).
        let quic = match (self.quic, &remote) {
            (Some(quic), _) => quic,
            (None, Some(_)) => SocketAddr::from(([0, 0, 0, 0], 0)),
            (None, None) => SocketAddr::new(listen_ip, DEFAULT_QUIC_PORT),
        };
        Ok(RelaySettings {
            enabled: self.enabled,
            public_ip,
            bind_ip: self.bind_ip.unwrap_or(listen_ip),
            ports: self.port_min..=self.port_max,
            vpn_ranges,
            quic,
            per_user_limit: self.per_user_limit,
            msnftp_rendezvous: self.msnftp_rendezvous,
            slp_fallback: self.slp_fallback,
            remote,
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
    /// The standalone relay's secret or certificate file is unusable.
    #[error("standalone relay: {0}")]
    Remote(#[from] relive_relay::serve::ServeError),
    /// The standalone relay's certificate file holds no certificate.
    #[error("standalone relay: no certificate in {0}")]
    NoCertificate(PathBuf),
    /// Binding the control connection's UDP socket failed.
    #[error("standalone relay: binding the control socket")]
    Bind(#[source] std::io::Error),
}

/// Where the relay's data plane runs.
#[derive(Debug, Clone)]
pub enum DataPlane {
    /// In this process (the default).
    Embedded {
        /// The allocation ports.
        pool: PortPool,
        /// Connected companion agents (none without a QUIC socket).
        agents: Option<AgentHub>,
    },
    /// In a standalone relay (`[relay] remote`).
    Remote(RemoteRelay),
}

/// The running relay as the switchboard uses it.
#[derive(Debug, Clone)]
pub struct Relay {
    /// Operator policy for the rewriter.
    pub policy: Policy,
    /// The ports and agents.
    pub data_plane: DataPlane,
}

impl Relay {
    /// Starts the relay for `settings` (must be inside a tokio runtime): the port pool and,
    /// with `quic_socket`, the agent endpoint (its task ends when `shutdown` is cancelled).
    /// The endpoint presents the server certificate of `data_dir` (so agents trust
    /// `relive-ca.crt`), or a self-signed one for `public_host` when there is none.
    /// `Ok(None)` when the relay is disabled or has no public IP.
    ///
    /// With `[relay] remote` nothing is bound here: the control connection to the standalone
    /// relay runs from `quic_socket` (or an ephemeral UDP socket) as a task of `tasks`.
    ///
    /// # Errors
    ///
    /// [`RelayError`] when the pool or the QUIC endpoint cannot be set up.
    pub fn start(
        settings: &RelaySettings,
        data_dir: &std::path::Path,
        public_host: &str,
        auth: &StoreAuth,
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
        let mut policy = Policy::new(public_ip);
        policy.vpn_ranges.clone_from(&settings.vpn_ranges);
        policy.msnftp_rendezvous = settings.msnftp_rendezvous;
        policy.slp_fallback = settings.slp_fallback;
        if let Some(remote) = &settings.remote {
            let relay = start_remote(remote, data_dir, auth, quic_socket, tasks, shutdown)?;
            tracing::info!(%public_ip, relay = %remote.host, port = remote.port, "relay on (standalone)");
            return Ok(Some(Self {
                policy,
                data_plane: DataPlane::Remote(relay),
            }));
        }
        let agents = match quic_socket {
            Some(socket) => {
                let identity = identity(data_dir, public_host)?;
                let endpoint = quic::server_endpoint(quic::server_config(identity)?, socket)?;
                let hub = AgentHub::new(Arc::new(auth.clone()));
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
        tracing::info!(%public_ip, agents = agents.is_some(), "relay on");
        Ok(Some(Self {
            policy,
            data_plane: DataPlane::Embedded { pool, agents },
        }))
    }

    /// Whether `handle`'s companion agent is connected (to this server, or to the
    /// standalone relay as it last reported).
    #[must_use]
    pub fn agent_connected(&self, handle: &str) -> bool {
        match &self.data_plane {
            DataPlane::Embedded { agents, .. } => {
                agents.as_ref().is_some_and(|a| a.connected(handle))
            }
            DataPlane::Remote(remote) => remote.connected(handle),
        }
    }

    /// The allocator the rewriter uses.
    #[must_use]
    pub fn allocator(&self) -> &dyn Allocate {
        match &self.data_plane {
            DataPlane::Embedded { pool, .. } => pool,
            DataPlane::Remote(remote) => remote,
        }
    }
}

/// `path`, or `data_dir/path` when relative.
fn in_data_dir(data_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        data_dir.join(path)
    }
}

/// Reads the standalone relay's secret and certificate and starts the control connection.
fn start_remote(
    remote: &RemoteSettings,
    data_dir: &Path,
    auth: &StoreAuth,
    quic_socket: Option<std::net::UdpSocket>,
    tasks: &tokio_util::task::TaskTracker,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<RemoteRelay, RelayError> {
    let secret = relive_relay::serve::read_secret(&in_data_dir(data_dir, &remote.secret_file))?;
    let ca_path = in_data_dir(data_dir, &remote.ca);
    let pem = std::fs::read(&ca_path).map_err(|source| relive_relay::serve::ServeError::File {
        path: ca_path.clone(),
        source,
    })?;
    let trusted = trust_anchors(&pem);
    if trusted.is_empty() {
        return Err(RelayError::NoCertificate(ca_path));
    }
    let socket = match quic_socket {
        Some(socket) => socket,
        None => std::net::UdpSocket::bind((std::net::Ipv6Addr::UNSPECIFIED, 0))
            .or_else(|_| std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)))
            .map_err(RelayError::Bind)?,
    };
    let endpoint = quic::client_endpoint(
        quic::client_config_with_alpn(&trusted, relive_relay::control::ALPN)?,
        socket,
    )?;
    let relay = RemoteRelay::new(relive_relay::remote::DEFAULT_STOCK);
    let config = RemoteConfig {
        host: remote.host.clone(),
        port: remote.port,
        server_name: remote.server_name.clone(),
        secret,
    };
    let verifier: Arc<dyn Authenticate> = Arc::new(auth.clone());
    let (run, stop) = (relay.clone(), shutdown.clone());
    tasks.spawn(async move { run.run(endpoint, config, verifier, stop).await });
    Ok(relay)
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
                rustls::pki_types::CertificateDer::pem_slice_iter(text.as_slice())
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?,
            );
        }
        let key_text = std::fs::read(&paths.server_key).ok()?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&key_text).ok()?;
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

/// Lines about agents the login limiter refused: a few a minute, the rest counted.
static REFUSAL_LOG: relive_relay::limits::LogBudget =
    relive_relay::limits::LogBudget::new(10, std::time::Duration::from_secs(60));

/// Authenticates companion agents against the store: the agent's token field is
/// `<handle> <access token>`, checked like an NS login (the same token query whether or not
/// the account exists) and through the same login limiter as every other login, per
/// (account, agent address).
#[derive(Debug, Clone)]
pub struct StoreAuth {
    store: Store,
    passport: PassportService,
}

impl StoreAuth {
    /// An authenticator over `store`, counting attempts in `passport`'s login limiter.
    #[must_use]
    pub fn new(store: Store, passport: PassportService) -> Self {
        Self { store, passport }
    }
}

impl Authenticate for StoreAuth {
    fn authenticate(&self, credential: &str, from: IpAddr) -> AuthFuture {
        let (store, passport) = (self.store.clone(), self.passport.clone());
        let parsed = (credential.len() <= MAX_AGENT_CREDENTIAL)
            .then(|| credential.split_once(' '))
            .flatten()
            .and_then(|(handle, token)| {
                Some((Passport::parse(handle).ok()?, Secret::new(token.to_owned())))
            });
        Box::pin(async move {
            let (handle, token) = parsed?;
            let verify = async {
                let login = store
                    .token_login(&handle, TokenCheck::Plain(token), false)
                    .await?;
                Ok::<_, crate::store::StoreError>(login.and_then(|l| l.token).ok_or(()))
            };
            let limiter = Arc::clone(passport.rate_limiter());
            let now = move || passport.now();
            let attempt = limiter.attempt(handle.as_str(), from, &now, Ceiling::Wait, verify);
            match attempt.await {
                Ok(Ok(Ok(_))) => Some(handle.as_str().to_owned()),
                Ok(Ok(Err(()))) => None,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "agent token check failed");
                    None
                }
                Err(refused) => {
                    if let Some(suppressed) = REFUSAL_LOG.take(std::time::Instant::now()) {
                        tracing::info!(%from, %refused, suppressed, "agent refused by the login limiter");
                    }
                    None
                }
            }
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
        assert_eq!(s.quic, "0.0.0.0:1865".parse().unwrap());
        assert_eq!(s.bind_ip, IpAddr::from([0, 0, 0, 0]));
        // A server listening on loopback keeps its relay there too, unless told otherwise.
        let s = RelayConfig::default()
            .validate_listening_on("127.0.0.1", IpAddr::from([127, 0, 0, 1]))
            .unwrap();
        assert_eq!(s.quic, "127.0.0.1:1865".parse().unwrap());
        assert_eq!(s.bind_ip, IpAddr::from([127, 0, 0, 1]));
        let explicit: RelayConfig =
            toml::from_str("bind_ip = \"0.0.0.0\"\nquic = \"[::]:1999\"\n").unwrap();
        let s = explicit
            .validate_listening_on("127.0.0.1", IpAddr::from([127, 0, 0, 1]))
            .unwrap();
        assert_eq!(s.quic, "[::]:1999".parse().unwrap());
        assert_eq!(s.bind_ip, IpAddr::from([0, 0, 0, 0]));
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

    #[test]
    fn remote_keys_are_validated() {
        let remote = |r: &str| RelayConfig {
            remote: Some(r.to_owned()),
            remote_secret_file: Some("secret".into()),
            remote_ca: Some("/etc/relay-cert.pem".into()),
            ..RelayConfig::default()
        };
        let s = remote("relay.example:4433")
            .validate("msn.example")
            .unwrap();
        let r = s.remote.unwrap();
        assert_eq!((r.host.as_str(), r.port), ("relay.example", 4433));
        assert_eq!(r.server_name, "relay.example");
        // The default agent port is not bound by a server that drives a standalone relay.
        assert_eq!(s.quic.port(), 0);
        for (text, host, port) in [
            ("relay.example", "relay.example", 1865),
            ("[2001:db8::1]:7000", "2001:db8::1", 7000),
            ("2001:db8::1", "2001:db8::1", 1865),
            ("198.51.100.4:1866", "198.51.100.4", 1866),
        ] {
            let r = remote(text)
                .validate("msn.example")
                .unwrap()
                .remote
                .unwrap();
            assert_eq!((r.host.as_str(), r.port), (host, port), "{text}");
        }
        for bad in [
            "relay.example:x",
            ":1865",
            "[::1]x",
            "a b:1",
            "relay.example:70000",
        ] {
            assert!(remote(bad).validate("msn.example").is_err(), "{bad}");
        }
        let no_secret = RelayConfig {
            remote_secret_file: None,
            ..remote("relay.example")
        };
        assert!(no_secret.validate("msn.example").is_err());
        let no_ca = RelayConfig {
            remote_ca: None,
            ..remote("relay.example")
        };
        assert!(no_ca.validate("msn.example").is_err());
        // Without `remote` nothing changes.
        assert_eq!(
            RelayConfig::default()
                .validate("msn.example")
                .unwrap()
                .remote,
            None
        );
    }

    /// The server drives a real standalone relay (`relive_relay::serve`) on loopback: an agent
    /// that connects to the relay is verified against this server's store.
    #[tokio::test]
    async fn remote_mode_verifies_agents_against_the_store() {
        use relive_relay::serve::{self, RelayFiles, ServeConfig};
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), |_| {}).await;
        let token = account(&ctx, "alice@example.com", "Alice").await;
        // The standalone relay, with its files in its own directory.
        let relay_dir = tempfile::tempdir().unwrap();
        let files = RelayFiles::in_dir(relay_dir.path());
        let (identity, _) = serve::load_or_create_identity(&files, &["localhost".into()]).unwrap();
        let (secret, _) = serve::load_or_create_secret(&files.secret).unwrap();
        let certs = identity.certs.clone();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let relay_addr = socket.local_addr().unwrap();
        let endpoint =
            quic::server_endpoint(serve::endpoint_config(identity).unwrap(), socket).unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let pool = PoolConfig::new("127.0.0.1".parse().unwrap(), 0..=0);
        tokio::spawn(serve::run(
            endpoint,
            ServeConfig::new(pool, secret),
            stop.clone(),
        ));
        // The server: secret copied into its data directory (relative path), CA absolute.
        std::fs::copy(&files.secret, dir.path().join("relay-secret")).unwrap();
        let settings = RelayConfig {
            public_ip: Some("127.0.0.1".parse().unwrap()),
            remote: Some(relay_addr.to_string()),
            remote_secret_file: Some("relay-secret".into()),
            remote_ca: Some(files.cert.clone()),
            remote_name: Some("localhost".into()),
            ..RelayConfig::default()
        }
        .validate("msn.example")
        .unwrap();
        let tasks = tokio_util::task::TaskTracker::new();
        let relay = Relay::start(
            &settings,
            dir.path(),
            "msn.example",
            &StoreAuth::new(ctx.store.clone(), ctx.passport.clone()),
            None,
            &tasks,
            &stop,
        )
        .unwrap()
        .unwrap();
        let DataPlane::Remote(remote) = relay.data_plane.clone() else {
            panic!("not remote");
        };
        let within = std::time::Duration::from_secs(20);
        tokio::time::timeout(within, remote.wait_until(|r| r.is_up() && r.stock() > 0))
            .await
            .unwrap();
        // An agent with alice's access token, connecting to the standalone relay.
        let agent_endpoint = quic::client_endpoint(
            quic::client_config(&certs).unwrap(),
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        )
        .unwrap();
        let bad = relive_relay::agent::AgentConfig::new(
            relay_addr,
            "localhost",
            "alice@example.com not-the-token",
        );
        let denied = relive_relay::agent::run_agent(&agent_endpoint, &bad).await;
        assert!(matches!(
            denied,
            Err(relive_relay::agent::AgentError::Denied)
        ));
        let good = relive_relay::agent::AgentConfig::new(
            relay_addr,
            "localhost",
            &format!("alice@example.com {token}"),
        );
        let agent =
            tokio::spawn(
                async move { relive_relay::agent::run_agent(&agent_endpoint, &good).await },
            );
        tokio::time::timeout(
            within,
            remote.wait_until(|r| r.connected("alice@example.com")),
        )
        .await
        .unwrap();
        assert!(relay.agent_connected("alice@example.com"));
        assert!(!relay.agent_connected("bob@example.com"));
        // The allocator is the standalone relay's: a forward to alice's agent gets a leased port.
        let allocated = relay
            .allocator()
            .forward("alice@example.com", "127.0.0.1".parse().unwrap(), 9)
            .unwrap();
        assert_ne!(allocated.port, 0);
        relay.allocator().release(allocated.id);
        stop.cancel();
        agent.abort();
        tasks.close();
        tokio::time::timeout(within, tasks.wait()).await.unwrap();
    }

    /// The agent's token check is a login like any other: guesses count in the shared login
    /// limiter per (account, agent address), so a guessing address is refused (even with the
    /// right token, and on login2.srf too) while the owner elsewhere gets in.
    #[tokio::test]
    async fn agent_guesses_count_in_the_login_limiter() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), |_| {}).await;
        let token = account(&ctx, "alice@example.com", "Alice").await;
        let auth = StoreAuth::new(ctx.store.clone(), ctx.passport.clone());
        let (guesser, owner) = (IpAddr::from([192, 0, 2, 66]), IpAddr::from([192, 0, 2, 7]));
        let wrong = "alice@example.com AAAAAAAAAAAAAAAA";
        let mut checked = 0;
        for _ in 0..20 {
            assert_eq!(auth.authenticate(wrong, guesser).await, None);
            if ctx
                .passport
                .rate_limiter()
                .check("alice@example.com", guesser, ctx.passport.now())
                .is_ok()
            {
                checked += 1;
            }
        }
        // Three at full speed, then the 2 s spacing: the rest were refused unchecked.
        assert!(checked <= 3, "{checked} guesses were checked");
        let right = format!("alice@example.com {token}");
        assert_eq!(auth.authenticate(&right, guesser).await, None);
        let credentials = crate::passport::Credentials::from_authorization(&format!(
            "Passport1.4 sign-in=alice%40example.com,pwd={token}"
        ))
        .unwrap();
        assert!(matches!(
            ctx.passport
                .login(&credentials, guesser, crate::passport::Transport::Tls)
                .await,
            Err(crate::passport::LoginError::Refused(_))
        ));
        assert_eq!(
            auth.authenticate(&right, owner).await.as_deref(),
            Some("alice@example.com")
        );
    }

    #[tokio::test]
    async fn agents_authenticate_with_handle_and_access_token() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), |_| {}).await;
        let token = account(&ctx, "alice@example.com", "Alice").await;
        account(&ctx, "bob@example.com", "Bob").await;
        let auth = StoreAuth::new(ctx.store.clone(), ctx.passport.clone());
        let from = IpAddr::from([192, 0, 2, 1]);
        assert_eq!(
            auth.authenticate(&format!("alice@example.com {token}"), from)
                .await,
            Some("alice@example.com".to_owned())
        );
        // Someone else's token, a bare token, an unknown account, junk: refused.
        assert_eq!(
            auth.authenticate(&format!("bob@example.com {token}"), from)
                .await,
            None
        );
        assert_eq!(auth.authenticate(&token, from).await, None);
        assert_eq!(
            auth.authenticate(&format!("carol@example.com {token}"), from)
                .await,
            None
        );
        assert_eq!(auth.authenticate(&"x".repeat(4096), from).await, None);
    }
}
