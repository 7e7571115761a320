//! What a root-cause analysis finds, as the incident keeps it and the API, the planner, the
//! knowledge base and the notifiers read it. Data only: `analyze` produces it (and holds the
//! methods that need its sources), everyone downstream reads it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hypothesis {
    /// Short id of the cause (e.g. `cpu_saturation`), what playbooks match on.
    pub cause: String,
    pub root_cause: String,
    /// In (0, 1); hypotheses are ranked by it.
    pub confidence: f64,
    /// `rule:<id>`, `correlation`, …
    pub source: String,
    pub evidence: Vec<String>,
    pub remediation: Vec<Remediation>,
}

/// The result of one analysis of an incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rca {
    pub analyzed_at: String,
    pub duration_ms: u64,
    /// Best first.
    pub hypotheses: Vec<Hypothesis>,
    /// The series of the incident's group that moved, in order of onset.
    pub moved: Vec<SeriesFact>,
    pub events: Vec<ClusterEvent>,
    pub logs: Option<LogSummary>,
    /// Similar past incidents and runbooks from the knowledge base.
    pub similar: Vec<Match>,
    /// The LLM's summary, when one was asked and answered.
    pub llm_summary: Option<String>,
    /// What was skipped or failed, and why.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Remediation {
    pub action: crate::model::action::Action,
    #[serde(default)]
    pub target: String,
}

/// One series around the incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesFact {
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    /// One of the incident's anomalous series.
    pub anomalous: bool,
    /// Its anomalies' kinds (anomaly, predicted_breach, level_shift, peer_outlier,
    /// service_anomaly).
    #[serde(deserialize_with = "crate::model::kind::static_kinds")]
    pub kinds: Vec<crate::model::kind::KindName>,
    pub cumulative: bool,
    /// Sample time (ms) the series left its pre-incident level, if it did.
    pub onset_ms: Option<i64>,
    /// Over the incident (from the first anomaly's start, less a margin, to now).
    pub peak: f64,
    pub trough: f64,
    /// Last minus first over the incident (for cumulative series, what happened in it).
    pub increase: f64,
    /// Median before the incident.
    pub before: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterEvent {
    pub namespace: String,
    /// e.g. ScalingReplicaSet, OOMKilled, BackOff, FailedScheduling.
    pub reason: String,
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Kind/name of the object, e.g. `Deployment/api-gateway`.
    pub object: String,
    pub message: String,
    /// When it (last) happened, ms.
    pub ts_ms: i64,
    pub count: u32,
}

/// What the logs said about an incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogSummary {
    pub query: String,
    pub lines: usize,
    pub counts: BTreeMap<String, u64>,
    /// A few matching lines, newest first.
    pub samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub id: String,
    /// `incident` or `runbook`.
    pub kind: String,
    pub title: String,
    /// The signature as text: metrics, labels, evidence, root cause.
    pub text: String,
    #[serde(default)]
    pub cause: String,
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub outcome: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Match {
    pub entry: Entry,
    pub similarity: f64,
}
