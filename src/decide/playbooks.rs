//! Playbooks (`config/playbooks/*.yaml`, the seed's format): trigger conditions over metric
//! values and RCA causes (`memory_usage > 0.9`, `OOMKilled`, `bad_deploy`), steps with templated
//! targets, parameters and timeouts, and an optional `risk_override`. Parsed and validated at
//! start (errors name the file and step), and matched against an analyzed incident.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::catalog::glob_match;
use crate::incident::Incident;
use crate::model::action::Action;

/// The shipped playbooks, used when no directory is configured.
pub const DEFAULT_PLAYBOOKS: [(&str, &str); 5] = [
    (
        "pod-restart.yaml",
        include_str!("../../config/playbooks/pod-restart.yaml"),
    ),
    (
        "hpa-scale-up.yaml",
        include_str!("../../config/playbooks/hpa-scale-up.yaml"),
    ),
    (
        "service-rollback.yaml",
        include_str!("../../config/playbooks/service-rollback.yaml"),
    ),
    (
        "circuit-breaker.yaml",
        include_str!("../../config/playbooks/circuit-breaker.yaml"),
    ),
    (
        "database-failover.yaml",
        include_str!("../../config/playbooks/database-failover.yaml"),
    ),
];

/// Placeholders a target may use.
pub const PLACEHOLDERS: [&str; 5] = [
    "target_pod",
    "deployment",
    "service",
    "namespace",
    "incident_id",
];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub trigger_conditions: Vec<String>,
    #[serde(default)]
    pub risk_override: Option<f64>,
    /// Planned and explained, never executed.
    #[serde(default)]
    pub diagnose_only: bool,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    /// An unknown word is refused when the file is read, with its line.
    pub action: Action,
    pub target: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Safe to send twice: an HTTP step is retried after an ambiguous failure (a timeout, a
    /// dropped connection, a 5xx) only when this is set. Off by default.
    #[serde(default)]
    pub idempotent: bool,
}

fn default_timeout() -> u64 {
    120
}

/// A trigger condition, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// `metric > value` (also `>=`, `<`, `<=`): the peak (or trough) of a series of the incident.
    Metric { metric: String, op: Op, value: f64 },
    /// A bare word: an RCA cause id or a Kubernetes event reason.
    Word(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

pub fn parse_trigger(text: &str) -> Result<Trigger, String> {
    let t = text.trim();
    for (sym, op) in [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)] {
        if let Some((metric, value)) = t.split_once(sym) {
            let metric = metric.trim();
            let value: f64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{t:?}: {:?} is not a number", value.trim()))?;
            if metric.is_empty() || !value.is_finite() {
                return Err(format!("{t:?}: needs a metric and a finite number"));
            }
            return Ok(Trigger::Metric {
                metric: metric.into(),
                op,
                value,
            });
        }
    }
    if t.is_empty() || t.contains(char::is_whitespace) {
        return Err(format!("{t:?}: neither `metric > value` nor a single word"));
    }
    Ok(Trigger::Word(t.into()))
}

#[derive(Debug, thiserror::Error)]
#[error("playbooks: invalid:\n{}", .0.join("\n"))]
pub struct PlaybookError(pub Vec<String>);

/// Parses and validates playbook files (name, text); every problem is reported at once.
pub fn parse_all(files: &[(String, String)]) -> Result<Vec<Playbook>, PlaybookError> {
    let mut problems = Vec::new();
    let mut out: Vec<Playbook> = Vec::new();
    for (name, text) in files {
        let p: Playbook = match crate::config::env::from_str(text, |k| std::env::var(k).ok()) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("  {name}: {e}"));
                continue;
            }
        };
        let mut bad = |msg: String| problems.push(format!("  {name} ({}): {msg}", p.id));
        if p.id.is_empty() {
            bad("id must not be empty".into());
        }
        if out.iter().any(|o| o.id == p.id) {
            bad("id appears in another file too".into());
        }
        if p.trigger_conditions.is_empty() {
            bad("trigger_conditions must not be empty".into());
        }
        for t in &p.trigger_conditions {
            if let Err(e) = parse_trigger(t) {
                bad(format!("trigger {e}"));
            }
        }
        if p.risk_override.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            bad("risk_override must be in [0, 1]".into());
        }
        if p.steps.is_empty() {
            bad("steps must not be empty".into());
        }
        for (i, s) in p.steps.iter().enumerate() {
            if s.timeout_seconds == 0 || s.timeout_seconds > 3600 {
                bad(format!(
                    "steps[{i}] ({}): timeout_seconds must be 1..=3600",
                    s.name
                ));
            }
            for placeholder in placeholders(&s.target) {
                if !PLACEHOLDERS.contains(&placeholder.as_str()) {
                    bad(format!(
                        "steps[{i}] ({}): unknown placeholder {{{{ {placeholder} }}}} (known: {})",
                        s.name,
                        PLACEHOLDERS.join(", ")
                    ));
                }
            }
        }
        out.push(p);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(PlaybookError(problems))
    }
}

/// The shipped playbooks, or every `*.yaml` of `dir`.
pub fn load(dir: Option<&Path>) -> Result<Vec<Playbook>, PlaybookError> {
    let files: Vec<(String, String)> = match dir {
        None => DEFAULT_PLAYBOOKS
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
        Some(d) => {
            let mut files = Vec::new();
            let entries = std::fs::read_dir(d)
                .map_err(|e| PlaybookError(vec![format!("  {}: {e}", d.display())]))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| PlaybookError(vec![format!("  {}: {e}", path.display())]))?;
                    files.push((path.display().to_string(), text));
                }
            }
            files.sort();
            files
        }
    };
    parse_all(&files)
}

fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            out.push(rest[start + 2..].trim().to_string());
            break;
        };
        out.push(rest[start + 2..start + end].trim().to_string());
        rest = &rest[start + end + 2..];
    }
    out
}

/// Fills a target template from the incident: `target_pod` is the pod of its first anomaly.
pub fn render(template: &str, incident: &Incident) -> Result<String, String> {
    let first_pod = incident
        .anomalies
        .iter()
        .find_map(|m| m.labels.get("pod").cloned());
    let label = |k: &str| {
        incident.group.get(k).cloned().or_else(|| {
            incident
                .anomalies
                .iter()
                .find_map(|m| m.labels.get(k).cloned())
        })
    };
    let mut out = template.to_string();
    for p in placeholders(template) {
        let value = match p.as_str() {
            "target_pod" => first_pod.clone(),
            "deployment" => label("deployment").or_else(|| label("service")),
            "incident_id" => Some(incident.id.clone()),
            other => label(other),
        }
        .ok_or_else(|| format!("the incident has no {p}"))?;
        out = out
            .replace(&format!("{{{{ {p} }}}}"), &value)
            .replace(&format!("{{{{{p}}}}}"), &value);
    }
    Ok(out)
}

/// Which triggers of `playbook` the incident meets (any one selects the playbook).
pub fn matched_triggers(playbook: &Playbook, incident: &Incident) -> Vec<String> {
    let rca = incident.rca.as_ref();
    let causes: Vec<&str> = rca
        .map(|r| {
            r.hypotheses
                .iter()
                .take(1)
                .map(|h| h.cause.as_str())
                .collect()
        })
        .unwrap_or_default();
    let reasons: Vec<&str> = rca
        .map(|r| r.events.iter().map(|e| e.reason.as_str()).collect())
        .unwrap_or_default();
    playbook
        .trigger_conditions
        .iter()
        .filter(|t| match parse_trigger(t) {
            Ok(Trigger::Word(w)) => causes.contains(&w.as_str()) || reasons.contains(&w.as_str()),
            Ok(Trigger::Metric { metric, op, value }) => rca.is_some_and(|r| {
                r.moved.iter().any(|f| {
                    glob_match(&metric, &f.metric)
                        && match op {
                            Op::Gt => f.peak > value,
                            Op::Ge => f.peak >= value,
                            Op::Lt => f.trough < value,
                            Op::Le => f.trough <= value,
                        }
                })
            }),
            Err(_) => false,
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_playbooks_load() {
        let p = load(None).unwrap();
        let ids: Vec<&str> = p.iter().map(|p| p.id.as_str()).collect();
        for id in [
            "pod-restart",
            "hpa-scale-up",
            "service-rollback",
            "circuit-breaker",
            "database-failover",
        ] {
            assert!(ids.contains(&id), "{id}");
        }
        assert!(
            p.iter()
                .find(|p| p.id == "database-failover")
                .unwrap()
                .diagnose_only
        );
    }

    #[test]
    fn playbooks_match_the_analyzed_incident_and_render_their_targets() {
        let incident =
            super::super::test_support::analyzed_incident("memory_leak", "risk", "infrastructure");
        let all = load(None).unwrap();
        let by_id = |id: &str| all.iter().find(|p| p.id == id).unwrap();
        let restart = matched_triggers(by_id("pod-restart"), &incident);
        assert_eq!(restart, ["memory_usage > 0.9", "memory_leak"]);
        assert!(matched_triggers(by_id("hpa-scale-up"), &incident).is_empty());
        assert!(matched_triggers(by_id("service-rollback"), &incident).is_empty());
        let step = &by_id("pod-restart").steps[0];
        assert_eq!(render(&step.target, &incident).unwrap(), "risk-service-0");
        assert_eq!(
            render("{{deployment}}/{{ namespace }}", &incident).unwrap(),
            "risk-service/risk"
        );
        assert!(render("{{ node }}", &incident).is_err());
    }

    #[test]
    fn triggers_parse() {
        assert_eq!(
            parse_trigger("memory_usage > 0.9").unwrap(),
            Trigger::Metric {
                metric: "memory_usage".into(),
                op: Op::Gt,
                value: 0.9
            }
        );
        assert_eq!(
            parse_trigger(" OOMKilled ").unwrap(),
            Trigger::Word("OOMKilled".into())
        );
        assert!(parse_trigger("cpu > lots").is_err());
        assert!(parse_trigger("two words").is_err());
    }

    #[test]
    fn problems_name_the_file_and_step() {
        let bad = "id: x\ntrigger_conditions: ['cpu > x']\nrisk_override: 2\nsteps:\n  - name: s\n    action: pod_restart\n    target: '{{ planet }}'\n    timeout_seconds: 0\n";
        let e = parse_all(&[("x.yaml".into(), bad.into())])
            .unwrap_err()
            .to_string();
        for needle in [
            "x.yaml (x): trigger",
            "risk_override",
            "timeout_seconds",
            "unknown placeholder {{ planet }}",
        ] {
            assert!(e.contains(needle), "{needle} in {e}");
        }
        let nuke = "id: n\ntrigger_conditions: [x]\nsteps:\n  - name: s\n    action: nuke\n    target: t\n";
        let e = parse_all(&[("n.yaml".into(), nuke.into())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown action \"nuke\""), "{e}");
        assert!(e.contains("n.yaml") && e.contains("line 5"), "{e}");
        let e = parse_all(&[("y.yaml".into(), "id: y\nsteps: []\ncolour: red\n".into())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("y.yaml") && e.contains("colour"), "{e}");
    }
}
