//! Webhook notifications: a JSON POST per incident step (opened, analyzed, mitigated,
//! resolved), per plan step (approval requested with callback links, executed, failed,
//! rejected, expired) and, when configured, per anomaly transition (fired, escalated, resolved).
//! The worker owns its queue and is the only one who waits on the receiver: it never blocks a
//! publisher, and on shutdown it closes the queue and sends what it still holds.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;

use super::WebhookMessage;
use crate::detect::book::{Anomaly, rfc3339};
use crate::net::{
    ClientError, client, delay, redact_url, retry_after, retryable_status, without_url,
};
use crate::telemetry::Telemetry;

#[derive(Debug, Serialize)]
pub struct IncidentPayload<'a> {
    pub version: &'static str,
    /// `incident.opened`, `incident.analyzed`, `incident.mitigated` or `incident.resolved`.
    pub event: &'static str,
    pub incident: &'a crate::incident::Incident,
    pub detected_at: String,
    pub sent_at: String,
}

#[derive(Debug, Serialize)]
pub struct PlanPayload<'a> {
    pub version: &'static str,
    pub event: &'static str,
    pub plan: &'a crate::decide::plan::Plan,
    /// Approve and reject links (POST), on `plan.approval_requested` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callbacks: Option<&'a crate::model::links::CallbackLinks>,
    pub sent_at: String,
}

#[derive(Debug, Serialize)]
pub struct WebhookPayload<'a> {
    pub version: &'static str,
    /// `anomaly.fired`, `anomaly.escalated` or `anomaly.resolved`.
    pub event: String,
    pub anomaly: &'a Anomaly,
    /// When the transition was detected (wall clock); `sent_at` minus this is the latency.
    pub detected_at: String,
    pub sent_at: String,
}

pub struct WebhookWorker {
    client: reqwest::Client,
    url: String,
    max_retries: u32,
    telemetry: Arc<Telemetry>,
}

impl WebhookWorker {
    pub fn new(
        config: &crate::config::WebhookConfig,
        telemetry: Arc<Telemetry>,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            client: client(Duration::from_secs(config.timeout_seconds.max(1)))?,
            url: config.url.clone(),
            max_retries: config.max_retries,
            telemetry,
        })
    }

    pub async fn run(
        self,
        mut rx: mpsc::Receiver<WebhookMessage>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut closing = false;
        loop {
            let message = tokio::select! {
                m = rx.recv() => m,
                // Closed, the queue still yields what it holds, then None.
                () = stop.cancelled(), if !closing => { rx.close(); closing = true; continue }
            };
            let Some(message) = message else { break };
            let (event, subject, body) = match &message {
                WebhookMessage::Anomaly(notice) => {
                    let event = format!(
                        "anomaly.{}",
                        serde_json::to_value(notice.kind)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default()
                    );
                    let body = serde_json::to_value(WebhookPayload {
                        version: "1",
                        event: event.clone(),
                        anomaly: &notice.anomaly,
                        detected_at: rfc3339(notice.produced_at),
                        sent_at: rfc3339(SystemTime::now()),
                    });
                    (event, notice.anomaly.id.clone(), body)
                }
                WebhookMessage::Incident {
                    event,
                    incident,
                    produced_at,
                } => (
                    event.to_string(),
                    incident.id.clone(),
                    serde_json::to_value(IncidentPayload {
                        version: "1",
                        event,
                        incident,
                        detected_at: rfc3339(*produced_at),
                        sent_at: rfc3339(SystemTime::now()),
                    }),
                ),
                WebhookMessage::Plan { event, plan, links } => (
                    event.to_string(),
                    plan.id.clone(),
                    serde_json::to_value(PlanPayload {
                        version: "1",
                        event,
                        plan,
                        callbacks: links.as_ref(),
                        sent_at: rfc3339(SystemTime::now()),
                    }),
                ),
            };
            match body {
                Ok(body) => self.deliver(&event, &subject, &body).await,
                Err(e) => {
                    tracing::error!(error = %e, subject = %subject, "webhook payload not serializable")
                }
            }
        }
    }

    async fn deliver(&self, event: &str, subject: &str, body: &serde_json::Value) {
        let target = redact_url(&self.url);
        let mut attempt = 0;
        loop {
            let outcome = self.client.post(&self.url).json(body).send().await;
            let (retryable, hint) = match outcome {
                Ok(r) if r.status().is_success() => {
                    self.telemetry.channel("webhook", "sent");
                    tracing::debug!(target_url = %target, subject = %subject, event = %event, "webhook delivered");
                    return;
                }
                Ok(r) => {
                    let status = r.status();
                    tracing::warn!(target_url = %target, %status, subject = %subject, "webhook receiver refused the notification");
                    (retryable_status(status), retry_after(r.headers()))
                }
                Err(e) => {
                    tracing::warn!(target_url = %target, error = %without_url(&e), subject = %subject, "webhook delivery failed");
                    (true, None)
                }
            };
            if !retryable || attempt >= self.max_retries {
                self.telemetry.channel("webhook", "failed");
                tracing::error!(target_url = %target, subject = %subject, attempts = attempt + 1, "webhook notification given up");
                return;
            }
            self.telemetry.channel("webhook", "retried");
            tokio::time::sleep(delay(attempt, hint)).await;
            attempt += 1;
        }
    }
}
