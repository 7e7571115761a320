//! `anomaly_detection`: the detectors, the anomaly lifecycle, novelty, seasonality, forecasts,
//! peers and services. Defaults are written out here; `detect::params` converts the section.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DEFAULT_ALERT_THRESHOLD, duration};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// Seed key: how often the periodic work (seasonality, eviction, re-sends) runs.
    pub check_interval_seconds: u64,
    /// Wall-clock budget per check for the per-series refits (period searches, forecast refits,
    /// level-shift checks); the rest waits for the next check. At most half the check interval
    /// is used, whatever is set.
    #[serde(with = "duration")]
    pub refit_budget: Duration,
    pub zscore_threshold: f64,
    pub mad_threshold: f64,
    pub ensemble_min_votes: usize,
    pub warmup_samples: u32,
    pub ewma_alpha: f64,
    /// Score (in [0, 1]) above which a sample is anomalous.
    pub alert_threshold: f64,
    pub pending_samples: u16,
    /// The pending samples must also span this long: at fast scrapes a page needs a lasting
    /// condition, not a burst of a few samples.
    #[serde(with = "duration")]
    pub pending_for: Duration,
    pub resolve_samples: u16,
    /// Calm this long (at least two samples) also resolves, so slow scrapes resolve promptly.
    #[serde(with = "duration")]
    pub resolve_after: Duration,
    pub resolve_ratio: f64,
    /// Detect only series that match the catalog.
    pub only_catalog: bool,
    pub seasonality: SeasonalityConfig,
    pub novelty: NoveltyConfig,
    pub forecast: ForecastConfig,
    pub peers: PeersConfig,
    pub services: ServicesConfig,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        // The same numbers as the detectors' own defaults (`detect::params` tests that they
        // agree), written out so config depends on no stage.
        Self {
            check_interval_seconds: 60,
            refit_budget: Duration::from_secs(1),
            zscore_threshold: 3.0,
            mad_threshold: 3.5,
            ensemble_min_votes: 2,
            warmup_samples: 30,
            ewma_alpha: 0.02,
            alert_threshold: DEFAULT_ALERT_THRESHOLD,
            pending_samples: 2,
            pending_for: Duration::from_secs(10),
            resolve_samples: 4,
            resolve_after: Duration::from_secs(30),
            resolve_ratio: 0.8,
            only_catalog: false,
            seasonality: SeasonalityConfig::default(),
            novelty: NoveltyConfig::default(),
            forecast: ForecastConfig::default(),
            peers: PeersConfig::default(),
            services: ServicesConfig::default(),
        }
    }
}

/// Peer-group outliers: series of one metric that share `group_by` labels are compared.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeersConfig {
    pub enabled: bool,
    pub group_by: Vec<String>,
    pub min_group: usize,
    pub threshold_sigmas: f64,
}

impl Default for PeersConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            group_by: vec!["namespace".into(), "deployment".into()],
            min_group: 3,
            threshold_sigmas: 5.0,
        }
    }
}

/// Multi-metric score per service: the catalog metrics of series that share `group_by` labels
/// are scored together (see `detect::multivariate`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServicesConfig {
    pub enabled: bool,
    pub group_by: Vec<String>,
    /// Width of one row of the joint history.
    #[serde(with = "duration")]
    pub bucket: Duration,
    /// Rows of history needed before a service is scored.
    pub min_history: usize,
    pub threshold_sigmas: f64,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        Self {
            // Opt-in: on the noise trial (`sre-agent noise-trial`) it paged only incidents the
            // per-series detectors had paged 50 s before, never one alone, and its one-minute
            // buckets held each incident's mitigated notice back by two to three minutes.
            enabled: false,
            group_by: vec!["namespace".into(), "service".into()],
            bucket: Duration::from_secs(60),
            min_history: 30,
            threshold_sigmas: 6.0,
        }
    }
}

/// Forecasts for catalog metrics with a `breach_threshold` (refit off the hot path).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    pub enabled: bool,
    /// Forecast horizons; the longest is how far ahead a breach is predicted.
    #[serde(with = "duration::list")]
    pub horizons: Vec<Duration>,
    /// How often each forecast series is refit from its ring.
    #[serde(with = "duration")]
    pub refit_interval: Duration,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            horizons: [1, 3, 6].map(|h| Duration::from_secs(h * 3600)).to_vec(),
            refit_interval: Duration::from_secs(300),
        }
    }
}

/// How novelty against a series' own history is measured (see `detect::novelty`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoveltyConfig {
    /// Excess beyond the covered range, as a fraction of it, that counts as one unit.
    pub range_unit: f64,
    /// Surprise (nats above the series' typical) that counts as one unit.
    pub density_unit: f64,
    /// Half-life of what a series remembers of its range and distribution.
    #[serde(with = "duration")]
    pub memory: Duration,
    /// How far a time-of-day range moves towards a value outside it, per sample.
    pub context_learning_rate: f64,
    pub stuck_factor: f64,
    pub stuck_min_samples: u32,
    /// Weight of each sample in the moving average the drift channel watches.
    pub drift_alpha: f64,
    /// Excess of that average beyond its covered range, as a fraction of the value's range,
    /// that counts as one unit...
    pub drift_unit: f64,
    /// ...and as a fraction of how far the average typically travels in 1/alpha samples.
    pub drift_travel_unit: f64,
    /// Samples after a reported surprise during which repeats score zero (0 = no rest)...
    pub rest_samples: u16,
    /// ...unless they are this many times the surprise that started the rest.
    pub rest_escalation: f64,
}

impl Default for NoveltyConfig {
    fn default() -> Self {
        Self {
            range_unit: 0.2,
            density_unit: 3.0,
            memory: Duration::from_secs(7 * 86_400),
            context_learning_rate: 0.1,
            stuck_factor: 3.0,
            stuck_min_samples: 12,
            drift_alpha: 0.1,
            drift_unit: 0.01,
            drift_travel_unit: 0.4,
            rest_samples: 20,
            rest_escalation: 2.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeasonalityConfig {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub period: Duration,
    pub bins: usize,
    /// Share of variance the profile must explain before it is used.
    pub min_strength: f32,
    /// Search each series' recent samples for a shorter period (a cron job, a batch cycle)
    /// while the configured one is not confirmed.
    pub discover: bool,
    /// Share of the recent samples' variance a found period must explain (beyond chance).
    pub discover_min_strength: f64,
}

impl Default for SeasonalityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            period: Duration::from_secs(86_400),
            bins: 24,
            min_strength: 0.3,
            discover: true,
            discover_min_strength: 0.6,
        }
    }
}
