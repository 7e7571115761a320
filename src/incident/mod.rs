//! Incidents: anomalies that share a group (by default the same namespace and service) while the
//! group is active become one incident, so RCA, planning and paging happen once per incident
//! rather than once per series: an alert storm is one page.
//!
//! Lifecycle, driven by the anomalies' own transitions: `open` while any of its anomalies
//! fires; `mitigated` once all have resolved; `resolved` after `window` without a firing
//! anomaly. A new anomaly of the group reopens a mitigated incident; after resolution the group
//! starts a new one. Time is sample time (event timestamps), so replays and the simulator behave
//! as live traffic does. Off the hot path: called with the anomaly events after the store's
//! locks are released.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::detect::Severity;
use crate::detect::book::{Anomaly, rfc3339_ms};
use crate::detect::event::{AnomalyEvent, EventKind};

#[derive(Debug, Clone)]
pub struct IncidentParams {
    /// Labels whose values define a group; series lacking all of them group by category.
    pub group_by: Vec<String>,
    /// Quiet time after the last anomaly resolved before the incident is resolved.
    pub window: Duration,
    /// Resolved incidents kept for the API.
    pub max_resolved: usize,
}

impl IncidentParams {
    pub fn from_config(c: &crate::config::IncidentsConfig) -> Self {
        Self {
            group_by: c.group_by.clone(),
            window: c.window,
            max_resolved: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    Open,
    Mitigated,
    Resolved,
}

/// One anomaly as the incident lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub anomaly_id: String,
    pub metric: String,
    #[serde(deserialize_with = "crate::detect::event::static_kind")]
    pub kind: crate::detect::event::KindName,
    pub labels: BTreeMap<String, String>,
    pub severity: Severity,
    pub started_at: String,
    pub firing: bool,
    /// Sample time (ms) the anomaly started, for ordering who moved first.
    pub started_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub state: IncidentState,
    /// The grouping labels' values (or `category`).
    pub group: BTreeMap<String, String>,
    pub title: String,
    pub severity: Severity,
    pub categories: BTreeSet<String>,
    pub metrics: BTreeSet<String>,
    pub opened_at: String,
    pub updated_at: String,
    pub mitigated_at: Option<String>,
    pub resolved_at: Option<String>,
    pub anomalies_firing: usize,
    pub anomalies: Vec<Member>,
    /// The latest root-cause analysis, once one has run.
    pub rca: Option<crate::model::rca::Rca>,
    /// Plans made for it and how they ended.
    pub remediation: Vec<RemediationNote>,
    #[serde(skip)]
    raw_id: u64,
    #[serde(skip)]
    quiet_since_ms: Option<i64>,
    /// Sample time of its latest transition.
    #[serde(skip)]
    pub last_ms: i64,
}

/// A plan made for an incident, as the incident (and the knowledge base) remembers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RemediationNote {
    pub plan_id: String,
    pub playbook_id: String,
    /// pending_approval, rejected, expired, diagnose_only, or the execution's outcome.
    pub status: String,
    pub dry_run: bool,
    /// What ran: `done pod_restart on ns/pod`, `dry_run …`, `rolled_back …`.
    pub actions: Vec<String>,
}

/// What an event did to its incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Opened,
    Joined,
    Reopened,
    Mitigated,
    Updated,
}

pub fn incident_id(raw: u64) -> String {
    format!("INC-{raw:x}")
}

#[derive(Default)]
struct Inner {
    incidents: HashMap<u64, Incident>,
    /// The current (not resolved) incident of each group.
    active_by_group: HashMap<String, u64>,
    by_anomaly: HashMap<u64, u64>,
    resolved_order: VecDeque<u64>,
    /// Resolved since the last `take_resolved`, for notification.
    just_resolved: Vec<u64>,
    next: u64,
    clock_ms: i64,
    /// Bumped by every change; saves happen only when it moved.
    generation: u64,
    saved_generation: u64,
}

/// Where incidents are kept across restarts, in the data directory.
pub const STATE_FILE: &str = "incidents.json";

#[derive(Serialize, Deserialize)]
struct Stored {
    incident: Incident,
    quiet_since_ms: Option<i64>,
    last_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    clock_ms: i64,
    incidents: Vec<Stored>,
}

