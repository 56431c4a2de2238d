//! Abuse limits of the server, each in its own small part so the protocol code only asks:
//!
//! - [`connections`]: a pool of connections per listener (NS, SB, HTTP, HTTPS, legacy TLS), so
//!   a flood of one kind cannot take the places of the others, and a cap per source (an IPv4
//!   address or an IPv6 /64) within each pool; refusals are logged within a budget.
//! - [`lookups`]: the per-account throttle of list lookups (`ADD`, `REM`, `REA` of a contact,
//!   `FND`, SB `CAL`), so an account cannot probe handles at wire speed.
//! - The `[limits]` table of `relive.toml` ([`LimitsConfig`]) and its validated form
//!   ([`Limits`]), with the pre-login deadline the NS and HTTP connections keep.
//!
//! The login limiter (failures per account and source) is [`crate::passport::rate_limit`].

pub mod connections;
pub mod lookups;

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The raw `[limits]` table. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Percent of `max_connections` the NS listener may hold.
    pub ns_share: u8,
    /// Percent of `max_connections` the SB listener may hold.
    pub sb_share: u8,
    /// Percent of `max_connections` the plain-HTTP listener may hold.
    pub http_share: u8,
    /// Percent of `max_connections` the HTTPS listener may hold.
    pub https_share: u8,
    /// Percent of `max_connections` the legacy-TLS listener may hold.
    pub legacy_tls_share: u8,
    /// Connections one source may hold on the NS listener.
    pub ns_per_source: u32,
    /// Connections one source may hold on the SB listener (one per open chat).
    pub sb_per_source: u32,
    /// Connections one source may hold on each of the HTTP, HTTPS and legacy-TLS listeners.
    pub http_per_source: u32,
    /// Sources (CIDR) the per-source caps do not apply to, e.g. a reverse proxy or a
    /// campus NAT; they still count toward the listener's pool.
    pub exempt_sources: Vec<String>,
    /// Seconds an NS connection has, from connect, to log in.
    pub login_timeout_secs: u64,
    /// Seconds an HTTP, HTTPS or legacy-TLS connection may stay open, from connect.
    pub http_connection_secs: u64,
    /// Lines about refused connections written per minute (the rest are counted).
    pub refusal_log_per_minute: u32,
    /// List lookups an account may make at once before being slowed.
    pub lookup_burst: u32,
    /// List lookups per minute an account is slowed to after its burst.
    pub lookups_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            ns_share: 60,
            sb_share: 30,
            http_share: 4,
            https_share: 4,
            legacy_tls_share: 2,
            ns_per_source: 32,
            sb_per_source: 128,
            http_per_source: 32,
            exempt_sources: Vec::new(),
            login_timeout_secs: 60,
            http_connection_secs: 120,
            refusal_log_per_minute: 10,
            lookup_burst: 100,
            lookups_per_minute: 60,
        }
    }
}

/// Connections a listener may hold, and per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Connections at once on the listener.
    pub total: usize,
    /// Connections at once from one source.
    pub per_source: u32,
}

/// The validated `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// NS listener.
    pub ns: Pool,
    /// SB listener.
    pub sb: Pool,
    /// Plain-HTTP listener.
    pub http: Pool,
    /// HTTPS listener.
    pub https: Pool,
    /// Legacy-TLS listener.
    pub legacy_tls: Pool,
    /// Sources exempt from the per-source caps.
    pub exempt_sources: Vec<IpNet>,
    /// Time from connect to `USR OK` on the NS.
    pub login_timeout: Duration,
    /// Lifetime of an HTTP(S) connection.
    pub http_connection: Duration,
    /// Refusal log lines per minute.
    pub refusal_log_per_minute: u32,
    /// List-lookup burst per account.
    pub lookup_burst: u32,
    /// List lookups per minute per account after the burst.
    pub lookups_per_minute: u32,
}

fn invalid(key: &'static str, reason: &'static str) -> ConfigError {
    ConfigError::Invalid { key, reason }
}

impl LimitsConfig {
    /// Validates against the total `max_connections`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn validate(&self, max_connections: usize) -> Result<Limits, ConfigError> {
        let shares = [
            self.ns_share,
            self.sb_share,
            self.http_share,
            self.https_share,
            self.legacy_tls_share,
        ];
        if shares.iter().map(|s| u32::from(*s)).sum::<u32>() > 100 {
            return Err(invalid(
                "limits.ns_share",
                "the listeners' shares must add up to at most 100 (percent of max_connections)",
            ));
        }
        if shares.contains(&0) {
            return Err(invalid(
                "limits.ns_share",
                "every listener's share must be at least 1 percent",
            ));
        }
        if [self.ns_per_source, self.sb_per_source, self.http_per_source].contains(&0) {
            return Err(invalid(
                "limits.ns_per_source",
                "per-source limits must be at least 1",
            ));
        }
        let exempt_sources = self
            .exempt_sources
            .iter()
            .map(|s| s.parse::<IpNet>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                invalid(
                    "limits.exempt_sources",
                    "must be CIDR ranges such as \"10.0.0.0/8\"",
                )
            })?;
        if !(1..=3600).contains(&self.login_timeout_secs)
            || !(1..=86_400).contains(&self.http_connection_secs)
        {
            return Err(invalid(
                "limits.login_timeout_secs",
                "login_timeout_secs must be 1..=3600, http_connection_secs 1..=86400",
            ));
        }
        if self.lookup_burst == 0 || self.lookups_per_minute == 0 {
            return Err(invalid(
                "limits.lookup_burst",
                "lookup_burst and lookups_per_minute must be at least 1",
            ));
        }
        let pool = |share: u8, per_source: u32| Pool {
            total: (max_connections * usize::from(share) / 100).max(1),
            per_source,
        };
        Ok(Limits {
            ns: pool(self.ns_share, self.ns_per_source),
            sb: pool(self.sb_share, self.sb_per_source),
            http: pool(self.http_share, self.http_per_source),
            https: pool(self.https_share, self.http_per_source),
            legacy_tls: pool(self.legacy_tls_share, self.http_per_source),
            exempt_sources,
            login_timeout: Duration::from_secs(self.login_timeout_secs),
            http_connection: Duration::from_secs(self.http_connection_secs),
            refusal_log_per_minute: self.refusal_log_per_minute,
            lookup_burst: self.lookup_burst,
            lookups_per_minute: self.lookups_per_minute,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_shares_of_max_connections_and_bad_values_are_named() {
        let limits = LimitsConfig::default().validate(10_000).unwrap();
        assert_eq!(
            (limits.ns, limits.sb, limits.https),
            (
                Pool {
                    total: 6000,
                    per_source: 32
                },
                Pool {
                    total: 3000,
                    per_source: 128
                },
                Pool {
                    total: 400,
                    per_source: 32
                }
            )
        );
        let key = |c: LimitsConfig| match c.validate(10_000) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        let d = LimitsConfig::default;
        assert_eq!(
            key(LimitsConfig {
                ns_share: 70,
                ..d()
            }),
            "limits.ns_share"
        );
        assert_eq!(
            key(LimitsConfig {
                http_per_source: 0,
                ..d()
            }),
            "limits.ns_per_source"
        );
        assert_eq!(
            key(LimitsConfig {
                exempt_sources: vec!["10.0.0.0/33".into()],
                ..d()
            }),
            "limits.exempt_sources"
        );
        assert_eq!(
            key(LimitsConfig {
                login_timeout_secs: 0,
                ..d()
            }),
            "limits.login_timeout_secs"
        );
        assert!(toml::from_str::<LimitsConfig>("nope = 1").is_err());
    }
}
