//! How anomalies are grouped into incidents (see `crate::incident`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// Labels whose values define a group (an incident per group at a time).
    pub group_by: Vec<String>,
    /// Quiet time after the last anomaly resolved before the incident is resolved; a new
    /// anomaly of the group within it reopens the incident.
    #[serde(with = "duration")]
    pub window: Duration,
    /// Incidents are saved to `<data_dir>/incidents.json` (every check interval when changed,
    /// and at shutdown) and restored at start.
    pub persist: bool,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        Self {
            group_by: vec!["namespace".into(), "service".into()],
            window: Duration::from_secs(600),
            persist: true,
        }
    }
}

impl IncidentsConfig {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if self.group_by.is_empty() || self.group_by.iter().any(|l| l.is_empty()) {
            p.push((
                "incidents.group_by".into(),
                "must list at least one label name".into(),
            ));
        }
        if self.window < Duration::from_secs(10) {
            p.push(("incidents.window".into(), "must be at least 10s".into()));
        }
        p
    }
}
