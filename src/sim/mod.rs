//! The built-in crypto-exchange simulator: services and pods emitting the seed's metrics with
//! daily seasonality and noise, and incidents injected at known times with a known root cause.
//!
//! It only produces samples; [`demo`] sends them over real HTTP remote write into a running
//! agent and scores what the agent detected against what was injected.

pub mod cluster;
pub mod demo;
pub mod noisy;
pub mod oncall;
pub mod scenario;
pub mod sender;
pub mod summary;
pub mod trial;

use crate::ingest::encode::TimeSeries;
pub use scenario::{Incident, IncidentKind, Scenario};

/// Scrape interval of the simulated Prometheus.
pub const STEP_MS: i64 = 15_000;
const DAY_MS: f64 = 86_400_000.0;

#[derive(Debug, Clone)]
pub struct Pod {
    pub namespace: &'static str,
    pub service: &'static str,
    pub name: String,
    pub index: usize,
}

/// Per-pod state that persists between steps (counters, leaks, queues).
#[derive(Debug, Clone, Default)]
struct PodState {
    orders_total: f64,
    http_ok_total: f64,
    http_err_total: f64,
    restarts: f64,
    pending: f64,
    leaked: f64,
}

/// A metric name, its extra labels, and its value for one scrape.
type Metric = (&'static str, Vec<(&'static str, &'static str)>, f64);

pub struct Exchange {
    pub pods: Vec<Pod>,
    state: Vec<PodState>,
    /// Incidents an action ended early: (service, kind, until this offset).
    relieved: Vec<(String, IncidentKind, i64)>,
    rng: fastrand::Rng,
    pub scenario: Scenario,
}

const SERVICES: [(&str, &str, usize); 5] = [
    ("trading", "order-service", 3),
    ("trading", "matching-engine", 2),
    ("risk", "risk-service", 2),
    ("wallet", "wallet-service", 2),
    ("api", "api-gateway", 3),
];

impl Exchange {
    pub fn new(seed: u64, scenario: Scenario) -> Self {
        let mut pods = Vec::new();
        for (namespace, service, n) in SERVICES {
            for index in 0..n {
                pods.push(Pod {
                    namespace,
                    service,
                    name: format!("{service}-7d9f8b6c5-{}", ["a1b2c", "d3e4f", "g5h6i"][index]),
                    index,
                });
            }
        }
        let state = vec![PodState::default(); pods.len()];
        Self {
            pods,
            state,
            relieved: Vec::new(),
            rng: fastrand::Rng::with_seed(seed),
            scenario,
        }
    }

    /// A change made through the simulated cluster's API at `offset_ms`: a deleted pod
    /// restarts; more replicas (HPA) relieve the service's CPU saturation; a rollback ends the
    /// bad deploy's errors.
    pub fn apply_cluster_change(&mut self, method: &str, path: &str, offset_ms: i64) {
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        match method {
            "DELETE" if path.contains("/pods/") => {
                self.restart_pod(&name);
            }
            "PATCH" if path.contains("/horizontalpodautoscalers/") => {
                self.relieve(&name, IncidentKind::LatencySpikeCpuSaturation, offset_ms)
            }
            "PUT" if path.contains("/deployments/") => {
                self.relieve(&name, IncidentKind::ErrorBurstAfterDeploy, offset_ms)
            }
            _ => {}
        }
    }

    /// Ends the current occurrence of `kind` on `service` (the scenario repeats).
    fn relieve(&mut self, service: &str, kind: IncidentKind, offset_ms: i64) {
        let length = self.scenario.length_ms.max(1);
        let cycle = offset_ms.div_euclid(length) * length;
        for inc in &self.scenario.incidents {
            if inc.service == service && inc.kind == kind {
                self.relieved
                    .push((service.to_string(), kind, cycle + inc.end_ms));
            }
        }
    }

    fn is_relieved(&self, service: &str, kind: IncidentKind, offset_ms: i64) -> bool {
        self.relieved
            .iter()
            .any(|(s, k, until)| s == service && *k == kind && offset_ms < *until)
    }

    /// A pod deleted through the simulated cluster's API comes back fresh: leaked memory
    /// gone, one more restart counted. Returns whether the pod exists.
    pub fn restart_pod(&mut self, name: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.name == name) else {
            return false;
        };
        let st = &mut self.state[i];
        st.leaked = 0.0;
        st.restarts += 1.0;
        true
    }

    /// Approximately normal noise with standard deviation `sd` (sum of uniforms).
    fn noise(&mut self, sd: f64) -> f64 {
        let s: f64 = (0..4).map(|_| self.rng.f64()).sum::<f64>() - 2.0;
        s * sd * (3.0f64).sqrt()
    }

    /// One scrape of every pod at `ts` (ms); `offset_ms` is the time since the scenario began.
    pub fn step(&mut self, ts: i64, offset_ms: i64) -> Vec<TimeSeries> {
        let day_phase = (ts as f64 % DAY_MS) / DAY_MS;
        // Traffic peaks in the (UTC) afternoon, as exchange volume does.
        let traffic = 1.0 + 0.35 * ((day_phase - 0.375) * std::f64::consts::TAU).sin();
        let mut out = Vec::with_capacity(self.pods.len() * 8);
        for i in 0..self.pods.len() {
            let pod = self.pods[i].clone();
            let mut effects = self.scenario.effects(&pod, offset_ms);
            if self.is_relieved(
                pod.service,
                IncidentKind::LatencySpikeCpuSaturation,
                offset_ms,
            ) {
                effects.cpu_saturation = false;
            }
            if self.is_relieved(pod.service, IncidentKind::ErrorBurstAfterDeploy, offset_ms) {
                effects.error_burst = false;
            }
            let mut metrics: Vec<Metric> = Vec::new();
            let cpu_base = 0.35 + 0.15 * (traffic - 1.0);
            let cpu = (cpu_base + self.noise(0.02)).max(0.05);
            let cpu = if effects.cpu_saturation {
                0.96 + self.noise(0.01)
            } else {
                cpu
            };
            let st = &mut self.state[i];
            if effects.leak_rate > 0.0 {
                st.leaked += effects.leak_rate * STEP_MS as f64 / 1000.0;
            }
            if effects.oom_restart && st.leaked > 0.0 {
                st.leaked = 0.0;
                st.restarts += 1.0;
            }
            let leaked = st.leaked;
            let restarts = st.restarts;
            let mem = (0.52 + leaked + self.noise(0.008)).clamp(0.0, 0.999);
            metrics.push(("cpu_usage", vec![], cpu.min(1.0)));
            metrics.push(("memory_usage", vec![], mem));
            metrics.push(("pod_restarts", vec![], restarts));
            match pod.service {
                "order-service" => {
                    let qps = 180.0 * traffic + self.noise(6.0);
                    let mut lat = 0.045 * (1.0 + 0.1 * (traffic - 1.0)) * (1.0 + self.noise(0.06));
                    if effects.cpu_saturation {
                        lat *= 6.0;
                    }
                    let err = (0.001 + self.noise(0.0002)).max(0.0);
                    self.state[i].orders_total += qps * STEP_MS as f64 / 1000.0;
                    metrics.push(("order_latency_p99", vec![], lat));
                    metrics.push(("order_qps", vec![], qps));
                    metrics.push(("order_error_rate", vec![], err));
                    metrics.push(("orders_total", vec![], self.state[i].orders_total));
                }
                "matching-engine" => {
                    let lat = 0.0021 * (1.0 + self.noise(0.05));
                    let depth = 5200.0 * (0.9 + 0.1 * traffic) + self.noise(120.0);
                    metrics.push(("matching_latency_p99", vec![], lat));
                    metrics.push(("orderbook_depth", vec![], depth));
                }
                "risk-service" => {
                    metrics.push(("margin_utilization", vec![], 0.34 + self.noise(0.01)));
                    metrics.push(("risk_limit_breaches", vec![], 0.0));
                }
                "wallet-service" => {
                    let lat = if effects.wallet_stall {
                        30.0 + offset_ms as f64 / 1e6
                    } else {
                        1.4 + self.noise(0.1)
                    };
                    let st = &mut self.state[i];
                    st.pending = if effects.wallet_stall {
                        st.pending + 4.0
                    } else {
                        (st.pending * 0.5).max(18.0)
                    };
                    let pending = st.pending + self.noise(2.0);
                    metrics.push(("balance_sync_latency", vec![], lat.max(0.0)));
                    metrics.push(("pending_transactions", vec![], pending.max(0.0).round()));
                }
                "api-gateway" => {
                    let rps = 400.0 * traffic + self.noise(10.0);
                    let err_ratio = if effects.error_burst {
                        0.08 + self.noise(0.005)
                    } else {
                        (0.002 + self.noise(0.0003)).max(0.0)
                    };
                    let mut lat = 0.12 * (1.0 + self.noise(0.05));
                    if effects.error_burst {
                        lat *= 1.6;
                    }
                    let dt = STEP_MS as f64 / 1000.0;
                    self.state[i].http_ok_total += rps * (1.0 - err_ratio) * dt;
                    self.state[i].http_err_total += rps * err_ratio * dt;
                    metrics.push(("api_latency_p99", vec![], lat));
                    metrics.push(("api_error_rate", vec![], err_ratio));
                    metrics.push((
                        "http_requests_total",
                        vec![("status", "200")],
                        self.state[i].http_ok_total.round(),
                    ));
                    metrics.push((
                        "http_requests_total",
                        vec![("status", "500")],
                        self.state[i].http_err_total.round(),
                    ));
                }
                _ => {}
            }
            let instance = format!("10.42.{}.{}:9100", i / 3, 10 + i);
            for (name, extra, value) in metrics {
                let mut labels: Vec<(&str, &str)> = vec![
                    ("__name__", name),
                    ("cluster", "prod-eu-1"),
                    ("namespace", pod.namespace),
                    ("service", pod.service),
                    ("deployment", pod.service),
                    ("pod", &pod.name),
                    ("instance", &instance),
                    ("job", "kubernetes-pods"),
                ];
                labels.extend(extra);
                out.push(TimeSeries::new(&labels, &[(ts, value)]));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_every_pod_and_the_seed_metrics() {
        let mut ex = Exchange::new(1, Scenario::standard());
        let series = ex.step(1_700_000_000_000, 0);
        let names: std::collections::BTreeSet<String> = series
            .iter()
            .map(|s| {
                s.labels
                    .iter()
                    .find(|(n, _)| n == "__name__")
                    .unwrap()
                    .1
                    .clone()
            })
            .collect();
        for n in [
            "order_latency_p99",
            "order_qps",
            "order_error_rate",
            "matching_latency_p99",
            "orderbook_depth",
            "margin_utilization",
            "risk_limit_breaches",
            "balance_sync_latency",
            "pending_transactions",
            "api_latency_p99",
            "api_error_rate",
            "cpu_usage",
            "memory_usage",
            "pod_restarts",
            "http_requests_total",
            "orders_total",
        ] {
            assert!(names.contains(n), "{n}");
        }
        assert!(
            series
                .iter()
                .all(|s| s.labels.windows(2).all(|w| w[0].0 < w[1].0))
        );
        assert!(series.iter().all(|s| s.samples[0].1.is_finite()));
    }
}
