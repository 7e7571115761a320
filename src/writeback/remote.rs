//! Remote-writes the exported series (RW 1.0) at a fixed interval, from a bounded queue.
//!
//! A batch that fails with a retryable error stays at the head of the queue and is retried with
//! backoff; when the queue is full the oldest batch is dropped and counted, since a newer
//! snapshot of the same series supersedes it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::config::WritebackConfig;
use crate::ingest::encode::{compress, encode_v1};
use crate::notify::http::{ClientError, backoff, client, redact_url};
use crate::store::Store;
use crate::telemetry::Telemetry;

pub struct RemoteWriter {
    client: reqwest::Client,
    config: WritebackConfig,
    store: Arc<Store>,
    telemetry: Arc<Telemetry>,
    queue: VecDeque<Vec<u8>>,
}

impl RemoteWriter {
    pub fn new(
        config: &WritebackConfig,
        store: Arc<Store>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            client: client(Duration::from_secs(config.timeout_seconds.max(1)))?,
            config: config.clone(),
            store,
            telemetry,
            queue: VecDeque::new(),
        })
    }

    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut raw = Vec::new();
        loop {
            tick.tick().await;
            let series = super::collect(&self.store, self.config.export_all);
            if !series.is_empty() {
                encode_v1(&super::to_timeseries(&series), &mut raw);
                match compress(&raw) {
                    Ok(body) => {
                        if self.queue.len() >= self.config.queue_size.max(1) {
                            self.queue.pop_front();
                            self.telemetry.channel("remote_write", "dropped");
                            tracing::warn!("write-back queue full; dropped the oldest batch");
                        }
                        self.queue.push_back(body);
                    }
                    Err(e) => tracing::error!(error = %e, "cannot compress write-back batch"),
                }
            }
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        let target = redact_url(&self.config.url);
        while let Some(body) = self.queue.front() {
            let mut attempt = 0;
            let sent = loop {
                let mut req = self
                    .client
                    .post(&self.config.url)
                    .header("Content-Type", "application/x-protobuf")
                    .header("Content-Encoding", "snappy")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(body.clone());
                if !self.config.username.is_empty() {
                    req =
                        req.basic_auth(&self.config.username, Some(self.config.password.expose()));
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => break Some(true),
                    Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        tracing::warn!(target_url = %target, %status, response = %text.chars().take(300).collect::<String>(), "write-back batch refused; dropped");
                        break Some(false);
                    }
                    outcome => {
                        if let Ok(r) = &outcome {
                            tracing::warn!(target_url = %target, status = %r.status(), "write-back failed; retrying");
                        } else {
                            tracing::warn!(target_url = %target, "write-back receiver unreachable; retrying");
                        }
                        if attempt >= self.config.max_retries {
                            break None;
                        }
                        self.telemetry.channel("remote_write", "retried");
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                    }
                }
            };
            match sent {
                Some(true) => self.telemetry.channel("remote_write", "sent"),
                Some(false) => self.telemetry.channel("remote_write", "failed"),
                // Keep it queued; the next tick tries again.
                None => return,
            }
            self.queue.pop_front();
        }
    }
}
