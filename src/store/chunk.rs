//! Compression of (timestamp, value) samples, appendable one sample at a time.
//!
//! Timestamps are stored as delta-of-delta (a regular 15 s scrape costs one bit). Values are
//! stored as the difference of their integer at a decimal scale ([`super::decimal`]), in an
//! adaptive Rice code, while every value of the chunk is a short decimal (most metrics: `12.3`
//! with noise costs ~7 bits where its XOR costs ~50), and otherwise as the XOR with the previous
//! value (an unchanged value costs one bit), the scheme of Facebook's Gorilla paper and of
//! Prometheus' XOR chunks. A head that meets a value its scale cannot hold re-encodes itself as
//! XOR, once.

use super::bits::{BitReader, BitWriter};
use super::decimal;

/// Samples per chunk before it is sealed. 60 at a 15 s interval is 15 minutes, so a 1 h ring
/// holds 4–5 chunks. Smaller chunks keep the (less compact, appendable) head small; larger ones
/// spread the sealed chunks' fixed overhead (a 12-byte header and the first value) thinner.
pub const SAMPLES_PER_CHUNK: u16 = 60;

/// Bytes reserved for a new head chunk: ≤ 19 for the first sample plus ~2.5 bits per sample for a
/// regular gauge. Noisier series grow it (amortized doubling); sealing shrinks it to fit.
const HEAD_CAPACITY: usize = 64;

/// A sealed chunk as the ring keeps it, back to back with the others in one buffer: this
/// header, then `bit_len` bits in whichever encoding was smaller. One buffer per ring instead
/// of a boxed chunk each saves a pointer, a length and an allocation per chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedHeader {
    /// Newest sample's timestamp, for the retention (and the packed encoding's time anchor).
    pub last_ts: i64,
    pub bit_len: u16,
    pub count: u8,
    pub encoding: Encoding,
}

/// Bytes of a [`SealedHeader`] in the ring's buffer.
pub const SEALED_HEADER: usize = 12;

/// Widest sample any encoding writes, in bits: a delta-of-delta escape (68) and an XOR value
/// with a new window (77), or a Rice escape (78); the first sample takes at most 148. A full
/// chunk must fit the header's 16-bit length, and its count the 8-bit one.
const MAX_SAMPLE_BITS: usize = 160;
const _: () = assert!((SAMPLES_PER_CHUNK as usize + 1) * MAX_SAMPLE_BITS <= u16::MAX as usize);
const _: () = assert!(SAMPLES_PER_CHUNK <= u8::MAX as u16);

impl SealedHeader {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.last_ts.to_le_bytes());
        out.extend_from_slice(&self.bit_len.to_le_bytes());
        out.push(self.count);
        out.push(match self.encoding {
            Encoding::Xor => 0,
            Encoding::Packed => 1,
            Encoding::Decimal(k) => 2 + k,
        });
    }

    /// The header of the record `records` starts with.
    pub fn read(records: &[u8]) -> Option<Self> {
        let h = records.get(..SEALED_HEADER)?;
        Some(Self {
            last_ts: i64::from_le_bytes(h[0..8].try_into().ok()?),
            bit_len: u16::from_le_bytes(h[8..10].try_into().ok()?),
            count: h[10],
            encoding: match h[11] {
                0 => Encoding::Xor,
                1 => Encoding::Packed,
                k => Encoding::Decimal((k - 2).min(decimal::SCALES - 1)),
            },
        })
    }

    /// The whole record: header and bytes.
    pub fn record_len(&self) -> usize {
        SEALED_HEADER + (self.bit_len as usize).div_ceil(8)
    }
}

/// Decodes the record `records` starts with and returns its length; `None` when it is cut
/// short (which only a bug could produce).
pub fn decode_record(records: &[u8], out: &mut Vec<(i64, f64)>) -> Option<usize> {
    let header = SealedHeader::read(records)?;
    let bytes = records.get(SEALED_HEADER..header.record_len())?;
    let bit_len = header.bit_len as usize;
    if header.encoding == Encoding::Packed {
        let count = usize::from(header.count);
        super::packed::decode(bytes, bit_len, count, header.last_ts, out);
    } else {
        decode(
            bytes,
            bit_len,
            u16::from(header.count),
            header.encoding,
            out,
        );
    }
    Some(header.record_len())
}

