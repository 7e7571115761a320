//! The intake: the one entry for decoded samples, shared by the write route and the scrapers.
//! It counts what came in, applies the batch to the store (which runs the detectors), routes
//! the resulting events and hands them on with non-blocking sends. Synchronous, and lock-free
//! apart from the store's shard locks and the books' short mutexes: it must never wait on a
//! queue, a task or I/O.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::sync::mpsc::Sender;

use super::router::EventRouter;
use super::unix_ms;
use crate::config::IngestConfig;
use crate::detect::event::AnomalyEvent;
use crate::incident::Incident;
use crate::ingest::Batch;
use crate::notify::Notifier;
use crate::store::Store;
use crate::telemetry::Telemetry;

/// Decode buffers larger than this are not kept in the pool, so one huge request does not pin
/// its memory forever.
const POOLED_BODY_MAX: usize = 8 << 20;

/// A write is refused while a hand-off queue has less than 1/BACKLOG_FREE_SHARE of its room
/// free: one request's events (at most a few per series it touches) must still fit, or they
/// would be dropped after the samples were acknowledged.
const BACKLOG_FREE_SHARE: usize = 8;

/// A hand-off queue too full to take another batch's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub queue: &'static str,
    pub queued: usize,
    pub capacity: usize,
}

impl std::fmt::Display for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} queue holds {} of {} and is falling behind",
            self.queue, self.queued, self.capacity
        )
    }
}

fn backlog_of(queue: &'static str, free: usize, capacity: usize) -> Option<Backlog> {
    (free.saturating_mul(BACKLOG_FREE_SHARE) < capacity).then_some(Backlog {
        queue,
        queued: capacity.saturating_sub(free),
        capacity,
    })
}

pub struct Intake {
    /// The `ingest` section: limits, auth, retry hint.
    pub config: IngestConfig,
    pub store: Arc<Store>,
    pub telemetry: Arc<Telemetry>,
    /// Write requests in flight; a request that finds none free is answered 429.
    pub inflight: Arc<Semaphore>,
    pub(super) router: EventRouter,
    pub(super) notifier: Notifier,
    pub(super) rca_queue: Sender<String>,
    /// Resolved incidents on their way into the knowledge base (written off the request path).
    pub(super) learn_queue: Sender<Incident>,
    /// Newest sample time seen (ms), the incidents' clock: sample time, so the simulator and
    /// replays age incidents as live traffic does.
    pub(super) sample_clock: Arc<AtomicI64>,
    batches: Mutex<Vec<Batch>>,
}

