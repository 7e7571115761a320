//! Plans, approvals, callback links and the audit log over HTTP: the seed's approval API
//! (`/api/v1/approvals…`), `GET /api/v1/plans`, the signed callback links of approval
//! requests (`/api/v1/callbacks/{token}`) and `GET /api/v1/audit`. Approve and reject need the
//! API bearer token; a callback link is its own credential.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::api_allowed;
use super::error::ApiError;
use super::ui;
use crate::Pipeline;
use crate::act::remediator::RemediationError;
use crate::decide::plan::PlanError;

type Shared = State<Arc<Pipeline>>;

impl From<RemediationError> for ApiError {
    fn from(e: RemediationError) -> Self {
        match e {
            RemediationError::NotFound(_) => ApiError::NotFound(e.to_string()),
            RemediationError::Plan(PlanError::Anonymous) => ApiError::BadRequest(e.to_string()),
            RemediationError::Plan(_) => ApiError::Conflict(e.to_string()),
            RemediationError::Token(_) => ApiError::Forbidden(e.to_string()),
            RemediationError::Audit(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

#[derive(Deserialize)]
pub struct PlanQuery {
    state: Option<String>,
    incident: Option<String>,
}

/// Plans, newest first; `state` (pending_approval, approved, rejected, expired,
/// diagnose_only) and `incident` filter.
pub async fn plans(State(p): Shared, Query(q): Query<PlanQuery>) -> Json<serde_json::Value> {
    p.remediator.expire().await;
    let list: Vec<_> = p
        .remediator
        .list()
        .into_iter()
        .filter(|plan| {
            q.state.as_deref().is_none_or(|s| {
                serde_json::to_value(plan.state).is_ok_and(|v| v == s)
                    || plan.execution.status.as_str() == s
            })
        })
        .filter(|plan| q.incident.as_deref().is_none_or(|i| plan.incident_id == i))
        .collect();
    Json(json!({"count": list.len(), "dry_run": p.remediator.dry_run(), "plans": list}))
}

pub async fn plan(
    State(p): Shared,
    Path(id): Path<String>,
) -> Result<Json<crate::decide::plan::Plan>, ApiError> {
    p.remediator.expire().await;
    p.remediator
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no plan with id {id}")))
}

/// Plans waiting for approval.
pub async fn approvals(State(p): Shared) -> Json<serde_json::Value> {
    let list = p.remediator.pending().await;
    Json(json!({"count": list.len(), "approvals": list}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    approver: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    rejector: String,
    #[serde(default)]
    reason: String,
}

async fn authorize(
    p: &Pipeline,
    headers: &HeaderMap,
    what: &str,
    plan_id: &str,
) -> Result<(), ApiError> {
    if api_allowed(headers, &p.config.api.auth_token) {
        return Ok(());
    }
    p.remediator
        .audit_refused(
            "unauthorized",
            plan_id,
            json!({"refused": what, "reason": "missing or wrong bearer token"}),
        )
        .await;
    Err(ApiError::Unauthorized)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

pub async fn approve(
    State(p): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<crate::decide::plan::Plan>, ApiError> {
    authorize(&p, &headers, "approval", &id).await?;
    let b: ApproveBody = parse(&body)?;
    Ok(Json(
        p.remediator
            .approve(&id, b.approver.trim(), "api", json!({}))
            .await?,
    ))
}

pub async fn reject(
    State(p): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<crate::decide::plan::Plan>, ApiError> {
    authorize(&p, &headers, "rejection", &id).await?;
    let b: RejectBody = parse(&body)?;
    Ok(Json(
        p.remediator
            .reject(&id, b.rejector.trim(), &b.reason, "api", json!({}))
            .await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CallbackBody {
    /// Who clicked (chat integrations pass the user); shown in the plan and the audit log.
    #[serde(default, alias = "approver", alias = "rejector", alias = "user")]
    by: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// What a callback link would do, without using it (link previews and unfurlers GET links;
/// only a POST decides). A browser gets the approval page, anything else JSON.
pub async fn callback_preview(
    State(p): Shared,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if ui::wants_html(&headers) {
        return Ok(ui::approval::show(&p, &token).await);
    }
    let (plan_id, action) = p
        .remediator
        .preview(&token)
        .map_err(|e| ApiError::Forbidden(format!("callback refused: {e}")))?;
    let plan = p.remediator.get(&plan_id);
    Ok(Json(json!({
        "plan_id": plan_id,
        "action": action,
        "how": "POST this URL (optional JSON body {\"by\": \"name\", \"reason\": \"...\"}) to decide, or open it in a browser",
        "plan": plan,
    }))
    .into_response())
}

/// A click on a callback link: the approval page's form (answered with a page) or a JSON POST
/// from a chat integration or script (answered with the plan).
pub async fn callback(
    State(p): Shared,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if ui::is_form(&headers) {
        let form: ui::approval::DecisionForm = serde_urlencoded::from_bytes(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid form body: {e}")))?;
        return Ok(ui::approval::decide(&p, &token, form).await);
    }
    let b: CallbackBody = if body.is_empty() {
        CallbackBody::default()
    } else {
        parse(&body)?
    };
    Ok(Json(
        p.remediator
            .callback(&token, b.by.as_deref(), b.reason.as_deref())
            .await?,
    )
    .into_response())
}

#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<usize>,
    subject: Option<String>,
}

/// The latest audit records (oldest first), optionally of one plan.
pub async fn audit(
    State(p): Shared,
    Query(q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let log = p.remediator.audit_log().clone();
    let limit = q.limit.unwrap_or(100).min(10_000);
    let subject = q.subject;
    let records = tokio::task::spawn_blocking(move || -> Result<Vec<_>, ApiError> {
        let all = log
            .all()
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let mut picked: Vec<_> = all
            .into_iter()
            .filter(|r| subject.as_deref().is_none_or(|s| r.subject == s))
            .collect();
        let skip = picked.len().saturating_sub(limit);
        picked.drain(..skip);
        Ok(picked)
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("audit read failed: {e}")))??;
    Ok(Json(json!({"count": records.len(), "records": records})))
}
