//! RCA rules (`config/rca_rules.yaml`, the seed's format with optional additions): parsing,
//! validation with errors that name the rule, and evaluation against an incident's facts.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::Hypothesis;
use super::events::ClusterEvent;
use super::facts::SeriesFact;
use crate::config::catalog::glob_match;

/// The embedded default rules.
pub const DEFAULT_RULES: &str = include_str!("../../config/rca_rules.yaml");

#[derive(Debug, Error)]
pub enum RulesError {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: invalid rules:\n{}", .problems.join("\n"))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
    #[error("cannot read {path}: {reason}")]
    Read {
        path: String,
        reason: std::io::Error,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub condition: Condition,
    /// Short id of the cause (what playbooks and the knowledge base key on); defaults to the id.
    #[serde(default)]
    pub cause: String,
    pub root_cause: String,
    #[serde(default)]
    pub remediation: Vec<Remediation>,
    #[serde(default = "default_confidence")]
    pub confidence: f64,
}

fn default_confidence() -> f64 {
    0.8
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub primary_metric: String,
    #[serde(default)]
    pub primary_threshold: Option<f64>,
    #[serde(default)]
    pub direction: Direction,
    /// Only anomalies of this kind (anomaly, predicted_breach, level_shift, peer_outlier,
    /// service_anomaly).
    #[serde(default)]
    pub primary_kind: Option<String>,
    #[serde(default)]
    pub correlated_metrics: Vec<Correlated>,
    /// Kubernetes event reasons, any of which must be seen.
    #[serde(default)]
    pub events: Vec<String>,
    /// Log error patterns (see `analyze::logs::PATTERNS`), any of which must be counted.
    #[serde(default)]
    pub logs: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Above,
    Below,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Correlated {
    pub metric: String,
    pub threshold: f64,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub scope: Scope,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The same pod as the primary series.
    Pod,
    /// Anywhere in the incident's group.
    #[default]
    Service,
}

pub use crate::model::rca::Remediation;

impl RulesFile {
    /// Parses and validates; every problem is reported at once, each naming its rule.
    pub fn parse(text: &str, origin: &str) -> Result<Self, RulesError> {
        let mut file: RulesFile = serde_saphyr::from_str(text).map_err(|e| RulesError::Parse {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        let mut problems = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for (i, r) in file.rules.iter_mut().enumerate() {
            let name = if r.id.is_empty() {
                format!("rules[{i}]")
            } else {
                format!("rule {:?}", r.id)
            };
            let mut bad = |msg: &str| problems.push(format!("  {name}: {msg}"));
            if r.id.is_empty() {
                bad("id must not be empty");
            } else if !ids.insert(r.id.clone()) {
                bad("id appears twice");
            }
            if r.condition.primary_metric.is_empty() {
                bad("condition.primary_metric must not be empty");
            }
            if r.root_cause.is_empty() {
                bad("root_cause must not be empty");
            }
            if !(r.confidence > 0.0 && r.confidence <= 1.0) {
                bad("confidence must be in (0, 1]");
            }
            if let Some(k) = &r.condition.primary_kind
                && ![
                    "anomaly",
                    "predicted_breach",
                    "level_shift",
                    "peer_outlier",
                    "service_anomaly",
                ]
                .contains(&k.as_str())
            {
                bad(
                    "condition.primary_kind must be anomaly, predicted_breach, level_shift, peer_outlier or service_anomaly",
                );
            }
            if r.condition
                .primary_threshold
                .is_some_and(|t| !t.is_finite())
            {
                bad("condition.primary_threshold must be a finite number");
            }
            for (j, c) in r.condition.correlated_metrics.iter().enumerate() {
                if c.metric.is_empty() || !c.threshold.is_finite() {
                    bad(&format!(
                        "condition.correlated_metrics[{j}] needs a metric and a finite threshold"
                    ));
                }
            }
            for p in &r.condition.logs {
                if !super::logs::PATTERNS.iter().any(|(name, _)| name == p) {
                    bad(&format!(
                        "condition.logs: unknown pattern {p:?} (known: {})",
                        super::logs::PATTERNS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            if r.cause.is_empty() {
                r.cause = r.id.clone();
            }
        }
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(RulesError::Invalid {
                origin: origin.into(),
                problems,
            })
        }
    }

    /// The rules file named in config, or the embedded default.
    pub fn load(path: &str) -> Result<Self, RulesError> {
        if path.is_empty() {
            return Self::parse(DEFAULT_RULES, "embedded config/rca_rules.yaml");
        }
        let text = std::fs::read_to_string(path).map_err(|reason| RulesError::Read {
            path: path.into(),
            reason,
        })?;
        Self::parse(&text, path)
    }
}

/// Everything a rule can look at.
pub struct Inputs<'a> {
    pub facts: &'a [SeriesFact],
    pub events: &'a [ClusterEvent],
    pub log_counts: &'a std::collections::BTreeMap<String, u64>,
}

fn passes(value: f64, threshold: f64, direction: Direction) -> bool {
    match direction {
        Direction::Above => value > threshold,
        Direction::Below => value < threshold,
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

impl Rule {
    /// The hypothesis this rule supports, if its primary metric is among the incident's
    /// anomalies. Every condition met keeps the rule's confidence; each one missing halves it,
    /// so partly matching rules still rank, below the complete ones.
    pub fn evaluate(&self, input: &Inputs) -> Option<Hypothesis> {
        let c = &self.condition;
        let below = c.direction == Direction::Below;
        let primary = input
            .facts
            .iter()
            .filter(|f| f.anomalous && glob_match(&c.primary_metric, &f.metric))
            .filter(|f| {
                c.primary_kind
                    .as_deref()
                    .is_none_or(|k| f.kinds.contains(&k))
            })
            .filter(|f| {
                c.primary_threshold
                    .is_none_or(|t| passes(f.level(below), t, c.direction))
            })
            .min_by_key(|f| f.onset_ms.unwrap_or(i64::MAX))?;
        let mut evidence = vec![format!(
            "{} on {} at {}{}",
            primary.metric,
            place(primary),
            fmt(primary.level(below)),
            match (primary.before, c.primary_threshold) {
                (Some(b), Some(t)) => format!(" (before {}; threshold {})", fmt(b), fmt(t)),
                (Some(b), None) => format!(" (before {})", fmt(b)),
                (None, Some(t)) => format!(" (threshold {})", fmt(t)),
                (None, None) => String::new(),
            }
        )];
        let (mut met, mut total) = (0usize, 0usize);
        let mut lead_bonus = 0.0;
        for cm in &c.correlated_metrics {
            total += 1;
            let hit = input
                .facts
                .iter()
                .filter(|f| glob_match(&cm.metric, &f.metric))
                .filter(|f| {
                    cm.scope == Scope::Service
                        || f.label("pod").is_some() && f.label("pod") == primary.label("pod")
                })
                .filter(|f| {
                    passes(
                        f.level(cm.direction == Direction::Below),
                        cm.threshold,
                        cm.direction,
                    )
                })
                .min_by_key(|f| f.onset_ms.unwrap_or(i64::MAX));
            match hit {
                Some(f) => {
                    met += 1;
                    let lead = match (f.onset_ms, primary.onset_ms) {
                        (Some(a), Some(b)) if a <= b => {
                            lead_bonus = 0.05;
                            format!(", {} s before {}", (b - a) / 1000, primary.metric)
                        }
                        (Some(a), Some(b)) => {
                            format!(", {} s after {}", (a - b) / 1000, primary.metric)
                        }
                        _ => String::new(),
                    };
                    evidence.push(format!(
                        "{} on {} at {} (threshold {}){lead}",
                        f.metric,
                        place(f),
                        fmt(f.level(cm.direction == Direction::Below)),
                        fmt(cm.threshold)
                    ));
                }
                None => evidence.push(format!(
                    "not seen: {} beyond {} ({})",
                    cm.metric,
                    fmt(cm.threshold),
                    if cm.scope == Scope::Pod {
                        "same pod"
                    } else {
                        "same service"
                    }
                )),
            }
        }
        if !c.events.is_empty() {
            total += 1;
            let seen: Vec<&ClusterEvent> = input
                .events
                .iter()
                .filter(|e| c.events.iter().any(|r| r == &e.reason))
                .collect();
            if let Some(e) = seen.first() {
                met += 1;
                let when = match primary.onset_ms {
                    Some(o) if e.ts_ms <= o => {
                        format!("{} s before the onset", (o - e.ts_ms) / 1000)
                    }
                    Some(o) => format!("{} s after the onset", (e.ts_ms - o) / 1000),
                    None => String::new(),
                };
                evidence.push(format!(
                    "event {} on {} {when}: {}",
                    e.reason, e.object, e.message
                ));
            } else {
                evidence.push(format!("no event {} seen", c.events.join("/")));
            }
        }
        if !c.logs.is_empty() {
            total += 1;
            let counted: Vec<String> = c
                .logs
                .iter()
                .filter_map(|p| {
                    input
                        .log_counts
                        .get(p)
                        .filter(|n| **n > 0)
                        .map(|n| format!("{p} ×{n}"))
                })
                .collect();
            if counted.is_empty() {
                evidence.push(format!("no {} in the logs", c.logs.join("/")));
            } else {
                met += 1;
                evidence.push(format!("logs: {}", counted.join(", ")));
            }
        }
        let missing = total - met;
        let confidence = ((self.confidence + if missing == 0 { lead_bonus } else { 0.0 })
            * 0.5f64.powi(missing as i32))
        .min(0.99);
        Some(Hypothesis {
            cause: self.cause.clone(),
            root_cause: self.root_cause.clone(),
            confidence,
            source: format!("rule:{}", self.id),
            evidence,
            remediation: self.remediation.clone(),
        })
    }
}

/// Where a series is, for evidence lines: its pod, else its service, else its labels.
pub fn place(f: &SeriesFact) -> String {
    f.label("pod")
        .or(f.label("service"))
        .map(String::from)
        .unwrap_or_else(|| format!("{:?}", f.labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(metric: &str, pod: &str, anomalous: bool, onset: Option<i64>, peak: f64) -> SeriesFact {
        SeriesFact {
            metric: metric.into(),
            labels: [("__name__", metric), ("pod", pod)]
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .into(),
            anomalous,
            kinds: if anomalous {
                vec!["anomaly"]
            } else {
                Vec::new()
            },
            cumulative: false,
            onset_ms: onset,
            peak,
            trough: 0.0,
            increase: 0.0,
            before: Some(0.1),
        }
    }

    #[test]
    fn the_shipped_rules_load() {
        let f = RulesFile::load("").unwrap();
        assert!(f.rules.len() >= 6);
        assert!(f.rules.iter().all(|r| !r.cause.is_empty()));
    }

    #[test]
    fn invalid_rules_are_named() {
        let text = "rules:\n  - id: a\n    condition: {primary_metric: ''}\n    root_cause: x\n    confidence: 2\n  - id: a\n    condition: {primary_metric: m, logs: [gremlins]}\n    root_cause: ''\n";
        let e = RulesFile::parse(text, "r.yaml").unwrap_err().to_string();
        for needle in [
            "rule \"a\": condition.primary_metric",
            "rule \"a\": confidence",
            "rule \"a\": id appears twice",
            "rule \"a\": root_cause",
            "unknown pattern \"gremlins\"",
        ] {
            assert!(e.contains(needle), "{needle} in {e}");
        }
        let e = RulesFile::parse("rules:\n  - id: a\n    condition: {primary_metric: m}\n    root_cause: x\n    colour: red\n", "r.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour") && e.contains("line"), "{e}");
    }

    #[test]
    fn cpu_before_latency_matches_fully_and_says_so() {
        let rules = RulesFile::load("").unwrap();
        let rule = rules
            .rules
            .iter()
            .find(|r| r.id == "high_latency_cpu")
            .unwrap();
        let facts = [
            fact("order_latency_p99", "p1", true, Some(184_000), 0.3),
            fact("cpu_usage", "p1", false, Some(180_000), 0.96),
            fact("cpu_usage", "p2", false, None, 0.99),
        ];
        let counts = Default::default();
        let input = Inputs {
            facts: &facts,
            events: &[],
            log_counts: &counts,
        };
        let h = rule.evaluate(&input).unwrap();
        assert_eq!(h.cause, "cpu_saturation");
        assert!((h.confidence - 0.9).abs() < 1e-9, "{h:?}");
        assert!(
            h.evidence[1].contains("4 s before order_latency_p99"),
            "{h:?}"
        );
        // CPU high only on another pod: the pod-scoped condition is missing, confidence halves.
        let facts = [
            fact("order_latency_p99", "p1", true, Some(184_000), 0.3),
            fact("cpu_usage", "p2", false, Some(180_000), 0.96),
        ];
        let input = Inputs {
            facts: &facts,
            events: &[],
            log_counts: &counts,
        };
        let h = rule.evaluate(&input).unwrap();
        assert!((h.confidence - 0.425).abs() < 1e-9, "{h:?}");
        // Not anomalous: the rule does not apply at all.
        let facts = [fact("order_latency_p99", "p1", false, None, 0.3)];
        let input = Inputs {
            facts: &facts,
            events: &[],
            log_counts: &counts,
        };
        assert!(rule.evaluate(&input).is_none());
    }
}
