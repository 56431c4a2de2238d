//! Waiting between attempts: the one reconnect-with-backoff helper of the workspace.
//!
//! [`Backoff`] is the pause schedule (a first pause, doubling up to a ceiling, back to the first
//! after an attempt that held longer than the ceiling or succeeded); [`retry`] is the loop
//! around an attempt that is made again and again. Its users: the companion agent's
//! connection to the relay ([`crate::agent::keep_connected`], which `relive-relay agent` and the
//! desktop app run), the server's control connection to a standalone relay
//! ([`crate::remote::RemoteRelay::run`]), and the server's accept loops after a failing
//! `accept` (out of file descriptors), which use [`Backoff`] alone.

use std::future::Future;
use std::ops::ControlFlow;
use std::time::Duration;

use tokio::time::Instant;

/// Pauses between attempts: `first`, doubling up to `ceiling`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    ceiling: Duration,
    next: Duration,
}

impl Backoff {
    /// Reconnecting to a peer over the network: 1 s, doubling up to 30 s.
    pub const RECONNECT: Self = Self::new(Duration::from_secs(1), Duration::from_secs(30));

    /// A schedule starting at `first`, doubling up to `ceiling`.
    #[must_use]
    pub const fn new(first: Duration, ceiling: Duration) -> Self {
        Self {
            first,
            ceiling,
            next: first,
        }
    }

    /// The longest pause.
    #[must_use]
    pub const fn ceiling(&self) -> Duration {
        self.ceiling
    }

    /// The next attempt succeeded: the pause after a later failure starts again at `first`.
    pub const fn reset(&mut self) {
        self.next = self.first;
    }

    /// The pause before the next attempt (and the one after it doubles).
    pub fn pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.ceiling);
        pause
    }

    /// The pause after an attempt that ran for `lasted`: one that held longer than the
    /// ceiling (a connection that was up) starts the schedule again.
    pub fn pause_after(&mut self, lasted: Duration) -> Duration {
        if lasted > self.ceiling {
            self.reset();
        }
        self.pause()
    }
}

/// Makes `attempt` again and again until it breaks with a value, which is returned. After an
/// attempt that continues with `why`, `waiting` is told `why` and the pause
/// ([`Backoff::pause_after`] the attempt's duration), and the loop sleeps that long. Dropping
/// the future stops it (for a shutdown, `select!` it against the shutdown signal).
pub async fn retry<T, C, Fut>(
    mut backoff: Backoff,
    mut attempt: impl FnMut() -> Fut,
    mut waiting: impl FnMut(C, Duration),
) -> T
where
    Fut: Future<Output = ControlFlow<T, C>>,
{
    loop {
        let started = Instant::now();
        let why = match attempt().await {
            ControlFlow::Break(value) => return value,
            ControlFlow::Continue(why) => why,
        };
        let pause = backoff.pause_after(started.elapsed());
        waiting(why, pause);
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_to_the_ceiling_and_start_over_after_a_long_attempt() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
        let pauses: Vec<u128> = (0..5).map(|_| b.pause().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 50, 50]);
        assert_eq!(b.pause_after(Duration::from_millis(50)).as_millis(), 50);
        assert_eq!(b.pause_after(Duration::from_millis(51)).as_millis(), 10);
        b.pause();
        b.reset();
        assert_eq!(b.pause().as_millis(), 10);
        assert_eq!(Backoff::RECONNECT.ceiling(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_waits_between_attempts_until_one_breaks() {
        let start = Instant::now();
        let mut attempts = 0;
        let mut waits = Vec::new();
        let value = retry(
            Backoff::RECONNECT,
            || {
                attempts += 1;
                let n = attempts;
                async move {
                    if n == 4 {
                        ControlFlow::Break(n * 10)
                    } else {
                        ControlFlow::Continue(n)
                    }
                }
            },
            |n, pause| waits.push((n, pause.as_secs())),
        )
        .await;
        assert_eq!(value, 40);
        assert_eq!(waits, [(1, 1), (2, 2), (3, 4)]);
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }
}
