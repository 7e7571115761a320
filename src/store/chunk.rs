//! Gorilla XOR compression of (timestamp, value) samples, appendable one sample at a time.
//!
//! Timestamps are stored as delta-of-delta (a regular 15 s scrape costs one bit), values as the
//! XOR with the previous value (an unchanged value costs one bit). This is the scheme of
//! Facebook's Gorilla paper and of Prometheus' XOR chunks.

use super::bits::{BitReader, BitWriter};

/// Samples per chunk before it is sealed. 120 at a 15 s interval is 30 minutes, so a 1 h ring
/// spans 2–3 chunks and retention drops memory in 30-minute steps.
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// A sealed chunk: immutable, shrunk to its size.
#[derive(Debug, Clone)]
pub struct SealedChunk {
    pub bytes: Box<[u8]>,
    pub bit_len: u32,
    pub count: u16,
    pub first_ts: i64,
    pub last_ts: i64,
}

/// The chunk being appended to, with the encoder state that only the head needs.
#[derive(Debug, Clone, Default)]
pub struct HeadChunk {
    bits: BitWriter,
    count: u16,
    first_ts: i64,
    prev_ts: i64,
    prev_delta: i64,
    prev_value: u64,
    leading: u8,
    trailing: u8,
}

impl HeadChunk {
    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn first_ts(&self) -> i64 {
        self.first_ts
    }

    pub fn last_ts(&self) -> i64 {
        self.prev_ts
    }

    pub fn push(&mut self, ts: i64, value: f64) {
        let bits = value.to_bits();
        match self.count {
            0 => {
                self.bits.write_bits(ts as u64, 64);
                self.bits.write_bits(bits, 64);
                self.first_ts = ts;
                self.leading = 0xff;
            }
            _ => {
                let delta = ts.wrapping_sub(self.prev_ts);
                let dod = delta.wrapping_sub(self.prev_delta);
                write_dod(&mut self.bits, dod);
                self.prev_delta = delta;
                self.write_value(bits);
            }
        }
        self.prev_ts = ts;
        self.prev_value = bits;
        self.count += 1;
    }

    fn write_value(&mut self, bits: u64) {
        let xor = bits ^ self.prev_value;
        if xor == 0 {
            self.bits.write_bit(false);
            return;
        }
        self.bits.write_bit(true);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.bits.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.bits.write_bits(xor >> self.trailing, sig);
        } else {
            self.bits.write_bit(true);
            let sig = 64 - leading - trailing;
            self.bits.write_bits(u64::from(leading), 5);
            // 64 significant bits do not fit in 6 bits; 0 stands for 64.
            self.bits.write_bits(u64::from(sig) & 63, 6);
            self.bits.write_bits(xor >> trailing, sig);
            self.leading = leading;
            self.trailing = trailing;
        }
    }

    pub fn seal(&mut self) -> SealedChunk {
        let head = std::mem::take(self);
        let bit_len = head.bits.bit_len() as u32;
        SealedChunk {
            bytes: head.bits.bytes.into_boxed_slice(),
            bit_len,
            count: head.count,
            first_ts: head.first_ts,
            last_ts: head.prev_ts,
        }
    }

    pub fn decode_into(&self, out: &mut Vec<(i64, f64)>) {
        decode(&self.bits.bytes, self.bits.bit_len(), self.count, out);
    }

    pub fn heap_bytes(&self) -> usize {
        self.bits.bytes.capacity()
    }
}

fn write_dod(w: &mut BitWriter, dod: i64) {
    if dod == 0 {
        w.write_bit(false);
    } else if fits(dod, 14) {
        w.write_bits(0b10, 2);
        w.write_bits(dod as u64, 14);
    } else if fits(dod, 17) {
        w.write_bits(0b110, 3);
        w.write_bits(dod as u64, 17);
    } else if fits(dod, 20) {
        w.write_bits(0b1110, 4);
        w.write_bits(dod as u64, 20);
    } else {
        w.write_bits(0b1111, 4);
        w.write_bits(dod as u64, 64);
    }
}

