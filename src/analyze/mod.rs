//! Root-cause analysis per incident, off the hot path and within a time budget: ranked
//! hypotheses, each with a confidence and the evidence behind it.
//!
//! Evidence comes from the rings (which series of the incident's group moved, and which moved
//! first), Kubernetes events in its namespace, and its logs in Loki; the rules of
//! `config/rca_rules.yaml` turn evidence into causes, and the order of onsets ranks the
//! incident's own metrics (what moved first is more likely the cause). Anything unavailable
//! (no Loki, no event source, a timeout) is skipped and said in `notes`; the analysis never
//! fails as a whole.

pub mod events;
pub mod facts;
pub mod knowledge;
#[cfg(feature = "kube")]
pub mod kubernetes;
pub mod llm;
pub mod logs;
pub mod prompts;
#[cfg(feature = "qdrant")]
pub mod qdrant;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::incident::Incident;
use crate::store::Store;
use crate::store::matcher::Matcher;
use events::{ClusterEvent, EventSource};
use facts::SeriesFact;
use logs::Loki;
use rules::{Inputs, RulesFile};

pub use crate::model::rca::Hypothesis;

pub use crate::model::rca::Rca;

impl Rca {
    pub fn top(&self) -> Option<&Hypothesis> {
        self.hypotheses.first()
    }
}

#[derive(Debug, Clone)]
pub struct AnalyzerParams {
    /// Ring history before the incident used as its baseline.
    pub lookback: Duration,
    /// How long before the first onset events still count (a deploy minutes before errors).
    pub events_lookback: Duration,
    /// The whole analysis, sources included.
    pub budget: Duration,
    /// Series of a group read at most.
    pub max_series: usize,
}

impl AnalyzerParams {
    pub fn from_config(c: &crate::config::RcaConfig) -> Self {
        Self {
            lookback: c.lookback,
            events_lookback: c.events_lookback,
            budget: c.budget,
            max_series: 2000,
        }
    }
}

impl Default for AnalyzerParams {
    fn default() -> Self {
        Self {
            lookback: Duration::from_secs(1800),
            events_lookback: Duration::from_secs(900),
            budget: Duration::from_secs(10),
            max_series: 2000,
        }
    }
}

pub struct Analyzer {
    pub params: AnalyzerParams,
    /// Swapped whole by a config reload; an analysis keeps the rules it started with.
    rules: std::sync::RwLock<Arc<RulesFile>>,
    store: Arc<Store>,
    events: Option<Arc<dyn EventSource>>,
    loki: Option<Loki>,
    pub knowledge: Arc<knowledge::KnowledgeBase>,
    /// Qdrant (feature `qdrant`), set once at start when configured.
    pub remote_knowledge: Arc<std::sync::OnceLock<Arc<dyn knowledge::RemoteKnowledge>>>,
    llm: Option<llm::Llm>,
}

impl Analyzer {
    pub fn new(
        params: AnalyzerParams,
        rules: RulesFile,
        store: Arc<Store>,
        events: Option<Arc<dyn EventSource>>,
        loki: Option<Loki>,
        knowledge: Arc<knowledge::KnowledgeBase>,
        llm: Option<llm::Llm>,
    ) -> Self {
        Self {
            params,
            rules: std::sync::RwLock::new(Arc::new(rules)),
            store,
            events,
            loki,
            knowledge,
            remote_knowledge: Arc::default(),
            llm,
        }
    }

    /// The RCA rules in force.
    pub fn rules(&self) -> Arc<RulesFile> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the RCA rules (a reload); analyses already running finish with the old ones.
    pub fn set_rules(&self, rules: RulesFile) {
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
    }

