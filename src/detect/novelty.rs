//! Novelty against a series' own history: is this value beyond anything the series has done?
//!
//! This is what the anomaly score is made of (the z-score ensemble in the parent module only
//! draws the expected band and decides when a firing anomaly is over). Channels, each a ratio
//! where 1.0 is one configured unit of novelty, scale-free so one threshold means the same on
//! every series:
//! - **range**: how far the value lies outside the range the series has covered, as a fraction
//!   of that range. The extremes fade towards the middle with a half-life (`memory`), so a spike
//!   from last month does not mask everything after it;
//! - **density**: how much rarer the value's neighbourhood is than what the series usually
//!   visits (Bayesian surprise over a histogram of the covered range, in nats above the series'
//!   own typical surprise). A short history cannot be very surprised, so this channel only
//!   speaks once the series has a long past;
//! - **stuck**: a run of identical values longer than any run seen before (a frozen exporter or
//!   flatlined process), reported when the run outlasts the limit and at each doubling;
//! - **context**: outside what this time of day has seen, for series with an active seasonal
//!   profile (computed by [`super::seasonal`], combined here);
//! - **drift**: a short moving average beyond the range the average has covered: a sustained
//!   move of the mean that single samples hide inside their range ([`super::drift`]).
//!
//! A novel value is learned at once, so a series that moves to a new level scores on the first
//! sample of the move, not on every sample after it: repeats are suppressed by construction,
//! which keeps a detection short and decisive. Constant time and memory per sample, no
//! allocation.

use serde::{Deserialize, Serialize};

use super::drift::{DriftParams, DriftState};
use super::rest::RestParams;

/// Histogram resolution over the covered range.
const BINS: usize = 32;
/// Smoothing mass spread over the bins, so an empty neighbourhood has a finite surprise.
const PRIOR: f32 = 1.0;
/// The typical surprise is a running mean over at most this many samples.
const TYPICAL_WINDOW: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoveltyParams {
    /// Excess beyond the covered range, as a fraction of the range, that counts as one unit.
    pub range_unit: f64,
    /// Surprise in nats above the series' typical surprise that counts as one unit.
    pub density_unit: f64,
    /// Half-life of the covered range and of the histogram (milliseconds of sample time).
    pub memory_ms: f64,
    /// Share of the way a time-of-day range moves towards a value outside it; small, so a
    /// one-day departure stays novel the next day but a lasting new routine is learned.
    pub context_learning_rate: f64,
    /// A stuck run counts once it is this many times longer than the longest run seen...
    pub stuck_factor: f64,
    /// ... and at least this many samples long.
    pub stuck_min_samples: u32,
    pub drift: DriftParams,
    pub rest: RestParams,
}

impl Default for NoveltyParams {
    fn default() -> Self {
        Self {
            range_unit: 0.2,
            density_unit: 3.0,
            memory_ms: 7.0 * 86_400_000.0,
            context_learning_rate: 0.1,
            stuck_factor: 3.0,
            stuck_min_samples: 12,
            drift: DriftParams::default(),
            rest: RestParams::default(),
        }
    }
}

/// Which channel made a sample novel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    #[default]
    None,
    Range,
    Density,
    Stuck,
    Context,
    Drift,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Range => "range",
            Self::Density => "density",
            Self::Stuck => "stuck",
            Self::Context => "context",
            Self::Drift => "drift",
        }
    }
}

/// Per-channel ratios (1.0 = one unit of novelty).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Novelty {
    pub range: f64,
    pub density: f64,
    pub stuck: f64,
    pub context: f64,
    pub drift: f64,
}

