//! Peer outliers: series of one metric in one group (a deployment's pods) compared each check.

use std::collections::HashMap;

use crate::detect::Severity;
use crate::detect::engine::Detection;
use crate::detect::event::{AnomalyEvent, AnomalyKind, EventKind, ResolveReason};
use crate::detect::peers::{self, Member, PeerDeviation};
use crate::detect::state::Population;

impl Detection {
    /// Compares the series of each peer group (same metric and grouping labels) and opens or
    /// closes `peer_outlier` anomalies. Two passes over the series: levels out, verdicts in.
    pub(super) fn peer_outliers(&self, population: &dyn Population) -> Vec<AnomalyEvent> {
        let p = &self.options.peers;
        if !p.enabled || p.group_by.is_empty() {
            return Vec::new();
        }
        let mut groups: HashMap<u64, Vec<Member>> = HashMap::new();
        let mut key = Vec::new();
        population.visit(&mut |s, _, state| {
            if !state.enabled || s.stale || state.detector.seen < self.options.detect.warmup_samples
            {
                return;
            }
            key.clear();
            key.extend_from_slice(s.labels.metric_name().as_bytes());
            let complete = p.group_by.iter().all(|name| match s.labels.get(name) {
                Some(v) => {
                    key.push(0xff);
                    key.extend_from_slice(v.as_bytes());
                    true
                }
                None => false,
            });
            if !complete {
                return;
            }
            let class = self.catalog.params(s.class);
            groups
                .entry(xxhash_rust::xxh3::xxh3_64(&key))
                .or_default()
                .push(Member {
                    series: s.hash,
                    level: state.last_score().value,
                    sigma: 1.4826 * state.detector.robust.mad,
                    min_rel_deviation: class.min_rel_deviation,
                    min_abs_deviation: class.min_abs_deviation,
                });
        });
        let verdicts: HashMap<u64, PeerDeviation> = groups
            .values()
            .flat_map(|members| peers::outliers(members, p))
            .collect();
        let mut events = Vec::new();
        population.visit(&mut |s, _, state| {
            let verdict = verdicts.get(&s.hash).copied();
            let (kind, id) = match (verdict, state.peer_anomaly) {
                (Some(_), 0) => {
                    state.peer_anomaly = self.next_id();
                    state.peer_calm = 0;
                    (EventKind::Fired, state.peer_anomaly)
                }
                (Some(_), _) => {
                    state.peer_calm = 0;
                    return;
                }
                (None, 0) => return,
                (None, id) => {
                    state.peer_calm = state.peer_calm.saturating_add(1);
                    if state.peer_calm < 2 {
                        return;
                    }
                    state.peer_anomaly = 0;
                    (EventKind::Resolved, id)
                }
            };
            let severity = verdict.map_or(Severity::Medium, |v| Severity::from_sigma(v.sigmas));
            let reason = (kind == EventKind::Resolved).then_some(ResolveReason::Recovered);
            let mut e = self.event(s, state, kind, id, s.last_ts, s.last_ts, severity, reason);
            e.anomaly_kind = AnomalyKind::PeerOutlier;
            e.peer = verdict;
            events.push(e);
        });
        events
    }
}