    /// Analyzes an incident as it stands; `now_ms` is sample time.
    pub async fn analyze(&self, incident: &Incident, now_ms: i64) -> Rca {
        let started = Instant::now();
        let mut notes = Vec::new();
        let first_ms = incident
            .anomalies
            .iter()
            .map(|m| m.started_ms)
            .min()
            .unwrap_or(now_ms);

        // The rings: every series of the group (or, for a category group, the anomalous ones).
        let group: Vec<(&str, &str)> = incident
            .group
            .iter()
            .filter(|(k, _)| k.as_str() != "category")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let since = first_ms - self.params.lookback.as_millis() as i64;
        let mut recent = Vec::new();
        if group.is_empty() {
            for m in &incident.anomalies {
                let pairs = m.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                recent.extend(self.store.recent(&Matcher::equal(pairs), since, 1));
            }
        } else {
            recent = self.store.recent(
                &Matcher::equal(group.iter().copied()),
                since,
                self.params.max_series,
            );
            if recent.len() >= self.params.max_series {
                notes.push(format!(
                    "series: only the first {} series of the group were read",
                    self.params.max_series
                ));
            }
        }
        let mut starts: BTreeMap<&BTreeMap<String, String>, (i64, Vec<&'static str>)> =
            BTreeMap::new();
        for m in &incident.anomalies {
            let entry = starts
                .entry(&m.labels)
                .or_insert((m.started_ms, Vec::new()));
            entry.0 = entry.0.min(m.started_ms);
            entry.1.push(m.kind);
        }
        // A finished incident is judged on its own time, not on what came after it.
        let until = if incident.state == crate::incident::IncidentState::Open {
            now_ms
        } else {
            incident.last_ms
        };
        let mut all = facts::facts(recent, first_ms, until, |labels| {
            starts.get(labels).cloned()
        });
        all.sort_by_key(|f| f.onset_ms.unwrap_or(i64::MAX));

        let deadline = started + self.params.budget;
        let namespace = incident.group.get("namespace").cloned().or_else(|| {
            incident
                .anomalies
                .iter()
                .find_map(|m| m.labels.get("namespace").cloned())
        });
        let first_onset = all
            .iter()
            .filter_map(|f| f.onset_ms)
            .min()
            .unwrap_or(first_ms);
        let events = match (&self.events, &namespace) {
            (None, _) => {
                notes.push("events: no Kubernetes event source configured; skipped".into());
                Vec::new()
            }
            (Some(_), None) => {
                notes.push("events: the incident has no namespace; skipped".into());
                Vec::new()
            }
            (Some(source), Some(ns)) => {
                let from = first_onset - self.params.events_lookback.as_millis() as i64;
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, source.events(ns, from, until)).await {
                    Ok(Ok(found)) => relevant_events(found, incident),
                    Ok(Err(e)) => {
                        notes.push(format!("events ({}): {e}", source.name()));
                        Vec::new()
                    }
                    Err(_) => {
                        notes.push(format!("events ({}): time budget exhausted", source.name()));
                        Vec::new()
                    }
                }
            }
        };
        let logs = match &self.loki {
            None => {
                notes.push("logs: LOKI_URL not set; not consulted".into());
                None
            }
            Some(_) if group.is_empty() => {
                notes.push("logs: the incident has no grouping labels to select logs by".into());
                None
            }
            Some(loki) => {
                let labels: BTreeMap<String, String> = group
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let left = deadline.saturating_duration_since(Instant::now());
                let from = first_onset - self.params.events_lookback.as_millis() as i64;
                match tokio::time::timeout(left, loki.summarize(&labels, from, until)).await {
                    Ok(Ok(summary)) => Some(summary),
                    Ok(Err(e)) => {
                        notes.push(format!("logs: {e}"));
                        None
                    }
                    Err(_) => {
                        notes.push("logs: time budget exhausted".into());
                        None
                    }
                }
            }
        };

        let counts = logs.as_ref().map(|l| l.counts.clone()).unwrap_or_default();
        let input = Inputs {
            facts: &all,
            events: &events,
            log_counts: &counts,
        };
        let rules = self.rules();
        let mut hypotheses: Vec<Hypothesis> = rules
            .rules
            .iter()
            .filter_map(|r| r.evaluate(&input))
            .collect();
        hypotheses.extend(first_movers(&all));
        // Past incidents like this one: their confirmed cause is a hypothesis, weighted by how
        // alike they are (an incident never matches itself: it is written back only resolved).
        let signature = knowledge::signature_with(incident, &events, logs.as_ref());
        let found = match self.remote_knowledge.get() {
            None => self.knowledge.search(&signature, 3, 0.35),
            Some(remote) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, remote.search(&signature, 4, 0.35)).await {
                    Ok(Ok(found)) => found,
                    Ok(Err(e)) => {
                        notes.push(format!(
                            "knowledge base ({}): {e}; used the embedded index",
                            remote.name()
                        ));
                        self.knowledge.search(&signature, 3, 0.35)
                    }
                    Err(_) => {
                        notes.push(format!(
                            "knowledge base ({}): time budget exhausted; used the embedded index",
                            remote.name()
                        ));
                        self.knowledge.search(&signature, 3, 0.35)
                    }
                }
            }
        };
        let similar: Vec<knowledge::Match> = found
            .into_iter()
            .filter(|m| {
                !m.entry
                    .id
                    .starts_with(&format!("{}@{}", incident.id, incident.opened_at))
            })
            .collect();
        for m in similar.iter().filter(|m| !m.entry.cause.is_empty()) {
            hypotheses.push(Hypothesis {
                cause: m.entry.cause.clone(),
                root_cause: format!("as in {}: {}", m.entry.title, m.entry.outcome),
                confidence: (0.6 * m.similarity).min(0.6),
                source: "knowledge_base".into(),
                evidence: vec![format!(
                    "{} {} is {:.0} % similar{}",
                    m.entry.kind,
                    m.entry.id,
                    m.similarity * 100.0,
                    if m.entry.actions.is_empty() {
                        String::new()
                    } else {
                        format!("; actions then: {}", m.entry.actions.join(", "))
                    }
                )],
                remediation: Vec::new(),
            });
        }
        let mut rca = Rca {
            analyzed_at: crate::model::clock::rfc3339(std::time::SystemTime::now()),
            duration_ms: 0,
            hypotheses: rank(hypotheses),
            moved: all
                .into_iter()
                .filter(|f| f.onset_ms.is_some())
                .take(50)
                .collect(),
            events,
            logs,
            similar,
            llm_summary: None,
            notes,
        };
        match &self.llm {
            None => rca
                .notes
                .push("llm: not configured (no API key); the rule-based result stands".into()),
            Some(model) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let prompt = model.prompt_for(incident, &rca);
                let terms = llm::known_terms(&rca);
                match tokio::time::timeout(left, model.ask(&prompt, &terms)).await {
                    Ok(Ok(opinion)) => {
                        rca.notes.push(format!(
                            "llm ({}): {} hypotheses accepted, {} rejected{}",
                            model.describe(),
                            opinion.accepted.len(),
                            opinion.rejected.len(),
                            if opinion.rejected.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", opinion.rejected.join("; "))
                            }
                        ));
                        let mut merged = std::mem::take(&mut rca.hypotheses);
                        for h in opinion.accepted {
                            match merged.iter_mut().find(|m| m.cause == h.cause) {
                                Some(existing) => existing
                                    .evidence
                                    .push(format!("LLM agrees: {}", h.root_cause)),
                                None => merged.push(h),
                            }
                        }
                        rca.hypotheses = rank(merged);
                        rca.llm_summary = (!opinion.summary.is_empty()).then_some(opinion.summary);
                    }
                    Ok(Err(e)) => rca.notes.push(format!(
                        "llm ({}): {e}; the rule-based result stands",
                        model.describe()
                    )),
                    Err(_) => rca.notes.push(format!(
                        "llm ({}): time budget exhausted; the rule-based result stands",
                        model.describe()
                    )),
                }
            }
        }
        rca.duration_ms = started.elapsed().as_millis() as u64;
        rca
    }
}