pub struct IncidentBook {
    params: IncidentParams,
    inner: Mutex<Inner>,
    /// Signalled on every change, so the journal task saves at the event (coalescing bursts)
    /// rather than once per check interval.
    changed: std::sync::Arc<tokio::sync::Notify>,
    /// One save at a time: the journal task and the shutdown save share the temporary file.
    saving: Mutex<()>,
}

impl IncidentBook {
    pub fn new(params: IncidentParams) -> Self {
        Self {
            params,
            inner: Mutex::new(Inner {
                next: 1,
                ..Inner::default()
            }),
            changed: std::sync::Arc::default(),
            saving: Mutex::new(()),
        }
    }

    /// Signalled after each change (a permit is kept when nobody waits, so none is missed).
    pub fn changes(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// For changes: the next save writes them.
    fn lock_mut(&self) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = self.lock();
        inner.generation += 1;
        self.changed.notify_one();
        inner
    }

    fn group_of(&self, a: &Anomaly) -> BTreeMap<String, String> {
        let group: BTreeMap<String, String> = self
            .params
            .group_by
            .iter()
            .filter_map(|k| a.labels.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        if group.is_empty() {
            [("category".to_string(), a.category.clone())].into()
        } else {
            group
        }
    }

    /// Files an anomaly transition under its incident; returns the incident id, what changed
    /// and the state it is in now.
    pub fn observe(&self, e: &AnomalyEvent, a: &Anomaly) -> (String, Change, IncidentState) {
        let mut inner = self.lock_mut();
        inner.clock_ms = inner.clock_ms.max(e.ts);
        self.resolve_quiet(&mut inner);
        let known = inner.by_anomaly.get(&e.anomaly_id).copied();
        let raw = match known {
            Some(raw) if inner.incidents.contains_key(&raw) => raw,
            _ => {
                let group = self.group_of(a);
                let key = format!("{group:?}");
                match inner.active_by_group.get(&key).copied() {
                    Some(raw) => raw,
                    None => {
                        let raw = inner.next;
                        inner.next += 1;
                        let at = rfc3339_ms(e.ts);
                        inner.incidents.insert(
                            raw,
                            Incident {
                                id: incident_id(raw),
                                state: IncidentState::Open,
                                title: String::new(),
                                group,
                                severity: a.severity,
                                categories: BTreeSet::new(),
                                metrics: BTreeSet::new(),
                                opened_at: at.clone(),
                                updated_at: at,
                                mitigated_at: None,
                                resolved_at: None,
                                anomalies_firing: 0,
                                anomalies: Vec::new(),
                                rca: None,
                                remediation: Vec::new(),
                                raw_id: raw,
                                quiet_since_ms: None,
                                last_ms: e.ts,
                            },
                        );
                        inner.active_by_group.insert(key, raw);
                        raw
                    }
                }
            }
        };
        inner.by_anomaly.insert(e.anomaly_id, raw);
        let Some(incident) = inner.incidents.get_mut(&raw) else {
            return (incident_id(raw), Change::Updated, IncidentState::Open);
        };
        let was = incident.state;
        let firing = e.kind != EventKind::Resolved;
        match incident.anomalies.iter_mut().find(|m| m.anomaly_id == a.id) {
            Some(m) => {
                m.firing = firing;
                m.severity = a.severity;
            }
            None => incident.anomalies.push(Member {
                anomaly_id: a.id.clone(),
                metric: a.metric.clone(),
                kind: a.kind.as_str(),
                labels: a.labels.clone(),
                severity: a.severity,
                started_at: a.started_at.clone(),
                firing,
                started_ms: e.started_ts,
            }),
        }
        incident.anomalies.sort_by_key(|m| m.started_ms);
        incident.anomalies_firing = incident.anomalies.iter().filter(|m| m.firing).count();
        incident.categories.insert(a.category.clone());
        incident.metrics.insert(a.metric.clone());
        if a.severity > incident.severity {
            incident.severity = a.severity;
        }
        incident.updated_at = rfc3339_ms(e.ts);
        incident.last_ms = incident.last_ms.max(e.ts);
        incident.title = title(incident);
        let change = if incident.anomalies_firing == 0 {
            incident.state = IncidentState::Mitigated;
            incident.quiet_since_ms = Some(e.ts);
            incident.mitigated_at = Some(rfc3339_ms(e.ts));
            if was == IncidentState::Mitigated {
                Change::Updated
            } else {
                Change::Mitigated
            }
        } else {
            incident.state = IncidentState::Open;
            incident.quiet_since_ms = None;
            incident.mitigated_at = None;
            match (was, known.is_some()) {
                (IncidentState::Mitigated, _) => Change::Reopened,
                (_, false) if incident.anomalies.len() == 1 => Change::Opened,
                (_, false) => Change::Joined,
                _ => Change::Updated,
            }
        };
        (incident.id.clone(), change, incident.state)
    }

    /// Advances the clock (sample time) and resolves incidents quiet for `window`.
    pub fn tick(&self, now_ms: i64) {
        let mut inner = self.lock();
        inner.clock_ms = inner.clock_ms.max(now_ms);
        self.resolve_quiet(&mut inner);
    }

    fn resolve_quiet(&self, inner: &mut Inner) {
        let window_ms = self.params.window.as_millis() as i64;
        let now = inner.clock_ms;
        let due: Vec<u64> = inner
            .incidents
            .values()
            .filter(|i| {
                i.state == IncidentState::Mitigated
                    && i.quiet_since_ms.is_some_and(|q| now - q >= window_ms)
            })
            .map(|i| i.raw_id)
            .collect();
        if !due.is_empty() {
            inner.generation += 1;
            self.changed.notify_one();
        }
        for raw in due {
            if let Some(i) = inner.incidents.get_mut(&raw) {
                i.state = IncidentState::Resolved;
                i.resolved_at = Some(rfc3339_ms(now));
                let members: Vec<u64> = i
                    .anomalies
                    .iter()
                    .filter_map(|m| crate::detect::book::parse_anomaly_id(&m.anomaly_id))
                    .collect();
                for m in members {
                    inner.by_anomaly.remove(&m);
                }
            }
            inner.active_by_group.retain(|_, r| *r != raw);
            inner.resolved_order.push_back(raw);
            inner.just_resolved.push(raw);
        }
        while inner.resolved_order.len() > self.params.max_resolved {
            if let Some(old) = inner.resolved_order.pop_front() {
                inner.incidents.remove(&old);
            }
        }
    }

    /// Incidents resolved since the last call (to notify once each).
    pub fn take_resolved(&self) -> Vec<Incident> {
        let mut inner = self.lock();
        let ids = std::mem::take(&mut inner.just_resolved);
        ids.iter()
            .filter_map(|r| inner.incidents.get(r).cloned())
            .collect()
    }

    /// Incidents, newest first; `state` filters.
    pub fn list(&self, state: Option<IncidentState>) -> Vec<Incident> {
        let inner = self.lock();
        let mut out: Vec<Incident> = inner
            .incidents
            .values()
            .filter(|i| state.is_none_or(|s| i.state == s))
            .cloned()
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse(i.raw_id));
        out
    }

