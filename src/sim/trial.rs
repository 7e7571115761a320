//! `sre-agent noise-trial`: the agent on a given config, fed [`super::noisy::NoisyExchange`]
//! through the live ingest path (remote-write encode → decode → store → detectors → incidents)
//! in simulated time, and scored as an on-call engineer would score it: was every injected
//! incident paged, how soon, how many pages were false, and did the resolve notices come.
//!
//! No HTTP and no clock: upkeep runs every check interval of simulated time, as in the demo, so
//! the figures do not depend on the machine's speed.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::demo::ms_of;
use super::noisy::{NoisyExchange, POD_SUFFIXES};
use crate::Pipeline;
use crate::config::Config;
use crate::detect::book::AnomalyFilter;
use crate::ingest::encode::encode_v1;
use crate::ingest::{Protocol, decode_decompressed};

/// A page fired this long after an incident's end still belongs to it (the detector confirms
/// over a few samples).
const AFTER_END_MS: i64 = 60_000;

#[derive(Debug, Clone, Serialize)]
pub struct TrialIncident {
    pub name: String,
    pub detected: bool,
    pub delay_seconds: Option<f64>,
    /// Pages on its target (its pods) while it ran.
    pub pages: usize,
    /// Each of them: metric, kind, pod, fired and resolved (seconds after the incident began).
    pub page_details: Vec<String>,
    /// Seconds from its end until the last of its pages resolved; `None`: one never did.
    pub resolved_after_seconds: Option<f64>,
    /// Seconds from its end until the agent's incident for it was mitigated.
    pub mitigated_after_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrialReport {
    pub seed: u64,
    pub step_ms: i64,
    pub series: usize,
    pub samples: u64,
    pub bursts: u64,
    /// Every anomaly that fired (one firing notification each).
    pub pages: usize,
    /// Pages that fired outside every injected incident's time.
    pub false_alarms: Vec<String>,
    /// Pages inside an incident's time but on a pod it did not touch.
    pub off_target: Vec<String>,
    pub incidents: Vec<TrialIncident>,
}

impl TrialReport {
    pub fn false_alarm_share(&self) -> f64 {
        if self.pages == 0 {
            0.0
        } else {
            self.false_alarms.len() as f64 / self.pages as f64
        }
    }

    pub fn median_delay_seconds(&self) -> Option<f64> {
        let mut d: Vec<f64> = self
            .incidents
            .iter()
            .filter_map(|i| i.delay_seconds)
            .collect();
        d.sort_by(f64::total_cmp);
        d.get(d.len() / 2).copied()
    }

    /// Incidents whose pages all resolved within `within_s` of their end.
    pub fn resolved_within(&self, within_s: f64) -> usize {
        self.incidents
            .iter()
            .filter(|i| i.resolved_after_seconds.is_some_and(|s| s <= within_s))
            .count()
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "seed {} at {} s scrapes: {} series, {} samples, {} decoy bursts; {} pages, {} false ({:.1} %), {} off-target; detected {}/{}, median delay {}; resolved within 60 s: {}/{}\n",
            self.seed,
            self.step_ms / 1000,
            self.series,
            self.samples,
            self.bursts,
            self.pages,
            self.false_alarms.len(),
            100.0 * self.false_alarm_share(),
            self.off_target.len(),
            self.incidents.iter().filter(|i| i.detected).count(),
            self.incidents.len(),
            self.median_delay_seconds()
                .map_or("-".into(), |d| format!("{d:.0} s")),
            self.resolved_within(60.0),
            self.incidents.len(),
        );
        let secs = |v: Option<f64>| v.map_or("never".to_string(), |s| format!("{s:.0} s"));
        for i in &self.incidents {
            out.push_str(&format!(
                "  {:<48} detected after {:>6}  pages {:>2}  resolved {:>7} after its end  incident mitigated {:>7} after\n",
                i.name,
                secs(i.delay_seconds),
                i.pages,
                secs(i.resolved_after_seconds),
                secs(i.mitigated_after_seconds),
            ));
        }
        for f in &self.false_alarms {
            out.push_str(&format!("  false alarm: {f}\n"));
        }
        for f in &self.off_target {
            out.push_str(&format!("  off target:  {f}\n"));
        }
        out
    }
}

/// Runs one seed to its end. Call inside a tokio runtime (the pipeline's notifiers need one).
pub fn run(config: Config, seed: u64) -> Result<TrialReport, crate::BuildError> {
    run_at(config, seed, super::noisy::STEP_MS)
}

/// [`run`] with the exchange scraped every `step_ms`.
pub fn run_at(
    mut config: Config,
    seed: u64,
    step_ms: i64,
) -> Result<TrialReport, crate::BuildError> {
    let mut exchange = NoisyExchange::with_step(seed, step_ms);
    let step_ms = exchange.step_ms;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // The run ends at about "now": the agent caps sample time at its clock.
    let base_ms = (now_ms - exchange.length_ms) / 1000 * 1000;
    let scratch = std::env::temp_dir().join(format!(
        "sre-agent-trial-{}-{seed}-{now_ms}",
        std::process::id()
    ));
    config.app.data_dir = scratch.display().to_string();
    config.auto_remediation.audit_dir = String::new();
    config.store.snapshot_interval = std::time::Duration::ZERO;
    config.rca.knowledge_persist = false;
    config.incidents.persist = false;
    config.auto_remediation.enabled = false;
    let upkeep_every = (config.anomaly_detection.check_interval_seconds as i64 * 1000).max(step_ms);
    let pipeline = Pipeline::new(config)?;
    let mut samples = 0u64;
    let mut batch = pipeline.intake.take_batch();
    let mut offset = 0;
    while offset < exchange.length_ms {
        let series = exchange.step(base_ms + offset, offset);
        samples += series.len() as u64;
        batch.clear();
        encode_v1(&series, &mut batch.body);
        if let Err(e) = decode_decompressed(Protocol::V1, &mut batch) {
            tracing::error!(error = %e, "noise trial: the encoder and decoder disagree");
            break;
        }
        pipeline.intake.apply_batch(&mut batch);
        offset += step_ms;
        if offset % upkeep_every < step_ms {
            pipeline.upkeep();
        }
    }
    pipeline.upkeep();
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(score(&pipeline, &exchange, seed, base_ms, samples))
}

