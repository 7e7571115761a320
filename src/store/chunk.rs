//! Gorilla XOR compression of (timestamp, value) samples, appendable one sample at a time.
//!
//! Timestamps are stored as delta-of-delta (a regular 15 s scrape costs one bit), values as the
//! XOR with the previous value (an unchanged value costs one bit). This is the scheme of
//! Facebook's Gorilla paper and of Prometheus' XOR chunks.

use super::bits::{BitReader, BitWriter};

/// Samples per chunk before it is sealed. 60 at a 15 s interval is 15 minutes, so a 1 h ring
/// holds 4–5 chunks. Smaller chunks keep the (less compact, appendable) head small; larger ones
/// spread the sealed chunks' fixed overhead (≈ 40 bytes each) thinner.
pub const SAMPLES_PER_CHUNK: u16 = 60;

/// Bytes reserved for a new head chunk: 16 for the first sample plus ~2.5 bits per sample for a
/// regular gauge. Noisier series grow it (amortized doubling); sealing shrinks it to fit.
const HEAD_CAPACITY: usize = 64;

/// A sealed chunk: immutable, shrunk to its size, in whichever encoding is smaller.
#[derive(Debug, Clone)]
pub struct SealedChunk {
    pub bytes: Box<[u8]>,
    pub bit_len: u32,
    pub count: u16,
    /// Bit-packed decimal deltas ([`super::packed`]) rather than Gorilla XOR.
    pub packed: bool,
    pub last_ts: i64,
}

/// Reused while sealing (once per chunk, never per sample): decoded samples, deltas, output.
struct SealScratch {
    samples: Vec<(i64, f64)>,
    deltas: Vec<i64>,
    out: BitWriter,
}

thread_local! {
    static SEAL_SCRATCH: std::cell::RefCell<SealScratch> = const {
        std::cell::RefCell::new(SealScratch { samples: Vec::new(), deltas: Vec::new(), out: BitWriter { bytes: Vec::new(), used: 0 } })
    };
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

    /// Reserves room for a chunk of about `bytes` before the first sample, so a new head does
    /// not regrow sample by sample (the ring passes the size of the chunk it just sealed).
    pub fn reserve(&mut self, bytes: usize) {
        self.bits.bytes.reserve(bytes);
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
                self.bits.bytes.reserve(HEAD_CAPACITY);
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

    /// Bytes the head's encoding uses (not its capacity).
    pub fn encoded_len(&self) -> usize {
        self.bits.bytes.len()
    }

    pub fn seal(&mut self) -> SealedChunk {
        let head = std::mem::take(self);
        let gorilla_len = head.bits.bytes.len();
        let packed = SEAL_SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let SealScratch {
                samples,
                deltas,
                out,
            } = &mut *guard;
            samples.clear();
            head.decode_into(samples);
            let bits = super::packed::encode(samples, deltas, out)?;
            // Copied out at its exact size: one allocation.
            (out.bytes.len() < gorilla_len).then(|| (Box::<[u8]>::from(&out.bytes[..]), bits))
        });
        match packed {
            Some((bytes, bits)) => SealedChunk {
                bytes,
                bit_len: bits as u32,
                count: head.count,
                packed: true,
                last_ts: head.prev_ts,
            },
            _ => {
                let bit_len = head.bits.bit_len() as u32;
                SealedChunk {
                    bytes: head.bits.bytes.into_boxed_slice(),
                    bit_len,
                    count: head.count,
                    packed: false,
                    last_ts: head.prev_ts,
                }
            }
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
        if self.packed {
            super::packed::decode(&self.bytes, self.bit_len as usize, self.count as usize, out);
        } else {
            decode(&self.bytes, self.bit_len as usize, self.count, out);
        }
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
