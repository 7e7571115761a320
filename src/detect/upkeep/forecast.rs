//! Forecast refits for catalog series with a breach threshold: predicted breaches.

use crate::detect::engine::Detection;
use crate::detect::event::{AnomalyEvent, AnomalyKind, EventKind, ResolveReason};
use crate::detect::forecast::{self, ForecastState};
use crate::detect::state::{History, SeriesState, SeriesView};
use crate::detect::{Direction, Severity};

impl Detection {
    /// Refits a forecast series when its refit is due; returns the predicted_breach transition,
    /// if any. Runs under the shard lock, for the few catalog series with a breach threshold.
    pub(super) fn refit_forecast(
        &self,
        series: &SeriesView<'_>,
        history: &dyn History,
        state: &mut SeriesState,
        scratch: &mut Vec<(i64, f64)>,
    ) -> Option<AnomalyEvent> {
        let params = &self.options.forecast;
        if !params.enabled || !state.enabled || series.cumulative || series.stale {
            return None;
        }
        let (threshold, direction) = self.catalog.breach(series.class)?;
        let forecast_state = state
            .forecast
            .get_or_insert_with(|| Box::new(ForecastState::default()));
        if forecast_state
            .fitted_ts
            .is_some_and(|t| series.last_ts.saturating_sub(t) < params.refit_ms)
        {
            return None;
        }
        forecast_state.fitted_ts = Some(series.last_ts);
        scratch.clear();
        history.decode_into(scratch);
        let season = state.detector.seasonal.as_deref();
        let fit = forecast::fit(scratch, season);
        let max_horizon = params.horizons_ms.iter().copied().max().unwrap_or(0);
        let current = scratch.last().map_or(f64::NAN, |s| s.1);
        forecast_state.points = fit.map_or_else(Vec::new, |f| {
            params
                .horizons_ms
                .iter()
                .map(|h| f.forecast(*h, season))
                .collect()
        });
        let breach = fit.and_then(|f| f.will_breach(threshold, direction, current, max_horizon));
        let previous = std::mem::replace(&mut forecast_state.breach, breach);
        let kind = match (breach, forecast_state.anomaly_id) {
            (Some(_), 0) => {
                forecast_state.anomaly_id = self.next_id();
                forecast_state.started_ts = series.last_ts;
                EventKind::Fired
            }
            (None, id) if id != 0 => EventKind::Resolved,
            _ => return None,
        };
        let (id, started) = (forecast_state.anomaly_id, forecast_state.started_ts);
        let reason = (kind == EventKind::Resolved).then(|| {
            let past = match direction {
                Direction::Below => current <= threshold,
                _ => current >= threshold,
            };
            if past {
                ResolveReason::Breached
            } else {
                ResolveReason::NoLongerPredicted
            }
        });
        if kind == EventKind::Resolved {
            forecast_state.anomaly_id = 0;
        }
        let mut event = self.event(
            series,
            state,
            kind,
            id,
            started,
            series.last_ts,
            Severity::High,
            reason,
        );
        event.anomaly_kind = AnomalyKind::PredictedBreach;
        event.breach = breach.or(previous);
        Some(event)
    }
}