fn score(
    pipeline: &Pipeline,
    exchange: &NoisyExchange,
    seed: u64,
    base_ms: i64,
    samples: u64,
) -> TrialReport {
    let anomalies = pipeline.book.list(&AnomalyFilter::default());
    let offset_of = |t: &str| ms_of(t).map(|t| t - base_ms);
    let pod_index = |pod: &str| -> Option<usize> {
        POD_SUFFIXES.iter().position(|suffix| pod.ends_with(suffix))
    };
    let describe = |a: &crate::detect::book::Anomaly| {
        format!(
            "{} {} ({}) on {} at +{}s: {}",
            a.id,
            a.metric,
            format!("{:?}", a.kind).to_lowercase(),
            a.labels.get("pod").cloned().unwrap_or_default(),
            offset_of(&a.fired_at).map_or(0, |t| t / 1000),
            a.description
        )
    };
    let in_window = |at: i64, inc: &super::noisy::NoisyIncident| {
        (inc.start_ms..inc.end_ms + AFTER_END_MS).contains(&at)
    };
    let on_target = |a: &crate::detect::book::Anomaly, inc: &super::noisy::NoisyIncident| {
        a.labels.get("service").map(String::as_str) == Some(inc.service)
            && inc
                .pod
                .is_none_or(|p| a.labels.get("pod").and_then(|n| pod_index(n)) == Some(p))
    };
    let incidents_by_id: std::collections::HashMap<String, crate::incident::Incident> = pipeline
        .incidents
        .list(None)
        .into_iter()
        .map(|i| (i.id.clone(), i))
        .collect();
    let mut false_alarms = Vec::new();
    let mut off_target = Vec::new();
    for a in &anomalies {
        let Some(at) = offset_of(&a.fired_at) else {
            continue;
        };
        let windows: Vec<_> = exchange
            .incidents
            .iter()
            .filter(|inc| in_window(at, inc))
            .collect();
        if windows.is_empty() {
            false_alarms.push(describe(a));
        } else if !windows.iter().any(|inc| on_target(a, inc)) {
            off_target.push(describe(a));
        }
    }
    let incidents = exchange
        .incidents
        .iter()
        .map(|inc| {
            let pages: Vec<_> = anomalies
                .iter()
                .filter(|a| {
                    offset_of(&a.fired_at).is_some_and(|at| in_window(at, inc)) && on_target(a, inc)
                })
                .collect();
            let first = pages
                .iter()
                .filter(|a| inc.metrics.contains(&a.metric.as_str()))
                .filter_map(|a| offset_of(&a.fired_at))
                .min();
            let resolved_after_seconds = if pages.is_empty() {
                None
            } else {
                pages
                    .iter()
                    .map(|a| a.resolved_at.as_deref().and_then(offset_of))
                    .collect::<Option<Vec<i64>>>()
                    .and_then(|v| v.into_iter().max())
                    .map(|t| ((t - inc.end_ms) as f64 / 1000.0).max(0.0))
            };
            let mitigated_after_seconds = pages
                .iter()
                .filter_map(|a| a.incident_id.as_ref())
                .filter_map(|id| incidents_by_id.get(id))
                .map(|i| {
                    i.mitigated_at
                        .as_deref()
                        .or(i.resolved_at.as_deref())
                        .and_then(offset_of)
                })
                .collect::<Option<Vec<i64>>>()
                .and_then(|v| v.into_iter().max())
                .filter(|_| !pages.is_empty())
                .map(|t| ((t - inc.end_ms) as f64 / 1000.0).max(0.0));
            let since_start = |t: Option<i64>| {
                t.map_or("never".to_string(), |t| {
                    format!("{}s", (t - inc.start_ms) / 1000)
                })
            };
            let page_details = pages
                .iter()
                .map(|a| {
                    format!(
                        "{} {:?} on {}: fired +{}, resolved +{}",
                        a.metric,
                        a.kind,
                        a.labels.get("pod").cloned().unwrap_or_default(),
                        since_start(offset_of(&a.fired_at)),
                        since_start(a.resolved_at.as_deref().and_then(offset_of)),
                    )
                })
                .collect();
            TrialIncident {
                page_details,
                name: inc.name.to_string(),
                detected: first.is_some(),
                delay_seconds: first.map(|t| ((t - inc.start_ms) as f64 / 1000.0).max(0.0)),
                pages: pages.len(),
                resolved_after_seconds,
                mitigated_after_seconds,
            }
        })
        .collect();
    TrialReport {
        seed,
        step_ms: exchange.step_ms,
        series: exchange.series_count(),
        samples,
        bursts: exchange.bursts,
        pages: anomalies.len(),
        false_alarms,
        off_target,
        incidents,
    }
}
