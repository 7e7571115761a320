//! A per-phase seasonal profile (e.g. 24 hourly bins of a day) learned online.
//!
//! Each bin keeps an exponentially weighted mean and variance of the samples that fall in its
//! phase. Whether the profile explains enough of the variance to be trusted (the seasonal
//! strength) is decided off the hot path by [`SeasonalProfile::evaluate`]; until then the
//! profile only learns.

/// 18 bytes, not 20: packed to the count's alignment, so a 24-bin profile is 48 bytes smaller
/// in each of the series that keep one. Fields are read and written by value (an unaligned
/// f32 costs nothing on x86-64 or aarch64); nothing takes a reference to one.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
#[repr(C, packed(2))]
pub struct Bin {
    pub mean: f32,
    pub var: f32,
    pub n: u16,
    /// Range of the values seen in this phase (fading towards the mean).
    pub lo: f32,
    pub hi: f32,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeasonalProfile {
    pub period_ms: i64,
    pub bins: Box<[Bin]>,
    pub first_ts: i64,
    pub last_ts: i64,
    pub active: bool,
    pub strength: f32,
    /// The period was found in the series' own samples (see [`super::periods`]), not named
    /// by config.
    #[serde(default)]
    pub discovered: bool,
    /// When (sample time, ms) the ring is next searched for a period.
    #[serde(default)]
    pub next_period_check_ts: i64,
    /// A period found in the ring, on trial: it learns from the samples that come after the
    /// search (not the ones it was picked on) and replaces this profile only if it explains
    /// them. Meanwhile this profile goes on learning and scoring as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<Box<SeasonalProfile>>,
}

/// A trial is judged once it has seen this many of its periods.
pub const TRIAL_PERIODS: i64 = 4;

/// Where a timestamp falls in a profile's period: fractional position in bins and its bin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    position: f64,
    bin: usize,
}

/// A bin forgets with at least this weight per sample, so a bin remembers roughly its last
/// 3 periods at a 15 s interval and 24 bins (240 samples per bin per period).
const MIN_ALPHA: f32 = 1.0 / 720.0;

impl SeasonalProfile {
    pub fn new(period_ms: i64, bins: usize) -> Self {
        Self {
            period_ms: period_ms.max(1),
            bins: vec![Bin::default(); bins.max(2)].into_boxed_slice(),
            first_ts: i64::MIN,
            last_ts: i64::MIN,
            active: false,
            strength: 0.0,
            discovered: false,
            next_period_check_ts: 0,
            trial: None,
        }
    }

    /// An empty profile for a period found in the series' samples, to be put on trial.
    pub fn discovered(period_ms: i64, bins: usize) -> Self {
        let mut profile = Self::new(period_ms, bins);
        profile.discovered = true;
        profile
    }

    /// Becomes `next` (a promoted trial, or the configured profile again) while keeping when the
    /// next period search is due.
    pub fn replace_keeping_schedule(&mut self, next: SeasonalProfile) {
        let due = self.next_period_check_ts;
        *self = next;
        self.next_period_check_ts = due;
    }

    /// The trial's verdict: `None` while it has seen fewer than [`TRIAL_PERIODS`] periods (or a
    /// phase fewer than 4 times), else the share of variance its phases explain. A trial that
    /// has run twice that long and still misses a phase (gaps in the samples) fails with 0.
    pub fn trial_strength(&self) -> Option<f32> {
        let span = self.last_ts.saturating_sub(self.first_ts);
        let periods = TRIAL_PERIODS.saturating_mul(self.period_ms);
        if self.first_ts == i64::MIN || span < periods {
            return None;
        }
        if self.bins.iter().any(|b| b.n < 4) {
            return (span >= periods.saturating_mul(2)).then_some(0.0);
        }
        Some(self.explained_share())
    }

