//! Online detection: every sample updates a per-series baseline in constant time and memory and
//! comes out with one normalized score.
//!
//! The score is novelty against the series' own history ([`novelty`]): beyond the range it has
//! covered, in a region it has rarely visited, frozen for longer than ever, or (with an active
//! seasonal profile) outside what this time of day has seen. A z-score ensemble (EWMA, streaming
//! median/MAD, and the per-phase seasonal z-score) draws the expected band around it and decides
//! when a firing anomaly is over: an anomaly starts with a surprise and lasts while the series
//! stays off its band. Nothing here allocates per sample, takes a lock or does I/O; the
//! lifecycle that turns scores into firing and resolved anomalies lives in [`lifecycle`].

pub mod bocpd;
pub mod book;
pub mod changepoint;
pub mod drift;
pub mod engine;
pub mod event;
pub mod ewma;
pub mod forecast;
pub mod lifecycle;
pub mod multivariate;
pub mod novelty;
pub mod params;
pub mod peers;
pub mod periods;
pub mod rate;
pub mod rest;
pub mod robust;
pub mod seasonal;
pub mod state;
pub mod upkeep;

use serde::{Deserialize, Serialize};

use ewma::Ewma;
pub use novelty::Channel;
use novelty::{NoveltyParams, NoveltyState};
use robust::RobustStats;
use seasonal::SeasonalProfile;

pub use crate::model::kind::{ClassParams, Direction, Severity};

pub use crate::config::DEFAULT_ALERT_THRESHOLD;

/// The novelty ratio that a score of `threshold` stands for (score = ratio / (1 + ratio)).
pub fn ratio_at(threshold: f64) -> f64 {
    let t = threshold.clamp(0.0, 1.0 - 1e-9);
    t / (1.0 - t)
}

/// Detector parameters shared by all series (from `anomaly_detection` in the config).
#[derive(Debug, Clone)]
pub struct DetectParams {
    pub zscore_threshold: f64,
    pub mad_threshold: f64,
    pub min_votes: usize,
    pub warmup_samples: u32,
    pub ewma_alpha: f64,
    pub alert_threshold: f64,
    pub seasonal_period_ms: i64,
    pub seasonal_bins: usize,
    pub seasonal_enabled: bool,
    /// Search each series' ring for a shorter period when its configured one is not confirmed
    /// (0 = off); the share of variance the found period must explain.
    pub period_discovery_strength: f64,
    pub novelty: NoveltyParams,
}

impl Default for DetectParams {
    fn default() -> Self {
        Self {
            zscore_threshold: 3.0,
            mad_threshold: 3.5,
            min_votes: 2,
            warmup_samples: 30,
            ewma_alpha: 0.02,
            alert_threshold: DEFAULT_ALERT_THRESHOLD,
            seasonal_period_ms: 86_400_000,
            seasonal_bins: 24,
            seasonal_enabled: true,
            period_discovery_strength: 0.6,
            novelty: NoveltyParams::default(),
        }
    }
}

/// The outcome of one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Score {
    /// Normalized anomaly score in [0, 1]; the same number in the API and in replay.
    pub score: f64,
    /// The score reached the alert threshold (and the move is in the class's direction and
    /// large enough): what starts an anomaly.
    pub anomalous: bool,
    /// Outside the expected band by the z-score ensemble: what keeps a firing anomaly open.
    pub deviating: bool,
    /// The novelty channel that made the sample anomalous.
    pub channel: Channel,
    /// Deviation in (robust) sigmas agreed by the ensemble.
    pub sigma: f64,
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    pub votes: u8,
    pub value: f64,
}

impl Score {
    pub fn severity(&self) -> Severity {
        Severity::from_sigma(self.sigma)
    }

