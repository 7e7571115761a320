//! The drift channel of [`super::novelty`]: a short moving average that leaves the range the
//! average has covered before.
//!
//! A sustained move of the mean (a CPU that settles 10 % higher, a request rate that sags) often
//! stays inside the range single samples have covered, so the range channel never sees it. Its
//! moving average does leave its own range. The range learns in blocks of about one averaging
//! time constant, so a breakout is measured against the range from before it began, and a
//! reported breakout is learned at once: one detection per move, not a plateau of them. Two
//! scales must agree: the excess as a share of the value's range (the move matters next to what
//! the series does) and as a share of how far the average typically travels in one block (more
//! than its normal wander, which keeps noise quiet). It speaks once the average has a history
//! of 20 blocks. Constant time and memory, no allocation.

use serde::{Deserialize, Serialize};

/// The average's range means little until it has seen this many blocks (time constants).
const MIN_BLOCKS: u32 = 20;

/// All fields stay finite (the state is saved as JSON); which ones hold something yet follows
/// from the counters: the average once a sample was seen, the block's range while the block has
/// samples, the covered range and the block start once a block has ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriftState {
    avg: f64,
    lo: f64,
    hi: f64,
    block_lo: f64,
    block_hi: f64,
    block_len: u32,
    blocks: u32,
    block_start: f64,
    travel: f64,
    /// Samples left in which a breakout is learned but not reported: the move that was just
    /// reported (here or by another channel) is still playing out in the average.
    quiet: u32,
}

/// How the drift channel is scaled (part of [`super::novelty::NoveltyParams`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftParams {
    /// Weight of each sample in the moving average; the range learns every ⌈1/alpha⌉ samples.
    pub alpha: f64,
    /// Excess of the average beyond its range, as a share of the value's range, for one unit.
    pub unit: f64,
    /// The same excess as a share of how far the average typically travels in one block.
    pub travel_unit: f64,
    /// The ratio at which a sample becomes anomalous (from the alert threshold): a breakout
    /// reported at it is not reported again while the average is still moving.
    pub report_ratio: f64,
}

impl Default for DriftParams {
    fn default() -> Self {
        Self {
            alpha: 0.1,
            unit: 0.01,
            travel_unit: 0.4,
            report_ratio: super::ratio_at(super::DEFAULT_ALERT_THRESHOLD),
        }
    }
}

impl DriftState {
    /// Moves the average by `x` and returns its novelty ratio (0 until `warm`). `value_span` is
    /// the range the values have covered; `reported` says another channel found `x` novel.
    pub fn update(
        &mut self,
        x: f64,
        value_span: f64,
        warm: bool,
        reported: bool,
        p: &DriftParams,
    ) -> f64 {
        let started = self.block_len > 0 || self.blocks > 0;
        let avg = if started {
            self.avg + p.alpha * (x - self.avg)
        } else {
            x
        };
        if !avg.is_finite() {
            return 0.0;
        }
        self.avg = avg;
        let mut ratio = 0.0;
        if warm && self.blocks >= MIN_BLOCKS {
            let excess = (avg - self.hi).max(self.lo - avg);
            // Inside its range (nearly every sample): nothing to divide.
            if excess > 0.0 {
                let travel = self.travel.max(value_span * 1e-3);
                ratio = (excess / value_span / p.unit).min(excess / travel / p.travel_unit);
                if ratio >= 1.0 {
                    self.lo = self.lo.min(avg);
                    self.hi = self.hi.max(avg);
                    if self.quiet > 0 {
                        ratio = 0.0;
                    }
                }
            }
            if ratio >= p.report_ratio {
                self.quiet = self.quiet_samples(p);
            }
        }
        if reported {
            self.quiet = self.quiet_samples(p);
        }
        self.quiet = self.quiet.saturating_sub(1);
        if self.block_len == 0 {
            (self.block_lo, self.block_hi) = (avg, avg);
        } else {
            self.block_lo = self.block_lo.min(avg);
            self.block_hi = self.block_hi.max(avg);
        }
        self.block_len += 1;
        if f64::from(self.block_len) * p.alpha >= 1.0 {
            if self.blocks == 0 {
                (self.lo, self.hi) = (self.block_lo, self.block_hi);
            } else {
                self.lo = self.lo.min(self.block_lo);
                self.hi = self.hi.max(self.block_hi);
                let moved = (avg - self.block_start).abs();
                let w = 1.0 / f64::from(self.blocks.saturating_add(1).min(100));
                self.travel += w * (moved - self.travel);
            }
            self.block_len = 0;
            self.blocks = self.blocks.saturating_add(1);
            self.block_start = avg;
        }
        if ratio.is_nan() { 0.0 } else { ratio }
    }