    /// Where `ts` falls in the period. Computed once per sample and handed to the `*_at`
    /// methods: the integer remainder and divisions are most of a profile's per-sample cost.
    pub fn phase(&self, ts: i64) -> Phase {
        let offset = ts.rem_euclid(self.period_ms) as f64;
        let position = offset / self.period_ms as f64 * self.bins.len() as f64;
        // `position` is never negative, so truncation is the floor.
        Phase {
            position,
            bin: (position as usize).min(self.bins.len() - 1),
        }
    }

    pub fn update(&mut self, ts: i64, x: f64) {
        let phase = self.phase(ts);
        self.update_at(phase, ts, x);
    }

    /// [`Self::update`] with the phase of `ts` already known.
    pub fn update_at(&mut self, phase: Phase, ts: i64, x: f64) {
        if let Some(trial) = self.trial.as_deref_mut() {
            trial.update(ts, x);
            trial.learn_range(ts, x, 1.0, 1.0);
        }
        if self.first_ts == i64::MIN {
            self.first_ts = ts;
        }
        self.last_ts = ts;
        let bin = &mut self.bins[phase.bin];
        let x = x as f32;
        if bin.n == 0 {
            bin.mean = x;
            bin.var = 0.0;
            bin.lo = x;
            bin.hi = x;
        } else {
            // A mature phase learns at the floor rate: no division for it.
            let alpha = if f32::from(bin.n) + 1.0 >= 1.0 / MIN_ALPHA {
                MIN_ALPHA
            } else {
                (1.0 / (f32::from(bin.n) + 1.0)).max(MIN_ALPHA)
            };
            let diff = x - bin.mean;
            bin.mean += alpha * diff;
            bin.var = (1.0 - alpha) * (bin.var + alpha * diff * diff);
        }
        bin.n = bin.n.saturating_add(1);
    }

    /// Fades the phase's range towards its mean by `keep` (0..=1), then moves it `rate` of the
    /// way towards `x` if `x` lies outside.
    pub fn learn_range(&mut self, ts: i64, x: f64, keep: f64, rate: f64) {
        let phase = self.phase(ts);
        self.learn_range_at(phase, x, keep, rate);
    }

    /// [`Self::learn_range`] with the phase already known.
    pub fn learn_range_at(&mut self, phase: Phase, x: f64, keep: f64, rate: f64) {
        let bin = &mut self.bins[phase.bin];
        let x = x as f32;
        if bin.n == 0 {
            return;
        }
        let keep = keep as f32;
        bin.hi = bin.mean + (bin.hi - bin.mean) * keep;
        bin.lo = bin.mean - (bin.mean - bin.lo) * keep;
        let rate = rate as f32;
        if x < bin.lo {
            bin.lo += (x - bin.lo) * rate;
        }
        if x > bin.hi {
            bin.hi += (x - bin.hi) * rate;
        }
    }

    /// How far `x` lies outside what this phase has seen; `None` until the profile is active
    /// (which [`Self::evaluate`] grants only once every phase has been seen over two periods).
    pub fn context_excess(&self, ts: i64, x: f64) -> Option<f64> {
        self.context_excess_at(self.phase(ts), x)
    }

    /// [`Self::context_excess`] with the phase already known.
    pub fn context_excess_at(&self, phase: Phase, x: f64) -> Option<f64> {
        if !self.active {
            return None;
        }
        // Only the phase itself: its neighbours would let a departure that started an hour
        // earlier excuse itself.
        let bin = &self.bins[phase.bin];
        Some((x - f64::from(bin.hi)).max(f64::from(bin.lo) - x).max(0.0))
    }

    /// Expected value and standard deviation at `ts`, interpolated between bin centres.
    pub fn expected(&self, ts: i64) -> (f64, f64) {
        self.expected_at(self.phase(ts))
    }

