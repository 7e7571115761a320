//! HTTP routes (axum). Handlers translate between HTTP and the pipeline; they hold no state of
//! their own and never block on outbound I/O. The write route holds only the intake
//! (`pipeline::intake::Intake`); the read and approval routes hold the pipeline's handles.

pub mod auth;
pub mod body;
pub mod error;
pub mod plans;
pub mod routes;
pub mod ui;
pub mod write;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::Pipeline;

/// Baselines of a full store run to a few hundred MB of JSON lines.
const IMPORT_BODY_LIMIT: usize = 1 << 30;

pub fn router(p: Arc<Pipeline>) -> Router {
    // The write handler enforces its own (configured) body limit and answers 413 itself.
    let body_limit = p.config.ingest.max_body_bytes.saturating_add(1);
    let write = Router::new()
        .route("/api/v1/write", post(write::handle))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(p.intake.clone());
    Router::new()
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/live", get(routes::live))
        .route("/metrics", get(routes::metrics))
        .route("/-/reload", post(routes::reload))
        .route("/api/v1/status", get(routes::status))
        .route("/api/v1/metrics", get(routes::catalog))
        .route("/api/v1/targets", get(routes::targets))
        .route("/api/v1/incidents", get(routes::incidents))
        .route("/api/v1/incidents/{id}", get(routes::incident))
        .route("/api/v1/knowledge", get(routes::knowledge))
        .route("/api/v1/knowledge/runbooks", post(routes::add_runbook))
        .route("/api/v1/plans", get(plans::plans))
        .route("/api/v1/plans/{id}", get(plans::plan))
        .route("/api/v1/approvals", get(plans::approvals))
        .route("/api/v1/approvals/{id}", get(plans::plan))
        .route("/api/v1/approvals/{id}/approve", post(plans::approve))
        .route("/api/v1/approvals/{id}/reject", post(plans::reject))
        .route(
            "/api/v1/callbacks/{token}",
            get(plans::callback_preview).post(plans::callback),
        )
        .route("/api/v1/audit", get(plans::audit))
        .route("/ui/incidents", get(ui::console::incidents))
        .route("/ui/plans", get(ui::console::plans))
        .route("/ui/style.css", get(ui::stylesheet))
        .route("/api/v1/anomalies", get(routes::anomalies))
        .route("/api/v1/anomalies/{id}", get(routes::anomaly))
        .route(
            "/api/v1/anomalies/{id}/acknowledge",
            post(routes::acknowledge),
        )
        .route("/api/v1/baselines", get(routes::baselines))
        .route("/api/v1/baselines/export", get(routes::baselines_export))
        .route(
            "/api/v1/baselines/import",
            post(routes::baselines_import).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route("/api/v1/series", get(routes::series_list))
        .route("/api/v1/series/{id}", get(routes::series_one))
        .fallback(routes::fallback)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(p)
        .merge(write)
}
