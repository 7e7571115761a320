//! A harsher exchange than [`super::Exchange`], for measuring false alarms: one-second scrapes,
//! right-skewed (lognormal) latencies with 8–12 % noise, integer gauges, slow
//! Ornstein–Uhlenbeck wander, slow growth, and decoys that must not page — short bursts within
//! normal variance (+2σ for 2–3 s) and whole services running at 1.5× noise for minutes — around
//! five injected incidents with known targets and times.
//!
//! Seeded and reproducible. It only produces samples; [`super::trial`] feeds them through the
//! agent's ingest path and counts what fired where.

use crate::ingest::encode::TimeSeries;

/// Default scrape interval of this simulation (the trial also runs it at 15 s).
pub const STEP_MS: i64 = 1000;
const MIN: i64 = 60_000;
/// Pod names end in these, by pod index within the service.
pub const POD_SUFFIXES: [&str; 3] = ["x7k2p", "m4n8q", "r9t3w"];

/// How a series' noise behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// `level · exp(σ·z)`: latencies.
    Lognormal,
    /// `level · (1 + σ·z)`: utilizations, throughputs.
    Normal,
    /// Rounded `level + √level·z`: counts (queues, connections, book depth).
    Integer,
    /// A monotone total whose per-second increase is `level · (1 + σ·z)`.
    Counter,
}

/// One injected incident: which pods, which series show it, when.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NoisyIncident {
    pub name: &'static str,
    pub service: &'static str,
    /// One pod (by index within the service), or every pod of it.
    pub pod: Option<usize>,
    /// Offsets from the run's start.
    pub start_ms: i64,
    pub end_ms: i64,
    /// The metrics it moves.
    pub metrics: &'static [&'static str],
}

/// A decoy: something that looks unusual but is within what the series normally does.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NoisyPeriod {
    pub service: &'static str,
    pub start_ms: i64,
    pub end_ms: i64,
}

struct Series {
    labels: Vec<(String, String)>,
    service: &'static str,
    pod: usize,
    metric: &'static str,
    shape: Shape,
    base: f64,
    sigma: f64,
    /// Relative growth per hour.
    growth: f64,
    /// The Ornstein–Uhlenbeck state, in log space.
    wander: f64,
    total: f64,
    /// A within-variance burst (+2σ) lasts until this offset.
    burst_until: i64,
}

