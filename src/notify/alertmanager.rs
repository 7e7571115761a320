//! Alertmanager: `POST /api/v2/alerts` on firing, re-posted every `resend_interval` so that
//! Alertmanager never auto-resolves a live anomaly, and posted with `endsAt` when resolved.
//!
//! Every firing alert carries `endsAt = now + 4 × resend_interval` (as Prometheus does), so if
//! the agent dies its alerts resolve by themselves instead of firing forever.
//!
//! Transitions (fired, escalated, resolved) go through an outbox (`alertmanager-outbox.jsonl`,
//! fsync'd) before they are posted and are posted in order until Alertmanager takes them, also
//! after an outage or a restart; the periodic re-post of what fires needs no outbox (it is the
//! current state, rebuilt by detection after a restart).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;

use super::Notice;
use crate::detect::Severity;
use crate::detect::book::{Anomaly, rfc3339};
use crate::detect::event::{AnomalyKind, EventKind};
use crate::net::without_url;
use crate::net::{ClientError, client, redact_url};
use crate::telemetry::Telemetry;

pub const ALERT_NAME: &str = "SREAgentAnomaly";
/// A forecast that crosses a catalog threshold: a warning ahead of time, routed on its own.
pub const PREDICTED_ALERT_NAME: &str = "SREAgentPredictedBreach";
/// A lasting change of level (reported once, already resolved: the baseline adopted it).
pub const LEVEL_SHIFT_ALERT_NAME: &str = "SREAgentLevelShift";
/// A pod unlike the other pods of its deployment.
pub const PEER_ALERT_NAME: &str = "SREAgentPeerOutlier";
pub const SERVICE_ALERT_NAME: &str = "SREAgentServiceAnomaly";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    pub generator_url: String,
}

/// Alert labels: `alertname`, `severity`, `category`, `metric`, then the series' labels. A series
/// label that collides with ours is kept as `exported_<name>`.
pub fn alert_labels(a: &Anomaly, severity: Severity) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for (k, v) in &a.labels {
        if k == "__name__" {
            continue;
        }
        labels.insert(k.clone(), v.clone());
    }
    for ours in ["alertname", "severity", "category", "metric", "kind"] {
        if let Some(v) = labels.remove(ours) {
            labels.insert(format!("exported_{ours}"), v);
        }
    }
    let name = match a.kind {
        AnomalyKind::Anomaly => ALERT_NAME,
        AnomalyKind::PredictedBreach => PREDICTED_ALERT_NAME,
        AnomalyKind::LevelShift => LEVEL_SHIFT_ALERT_NAME,
        AnomalyKind::PeerOutlier => PEER_ALERT_NAME,
        AnomalyKind::ServiceAnomaly => SERVICE_ALERT_NAME,
    };
    labels.insert("alertname".into(), name.into());
    labels.insert("kind".into(), a.kind.as_str().into());
    labels.insert("severity".into(), severity.as_str().into());
    labels.insert("category".into(), a.category.clone());
    labels.insert("metric".into(), a.metric.clone());
    labels
}

pub fn to_alert(a: &Anomaly, severity: Severity, ends_at: SystemTime) -> PostableAlert {
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".into(), a.summary.clone());
    annotations.insert("description".into(), a.description.clone());
    annotations.insert("anomaly_id".into(), a.id.clone());
    if let Some(incident) = &a.incident_id {
        annotations.insert("incident_id".into(), incident.clone());
    }
    annotations.insert("current_value".into(), a.value.to_string());
    annotations.insert("expected_value".into(), a.expected.to_string());
    annotations.insert("sigma".into(), format!("{:.2}", a.sigma));
    PostableAlert {
        labels: alert_labels(a, severity),
        annotations,
        starts_at: a.started_at.clone(),
        ends_at: rfc3339(ends_at),
        generator_url: String::new(),
    }
}

pub struct AlertmanagerWorker {
    client: reqwest::Client,
    endpoint: String,
    resend: Duration,
    telemetry: Arc<Telemetry>,
    firing: HashMap<String, (Anomaly, Severity)>,
    /// Transitions not yet accepted by Alertmanager, oldest first.
    outbox: Arc<std::sync::Mutex<super::outbox::Outbox>>,
}

/// What a POST came to.
enum Posted {
    Taken,
    /// Refused for good (400, 422): sending it again cannot help.
    Refused,
    Later,
}

