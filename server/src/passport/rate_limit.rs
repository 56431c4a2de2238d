//! Brute-force protection for logins: failures are counted per account handle and per source
//! address, and a key with too many recent failures is first slowed down, then refused.
//!
//! Each key keeps a failure count that decays by one every [`RateLimitSettings::decay`], so a
//! legitimate user who mistyped, or whose account is being attacked, always gets back in after
//! at most `refuse_after × decay` without a new failure. With `n` recent failures:
//!
//! - `n < slow_after`: allowed.
//! - `slow_after ≤ n < refuse_after`: allowed only once `base_delay × 2^(n − slow_after)`
//!   (capped at `decay`) has passed since the last failure; earlier attempts are refused with
//!   the time to wait. This is the "slow down" step, and it costs the server no sleeping task.
//! - `n ≥ refuse_after`: refused until the count has decayed below `refuse_after`.
//!
//! A refused attempt is not checked at all (no bcrypt, no token look-up) and does not count as
//! a failure. The HTTP side answers `503` with `Retry-After`; the NS side answers `911`.
//! A success clears the account's count, never the address's (else an attacker could clear
//! their address by logging in to an account of their own between guesses).
//!
//! Memory is bounded: each map holds at most [`RateLimitSettings::max_keys`] keys. When full, keys
//! whose count has decayed to zero are dropped; if none has, the key with the fewest failures is
//! evicted. Time is passed in (`now`) so tests need no sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest decay interval accepted.
pub const MAX_DECAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Limits of the login rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Failures allowed at full speed.
    pub slow_after: u32,
    /// Failures after which attempts are refused outright.
    pub refuse_after: u32,
    /// Spacing required after the first slowed-down failure; doubles with each further one.
    pub base_delay: Duration,
    /// One failure is forgiven per this interval.
    pub decay: Duration,
    /// Most keys tracked per map (accounts, addresses).
    pub max_keys: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            slow_after: 3,
            refuse_after: 10,
            base_delay: Duration::from_secs(2),
            decay: Duration::from_secs(60),
            max_keys: 10_000,
        }
    }
}

/// An attempt that must not be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins; retry in {} s", retry_after.as_secs())]
pub struct Refused {
    /// How long until the attempt would be allowed (if no further failure happens).
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    /// When the failure count was last brought up to date (decay is counted from here).
    decayed_at: Instant,
    last_failure: Instant,
}

impl Record {
    fn decay(&mut self, now: Instant, decay: Duration) {
        let elapsed = now.saturating_duration_since(self.decayed_at);
        let steps = elapsed.as_nanos() / decay.as_nanos().max(1);
        let steps = u32::try_from(steps).unwrap_or(u32::MAX);
        if steps >= self.failures {
            self.failures = 0;
            self.decayed_at = now;
        } else {
            self.failures -= steps;
            self.decayed_at += decay * steps;
        }
    }
}

#[derive(Debug)]
struct Table<K> {
    records: HashMap<K, Record>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new() -> Self {
        Self {
            records: HashMap::new(),
        }
    }

    fn check(&mut self, key: &K, now: Instant, s: &RateLimitSettings) -> Result<(), Refused> {
        let Some(record) = self.records.get_mut(key) else {
            return Ok(());
        };
        record.decay(now, s.decay);
        let n = record.failures;
        if n >= s.refuse_after {
            // Wait until enough failures have decayed to get below the threshold.
            let excess = n - s.refuse_after + 1;
            let until = record.decayed_at + s.decay * excess;
            return Err(Refused {
                retry_after: until.saturating_duration_since(now),
            });
        }
        if n >= s.slow_after {
            let shift = (n - s.slow_after).min(16);
            let spacing = (s.base_delay * (1u32 << shift)).min(s.decay);
            let allowed_at = record.last_failure + spacing;
            if now < allowed_at {
                return Err(Refused {
                    retry_after: allowed_at - now,
                });
            }
        }
        Ok(())
    }

    fn fail(&mut self, key: K, now: Instant, s: &RateLimitSettings) {
        if !self.records.contains_key(&key) && self.records.len() >= s.max_keys {
            self.make_room(now, s);
        }
        let record = self.records.entry(key).or_insert(Record {
            failures: 0,
            decayed_at: now,
            last_failure: now,
        });
        record.decay(now, s.decay);
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
    }