    /// vmanomaly's convention: above 1 exactly when the sample is anomalous or the series is
    /// in a firing anomaly (`firing`), so a Grafana panel shows the whole incident.
    pub fn vm_score(&self, alert_threshold: f64, firing: bool) -> f64 {
        let ratio = self.score / alert_threshold.max(f64::EPSILON);
        if self.anomalous || firing {
            ratio.max(1.0 + 1e-6)
        } else {
            ratio.min(1.0)
        }
    }
}

/// Per-series detector state: fixed size plus an optional seasonal profile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DetectorState {
    pub ewma: Ewma,
    pub robust: RobustStats,
    pub seasonal: Option<Box<SeasonalProfile>>,
    pub novelty: NoveltyState,
    #[serde(default)]
    pub rest: rest::Rest,
    /// Samples seen since the baseline last (re)started.
    pub seen: u32,
    /// Set by the store while the series is in a firing anomaly: the band's baselines and the
    /// seasonal profile then skip every sample off the band, so the band still describes
    /// normal when the series returns and the anomaly resolves at once instead of waiting for
    /// the band to crawl back (a lasting new level is adopted by the level-shift check). Not
    /// saved: lifecycles start empty on restore.
    #[serde(skip)]
    pub in_anomaly: bool,
}

/// The k-th largest (1-based) of at most three values, by a sorting network: a general sort
/// costs more than the rest of the band on the per-sample path.
fn kth_largest(v: &mut [f64], k: usize) -> f64 {
    let swap_if_less = |v: &mut [f64], i: usize, j: usize| {
        if v[i].total_cmp(&v[j]).is_lt() {
            v.swap(i, j);
        }
    };
    match v.len() {
        0 => return 0.0,
        1 => {}
        2 => swap_if_less(v, 0, 1),
        _ => {
            swap_if_less(v, 0, 1);
            swap_if_less(v, 1, 2);
            swap_if_less(v, 0, 1);
        }
    }
    v[(k - 1).min(v.len().min(3) - 1)]
}

/// Keeps a zero-variance baseline from turning rounding noise into infinite sigmas.
fn scale_floor(level: f64) -> f64 {
    (level.abs() * 1e-6).max(1e-9)
}

impl DetectorState {
    pub fn new(params: &DetectParams, seasonal: bool) -> Self {
        Self {
            seasonal: (seasonal && params.seasonal_enabled).then(|| {
                Box::new(SeasonalProfile::new(
                    params.seasonal_period_ms,
                    params.seasonal_bins,
                ))
            }),
            ..Self::default()
        }
    }

    pub fn seasonal_active(&self) -> bool {
        self.seasonal.as_ref().is_some_and(|s| s.active)
    }

    /// Restarts the residual baselines (after the seasonal profile switches on or off, the
    /// quantity they track changes).
    pub fn restart_baseline(&mut self) {
        self.ewma = Ewma::default();
        self.robust = RobustStats::default();
        self.seen = 0;
    }