/// How a chunk's bits are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Gorilla XOR values.
    Xor,
    /// Decimal deltas, one per sample, at this scale (a head, sealed as it was).
    Decimal(u8),
    /// Bit-packed decimal deltas at the chunk's width ([`super::packed`]).
    Packed,
}

/// `HeadChunk::scale` of a head whose values are XOR-encoded.
const XOR: u8 = u8::MAX;

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
    prev_ts: i64,
    prev_delta: i64,
    /// The previous value's bits (XOR) or its integer at `scale` (decimal).
    prev_value: u64,
    leading: u8,
    trailing: u8,
    /// Decimal scale of the values, or [`XOR`]; chosen at the first sample.
    scale: u8,
    /// The scale the previous chunk of this series needed, tried first so a series whose
    /// decimals vary does not fall back to XOR at every chunk.
    scale_hint: u8,
    /// Rice parameter of the decimal deltas ([`decimal::write_rice`]); kept across seals, so
    /// the next chunk starts where this one's deltas left it (and records that start).
    rice_k: u8,
}

impl HeadChunk {
    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn push(&mut self, ts: i64, value: f64) {
        self.push_as(ts, value, true);
    }

    fn push_as(&mut self, ts: i64, value: f64, decimal_allowed: bool) {
        if self.count == 0 {
            self.bits.bytes.reserve(HEAD_CAPACITY);
            self.bits.write_signed(ts);
            self.scale = XOR;
            self.leading = 0xff;
            let hinted = (decimal_allowed && self.scale_hint < decimal::SCALES)
                .then(|| decimal::scaled(value, self.scale_hint).map(|m| (self.scale_hint, m)))
                .flatten();
            let first = hinted.or_else(|| {
                if !decimal_allowed {
                    return None;
                }
                let k = decimal::smallest_scale(value)?;
                decimal::scaled(value, k).map(|m| (k, m))
            });
            match first {
                Some((k, m)) => {
                    self.scale = k;
                    self.prev_value = m as u64;
                    self.bits.write_signed(m);
                }
                None => {
                    self.prev_value = value.to_bits();
                    self.bits.write_bits(self.prev_value, 64);
                }
            }
            if self.scale != XOR {
                self.rice_k = decimal::rice_start(self.rice_k);
                self.bits.write_bits(u64::from(self.rice_k), 6);
            }
        } else {
            let delta = ts.wrapping_sub(self.prev_ts);
            if self.scale != XOR {
                let Some(m) = decimal::scaled(value, self.scale) else {
                    self.reencode_for(value);
                    return self.push_as(ts, value, false);
                };
                write_dod(&mut self.bits, delta.wrapping_sub(self.prev_delta));
                let step = m.wrapping_sub(self.prev_value as i64);
                decimal::write_rice(&mut self.bits, step, &mut self.rice_k);
                self.prev_value = m as u64;
            } else {
                write_dod(&mut self.bits, delta.wrapping_sub(self.prev_delta));
                self.write_value(value.to_bits());
                self.prev_value = value.to_bits();
            }
            self.prev_delta = delta;
        }
        self.prev_ts = ts;
        self.count += 1;
    }

