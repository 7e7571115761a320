//! Forecasts and predicted breaches, refit off the hot path from a series' ring.
//!
//! The model is additive Holt (ETS(A,A,N): level and trend, smoothing weights chosen by the
//! smallest one-step squared error over a small grid) on the samples in the ring, deseasonalized
//! by the series' seasonal profile when that profile is active, so a normal daily rise does not
//! extrapolate into a breach. Forecasts come with the ETS(A,A,N) prediction interval.
//!
//! A breach is predicted only when the trend is real: the least-squares slope over the window
//! must stand out from its own standard error (`MIN_TREND_T`, with the sample size discounted
//! by the residuals' autocorrelation time, so a gauge's slow wander is not a trend), the series
//! must not already be past the threshold (that is an anomaly, not a prediction), and the
//! central forecast must cross the threshold within the longest horizon and within
//! `MAX_EXTRAPOLATION` spans of the window it was fitted on.

use serde::Serialize;

use super::Direction;
use super::seasonal::SeasonalProfile;

/// The least-squares slope must be this many standard errors away from zero.
const MIN_TREND_T: f64 = 8.0;
/// A breach is predicted at most this many window spans ahead: within a window, a slow swing of
/// the window's own length looks exactly like a trend (no statistic on the window can tell
/// them apart), so how far a trend may be extrapolated is bounded by how long it was seen. An
/// hour of ring gives up to three hours of warning.
const MAX_EXTRAPOLATION: f64 = 3.0;
/// Fewer samples than this are not a basis for a forecast.
pub const MIN_SAMPLES: usize = 20;
const ALPHAS: [f64; 6] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.8];
const BETAS: [f64; 4] = [0.01, 0.03, 0.1, 0.3];

/// One fitted model, ready to forecast from the last sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub level: f64,
    pub trend: f64,
    pub alpha: f64,
    pub beta: f64,
    /// Standard deviation of the one-step errors.
    pub sigma: f64,
    /// Spacing of the samples (median interval, ms).
    pub step_ms: f64,
    pub last_ts: i64,
    /// t statistic of the least-squares slope: the strongest of the whole window, its newest
    /// half and its newest quarter.
    pub trend_t: f64,
    /// Time spanned by the part of the window whose trend `trend_t` measures (ms).
    pub span_ms: i64,
    /// That part's least-squares slope, per step.
    pub tested_slope: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ForecastPoint {
    pub horizon_seconds: u64,
    pub yhat: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Breach {
    pub threshold: f64,
    pub direction: Direction,
    /// Sample time (ms) at which the central forecast crosses the threshold.
    pub at_ms: i64,
    /// The forecast value at that time (the threshold, up to the step).
    pub value: f64,
    /// The value when the prediction was made.
    pub current: f64,
}

/// A forecast series' latest fit, refit every `refit_interval` by the store's upkeep.
#[derive(Debug, Clone, Default)]
pub struct ForecastState {
    pub points: Vec<ForecastPoint>,
    pub breach: Option<Breach>,
    /// Id of the open predicted_breach anomaly (0 when none).
    pub anomaly_id: u64,
    pub started_ts: i64,
    /// Sample time of the last refit (refits follow sample time, so replays and the
    /// simulator's compressed time refit as often per sample as live ingestion does).
    pub fitted_ts: Option<i64>,
}

impl ForecastState {
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.points.capacity() * std::mem::size_of::<ForecastPoint>()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForecastParams {
    pub enabled: bool,
    pub horizons_ms: Vec<u64>,
    pub refit_ms: i64,
}

impl Default for ForecastParams {
    fn default() -> Self {
        Self {
            enabled: true,
            horizons_ms: vec![3_600_000, 3 * 3_600_000, 6 * 3_600_000],
            refit_ms: 300_000,
        }
    }
}

/// Fits the model to `samples` (in time order); `None` when there are too few or they are not
/// finite. `season`, when active, is removed before fitting and added back by [`forecast`].
pub fn fit(samples: &[(i64, f64)], season: Option<&SeasonalProfile>) -> Option<Fit> {
    if samples.len() < MIN_SAMPLES || samples.iter().any(|(_, v)| !v.is_finite()) {
        return None;
    }
    let season = season.filter(|s| s.active);
    let y: Vec<f64> = samples
        .iter()
        .map(|&(ts, v)| v - season.map_or(0.0, |s| s.expected(ts).0))
        .collect();
    let mut gaps: Vec<i64> = samples
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0))
        .collect();
    gaps.sort_unstable();
    let step_ms = gaps[gaps.len() / 2].max(1) as f64;

    // Start from the least-squares line: a first difference is mostly noise when the trend per
    // sample is far smaller than the noise, and a small beta would take the whole window to
    // forget it.
    let (slope_per_ms, intercept, whole_t) = least_squares(samples, &y);
    let start = (intercept, slope_per_ms * step_ms);
    // A leak that began within the window is a line only over its recent part (a hockey stick
    // over the whole window, whose residuals look autocorrelated): the trend is also tested on
    // the newest half and quarter, and the strongest one's span bounds the extrapolation.
    let n = samples.len();
    let mut trend_t = whole_t;
    let mut tested_slope = slope_per_ms * step_ms;
    let mut span_ms = samples[n - 1].0.saturating_sub(samples[0].0);
    for part in [2, 4] {
        let from = n - n / part;
        if n - from < MIN_SAMPLES {
            break;
        }
        let (slope, _, t) = least_squares(&samples[from..], &y[from..]);
        if t.abs() > trend_t.abs() {
            trend_t = t;
            tested_slope = slope * step_ms;
            span_ms = samples[n - 1].0.saturating_sub(samples[from].0);
        }
    }
    let mut best: Option<(f64, f64, f64, f64, f64)> = None;
    for alpha in ALPHAS {
        for beta in BETAS {
            let (level, trend, sse) = run(&y, start, alpha, beta);
            if best.is_none_or(|b| sse < b.4) {
                best = Some((alpha, beta, level, trend, sse));
            }
        }
    }
    let (alpha, beta, level, trend, sse) = best?;
    let scored = (y.len() - 1) as f64;
    Some(Fit {
        level,
        trend,
        alpha,
        beta,
        sigma: (sse / scored).sqrt(),
        step_ms,
        last_ts: samples[samples.len() - 1].0,
        trend_t,
        span_ms,
        tested_slope,
    })
}

