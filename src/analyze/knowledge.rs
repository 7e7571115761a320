//! The knowledge base: past incidents (their signature, root cause, actions and outcome) and
//! runbook documents, searched by similarity so an incident's RCA can cite what happened last
//! time. Every resolved incident is written back, so the base learns (the seed's feedback loop).
//!
//! Embedded by default: JSON lines in `<data_dir>/knowledge.jsonl` (append-only, fsync'd),
//! loaded at start, and searched with TF-IDF-weighted hashed features (words and character
//! trigrams) under cosine similarity. No model, no network: it runs anywhere the agent does.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Feature space size; collisions only blur similarity a little.
const DIMENSIONS: u32 = 1 << 16;

pub use crate::model::rca::Entry;

pub use crate::model::rca::Match;

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("knowledge base {path}: {reason}")]
    Io {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("knowledge base entry invalid: {0}")]
    Invalid(String),
}

struct Indexed {
    entry: Entry,
    features: HashMap<u32, f32>,
}

pub struct KnowledgeBase {
    path: Option<PathBuf>,
    entries: Mutex<Vec<Indexed>>,
}

/// Term frequencies of words and character trigrams, hashed into `DIMENSIONS`.
fn features(text: &str) -> HashMap<u32, f32> {
    let lower = text.to_lowercase();
    let mut tf: HashMap<u32, f32> = HashMap::new();
    let mut add = |token: &str, weight: f32| {
        let h = (xxhash_rust::xxh3::xxh3_64(token.as_bytes()) % DIMENSIONS as u64) as u32;
        *tf.entry(h).or_default() += weight;
    };
    for word in lower.split(|c: char| !c.is_alphanumeric() && c != '_') {
        if word.len() < 2 {
            continue;
        }
        add(word, 1.0);
        // Trigrams let `memory_usage` meet `memory` and `oomkilled` meet `oom`.
        let chars: Vec<char> = format!(" {word} ").chars().collect();
        for w in chars.windows(3) {
            add(&w.iter().collect::<String>(), 0.3);
        }
    }
    tf
}