    /// Rewrites a decimal head that `next` does not fit: at `next`'s finer scale when every
    /// sample so far is exact there too (`1.5` then `2.25`), else as XOR, which it then stays
    /// until sealed. The next chunk starts at the scale this one needed.
    fn reencode_for(&mut self, next: f64) {
        let mut samples = SEAL_SCRATCH.with(|c| std::mem::take(&mut c.borrow_mut().samples));
        samples.clear();
        self.decode_into(&mut samples);
        let scale = self.scale;
        let finer = decimal::smallest_scale(next).filter(|&k| {
            k > self.scale && samples.iter().all(|s| decimal::scaled(s.1, k).is_some())
        });
        let mut bits = std::mem::take(&mut self.bits);
        bits.bytes.clear();
        bits.used = 0;
        *self = Self {
            bits,
            scale_hint: finer.unwrap_or(XOR),
            rice_k: self.rice_k,
            ..Self::default()
        };
        for &(t, v) in &samples {
            self.push_as(t, v, finer.is_some());
        }
        self.scale_hint = finer
            .or_else(|| decimal::smallest_scale(next))
            .unwrap_or(scale);
        SEAL_SCRATCH.with(|c| c.borrow_mut().samples = samples);
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

    /// Appends this chunk to `records` as a sealed record ([`SealedHeader`] and bytes) and
    /// starts an empty head, keeping its buffer and the scale it learned.
    pub fn seal_into(&mut self, records: &mut Vec<u8>) {
        if self.count == 0 {
            return;
        }
        let head_len = self.bits.bytes.len();
        // Both fit their fields: see `MAX_SAMPLE_BITS` and the assertions beside it.
        let count = self.count as u8;
        let last_ts = self.prev_ts;
        let hint = if self.scale == XOR {
            self.scale_hint
        } else {
            self.scale
        };
        SEAL_SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let SealScratch {
                samples,
                deltas,
                out,
            } = &mut *guard;
            samples.clear();
            self.decode_into(samples);
            let packed =
                super::packed::encode(samples, deltas, out).filter(|_| out.bytes.len() < head_len);
            let (header, bytes) = match packed {
                Some(bits) => (
                    SealedHeader {
                        last_ts,
                        bit_len: bits as u16,
                        count,
                        encoding: Encoding::Packed,
                    },
                    &out.bytes[..],
                ),
                None => (
                    SealedHeader {
                        last_ts,
                        bit_len: self.bits.bit_len() as u16,
                        count,
                        encoding: self.encoding(),
                    },
                    &self.bits.bytes[..],
                ),
            };
            records.reserve_exact(SEALED_HEADER + bytes.len());
            header.write(records);
            records.extend_from_slice(bytes);
        });
        let mut bits = std::mem::take(&mut self.bits);
        // The next head of a series is about as long as this one: keep room for it and an
        // eighth more, and give back the rest (doubling growth leaves up to half unused, in
        // every series, for good). In steady state the buffer then fits and is kept.
        let fit = head_len + head_len / 8;
        if bits.bytes.capacity() > fit + 8 {
            bits.bytes = Vec::with_capacity(fit);
        }
        bits.bytes.clear();
        bits.used = 0;
        *self = Self {
            bits,
            scale_hint: hint,
            rice_k: self.rice_k,
            ..Self::default()
        };
    }

    fn encoding(&self) -> Encoding {
        if self.scale == XOR {
            Encoding::Xor
        } else {
            Encoding::Decimal(self.scale)
        }
    }

    pub fn decode_into(&self, out: &mut Vec<(i64, f64)>) {
        decode(
            &self.bits.bytes,
            self.bits.bit_len(),
            self.count,
            self.encoding(),
            out,
        );
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

/// Decodes `count` samples of a head's encoding. A corrupt chunk (which only a bug could
/// produce) ends early instead of panicking.
fn decode(bytes: &[u8], bit_len: usize, count: u16, encoding: Encoding, out: &mut Vec<(i64, f64)>) {
    if count == 0 {
        return;
    }
    let mut r = BitReader::new(bytes, bit_len);
    if let Encoding::Decimal(k) = encoding {
        decode_decimal(&mut r, count, k.min(decimal::SCALES - 1), out);
        return;
    }
    let (Some(ts0), Some(v0)) = (r.read_signed(), r.read_bits(64)) else {
        return;
    };
    let (mut ts, mut value) = (ts0, v0);
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

fn decode_decimal(r: &mut BitReader<'_>, count: u16, k: u8, out: &mut Vec<(i64, f64)>) {
    let (Some(ts0), Some(m0)) = (r.read_signed(), r.read_signed()) else {
        return;
    };
    let Some(mut rice) = r.read_bits(6).map(|v| v as u8) else {
        return;
    };
    let (mut ts, mut m, mut delta) = (ts0, m0, 0i64);
    out.push((ts, decimal::unscaled(m, k)));
    for _ in 1..count {
        let (Some(dod), Some(step)) = (read_dod(r), decimal::read_rice(r, &mut rice)) else {
            return;
        };
        delta = delta.wrapping_add(dod);
        ts = ts.wrapping_add(delta);
        m = m.wrapping_add(step);
        out.push((ts, decimal::unscaled(m, k)));
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
        let mut records = Vec::new();
        head.seal_into(&mut records);
        assert_eq!(
            decode_record(&records, &mut sealed_out),
            Some(records.len())
        );
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
    fn a_sealed_steady_chunk_is_its_header_and_eight_bytes() {
        let last = 1_700_000_000_000 + 59 * 15_000;
        let mut head = HeadChunk::default();
        for i in 0..i64::from(SAMPLES_PER_CHUNK) {
            head.push(1_700_000_000_000 + i * 15_000, 42.5);
        }
        let mut records = Vec::new();
        head.seal_into(&mut records);
        let header = SealedHeader::read(&records).unwrap();
        assert_eq!((header.last_ts, header.count), (last, 60));
        assert_eq!(header.encoding, Encoding::Packed);
        // No first timestamp is stored: the deltas lead back from the header's last one.
        assert_eq!(records.len(), SEALED_HEADER + 8);
        let mut out = Vec::new();
        decode_record(&records, &mut out);
        assert_eq!(out.first(), Some(&(1_700_000_000_000, 42.5)));
        assert_eq!(out.last(), Some(&(last, 42.5)));
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

    #[test]
    fn noisy_decimal_gauge_costs_about_ten_bits_a_sample() {
        let samples: Vec<_> = (1..61)
            .map(|i| {
                let v = ((10.0 + ((i * 7) % 23) as f64 * 0.1) * 100.0).round() / 100.0;
                (1_700_000_000_000 + i * 15_000, v)
            })
            .collect();
        let mut head = HeadChunk::default();
        for &(t, v) in &samples {
            head.push(t, v);
        }
        assert_eq!(head.encoding(), Encoding::Decimal(1));
        // 9 bytes for the first sample, 2 for the first interval, then 1 bit of timestamp
        // and 9 of value (XOR: 8 times that).
        assert!(
            head.encoded_len() <= 9 + 2 + 59 * 10 / 8 + 2,
            "{}",
            head.encoded_len()
        );
        assert_eq!(bits(&roundtrip(&samples)), bits(&samples));
    }

    #[test]
    fn a_value_off_the_scale_turns_the_head_to_xor_and_the_next_head_starts_at_its_scale() {
        let samples = [
            (0, 1.5),
            (15, 2.5),
            (30, 2.25),
            (45, 3.0),
            (60, 0.1 + 0.2),
            (75, 1.0),
        ];
        let mut head = HeadChunk::default();
        head.push(samples[0].0, samples[0].1);
        head.push(samples[1].0, samples[1].1);
        assert_eq!(head.encoding(), Encoding::Decimal(1));
        head.push(samples[2].0, samples[2].1);
        assert_eq!(head.encoding(), Encoding::Decimal(2));
        head.push(samples[3].0, samples[3].1);
        assert_eq!(head.encoding(), Encoding::Decimal(2));
        head.push(samples[4].0, samples[4].1);
        assert_eq!(head.encoding(), Encoding::Xor);
        head.push(samples[5].0, samples[5].1);
        let mut out = Vec::new();
        head.decode_into(&mut out);
        assert_eq!(bits(&out), bits(&samples));
        let mut records = Vec::new();
        head.seal_into(&mut records);
        let mut out = Vec::new();
        decode_record(&records, &mut out);
        assert_eq!(bits(&out), bits(&samples));
        // The XOR chunk's last scale was 2 and its stray has none: the next head tries 2.
        head.push(90, 4.5);
        assert_eq!(head.encoding(), Encoding::Decimal(2));
    }

    proptest! {
        #[test]
        fn decimal_samples_with_strays_roundtrip(
            samples in proptest::collection::vec((any::<i64>(), -10_000_000i64..10_000_000, 0u8..8, any::<u64>()), 1..130)
        ) {
            // Mostly short decimals at varying scales, with a stray arbitrary value now and then.
            let samples: Vec<(i64, f64)> = samples
                .into_iter()
                .map(|(t, m, k, raw)| {
                    let v = if k == 7 { f64::from_bits(raw) } else { decimal::unscaled(m, k) };
                    (t, v)
                })
                .collect();
            prop_assert_eq!(bits(&roundtrip(&samples)), bits(&samples));
        }

        #[test]
        fn any_samples_roundtrip(samples in proptest::collection::vec((any::<i64>(), any::<u64>()), 1..200)) {
            let samples: Vec<(i64, f64)> = samples.into_iter().map(|(t, v)| (t, f64::from_bits(v))).collect();
            prop_assert_eq!(bits(&roundtrip(&samples)), bits(&samples));
        }
    }
}
