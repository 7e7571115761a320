//! Snappy block-format decompression with a size check before any allocation.
//!
//! Remote write uses the block format (`snap::raw`), not the framed stream format.

use super::DecodeError;

/// Error text used when the declared decompressed size is over the limit; the HTTP layer maps
/// it to 413 rather than 400.
pub const TOO_LARGE_PREFIX: &str = "decompressed body of";

const MAX_EXPANSION: usize = 22;

/// snap's messages start with "snappy: "; ours add that prefix once.
fn snap_error(e: snap::Error) -> DecodeError {
    let text = e.to_string();
    DecodeError::Snappy(text.strip_prefix("snappy: ").unwrap_or(&text).to_string())
}

pub fn decompress_into(body: &[u8], max_len: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let len = snap::raw::decompress_len(body).map_err(snap_error)?;
    // A snappy copy element of at most 3 bytes produces at most 64, so no valid body expands
    // more than ~21×: a larger declared length is corrupt, not merely large.
    if len > body.len().saturating_mul(MAX_EXPANSION) + 64 {
        return Err(DecodeError::Snappy(format!(
            "corrupt header: declares {len} bytes, impossible for {} compressed bytes",
            body.len()
        )));
    }
    if len > max_len {
        return Err(DecodeError::Snappy(format!(
            "{TOO_LARGE_PREFIX} {len} bytes exceeds the limit of {max_len} bytes"
        )));
    }
    out.clear();
    out.resize(len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(body, out)
        .map_err(snap_error)?;
    out.truncate(written);
    Ok(())
}

pub fn is_too_large(err: &DecodeError) -> bool {
    matches!(err, DecodeError::Snappy(msg) if msg.starts_with(TOO_LARGE_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let data = b"hello hello hello hello".to_vec();
        let compressed = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut out = Vec::new();
        decompress_into(&compressed, 1024, &mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        assert!(decompress_into(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 1 << 20, &mut out).is_err());
    }

    #[test]
    fn oversized_is_reported_before_allocating() {
        let data = vec![0u8; 4096];
        // (zeros compress ~21:1, the most snappy can)
        let compressed = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut out = Vec::new();
        let err = decompress_into(&compressed, 1000, &mut out).unwrap_err();
        assert!(is_too_large(&err));
        assert!(out.capacity() < 4096);
    }
}
