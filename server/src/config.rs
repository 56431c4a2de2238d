//! Configuration: the raw `relive.toml` ([`Config`]), environment and flag overrides, and the
//! validated [`Settings`] the rest of the server sees.
//!
//! Precedence, highest first: command-line flags ([`Overrides`]), `RELIVE_*` environment
//! variables, `relive.toml` in the data directory, built-in defaults. The environment is read
//! through a lookup function so tests can supply their own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::limits::{Limits, LimitsConfig};
use crate::passport::{DaLoginPort, NamedPort, PassportSettings};
use crate::relay::{RelayConfig, RelaySettings};
use crate::store::{ListLimits, StoreOptions};

/// Name of the configuration file inside the data directory.
pub const CONFIG_FILE: &str = "relive.toml";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./relive-data";
/// Default NS (and DS) port.
pub const DEFAULT_NS_PORT: u16 = 1863;
/// Default switchboard port.
pub const DEFAULT_SB_PORT: u16 = 1864;
/// Default HTTP port. relive-patch writes the same into clients' `http://` URLs (the port plan
/// in README "Ports"; the test `fit::the_patcher_defaults_are_the_server_defaults` keeps them
/// equal).
pub const DEFAULT_HTTP_PORT: u16 = 8080;
/// Default HTTPS port, written into patched clients' nexus URL likewise.
pub const DEFAULT_HTTPS_PORT: u16 = 8443;
/// Default NS idle timeout: five minutes without a byte (clients ping every ~50 s).
pub const DEFAULT_NS_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default time an SB connection has to authenticate (Escargot uses 60 s).
pub const DEFAULT_SB_AUTH_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time to answer a `CHL` (PROTOCOL.md §2.5: about 50 s).
pub const DEFAULT_CHL_TIMEOUT: Duration = Duration::from_secs(50);

/// Errors reading or validating configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("config file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("config file {path} is invalid")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// An environment variable has an invalid value.
    #[error("environment variable {name} is invalid: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A value is out of range.
    #[error("invalid setting {key}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// The raw configuration file. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// NS bind address.
    pub ns: SocketAddr,
    /// Switchboard bind address.
    pub sb: SocketAddr,
    /// HTTP bind address.
    pub http: SocketAddr,
    /// HTTPS bind address.
    pub https: SocketAddr,
    /// Prometheus `/metrics` bind address, or `"off"`.
    pub metrics: String,
    /// Host name or IP clients are told to connect to (XFR, nexus, certificate).
    pub public_host: String,
    /// Host handed out in `XFR NS` referrals, if different from `public_host`.
    pub ns_referral_host: Option<String>,
    /// bcrypt cost.
    pub bcrypt_cost: u32,
    /// Maximum forward-list entries.
    pub max_fl: usize,
    /// Maximum entries on each of AL and BL.
    pub max_al_bl: usize,
    /// Maximum simultaneous client connections over all listeners (shared out among them by
    /// `[limits]`).
    pub max_connections: usize,
    /// Send `CHL` challenges (MSNP6+).
    pub chl: bool,
    /// Port advertised for the switchboard in `XFR SB`/`RNG` (default: the SB listener's port).
    pub sb_public_port: Option<u16>,
    /// Close an NS connection after this many seconds without a byte from the client.
    pub ns_idle_timeout_secs: u64,
    /// Close an SB connection that has not authenticated within this many seconds.
    pub sb_auth_timeout_secs: u64,
    /// Seconds a client has to answer a `CHL` before it is disconnected.
    pub chl_timeout_secs: u64,
    /// The `[passport]` table: nexus value, tickets, login rate limits, legacy TLS.
    pub passport: PassportSettings,
    /// The `[relay]` table: invitation rewriting, allocation ports, companion agents.
    pub relay: RelayConfig,
    /// The `[limits]` table: connection pools and per-source caps, the login deadline, list
    /// lookups.
    pub limits: LimitsConfig,
    /// The `[web]` table: the website (who may register).
    pub web: crate::web::WebConfig,
}

