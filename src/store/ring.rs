//! A series' ring of recent samples: sealed chunks plus an appendable head.
//!
//! The ring is time-bounded: sealed chunks whose newest sample is older than the retention
//! (relative to the newest sample) are dropped, so it always covers at least the retention.
//! The sealed chunks share one buffer, so a ring is two allocations however many chunks the
//! retention spans.

use super::chunk::{HeadChunk, SAMPLES_PER_CHUNK, SealedHeader, decode_record};

#[derive(Debug, Clone, Default)]
pub struct Ring {
    /// Sealed chunks, oldest first, back to back ([`SealedHeader`] then bytes each).
    sealed: Vec<u8>,
    head: HeadChunk,
}

impl Ring {
    pub fn push(&mut self, ts: i64, value: f64, retention_ms: i64) {
        let horizon = ts.saturating_sub(retention_ms);
        if self.head.count() >= SAMPLES_PER_CHUNK {
            // Dropped first, so the new chunk usually fits in the room the oldest leaves.
            self.drop_before(horizon);
            self.head.seal_into(&mut self.sealed);
        }
        self.head.push(ts, value);
        self.drop_before(horizon);
    }

    /// Drops the sealed chunks whose newest sample is older than `horizon`.
    fn drop_before(&mut self, horizon: i64) {
        let mut cut = 0;
        while let Some(header) = self.sealed.get(cut..).and_then(SealedHeader::read)
            && header.last_ts < horizon
        {
            cut += header.record_len();
        }
        if cut > 0 {
            self.sealed.drain(..cut.min(self.sealed.len()));
        }
    }

    /// The sealed chunks' headers with where each record starts.
    fn records(&self) -> impl Iterator<Item = (usize, SealedHeader)> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let header = SealedHeader::read(self.sealed.get(at..)?)?;
            let start = at;
            at += header.record_len();
            Some((start, header))
        })
    }

    pub fn len(&self) -> usize {
        self.records()
            .map(|(_, h)| usize::from(h.count))
            .sum::<usize>()
            + usize::from(self.head.count())
    }

    pub fn is_empty(&self) -> bool {
        self.head.count() == 0 && self.sealed.is_empty()
    }

    /// Appends all samples, oldest first, to `out`.
    pub fn decode_into(&self, out: &mut Vec<(i64, f64)>) {
        self.decode_since(i64::MIN, out);
        self.head.decode_into(out);
    }

    /// Appends the sealed chunks whose newest sample is at or after `since_ms`.
    fn decode_since(&self, since_ms: i64, out: &mut Vec<(i64, f64)>) {
        for (start, header) in self.records() {
            if header.last_ts >= since_ms && decode_record(&self.sealed[start..], out).is_none() {
                return;
            }
        }
    }

    /// Samples at or after `since_ms`.
    pub fn samples_since(&self, since_ms: i64) -> Vec<(i64, f64)> {
        let mut out = Vec::with_capacity(self.len());
        self.decode_since(since_ms, &mut out);
        self.head.decode_into(&mut out);
        out.retain(|&(t, _)| t >= since_ms);
        out
    }

    pub fn heap_bytes(&self) -> usize {
        self.sealed.capacity() + self.head.heap_bytes()
    }

    /// Bytes used and held by the sealed chunks and by the head, for the memory breakdown.
    pub fn heap_parts(&self) -> [usize; 4] {
        [
            self.sealed.len(),
            self.sealed.capacity(),
            self.head.encoded_len(),
            self.head.heap_bytes(),
        ]
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

    proptest::proptest! {
        #[test]
        fn keeps_every_sample_of_the_retention_whatever_the_values(
            steps in proptest::collection::vec((1i64..40_000, proptest::prelude::any::<u64>(), 0u8..4), 1..700),
            retention in 1i64..3_000_000,
        ) {
            let mut ring = Ring::default();
            let mut pushed = Vec::new();
            let mut ts = -5_000_000i64;
            for (gap, bits, kind) in steps {
                ts += gap;
                // Short decimals mostly, arbitrary bits now and then (XOR heads, re-encodes).
                let value = match kind {
                    0 => f64::from_bits(bits),
                    1 => (bits % 1000) as f64 / 100.0,
                    _ => (bits % 50) as f64,
                };
                ring.push(ts, value, retention);
                pushed.push((ts, value.to_bits()));
            }
            let mut out = Vec::new();
            ring.decode_into(&mut out);
            let out: Vec<(i64, u64)> = out.iter().map(|s| (s.0, s.1.to_bits())).collect();
            proptest::prop_assert_eq!(ring.len(), out.len());
            proptest::prop_assert!(pushed.ends_with(&out));
            // What was dropped is older than the retention: whole chunks past the horizon.
            let newest = pushed.last().map_or(0, |s| s.0);
            let dropped = &pushed[..pushed.len() - out.len()];
            proptest::prop_assert!(dropped.iter().all(|s| s.0 < newest - retention));
        }
    }
}