    /// Scores `x` at `ts` against the series' history, then learns from it.
    pub fn update(&mut self, ts: i64, x: f64, p: &DetectParams, class: &ClassParams) -> Score {
        if !x.is_finite() {
            return Score {
                value: x,
                ..Score::default()
            };
        }
        let phase = self.seasonal.as_deref().map(|s| s.phase(ts));
        let (base, seasonal_z) = match (self.seasonal.as_deref(), phase) {
            (Some(s), Some(phase)) if s.active => {
                let (mean, std) = s.expected_at(phase);
                (mean, Some((x - mean).abs() / std.max(scale_floor(mean))))
            }
            _ => (0.0, None),
        };
        let residual = x - base;
        let ewma_floor = scale_floor(self.ewma.mean);
        let z_ewma = self.ewma.z(residual, ewma_floor);
        let mad_floor = (0.25 * 0.6745 * self.ewma.std()).max(scale_floor(self.robust.median));
        let z_mad = self.robust.sigma(residual, mad_floor);

        // The band: each detector votes when its deviation passes its own threshold.
        let mut sigmas = [z_ewma, z_mad, 0.0];
        let thresholds = [p.zscore_threshold, p.mad_threshold, p.zscore_threshold];
        let mut active = 2;
        if let Some(z) = seasonal_z {
            sigmas[2] = z;
            active = 3;
        }
        let votes = (0..active).filter(|&i| sigmas[i] > thresholds[i]).count();
        // "Off the band" takes `min_votes` detectors (as many as there are, if fewer).
        let k = p.min_votes.clamp(1, active);
        let sigma = kth_largest(&mut sigmas[..active], k);

        let expected = base
            + if self.robust.initialized {
                self.robust.median
            } else {
                residual
            };
        let spread = p.zscore_threshold * 1.4826 * self.robust.mad.max(mad_floor);
        let deviation = x - expected;
        let direction_ok = match class.direction {
            Direction::Above => deviation > 0.0,
            Direction::Below => deviation < 0.0,
            Direction::Both => true,
        };
        let big_enough = deviation.abs() >= class.min_abs_deviation
            && deviation.abs() >= class.min_rel_deviation * expected.abs();
        let warm = self.seen >= p.warmup_samples;
        let pageable = warm && direction_ok && big_enough;

        // The score: novelty against the series' own history (and its time of day).
        let mut novelty = self.novelty.update(ts, x, warm, &p.novelty);
        if let (Some(s), Some(phase)) = (self.seasonal.as_deref_mut(), phase) {
            if warm
                && let Some(excess) = s.context_excess_at(phase, x)
                && excess > 0.0
            {
                novelty.context = excess / (self.novelty.span() * p.novelty.range_unit);
            }
            let dt = if s.last_ts == i64::MIN {
                0.0
            } else {
                ts.saturating_sub(s.last_ts).clamp(0, s.period_ms) as f64
            };
            // A phase is visited 1/bins of the time, so it fades bins times faster while it is.
            let keep = novelty::decay(dt * s.bins.len() as f64, p.novelty.memory_ms);
            s.learn_range_at(phase, x, keep, p.novelty.context_learning_rate);
        }
        let (ratio, channel) = novelty.strongest();
        // The rest applies to what is reported; learning below still sees how novel it was.
        let reported = if warm {
            self.rest.filter(ratio, &p.novelty.rest)
        } else {
            ratio
        };
        let score = if !warm {
            0.0
        } else if reported.is_finite() {
            reported / (1.0 + reported)
        } else {
            1.0
        };
        let anomalous = pageable && score >= p.alert_threshold;
        let deviating = pageable && votes >= k;

        // Learn. Outside an anomaly the band's baselines take every sample (winsorized), so a
        // drift that never fires is followed; inside one they skip the samples off the band
        // (the level-shift check adopts a new level that lasts). The seasonal profile skips
        // samples that are off the band and novel, or off the band while the series is in an
        // anomaly (so a level shift not yet confirmed does not leak into the time-of-day means
        // it will be measured against).
        if !(deviating && self.in_anomaly) {
            self.ewma
                .update(residual, p.ewma_alpha, p.zscore_threshold, ewma_floor);
            self.robust.update(residual, self.ewma.std());
        }
        if !(deviating && (ratio > 1.0 || self.in_anomaly))
            && let (Some(s), Some(phase)) = (self.seasonal.as_deref_mut(), phase)
        {
            s.update_at(phase, ts, x);
        }
        self.seen = self.seen.saturating_add(1);
        if !(self.ewma.mean.is_finite()
            && self.ewma.var.is_finite()
            && self.robust.median.is_finite()
            && self.robust.mad.is_finite())
        {
            // Values near f64::MAX overflowed the baseline; start over rather than stay poisoned.
            self.restart_baseline();
        }

        Score {
            score: score.clamp(0.0, 1.0),
            anomalous,
            deviating,
            channel: if anomalous { channel } else { Channel::None },
            sigma: if sigma.is_finite() { sigma } else { f64::MAX },
            expected,
            lower: expected - spread,
            upper: expected + spread,
            votes: votes as u8,
            value: x,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.seasonal.as_ref().map_or(0, |s| s.heap_bytes())
    }

    /// Moves the band to a new level after a confirmed level shift (the spread is kept).
    pub fn adopt_level(&mut self, level: f64) {
        if level.is_finite() {
            self.ewma.mean = level;
            self.robust.median = level;
        }
    }

    /// Whether there is anything worth saving (a series whose samples were all NaN or that
    /// only ever sent one counter value has none).
    pub fn has_learned(&self) -> bool {
        self.seen > 0 || self.novelty.seen() > 0
    }

    /// Checks a state read from outside (snapshot, import) before it is used: anything that could
    /// make a detector panic or return NaN is refused with the reason. A seasonal profile shaped
    /// for another period or bin count (and not a shorter period found in the series' samples)
    /// is replaced by a fresh one.
    pub fn validate(&mut self, p: &DetectParams) -> Result<(), String> {
        let finite = |v: f64| v.is_finite();
        if !(finite(self.ewma.mean) && finite(self.ewma.var) && self.ewma.var >= 0.0) {
            return Err("ewma mean/var must be finite, var non-negative".into());
        }
        if !(finite(self.robust.median) && finite(self.robust.mad) && self.robust.mad >= 0.0) {
            return Err("robust median/mad must be finite, mad non-negative".into());
        }
        self.novelty
            .validate()
            .map_err(|e| format!("novelty: {e}"))?;
        if let Some(season) = self.seasonal.as_deref_mut() {
            season
                .validate()
                .map_err(|e| format!("seasonal profile: {e}"))?;
            // A discovered period (or one on trial) is shorter than the configured one, with at
            // most as many bins.
            let fits = |s: &SeasonalProfile| {
                s.discovered
                    && s.period_ms < p.seasonal_period_ms
                    && s.bins.len() <= p.seasonal_bins
            };
            if season.trial.as_deref().is_some_and(|t| !fits(t)) {
                season.trial = None;
            }
            let configured =
                season.bins.len() == p.seasonal_bins && season.period_ms == p.seasonal_period_ms;
            if !(configured || fits(season)) {
                *season = SeasonalProfile::new(p.seasonal_period_ms, p.seasonal_bins);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn noisy(rng: &mut fastrand::Rng, level: f64, spread: f64) -> f64 {
        level + (rng.f64() - 0.5) * 2.0 * spread
    }

    #[test]
    fn quiet_series_raises_nothing_and_a_spike_is_anomalous() {
        let p = DetectParams::default();
        let class = ClassParams::default();
        let mut d = DetectorState::new(&p, false);
        let mut rng = fastrand::Rng::with_seed(11);
        let mut false_alarms = 0;
        for i in 0..2000 {
            let s = d.update(i * 15_000, noisy(&mut rng, 100.0, 5.0), &p, &class);
            false_alarms += usize::from(s.anomalous);
            assert!((0.0..=1.0).contains(&s.score));
        }
        assert_eq!(false_alarms, 0);
        let spike = d.update(2000 * 15_000, 160.0, &p, &class);
        assert!(spike.anomalous, "{spike:?}");
        assert!(spike.votes >= 2);
        assert!(spike.sigma >= 5.0);
        assert_eq!(spike.severity(), Severity::Critical);
        assert!(spike.vm_score(p.alert_threshold, false) > 1.0);
        assert!(spike.lower < 100.0 && spike.upper > 100.0 && spike.upper < 160.0);
    }

    #[test]
    fn direction_filter_ignores_drops_of_an_above_metric() {
        let p = DetectParams::default();
        let class = ClassParams {
            direction: Direction::Above,
            ..Default::default()
        };
        let mut d = DetectorState::new(&p, false);
        let mut rng = fastrand::Rng::with_seed(5);
        for i in 0..500 {
            d.update(i * 15_000, noisy(&mut rng, 100.0, 5.0), &p, &class);
        }
        let drop = d.update(500 * 15_000, 20.0, &p, &class);
        assert!(!drop.anomalous);
        assert!(drop.vm_score(p.alert_threshold, false) <= 1.0);
    }

    #[test]
    fn minimum_deviation_suppresses_tiny_but_significant_moves() {
        let p = DetectParams::default();
        let class = ClassParams {
            min_rel_deviation: 0.1,
            ..Default::default()
        };
        let mut d = DetectorState::new(&p, false);
        let mut rng = fastrand::Rng::with_seed(6);
        for i in 0..500 {
            d.update(i * 15_000, noisy(&mut rng, 100.0, 0.01), &p, &class);
        }
        // 1 % up: hundreds of sigmas, but below the 10 % floor.
        let s = d.update(500 * 15_000, 101.0, &p, &class);
        assert!(!s.anomalous);
    }

    #[test]
    fn warmup_holds_back_anomalies() {
        let p = DetectParams {
            warmup_samples: 50,
            ..Default::default()
        };
        let mut d = DetectorState::new(&p, false);
        for i in 0..49 {
            let s = d.update(
                i,
                if i == 40 { 1e6 } else { 1.0 + (i % 3) as f64 },
                &p,
                &ClassParams::default(),
            );
            assert!(!s.anomalous);
            assert_eq!(s.score, 0.0);
        }
    }

    #[test]
    fn seasonal_profile_flags_a_noon_value_at_3am_but_not_the_noon_peak() {
        const DAY: i64 = 86_400_000;
        let p = DetectParams {
            seasonal_period_ms: DAY,
            ..Default::default()
        };
        let class = ClassParams::default();
        let mut d = DetectorState::new(&p, true);
        let mut rng = fastrand::Rng::with_seed(9);
        // Low at night (~20), peak at noon (~200).
        let shape = |ts: i64| {
            let hour = (ts % DAY) as f64 / 3_600_000.0;
            20.0 + 180.0 * (-((hour - 12.0) / 3.0).powi(2)).exp()
        };
        let step = 60_000;
        let mut ts = 0;
        while ts < 4 * DAY {
            d.update(ts, shape(ts) + noisy(&mut rng, 0.0, 3.0), &p, &class);
            ts += step;
            if ts % (DAY / 4) == 0 && d.seasonal.as_deref_mut().is_some_and(|s| s.evaluate(0.3)) {
                d.restart_baseline();
            }
        }
        assert!(d.seasonal_active());
        // Day 5: the normal ramp up to the noon peak raises nothing…
        let mut alarms = 0;
        let day5 = 4 * DAY;
        let mut t = day5;
        while t <= day5 + 12 * 3_600_000 {
            alarms += usize::from(
                d.update(t, shape(t) + noisy(&mut rng, 0.0, 3.0), &p, &class)
                    .anomalous,
            );
            t += step;
        }
        assert_eq!(alarms, 0);
        // …while the noon level at 3 a.m. the next night is flagged.
        let mut t = day5 + 12 * 3_600_000 + step;
        while t < day5 + DAY + 3 * 3_600_000 {
            d.update(t, shape(t) + noisy(&mut rng, 0.0, 3.0), &p, &class);
            t += step;
        }
        let s = d.update(t, 200.0, &p, &class);
        assert!(s.anomalous, "{s:?}");
    }

    proptest! {
        #[test]
        fn score_is_always_in_unit_interval(values in proptest::collection::vec(any::<f64>(), 1..300)) {
            let p = DetectParams { warmup_samples: 5, ..Default::default() };
            let mut d = DetectorState::new(&p, true);
            for (i, v) in values.into_iter().enumerate() {
                if !v.is_finite() { continue; }
                let s = d.update(i as i64 * 1000, v, &p, &ClassParams::default());
                prop_assert!((0.0..=1.0).contains(&s.score), "{s:?}");
                prop_assert!(!s.score.is_nan());
                prop_assert_eq!(s.anomalous, s.vm_score(p.alert_threshold, false) > 1.0);
            }
        }
    }
}
