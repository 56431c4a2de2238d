//! Connection accounting for the accept loops: one pool per listener, a cap per source within
//! each, and a budget for the log lines refusals cause.
//!
//! ```text
//! accept ──▶ ConnectionLimits::admit(kind, peer ip) ──▶ Admission (held by the connection's
//!                           │                           task; dropping it frees the place)
//!                           └─▶ Refusal: the socket is closed at once, a line within budget
//! ```
//!
//! Pools are separate, so 10,000 idle connections to the HTTPS port leave the NS pool
//! untouched, and within a pool one source (an IPv4 address or an IPv6 /64,
//! [`SourceKey`]) holds at most its share, so one address cannot fill a pool either. Sources
//! the operator exempted (`[limits] exempt_sources`) skip the per-source cap, not the pool.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use relive_relay::limits::{CountRefused, LogBudget, SourceCounts, SourceKey};

use super::{Limits, Pool};
use crate::net::Kind;

/// Listeners in the order of [`index`].
const KINDS: [Kind; 5] = [Kind::Ns, Kind::Sb, Kind::Http, Kind::Https, Kind::Legacy];

const fn index(kind: Kind) -> usize {
    match kind {
        Kind::Ns => 0,
        Kind::Sb => 1,
        Kind::Http => 2,
        Kind::Https => 3,
        Kind::Legacy => 4,
    }
}

/// The pools of every listener. Share it behind an `Arc`.
#[derive(Debug)]
pub struct ConnectionLimits {
    pools: [SourceCounts; 5],
    exempt: Vec<IpNet>,
    log: LogBudget,
    refused: [AtomicU64; 5],
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The source holds its share of this listener already.
    #[error("per-source limit")]
    Source,
    /// The listener's pool is full.
    #[error("listener full")]
    Full,
}

/// A connection's place in its pool, given back when dropped.
#[derive(Debug)]
pub struct Admission {
    limits: Arc<ConnectionLimits>,
    kind: Kind,
    source: SourceKey,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.limits.pools[index(self.kind)].release(self.source);
    }
}

impl ConnectionLimits {
    /// The pools of `limits`.
    #[must_use]
    pub fn new(limits: &Limits) -> Self {
        let pool = |p: Pool| SourceCounts::new(p.per_source, p.total);
        Self {
            pools: [
                pool(limits.ns),
                pool(limits.sb),
                pool(limits.http),
                pool(limits.https),
                pool(limits.legacy_tls),
            ],
            exempt: limits.exempt_sources.clone(),
            log: LogBudget::new(limits.refusal_log_per_minute, Duration::from_secs(60)),
            refused: Default::default(),
        }
    }

    /// A place for a connection from `ip` on `kind`'s listener, or why not (the refusal is
    /// counted, and logged if the budget allows).
    ///
    /// # Errors
    ///
    /// [`Refusal`]: close the connection.
    pub fn admit(self: &Arc<Self>, kind: Kind, ip: IpAddr) -> Result<Admission, Refusal> {
        let source = SourceKey::of(ip);
        let pool = &self.pools[index(kind)];
        let taken = if self.exempt.iter().any(|net| net.contains(&ip)) {
            pool.acquire_within(source, u32::MAX)
        } else {
            pool.acquire(source)
        };
        match taken {
            Ok(()) => Ok(Admission {
                limits: Arc::clone(self),
                kind,
                source,
            }),
            Err(why) => {
                let refusal = match why {
                    CountRefused::Source => Refusal::Source,
                    _ => Refusal::Full,
                };
                self.refused[index(kind)].fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = self.log.take(Instant::now()) {
                    tracing::warn!(
                        listener = kind.as_str(),
                        %source,
                        reason = %refusal,
                        suppressed,
                        "connection refused"
                    );
                }
                Err(refusal)
            }
        }
    }

    /// Connections open on `kind`'s listener now.
    #[must_use]
    pub fn open(&self, kind: Kind) -> usize {
        self.pools[index(kind)].held()
    }

    /// Connections `ip`'s source holds on `kind`'s listener now.
    #[must_use]
    pub fn open_from(&self, kind: Kind, ip: IpAddr) -> u32 {
        self.pools[index(kind)].held_by(SourceKey::of(ip))
    }

    /// Connections refused on `kind`'s listener since start.
    #[must_use]
    pub fn refused(&self, kind: Kind) -> u64 {
        self.refused[index(kind)].load(Ordering::Relaxed)
    }

    /// Connections refused on every listener since start.
    #[must_use]
    pub fn refused_total(&self) -> u64 {
        KINDS.iter().map(|k| self.refused(*k)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LimitsConfig;

    fn limits(exempt: &[&str]) -> Arc<ConnectionLimits> {
        let config = LimitsConfig {
            ns_per_source: 2,
            http_per_source: 3,
            exempt_sources: exempt.iter().map(|s| (*s).to_owned()).collect(),
            ..LimitsConfig::default()
        };
        // NS pool: 60 % of 10 = 6; HTTPS: 4 % of 10 → 1 (at least one).
        Arc::new(ConnectionLimits::new(&config.validate(10).unwrap()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_listener_has_its_pool_and_each_source_its_share() {
        let l = limits(&[]);
        let a = l.admit(Kind::Ns, ip("192.0.2.1")).unwrap();
        let _b = l.admit(Kind::Ns, ip("192.0.2.1")).unwrap();
        assert_eq!(
            l.admit(Kind::Ns, ip("192.0.2.1")).unwrap_err(),
            Refusal::Source
        );
        // Another source, another listener: unaffected.
        let _c = l.admit(Kind::Ns, ip("192.0.2.2")).unwrap();
        let https = l.admit(Kind::Https, ip("192.0.2.1")).unwrap();
        assert_eq!(
            l.admit(Kind::Https, ip("192.0.2.9")).unwrap_err(),
            Refusal::Full
        );
        assert_eq!(l.open(Kind::Ns), 3);
        assert_eq!(l.open_from(Kind::Ns, ip("192.0.2.1")), 2);
        // Dropping an admission frees its place.
        drop(a);
        drop(https);
        assert!(l.admit(Kind::Ns, ip("192.0.2.1")).is_ok());
        assert!(l.admit(Kind::Https, ip("192.0.2.9")).is_ok());
        assert_eq!(l.refused(Kind::Ns), 1);
        assert_eq!(l.refused_total(), 2);
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source_and_exempt_sources_only_meet_the_pool() {
        let l = limits(&["10.0.0.0/8"]);
        let _a = l.admit(Kind::Ns, ip("2001:db8:0:1::1")).unwrap();
        let _b = l.admit(Kind::Ns, ip("2001:db8:0:1::2")).unwrap();
        assert_eq!(
            l.admit(Kind::Ns, ip("2001:db8:0:1:ffff::3")).unwrap_err(),
            Refusal::Source
        );
        let _c = l.admit(Kind::Ns, ip("2001:db8:0:2::1")).unwrap();
        let held: Vec<_> = (0..3)
            .map(|_| l.admit(Kind::Ns, ip("10.1.2.3")).unwrap())
            .collect();
        assert_eq!(held.len(), 3);
        assert_eq!(
            l.admit(Kind::Ns, ip("10.1.2.3")).unwrap_err(),
            Refusal::Full
        );
    }
}
