//! Upkeep: the periodic detection work that does not belong on the per-sample path (period
//! searches, level-shift checks, forecast refits, peer and service scores). The store's upkeep
//! loop calls [`Detection::upkeep_series`] for each series under its shard lock and
//! [`Detection::upkeep_population`] once per cycle; one file per job, each calling into the
//! statistics modules of `detect` and keeping only the bookkeeping of anomalies here.

mod forecast;
mod peers;
mod periods;
pub(super) mod services;
mod shifts;

use std::sync::atomic::Ordering;

use super::engine::Detection;
use super::event::AnomalyEvent;
use super::state::{History, Population, SeriesState, SeriesView};

impl Detection {
    /// One series' share of an upkeep cycle. `within_budget` false: only the cheap seasonal
    /// evaluation runs, the refits wait (counted as deferred; they are marked done only when run).
    #[allow(clippy::too_many_arguments)]
    pub fn upkeep_series(
        &self,
        series: &SeriesView<'_>,
        history: &dyn History,
        state: &mut SeriesState,
        within_budget: bool,
        min_strength: f32,
        scratch: &mut Vec<(i64, f64)>,
        events: &mut Vec<AnomalyEvent>,
    ) {
        if within_budget {
            self.discover_period(series, history, state, scratch);
        }
        if state
            .detector
            .seasonal
            .as_deref_mut()
            .is_some_and(|p| p.evaluate(min_strength))
        {
            state.detector.restart_baseline();
        }
        if !within_budget {
            return;
        }
        if let Some(e) = self.refit_forecast(series, history, state, scratch) {
            events.push(e);
        }
        events.extend(self.adopt_level_shift(series, history, state, scratch));
    }

    /// Counts the series an upkeep cycle left for the next one.
    pub fn refits_left(&self, deferred: u64) {
        self.refits_deferred.fetch_add(deferred, Ordering::Relaxed);
    }

    /// The upkeep that compares series with each other: peer groups and services.
    pub fn upkeep_population(&self, population: &dyn Population) -> Vec<AnomalyEvent> {
        let mut events = self.peer_outliers(population);
        events.extend(self.service_anomalies(population));
        events
    }
}
