//! Root-cause analysis settings (see `crate::analyze`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RcaConfig {
    /// Rules file in the seed's format; empty means the embedded `config/rca_rules.yaml`.
    #[serde(deserialize_with = "duration::nullable_string")]
    pub rules_file: String,
    /// Time limit for one analysis, sources included.
    #[serde(with = "duration")]
    pub budget: Duration,
    /// Ring history before the incident used as its baseline.
    #[serde(with = "duration")]
    pub lookback: Duration,
    /// How long before the first onset Kubernetes events and logs still count.
    #[serde(with = "duration")]
    pub events_lookback: Duration,
    /// Incidents waiting for analysis; a full queue drops (and counts) the request, and the
    /// next change of that incident asks again.
    pub queue_size: usize,
    /// Keep the knowledge base in `<data_dir>/knowledge.jsonl` (else in memory only).
    pub knowledge_persist: bool,
    /// Qdrant's gRPC URL (`QDRANT_URL`, e.g. http://qdrant:6334): the knowledge base is mirrored
    /// there and searched there (needs the `qdrant` feature).
    #[serde(deserialize_with = "duration::nullable_string")]
    pub qdrant_url: String,
    pub qdrant_api_key: super::Secret,
    #[serde(deserialize_with = "duration::nullable_string")]
    pub qdrant_collection: String,
}

impl Default for RcaConfig {
    fn default() -> Self {
        Self {
            rules_file: String::new(),
            budget: Duration::from_secs(10),
            lookback: Duration::from_secs(1800),
            events_lookback: Duration::from_secs(900),
            queue_size: 1024,
            knowledge_persist: true,
            qdrant_url: String::new(),
            qdrant_api_key: super::Secret::default(),
            qdrant_collection: "sre_agent_knowledge".into(),
        }
    }
}

impl RcaConfig {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if self.budget < Duration::from_millis(100) {
            p.push(("rca.budget".into(), "must be at least 100ms".into()));
        }
        if self.lookback < Duration::from_secs(60) {
            p.push(("rca.lookback".into(), "must be at least 1m".into()));
        }
        if self.queue_size < 1 {
            p.push(("rca.queue_size".into(), "must be at least 1".into()));
        }
        p
    }
}
