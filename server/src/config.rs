//! Configuration: the raw `relive.toml` ([`Config`]), environment and flag overrides, and the
//! validated [`Settings`] the rest of the server sees.
//!
//! Precedence, highest first: command-line flags, `RELIVE_*` environment variables (both read by
//! clap from [`Overrides`], so `--help` shows each flag with its variable), `relive.toml` in the
//! data directory, built-in defaults.
//!
//! The commented `relive.toml` written on first start is generated ([`default_file_text`]) from
//! one table of documented keys ([`KEYS`]), the defaults of [`Config`] (serialized) and the
//! flags/variables of [`Overrides`]; a test checks that the table covers every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::data_dir::KEY_FILE;
use crate::limits::{Limits, LimitsConfig};
use crate::passport::PassportSettings;
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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
    /// The server key file (relative: in the data directory); unset: `secret.key` there.
    pub key_file: Option<PathBuf>,
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
    /// The `[store]` table: where accounts and lists are kept.
    pub store: StoreConfig,
    /// The `[cluster]` table: several nodes over NATS (absent `node_id`: one node).
    pub cluster: crate::cluster::ClusterConfig,
}

/// The `[store]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://…` (or `postgresql://…`): keep the data in PostgreSQL instead of the
    /// embedded SQLite file `relive.db`. Unset: SQLite.
    pub url: Option<String>,
    /// PostgreSQL only: connections running operations at once (1..=64). SQLite always runs
    /// one writer.
    pub pool_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: crate::store::DEFAULT_PG_POOL,
        }
    }
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
            key_file: None,
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
            store: StoreConfig::default(),
            cluster: crate::cluster::ClusterConfig::default(),
        }
    }
}

