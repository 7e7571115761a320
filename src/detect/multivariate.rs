//! Multi-metric score per service: is the combination of a service's key metrics unusual, even
//! when each metric alone is inside its range?
//!
//! Periodic, off the hot path (the store's upkeep). The store buckets each service's catalog
//! metrics from the rings (mean over pods per bucket, counters as rates) into rows of one value
//! per metric; this module scores the newest row against the rows before it. Each metric is
//! standardized robustly (median, MAD, with a floor so a flat metric cannot explode), the
//! correlation between metrics is estimated from the history and shrunk towards independence
//! (few rows, many metrics), and the newest row's Mahalanobis distance is turned into a
//! normal-equivalent sigma (Wilson–Hilferty on chi-square with one degree per metric). This is
//! the "isolation forest or equivalent" of the issue: like a forest it needs no labels and
//! scores joint rarity, and unlike one it is deterministic and names its contributors: each
//! metric's conditional residual (how far it is from what the other metrics predict for it,
//! in sigmas), so "latency up while requests are flat" names latency, not requests.

use serde::Serialize;

use super::robust::median_and_mad;

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceParams {
    pub enabled: bool,
    /// Labels that make a service (series sharing them are one service).
    pub group_by: Vec<String>,
    /// Width of a row (the rings are bucketed to this).
    pub bucket_ms: i64,
    /// Rows of history needed before a service is scored.
    pub min_history: usize,
    /// Normal-equivalent sigmas of the joint distance that make a service anomalous.
    pub threshold_sigmas: f64,
}

impl Default for ServiceParams {
    fn default() -> Self {
        Self {
            // Opt-in: on the noise trial (`sre-agent noise-trial`) it paged only incidents the
            // per-series detectors had paged 50 s before, never one alone, and its one-minute
            // buckets held each incident's mitigated notice back by two to three minutes.
            enabled: false,
            group_by: vec!["namespace".into(), "service".into()],
            bucket_ms: 60_000,
            min_history: 30,
            threshold_sigmas: 6.0,
        }
    }
}

/// At most this many metrics per service are scored together (the rest are left out).
pub const MAX_METRICS: usize = 12;
/// Share by which covariances are shrunk towards zero (the diagonal is kept).
const SHRINKAGE: f64 = 0.002;
/// Least variance of a standardized metric in the fit.
const VARIANCE_FLOOR: f64 = 1e-4;
/// History rows this far off are left out of the fit.
const TRIM_SIGMAS: f64 = 3.5;
/// A metric is named as a contributor from this conditional residual on.
const CONTRIBUTOR_SIGMAS: f64 = 3.0;

/// One metric's part in a service anomaly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contributor {
    pub metric: String,
    /// Distance from what the other metrics predict for it, in its own robust sigmas; signed.
    pub sigmas: f64,
    pub value: f64,
    /// The metric's median over the history.
    pub typical: f64,
}

/// Why a service's metrics stand out together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceDeviation {
    /// The labels that name the service (`group_by`).
    pub service: Vec<(String, String)>,
    /// Normal-equivalent sigmas of the joint distance.
    pub sigmas: f64,
    /// The metrics scored, and which of them carry the deviation (largest first).
    pub metrics: usize,
    pub contributors: Vec<Contributor>,
}