impl Default for Config {
    fn default() -> Self {
        let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
        let limits = ListLimits::default();
        Self {
            ns: any(DEFAULT_NS_PORT),
            sb: any(DEFAULT_SB_PORT),
            http: any(DEFAULT_HTTP_PORT),
            https: any(DEFAULT_HTTPS_PORT),
            metrics: crate::metrics::DEFAULT_LISTEN.to_owned(),
            public_host: "127.0.0.1".to_owned(),
            ns_referral_host: None,
            bcrypt_cost: crate::store::DEFAULT_BCRYPT_COST,
            max_fl: limits.forward,
            max_al_bl: limits.allow_block,
            // An idle user costs about 7 KiB: 10,000 connections fit a small host. The server
            // raises its open-file limit to match at start and warns when it cannot.
            max_connections: 10_000,
            chl: false,
            sb_public_port: None,
            ns_idle_timeout_secs: DEFAULT_NS_IDLE_TIMEOUT.as_secs(),
            sb_auth_timeout_secs: DEFAULT_SB_AUTH_TIMEOUT.as_secs(),
            chl_timeout_secs: DEFAULT_CHL_TIMEOUT.as_secs(),
            passport: PassportSettings::default(),
            relay: RelayConfig::default(),
            limits: LimitsConfig::default(),
            web: crate::web::WebConfig::default(),
        }
    }
}

/// Values given on the command line; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--ns`.
    pub ns: Option<SocketAddr>,
    /// `--sb`.
    pub sb: Option<SocketAddr>,
    /// `--http`.
    pub http: Option<SocketAddr>,
    /// `--https`.
    pub https: Option<SocketAddr>,
    /// `--metrics` (an address or `off`).
    pub metrics: Option<String>,
    /// `--public-host`.
    pub public_host: Option<String>,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Data directory.
    pub data_dir: PathBuf,
    /// NS bind address.
    pub ns: SocketAddr,
    /// Switchboard bind address.
    pub sb: SocketAddr,
    /// HTTP bind address.
    pub http: SocketAddr,
    /// HTTPS bind address.
    pub https: SocketAddr,
    /// Where `/metrics` is served; `None`: nowhere.
    pub metrics: Option<SocketAddr>,
    /// Advertised host.
    pub public_host: String,
    /// Host for `XFR NS` referrals (defaults to `public_host`).
    pub ns_referral_host: String,
    /// bcrypt cost (4..=31).
    pub bcrypt_cost: u32,
    /// List limits.
    pub limits: ListLimits,
    /// Maximum simultaneous connections.
    pub max_connections: usize,
    /// Send `CHL` challenges.
    pub chl: bool,
    /// Port advertised for the switchboard; `None` = the SB listener's actual port.
    pub sb_public_port: Option<u16>,
    /// NS idle timeout (real clients `PNG` about every 50 s).
    pub ns_idle_timeout: Duration,
    /// How long an SB connection may stay unauthenticated.
    pub sb_auth_timeout: Duration,
    /// How long a client has to answer a `CHL`.
    pub chl_timeout: Duration,
    /// Passport settings (validated).
    pub passport: PassportSettings,
    /// Relay settings (validated).
    pub relay: RelaySettings,
    /// The `[limits]` table: connection pools, per-source caps, deadlines and lookup
    /// throttling (validated).
    pub abuse: Limits,
    /// The `[web]` table.
    pub web: crate::web::WebConfig,
}

impl Settings {
    /// Store options derived from these settings.
    #[must_use]
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            bcrypt_cost: self.bcrypt_cost,
            limits: self.limits,
        }
    }

    /// Path of the database file.
    #[must_use]
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("relive.db")
    }
}

fn env_value<T: std::str::FromStr>(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    lookup(name)
        .map(|v| {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                name,
                reason: e.to_string(),
            })
        })
        .transpose()
}

