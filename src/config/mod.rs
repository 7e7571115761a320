//! Typed configuration: defaults, `${VAR:-default}` substitution, and validation in one place.
//!
//! With no file, the embedded `config/config.yaml` is used, so `sre-agent serve` runs on its
//! defaults. Unknown keys and invalid values are errors that name the key and its line. Nothing
//! here starts anything; [`crate::Pipeline`] builds the running parts from a `Config`.

pub mod catalog;
pub mod duration;
pub mod env;
pub mod incidents;
pub mod kubernetes;
pub mod rca;
pub mod remediation;
pub mod scrape;
pub mod secret;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use catalog::{Catalog, CatalogFile};
pub use incidents::IncidentsConfig;
pub use kubernetes::KubernetesConfig;
pub use rca::RcaConfig;
pub use scrape::{ScrapeConfig, ScrapeTarget};
pub use secret::Secret;

/// The score threshold the NAB scorer picks for the standard profile on the development split
/// (`scripts/nab.sh`), so what is measured is what runs.
pub const DEFAULT_ALERT_THRESHOLD: f64 = 0.7272;

/// The default configuration, shipped in the binary.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/config.yaml");
/// The default metric catalog, shipped in the binary.
pub const DEFAULT_CATALOG: &str = include_str!("../../config/metrics.yaml");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: invalid configuration:\n{}", .problems.join("\n"))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub app: AppConfig,
    pub api: ApiConfig,
    pub ingest: IngestConfig,
    pub store: StoreConfig,
    pub anomaly_detection: DetectionConfig,
    pub notification: NotificationConfig,
    pub writeback: WritebackConfig,
    /// Pull mode: exporters scraped directly into the same pipeline as remote write.
    pub scrape: ScrapeConfig,
    /// Grouping of anomalies into incidents.
    pub incidents: IncidentsConfig,
    /// Root-cause analysis per incident.
    pub rca: RcaConfig,
    /// The Kubernetes API (events for the RCA).
    pub kubernetes: KubernetesConfig,
    /// Metric catalog file; empty means the embedded `config/metrics.yaml`.
    #[serde(deserialize_with = "duration::nullable_string")]
    pub catalog_file: String,
    pub prometheus: PrometheusConfig,
    pub loki: LokiConfig,
    pub llm: LlmConfig,
    pub baseline: BaselineConfig,
    /// Risk of a planned action (the seed's four weighted dimensions and levels).
    pub risk_assessment: remediation::RiskConfig,
    /// Plans, approvals, safety rails and execution.
    pub auto_remediation: remediation::RemediationConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    #[serde(deserialize_with = "duration::nullable_string")]
    pub name: String,
    #[serde(deserialize_with = "duration::nullable_string")]
    pub version: String,
    #[serde(deserialize_with = "duration::nullable_string")]
    pub environment: String,
    #[serde(deserialize_with = "duration::nullable_string")]
    pub log_level: String,
    /// `text` or `json`.
    #[serde(deserialize_with = "duration::nullable_string")]
    pub log_format: String,
    #[serde(deserialize_with = "duration::nullable_string")]
    pub data_dir: String,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            name: "sre-agent".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            environment: "development".into(),
            log_level: "info".into(),
            log_format: "text".into(),
            data_dir: "./data".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    #[serde(deserialize_with = "duration::nullable_string")]
    pub host: String,
    pub port: u16,
    /// Accepted for seed compatibility; the server uses tokio's worker pool (one per core).
    pub workers: u32,
    /// Bearer token required by mutating API routes (acknowledge); open when empty.
    pub auth_token: Secret,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8000,
            workers: 0,
            auth_token: Secret::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest compressed body accepted (413 above). Prometheus' batches are ~100–500 KB.
    pub max_body_bytes: usize,
    /// Largest decompressed message accepted (413 above).
    pub max_decompressed_bytes: usize,
    /// Write requests processed at once; more get 429 so the sender backs off and retries.
    pub max_inflight_requests: usize,
    pub retry_after_seconds: u32,
    /// A request body must arrive within this time, so a stalled client cannot hold an
    /// in-flight slot forever (408 after it).
    #[serde(with = "duration")]
    pub body_read_timeout: Duration,
    pub auth: AuthConfig,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            max_inflight_requests: 32,
            retry_after_seconds: 1,
            body_read_timeout: Duration::from_secs(30),
            auth: AuthConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    #[serde(deserialize_with = "duration::nullable_string")]
    pub username: String,
    pub password: Secret,
    pub bearer_token: Secret,
}

