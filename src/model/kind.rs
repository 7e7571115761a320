//! What the detectors report and how it is graded: anomaly kinds by name (what incidents, RCA
//! facts and playbooks match on), severity, and the per-class direction and minimum move.

use serde::{Deserialize, Serialize};

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

/// Which side of the baseline counts as anomalous for a metric class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Above,
    Below,
    #[default]
    Both,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The seed's grading: < 3σ low, 3–4 medium, 4–5 high, ≥ 5 critical.
    pub fn from_sigma(sigma: f64) -> Self {
        if sigma >= 5.0 {
            Self::Critical
        } else if sigma >= 4.0 {
            Self::High
        } else if sigma >= 3.0 {
            Self::Medium
        } else {
            Self::Low
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    pub const ALL: [Severity; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];
}

/// Per metric class: which direction matters and how large a move must be to page anyone.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassParams {
    pub direction: Direction,
    pub min_abs_deviation: f64,
    pub min_rel_deviation: f64,
}