    /// [`Self::expected`] with the phase already known.
    pub fn expected_at(&self, phase: Phase) -> (f64, f64) {
        let n = self.bins.len();
        let p = phase.position - 0.5;
        // p ≥ −0.5: truncation is the floor except on (−0.5, 0), which lies below bin 0's centre.
        let (i, w) = if p >= 0.0 {
            let lo = p as usize;
            (lo.min(n - 1), p - lo as f64)
        } else {
            (n - 1, p + 1.0)
        };
        let j = (i + 1) % n;
        let (a, b) = (&self.bins[i], &self.bins[j]);
        let mean = f64::from(a.mean) * (1.0 - w) + f64::from(b.mean) * w;
        let var = f64::from(a.var) * (1.0 - w) + f64::from(b.var) * w;
        (mean, var.max(0.0).sqrt())
    }

    /// Moves the whole profile by `delta` (a confirmed level shift of the deseasonalized
    /// series): every phase's mean and range, so the daily shape is kept at the new level
    /// instead of being relearned phase by phase over days.
    pub fn shift_level(&mut self, delta: f64) {
        if !delta.is_finite() {
            return;
        }
        let delta = delta as f32;
        for bin in self.bins.iter_mut().filter(|b| b.n > 0) {
            bin.mean += delta;
            bin.lo += delta;
            bin.hi += delta;
        }
    }

    /// Seasonal strength: the share of variance explained by the phase, i.e.
    /// var(bin means) / (mean(bin variances) + var(bin means)). Needs two full periods.
    pub fn evaluate(&mut self, min_strength: f32) -> bool {
        let covered = self.first_ts != i64::MIN
            && self.last_ts.saturating_sub(self.first_ts) >= self.period_ms.saturating_mul(2);
        if !covered || self.bins.iter().any(|b| b.n < 2) {
            self.strength = 0.0;
            self.active = false;
            return false;
        }
        self.strength = self.explained_share();
        let was = self.active;
        self.active = self.strength >= min_strength;
        self.active != was
    }

    /// var(bin means) / (mean(bin variances) + var(bin means)).
    fn explained_share(&self) -> f32 {
        let n = self.bins.len() as f32;
        let mean_of_means = self.bins.iter().map(|b| b.mean).sum::<f32>() / n;
        let var_of_means = self
            .bins
            .iter()
            .map(|b| (b.mean - mean_of_means).powi(2))
            .sum::<f32>()
            / n;
        let mean_var = self.bins.iter().map(|b| b.var).sum::<f32>() / n;
        let total = var_of_means + mean_var;
        if total > 0.0 {
            var_of_means / total
        } else {
            0.0
        }
    }

