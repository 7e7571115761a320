//! Period discovery in a series' recent samples, off the hot path.
//!
//! A periodogram of the ring (linear trend removed) proposes periods at its strongest peaks;
//! each is checked by folding the samples at that period and measuring how much of the variance
//! the phase explains, corrected for what folding pure noise would explain. The best period that
//! clears the bar is returned. This finds short cycles (cron jobs, batch settlements, polling
//! loops: minutes to a third of the ring) that the configured daily period cannot describe;
//! periods longer than the ring are for config to name (1 day by default).
//!
//! Hand-written rather than augurs' `seasons` (Welch periodogram, rustfft): for a ring of a few
//! hundred samples a direct DFT at the integer frequencies is ~40 lines and ~30 µs.

/// Fewer samples than this and no period is looked for.
pub const MIN_SAMPLES: usize = 48;
/// A period must repeat this often in the samples to be believed.
const MIN_CYCLES: usize = 3;
/// Shortest period, in samples (4 samples is the least that shows a shape, not aliasing).
const MIN_PERIOD: usize = 4;
/// Periodogram peaks whose period is checked by folding.
const CANDIDATES: usize = 5;
/// Of two periods that fold about as well, the shorter wins (a period also folds at twice
/// itself); "about as well" is within this much strength.
const TIE: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period {
    /// Length in samples.
    pub samples: usize,
    /// Share of the detrended variance the phase explains, beyond what folding noise at this
    /// period would (0 = none, 1 = all).
    pub strength: f64,
}

/// The clearest period in `values` (evenly spaced, time order) explaining at least
/// `min_strength` of their variance, if any.
pub fn dominant_period(values: &[f64], min_strength: f64) -> Option<Period> {
    let n = values.len();
    if n < MIN_SAMPLES || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let detrended = detrend(values);
    let total: f64 = detrended.iter().map(|v| v * v).sum();
    let level = values.iter().map(|v| v.abs()).fold(0.0, f64::max);
    // Flat (or flat up to rounding): nothing repeats that matters.
    if total <= (level * 1e-9).powi(2) * n as f64 || total == 0.0 {
        return None;
    }
    let k_min = MIN_CYCLES;
    let k_max = n / MIN_PERIOD;
    if k_min > k_max {
        return None;
    }
    let power: Vec<f64> = (0..=k_max + 1).map(|k| dft_power(&detrended, k)).collect();
    let mut peaks: Vec<usize> = (k_min..=k_max)
        .filter(|&k| power[k] >= power[k - 1] && power[k] >= power[k + 1])
        .collect();
    peaks.sort_unstable_by(|a, b| power[*b].total_cmp(&power[*a]));
    peaks.truncate(CANDIDATES);
    let mut best: Option<Period> = None;
    let mut tried = Vec::new();
    for k in peaks {
        // Frequency k stands for every period between n/(k + ½) and n/(k − ½): fold at each
        // whole number of samples in that range, so a period of 37 is not judged at 40.
        let shortest = (n as f64 / (k as f64 + 0.5)).ceil() as usize;
        let longest = (n as f64 / (k as f64 - 0.5)).floor() as usize;
        let mut peak_best: Option<Period> = None;
        for samples in shortest.max(MIN_PERIOD)..=longest.min(n / MIN_CYCLES) {
            if tried.contains(&samples) {
                continue;
            }
            tried.push(samples);
            let strength = fold_strength(&detrended, total, samples);
            if peak_best.is_none_or(|b| strength > b.strength) {
                peak_best = Some(Period { samples, strength });
            }
        }
        let Some(candidate) = peak_best else { continue };
        let better = best.is_none_or(|b| {
            candidate.strength > b.strength + TIE
                || (candidate.strength > b.strength - TIE && candidate.samples < b.samples)
        });
        if better {
            best = Some(candidate);
        }
    }
    best.filter(|b| b.strength >= min_strength)
}

/// `values` minus their least-squares line.
fn detrend(values: &[f64]) -> Vec<f64> {
    let n = values.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = values.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in values.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    values
        .iter()
        .enumerate()
        .map(|(i, y)| y - mean_y - slope * (i as f64 - mean_x))
        .collect()
}

