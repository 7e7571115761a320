//! `notification`: webhooks and Alertmanager.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationConfig {
    pub webhook: WebhookConfig,
    pub alertmanager: AlertmanagerConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    #[serde(deserialize_with = "duration::nullable_string")]
    pub url: String,
    /// What is sent: `incident` (opened, analyzed, mitigated, resolved: one page per incident)
    /// and/or `anomaly` (every firing, escalation and resolve of every series).
    pub events: Vec<WebhookEvents>,
    /// The body's shape: `json` (our payload), `slack` (Block Kit, for a Slack incoming
    /// webhook) or `teams` (an Adaptive Card, for a Teams incoming webhook or workflow).
    pub format: WebhookFormat,
    pub timeout_seconds: u64,
    pub queue_size: usize,
    /// Consecutive failed attempts before the receiver is reported unreachable (the
    /// notification is kept and retried; see `durable`).
    pub max_retries: u32,
    /// Notifications are written to an outbox on disk before they are sent and sent again
    /// after a restart until the receiver takes them. Off: the same, in memory only.
    pub durable: bool,
    /// Where the outbox lives; empty = `app.data_dir`.
    pub outbox_dir: String,
    /// Past this size the oldest undelivered notifications are dropped (counted, logged).
    pub outbox_max_bytes: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            events: vec![WebhookEvents::Incident, WebhookEvents::Plan],
            format: WebhookFormat::Json,
            timeout_seconds: 10,
            queue_size: 4096,
            max_retries: 8,
            durable: true,
            outbox_dir: String::new(),
            outbox_max_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvents {
    Incident,
    Anomaly,
    /// Plans: approval requests (with callback links) and outcomes.
    Plan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Json,
    Slack,
    Teams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    #[serde(deserialize_with = "duration::nullable_string")]
    pub url: String,
    /// Firing alerts are re-posted this often, well inside Alertmanager's 5 min resolve_timeout.
    #[serde(with = "duration")]
    pub resend_interval: Duration,
    pub timeout_seconds: u64,
    pub queue_size: usize,
    /// New, escalated and resolved alerts are written to an outbox in `app.data_dir` before
    /// they are posted and posted again after an outage or a restart until Alertmanager takes
    /// them. Off: the same, in memory only.
    pub durable: bool,
    /// Past this size the oldest unposted batches are dropped (counted, logged).
    pub outbox_max_bytes: usize,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            resend_interval: Duration::from_secs(60),
            timeout_seconds: 10,
            queue_size: 4096,
            durable: true,
            outbox_max_bytes: 16 << 20,
        }
    }
}
