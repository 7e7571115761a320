//! Level shifts: a firing anomaly that is a lasting new level is reported once and adopted.

use crate::detect::Severity;
use crate::detect::changepoint;
use crate::detect::engine::Detection;
use crate::detect::event::{AnomalyEvent, AnomalyKind, EventKind, ResolveReason};
use crate::detect::state::{History, SeriesState, SeriesView};

impl Detection {
    /// For a series in a firing anomaly that started within its ring: if the ring shows a
    /// lasting level shift that started it, reports it once (fired and at once resolved as
    /// adopted) and moves the band to the new level, so the anomaly ends (the band skips an
    /// anomaly's samples, so without this a new normal would page forever).
    pub(super) fn adopt_level_shift(
        &self,
        series: &SeriesView<'_>,
        history: &dyn History,
        state: &mut SeriesState,
        scratch: &mut Vec<(i64, f64)>,
    ) -> Vec<AnomalyEvent> {
        let lc = &state.lifecycle;
        let oldest = series.last_ts.saturating_sub(self.retention_ms);
        // Only a firing anomaly can be a new level (the band skips its samples until adopted);
        // one that resolved went back.
        let recent = lc.is_firing() && lc.started_ts != 0 && lc.started_ts > oldest;
        if !recent || lc.shift_checked || series.cumulative || !state.enabled {
            return Vec::new();
        }
        scratch.clear();
        history.decode_into(scratch);
        // A seasonal series shifts in its deseasonalized residual (what its band tracks): the
        // daily swing must not look like a change of level, and a move of the whole day must.
        let season = state.detector.seasonal.as_deref().filter(|p| p.active);
        if let Some(profile) = season {
            for sample in scratch.iter_mut() {
                sample.1 -= profile.expected(sample.0).0;
            }
        }
        let Some(mut shift) = changepoint::level_shift(scratch) else {
            return Vec::new();
        };
        // Only the shift that started this anomaly (a minute of slack for pending samples).
        if shift.at_ms < lc.started_ts.saturating_sub(60_000) {
            return Vec::new();
        }
        state.lifecycle.shift_checked = true;
        match state.detector.seasonal.as_deref_mut().filter(|p| p.active) {
            Some(profile) => {
                // The profile moves by the shift; the residual band stays where it was.
                let now = profile.expected(series.last_ts).0;
                profile.shift_level(shift.after - shift.before);
                state.detector.adopt_level(shift.before);
                // Report levels a reader can check: at the newest sample's time of day.
                shift.before += now;
                shift.after += now;
            }
            None => state.detector.adopt_level(shift.after),
        }
        let id = self.next_id();
        let severity = Severity::from_sigma(shift.sigmas);
        let mut fired = self.event(
            series,
            state,
            EventKind::Fired,
            id,
            shift.at_ms,
            series.last_ts,
            severity,
            None,
        );
        fired.anomaly_kind = AnomalyKind::LevelShift;
        fired.shift = Some(shift);
        let mut adopted = fired.clone();
        adopted.kind = EventKind::Resolved;
        adopted.reason = Some(ResolveReason::Adopted);
        vec![fired, adopted]
    }
}
