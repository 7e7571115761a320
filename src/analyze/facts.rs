//! What the rings say about an incident's neighbourhood: per series its peak, trough and
//! increase over the incident, whether it is one of the incident's anomalies, and when it began
//! to move (its onset), which orders causes before effects.

use std::collections::BTreeMap;

use crate::detect::robust::median;
use crate::store::RecentSeries;

pub use crate::model::rca::SeriesFact;

impl SeriesFact {
    /// The value thresholds compare: the increase for counters, else the peak (the trough when
    /// looking below).
    pub fn level(&self, below: bool) -> f64 {
        if self.cumulative {
            self.increase
        } else if below {
            self.trough
        } else {
            self.peak
        }
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// Margin before the first anomaly's start that still counts as the incident (onsets precede
/// the anomaly by the samples it takes to confirm it).
pub const ONSET_MARGIN_MS: i64 = 5 * 60_000;

/// Builds the facts of `series` from the incident's start to `until_ms`; `anomalous` says
/// whether a series (by labels) is one of the incident's anomalies: when it started, and the
/// anomalies' kinds.
pub fn facts(
    series: Vec<RecentSeries>,
    incident_start_ms: i64,
    until_ms: i64,
    anomalous: impl Fn(&BTreeMap<String, String>) -> Option<(i64, Vec<&'static str>)>,
) -> Vec<SeriesFact> {
    let from = incident_start_ms - ONSET_MARGIN_MS;
    series
        .into_iter()
        .filter_map(|s| {
            let metric = s.labels.get("__name__")?.clone();
            let (started, kinds) = match anomalous(&s.labels) {
                Some((t, k)) => (Some(t), k),
                None => (None, Vec::new()),
            };
            let during: Vec<(i64, f64)> = s
                .samples
                .iter()
                .copied()
                .filter(|(t, v)| *t >= from && *t <= until_ms && v.is_finite())
                .collect();
            let baseline: Vec<f64> = s
                .samples
                .iter()
                .filter(|(t, v)| *t < from && v.is_finite())
                .map(|(_, v)| *v)
                .collect();
            let (first, last) = (during.first()?.1, during.last()?.1);
            let peak = during.iter().map(|p| p.1).fold(f64::MIN, f64::max);
            let trough = during.iter().map(|p| p.1).fold(f64::MAX, f64::min);
            let onset = onset(&baseline, &during, s.cumulative).or(started);
            Some(SeriesFact {
                metric,
                before: (!baseline.is_empty()).then(|| median(&mut baseline.clone())),
                labels: s.labels,
                anomalous: started.is_some(),
                kinds,
                cumulative: s.cumulative,
                onset_ms: onset,
                peak,
                trough,
                increase: last - first,
            })
        })
        .collect()
}

/// First sample that leaves the baseline's level by more than four robust sigmas (or 5 % of
/// the level, when the baseline is flat). Counters are judged on their per-sample increments.
fn onset(baseline: &[f64], during: &[(i64, f64)], cumulative: bool) -> Option<i64> {
    let (base, during): (Vec<f64>, Vec<(i64, f64)>) = if cumulative {
        (
            baseline.windows(2).map(|w| w[1] - w[0]).collect(),
            during
                .windows(2)
                .map(|w| (w[1].0, w[1].1 - w[0].1))
                .collect(),
        )
    } else {
        (baseline.to_vec(), during.to_vec())
    };
    if base.len() < 10 {
        return None;
    }
    let mut values = base.clone();
    let m = median(&mut values);
    let mut deviations: Vec<f64> = base.iter().map(|v| (v - m).abs()).collect();
    let mad = median(&mut deviations) * 1.4826;
    let limit = (4.0 * mad).max(0.05 * m.abs()).max(1e-9);
    during
        .iter()
        .find(|(_, v)| (v - m).abs() > limit)
        .map(|(t, _)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, pod: &str, values: impl Fn(i64) -> f64) -> RecentSeries {
        RecentSeries {
            labels: [("__name__", name), ("pod", pod)]
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .into(),
            cumulative: false,
            samples: (0..240).map(|i| (i * 15_000, values(i))).collect(),
        }
    }

    #[test]
    fn onsets_order_cause_before_effect() {
        // CPU saturates at sample 180, latency follows at 184; the anomaly on latency fired
        // at 186 and is the incident's start.
        let cpu = series("cpu_usage", "p1", |i| {
            if i >= 180 {
                0.96
            } else {
                0.35 + (i % 3) as f64 * 0.01
            }
        });
        let lat = series("order_latency_p99", "p1", |i| {
            if i >= 184 {
                0.3
            } else {
                0.045 + (i % 4) as f64 * 0.001
            }
        });
        let flat = series("order_qps", "p1", |i| 180.0 + (i % 5) as f64);
        let start = 186 * 15_000;
        let f = facts(vec![cpu, lat, flat], start, i64::MAX, |l| {
            (l["__name__"] == "order_latency_p99").then(|| (start, vec!["anomaly"]))
        });
        assert_eq!(f[0].onset_ms, Some(180 * 15_000));
        assert_eq!(f[1].onset_ms, Some(184 * 15_000));
        assert_eq!(f[2].onset_ms, None);
        assert!(f[1].anomalous && !f[0].anomalous);
        assert!((f[0].peak - 0.96).abs() < 1e-9);
        assert!(f[0].before.unwrap() < 0.4);
    }
}
