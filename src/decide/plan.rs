//! Action plans: for an analyzed incident, the first playbook its evidence triggers, its steps
//! rendered for the incident's objects, the risk of its first action, and the approvals that
//! risk requires. The approval state machine lives here; an executor only ever receives an
//! [`ApprovedPlan`], which nothing but a complete approval can produce.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::playbooks::{Playbook, matched_triggers, render};
use super::risk::{RiskAssessment, RiskInput, RiskLevel, assess};
use crate::config::remediation::RiskConfig;
use crate::incident::Incident;
use crate::model::action::Action;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlannedStep {
    pub name: String,
    pub action: Action,
    pub target: String,
    /// The incident's namespace: where the target lives.
    pub namespace: String,
    /// As the playbook gives them. Serialized (API, webhooks, audit log) with credentials
    /// masked; a plan rebuilt from the audit log takes them from its playbook again.
    #[serde(serialize_with = "serialize_redacted")]
    pub parameters: std::collections::BTreeMap<String, serde_json::Value>,
    pub timeout_seconds: u64,
    /// `<plan id>.<step index>`: sent with every side effect of the step, so a receiver can
    /// drop a repeat.
    #[serde(default)]
    pub idempotency_key: String,
    /// From the playbook: whether the step may be retried after an ambiguous failure.
    #[serde(default)]
    pub idempotent: bool,
}

/// Parameter names whose values are credentials.
const SECRET_NAMES: [&str; 7] = [
    "password",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "credential",
];

/// Step parameters as they may be shown: values of credential-named keys masked, and
/// credentials inside strings (URL user info, `token=…`, bearer tokens) masked.
pub fn redacted(
    parameters: &std::collections::BTreeMap<String, serde_json::Value>,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    parameters
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            let shown = if SECRET_NAMES.iter().any(|s| lower.contains(s)) {
                serde_json::Value::String("***".into())
            } else if let Some(text) = v.as_str() {
                serde_json::Value::String(crate::analyze::llm::redact(text))
            } else {
                v.clone()
            };
            (k.clone(), shown)
        })
        .collect()
}

fn serialize_redacted<S: serde::Serializer>(
    parameters: &std::collections::BTreeMap<String, serde_json::Value>,
    s: S,
) -> Result<S::Ok, S::Error> {
    redacted(parameters).serialize(s)
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PlanState {
    /// Waiting for approvers.
    PendingApproval,
    /// Approved (or needing none): may be handed to the executor.
    Approved,
    Rejected,
    /// Not approved in time; never executed.
    Expired,
    /// CRITICAL risk or a diagnose-only playbook: explained, never executed.
    DiagnoseOnly,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Approval {
    pub approver: String,
    pub at_ms: i64,
    /// `api` or `callback`.
    #[serde(default)]
    pub via: String,
}

/// How far execution got; written to the audit log with every change, so it survives a crash.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    #[default]
    NotStarted,
    Running,
    /// Every step done and the incident recovered.
    Succeeded,
    /// Every step done (or dry run) but the incident did not recover within the window.
    Unverified,
    /// A step failed; completed steps were rolled back.
    RolledBack,
    /// A step failed and a rollback failed too: needs a human.
    Failed,
    /// A safety rail refused a step before it ran.
    Refused,
    /// Dry run: every step planned and audited, nothing changed.
    DryRun,
    /// The agent stopped while the plan ran; it is never resumed automatically.
    Interrupted,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "not_started",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Unverified => "unverified",
            Self::RolledBack => "rolled_back",
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::DryRun => "dry_run",
            Self::Interrupted => "interrupted",
        }
    }

    pub fn finished(self) -> bool {
        !matches!(self, Self::NotStarted | Self::Running)
    }
}

/// One step as it ran.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRun {
    pub name: String,
    pub action: Action,
    pub target: String,
    /// done, failed, dry_run, refused, rolled_back, rollback_failed, skipped.
    pub status: String,
    /// The object's state before the action (what a rollback restores).
    #[serde(default)]
    pub before: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_ms: i64,
    pub finished_ms: i64,
}

