//! Injected incidents: what happens, to which pods, when, and the known root cause.

use super::Pod;

const MIN: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// CPU saturates on one pod and its order latency spikes.
    LatencySpikeCpuSaturation,
    /// A bad deploy makes the API gateway return 5xx.
    ErrorBurstAfterDeploy,
    /// Memory grows until the pod is OOM-killed and restarts.
    MemoryLeak,
    /// Wallet balance sync stalls and pending transactions pile up.
    WalletSyncStall,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Incident {
    pub kind: IncidentKind,
    pub service: &'static str,
    /// Only this pod (by index within its service), or all pods of the service.
    pub pod: Option<usize>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The series that show it (metric names); any of them firing counts as detection.
    pub metrics: &'static [&'static str],
    pub root_cause: &'static str,
}

impl Incident {
    pub fn affects(&self, pod: &Pod) -> bool {
        pod.service == self.service && self.pod.is_none_or(|i| i == pod.index)
    }

    pub fn active(&self, offset_ms: i64) -> bool {
        (self.start_ms..self.end_ms).contains(&offset_ms)
    }
}

/// What the incidents do to one pod at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Effects {
    pub cpu_saturation: bool,
    pub error_burst: bool,
    /// Memory growth in fraction-of-limit per second.
    pub leak_rate: f64,
    pub oom_restart: bool,
    pub wallet_stall: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Scenario {
    pub incidents: Vec<Incident>,
    pub length_ms: i64,
}

impl Scenario {
    /// The demo's scenario: one hour of normal traffic, then four incidents, 3.5 h in all.
    pub fn standard() -> Self {
        Self {
            incidents: vec![
                Incident {
                    kind: IncidentKind::LatencySpikeCpuSaturation,
                    service: "order-service",
                    pod: Some(1),
                    start_ms: 60 * MIN,
                    end_ms: 70 * MIN,
                    metrics: &["cpu_usage", "order_latency_p99"],
                    root_cause: "cpu_saturation",
                },
                Incident {
                    kind: IncidentKind::ErrorBurstAfterDeploy,
                    service: "api-gateway",
                    pod: None,
                    start_ms: 90 * MIN,
                    end_ms: 98 * MIN,
                    metrics: &["api_error_rate", "http_requests_total", "api_latency_p99"],
                    root_cause: "bad_deploy",
                },
                Incident {
                    kind: IncidentKind::MemoryLeak,
                    service: "risk-service",
                    pod: Some(0),
                    start_ms: 120 * MIN,
                    end_ms: 160 * MIN,
                    metrics: &["memory_usage", "pod_restarts"],
                    root_cause: "memory_leak",
                },
                Incident {
                    kind: IncidentKind::WalletSyncStall,
                    service: "wallet-service",
                    pod: None,
                    start_ms: 180 * MIN,
                    end_ms: 195 * MIN,
                    metrics: &["balance_sync_latency", "pending_transactions"],
                    root_cause: "wallet_sync_stall",
                },
            ],
            length_ms: 210 * MIN,
        }
    }

    /// The cluster events of the scenario that happened in `(from, to]` (offsets), with their
    /// timestamps: a rollout two minutes before the bad deploy's errors, the OOM kill that
    /// ends the leak, and a harmless image pull elsewhere.
    pub fn cluster_events(
        &self,
        pods: &[Pod],
        base_ms: i64,
        from: i64,
        to: i64,
    ) -> Vec<crate::analyze::events::ClusterEvent> {
        use crate::analyze::events::ClusterEvent;
        let mut out = Vec::new();
        let mut at = |offset: i64, e: ClusterEvent| {
            if offset > from && offset <= to {
                out.push(ClusterEvent {
                    ts_ms: base_ms + offset,
                    ..e
                });
            }
        };
        for inc in &self.incidents {
            let Some(pod) = pods.iter().find(|p| inc.affects(p)) else {
                continue;
            };
            let event = |reason: &str, kind: &str, object: String, message: String| ClusterEvent {
                namespace: pod.namespace.to_string(),
                reason: reason.into(),
                event_type: kind.into(),
                object,
                message,
                ts_ms: 0,
                count: 1,
            };
            match inc.kind {
                IncidentKind::ErrorBurstAfterDeploy => at(
                    inc.start_ms - 2 * MIN,
                    event(
                        "ScalingReplicaSet",
                        "Normal",
                        format!("Deployment/{}", inc.service),
                        format!("Scaled up replica set {}-5f7c9d8b4 to 3", inc.service),
                    ),
                ),
                IncidentKind::MemoryLeak => at(
                    inc.end_ms,
                    event(
                        "OOMKilled",
                        "Warning",
                        format!("Pod/{}", pod.name),
                        format!("Container {} was OOMKilled (limit 1Gi)", inc.service),
                    ),
                ),
                _ => {}
            }
        }
        if let Some(pod) = pods.iter().find(|p| p.service == "matching-engine") {
            at(
                30 * MIN,
                crate::analyze::events::ClusterEvent {
                    namespace: pod.namespace.to_string(),
                    reason: "Pulled".into(),
                    event_type: "Normal".into(),
                    object: format!("Pod/{}", pod.name),
                    message: "Container image already present on machine".into(),
                    ts_ms: 0,
                    count: 1,
                },
            );
        }
        out
    }

    pub fn effects(&self, pod: &Pod, offset_ms: i64) -> Effects {
        let offset = offset_ms.rem_euclid(self.length_ms.max(1));
        let mut e = Effects::default();
        for inc in self.incidents.iter().filter(|i| i.affects(pod)) {
            let active = inc.active(offset);
            match inc.kind {
                IncidentKind::LatencySpikeCpuSaturation => e.cpu_saturation |= active,
                IncidentKind::ErrorBurstAfterDeploy => e.error_burst |= active,
                IncidentKind::MemoryLeak => {
                    if active {
                        e.leak_rate = 0.45 / ((inc.end_ms - inc.start_ms) as f64 / 1000.0);
                    }
                    e.oom_restart |= (inc.end_ms..inc.end_ms + super::STEP_MS).contains(&offset);
                }
                IncidentKind::WalletSyncStall => e.wallet_stall |= active,
            }
        }
        e
    }
}
