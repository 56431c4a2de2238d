//! Brute-force protection for every login (Passport `login2.srf`, NS `USR` MD5/CTP/TWN, the
//! relay's companion-agent token check) that slows the attacker, never the owner.
//!
//! Failures are counted in three tables, each count decaying by one every
//! [`RateLimitSettings::decay`]:
//!
//! - **per (account, source)** — what stops an attacker. With `n` recent failures of that
//!   pair: below `slow_after` attempts run at full speed; from `slow_after` an attempt must
//!   wait `base_delay × 2^(n − slow_after)` (capped at `decay`) after the pair's last failure,
//!   earlier ones are refused with the time to wait; from `refuse_after` the pair is refused
//!   until its count has decayed.
//! - **per source** (over all accounts) — password spraying: from `source_refuse_after`
//!   recent failures the source is refused for every account.
//! - **per account** (over all sources) — the global ceiling, which **only ever delays**: from
//!   `account_delay_after` recent failures every attempt on the account waits
//!   `250 ms × 2^(n − account_delay_after)`, at most `max_delay`, and is then checked.
//!
//! A source is an IPv4 address or an IPv6 /64 ([`SourceKey`]). So an attempt is refused only
//! when *its own source* has failed: a correct secret from a source that has not failed is
//! always checked, at worst `max_delay` late — the owner cannot be locked out by someone
//! else's guesses, from one address or from many (lockout-free by design). The owner behind
//! the same address as the attacker shares the attacker's source and its limits.
//!
//! A refused attempt is not checked at all (no bcrypt, no token look-up) and does not count
//! as a failure. A success clears its own pair (and nothing else: an attacker must not be able
//! to clear a source or an account by logging in to an account of their own). Unknown handles
//! are counted like real ones, so the limiter's behaviour does not tell whether an account
//! exists.
//!
//! Memory is bounded: each table holds at most [`RateLimitSettings::max_keys`] keys. When
//! full, keys whose count has decayed to zero are dropped; if none has, the key with the fewest
//! failures is evicted. Time is passed in (`now`) so tests need no sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use relive_relay::limits::SourceKey;

/// Longest decay interval accepted.
pub const MAX_DECAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The first delay of the account ceiling (doubling from there up to `max_delay`).
pub const ACCOUNT_BASE_DELAY: Duration = Duration::from_millis(250);

/// Limits of the login rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Failures of one (account, source) pair allowed at full speed.
    pub slow_after: u32,
    /// Failures of one pair after which its attempts are refused outright.
    pub refuse_after: u32,
    /// Spacing required after the pair's first slowed-down failure; doubles with each further one.
    pub base_delay: Duration,
    /// One failure is forgiven per this interval (in every table).
    pub decay: Duration,
    /// Failures of one source, over all accounts, after which it is refused (spraying).
    pub source_refuse_after: u32,
    /// Failures of one account, over all sources, after which every attempt on it is delayed.
    pub account_delay_after: u32,
    /// The longest delay the account ceiling imposes: the owner's worst case.
    pub max_delay: Duration,
    /// Most keys tracked per table.
    pub max_keys: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            slow_after: 3,
            refuse_after: 10,
            base_delay: Duration::from_secs(2),
            decay: Duration::from_secs(60),
            source_refuse_after: 30,
            account_delay_after: 10,
            max_delay: Duration::from_secs(2),
            max_keys: 10_000,
        }
    }
}

/// An attempt that must not be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins from this source; retry in {} s", retry_after.as_secs())]
pub struct Refused {
    /// How long until the attempt would be allowed (if no further failure happens).
    pub retry_after: Duration,
}

/// What to do with an attempt: check it after `delay` (zero unless the account is under
/// attack), or refuse it.
pub type Verdict = Result<Duration, Refused>;

