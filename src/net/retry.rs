//! When to try an outbound call again, and how long to wait: one rule for every caller
//! (notifiers, write-back, backfill, Loki, the HTTP executor).
//!
//! Retryable: connection errors and timeouts (the caller decides whether a side-effecting call
//! may be repeated after one), 408, 429 and 5xx. Everything else in 4xx is final: the request
//! itself is wrong and will be refused again. The wait is exponential backoff with jitter (so a
//! fleet that failed together does not retry together), and never shorter than the receiver's
//! `Retry-After` (seconds or an HTTP date), capped so a hostile header cannot park a worker.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The longest wait a `Retry-After` header can ask for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

pub fn retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// The receiver's `Retry-After`, if it sent a valid one (capped at [`MAX_RETRY_AFTER`]).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Exponential backoff ceiling: 250 ms doubling up to 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.min(7))).min(Duration::from_secs(30))
}

/// The wait before retry number `attempt + 1`: half the backoff ceiling plus a random share of
/// the other half, and at least what the receiver asked for.
pub fn delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = backoff(attempt);
    let jittered = ceiling / 2 + ceiling.mul_f64(0.5 * fastrand::f64());
    jittered.max(retry_after.unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn final_and_retryable_statuses() {
        for s in [500, 502, 503, 504, 408, 429] {
            assert!(retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 413, 415, 422] {
            assert!(!retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date_and_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("99999999"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn delay_is_jittered_within_the_backoff_and_honours_the_receiver() {
        for attempt in 0..10 {
            let d = delay(attempt, None);
            let ceiling = backoff(attempt);
            assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
        }
        assert_eq!(
            delay(0, Some(Duration::from_secs(20))),
            Duration::from_secs(20)
        );
    }
}
