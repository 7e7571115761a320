//! A series' ring of recent samples: sealed Gorilla chunks plus an appendable head.
//!
//! The ring is time-bounded: sealed chunks whose newest sample is older than the retention
//! (relative to the newest sample) are dropped, so it always covers at least the retention.

use std::collections::VecDeque;

use super::chunk::{HeadChunk, SAMPLES_PER_CHUNK, SealedChunk};

#[derive(Debug, Clone, Default)]
pub struct Ring {
    sealed: VecDeque<SealedChunk>,
    head: HeadChunk,
}

impl Ring {
    pub fn push(&mut self, ts: i64, value: f64, retention_ms: i64) {
        if self.head.count() >= SAMPLES_PER_CHUNK {
            // The next head of the same series will be about as large as this one.
            let head_len = self.head.encoded_len();
            let span = self
                .head
                .last_ts()
                .saturating_sub(self.head.first_ts())
                .max(1);
            let sealed = self.head.seal();
            self.head.reserve(head_len + head_len / 8);
            if self.sealed.capacity() == 0 {
                // Chunks this series needs to cover the retention, plus the oldest, kept until it is wholly past the retention;
                // sized once so the deque does not double past it.
                let needed = usize::try_from(retention_ms / span)
                    .unwrap_or(8)
                    .clamp(1, 64)
                    + 1;
                self.sealed.reserve_exact(needed);
            }
            self.sealed.push_back(sealed);
        }
        self.head.push(ts, value);
        let horizon = ts.saturating_sub(retention_ms);
        while self.sealed.front().is_some_and(|c| c.last_ts < horizon) {
            self.sealed.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.sealed.iter().map(|c| c.count as usize).sum::<usize>() + self.head.count() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.head.count() == 0 && self.sealed.is_empty()
    }

    /// Appends all samples, oldest first, to `out`.
    pub fn decode_into(&self, out: &mut Vec<(i64, f64)>) {
        for chunk in &self.sealed {
            chunk.decode_into(out);
        }
        self.head.decode_into(out);
    }

    /// Samples at or after `since_ms`.
    pub fn samples_since(&self, since_ms: i64) -> Vec<(i64, f64)> {
        let mut out = Vec::with_capacity(self.len());
        for chunk in self.sealed.iter().filter(|c| c.last_ts >= since_ms) {
            chunk.decode_into(&mut out);
        }
        self.head.decode_into(&mut out);
        out.retain(|&(t, _)| t >= since_ms);
        out
    }

    pub fn heap_bytes(&self) -> usize {
        self.sealed.capacity() * std::mem::size_of::<SealedChunk>()
            + self
                .sealed
                .iter()
                .map(SealedChunk::heap_bytes)
                .sum::<usize>()
            + self.head.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_least_the_retention_and_drops_older() {
        let mut ring = Ring::default();
        let hour = 3_600_000;
        for i in 0..1000 {
            ring.push(i * 15_000, i as f64, hour);
        }
        let mut out = Vec::new();
        ring.decode_into(&mut out);
        let newest = 999 * 15_000;
        assert_eq!(out.last().unwrap().0, newest);
        assert!(out.first().unwrap().0 <= newest - hour);
        assert!(out.first().unwrap().0 >= newest - hour - i64::from(SAMPLES_PER_CHUNK) * 15_000);
        assert!(out.windows(2).all(|w| w[1].0 - w[0].0 == 15_000));
        assert_eq!(ring.len(), out.len());
    }
}
