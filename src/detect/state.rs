//! Per-series detection state, as the store holds it: opaque to the store, which keeps one
//! beside each ring and hands it back to [`super::engine::Detection`] with every sample and at
//! upkeep. What readers outside detection may see of it goes through the accessors here.

use serde::Serialize;

use super::forecast::{Breach, ForecastPoint, ForecastState};
use super::lifecycle::Lifecycle;
use super::rate::RateState;
use super::{DetectorState, Score};
use crate::model::labels::SeriesLabels;

/// What detection may read of a series the store keeps.
#[derive(Debug, Clone, Copy)]
pub struct SeriesView<'a> {
    pub hash: u64,
    pub labels: &'a SeriesLabels,
    /// Catalog class (`catalog::NO_CLASS` when none matched).
    pub class: u16,
    /// Counter-like: detection sees per-second rates.
    pub cumulative: bool,
    pub stale: bool,
    /// Timestamp of the newest sample.
    pub last_ts: i64,
}

/// A series' recent samples, oldest first (the store's ring).
pub trait History {
    /// Appends the samples held to `out`, oldest first.
    fn decode_into(&self, out: &mut Vec<(i64, f64)>);
}

/// Every series the store holds, for the upkeep that compares series with each other (peer
/// groups, services). Implemented by the store; each visit takes the locks it needs.
pub trait Population {
    /// Visits every series; keep `f` cheap, it blocks that series' writers.
    fn visit(&self, f: &mut dyn FnMut(&SeriesView<'_>, &dyn History, &mut SeriesState));
    /// Visits one series by its hash; false when it is gone.
    fn visit_one(&self, hash: u64, f: &mut dyn FnMut(&SeriesView<'_>, &mut SeriesState)) -> bool;
}

/// One series' detection state: rate, baseline, lifecycle, last score, forecast, peer status.
#[derive(Debug, Clone)]
pub struct SeriesState {
    /// Whether samples go through the detectors (config may narrow detection to the catalog).
    pub(super) enabled: bool,
    pub(super) rate: RateState,
    pub(super) detector: DetectorState,
    pub(super) lifecycle: Lifecycle,
    pub(super) last_score: StoredScore,
    /// Forecast and predicted breach, for catalog metrics with a breach threshold.
    pub(super) forecast: Option<Box<ForecastState>>,
    /// Id of the open peer_outlier anomaly (0 when none) and calm checks since it stood out.
    pub(super) peer_anomaly: u64,
    pub(super) peer_calm: u8,
}

/// The last score as a series keeps it: the score itself exact (replay writes it, thresholds
/// compare it), the band, sigma and value to f32's 7 significant digits, what /metrics,
/// write-back, the API and the peer check read of them (the exact value is in the ring; events
/// carry these too). 32 bytes instead of [`Score`]'s 56, in every series.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct StoredScore {
    score: f64,
    sigma: f32,
    expected: f32,
    lower: f32,
    upper: f32,
    value: f32,
    votes: u8,
    channel: super::Channel,
    anomalous: bool,
    deviating: bool,
}

impl StoredScore {
    pub(super) fn keep(s: &Score) -> Self {
        Self {
            score: s.score,
            sigma: s.sigma as f32,
            expected: s.expected as f32,
            lower: s.lower as f32,
            upper: s.upper as f32,
            value: s.value as f32,
            votes: s.votes,
            channel: s.channel,
            anomalous: s.anomalous,
            deviating: s.deviating,
        }
    }

    pub(super) fn expand(&self) -> Score {
        Score {
            score: self.score,
            anomalous: self.anomalous,
            deviating: self.deviating,
            channel: self.channel,
            sigma: f64::from(self.sigma),
            expected: f64::from(self.expected),
            lower: f64::from(self.lower),
            upper: f64::from(self.upper),
            votes: self.votes,
            value: f64::from(self.value),
        }
    }
}

/// A series' band as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineSummary {
    pub mean: f64,
    pub sigma: f64,
    pub median: f64,
    pub mad: f64,
    pub samples_seen: u32,
    pub season: Option<SeasonInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeasonInfo {
    pub period_seconds: i64,
    pub bins: usize,
    pub strength: f32,
    pub active: bool,
    /// Found in the series' own samples rather than named by config.
    pub discovered: bool,
}

impl SeriesState {
    pub(super) fn new(enabled: bool, detector: DetectorState) -> Self {
        Self {
            enabled,
            rate: RateState::default(),
            detector,
            lifecycle: Lifecycle::default(),
            last_score: StoredScore::default(),
            forecast: None,
            peer_anomaly: 0,
            peer_calm: 0,
        }
    }

    /// Whether samples of this series go through the detectors.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn is_firing(&self) -> bool {
        self.lifecycle.is_firing()
    }

    /// The last score, for /metrics, write-back, replay and the API.
    pub fn last_score(&self) -> Score {
        self.last_score.expand()
    }

    pub fn forecast_points(&self) -> &[ForecastPoint] {
        self.forecast.as_deref().map_or(&[], |f| &f.points)
    }

    pub fn predicted_breach(&self) -> Option<Breach> {
        self.forecast.as_deref().and_then(|f| f.breach)
    }

    /// Whether the baseline has seen enough to be worth keeping (snapshot, backfill).
    pub fn has_learned(&self) -> bool {
        self.detector.has_learned()
    }

    /// The learned baseline, for snapshots and export.
    pub fn detector(&self) -> &DetectorState {
        &self.detector
    }

    /// Replaces the learned baseline (an import or a snapshot restore).
    pub fn replace_detector(&mut self, detector: DetectorState) {
        self.detector = detector;
    }

    /// Forgets every open anomaly without reporting it (history's anomalies are not news).
    pub fn forget_anomalies(&mut self) {
        self.lifecycle = Lifecycle::default();
        if let Some(f) = self.forecast.as_deref_mut() {
            f.anomaly_id = 0;
        }
    }

    pub fn baseline(&self) -> BaselineSummary {
        let d = &self.detector;
        BaselineSummary {
            mean: d.ewma.mean,
            sigma: d.ewma.std(),
            median: d.robust.median,
            mad: d.robust.mad,
            samples_seen: d.seen,
            season: d.seasonal.as_deref().map(|p| SeasonInfo {
                period_seconds: p.period_ms / 1000,
                bins: p.bins.len(),
                strength: p.strength,
                active: p.active,
                discovered: p.discovered,
            }),
        }
    }

    /// Inline bytes of each part, for the memory breakdown (what a series costs before heap).
    pub fn inline_layout() -> [(&'static str, usize); 10] {
        use std::mem::size_of;
        [
            ("rate", size_of::<RateState>()),
            ("ewma", size_of::<super::ewma::Ewma>()),
            ("robust", size_of::<super::robust::RobustStats>()),
            (
                "seasonal (box)",
                size_of::<Option<Box<super::seasonal::SeasonalProfile>>>(),
            ),
            ("novelty", size_of::<super::novelty::NoveltyState>()),
            ("rest", size_of::<super::rest::Rest>()),
            ("lifecycle", size_of::<Lifecycle>()),
            ("last score", size_of::<StoredScore>()),
            ("forecast (box)", size_of::<Option<Box<ForecastState>>>()),
            ("state total", size_of::<Self>()),
        ]
    }

    /// Heap bytes held (the inline part is counted with the series).
    pub fn heap_bytes(&self) -> usize {
        self.detector.heap_bytes() + self.forecast.as_ref().map_or(0, |f| f.heap_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_score_keeps_the_score_exact_and_the_band_to_seven_digits() {
        let score = Score {
            score: 0.727_200_000_000_1,
            anomalous: true,
            deviating: true,
            channel: super::super::Channel::Density,
            sigma: 4.25,
            expected: 1_234_567.891,
            lower: 1_000_000.5,
            upper: 1_500_000.25,
            votes: 3,
            value: 2_000_000.125,
        };
        let back = StoredScore::keep(&score).expand();
        assert_eq!(back.score.to_bits(), score.score.to_bits());
        assert_eq!(
            (back.anomalous, back.deviating, back.votes),
            (true, true, 3)
        );
        assert_eq!(back.channel, score.channel);
        for (kept, exact) in [
            (back.expected, score.expected),
            (back.lower, score.lower),
            (back.upper, score.upper),
            (back.value, score.value),
            (back.sigma, score.sigma),
        ] {
            assert!(((kept - exact) / exact).abs() < 1e-7, "{kept} vs {exact}");
        }
        assert_eq!(std::mem::size_of::<StoredScore>(), 32);
    }
}
