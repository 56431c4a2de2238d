//! The per-account throttle of list lookups: every command that names another user's handle
//! (`ADD`, `REM`, `REA` of a contact, `FND`, SB `CAL`) takes a turn from its account's
//! allowance; a burst goes at once, beyond it the account's commands are spaced to a steady
//! rate. The protocol answers stay exactly what they would be (nothing a client could stumble
//! on); they only come later, so probing handles goes at the steady rate instead of the
//! 8,800 a second it once did. An account only ever slows itself.
//!
//! The allowance is a GCRA (generic cell rate algorithm): per account one "theoretical
//! arrival time" `tat`; a lookup at `now` is due at `max(tat − burst·T, now)` with `T` the
//! emission interval, and moves `tat` on by `T`. Time is passed in; the caller sleeps.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use relive_msnp::types::Passport;

/// Accounts tracked before idle ones are forgotten.
const MAX_TRACKED: usize = 10_000;

/// Allowances per account (by handle: the NS and the SB both know it). Share it behind an
/// `Arc`.
#[derive(Debug)]
pub struct LookupThrottle {
    /// Time between two lookups at the steady rate.
    interval: Duration,
    /// How far ahead of `now` an account's `tat` may be before it waits (the burst).
    tolerance: Duration,
    tat: Mutex<HashMap<Passport, Instant>>,
}

impl LookupThrottle {
    /// `burst` lookups at once, then `per_minute` (both at least 1).
    #[must_use]
    pub fn new(burst: u32, per_minute: u32) -> Self {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        Self {
            interval,
            tolerance: interval * (burst.max(1) - 1),
            tat: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a turn for `account` at `now`: how long the lookup must wait before it runs.
    pub fn delay(&self, account: &Passport, now: Instant) -> Duration {
        let mut tats = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        if tats.len() >= MAX_TRACKED && !tats.contains_key(account) {
            // Accounts whose allowance is whole again carry no state worth keeping.
            tats.retain(|_, tat| *tat > now);
        }
        let tat = tats.entry(account.clone()).or_insert(now);
        let start = (*tat).max(now);
        let due = start.checked_sub(self.tolerance).unwrap_or(now).max(now);
        *tat = start + self.interval;
        due - now
    }

    /// Waits for `account`'s turn (see [`LookupThrottle::delay`]).
    pub async fn turn(&self, account: &Passport) {
        let delay = self.delay(account, Instant::now());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// Accounts tracked now.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.tat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(s: &str) -> Passport {
        Passport::parse(s).unwrap()
    }

    #[test]
    fn a_burst_goes_at_once_then_the_steady_rate_holds_per_account() {
        // 5 at once, then one a second.
        let throttle = LookupThrottle::new(5, 60);
        let t0 = Instant::now();
        let (a, b) = (&handle("a@example.com"), &handle("b@example.com"));
        for _ in 0..5 {
            assert_eq!(throttle.delay(a, t0), Duration::ZERO);
        }
        // Pipelined lookups wait their turn, one second apart.
        assert_eq!(throttle.delay(a, t0), Duration::from_secs(1));
        assert_eq!(throttle.delay(a, t0), Duration::from_secs(2));
        // Another account is not affected.
        assert_eq!(throttle.delay(b, t0), Duration::ZERO);
        // 1000 lookups in a row: the last is due about 1000 − 5 seconds later.
        let mut last = Duration::ZERO;
        for _ in 0..993 {
            last = throttle.delay(a, t0);
        }
        assert_eq!(last, Duration::from_secs(995));
        // An idle account gets its burst back.
        let later = t0 + Duration::from_secs(2000);
        for _ in 0..5 {
            assert_eq!(throttle.delay(a, later), Duration::ZERO);
        }
        assert_eq!(throttle.delay(a, later), Duration::from_secs(1));
    }

    #[test]
    fn spaced_lookups_never_wait() {
        let throttle = LookupThrottle::new(1, 60);
        let t0 = Instant::now();
        for i in 0..100 {
            assert_eq!(
                throttle.delay(&handle("c@example.com"), t0 + Duration::from_secs(i)),
                Duration::ZERO
            );
        }
        assert_eq!(throttle.tracked(), 1);
    }
}
