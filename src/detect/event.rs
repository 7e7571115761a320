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

/// What was found: a sample beyond the series' history, or a forecast crossing a threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    #[default]
    Anomaly,
    PredictedBreach,
    /// A lasting change of level; the band adopts it.
    LevelShift,
    /// A series unlike its peers (the other pods of its deployment).
    PeerOutlier,
    /// A service whose key metrics together are unusual (on the series of the metric that
    /// contributes most).
    ServiceAnomaly,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anomaly => "anomaly",
            Self::PredictedBreach => "predicted_breach",
            Self::LevelShift => "level_shift",
            Self::PeerOutlier => "peer_outlier",
            Self::ServiceAnomaly => "service_anomaly",
        }
    }
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 5] = [
        Self::Anomaly,
        Self::PredictedBreach,
        Self::LevelShift,
        Self::PeerOutlier,
        Self::ServiceAnomaly,
    ];

    /// The kind named `name`; unknown names (from a newer version's state file) read as
    /// `anomaly`.
    pub fn from_name(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .unwrap_or_default()
    }
}

/// A kind's name. An alias, not `&'static str` written out: serde would borrow a field
/// spelled `&str` from its input instead of using [`static_kind`].
pub type KindName = &'static str;

/// Reads a kind name stored as `&'static str` (restored incidents and RCA facts).
pub fn static_kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let name: String = serde::Deserialize::deserialize(d)?;
    Ok(AnomalyKind::from_name(&name).as_str())
}

pub fn static_kinds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<&'static str>, D::Error> {
    let names: Vec<String> = serde::Deserialize::deserialize(d)?;
    Ok(names
        .iter()
        .map(|n| AnomalyKind::from_name(n).as_str())
        .collect())
}

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
