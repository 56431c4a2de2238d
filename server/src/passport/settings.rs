//! Passport settings: the `PassportURLs` nexus value, ticket and rate-limit limits, and the
//! optional legacy-TLS listener. One `[passport]` table in `relive.toml`; every key optional.
//!
//! The nexus value is built from parts because real clients disagree on what `DALogin` may
//! hold (PROTOCOL.md §2.3.3, PATCHER.md §1.1 and §2.4):
//!
//! ```text
//! PassportURLs: DARealm=<realm>,DALogin=[<scheme>://]<host>[:<port>]<path>[,<extra>...]
//! ```
//!
//! An empty `realm` leaves `DARealm` out: `realm = ""`, `extra = []` gives the bare
//! `DALogin=<url>` that Escargot answers and msnp11-sdk requires (it takes the whole value as
//! the login URL once `DALogin=` is removed; research notes for issue 16, §5.3).
//!
//! With the default parts (scheme `""`, port `https`) the login follows the listener the nexus
//! was asked on ([`NexusSettings::passport_urls_for`]): over HTTPS the official bare
//! `host:<https port>/login2.srf`; over the legacy-TLS listener its port; over plain HTTP
//! `http://host:<http port>/login2.srf`, for clients patched to sign in over plain HTTP
//! (`relive-patch --http-login`), which then need no certificate. Any other scheme or port
//! gives every listener the same answer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::login::Transport;
use super::rate_limit::RateLimitSettings;
use super::tickets::{MAX_TICKET_LIFETIME, TicketSettings};

/// An invalid `[passport]` setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting passport.{key}: {reason}")]
pub struct PassportSettingsError {
    /// The key.
    pub key: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// Which port goes into `DALogin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum DaLoginPort {
    /// A literal port number.
    Number(u16),
    /// A port named after a listener, or none.
    Named(NamedPort),
}

/// Listener-relative port choices for `DALogin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NamedPort {
    /// The HTTPS (rustls) listener's port (the default).
    Https,
    /// The plain HTTP listener's port.
    Http,
    /// The legacy-TLS listener's port (omitted if that listener is off).
    Legacy,
    /// No port: the client uses its default (443 for the official clients, which prepend
    /// `https://` to a bare `host/path`).
    Omit,
}

/// The parts of the `PassportURLs` header value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NexusSettings {
    /// `DARealm` value.
    pub realm: String,
    /// Scheme in front of `DALogin` (`"http"`, `"https"`), or `""` for the official bare
    /// `host/path` form.
    pub scheme: String,
    /// Host in `DALogin`; `""` means the server's `public_host`.
    pub host: String,
    /// Port in `DALogin`.
    pub port: DaLoginPort,
    /// Path of the login endpoint (must start with `/`).
    pub path: String,
    /// Further `Key=Value` fields appended verbatim (`ConfigVersion`, `DAReg`, ...).
    pub extra: Vec<String>,
}

impl Default for NexusSettings {
    fn default() -> Self {
        Self {
            realm: "Passport.Net".to_owned(),
            scheme: String::new(),
            host: String::new(),
            port: DaLoginPort::Named(NamedPort::Https),
            path: "/login2.srf".to_owned(),
            extra: vec!["ConfigVersion=1".to_owned()],
        }
    }
}

/// Where the server's listeners are, as clients reach them; what [`NexusSettings`] resolves
/// against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The advertised host (`public_host`).
    pub public_host: String,
    /// Port of the plain HTTP listener.
    pub http_port: u16,
    /// Port of the HTTPS listener.
    pub https_port: u16,
    /// Port of the legacy-TLS listener, if it runs.
    pub legacy_port: Option<u16>,
}

impl Endpoints {
    /// The plain-HTTP base URL of this server (`http://host` or `http://host:port`, no trailing
    /// slash): where the links the NS hands out (`URL`, `CVR`) point.
    #[must_use]
    pub fn website(&self) -> String {
        match self.http_port {
            80 => format!("http://{}", self.public_host),
            port => format!("http://{}:{port}", self.public_host),
        }
    }
}

/// A header-safe component: printable ASCII without commas, quotes or spaces.
fn is_component(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_graphic() && b != b',' && b != b'"' && b != b'\'')
}

