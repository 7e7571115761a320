//! Bit-level writer and reader for the Gorilla chunk encoding.

/// Maps signed to unsigned so that small magnitudes of either sign get small codes.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bits needed to hold `v`.
pub fn width(v: u64) -> u8 {
    (64 - v.leading_zeros()) as u8
}

#[derive(Debug, Default, Clone)]
pub struct BitWriter {
    pub bytes: Vec<u8>,
    /// Bits used in the last byte (0 means the last byte is full or there is none).
    pub used: u8,
}

impl BitWriter {
    pub fn write_bit(&mut self, bit: bool) {
        if self.used == 0 {
            self.bytes.push(0);
        }
        if bit && let Some(last) = self.bytes.last_mut() {
            *last |= 0x80 >> self.used;
        }
        self.used = (self.used + 1) & 7;
    }

    /// Writes the low `n` bits of `value`, most significant first.
    pub fn write_bits(&mut self, value: u64, mut n: u8) {
        while n > 0 {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let free = 8 - self.used;
            let take = free.min(n);
            let shift = n - take;
            let chunk = ((value >> shift) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= chunk << (free - take);
            }
            self.used = (self.used + take) & 7;
            n -= take;
        }
    }

    /// A signed integer as its zigzag's bit width (7 bits) and that many bits: a first value
    /// or a delta costs what its size needs, not 64 bits.
    pub fn write_signed(&mut self, v: i64) {
        let z = zigzag(v);
        let n = width(z);
        self.write_bits(u64::from(n), 7);
        self.write_bits(z, n);
    }

    pub fn bit_len(&self) -> usize {
        if self.used == 0 {
            self.bytes.len() * 8
        } else {
            (self.bytes.len() - 1) * 8 + self.used as usize
        }
    }
}

pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8], bit_len: usize) -> Self {
        Self {
            bytes,
            pos: 0,
            end: bit_len.min(bytes.len() * 8),
        }
    }

    pub fn read_bit(&mut self) -> Option<bool> {
        if self.pos >= self.end {
            return None;
        }
        let byte = self.bytes[self.pos / 8];
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Some(bit)
    }

    /// Reads what [`BitWriter::write_signed`] wrote.
    pub fn read_signed(&mut self) -> Option<i64> {
        let n = self.read_bits(7)? as u8;
        if n > 64 {
            return None;
        }
        Some(unzigzag(if n == 0 { 0 } else { self.read_bits(n)? }))
    }

    pub fn read_bits(&mut self, n: u8) -> Option<u64> {
        if self.pos + n as usize > self.end {
            return None;
        }
        let mut value = 0u64;
        let mut left = n;
        while left > 0 {
            let byte = self.bytes[self.pos / 8];
            let offset = (self.pos % 8) as u8;
            let avail = 8 - offset;
            let take = avail.min(left);
            let bits = (byte >> (avail - take)) & (((1u16 << take) - 1) as u8);
            value = (value << take) | u64::from(bits);
            self.pos += take as usize;
            left -= take;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_roundtrip() {
        let mut w = BitWriter::default();
        let items = [
            (1u64, 1u8),
            (0, 1),
            (0x3fff, 14),
            (5, 3),
            (u64::MAX, 64),
            (0, 7),
            (0xabc, 12),
        ];
        for &(v, n) in &items {
            w.write_bits(v, n);
        }
        let mut r = BitReader::new(&w.bytes, w.bit_len());
        for &(v, n) in &items {
            assert_eq!(r.read_bits(n), Some(v));
        }
        assert_eq!(r.read_bit(), None);
    }
}
