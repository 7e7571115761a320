//! Streaming median and MAD (median absolute deviation) in constant memory.
//!
//! Both are stochastic-approximation quantile trackers: the median moves a small step towards
//! each sample (step proportional to the current MAD), and the MAD grows or shrinks by a fixed
//! factor depending on whether the absolute deviation is above or below it. Their fixed points
//! are the median and the MAD of the recent distribution; neither moves more than one step per
//! sample, which is what makes them robust to outliers.

/// Relative step of the trackers per sample. 0.05 follows a level change in ~50 samples.
const STEP: f64 = 0.05;

#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct RobustStats {
    pub median: f64,
    pub mad: f64,
    pub initialized: bool,
}

impl RobustStats {
    /// Robust sigma of `x`: |x − median| / (1.4826·MAD), i.e. the seed's 0.6745·|x−m|/MAD.
    pub fn sigma(&self, x: f64, mad_floor: f64) -> f64 {
        if !self.initialized {
            return 0.0;
        }
        0.6745 * (x - self.median).abs() / self.mad.max(mad_floor)
    }

    pub fn update(&mut self, x: f64, scale_hint: f64) {
        if !self.initialized {
            self.median = x;
            self.mad = 0.0;
            self.initialized = true;
            return;
        }
        let dev = (x - self.median).abs();
        if self.mad <= 0.0 {
            // Seed the scale from the first deviation seen (or the caller's hint).
            self.mad = if dev > 0.0 { dev } else { scale_hint.max(0.0) };
        }
        let step = STEP * self.mad.max(scale_hint * 0.1);
        if x > self.median {
            self.median += step.min(x - self.median);
        } else if x < self.median {
            self.median -= step.min(self.median - x);
        }
        if dev > self.mad {
            self.mad *= 1.0 + STEP;
        } else {
            self.mad *= 1.0 - STEP;
        }
    }
}

/// Exact median of a batch (sorts `v` in place; 0 for an empty batch). For periodic work off
/// the hot path; the per-sample tracker is [`RobustStats`].
/// Median and median absolute deviation of `v` (reordered and overwritten with the deviations),
/// by selection rather than a sort; (0, 0) when empty. The one median rule of the crate: the
/// mean of the two middle values for an even count.
pub fn median_and_mad(v: &mut [f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mid = median(v);
    for x in v.iter_mut() {
        *x = (*x - mid).abs();
    }
    (mid, median(v))
}

/// Median of `v` (reordered) by selection; 0 when empty; even counts average the middle two.
pub fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let (below, upper, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        return upper;
    }
    let lower = below
        .iter()
        .copied()
        .max_by(f64::total_cmp)
        .unwrap_or(upper);
    0.5 * (lower + upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_by_selection() {
        let mut v = [9.0, 1.0, 3.0, 100.0, 2.0];
        assert_eq!(median_and_mad(&mut v), (3.0, 2.0));
        assert_eq!(median_and_mad(&mut []), (0.0, 0.0));
        // Even counts: the mean of the middle two, for the median and for the MAD.
        let mut even = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(median_and_mad(&mut even), (2.5, 1.0));
        assert_eq!(median(&mut [7.0]), 7.0);
    }

    #[test]
    fn tracks_median_and_mad_despite_outliers() {
        let mut r = RobustStats::default();
        let mut rng = fastrand::Rng::with_seed(3);
        for i in 0..20_000 {
            let x = if i % 50 == 0 {
                1000.0
            } else {
                5.0 + (rng.f64() - 0.5) * 2.0
            };
            r.update(x, 0.0);
        }
        // Uniform(4, 6): median 5, MAD 0.5.
        assert!((r.median - 5.0).abs() < 0.15, "{}", r.median);
        assert!((r.mad - 0.5).abs() < 0.15, "{}", r.mad);
    }
}
