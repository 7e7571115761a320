//! The HTTP executor: custom webhook actions such as a circuit breaker. A step's `url`
//! parameter receives a JSON POST (`action`, `target`, `namespace`, `plan_id`, `state`, the
//! other parameters), retried with backoff on connection errors, 5xx, 408 and 429; the undo
//! posts `rollback_state` (default `closed`) to the same URL. URLs never reach logs or the
//! audit log with their credentials.

use std::time::Duration;

use serde_json::json;

use super::executor::{ActError, ActFuture, Applied, Executor, LiveObject};
use crate::decide::plan::PlannedStep;
use crate::model::action::Action;
use crate::net::{delay, redact_url, retry_after, retryable_status};

pub struct HttpExecutor {
    client: reqwest::Client,
    retries: u32,
}

impl HttpExecutor {
    pub fn new(timeout: Duration, retries: u32) -> Result<Self, crate::net::ClientError> {
        Ok(Self {
            client: crate::net::client(timeout)?,
            retries,
        })
    }

    fn url(step: &PlannedStep) -> Result<&str, ActError> {
        step.parameters
            .get("url")
            .and_then(|v| v.as_str())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                ActError::Invalid(format!(
                    "step {} has no url parameter (e.g. CIRCUIT_BREAKER_URL unset)",
                    step.name
                ))
            })
    }

    async fn post(&self, step: &PlannedStep, state: &str) -> Result<(), ActError> {
        let url = Self::url(step)?;
        let mut body = json!({
            "action": step.action,
            "target": step.target,
            "namespace": step.namespace,
            "state": state,
        });
        for (k, v) in &step.parameters {
            if k != "url" && k != "state" {
                body[k] = v.clone();
            }
        }
        let shown = redact_url(url);
        let mut attempt = 0;
        loop {
            let outcome = self.client.post(url).json(&body).send().await;
            let (retryable, hint, why) = match outcome {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let s = r.status();
                    (
                        retryable_status(s),
                        retry_after(r.headers()),
                        format!("{shown} answered {s}"),
                    )
                }
                Err(e) => (
                    true,
                    None,
                    format!("{shown}: {}", crate::net::without_url(&e)),
                ),
            };
            if !retryable || attempt >= self.retries {
                return Err(ActError::Failed(format!(
                    "{why} (after {} attempts)",
                    attempt + 1
                )));
            }
            tokio::time::sleep(delay(attempt, hint)).await;
            attempt += 1;
        }
    }
}

impl Executor for HttpExecutor {
    fn name(&self) -> &'static str {
        "http"
    }

    fn handles(&self, action: Action) -> bool {
        action == Action::CircuitBreaker
    }

    fn inspect<'a>(&'a self, step: &'a PlannedStep) -> ActFuture<'a, Option<LiveObject>> {
        Box::pin(async move {
            Self::url(step)?;
            Ok(None)
        })
    }

    fn apply<'a>(&'a self, step: &'a PlannedStep) -> ActFuture<'a, Applied> {
        Box::pin(async move {
            let state = step
                .parameters
                .get("state")
                .and_then(|v| v.as_str())
                .unwrap_or("open");
            self.post(step, state).await?;
            let rollback_state = step
                .parameters
                .get("rollback_state")
                .and_then(|v| v.as_str())
                .unwrap_or("closed");
            Ok(Applied {
                before: json!({"state": rollback_state}),
                reversible: true,
            })
        })
    }

    fn undo<'a>(
        &'a self,
        step: &'a PlannedStep,
        before: &'a serde_json::Value,
    ) -> ActFuture<'a, ()> {
        Box::pin(async move {
            let state = before["state"].as_str().unwrap_or("closed");
            self.post(step, state).await
        })
    }
}
