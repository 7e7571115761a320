//! The upkeep loop: each check interval, evicts idle series and hands every other series to
//! detection's upkeep ([`crate::detect::upkeep`]) under its shard lock and a wall-clock budget;
//! then lets detection compare series with each other through [`Population`]. The store knows
//! what is due only by time and budget, never what the detectors do with it.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::Store;
use crate::detect::event::AnomalyEvent;
use crate::detect::state::{History, Population, SeriesState, SeriesView};

impl Store {
    /// Periodic upkeep off the hot path. Returns the anomaly transitions it produced, among them
    /// those that resolved because their series went away.
    pub fn maintain(&self, min_strength: f32) -> Vec<AnomalyEvent> {
        let now = self.now_secs();
        let idle = self.options.idle_timeout.as_secs() as u32;
        let budget = self.options.detection.refit_budget;
        let mut events = Vec::new();
        let mut scratch = Vec::new();
        let deadline = Instant::now().checked_add(budget);
        let start = self.upkeep_cursor.load(Ordering::Relaxed) % self.shards.len();
        let mut ran_out_at = None;
        let mut deferred = 0u64;
        for i in (start..self.shards.len()).chain(0..start) {
            let mut shard = self.lock(i);
            let shard = &mut *shard;
            for slot in 0..shard.slots.len() {
                let Some(series) = shard.slots.get_mut(slot) else {
                    continue;
                };
                if now.saturating_sub(series.last_seen) > idle {
                    let (view, _, state) = series.parts();
                    self.detection.on_evict(&view, state, &mut events);
                    shard.index.remove(&series.hash);
                    shard.slots.take(slot);
                    shard.free.push(slot as u32);
                    self.series_count.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
                if ran_out_at.is_none() && deadline.is_some_and(|d| Instant::now() >= d) {
                    ran_out_at = Some(i);
                }
                let within_budget = ran_out_at.is_none();
                if !within_budget {
                    deferred += 1;
                }
                let (view, ring, state) = series.parts();
                self.detection.upkeep_series(
                    &view,
                    ring,
                    state,
                    within_budget,
                    min_strength,
                    &mut scratch,
                    &mut events,
                );
            }
        }
        if let Some(shard) = ran_out_at {
            self.upkeep_cursor.store(shard, Ordering::Relaxed);
            self.detection.refits_left(deferred);
            tracing::debug!(
                deferred,
                budget_ms = budget.as_millis() as u64,
                "upkeep refit budget spent; the rest waits for the next cycle"
            );
        }
        events.extend(self.detection.upkeep_population(self));
        events
    }
}

impl Population for Store {
    fn visit(&self, f: &mut dyn FnMut(&SeriesView<'_>, &dyn History, &mut SeriesState)) {
        for i in 0..self.shards.len() {
            for series in self.lock(i).slots.iter_mut() {
                let (view, ring, state) = series.parts();
                f(&view, ring, state);
            }
        }
    }

    fn visit_one(&self, hash: u64, f: &mut dyn FnMut(&SeriesView<'_>, &mut SeriesState)) -> bool {
        let mut shard = self.lock((hash & self.mask) as usize);
        let Some(&slot) = shard.index.get(&hash) else {
            return false;
        };
        match shard.slots.get_mut(slot as usize) {
            Some(series) => {
                let (view, _, state) = series.parts();
                f(&view, state);
                true
            }
            None => false,
        }
    }
}
