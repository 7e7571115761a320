//! Peer outliers: series of one metric in one group (a deployment's pods) compared each check.

// The store's own types and imports: these files are the store, split by job.
use super::super::*;

impl Store {
    /// Compares the series of each peer group (same metric and grouping labels) and opens or
    /// closes `peer_outlier` anomalies. Two passes over the shards: levels out, verdicts in.
    pub(super) fn peer_outliers(&self) -> Vec<AnomalyEvent> {
        let p = &self.options.peers;
        if !p.enabled || p.group_by.is_empty() {
            return Vec::new();
        }
        let mut groups: HashMap<u64, Vec<Member>> = HashMap::new();
        let mut key = Vec::new();
        for i in 0..self.shards.len() {
            for s in self.lock(i).slots.iter().flatten() {
                if !s.detect || s.stale || s.detector.seen < self.options.detect.warmup_samples {
                    continue;
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
                    continue;
                }
                let class = self.catalog.params(s.class);
                groups
                    .entry(xxhash_rust::xxh3::xxh3_64(&key))
                    .or_default()
                    .push(Member {
                        series: s.hash,
                        level: s.last_score.value,
                        sigma: 1.4826 * s.detector.robust.mad,
                        min_rel_deviation: class.min_rel_deviation,
                        min_abs_deviation: class.min_abs_deviation,
                    });
            }
        }
        let verdicts: HashMap<u64, PeerDeviation> = groups
            .values()
            .flat_map(|members| peers::outliers(members, p))
            .collect();
        let mut events = Vec::new();
        for i in 0..self.shards.len() {
            for s in self.lock(i).slots.iter_mut().flatten() {
                let verdict = verdicts.get(&s.hash).copied();
                let (kind, id) = match (verdict, s.peer_anomaly) {
                    (Some(_), 0) => {
                        s.peer_anomaly = self.next_anomaly.fetch_add(1, Ordering::Relaxed);
                        s.peer_calm = 0;
                        (EventKind::Fired, s.peer_anomaly)
                    }
                    (Some(_), _) => {
                        s.peer_calm = 0;
                        continue;
                    }
                    (None, 0) => continue,
                    (None, id) => {
                        s.peer_calm = s.peer_calm.saturating_add(1);
                        if s.peer_calm < 2 {
                            continue;
                        }
                        s.peer_anomaly = 0;
                        (EventKind::Resolved, id)
                    }
                };
                let severity = verdict.map_or(Severity::Medium, |v| Severity::from_sigma(v.sigmas));
                let reason = (kind == EventKind::Resolved).then_some(ResolveReason::Recovered);
                let mut e = self.event(s, kind, id, s.last_ts, s.last_ts, severity, reason);
                e.anomaly_kind = AnomalyKind::PeerOutlier;
                e.peer = verdict;
                events.push(e);
            }
        }
        events
    }
}
