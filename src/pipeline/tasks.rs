//! The pipeline's long-lived tasks: periodic upkeep, snapshots, write-back, one scraper per
//! pull target, the RCA worker and the knowledge-base writer, each spawned into the
//! [`Topology`](super::topology::Topology) so shutdown stops and drains them. A task here never
//! runs on the sample path: it reads the store through its shard locks or blocks on
//! `spawn_blocking`, and hands results back through the pipeline's non-blocking calls.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Pipeline, persist, unix_ms};
use crate::BuildError;
use crate::analyze::knowledge::KnowledgeBase;
use crate::incident::Incident;

impl Pipeline {
    /// Starts periodic upkeep (eviction, seasonality) and write-back, then marks the agent ready.
    pub fn start_background(self: &Arc<Self>) -> Result<(), BuildError> {
        let p = self.clone();
        let every =
            Duration::from_secs(self.config.anomaly_detection.check_interval_seconds.max(1));
        let min_strength = self.config.anomaly_detection.seasonality.min_strength;
        self.topology.spawn("upkeep", async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let store = p.store.clone();
                // Upkeep walks every series: keep it off the async workers.
                let events = tokio::task::spawn_blocking(move || store.maintain(min_strength))
                    .await
                    .unwrap_or_default();
                p.intake.handle_events(events);
                p.intake.tick_incidents();
                p.remediator.expire().await;
                let me = p.clone();
                let _ = tokio::task::spawn_blocking(move || me.save_incidents()).await;
            }
        });
        if self.config.incidents.persist {
            // Incidents are saved at the event: a crash loses at most the change being written.
            let p = self.clone();
            let changes = self.incidents.changes();
            self.topology.spawn("incident-journal", async move {
                loop {
                    changes.notified().await;
                    let me = p.clone();
                    let _ = tokio::task::spawn_blocking(move || me.save_incidents()).await;
                }
            });
        }
        if let Some(dir) = self.snapshot_dir() {
            let store = self.store.clone();
            let every = self.config.store.snapshot_interval;
            self.topology.spawn("snapshot", async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let (store, dir) = (store.clone(), dir.clone());
                    let _ =
                        tokio::task::spawn_blocking(move || persist::save_snapshot(&store, &dir))
                            .await;
                }
            });
        }
        if !self.config.writeback.url.is_empty() {
            let writer = crate::writeback::remote::RemoteWriter::new(
                &self.config.writeback,
                self.store.clone(),
                self.telemetry.clone(),
            )?;
            self.topology.spawn("writeback", writer.run());
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
        self.topology.spawn("rca", async move {
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

    /// Pull mode: one task per configured target, each scraping at its interval (first scrape
    /// offset within the interval by a hash of the target, as Prometheus spreads its load) and
    /// feeding the store exactly as a remote-write request does.
    fn start_scrapers(self: &Arc<Self>) -> Result<(), BuildError> {
        let defaults = &self.config.scrape;
        if defaults.targets.is_empty() {
            return Ok(());
        }
        // Per-request timeouts apply; the client's own is only a backstop.
        let http = crate::net::client(Duration::from_secs(600))?;
        for target in &defaults.targets {
            let mut scrape = crate::ingest::scrape::TargetScrape::new(target, defaults);
            self.scrape_health.register(&scrape);
            tracing::info!(job = %scrape.job, instance = %scrape.instance, url = %scrape.shown_url, interval = ?scrape.interval, "scraping target");
            let (intake, health) = (self.intake.clone(), self.scrape_health.clone());
            let (http, max_bytes) = (http.clone(), defaults.max_body_bytes);
            let offset_ms =
                xxhash_rust::xxh3::xxh3_64(format!("{}{}", scrape.job, scrape.url).as_bytes())
                    % (scrape.interval.as_millis().max(1) as u64);
            self.topology.spawn("scrape", async move {
                tokio::time::sleep(Duration::from_millis(offset_ms)).await;
                let mut tick = tokio::time::interval(scrape.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    let ts_ms = unix_ms();
                    let started = Instant::now();
                    let answer = crate::ingest::scrape::fetch(&http, &scrape, max_bytes).await;
                    let took = started.elapsed();
                    let outcome =
                        scrape.build(answer.as_deref().map_err(Clone::clone), ts_ms, took);
                    if let Some(e) = &outcome.error {
                        tracing::warn!(job = %scrape.job, instance = %scrape.instance, error = %e, "scrape failed");
                    }
                    let stats = intake.apply_batch(scrape.batch());
                    intake
                        .telemetry
                        .samples_scraped
                        .fetch_add(outcome.samples as u64, Ordering::Relaxed);
                    if let Some(reason) = &stats.first_refusal {
                        tracing::warn!(job = %scrape.job, instance = %scrape.instance, refused = stats.refused(), first_reason = %reason, "scraped samples refused by the store");
                    }
                    health.record(&scrape, ts_ms, took, &outcome);
                    scrape.finish();
                }
            });
        }
        Ok(())
    }

    /// Stops every task: queues close and drain, within `grace`; then the caller saves state.
    pub async fn shutdown(&self, grace: Duration) -> super::topology::Stopped {
        let stopped = self.topology.shutdown(grace).await;
        tracing::info!(
            finished = stopped.finished,
            aborted = stopped.aborted,
            panicked = stopped.panicked,
            "background tasks stopped"
        );
        stopped
    }
}

/// Writes resolved incidents to the knowledge base (and its remote mirror), off the request
/// path; on shutdown it writes what is queued, then returns.
pub(super) async fn write_knowledge(
    mut queue: mpsc::Receiver<Incident>,
    knowledge: Arc<KnowledgeBase>,
    remote: Arc<std::sync::OnceLock<Arc<dyn crate::analyze::knowledge::RemoteKnowledge>>>,
    stop: CancellationToken,
) {
    let mut closing = false;
    loop {
        let incident = tokio::select! {
            i = queue.recv() => i,
            () = stop.cancelled(), if !closing => { queue.close(); closing = true; continue }
        };
        let Some(incident) = incident else { return };
        let kb = knowledge.clone();
        let entry = crate::analyze::knowledge::from_incident(&incident);
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
}
