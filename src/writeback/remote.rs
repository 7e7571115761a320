//! Remote-writes the exported series (RW 1.0) at a fixed interval, from a bounded queue.
//!
//! A batch that fails with a retryable error stays at the head of the queue and is retried with
//! backoff; when the queue is full the oldest batch is dropped and counted, since a newer
//! snapshot of the same series supersedes it.
//!
//! A series is sent again only when its source has a newer sample: a receiving Prometheus
//! refuses (and rolls back) a whole request holding a second, different value at a timestamp it
//! already has, which a score re-evaluated at upkeep would otherwise produce.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::config::WritebackConfig;
use crate::ingest::encode::{compress, encode_v1};
use crate::net::{ClientError, client, delay, redact_url, retry_after, retryable_status};
use crate::store::Store;
use crate::telemetry::Telemetry;

pub struct RemoteWriter {
    client: reqwest::Client,
    config: WritebackConfig,
    store: Arc<Store>,
    telemetry: Arc<Telemetry>,
    queue: VecDeque<Vec<u8>>,
    sent: LastSent,
}

/// The newest source timestamp written per exported series (keyed by a hash of its labels).
#[derive(Default)]
pub struct LastSent(HashMap<u64, i64>);

impl LastSent {
    /// Keeps the series whose timestamp is newer than the one last sent, and forgets series
    /// no longer exported so the map stays as large as one export.
    pub fn fresh(&mut self, series: Vec<super::ExportSeries>) -> Vec<super::ExportSeries> {
        let mut seen = HashMap::with_capacity(series.len());
        let mut out = Vec::with_capacity(series.len());
        for s in series {
            let key = xxhash_rust::xxh3::xxh3_64(format!("{:?}", s.labels).as_bytes());
            let before = self.0.get(&key).copied().unwrap_or(i64::MIN);
            seen.insert(key, before.max(s.timestamp_ms));
            if s.timestamp_ms > before {
                out.push(s);
            }
        }
        self.0 = seen;
        out
    }
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
            sent: LastSent::default(),
        })
    }

    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut raw = Vec::new();
        loop {
            tick.tick().await;
            let series = self
                .sent
                .fresh(super::collect(&self.store, self.config.export_all));
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
                    Ok(r) if !retryable_status(r.status()) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        tracing::warn!(target_url = %target, %status, response = %text.chars().take(300).collect::<String>(), "write-back batch refused; dropped");
                        break Some(false);
                    }
                    outcome => {
                        let hint = outcome.as_ref().ok().and_then(|r| retry_after(r.headers()));
                        if let Ok(r) = &outcome {
                            tracing::warn!(target_url = %target, status = %r.status(), "write-back failed; retrying");
                        } else {
                            tracing::warn!(target_url = %target, "write-back receiver unreachable; retrying");
                        }
                        if attempt >= self.config.max_retries {
                            break None;
                        }
                        self.telemetry.channel("remote_write", "retried");
                        tokio::time::sleep(delay(attempt, hint)).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writeback::ExportSeries;

    fn export(pod: &str, ts: i64) -> ExportSeries {
        ExportSeries {
            labels: vec![("pod".into(), pod.into())],
            timestamp_ms: ts,
            values: [0.5, 1.0, 0.9, 1.1],
            forecast: Vec::new(),
            breach_in_seconds: None,
        }
    }

    #[test]
    fn only_series_with_a_newer_sample_are_sent_again() {
        let mut sent = LastSent::default();
        assert_eq!(sent.fresh(vec![export("a", 10), export("b", 10)]).len(), 2);
        let again = sent.fresh(vec![export("a", 10), export("b", 20)]);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].labels[0].1, "b");
        // A series that left the export and comes back is sent, but never an older sample.
        assert!(sent.fresh(vec![export("b", 20)]).is_empty());
        assert_eq!(sent.fresh(vec![export("a", 10)]).len(), 1);
        assert!(sent.fresh(vec![export("a", 5)]).is_empty());
    }
}
