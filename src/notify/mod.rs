//! Notification: webhooks and Alertmanager, fed from bounded queues.
//!
//! `Notifier::publish` never waits: it `try_send`s to each channel's queue and counts what a
//! full queue forced it to drop, so a dead receiver can slow nothing but its own worker. Workers
//! retry with exponential backoff.

pub mod alertmanager;
pub mod chat;
pub mod outbox;
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

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Client(#[from] crate::net::ClientError),
    #[error(transparent)]
    Outbox(#[from] outbox::OutboxError),
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
    /// `data_dir`: where a durable webhook outbox goes unless `outbox_dir` says otherwise;
    /// `None` keeps it in memory.
    pub fn start(
        config: &crate::config::NotificationConfig,
        telemetry: Arc<Telemetry>,
        stop: tokio_util::sync::CancellationToken,
        data_dir: Option<&std::path::Path>,
    ) -> Result<(Self, Vec<Worker>), StartError> {
        let mut workers: Vec<Worker> = Vec::new();
        let mut n = Self {
            telemetry: telemetry.clone(),
            ..Default::default()
        };
        if !config.webhook.url.is_empty() {
            let (tx, rx) = mpsc::channel(config.webhook.queue_size.max(1));
            let w = &config.webhook;
            let dir = (!w.outbox_dir.is_empty())
                .then(|| std::path::PathBuf::from(&w.outbox_dir))
                .or_else(|| data_dir.map(std::path::Path::to_path_buf))
                .filter(|_| w.durable);
            let outbox = match dir {
                Some(dir) => {
                    let (outbox, found) = outbox::Outbox::open(&dir, w.outbox_max_bytes)?;
                    if found.pending > 0 || found.damaged > 0 {
                        tracing::info!(pending = found.pending, damaged = found.damaged, dir = %dir.display(), "webhook outbox: undelivered notifications from an earlier run are sent again");
                    }
                    outbox
                }
                None => outbox::Outbox::in_memory(w.outbox_max_bytes),
            };
            let worker = webhook::WebhookWorker::new(w, telemetry.clone(), outbox)?;
            workers.push(Box::pin(worker.run(rx, stop.clone())));
            n.webhook = Some(tx);
            use crate::config::WebhookEvents;
            n.webhook_anomalies = config.webhook.events.contains(&WebhookEvents::Anomaly);
            n.webhook_incidents = config.webhook.events.contains(&WebhookEvents::Incident);
            n.webhook_plans = config.webhook.events.contains(&WebhookEvents::Plan);
        }
        if !config.alertmanager.url.is_empty() {
            let (tx, rx) = mpsc::channel(config.alertmanager.queue_size.max(1));
            let am = &config.alertmanager;
            let outbox = match data_dir.filter(|_| am.durable) {
                Some(dir) => {
                    let (outbox, found) =
                        outbox::Outbox::open_named(dir, outbox::ALERTMANAGER, am.outbox_max_bytes)?;
                    if found.pending > 0 || found.damaged > 0 {
                        tracing::info!(pending = found.pending, damaged = found.damaged, dir = %dir.display(), "Alertmanager outbox: unposted alerts from an earlier run are posted again");
                    }
                    outbox
                }
                None => outbox::Outbox::in_memory(am.outbox_max_bytes),
            };
            let worker = alertmanager::AlertmanagerWorker::new(am, telemetry, outbox)?;
            workers.push(Box::pin(worker.run(rx, stop)));
            n.alertmanager = Some(tx);
        }
        Ok((n, workers))
    }

    /// Each notification queue as (name, free slots, capacity), for the intake's backpressure.
    pub fn queue_room(&self) -> impl Iterator<Item = (&'static str, usize, usize)> + '_ {
        let webhook = self
            .webhook
            .as_ref()
            .map(|tx| ("webhook", tx.capacity(), tx.max_capacity()));
        let alertmanager = self
            .alertmanager
            .as_ref()
            .map(|tx| ("alertmanager", tx.capacity(), tx.max_capacity()));
        webhook.into_iter().chain(alertmanager)
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
    use crate::detect::Severity;
    use crate::detect::book::Anomaly;
    use crate::detect::event::EventKind;

    fn event(id: u64) -> AnomalyEvent {
        crate::detect::event::test_event(
            id,
            EventKind::Fired,
            &[("__name__", "latency")],
            1_000,
            Severity::High,
        )
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
            Notifier::start(&config, Arc::new(Telemetry::default()), stop.clone(), None)
                .expect("start");
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

    /// Records (Idempotency-Key, body) of each POST; answers 503 while `down` is set.
    async fn flaky_receiver(
        down: Arc<std::sync::atomic::AtomicBool>,
    ) -> (String, Arc<Mutex<Vec<(String, serde_json::Value)>>>) {
        let got: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
        let sink = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap,
                      axum::Json(body): axum::Json<serde_json::Value>| {
                    let (sink, down) = (sink.clone(), down.clone());
                    async move {
                        if down.load(std::sync::atomic::Ordering::SeqCst) {
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        let key = headers
                            .get("idempotency-key")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        sink.lock().expect("lock").push((key, body));
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (url, got)
    }

    fn outbox_dir(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("sre-agent-notify-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    async fn wait_for(n: usize, got: &Mutex<Vec<(String, serde_json::Value)>>) -> bool {
        for _ in 0..200 {
            if got.lock().expect("lock").len() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_receiver_down_for_a_while_gets_everything_in_order_once_back() {
        let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (url, got) = flaky_receiver(down.clone()).await;
        let dir = outbox_dir("outage");
        let mut config = NotificationConfig::default();
        config.webhook.url = url;
        config.webhook.events = vec![WebhookEvents::Anomaly];
        let stop = tokio_util::sync::CancellationToken::new();
        let telemetry = Arc::new(Telemetry::default());
        let (notifier, workers) =
            Notifier::start(&config, telemetry.clone(), stop.clone(), Some(&dir)).expect("start");
        let handles: Vec<_> = workers.into_iter().map(tokio::spawn).collect();
        for id in 1..=5 {
            let e = event(id);
            notifier.publish(&e, Anomaly::from_event(&e), None);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(got.lock().expect("lock").is_empty());
        assert!(telemetry.channel_count("webhook", "retried") >= 1);
        down.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(wait_for(5, &got).await, "all delivered after the outage");
        let got = got.lock().expect("lock").clone();
        let ids: Vec<String> = got
            .iter()
            .map(|(_, b)| b["anomaly"]["id"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            ids,
            ["ANO-1", "ANO-2", "ANO-3", "ANO-4", "ANO-5"],
            "in order"
        );
        for (key, body) in &got {
            assert!(!key.is_empty());
            assert_eq!(body["notification_id"], key.as_str());
        }
        assert_eq!(telemetry.channel_count("webhook", "dropped"), 0);
        stop.cancel();
        for h in handles {
            h.await.expect("no panic");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn what_a_stopped_agent_could_not_send_goes_out_after_the_restart() {
        let dir = outbox_dir("restart");
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mut config = NotificationConfig::default();
        config.webhook.url = format!("http://127.0.0.1:{dead}/hook");
        config.webhook.events = vec![WebhookEvents::Anomaly];
        let stop = tokio_util::sync::CancellationToken::new();
        let (notifier, workers) = Notifier::start(
            &config,
            Arc::new(Telemetry::default()),
            stop.clone(),
            Some(&dir),
        )
        .expect("start");
        let handles: Vec<_> = workers.into_iter().map(tokio::spawn).collect();
        for id in 1..=3 {
            let e = event(id);
            notifier.publish(&e, Anomaly::from_event(&e), None);
        }
        stop.cancel();
        for h in handles {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("stops")
                .expect("no panic");
        }

        let (url, got) = flaky_receiver(Arc::default()).await;
        config.webhook.url = url;
        let stop = tokio_util::sync::CancellationToken::new();
        let (_notifier, workers) = Notifier::start(
            &config,
            Arc::new(Telemetry::default()),
            stop.clone(),
            Some(&dir),
        )
        .expect("restart");
        let handles: Vec<_> = workers.into_iter().map(tokio::spawn).collect();
        assert!(
            wait_for(3, &got).await,
            "the outbox is sent after the restart"
        );
        let keys: Vec<String> = got
            .lock()
            .expect("lock")
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(keys.len(), 3);
        assert!(keys[0].ends_with(".anomaly.fired.1"), "{keys:?}");
        stop.cancel();
        for h in handles {
            h.await.expect("no panic");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An Alertmanager stand-in: keeps each POSTed batch of alerts.
    async fn alertmanager_receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
        let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let sink = got.clone();
        let app = axum::Router::new().route(
            "/api/v2/alerts",
            axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                let sink = sink.clone();
                async move {
                    sink.lock().expect("lock").push(body);
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (url, got)
    }

    #[tokio::test]
    async fn alerts_alertmanager_did_not_take_are_posted_in_order_after_a_restart() {
        let dir = outbox_dir("alertmanager");
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mut config = NotificationConfig::default();
        config.alertmanager.url = format!("http://127.0.0.1:{dead}");
        let stop = tokio_util::sync::CancellationToken::new();
        let telemetry = Arc::new(Telemetry::default());
        let (notifier, workers) =
            Notifier::start(&config, telemetry.clone(), stop.clone(), Some(&dir)).expect("start");
        let handles: Vec<_> = workers.into_iter().map(tokio::spawn).collect();
        let pod_event = |id: u64, kind: EventKind| {
            let pod = format!("pod-{id}");
            crate::detect::event::test_event(
                id,
                kind,
                &[("__name__", "latency"), ("pod", pod.as_str())],
                1_000,
                Severity::High,
            )
        };
        for (id, kind) in [
            (1, EventKind::Fired),
            (2, EventKind::Fired),
            (1, EventKind::Resolved),
        ] {
            let e = pod_event(id, kind);
            notifier.publish(&e, Anomaly::from_event(&e), None);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(telemetry.channel_count("alertmanager", "retried") >= 1);
        stop.cancel();
        for h in handles {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("stops")
                .expect("no panic");
        }

        let (url, got) = alertmanager_receiver().await;
        config.alertmanager.url = url;
        let stop = tokio_util::sync::CancellationToken::new();
        let (_notifier, workers) = Notifier::start(
            &config,
            Arc::new(Telemetry::default()),
            stop.clone(),
            Some(&dir),
        )
        .expect("restart");
        let handles: Vec<_> = workers.into_iter().map(tokio::spawn).collect();
        let mut alerts: Vec<(String, bool)> = Vec::new();
        for _ in 0..100 {
            let now = std::time::SystemTime::now();
            alerts = got
                .lock()
                .expect("lock")
                .iter()
                .flat_map(|b| b.as_array().cloned().unwrap_or_default())
                .map(|a| {
                    let ends = humantime::parse_rfc3339_weak(a["endsAt"].as_str().unwrap_or(""))
                        .expect("endsAt");
                    (
                        a["labels"]["pod"].as_str().unwrap_or("").to_string(),
                        ends <= now,
                    )
                })
                .collect();
            if alerts.len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            alerts,
            [
                ("pod-1".to_string(), false),
                ("pod-2".to_string(), false),
                ("pod-1".to_string(), true)
            ],
            "fired, fired, resolved: in order, each once"
        );
        stop.cancel();
        for h in handles {
            h.await.expect("no panic");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
