//! Forecasts and predicted breaches, refit off the hot path from a series' ring.
//!
//! The model is additive Holt (ETS(A,A,N): level and trend, smoothing weights chosen by the
//! smallest one-step squared error over a small grid) on the samples in the ring, deseasonalized
//! by the series' seasonal profile when that profile is active, so a normal daily rise does not
//! extrapolate into a breach. Forecasts come with the ETS(A,A,N) prediction interval.
//!
//! A breach is predicted only when the trend is real: the least-squares slope over the window
//! must stand out from its own standard error (`MIN_TREND_T`), the series must not already be
//! past the threshold (that is an anomaly, not a prediction), and the central forecast must
//! cross the threshold within the longest horizon.

use serde::Serialize;

use super::Direction;
use super::seasonal::SeasonalProfile;

/// The least-squares slope must be this many standard errors away from zero.
const MIN_TREND_T: f64 = 8.0;
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
    /// t statistic of the least-squares slope over the window.
    pub trend_t: f64,
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
    let (slope_per_ms, intercept, trend_t) = least_squares(samples, &y);
    let start = (intercept, slope_per_ms * step_ms);
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
    let se = (residual / (n - 2.0).max(1.0) / sxx).sqrt();
    let t = if se > 0.0 {
        slope / se
    } else if slope == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(slope)
    };
    (slope, my - slope * mx, t)
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
        let steps = gap / (self.trend * sign);
        let after_ms = steps * self.step_ms;
        if !after_ms.is_finite() || after_ms > max_horizon_ms as f64 {
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
            value: self.level + steps.ceil() * self.trend,
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
        // 0.5 → 0.9 over four hours, crossing 0.9 three hours after the first hour of history;
        // the agent sees the last hour of ring.
        let mut rng = fastrand::Rng::with_seed(1);
        let leak = |ts: i64| 0.5 + 0.4 * ts as f64 / (4 * HOUR) as f64;
        let samples = series(0, HOUR, |ts| leak(ts) + (rng.f64() - 0.5) * 0.01);
        let fit = fit(&samples, None).expect("fit");
        let current = samples.last().unwrap().1;
        let breach = fit
            .will_breach(0.9, Direction::Above, current, (6 * HOUR) as u64)
            .expect("breach predicted");
        let true_breach = 4 * HOUR;
        let lead = true_breach - HOUR;
        assert!(lead >= 2 * HOUR, "predicted {lead} ms ahead");
        assert!(
            (breach.at_ms - true_breach).abs() < 20 * MIN,
            "predicted at {} min, true {} min",
            breach.at_ms / MIN,
            true_breach / MIN
        );
        let three_hours = fit.forecast((3 * HOUR) as u64, None);
        assert!((three_hours.yhat - 0.9).abs() < 0.03, "{three_hours:?}");
        assert!(three_hours.lower < three_hours.yhat && three_hours.upper > three_hours.yhat);
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
                .will_breach(0.9, Direction::Above, current, (6 * HOUR) as u64)
                .is_some(),
            "without the profile the rise looks like a breach (the test's premise)"
        );
        let seasonal = fit(&window, Some(&profile)).expect("fit");
        assert_eq!(
            seasonal.will_breach(0.9, Direction::Above, current, (6 * HOUR) as u64),
            None
        );
        let noon = seasonal.forecast((3 * HOUR) as u64, Some(&profile));
        assert!(
            (noon.yhat - shape(3 * DAY + 14 * HOUR)).abs() < 0.05,
            "{noon:?}"
        );
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
