//! The demo's scorecard: which injected incidents were detected and how fast, their root
//! causes, false alarms, plans and notification latency, and its rendering as text. Scores what
//! the agent reported through its API and webhooks; it never looks inside the agent.

use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::{Exchange, STEP_MS, Scenario};
use crate::detect::book::Anomaly;

#[derive(Debug, Clone, Serialize)]
pub struct IncidentOutcome {
    pub kind: super::IncidentKind,
    pub target: String,
    pub root_cause: String,
    pub detected: bool,
    pub delay_seconds: Option<f64>,
    pub first_metric: Option<String>,
    /// The agent's incidents its symptoms were filed under (one, when grouping works).
    pub agent_incidents: Vec<String>,
    /// Its symptoms (anomalies related to it).
    pub symptoms: usize,
    /// The top RCA hypothesis (cause, confidence) of the agent incident that detected it first.
    pub found_cause: Option<(String, f64)>,
}

impl IncidentOutcome {
    pub fn cause_correct(&self) -> bool {
        self.found_cause
            .as_ref()
            .is_some_and(|(c, _)| *c == self.root_cause)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub simulated_seconds: i64,
    pub series: usize,
    pub scrapes: u64,
    pub samples_sent: u64,
    pub write_errors: u64,
    pub wall_seconds: f64,
    pub incidents: Vec<IncidentOutcome>,
    pub detected: usize,
    pub false_alarms: Vec<String>,
    pub notifications: usize,
    pub incident_notifications: usize,
    pub notify_latency_p50_ms: f64,
    pub notify_latency_max_ms: f64,
    pub plans: Vec<super::oncall::PlanOutcome>,
    pub dry_run: bool,
    /// Approval requests received by webhook, and approvals given through their links.
    pub approval_requests: usize,
    pub approvals_by_link: usize,
    /// Changes the simulated cluster's API received (deletes, patches, replaces).
    pub cluster_changes: Vec<String>,
    /// Resolved incidents in the knowledge base with a plan outcome recorded.
    pub knowledge_with_outcome: usize,
    pub data_dir: String,
    pub audit_records: u64,
    pub audit_intact: bool,
}

impl DemoSummary {
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("\n== sre-agent demo summary ==\n");
        out.push_str(&format!(
            "simulated {} of exchange traffic: {} series, {} scrapes, {} samples over real HTTP remote write in {:.1} s ({} failed writes)\n",
            humantime::format_duration(Duration::from_secs(self.simulated_seconds as u64)),
            self.series,
            self.scrapes,
            self.samples_sent,
            self.wall_seconds,
            self.write_errors
        ));
        out.push_str(&format!("incidents injected: {}\n", self.incidents.len()));
        for i in &self.incidents {
            match (i.detected, i.delay_seconds, &i.first_metric) {
                (true, Some(d), Some(m)) => out.push_str(&format!(
                    "  [detected] {:?} on {} (root cause {}): first by {m}, {d:.0} s after it began; RCA: {}; {} anomalies in {} ({})\n",
                    i.kind,
                    i.target,
                    i.root_cause,
                    i.found_cause
                        .as_ref()
                        .map_or("none".to_string(), |(c, p)| format!("{c} ({p:.2})")),
                    i.symptoms,
                    match i.agent_incidents.len() {
                        1 => "one agent incident".to_string(),
                        n => format!("{n} agent incidents"),
                    },
                    i.agent_incidents.join(", ")
                )),
                _ => out.push_str(&format!("  [MISSED]   {:?} on {} (root cause {})\n", i.kind, i.target, i.root_cause)),
            }
        }
        let delays: Vec<f64> = self
            .incidents
            .iter()
            .filter_map(|i| i.delay_seconds)
            .collect();
        let mean = if delays.is_empty() {
            0.0
        } else {
            delays.iter().sum::<f64>() / delays.len() as f64
        };
        out.push_str(&format!(
            "detected {}/{}, mean detection delay {mean:.0} s (simulated time)\n",
            self.detected,
            self.incidents.len()
        ));
        out.push_str(&format!(
            "root cause correct {}/{} (top RCA hypothesis of the agent incident that detected it; rules + correlation + cluster events, no LLM)\n",
            self.incidents.iter().filter(|i| i.cause_correct()).count(),
            self.incidents.len()
        ));
        for i in self.incidents.iter().filter(|i| !i.cause_correct()) {
            out.push_str(&format!(
                "  wrong cause for {:?}: expected {}, found {}\n",
                i.kind,
                i.root_cause,
                i.found_cause
                    .as_ref()
                    .map_or("nothing".to_string(), |(c, p)| format!("{c} ({p:.2})"))
            ));
        }
        out.push_str(&format!("false alarms: {}\n", self.false_alarms.len()));
        for f in &self.false_alarms {
            out.push_str(&format!("  {f}\n"));
        }
        out.push_str(&format!(
            "notifications: {} anomaly and {} incident webhooks; latency from detection to webhook received: p50 {:.1} ms, max {:.1} ms\n",
            self.notifications, self.incident_notifications, self.notify_latency_p50_ms, self.notify_latency_max_ms
        ));
        out.push_str(&format!(
            "plans: {} ({}); {} approval requests by webhook, {} approvals through their callback links\n",
            self.plans.len(),
            if self.dry_run {
                "DRY RUN: planned and audited, nothing changed"
            } else {
                "executed against the simulated cluster's Kubernetes API"
            },
            self.approval_requests,
            self.approvals_by_link
        ));
        for p in &self.plans {
            out.push_str(&p.render());
        }
        out.push_str(&format!(
            "cluster changes: {}\n",
            if self.cluster_changes.is_empty() {
                "none".to_string()
            } else {
                self.cluster_changes.join(", ")
            }
        ));
        out.push_str(&format!(
            "knowledge base: {} resolved incidents recorded with their plan outcome; audit log {}/audit.jsonl: {} records, chain {}\n",
            self.knowledge_with_outcome,
            self.data_dir,
            self.audit_records,
            if self.audit_intact { "intact" } else { "BROKEN" }
        ));
        out
    }
}