impl Novelty {
    /// The largest ratio and the channel it came from.
    pub fn strongest(&self) -> (f64, Channel) {
        [
            (self.range, Channel::Range),
            (self.density, Channel::Density),
            (self.stuck, Channel::Stuck),
            (self.context, Channel::Context),
            (self.drift, Channel::Drift),
        ]
        .into_iter()
        .filter(|(r, _)| *r > 0.0)
        .fold(
            (0.0, Channel::None),
            |best, c| if c.0 > best.0 { c } else { best },
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoveltyState {
    lo: f64,
    hi: f64,
    last_ts: i64,
    /// Histogram origin and bin width; the bins cover [origin, origin + BINS·width).
    origin: f64,
    width: f64,
    /// Counts in units of `unit`: fading multiplies `unit` up instead of every count down.
    counts: [f32; BINS],
    total: f32,
    unit: f32,
    /// Running mean of the surprise of the values seen: what is typical for this series.
    typical_surprise: f64,
    last_value: f64,
    run: u32,
    longest_run: u32,
    seen: u32,
    #[serde(default)]
    drift: DriftState,
}

impl Default for NoveltyState {
    fn default() -> Self {
        Self {
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
            last_ts: i64::MIN,
            origin: 0.0,
            width: 0.0,
            counts: [0.0; BINS],
            total: 0.0,
            unit: 1.0,
            typical_surprise: 0.0,
            last_value: f64::NAN,
            run: 0,
            longest_run: 0,
            seen: 0,
            drift: DriftState::default(),
        }
    }
}

impl NoveltyState {
    /// Scores `x` against the history so far (all zero until `warm`), then learns it.
    pub fn update(&mut self, ts: i64, x: f64, warm: bool, p: &NoveltyParams) -> Novelty {
        let mut out = Novelty::default();
        if !x.is_finite() {
            return out;
        }
        self.fade(ts, p);
        // Position on the histogram's grid, shared by scoring and learning (one division).
        let position = (x - self.origin) / self.width;
        let surprise = self.surprise(position);
        let span = self.span();
        if warm && self.hi >= self.lo {
            let excess = (x - self.hi).max(self.lo - x);
            // Most samples lie inside the range: no division for them.
            if excess > 0.0 {
                out.range = excess / (span * p.range_unit);
            }
            if let Some(surprise) = surprise {
                let above_typical = surprise - self.typical_surprise;
                if above_typical > 0.0 {
                    out.density = above_typical / p.density_unit;
                }
            }
        }
        let reported = out.range.max(out.density) >= p.drift.report_ratio;
        out.drift = self.drift.update(x, span, warm, reported, &p.drift);
        self.observe_run(x, warm, p, &mut out);
        self.learn(x, position, surprise);
        self.seen = self.seen.saturating_add(1);
        out
    }

    pub fn seen(&self) -> u32 {
        self.seen
    }

    /// Checks a state read from outside: every number the channels divide by or grow from must
    /// be finite and in range.
    pub fn validate(&self) -> Result<(), &'static str> {
        let learned = self.seen > 0;
        if learned && !(self.lo.is_finite() && self.hi.is_finite() && self.lo <= self.hi) {
            return Err("lo/hi must be finite with lo <= hi");
        }
        if !(self.width.is_finite() && self.width >= 0.0 && self.origin.is_finite()) {
            return Err("histogram origin/width must be finite, width non-negative");
        }
        if !(self.unit.is_finite() && self.unit >= 1.0) {
            return Err("unit must be finite and at least 1");
        }
        let counts_ok = self.counts.iter().all(|c| c.is_finite() && *c >= 0.0);
        if !(counts_ok && self.total.is_finite() && self.total >= 0.0) {
            return Err("counts must be finite and non-negative");
        }
        if !self.typical_surprise.is_finite() {
            return Err("typical_surprise must be finite");
        }
        self.drift.validate()?;
        Ok(())
    }

    /// The covered range (never zero, so ratios stay finite on a flat series).
    pub fn span(&self) -> f64 {
        let level = self.hi.abs().max(self.lo.abs());
        let span = self.hi - self.lo;
        if span.is_finite() {
            span.max((level * 1e-6).max(1e-9))
        } else {
            f64::MAX
        }
    }

    fn observe_run(&mut self, x: f64, warm: bool, p: &NoveltyParams, out: &mut Novelty) {
        if x == self.last_value {
            self.run = self.run.saturating_add(1);
            let limit = (f64::from(self.longest_run) * p.stuck_factor)
                .ceil()
                .clamp(f64::from(p.stuck_min_samples.max(1)), f64::from(u32::MAX))
                as u32;
            // At the crossing and each doubling: the frozen stretch between is one event.
            let at_doubling =
                self.run.is_multiple_of(limit) && (self.run / limit).is_power_of_two();
            if warm && self.hi > self.lo && at_doubling {
                out.stuck = 2.0;
            }
        } else {
            self.longest_run = self.longest_run.max(self.run);
            self.run = 0;
        }
        if !warm {
            // A series that is flat from the start is flat by nature, not stuck.
            self.longest_run = self.longest_run.max(self.run);
        }
        self.last_value = x;
    }

    /// Old extremes fade towards the middle of the range, old counts towards zero.
    fn fade(&mut self, ts: i64, p: &NoveltyParams) {
        if self.last_ts != i64::MIN && ts > self.last_ts && p.memory_ms > 0.0 {
            let keep = decay(ts.saturating_sub(self.last_ts) as f64, p.memory_ms);
            if self.hi > self.lo {
                let mid = 0.5 * (self.hi + self.lo);
                self.hi = mid + (self.hi - mid) * keep;
                self.lo = mid - (mid - self.lo) * keep;
            }
            self.drift.fade(keep);
            self.unit /= keep as f32;
            if self.unit > 1e6 {
                for c in &mut self.counts {
                    *c /= self.unit;
                }
                self.total /= self.unit;
                self.unit = 1.0;
            }
        }
        self.last_ts = self.last_ts.max(ts);
    }

    /// −ln of the smoothed probability of the value's neighbourhood; `None` before the
    /// histogram exists.
    fn surprise(&self, position: f64) -> Option<f64> {
        if self.width <= 0.0 || self.total <= 0.0 {
            return None;
        }
        let mass = self.neighbourhood(position);
        let prior = PRIOR * self.unit;
        let p = (mass + prior / BINS as f32) / (self.total + prior);
        Some(-f64::from(p.ln()))
    }

    /// Counts in the bin at grid position `q` plus half of each neighbour's (zero outside the
    /// histogram).
    fn neighbourhood(&self, q: f64) -> f32 {
        // Only the bin and its neighbours inside the grid count; anything else (far outside,
        // NaN) has none. Checked on the float so the cast below cannot saturate into range.
        if !(q > -2.0 && q < BINS as f64 + 1.0) {
            return 0.0;
        }
        // Truncation is floor for q ≥ 0 and cheaper than the floor call (no SSE4.1 baseline).
        let pos = if q >= 0.0 {
            q as isize
        } else {
            q.floor() as isize
        };
        let at = |i: isize| {
            usize::try_from(i)
                .ok()
                .and_then(|i| self.counts.get(i))
                .copied()
        };
        at(pos).unwrap_or(0.0) + 0.5 * (at(pos - 1).unwrap_or(0.0) + at(pos + 1).unwrap_or(0.0))
    }

    /// Learns `x`, whose position on the grid as it was when scored is `position`.
    fn learn(&mut self, x: f64, mut position: f64, surprise: Option<f64>) {
        self.lo = self.lo.min(x);
        self.hi = self.hi.max(x);
        let grid = (self.origin, self.width);
        if self.width <= 0.0 {
            if self.hi <= self.lo || !(self.hi - self.lo).is_finite() {
                return;
            }
            // First spread seen: a grid with room on both sides of it.
            self.width = (self.hi - self.lo) * 2.0 / BINS as f64;
            self.origin = self.lo - (self.hi - self.lo) * 0.5;
        }
        while x < self.origin || x >= self.origin + self.width * BINS as f64 {
            if !self.grow(x) {
                return;
            }
        }
        if (self.origin, self.width) != grid {
            position = (x - self.origin) / self.width;
        }
        let i = (position as usize).min(BINS - 1);
        self.counts[i] += self.unit;
        self.total += self.unit;
        // The surprise before the grid grew is the one the sample was scored with.
        if let Some(surprise) = surprise {
            let alpha = if self.seen >= TYPICAL_WINDOW {
                const { 1.0 / TYPICAL_WINDOW as f64 }
            } else {
                1.0 / f64::from(self.seen.max(1))
            };
            self.typical_surprise += alpha * (surprise - self.typical_surprise);
        }
    }

    /// Doubles the bin width, keeping the histogram anchored on the side away from `x`.
    fn grow(&mut self, x: f64) -> bool {
        let width = self.width * 2.0;
        let origin = if x < self.origin {
            self.origin + self.width * BINS as f64 - width * BINS as f64
        } else {
            self.origin
        };
        if !width.is_finite() || !origin.is_finite() {
            return false;
        }
        let offset = if x < self.origin { BINS / 2 } else { 0 };
        let mut merged = [0.0f32; BINS];
        for (i, c) in self.counts.iter().enumerate() {
            merged[offset + i / 2] += c;
        }
        self.counts = merged;
        self.width = width;
        self.origin = origin;
        true
    }
}

/// The share of a quantity with half-life `half_life` left after `dt`. Sampling intervals are
/// tiny next to a memory of days, where the first-order term is exact to 1e-7 and saves an
/// `exp` per sample.
pub fn decay(dt: f64, half_life: f64) -> f64 {
    let x = std::f64::consts::LN_2 * dt / half_life.max(f64::MIN_POSITIVE);
    if x < 1e-3 { 1.0 - x } else { (-x).exp() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STEP: i64 = 300_000;

    fn feed(state: &mut NoveltyState, values: impl IntoIterator<Item = f64>) -> Vec<Novelty> {
        let p = NoveltyParams::default();
        values
            .into_iter()
            .enumerate()
            .map(|(i, x)| state.update(i as i64 * STEP, x, i >= 30, &p))
            .collect()
    }

    #[test]
    fn a_new_level_is_novel_once_then_learned() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut s = NoveltyState::default();
        let calm: Vec<f64> = (0..2000).map(|_| 10.0 + rng.f64()).collect();
        let scores = feed(&mut s, calm);
        let t = super::super::DEFAULT_ALERT_THRESHOLD;
        assert!(
            scores[100..]
                .iter()
                .all(|n| n.range < 1.0 && n.density < 1.0)
        );
        assert!(
            scores[100..]
                .iter()
                .all(|n| n.strongest().0 < t / (1.0 - t))
        );
        let p = NoveltyParams::default();
        let jump = s.update(2000 * STEP, 15.0, true, &p);
        assert_eq!(jump.strongest().1, Channel::Range);
        assert!(jump.range > 10.0, "{jump:?}");
        // The second sample at the new level is no longer beyond the range, and below the
        // ratio that the default alert threshold stands for.
        let again = s.update(2001 * STEP, 15.0, true, &p);
        assert!(again.range < 0.01, "{again:?}");
        assert!(again.strongest().0 < t / (1.0 - t), "{again:?}");
    }

    #[test]
    fn a_value_in_a_never_visited_gap_is_novel_after_a_long_history() {
        // Two levels, never anything between them.
        let mut s = NoveltyState::default();
        let mut rng = fastrand::Rng::with_seed(2);
        let levels: Vec<f64> = (0..4000)
            .map(|i| if i % 2 == 0 { 0.0 } else { 100.0 } + rng.f64())
            .collect();
        feed(&mut s, levels);
        let p = NoveltyParams::default();
        let middle = s.update(4000 * STEP, 50.0, true, &p);
        assert_eq!(middle.range, 0.0);
        assert!(middle.density > 2.0, "{middle:?}");
        let usual = s.update(4001 * STEP, 100.5, true, &p);
        assert!(usual.density < 0.5, "{usual:?}");
    }

    #[test]
    fn a_frozen_value_is_reported_once_per_doubling() {
        let mut s = NoveltyState::default();
        let mut rng = fastrand::Rng::with_seed(3);
        let noisy: Vec<f64> = (0..500).map(|_| rng.f64()).collect();
        feed(&mut s, noisy);
        let p = NoveltyParams::default();
        let reports: Vec<usize> = (0..100)
            .filter(|i| s.update((500 + i) * STEP, 0.5, true, &p).stuck > 0.0)
            .map(|i| i as usize)
            .collect();
        assert_eq!(reports, vec![12, 24, 48, 96]);
    }

    #[test]
    fn a_series_flat_from_the_start_is_never_stuck() {
        let mut s = NoveltyState::default();
        let scores = feed(&mut s, std::iter::repeat_n(7.0, 3000));
        assert!(scores.iter().all(|n| n.strongest().0 == 0.0));
    }

    proptest! {
        #[test]
        fn ratios_are_finite_and_non_negative(values in prop::collection::vec(any::<f64>(), 1..300)) {
            let mut s = NoveltyState::default();
            for n in feed(&mut s, values) {
                for r in [n.range, n.density, n.stuck, n.context] {
                    prop_assert!(r.is_finite() || r == f64::INFINITY);
                    prop_assert!(r >= 0.0);
                }
            }
        }
    }
}
