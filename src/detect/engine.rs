//! The one interface the store's shards call: a new series' state, every sample, a staleness
//! marker, an eviction, and the periodic upkeep ([`super::upkeep`]). It turns scores into
//! anomaly events and numbers them. It holds no series: the store keeps each [`SeriesState`]
//! beside its ring, so the per-sample path stays under the shard lock already taken, with no
//! lock, allocation or I/O of its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::event::{AnomalyEvent, AnomalyKind, EventKind, ResolveReason};
use super::forecast::ForecastParams;
use super::lifecycle::{LifecycleParams, Transition};
use super::multivariate::ServiceParams;
use super::peers::PeerParams;
use super::state::{SeriesState, SeriesView, StoredScore};
use super::upkeep::services::ServiceFiring;
use super::{Channel, ClassParams, DetectParams, DetectorState, Score, Severity};
use crate::config::catalog::{Catalog, NO_CLASS};

/// Everything detection is configured with (from `anomaly_detection`).
#[derive(Debug, Clone)]
pub struct DetectionOptions {
    pub detect: DetectParams,
    pub lifecycle: LifecycleParams,
    /// Detect only series the catalog classifies.
    pub only_catalog: bool,
    pub forecast: ForecastParams,
    pub peers: PeerParams,
    pub services: ServiceParams,
    /// Wall-clock budget per upkeep cycle for the per-series refits (period searches, forecast
    /// refits, level-shift checks); what does not fit waits for the next cycle, starting where
    /// this one stopped. `Duration::MAX`: no limit (replay, so results do not depend on speed).
    pub refit_budget: Duration,
}

impl Default for DetectionOptions {
    fn default() -> Self {
        Self {
            detect: DetectParams::default(),
            lifecycle: LifecycleParams::default(),
            only_catalog: false,
            forecast: ForecastParams::default(),
            peers: PeerParams::default(),
            services: ServiceParams::default(),
            refit_budget: Duration::from_secs(1),
        }
    }
}

impl DetectionOptions {
    pub fn from_config(d: &crate::config::DetectionConfig) -> Self {
        Self {
            detect: DetectParams::from_config(d),
            lifecycle: LifecycleParams::from_config(d),
            only_catalog: d.only_catalog,
            forecast: ForecastParams {
                enabled: d.forecast.enabled,
                horizons_ms: d
                    .forecast
                    .horizons
                    .iter()
                    .map(|h| h.as_millis() as u64)
                    .collect(),
                refit_ms: d.forecast.refit_interval.as_millis() as i64,
            },
            peers: PeerParams::from_config(&d.peers),
            services: ServiceParams::from_config(&d.services),
            refit_budget: d
                .refit_budget
                .min(Duration::from_secs(d.check_interval_seconds.max(1)) / 2),
        }
    }
}

pub struct Detection {
    pub options: DetectionOptions,
    pub(super) catalog: Arc<Catalog>,
    /// The ring's span: how far back upkeep may look.
    pub(super) retention_ms: i64,
    next_anomaly: AtomicU64,
    /// Firing service anomalies by service key (upkeep only, never the hot path).
    pub(super) services: Mutex<HashMap<u64, ServiceFiring>>,
    /// Series whose refits an upkeep cycle left for the next one (budget spent).
    pub(super) refits_deferred: AtomicU64,
}

