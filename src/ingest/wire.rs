//! Protobuf wire-format reader: a zero-copy walk over a byte slice.
//!
//! Knows varints, fixed64 and length-delimited fields and nothing about any message. Every read
//! is bounds-checked and returns an error instead of panicking, because the bytes come from the
//! network.

use super::DecodeError;

pub const WIRE_VARINT: u8 = 0;
pub const WIRE_FIXED64: u8 = 1;
pub const WIRE_LEN: u8 = 2;
pub const WIRE_FIXED32: u8 = 5;

/// A cursor over `buf[pos..end]`; positions are absolute in `buf` so that spans taken from
/// nested messages stay valid against the whole request body.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    #[inline]
    pub fn sub(&self, start: usize, end: usize) -> Reader<'a> {
        Reader {
            buf: self.buf,
            pos: start,
            end,
        }
    }

    #[inline]
    pub fn done(&self) -> bool {
        self.pos >= self.end
    }

    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The unread bytes of this (sub-)message.
    #[inline]
    pub fn window(&self) -> &'a [u8] {
        &self.buf[self.pos..self.end]
    }

    #[inline]
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        // Most keys and lengths fit in one byte.
        if self.pos < self.end && self.buf[self.pos] < 0x80 {
            let v = u64::from(self.buf[self.pos]);
            self.pos += 1;
            return Ok(v);
        }
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            if self.pos >= self.end {
                return Err(DecodeError::Truncated { offset: self.pos });
            }
            let byte = self.buf[self.pos];
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(DecodeError::VarintOverflow {
                    offset: self.pos - 1,
                });
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow { offset: self.pos })
    }

    /// Reads a field key; returns (field number, wire type).
    #[inline]
    pub fn key(&mut self) -> Result<(u32, u8), DecodeError> {
        let offset = self.pos;
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(DecodeError::BadField { offset });
        }
        Ok((field as u32, (key & 7) as u8))
    }

    #[inline]
    pub fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + 8)
            .filter(|_| self.pos + 8 <= self.end)
            .ok_or(DecodeError::Truncated { offset: self.pos })?;
        self.pos += 8;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(raw))
    }

    /// Reads the length prefix of a length-delimited field and returns the absolute byte range
    /// of its payload, advancing past it.
    #[inline]
    pub fn len_delimited(&mut self) -> Result<(usize, usize), DecodeError> {
        let offset = self.pos;
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= self.end)
            .ok_or(DecodeError::Truncated { offset })?;
        self.pos = end;
        Ok((start, end))
    }

    #[inline]
    pub fn skip(&mut self, wire_type: u8) -> Result<(), DecodeError> {
        match wire_type {
            WIRE_VARINT => self.varint().map(|_| ()),
            WIRE_FIXED64 => self.fixed64().map(|_| ()),
            WIRE_LEN => self.len_delimited().map(|_| ()),
            WIRE_FIXED32 => {
                if self.pos + 4 > self.end {
                    return Err(DecodeError::Truncated { offset: self.pos });
                }
                self.pos += 4;
                Ok(())
            }
            other => Err(DecodeError::BadWireType {
                offset: self.pos,
                wire_type: other,
            }),
        }
    }

    #[inline]
    pub fn expect(&self, field: &'static str, got: u8, want: u8) -> Result<(), DecodeError> {
        if got == want {
            Ok(())
        } else {
            Err(DecodeError::UnexpectedWireType {
                field,
                wire_type: got,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_roundtrip_edges() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            crate::ingest::encode::put_varint(&mut buf, v);
            let mut r = Reader::new(&buf);
            assert_eq!(r.varint().unwrap(), v);
            assert!(r.done());
        }
    }

    #[test]
    fn truncated_varint_is_an_error() {
        let mut r = Reader::new(&[0x80, 0x80]);
        assert!(matches!(r.varint(), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let mut r = Reader::new(&[0xff; 11]);
        assert!(matches!(
            r.varint(),
            Err(DecodeError::VarintOverflow { .. })
        ));
    }

    #[test]
    fn length_past_end_is_an_error() {
        let mut r = Reader::new(&[0x05, 1, 2]);
        assert!(matches!(
            r.len_delimited(),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