impl AuthConfig {
    pub fn enabled(&self) -> bool {
        !self.username.is_empty() || !self.bearer_token.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    #[serde(with = "duration")]
    pub retention: Duration,
    /// Active series limit; new series beyond it are refused (existing ones are unaffected).
    pub max_series: usize,
    /// Series with no sample for this long are evicted and their memory freed.
    #[serde(with = "duration")]
    pub series_idle_timeout: Duration,
    /// Number of shards (a power of two); each is written by one request at a time.
    pub shards: usize,
    /// How often learned baselines are snapshotted to the data directory (also on shutdown);
    /// 0s turns snapshots (and the restore at start) off.
    #[serde(with = "duration")]
    pub snapshot_interval: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(3600),
            max_series: 500_000,
            series_idle_timeout: Duration::from_secs(15 * 60),
            shards: 64,
            snapshot_interval: Duration::from_secs(5 * 60),
        }
    }
}

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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationConfig {
    pub webhook: WebhookConfig,
    pub alertmanager: AlertmanagerConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    #[serde(deserialize_with = "duration::nullable_string")]
    pub url: String,
    /// What is sent: `incident` (opened, analyzed, mitigated, resolved: one page per incident)
    /// and/or `anomaly` (every firing, escalation and resolve of every series).
    pub events: Vec<WebhookEvents>,
    pub timeout_seconds: u64,
    pub queue_size: usize,
    pub max_retries: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            events: vec![WebhookEvents::Incident, WebhookEvents::Plan],
            timeout_seconds: 10,
            queue_size: 4096,
            max_retries: 8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvents {
    Incident,
    Anomaly,
    /// Plans: approval requests (with callback links) and outcomes.
    Plan,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    #[serde(deserialize_with = "duration::nullable_string")]
    pub url: String,
    /// Firing alerts are re-posted this often, well inside Alertmanager's 5 min resolve_timeout.
    #[serde(with = "duration")]
    pub resend_interval: Duration,
    pub timeout_seconds: u64,
    pub queue_size: usize,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            resend_interval: Duration::from_secs(60),
            timeout_seconds: 10,
            queue_size: 4096,
        }
    }
}

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LokiConfig {
    #[serde(deserialize_with = "duration::nullable_string")]
    pub url: String,
    pub timeout_seconds: u64,
}

impl Default for LokiConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_seconds: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// `anthropic` (Messages API) or `openai` (chat completions; any compatible server, such
    /// as a local model, via `base_url`).
    #[serde(deserialize_with = "duration::nullable_string")]
    pub provider: String,
    #[serde(deserialize_with = "duration::nullable_string")]
    pub model: String,
    pub api_key: Secret,
    /// Empty means the provider's public API.
    #[serde(deserialize_with = "duration::nullable_string")]
    pub base_url: String,
    /// Answer tokens at most.
    pub max_tokens: u32,
    pub temperature: f64,
    pub timeout_seconds: u64,
    /// The prompt is cut to this many characters (the token budget's input side).
    pub max_prompt_chars: usize,
}

