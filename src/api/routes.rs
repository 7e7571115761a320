//! Read and management routes: health, status, catalog, anomalies, baselines, series, /metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::api_allowed;
use super::error::ApiError;
use crate::Pipeline;
use crate::detect::Severity;
use crate::detect::book::{AnomalyFilter, BookError};
use crate::store::matcher::Matcher;

type Shared = State<Arc<Pipeline>>;

pub async fn health(State(p): Shared) -> Json<serde_json::Value> {
    Json(
        json!({"status": "healthy", "version": env!("CARGO_PKG_VERSION"), "uptime_seconds": p.uptime_seconds()}),
    )
}

pub async fn ready(State(p): Shared) -> Response {
    if p.is_ready() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        ApiError::Unavailable("starting".into()).into_response()
    }
}

pub async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "alive"}))
}

pub async fn status(State(p): Shared) -> Json<serde_json::Value> {
    let t = &p.telemetry;
    let c = &p.config;
    Json(json!({
        "running": true,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": p.uptime_seconds(),
        "active_anomalies": p.book.active_count(),
        "active_incidents": p.incidents.active_count(),
        "baselines_loaded": p.store.series_count(),
        "series_active": p.store.series_count(),
        "series_limit": c.store.max_series,
        "series_memory_bytes": p.store.memory_bytes(),
        "samples_received": t.samples_received.load(std::sync::atomic::Ordering::Relaxed),
        "samples_detected": t.samples_detected.load(std::sync::atomic::Ordering::Relaxed),
        "ingest": {"remote_write": "/api/v1/write", "protocols": ["prometheus.WriteRequest", "io.prometheus.write.v2.Request"], "auth": c.ingest.auth.enabled(), "scrape_targets": c.scrape.targets.len()},
        "outputs": {
            "webhook": !c.notification.webhook.url.is_empty(),
            "alertmanager": !c.notification.alertmanager.url.is_empty(),
            "remote_write": !c.writeback.url.is_empty(),
        },
        "metrics_collector_connected": t.samples_received.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "remediation": {
            "enabled": c.auto_remediation.enabled,
            "dry_run": c.auto_remediation.dry_run,
            "plans": p.remediator.list().len(),
            "audit_log": p.remediator.audit_log().path().display().to_string(),
        },
    }))
}

#[derive(Deserialize)]
pub struct IncidentQuery {
    state: Option<String>,
}

/// Incidents, newest first; `state` = open, mitigated or resolved (default: all).
pub async fn incidents(
    State(p): Shared,
    Query(q): Query<IncidentQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use crate::incident::IncidentState;
    let state = match q.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some("open") => Some(IncidentState::Open),
        Some("mitigated") => Some(IncidentState::Mitigated),
        Some("resolved") => Some(IncidentState::Resolved),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state {other:?} is not one of open, mitigated, resolved, all"
            )));
        }
    };
    let list = p.incidents.list(state);
    Ok(Json(json!({"count": list.len(), "incidents": list})))
}

/// One incident with its anomalies (ordered by when they began).
pub async fn incident(
    State(p): Shared,
    Path(id): Path<String>,
) -> Result<Json<crate::incident::Incident>, ApiError> {
    p.incidents
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no incident with id {id}")))
}

#[derive(Deserialize)]
pub struct KnowledgeQuery {
    q: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
}

