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
    format: crate::config::WebhookFormat,
    max_retries: u32,
    telemetry: Arc<Telemetry>,
    outbox: Arc<std::sync::Mutex<super::outbox::Outbox>>,
}

impl WebhookWorker {
    pub fn new(
        config: &crate::config::WebhookConfig,
        telemetry: Arc<Telemetry>,
        outbox: super::outbox::Outbox,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            client: client(Duration::from_secs(config.timeout_seconds.max(1)))?,
            url: config.url.clone(),
            format: config.format,
            max_retries: config.max_retries,
            telemetry,
            outbox: Arc::new(std::sync::Mutex::new(outbox)),
        })
    }

    /// Runs until `stop`: every message goes into the outbox first, then out in order. On
    /// stop the queue is closed and drained into the outbox, each pending notification gets one
    /// more try, and what is still undelivered waits in the outbox for the next start.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<WebhookMessage>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut closing = false;
        // Consecutive failed attempts on the head, and when the next one is due.
        let mut attempt = 0u32;
        let mut next_try: Option<tokio::time::Instant> = None;
        loop {
            // Whatever is queued goes to the outbox before the next send, so a long backlog
            // after an outage never leaves the bounded hand-off queue full.
            let mut queued = Vec::new();
            while let Ok(m) = rx.try_recv() {
                queued.extend(payload(&m));
            }
            self.enqueue(queued).await;
            let due = next_try.is_none_or(|t| t <= tokio::time::Instant::now());
            if due && !self.outbox_is_empty() {
                match self.deliver_head().await {
                    Delivery::Done => {
                        attempt = 0;
                        next_try = None;
                    }
                    Delivery::Later(hint) => {
                        if attempt == self.max_retries {
                            self.telemetry.channel("webhook", "failed");
                            tracing::error!(target_url = %redact_url(&self.url), held = self.outbox_len(), "webhook receiver unreachable; notifications held in the outbox and retried");
                        }
                        next_try = Some(tokio::time::Instant::now() + delay(attempt, hint));
                        attempt = attempt.saturating_add(1);
                    }
                }
                continue;
            }
            let message = tokio::select! {
                m = rx.recv() => m,
                () = sleep_until(next_try), if next_try.is_some() => continue,
                () = stop.cancelled(), if !closing => { rx.close(); closing = true; continue }
            };
            let Some(first) = message else { break };
            let mut items: Vec<_> = payload(&first).into_iter().collect();
            while let Ok(more) = rx.try_recv() {
                items.extend(payload(&more));
            }
            self.enqueue(items).await;
        }
        // Stopping: one more try for each pending notification, oldest first.
        while !self.outbox_is_empty() {
            if !matches!(self.deliver_head().await, Delivery::Done) {
                tracing::warn!(
                    held = self.outbox_len(),
                    "webhook notifications kept in the outbox for the next start"
                );
                break;
            }
        }
    }

    async fn enqueue(&mut self, items: Vec<(String, String, serde_json::Value)>) {
        if items.is_empty() {
            return;
        }
        let outbox = self.outbox.clone();
        let n = items.len();
        let pushed = tokio::task::spawn_blocking(move || {
            outbox.lock().unwrap_or_else(|p| p.into_inner()).push(items)
        })
        .await;
        match pushed {
            Ok(Ok(dropped)) => {
                for old in dropped {
                    self.telemetry.channel("webhook", "dropped");
                    tracing::error!(subject = %old.subject, event = %old.event, "webhook outbox full: oldest notification dropped");
                }
            }
            Ok(Err(e)) => {
                self.telemetry.channel("webhook", "dropped");
                tracing::error!(error = %e, notifications = n, "webhook outbox not written; notifications dropped");
            }
            Err(e) => tracing::error!(error = %e, "webhook outbox writer failed"),
        }
    }

    fn outbox_len(&self) -> usize {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn outbox_is_empty(&self) -> bool {
        self.outbox_len() == 0
    }

    /// One attempt at the oldest notification.
    async fn deliver_head(&mut self) -> Delivery {
        let Some(entry) = self
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .head()
            .cloned()
        else {
            return Delivery::Done;
        };
        let target = redact_url(&self.url);
        let mut body = entry.body;
        if let Some(o) = body.as_object_mut() {
            o.insert("notification_id".into(), entry.key.clone().into());
            o.insert("sent_at".into(), rfc3339(SystemTime::now()).into());
        }
        let body = super::chat::render(self.format, body);
        let outcome = self
            .client
            .post(&self.url)
            .header("Idempotency-Key", &entry.key)
            .json(&body)
            .send()
            .await;
        let hint = match outcome {
            Ok(r) if r.status().is_success() => {
                self.telemetry.channel("webhook", "sent");
                tracing::debug!(target_url = %target, subject = %entry.subject, event = %entry.event, "webhook delivered");
                self.ack_head().await;
                return Delivery::Done;
            }
            Ok(r) if !retryable_status(r.status()) => {
                // The receiver refuses it for good: sending it again would not help.
                self.telemetry.channel("webhook", "failed");
                tracing::error!(target_url = %target, status = %r.status(), subject = %entry.subject, event = %entry.event, "webhook receiver refused the notification; not retried");
                self.ack_head().await;
                return Delivery::Done;
            }
            Ok(r) => {
                tracing::warn!(target_url = %target, status = %r.status(), subject = %entry.subject, "webhook receiver busy or failing; retrying");
                retry_after(r.headers())
            }
            Err(e) => {
                tracing::warn!(target_url = %target, error = %without_url(&e), subject = %entry.subject, "webhook delivery failed; retrying");
                None
            }
        };
        self.telemetry.channel("webhook", "retried");
        Delivery::Later(hint)
    }

    async fn ack_head(&mut self) {
        let outbox = self.outbox.clone();
        let acked = tokio::task::spawn_blocking(move || {
            outbox.lock().unwrap_or_else(|p| p.into_inner()).ack_head()
        })
        .await;
        if let Ok(Err(e)) = acked {
            tracing::warn!(error = %e, "webhook outbox acknowledgement not written; the notification may be sent again");
        }
    }
}

enum Delivery {
    Done,
    Later(Option<Duration>),
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A message as (event, subject, JSON body).
fn payload(message: &WebhookMessage) -> Option<(String, String, serde_json::Value)> {
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
        Ok(body) => Some((event, subject, body)),
        Err(e) => {
            tracing::error!(error = %e, subject = %subject, "webhook payload not serializable");
            None
        }
    }
}
