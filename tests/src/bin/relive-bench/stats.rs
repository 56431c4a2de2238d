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
