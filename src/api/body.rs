//! Reading a request body within limits, so that a refusal can be heard: a body over the limit
//! is read on and discarded (up to a bound) before the 413 goes out, because a server that
//! answers while the client is still uploading and then closes the connection leaves the
//! client with a broken pipe instead of the status and its reason. Past the bound the
//! connection is given up on. It never holds more than the limit in memory.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;

#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// More than the limit arrived (all of it read, unless it passed the discard bound).
    TooLarge,
    /// The body broke off or could not be read.
    Broken(String),
}

/// The body if it holds at most `limit` bytes. A longer one is read to its end and dropped
/// while the total stays within `discard_up_to`, then refused.
pub async fn read_within(
    mut body: Body,
    limit: usize,
    discard_up_to: usize,
    size_hint: Option<usize>,
) -> Result<Bytes, BodyError> {
    let mut kept = Vec::with_capacity(size_hint.unwrap_or(0).min(limit));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > limit {
            kept = Vec::new();
            if seen > discard_up_to {
                return Err(BodyError::TooLarge);
            }
            continue;
        }
        kept.extend_from_slice(&data);
    }
    if seen > limit {
        Err(BodyError::TooLarge)
    } else {
        Ok(Bytes::from(kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn within_the_limit_the_body_comes_back_whole() {
        let got = read_within(Body::from(vec![1u8; 100]), 100, 1000, Some(100))
            .await
            .unwrap();
        assert_eq!(got.len(), 100);
    }

    #[tokio::test]
    async fn over_the_limit_it_is_read_to_the_end_then_refused() {
        assert_eq!(
            read_within(Body::from(vec![1u8; 101]), 100, 1000, None).await,
            Err(BodyError::TooLarge)
        );
        // Past the discard bound it stops reading.
        assert_eq!(
            read_within(Body::from(vec![1u8; 5000]), 100, 1000, None).await,
            Err(BodyError::TooLarge)
        );
    }
}
