//! Service scores: a service's catalog metrics bucketed from the rings and scored together.

use std::collections::HashMap;

use crate::detect::Severity;
use crate::detect::engine::Detection;
use crate::detect::event::{AnomalyEvent, AnomalyKind, EventKind, ResolveReason};
use crate::detect::multivariate::{self, ServiceDeviation, ServiceParams};
use crate::detect::state::Population;

/// A firing service anomaly: its id, the series it is reported on, checks without a verdict.
#[derive(Debug, Clone, Copy)]
pub(in crate::detect) struct ServiceFiring {
    anomaly_id: u64,
    series: u64,
    calm: u8,
    /// The bucket it fired on: while it fires, the baseline is the history before it.
    since_bucket: i64,
}

#[derive(Default)]
struct ServiceMetric {
    series: u64,
    sigma: f64,
    buckets: HashMap<i64, (f64, u32)>,
}

/// One service's catalog metrics, bucketed from the rings: per metric, per bucket, sum and
/// count over its series.
#[derive(Default)]
struct ServiceRows {
    labels: Vec<(String, String)>,
    /// Per metric: the series that deviates most on its own (reported on), its sigma, buckets.
    metrics: std::collections::BTreeMap<String, ServiceMetric>,
}

/// How far the mean of the values within `window` of the newest lies from the median of the
/// ones before, in robust sigmas of those (0 without enough of either).
fn recent_deviation(values: &[(i64, f64)], window: i64) -> f64 {
    let Some(&(newest, _)) = values.last() else {
        return 0.0;
    };
    let split = values.partition_point(|(ts, _)| *ts < newest - window);
    let (before, recent) = values.split_at(split);
    if before.len() < 10 || recent.is_empty() {
        return 0.0;
    }
    let mean = recent.iter().map(|(_, v)| v).sum::<f64>() / recent.len() as f64;
    let mut history: Vec<f64> = before.iter().map(|(_, v)| *v).collect();
    let (mid, mad) = crate::detect::robust::median_and_mad(&mut history);
    let scale = (1.4826 * mad).max(mid.abs() * 1e-3).max(1e-12);
    let d = (mean - mid).abs() / scale;
    if d.is_finite() { d } else { 0.0 }
}

enum ServiceVerdict {
    /// Jointly unusual: the series to report on, the bucket judged, why.
    Anomalous(u64, i64, ServiceDeviation),
    Normal,
    /// Too few metrics or too little history to say.
    Unjudged,
}