impl Config {
    /// Reads `path`, or returns the defaults if it does not exist.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] or [`ConfigError::Parse`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                source: Box::new(e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Applies `RELIVE_NS`, `RELIVE_SB`, `RELIVE_HTTP`, `RELIVE_HTTPS`, `RELIVE_METRICS`,
    /// `RELIVE_PUBLIC_HOST`,
    /// `RELIVE_NS_REFERRAL_HOST`, `RELIVE_BCRYPT_COST`, `RELIVE_MAX_FL`, `RELIVE_MAX_AL_BL`,
    /// `RELIVE_MAX_CONNECTIONS` and `RELIVE_CHL`, looked up with `lookup`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Env`] for an unparsable value.
    pub fn apply_env(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = env_value(lookup, "RELIVE_NS")? {
            self.ns = v;
        }
        if let Some(v) = env_value(lookup, "RELIVE_SB")? {
            self.sb = v;
        }
        if let Some(v) = env_value(lookup, "RELIVE_HTTP")? {
            self.http = v;
        }
        if let Some(v) = env_value(lookup, "RELIVE_HTTPS")? {
            self.https = v;
        }
        if let Some(v) = env_value(lookup, "RELIVE_METRICS")? {
            self.metrics = v;
        }
        if let Some(v) = env_value(lookup, "RELIVE_PUBLIC_HOST")? {
            self.public_host = v;
        }
        if let Some(v) = env_value(lookup, "RELIVE_NS_REFERRAL_HOST")? {
            self.ns_referral_host = Some(v);
        }
        if let Some(v) = env_value(lookup, "RELIVE_BCRYPT_COST")? {
            self.bcrypt_cost = v;
        }
        if let Some(v) = env_value(lookup, "RELIVE_MAX_FL")? {
            self.max_fl = v;
        }
        if let Some(v) = env_value(lookup, "RELIVE_MAX_AL_BL")? {
            self.max_al_bl = v;
        }
        if let Some(v) = env_value(lookup, "RELIVE_MAX_CONNECTIONS")? {
            self.max_connections = v;
        }
        if let Some(v) = env_value(lookup, "RELIVE_CHL")? {
            self.chl = v;
        }
        Ok(())
    }

    /// Applies command-line overrides.
    pub fn apply_overrides(&mut self, o: &Overrides) {
        self.ns = o.ns.unwrap_or(self.ns);
        self.sb = o.sb.unwrap_or(self.sb);
        self.http = o.http.unwrap_or(self.http);
        self.https = o.https.unwrap_or(self.https);
        if let Some(metrics) = &o.metrics {
            self.metrics.clone_from(metrics);
        }
        if let Some(host) = &o.public_host {
            self.public_host.clone_from(host);
        }
    }

    /// Validates into [`Settings`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn validate(self, data_dir: PathBuf) -> Result<Settings, ConfigError> {
        let host_ok =
            |h: &str| !h.is_empty() && h.len() <= 253 && h.bytes().all(|b| b.is_ascii_graphic());
        if !host_ok(&self.public_host) {
            return Err(ConfigError::Invalid {
                key: "public_host",
                reason: "must be a non-empty host name or IP address without spaces",
            });
        }
        if let Some(h) = &self.ns_referral_host
            && !host_ok(h)
        {
            return Err(ConfigError::Invalid {
                key: "ns_referral_host",
                reason: "must be a non-empty host name or IP address without spaces",
            });
        }
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(ConfigError::Invalid {
                key: "bcrypt_cost",
                reason: "must be between 4 and 31",
            });
        }
        if !(1..=10_000).contains(&self.max_fl) || !(1..=100_000).contains(&self.max_al_bl) {
            return Err(ConfigError::Invalid {
                key: "max_fl",
                reason: "max_fl must be 1..=10000 and max_al_bl 1..=100000",
            });
        }
        if [
            self.ns_idle_timeout_secs,
            self.sb_auth_timeout_secs,
            self.chl_timeout_secs,
        ]
        .iter()
        .any(|s| !(1..=86_400).contains(s))
        {
            return Err(ConfigError::Invalid {
                key: "ns_idle_timeout_secs",
                reason: "timeouts must be 1..=86400 seconds",
            });
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "max_connections",
                reason: "must be at least 1",
            });
        }
        let metrics = match self.metrics.trim() {
            "off" => None,
            addr => Some(addr.parse().map_err(|_| ConfigError::Invalid {
                key: "metrics",
                reason: "must be an address such as 127.0.0.1:9863, or \"off\"",
            })?),
        };
        self.passport.validate().map_err(|e| ConfigError::Invalid {
            key: e.key,
            reason: e.reason,
        })?;
        let relay = self
            .relay
            .validate_listening_on(&self.public_host, self.ns.ip())?;
        let limits = self.limits.validate(self.max_connections)?;
        Ok(Settings {
            web: self.web,
            abuse: limits,
            data_dir,
            relay,
            ns: self.ns,
            sb: self.sb,
            http: self.http,
            https: self.https,
            metrics,
            ns_referral_host: self
                .ns_referral_host
                .unwrap_or_else(|| self.public_host.clone()),
            public_host: self.public_host,
            bcrypt_cost: self.bcrypt_cost,
            limits: ListLimits {
                forward: self.max_fl,
                allow_block: self.max_al_bl,
            },
            max_connections: self.max_connections,
            chl: self.chl,
            sb_public_port: self.sb_public_port,
            ns_idle_timeout: Duration::from_secs(self.ns_idle_timeout_secs),
            sb_auth_timeout: Duration::from_secs(self.sb_auth_timeout_secs),
            chl_timeout: Duration::from_secs(self.chl_timeout_secs),
            passport: self.passport,
        })
    }
}