/// Settings that can be given as command-line flags or `RELIVE_*` environment variables (clap
/// reads both; a flag beats its variable); `None` means "not given". They override
/// `relive.toml`. Flattened into every subcommand of `relive-server` (global flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// NS (and dispatch) bind address.
    #[arg(long, global = true, env = "RELIVE_NS", value_name = "ADDR")]
    pub ns: Option<SocketAddr>,
    /// Switchboard bind address.
    #[arg(long, global = true, env = "RELIVE_SB", value_name = "ADDR")]
    pub sb: Option<SocketAddr>,
    /// HTTP bind address.
    #[arg(long, global = true, env = "RELIVE_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// HTTPS bind address.
    #[arg(long, global = true, env = "RELIVE_HTTPS", value_name = "ADDR")]
    pub https: Option<SocketAddr>,
    /// Prometheus `/metrics` bind address, or `off` (default 127.0.0.1:9863: this host only).
    #[arg(long, global = true, env = "RELIVE_METRICS", value_name = "ADDR|off")]
    pub metrics: Option<String>,
    /// Host name or IP clients are told to connect to.
    #[arg(long, global = true, env = "RELIVE_PUBLIC_HOST", value_name = "HOST")]
    pub public_host: Option<String>,
    /// Host handed out in `XFR NS` referrals, if different from the public host.
    #[arg(
        long,
        global = true,
        env = "RELIVE_NS_REFERRAL_HOST",
        value_name = "HOST"
    )]
    pub ns_referral_host: Option<String>,
    /// The server key file (`key_file`; default: secret.key in the data directory).
    #[arg(long, global = true, env = "RELIVE_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// bcrypt cost for account passwords (4..=31).
    #[arg(long, global = true, env = "RELIVE_BCRYPT_COST", value_name = "COST")]
    pub bcrypt_cost: Option<u32>,
    /// Maximum forward-list entries.
    #[arg(long, global = true, env = "RELIVE_MAX_FL", value_name = "N")]
    pub max_fl: Option<usize>,
    /// Maximum entries on each of the allow and block lists.
    #[arg(long, global = true, env = "RELIVE_MAX_AL_BL", value_name = "N")]
    pub max_al_bl: Option<usize>,
    /// Maximum simultaneous client connections over all listeners.
    #[arg(long, global = true, env = "RELIVE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Send `CHL` challenges to MSNP6+ clients.
    #[arg(long, global = true, env = "RELIVE_CHL", value_name = "BOOL")]
    pub chl: Option<bool>,
    /// Keep the data in PostgreSQL (`postgres://…`) instead of the embedded SQLite file.
    #[arg(long, global = true, env = "RELIVE_STORE_URL", value_name = "URL")]
    pub store_url: Option<String>,
    /// PostgreSQL connections running store operations at once (`[store] pool_size`).
    #[arg(long, global = true, env = "RELIVE_STORE_POOL_SIZE", value_name = "N")]
    pub store_pool_size: Option<usize>,
    /// Cluster mode: this node's id (`[cluster] node_id`; unset: a single node).
    #[arg(
        id = "cluster_node_id",
        long = "node-id",
        global = true,
        env = "RELIVE_NODE_ID",
        value_name = "ID"
    )]
    pub node_id: Option<String>,
    /// Cluster mode: the NATS server (`[cluster] nats_url`).
    #[arg(
        id = "cluster_nats_url",
        long = "nats-url",
        global = true,
        env = "RELIVE_NATS_URL",
        value_name = "URL"
    )]
    pub nats_url: Option<String>,
    /// Cluster mode: the network's name (`[cluster] name`).
    #[arg(
        id = "cluster_name",
        long = "cluster-name",
        global = true,
        env = "RELIVE_CLUSTER_NAME",
        value_name = "NAME"
    )]
    pub cluster_name: Option<String>,
    /// Cluster mode: what this node serves, comma-separated: ns, sb, ds (`[cluster] roles`).
    #[arg(
        id = "cluster_roles",
        long = "roles",
        global = true,
        env = "RELIVE_ROLES",
        value_name = "ROLES",
        value_delimiter = ','
    )]
    pub roles: Option<Vec<String>>,
    /// Cluster mode: milliseconds between heartbeats (`[cluster] heartbeat_ms`).
    #[arg(
        id = "cluster_heartbeat_ms",
        long = "heartbeat-ms",
        global = true,
        env = "RELIVE_HEARTBEAT_MS",
        value_name = "MS"
    )]
    pub heartbeat_ms: Option<u64>,
    /// Cluster mode: silence after which a peer is taken for dead, ms (`[cluster]
    /// dead_after_ms`).
    #[arg(
        id = "cluster_dead_after_ms",
        long = "dead-after-ms",
        global = true,
        env = "RELIVE_DEAD_AFTER_MS",
        value_name = "MS"
    )]
    pub dead_after_ms: Option<u64>,
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
    /// PostgreSQL connection URL; `None`: the embedded SQLite file.
    pub store_url: Option<String>,
    /// PostgreSQL connections (`[store] pool_size`, validated).
    pub store_pool: usize,
    /// Cluster mode (`None`: a single node).
    pub cluster: Option<crate::cluster::ClusterSettings>,
    /// The server key file as configured (see [`Self::key_path`]).
    pub key_file: Option<PathBuf>,
}