    /// Two averaging time constants: the average has covered most of a step by then.
    fn quiet_samples(&self, p: &DriftParams) -> u32 {
        (2.0 / p.alpha).ceil().clamp(1.0, 1e6) as u32 + 1
    }

    /// Old extremes of the average fade towards the middle (`keep` as for the value's range).
    pub fn fade(&mut self, keep: f64) {
        if self.blocks > 0 && self.hi > self.lo {
            let mid = 0.5 * (self.hi + self.lo);
            self.hi = mid + (self.hi - mid) * keep;
            self.lo = mid - (mid - self.lo) * keep;
        }
    }

    pub fn validate(&self) -> Result<(), &'static str> {
        if !(self.travel.is_finite() && self.travel >= 0.0) {
            return Err("drift travel must be finite and non-negative");
        }
        let values = [
            self.avg,
            self.lo,
            self.hi,
            self.block_lo,
            self.block_hi,
            self.block_start,
        ];
        if !values.iter().all(|v| v.is_finite()) || self.lo > self.hi {
            return Err("drift average and ranges must be finite, lo <= hi");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `values` with a value range of `span`; returns the ratios.
    fn feed(d: &mut DriftState, values: &[f64], span: f64) -> Vec<f64> {
        let p = DriftParams::default();
        values
            .iter()
            .enumerate()
            .map(|(i, x)| d.update(*x, span, i >= 100, false, &p))
            .collect()
    }

    #[test]
    fn a_sustained_mean_shift_inside_the_value_range_is_reported_once() {
        let mut rng = fastrand::Rng::with_seed(4);
        // Noise in [10, 11] with rare spikes to 16, then the mean moves up by one noise width:
        // well inside the range the values have covered.
        let mut values: Vec<f64> = (0..3000)
            .map(|i| {
                if i % 500 == 250 {
                    16.0
                } else {
                    10.0 + rng.f64()
                }
            })
            .collect();
        values.extend((0..200).map(|_| 13.0 + rng.f64()));
        let ratios = feed(&mut DriftState::default(), &values, 6.0);
        let t = super::super::DEFAULT_ALERT_THRESHOLD;
        let unit_at_threshold = t / (1.0 - t);
        // The first spike is novel in itself (the range channel reports it too).
        let before: Vec<usize> = (300..3000)
            .filter(|i| ratios[*i] >= unit_at_threshold)
            .collect();
        let after: Vec<usize> = (3000..3200)
            .filter(|i| ratios[*i] >= unit_at_threshold)
            .collect();
        assert!(before.is_empty(), "noise reported at {before:?}");
        assert!(!after.is_empty(), "the shift was not reported");
        assert_eq!(after.len(), 1, "a plateau of reports: {after:?}");
    }

    #[test]
    fn iid_noise_stays_quiet() {
        let mut rng = fastrand::Rng::with_seed(8);
        let values: Vec<f64> = (0..20_000).map(|_| 8.0 + rng.f64() * 11.0).collect();
        let ratios = feed(&mut DriftState::default(), &values, 11.0);
        let t = super::super::DEFAULT_ALERT_THRESHOLD;
        assert!(ratios.iter().all(|r| *r < t / (1.0 - t)));
    }

    proptest! {
        #[test]
        fn ratio_is_finite_and_non_negative(values in prop::collection::vec(any::<f64>(), 1..300), span in 1e-9f64..1e9) {
            let mut d = DriftState::default();
            for r in feed(&mut d, &values, span) {
                prop_assert!(r >= 0.0 && !r.is_nan());
            }
        }
    }
}
