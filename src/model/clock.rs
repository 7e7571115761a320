//! The one wall clock and its formats. Detection runs in sample time; only records meant for
//! people and receivers (audit, notifications, plan expiry) read the wall clock, through here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 for a millisecond timestamp (clamped to the epoch).
pub fn rfc3339_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_milliseconds_and_clamps_before_the_epoch() {
        assert_eq!(super::rfc3339_ms(1_500), "1970-01-01T00:00:01.500Z");
        assert_eq!(super::rfc3339_ms(-5), "1970-01-01T00:00:00.000Z");
        assert!(super::now_ms() > 1_700_000_000_000);
    }
}