/// Whether [`RateLimiter::attempt`] waits out the account ceiling's delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceiling {
    /// Wait (a login's first step).
    Wait,
    /// Do not: the second step of a login whose first step waited already (`USR TWN S` with
    /// the ticket `login2.srf` issued), so the owner pays the delay once per login.
    AlreadyWaited,
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

    /// When the count will have decayed below `limit` (it is at or above it now).
    fn below(&self, limit: u32, decay: Duration) -> Instant {
        self.decayed_at + decay * (self.failures - limit + 1)
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

    /// The key's failure count at `now`, and its record.
    fn get(&mut self, key: &K, now: Instant, decay: Duration) -> Option<&Record> {
        let record = self.records.get_mut(key)?;
        record.decay(now, decay);
        Some(record)
    }

    /// Counts a failure, never beyond `cap` (so an attack that stops is forgotten within
    /// `cap × decay`).
    fn fail(&mut self, key: K, now: Instant, s: &RateLimitSettings, cap: u32) {
        if !self.records.contains_key(&key) && self.records.len() >= s.max_keys {
            self.make_room(now, s);
        }
        let record = self.records.entry(key).or_insert(Record {
            failures: 0,
            decayed_at: now,
            last_failure: now,
        });
        record.decay(now, s.decay);
        record.failures = record.failures.saturating_add(1).min(cap);
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
    pairs: Table<(String, SourceKey)>,
    sources: Table<SourceKey>,
    accounts: Table<String>,
}

/// Failure counts per (account, source), per source and per account. Share it behind an
/// `Arc`.
#[derive(Debug)]
pub struct RateLimiter {
    settings: RateLimitSettings,
    inner: Mutex<Inner>,
    /// Cluster mode: where this node's failures and successes are published, so that every
    /// node counts them ([`RateLimiter::set_sink`]).
    sink: std::sync::OnceLock<std::sync::Arc<dyn LimitSink>>,
}

/// Where a clustered limiter publishes what it records (implemented by [`crate::cluster`]);
/// must not block.
pub trait LimitSink: Send + Sync + std::fmt::Debug {
    /// A failed attempt on `handle` from `addr`.
    fn failure(&self, handle: &str, addr: IpAddr);
    /// A successful attempt on `handle` from `addr`.
    fn success(&self, handle: &str, addr: IpAddr);
}

/// The key of an account: its handle, lower-cased. Unknown handles are counted too, so the
/// limiter's behaviour does not reveal whether an account exists.
fn account_key(handle: &str) -> String {
    handle.to_ascii_lowercase()
}

/// `base × 2^steps`, at most `cap`.
fn doubling(base: Duration, steps: u32, cap: Duration) -> Duration {
    base.saturating_mul(1u32 << steps.min(16)).min(cap)
}

impl RateLimiter {
    /// A limiter with no history. `refuse_after` is raised to at least `slow_after` and 1, the
    /// other thresholds to at least 1, `max_keys` to at least 1; `decay` is clamped to
    /// 1 ms ..= [`MAX_DECAY`], and `base_delay` and `max_delay` to at most `decay`.
    #[must_use]
    pub fn new(settings: RateLimitSettings) -> Self {
        let refuse_after = settings.refuse_after.max(settings.slow_after).max(1);
        // Bounded so that no arithmetic on instants can overflow.
        let decay = settings.decay.clamp(Duration::from_millis(1), MAX_DECAY);
        Self {
            settings: RateLimitSettings {
                refuse_after,
                source_refuse_after: settings.source_refuse_after.max(1),
                account_delay_after: settings.account_delay_after.max(1),
                max_keys: settings.max_keys.max(1),
                decay,
                base_delay: settings.base_delay.min(decay),
                max_delay: settings.max_delay.min(decay),
                ..settings
            },
            inner: Mutex::new(Inner {
                pairs: Table::new(),
                sources: Table::new(),
                accounts: Table::new(),
            }),
            sink: std::sync::OnceLock::new(),
        }
    }

    /// The settings in force (after [`RateLimiter::new`]'s adjustments).
    #[must_use]
    pub const fn settings(&self) -> &RateLimitSettings {
        &self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Counters only: a poisoned lock at worst forgets or keeps one failure.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What to do with a login attempt for `handle` from `addr` at `now`: check it after the
    /// returned delay, or refuse it (only ever because `addr`'s own source has failed).
    ///
    /// # Errors
    ///
    /// [`Refused`] with the longer wait when the pair or the source is limited.
    pub fn check(&self, handle: &str, addr: IpAddr, now: Instant) -> Verdict {
        let s = &self.settings;
        let source = SourceKey::of(addr);
        let account = account_key(handle);
        let mut inner = self.lock();
        let mut refused: Option<Duration> = None;
        let mut refuse = |until: Instant| {
            let wait = until.saturating_duration_since(now);
            refused = Some(refused.map_or(wait, |w| w.max(wait)));
        };
        if let Some(pair) = inner.pairs.get(&(account.clone(), source), now, s.decay) {
            let n = pair.failures;
            if n >= s.refuse_after {
                refuse(pair.below(s.refuse_after, s.decay));
            } else if n >= s.slow_after {
                let spacing = doubling(s.base_delay, n - s.slow_after, s.decay);
                let allowed_at = pair.last_failure + spacing;
                if now < allowed_at {
                    refuse(allowed_at);
                }
            }
        }
        if let Some(src) = inner.sources.get(&source, now, s.decay)
            && src.failures >= s.source_refuse_after
        {
            refuse(src.below(s.source_refuse_after, s.decay));
        }
        if let Some(retry_after) = refused {
            return Err(Refused { retry_after });
        }
        let delay = match inner.accounts.get(&account, now, s.decay) {
            Some(a) if a.failures >= s.account_delay_after => doubling(
                ACCOUNT_BASE_DELAY,
                a.failures - s.account_delay_after,
                s.max_delay,
            ),
            _ => Duration::ZERO,
        };
        Ok(delay)
    }

    /// Records a failed attempt (wrong secret, unknown account) against the pair, the source
    /// and the account.
    pub fn record_failure(&self, handle: &str, addr: IpAddr, now: Instant) {
        self.count_failure(handle, addr, now);
        if let Some(sink) = self.sink.get() {
            sink.failure(handle, addr);
        }
    }

    /// Cluster mode: from now on every failure and success recorded here is also published
    /// through `sink` (limits hold network-wide: an attacker gains nothing by spreading guesses
    /// over the NS nodes). Returns `false` if a sink was already set.
    pub fn set_sink(&self, sink: std::sync::Arc<dyn LimitSink>) -> bool {
        self.sink.set(sink).is_ok()
    }

    /// Counts a failure another node recorded (not published again).
    pub fn remote_failure(&self, handle: &str, addr: IpAddr, now: Instant) {
        self.count_failure(handle, addr, now);
    }

    /// Applies a success another node recorded (not published again).
    pub fn remote_success(&self, handle: &str, addr: IpAddr) {
        let key = (account_key(handle), SourceKey::of(addr));
        self.lock().pairs.records.remove(&key);
    }

    fn count_failure(&self, handle: &str, addr: IpAddr, now: Instant) {
        let s = &self.settings;
        let source = SourceKey::of(addr);
        let account = account_key(handle);
        let mut inner = self.lock();
        // Counts stop a little above their thresholds, so the limits lift soon after an
        // attack stops instead of hours later.
        inner.pairs.fail(
            (account.clone(), source),
            now,
            s,
            s.refuse_after.saturating_add(s.slow_after),
        );
        inner
            .sources
            .fail(source, now, s, s.source_refuse_after.saturating_mul(2));
        inner
            .accounts
            .fail(account, now, s, s.account_delay_after.saturating_add(8));
    }

    /// Records a successful login of `handle` from `addr`: clears that pair only.
    pub fn record_success(&self, handle: &str, addr: IpAddr) {
        self.remote_success(handle, addr);
        if let Some(sink) = self.sink.get() {
            sink.success(handle, addr);
        }
    }

    /// Runs one login attempt of `handle` from `addr` under the limiter, the way every login
    /// path does: a refused attempt is not run at all, a delayed one waits first (unless
    /// `ceiling` says the login already waited), and the outcome of `verify` (`Ok(Ok(_))` = the
    /// secret was right, `Ok(Err(why))` = wrong secret or unknown account, `Err` = the check
    /// itself failed, which counts as neither) is recorded. `now` is the clock the limiter runs
    /// on (tests inject their own).
    ///
    /// # Errors
    ///
    /// [`Refused`]: `verify` was not run.
    pub async fn attempt<T, F, E>(
        &self,
        handle: &str,
        addr: IpAddr,
        now: &(dyn Fn() -> Instant + Send + Sync),
        ceiling: Ceiling,
        verify: impl Future<Output = Result<Result<T, F>, E>>,
    ) -> Result<Result<Result<T, F>, E>, Refused> {
        let delay = self.check(handle, addr, now())?;
        if ceiling == Ceiling::Wait && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let outcome = verify.await;
        match &outcome {
            Ok(Ok(_)) => self.record_success(handle, addr),
            Ok(Err(_)) => self.record_failure(handle, addr, now()),
            Err(_) => {}
        }
        Ok(outcome)
    }

    /// Number of keys tracked (pairs, sources and accounts), for tests and metrics.
    #[must_use]
    pub fn tracked(&self) -> usize {
        let inner = self.lock();
        inner.pairs.records.len() + inner.sources.records.len() + inner.accounts.records.len()
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
            source_refuse_after: 6,
            account_delay_after: 3,
            max_delay: Duration::from_secs(2),
            max_keys: 100,
        }
    }

    #[test]
    fn a_failing_pair_is_slowed_then_refused_then_decays_back_to_normal() {
        let limiter = RateLimiter::new(settings());
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Two failures at full speed.
        for ms in [0, 1] {
            assert_eq!(limiter.check(ALICE, ip(1), at(ms)), Ok(Duration::ZERO));
            limiter.record_failure(ALICE, ip(1), at(ms));
        }
        // Third attempt must wait 1 s after the last failure.
        assert_eq!(
            limiter.check(ALICE, ip(1), at(500)),
            Err(Refused {
                retry_after: Duration::from_millis(501)
            })
        );
        assert!(limiter.check(ALICE, ip(1), at(1001)).is_ok());
        limiter.record_failure(ALICE, ip(1), at(1001));
        // Fourth: 2 s spacing.
        assert!(limiter.check(ALICE, ip(1), at(2500)).is_err());
        assert!(limiter.check(ALICE, ip(1), at(3001)).is_ok());
        limiter.record_failure(ALICE, ip(1), at(3001));
        // Four failures: this pair is refused until one has decayed (t = 10 s) ...
        let refused = limiter.check(ALICE, ip(1), at(9000)).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        // ... but the account is only delayed for every other source, the owner included,
        // and the attacker's source is free for other accounts (until it sprays).
        assert_eq!(
            limiter.check(ALICE, ip(9), at(9000)),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(
            limiter.check("bob@example.com", ip(1), at(9000)),
            Ok(Duration::ZERO)
        );
        // Long after, everything is forgotten.
        assert_eq!(limiter.check(ALICE, ip(1), at(60_000)), Ok(Duration::ZERO));
    }

    #[test]
    fn the_account_ceiling_only_delays_and_never_beyond_max_delay() {
        let limiter = RateLimiter::new(settings());
        let t0 = Instant::now();
        // A thousand wrong guesses from a thousand sources, one every 100 ms.
        for i in 0..1000u32 {
            let now = t0 + Duration::from_millis(100 * u64::from(i));
            let from = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            if limiter.check(ALICE, from, now).is_ok() {
                limiter.record_failure(ALICE, from, now);
            }
            // The owner, from a source that never failed, is never refused and never
            // waits more than max_delay.
            let owner = limiter.check(ALICE, ip(200), now);
            assert!(
                owner.is_ok_and(|d| d <= Duration::from_secs(2)),
                "{i}: {owner:?}"
            );
        }
        let end = t0 + Duration::from_secs(100);
        assert_eq!(
            limiter.check(ALICE, ip(200), end),
            Ok(Duration::from_secs(2))
        );
        // The counts are capped: eleven decay steps after the attack, no delay at all.
        assert_eq!(
            limiter.check(ALICE, ip(200), end + Duration::from_secs(110)),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn a_spraying_source_is_refused_for_every_account_and_only_it() {
        let limiter = RateLimiter::new(settings());
        let now = Instant::now();
        for i in 0..6 {
            limiter.record_failure(&format!("user{i}@example.com"), ip(1), now);
        }
        assert!(limiter.check("fresh@example.com", ip(1), now).is_err());
        assert_eq!(
            limiter.check("fresh@example.com", ip(2), now),
            Ok(Duration::ZERO)
        );
        // IPv6: the whole /64 is one source.
        let v6 = |host: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, host]);
        for i in 0..6u16 {
            limiter.record_failure(&format!("user{i}@example.com"), v6(i), now);
        }
        assert!(limiter.check("fresh@example.com", v6(999), now).is_err());
        assert!(
            limiter
                .check(
                    "fresh@example.com",
                    IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]),
                    now
                )
                .is_ok()
        );
    }

    #[test]
    fn success_clears_its_own_pair_only() {
        let limiter = RateLimiter::new(settings());
        let now = Instant::now();
        for _ in 0..4 {
            limiter.record_failure(ALICE, ip(1), now);
            limiter.record_failure(ALICE, ip(2), now);
        }
        limiter.record_success("Alice@Example.com", ip(2));
        assert!(limiter.check(ALICE, ip(2), now).is_ok());
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
        assert_eq!(limiter.tracked(), 9);
        // A fourth key evicts the one with the fewest failures, never exceeding the cap.
        limiter.record_failure("d@example.com", ip(4), t0);
        assert_eq!(limiter.tracked(), 9);
        assert!(
            limiter
                .check("a@example.com", ip(1), t0 + Duration::from_millis(10))
                .is_err()
        );
        // Once everything has decayed, new keys replace the old ones.
        let later = t0 + Duration::from_secs(100);
        limiter.record_failure("e@example.com", ip(5), later);
        assert_eq!(limiter.tracked(), 3);
    }

    /// Failures and successes published by one node's limiter, counted by another's.
    #[derive(Debug, Default)]
    struct Relay(Mutex<Vec<(bool, String, IpAddr)>>);

    impl LimitSink for Relay {
        fn failure(&self, handle: &str, addr: IpAddr) {
            self.0
                .lock()
                .unwrap()
                .push((false, handle.to_owned(), addr));
        }
        fn success(&self, handle: &str, addr: IpAddr) {
            self.0.lock().unwrap().push((true, handle.to_owned(), addr));
        }
    }

    #[test]
    fn a_clustered_limiter_counts_the_failures_of_every_node() {
        let (a, b) = (RateLimiter::new(settings()), RateLimiter::new(settings()));
        let relay = std::sync::Arc::new(Relay::default());
        assert!(a.set_sink(relay.clone()));
        let now = Instant::now();
        for _ in 0..4 {
            a.record_failure(ALICE, ip(1), now);
        }
        assert!(b.check(ALICE, ip(1), now).is_ok());
        for (ok, handle, addr) in std::mem::take(&mut *relay.0.lock().unwrap()) {
            if ok {
                b.remote_success(&handle, addr);
            } else {
                b.remote_failure(&handle, addr, now);
            }
        }
        // Node B refuses the pair node A saw fail, without having seen a failure itself.
        assert!(b.check(ALICE, ip(1), now).is_err());
        a.record_success(ALICE, ip(1));
        let events = std::mem::take(&mut *relay.0.lock().unwrap());
        assert_eq!(events, vec![(true, ALICE.to_owned(), ip(1))]);
        b.remote_success(ALICE, ip(1));
        assert!(b.check(ALICE, ip(1), now).is_ok());
    }
}