/// Best first, one hypothesis per cause (the best-supported one), ten at most.
fn rank(mut hypotheses: Vec<Hypothesis>) -> Vec<Hypothesis> {
    hypotheses.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut seen = std::collections::HashSet::new();
    hypotheses.retain(|h| seen.insert(h.cause.clone()));
    hypotheses.truncate(10);
    hypotheses
}

/// Events about the incident's own objects when it has a service (another team's rollout in
/// the same namespace is not evidence); all of the namespace's otherwise.
fn relevant_events(found: Vec<ClusterEvent>, incident: &Incident) -> Vec<ClusterEvent> {
    let names: Vec<&str> = ["service", "deployment"]
        .iter()
        .filter_map(|k| incident.group.get(*k).map(String::as_str))
        .chain(
            incident
                .anomalies
                .iter()
                .filter_map(|m| m.labels.get("pod").map(String::as_str)),
        )
        .collect();
    if names.is_empty() {
        return found;
    }
    found
        .into_iter()
        .filter(|e| {
            let object = e.object.split('/').nth(1).unwrap_or(&e.object);
            names.iter().any(|n| object.starts_with(n))
        })
        .collect()
}

/// The incident's own anomalous metrics, ranked by who moved first: the first mover is the
/// likeliest cause among them ("CPU saturated, then latency rose" ranks CPU first).
fn first_movers(all: &[SeriesFact]) -> Vec<Hypothesis> {
    let moved: Vec<&SeriesFact> = all.iter().filter(|f| f.onset_ms.is_some()).collect();
    let Some(first) = moved.first() else {
        return Vec::new();
    };
    let first_ms = first.onset_ms.unwrap_or(0);
    let mut out = Vec::new();
    let mut ranked = std::collections::HashSet::new();
    for f in moved
        .iter()
        .filter(|f| f.anomalous || f.onset_ms == Some(first_ms))
    {
        if !ranked.insert(f.metric.clone()) {
            continue;
        }
        let rank = out.len() as f64;
        let lag = f.onset_ms.unwrap_or(first_ms) - first_ms;
        let followers: Vec<String> = moved
            .iter()
            .filter(|g| g.onset_ms > f.onset_ms && g.metric != f.metric)
            .map(|g| g.metric.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        out.push(Hypothesis {
            cause: format!("metric:{}", f.metric),
            root_cause: if lag == 0 {
                format!("{} on {} moved first", f.metric, rules::place(f))
            } else {
                format!(
                    "{} on {} moved {} s after the first change",
                    f.metric,
                    rules::place(f),
                    lag / 1000
                )
            },
            confidence: (0.5 - 0.1 * rank).max(0.1),
            source: "correlation".into(),
            evidence: if followers.is_empty() {
                vec![format!(
                    "onset at {}",
                    crate::model::clock::rfc3339_ms(f.onset_ms.unwrap_or(0))
                )]
            } else {
                vec![format!(
                    "onset at {}, before {}",
                    crate::model::clock::rfc3339_ms(f.onset_ms.unwrap_or(0)),
                    followers.join(", ")
                )]
            },
            remediation: Vec::new(),
        });
        if out.len() >= 5 {
            break;
        }
    }
    out
}
