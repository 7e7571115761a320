//! sre-agent: a Prometheus remote-write sink that detects anomalies on every sample.
//!
//! Data flows one way (see `docs/ARCHITECTURE.md`):
//! `ingest` (decode) → `store` (registry, rings) → `detect` (online detectors, lifecycle) →
//! `notify` (webhooks, Alertmanager) and `writeback` (/metrics, remote write out); `api` serves
//! HTTP and `sim` is the built-in exchange simulator. [`Pipeline`] wires them from a [`Config`].

// Data from outside (requests, files, config) must never panic the process: the library may
// not unwrap, expect or panic outside tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod act;
pub mod analyze;
pub mod api;
pub mod config;
pub mod decide;
pub mod detect;
pub mod incident;
pub mod ingest;
pub mod model;
pub mod net;
pub mod notify;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod writeback;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::Semaphore;

pub use config::Config;

use detect::book::AnomalyBook;
use detect::event::{AnomalyEvent, EventKind};
use ingest::Batch;
use notify::Notifier;
use store::{Store, StoreOptions};
use telemetry::Telemetry;

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Client(#[from] net::ClientError),
    #[error(transparent)]
    Rules(#[from] analyze::rules::RulesError),
    #[error(transparent)]
    Knowledge(#[from] analyze::knowledge::KnowledgeError),
    #[error(transparent)]
    Playbooks(#[from] decide::playbooks::PlaybookError),
    #[error(transparent)]
    Audit(#[from] act::audit::AuditError),
}

use model::clock::now_ms as unix_ms;

/// Resolved anomalies kept for the API after they end.
const RESOLVED_HISTORY: usize = 10_000;
/// Decode buffers larger than this are not kept in the pool, so one huge request does not pin
/// its memory forever.
const POOLED_BODY_MAX: usize = 8 << 20;

/// The running agent: store, detectors, anomaly book, notifiers and their wiring.
pub struct Pipeline {
    pub config: Config,
    pub store: Arc<Store>,
    pub book: Arc<AnomalyBook>,
    pub telemetry: Arc<Telemetry>,
    pub notifier: Notifier,
    pub inflight: Arc<Semaphore>,
    /// Anomalies grouped into incidents.
    pub incidents: Arc<incident::IncidentBook>,
    /// Root-cause analysis of incidents (run by a background worker).
    pub analyzer: Arc<analyze::Analyzer>,
    rca_queue: tokio::sync::mpsc::Sender<String>,
    /// Resolved incidents on their way into the knowledge base (written off the request path).
    learn_queue: tokio::sync::mpsc::Sender<incident::Incident>,
    rca_receiver: Mutex<Option<tokio::sync::mpsc::Receiver<String>>>,
    /// Newest sample time seen (ms), the incidents' clock: sample time, so the simulator and
    /// replays age incidents as live traffic does.
    sample_clock: Arc<std::sync::atomic::AtomicI64>,
    /// Pull mode's targets and their health.
    pub scrape_health: Arc<ingest::scrape::ScrapeHealth>,
    /// Plans, approvals and their execution, with the audit log.
    pub remediator: Arc<act::remediator::Remediator>,
    batches: Mutex<Vec<Batch>>,
    started: Instant,
    ready: AtomicBool,
}

impl Pipeline {
    /// Builds the pipeline and starts its notifier workers; call inside a tokio runtime.
    pub fn new(config: Config) -> Result<Arc<Self>, BuildError> {
        Self::with_event_source(config, None)
    }

    /// [`Pipeline::new`] with a source of cluster events for the RCA (the simulator's cluster
    /// in the demo; the Kubernetes API in a deployment).
    pub fn with_event_source(
        config: Config,
        events: Option<Arc<dyn analyze::events::EventSource>>,
    ) -> Result<Arc<Self>, BuildError> {
        Self::build(config, events, Vec::new())
    }

    /// The audit log's directory: `auto_remediation.audit_dir`, else `app.data_dir`.
    pub fn audit_dir(config: &Config) -> std::path::PathBuf {
        let dir = &config.auto_remediation.audit_dir;
        std::path::PathBuf::from(if dir.is_empty() {
            &config.app.data_dir
        } else {
            dir
        })
    }

    /// [`Pipeline::with_event_source`] with executors for remediation beyond the built-in HTTP
    /// one (the Kubernetes executor in a deployment, the simulated cluster's in the demo).
    pub fn build(
        config: Config,
        events: Option<Arc<dyn analyze::events::EventSource>>,
        executors: Vec<Arc<dyn act::executor::Executor>>,
    ) -> Result<Arc<Self>, BuildError> {
        let catalog = config.catalog()?;
        let rules = analyze::rules::RulesFile::load(&config.rca.rules_file)?;
        let options = StoreOptions::from_config(&config);
        let telemetry = Arc::new(Telemetry::default());
        let notifier = Notifier::start(&config.notification, telemetry.clone())?;
        let store = Arc::new(Store::new(options, catalog));
        let loki = if config.loki.url.is_empty() {
            None
        } else {
            Some(analyze::logs::Loki::new(
                &config.loki.url,
                Duration::from_secs(config.loki.timeout_seconds.max(1)),
                2000,
            )?)
        };
        let data_dir = std::path::PathBuf::from(&config.app.data_dir);
        let (knowledge, skipped) = analyze::knowledge::KnowledgeBase::open(
            config.rca.knowledge_persist.then_some(data_dir.as_path()),
        )?;
        if skipped > 0 {
            tracing::warn!(skipped, "knowledge base: damaged lines skipped");
        }
        let knowledge = Arc::new(knowledge);
        let analyzer = analyze::Analyzer::new(
            analyze::AnalyzerParams::from_config(&config.rca),
            rules,
            store.clone(),
            events,
            loki,
            knowledge.clone(),
            if config.llm.enabled() {
                Some(analyze::llm::Llm::new(&config.llm)?)
            } else {
                None
            },
        );
        let (learn_queue, learn_receiver) = tokio::sync::mpsc::channel::<incident::Incident>(1024);
        let remote = analyzer.remote_knowledge.clone();
        tokio::spawn(async move {
            let mut queue = learn_receiver;
            while let Some(incident) = queue.recv().await {
                let kb = knowledge.clone();
                let entry = analyze::knowledge::from_incident(&incident);
                let written = entry.clone();
                match tokio::task::spawn_blocking(move || kb.add(written)).await {
                    Ok(Ok(())) => {
                        tracing::info!(incident = %incident.id, "incident written to the knowledge base")
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(incident = %incident.id, error = %e, "knowledge base write failed")
                    }
                    Err(e) => tracing::warn!(error = %e, "knowledge base writer failed"),
                }
                if let Some(r) = remote.get()
                    && let Err(e) = r.upsert(&entry).await
                {
                    tracing::warn!(incident = %incident.id, store = r.name(), error = %e, "knowledge base mirror write failed");
                }
            }
        });
        let (rca_queue, rca_receiver) = tokio::sync::mpsc::channel(config.rca.queue_size.max(1));
        let incidents = Arc::new(incident::IncidentBook::new(
            incident::IncidentParams::from_config(&config.incidents),
        ));
        let sample_clock = Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN));
        let playbooks_dir = &config.auto_remediation.playbooks_dir;
        let playbooks = decide::playbooks::load(
            (!playbooks_dir.is_empty()).then(|| std::path::Path::new(playbooks_dir.as_str())),
        )?;
        let mut executors = executors;
        executors.push(Arc::new(act::http::HttpExecutor::new(
            Duration::from_secs(10),
            3,
        )?));
        let remediator = Arc::new(act::remediator::Remediator::open(
            &Self::audit_dir(&config),
            act::remediator::Parts {
                config: config.auto_remediation.clone(),
                risk: config.risk_assessment.clone(),
                playbooks,
                executors,
                incidents: incidents.clone(),
                notifier: notifier.clone(),
                sample_clock: sample_clock.clone(),
            },
        )?);
        Ok(Arc::new(Self {
            remediator,
            analyzer: Arc::new(analyzer),
            learn_queue,
            rca_queue,
            rca_receiver: Mutex::new(Some(rca_receiver)),
            store,
            book: Arc::new(AnomalyBook::new(RESOLVED_HISTORY)),
            inflight: Arc::new(Semaphore::new(config.ingest.max_inflight_requests.max(1))),
            scrape_health: Arc::default(),
            incidents,
            sample_clock,
            notifier,
            telemetry,
            config,
            batches: Mutex::new(Vec::new()),
            started: Instant::now(),
            ready: AtomicBool::new(false),
        }))
    }

    /// Starts periodic upkeep (eviction, seasonality) and write-back, then marks the agent ready.
    pub fn start_background(self: &Arc<Self>) -> Result<(), BuildError> {
        let p = self.clone();
        let every =
            Duration::from_secs(self.config.anomaly_detection.check_interval_seconds.max(1));
        let min_strength = self.config.anomaly_detection.seasonality.min_strength;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let store = p.store.clone();
                // Upkeep walks every series: keep it off the async workers.
                let events = tokio::task::spawn_blocking(move || store.maintain(min_strength))
                    .await
                    .unwrap_or_default();
                p.handle_events(events);
                p.incidents.tick(p.sample_clock.load(Ordering::Relaxed));
                p.notify_resolved_incidents();
                p.remediator.expire().await;
                let me = p.clone();
                let _ = tokio::task::spawn_blocking(move || me.save_incidents()).await;
            }
        });
        if let Some(dir) = self.snapshot_dir() {
            let store = self.store.clone();
            let every = self.config.store.snapshot_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let (store, dir) = (store.clone(), dir.clone());
                    let _ = tokio::task::spawn_blocking(move || save_snapshot(&store, &dir)).await;
                }
            });
        }
        if !self.config.writeback.url.is_empty() {
            let writer = writeback::remote::RemoteWriter::new(
                &self.config.writeback,
                self.store.clone(),
                self.telemetry.clone(),
            )?;
            tokio::spawn(writer.run());
        }
        self.start_scrapers()?;
        self.start_rca_worker();
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Analyzes incidents as they open and grow, one at a time, coalescing repeated requests.
    fn start_rca_worker(self: &Arc<Self>) {
        let Some(mut queue) = self
            .rca_receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let p = self.clone();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut ids = vec![first];
                while let Ok(more) = queue.try_recv() {
                    if !ids.contains(&more) {
                        ids.push(more);
                    }
                }
                for id in ids {
                    if p.analyze_incident(&id).await.is_some() {
                        p.remediator.consider(&id).await;
                    }
                }
            }
        });
    }

    /// Runs the RCA of one incident now and stores it; returns it.
    pub async fn analyze_incident(&self, id: &str) -> Option<analyze::Rca> {
        let incident = self.incidents.get(id)?;
        let now = self.sample_clock.load(Ordering::Relaxed);
        let rca = self.analyzer.analyze(&incident, now).await;
        // Once an old incident's samples have left the rings, a new analysis sees nothing: keep
        // the one made while the evidence was there.
        if rca.moved.is_empty()
            && let Some(previous) = incident.rca.as_ref().filter(|r| !r.moved.is_empty())
        {
            return Some(previous.clone());
        }
        match rca.top() {
            Some(top) => {
                tracing::info!(incident = %id, cause = %top.cause, confidence = format!("{:.2}", top.confidence), root_cause = %top.root_cause, took_ms = rca.duration_ms, "root-cause analysis")
            }
            None => {
                tracing::info!(incident = %id, took_ms = rca.duration_ms, "root-cause analysis found no hypothesis")
            }
        }
        let changed = self.incidents.set_rca(id, rca.clone());
        if changed && let Some(snapshot) = self.incidents.get(id) {
            self.notifier
                .publish_incident("incident.analyzed", snapshot);
        }
        Some(rca)
    }

    /// Pull mode: one task per configured target, each scraping at its interval (first scrape
    /// offset within the interval by a hash of the target, as Prometheus spreads its load) and
    /// feeding the store exactly as a remote-write request does.
    fn start_scrapers(self: &Arc<Self>) -> Result<(), BuildError> {
        let defaults = &self.config.scrape;
        if defaults.targets.is_empty() {
            return Ok(());
        }
        // Per-request timeouts apply; the client's own is only a backstop.
        let http = net::client(Duration::from_secs(600))?;
        for target in &defaults.targets {
            let mut scrape = ingest::scrape::TargetScrape::new(target, defaults);
            self.scrape_health.register(&scrape);
            tracing::info!(job = %scrape.job, instance = %scrape.instance, url = %scrape.shown_url, interval = ?scrape.interval, "scraping target");
            let (p, http, max_bytes) = (self.clone(), http.clone(), defaults.max_body_bytes);
            let offset_ms =
                xxhash_rust::xxh3::xxh3_64(format!("{}{}", scrape.job, scrape.url).as_bytes())
                    % (scrape.interval.as_millis().max(1) as u64);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(offset_ms)).await;
                let mut tick = tokio::time::interval(scrape.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    let ts_ms = unix_ms();
                    let started = Instant::now();
                    let answer = ingest::scrape::fetch(&http, &scrape, max_bytes).await;
                    let took = started.elapsed();
                    let outcome =
                        scrape.build(answer.as_deref().map_err(Clone::clone), ts_ms, took);
                    if let Some(e) = &outcome.error {
                        tracing::warn!(job = %scrape.job, instance = %scrape.instance, error = %e, "scrape failed");
                    }
                    let stats = p.apply_batch(scrape.batch());
                    p.telemetry
                        .samples_scraped
                        .fetch_add(outcome.samples as u64, Ordering::Relaxed);
                    if let Some(reason) = &stats.first_refusal {
                        tracing::warn!(job = %scrape.job, instance = %scrape.instance, refused = stats.refused(), first_reason = %reason, "scraped samples refused by the store");
                    }
                    p.scrape_health.record(&scrape, ts_ms, took, &outcome);
                    scrape.finish();
                }
            });
        }
        Ok(())
    }

    /// Stores and judges a decoded batch (remote write or scrape): counters, store, anomaly
    /// events. Synchronous and lock-free apart from the store's shard locks.
    pub fn apply_batch(&self, batch: &mut Batch) -> store::ApplyStats {
        use telemetry::RejectReason;
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
        t.samples_detected
            .fetch_add(stats.detected, Ordering::Relaxed);
        self.handle_events(events);
        stats
    }

    /// Runs the periodic upkeep now, on this thread (the simulator drives it in simulated time).
    pub fn upkeep(&self) {
        let min_strength = self.config.anomaly_detection.seasonality.min_strength;
        let events = self.store.maintain(min_strength);
        self.handle_events(events);
        self.incidents
            .tick(self.sample_clock.load(Ordering::Relaxed));
        self.notify_resolved_incidents();
    }

    /// Trains the baselines on Prometheus history (see [`ingest::backfill`]). Call before the
    /// agent accepts writes.
    pub async fn warm_start(
        &self,
    ) -> Result<ingest::backfill::BackfillReport, ingest::backfill::BackfillError> {
        let options = ingest::backfill::BackfillOptions::from_config(&self.config);
        let selector = ingest::backfill::catalog_selector(&self.config)?;
        tracing::info!(url = %net::redact_url(&options.url), lookback = ?options.lookback, "warm start: fetching history");
        ingest::backfill::backfill(&self.store, &options, &selector, unix_ms()).await
    }

    /// Where baselines are snapshotted, unless snapshots are off.
    pub fn snapshot_dir(&self) -> Option<std::path::PathBuf> {
        (!self.config.store.snapshot_interval.is_zero())
            .then(|| std::path::PathBuf::from(&self.config.app.data_dir))
    }

    /// Restores the baselines snapshot, if snapshots are on and one exists. A damaged snapshot
    /// is reported and skipped line by line; start-up goes on either way.
    pub fn restore_snapshot(&self) {
        let Some(dir) = self.snapshot_dir() else {
            return;
        };
        match self.store.load_snapshot(&dir) {
            Ok(Some(r)) if r.rejected > 0 => tracing::warn!(
                created = r.created, rejected = r.rejected, first_errors = ?r.errors,
                "baselines snapshot restored in part"
            ),
            Ok(Some(r)) => tracing::info!(series = r.created, "baselines snapshot restored"),
            Ok(None) => tracing::info!(dir = %dir.display(), "no baselines snapshot yet"),
            Err(e) => tracing::warn!(error = %e, "baselines snapshot not restored"),
        }
    }

    /// Saves incidents when they changed and persistence is on; blocks (file I/O).
    pub fn save_incidents(&self) {
        if !self.config.incidents.persist {
            return;
        }
        let dir = std::path::Path::new(&self.config.app.data_dir);
        match self.incidents.save_if_changed(dir) {
            Ok(true) => tracing::debug!("incidents saved"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "incidents not saved"),
        }
    }

    /// Restores the incidents saved by a previous run, when persistence is on.
    pub fn restore_incidents(&self) {
        if !self.config.incidents.persist {
            return;
        }
        match self
            .incidents
            .restore(std::path::Path::new(&self.config.app.data_dir))
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(incidents = n, "incidents restored"),
            Err(e) => tracing::warn!(error = %e, "incidents not restored"),
        }
    }

    /// Writes the baselines snapshot now (at shutdown); blocks.
    pub fn save_snapshot_now(&self) {
        if let Some(dir) = self.snapshot_dir() {
            save_snapshot(&self.store, &dir);
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
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
        if pool.len() < self.config.ingest.max_inflight_requests {
            pool.push(batch);
        }
    }

    /// Records anomaly transitions and hands them to the notifiers (never waits).
    pub fn handle_events(&self, events: Vec<AnomalyEvent>) {
        // Incident steps of one batch are coalesced: a level shift fires and resolves at once,
        // and an incident's page must not flap open/mitigated within one request.
        // (incident, state before the batch (None: opened in it), state now)
        let mut touched: Vec<(
            String,
            Option<incident::IncidentState>,
            incident::IncidentState,
        )> = Vec::new();
        let mut to_analyze: Vec<String> = Vec::new();
        for e in events {
            self.telemetry
                .anomaly_events
                .fetch_add(1, Ordering::Relaxed);
            let previous = (e.kind == EventKind::Escalated)
                .then(|| {
                    self.book
                        .get(&detect::book::anomaly_id(e.anomaly_id))
                        .ok()
                        .map(|a| a.severity)
                })
                .flatten();
            let mut anomaly = self.book.record(&e);
            let (incident_id, change, state) = self.incidents.observe(&e, &anomaly);
            self.book.set_incident(e.anomaly_id, &incident_id);
            // The state before this batch follows from the first change seen in it.
            match touched.iter_mut().find(|t| t.0 == incident_id) {
                Some(t) => t.2 = state,
                None => {
                    use incident::{Change, IncidentState};
                    let initial = match change {
                        Change::Opened => None,
                        Change::Reopened => Some(IncidentState::Mitigated),
                        Change::Mitigated | Change::Joined => Some(IncidentState::Open),
                        Change::Updated => Some(state),
                    };
                    touched.push((incident_id.clone(), initial, state));
                }
            }
            if change == incident::Change::Opened {
                tracing::info!(incident = %incident_id, first = %anomaly.id, metric = %anomaly.metric, series = %e.labels.display(), "incident opened");
            }
            if matches!(
                change,
                incident::Change::Opened | incident::Change::Joined | incident::Change::Reopened
            ) && !to_analyze.contains(&incident_id)
            {
                to_analyze.push(incident_id.clone());
            }
            anomaly.incident_id = Some(incident_id);
            match e.kind {
                EventKind::Fired | EventKind::Escalated => tracing::info!(
                    id = %anomaly.id, event = ?e.kind, metric = %anomaly.metric, series = %e.labels.display(),
                    category = %anomaly.category, severity = anomaly.severity.as_str(),
                    current = anomaly.value, expected = anomaly.expected, sigma = format!("{:.1}", anomaly.sigma),
                    "anomaly detected"
                ),
                EventKind::Resolved => tracing::info!(
                    id = %anomaly.id, metric = %anomaly.metric, series = %e.labels.display(), reason = ?e.reason, "anomaly resolved"
                ),
            }
            self.notifier.publish(&e, anomaly, previous);
        }
        use incident::IncidentState::{Mitigated, Open};
        for (id, initial, now) in touched {
            let steps: &[&'static str] = match (initial, now) {
                (None, Mitigated) => &["incident.opened", "incident.mitigated"],
                (None, _) => &["incident.opened"],
                (Some(Open), Mitigated) => &["incident.mitigated"],
                (Some(Mitigated), Open) => &["incident.reopened"],
                _ => &[],
            };
            if steps.is_empty() {
                continue;
            }
            let Some(snapshot) = self.incidents.get(&id) else {
                continue;
            };
            for step in steps {
                self.notifier.publish_incident(step, snapshot.clone());
            }
        }
        // Queued after the notifications above, so `incident.analyzed` never precedes
        // `incident.opened`.
        for id in to_analyze {
            if self.rca_queue.try_send(id).is_err() {
                self.telemetry.channel("rca", "dropped");
            }
        }
        self.notify_resolved_incidents();
    }

    fn notify_resolved_incidents(&self) {
        for incident in self.incidents.take_resolved() {
            tracing::info!(incident = %incident.id, anomalies = incident.anomalies.len(), "incident resolved");
            if self.learn_queue.try_send(incident.clone()).is_err() {
                self.telemetry.channel("knowledge_base", "dropped");
            }
            self.notifier
                .publish_incident("incident.resolved", incident);
        }
    }
}

fn save_snapshot(store: &Store, dir: &std::path::Path) {
    let started = Instant::now();
    match store.save_snapshot(dir) {
        Ok(n) => tracing::debug!(
            series = n,
            ms = started.elapsed().as_millis() as u64,
            "baselines snapshot written"
        ),
        Err(e) => tracing::warn!(error = %e, "baselines snapshot failed"),
    }
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    pipeline: Arc<Pipeline>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, api::router(pipeline))
        .with_graceful_shutdown(shutdown)
        .await
}