/// |X_k|² of the DFT at integer frequency `k`, by a rotating phasor (no table, no FFT).
fn dft_power(values: &[f64], k: usize) -> f64 {
    let step = std::f64::consts::TAU * k as f64 / values.len() as f64;
    let (sin_step, cos_step) = step.sin_cos();
    let (mut c, mut s) = (1.0_f64, 0.0_f64);
    let (mut re, mut im) = (0.0, 0.0);
    for v in values {
        re += v * c;
        im -= v * s;
        (c, s) = (c * cos_step - s * sin_step, s * cos_step + c * sin_step);
    }
    re * re + im * im
}

/// Share of the variance explained by the phase at `period` (sum of squares of the phase means
/// over the total), corrected for chance: folding n samples of noise into p phases explains
/// about (p − 1)/(n − 1) of it.
fn fold_strength(detrended: &[f64], total: f64, period: usize) -> f64 {
    let mut sums = vec![0.0; period];
    let mut counts = vec![0usize; period];
    for (i, v) in detrended.iter().enumerate() {
        sums[i % period] += v;
        counts[i % period] += 1;
    }
    let between: f64 = sums
        .iter()
        .zip(&counts)
        .map(|(s, &c)| if c > 0 { s * s / c as f64 } else { 0.0 })
        .sum();
    let raw = (between / total).clamp(0.0, 1.0);
    let chance = (period as f64 - 1.0) / (detrended.len() as f64 - 1.0);
    ((raw - chance) / (1.0 - chance)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn series(n: usize, f: impl FnMut(usize) -> f64) -> Vec<f64> {
        (0..n).map(f).collect()
    }

    #[test]
    fn a_noisy_sine_gives_its_period() {
        let mut rng = fastrand::Rng::with_seed(1);
        let v = series(240, |i| {
            50.0 + 10.0 * (i as f64 / 40.0 * std::f64::consts::TAU).sin() + rng.f64() * 6.0
        });
        let p = dominant_period(&v, 0.5).expect("a period");
        assert_eq!(p.samples, 40, "{p:?}");
        assert!(p.strength > 0.7, "{p:?}");
    }

    #[test]
    fn a_batch_job_every_twenty_samples_on_a_rising_line_gives_twenty_not_a_multiple() {
        let mut rng = fastrand::Rng::with_seed(2);
        let v = series(240, |i| {
            let busy = if i % 20 < 3 { 40.0 } else { 0.0 };
            10.0 + 0.05 * i as f64 + busy + rng.f64()
        });
        let p = dominant_period(&v, 0.5).expect("a period");
        assert_eq!(p.samples, 20, "{p:?}");
    }

    #[test]
    fn noise_trends_and_random_walks_have_no_period() {
        for seed in 0..50 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let noise = series(240, |_| rng.f64());
            assert_eq!(dominant_period(&noise, 0.5), None, "noise, seed {seed}");
            let ramp = series(240, |i| i as f64 * 0.3 + rng.f64());
            assert_eq!(dominant_period(&ramp, 0.5), None, "ramp, seed {seed}");
            let mut level = 0.0;
            let walk = series(240, |_| {
                level += rng.f64() - 0.5;
                level
            });
            assert_eq!(dominant_period(&walk, 0.5), None, "walk, seed {seed}");
        }
    }

    #[test]
    fn too_few_samples_flat_or_non_finite_gives_nothing() {
        assert_eq!(dominant_period(&[1.0; 47], 0.5), None);
        assert_eq!(dominant_period(&[7.0; 240], 0.5), None);
        let mut v = series(240, |i| (i % 10) as f64);
        assert!(dominant_period(&v, 0.5).is_some());
        v[3] = f64::NAN;
        assert_eq!(dominant_period(&v, 0.5), None);
    }

    proptest! {
        #[test]
        fn any_finite_input_gives_a_period_that_fits_at_least_three_times(
            v in prop::collection::vec(-1e12f64..1e12, 0..300),
        ) {
            if let Some(p) = dominant_period(&v, 0.0) {
                prop_assert!(p.samples >= MIN_PERIOD && p.samples * MIN_CYCLES <= v.len());
                prop_assert!((0.0..=1.0).contains(&p.strength));
            }
        }
    }
}