impl Intake {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        config: IngestConfig,
        store: Arc<Store>,
        telemetry: Arc<Telemetry>,
        router: EventRouter,
        notifier: Notifier,
        rca_queue: Sender<String>,
        learn_queue: Sender<Incident>,
        sample_clock: Arc<AtomicI64>,
    ) -> Self {
        Self {
            inflight: Arc::new(Semaphore::new(config.max_inflight_requests.max(1))),
            config,
            store,
            telemetry,
            router,
            notifier,
            rca_queue,
            learn_queue,
            sample_clock,
            batches: Mutex::new(Vec::new()),
        }
    }

    /// The first hand-off queue behind detection that is nearly full, if any: the write route
    /// answers 429 rather than accept samples whose events it would have to drop.
    pub fn backlog(&self) -> Option<Backlog> {
        let local = [
            (
                "rca",
                self.rca_queue.capacity(),
                self.rca_queue.max_capacity(),
            ),
            (
                "knowledge_base",
                self.learn_queue.capacity(),
                self.learn_queue.max_capacity(),
            ),
        ];
        local
            .into_iter()
            .chain(self.notifier.queue_room())
            .find_map(|(queue, free, capacity)| backlog_of(queue, free, capacity))
    }

    /// The incidents' clock: the newest sample time seen (ms).
    pub fn sample_clock_ms(&self) -> i64 {
        self.sample_clock.load(Ordering::Relaxed)
    }

    /// Stores and judges a decoded batch (remote write or scrape): counters, store, anomaly
    /// events. Synchronous and lock-free apart from the store's shard locks.
    pub fn apply_batch(&self, batch: &mut Batch) -> crate::store::ApplyStats {
        use crate::telemetry::RejectReason;
        let t = &self.telemetry;
        t.histograms_received
            .fetch_add(batch.histograms, Ordering::Relaxed);
        t.exemplars_received
            .fetch_add(batch.exemplars, Ordering::Relaxed);
        t.metadata_received
            .fetch_add(batch.metadata.len() as u64, Ordering::Relaxed);
        t.reject(RejectReason::NativeHistogramUnsupported, batch.histograms);
        self.store.record_metadata(batch);
        if let Some(&(ts, _)) = batch.samples.last() {
            // A sender's clock far in the future must not age every incident at once.
            self.sample_clock
                .fetch_max(ts.min(unix_ms() + 300_000), Ordering::Relaxed);
        }
        let detect_started = Instant::now();
        let mut events = Vec::new();
        let stats = self.store.apply(batch, &mut events);
        t.detection_duration
            .observe(detect_started.elapsed().as_secs_f64());
        t.reject(RejectReason::Duplicate, stats.duplicates);
        t.reject(RejectReason::OutOfOrder, stats.out_of_order);
        t.reject(RejectReason::SeriesLimit, stats.refused_series_limit);
        t.reject(RejectReason::InvalidLabels, stats.refused_invalid_labels);
        t.series_created
            .fetch_add(stats.new_series, Ordering::Relaxed);
        t.shard_lock_waits
            .fetch_add(stats.lock_waits, Ordering::Relaxed);
        t.samples_detected
            .fetch_add(stats.detected, Ordering::Relaxed);
        self.handle_events(events);
        stats
    }

    /// Records anomaly transitions and hands them to the notifiers and the RCA queue (never
    /// waits).
    pub fn handle_events(&self, events: Vec<AnomalyEvent>) {
        self.telemetry
            .anomaly_events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        let routed = self.router.route(events);
        for (event, anomaly, previous) in routed.notices {
            self.notifier.publish(&event, anomaly, previous);
        }
        for (step, incident) in routed.incident_steps {
            self.notifier.publish_incident(step, incident);
        }
        for id in routed.analyze {
            if self.rca_queue.try_send(id).is_err() {
                self.telemetry.channel("rca", "dropped");
            }
        }
        self.send_resolved(routed.resolved);
    }

    /// Ages incidents by the sample clock and announces the ones that resolved.
    pub fn tick_incidents(&self) {
        self.router
            .incidents
            .tick(self.sample_clock.load(Ordering::Relaxed));
        self.send_resolved(self.router.take_resolved());
    }

    fn send_resolved(&self, resolved: Vec<Incident>) {
        for incident in resolved {
            if self.learn_queue.try_send(incident.clone()).is_err() {
                self.telemetry.channel("knowledge_base", "dropped");
            }
            self.notifier
                .publish_incident("incident.resolved", incident);
        }
    }

    pub fn take_batch(&self) -> Batch {
        self.batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    pub fn return_batch(&self, mut batch: Batch) {
        if batch.body.capacity() > POOLED_BODY_MAX {
            return;
        }
        batch.clear();
        let mut pool = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < self.config.max_inflight_requests {
            pool.push(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_backlogged_below_an_eighth_free() {
        assert_eq!(backlog_of("rca", 1024, 1024), None);
        assert_eq!(backlog_of("rca", 128, 1024), None);
        let b = backlog_of("rca", 127, 1024).expect("backlogged");
        assert_eq!((b.queued, b.capacity), (897, 1024));
        assert_eq!(
            b.to_string(),
            "the rca queue holds 897 of 1024 and is falling behind"
        );
        // A queue of one is full with one item in it, and free when empty.
        assert!(backlog_of("webhook", 0, 1).is_some());
        assert!(backlog_of("webhook", 1, 1).is_none());
    }
}
