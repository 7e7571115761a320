//! `writeback`: anomaly series on /metrics and remote_write out.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Secret, duration};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WritebackConfig {
    #[serde(deserialize_with = "duration::nullable_string")]
    pub url: String,
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Export every detected series, not only those with an active anomaly.
    pub export_all: bool,
    pub timeout_seconds: u64,
    /// Batches waiting to be sent; the oldest is dropped (and counted) when full.
    pub queue_size: usize,
    pub max_retries: u32,
    #[serde(deserialize_with = "duration::nullable_string")]
    pub username: String,
    pub password: Secret,
}

impl Default for WritebackConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            interval: Duration::from_secs(30),
            export_all: false,
            timeout_seconds: 10,
            queue_size: 16,
            max_retries: 5,
            username: String::new(),
            password: Secret::default(),
        }
    }
}
