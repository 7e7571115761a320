//! Config reload without a restart (`SIGHUP`, `POST /-/reload`, as Prometheus does it): the
//! config file, the metric catalog, the RCA rules and the playbooks are read and validated
//! together; if any is invalid nothing changes and the reason is logged, answered and shown as
//! `sre_agent_config_last_reload_successful 0`. A valid reload swaps the RCA rules, the
//! playbooks and the risk weights in place. Rings, baselines, incidents and plans are never
//! touched. Keys whose change needs a restart (listeners, store layout, detection constants,
//! the catalog, notification targets, the action rails) are named in the answer and the log,
//! and keep their running values.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use serde::Serialize;
use serde_json::Value;

use super::Pipeline;
use crate::config::{Config, ConfigError};

/// Top-level config sections a reload applies; every other change waits for a restart.
const APPLIED: [&str; 3] = [
    "risk_assessment",
    "rca.rules_file",
    "auto_remediation.playbooks_dir",
];

/// Adjusts a freshly read config the way the command line did at start (e.g. `--data-dir`).
pub type Adjust = Box<dyn Fn(&mut Config) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("RCA rules: {0}")]
    Rules(#[from] crate::analyze::rules::RulesError),
    #[error("playbooks: {0}")]
    Playbooks(#[from] crate::decide::playbooks::PlaybookError),
}

/// What a successful reload did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReloadOutcome {
    /// What now runs with the new files: `rca_rules`, `playbooks`, `risk_assessment`.
    pub applied: Vec<String>,
    /// Changed keys that keep their running values until a restart.
    pub restart_required: Vec<String>,
    pub rules: usize,
    pub playbooks: usize,
}

pub struct Reloader {
    source: Mutex<Option<(Option<PathBuf>, Adjust)>>,
    /// The config as last read: what a change is measured against.
    current: Mutex<Config>,
    /// One reload at a time (a signal and a request at once).
    turn: tokio::sync::Mutex<()>,
    last_ok: AtomicBool,
    last_success_s: AtomicI64,
}

impl Reloader {
    pub fn new(config: &Config) -> Self {
        Self {
            source: Mutex::new(None),
            current: Mutex::new(config.clone()),
            turn: tokio::sync::Mutex::new(()),
            last_ok: AtomicBool::new(true),
            last_success_s: AtomicI64::new(crate::model::clock::now_ms() / 1000),
        }
    }