    fn make_room(&mut self, now: Instant, s: &RateLimitSettings) {
        self.records.retain(|_, r| {
            r.decay(now, s.decay);
            r.failures > 0
        });
        if self.records.len() >= s.max_keys {
            let weakest = self
                .records
                .iter()
                .min_by_key(|(_, r)| (r.failures, r.last_failure))
                .map(|(k, _)| k.clone());
            if let Some(key) = weakest {
                self.records.remove(&key);
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    accounts: Table<String>,
    addresses: Table<IpAddr>,
}

/// Failure counts per account handle and per source address. Share it behind an `Arc`.
#[derive(Debug)]
pub struct RateLimiter {
    settings: RateLimitSettings,
    inner: Mutex<Inner>,
}

/// The key of an account: its handle, lower-cased. Unknown handles are counted too, so the
/// limiter's behaviour does not reveal whether an account exists.
fn account_key(handle: &str) -> String {
    handle.to_ascii_lowercase()
}

impl RateLimiter {
    /// A limiter with no history. `refuse_after` is raised to at least `slow_after` and 1,
    /// `max_keys` to at least 1; `decay` is clamped to 1 ms ..= [`MAX_DECAY`] and `base_delay`
    /// to at most `decay`.
    #[must_use]
    pub fn new(settings: RateLimitSettings) -> Self {
        let refuse_after = settings.refuse_after.max(settings.slow_after).max(1);
        // Bounded so that no arithmetic on instants can overflow.
        let decay = settings.decay.clamp(Duration::from_millis(1), MAX_DECAY);
        Self {
            settings: RateLimitSettings {
                refuse_after,
                max_keys: settings.max_keys.max(1),
                decay,
                base_delay: settings.base_delay.min(decay),
                ..settings
            },
            inner: Mutex::new(Inner {
                accounts: Table::new(),
                addresses: Table::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Counters only: a poisoned lock at worst forgets or keeps one failure.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a login attempt for `handle` from `addr` may be checked at `now`.
    ///
    /// # Errors
    ///
    /// [`Refused`] with the longer of the two waits when the account or the address is limited.
    pub fn check(&self, handle: &str, addr: IpAddr, now: Instant) -> Result<(), Refused> {
        let key = account_key(handle);
        let mut inner = self.lock();
        let account = inner.accounts.check(&key, now, &self.settings);
        let address = inner.addresses.check(&addr, now, &self.settings);
        match (account, address) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) => Err(Refused {
                retry_after: a.retry_after.max(b.retry_after),
            }),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        }
    }

    /// Records a failed attempt (wrong secret, unknown account) against both keys.
    pub fn record_failure(&self, handle: &str, addr: IpAddr, now: Instant) {
        let key = account_key(handle);
        let mut inner = self.lock();
        inner.accounts.fail(key, now, &self.settings);
        inner.addresses.fail(addr, now, &self.settings);
    }

    /// Records a successful login: clears the account's failures (not the address's).
    pub fn record_success(&self, handle: &str) {
        let key = account_key(handle);
        self.lock().accounts.records.remove(&key);
    }

    /// Number of keys tracked (accounts plus addresses), for tests and metrics.
    #[must_use]
    pub fn tracked(&self) -> usize {
        let inner = self.lock();
        inner.accounts.records.len() + inner.addresses.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice@example.com";

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn settings() -> RateLimitSettings {
        RateLimitSettings {
            slow_after: 2,
            refuse_after: 4,
            base_delay: Duration::from_secs(1),
            decay: Duration::from_secs(10),
            max_keys: 100,
        }
    }

    #[test]
    fn failures_slow_down_then_refuse_then_decay_back_to_normal() {
        let limiter = RateLimiter::new(settings());
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Two failures at full speed.
        for ms in [0, 1] {
            assert_eq!(limiter.check(ALICE, ip(1), at(ms)), Ok(()));
            limiter.record_failure(ALICE, ip(1), at(ms));
        }
        // Third attempt must wait 1 s after the last failure.
        assert_eq!(
            limiter.check(ALICE, ip(1), at(500)),
            Err(Refused {
                retry_after: Duration::from_millis(501)
            })
        );
        assert_eq!(limiter.check(ALICE, ip(1), at(1001)), Ok(()));
        limiter.record_failure(ALICE, ip(1), at(1001));
        // Fourth: 2 s spacing.
        assert!(limiter.check(ALICE, ip(1), at(2500)).is_err());
        assert_eq!(limiter.check(ALICE, ip(1), at(3001)), Ok(()));
        limiter.record_failure(ALICE, ip(1), at(3001));
        // Four failures: refused outright, from any address, until one has decayed (t = 10 s).
        let refused = limiter.check(ALICE, ip(9), at(9000)).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        // The address is limited for other accounts too.
        assert!(
            limiter
                .check("mallory@example.com", ip(1), at(9000))
                .is_err()
        );
        // After the decay, the slowed-down regime again (3 failures left, 2 s spacing since 3.001).
        assert_eq!(limiter.check(ALICE, ip(9), at(10_000)), Ok(()));
        // Long after, everything is forgotten.
        assert_eq!(limiter.check(ALICE, ip(1), at(60_000)), Ok(()));
        limiter.record_failure(ALICE, ip(1), at(60_000));
        assert_eq!(limiter.check(ALICE, ip(1), at(60_000)), Ok(()));
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let limiter = RateLimiter::new(settings());
        let now = Instant::now();
        for _ in 0..4 {
            limiter.record_failure(ALICE, ip(1), now);
        }
        limiter.record_success("Alice@Example.com");
        assert_eq!(limiter.check(ALICE, ip(2), now), Ok(()));
        assert!(limiter.check(ALICE, ip(1), now).is_err());
    }

    #[test]
    fn memory_is_bounded_and_decayed_keys_go_first() {
        let limiter = RateLimiter::new(RateLimitSettings {
            max_keys: 3,
            ..settings()
        });
        let t0 = Instant::now();
        // Three accounts from three addresses, two failures each for the first.
        limiter.record_failure("a@example.com", ip(1), t0);
        limiter.record_failure("a@example.com", ip(1), t0);
        limiter.record_failure("b@example.com", ip(2), t0);
        limiter.record_failure("c@example.com", ip(3), t0);
        assert_eq!(limiter.tracked(), 6);
        // A fourth key evicts the one with the fewest failures, never exceeding the cap.
        limiter.record_failure("d@example.com", ip(4), t0);
        assert_eq!(limiter.tracked(), 6);
        assert!(
            limiter
                .check("a@example.com", ip(5), t0 + Duration::from_millis(10))
                .is_err()
        );
        // Once everything has decayed, new keys replace the old ones.
        let later = t0 + Duration::from_secs(100);
        limiter.record_failure("e@example.com", ip(5), later);
        assert_eq!(limiter.tracked(), 2);
    }
}