/// The knowledge base: with `q`, entries ranked by similarity to it; else all (of `kind`).
pub async fn knowledge(
    State(p): Shared,
    Query(q): Query<KnowledgeQuery>,
) -> Json<serde_json::Value> {
    let kb = &p.analyzer.knowledge;
    let limit = q.limit.unwrap_or(20).min(1000);
    match q.q.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(text) => {
            let hits: Vec<_> = kb
                .search(text, limit, 0.0)
                .into_iter()
                .filter(|m| q.kind.as_deref().is_none_or(|k| m.entry.kind == k))
                .collect();
            Json(json!({"count": hits.len(), "matches": hits}))
        }
        None => {
            let mut all = kb.list(q.kind.as_deref());
            all.truncate(limit);
            Json(json!({"count": all.len(), "total": kb.len(), "entries": all}))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookBody {
    id: Option<String>,
    title: String,
    text: String,
    #[serde(default)]
    cause: String,
    #[serde(default)]
    actions: Vec<String>,
}

/// Adds (or replaces, by id) a runbook document; bearer token when `api.auth_token` is set.
pub async fn add_runbook(
    State(p): Shared,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !api_allowed(&headers, &p.config.api.auth_token) {
        return Err(ApiError::Unauthorized);
    }
    let r: RunbookBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid runbook: {e}")))?;
    let id = r.id.filter(|s| !s.is_empty()).unwrap_or_else(|| {
        format!(
            "runbook-{:x}",
            xxhash_rust::xxh3::xxh3_64(r.title.as_bytes())
        )
    });
    let entry = crate::analyze::knowledge::Entry {
        id: id.clone(),
        kind: "runbook".into(),
        title: r.title,
        text: r.text,
        cause: r.cause,
        actions: r.actions,
        outcome: String::new(),
        created_at: crate::model::clock::rfc3339(std::time::SystemTime::now()),
    };
    let kb = p.analyzer.knowledge.clone();
    let written = entry.clone();
    tokio::task::spawn_blocking(move || kb.add(written))
        .await
        .map_err(|e| ApiError::Unavailable(format!("knowledge base task failed: {e}")))?
        .map_err(|e| match e {
            crate::analyze::knowledge::KnowledgeError::Invalid(m) => ApiError::BadRequest(m),
            other => ApiError::Unavailable(other.to_string()),
        })?;
    if let Some(remote) = p.analyzer.remote_knowledge.get() {
        remote.upsert(&entry).await.map_err(|e| {
            ApiError::Unavailable(format!("runbook saved locally; {}: {e}", remote.name()))
        })?;
    }
    Ok(Json(json!({"id": id, "kind": "runbook"})))
}

/// Pull mode's targets with their health, like Prometheus' `/api/v1/targets`.
pub async fn targets(State(p): Shared) -> Json<serde_json::Value> {
    let targets = p.scrape_health.snapshot();
    Json(json!({"count": targets.len(), "targets": targets}))
}

pub async fn catalog(State(p): Shared) -> Json<serde_json::Value> {
    let mut counts = vec![0usize; p.store.catalog.classes.len()];
    p.store.for_each(|s| {
        if let Some(c) = counts.get_mut(s.class as usize) {
            *c += 1;
        }
    });
    let metrics: Vec<serde_json::Value> = p
        .store
        .catalog
        .classes
        .iter()
        .zip(counts)
        .map(|(c, n)| {
            json!({
                "category": c.category, "name": c.entry.name, "labels": c.entry.labels, "unit": c.entry.unit,
                "description": c.entry.description, "direction": c.entry.direction,
                "min_abs_deviation": c.entry.min_abs_deviation, "min_rel_deviation": c.entry.min_rel_deviation,
                "seasonal": c.entry.seasonal, "active_series": n,
            })
        })
        .collect();
    Json(json!({"metrics": metrics}))
}

#[derive(Deserialize)]
pub struct AnomalyQuery {
    category: Option<String>,
    severity: Option<String>,
    active_only: Option<bool>,
}

fn parse_severity(s: &str) -> Result<Severity, ApiError> {
    Severity::ALL
        .into_iter()
        .find(|v| v.as_str() == s.to_ascii_lowercase())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown severity {s:?}: expected low, medium, high or critical"
            ))
        })
}

pub async fn anomalies(
    State(p): Shared,
    Query(q): Query<AnomalyQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = AnomalyFilter {
        category: q.category,
        severity: q.severity.as_deref().map(parse_severity).transpose()?,
        active_only: q.active_only.unwrap_or(true),
    };
    let list = p.book.list(&filter);
    Ok(Json(json!({"count": list.len(), "anomalies": list})))
}

fn not_found(e: BookError) -> ApiError {
    ApiError::NotFound(e.to_string())
}

pub async fn anomaly(
    State(p): Shared,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let a = p.book.get(&id).map_err(not_found)?;
    Ok(Json(serde_json::to_value(a).unwrap_or_default()))
}

#[derive(Deserialize, Default)]
pub struct AckBody {
    #[serde(default, alias = "approver", alias = "user")]
    by: String,
    #[serde(default)]
    comment: String,
}

