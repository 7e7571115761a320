//! One series: its labels, ring, rate state, detector state and anomaly lifecycle.

use crate::detect::forecast::ForecastState;
use crate::detect::lifecycle::Lifecycle;
use crate::detect::rate::RateState;
use crate::detect::{DetectorState, Score};

use super::ring::Ring;
use crate::model::labels::SeriesLabels;

#[derive(Debug, Clone)]
pub struct Series {
    pub hash: u64,
    /// High half of the 128-bit label-set hash; see [`crate::model::batch::SeriesEntry::hash_check`].
    pub hash_check: u64,
    pub labels: SeriesLabels,
    /// Catalog class (`catalog::NO_CLASS` when none matched).
    pub class: u16,
    /// Counter-like: detection sees per-second rates, the ring keeps raw values.
    pub cumulative: bool,
    /// Whether samples go through the detectors (config may narrow detection to the catalog).
    pub detect: bool,
    pub stale: bool,
    /// Seconds since the store started when the last sample arrived (for eviction).
    pub last_seen: u32,
    pub last_ts: i64,
    pub ring: Ring,
    pub rate: RateState,
    pub detector: DetectorState,
    pub lifecycle: Lifecycle,
    /// The last score, for /metrics, write-back and the API.
    pub last_score: Score,
    /// Forecast and predicted breach, for catalog metrics with a breach threshold.
    pub forecast: Option<Box<ForecastState>>,
    /// Id of the open peer_outlier anomaly (0 when none) and calm checks since it stood out.
    pub peer_anomaly: u64,
    pub peer_calm: u8,
}

impl Series {
    /// Bytes this series holds, inline and on the heap.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.labels.heap_bytes()
            + self.ring.heap_bytes()
            + self.detector.heap_bytes()
            + self.forecast.as_ref().map_or(0, |f| f.heap_bytes())
    }
}
