//! `prometheus`: the Prometheus HTTP API the agent reads history from (warm start, backfill).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// Where history comes from for the warm start (`PROMETHEUS_URL`); empty = no warm start.
    #[serde(deserialize_with = "duration::nullable_string")]
    pub url: String,
    pub timeout_seconds: u64,
    pub retry_attempts: u32,
    pub backfill: BackfillConfig,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_seconds: 30,
            retry_attempts: 3,
            backfill: BackfillConfig::default(),
        }
    }
}

/// Warm start from Prometheus history at `serve` start-up (and `sre-agent backfill`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackfillConfig {
    /// Fetch history at start-up when `url` is set.
    pub on_start: bool,
    /// How far back (two days let the daily profiles prove themselves at once).
    #[serde(with = "duration")]
    pub lookback: Duration,
    /// Resolution of the fetched history.
    #[serde(with = "duration")]
    pub step: Duration,
    /// Time span per query_range call (keeps each answer under Prometheus' 11k points).
    #[serde(with = "duration")]
    pub chunk: Duration,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        Self {
            on_start: true,
            lookback: Duration::from_secs(2 * 86_400),
            step: Duration::from_secs(60),
            chunk: Duration::from_secs(6 * 3600),
        }
    }
}
