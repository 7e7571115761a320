//! Short decimals as integers: a value that is exactly `m / 10^k` (`k ≤ 6`) is stored as `m`,
//! shared by the appendable head ([`super::chunk`], one delta per sample) and the sealed packed
//! chunks ([`super::packed`], deltas at the chunk's width). Exactness is checked bit for bit, so
//! NaN, -0.0 and binary fractions such as 0.1 + 0.2 are never stored this way.

use super::bits::{BitReader, BitWriter, unzigzag, zigzag};

pub const POW10: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];
/// Integers up to 2^53 are exact in an f64.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
/// The largest scale, so `k < SCALES` always indexes [`POW10`].
pub const SCALES: u8 = POW10.len() as u8;

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

/// A unary quotient this long is an escape: a 6-bit width and the raw zigzagged delta follow.
const MAX_QUOTIENT: u64 = 8;
/// The largest Rice parameter (a delta this wide escapes anyway).
const MAX_RICE: u8 = 62;

/// Writes one value delta as an adaptive Rice code: the zigzagged delta's high part (`z >> k`)
/// in unary, then its low `k` bits. `k` follows the deltas' size one step per sample, so a
/// 1-decimal gauge whose steps take 5 bits costs ~6 bits a sample instead of the 9 of a fixed
/// prefix class, an unchanged value 1 bit once `k` is 0, and a lone spike (escaped, at most 78
/// bits) moves `k` by one only. The chunk records the `k` it started with (see
/// [`super::chunk`]), so decoding needs nothing from outside.
pub fn write_rice(w: &mut BitWriter, delta: i64, k: &mut u8) {
    let z = zigzag(delta);
    let q = z >> *k;
    if q < MAX_QUOTIENT {
        // q ones, then a zero.
        w.write_bits((1u64 << (q + 1)) - 2, q as u8 + 1);
        if *k > 0 {
            w.write_bits(z, *k);
        }
    } else {
        w.write_bits((1u64 << MAX_QUOTIENT) - 1, MAX_QUOTIENT as u8);
        let width = (64 - z.leading_zeros()) as u8;
        w.write_bits(u64::from(width - 1), 6);
        w.write_bits(z, width);
    }
    adapt(k, z);
}

/// Reads one delta of [`write_rice`], moving `k` as the writer did.
pub fn read_rice(r: &mut BitReader<'_>, k: &mut u8) -> Option<i64> {
    let mut q = 0;
    while q < MAX_QUOTIENT && r.read_bit()? {
        q += 1;
    }
    let z = if q == MAX_QUOTIENT {
        let width = r.read_bits(6)? as u8 + 1;
        r.read_bits(width)?
    } else if *k > 0 {
        (q << *k) | r.read_bits(*k)?
    } else {
        q
    };
    adapt(k, z);
    Some(unzigzag(z))
}

/// Up when the quotient reached 2 (the delta outgrew `k`), down when the delta would have fit
/// in one bit less: the writer and the reader both call it after each delta.
fn adapt(k: &mut u8, z: u64) {
    if z >> *k >= 2 {
        *k = (*k + 1).min(MAX_RICE);
    } else if *k > 0 && z < 1 << (*k - 1) {
        *k -= 1;
    }
}

/// The parameter a chunk starts with, clamped into what its 6-bit field holds.
pub fn rice_start(k: u8) -> u8 {
    k.min(MAX_RICE)
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

    fn rice_bits(deltas: &[i64], start: u8) -> usize {
        let mut w = BitWriter::default();
        let mut k = start;
        for &d in deltas {
            write_rice(&mut w, d, &mut k);
        }
        w.bit_len()
    }

    #[test]
    fn rice_parameter_follows_the_deltas_size() {
        // A 1-decimal gauge stepping +1.3 / -1.0: 5-bit zigzags, ~6 bits each once k settles.
        let steps: Vec<i64> = (0..60).map(|i| if i % 2 == 0 { 13 } else { -10 }).collect();
        assert!(rice_bits(&steps, 5) <= 60 * 6, "{}", rice_bits(&steps, 5));
        // From k = 0 it climbs one step per sample and costs a little more, once.
        assert!(rice_bits(&steps, 0) <= 60 * 6 + 60);
        // An unchanged value is one bit.
        assert_eq!(rice_bits(&[0; 60], 0), 60);
        // A lone spike is escaped and leaves k one step up, not at its width.
        let mut spiky = steps.clone();
        spiky[30] = 1 << 40;
        assert!(rice_bits(&spiky, 5) <= rice_bits(&steps, 5) + 60);
    }

    proptest! {
        #[test]
        fn deltas_roundtrip(
            deltas in proptest::collection::vec(
                prop_oneof![any::<i64>(), -40i64..40, Just(0i64), Just(i64::MIN), Just(i64::MAX)],
                0..100,
            ),
            start in 0u8..=MAX_RICE,
        ) {
            let mut w = BitWriter::default();
            let mut k = start;
            for &d in &deltas {
                write_rice(&mut w, d, &mut k);
            }
            let mut r = BitReader::new(&w.bytes, w.bit_len());
            let mut k = start;
            for &d in &deltas {
                prop_assert_eq!(read_rice(&mut r, &mut k), Some(d));
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
