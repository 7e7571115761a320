//! sre-agent: a Prometheus remote-write sink that detects anomalies on every sample.
//!
//! Data flows one way (see `docs/ARCHITECTURE.md`):
//! `ingest` (decode) → `store` (registry, rings) → `detect` (online detectors, lifecycle) →
//! `notify` (webhooks, Alertmanager) and `writeback` (/metrics, remote write out); `api` serves
//! HTTP and `sim` is the built-in exchange simulator. [`Pipeline`] wires them from a [`Config`]
//! and owns their tasks (`pipeline::topology`).

// Data from outside (requests, files, config) must never panic the process: the library may
// not unwrap, expect or panic outside tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod act;
pub mod analyze;
pub mod api;
pub mod config;
pub mod decide;
pub mod detect;
pub mod incident;
pub mod ingest;
pub mod model;
pub mod net;
pub mod notify;
pub mod pipeline;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod writeback;

use std::sync::Arc;

use thiserror::Error;

pub use config::Config;
pub use pipeline::Pipeline;

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Client(#[from] net::ClientError),
    #[error(transparent)]
    Notify(#[from] notify::StartError),
    #[error(transparent)]
    Rules(#[from] analyze::rules::RulesError),
    #[error(transparent)]
    Knowledge(#[from] analyze::knowledge::KnowledgeError),
    #[error(transparent)]
    Playbooks(#[from] decide::playbooks::PlaybookError),
    #[error(transparent)]
    Remediation(#[from] act::remediator::OpenError),
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    pipeline: Arc<Pipeline>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, api::router(pipeline))
        .with_graceful_shutdown(shutdown)
        .await
}