/// Runs Holt's recursions from `(level, trend)` at the first sample; returns the final level and
/// trend and the one-step squared error.
fn run(y: &[f64], (mut level, mut trend): (f64, f64), alpha: f64, beta: f64) -> (f64, f64, f64) {
    let mut sse = 0.0;
    for &v in &y[1..] {
        let predicted = level + trend;
        let error = v - predicted;
        sse += error * error;
        let new_level = predicted + alpha * error;
        trend += alpha * beta * error;
        level = new_level;
    }
    (level, trend, sse)
}

/// Least-squares line of `y` against time: slope per ms, value at the first sample, and the
/// slope's t statistic.
fn least_squares(samples: &[(i64, f64)], y: &[f64]) -> (f64, f64, f64) {
    let n = y.len() as f64;
    let t0 = samples[0].0;
    let xs: Vec<f64> = samples
        .iter()
        .map(|(ts, _)| ts.saturating_sub(t0) as f64)
        .collect();
    let mx = xs.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return (0.0, my, 0.0);
    }
    let sxy: f64 = xs.iter().zip(y).map(|(x, v)| (x - mx) * (v - my)).sum();
    let slope = sxy / sxx;
    let residual: f64 = xs
        .iter()
        .zip(y)
        .map(|(x, v)| (v - my - slope * (x - mx)).powi(2))
        .sum();
    // Residuals of a metric that wanders (Ornstein–Uhlenbeck-like, as memory and queue gauges
    // do) are autocorrelated, and the iid standard error then makes minutes of wander look like
    // a trend of high significance. The effective sample size n/τ, with τ the integrated
    // autocorrelation time of the residuals, restores an honest one; a clean ramp has white
    // residuals (τ ≈ 1) and keeps its t.
    let residuals: Vec<f64> = xs
        .iter()
        .zip(y)
        .map(|(x, v)| v - my - slope * (x - mx))
        .collect();
    let syy: f64 = y.iter().map(|v| (v - my).powi(2)).sum();
    // A line to rounding error (a synthetic ramp) is a trend; its residuals are float noise,
    // whose autocorrelation means nothing.
    let exact = residual <= 1e-12 * syy;
    let n_eff = if exact {
        n
    } else {
        n / integrated_autocorrelation_time(&residuals, residual)
    };
    if n_eff <= 3.0 {
        // Too few independent samples to call anything a trend.
        return (slope, my - slope * mx, 0.0);
    }
    let se = (residual / (n_eff - 2.0) / sxx).sqrt();
    let t = if se > 0.0 {
        slope / se
    } else if slope == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(slope)
    };
    (slope, my - slope * mx, t)
}