impl LlmConfig {
    /// Asked only when there is a key, or a self-hosted OpenAI-compatible endpoint.
    pub fn enabled(&self) -> bool {
        !self.api_key.is_empty() || (self.provider == "openai" && !self.base_url.is_empty())
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            provider: "anthropic".into(),
            model: "claude-sonnet-4-20250514".into(),
            api_key: Secret::default(),
            base_url: String::new(),
            max_tokens: 1024,
            temperature: 0.1,
            timeout_seconds: 25,
            max_prompt_chars: 24_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    pub min_history_days: u32,
    pub optimal_history_days: u32,
    pub learning_interval_hours: u32,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            min_history_days: 7,
            optimal_history_days: 30,
            learning_interval_hours: 24,
        }
    }
}

impl Config {
    /// The embedded defaults, with the process environment substituted.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::parse(DEFAULT_CONFIG, "embedded config/config.yaml", |k| {
            std::env::var(k).ok()
        })
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
            path: path.into(),
            reason,
        })?;
        Self::parse(&text, &path.display().to_string(), |k| {
            std::env::var(k).ok()
        })
    }

    pub fn parse(
        text: &str,
        origin: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = env::substitute(text, env);
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
                origin: origin.into(),
                message: e.to_string(),
            })?
        };
        let problems: Vec<String> = config
            .problems()
            .into_iter()
            .map(|(key, msg)| match line_of(&text, &key) {
                Some(line) => format!("  {key} (line {line}): {msg}"),
                None => format!("  {key}: {msg}"),
            })
            .collect();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                origin: origin.into(),
                problems,
            })
        }
    }

    /// Every invalid value, as (dotted key, reason); all reported at once.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut check = |ok: bool, key: &str, msg: &str| {
            if !ok {
                p.push((key.to_string(), msg.to_string()));
            }
        };
        let d = &self.anomaly_detection;
        check(
            d.zscore_threshold.is_finite() && d.zscore_threshold > 0.0,
            "anomaly_detection.zscore_threshold",
            "must be a positive number",
        );
        check(
            d.mad_threshold.is_finite() && d.mad_threshold > 0.0,
            "anomaly_detection.mad_threshold",
            "must be a positive number",
        );
        check(
            (1..=3).contains(&d.ensemble_min_votes),
            "anomaly_detection.ensemble_min_votes",
            "must be 1, 2 or 3 (there are three detectors)",
        );
        check(
            d.ewma_alpha > 0.0 && d.ewma_alpha < 1.0,
            "anomaly_detection.ewma_alpha",
            "must be in (0, 1)",
        );
        check(
            d.alert_threshold > 0.0 && d.alert_threshold < 1.0,
            "anomaly_detection.alert_threshold",
            "must be in (0, 1)",
        );
        check(
            d.pending_samples >= 1,
            "anomaly_detection.pending_samples",
            "must be at least 1",
        );
        check(
            d.resolve_samples >= 1,
            "anomaly_detection.resolve_samples",
            "must be at least 1",
        );
        check(
            d.resolve_ratio > 0.0 && d.resolve_ratio <= 1.0,
            "anomaly_detection.resolve_ratio",
            "must be in (0, 1]",
        );
        check(
            d.check_interval_seconds >= 1,
            "anomaly_detection.check_interval_seconds",
            "must be at least 1",
        );
        check(
            d.refit_budget >= Duration::from_millis(10),
            "anomaly_detection.refit_budget",
            "must be at least 10ms",
        );
        check(
            (2..=1440).contains(&d.seasonality.bins),
            "anomaly_detection.seasonality.bins",
            "must be between 2 and 1440",
        );
        check(
            d.seasonality.period >= Duration::from_secs(60),
            "anomaly_detection.seasonality.period",
            "must be at least 1m",
        );
        check(
            (0.0..=1.0).contains(&d.seasonality.min_strength),
            "anomaly_detection.seasonality.min_strength",
            "must be in [0, 1]",
        );
        check(
            d.seasonality.discover_min_strength > 0.0 && d.seasonality.discover_min_strength <= 1.0,
            "anomaly_detection.seasonality.discover_min_strength",
            "must be in (0, 1]",
        );
        let n = &d.novelty;
        check(
            n.range_unit.is_finite() && n.range_unit > 0.0,
            "anomaly_detection.novelty.range_unit",
            "must be a positive number",
        );
        check(
            n.density_unit.is_finite() && n.density_unit > 0.0,
            "anomaly_detection.novelty.density_unit",
            "must be a positive number",
        );
        check(
            n.memory >= Duration::from_secs(60),
            "anomaly_detection.novelty.memory",
            "must be at least 1m",
        );
        check(
            n.context_learning_rate > 0.0 && n.context_learning_rate <= 1.0,
            "anomaly_detection.novelty.context_learning_rate",
            "must be in (0, 1]",
        );
        check(
            n.stuck_factor.is_finite() && n.stuck_factor >= 1.0,
            "anomaly_detection.novelty.stuck_factor",
            "must be at least 1",
        );
        check(
            n.stuck_min_samples >= 2,
            "anomaly_detection.novelty.stuck_min_samples",
            "must be at least 2",
        );
        check(
            n.drift_alpha >= 0.001 && n.drift_alpha <= 1.0,
            "anomaly_detection.novelty.drift_alpha",
            "must be in [0.001, 1]",
        );
        check(
            n.drift_unit.is_finite() && n.drift_unit > 0.0,
            "anomaly_detection.novelty.drift_unit",
            "must be a positive number",
        );
        check(
            n.drift_travel_unit.is_finite() && n.drift_travel_unit > 0.0,
            "anomaly_detection.novelty.drift_travel_unit",
            "must be a positive number",
        );
        let b = &self.prometheus.backfill;
        check(
            b.step >= Duration::from_secs(1),
            "prometheus.backfill.step",
            "must be at least 1s",
        );
        check(
            b.chunk >= b.step && b.chunk.as_secs_f64() / b.step.as_secs_f64().max(1.0) <= 11_000.0,
            "prometheus.backfill.chunk",
            "must be at least one step and at most 11000 steps (Prometheus' limit per query)",
        );
        check(
            b.lookback >= b.step,
            "prometheus.backfill.lookback",
            "must be at least one step",
        );
        check(
            d.peers.min_group >= 3,
            "anomaly_detection.peers.min_group",
            "must be at least 3 (two series have no majority)",
        );
        check(
            d.services.bucket >= Duration::from_secs(1),
            "anomaly_detection.services.bucket",
            "must be at least 1s",
        );
        check(
            d.services.min_history >= 10,
            "anomaly_detection.services.min_history",
            "must be at least 10",
        );
        check(
            d.services.threshold_sigmas.is_finite() && d.services.threshold_sigmas > 0.0,
            "anomaly_detection.services.threshold_sigmas",
            "must be a positive number",
        );
        check(
            d.peers.threshold_sigmas.is_finite() && d.peers.threshold_sigmas > 0.0,
            "anomaly_detection.peers.threshold_sigmas",
            "must be a positive number",
        );
        let f = &d.forecast;
        check(
            !f.horizons.is_empty()
                && f.horizons.len() <= 8
                && f.horizons.iter().all(|h| *h >= Duration::from_secs(60)),
            "anomaly_detection.forecast.horizons",
            "must list 1 to 8 durations of at least 1m",
        );
        check(
            f.refit_interval >= Duration::from_secs(10),
            "anomaly_detection.forecast.refit_interval",
            "must be at least 10s",
        );
        let s = &self.store;
        check(
            s.shards.is_power_of_two() && s.shards <= 4096,
            "store.shards",
            "must be a power of two up to 4096",
        );
        check(s.max_series >= 1, "store.max_series", "must be at least 1");
        check(
            s.retention >= Duration::from_secs(60),
            "store.retention",
            "must be at least 1m",
        );
        check(
            s.snapshot_interval.is_zero() || s.snapshot_interval >= Duration::from_secs(10),
            "store.snapshot_interval",
            "must be 0s (off) or at least 10s",
        );
        check(
            s.series_idle_timeout >= Duration::from_secs(10),
            "store.series_idle_timeout",
            "must be at least 10s",
        );
        let i = &self.ingest;
        check(
            i.max_body_bytes >= 1024,
            "ingest.max_body_bytes",
            "must be at least 1024",
        );
        check(
            i.max_decompressed_bytes >= i.max_body_bytes,
            "ingest.max_decompressed_bytes",
            "must be at least ingest.max_body_bytes",
        );
        check(
            i.max_decompressed_bytes < u32::MAX as usize,
            "ingest.max_decompressed_bytes",
            "must be below 4 GiB",
        );
        check(
            i.max_inflight_requests >= 1,
            "ingest.max_inflight_requests",
            "must be at least 1",
        );
        check(
            i.body_read_timeout >= Duration::from_millis(100),
            "ingest.body_read_timeout",
            "must be at least 100ms",
        );
        check(
            i.auth.username.is_empty() || !i.auth.password.is_empty(),
            "ingest.auth.password",
            "is required when ingest.auth.username is set",
        );
        check(
            matches!(self.app.log_format.as_str(), "text" | "json"),
            "app.log_format",
            "must be text or json",
        );
        for (key, url) in [
            ("notification.webhook.url", &self.notification.webhook.url),
            (
                "notification.alertmanager.url",
                &self.notification.alertmanager.url,
            ),
            ("writeback.url", &self.writeback.url),
            ("prometheus.url", &self.prometheus.url),
            ("loki.url", &self.loki.url),
            ("llm.base_url", &self.llm.base_url),
            ("kubernetes.api_url", &self.kubernetes.api_url),
        ] {
            check(
                url.is_empty() || url.starts_with("http://") || url.starts_with("https://"),
                key,
                "must be an http:// or https:// URL",
            );
        }
        check(
            self.writeback.interval >= Duration::from_secs(1),
            "writeback.interval",
            "must be at least 1s",
        );
        check(
            self.notification.alertmanager.resend_interval >= Duration::from_secs(1),
            "notification.alertmanager.resend_interval",
            "must be at least 1s",
        );
        check(
            self.notification.webhook.queue_size >= 1,
            "notification.webhook.queue_size",
            "must be at least 1",
        );
        check(
            self.writeback.queue_size >= 1,
            "writeback.queue_size",
            "must be at least 1",
        );
        let l = &self.llm;
        check(
            matches!(l.provider.as_str(), "anthropic" | "openai"),
            "llm.provider",
            "must be anthropic or openai (any OpenAI-compatible server)",
        );
        check(
            (0.0..=2.0).contains(&l.temperature),
            "llm.temperature",
            "must be in [0, 2]",
        );
        check(l.max_tokens >= 64, "llm.max_tokens", "must be at least 64");
        check(
            l.max_prompt_chars >= 1000,
            "llm.max_prompt_chars",
            "must be at least 1000",
        );
        p.extend(self.scrape.problems());
        p.extend(self.incidents.problems());
        p.extend(self.risk_assessment.problems());
        p.extend(
            self.auto_remediation
                .problems(!self.api.auth_token.is_empty()),
        );
        p.extend(self.rca.problems());

        p
    }

    /// The metric catalog: `catalog_file` if set, else the embedded one.
    pub fn catalog(&self) -> Result<Catalog, ConfigError> {
        let (text, origin) = if self.catalog_file.is_empty() {
            (
                DEFAULT_CATALOG.to_string(),
                "embedded config/metrics.yaml".to_string(),
            )
        } else {
            let path = PathBuf::from(&self.catalog_file);
            let text = std::fs::read_to_string(&path).map_err(|reason| ConfigError::Read {
                path: path.clone(),
                reason,
            })?;
            (text, self.catalog_file.clone())
        };
        let file: CatalogFile = serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        let mut problems = Vec::new();
        for (category, entries) in &file.categories {
            for (i, e) in entries.iter().enumerate() {
                if e.name.is_empty() {
                    problems.push(format!(
                        "  categories.{category}[{i}].name: must not be empty"
                    ));
                }
                if !(e.min_abs_deviation >= 0.0 && e.min_rel_deviation >= 0.0) {
                    problems.push(format!(
                        "  categories.{category}[{i}] ({}): minimum deviations must be >= 0",
                        e.name
                    ));
                }
                if e.breach_threshold.is_some_and(|t| !t.is_finite()) {
                    problems.push(format!(
                        "  categories.{category}[{i}] ({}): breach_threshold must be a finite number",
                        e.name
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(Catalog::from_file(file))
        } else {
            Err(ConfigError::Invalid { origin, problems })
        }
    }

    pub fn listen_addr(&self) -> String {
        format!("{}:{}", self.api.host, self.api.port)
    }
}

/// Finds the line of a dotted key by walking the YAML's indentation: good enough to point a
/// person at the right place, which is all it is for.
fn line_of(text: &str, dotted: &str) -> Option<usize> {
    let mut from = 0usize;
    let mut indent: Option<usize> = None;
    let mut found = None;
    let lines: Vec<&str> = text.lines().collect();
    for key in dotted.split('.') {
        let hit = lines.iter().enumerate().skip(from).find(|(_, l)| {
            let trimmed = l.trim_start();
            let this_indent = l.len() - trimmed.len();
            indent.is_none_or(|i| this_indent > i)
                && trimmed
                    .strip_prefix(key)
                    .is_some_and(|r| r.trim_start().starts_with(':'))
        })?;
        from = hit.0 + 1;
        indent = Some(hit.1.len() - hit.1.trim_start().len());
        found = Some(hit.0 + 1);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn embedded_defaults_are_valid_and_catalog_loads() {
        let c = Config::parse(DEFAULT_CONFIG, "default", no_env).unwrap();
        assert_eq!(c.anomaly_detection.ensemble_min_votes, 2);
        assert_eq!(c.anomaly_detection.zscore_threshold, 3.0);
        assert!(c.notification.webhook.url.is_empty());
        let catalog = c.catalog().unwrap();
        assert!(catalog.classes.len() >= 14);
        for cat in [
            "trading",
            "matching",
            "risk",
            "wallet",
            "api",
            "infrastructure",
        ] {
            assert!(catalog.classes.iter().any(|c| c.category == cat), "{cat}");
        }
    }

    #[test]
    fn environment_fills_urls() {
        let c = Config::parse(DEFAULT_CONFIG, "default", |k| {
            (k == "WEBHOOK_URL").then(|| "http://hook:1/x".to_string())
        })
        .unwrap();
        assert_eq!(c.notification.webhook.url, "http://hook:1/x");
    }

    #[test]
    fn empty_file_means_defaults() {
        assert!(Config::parse("", "empty", no_env).is_ok());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse(
            "anomaly_detection:\n  zscore_treshold: 3\n",
            "f.yaml",
            no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("zscore_treshold"), "{err}");
        assert!(err.contains("f.yaml"), "{err}");
    }

    #[test]
    fn invalid_value_names_key_and_line() {
        let err = Config::parse(
            "app:\n  name: x\nanomaly_detection:\n  warmup_samples: 3\n  zscore_threshold: -1\n",
            "f.yaml",
            no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("anomaly_detection.zscore_threshold (line 5)"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_is_reported_with_position() {
        let err = Config::parse("store:\n  max_series: lots\n", "f.yaml", no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.yaml"), "{err}");
        assert!(err.contains('2') || err.contains("max_series"), "{err}");
    }

    #[test]
    fn seed_config_sections_are_accepted() {
        let seed = "app:\n  name: sre-agent\n  environment: production\n  log_level: INFO\nprometheus:\n  url: http://p:9090\n  timeout_seconds: 30\n  retry_attempts: 3\nllm:\n  provider: anthropic\n  api_key: sk-secret\nrisk_assessment:\n  weights:\n    severity: 0.35\nauto_remediation:\n  enabled: true\n  dry_run: true\n";
        let c = Config::parse(seed, "seed", no_env).unwrap();
        assert!(!format!("{c:?}").contains("sk-secret"));
    }
}