impl Detection {
    pub fn new(options: DetectionOptions, catalog: Arc<Catalog>, retention: Duration) -> Self {
        // Ids of anomalies stay unique across restarts: the high bits are the start time.
        let start = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            options,
            catalog,
            retention_ms: retention.as_millis().min(i64::MAX as u128) as i64,
            next_anomaly: AtomicU64::new((start & 0xffff_ffff) << 24),
            services: Mutex::new(HashMap::new()),
            refits_deferred: AtomicU64::new(0),
        }
    }

    /// A new series' state; with `detector` when its baseline was learned elsewhere.
    pub fn new_state(&self, class: u16, detector: Option<DetectorState>) -> SeriesState {
        let enabled = !self.options.only_catalog || class != NO_CLASS;
        let detector = detector.unwrap_or_else(|| {
            DetectorState::new(&self.options.detect, self.catalog.seasonal(class))
        });
        SeriesState::new(enabled, detector)
    }

    /// The class parameters of a series, looked up once per batch rather than per sample.
    pub fn class_params(&self, class: u16) -> ClassParams {
        self.catalog.params(class)
    }

    /// Series whose refits were left for a later upkeep cycle because the cycle's
    /// `refit_budget` was spent (a steadily growing count means the budget is too small).
    pub fn refits_deferred(&self) -> u64 {
        self.refits_deferred.load(Ordering::Relaxed)
    }

    pub(super) fn next_id(&self) -> u64 {
        self.next_anomaly.fetch_add(1, Ordering::Relaxed)
    }

    /// One sample of a series (a value, not a staleness marker, newer than the last). Returns
    /// whether it went through the detectors; a transition of the anomaly goes to `events`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn on_sample(
        &self,
        series: &SeriesView<'_>,
        state: &mut SeriesState,
        class: &ClassParams,
        ts: i64,
        value: f64,
        start_ts: i64,
        events: &mut Vec<AnomalyEvent>,
    ) -> bool {
        if !state.enabled {
            return false;
        }
        let observed = if series.cumulative {
            state.rate.update(ts, value, start_ts)
        } else {
            Some(value)
        };
        let Some(x) = observed.filter(|x| x.is_finite()) else {
            return false;
        };
        let score = state.detector.update(ts, x, &self.options.detect, class);
        state.last_score = StoredScore::keep(&score);
        let transition = state.lifecycle.observe(ts, &score, &self.options.lifecycle);
        state.detector.in_anomaly = state.lifecycle.is_firing();
        let Some(t) = transition else {
            return true;
        };
        let (kind, severity, reason) = match t {
            Transition::Fired(s) => {
                state.lifecycle.anomaly_id = self.next_id();
                (EventKind::Fired, s, None)
            }
            Transition::Escalated(s) => (EventKind::Escalated, s, None),
            Transition::Resolved => (
                EventKind::Resolved,
                state.lifecycle.peak,
                Some(ResolveReason::Recovered),
            ),
        };
        let id = state.lifecycle.anomaly_id;
        let started = state.lifecycle.started_ts;
        events.push(self.event(series, state, kind, id, started, ts, severity, reason));
        if kind == EventKind::Resolved {
            state.lifecycle.anomaly_id = 0;
        }
        true
    }

    /// A staleness marker: the series is gone for now; a firing anomaly of it resolves.
    pub fn on_stale(
        &self,
        series: &SeriesView<'_>,
        state: &mut SeriesState,
        ts: i64,
        events: &mut Vec<AnomalyEvent>,
    ) {
        state.rate.reset();
        if state.lifecycle.is_firing() {
            state.lifecycle.resolve();
            self.resolve(series, state, ts, ResolveReason::StalenessMarker, events);
        }
    }

    /// The store forgets the series (idle too long): a firing anomaly of it resolves.
    pub fn on_evict(
        &self,
        series: &SeriesView<'_>,
        state: &mut SeriesState,
        events: &mut Vec<AnomalyEvent>,
    ) {
        if state.lifecycle.is_firing() {
            self.resolve(
                series,
                state,
                series.last_ts,
                ResolveReason::Evicted,
                events,
            );
        }
    }

    fn resolve(
        &self,
        series: &SeriesView<'_>,
        state: &mut SeriesState,
        ts: i64,
        reason: ResolveReason,
        events: &mut Vec<AnomalyEvent>,
    ) {
        let lc = state.lifecycle;
        events.push(self.event(
            series,
            state,
            EventKind::Resolved,
            lc.anomaly_id,
            lc.started_ts,
            ts,
            lc.peak,
            Some(reason),
        ));
        state.lifecycle.anomaly_id = 0;
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn event(
        &self,
        series: &SeriesView<'_>,
        state: &SeriesState,
        kind: EventKind,
        anomaly_id: u64,
        started_ts: i64,
        ts: i64,
        severity: Severity,
        reason: Option<ResolveReason>,
    ) -> AnomalyEvent {
        AnomalyEvent {
            kind,
            anomaly_kind: AnomalyKind::Anomaly,
            breach: None,
            shift: None,
            peer: None,
            service: None,
            anomaly_id,
            series_id: series.hash,
            labels: series.labels.clone(),
            category: self.catalog.category(series.class).to_string(),
            started_ts,
            ts,
            score: Score {
                // The sample that confirmed an anomaly may not be the one that raised it.
                channel: match state.last_score().channel {
                    Channel::None => state.lifecycle.trigger,
                    c => c,
                },
                ..state.last_score()
            },
            severity,
            reason,
            produced_at: SystemTime::now(),
        }
    }
}
