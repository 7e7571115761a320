//! Upkeep: the periodic work on every series that does not belong on the per-sample path
//! (period searches, level-shift checks, forecast refits, peer and service scores), run by
//! [`Store::maintain`] each check interval under a wall-clock budget. One file per job; each
//! calls into `detect` for the statistics and keeps only the store's bookkeeping here.

mod forecast;
mod peers;
mod periods;
pub(super) mod services;
mod shifts;

use super::*;

impl Store {
    /// Periodic upkeep off the hot path: evicts idle series and re-evaluates seasonal profiles.
    /// Returns the anomalies that resolved because their series went away.
    pub fn maintain(&self, min_strength: f32) -> Vec<AnomalyEvent> {
        let now = self.now_secs();
        let idle = self.options.idle_timeout.as_secs() as u32;
        let mut events = Vec::new();
        let mut scratch = Vec::new();
        let deadline = Instant::now().checked_add(self.options.refit_budget);
        let start = self.upkeep_cursor.load(Ordering::Relaxed) % self.shards.len();
        let mut ran_out_at = None;
        let mut deferred = 0u64;
        for i in (start..self.shards.len()).chain(0..start) {
            let mut shard = self.lock(i);
            let shard = &mut *shard;
            for slot in 0..shard.slots.len() {
                let Some(series) = shard.slots[slot].as_mut() else {
                    continue;
                };
                if now.saturating_sub(series.last_seen) > idle {
                    if series.lifecycle.is_firing() {
                        let id = series.lifecycle.anomaly_id;
                        events.push(self.event(
                            series,
                            EventKind::Resolved,
                            id,
                            series.lifecycle.started_ts,
                            series.last_ts,
                            series.lifecycle.peak,
                            Some(ResolveReason::Evicted),
                        ));
                    }
                    shard.index.remove(&series.hash);
                    shard.slots[slot] = None;
                    shard.free.push(slot as u32);
                    self.series_count.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
                if ran_out_at.is_none() && deadline.is_some_and(|d| Instant::now() >= d) {
                    ran_out_at = Some(i);
                }
                let within_budget = ran_out_at.is_none();
                if within_budget {
                    self.discover_period(series, &mut scratch);
                }
                if series
                    .detector
                    .seasonal
                    .as_deref_mut()
                    .is_some_and(|p| p.evaluate(min_strength))
                {
                    series.detector.restart_baseline();
                }
                if !within_budget {
                    // Still due next cycle: a refit or a search is marked done only when run.
                    deferred += 1;
                    continue;
                }
                if let Some(e) = self.refit_forecast(series, &mut scratch) {
                    events.push(e);
                }
                events.extend(self.adopt_level_shift(series, &mut scratch));
            }
        }
        if let Some(shard) = ran_out_at {
            self.upkeep_cursor.store(shard, Ordering::Relaxed);
            self.refits_deferred.fetch_add(deferred, Ordering::Relaxed);
            tracing::debug!(
                deferred,
                budget_ms = self.options.refit_budget.as_millis() as u64,
                "upkeep refit budget spent; the rest waits for the next cycle"
            );
        }
        events.extend(self.peer_outliers());
        events.extend(self.service_anomalies());
        events
    }
}
