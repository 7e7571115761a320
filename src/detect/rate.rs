//! Turns cumulative counters into per-second rates, with counter-reset handling.

/// 24 bytes in every series: "no previous sample" is `prev_ts == UNPRIMED` rather than a flag
/// that would pad the state to 32.
#[derive(Debug, Clone, Copy)]
pub struct RateState {
    prev_ts: i64,
    prev_value: f64,
    start_ts: i64,
}

const UNPRIMED: i64 = i64::MIN;

impl Default for RateState {
    fn default() -> Self {
        Self {
            prev_ts: UNPRIMED,
            prev_value: 0.0,
            start_ts: 0,
        }
    }
}

impl RateState {
    /// Returns the per-second rate since the previous sample, or `None` for the first sample
    /// (and after a reset of this state, e.g. a staleness marker).
    pub fn update(&mut self, ts: i64, value: f64, start_ts: i64) -> Option<f64> {
        let prev = (self.prev_ts != UNPRIMED && ts > self.prev_ts)
            .then_some((self.prev_ts, self.prev_value));
        let restarted = start_ts != 0 && self.start_ts != 0 && start_ts != self.start_ts;
        self.prev_ts = ts;
        self.prev_value = value;
        self.start_ts = start_ts;
        let (prev_ts, prev_value) = prev?;
        let dt = ts.saturating_sub(prev_ts) as f64 / 1000.0;
        // A counter that went down (or whose start timestamp changed) was reset: everything it
        // holds now was counted since the reset.
        let increase = if value < prev_value || restarted {
            value
        } else {
            value - prev_value
        };
        Some(increase / dt)
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_resets() {
        let mut r = RateState::default();
        assert_eq!(r.update(0, 100.0, 0), None);
        assert_eq!(r.update(10_000, 150.0, 0), Some(5.0));
        // Reset: the counter restarted from 0 and is at 20.
        assert_eq!(r.update(20_000, 20.0, 0), Some(2.0));
        assert_eq!(r.update(30_000, 40.0, 0), Some(2.0));
    }

    #[test]
    fn first_sample_at_any_timestamp_primes_and_reset_unprimes() {
        let mut r = RateState::default();
        assert_eq!(r.update(-10_000, 1.0, 0), None);
        assert_eq!(r.update(0, 3.0, 0), Some(0.2));
        r.reset();
        assert_eq!(r.update(10_000, 5.0, 0), None);
        assert_eq!(std::mem::size_of::<RateState>(), 24);
    }

    #[test]
    fn start_timestamp_change_is_a_reset() {
        let mut r = RateState::default();
        r.update(0, 100.0, 5);
        assert_eq!(r.update(10_000, 150.0, 9), Some(15.0));
    }
}