impl NexusSettings {
    /// Checks every part.
    ///
    /// # Errors
    ///
    /// [`PassportSettingsError`] naming the first bad key.
    pub fn validate(&self) -> Result<(), PassportSettingsError> {
        let bad = |key, reason| Err(PassportSettingsError { key, reason });
        if !is_component(&self.realm) {
            return bad(
                "nexus.realm",
                "must be printable ASCII without , ' \" or spaces",
            );
        }
        if !matches!(self.scheme.as_str(), "" | "http" | "https") {
            return bad("nexus.scheme", "must be \"\", \"http\" or \"https\"");
        }
        if !is_component(&self.host) || self.host.len() > 253 {
            return bad("nexus.host", "must be a host name or IP address");
        }
        let path_ok = self.path.starts_with('/')
            && self.path.len() <= 256
            && self
                .path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._~-".contains(&b));
        if !path_ok {
            return bad(
                "nexus.path",
                "must start with / and hold only letters, digits and / . _ ~ -",
            );
        }
        if self.extra.len() > 32
            || self
                .extra
                .iter()
                .any(|f| !is_component(f) || !f.contains('=') || f.len() > 512)
        {
            return bad(
                "nexus.extra",
                "fields must be Key=Value without , ' \" or spaces",
            );
        }
        if self.port == DaLoginPort::Number(0) {
            return bad(
                "nexus.port",
                "must be 1..=65535, https, http, legacy or omit",
            );
        }
        Ok(())
    }

    /// The `DALogin` value for `endpoints`.
    #[must_use]
    pub fn da_login(&self, endpoints: &Endpoints) -> String {
        let host = if self.host.is_empty() {
            endpoints.public_host.as_str()
        } else {
            self.host.as_str()
        };
        let port = match self.port {
            DaLoginPort::Number(n) => Some(n),
            DaLoginPort::Named(NamedPort::Https) => Some(endpoints.https_port),
            DaLoginPort::Named(NamedPort::Http) => Some(endpoints.http_port),
            DaLoginPort::Named(NamedPort::Legacy) => endpoints.legacy_port,
            DaLoginPort::Named(NamedPort::Omit) => None,
        };
        let mut out = String::new();
        if !self.scheme.is_empty() {
            out.push_str(&self.scheme);
            out.push_str("://");
        }
        // A bare IPv6 address needs brackets before a port.
        if host.contains(':') && !host.starts_with('[') {
            out.push('[');
            out.push_str(host);
            out.push(']');
        } else {
            out.push_str(host);
        }
        if let Some(port) = port {
            out.push(':');
            out.push_str(&port.to_string());
        }
        out.push_str(&self.path);
        out
    }

    /// Whether the login named in the answer follows the listener the nexus was asked on:
    /// the default parts (scheme `""`, port `https`); see the module doc.
    #[must_use]
    pub fn follows_listener(&self) -> bool {
        self.scheme.is_empty() && self.port == DaLoginPort::Named(NamedPort::Https)
    }

    /// The `PassportURLs` value for a nexus request that came in over `transport`.
    #[must_use]
    pub fn passport_urls_for(&self, endpoints: &Endpoints, transport: Transport) -> String {
        if !self.follows_listener() {
            return self.passport_urls(endpoints);
        }
        let (scheme, port) = match transport {
            Transport::Tls => return self.passport_urls(endpoints),
            Transport::LegacyTls => ("", NamedPort::Legacy),
            Transport::Plain => ("http", NamedPort::Http),
        };
        Self {
            scheme: scheme.to_owned(),
            port: DaLoginPort::Named(port),
            ..self.clone()
        }
        .passport_urls(endpoints)
    }

    /// The whole `PassportURLs` header value for `endpoints`.
    #[must_use]
    pub fn passport_urls(&self, endpoints: &Endpoints) -> String {
        let mut out = if self.realm.is_empty() {
            format!("DALogin={}", self.da_login(endpoints))
        } else {
            format!(
                "DARealm={},DALogin={}",
                self.realm,
                self.da_login(endpoints)
            )
        };
        for field in &self.extra {
            out.push(',');
            out.push_str(field);
        }
        out
    }
}

