//! Where the Kubernetes API is (for RCA events now, the executor later).

use serde::{Deserialize, Serialize};

use super::duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// Read the incident namespace's events for the RCA (needs the `kube` feature and a
    /// reachable API server; otherwise the RCA notes their absence).
    pub events: bool,
    /// API server URL; empty means the in-cluster service account or `KUBECONFIG`.
    #[serde(deserialize_with = "duration::nullable_string")]
    pub api_url: String,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            events: true,
            api_url: String::new(),
        }
    }
}
