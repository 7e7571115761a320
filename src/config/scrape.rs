//! Pull mode's configuration: exporters scraped directly, for running as a sidecar without a
//! Prometheus. Parsing and validation only; `ingest::scrape` does the scraping.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Secret, duration};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    /// Default interval between scrapes of one target.
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Default time limit for one scrape (at most the interval).
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// A larger answer fails the scrape (as Prometheus' `body_size_limit`).
    pub max_body_bytes: usize,
    pub targets: Vec<ScrapeTarget>,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            max_body_bytes: 32 << 20,
            targets: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeTarget {
    /// The `job` label of every series from this target.
    pub job: String,
    /// The exposition endpoint, e.g. `http://127.0.0.1:9100/metrics`; `instance` is its
    /// host:port.
    pub url: String,
    #[serde(default, with = "duration::option")]
    pub interval: Option<Duration>,
    #[serde(default, with = "duration::option")]
    pub timeout: Option<Duration>,
    /// Extra labels for every series (e.g. namespace, service, pod).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Sent as `Authorization: Bearer …` when set.
    #[serde(default)]
    pub bearer_token: Secret,
}

impl ScrapeTarget {
    pub fn interval(&self, defaults: &ScrapeConfig) -> Duration {
        self.interval.unwrap_or(defaults.interval)
    }

    pub fn timeout(&self, defaults: &ScrapeConfig) -> Duration {
        self.timeout
            .unwrap_or(defaults.timeout)
            .min(self.interval(defaults))
    }

    /// `host:port` of the URL (the port filled in from the scheme), as Prometheus' `instance`.
    pub fn instance(&self) -> Option<String> {
        let (scheme, rest) = self.url.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        let host_port = authority.rsplit('@').next()?;
        if host_port.is_empty() {
            return None;
        }
        let has_port = match host_port.rfind(']') {
            Some(bracket) => host_port[bracket..].contains(':'),
            None => host_port.contains(':'),
        };
        Some(if has_port {
            host_port.to_string()
        } else {
            let port = if scheme == "https" { 443 } else { 80 };
            format!("{host_port}:{port}")
        })
    }
}

impl ScrapeConfig {
    /// Invalid values as (key, reason), in the form `Config::problems` reports.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if self.interval < Duration::from_secs(1) {
            p.push(("scrape.interval".into(), "must be at least 1s".into()));
        }
        if self.timeout < Duration::from_millis(100) {
            p.push(("scrape.timeout".into(), "must be at least 100ms".into()));
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes >= u32::MAX as usize {
            p.push((
                "scrape.max_body_bytes".into(),
                "must be at least 1024 and below 4 GiB".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let mut bad = |msg: String| {
                p.push((
                    "scrape.targets".into(),
                    format!("[{i}] (job {:?}): {msg}", t.job),
                ))
            };
            if t.job.is_empty() {
                bad("job must not be empty".into());
            }
            if !(t.url.starts_with("http://") || t.url.starts_with("https://"))
                || t.instance().is_none()
            {
                bad(format!(
                    "url {:?} must be an http:// or https:// URL",
                    t.url
                ));
            }
            if t.interval.is_some_and(|d| d < Duration::from_secs(1)) {
                bad("interval must be at least 1s".into());
            }
            if t.timeout.is_some_and(|d| d < Duration::from_millis(100)) {
                bad("timeout must be at least 100ms".into());
            }
            for name in t.labels.keys() {
                let valid = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid || name.starts_with("__") {
                    bad(format!("label name {name:?} is not a valid label name"));
                } else if name == "job" || name == "instance" {
                    bad(format!("label {name} is set from job and url"));
                }
            }
            if !seen.insert((t.job.clone(), t.url.clone())) {
                bad("the same job and url appear twice".into());
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> ScrapeTarget {
        ScrapeTarget {
            job: "node".into(),
            url: url.into(),
            interval: None,
            timeout: None,
            labels: BTreeMap::new(),
            bearer_token: Secret::default(),
        }
    }

    #[test]
    fn instance_is_host_and_port() {
        for (url, want) in [
            ("http://10.0.0.1:9100/metrics", Some("10.0.0.1:9100")),
            ("http://node/metrics", Some("node:80")),
            ("https://user:pw@node?x=1", Some("node:443")),
            ("http://[::1]:9100/metrics", Some("[::1]:9100")),
            ("http://[::1]/metrics", Some("[::1]:80")),
            ("http:///metrics", None),
            ("node:9100", None),
        ] {
            assert_eq!(target(url).instance().as_deref(), want, "{url}");
        }
    }

    #[test]
    fn problems_name_the_target() {
        let mut c = ScrapeConfig::default();
        let mut t = target("ftp://x");
        t.labels.insert("job".into(), "x".into());
        t.labels.insert("1bad".into(), "x".into());
        c.targets = vec![t, target("http://a:1/m"), target("http://a:1/m")];
        let p = c.problems();
        let text = format!("{p:?}");
        assert!(text.contains("[0] (job \\\"node\\\"): url"), "{text}");
        assert!(text.contains("label job is set from job and url"), "{text}");
        assert!(text.contains("\\\"1bad\\\" is not a valid"), "{text}");
        assert!(
            text.contains("[2] (job \\\"node\\\"): the same job"),
            "{text}"
        );
        assert_eq!(p.len(), 4, "{text}");
    }

    #[test]
    fn timeout_never_exceeds_the_interval() {
        let c = ScrapeConfig::default();
        let mut t = target("http://a:1/m");
        t.interval = Some(Duration::from_secs(5));
        assert_eq!(t.timeout(&c), Duration::from_secs(5));
        t.timeout = Some(Duration::from_secs(2));
        assert_eq!(t.timeout(&c), Duration::from_secs(2));
    }
}
