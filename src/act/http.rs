//! The HTTP executor: custom webhook actions such as a circuit breaker. A step's `url`
//! parameter receives a JSON POST (`action`, `target`, `namespace`, `state`,
//! `idempotency_key`, the other parameters) with an `Idempotency-Key` header (`<plan>.<step>`;
//! the undo's ends in `.undo`). It is retried with backoff only where it cannot have run twice:
//! when the connection was never made, or on 408, 429 and 503; after a timeout, a dropped
//! connection or another 5xx it is retried only if the playbook marks the step `idempotent`.
//! The undo posts `rollback_state` (default `closed`) to the same URL. URLs never reach logs or
//! the audit log with their credentials.

use std::time::Duration;

use serde_json::json;

use super::executor::{ActError, ActFuture, Applied, Executor, LiveObject};
use super::safety::Cleared;
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

    async fn post(&self, step: &PlannedStep, state: &str, key: &str) -> Result<(), ActError> {
        let url = Self::url(step)?;
        let mut body = json!({
            "action": step.action,
            "target": step.target,
            "namespace": step.namespace,
            "state": state,
            "idempotency_key": key,
        });
        for (k, v) in &step.parameters {
            if k != "url" && k != "state" && k != "idempotency_key" {
                body[k] = v.clone();
            }
        }
        let shown = redact_url(url);
        let mut attempt = 0;
        loop {
            let outcome = self
                .client
                .post(url)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await;
            let (retryable, hint, why) = match outcome {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let s = r.status();
                    let not_run = matches!(s.as_u16(), 408 | 429 | 503);
                    (
                        not_run || (step.idempotent && retryable_status(s)),
                        retry_after(r.headers()),
                        format!("{shown} answered {s}"),
                    )
                }
                // Refused before anything was sent: safe to send again.
                Err(e) => (
                    e.is_connect() || step.idempotent,
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

    fn apply<'a>(&'a self, step: &'a Cleared<'_>) -> ActFuture<'a, Applied> {
        Box::pin(async move {
            let step = step.step();
            let state = step
                .parameters
                .get("state")
                .and_then(|v| v.as_str())
                .unwrap_or("open");
            self.post(step, state, &step.idempotency_key).await?;
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
            self.post(step, state, &format!("{}.undo", step.idempotency_key))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// An endpoint that records each call's `Idempotency-Key` and answers after `delay`.
    async fn endpoint(delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        let app = axum::Router::new().route(
            "/breaker",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let seen = seen.clone();
                async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    seen.lock().unwrap().push(key);
                    tokio::time::sleep(delay).await;
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/breaker", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, calls)
    }

    /// Through the rails, as the remediator runs it.
    async fn apply(http: &HttpExecutor, s: &PlannedStep) -> Result<Applied, ActError> {
        let rails =
            crate::act::safety::Rails::new(&crate::config::remediation::RemediationConfig {
                dry_run: false,
                ..Default::default()
            });
        let book = crate::incident::IncidentBook::new(
            crate::incident::IncidentParams::from_config(&crate::config::IncidentsConfig::default()),
        );
        let cleared = rails
            .check(s, "PLAN-7", Some(http), &book, "INC-1")
            .await
            .expect("cleared");
        http.apply(&cleared).await
    }

    fn step(url: &str, idempotent: bool) -> PlannedStep {
        PlannedStep {
            name: "open breaker".into(),
            action: Action::CircuitBreaker,
            target: "api-gateway".into(),
            namespace: "api".into(),
            parameters: [("url".to_string(), json!(url))].into_iter().collect(),
            timeout_seconds: 10,
            idempotency_key: "PLAN-7.0".into(),
            idempotent,
        }
    }

    #[tokio::test]
    async fn a_step_that_timed_out_is_not_sent_again_unless_idempotent() {
        let (url, calls) = endpoint(Duration::from_secs(2)).await;
        let http = HttpExecutor::new(Duration::from_millis(200), 2).unwrap();
        let e = apply(&http, &step(&url, false))
            .await
            .expect_err("timed out");
        assert!(e.to_string().contains("after 1 attempts"), "{e}");
        assert_eq!(
            *calls.lock().unwrap(),
            ["PLAN-7.0"],
            "called once, with its key"
        );

        calls.lock().unwrap().clear();
        let http = HttpExecutor::new(Duration::from_millis(200), 1).unwrap();
        apply(&http, &step(&url, true))
            .await
            .expect_err("timed out");
        assert_eq!(
            *calls.lock().unwrap(),
            ["PLAN-7.0", "PLAN-7.0"],
            "an idempotent step is retried"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried_and_the_undo_has_its_own_key() {
        // Nothing listens on the port: the request never left, so it is safe to send again.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let http = HttpExecutor::new(Duration::from_millis(500), 1).unwrap();
        let e = apply(
            &http,
            &step(&format!("http://127.0.0.1:{port}/breaker"), false),
        )
        .await
        .expect_err("nothing listens");
        assert!(e.to_string().contains("after 2 attempts"), "{e}");

        let (url, calls) = endpoint(Duration::ZERO).await;
        let http = HttpExecutor::new(Duration::from_secs(5), 1).unwrap();
        let s = step(&url, false);
        let applied = apply(&http, &s).await.expect("applied");
        http.undo(&s, &applied.before).await.expect("undone");
        assert_eq!(*calls.lock().unwrap(), ["PLAN-7.0", "PLAN-7.0.undo"]);
    }
}