    /// Checks a profile read from outside before it is used.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.bins.len() < 2 {
            return Err("needs at least 2 bins");
        }
        if self.period_ms <= 0 {
            return Err("period must be positive");
        }
        let finite = |v: f32| v.is_finite();
        if !self.bins.iter().all(|b| {
            finite(b.mean) && finite(b.var) && b.var >= 0.0 && finite(b.lo) && finite(b.hi)
        }) {
            return Err("bin mean/var/lo/hi must be finite, var non-negative");
        }
        if !self.strength.is_finite() {
            return Err("strength must be finite");
        }
        if let Some(trial) = self.trial.as_deref() {
            if !trial.discovered || trial.trial.is_some() {
                return Err("trial must be a discovered profile without a trial of its own");
            }
            trial.validate()?;
        }
        Ok(())
    }

    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.bins.len() * std::mem::size_of::<Bin>()
            + self.trial.as_deref().map_or(0, Self::heap_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn daily(ts: i64) -> f64 {
        100.0 + 50.0 * ((ts as f64 / DAY as f64) * std::f64::consts::TAU).sin()
    }

    #[test]
    fn a_bin_is_eighteen_bytes() {
        assert_eq!(std::mem::size_of::<Bin>(), 18);
    }

    #[test]
    fn learns_a_daily_shape_and_becomes_active() {
        let mut p = SeasonalProfile::new(DAY, 24);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut ts = 0;
        while ts < 3 * DAY {
            p.update(ts, daily(ts) + rng.f64() * 4.0 - 2.0);
            ts += 60_000;
        }
        p.evaluate(0.3);
        assert!(p.active, "strength {}", p.strength);
        let (mean, std) = p.expected(3 * DAY + DAY / 4);
        assert!((mean - 150.0).abs() < 6.0, "{mean}");
        assert!(std < 10.0, "{std}");
    }

    #[test]
    fn a_level_shift_moves_every_phase_and_keeps_the_shape() {
        let mut p = SeasonalProfile::new(DAY, 24);
        let mut ts = 0;
        while ts < 3 * DAY {
            p.update(ts, daily(ts));
            p.learn_range(ts, daily(ts), 1.0, 1.0);
            ts += 60_000;
        }
        let noon = 3 * DAY + DAY / 4;
        let (before, _) = p.expected(noon);
        let (night, _) = p.expected(noon + DAY / 2);
        p.shift_level(30.0);
        assert!((p.expected(noon).0 - before - 30.0).abs() < 1e-3);
        assert!((p.expected(noon + DAY / 2).0 - night - 30.0).abs() < 1e-3);
        assert_eq!(
            p.context_excess(noon, daily(noon) + 30.0),
            None,
            "not active yet"
        );
        p.evaluate(0.3);
        assert_eq!(p.context_excess(noon, daily(noon) + 30.0), Some(0.0));
        assert!(
            p.context_excess(noon, daily(noon))
                .is_some_and(|e| e > 20.0)
        );
    }

    #[test]
    fn a_trial_learns_beside_the_profile_and_is_judged_after_four_periods() {
        const TEN_MIN: i64 = 600_000;
        let mut rng = fastrand::Rng::with_seed(3);
        for (cycle, expect_strong) in [(true, true), (false, false)] {
            let mut p = SeasonalProfile::new(DAY, 24);
            p.trial = Some(Box::new(SeasonalProfile::discovered(TEN_MIN, 20)));
            let mut ts = 0;
            while ts < 4 * TEN_MIN {
                let busy = cycle && ts % TEN_MIN < 120_000;
                p.update(ts, if busy { 800.0 } else { 200.0 } + rng.f64() * 40.0);
                ts += 15_000;
            }
            let trial = p.trial.as_deref().expect("still on trial");
            assert_eq!(trial.trial_strength(), None, "judged before four periods");
            p.update(ts, 200.0);
            let strength = p.trial.as_deref().and_then(|t| t.trial_strength());
            let strength = strength.expect("judged after four periods");
            assert_eq!(strength >= 0.6, expect_strong, "cycle {cycle}: {strength}");
            assert!(
                p.bins.iter().filter(|b| b.n > 0).count() > 0,
                "the profile learned too"
            );
        }
    }

    #[test]
    fn a_trial_that_never_sees_half_its_phases_fails_after_twice_its_time() {
        const TEN_MIN: i64 = 600_000;
        let mut t = SeasonalProfile::discovered(TEN_MIN, 20);
        let mut ts = 0;
        let mut verdicts = Vec::new();
        while ts <= 8 * TEN_MIN {
            // Samples only in the first half of every period.
            if ts % TEN_MIN < TEN_MIN / 2 {
                t.update(ts, 1.0);
            }
            verdicts.push((ts, t.trial_strength()));
            ts += 15_000;
        }
        let first = verdicts
            .iter()
            .find(|(_, v)| v.is_some())
            .expect("a verdict");
        assert_eq!(first.1, Some(0.0));
        assert!(
            first.0 >= 7 * TEN_MIN,
            "not before twice the trial: {}",
            first.0
        );
    }

    #[test]
    fn noise_is_not_seasonal() {
        let mut p = SeasonalProfile::new(DAY, 24);
        let mut rng = fastrand::Rng::with_seed(2);
        let mut ts = 0;
        while ts < 3 * DAY {
            p.update(ts, 100.0 + rng.f64() * 10.0);
            ts += 60_000;
        }
        p.evaluate(0.3);
        assert!(!p.active, "strength {}", p.strength);
    }
}
