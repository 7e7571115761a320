//! The agent's own metrics (`sre_agent_*`), rendered in Prometheus text format.
//!
//! Counters are plain atomics bumped once per request or event, never per sample. Labelled
//! counters off the hot path (notifications) use a small locked map.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why samples were not applied; the `reason` label of `sre_agent_samples_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Duplicate,
    OutOfOrder,
    SeriesLimit,
    InvalidLabels,
    NativeHistogramUnsupported,
}

impl RejectReason {
    const ALL: [RejectReason; 5] = [
        Self::Duplicate,
        Self::OutOfOrder,
        Self::SeriesLimit,
        Self::InvalidLabels,
        Self::NativeHistogramUnsupported,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::OutOfOrder => "out_of_order",
            Self::SeriesLimit => "series_limit",
            Self::InvalidLabels => "invalid_labels",
            Self::NativeHistogramUnsupported => "native_histogram_unsupported",
        }
    }
}

const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[derive(Default)]
pub struct Telemetry {
    pub samples_received: AtomicU64,
    /// Samples from pull-mode scrapes (kept apart so remote-write counts stay comparable with
    /// what senders report).
    pub samples_scraped: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
    pub histograms_received: AtomicU64,
    pub exemplars_received: AtomicU64,
    pub metadata_received: AtomicU64,
    pub series_created: AtomicU64,
    pub shard_lock_waits: AtomicU64,
    pub samples_detected: AtomicU64,
    pub anomaly_events: AtomicU64,
    pub write_request_duration: Histogram,
    pub detection_duration: Histogram,
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    channels: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Telemetry {
    pub fn reject(&self, reason: RejectReason, n: u64) {
        if n > 0 {
            let i = RejectReason::ALL
                .iter()
                .position(|r| *r == reason)
                .unwrap_or(0);
            self.rejected[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn rejected(&self, reason: RejectReason) -> u64 {
        let i = RejectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.rejected[i].load(Ordering::Relaxed)
    }

    pub fn request(&self, protocol: &'static str, code: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((protocol, code))
            .or_default() += 1;
    }

    /// Counts a notification or write-back outcome: channel (webhook, alertmanager,
    /// remote_write), result (sent, failed, retried, dropped).
    pub fn channel(&self, channel: &'static str, result: &'static str) {
        *self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((channel, result))
            .or_default() += 1;
    }

    pub fn channel_count(&self, channel: &'static str, result: &'static str) -> u64 {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(channel, result))
            .copied()
            .unwrap_or(0)
    }

    /// Renders the counters; gauges that belong to other parts are passed in.
    pub fn render(
        &self,
        out: &mut String,
        series_active: usize,
        anomalies_active: &[(&str, usize)],
        breakdown: &std::collections::BTreeMap<(String, &'static str, &'static str), usize>,
        memory_bytes: usize,
    ) {
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            out,
            "sre_agent_samples_received_total",
            "Samples in accepted write requests, staleness markers included.",
            self.samples_received.load(Ordering::Relaxed),
        );
        counter(
            out,
            "sre_agent_samples_scraped_total",
            "Samples from pull-mode scrapes of configured targets.",
            self.samples_scraped.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP sre_agent_samples_rejected_total Samples not applied, by reason.\n# TYPE sre_agent_samples_rejected_total counter"
        );
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "sre_agent_samples_rejected_total{{reason=\"{}\"}} {}",
                r.as_str(),
                self.rejected[i].load(Ordering::Relaxed)
            );
        }
        counter(
            out,
            "sre_agent_samples_detected_total",
            "Samples that went through the detectors.",
            self.samples_detected.load(Ordering::Relaxed),
        );
        counter(
            out,
            "sre_agent_histograms_received_total",
            "Native histogram samples received (counted, not stored).",
            self.histograms_received.load(Ordering::Relaxed),
        );
        counter(
            out,
            "sre_agent_exemplars_received_total",
            "Exemplars received (counted, not stored).",
            self.exemplars_received.load(Ordering::Relaxed),
        );
        counter(
            out,
            "sre_agent_metadata_received_total",
            "Metric metadata entries received.",
            self.metadata_received.load(Ordering::Relaxed),
        );
        counter(
            out,
            "sre_agent_series_created_total",
            "Series created.",
            self.series_created.load(Ordering::Relaxed),
        );
        counter(
            out,
            "sre_agent_store_shard_lock_waits_total",
            "Shard locks a write found held and waited for (one per shard per request at most).",
            self.shard_lock_waits.load(Ordering::Relaxed),
        );
        counter(
            out,
            "sre_agent_anomaly_events_total",
            "Anomaly lifecycle transitions (fired, escalated, resolved).",
            self.anomaly_events.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP sre_agent_series_active Series in the store.\n# TYPE sre_agent_series_active gauge\nsre_agent_series_active {series_active}"
        );
        let _ = writeln!(
            out,
            "# HELP sre_agent_series_memory_bytes Bytes held by all series (labels, rings, detector state).\n# TYPE sre_agent_series_memory_bytes gauge\nsre_agent_series_memory_bytes {memory_bytes}"
        );
        let _ = writeln!(
            out,
            "# HELP sre_agent_anomalies_active Firing anomalies by severity.\n# TYPE sre_agent_anomalies_active gauge"
        );
        for (severity, n) in anomalies_active {
            let _ = writeln!(
                out,
                "sre_agent_anomalies_active{{severity=\"{severity}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP sre_agent_anomalies_firing Firing anomalies by category, kind and severity.\n# TYPE sre_agent_anomalies_firing gauge"
        );
        for ((category, kind, severity), n) in breakdown {
            let category = crate::model::labels::escape_value(category);
            let _ = writeln!(
                out,
                "sre_agent_anomalies_firing{{category=\"{category}\",kind=\"{kind}\",severity=\"{severity}\"}} {n}"
            );
        }
        self.write_request_duration.render(
            out,
            "sre_agent_write_request_duration_seconds",
            "Time to decode and apply one write request.",
        );
        self.detection_duration.render(
            out,
            "sre_agent_detection_duration_seconds",
            "Time spent in the store and detectors per write request.",
        );
        let _ = writeln!(
            out,
            "# HELP sre_agent_write_requests_total Write requests by protocol and status code.\n# TYPE sre_agent_write_requests_total counter"
        );
        for ((protocol, code), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "sre_agent_write_requests_total{{protocol=\"{protocol}\",code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP sre_agent_notifications_total Outbound notifications and write-back batches by channel and result.\n# TYPE sre_agent_notifications_total counter"
        );
        for ((channel, result), n) in self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "sre_agent_notifications_total{{channel=\"{channel}\",result=\"{result}\"}} {n}"
            );
        }
    }
}