/// The `[passport]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassportSettings {
    /// The nexus `PassportURLs` value.
    pub nexus: NexusSettings,
    /// Ticket lifetime in seconds (1..=120).
    pub ticket_lifetime_secs: u64,
    /// Most tickets held at once.
    pub max_tickets: usize,
    /// Failed logins of one account from one source allowed at full speed.
    pub login_slow_after: u32,
    /// Failed logins of one account from one source after which that source's attempts on the
    /// account are refused until some have decayed.
    pub login_refuse_after: u32,
    /// Spacing in seconds required after the first slowed-down failure (doubles each time).
    pub login_delay_secs: u64,
    /// One failure is forgiven per this many seconds.
    pub login_decay_secs: u64,
    /// Failed logins of one source over all accounts after which it is refused (spraying).
    pub login_source_refuse_after: u32,
    /// Failed logins of one account over all sources after which every attempt on it is
    /// delayed (never refused).
    pub login_account_delay_after: u32,
    /// The longest such delay, in milliseconds: what the owner of an account under attack
    /// waits at worst.
    pub login_max_delay_ms: u64,
    /// Most (account, source) pairs, sources and accounts tracked by the limiter (each).
    pub login_max_tracked: usize,
    /// Accept bcrypt passwords (on accounts that allow them) over plain HTTP too. Off: a
    /// password only travels inside TLS; access tokens are accepted on every listener.
    pub password_over_plain_http: bool,
    /// Bind address of the legacy-TLS listener (TLS 1.0, RSA key exchange, 3DES) for Windows
    /// XP; off when absent.
    pub legacy_tls: Option<SocketAddr>,
    /// RSA certificate chain (PEM) for the legacy listener; generated in
    /// `<data-dir>/tls/legacy/` when absent.
    pub legacy_cert: Option<PathBuf>,
    /// RSA private key (PEM) for the legacy listener.
    pub legacy_key: Option<PathBuf>,
}

impl Default for PassportSettings {
    fn default() -> Self {
        let limits = RateLimitSettings::default();
        Self {
            nexus: NexusSettings::default(),
            ticket_lifetime_secs: MAX_TICKET_LIFETIME.as_secs(),
            max_tickets: TicketSettings::default().capacity,
            login_slow_after: limits.slow_after,
            login_refuse_after: limits.refuse_after,
            login_delay_secs: limits.base_delay.as_secs(),
            login_decay_secs: limits.decay.as_secs(),
            login_source_refuse_after: limits.source_refuse_after,
            login_account_delay_after: limits.account_delay_after,
            login_max_delay_ms: u64::try_from(limits.max_delay.as_millis()).unwrap_or(u64::MAX),
            login_max_tracked: limits.max_keys,
            password_over_plain_http: false,
            legacy_tls: None,
            legacy_cert: None,
            legacy_key: None,
        }
    }
}

impl PassportSettings {
    /// Checks every value.
    ///
    /// # Errors
    ///
    /// [`PassportSettingsError`] naming the first bad key.
    pub fn validate(&self) -> Result<(), PassportSettingsError> {
        self.nexus.validate()?;
        let bad = |key, reason| Err(PassportSettingsError { key, reason });
        if !(1..=MAX_TICKET_LIFETIME.as_secs()).contains(&self.ticket_lifetime_secs) {
            return bad("ticket_lifetime_secs", "must be 1..=120");
        }
        if !(1..=1_000_000).contains(&self.max_tickets) {
            return bad("max_tickets", "must be 1..=1000000");
        }
        if self.login_refuse_after == 0 || self.login_slow_after > self.login_refuse_after {
            return bad(
                "login_refuse_after",
                "must be at least 1 and at least login_slow_after",
            );
        }
        if !(1..=86_400).contains(&self.login_decay_secs) {
            return bad("login_decay_secs", "must be 1..=86400");
        }
        if self.login_delay_secs > self.login_decay_secs {
            return bad("login_delay_secs", "must not exceed login_decay_secs");
        }
        if self.login_source_refuse_after == 0 {
            return bad("login_source_refuse_after", "must be at least 1");
        }
        if self.login_account_delay_after == 0 {
            return bad("login_account_delay_after", "must be at least 1");
        }
        if self.login_max_delay_ms > 30_000 {
            return bad(
                "login_max_delay_ms",
                "must be at most 30000 (clients give up on slower logins)",
            );
        }
        if !(1..=1_000_000).contains(&self.login_max_tracked) {
            return bad("login_max_tracked", "must be 1..=1000000");
        }
        if self.legacy_cert.is_some() != self.legacy_key.is_some() {
            return bad("legacy_cert", "legacy_cert and legacy_key go together");
        }
        Ok(())
    }

    /// The ticket store limits.
    #[must_use]
    pub fn tickets(&self) -> TicketSettings {
        TicketSettings {
            lifetime: Duration::from_secs(self.ticket_lifetime_secs),
            capacity: self.max_tickets,
        }
    }

