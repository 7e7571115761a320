//! Typed configuration: defaults, `${VAR:-default}` substitution, and validation in one place.
//!
//! With no file, the embedded `config/config.yaml` is used, so `sre-agent serve` runs on its
//! defaults. Unknown keys and invalid values are errors that name the key and its line. Nothing
//! here starts anything; [`crate::Pipeline`] builds the running parts from a `Config`.

pub mod catalog;
pub mod detection;
pub mod duration;
pub mod env;
pub mod incidents;
pub mod kubernetes;
pub mod notification;
pub mod prometheus;
pub mod rca;
pub mod remediation;
pub mod scrape;
pub mod secret;
pub mod sources;
mod validate;
pub mod writeback;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use catalog::{Catalog, CatalogFile};
pub use detection::{
    DetectionConfig, ForecastConfig, NoveltyConfig, PeersConfig, SeasonalityConfig, ServicesConfig,
};
pub use incidents::IncidentsConfig;
pub use kubernetes::KubernetesConfig;
pub use notification::{
    AlertmanagerConfig, NotificationConfig, WebhookConfig, WebhookEvents, WebhookFormat,
};
pub use prometheus::{BackfillConfig, PrometheusConfig};
pub use rca::RcaConfig;
pub use scrape::{ScrapeConfig, ScrapeTarget};
pub use secret::Secret;
pub use sources::{LlmConfig, LokiConfig};
pub use writeback::WritebackConfig;

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
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            env::from_str(text, env).map_err(|e| ConfigError::Parse {
                origin: origin.into(),
                message: e.to_string(),
            })?
        };
        let problems: Vec<String> = config
            .problems()
            .into_iter()
            .map(|(key, msg)| match line_of(text, &key) {
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
    fn an_unknown_webhook_format_names_the_choices_and_line() {
        let err = Config::parse(
            "notification:\n  webhook:\n    format: discord\n",
            "f.yaml",
            no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 3") && err.contains("slack"), "{err}");
        let ok = Config::parse(
            "notification:\n  webhook:\n    format: teams\n",
            "f",
            no_env,
        );
        assert_eq!(
            ok.unwrap().notification.webhook.format,
            WebhookFormat::Teams
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