    pub fn get(&self, id: &str) -> Option<Incident> {
        let raw = u64::from_str_radix(id.strip_prefix("INC-")?, 16).ok()?;
        self.lock().incidents.get(&raw).cloned()
    }

    /// Stores an analysis result; true when its top cause differs from the previous one's.
    pub fn set_rca(&self, id: &str, rca: crate::model::rca::Rca) -> bool {
        let Some(raw) = id
            .strip_prefix("INC-")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            return false;
        };
        let mut inner = self.lock_mut();
        let Some(i) = inner.incidents.get_mut(&raw) else {
            return false;
        };
        let cause =
            |r: Option<&crate::model::rca::Rca>| r.and_then(|r| r.top().map(|h| h.cause.clone()));
        let changed = cause(i.rca.as_ref()) != cause(Some(&rca));
        i.rca = Some(rca);
        changed
    }

    /// Records (or updates, by plan id) a plan of the incident.
    pub fn record_remediation(&self, id: &str, note: RemediationNote) {
        let Some(raw) = id
            .strip_prefix("INC-")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            return;
        };
        let mut inner = self.lock_mut();
        let Some(i) = inner.incidents.get_mut(&raw) else {
            return;
        };
        match i.remediation.iter_mut().find(|n| n.plan_id == note.plan_id) {
            Some(n) => *n = note,
            None => i.remediation.push(note),
        }
    }

    /// Writes every incident to `<dir>/incidents.json` (temporary file, fsync, rename) when
    /// anything changed since the last save. Returns whether it wrote.
    pub fn save_if_changed(&self, dir: &std::path::Path) -> std::io::Result<bool> {
        let _one_at_a_time = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let (generation, stored) = {
            let inner = self.lock();
            if inner.generation == inner.saved_generation {
                return Ok(false);
            }
            let mut stored: Vec<Stored> = inner
                .incidents
                .values()
                .map(|i| Stored {
                    incident: i.clone(),
                    quiet_since_ms: i.quiet_since_ms,
                    last_ms: i.last_ms,
                })
                .collect();
            stored.sort_by_key(|s| s.incident.raw_id);
            (inner.generation, stored)
        };
        let body = serde_json::to_vec(&StateFile {
            version: 1,
            clock_ms: self.lock().clock_ms,
            incidents: stored,
        })
        .map_err(std::io::Error::other)?;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(STATE_FILE))?;
        let mut inner = self.lock();
        inner.saved_generation = inner.saved_generation.max(generation);
        Ok(true)
    }

    /// Restores incidents saved by [`IncidentBook::save_if_changed`]. Incidents that were open
    /// come back mitigated: the anomalies that kept them open were not saved and are detected
    /// afresh; a new anomaly of the group reopens them, and quiet ones resolve after `window`.
    /// Returns how many were restored.
    pub fn restore(&self, dir: &std::path::Path) -> Result<usize, String> {
        let path = dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let file: StateFile = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not an incidents file ({e})", path.display()))?;
        let mut inner = self.lock();
        inner.clock_ms = inner.clock_ms.max(file.clock_ms);
        let mut count = 0;
        for s in file.incidents {
            let Some(raw) = s
                .incident
                .id
                .strip_prefix("INC-")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            else {
                continue;
            };
            let mut i = s.incident;
            i.raw_id = raw;
            i.last_ms = s.last_ms;
            i.quiet_since_ms = s.quiet_since_ms;
            if i.state == IncidentState::Open {
                i.state = IncidentState::Mitigated;
                i.quiet_since_ms = Some(s.last_ms);
                i.mitigated_at = Some(rfc3339_ms(s.last_ms));
                for m in &mut i.anomalies {
                    m.firing = false;
                }
                i.anomalies_firing = 0;
            }
            if i.state == IncidentState::Resolved {
                inner.resolved_order.push_back(raw);
            } else {
                let group = format!("{:?}", i.group);
                inner.active_by_group.insert(group, raw);
            }
            inner.next = inner.next.max(raw + 1);
            inner.incidents.insert(raw, i);
            count += 1;
        }
        Ok(count)
    }

    /// New incidents get ids above `raw` (ids referenced elsewhere, e.g. by plans in the audit
    /// log, are never handed out again even when the incidents file is gone).
    pub fn skip_ids_through(&self, raw: u64) {
        let mut inner = self.lock();
        inner.next = inner.next.max(raw.saturating_add(1));
    }

    /// The incident an anomaly belongs to.
    pub fn of_anomaly(&self, anomaly_raw: u64) -> Option<String> {
        self.lock()
            .by_anomaly
            .get(&anomaly_raw)
            .map(|r| incident_id(*r))
    }

    pub fn active_count(&self) -> usize {
        self.lock()
            .incidents
            .values()
            .filter(|i| i.state != IncidentState::Resolved)
            .count()
    }
}

fn title(i: &Incident) -> String {
    let group: Vec<&str> = i.group.values().map(String::as_str).collect();
    let metrics: Vec<&str> = i.metrics.iter().map(String::as_str).take(3).collect();
    let more = i.metrics.len().saturating_sub(3);
    format!(
        "{}{} anomalous in {} ({} series)",
        metrics.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
        group.join("/"),
        i.anomalies.len()
    )
}

#[cfg(test)]
mod tests;