/// Service, pod count, and each pod's series: (metric, shape, level, σ, growth per hour).
type Spec = (&'static str, Shape, f64, f64, f64);
const SERVICES: [(&str, &str, usize, &[Spec]); 5] = [
    (
        "trading",
        "order-service",
        3,
        &[
            ("order_latency_p99", Shape::Lognormal, 0.045, 0.10, 0.0),
            ("order_qps", Shape::Normal, 180.0, 0.05, 0.04),
            ("orders_total", Shape::Counter, 180.0, 0.05, 0.04),
            ("cpu_usage", Shape::Normal, 0.38, 0.04, 0.02),
            ("memory_usage", Shape::Normal, 0.52, 0.01, 0.03),
            ("go_goroutines", Shape::Integer, 240.0, 0.0, 0.0),
        ],
    ),
    (
        "trading",
        "matching-engine",
        2,
        &[
            ("matching_latency_p99", Shape::Lognormal, 0.0021, 0.12, 0.0),
            ("orderbook_depth", Shape::Integer, 5200.0, 0.0, 0.0),
            ("cpu_usage", Shape::Normal, 0.45, 0.04, 0.0),
            ("memory_usage", Shape::Normal, 0.61, 0.01, 0.02),
        ],
    ),
    (
        "risk",
        "risk-service",
        2,
        &[
            ("margin_utilization", Shape::Normal, 0.34, 0.03, 0.0),
            (
                "risk_check_duration_seconds",
                Shape::Lognormal,
                0.008,
                0.09,
                0.0,
            ),
            ("cpu_usage", Shape::Normal, 0.30, 0.05, 0.0),
        ],
    ),
    (
        "wallet",
        "wallet-service",
        2,
        &[
            ("balance_sync_latency", Shape::Lognormal, 1.4, 0.08, 0.0),
            ("pending_transactions", Shape::Integer, 18.0, 0.0, 0.0),
            ("process_open_fds", Shape::Integer, 130.0, 0.0, 0.01),
            ("cpu_usage", Shape::Normal, 0.25, 0.05, 0.0),
        ],
    ),
    (
        "api",
        "api-gateway",
        3,
        &[
            ("api_latency_p99", Shape::Lognormal, 0.12, 0.11, 0.0),
            ("api_error_rate", Shape::Lognormal, 0.002, 0.10, 0.0),
            ("http_requests_total", Shape::Counter, 400.0, 0.05, 0.05),
            ("active_connections", Shape::Integer, 900.0, 0.0, 0.02),
            ("cpu_usage", Shape::Normal, 0.41, 0.04, 0.02),
        ],
    ),
];

/// Mean reversion of the wander (per second) and its stationary spread in log space.
const WANDER_RATE: f64 = 1.0 / 600.0;
const WANDER_SD: f64 = 0.04;

pub struct NoisyExchange {
    series: Vec<Series>,
    pub incidents: Vec<NoisyIncident>,
    pub noisy_periods: Vec<NoisyPeriod>,
    pub length_ms: i64,
    rng: fastrand::Rng,
    /// Bursts begin at this rate per series per second.
    burst_rate: f64,
    pub bursts: u64,
    /// Scrape interval (ms).
    pub step_ms: i64,
}

impl NoisyExchange {
    /// Scraped every second.
    pub fn new(seed: u64) -> Self {
        Self::with_step(seed, STEP_MS)
    }

    /// Scraped every `step_ms` (the process runs in continuous time; only what is sampled
    /// changes, so a 2–3 s burst shows in at most one 15 s scrape).
    pub fn with_step(seed: u64, step_ms: i64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut series = Vec::new();
        for (namespace, service, pods, specs) in SERVICES {
            for (pod, suffix) in POD_SUFFIXES.iter().enumerate().take(pods) {
                let pod_name = format!("{service}-5c8d7f9b4-{}", suffix);
                let instance = format!("10.43.{}.{}:9100", series.len() % 7, 20 + pod);
                for &(metric, shape, base, sigma, growth) in specs {
                    let mut labels = vec![
                        ("__name__".to_string(), metric.to_string()),
                        ("cluster".into(), "prod-ap-1".into()),
                        ("namespace".into(), namespace.into()),
                        ("service".into(), service.into()),
                        ("pod".into(), pod_name.clone()),
                        ("instance".into(), instance.clone()),
                        ("job".into(), "kubernetes-pods".into()),
                    ];
                    labels.sort();
                    // Pods of one service differ a little in level and noise.
                    let jitter = 1.0 + 0.06 * (rng.f64() - 0.5);
                    let sigma = if shape == Shape::Lognormal {
                        // 8–12 % right-skewed noise.
                        (sigma + 0.02 * (rng.f64() - 0.5)).clamp(0.08, 0.12)
                    } else {
                        sigma
                    };
                    series.push(Series {
                        labels,
                        service,
                        pod,
                        metric,
                        shape,
                        base: base * jitter,
                        sigma,
                        growth,
                        wander: normal(&mut rng) * WANDER_SD,
                        total: 0.0,
                        burst_until: i64::MIN,
                    });
                }
            }
        }
        let incidents = vec![
            NoisyIncident {
                name: "order latency spike (CPU saturation) on one pod",
                service: "order-service",
                pod: Some(1),
                start_ms: 40 * MIN,
                end_ms: 45 * MIN,
                metrics: &["order_latency_p99", "cpu_usage"],
            },
            NoisyIncident {
                name: "API 5xx burst after a deploy",
                service: "api-gateway",
                pod: None,
                start_ms: 60 * MIN,
                end_ms: 64 * MIN,
                metrics: &["api_error_rate", "api_latency_p99"],
            },
            NoisyIncident {
                name: "matching engine CPU saturation",
                service: "matching-engine",
                pod: Some(0),
                start_ms: 80 * MIN,
                end_ms: 85 * MIN,
                metrics: &["cpu_usage", "matching_latency_p99"],
            },
            NoisyIncident {
                name: "wallet sync stall",
                service: "wallet-service",
                pod: None,
                start_ms: 100 * MIN,
                end_ms: 106 * MIN,
                metrics: &["pending_transactions", "balance_sync_latency"],
            },
            NoisyIncident {
                name: "order flow drop",
                service: "order-service",
                pod: None,
                start_ms: 120 * MIN,
                end_ms: 124 * MIN,
                metrics: &["order_qps", "orders_total"],
            },
        ];
        // Whole services at 1.5× noise, between the incidents; which service is up to the seed.
        let noisy_periods = [(24, 32), (67, 75), (88, 96), (109, 117), (132, 142)]
            .into_iter()
            .map(|(from, to)| NoisyPeriod {
                service: SERVICES[rng.usize(..SERVICES.len())].1,
                start_ms: from * MIN,
                end_ms: to * MIN,
            })
            .collect();
        Self {
            series,
            incidents,
            noisy_periods,
            length_ms: 150 * MIN,
            rng,
            burst_rate: 1.0 / 900.0,
            bursts: 0,
            step_ms: step_ms.max(1),
        }
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The incident active on this series' pod and metric at `offset`, if any.
    fn incident_effect(&self, s: &Series, offset: i64) -> Option<(&'static str, f64)> {
        self.incidents.iter().find_map(|inc| {
            let on = inc.service == s.service
                && inc.pod.is_none_or(|p| p == s.pod)
                && inc.metrics.contains(&s.metric)
                && (inc.start_ms..inc.end_ms).contains(&offset);
            on.then(|| (inc.name, (offset - inc.start_ms) as f64 / 1000.0))
        })
    }

    /// One scrape of every series at `ts` (ms), `offset_ms` after the run began.
    pub fn step(&mut self, ts: i64, offset_ms: i64) -> Vec<TimeSeries> {
        let hours = offset_ms as f64 / 3_600_000.0;
        let dt = self.step_ms as f64 / 1000.0;
        let mut out = Vec::with_capacity(self.series.len());
        for i in 0..self.series.len() {
            let effect = self.incident_effect(&self.series[i], offset_ms);
            let noisy = self.noisy_periods.iter().any(|p| {
                p.service == self.series[i].service && (p.start_ms..p.end_ms).contains(&offset_ms)
            });
            let begin_burst = self.rng.f64() < self.burst_rate * dt;
            let burst_len = 2000 + 1000 * self.rng.i64(0..2);
            let z = normal(&mut self.rng);
            let dw = normal(&mut self.rng);
            let s = &mut self.series[i];
            s.wander +=
                -WANDER_RATE * s.wander * dt + WANDER_SD * (2.0 * WANDER_RATE * dt).sqrt() * dw;
            if begin_burst && s.burst_until < offset_ms && effect.is_none() {
                s.burst_until = offset_ms + burst_len;
                self.bursts += 1;
            }
            let bump = if offset_ms < s.burst_until { 2.0 } else { 0.0 };
            let z = z * if noisy { 1.5 } else { 1.0 } + bump;
            let mut level = s.base * (1.0 + s.growth * hours) * s.wander.exp();
            if let Some((name, since)) = effect {
                level = incident_level(name, s.metric, level, since);
            }
            let value = match s.shape {
                Shape::Lognormal => level * (s.sigma * z).exp(),
                Shape::Normal => (level * (1.0 + s.sigma * z)).max(0.0),
                Shape::Integer => (level + level.sqrt() * z).round().max(0.0),
                Shape::Counter => {
                    s.total += (level * (1.0 + s.sigma * z)).max(0.0) * dt;
                    s.total.round()
                }
            };
            let value = if s.metric.ends_with("_usage") || s.metric == "margin_utilization" {
                value.min(1.0)
            } else {
                value
            };
            out.push(TimeSeries {
                labels: s.labels.clone(),
                samples: vec![(ts, value)],
            });
        }
        out
    }
}

/// What an incident does to a series' level, `since` seconds into it.
fn incident_level(incident: &str, metric: &str, level: f64, since: f64) -> f64 {
    match (incident.split_whitespace().next().unwrap_or(""), metric) {
        ("order", "order_latency_p99") => level * 5.0,
        ("order", "cpu_usage") | ("matching", "cpu_usage") => 0.95,
        ("order", "order_qps") | ("order", "orders_total") => level * 0.3,
        ("API", "api_error_rate") => 0.06,
        ("API", "api_latency_p99") => level * 1.8,
        ("matching", "matching_latency_p99") => level * 3.0,
        ("wallet", "pending_transactions") => level + 2.0 * since,
        ("wallet", "balance_sync_latency") => level * 8.0,
        _ => level,
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u = rng.f64().max(f64::MIN_POSITIVE);
    let v = rng.f64();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(seed: u64, metric: &str, steps: i64) -> Vec<f64> {
        let mut ex = NoisyExchange::new(seed);
        (0..steps)
            .map(|k| {
                ex.step(k * STEP_MS, k * STEP_MS)
                    .into_iter()
                    .find(|s| s.labels.iter().any(|(n, v)| n == "__name__" && v == metric))
                    .map(|s| s.samples[0].1)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn seeded_runs_repeat_and_seeds_differ() {
        assert_eq!(
            values(7, "order_latency_p99", 50),
            values(7, "order_latency_p99", 50)
        );
        assert_ne!(
            values(7, "order_latency_p99", 50),
            values(8, "order_latency_p99", 50)
        );
    }

    #[test]
    fn latency_is_right_skewed_with_about_ten_percent_noise() {
        let v = values(3, "api_latency_p99", 1200);
        let logs: Vec<f64> = v.iter().map(|x| x.ln()).collect();
        let mean = logs.iter().sum::<f64>() / logs.len() as f64;
        let sd = (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / logs.len() as f64).sqrt();
        assert!((0.07..0.16).contains(&sd), "log-sd {sd}");
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let arithmetic = v.iter().sum::<f64>() / v.len() as f64;
        assert!(arithmetic > median, "mean {arithmetic} ≤ median {median}");
    }

    #[test]
    fn gauges_of_counts_are_integers_and_counters_only_grow() {
        let depth = values(5, "orderbook_depth", 300);
        assert!(depth.iter().all(|x| x.fract() == 0.0));
        let total = values(5, "orders_total", 300);
        assert!(total.windows(2).all(|w| w[1] >= w[0]));
    }

    #[test]
    fn incidents_move_their_series_and_nothing_else() {
        let mut ex = NoisyExchange::new(1);
        let inc = ex.incidents[0].clone();
        let before = ex.step(0, inc.start_ms - STEP_MS);
        let during = ex.step(STEP_MS, inc.start_ms + 30_000);
        let pick = |b: &[TimeSeries], metric: &str, pod: &str| {
            b.iter()
                .find(|s| {
                    s.labels.iter().any(|(n, v)| n == "__name__" && v == metric)
                        && s.labels.iter().any(|(n, v)| n == "pod" && v.ends_with(pod))
                })
                .map(|s| s.samples[0].1)
                .unwrap()
        };
        let (b, d) = (
            pick(&before, "order_latency_p99", "m4n8q"),
            pick(&during, "order_latency_p99", "m4n8q"),
        );
        assert!(d > 3.0 * b, "{b} → {d}");
        let (b, d) = (
            pick(&before, "order_latency_p99", "x7k2p"),
            pick(&during, "order_latency_p99", "x7k2p"),
        );
        assert!(d < 2.0 * b, "another pod moved: {b} → {d}");
    }

    #[test]
    fn decoys_stay_clear_of_incidents() {
        let ex = NoisyExchange::new(2);
        for p in &ex.noisy_periods {
            for inc in &ex.incidents {
                assert!(p.end_ms <= inc.start_ms || p.start_ms >= inc.end_ms + 2 * MIN);
            }
        }
    }
}
