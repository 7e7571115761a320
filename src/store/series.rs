//! One series: its labels, ring and the detection state the store keeps for it without
//! looking inside (see [`crate::detect::state::SeriesState`]).

use crate::detect::state::{History, SeriesState, SeriesView};

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
    pub stale: bool,
    /// Seconds since the store started when the last sample arrived (for eviction).
    pub last_seen: u32,
    pub last_ts: i64,
    pub ring: Ring,
    pub state: SeriesState,
}

impl History for Ring {
    fn decode_into(&self, out: &mut Vec<(i64, f64)>) {
        Ring::decode_into(self, out);
    }
}

impl Series {
    /// Bytes this series holds, inline and on the heap.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.labels.heap_bytes()
            + self.ring.heap_bytes()
            + self.state.heap_bytes()
    }

    /// What detection reads of this series, its ring and its state, borrowed apart.
    pub fn parts(&mut self) -> (SeriesView<'_>, &Ring, &mut SeriesState) {
        let view = SeriesView {
            hash: self.hash,
            labels: &self.labels,
            class: self.class,
            cumulative: self.cumulative,
            stale: self.stale,
            last_ts: self.last_ts,
        };
        (view, &self.ring, &mut self.state)
    }
}