impl Settings {
    /// Store options derived from these settings.
    #[must_use]
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            bcrypt_cost: self.bcrypt_cost,
            limits: self.limits,
            pool_size: self.store_pool,
        }
    }

    /// Path of the server key: `key_file` (relative to the data directory), else
    /// `<data-dir>/secret.key`.
    #[must_use]
    pub fn key_path(&self) -> PathBuf {
        self.data_dir
            .join(self.key_file.as_deref().unwrap_or(Path::new(KEY_FILE)))
    }

    /// Path of the database file.
    #[must_use]
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("relive.db")
    }
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

    /// Applies what was given as flags or environment variables.
    pub fn apply_overrides(&mut self, o: &Overrides) {
        fn set<T: Clone>(value: &Option<T>, slot: &mut T) {
            if let Some(v) = value {
                slot.clone_from(v);
            }
        }
        set(&o.ns, &mut self.ns);
        set(&o.sb, &mut self.sb);
        set(&o.http, &mut self.http);
        set(&o.https, &mut self.https);
        set(&o.metrics, &mut self.metrics);
        set(&o.public_host, &mut self.public_host);
        if o.ns_referral_host.is_some() {
            self.ns_referral_host.clone_from(&o.ns_referral_host);
        }
        set(&o.bcrypt_cost, &mut self.bcrypt_cost);
        set(&o.max_fl, &mut self.max_fl);
        set(&o.max_al_bl, &mut self.max_al_bl);
        set(&o.max_connections, &mut self.max_connections);
        set(&o.chl, &mut self.chl);
        if o.store_url.is_some() {
            self.store.url.clone_from(&o.store_url);
        }
        set(&o.store_pool_size, &mut self.store.pool_size);
        if o.node_id.is_some() {
            self.cluster.node_id.clone_from(&o.node_id);
        }
        set(&o.nats_url, &mut self.cluster.nats_url);
        set(&o.cluster_name, &mut self.cluster.name);
        set(&o.roles, &mut self.cluster.roles);
        set(&o.heartbeat_ms, &mut self.cluster.heartbeat_ms);
        set(&o.dead_after_ms, &mut self.cluster.dead_after_ms);
        if o.key_file.is_some() {
            self.key_file.clone_from(&o.key_file);
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
        if let Some(url) = &self.store.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                key: "store.url",
                reason: "must be a postgres:// URL (leave it unset for the embedded SQLite file)",
            });
        }
        let store_pool = self.store.pool_size;
        if !(1..=crate::store::MAX_PG_POOL).contains(&store_pool) {
            return Err(ConfigError::Invalid {
                key: "store.pool_size",
                reason: "must be 1..=64",
            });
        }
        let cluster = self.cluster.validate().map_err(|e| ConfigError::Invalid {
            key: e.key,
            reason: e.reason,
        })?;
        if self
            .key_file
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            return Err(ConfigError::Invalid {
                key: "key_file",
                reason: "must be a file name (leave it unset for secret.key in the data directory)",
            });
        }
        Ok(Settings {
            key_file: self.key_file,
            store_url: self.store.url,
            store_pool,
            cluster,
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

/// Builds [`Settings`] for `data_dir` from the file and `overrides` (flags and environment).
///
/// # Errors
///
/// Any [`ConfigError`].
pub fn resolve(data_dir: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
    let mut config = Config::load(&data_dir.join(CONFIG_FILE))?;
    config.apply_overrides(overrides);
    config.validate(data_dir.to_path_buf())
}

/// One documented key of `relive.toml`.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The table it sits in (`""`: top level, `"passport.nexus"`: a nested table).
    pub table: &'static str,
    /// Its name.
    pub name: &'static str,
    /// What it does, one comment line per line; a leading blank line separates groups. Empty
    /// for the later keys of a group the first key's text covers.
    pub doc: &'static str,
    /// An example value, for keys that are unset by default (the file shows the default
    /// otherwise).
    pub example: Option<&'static str>,
}

const fn key(table: &'static str, name: &'static str, doc: &'static str) -> Key {
    Key {
        table,
        name,
        doc,
        example: None,
    }
}

const fn example(
    table: &'static str,
    name: &'static str,
    doc: &'static str,
    example: &'static str,
) -> Key {
    Key {
        table,
        name,
        doc,
        example: Some(example),
    }
}

/// What each table is for, written above its header.
pub const TABLES: &[(&str, &str)] = &[
    (
        "passport",
        "Passport 1.4 (MSNP8+ logins: nexus, login2.srf, tickets).",
    ),
    (
        "passport.nexus",
        "The nexus PassportURLs value: DARealm=<realm>,DALogin=[<scheme>://]<host>[:<port>]<path>.\n\
         With the default scheme and port the login follows the listener the nexus was asked\n\
         on: bare host:<https port> over HTTPS, the legacy port over legacy TLS, and\n\
         http://host:<http port> over plain HTTP (clients patched with --http-login). Any\n\
         other scheme or port is the one answer on every listener.",
    ),
    (
        "relay",
        "The relay: rewrites file-transfer invitations and carries transfers across NAT.",
    ),
    ("limits", "Limits against floods and probing."),
    (
        "cluster",
        "Cluster mode: several nodes sharing one network over NATS (docs/DESIGN.md\n\
         \"Scale-out\"). Without node_id the server is a single node and none of this applies.\n\
         Every node has its own data directory with the same secret.key and the same CA\n\
         (tls/relive-ca.crt, tls/ca.key, tls/ca.name, copied from the first node), and the\n\
         same database ([store] url). It prints \"cluster peers: ...\" when peers come and go.",
    ),
    (
        "web",
        "The website (on the HTTP and HTTPS listeners). `relive-server user admin EMAIL` opens\n\
         the admin pages to an account.",
    ),
    (
        "store",
        "Where accounts, lists and tokens are kept: the embedded SQLite file relive.db unless\n\
         a PostgreSQL URL is set. secret.key stays in the data directory either way (tokens\n\
         only decrypt with it). `relive-server migrate-store --to URL` copies relive.db there.",
    ),
];

/// Every key of `relive.toml`, in the order the written file lists them, with its
/// documentation: the one source of the commented file ([`default_file_text`]).
pub const KEYS: &[Key] = &[
    key(
        "",
        "ns",
        "Where the notification server (and dispatch) listens.",
    ),
    key("", "sb", "Where the switchboard listens."),
    key(
        "",
        "http",
        "Plain HTTP (nexus, login, MsgrConfig, the pages the client's links open, the CA\n\
         certificate at /relive-ca.crt).",
    ),
    key("", "https", "HTTPS (rustls)."),
    key(
        "",
        "metrics",
        "Prometheus metrics (GET /metrics), or \"off\". The default answers this host only; a\n\
         scraper elsewhere needs e.g. \"0.0.0.0:9863\" (and a firewall that admits only it).",
    ),
    key(
        "",
        "public_host",
        "\nHost name or IP address clients are told to connect to; also goes in the certificate.",
    ),
    example(
        "",
        "ns_referral_host",
        "Host handed out in XFR NS referrals when it differs from public_host.",
        "\"ns.example.com\"",
    ),
    example(
        "",
        "key_file",
        "\nThe server key (encrypts access tokens; cluster nodes derive their switchboard cookie key\n\
         from it), relative to the data directory. Created on first start if missing. Default:\n\
         secret.key in the data directory. Every node of a cluster needs the same key: point\n\
         them all at one shared file (the first node to start creates it).",
        "\"/cluster/secret.key\"",
    ),
    key(
        "",
        "bcrypt_cost",
        "\nbcrypt cost for account passwords (4..=31).",
    ),
    key("", "max_fl", "Maximum forward-list entries."),
    key(
        "",
        "max_al_bl",
        "Maximum entries on each of the allow and block lists.",
    ),
    key(
        "",
        "max_connections",
        "Maximum simultaneous client connections over all listeners (each user holds one NS\n\
         connection, plus one SB connection per open chat), shared out among the listeners\n\
         by [limits]. The server raises its open-file limit to fit, if the system allows.",
    ),
    key("", "chl", "Send CHL challenges to MSNP6+ clients."),
    key(
        "",
        "chl_timeout_secs",
        "Seconds a CHL may go unanswered before the client is disconnected.",
    ),
    example(
        "",
        "sb_public_port",
        "\nPort clients are told for the switchboard (XFR SB, RNG) when it differs from the\n\
         listener's, e.g. behind port forwarding. Default: the SB listener's port.",
        "1864",
    ),
    key(
        "",
        "ns_idle_timeout_secs",
        "Close an NS connection after this many seconds of silence (clients ping every ~50 s).",
    ),
    key(
        "",
        "sb_auth_timeout_secs",
        "Close an SB connection that has not authenticated within this many seconds.",
    ),
    key(
        "passport",
        "ticket_lifetime_secs",
        "Seconds a login ticket stays valid (1..=120), and most tickets held at once.",
    ),
    key("passport", "max_tickets", ""),
    key(
        "passport",
        "login_slow_after",
        "Failed logins (Passport, MD5, CTP, TWN, relay agents) slow the attacker, never the\n\
         owner. Per account and source (an IPv4 address or an IPv6 /64): full speed up to\n\
         login_slow_after, then spaced by login_delay_secs (doubling), refused from\n\
         login_refuse_after on. A source with login_source_refuse_after failures over all\n\
         accounts is refused. An account with login_account_delay_after failures over all\n\
         sources has every attempt delayed, by at most login_max_delay_ms, never refused:\n\
         the right token from a source that has not failed always gets in. One failure is\n\
         forgiven every login_decay_secs.",
    ),
    key("passport", "login_refuse_after", ""),
    key("passport", "login_delay_secs", ""),
    key("passport", "login_decay_secs", ""),
    key("passport", "login_source_refuse_after", ""),
    key("passport", "login_account_delay_after", ""),
    key("passport", "login_max_delay_ms", ""),
    key(
        "passport",
        "login_max_tracked",
        "Most (account, source) pairs, sources and accounts the limiter tracks (each).",
    ),
    key(
        "passport",
        "password_over_plain_http",
        "Accept account passwords (not only access tokens) over plain HTTP too.",
    ),
    example(
        "passport",
        "legacy_tls",
        "Legacy TLS listener (TLS 1.0, RSA, 3DES) for Windows XP; off unless set. Its RSA\n\
         certificates are generated in <data-dir>/tls/legacy/ unless legacy_cert/legacy_key\n\
         name existing PEM files. XP users import legacy-ca.crt (`relive-server cert export`).\n\
         Needs a server built with the `legacy-tls` feature (the default).",
        "\"0.0.0.0:8444\"",
    ),
    example("passport", "legacy_cert", "", "\"/path/to/chain.pem\""),
    example("passport", "legacy_key", "", "\"/path/to/key.pem\""),
    key(
        "passport.nexus",
        "realm",
        "realm: \"\" leaves DARealm out (and with an empty extra list the value is the bare\n\
         DALogin=<url> some clients, e.g. msnp11-sdk, require).",
    ),
    key(
        "passport.nexus",
        "scheme",
        "scheme: \"\" (bare host/path, as the official service), \"http\" or \"https\".",
    ),
    key("passport.nexus", "host", "host: \"\" means public_host."),
    key(
        "passport.nexus",
        "port",
        "port: a number, or \"https\", \"http\", \"legacy\" (that listener's port), or \"omit\".",
    ),
    key("passport.nexus", "path", ""),
    key("passport.nexus", "extra", ""),
    key("relay", "enabled", ""),
    example(
        "relay",
        "public_ip",
        "Public IP written into invitations. Default: public_host, if it is an IP address\n\
         (otherwise the relay stays off until this is set).",
        "\"203.0.113.1\"",
    ),
    example(
        "relay",
        "bind_ip",
        "Address and TCP port range of relay allocations (0 and 0: the OS chooses). Each\n\
         allocation also listens on port XOR 0x3141 (MSNFTP PortX) when that is in range.\n\
         Default address: the NS listener's (all addresses unless ns says otherwise).",
        "\"0.0.0.0\"",
    ),
    key("relay", "port_min", ""),
    key("relay", "port_max", ""),
    key(
        "relay",
        "vpn_ranges",
        "VPN ranges peers reach each other on (Hamachi, Radmin).",
    ),
    example(
        "relay",
        "quic",
        "QUIC (UDP) address companion agents connect to. Default: the NS listener's\n\
         address, port 1865.",
        "\"0.0.0.0:1865\"",
    ),
    key(
        "relay",
        "per_user_limit",
        "Concurrent relay allocations per user (a rendezvous holds two).",
    ),
    key(
        "relay",
        "msnftp_rendezvous",
        "MSNFTP rendezvous: both peers dial the relay, which splices them. Experimental:\n\
         unverified against real MSN 5.0+ senders (Sender-Connect), hence off.",
    ),
    key(
        "relay",
        "slp_fallback",
        "MSN 6+: send over the switchboard when no direct connection can work.",
    ),
    example(
        "relay",
        "remote",
        "Use a standalone relay (`relive-relay serve` on another host) instead of the\n\
         embedded one: its QUIC address, the control-secret and relay-cert.pem files it wrote\n\
         on first start (copied here; relative paths are in the data directory), and the name\n\
         its certificate carries (default: the host of `remote`). Set public_ip to the relay\n\
         host's public IP; bind_ip, port_min/max and per_user_limit are then the relay's own\n\
         flags, and quic is the local address of the control connection (default: any).\n\
         Agents then connect to the standalone relay (with --ca relay-cert.pem).",
        "\"relay.example:1865\"",
    ),
    example(
        "relay",
        "remote_secret_file",
        "",
        "\"relay-control-secret\"",
    ),
    example("relay", "remote_ca", "", "\"relay-cert.pem\""),
    example("relay", "remote_name", "", "\"relay.example\""),
    key(
        "limits",
        "ns_share",
        "Each listener has its own pool, a share (percent) of max_connections, so a flood of\n\
         one kind cannot take the places of the others; the shares add up to at most 100.",
    ),
    key("limits", "sb_share", ""),
    key("limits", "http_share", ""),
    key("limits", "https_share", ""),
    key("limits", "legacy_tls_share", ""),
    key(
        "limits",
        "ns_per_source",
        "Connections one source (an IPv4 address, or an IPv6 /64) may hold on the NS, on the\n\
         SB (one per open chat), and on each HTTP listener; more are closed at once.",
    ),
    key("limits", "sb_per_source", ""),
    key("limits", "http_per_source", ""),
    key(
        "limits",
        "exempt_sources",
        "Sources the per-source limits do not apply to (a reverse proxy, a campus NAT).",
    ),
    key(
        "limits",
        "login_timeout_secs",
        "Seconds an NS connection has from connect to log in (however it trickles bytes);\n\
         an SB connection has sb_auth_timeout_secs. HTTP connections are closed\n\
         http_connection_secs after connect.",
    ),
    key("limits", "http_connection_secs", ""),
    key(
        "limits",
        "refusal_log_per_minute",
        "Lines about refused connections per minute; the rest are counted in the next line.",
    ),
    key(
        "limits",
        "lookup_burst",
        "Commands that name another user (ADD, REM, REA, FND, CAL): lookup_burst at once per\n\
         account, then lookups_per_minute (answers come later, never differently).",
    ),
    key("limits", "lookups_per_minute", ""),
    example(
        "cluster",
        "node_id",
        "This node's id (letters, digits, - and _), unique in the network.",
        "\"ns1\"",
    ),
    key(
        "cluster",
        "nats_url",
        "The NATS server every node connects to (core NATS: JetStream is not needed).",
    ),
    key(
        "cluster",
        "name",
        "The network's name: nodes with the same name on one NATS server form one network.",
    ),
    key(
        "cluster",
        "roles",
        "What this node serves: \"ns\" (logins, presence), \"sb\" (switchboards), \"ds\"\n\
         (dispatch: refers each login to an NS node with XFR NS).",
    ),
    key(
        "cluster",
        "heartbeat_ms",
        "Milliseconds between heartbeats; a node silent for dead_after_ms is taken for dead\n\
         (its users go offline everywhere and nobody is referred to it).",
    ),
    key("cluster", "dead_after_ms", ""),
    key(
        "web",
        "registration",
        "Who may register: \"open\" (anyone), \"invite\" (with an unused invite code from an\n\
         admin) or \"closed\" (nobody; use `relive-server user add`).",
    ),
    example(
        "store",
        "url",
        "PostgreSQL instead of relive.db: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, or a\n\
         Unix socket directory as ?host=/run/postgresql. The schema is created and migrated at\n\
         start. `backup` and `restore` are for relive.db only; use pg_dump with PostgreSQL.",
        "\"postgres://relive@localhost/relive\"",
    ),
    key(
        "store",
        "pool_size",
        "PostgreSQL only: connections running operations at once (1..=64), each one\n\
         transaction; concurrent commits share PostgreSQL's WAL flushes. SQLite has one writer.",
    ),
];

/// The [`Overrides`] field of `key`: its name, prefixed by its table (`store_url`).
fn flag_id(key: &Key) -> String {
    match key.table {
        "" => key.name.to_owned(),
        table => format!("{}_{}", table.replace('.', "_"), key.name),
    }
}

/// The flag and environment variable of each setting [`Overrides`] has, by key.
fn flags() -> Vec<(String, String, String)> {
    use clap::Args as _;
    Overrides::augment_args(clap::Command::new("relive-server"))
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let env = arg.get_env()?.to_str()?;
            Some((arg.get_id().to_string(), long.to_owned(), env.to_owned()))
        })
        .collect()
}

