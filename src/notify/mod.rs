//! Notification: webhooks and Alertmanager, fed from bounded queues.
//!
//! `Notifier::publish` never waits: it `try_send`s to each channel's queue and counts what a
//! full queue forced it to drop, so a dead receiver can slow nothing but its own worker. Workers
//! retry with exponential backoff.

pub mod alertmanager;
pub mod webhook;

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::detect::book::Anomaly;
use crate::detect::event::{AnomalyEvent, EventKind};
use crate::telemetry::Telemetry;

/// One anomaly transition, as the notifiers need it.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: EventKind,
    pub anomaly: Anomaly,
    /// The anomaly's severity before an escalation (Alertmanager resolves the old alert).
    pub previous_severity: Option<crate::detect::Severity>,
    pub produced_at: std::time::SystemTime,
}

/// What the webhook worker sends.
#[derive(Debug, Clone)]
pub enum WebhookMessage {
    Anomaly(Box<Notice>),
    /// `incident.opened`, `incident.analyzed`, `incident.mitigated`, `incident.resolved`.
    Incident {
        event: &'static str,
        incident: Box<crate::incident::Incident>,
        produced_at: std::time::SystemTime,
    },
    /// `plan.approval_requested` (with callback links), `plan.executed`, `plan.failed`,
    /// `plan.rejected`, `plan.expired`, `plan.diagnose_only`.
    Plan {
        event: &'static str,
        plan: Box<crate::decide::plan::Plan>,
        links: Option<crate::model::links::CallbackLinks>,
    },
}

/// A notification worker, to be spawned by the caller that owns the tasks.
pub type Worker = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

#[derive(Clone, Default)]
pub struct Notifier {
    webhook: Option<mpsc::Sender<WebhookMessage>>,
    webhook_anomalies: bool,
    webhook_incidents: bool,
    webhook_plans: bool,
    alertmanager: Option<mpsc::Sender<Notice>>,
    telemetry: Arc<Telemetry>,
}

impl Notifier {
    /// The notifier and its workers, for the caller to spawn. Once `stop` fires, each worker
    /// closes its queue, sends what is already in it and returns.
    pub fn start(
        config: &crate::config::NotificationConfig,
        telemetry: Arc<Telemetry>,
        stop: tokio_util::sync::CancellationToken,
    ) -> Result<(Self, Vec<Worker>), crate::net::ClientError> {
        let mut workers: Vec<Worker> = Vec::new();
        let mut n = Self {
            telemetry: telemetry.clone(),
            ..Default::default()
        };
        if !config.webhook.url.is_empty() {
            let (tx, rx) = mpsc::channel(config.webhook.queue_size.max(1));
            let worker = webhook::WebhookWorker::new(&config.webhook, telemetry.clone())?;
            workers.push(Box::pin(worker.run(rx, stop.clone())));
            n.webhook = Some(tx);
            use crate::config::WebhookEvents;
            n.webhook_anomalies = config.webhook.events.contains(&WebhookEvents::Anomaly);
            n.webhook_incidents = config.webhook.events.contains(&WebhookEvents::Incident);
            n.webhook_plans = config.webhook.events.contains(&WebhookEvents::Plan);
        }
        if !config.alertmanager.url.is_empty() {
            let (tx, rx) = mpsc::channel(config.alertmanager.queue_size.max(1));
            let worker = alertmanager::AlertmanagerWorker::new(&config.alertmanager, telemetry)?;
            workers.push(Box::pin(worker.run(rx, stop)));
            n.alertmanager = Some(tx);
        }
        Ok((n, workers))
    }

    pub fn publish(
        &self,
        event: &AnomalyEvent,
        anomaly: Anomaly,
        previous_severity: Option<crate::detect::Severity>,
    ) {
        let notice = Notice {
            kind: event.kind,
            anomaly,
            previous_severity,
            produced_at: event.produced_at,
        };
        if let Some(tx) = self.alertmanager.as_ref()
            && let Err(e) = tx.try_send(notice.clone())
        {
            self.telemetry.channel("alertmanager", "dropped");
            tracing::warn!(channel = "alertmanager", anomaly = %notice.anomaly.id, error = %e, "notification queue full or closed; notification dropped");
        }
        if self.webhook_anomalies {
            let id = notice.anomaly.id.clone();
            self.send_webhook(WebhookMessage::Anomaly(Box::new(notice)), &id);
        }
    }