impl StepRun {
    /// A record of `step` (named `name`) starting now, with `status`.
    pub fn of(step: &PlannedStep, name: String, status: &str, now_ms: i64) -> Self {
        Self {
            name,
            action: step.action,
            target: format!("{}/{}", step.namespace, step.target),
            status: status.into(),
            before: serde_json::Value::Null,
            error: None,
            started_ms: now_ms,
            finished_ms: now_ms,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Execution {
    pub status: ExecutionStatus,
    pub dry_run: bool,
    pub steps: Vec<StepRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
    /// Whether the incident recovered after the actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub id: String,
    pub incident_id: String,
    pub playbook_id: String,
    pub triggered_by: Vec<String>,
    pub steps: Vec<PlannedStep>,
    pub risk: RiskAssessment,
    /// Distinct approvers needed; `None` when it may never run.
    pub approvals_required: Option<usize>,
    pub approvals: Vec<Approval>,
    pub rejection: Option<(String, String)>,
    pub state: PlanState,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// The anomalies firing when the plan was made: verification waits for them to resolve
    /// (new ones an action causes, such as a restart counter, do not count against it).
    #[serde(default)]
    pub watched_anomalies: Vec<String>,
    #[serde(default)]
    pub execution: Execution,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("plan {0} is diagnose-only and cannot be approved")]
    DiagnoseOnly(String),
    #[error("plan {0} has expired; it will not be executed")]
    Expired(String),
    #[error("plan {0} is already {1}")]
    Closed(String, &'static str),
    #[error("{0} has already approved plan {1}; a second approver is required")]
    SameApprover(String, String),
    #[error("an approver or rejector name is required")]
    Anonymous,
}

/// A plan whose approvals are complete: the only thing an executor accepts.
#[derive(Debug, Clone)]
pub struct ApprovedPlan(Plan);

impl ApprovedPlan {
    pub fn plan(&self) -> &Plan {
        &self.0
    }
}

/// What the planner needs to know besides the incident.
pub struct PlanContext<'a> {
    pub id: String,
    pub now_ms: i64,
    pub approval_ttl: Duration,
    pub risk: &'a RiskConfig,
}

/// The plan for `incident`: the first playbook it triggers (in the given order) whose targets
/// render; `None` when no playbook applies.
pub fn plan_for(incident: &Incident, playbooks: &[Playbook], ctx: &PlanContext) -> Option<Plan> {
    let (playbook, triggered) = playbooks.iter().find_map(|p| {
        let t = matched_triggers(p, incident);
        (!t.is_empty()).then_some((p, t))
    })?;
    let namespace = incident.group.get("namespace").cloned().unwrap_or_default();
    let steps: Vec<PlannedStep> = playbook
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Some(PlannedStep {
                name: s.name.clone(),
                action: s.action,
                target: render(&s.target, incident).ok()?,
                namespace: namespace.clone(),
                parameters: s.parameters.clone(),
                timeout_seconds: s.timeout_seconds,
                idempotency_key: format!("{}.{i}", ctx.id),
                idempotent: s.idempotent,
            })
        })
        .collect::<Option<_>>()?;
    let first = steps.first()?;
    let categories: Vec<String> = incident.categories.iter().cloned().collect();
    let target_labels: Vec<(String, String)> = incident
        .anomalies
        .first()
        .map(|m| {
            m.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let pods: std::collections::BTreeSet<&String> = incident
        .anomalies
        .iter()
        .filter_map(|m| m.labels.get("pod"))
        .collect();
    let opened_ms = incident
        .anomalies
        .iter()
        .map(|m| m.started_ms)
        .min()
        .unwrap_or(ctx.now_ms);
    let input = RiskInput {
        severity: incident.severity,
        categories: &categories,
        namespace: &namespace,
        target_labels: &target_labels,
        firing: incident.anomalies_firing,
        age_minutes: (ctx.now_ms - opened_ms).max(0) as f64 / 60_000.0,
        breach_within_hour: incident
            .anomalies
            .iter()
            .any(|m| m.kind == "predicted_breach"),
        action: first.action,
        blast_radius: if first.action == Action::PodRestart {
            1.0 / pods.len().max(3) as f64
        } else {
            1.0
        },
    };
    let mut risk = assess(&input, &ctx.risk.weights, &ctx.risk.thresholds);
    if let Some(o) = playbook.risk_override {
        let fund = super::risk::touches_funds(&input);
        risk.score = o;
        risk.level = if fund {
            RiskLevel::Critical
        } else {
            RiskLevel::from_score_with(o, &ctx.risk.thresholds)
        };
        risk.reasons.push(format!(
            "playbook {} overrides the score with {o}",
            playbook.id
        ));
    }
    let level = if playbook.diagnose_only {
        RiskLevel::Critical
    } else {
        risk.level
    };
    let approvals_required = level.approvals_required();
    let state = match approvals_required {
        None => PlanState::DiagnoseOnly,
        Some(0) => PlanState::Approved,
        Some(_) => PlanState::PendingApproval,
    };
    Some(Plan {
        id: ctx.id.clone(),
        incident_id: incident.id.clone(),
        playbook_id: playbook.id.clone(),
        triggered_by: triggered,
        steps,
        risk,
        approvals_required,
        approvals: Vec::new(),
        rejection: None,
        state,
        created_ms: ctx.now_ms,
        expires_ms: ctx.now_ms + ctx.approval_ttl.as_millis() as i64,
        watched_anomalies: incident
            .anomalies
            .iter()
            .filter(|m| m.firing)
            .map(|m| m.anomaly_id.clone())
            .collect(),
        execution: Execution::default(),
    })
}

impl Plan {
    fn check_open(&mut self, now_ms: i64) -> Result<(), PlanError> {
        match self.state {
            PlanState::DiagnoseOnly => return Err(PlanError::DiagnoseOnly(self.id.clone())),
            PlanState::Rejected => return Err(PlanError::Closed(self.id.clone(), "rejected")),
            PlanState::Expired => return Err(PlanError::Expired(self.id.clone())),
            PlanState::Approved => return Err(PlanError::Closed(self.id.clone(), "approved")),
            PlanState::PendingApproval => {}
        }
        if now_ms >= self.expires_ms {
            self.state = PlanState::Expired;
            return Err(PlanError::Expired(self.id.clone()));
        }
        Ok(())
    }

    /// Records an approval; MANUAL plans need two different approvers.
    pub fn approve(
        &mut self,
        approver: &str,
        via: &str,
        now_ms: i64,
    ) -> Result<PlanState, PlanError> {
        if approver.trim().is_empty() {
            return Err(PlanError::Anonymous);
        }
        self.check_open(now_ms)?;
        if self.approvals.iter().any(|a| a.approver == approver) {
            return Err(PlanError::SameApprover(approver.into(), self.id.clone()));
        }
        self.approvals.push(Approval {
            approver: approver.into(),
            at_ms: now_ms,
            via: via.into(),
        });
        if self
            .approvals_required
            .is_some_and(|n| self.approvals.len() >= n)
        {
            self.state = PlanState::Approved;
        }
        Ok(self.state)
    }

    pub fn reject(&mut self, rejector: &str, reason: &str, now_ms: i64) -> Result<(), PlanError> {
        if rejector.trim().is_empty() {
            return Err(PlanError::Anonymous);
        }
        self.check_open(now_ms)?;
        self.rejection = Some((rejector.into(), reason.into()));
        self.state = PlanState::Rejected;
        Ok(())
    }

    /// The plan as the executor may take it: only when approved, not expired and never
    /// started before (a plan runs at most once).
    pub fn approved(&self, now_ms: i64) -> Option<ApprovedPlan> {
        let in_time = self.approvals_required == Some(0) || now_ms < self.expires_ms;
        let fresh = self.execution.status == ExecutionStatus::NotStarted;
        (self.state == PlanState::Approved && in_time && fresh).then(|| ApprovedPlan(self.clone()))
    }

    /// Whether nothing more will happen to it (no approval pending, no execution to come).
    pub fn settled(&self) -> bool {
        match self.state {
            PlanState::PendingApproval => false,
            PlanState::Approved => self.execution.status.finished(),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests;