fn fits(v: i64, bits: u8) -> bool {
    let lim = 1i64 << (bits - 1);
    (-lim..lim).contains(&v)
}

fn sign_extend(v: u64, bits: u8) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

impl SealedChunk {
    pub fn decode_into(&self, out: &mut Vec<(i64, f64)>) {
        decode(&self.bytes, self.bit_len as usize, self.count, out);
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// Decodes `count` samples. A corrupt chunk (which only a bug could produce) ends early
/// instead of panicking.
fn decode(bytes: &[u8], bit_len: usize, count: u16, out: &mut Vec<(i64, f64)>) {
    if count == 0 {
        return;
    }
    let mut r = BitReader::new(bytes, bit_len);
    let (Some(ts0), Some(v0)) = (r.read_bits(64), r.read_bits(64)) else {
        return;
    };
    let (mut ts, mut value) = (ts0 as i64, v0);
    out.push((ts, f64::from_bits(value)));
    let (mut delta, mut leading, mut trailing) = (0i64, 0u8, 0u8);
    for _ in 1..count {
        let Some(dod) = read_dod(&mut r) else { return };
        delta = delta.wrapping_add(dod);
        ts = ts.wrapping_add(delta);
        match r.read_bit() {
            None => return,
            Some(false) => {}
            Some(true) => {
                match r.read_bit() {
                    None => return,
                    Some(false) => {}
                    Some(true) => {
                        let (Some(l), Some(s)) = (r.read_bits(5), r.read_bits(6)) else {
                            return;
                        };
                        let sig = if s == 0 { 64 } else { s as u8 };
                        leading = l as u8;
                        trailing = 64u8.saturating_sub(leading + sig);
                    }
                }
                let sig = 64 - leading - trailing;
                let Some(bits) = r.read_bits(sig) else { return };
                value ^= bits << trailing;
            }
        }
        out.push((ts, f64::from_bits(value)));
    }
}

fn read_dod(r: &mut BitReader<'_>) -> Option<i64> {
    if !r.read_bit()? {
        return Some(0);
    }
    let width = if !r.read_bit()? {
        14
    } else if !r.read_bit()? {
        17
    } else if !r.read_bit()? {
        20
    } else {
        64
    };
    let raw = r.read_bits(width)?;
    Some(if width == 64 {
        raw as i64
    } else {
        sign_extend(raw, width)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(samples: &[(i64, f64)]) -> Vec<(i64, f64)> {
        let mut head = HeadChunk::default();
        for &(t, v) in samples {
            head.push(t, v);
        }
        let mut out = Vec::new();
        head.decode_into(&mut out);
        let mut sealed_out = Vec::new();
        head.seal().decode_into(&mut sealed_out);
        assert_eq!(bits(&out), bits(&sealed_out));
        out
    }

    fn bits(s: &[(i64, f64)]) -> Vec<(i64, u64)> {
        s.iter().map(|&(t, v)| (t, v.to_bits())).collect()
    }

    #[test]
    fn regular_scrape_is_compact() {
        let samples: Vec<_> = (0..120)
            .map(|i| (1_700_000_000_000 + i * 15_000, 42.0))
            .collect();
        let mut head = HeadChunk::default();
        for &(t, v) in &samples {
            head.push(t, v);
        }
        assert!(head.bits.bit_len() < 64 * 8, "{}", head.bits.bit_len());
        assert_eq!(bits(&roundtrip(&samples)), bits(&samples));
    }

    #[test]
    fn special_values_survive() {
        let samples = vec![
            (1, f64::NAN),
            (2, f64::INFINITY),
            (3, -0.0),
            (4, 1e300),
            (-5, f64::from_bits(0x7ff0000000000002)),
        ];
        assert_eq!(bits(&roundtrip(&samples)), bits(&samples));
    }

    proptest! {
        #[test]
        fn any_samples_roundtrip(samples in proptest::collection::vec((any::<i64>(), any::<u64>()), 1..200)) {
            let samples: Vec<(i64, f64)> = samples.into_iter().map(|(t, v)| (t, f64::from_bits(v))).collect();
            prop_assert_eq!(bits(&roundtrip(&samples)), bits(&samples));
        }
    }
}
