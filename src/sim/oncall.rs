//! The demo's remediation side: the simulated cluster's Kubernetes API (every service a
//! deployment with ReplicaSets and an HPA, every simulated pod a pod), and the on-call
//! engineers who approve plans by clicking the callback links of approval webhooks.

use serde::Serialize;
use serde_json::json;

use super::Exchange;
use super::cluster::FakeCluster;
use crate::decide::plan::Plan;

/// Who clicks the approve links, in order (MANUAL plans need two different people).
pub const APPROVERS: [&str; 2] = ["alice@exchange", "bob@exchange"];

/// The cluster the simulated exchange runs in. The api-gateway was rolled out once (revision
/// 2), so a rollback has somewhere to go.
pub fn cluster_of(exchange: &Exchange) -> FakeCluster {
    let cluster = FakeCluster::new();
    let mut seen = std::collections::BTreeSet::new();
    for pod in &exchange.pods {
        if seen.insert(pod.service) {
            let replicas = exchange
                .pods
                .iter()
                .filter(|p| p.service == pod.service)
                .count() as i32;
            let revision = if pod.service == "api-gateway" { 2 } else { 1 };
            cluster.add_deployment(pod.namespace, pod.service, replicas, revision, json!({}));
        }
        cluster.add_pod(pod.namespace, pod.service, &pod.name, json!({}));
    }
    cluster
}

/// Clicks every approve link of an approval request, one engineer per link.
pub async fn approve_by_links(client: &reqwest::Client, request: &serde_json::Value) -> usize {
    let mut approved = 0;
    let links = request["callbacks"]["approve"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (link, who) in links.iter().zip(APPROVERS) {
        let Some(url) = link.as_str() else { continue };
        match client.post(url).json(&json!({"by": who})).send().await {
            Ok(r) if r.status().is_success() => approved += 1,
            Ok(r) => tracing::warn!(status = %r.status(), "demo approval refused"),
            Err(e) => tracing::warn!(error = %e, "demo approval failed"),
        }
    }
    approved
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanOutcome {
    pub id: String,
    pub incident_id: String,
    pub playbook: String,
    pub risk_level: String,
    pub risk_score: f64,
    /// pending_approval, approved, rejected, expired, diagnose_only.
    pub state: String,
    /// How execution ended (not_started for plans that never ran).
    pub outcome: String,
    pub approvers: Vec<String>,
    pub steps: Vec<String>,
}

impl PlanOutcome {
    pub fn of(plan: &Plan) -> Self {
        let name = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
        Self {
            id: plan.id.clone(),
            incident_id: plan.incident_id.clone(),
            playbook: plan.playbook_id.clone(),
            risk_level: name(json!(plan.risk.level)),
            risk_score: plan.risk.score,
            state: name(json!(plan.state)),
            outcome: plan.execution.status.as_str().to_string(),
            approvers: plan
                .approvals
                .iter()
                .map(|a| format!("{} ({})", a.approver, a.via))
                .collect(),
            steps: plan
                .execution
                .steps
                .iter()
                .map(|s| format!("{} {} on {}", s.status, s.action, s.target))
                .collect(),
        }
    }

    pub fn render(&self) -> String {
        let mut line = format!(
            "  {} {} {:<17} risk {} {:.2} → {}",
            self.id, self.incident_id, self.playbook, self.risk_level, self.risk_score, self.state
        );
        if self.state == "approved" {
            line.push_str(&format!(", {}", self.outcome));
        }
        if !self.approvers.is_empty() {
            line.push_str(&format!("; approved by {}", self.approvers.join(", ")));
        }
        if !self.steps.is_empty() {
            line.push_str(&format!("; {}", self.steps.join(", ")));
        }
        line.push('\n');
        line
    }
}
