//! Small abuse-limit primitives shared by the relay and the server (which embeds the relay):
//! who counts as one source ([`SourceKey`]: an IPv4 address, or an IPv6 /64), a per-source
//! counter of open things with a cap ([`SourceCounts`]), and a budget for log lines about
//! refusals ([`LogBudget`]) so that one client cannot fill the log.
//!
//! No I/O, no async; time is passed in where it matters.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Leading bits of an IPv6 address that name one source: a /64 is what one subscriber line
/// or one LAN gets, so counting finer would let one host rotate through 2^64 addresses.
pub const IPV6_SOURCE_PREFIX: u32 = 64;

/// One source of connections or login attempts: an IPv4 address (IPv4-mapped IPv6 addresses
/// count as that address), or an IPv6 address's /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey(IpAddr);

impl SourceKey {
    /// The source `ip` belongs to.
    ///
    /// ```
    /// use relive_relay::limits::SourceKey;
    /// let a = SourceKey::of("2001:db8:1:2::1".parse().unwrap());
    /// assert_eq!(a, SourceKey::of("2001:db8:1:2:ffff::9".parse().unwrap()));
    /// assert_ne!(a, SourceKey::of("2001:db8:1:3::1".parse().unwrap()));
    /// assert_eq!(
    ///     SourceKey::of("::ffff:192.0.2.7".parse().unwrap()),
    ///     SourceKey::of("192.0.2.7".parse().unwrap())
    /// );
    /// ```
    #[must_use]
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let mask = u128::MAX << (128 - IPV6_SOURCE_PREFIX);
                    Self(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
                }
            },
        }
    }

    /// The address that stands for the source (an IPv6 /64 with its host bits cleared).
    #[must_use]
    pub const fn ip(self) -> IpAddr {
        self.0
    }
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/{IPV6_SOURCE_PREFIX}"),
        }
    }
}

/// Why [`SourceCounts::acquire`] said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CountRefused {
    /// The source holds its share already.
    #[error("too many from this source")]
    Source,
    /// Every place is taken.
    #[error("no place left")]
    Full,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<SourceKey, u32>,
}

/// Things open at once (connections, handshakes), counted per [`SourceKey`] with a cap per
/// source and a cap overall. Memory is one map entry per source with something open.
#[derive(Debug)]
pub struct SourceCounts {
    per_source: u32,
    total: usize,
    counts: Mutex<Counts>,
}