pub async fn acknowledge(
    State(p): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !api_allowed(&headers, &p.config.api.auth_token) {
        return Err(ApiError::Unauthorized);
    }
    let ack: AckBody = if body.is_empty() {
        AckBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let by = if ack.by.is_empty() {
        "api"
    } else {
        ack.by.as_str()
    };
    let a = p
        .book
        .acknowledge(&id, by, &ack.comment)
        .map_err(not_found)?;
    tracing::info!(anomaly = %a.id, by, "anomaly acknowledged");
    Ok(Json(serde_json::to_value(a).unwrap_or_default()))
}

#[derive(Deserialize)]
pub struct SeriesQuery {
    #[serde(rename = "match")]
    selector: Option<String>,
    limit: Option<usize>,
}

fn matcher(q: &SeriesQuery) -> Result<Matcher, ApiError> {
    Matcher::parse(q.selector.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

pub async fn baselines(
    State(p): Shared,
    Query(q): Query<SeriesQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let m = matcher(&q)?;
    let list = p.store.baselines(&m, q.limit.unwrap_or(1000).min(100_000));
    Ok(Json(json!({"count": list.len(), "baselines": list})))
}

/// Learned baselines as JSON lines (`application/x-ndjson`), one series per line; what
/// `POST /api/v1/baselines/import` and the snapshot file take.
pub async fn baselines_export(
    State(p): Shared,
    Query(q): Query<SeriesQuery>,
) -> Result<axum::response::Response, ApiError> {
    let m = matcher(&q)?;
    let store = p.store.clone();
    // Walks every shard: off the async workers.
    let body = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        store.export_baselines(&m, &mut out).map(|_| out)
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("export task failed: {e}")))?
    .map_err(|e| ApiError::Unavailable(format!("export failed: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Installs baselines from JSON lines (bearer token when `api.auth_token` is set). Answers with
/// how many series were created and updated, and the first rejected lines with their reasons.
pub async fn baselines_import(
    State(p): Shared,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !api_allowed(&headers, &p.config.api.auth_token) {
        return Err(ApiError::Unauthorized);
    }
    let store = p.store.clone();
    let report = tokio::task::spawn_blocking(move || store.import_baselines(&body[..]))
        .await
        .map_err(|e| ApiError::Unavailable(format!("import task failed: {e}")))?;
    tracing::info!(
        created = report.created,
        updated = report.updated,
        rejected = report.rejected,
        "baselines imported"
    );
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

pub async fn series_list(
    State(p): Shared,
    Query(q): Query<SeriesQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let m = matcher(&q)?;
    let list = p.store.find(&m, q.limit.unwrap_or(1000).min(100_000));
    Ok(Json(json!({"count": list.len(), "series": list})))
}

#[derive(Deserialize)]
pub struct SamplesQuery {
    /// Only samples at or after this timestamp (ms).
    since: Option<i64>,
}

pub async fn series_one(
    State(p): Shared,
    Path(id): Path<String>,
    Query(q): Query<SamplesQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let hash = u64::from_str_radix(&id, 16)
        .map_err(|_| ApiError::NotFound(format!("no series with id {id}")))?;
    let since = q.since.unwrap_or(i64::MIN);
    let found = p
        .store
        .with_series(hash, |s| (p.store.snapshot(s), s.ring.samples_since(since)));
    let (snapshot, samples) =
        found.ok_or_else(|| ApiError::NotFound(format!("no series with id {id}")))?;
    // Copy made under the shard lock above; serialization happens after it is released.
    let samples: Vec<serde_json::Value> = samples
        .iter()
        .map(|(t, v)| {
            json!([
                t,
                if v.is_finite() {
                    json!(v)
                } else {
                    json!(v.to_string())
                }
            ])
        })
        .collect();
    Ok(Json(json!({"series": snapshot, "samples": samples})))
}

pub async fn metrics(State(p): Shared) -> Response {
    let mut out = String::with_capacity(16 * 1024);
    let active = p.book.active_by_severity();
    p.telemetry.render(
        &mut out,
        p.store.series_count(),
        &active,
        &p.book.active_breakdown(),
        p.store.memory_bytes(),
    );
    {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP sre_agent_upkeep_refits_deferred_total Series whose refits (period search, forecast, level-shift check) an upkeep check left for the next one because anomaly_detection.refit_budget was spent.\n# TYPE sre_agent_upkeep_refits_deferred_total counter\nsre_agent_upkeep_refits_deferred_total {}",
            p.store.refits_deferred()
        );
        let _ = writeln!(
            out,
            "# HELP sre_agent_incidents_active Incidents open or mitigated (not yet resolved).\n# TYPE sre_agent_incidents_active gauge\nsre_agent_incidents_active {}",
            p.incidents.active_count()
        );
        let _ = writeln!(
            out,
            "# HELP sre_agent_remediation_total Remediation steps by action and result (success, failure, dry_run, refused, rolled_back, rollback_failed, not_reversible).\n# TYPE sre_agent_remediation_total counter"
        );
        for ((action, result), n) in p.remediator.outcomes() {
            let _ = writeln!(
                out,
                "sre_agent_remediation_total{{action=\"{}\",result=\"{}\"}} {n}",
                crate::model::labels::escape_value(&action),
                crate::model::labels::escape_value(&result)
            );
        }
        let pending = p
            .remediator
            .list()
            .iter()
            .filter(|plan| plan.state == crate::decide::plan::PlanState::PendingApproval)
            .count();
        let _ = writeln!(
            out,
            "# HELP sre_agent_plans_pending_approval Plans waiting for approval.\n# TYPE sre_agent_plans_pending_approval gauge\nsre_agent_plans_pending_approval {pending}"
        );
    }
    p.scrape_health.render(&mut out);
    p.reloader.render(&mut out);
    let exported = crate::writeback::collect(&p.store, p.config.writeback.export_all);
    crate::writeback::render(&mut out, &exported);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// `POST /-/reload` (Prometheus' path): re-reads config, catalog, RCA rules and playbooks.
/// Needs the API bearer token when one is set.
pub async fn reload(
    State(p): Shared,
    headers: axum::http::HeaderMap,
) -> Result<Json<crate::pipeline::reload::ReloadOutcome>, ApiError> {
    if !super::auth::api_allowed(&headers, &p.config.api.auth_token) {
        return Err(ApiError::Unauthorized);
    }
    p.reload().await.map(Json).map_err(|e| {
        ApiError::ReloadFailed(format!("reload failed, running configuration kept: {e}"))
    })
}

pub async fn fallback() -> Response {
    ApiError::NotFound("no such route".into()).into_response()
}

pub async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"error": "method not allowed", "status": 405})),
    )
        .into_response()
}