#[derive(Default)]
pub(super) struct Received {
    pub(super) latencies_ms: Vec<f64>,
    pub(super) count: usize,
    pub(super) incident_count: usize,
    pub(super) approval_requests: usize,
    pub(super) approvals: usize,
}

/// Milliseconds since the epoch of an RFC 3339 time from the agent's API.
pub fn ms_of(rfc: &str) -> Option<i64> {
    humantime::parse_rfc3339_weak(rfc)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as i64)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn score(
    scenario: &Scenario,
    exchange: &Exchange,
    anomalies: &[Anomaly],
    base_ms: i64,
    scrapes: u64,
    samples: u64,
    errors: u64,
    series: usize,
    wall_seconds: f64,
    received: &Mutex<Received>,
    causes: &std::collections::HashMap<String, Option<(String, f64)>>,
) -> DemoSummary {
    // Anomalies on an incident's pods that began between its start and 10 minutes after its end
    // are its symptoms (a level shift is reported once it has lasted, but began with the
    // incident); anything else is a false alarm.
    const GRACE_MS: i64 = 10 * 60_000;
    let related = |a: &Anomaly, inc: &super::Incident| -> bool {
        let Some(began) = ms_of(&a.started_at) else {
            return false;
        };
        let offset = began - base_ms;
        let pod = a.labels.get("pod").map(String::as_str).unwrap_or("");
        (inc.start_ms..=inc.end_ms + GRACE_MS).contains(&offset)
            && exchange
                .pods
                .iter()
                .any(|p| p.name == pod && inc.affects(p))
    };
    let mut incidents = Vec::new();
    for inc in &scenario.incidents {
        let first = anomalies
            .iter()
            .filter(|a| related(a, inc) && inc.metrics.contains(&a.metric.as_str()))
            .filter_map(|a| ms_of(&a.fired_at).map(|t| (t, a)))
            .min_by_key(|(t, _)| *t);
        incidents.push(IncidentOutcome {
            kind: inc.kind,
            target: match inc.pod {
                Some(i) => format!("{} pod {i}", inc.service),
                None => format!("{} (all pods)", inc.service),
            },
            root_cause: inc.root_cause.to_string(),
            detected: first.is_some(),
            delay_seconds: first
                .map(|(t, _)| ((t - base_ms - inc.start_ms) as f64 / 1000.0).max(0.0)),
            first_metric: first.map(|(_, a)| a.metric.clone()),
            agent_incidents: anomalies
                .iter()
                .filter(|a| related(a, inc))
                .filter_map(|a| a.incident_id.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            symptoms: anomalies.iter().filter(|a| related(a, inc)).count(),
            // The cause the agent gave the incident that detected it first.
            found_cause: first
                .and_then(|(_, a)| a.incident_id.as_ref())
                .and_then(|id| causes.get(id).cloned().flatten()),
        });
    }
    let false_alarms: Vec<String> = anomalies
        .iter()
        .filter(|a| !scenario.incidents.iter().any(|inc| related(a, inc)))
        .map(|a| {
            format!(
                "{} {} on {} at +{}s: {}",
                a.id,
                a.metric,
                a.labels.get("pod").cloned().unwrap_or_default(),
                ms_of(&a.fired_at).map_or(0, |t| (t - base_ms) / 1000),
                a.description
            )
        })
        .collect();
    let r = received.lock().unwrap_or_else(|p| p.into_inner());
    let mut lat = r.latencies_ms.clone();
    lat.sort_by(f64::total_cmp);
    DemoSummary {
        simulated_seconds: scrapes as i64 * STEP_MS / 1000,
        series,
        scrapes,
        samples_sent: samples,
        write_errors: errors,
        wall_seconds,
        detected: incidents.iter().filter(|i| i.detected).count(),
        incidents,
        false_alarms,
        notifications: r.count,
        incident_notifications: r.incident_count,
        notify_latency_p50_ms: lat.get(lat.len() / 2).copied().unwrap_or(0.0),
        notify_latency_max_ms: lat.last().copied().unwrap_or(0.0),
        plans: Vec::new(),
        dry_run: false,
        approval_requests: 0,
        approvals_by_link: 0,
        cluster_changes: Vec::new(),
        knowledge_with_outcome: 0,
        data_dir: String::new(),
        audit_records: 0,
        audit_intact: false,
    }
}