impl SourceCounts {
    /// At most `per_source` open per source and `total` overall (both at least 1).
    #[must_use]
    pub fn new(per_source: u32, total: usize) -> Self {
        Self {
            per_source: per_source.max(1),
            total: total.max(1),
            counts: Mutex::new(Counts::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Every update is one increment or decrement: a poisoned map is still consistent.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place for `source`; give it back with [`SourceCounts::release`].
    ///
    /// # Errors
    ///
    /// [`CountRefused`] when the source or the whole is at its cap.
    pub fn acquire(&self, source: SourceKey) -> Result<(), CountRefused> {
        self.acquire_within(source, self.per_source)
    }

    /// [`SourceCounts::acquire`] with another cap for this source (`u32::MAX` for a source
    /// the operator exempted: it still counts toward the total).
    ///
    /// # Errors
    ///
    /// [`CountRefused`] when the source or the whole is at its cap.
    pub fn acquire_within(&self, source: SourceKey, per_source: u32) -> Result<(), CountRefused> {
        let mut counts = self.lock();
        if counts.total >= self.total {
            return Err(CountRefused::Full);
        }
        let n = counts.by_source.entry(source).or_insert(0);
        if *n >= per_source {
            return Err(CountRefused::Source);
        }
        *n += 1;
        counts.total += 1;
        Ok(())
    }

    /// Gives back a place [`SourceCounts::acquire`] took for `source`.
    pub fn release(&self, source: SourceKey) {
        let mut counts = self.lock();
        if let Some(n) = counts.by_source.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_source.remove(&source);
            }
            counts.total = counts.total.saturating_sub(1);
        }
    }

    /// Places taken by `source` now.
    #[must_use]
    pub fn held_by(&self, source: SourceKey) -> u32 {
        self.lock().by_source.get(&source).copied().unwrap_or(0)
    }

    /// Places taken overall now.
    #[must_use]
    pub fn held(&self) -> usize {
        self.lock().total
    }

    /// Sources holding something now (the map's size: what this costs in memory).
    #[must_use]
    pub fn sources(&self) -> usize {
        self.lock().by_source.len()
    }
}

#[derive(Debug)]
struct Window {
    started: Option<Instant>,
    used: u32,
    suppressed: u64,
}

/// At most `per_window` log lines per window; the rest are counted and the count is handed to
/// the next line allowed, so nothing is lost from the record but one client cannot make the
/// server write a line per connection attempt.
#[derive(Debug)]
pub struct LogBudget {
    per_window: u32,
    window: Duration,
    state: Mutex<Window>,
}

impl LogBudget {
    /// `per_window` lines per `window`.
    #[must_use]
    pub const fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            state: Mutex::new(Window {
                started: None,
                used: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether a line may be written at `now`: `Some(n)` with the number of lines suppressed
    /// since the last one written (log it with the line), or `None` (count it, write nothing).
    pub fn take(&self, now: Instant) -> Option<u64> {
        let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if w.started
            .is_none_or(|s| now.saturating_duration_since(s) >= self.window)
        {
            w.started = Some(now);
            w.used = 0;
        }
        if w.used >= self.per_window {
            w.suppressed += 1;
            return None;
        }
        w.used += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_slash_64s() {
        let a = SourceKey::of(ip("2001:db8:aa:bb:1:2:3:4"));
        assert_eq!(a.ip(), ip("2001:db8:aa:bb::"));
        assert_eq!(a.to_string(), "2001:db8:aa:bb::/64");
        assert_eq!(SourceKey::of(ip("192.0.2.1")).to_string(), "192.0.2.1");
        assert_ne!(
            SourceKey::of(ip("192.0.2.1")),
            SourceKey::of(ip("192.0.2.2"))
        );
    }

    #[test]
    fn counts_are_capped_per_source_and_overall_and_given_back() {
        let counts = SourceCounts::new(2, 3);
        let (a, b, c) = (
            SourceKey::of(ip("192.0.2.1")),
            SourceKey::of(ip("2001:db8::1")),
            SourceKey::of(ip("198.51.100.1")),
        );
        assert_eq!(counts.acquire(a), Ok(()));
        assert_eq!(counts.acquire(a), Ok(()));
        assert_eq!(counts.acquire(a), Err(CountRefused::Source));
        // Another address of the same /64 is the same source.
        assert_eq!(counts.acquire(b), Ok(()));
        assert_eq!(
            counts.acquire(SourceKey::of(ip("2001:db8::ffff"))),
            Err(CountRefused::Full)
        );
        assert_eq!(counts.acquire(c), Err(CountRefused::Full));
        counts.release(a);
        assert_eq!(counts.acquire(c), Ok(()));
        assert_eq!(
            (counts.held(), counts.held_by(a), counts.sources()),
            (3, 1, 3)
        );
        for s in [a, b, c] {
            counts.release(s);
        }
        // Releasing what was never taken changes nothing.
        counts.release(c);
        assert_eq!((counts.held(), counts.sources()), (0, 0));
    }

    #[test]
    fn the_log_budget_counts_what_it_suppresses() {
        let budget = LogBudget::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(budget.take(t0), Some(0));
        assert_eq!(budget.take(t0), Some(0));
        for _ in 0..5 {
            assert_eq!(budget.take(t0 + Duration::from_secs(1)), None);
        }
        // A new window: the first line carries the five suppressed ones.
        assert_eq!(budget.take(t0 + Duration::from_secs(60)), Some(5));
        assert_eq!(budget.take(t0 + Duration::from_secs(61)), Some(0));
        assert_eq!(budget.take(t0 + Duration::from_secs(61)), None);
    }
}
