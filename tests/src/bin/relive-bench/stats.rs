//! Latency samples and their percentiles.

use std::time::Duration;

/// Latency samples in nanoseconds (saturating at about 4.3 s).
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples(Vec<u32>);

impl Samples {
    /// Records one latency.
    pub(crate) fn push(&mut self, d: Duration) {
        self.push_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one latency in nanoseconds.
    pub(crate) fn push_nanos(&mut self, nanos: u64) {
        self.0.push(u32::try_from(nanos).unwrap_or(u32::MAX));
    }

    /// Adds every sample of `other`.
    pub(crate) fn extend(&mut self, other: &Self) {
        self.0.extend_from_slice(&other.0);
    }

    /// Number of samples.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q` quantile (0..=1) in milliseconds (nearest rank); 0 without samples.
    pub(crate) fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let n = self.0.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.0[rank - 1]) / 1e6
    }
}

/// Prints the rate once a second (`label t=…s  N unit  F failed`) until `deadline`, then
/// gathers the workers' latency samples.
pub(crate) async fn watch(
    label: &str,
    unit: &str,
    (started, deadline): (std::time::Instant, std::time::Instant),
    done: &std::cell::Cell<u64>,
    failed: &std::cell::Cell<usize>,
    workers: Vec<tokio::task::JoinHandle<Samples>>,
) -> anyhow::Result<Samples> {
    use anyhow::Context as _;
    use std::time::Instant;
    let mut last = (started, 0);
    while Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = Instant::now();
        eprintln!(
            "{label} t={:>4.1}s  {:>7.0} {unit}  {} failed",
            (now - started).as_secs_f64(),
            (done.get() - last.1) as f64 / (now - last.0).as_secs_f64(),
            failed.get()
        );
        last = (now, done.get());
    }
    let mut lat = Samples::default();
    for w in workers {
        lat.extend(&w.await.context("worker")?);
    }
    Ok(lat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut s = Samples::default();
        assert_eq!(s.quantile_ms(0.5), 0.0);
        for ms in 1..=100 {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.len(), 100);
        assert_eq!(s.quantile_ms(0.5), 50.0);
        assert_eq!(s.quantile_ms(0.99), 99.0);
        assert_eq!(s.quantile_ms(0.999), 100.0);
        assert_eq!(s.quantile_ms(1.0), 100.0);
        s.push(Duration::from_secs(10));
        assert_eq!(s.quantile_ms(1.0), f64::from(u32::MAX) / 1e6);
    }
}
