//! Bayesian online changepoint detection (Adams & MacKay, 2007) for the level-shift check:
//! a Normal model with unknown mean and variance (Normal-Gamma prior, Student-t predictive)
//! and a constant hazard, run over a ring's samples off the hot path. Written here rather than
//! taken from the `changepoint` crate, whose statistics stack (`rv`) would outweigh the ~100
//! lines it saves.
//!
//! Values are standardized by their median and MAD first, so the prior is scale-free.

use super::robust::median;

/// Expected samples between changes (the hazard is its inverse).
const EXPECTED_RUN: f64 = 250.0;

/// Where the newest segment most likely began, and how sure the model is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastChange {
    /// Index of the first sample of the current run.
    pub start: usize,
    /// Posterior mass of run lengths within 5 samples of that start.
    pub probability: f64,
}

/// The start of the current run in `values` (time order), by the maximum a posteriori run
/// length after the last sample. `None` for fewer than 3 values or non-finite input.
pub fn last_change(values: &[f64]) -> Option<LastChange> {
    let n = values.len();
    if n < 3 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut sorted = values.to_vec();
    let center = median(&mut sorted);
    let mut dev: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
    let scale = (1.4826 * median(&mut dev)).max(1e-9 * center.abs().max(1.0));
    let log_h = (1.0 / EXPECTED_RUN).ln();
    let log_1mh = (1.0 - 1.0 / EXPECTED_RUN).ln();
    // Per run length: log posterior and Normal-Gamma parameters.
    let mut log_r: Vec<f64> = vec![0.0];
    let mut params: Vec<[f64; 4]> = vec![PRIOR];
    let mut next_r = Vec::with_capacity(n + 1);
    let mut next_p = Vec::with_capacity(n + 1);
    // alpha = 1 + r/2 at run length r: the Gamma-function part of the predictive depends on r
    // only, so it is computed once per run length instead of once per (sample, run length).
    let gamma_part: Vec<f64> = (0..=n)
        .map(|r| {
            let alpha = PRIOR[2] + r as f64 / 2.0;
            ln_gamma(alpha + 0.5) - ln_gamma(alpha)
        })
        .collect();
    let mut preds = Vec::with_capacity(n + 1);
    for &raw in values {
        let x = (raw - center) / scale;
        next_r.clear();
        next_p.clear();
        // Run lengths with negligible mass are not evaluated (their predictive is irrelevant).
        let floor = log_r.iter().copied().fold(f64::NEG_INFINITY, f64::max) - PRUNE;
        preds.clear();
        preds.extend(log_r.iter().zip(&params).enumerate().map(|(r, (lr, p))| {
            if *lr < floor {
                f64::NEG_INFINITY
            } else {
                gamma_part[r] + log_student_t_rest(x, p)
            }
        }));
        let change = log_sum_exp(log_r.iter().zip(&preds).map(|(r, l)| r + l + log_h));
        next_r.push(change);
        next_p.push(PRIOR);
        for ((r, l), p) in log_r.iter().zip(&preds).zip(&params) {
            next_r.push(r + l + log_1mh);
            next_p.push(update(p, x));
        }
        let total = log_sum_exp(next_r.iter().copied());
        for r in next_r.iter_mut() {
            *r -= total;
        }
        std::mem::swap(&mut log_r, &mut next_r);
        std::mem::swap(&mut params, &mut next_p);
    }
    let (run, _) = log_r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    let probability: f64 = log_r
        .iter()
        .enumerate()
        .filter(|(r, _)| r.abs_diff(run) <= 5)
        .map(|(_, l)| l.exp())
        .sum();
    Some(LastChange {
        start: n - run,
        probability,
    })
}

/// Run lengths this far (in log probability) below the most likely one are not evaluated.
const PRUNE: f64 = 40.0;

/// mu, kappa, alpha, beta (standardized units: a unit-variance level anywhere near 0).
const PRIOR: [f64; 4] = [0.0, 0.01, 1.0, 1.0];

fn update(p: &[f64; 4], x: f64) -> [f64; 4] {
    let [mu, kappa, alpha, beta] = *p;
    [
        (kappa * mu + x) / (kappa + 1.0),
        kappa + 1.0,
        alpha + 0.5,
        beta + kappa * (x - mu) * (x - mu) / (2.0 * (kappa + 1.0)),
    ]
}

/// The Student-t predictive's log density without its Gamma-function part.
fn log_student_t_rest(x: f64, p: &[f64; 4]) -> f64 {
    let [mu, kappa, alpha, beta] = *p;
    let nu = 2.0 * alpha;
    let var = beta * (kappa + 1.0) / (alpha * kappa);
    let z = (x - mu) * (x - mu) / (nu * var);
    -0.5 * (nu * std::f64::consts::PI * var).ln() - (alpha + 0.5) * z.ln_1p()
}

fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(n: usize, level: f64, seed: u64) -> Vec<f64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n).map(|_| level + (rng.f64() - 0.5) * 2.0).collect()
    }

    #[test]
    fn ln_gamma_matches_known_values() {
        for (x, want) in [
            (1.0, 0.0),
            (2.0, 0.0),
            (0.5, 0.572_364_942_924_700_1),
            (10.0, 12.801_827_480_081_469),
            (100.5, 361.435_540_467_777_6),
        ] {
            assert!((ln_gamma(x) - want).abs() < 1e-9, "{x}: {}", ln_gamma(x));
        }
    }

    #[test]
    fn the_run_starts_where_the_level_changed() {
        let mut v = noisy(160, 100.0, 1);
        v.extend(noisy(80, 104.0, 2));
        let c = last_change(&v).unwrap();
        assert!((158..=162).contains(&c.start), "{c:?}");
        assert!(c.probability > 0.5, "{c:?}");
    }

    #[test]
    fn without_a_change_the_run_is_the_whole_series() {
        for seed in 0..20 {
            let c = last_change(&noisy(240, 50.0, seed)).unwrap();
            assert!(c.start <= 5, "seed {seed}: {c:?}");
        }
    }

    #[test]
    fn scale_does_not_matter() {
        let mut v = noisy(150, 0.0, 3);
        v.extend(noisy(90, 5.0, 4));
        let small: Vec<f64> = v.iter().map(|x| x * 1e-6).collect();
        let large: Vec<f64> = v.iter().map(|x| x * 1e6 + 1e9).collect();
        let starts: Vec<usize> = [&v, &small, &large]
            .iter()
            .map(|s| last_change(s).unwrap().start)
            .collect();
        assert!(starts.iter().all(|&s| s == starts[0]), "{starts:?}");
    }
}