/// The joint score of the newest row (`history` holds the rows before it, one column per
/// metric in `names`). `None` when there is too little history or fewer than two metrics.
pub fn assess(
    names: &[String],
    history: &[Vec<f64>],
    latest: &[f64],
    min_history: usize,
) -> Option<(f64, Vec<Contributor>)> {
    let k = names.len();
    if k < 2 || latest.len() != k || history.len() < min_history.max(k + 2) {
        return None;
    }
    if history.iter().any(|r| r.len() != k) || latest.iter().any(|v| !v.is_finite()) {
        return None;
    }
    // Robust standardization per metric.
    let mut centers = Vec::with_capacity(k);
    let mut scales = Vec::with_capacity(k);
    for j in 0..k {
        let mut col: Vec<f64> = history.iter().map(|r| r[j]).collect();
        if col.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        let sd =
            (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (col.len() - 1) as f64).sqrt();
        let (mid, mad) = median_and_mad(&mut col);
        // MAD collapses on quantized metrics; the standard deviation and a share of the level
        // keep a near-constant metric from turning rounding into hundreds of sigmas.
        let scale = (1.4826 * mad).max(0.5 * sd).max(mid.abs() * 1e-3).max(1e-9);
        centers.push(mid);
        scales.push(scale);
    }
    let z = |r: &[f64], j: usize| ((r[j] - centers[j]) / scales[j]).clamp(-20.0, 20.0);
    let rows: Vec<Vec<f64>> = history
        .iter()
        .map(|r| (0..k).map(|j| z(r, j).clamp(-5.0, 5.0)).collect())
        .collect();
    // Rows that are themselves far off (an anomaly already in the history) are left out and the
    // fit repeated, so an ongoing anomaly does not widen the very spread it is judged by.
    let min_rows = min_history.max(k + 2);
    let mut kept: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
    let mut fit = Fit::new(&kept, k)?;
    for _ in 0..3 {
        let inliers: Vec<&[f64]> = kept
            .iter()
            .copied()
            .filter(|r| chi2_sigmas(fit.distance(r).0, k as f64) < TRIM_SIGMAS)
            .collect();
        if inliers.len() == kept.len() || inliers.len() < min_rows {
            break;
        }
        fit = Fit::new(&inliers, k)?;
        kept = inliers;
    }
    let x: Vec<f64> = (0..k).map(|j| z(latest, j)).collect();
    let (d2, w) = fit.distance(&x);
    let inv = &fit.inverse;
    let sigmas = chi2_sigmas(d2, k as f64);
    let mut contributors: Vec<Contributor> = (0..k)
        .map(|j| Contributor {
            metric: names[j].clone(),
            sigmas: w[j] / inv[j * k + j].max(1e-12).sqrt(),
            value: latest[j],
            typical: centers[j],
        })
        .filter(|c| c.sigmas.is_finite())
        .collect();
    contributors.sort_by(|a, b| b.sigmas.abs().total_cmp(&a.sigmas.abs()));
    let named = contributors
        .iter()
        .filter(|c| c.sigmas.abs() >= CONTRIBUTOR_SIGMAS)
        .count()
        .max(1);
    contributors.truncate(named);
    Some((sigmas, contributors))
}

/// Mean and inverse covariance of standardized rows.
struct Fit {
    k: usize,
    mean: Vec<f64>,
    inverse: Vec<f64>,
}

impl Fit {
    fn new(rows: &[&[f64]], k: usize) -> Option<Self> {
        let n = rows.len() as f64;
        if rows.len() < 2 {
            return None;
        }
        let mean: Vec<f64> = (0..k)
            .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let mut cov = vec![0.0; k * k];
        for r in rows {
            for a in 0..k {
                let da = r[a] - mean[a];
                for b in a..k {
                    cov[a * k + b] += da * (r[b] - mean[b]);
                }
            }
        }
        for a in 0..k {
            for b in a..k {
                cov[a * k + b] /= n - 1.0;
                cov[b * k + a] = cov[a * k + b];
            }
        }
        // Shrunk towards its own diagonal (few rows, many metrics), with a floor on each
        // variance so a metric that never moved cannot make the matrix singular.
        for a in 0..k {
            for b in 0..k {
                if a == b {
                    cov[a * k + a] = cov[a * k + a].max(VARIANCE_FLOOR);
                } else {
                    cov[a * k + b] *= 1.0 - SHRINKAGE;
                }
            }
        }
        Some(Self {
            k,
            mean,
            inverse: invert_spd(&cov, k)?,
        })
    }

    /// Squared Mahalanobis distance of `x` and the inverse covariance times its deviation.
    fn distance(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let k = self.k;
        let dx: Vec<f64> = (0..k).map(|j| x[j] - self.mean[j]).collect();
        let w: Vec<f64> = (0..k)
            .map(|a| (0..k).map(|b| self.inverse[a * k + b] * dx[b]).sum())
            .collect();
        let d2 = dx.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>().max(0.0);
        (d2, w)
    }
}

/// Normal-equivalent sigmas of a chi-square value with `dof` degrees (Wilson–Hilferty), ≥ 0.
fn chi2_sigmas(x: f64, dof: f64) -> f64 {
    let v = 2.0 / (9.0 * dof);
    let s = ((x / dof).cbrt() - (1.0 - v)) / v.sqrt();
    if s.is_finite() { s.max(0.0) } else { 0.0 }
}

