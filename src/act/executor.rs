//! What executes a step: the [`Executor`] trait (inspect the live target, apply the action and
//! return the state it replaced, undo it from that state) and the errors executors report.
//! Executors know nothing of plans, approvals or safety rails; [`super::remediator`] calls
//! them only after those checks.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use super::safety::Cleared;
use crate::decide::plan::PlannedStep;
use crate::model::action::Action;

/// The target as it is now, for the label blacklist.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The version read: a change is made only if the object is still at it.
    pub resource_version: Option<String>,
}

/// A completed action: the state it replaced and whether [`Executor::undo`] can restore it.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub before: serde_json::Value,
    pub reversible: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
    /// The target changed after the rails read it; nothing was done.
    #[error("{0}")]
    Conflict(String),
}

pub type ActFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ActError>> + Send + 'a>>;

pub trait Executor: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether this executor runs `action`.
    fn handles(&self, action: Action) -> bool;
    /// The live target, when the action has one (`None`: an outside endpoint).
    fn inspect<'a>(&'a self, step: &'a PlannedStep) -> ActFuture<'a, Option<LiveObject>>;
    /// Only a step the rails cleared can be applied.
    fn apply<'a>(&'a self, step: &'a Cleared<'_>) -> ActFuture<'a, Applied>;
    /// Restores `before` (from [`Applied`]).
    fn undo<'a>(
        &'a self,
        step: &'a PlannedStep,
        before: &'a serde_json::Value,
    ) -> ActFuture<'a, ()>;
}

/// A numeric step parameter, with a default when absent.
pub fn int_parameter(step: &PlannedStep, name: &str, default: i64) -> Result<i64, ActError> {
    match step.parameters.get(name) {
        None => Ok(default),
        Some(v) => v.as_i64().ok_or_else(|| {
            ActError::Invalid(format!(
                "parameter {name} of {} must be an integer",
                step.name
            ))
        }),
    }
}

/// The executors this build can run beyond the built-in HTTP one: the Kubernetes executor when
/// the `kube` feature is on and the API in `kubernetes` answers. Without one, Kubernetes steps
/// are refused at run time (still planned, and audited in dry run).
pub async fn cluster_executors(
    kubernetes: &crate::config::KubernetesConfig,
) -> Vec<std::sync::Arc<dyn Executor>> {
    #[allow(unused_mut)]
    let mut executors: Vec<std::sync::Arc<dyn Executor>> = Vec::new();
    #[cfg(feature = "kube")]
    match super::kubernetes::client(kubernetes).await {
        Ok(client) => executors.push(std::sync::Arc::new(super::kubernetes::KubeExecutor::new(
            client,
        ))),
        Err(e) => tracing::info!(
            reason = %e,
            "remediation: no Kubernetes API reachable; Kubernetes steps are refused (planned and audited in dry run)"
        ),
    }
    #[cfg(not(feature = "kube"))]
    let _ = kubernetes;
    executors
}