/// The default of `key` as TOML, from the serialized [`Config::default`].
fn default_value(defaults: &toml::Table, key: &Key) -> Option<String> {
    let mut table = defaults;
    for part in key.table.split('.').filter(|p| !p.is_empty()) {
        table = table.get(part)?.as_table()?;
    }
    table.get(key.name).map(toml::Value::to_string)
}

/// The commented `relive.toml` written on first start: every key of [`KEYS`], commented out,
/// at its default (or an example where it has none), with its documentation, and for the
/// settings [`Overrides`] has, their flag and environment variable.
#[must_use]
pub fn default_file_text() -> String {
    use std::fmt::Write as _;
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let flags = flags();
    let mut out = String::from(
        "# Relive server configuration. Every key is optional; the values shown are the defaults.\n\
         # Precedence: command-line flags > RELIVE_* environment variables > this file > defaults.\n\
         \n",
    );
    let comment = |out: &mut String, text: &str| {
        for line in text.lines() {
            let _ = writeln!(out, "# {line}");
        }
    };
    let mut table = "";
    for key in KEYS {
        if key.table != table {
            table = key.table;
            out.push('\n');
            let doc = TABLES.iter().find(|(t, _)| *t == table).map_or("", |t| t.1);
            comment(&mut out, doc);
            let _ = writeln!(out, "# [{table}]");
        }
        let doc = match key.doc.strip_prefix('\n') {
            Some(rest) => {
                out.push('\n');
                rest
            }
            None => key.doc,
        };
        comment(&mut out, doc);
        if let Some((_, long, env)) = flags.iter().find(|(id, ..)| *id == flag_id(key)) {
            let _ = writeln!(out, "# Env: {env}, flag: --{long}.");
        }
        if let Some(value) = key
            .example
            .map(str::to_owned)
            .or_else(|| default_value(&defaults, key))
        {
            let _ = writeln!(out, "# {} = {value}", key.name);
        }
    }
    out
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
    use super::*;

    #[test]
    fn overrides_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "ns = \"127.0.0.1:1001\"\nsb = \"127.0.0.1:1002\"\nhttp = \"127.0.0.1:1003\"\nbcrypt_cost = 5\n",
        )
        .unwrap();
        let flags = Overrides {
            ns: Some("127.0.0.1:3001".parse().unwrap()),
            chl: Some(true),
            ..Overrides::default()
        };
        let s = resolve(dir.path(), &flags).unwrap();
        assert_eq!(s.ns.port(), 3001); // flag or env
        assert!(s.chl);
        assert_eq!(s.sb.port(), 1002); // file
        assert_eq!(s.https.port(), DEFAULT_HTTPS_PORT); // default
        assert_eq!(s.bcrypt_cost, 5);
        assert_eq!(s.ns_referral_host, s.public_host);
        assert_eq!(s.metrics, Some("127.0.0.1:9863".parse().unwrap()));
        let off = Overrides {
            metrics: Some("off".to_owned()),
            ..Overrides::default()
        };
        assert_eq!(resolve(dir.path(), &off).unwrap().metrics, None);
    }

    /// Every `[cluster]` key has the flag README names (an operator or a container sets a
    /// node up without editing its `relive.toml`).
    #[test]
    fn cluster_flags_set_the_cluster_table() {
        use clap::FromArgMatches as _;
        let cli = <Overrides as clap::Args>::augment_args(clap::Command::new("t"));
        let matches = cli
            .try_get_matches_from([
                "t",
                "--node-id",
                "ns1",
                "--nats-url",
                "nats://10.0.0.5:4222",
                "--cluster-name",
                "net",
                "--roles",
                "ds,ns",
                "--heartbeat-ms",
                "200",
                "--dead-after-ms",
                "1000",
            ])
            .unwrap();
        let o = Overrides::from_arg_matches(&matches).unwrap();
        let mut config = Config::default();
        config.apply_overrides(&o);
        let c = config.cluster.validate().unwrap().unwrap();
        assert_eq!(
            (c.node_id.as_str(), c.nats_url.as_str(), c.name.as_str()),
            ("ns1", "nats://10.0.0.5:4222", "net")
        );
        assert!(c.ds && c.ns && !c.sb);
        assert_eq!(c.heartbeat, Duration::from_millis(200));
        assert_eq!(c.dead_after, Duration::from_millis(1000));
    }

    /// What a container sets per node: the roles (comma-separated, as `RELIVE_ROLES` gives
    /// them) and a key file shared by the nodes; relative key files are in the data directory.
    #[test]
    fn roles_and_key_file_come_from_the_environment() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            overrides: Overrides,
        }
        let dir = tempfile::tempdir().unwrap();
        let cli = Cli::try_parse_from([
            "relive-server",
            "--node-id",
            "ds",
            "--roles",
            "ds,sb",
            "--key-file",
            "/cluster/secret.key",
        ])
        .unwrap();
        let s = resolve(dir.path(), &cli.overrides).unwrap();
        let cluster = s.cluster.as_ref().unwrap();
        assert!(cluster.ds && cluster.sb && !cluster.ns);
        assert_eq!(s.key_path(), Path::new("/cluster/secret.key"));
        let s = resolve(dir.path(), &Overrides::default()).unwrap();
        assert_eq!(s.key_path(), dir.path().join("secret.key"));
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "key_file = \"keys/node.key\"\n",
        )
        .unwrap();
        let s = resolve(dir.path(), &Overrides::default()).unwrap();
        assert_eq!(s.key_path(), dir.path().join("keys/node.key"));
    }

    #[test]
    fn bad_values_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "nonsense = 1\n").unwrap();
        assert!(matches!(
            resolve(dir.path(), &Overrides::default()),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::write(dir.path().join(CONFIG_FILE), "metrics = \"localhost\"\n").unwrap();
        assert!(matches!(
            resolve(dir.path(), &Overrides::default()),
            Err(ConfigError::Invalid { key: "metrics", .. })
        ));
        std::fs::write(dir.path().join(CONFIG_FILE), "bcrypt_cost = 99\n").unwrap();
        assert!(matches!(
            resolve(dir.path(), &Overrides::default()),
            Err(ConfigError::Invalid {
                key: "bcrypt_cost",
                ..
            })
        ));
        // Flags and variables are clap's: a bad value stops the parse, naming the variable.
        let mut cli = <Overrides as clap::Args>::augment_args(clap::Command::new("t"));
        let err = cli
            .try_get_matches_from_mut(["t", "--chl", "maybe"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
        assert!(
            cli.render_long_help()
                .to_string()
                .contains("[env: RELIVE_CHL=")
        );
    }

    /// Every key path of a TOML table, `table.key`.
    fn paths(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in table {
            match v.as_table() {
                Some(inner) => paths(inner, &format!("{prefix}{k}."), out),
                None => out.push(format!("{prefix}{k}")),
            }
        }
    }

    #[test]
    fn the_key_table_documents_every_key_of_the_file_once() {
        let mut documented: Vec<String> = KEYS
            .iter()
            .map(|k| match k.table {
                "" => k.name.to_owned(),
                t => format!("{t}.{}", k.name),
            })
            .collect();
        let mut sorted = documented.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), documented.len(), "a key documented twice");
        // Keys unset by default serialize to nothing: they must have an example instead.
        let mut set = Vec::new();
        paths(
            &toml::Table::try_from(Config::default()).unwrap(),
            "",
            &mut set,
        );
        let examples: Vec<String> = KEYS
            .iter()
            .filter(|k| k.example.is_some())
            .map(|k| match k.table {
                "" => k.name.to_owned(),
                t => format!("{t}.{}", k.name),
            })
            .collect();
        set.extend(examples);
        set.sort();
        documented.sort();
        assert_eq!(documented, set);
        // Every table but the top level has its header text, and every flag names a key.
        for key in KEYS.iter().filter(|k| !k.table.is_empty()) {
            assert!(TABLES.iter().any(|(t, _)| *t == key.table), "{}", key.table);
        }
        for (id, ..) in flags() {
            assert!(KEYS.iter().any(|k| flag_id(k) == id), "{id}");
        }
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
                    && !l.starts_with("url =")
                    && !l.starts_with("node_id")
                    && !l.starts_with("key_file")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed: Config = toml::from_str(&uncommented).unwrap();
        assert_eq!(parsed, Config::default());
        // Every key but the examples: 14 top-level, 11 in [passport], 6 in [passport.nexus],
        // 7 in [relay], 14 in [limits], 1 in [web], 1 in [store], 5 in [cluster]. Each
        // documented setting says its flag and variable.
        assert!(text.contains("# Env: RELIVE_MAX_CONNECTIONS, flag: --max-connections.\n"));
        assert_eq!(
            uncommented.lines().filter(|l| l.contains(" = ")).count(),
            59
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