    /// The `sre_agent_config_last_reload_*` gauges, Prometheus' names for the same facts.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP sre_agent_config_last_reload_successful Whether the last configuration reload attempt was successful.\n# TYPE sre_agent_config_last_reload_successful gauge\nsre_agent_config_last_reload_successful {}",
            u8::from(self.last_ok.load(Ordering::Relaxed))
        );
        let _ = writeln!(
            out,
            "# HELP sre_agent_config_last_reload_success_timestamp_seconds Timestamp of the last successful configuration reload (or of the start).\n# TYPE sre_agent_config_last_reload_success_timestamp_seconds gauge\nsre_agent_config_last_reload_success_timestamp_seconds {}",
            self.last_success_s.load(Ordering::Relaxed)
        );
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pipeline {
    /// Where reloads read the config from (`None`: the embedded defaults) and how the command
    /// line adjusted it; without this a reload re-reads the embedded defaults.
    pub fn set_config_source(&self, path: Option<PathBuf>, adjust: Adjust) {
        *lock(&self.reloader.source) = Some((path, adjust));
    }

    /// Reads and validates config, catalog, RCA rules and playbooks, then applies what can be
    /// applied live. On any error nothing changes.
    pub async fn reload(&self) -> Result<ReloadOutcome, ReloadError> {
        let _turn = self.reloader.turn.lock().await;
        let result = self.read_and_apply();
        match &result {
            Ok(o) => {
                self.reloader.last_ok.store(true, Ordering::Relaxed);
                self.reloader
                    .last_success_s
                    .store(crate::model::clock::now_ms() / 1000, Ordering::Relaxed);
                tracing::info!(applied = ?o.applied, restart_required = ?o.restart_required, rules = o.rules, playbooks = o.playbooks, "configuration reloaded");
                if !o.restart_required.is_empty() {
                    tracing::warn!(keys = ?o.restart_required, "changed keys keep their running values until a restart");
                }
            }
            Err(e) => {
                self.reloader.last_ok.store(false, Ordering::Relaxed);
                tracing::error!(error = %e, "configuration reload failed; the running configuration is kept");
            }
        }
        result
    }

    fn read_and_apply(&self) -> Result<ReloadOutcome, ReloadError> {
        let mut next = {
            let source = lock(&self.reloader.source);
            match source.as_ref() {
                Some((Some(path), adjust)) => {
                    let mut c = Config::load(path)?;
                    adjust(&mut c);
                    c
                }
                Some((None, adjust)) => {
                    let mut c = Config::defaults()?;
                    adjust(&mut c);
                    c
                }
                None => Config::defaults()?,
            }
        };
        // Everything is read and checked before anything is swapped.
        next.catalog()?;
        let rules = crate::analyze::rules::RulesFile::load(&next.rca.rules_file)?;
        let dir = &next.auto_remediation.playbooks_dir;
        let playbooks = crate::decide::playbooks::load(
            (!dir.is_empty()).then(|| std::path::Path::new(dir.as_str())),
        )?;
        let mut current = lock(&self.reloader.current);
        let mut restart_required = changed_keys(&current, &next);
        restart_required.retain(|k| {
            !APPLIED
                .iter()
                .any(|a| k == a || k.starts_with(&format!("{a}.")))
        });
        // The catalog file's content may change under the same path.
        if catalog_text(&current) != catalog_text(&next)
            && !restart_required.iter().any(|k| k == "catalog_file")
        {
            restart_required.push("catalog_file (content)".into());
        }
        let outcome = ReloadOutcome {
            applied: vec![
                "rca_rules".into(),
                "playbooks".into(),
                "risk_assessment".into(),
            ],
            restart_required,
            rules: rules.rules.len(),
            playbooks: playbooks.len(),
        };
        self.analyzer.set_rules(rules);
        self.remediator
            .set_policy(next.risk_assessment.clone(), playbooks);
        // What is not applied stays as it runs, so the next reload still reports it.
        let applied_risk = next.risk_assessment.clone();
        current.risk_assessment = applied_risk;
        current.rca.rules_file = std::mem::take(&mut next.rca.rules_file);
        current.auto_remediation.playbooks_dir =
            std::mem::take(&mut next.auto_remediation.playbooks_dir);
        Ok(outcome)
    }
}

/// The catalog's text as a reload would read it (empty when the file cannot be read: the
/// reload's own read reports that).
fn catalog_text(c: &Config) -> String {
    if c.catalog_file.is_empty() {
        String::new()
    } else {
        std::fs::read_to_string(&c.catalog_file).unwrap_or_default()
    }
}

/// Dotted keys (down to two levels) whose values differ between `a` and `b`.
pub fn changed_keys(a: &Config, b: &Config) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(a), serde_json::to_value(b)) else {
        return vec!["(config not comparable)".into()];
    };
    let mut out = Vec::new();
    diff("", &a, &b, 0, &mut out);
    out
}

fn diff(prefix: &str, a: &Value, b: &Value, depth: usize, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if depth < 2 => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                diff(
                    &name,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    depth + 1,
                    out,
                );
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_named_two_levels_deep() {
        let a = Config::default();
        let mut b = a.clone();
        assert!(changed_keys(&a, &b).is_empty());
        b.store.max_series = 7;
        b.api.port = 1;
        b.risk_assessment.weights.severity = 0.9;
        assert_eq!(
            changed_keys(&a, &b),
            ["api.port", "risk_assessment.weights", "store.max_series"]
        );
    }
}