impl AlertmanagerWorker {
    pub fn new(
        config: &crate::config::AlertmanagerConfig,
        telemetry: Arc<Telemetry>,
        outbox: super::outbox::Outbox,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            client: client(Duration::from_secs(config.timeout_seconds.max(1)))?,
            endpoint: format!("{}/api/v2/alerts", config.url.trim_end_matches('/')),
            resend: config.resend_interval,
            telemetry,
            firing: HashMap::new(),
            outbox: Arc::new(std::sync::Mutex::new(outbox)),
        })
    }

    fn valid_until(&self) -> SystemTime {
        SystemTime::now() + self.resend * 4
    }

    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Notice>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.resend);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut closing = false;
        // What an earlier run or an outage left unposted goes first.
        self.drain().await;
        loop {
            tokio::select! {
                // Closed, the queue still yields what it holds, then None.
                () = stop.cancelled(), if !closing => { rx.close(); closing = true }
                notice = rx.recv() => {
                    let Some(notice) = notice else { break };
                    let mut batch = self.handle(notice);
                    // Drain what else is queued so a storm becomes one POST.
                    while let Ok(more) = rx.try_recv() {
                        batch.extend(self.handle(more));
                    }
                    self.enqueue(batch).await;
                    self.drain().await;
                }
                _ = tick.tick() => {
                    self.drain().await;
                    let until = self.valid_until();
                    let batch: Vec<PostableAlert> = self.firing.values().map(|(a, s)| to_alert(a, *s, until)).collect();
                    if !batch.is_empty() && matches!(self.post(&batch).await, Posted::Later) {
                        tracing::warn!(target_url = %redact_url(&self.endpoint), alerts = batch.len(), "Alertmanager unreachable; firing alerts re-posted on the next tick");
                    }
                }
            }
        }
        let left = self.outbox_len();
        if left > 0 {
            tracing::warn!(
                held = left,
                "Alertmanager batches kept in the outbox for the next start"
            );
        }
    }

    fn outbox_len(&self) -> usize {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Writes a batch of transitions to the outbox (off the async workers: it fsyncs).
    async fn enqueue(&mut self, batch: Vec<PostableAlert>) {
        if batch.is_empty() {
            return;
        }
        let subject = batch[0]
            .labels
            .get("alertname")
            .cloned()
            .unwrap_or_default();
        let body = serde_json::to_value(&batch).unwrap_or_default();
        let outbox = self.outbox.clone();
        let pushed = tokio::task::spawn_blocking(move || {
            outbox.lock().unwrap_or_else(|p| p.into_inner()).push(vec![(
                "alerts".into(),
                subject,
                body,
            )])
        })
        .await;
        match pushed {
            Ok(Ok(dropped)) => {
                for _ in dropped {
                    self.telemetry.channel("alertmanager", "dropped");
                    tracing::error!("Alertmanager outbox full: oldest unposted batch dropped");
                }
            }
            Ok(Err(e)) => {
                self.telemetry.channel("alertmanager", "dropped");
                tracing::error!(error = %e, alerts = batch.len(), "Alertmanager outbox not written; alerts dropped");
            }
            Err(e) => tracing::error!(error = %e, "Alertmanager outbox writer failed"),
        }
    }

    /// Posts the outbox's batches in order until one is not taken.
    async fn drain(&mut self) {
        loop {
            let head = self
                .outbox
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .head()
                .cloned();
            let Some(entry) = head else { return };
            let Ok(batch) = serde_json::from_value::<Vec<serde_json::Value>>(entry.body) else {
                tracing::error!(key = %entry.key, "Alertmanager outbox entry unreadable; skipped");
                self.ack_head().await;
                continue;
            };
            match self.post(&batch).await {
                Posted::Taken | Posted::Refused => self.ack_head().await,
                Posted::Later => return,
            }
        }
    }

    async fn ack_head(&mut self) {
        let outbox = self.outbox.clone();
        let acked = tokio::task::spawn_blocking(move || {
            outbox.lock().unwrap_or_else(|p| p.into_inner()).ack_head()
        })
        .await;
        if let Ok(Err(e)) = acked {
            tracing::warn!(error = %e, "Alertmanager outbox acknowledgement not written; the batch may be posted again");
        }
    }

    fn handle(&mut self, notice: Notice) -> Vec<PostableAlert> {
        let a = notice.anomaly;
        let now = SystemTime::now();
        match notice.kind {
            EventKind::Fired => {
                let alert = to_alert(&a, a.severity, self.valid_until());
                self.firing
                    .insert(a.id.clone(), (a, alert_severity(&alert)));
                vec![alert]
            }
            EventKind::Escalated => {
                let mut out = Vec::new();
                // Severity is an identifying label: end the old alert, start the new one.
                if let Some((old, old_sev)) = self.firing.remove(&a.id) {
                    out.push(to_alert(&old, old_sev, now));
                } else if let Some(prev) = notice.previous_severity {
                    out.push(to_alert(&a, prev, now));
                }
                out.push(to_alert(&a, a.severity, self.valid_until()));
                self.firing.insert(a.id.clone(), (a.clone(), a.severity));
                out
            }
            EventKind::Resolved => {
                let severity = self.firing.remove(&a.id).map_or(a.severity, |(_, s)| s);
                vec![to_alert(&a, severity, now)]
            }
        }
    }

    async fn post<T: Serialize>(&mut self, batch: &[T]) -> Posted {
        if batch.is_empty() {
            return Posted::Taken;
        }
        match self.client.post(&self.endpoint).json(batch).send().await {
            Ok(r) if r.status().is_success() => {
                self.telemetry.channel("alertmanager", "sent");
                Posted::Taken
            }
            // Alertmanager refused the alerts themselves (400, 422): sending them again cannot
            // help; say so loudly rather than retry forever.
            Ok(r) if !crate::net::retryable_status(r.status()) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                tracing::error!(target_url = %redact_url(&self.endpoint), %status, response = %text.chars().take(300).collect::<String>(), alerts = batch.len(), "Alertmanager rejected alerts; dropped");
                self.telemetry.channel("alertmanager", "failed");
                Posted::Refused
            }
            outcome => {
                match outcome {
                    Ok(r) => {
                        tracing::warn!(target_url = %redact_url(&self.endpoint), status = %r.status(), alerts = batch.len(), "Alertmanager refused alerts; will retry")
                    }
                    Err(e) => {
                        tracing::warn!(target_url = %redact_url(&self.endpoint), error = %without_url(&e), alerts = batch.len(), "Alertmanager unreachable; will retry")
                    }
                }
                self.telemetry.channel("alertmanager", "retried");
                Posted::Later
            }
        }
    }
}

fn alert_severity(alert: &PostableAlert) -> Severity {
    match alert.labels.get("severity").map(String::as_str) {
        Some("critical") => Severity::Critical,
        Some("high") => Severity::High,
        Some("medium") => Severity::Medium,
        _ => Severity::Low,
    }
}
