//! A shard's series, in fixed-size segments addressed by slot number.
//!
//! A series is ~650 bytes inline, so one growing `Vec` per shard would copy every series at
//! each doubling and leave up to half its capacity (and the freed old block) resident; segments
//! are allocated once, never move, and leave at most one partly used segment per shard.

use super::series::Series;

/// Series per segment (~40 KiB).
const SEGMENT: usize = 64;

#[derive(Default)]
pub(super) struct Slots {
    segments: Vec<Box<[Option<Series>]>>,
    len: usize,
}

impl Slots {
    /// Slots handed out so far (used or freed).
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn get(&self, slot: usize) -> Option<&Series> {
        self.segments.get(slot / SEGMENT)?[slot % SEGMENT].as_ref()
    }

    pub(super) fn get_mut(&mut self, slot: usize) -> Option<&mut Series> {
        self.segments.get_mut(slot / SEGMENT)?[slot % SEGMENT].as_mut()
    }

    /// Empties a slot, returning what it held.
    pub(super) fn take(&mut self, slot: usize) -> Option<Series> {
        self.segments.get_mut(slot / SEGMENT)?[slot % SEGMENT].take()
    }

    /// Puts `series` in a slot handed out before (a freed one).
    pub(super) fn put(&mut self, slot: usize, series: Series) {
        if let Some(segment) = self.segments.get_mut(slot / SEGMENT) {
            segment[slot % SEGMENT] = Some(series);
        }
    }

    /// Puts `series` in a new slot and returns its number.
    pub(super) fn push(&mut self, series: Series) -> usize {
        let slot = self.len;
        if slot / SEGMENT == self.segments.len() {
            self.segments
                .push(std::iter::repeat_with(|| None).take(SEGMENT).collect());
        }
        self.segments[slot / SEGMENT][slot % SEGMENT] = Some(series);
        self.len += 1;
        slot
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Series> {
        self.segments.iter().flat_map(|s| s.iter().flatten())
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Series> {
        self.segments
            .iter_mut()
            .flat_map(|s| s.iter_mut().flatten())
    }
}
