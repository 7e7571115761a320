//! The anomaly book: every firing and recently resolved anomaly, for the API and notifiers.
//!
//! It is written only on lifecycle transitions (rare next to samples), under one mutex that is
//! never held across I/O. Resolved anomalies are kept up to a bound, oldest dropped first.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use thiserror::Error;

use super::changepoint::Shift;
use super::event::{AnomalyEvent, AnomalyKind, EventKind, ResolveReason};
use super::forecast::Breach;
use super::multivariate::ServiceDeviation;
use super::peers::PeerDeviation;
use super::{Channel, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyState {
    Firing,
    Resolved,
}

#[derive(Debug, Clone, Serialize)]
pub struct Acknowledgement {
    pub by: String,
    pub at: String,
    pub comment: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Anomaly {
    pub id: String,
    /// `anomaly` (a sample beyond the series' history) or `predicted_breach` (a forecast).
    pub kind: AnomalyKind,
    /// For `anomaly`: the novelty channel that raised it (range, density, context, stuck).
    pub channel: Channel,
    /// For `predicted_breach`: threshold, direction, when and at what value.
    pub breach: Option<Breach>,
    /// For `level_shift`: from what to what, and when.
    pub shift: Option<Shift>,
    /// For `peer_outlier`: its level against its peers' median.
    pub peer: Option<PeerDeviation>,
    /// For `service_anomaly`: the joint distance and the metrics that carry it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Box<ServiceDeviation>>,
    pub series_id: String,
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    pub category: String,
    pub severity: Severity,
    pub state: AnomalyState,
    pub started_at: String,
    /// Sample time at which it fired (after the pending samples).
    pub fired_at: String,
    /// Sample time of the resolution.
    pub resolved_at: Option<String>,
    pub resolve_reason: Option<ResolveReason>,
    pub value: f64,
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    pub sigma: f64,
    pub score: f64,
    pub direction: &'static str,
    pub acknowledged: Option<Acknowledgement>,
    /// The incident it belongs to (see `crate::incident`).
    pub incident_id: Option<String>,
    pub summary: String,
    pub description: String,
}

pub fn anomaly_id(raw: u64) -> String {
    format!("ANO-{raw:x}")
}

pub fn parse_anomaly_id(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("ANO-")?, 16).ok()
}

pub use crate::model::clock::{rfc3339, rfc3339_ms};

fn fmt_value(v: f64) -> String {
    if v == 0.0 || (v.abs() >= 0.01 && v.abs() < 1e6) {
        format!("{v:.3}")
    } else {
        format!("{v:.3e}")
    }
}

impl Anomaly {
    pub fn from_event(e: &AnomalyEvent) -> Self {
        let metric = e.labels.metric_name().to_string();
        let direction = if e.score.value >= e.score.expected {
            "above"
        } else {
            "below"
        };
        let target: Vec<String> = ["namespace", "service", "deployment", "pod", "instance"]
            .iter()
            .filter_map(|k| e.labels.get(k).map(|v| format!("{k}={v}")))
            .collect();
        let on = if target.is_empty() {
            String::new()
        } else {
            format!(" on {}", target.join(" "))
        };
        let (summary, description) = match (e.anomaly_kind, e.breach) {
            (AnomalyKind::PredictedBreach, Some(b)) => {
                let side = if b.direction == super::Direction::Below {
                    "below"
                } else {
                    "above"
                };
                let minutes = (b.at_ms - e.ts).max(0) / 60_000;
                (
                    format!(
                        "{metric} is predicted to go {side} {}{on}",
                        fmt_value(b.threshold)
                    ),
                    format!(
                        "forecast crosses {} in about {}h {:02}m (at {}); now {}",
                        fmt_value(b.threshold),
                        minutes / 60,
                        minutes % 60,
                        rfc3339_ms(b.at_ms),
                        fmt_value(b.current)
                    ),
                )
            }
            (AnomalyKind::LevelShift, _) if e.shift.is_some() => {
                let s = e.shift.unwrap_or(Shift {
                    at_ms: e.ts,
                    before: 0.0,
                    after: 0.0,
                    sigmas: 0.0,
                });
                (
                    format!("{metric} shifted to a new level{on}"),
                    format!(
                        "level moved from {} to {} ({:.1}σ) at {}; the baseline adopted the new level",
                        fmt_value(s.before),
                        fmt_value(s.after),
                        s.sigmas.min(999.0),
                        rfc3339_ms(s.at_ms)
                    ),
                )
            }
            (AnomalyKind::PeerOutlier, Some(_)) | (AnomalyKind::PeerOutlier, None)
                if e.peer.is_some() =>
            {
                let (level, median, sigmas, size) = e.peer.map_or((0.0, 0.0, 0.0, 0), |p| {
                    (p.level, p.peers_median, p.sigmas, p.group_size)
                });
                (
                    format!(
                        "{metric} is unlike its {} peers{on}",
                        size.saturating_sub(1)
                    ),
                    format!(
                        "{metric} at {} while its group's median is {} ({:.1}σ of the group's spread)",
                        fmt_value(level),
                        fmt_value(median),
                        sigmas.min(999.0)
                    ),
                )
            }
            (AnomalyKind::ServiceAnomaly, _) if e.service.is_some() => {
                let d = e.service.as_deref();
                let name = d.map_or(String::new(), |d| {
                    d.service
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                });
                let (sigmas, metrics, parts) = d.map_or((0.0, 0, Vec::new()), |d| {
                    let parts = d
                        .contributors
                        .iter()
                        .map(|c| {
                            format!(
                                "{} {} (typically {}, {:+.1}σ given the others)",
                                c.metric,
                                fmt_value(c.value),
                                fmt_value(c.typical),
                                c.sigmas.clamp(-999.0, 999.0)
                            )
                        })
                        .collect();
                    (d.sigmas, d.metrics, parts)
                });
                (
                    format!("{name}: its {metrics} key metrics together are unusual"),
                    format!(
                        "joint distance {:.1}σ; carried by {}",
                        sigmas.min(999.0),
                        parts.join("; ")
                    ),
                )
            }
            _ => (
                format!("{metric} is anomalous ({direction} expected){on}"),
                Self::score_description(e),
            ),
        };
        Self {
            id: anomaly_id(e.anomaly_id),
            kind: e.anomaly_kind,
            channel: if e.anomaly_kind == AnomalyKind::Anomaly {
                e.score.channel
            } else {
                Channel::None
            },
            breach: e.breach,
            shift: e.shift,
            peer: e.peer,
            service: e.service.clone(),
            series_id: crate::model::series_id(e.series_id),
            metric,
            labels: e.labels.to_map(),
            category: e.category.clone(),
            severity: e.severity,
            state: AnomalyState::Firing,
            started_at: rfc3339_ms(e.started_ts),
            fired_at: rfc3339_ms(e.ts),
            resolved_at: None,
            resolve_reason: None,
            value: e.score.value,
            expected: e.score.expected,
            lower: e.score.lower,
            upper: e.score.upper,
            sigma: e.score.sigma.min(1e6),
            score: e.score.score,
            direction,
            acknowledged: None,
            incident_id: None,
            summary,
            description,
        }
    }

    fn score_description(e: &AnomalyEvent) -> String {
        format!(
            "current {} vs expected {} (normal band {} to {}), {:.1}σ, score {:.2}, severity {}",
            fmt_value(e.score.value),
            fmt_value(e.score.expected),
            fmt_value(e.score.lower),
            fmt_value(e.score.upper),
            e.score.sigma.min(999.0),
            e.score.score,
            e.severity.as_str()
        )
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BookError {
    #[error("no anomaly with id {0}")]
    NotFound(String),
}

#[derive(Debug, Default, Clone)]
pub struct AnomalyFilter {
    pub category: Option<String>,
    pub severity: Option<Severity>,
    pub active_only: bool,
}

struct Inner {
    by_id: HashMap<u64, Anomaly>,
    resolved_order: VecDeque<u64>,
}

pub struct AnomalyBook {
    inner: Mutex<Inner>,
    max_resolved: usize,
}

impl AnomalyBook {
    pub fn new(max_resolved: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                by_id: HashMap::new(),
                resolved_order: VecDeque::new(),
            }),
            max_resolved,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a transition and returns the anomaly as it now stands.
    pub fn record(&self, e: &AnomalyEvent) -> Anomaly {
        let mut inner = self.lock();
        let fresh = Anomaly::from_event(e);
        let entry = inner
            .by_id
            .entry(e.anomaly_id)
            .or_insert_with(|| fresh.clone());
        match e.kind {
            EventKind::Fired => {}
            EventKind::Escalated => {
                let ack = entry.acknowledged.take();
                *entry = Anomaly {
                    started_at: entry.started_at.clone(),
                    fired_at: entry.fired_at.clone(),
                    acknowledged: ack,
                    incident_id: entry.incident_id.take(),
                    ..fresh
                };
            }
            EventKind::Resolved => {
                entry.state = AnomalyState::Resolved;
                entry.resolved_at = Some(rfc3339_ms(e.ts));
                entry.resolve_reason = e.reason;
            }
        }
        let out = entry.clone();
        if e.kind == EventKind::Resolved {
            inner.resolved_order.push_back(e.anomaly_id);
            while inner.resolved_order.len() > self.max_resolved {
                if let Some(old) = inner.resolved_order.pop_front() {
                    inner.by_id.remove(&old);
                }
            }
        }
        out
    }

    /// Files an anomaly under its incident.
    pub fn set_incident(&self, raw_id: u64, incident_id: &str) {
        if let Some(a) = self.lock().by_id.get_mut(&raw_id)
            && a.incident_id.as_deref() != Some(incident_id)
        {
            a.incident_id = Some(incident_id.to_string());
        }
    }

    pub fn list(&self, f: &AnomalyFilter) -> Vec<Anomaly> {
        let inner = self.lock();
        let mut out: Vec<Anomaly> = inner
            .by_id
            .values()
            .filter(|a| !f.active_only || a.state == AnomalyState::Firing)
            .filter(|a| f.category.as_ref().is_none_or(|c| &a.category == c))
            .filter(|a| f.severity.is_none_or(|s| a.severity == s))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    pub fn get(&self, id: &str) -> Result<Anomaly, BookError> {
        let raw = parse_anomaly_id(id).ok_or_else(|| BookError::NotFound(id.to_string()))?;
        self.lock()
            .by_id
            .get(&raw)
            .cloned()
            .ok_or_else(|| BookError::NotFound(id.to_string()))
    }

    pub fn acknowledge(&self, id: &str, by: &str, comment: &str) -> Result<Anomaly, BookError> {
        let raw = parse_anomaly_id(id).ok_or_else(|| BookError::NotFound(id.to_string()))?;
        let mut inner = self.lock();
        let a = inner
            .by_id
            .get_mut(&raw)
            .ok_or_else(|| BookError::NotFound(id.to_string()))?;
        a.acknowledged = Some(Acknowledgement {
            by: by.to_string(),
            at: rfc3339(SystemTime::now()),
            comment: comment.to_string(),
        });
        Ok(a.clone())
    }

    pub fn active_by_severity(&self) -> [(&'static str, usize); 4] {
        let inner = self.lock();
        Severity::ALL.map(|s| {
            (
                s.as_str(),
                inner
                    .by_id
                    .values()
                    .filter(|a| a.state == AnomalyState::Firing && a.severity == s)
                    .count(),
            )
        })
    }

    /// Firing anomalies by (category, kind, severity), for dashboards.
    pub fn active_breakdown(&self) -> BTreeMap<(String, &'static str, &'static str), usize> {
        let mut out = BTreeMap::new();
        for a in self.lock().by_id.values() {
            if a.state == AnomalyState::Firing {
                *out.entry((a.category.clone(), a.kind.as_str(), a.severity.as_str()))
                    .or_insert(0) += 1;
            }
        }
        out
    }

    pub fn active_count(&self) -> usize {
        self.lock()
            .by_id
            .values()
            .filter(|a| a.state == AnomalyState::Firing)
            .count()
    }
}