/// Builds [`Settings`] for `data_dir` from the file, the environment (`lookup`) and `overrides`.
///
/// # Errors
///
/// Any [`ConfigError`].
pub fn resolve(
    data_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    overrides: &Overrides,
) -> Result<Settings, ConfigError> {
    let mut config = Config::load(&data_dir.join(CONFIG_FILE))?;
    config.apply_env(lookup)?;
    config.apply_overrides(overrides);
    config.validate(data_dir.to_path_buf())
}

/// The commented `relive.toml` written on first start: every key, commented out, at its default.
#[must_use]
pub fn default_file_text() -> String {
    let d = Config::default();
    let p = &d.passport;
    let LimitsConfig {
        ns_share,
        sb_share,
        http_share,
        https_share,
        legacy_tls_share,
        ns_per_source,
        sb_per_source,
        http_per_source,
        exempt_sources: _,
        login_timeout_secs,
        http_connection_secs,
        refusal_log_per_minute,
        lookup_burst,
        lookups_per_minute,
    } = d.limits.clone();
    // Validated extra fields hold no quotes, commas or spaces.
    let extra = format!(
        "[{}]",
        p.nexus
            .extra
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let relay_vpn = format!(
        "[{}]",
        d.relay
            .vpn_ranges
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    format!(
        "# Relive server configuration. Every key is optional; the values shown are the defaults.\n\
         # Precedence: command-line flags > RELIVE_* environment variables > this file > defaults.\n\
         \n\
         # Where the notification server (and dispatch) listens. Env: RELIVE_NS, flag: --ns.\n\
         # ns = \"{ns}\"\n\
         # Where the switchboard listens. Env: RELIVE_SB, flag: --sb.\n\
         # sb = \"{sb}\"\n\
         # Plain HTTP (nexus, login, MsgrConfig, the pages the client's links open, the CA\n\
         # certificate at /relive-ca.crt). Env: RELIVE_HTTP, flag: --http.\n\
         # http = \"{http}\"\n\
         # HTTPS (rustls). Env: RELIVE_HTTPS, flag: --https.\n\
         # https = \"{https}\"\n\
         # Prometheus metrics (GET /metrics), or \"off\". The default answers this host only; a\n\
         # scraper elsewhere needs e.g. \"0.0.0.0:9863\" (and a firewall that admits only it).\n\
         # Env: RELIVE_METRICS, flag: --metrics.\n\
         # metrics = \"{metrics}\"\n\
         \n\
         # Host name or IP address clients are told to connect to; also goes in the certificate.\n\
         # Env: RELIVE_PUBLIC_HOST, flag: --public-host.\n\
         # public_host = \"{host}\"\n\
         # Host handed out in XFR NS referrals when it differs from public_host.\n\
         # Env: RELIVE_NS_REFERRAL_HOST.\n\
         # ns_referral_host = \"ns.example.com\"\n\
         \n\
         # bcrypt cost for account passwords (4..=31). Env: RELIVE_BCRYPT_COST.\n\
         # bcrypt_cost = {cost}\n\
         # Maximum forward-list entries, and entries on each of the allow and block lists.\n\
         # Env: RELIVE_MAX_FL, RELIVE_MAX_AL_BL.\n\
         # max_fl = {fl}\n\
         # max_al_bl = {albl}\n\
         # Maximum simultaneous client connections over all listeners (each user holds one NS\n\
         # connection, plus one SB connection per open chat), shared out among the listeners\n\
         # by [limits]. The server raises its open-file limit to fit, if the system allows.\n\
         # Env: RELIVE_MAX_CONNECTIONS.\n\
         # max_connections = {conns}\n\
         # Send CHL challenges to MSNP6+ clients. Env: RELIVE_CHL.\n\
         # chl = {chl}\n\
         # Seconds a CHL may go unanswered before the client is disconnected.\n\
         # chl_timeout_secs = {chl_timeout}\n\
         \n\
         # Port clients are told for the switchboard (XFR SB, RNG) when it differs from the\n\
         # listener's, e.g. behind port forwarding. Default: the SB listener's port.\n\
         # sb_public_port = 1864\n\
         # Close an NS connection after this many seconds of silence (clients ping every ~50 s).\n\
         # ns_idle_timeout_secs = {ns_idle}\n\
         # Close an SB connection that has not authenticated within this many seconds.\n\
         # sb_auth_timeout_secs = {sb_auth}\n\
         \n\
         # Passport 1.4 (MSNP8+ logins: nexus, login2.srf, tickets).\n\
         # [passport]\n\
         # Seconds a login ticket stays valid (1..=120), and most tickets held at once.\n\
         # ticket_lifetime_secs = {ticket_lifetime}\n\
         # max_tickets = {max_tickets}\n\
         # Failed logins (Passport, MD5, CTP, TWN, relay agents) slow the attacker, never the\n\
         # owner. Per account and source (an IPv4 address or an IPv6 /64): full speed up to\n\
         # login_slow_after, then spaced by login_delay_secs (doubling), refused from\n\
         # login_refuse_after on. A source with login_source_refuse_after failures over all\n\
         # accounts is refused. An account with login_account_delay_after failures over all\n\
         # sources has every attempt delayed, by at most login_max_delay_ms, never refused:\n\
         # the right token from a source that has not failed always gets in. One failure is\n\
         # forgiven every login_decay_secs.\n\
         # login_slow_after = {slow_after}\n\
         # login_refuse_after = {refuse_after}\n\
         # login_delay_secs = {delay}\n\
         # login_decay_secs = {decay}\n\
         # login_source_refuse_after = {source_refuse}\n\
         # login_account_delay_after = {account_delay}\n\
         # login_max_delay_ms = {max_delay}\n\
         # Most (account, source) pairs, sources and accounts the limiter tracks (each).\n\
         # login_max_tracked = {max_tracked}\n\
         # Accept account passwords (not only access tokens) over plain HTTP too.\n\
         # password_over_plain_http = {pw_plain}\n\
         # Legacy TLS listener (TLS 1.0, RSA, 3DES) for Windows XP; off unless set. Its RSA\n\
         # certificates are generated in <data-dir>/tls/legacy/ unless legacy_cert/legacy_key\n\
         # name existing PEM files. XP users import legacy-ca.crt (`relive-server cert export`).\n\
         # legacy_tls = \"0.0.0.0:8444\"\n\
         # legacy_cert = \"/path/to/chain.pem\"\n\
         # legacy_key = \"/path/to/key.pem\"\n\
         \n\
         # The nexus PassportURLs value: DARealm=<realm>,DALogin=[<scheme>://]<host>[:<port>]<path>.\n\
         # With the default scheme and port the login follows the listener the nexus was asked\n\
         # on: bare host:<https port> over HTTPS, the legacy port over legacy TLS, and\n\
         # http://host:<http port> over plain HTTP (clients patched with --http-login). Any\n\
         # other scheme or port is the one answer on every listener.\n\
         # [passport.nexus]\n\
         # realm: \"\" leaves DARealm out (and with an empty extra list the value is the bare\n\
         # DALogin=<url> some clients, e.g. msnp11-sdk, require).\n\
         # realm = \"{realm}\"\n\
         # scheme: \"\" (bare host/path, as the official service), \"http\" or \"https\".\n\
         # scheme = \"{scheme}\"\n\
         # host: \"\" means public_host.\n\
         # host = \"{nexus_host}\"\n\
         # port: a number, or \"https\", \"http\", \"legacy\" (that listener's port), or \"omit\".\n\
         # port = {port}\n\
         # path = \"{path}\"\n\
         # extra = {extra}\n\
         \n\
         # The relay: rewrites file-transfer invitations and carries transfers across NAT.\n\
         # [relay]\n\
         # enabled = {relay_enabled}\n\
         # Public IP written into invitations. Default: public_host, if it is an IP address\n\
         # (otherwise the relay stays off until this is set).\n\
         # public_ip = \"203.0.113.1\"\n\
         # Address and TCP port range of relay allocations (0 and 0: the OS chooses). Each\n\
         # allocation also listens on port XOR 0x3141 (MSNFTP PortX) when that is in range.\n\
         # Default address: the NS listener's (all addresses unless ns says otherwise).\n\
         # bind_ip = \"0.0.0.0\"\n\
         # port_min = {relay_min}\n\
         # port_max = {relay_max}\n\
         # VPN ranges peers reach each other on (Hamachi, Radmin).\n\
         # vpn_ranges = {relay_vpn}\n\
         # QUIC (UDP) address companion agents connect to. Default: the NS listener's\n\
         # address, port {relay_quic_port}.\n\
         # quic = \"0.0.0.0:{relay_quic_port}\"\n\
         # Concurrent relay allocations per user (a rendezvous holds two).\n\
         # per_user_limit = {relay_limit}\n\
         # MSNFTP rendezvous: both peers dial the relay, which splices them. Experimental:\n\
         # unverified against real MSN 5.0+ senders (Sender-Connect), hence off.\n\
         # msnftp_rendezvous = {relay_rendezvous}\n\
         # MSN 6+: send over the switchboard when no direct connection can work.\n\
         # slp_fallback = {relay_fallback}\n\
         # Use a standalone relay (`relive-relay serve` on another host) instead of the\n\
         # embedded one: its QUIC address, the control-secret and relay-cert.pem files it wrote\n\
         # on first start (copied here; relative paths are in the data directory), and the name\n\
         # its certificate carries (default: the host of `remote`). Set public_ip to the relay\n\
         # host's public IP; bind_ip, port_min/max and per_user_limit are then the relay's own\n\
         # flags, and quic is the local address of the control connection (default: any).\n\
         # Agents then connect to the standalone relay (with --ca relay-cert.pem).\n\
         # remote = \"relay.example:1865\"\n\
         # remote_secret_file = \"relay-control-secret\"\n\
         # remote_ca = \"relay-cert.pem\"\n\
         # remote_name = \"relay.example\"\n\
         \n\
         # Limits against floods and probing.\n\
         # [limits]\n\
         # Each listener has its own pool, a share (percent) of max_connections, so a flood of\n\
         # one kind cannot take the places of the others; the shares add up to at most 100.\n\
         # ns_share = {ns_share}\n\
         # sb_share = {sb_share}\n\
         # http_share = {http_share}\n\
         # https_share = {https_share}\n\
         # legacy_tls_share = {legacy_tls_share}\n\
         # Connections one source (an IPv4 address, or an IPv6 /64) may hold on the NS, on the\n\
         # SB (one per open chat), and on each HTTP listener; more are closed at once.\n\
         # ns_per_source = {ns_per_source}\n\
         # sb_per_source = {sb_per_source}\n\
         # http_per_source = {http_per_source}\n\
         # Sources the per-source limits do not apply to (a reverse proxy, a campus NAT).\n\
         # exempt_sources = []\n\
         # Seconds an NS connection has from connect to log in (however it trickles bytes);\n\
         # an SB connection has sb_auth_timeout_secs. HTTP connections are closed\n\
         # http_connection_secs after connect.\n\
         # login_timeout_secs = {login_timeout_secs}\n\
         # http_connection_secs = {http_connection_secs}\n\
         # Lines about refused connections per minute; the rest are counted in the next line.\n\
         # refusal_log_per_minute = {refusal_log_per_minute}\n\
         # Commands that name another user (ADD, REM, REA, FND, CAL): lookup_burst at once per\n\
         # account, then lookups_per_minute (answers come later, never differently).\n\
         # lookup_burst = {lookup_burst}\n\
         # lookups_per_minute = {lookups_per_minute}\n\
         \n\
         # The website (on the HTTP and HTTPS listeners): who may register there. \"open\":\n\
         # anyone; \"invite\": with an unused invite code from an admin; \"closed\": nobody (use\n\
         # `relive-server user add`). `relive-server user admin EMAIL` opens the admin pages.\n\
         # [web]\n\
         # registration = \"open\"\n",
        relay_enabled = d.relay.enabled,
        relay_min = d.relay.port_min,
        relay_max = d.relay.port_max,
        relay_vpn = relay_vpn,
        relay_quic_port = crate::relay::DEFAULT_QUIC_PORT,
        relay_limit = d.relay.per_user_limit,
        relay_rendezvous = d.relay.msnftp_rendezvous,
        relay_fallback = d.relay.slp_fallback,
        ns = d.ns,
        sb = d.sb,
        http = d.http,
        https = d.https,
        metrics = d.metrics,
        host = d.public_host,
        cost = d.bcrypt_cost,
        fl = d.max_fl,
        albl = d.max_al_bl,
        conns = d.max_connections,
        chl = d.chl,
        chl_timeout = d.chl_timeout_secs,
        ns_idle = d.ns_idle_timeout_secs,
        sb_auth = d.sb_auth_timeout_secs,
        ticket_lifetime = p.ticket_lifetime_secs,
        max_tickets = p.max_tickets,
        slow_after = p.login_slow_after,
        refuse_after = p.login_refuse_after,
        delay = p.login_delay_secs,
        decay = p.login_decay_secs,
        source_refuse = p.login_source_refuse_after,
        account_delay = p.login_account_delay_after,
        max_delay = p.login_max_delay_ms,
        max_tracked = p.login_max_tracked,
        pw_plain = p.password_over_plain_http,
        realm = p.nexus.realm,
        scheme = p.nexus.scheme,
        nexus_host = p.nexus.host,
        port = match p.nexus.port {
            DaLoginPort::Number(n) => n.to_string(),
            DaLoginPort::Named(NamedPort::Https) => "\"https\"".to_owned(),
            DaLoginPort::Named(NamedPort::Http) => "\"http\"".to_owned(),
            DaLoginPort::Named(NamedPort::Legacy) => "\"legacy\"".to_owned(),
            DaLoginPort::Named(NamedPort::Omit) => "\"omit\"".to_owned(),
        },
        path = p.nexus.path,
        extra = extra,
    )
}

/// Writes [`default_file_text`] to `<data_dir>/relive.toml` unless the file exists. Returns
/// whether it was written.
///
/// # Errors
///
/// [`ConfigError::Io`].
pub fn write_default_file(data_dir: &Path) -> Result<bool, ConfigError> {
    let path = data_dir.join(CONFIG_FILE);
    let io = |source| ConfigError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut file) => {
            std::io::Write::write_all(&mut file, default_file_text().as_bytes()).map_err(io)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "ns = \"127.0.0.1:1001\"\nsb = \"127.0.0.1:1002\"\nhttp = \"127.0.0.1:1003\"\nbcrypt_cost = 5\n",
        )
        .unwrap();
        let env: HashMap<&str, &str> = [
            ("RELIVE_NS", "127.0.0.1:2001"),
            ("RELIVE_SB", "127.0.0.1:2002"),
        ]
        .into_iter()
        .collect();
        let lookup = |k: &str| env.get(k).map(|v| (*v).to_owned());
        let flags = Overrides {
            ns: Some("127.0.0.1:3001".parse().unwrap()),
            ..Overrides::default()
        };
        let s = resolve(dir.path(), &lookup, &flags).unwrap();
        assert_eq!(s.ns.port(), 3001); // flag
        assert_eq!(s.sb.port(), 2002); // env
        assert_eq!(s.http.port(), 1003); // file
        assert_eq!(s.https.port(), DEFAULT_HTTPS_PORT); // default
        assert_eq!(s.bcrypt_cost, 5);
        assert_eq!(s.ns_referral_host, s.public_host);
        assert_eq!(s.metrics, Some("127.0.0.1:9863".parse().unwrap()));
        let off = Overrides {
            metrics: Some("off".to_owned()),
            ..Overrides::default()
        };
        assert_eq!(resolve(dir.path(), &lookup, &off).unwrap().metrics, None);
    }

    #[test]
    fn bad_values_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        std::fs::write(dir.path().join(CONFIG_FILE), "nonsense = 1\n").unwrap();
        assert!(matches!(
            resolve(dir.path(), &none, &Overrides::default()),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::write(dir.path().join(CONFIG_FILE), "metrics = \"localhost\"\n").unwrap();
        assert!(matches!(
            resolve(dir.path(), &none, &Overrides::default()),
            Err(ConfigError::Invalid { key: "metrics", .. })
        ));
        std::fs::write(dir.path().join(CONFIG_FILE), "bcrypt_cost = 99\n").unwrap();
        assert!(matches!(
            resolve(dir.path(), &none, &Overrides::default()),
            Err(ConfigError::Invalid {
                key: "bcrypt_cost",
                ..
            })
        ));
        std::fs::remove_file(dir.path().join(CONFIG_FILE)).unwrap();
        let bad_env = |k: &str| (k == "RELIVE_CHL").then(|| "maybe".to_owned());
        assert!(matches!(
            resolve(dir.path(), &bad_env, &Overrides::default()),
            Err(ConfigError::Env {
                name: "RELIVE_CHL",
                ..
            })
        ));
    }

    #[test]
    fn the_commented_file_documents_every_default() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_default_file(dir.path()).unwrap());
        assert!(!write_default_file(dir.path()).unwrap());
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        // As written, it changes nothing.
        assert_eq!(
            Config::load(&dir.path().join(CONFIG_FILE)).unwrap(),
            Config::default()
        );
        // Uncommented (apart from the example referral host), it spells out the defaults.
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                (l.contains(" = ") || l.starts_with('['))
                    && !l.starts_with("ns_referral_host")
                    && !l.starts_with("sb_public_port")
                    && !l.starts_with("legacy_tls =")
                    && !l.starts_with("legacy_cert")
                    && !l.starts_with("legacy_key")
                    && !l.starts_with("public_ip")
                    && !l.starts_with("bind_ip")
                    && !l.starts_with("quic")
                    && !l.starts_with("remote")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed: Config = toml::from_str(&uncommented).unwrap();
        assert_eq!(parsed, Config::default());
        // Every key but the examples: 14 top-level, 11 in [passport], 6 in [passport.nexus],
        // 7 in [relay], 14 in [limits], 1 in [web].
        assert_eq!(
            uncommented.lines().filter(|l| l.contains(" = ")).count(),
            53
        );
        // The legacy-TLS examples are valid [passport] keys.
        let legacy: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                ["legacy_tls =", "legacy_cert", "legacy_key"]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let legacy: PassportSettings = toml::from_str(&legacy).unwrap();
        legacy.validate().unwrap();
        assert!(legacy.legacy_tls.is_some());
        // The standalone-relay examples are valid [relay] keys.
        let remote: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.starts_with("remote"))
            .map(|l| format!("{l}\n"))
            .collect();
        let remote: RelayConfig = toml::from_str(&remote).unwrap();
        let remote = remote.validate("203.0.113.1").unwrap();
        assert_eq!(
            remote.remote.map(|r| (r.host, r.port, r.server_name)),
            Some(("relay.example".to_owned(), 1865, "relay.example".to_owned()))
        );
    }
}
