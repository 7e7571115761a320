//! The page a callback link opens in a browser: the incident, its RCA, the plan's steps and
//! risk, who approved so far and until when, and one button. Opening the page changes
//! nothing (chat unfurlers and mail scanners fetch links); only the form's POST decides, and
//! it goes through the same `Remediator::callback` as the JSON API, audit log included.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::{label_text, page, problem, wire_name};
use crate::Pipeline;
use crate::act::remediator::RemediationError;
use crate::act::token::TokenError;
use crate::decide::plan::{Plan, PlanError, PlanState, redacted};
use crate::incident::Incident;
use crate::model::clock::rfc3339_ms;

/// What the approval page's form sends.
#[derive(Debug, Deserialize, Default)]
pub struct DecisionForm {
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub reason: String,
}

/// `GET` on a callback link from a browser.
pub async fn show(p: &Pipeline, token: &str) -> Response {
    p.remediator.expire().await;
    let (plan_id, action) = match p.remediator.preview(token) {
        Ok(found) => found,
        Err(e) => return refused(&e),
    };
    let Some(plan) = p.remediator.get(&plan_id) else {
        return problem(
            StatusCode::NOT_FOUND,
            "Plan not found",
            &format!("Plan {plan_id} is no longer known to this sre-agent."),
        );
    };
    let incident = p.incidents.get(&plan.incident_id);
    let verb = if action == "approve" {
        "Approve"
    } else {
        "Reject"
    };
    let body = html! {
        h1 { (verb) " plan " code { (plan.id) } }
        @if p.remediator.dry_run() {
            p.dry { "Dry-run: approved steps are simulated and audited; nothing touches the cluster." }
        }
        (decision_form(&plan, action))
        (plan_section(&plan))
        @match &incident {
            Some(i) => (incident_section(i)),
            None => section { h2 { "Incident" } p.muted { "Incident " code { (plan.incident_id) } " is no longer held." } },
        }
    };
    page(StatusCode::OK, &format!("{verb} plan {}", plan.id), body)
}

/// The form's `POST`: decides through the remediator and shows what happened.
pub async fn decide(p: &std::sync::Arc<Pipeline>, token: &str, form: DecisionForm) -> Response {
    let by = form.by.trim();
    if by.is_empty() {
        // Checked before the token is used, so the link still works after going back.
        return problem(
            StatusCode::BAD_REQUEST,
            "Name required",
            "Enter your name: every approval and rejection is recorded with who made it. Go back and try again.",
        );
    }
    let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
    match p.remediator.callback(token, Some(by), reason).await {
        Ok(plan) => decided(&plan, by, p.remediator.dry_run()),
        Err(RemediationError::Token(e)) => refused(&e),
        Err(RemediationError::NotFound(id)) => problem(
            StatusCode::NOT_FOUND,
            "Plan not found",
            &format!("Plan {id} is no longer known to this sre-agent."),
        ),
        Err(RemediationError::Plan(e)) => plan_conflict(&e),
        Err(e @ RemediationError::Audit(_)) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not recorded",
            &format!("{e}. Try again once the audit log is writable."),
        ),
    }
}

fn refused(e: &TokenError) -> Response {
    let (title, message) = match e {
        TokenError::Replayed => (
            "Link already used",
            "This link has already been used; a link decides once. The plan's current state is in the plans console.",
        ),
        TokenError::Expired => (
            "Link expired",
            "This link has expired, so it can no longer decide the plan. A new approval request, or the API, can.",
        ),
        TokenError::Forged | TokenError::Malformed => (
            "Link not valid",
            "This link was not signed by this sre-agent: it is mistyped, cut short, forged, or signed with another key.",
        ),
    };
    problem(StatusCode::FORBIDDEN, title, message)
}

fn plan_conflict(e: &PlanError) -> Response {
    let status = match e {
        PlanError::Anonymous => StatusCode::BAD_REQUEST,
        _ => StatusCode::CONFLICT,
    };
    problem(status, "Plan not changed", &e.to_string())
}

fn decided(plan: &Plan, by: &str, dry_run: bool) -> Response {
    let state = wire_name(&plan.state);
    let headline = match plan.state {
        PlanState::Rejected => format!("Rejected by {by}."),
        PlanState::PendingApproval => format!(
            "Approval by {by} recorded: {} of {} approvals; the plan waits for another approver.",
            plan.approvals.len(),
            plan.approvals_required.unwrap_or(0)
        ),
        _ => format!("Approved by {by}."),
    };
    let body = html! {
        h1 { "Plan " code { (plan.id) } }
        p.ok #result data-state=(state) { (headline) }
        @if dry_run && plan.state == PlanState::Approved {
            p.dry { "Dry-run: the steps are simulated and audited; nothing touches the cluster." }
        }
        (plan_section(plan))
    };
    page(StatusCode::OK, &format!("Plan {}", plan.id), body)
}

