//! What a remediation step does: the closed set of actions a playbook may name and an executor
//! may run. One enum, so a playbook, the risk table and the executors cannot disagree on a
//! spelling; it is written as the playbook's snake_case word everywhere (YAML, API, audit log).

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Action {
    PodRestart,
    HpaScale,
    ScaleDeployment,
    DeploymentRollback,
    ConfigRollback,
    CircuitBreaker,
    DatabaseFailover,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::PodRestart,
        Action::HpaScale,
        Action::ScaleDeployment,
        Action::DeploymentRollback,
        Action::ConfigRollback,
        Action::CircuitBreaker,
        Action::DatabaseFailover,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::PodRestart => "pod_restart",
            Action::HpaScale => "hpa_scale",
            Action::ScaleDeployment => "scale_deployment",
            Action::DeploymentRollback => "deployment_rollback",
            Action::ConfigRollback => "config_rollback",
            Action::CircuitBreaker => "circuit_breaker",
            Action::DatabaseFailover => "database_failover",
        }
    }

    /// How hard the action is to get right and to undo, in [0, 1] (the seed's action table:
    /// low, medium, high).
    pub fn complexity(self) -> f64 {
        match self {
            Action::PodRestart | Action::HpaScale => 0.2,
            Action::DeploymentRollback | Action::ConfigRollback | Action::CircuitBreaker => 0.5,
            // Changes the replica count directly, fighting any autoscaler that owns it.
            Action::ScaleDeployment => 0.6,
            Action::DatabaseFailover => 0.95,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_string()))
    }
}

impl TryFrom<String> for Action {
    type Error = UnknownAction;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {0:?} (known: {known})", known = known())]
pub struct UnknownAction(pub String);

fn known() -> String {
    Action::ALL.map(Action::as_str).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_through_its_word() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
            let json = serde_json::to_string(&a).expect("serializes");
            assert_eq!(json, format!("\"{a}\""));
            assert_eq!(serde_json::from_str::<Action>(&json).expect("parses"), a);
        }
    }

    #[test]
    fn an_unknown_word_names_the_known_ones() {
        let e = serde_json::from_str::<Action>("\"nuke\"").expect_err("refused");
        let text = e.to_string();
        assert!(text.contains("unknown action \"nuke\""), "{text}");
        assert!(text.contains("pod_restart, hpa_scale"), "{text}");
    }
}