/// Inverse of a symmetric positive-definite `k`×`k` matrix by Cholesky; `None` if it is not.
fn invert_spd(m: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..=i {
            let s: f64 = (0..j).map(|p| l[i * k + p] * l[j * k + p]).sum();
            if i == j {
                let d = m[i * k + i] - s;
                if d <= 1e-12 || !d.is_finite() {
                    return None;
                }
                l[i * k + i] = d.sqrt();
            } else {
                l[i * k + j] = (m[i * k + j] - s) / l[j * k + j];
            }
        }
    }
    // Columns of the inverse: solve L Lᵀ x = e_c.
    let mut inv = vec![0.0; k * k];
    let mut y = vec![0.0; k];
    for c in 0..k {
        for i in 0..k {
            let e = if i == c { 1.0 } else { 0.0 };
            let s: f64 = (0..i).map(|p| l[i * k + p] * y[p]).sum();
            y[i] = (e - s) / l[i * k + i];
        }
        for i in (0..k).rev() {
            let s: f64 = (i + 1..k).map(|p| l[p * k + i] * inv[p * k + c]).sum();
            inv[i * k + c] = (y[i] - s) / l[i * k + i];
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    /// Requests drive CPU and latency stays flat: a service in its routine.
    fn routine(rng: &mut fastrand::Rng, rows: usize) -> Vec<Vec<f64>> {
        (0..rows)
            .map(|i| {
                let load = 100.0 + 80.0 * ((i as f64) / 9.0).sin() + rng.f64() * 5.0;
                vec![
                    load,
                    0.2 + load * 0.004 + rng.f64() * 0.01,
                    50.0 + rng.f64() * 4.0,
                ]
            })
            .collect()
    }

    #[test]
    fn a_combination_unusual_together_is_flagged_and_its_metric_named() {
        let mut rng = fastrand::Rng::with_seed(3);
        let history = routine(&mut rng, 60);
        let m = names(&["requests", "cpu", "latency_ms"]);
        // CPU at its busiest while requests are at their quietest: each alone is in its range.
        let latest = vec![25.0, 0.2 + 180.0 * 0.004, 52.0];
        let (lo, hi) = history.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
            (lo.min(r[1]), hi.max(r[1]))
        });
        assert!(latest[1] > lo && latest[1] < hi);
        let (sigmas, contributors) = assess(&m, &history, &latest, 30).unwrap();
        assert!(sigmas >= 6.0, "{sigmas}");
        let named: Vec<&str> = contributors.iter().map(|c| c.metric.as_str()).collect();
        assert!(
            named.contains(&"cpu") || named.contains(&"requests"),
            "{named:?}"
        );
        assert!(!named.contains(&"latency_ms"), "{contributors:?}");
    }

    #[test]
    fn the_routine_and_a_busy_hour_in_proportion_are_not_flagged() {
        let mut rng = fastrand::Rng::with_seed(4);
        let history = routine(&mut rng, 60);
        let m = names(&["requests", "cpu", "latency_ms"]);
        let mut worst: f64 = 0.0;
        for row in routine(&mut rng, 200).iter().skip(60) {
            worst = worst.max(assess(&m, &history, row, 30).unwrap().0);
        }
        assert!(worst < 6.0, "{worst}");
        // Busy: requests and CPU up together, as they always move.
        let busy = vec![175.0, 0.2 + 175.0 * 0.004, 51.0];
        assert!(assess(&m, &history, &busy, 30).unwrap().0 < 6.0);
    }

    #[test]
    fn latency_alone_far_off_names_latency() {
        let mut rng = fastrand::Rng::with_seed(5);
        let history = routine(&mut rng, 60);
        let m = names(&["requests", "cpu", "latency_ms"]);
        let (sigmas, contributors) = assess(&m, &history, &[100.0, 0.6, 400.0], 30).unwrap();
        assert!(sigmas >= 6.0);
        assert_eq!(contributors[0].metric, "latency_ms");
        assert!(contributors[0].sigmas > 0.0);
    }

    #[test]
    fn too_little_history_or_one_metric_is_not_scored() {
        let mut rng = fastrand::Rng::with_seed(6);
        let history = routine(&mut rng, 10);
        let m = names(&["requests", "cpu", "latency_ms"]);
        assert!(assess(&m, &history, &[1.0, 1.0, 1.0], 30).is_none());
        let one: Vec<Vec<f64>> = (0..50).map(|i| vec![i as f64]).collect();
        assert!(assess(&names(&["x"]), &one, &[1.0], 30).is_none());
    }

    #[test]
    fn constant_metrics_do_not_explode() {
        let history: Vec<Vec<f64>> = (0..50).map(|i| vec![5.0, 1.0 + (i % 2) as f64]).collect();
        let (sigmas, _) = assess(&names(&["a", "b"]), &history, &[5.0, 1.0], 30).unwrap();
        assert!(sigmas < 1.0, "{sigmas}");
    }

    proptest! {
        #[test]
        fn any_finite_input_gives_a_finite_answer(
            rows in prop::collection::vec(prop::collection::vec(-1e12f64..1e12, 3), 30..80),
            latest in prop::collection::vec(-1e12f64..1e12, 3),
        ) {
            if let Some((s, c)) = assess(&names(&["a", "b", "c"]), &rows, &latest, 30) {
                prop_assert!(s.is_finite() && s >= 0.0);
                prop_assert!(!c.is_empty() && c.len() <= 3);
            }
        }
    }
}