    /// The rate limiter limits.
    #[must_use]
    pub fn rate_limit(&self) -> RateLimitSettings {
        RateLimitSettings {
            slow_after: self.login_slow_after,
            refuse_after: self.login_refuse_after,
            base_delay: Duration::from_secs(self.login_delay_secs),
            decay: Duration::from_secs(self.login_decay_secs),
            source_refuse_after: self.login_source_refuse_after,
            account_delay_after: self.login_account_delay_after,
            max_delay: Duration::from_millis(self.login_max_delay_ms),
            max_keys: self.login_max_tracked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Endpoints {
        Endpoints {
            public_host: "chat.example.org".to_owned(),
            http_port: 8080,
            https_port: 8443,
            legacy_port: Some(8444),
        }
    }

    #[test]
    fn the_default_is_public_host_and_https_port_without_scheme() {
        let s = PassportSettings::default();
        s.validate().unwrap();
        assert_eq!(
            s.nexus.passport_urls(&endpoints()),
            "DARealm=Passport.Net,DALogin=chat.example.org:8443/login2.srf,ConfigVersion=1"
        );
    }

    #[test]
    fn by_default_the_login_follows_the_listener_the_nexus_was_asked_on() {
        let nexus = PassportSettings::default().nexus;
        assert!(nexus.follows_listener());
        let urls = |transport| nexus.passport_urls_for(&endpoints(), transport);
        assert_eq!(
            urls(Transport::Tls),
            "DARealm=Passport.Net,DALogin=chat.example.org:8443/login2.srf,ConfigVersion=1"
        );
        assert_eq!(
            urls(Transport::LegacyTls),
            "DARealm=Passport.Net,DALogin=chat.example.org:8444/login2.srf,ConfigVersion=1"
        );
        assert_eq!(
            urls(Transport::Plain),
            "DARealm=Passport.Net,DALogin=http://chat.example.org:8080/login2.srf,\
             ConfigVersion=1"
        );
        // A configured scheme or port is the one answer everywhere.
        let pinned: PassportSettings = toml::from_str("[nexus]\nport = 443").unwrap();
        assert!(!pinned.nexus.follows_listener());
        for transport in [Transport::Tls, Transport::LegacyTls, Transport::Plain] {
            assert_eq!(
                pinned.nexus.passport_urls_for(&endpoints(), transport),
                "DARealm=Passport.Net,DALogin=chat.example.org:443/login2.srf,ConfigVersion=1"
            );
        }
    }

    #[test]
    fn every_client_family_form_can_be_configured_from_toml() {
        // A client that wants a full plain-HTTP URL.
        let http: PassportSettings =
            toml::from_str("[nexus]\nscheme = \"http\"\nport = \"http\"\nextra = []").unwrap();
        http.validate().unwrap();
        assert_eq!(
            http.nexus.passport_urls(&endpoints()),
            "DARealm=Passport.Net,DALogin=http://chat.example.org:8080/login2.srf"
        );
        // The official form: bare host/path, reached on 443.
        let bare: PassportSettings = toml::from_str(
            "[nexus]\nhost = \"login.passport.com\"\nport = \"omit\"\nextra = [\"ConfigVersion=11\"]",
        )
        .unwrap();
        assert_eq!(
            bare.nexus.da_login(&endpoints()),
            "login.passport.com/login2.srf"
        );
        let numbered: PassportSettings =
            toml::from_str("[nexus]\nscheme = \"https\"\nport = 443\nhost = \"::1\"").unwrap();
        assert_eq!(
            numbered.nexus.da_login(&endpoints()),
            "https://[::1]:443/login2.srf"
        );
        let legacy: PassportSettings = toml::from_str("[nexus]\nport = \"legacy\"").unwrap();
        assert_eq!(
            legacy.nexus.da_login(&endpoints()),
            "chat.example.org:8444/login2.srf"
        );
    }

    #[test]
    fn bad_values_are_rejected_by_name() {
        let mut s = PassportSettings::default();
        s.nexus.host = "a,b".to_owned();
        assert_eq!(s.validate().unwrap_err().key, "nexus.host");
        let mut s = PassportSettings::default();
        s.nexus.scheme = "ftp".to_owned();
        assert_eq!(s.validate().unwrap_err().key, "nexus.scheme");
        let s = PassportSettings {
            ticket_lifetime_secs: 121,
            ..PassportSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().key, "ticket_lifetime_secs");
        let s = PassportSettings {
            legacy_key: Some("k.pem".into()),
            ..PassportSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().key, "legacy_cert");
        let mut s = PassportSettings::default();
        s.nexus.path = "/log in".to_owned();
        assert_eq!(s.validate().unwrap_err().key, "nexus.path");
        assert!(toml::from_str::<PassportSettings>("nope = 1").is_err());
    }
}
