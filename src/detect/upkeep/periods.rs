//! Period discovery: a shorter period (a cron job, a batch cycle) found in a series' ring and
//! tried before it replaces the configured daily profile.

use crate::detect::engine::Detection;
use crate::detect::periods;
use crate::detect::seasonal::SeasonalProfile;
use crate::detect::state::{History, SeriesState, SeriesView};
use crate::model::series_id;

/// The sampling interval (ms) of `samples` if they are evenly spaced enough for a periodogram
/// (no gaps or bursts that would smear a period) and numerous enough to show one.
fn regular_interval(samples: &[(i64, f64)]) -> Option<i64> {
    if samples.len() < periods::MIN_SAMPLES {
        return None;
    }
    let mut gaps: Vec<i64> = samples
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0))
        .collect();
    let mid = gaps.len() / 2;
    let typical = *gaps.select_nth_unstable(mid).1;
    // Timestamps come from outside: no arithmetic here may overflow.
    let span = samples[samples.len() - 1].0.checked_sub(samples[0].0)?;
    let expected = typical.checked_mul(samples.len() as i64 - 1)?;
    let off = span.checked_sub(expected)?.checked_abs()?;
    (typical > 0 && off.saturating_mul(10) <= expected).then_some(typical)
}

impl Detection {
    /// Searches the ring of a series whose configured period is not confirmed for a shorter
    /// one (every half ring, jittered per series). A period found goes on trial: a second
    /// profile that learns from the samples after the search and replaces the series' profile
    /// only if, after [`crate::detect::seasonal::TRIAL_PERIODS`] periods, it explains at least the discovery
    /// share of them (the search picked the best of many periods on the ring, so the ring cannot
    /// also be the judge). A discovered profile that stops holding and whose period is no longer
    /// found goes back to the configured one.
    pub(super) fn discover_period(
        &self,
        series: &SeriesView<'_>,
        history: &dyn History,
        state: &mut SeriesState,
        scratch: &mut Vec<(i64, f64)>,
    ) {
        let p = &self.options.detect;
        if p.period_discovery_strength <= 0.0 || !state.enabled || series.cumulative {
            return;
        }
        let Some(profile) = state.detector.seasonal.as_deref_mut() else {
            return;
        };
        if profile.active {
            profile.trial = None;
            return;
        }
        if let Some(trial) = profile.trial.as_deref() {
            let Some(strength) = trial.trial_strength() else {
                return;
            };
            if f64::from(strength) >= p.period_discovery_strength {
                if let Some(promoted) = profile.trial.take() {
                    tracing::debug!(
                        series = %series_id(series.hash),
                        period_ms = promoted.period_ms,
                        strength,
                        "seasonal period confirmed"
                    );
                    profile.replace_keeping_schedule(*promoted);
                }
                return;
            }
            profile.trial = None;
        }
        if series.last_ts < profile.next_period_check_ts {
            return;
        }
        let half_ring = (self.retention_ms / 2).max(1);
        let jitter = (series.hash % half_ring as u64) as i64;
        profile.next_period_check_ts = series.last_ts.saturating_add(half_ring + jitter);
        scratch.clear();
        history.decode_into(scratch);
        let Some(interval) = regular_interval(scratch) else {
            return;
        };
        let values: Vec<f64> = scratch.iter().map(|s| s.1).collect();
        let found = periods::dominant_period(&values, p.period_discovery_strength)
            .and_then(|f| Some((f.samples, (f.samples as i64).checked_mul(interval)?)))
            .filter(|(_, ms)| ms.saturating_mul(2) <= p.seasonal_period_ms);
        let Some((samples, period_ms)) = found else {
            if profile.discovered {
                profile.replace_keeping_schedule(SeasonalProfile::new(
                    p.seasonal_period_ms,
                    p.seasonal_bins,
                ));
            }
            return;
        };
        let same = (profile.period_ms.saturating_sub(period_ms))
            .saturating_abs()
            .saturating_mul(10)
            <= period_ms;
        if profile.discovered && same {
            // The same period, merely not holding at the moment: keep learning it.
            return;
        }
        let bins = (samples / 2).clamp(2, p.seasonal_bins.max(2));
        profile.trial = Some(Box::new(SeasonalProfile::discovered(period_ms, bins)));
    }
}