/// τ = 1 + 2 Σ ρ(k), summed over lags 1, 2, 4, … (trapezoids between them, so a window of
/// thousands of samples costs a few passes) until the autocorrelation fades below 0.05; `n`
/// (no evidence at all) when it has not faded by a quarter of the window. A lag-1
/// AR(1) correction alone misses slow wander under fast white noise: ρ(1) is diluted by the
/// noise while ρ stays high for hundreds of lags.
fn integrated_autocorrelation_time(residuals: &[f64], sum_squares: f64) -> f64 {
    let n = residuals.len();
    if sum_squares <= 0.0 || n < 8 {
        return 1.0;
    }
    let rho = |k: usize| -> f64 {
        residuals[..n - k]
            .iter()
            .zip(&residuals[k..])
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / sum_squares
    };
    let mut tau = 1.0;
    let (mut k_prev, mut r_prev) = (0usize, 1.0f64);
    let mut k = 1usize;
    while k <= n / 4 {
        let r = rho(k).max(0.0);
        // Σ over the lags in (k_prev, k] of the linearly interpolated ρ.
        let steps = (k - k_prev) as f64;
        tau += 2.0 * (steps * r_prev + (r - r_prev) * (steps + 1.0) / 2.0);
        if r < 0.05 {
            return tau.clamp(1.0, n as f64);
        }
        (k_prev, r_prev) = (k, r);
        k *= 2;
    }
    // Still correlated at a quarter of the window: the window spans less than a few of the
    // wander's cycles, and no estimate can tell a trend from one slow swing.
    n as f64
}

impl Fit {
    /// Forecast `horizon_ms` after the last sample, with its 95 % interval.
    pub fn forecast(&self, horizon_ms: u64, season: Option<&SeasonalProfile>) -> ForecastPoint {
        let k = (horizon_ms as f64 / self.step_ms).max(1.0);
        let ts = self.last_ts + horizon_ms as i64;
        let seasonal = season
            .filter(|s| s.active)
            .map_or(0.0, |s| s.expected(ts).0);
        let yhat = self.level + k * self.trend + seasonal;
        let (a, b) = (self.alpha, self.beta);
        let var = self.sigma.powi(2)
            * (1.0 + (k - 1.0) * (a * a + a * b * k + b * b * k * (2.0 * k - 1.0) / 6.0));
        let half = 1.96 * var.max(0.0).sqrt();
        ForecastPoint {
            horizon_seconds: horizon_ms / 1000,
            yhat,
            lower: yhat - half,
            upper: yhat + half,
        }
    }

