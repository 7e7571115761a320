//! Short decimals as integers: a value that is exactly `m / 10^k` (`k ≤ 6`) is stored as `m`,
//! shared by the appendable head ([`super::chunk`], one delta per sample) and the sealed packed
//! chunks ([`super::packed`], deltas at the chunk's width). Exactness is checked bit for bit, so
//! NaN, -0.0 and binary fractions such as 0.1 + 0.2 are never stored this way.

use super::bits::{BitReader, BitWriter};

pub const POW10: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];
/// Integers up to 2^53 are exact in an f64.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
/// The largest scale, so `k < SCALES` always indexes [`POW10`].
pub const SCALES: u8 = POW10.len() as u8;

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// `m` such that `v` is bit for bit `m / 10^k`, if there is one.
pub fn scaled(v: f64, k: u8) -> Option<i64> {
    let p = POW10[usize::from(k)];
    let m = (v * p).round();
    // Through the integer, so -0.0 (whose integer is 0) is refused.
    (m.abs() < MAX_EXACT && ((m as i64) as f64 / p).to_bits() == v.to_bits()).then_some(m as i64)
}

pub fn unscaled(m: i64, k: u8) -> f64 {
    m as f64 / POW10[usize::from(k)]
}

/// The smallest scale at which `v` is an exact short decimal.
pub fn smallest_scale(v: f64) -> Option<u8> {
    (0..SCALES).find(|&k| scaled(v, k).is_some())
}

/// Writes one value delta in a prefix code sized for metric noise: 1 bit for an unchanged
/// value, 9 for a step of less than 64 units, then 15, 24 and 68 bits.
pub fn write_delta(w: &mut BitWriter, delta: i64) {
    let z = zigzag(delta);
    if z == 0 {
        w.write_bit(false);
    } else if z < 1 << 7 {
        w.write_bits(0b10, 2);
        w.write_bits(z, 7);
    } else if z < 1 << 12 {
        w.write_bits(0b110, 3);
        w.write_bits(z, 12);
    } else if z < 1 << 20 {
        w.write_bits(0b1110, 4);
        w.write_bits(z, 20);
    } else {
        w.write_bits(0b1111, 4);
        w.write_bits(z, 64);
    }
}

pub fn read_delta(r: &mut BitReader<'_>) -> Option<i64> {
    if !r.read_bit()? {
        return Some(0);
    }
    let width = if !r.read_bit()? {
        7
    } else if !r.read_bit()? {
        12
    } else if !r.read_bit()? {
        20
    } else {
        64
    };
    Some(unzigzag(r.read_bits(width)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scales_are_exact_or_refused() {
        assert_eq!(smallest_scale(12.3), Some(1));
        assert_eq!(scaled(12.3, 1), Some(123));
        assert_eq!(scaled(12.3, 3), Some(12_300));
        assert_eq!(smallest_scale(42.0), Some(0));
        assert_eq!(smallest_scale(0.1 + 0.2), None);
        assert_eq!(smallest_scale(f64::NAN), None);
        assert_eq!(smallest_scale(-0.0), None);
        assert_eq!(smallest_scale(1e300), None);
        assert_eq!(smallest_scale(f64::INFINITY), None);
    }

    proptest! {
        #[test]
        fn deltas_roundtrip(deltas in proptest::collection::vec(any::<i64>(), 0..100)) {
            let mut w = BitWriter::default();
            for &d in &deltas {
                write_delta(&mut w, d);
            }
            let mut r = BitReader::new(&w.bytes, w.bit_len());
            for &d in &deltas {
                prop_assert_eq!(read_delta(&mut r), Some(d));
            }
            prop_assert_eq!(r.read_bit(), None);
        }

        #[test]
        fn a_scaled_value_unscales_to_itself(m in -1_000_000_000_000i64..1_000_000_000_000, k in 0u8..SCALES) {
            let v = unscaled(m, k);
            if let Some(back) = scaled(v, k) {
                prop_assert_eq!(unscaled(back, k).to_bits(), v.to_bits());
            }
        }
    }
}
