//! Webhook notifications: a JSON POST on every firing, escalation and resolve.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;

use super::Notice;
use super::http::{ClientError, backoff, client, redact_url};
use crate::detect::book::{Anomaly, rfc3339};
use crate::telemetry::Telemetry;

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

    pub async fn run(self, mut rx: mpsc::Receiver<Notice>) {
        let target = redact_url(&self.url);
        while let Some(notice) = rx.recv().await {
            let event = format!(
                "anomaly.{}",
                serde_json::to_value(notice.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            );
            let mut attempt = 0;
            loop {
                let payload = WebhookPayload {
                    version: "1",
                    event: event.clone(),
                    anomaly: &notice.anomaly,
                    detected_at: rfc3339(notice.produced_at),
                    sent_at: rfc3339(SystemTime::now()),
                };
                let outcome = self.client.post(&self.url).json(&payload).send().await;
                let retryable = match outcome {
                    Ok(r) if r.status().is_success() => {
                        self.telemetry.channel("webhook", "sent");
                        tracing::debug!(target_url = %target, anomaly = %notice.anomaly.id, event = %event, "webhook delivered");
                        break;
                    }
                    Ok(r) => {
                        let status = r.status();
                        tracing::warn!(target_url = %target, %status, anomaly = %notice.anomaly.id, "webhook receiver refused the notification");
                        status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408
                    }
                    Err(e) => {
                        tracing::warn!(target_url = %target, error = %without_url(&e), anomaly = %notice.anomaly.id, "webhook delivery failed");
                        true
                    }
                };
                if !retryable || attempt >= self.max_retries {
                    self.telemetry.channel("webhook", "failed");
                    tracing::error!(target_url = %target, anomaly = %notice.anomaly.id, attempts = attempt + 1, "webhook notification given up");
                    break;
                }
                self.telemetry.channel("webhook", "retried");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
        }
    }
}

/// reqwest errors print the full URL; keep only the cause.
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.without_url_ref().to_string();
    if let Some(src) = std::error::Error::source(e) {
        msg = format!("{msg}: {src}");
    }
    msg
}

trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        if self.is_timeout() {
            "timed out".into()
        } else if self.is_connect() {
            "connection failed".into()
        } else if self.is_request() {
            "request error".into()
        } else {
            "error".into()
        }
    }
}