    /// When (and at what value) the forecast crosses `threshold` in `direction` within
    /// `max_horizon_ms`; `None` without a real trend towards it, or when the series is already
    /// past it.
    pub fn will_breach(
        &self,
        threshold: f64,
        direction: Direction,
        current: f64,
        max_horizon_ms: u64,
    ) -> Option<Breach> {
        let up = match direction {
            Direction::Above => true,
            Direction::Below => false,
            Direction::Both => current <= threshold,
        };
        let sign = if up { 1.0 } else { -1.0 };
        let gap = (threshold - self.level) * sign;
        let already = (current - threshold) * sign >= 0.0;
        let towards = self.trend * sign > 0.0 && self.trend_t * sign >= MIN_TREND_T;
        if already || gap <= 0.0 || !towards {
            return None;
        }
        // Holt's trend follows the newest samples; the tested line's slope is what was shown to
        // be real. The breach is as near as the slower of the two puts it.
        let rate = (self.trend * sign).min(self.tested_slope * sign);
        if rate <= 0.0 {
            return None;
        }
        let steps = gap / rate;
        let after_ms = steps * self.step_ms;
        let seen_for = MAX_EXTRAPOLATION * self.span_ms as f64;
        if !after_ms.is_finite() || after_ms > max_horizon_ms as f64 || after_ms > seen_for {
            return None;
        }
        Some(Breach {
            threshold,
            direction: if up {
                Direction::Above
            } else {
                Direction::Below
            },
            at_ms: self.last_ts + after_ms.ceil() as i64,
            value: self.level + steps.ceil() * rate * sign,
            current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    fn series(from: i64, to: i64, mut f: impl FnMut(i64) -> f64) -> Vec<(i64, f64)> {
        (from / 15_000..to / 15_000)
            .map(|i| (i * 15_000, f(i * 15_000)))
            .collect()
    }

    #[test]
    fn a_memory_leak_is_predicted_at_least_two_hours_before_the_breach() {
        // 0.5 → 0.9 over 3.5 hours, crossing 0.9 2.5 hours after the first hour of history;
        // the agent sees the last hour of ring.
        let mut rng = fastrand::Rng::with_seed(1);
        let leak = |ts: i64| 0.5 + 0.4 * ts as f64 / (7 * HOUR / 2) as f64;
        let samples = series(0, HOUR, |ts| leak(ts) + (rng.f64() - 0.5) * 0.01);
        let fit = fit(&samples, None).expect("fit");
        let current = samples.last().unwrap().1;
        let breach = fit
            .will_breach(0.9, Direction::Above, current, (6 * HOUR) as u64)
            .expect("breach predicted");
        let true_breach = 7 * HOUR / 2;
        let lead = true_breach - HOUR;
        assert!(lead >= 2 * HOUR, "predicted {lead} ms ahead");
        assert!(
            (breach.at_ms - true_breach).abs() < 20 * MIN,
            "predicted at {} min, true {} min",
            breach.at_ms / MIN,
            true_breach / MIN
        );
        let at_breach = fit.forecast((5 * HOUR / 2) as u64, None);
        assert!((at_breach.yhat - 0.9).abs() < 0.03, "{at_breach:?}");
        assert!(at_breach.lower < at_breach.yhat && at_breach.upper > at_breach.yhat);
    }

    #[test]
    fn a_flat_noisy_series_predicts_nothing() {
        let mut rng = fastrand::Rng::with_seed(2);
        for seed in 0..50 {
            rng.seed(seed);
            let samples = series(0, HOUR, |_| 0.6 + (rng.f64() - 0.5) * 0.1);
            let fit = fit(&samples, None).expect("fit");
            let current = samples.last().unwrap().1;
            assert_eq!(
                fit.will_breach(0.9, Direction::Above, current, (6 * HOUR) as u64),
                None,
                "seed {seed}"
            );
        }
    }

    #[test]
    fn a_seasonal_series_with_an_active_profile_predicts_nothing_on_its_daily_rise() {
        const DAY: i64 = 24 * HOUR;
        let shape = |ts: i64| {
            let hour = (ts % DAY) as f64 / HOUR as f64;
            0.5 + 0.3 * (-((hour - 14.0) / 4.0).powi(2)).exp()
        };
        let mut rng = fastrand::Rng::with_seed(3);
        let mut profile = SeasonalProfile::new(DAY, 24);
        for (ts, v) in series(0, 3 * DAY, |ts| shape(ts) + (rng.f64() - 0.5) * 0.01) {
            profile.update(ts, v);
        }
        profile.evaluate(0.3);
        assert!(profile.active);
        // The morning rise of day 4: 10:00 to 11:00, steep and steady.
        let window = series(3 * DAY + 10 * HOUR, 3 * DAY + 11 * HOUR, |ts| {
            shape(ts) + (rng.f64() - 0.5) * 0.01
        });
        let current = window.last().unwrap().1;
        let naive = fit(&window, None).expect("fit");
        assert!(
            naive
                .will_breach(0.8, Direction::Above, current, (6 * HOUR) as u64)
                .is_some(),
            "without the profile the rise looks like a breach (the test's premise)"
        );
        let seasonal = fit(&window, Some(&profile)).expect("fit");
        assert_eq!(
            seasonal.will_breach(0.8, Direction::Above, current, (6 * HOUR) as u64),
            None
        );
        let noon = seasonal.forecast((3 * HOUR) as u64, Some(&profile));
        assert!(
            (noon.yhat - shape(3 * DAY + 14 * HOUR)).abs() < 0.05,
            "{noon:?}"
        );
    }

    /// Memory that wanders (Ornstein–Uhlenbeck, ten-minute reversion, 4 % spread) under 1 %
    /// white noise at one-second scrapes, as the noise trial's gauges do.
    fn wandering(seed: u64, n: i64) -> Vec<(i64, f64)> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut normal = move || {
            let u = rng.f64().max(f64::MIN_POSITIVE);
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.f64()).cos()
        };
        let (rate, sd) = (1.0 / 600.0, 0.04);
        let mut w = normal() * sd;
        (0..n)
            .map(|i| {
                w += -rate * w + sd * (2.0f64 * rate).sqrt() * normal();
                (i * 1000, 0.55 * w.exp() * (1.0 + 0.01 * normal()))
            })
            .collect()
    }

    #[test]
    fn slow_wander_is_not_a_trend() {
        for seed in 0..40 {
            for n in [360, 900, 3600] {
                let s = wandering(seed, n);
                let f = fit(&s, None).unwrap();
                let current = s.last().unwrap().1;
                assert_eq!(
                    f.will_breach(0.9, Direction::Above, current, 6 * HOUR as u64),
                    None,
                    "seed {seed}, {n} samples: t {}",
                    f.trend_t
                );
            }
        }
    }

    #[test]
    fn already_past_the_threshold_is_not_a_prediction() {
        let samples = series(0, HOUR, |ts| 0.95 + ts as f64 * 1e-9);
        let fit = fit(&samples, None).expect("fit");
        assert_eq!(
            fit.will_breach(0.9, Direction::Above, 0.95, (6 * HOUR) as u64),
            None
        );
    }

    #[test]
    fn too_few_or_non_finite_samples_do_not_fit() {
        assert!(fit(&series(0, 4 * MIN, |_| 1.0), None).is_none());
        let mut s = series(0, HOUR, |_| 1.0);
        s[10].1 = f64::NAN;
        assert!(fit(&s, None).is_none());
    }
}
