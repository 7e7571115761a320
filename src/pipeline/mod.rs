//! The running agent's wiring: builds every stage from a [`Config`], owns the handles routes
//! and workers share (store, books, notifier, remediator), takes each decoded batch into the
//! store and sends what the [`router`] makes of its events to the notifiers and the RCA queue.
//! The tasks live in [`topology`], persistence at start and stop in [`persist`]. It decides
//! nothing itself: detection, grouping, analysis and action belong to their layers.

pub mod intake;
pub mod persist;
pub mod reload;
pub mod router;
pub mod tasks;
pub mod topology;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::detect::book::AnomalyBook;
use crate::incident::{self, IncidentBook};
use crate::model::clock::now_ms as unix_ms;
use crate::notify::Notifier;
use crate::store::{Store, StoreOptions};
use crate::telemetry::Telemetry;
use crate::{BuildError, act, analyze, decide, ingest};
use intake::Intake;
use router::EventRouter;
use topology::Topology;

/// Resolved anomalies kept for the API after they end.
const RESOLVED_HISTORY: usize = 10_000;

/// The running agent: store, detectors, anomaly book, notifiers and their wiring.
pub struct Pipeline {
    pub config: Config,
    pub store: Arc<Store>,
    pub book: Arc<AnomalyBook>,
    pub telemetry: Arc<Telemetry>,
    pub notifier: Notifier,
    /// The entry for decoded samples (write route, scrapers).
    pub intake: Arc<Intake>,
    /// Anomalies grouped into incidents.
    pub incidents: Arc<IncidentBook>,
    /// Root-cause analysis of incidents (run by a background worker).
    pub analyzer: Arc<analyze::Analyzer>,
    /// Pull mode's targets and their health.
    pub scrape_health: Arc<ingest::scrape::ScrapeHealth>,
    /// Plans, approvals and their execution, with the audit log.
    pub remediator: Arc<act::remediator::Remediator>,
    /// The background tasks and their shutdown.
    pub topology: Topology,
    /// Config reloads (`SIGHUP`, `POST /-/reload`) and their outcome gauges.
    pub reloader: reload::Reloader,
    rca_receiver: Mutex<Option<tokio::sync::mpsc::Receiver<String>>>,
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
        let topology = Topology::default();
        let (notifier, workers) = Notifier::start(
            &config.notification,
            telemetry.clone(),
            topology.token(),
            Some(std::path::Path::new(&config.app.data_dir)),
        )?;
        for worker in workers {
            topology.spawn_draining(worker);
        }
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
        topology.spawn_draining(tasks::write_knowledge(
            learn_receiver,
            knowledge.clone(),
            analyzer.remote_knowledge.clone(),
            topology.token(),
        ));
        let (rca_queue, rca_receiver) = tokio::sync::mpsc::channel(config.rca.queue_size.max(1));
        let incidents = Arc::new(IncidentBook::new(incident::IncidentParams::from_config(
            &config.incidents,
        )));
        let book = Arc::new(AnomalyBook::new(RESOLVED_HISTORY));
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
            &persist::audit_dir(&config),
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
        let intake = Arc::new(Intake::new(
            config.ingest.clone(),
            store.clone(),
            telemetry.clone(),
            EventRouter {
                book: book.clone(),
                incidents: incidents.clone(),
            },
            notifier.clone(),
            rca_queue,
            learn_queue,
            sample_clock,
        ));
        Ok(Arc::new(Self {
            remediator,
            analyzer: Arc::new(analyzer),
            rca_receiver: Mutex::new(Some(rca_receiver)),
            store,
            intake,
            book,
            topology,
            scrape_health: Arc::default(),
            incidents,
            notifier,
            telemetry,
            reloader: reload::Reloader::new(&config),
            config,
            started: Instant::now(),
            ready: AtomicBool::new(false),
        }))
    }

    /// Runs the periodic upkeep now, on this thread (the simulator drives it in simulated time).
    pub fn upkeep(&self) {
        let min_strength = self.config.anomaly_detection.seasonality.min_strength;
        let events = self.store.maintain(min_strength);
        self.intake.handle_events(events);
        self.intake.tick_incidents();
    }

    /// Runs the RCA of one incident now and stores it; returns it.
    pub async fn analyze_incident(&self, id: &str) -> Option<analyze::Rca> {
        let incident = self.incidents.get(id)?;
        let now = self.intake.sample_clock_ms();
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

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}
