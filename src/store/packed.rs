//! Sealed-chunk encoding for decimal data: timestamps and values as bit-packed deltas.
//!
//! Metric values are almost always short decimals (`0.25`, `1532.7`, counters). When every value
//! of a chunk is exactly `m / 10^k` for an integer `m` and `k ≤ 6`, the chunk stores `k`, the
//! first `m`, and the deltas of `m` packed at the chunk's minimal bit width (frame of reference).
//! Timestamps are stored the same way, so a regular scrape interval costs no bits per sample.
//! Exactness is checked bit for bit: a value that does not survive the round trip (NaN, -0.0,
//! 0.1 + 0.2) keeps the chunk in Gorilla form.

use super::bits::{BitReader, BitWriter, width};
use super::decimal::{POW10, SCALES, scaled};

/// The smallest `k` such that every value is exactly an integer divided by 10^k.
fn decimal_scale(values: impl Iterator<Item = f64> + Clone) -> Option<u8> {
    (0..SCALES).find(|&k| values.clone().all(|v| scaled(v, k).is_some()))
}

/// Writes deltas as (minimum, width, each minus the minimum at that width).
fn put_deltas(w: &mut BitWriter, deltas: &[i64]) {
    let min = deltas.iter().copied().min().unwrap_or(0);
    let span = deltas
        .iter()
        .map(|&d| d.wrapping_sub(min) as u64)
        .max()
        .unwrap_or(0);
    let n = width(span);
    w.write_signed(min);
    w.write_bits(u64::from(n), 7);
    for &d in deltas {
        w.write_bits(d.wrapping_sub(min) as u64, n);
    }
}

fn get_deltas(r: &mut BitReader<'_>, count: usize, mut each: impl FnMut(i64)) -> Option<()> {
    let min = r.read_signed()?;
    let n = r.read_bits(7)? as u8;
    if n > 64 {
        return None;
    }
    for _ in 0..count {
        let raw = if n == 0 { 0 } else { r.read_bits(n)? };
        each(min.wrapping_add(raw as i64));
    }
    Some(())
}

/// Encodes samples in packed form into `w` (cleared first); returns the bit length, or `None`
/// when a value is not an exact short decimal.
pub fn encode(samples: &[(i64, f64)], scratch: &mut Vec<i64>, w: &mut BitWriter) -> Option<usize> {
    let (&(ts0, v0), rest) = samples.split_first()?;
    let k = decimal_scale(samples.iter().map(|s| s.1))?;
    let p = POW10[k as usize];
    w.bytes.clear();
    w.used = 0;
    let w = &mut *w;
    w.write_bits(u64::from(k), 3);
    // No first timestamp: the record's header holds the last one, and the deltas lead back.
    scratch.clear();
    let mut prev = ts0;
    for &(t, _) in rest {
        scratch.push(t.wrapping_sub(prev));
        prev = t;
    }
    put_deltas(w, scratch);
    let m0 = (v0 * p).round() as i64;
    w.write_signed(m0);
    scratch.clear();
    let mut prev = m0;
    for &(_, v) in rest {
        let m = (v * p).round() as i64;
        scratch.push(m.wrapping_sub(prev));
        prev = m;
    }
    put_deltas(w, scratch);
    Some(w.bit_len())
}

/// Decodes `count` samples written by [`encode`], whose newest timestamp is `last_ts`; a
/// corrupt chunk ends early.
pub fn decode(bytes: &[u8], bit_len: usize, count: usize, last_ts: i64, out: &mut Vec<(i64, f64)>) {
    let mut r = BitReader::new(bytes, bit_len);
    let Some(k) = r
        .read_bits(3)
        .map(|k| k as usize)
        .filter(|&k| k < POW10.len())
    else {
        return;
    };
    let start = out.len();
    out.push((0, 0.0));
    // Offsets from the first sample first; the last one's offset then places them all.
    let mut t = 0i64;
    if get_deltas(&mut r, count.saturating_sub(1), |d| {
        t = t.wrapping_add(d);
        out.push((t, 0.0));
    })
    .is_none()
    {
        out.truncate(start);
        return;
    }
    let ts0 = last_ts.wrapping_sub(t);
    for sample in &mut out[start..] {
        sample.0 = sample.0.wrapping_add(ts0);
    }
    let Some(m0) = r.read_signed() else {
        out.truncate(start);
        return;
    };
    let p = POW10[k];
    let mut m = m0;
    let mut i = start;
    out[i].1 = m as f64 / p;
    let ok = get_deltas(&mut r, count.saturating_sub(1), |d| {
        m = m.wrapping_add(d);
        i += 1;
        if let Some(s) = out.get_mut(i) {
            s.1 = m as f64 / p;
        }
    });
    if ok.is_none() {
        out.truncate(start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(samples: &[(i64, f64)]) -> Option<(Vec<(i64, f64)>, usize)> {
        let mut w = BitWriter::default();
        let bits = encode(samples, &mut Vec::new(), &mut w)?;
        let mut out = Vec::new();
        let last_ts = samples.last().map_or(0, |s| s.0);
        decode(&w.bytes, bits, samples.len(), last_ts, &mut out);
        Some((out, w.bytes.len()))
    }

    #[test]
    fn decimal_gauges_and_counters_are_small_and_exact() {
        let gauge: Vec<(i64, f64)> = (0..120)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 15_000,
                    ((i * 37) % 23) as f64 * 0.1 + 15.0,
                )
            })
            .collect();
        let (out, len) = roundtrip(&gauge).unwrap();
        assert_eq!(
            out.iter().map(|s| (s.0, s.1.to_bits())).collect::<Vec<_>>(),
            gauge
                .iter()
                .map(|s| (s.0, s.1.to_bits()))
                .collect::<Vec<_>>()
        );
        assert!(len < 110, "{len}");
        let counter: Vec<(i64, f64)> = (0..120).map(|i| (i * 15_000, (i * 45) as f64)).collect();
        let (_, len) = roundtrip(&counter).unwrap();
        assert!(len < 24, "{len}");
    }

    #[test]
    fn inexact_values_fall_back() {
        assert!(roundtrip(&[(1, 0.1 + 0.2), (2, 1.0)]).is_none());
        assert!(roundtrip(&[(1, f64::NAN)]).is_none());
        assert!(roundtrip(&[(1, -0.0)]).is_none());
        assert!(roundtrip(&[(1, 1e300)]).is_none());
        assert!(roundtrip(&[(1, std::f64::consts::PI)]).is_none());
    }

    proptest! {
        #[test]
        fn any_decimal_samples_roundtrip(samples in proptest::collection::vec((any::<i64>(), -1_000_000_000i64..1_000_000_000, 0usize..7), 1..150)) {
            let samples: Vec<(i64, f64)> = samples.into_iter().map(|(t, m, k)| (t, m as f64 / POW10[k])).collect();
            if let Some((out, _)) = roundtrip(&samples) {
                let a: Vec<(i64, u64)> = out.iter().map(|s| (s.0, s.1.to_bits())).collect();
                let b: Vec<(i64, u64)> = samples.iter().map(|s| (s.0, s.1.to_bits())).collect();
                prop_assert_eq!(a, b);
            }
        }
    }
}
