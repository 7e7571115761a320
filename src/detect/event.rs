//! What leaves the hot path when a series' anomaly state changes.

use serde::Serialize;

use super::changepoint::Shift;
use super::forecast::Breach;
use super::lifecycle::Transition;
use super::multivariate::ServiceDeviation;
use super::peers::PeerDeviation;
use super::{Score, Severity};
use crate::model::labels::SeriesLabels;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Fired,
    Escalated,
    Resolved,
}

impl From<Transition> for EventKind {
    fn from(t: Transition) -> Self {
        match t {
            Transition::Fired(_) => Self::Fired,
            Transition::Escalated(_) => Self::Escalated,
            Transition::Resolved => Self::Resolved,
        }
    }
}

pub use crate::model::kind::{AnomalyKind, KindName, static_kind, static_kinds};

/// Why an anomaly resolved, when it did not simply calm down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveReason {
    Recovered,
    StalenessMarker,
    Evicted,
    /// A predicted breach whose trend is gone.
    NoLongerPredicted,
    /// A predicted breach that happened (the anomaly detector takes over).
    Breached,
    /// A level shift, reported once; the band adopted the new level.
    Adopted,
}

#[derive(Debug, Clone)]
pub struct AnomalyEvent {
    pub kind: EventKind,
    pub anomaly_kind: AnomalyKind,
    /// For a predicted breach: when and at what value.
    pub breach: Option<Breach>,
    /// For a level shift: from what to what, and when.
    pub shift: Option<Shift>,
    /// For a peer outlier: its level against its peers'.
    pub peer: Option<PeerDeviation>,
    /// For a service anomaly: the joint distance and the metrics that carry it.
    pub service: Option<Box<ServiceDeviation>>,
    pub anomaly_id: u64,
    pub series_id: u64,
    pub labels: SeriesLabels,
    pub category: String,
    /// Sample timestamp (ms) at which the anomaly started.
    pub started_ts: i64,
    /// Sample timestamp (ms) of this transition.
    pub ts: i64,
    pub score: Score,
    pub severity: Severity,
    pub reason: Option<ResolveReason>,
    /// Wall clock when the event was produced (for the notification-latency figure).
    pub produced_at: std::time::SystemTime,
}

/// A plain firing-style event for tests of the stages downstream of detection.
#[cfg(test)]
pub(crate) fn test_event(
    id: u64,
    kind: EventKind,
    labels: &[(&str, &str)],
    ts: i64,
    severity: Severity,
) -> AnomalyEvent {
    let labels = SeriesLabels::from_pairs(labels.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
        .expect("valid test labels");
    AnomalyEvent {
        kind,
        anomaly_kind: AnomalyKind::Anomaly,
        breach: None,
        shift: None,
        peer: None,
        service: None,
        anomaly_id: id,
        series_id: id,
        labels,
        category: "trading".into(),
        started_ts: ts,
        ts,
        score: Score::default(),
        severity,
        reason: None,
        produced_at: std::time::SystemTime::now(),
    }
}