impl Detection {
    /// Scores each service's catalog metrics together (see [`multivariate`]) and opens or
    /// closes `service_anomaly` anomalies, reported on a series of the metric that contributes
    /// most. Rings are bucketed per service and metric; the newest (partial) bucket is left out.
    pub(super) fn service_anomalies(&self, population: &dyn Population) -> Vec<AnomalyEvent> {
        let p = &self.options.services;
        if !p.enabled || p.group_by.is_empty() || p.bucket_ms <= 0 {
            return Vec::new();
        }
        let mut services: HashMap<u64, ServiceRows> = HashMap::new();
        let mut scratch = Vec::new();
        let mut own: Vec<(i64, f64)> = Vec::new();
        let mut key = Vec::new();
        population.visit(&mut |s, history, state| {
            let warm = state.detector.seen >= self.options.detect.warmup_samples;
            if !state.enabled || s.stale || !warm || self.catalog.class(s.class).is_none() {
                return;
            }
            key.clear();
            let complete = p.group_by.iter().all(|name| match s.labels.get(name) {
                Some(v) => {
                    key.extend_from_slice(v.as_bytes());
                    key.push(0xff);
                    true
                }
                None => false,
            });
            if !complete {
                return;
            }
            let rows = services
                .entry(xxhash_rust::xxh3::xxh3_64(&key))
                .or_default();
            if rows.labels.is_empty() {
                rows.labels = p
                    .group_by
                    .iter()
                    .filter_map(|n| s.labels.get(n).map(|v| (n.clone(), v.to_string())))
                    .collect();
            }
            let metric = rows
                .metrics
                .entry(s.labels.metric_name().to_string())
                .or_insert_with(|| ServiceMetric {
                    series: s.hash,
                    sigma: f64::NEG_INFINITY,
                    buckets: HashMap::new(),
                });
            scratch.clear();
            history.decode_into(&mut scratch);
            own.clear();
            let mut previous: Option<(i64, f64)> = None;
            for &(ts, v) in scratch.iter() {
                let value = if s.cumulative {
                    let rate = previous
                        .filter(|(t0, v0)| ts > *t0 && v >= *v0)
                        .map(|(t0, v0)| (v - v0) * 1000.0 / ts.saturating_sub(t0) as f64);
                    previous = Some((ts, v));
                    match rate {
                        Some(r) => r,
                        None => continue,
                    }
                } else {
                    v
                };
                if value.is_finite() {
                    own.push((ts, value));
                }
            }
            // The ring is in time order: one map update per bucket, not per sample.
            for run in
                own.chunk_by(|a, b| a.0.div_euclid(p.bucket_ms) == b.0.div_euclid(p.bucket_ms))
            {
                let cell = metric
                    .buckets
                    .entry(run[0].0.div_euclid(p.bucket_ms))
                    .or_insert((0.0, 0));
                cell.0 += run.iter().map(|(_, v)| v).sum::<f64>();
                cell.1 += run.len() as u32;
            }
            // Reported on the pod whose own recent values moved most against its own
            // history, so an incident and its plan point at the pod that moved, not at a
            // sibling that took over some of its load.
            let deviation = recent_deviation(&own, 2 * p.bucket_ms);
            if deviation > metric.sigma {
                metric.series = s.hash;
                metric.sigma = deviation;
            }
        });
        let mut firing = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let mut verdicts: HashMap<u64, (u64, i64, ServiceDeviation)> = HashMap::new();
        // Services that could not be judged (too few metrics, too little history before a
        // firing anomaly began): no verdict is not a recovery.
        let mut unjudged: Vec<u64> = Vec::new();
        for (service, rows) in &services {
            let before = firing.get(service).map(|f| f.since_bucket);
            match Self::assess_service(rows, p, before) {
                ServiceVerdict::Anomalous(series, bucket, d) => {
                    verdicts.insert(*service, (series, bucket, d));
                }
                ServiceVerdict::Normal => {}
                ServiceVerdict::Unjudged => unjudged.push(*service),
            }
        }
        let mut events = Vec::new();
        let report = |series: u64, kind, id, reason, deviation: Option<ServiceDeviation>| {
            let severity = deviation
                .as_ref()
                .map_or(Severity::Medium, |d| Severity::from_sigma(d.sigmas));
            let mut event = None;
            population.visit_one(series, &mut |s, state| {
                let mut e = self.event(s, state, kind, id, s.last_ts, s.last_ts, severity, reason);
                e.anomaly_kind = AnomalyKind::ServiceAnomaly;
                e.service = deviation.clone().map(Box::new);
                event = Some(e);
            });
            event
        };
        let judged: Vec<u64> = verdicts.keys().copied().collect();
        for (service, (series, bucket, deviation)) in verdicts {
            if let Some(f) = firing.get_mut(&service) {
                f.calm = 0;
                continue;
            }
            let id = self.next_id();
            let fired = ServiceFiring {
                anomaly_id: id,
                series,
                calm: 0,
                since_bucket: bucket,
            };
            firing.insert(service, fired);
            events.extend(report(series, EventKind::Fired, id, None, Some(deviation)));
        }
        // Two checks without a verdict resolve it (one quiet bucket is not a recovery).
        // A firing service that can no longer be judged has lost the history from before it
        // to the ring's horizon: what it does now is its baseline (adopted, like a level shift).
        let mut ended = Vec::new();
        for (service, f) in firing.iter_mut() {
            if judged.contains(service) {
                continue;
            }
            f.calm = f.calm.saturating_add(1);
            if f.calm >= 2 {
                let reason = if unjudged.contains(service) {
                    ResolveReason::Adopted
                } else {
                    ResolveReason::Recovered
                };
                ended.push((*service, reason));
            }
        }
        for (service, reason) in ended {
            if let Some(f) = firing.remove(&service) {
                events.extend(report(
                    f.series,
                    EventKind::Resolved,
                    f.anomaly_id,
                    Some(reason),
                    None,
                ));
            }
        }
        events
    }

    /// One service's verdict on its newest complete bucket, judged against the buckets before
    /// it (before `baseline_before` while an anomaly of it is firing).
    fn assess_service(
        rows: &ServiceRows,
        p: &ServiceParams,
        baseline_before: Option<i64>,
    ) -> ServiceVerdict {
        let metrics: Vec<(&String, &ServiceMetric)> = rows
            .metrics
            .iter()
            .take(multivariate::MAX_METRICS)
            .collect();
        if metrics.len() < 2 {
            return ServiceVerdict::Unjudged;
        }
        // Buckets every metric has, oldest first; the newest of all may still be filling.
        let Some(newest) = metrics
            .iter()
            .filter_map(|(_, m)| m.buckets.keys().max())
            .max()
        else {
            return ServiceVerdict::Unjudged;
        };
        let mut buckets: Vec<i64> = metrics[0]
            .1
            .buckets
            .keys()
            .copied()
            .filter(|b| b < newest && metrics.iter().all(|(_, m)| m.buckets.contains_key(b)))
            .collect();
        buckets.sort_unstable();
        let row = |b: &i64| -> Vec<f64> {
            metrics
                .iter()
                .map(|(_, m)| {
                    m.buckets
                        .get(b)
                        .map_or(f64::NAN, |(sum, n)| sum / f64::from(*n))
                })
                .collect()
        };
        let Some((latest_bucket, history)) = buckets.split_last() else {
            return ServiceVerdict::Unjudged;
        };
        let until = baseline_before.unwrap_or(i64::MAX);
        let history: Vec<Vec<f64>> = history.iter().filter(|b| **b < until).map(row).collect();
        let names: Vec<String> = metrics.iter().map(|(n, _)| (*n).clone()).collect();
        let Some((sigmas, contributors)) =
            multivariate::assess(&names, &history, &row(latest_bucket), p.min_history)
        else {
            return ServiceVerdict::Unjudged;
        };
        if sigmas < p.threshold_sigmas {
            return ServiceVerdict::Normal;
        }
        let series = contributors
            .first()
            .and_then(|top| rows.metrics.get(&top.metric))
            .map_or(metrics[0].1.series, |m| m.series);
        ServiceVerdict::Anomalous(
            series,
            *latest_bucket,
            ServiceDeviation {
                service: rows.labels.clone(),
                sigmas,
                metrics: names.len(),
                contributors,
            },
        )
    }
}