fn decision_form(plan: &Plan, action: &str) -> Markup {
    if plan.state != PlanState::PendingApproval {
        return html! {
            p.problem #closed { "This plan is already " (wire_name(&plan.state)) "; this link can no longer change it." }
        };
    }
    let approve = action == "approve";
    html! {
        section {
            form method="post" {
                label for="by" { "Your name (recorded in the audit log)" }
                input #by type="text" name="by" required maxlength="200" autocomplete="name";
                @if !approve {
                    label for="reason" { "Reason" }
                    textarea #reason name="reason" rows="2" maxlength="2000" {}
                }
                @if approve {
                    button.approve #decide type="submit" { "Approve" }
                } @else {
                    button.reject #decide type="submit" { "Reject" }
                }
            }
        }
    }
}

pub(super) fn plan_section(plan: &Plan) -> Markup {
    let r = &plan.risk;
    html! {
        section #plan {
            h2 { "Plan" }
            table {
                tr { th { "state" } td #state { (wire_name(&plan.state)) } }
                tr { th { "playbook" } td { code { (plan.playbook_id) } } }
                tr { th { "triggered by" } td { (plan.triggered_by.join(", ")) } }
                tr { th { "expires" } td #expires { (rfc3339_ms(plan.expires_ms)) } }
                tr {
                    th { "approvals" }
                    td #approvals {
                        @match plan.approvals_required {
                            Some(n) => { (plan.approvals.len()) " of " (n) },
                            None => "may not run (diagnose only)",
                        }
                        @for a in &plan.approvals {
                            br; (a.approver) " at " (rfc3339_ms(a.at_ms)) " via " (a.via)
                        }
                        @if let Some((who, why)) = &plan.rejection {
                            br; "rejected by " (who) ": " (why)
                        }
                    }
                }
            }
            h2 { "Steps" }
            table #steps {
                tr { th { "#" } th { "step" } th { "action" } th { "target" } th { "parameters" } }
                @for (i, s) in plan.steps.iter().enumerate() {
                    tr {
                        td { (i + 1) }
                        td { (s.name) }
                        td { code { (s.action.as_str()) } }
                        td { code { (s.namespace) "/" (s.target) } }
                        td.labels { (serde_json::to_string(&redacted(&s.parameters)).unwrap_or_default()) }
                    }
                }
            }
            h2 { "Risk " (format!("{:.2}", r.score)) " (" (wire_name(&r.level)) ")" }
            table #risk {
                tr { th { "part" } th { "value" } th { "weight" } }
                tr { td { "severity" } td { (format!("{:.2}", r.severity)) } td { (r.weights.severity) } }
                tr { td { "urgency" } td { (format!("{:.2}", r.urgency)) } td { (r.weights.urgency) } }
                tr { td { "impact" } td { (format!("{:.2}", r.impact)) } td { (r.weights.impact) } }
                tr { td { "complexity" } td { (format!("{:.2}", r.complexity)) } td { (r.weights.complexity) } }
            }
            @if !r.reasons.is_empty() {
                ul { @for why in &r.reasons { li { (why) } } }
            }
        }
    }
}

fn incident_section(i: &Incident) -> Markup {
    html! {
        section #incident {
            h2 { "Incident: " (i.title) }
            p {
                code { (i.id) } " · " (i.severity.as_str()) " · " (wire_name(&i.state))
                " · opened " (i.opened_at)
            }
            @if !i.group.is_empty() { p.labels { (label_text(&i.group)) } }
            table #anomalies {
                tr { th { "metric" } th { "labels" } th { "kind" } th { "since" } th { "firing" } }
                @for m in &i.anomalies {
                    tr {
                        td { code { (m.metric) } }
                        td.labels { (label_text(&m.labels)) }
                        td { (m.kind) }
                        td { (m.started_at) }
                        td { @if m.firing { "yes" } @else { "no" } }
                    }
                }
            }
            @if let Some(rca) = &i.rca {
                h2 { "Root-cause hypotheses" }
                ol #hypotheses {
                    @for h in &rca.hypotheses {
                        li {
                            strong { (h.root_cause) } " "
                            span.muted { (format!("{:.0} %", h.confidence * 100.0)) " · " (h.source) }
                            @if !h.evidence.is_empty() {
                                ul { @for e in &h.evidence { li { (e) } } }
                            }
                        }
                    }
                }
                @if let Some(summary) = &rca.llm_summary { p { (summary) } }
            } @else {
                p.muted { "No root-cause analysis has run yet." }
            }
        }
    }
}