    /// An incident's lifecycle step, as one webhook (when `incident` events are configured).
    pub fn publish_incident(&self, event: &'static str, incident: crate::incident::Incident) {
        if self.webhook_incidents {
            let id = incident.id.clone();
            self.send_webhook(
                WebhookMessage::Incident {
                    event,
                    incident: Box::new(incident),
                    produced_at: std::time::SystemTime::now(),
                },
                &id,
            );
        }
    }

    /// A plan's step (approval request with its links, outcome), when `plan` events are on.
    pub fn publish_plan(
        &self,
        event: &'static str,
        plan: crate::decide::plan::Plan,
        links: Option<crate::model::links::CallbackLinks>,
    ) {
        if self.webhook_plans {
            let id = plan.id.clone();
            self.send_webhook(
                WebhookMessage::Plan {
                    event,
                    plan: Box::new(plan),
                    links,
                },
                &id,
            );
        }
    }

    fn send_webhook(&self, message: WebhookMessage, id: &str) {
        let Some(tx) = &self.webhook else { return };
        if let Err(e) = tx.try_send(message) {
            self.telemetry.channel("webhook", "dropped");
            tracing::warn!(channel = "webhook", subject = %id, error = %e, "notification queue full or closed; notification dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::config::{NotificationConfig, WebhookEvents};
    use crate::detect::book::Anomaly;
    use crate::detect::event::{AnomalyKind, EventKind};
    use crate::detect::{Score, Severity};
    use crate::model::labels::SeriesLabels;

    fn event(id: u64) -> AnomalyEvent {
        let labels = SeriesLabels::from_pairs([(&b"__name__"[..], &b"latency"[..])].into_iter())
            .expect("valid labels");
        AnomalyEvent {
            kind: EventKind::Fired,
            anomaly_kind: AnomalyKind::Anomaly,
            breach: None,
            shift: None,
            peer: None,
            service: None,
            anomaly_id: id,
            series_id: id,
            labels,
            category: "trading".into(),
            started_ts: 1_000,
            ts: 1_000,
            score: Score::default(),
            severity: Severity::High,
            reason: None,
            produced_at: std::time::SystemTime::now(),
        }
    }

    /// A receiver that takes 100 ms per POST, so the queue is still full when shutdown starts.
    async fn slow_receiver() -> (String, Arc<Mutex<usize>>) {
        let got = Arc::new(Mutex::new(0));
        let sink = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                let sink = sink.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    *sink.lock().expect("lock") += 1;
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (url, got)
    }

    #[tokio::test]
    async fn a_stopped_webhook_worker_sends_what_was_queued_then_refuses_more() {
        let (url, got) = slow_receiver().await;
        let mut config = NotificationConfig::default();
        config.webhook.url = url;
        config.webhook.events = vec![WebhookEvents::Anomaly];
        let stop = tokio_util::sync::CancellationToken::new();
        let (notifier, workers) =
            Notifier::start(&config, Arc::new(Telemetry::default()), stop.clone()).expect("start");
        let handles: Vec<_> = workers.into_iter().map(tokio::spawn).collect();
        for id in 1..=5 {
            let e = event(id);
            notifier.publish(&e, Anomaly::from_event(&e), None);
        }
        stop.cancel();
        for h in handles {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("the worker returns once its queue is empty")
                .expect("no panic");
        }
        assert_eq!(
            *got.lock().expect("lock"),
            5,
            "every queued notice was sent"
        );
        let e = event(6);
        notifier.publish(&e, Anomaly::from_event(&e), None);
        assert_eq!(
            notifier.telemetry.channel_count("webhook", "dropped"),
            1,
            "a notice after shutdown is counted as dropped, not lost silently"
        );
    }
}