impl KnowledgeBase {
    /// Opens (or starts) the base in `dir`; `None` keeps it in memory only. Damaged lines are
    /// skipped and counted in the returned number.
    pub fn open(dir: Option<&Path>) -> Result<(Self, usize), KnowledgeError> {
        let path = dir.map(|d| d.join("knowledge.jsonl"));
        let mut entries = Vec::new();
        let mut skipped = 0;
        if let Some(p) = &path
            && p.exists()
        {
            let text = std::fs::read_to_string(p).map_err(|reason| KnowledgeError::Io {
                path: p.clone(),
                reason,
            })?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str::<Entry>(line) {
                    Ok(entry) => entries.push(Indexed {
                        features: features(&format!("{} {}", entry.title, entry.text)),
                        entry,
                    }),
                    Err(_) => skipped += 1,
                }
            }
        }
        Ok((
            Self {
                path,
                entries: Mutex::new(entries),
            },
            skipped,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Indexed>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an entry (written and fsync'd before it is searchable). An entry with the id of an
    /// existing one replaces it in memory; the file keeps both and the later line wins on load.
    pub fn add(&self, entry: Entry) -> Result<(), KnowledgeError> {
        if entry.id.is_empty() || entry.title.trim().is_empty() || entry.text.trim().is_empty() {
            return Err(KnowledgeError::Invalid(
                "id, title and text must not be empty".into(),
            ));
        }
        if entry.text.len() > 1 << 20 {
            return Err(KnowledgeError::Invalid("text longer than 1 MiB".into()));
        }
        if let Some(p) = &self.path {
            let io = |reason| KnowledgeError::Io {
                path: p.clone(),
                reason,
            };
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let mut line = serde_json::to_string(&entry)
                .map_err(|e| KnowledgeError::Invalid(e.to_string()))?;
            line.push('\n');
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(io)?;
            f.write_all(line.as_bytes()).map_err(io)?;
            f.sync_data().map_err(io)?;
        }
        let indexed = Indexed {
            features: features(&format!("{} {}", entry.title, entry.text)),
            entry,
        };
        let mut entries = self.lock();
        entries.retain(|e| e.entry.id != indexed.entry.id);
        entries.push(indexed);
        Ok(())
    }

    /// The `limit` entries most similar to `text` with similarity at least `min`, best first.
    pub fn search(&self, text: &str, limit: usize, min: f64) -> Vec<Match> {
        let entries = self.lock();
        if entries.is_empty() {
            return Vec::new();
        }
        // Inverse document frequency over the base (a term in every entry says nothing).
        let n = entries.len() as f32;
        let mut df: HashMap<u32, f32> = HashMap::new();
        for e in entries.iter() {
            for k in e.features.keys() {
                *df.entry(*k).or_default() += 1.0;
            }
        }
        let idf = |k: &u32| ((1.0 + n) / (1.0 + df.get(k).copied().unwrap_or(0.0))).ln() + 1.0;
        let weigh = |f: &HashMap<u32, f32>| -> (HashMap<u32, f32>, f32) {
            let w: HashMap<u32, f32> = f.iter().map(|(k, tf)| (*k, tf * idf(k))).collect();
            let norm = w.values().map(|v| v * v).sum::<f32>().sqrt();
            (w, norm)
        };
        let (q, qn) = weigh(&features(text));
        if qn == 0.0 {
            return Vec::new();
        }
        let mut out: Vec<Match> = entries
            .iter()
            .filter_map(|e| {
                let (d, dn) = weigh(&e.features);
                if dn == 0.0 {
                    return None;
                }
                let dot: f32 = q.iter().filter_map(|(k, v)| d.get(k).map(|w| v * w)).sum();
                let similarity = f64::from(dot / (qn * dn));
                (similarity >= min).then(|| Match {
                    entry: e.entry.clone(),
                    similarity,
                })
            })
            .collect();
        out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        out.truncate(limit);
        out
    }

    pub fn list(&self, kind: Option<&str>) -> Vec<Entry> {
        self.lock()
            .iter()
            .filter(|e| kind.is_none_or(|k| e.entry.kind == k))
            .map(|e| e.entry.clone())
            .collect()
    }
}

pub type RemoteFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'a>>;

/// An external vector store holding the same entries (Qdrant, feature `qdrant`): written after
/// the embedded file, searched instead of the embedded index.
pub trait RemoteKnowledge: Send + Sync {
    fn upsert<'a>(&'a self, entry: &'a Entry) -> RemoteFuture<'a, ()>;
    fn search<'a>(&'a self, text: &'a str, limit: u64, min: f64) -> RemoteFuture<'a, Vec<Match>>;
    fn name(&self) -> &'static str;
}

/// Size of the dense vectors sent to an external vector store (Qdrant).
pub const DENSE_DIMENSIONS: usize = 512;

/// The text's hashed features folded into a dense, L2-normalized vector (sublinear term
/// frequency; no corpus statistics, so it can be computed for one entry on its own).
pub fn dense_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DENSE_DIMENSIONS];
    for (k, tf) in features(text) {
        v[k as usize % DENSE_DIMENSIONS] += 1.0 + tf.ln_1p();
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// An incident's signature as searchable text: where, which metrics, what the evidence said.
pub fn signature(incident: &crate::incident::Incident) -> String {
    let rca = incident.rca.as_ref();
    signature_with(
        incident,
        rca.map_or(&[], |r| r.events.as_slice()),
        rca.and_then(|r| r.logs.as_ref()),
    )
}

/// [`signature`] with the evidence of an analysis still in progress.
pub fn signature_with(
    incident: &crate::incident::Incident,
    events: &[super::events::ClusterEvent],
    logs: Option<&super::logs::LogSummary>,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    parts.extend(incident.group.iter().map(|(k, v)| format!("{k} {v}")));
    parts.extend(incident.metrics.iter().cloned());
    parts.extend(incident.categories.iter().cloned());
    parts.extend(
        events
            .iter()
            .map(|e| format!("event {} {}", e.reason, e.object)),
    );
    if let Some(logs) = logs {
        parts.extend(
            logs.counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(p, _)| format!("logs {p}")),
        );
    }
    parts.join(" ")
}

/// The entry a resolved incident becomes: its signature, its top cause and evidence, and how
/// it ended.
pub fn from_incident(incident: &crate::incident::Incident) -> Entry {
    let top = incident.rca.as_ref().and_then(|r| r.top());
    let mut text = signature(incident);
    if let Some(h) = top {
        text.push_str(&format!(" {} {}", h.root_cause, h.evidence.join(" ")));
    }
    let minutes = |a: &str, b: &str| -> Option<i64> {
        let a = humantime::parse_rfc3339_weak(a).ok()?;
        let b = humantime::parse_rfc3339_weak(b).ok()?;
        Some(b.duration_since(a).ok()?.as_secs() as i64 / 60)
    };
    let lasted = incident
        .resolved_at
        .as_deref()
        .and_then(|r| minutes(&incident.opened_at, r));
    Entry {
        id: format!("{}@{}", incident.id, incident.opened_at),
        kind: "incident".into(),
        title: incident.title.clone(),
        text,
        cause: top.map(|h| h.cause.clone()).unwrap_or_default(),
        // What was done when something was; else what the RCA suggested.
        actions: if incident.remediation.iter().any(|n| !n.actions.is_empty()) {
            incident
                .remediation
                .iter()
                .flat_map(|n| {
                    n.actions
                        .iter()
                        .map(move |a| format!("{}: {a}", n.playbook_id))
                })
                .collect()
        } else {
            top.map(|h| {
                h.remediation
                    .iter()
                    .map(|r| format!("suggested {} on {}", r.action, r.target))
                    .collect()
            })
            .unwrap_or_default()
        },
        outcome: {
            let mut outcome = match lasted {
                Some(m) => format!(
                    "resolved after {m} min ({} anomalies)",
                    incident.anomalies.len()
                ),
                None => format!("resolved ({} anomalies)", incident.anomalies.len()),
            };
            for n in &incident.remediation {
                outcome.push_str(&format!(
                    "; plan {} ({}): {}{}",
                    n.plan_id,
                    n.playbook_id,
                    n.status,
                    if n.dry_run { " (dry run)" } else { "" }
                ));
            }
            outcome
        },
        created_at: incident
            .resolved_at
            .clone()
            .unwrap_or_else(|| incident.updated_at.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, title: &str, text: &str, cause: &str) -> Entry {
        Entry {
            id: id.into(),
            kind: "incident".into(),
            title: title.into(),
            text: text.into(),
            cause: cause.into(),
            actions: vec![],
            outcome: "resolved".into(),
            created_at: "2026-11-26T00:00:00Z".into(),
        }
    }

    #[test]
    fn similar_incidents_rank_first_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("sre-agent-kb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let (kb, skipped) = KnowledgeBase::open(Some(&dir)).unwrap();
            assert_eq!(skipped, 0);
            kb.add(entry(
                "a",
                "order latency",
                "namespace trading service order-service cpu_usage order_latency_p99",
                "cpu_saturation",
            ))
            .unwrap();
            kb.add(entry(
                "b",
                "wallet stall",
                "namespace wallet service wallet-service balance_sync_latency pending_transactions",
                "wallet_sync_stall",
            ))
            .unwrap();
            kb.add(entry(
                "c",
                "memory",
                "namespace risk service risk-service memory_usage pod_restarts event OOMKilled",
                "memory_leak",
            ))
            .unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("knowledge.jsonl"))
            .unwrap()
            .write_all(b"{not json\n")
            .unwrap();
        let (kb, skipped) = KnowledgeBase::open(Some(&dir)).unwrap();
        assert_eq!((kb.len(), skipped), (3, 1));
        let hits = kb.search(
            "service order-service order_latency_p99 cpu_usage namespace trading",
            3,
            0.1,
        );
        assert_eq!(hits[0].entry.cause, "cpu_saturation", "{hits:?}");
        assert!(hits[0].similarity > 0.5, "{hits:?}");
        let hits = kb.search("risk-service memory_usage OOMKilled", 3, 0.1);
        assert_eq!(hits[0].entry.cause, "memory_leak");
        assert!(kb.search("", 3, 0.0).is_empty());
        assert!(kb.add(entry("", "t", "x", "")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
