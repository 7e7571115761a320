//! Pull mode: one scrape of one target, turned into a [`Batch`] for the same store path that
//! remote write takes, and per-target health.
//!
//! Each scrape yields the parsed samples, Prometheus' synthetic `up`, `scrape_duration_seconds`
//! and `scrape_samples_scraped`, and staleness markers for series that the previous scrape had
//! and this one has not (all of them when the scrape fails), so a vanished series stops being
//! judged at once instead of lingering until eviction. Scheduling and the store live in
//! [`crate::Pipeline::start_scrapers`]; this module does no I/O but [`fetch`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::exposition;
use crate::config::{ScrapeConfig, ScrapeTarget};
use crate::model::STALE_NAN_BITS;
use crate::model::batch::{Batch, MetricType};
use crate::model::labels::escape_value as escape;

/// What Prometheus asks for; we parse text format 0.0.4 only.
const ACCEPT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

/// One target's scrape state: its labels and the previous scrape's series.
pub struct TargetScrape {
    pub job: String,
    pub instance: String,
    /// The URL without credentials or query, for logs and the API.
    pub shown_url: String,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub bearer_token: crate::config::Secret,
    /// job, instance and the configured labels.
    labels: Vec<(String, String)>,
    current: Batch,
    previous: Batch,
    /// Series of `previous` that were scraped (not the staleness markers appended after).
    previous_live: usize,
    seen: HashSet<u64>,
}

/// The outcome of one scrape, for health and logs.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeOutcome {
    pub up: bool,
    pub samples: usize,
    pub stale_markers: usize,
    pub error: Option<String>,
}

impl TargetScrape {
    pub fn new(target: &ScrapeTarget, defaults: &ScrapeConfig) -> Self {
        let instance = target.instance().unwrap_or_default();
        let mut labels = vec![
            ("job".to_string(), target.job.clone()),
            ("instance".to_string(), instance.clone()),
        ];
        labels.extend(target.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels.sort();
        Self {
            job: target.job.clone(),
            instance,
            shown_url: shown_url(&target.url),
            url: target.url.clone(),
            interval: target.interval(defaults),
            timeout: target.timeout(defaults),
            bearer_token: target.bearer_token.clone(),
            labels,
            current: Batch::default(),
            previous: Batch::default(),
            previous_live: 0,
            seen: HashSet::new(),
        }
    }

    /// Builds the batch for one scrape from the answer (or why there is none). Apply
    /// [`TargetScrape::batch`] to the store, then call [`TargetScrape::finish`].
    pub fn build(
        &mut self,
        answer: Result<&[u8], String>,
        ts_ms: i64,
        duration: Duration,
    ) -> ScrapeOutcome {
        self.current.clear();
        let target: Vec<(&str, &str)> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let parsed = answer.and_then(|body| {
            exposition::parse(body, ts_ms, &target, &mut self.current)
                .map_err(|e| format!("invalid exposition format: {e}"))
        });
        let (up, samples, error) = match parsed {
            Ok(n) => (true, n, None),
            Err(e) => {
                // Nothing of a failed scrape is kept: a half-parsed answer is not the target.
                self.current.clear();
                (false, 0, Some(e))
            }
        };
        let duration_s = duration.as_secs_f64();
        for (name, value, metric_type) in [
            ("up", if up { 1.0 } else { 0.0 }, MetricType::Gauge),
            ("scrape_duration_seconds", duration_s, MetricType::Gauge),
            ("scrape_samples_scraped", samples as f64, MetricType::Gauge),
        ] {
            let mut labels = target.clone();
            labels.push(("__name__", name));
            self.current
                .push_series(&labels, (ts_ms, value), metric_type);
        }
        self.seen.clear();
        self.seen.extend(self.current.series.iter().map(|s| s.hash));
        let live = self.current.series.len();
        let stale = f64::from_bits(STALE_NAN_BITS);
        let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
        for s in &self.previous.series[..self.previous_live.min(self.previous.series.len())] {
            if self.seen.contains(&s.hash) {
                continue;
            }
            pairs.clear();
            pairs.extend(self.previous.label_pairs(s));
            self.current
                .push_series_bytes(&pairs, (ts_ms, stale), s.metric_type);
        }
        let stale_markers = self.current.series.len() - live;
        self.previous_live = live;
        ScrapeOutcome {
            up,
            samples,
            stale_markers,
            error,
        }
    }

    /// The batch the last [`TargetScrape::build`] made.
    pub fn batch(&mut self) -> &mut Batch {
        &mut self.current
    }

    /// Keeps this scrape's series for the next one's staleness check.
    pub fn finish(&mut self) {
        std::mem::swap(&mut self.current, &mut self.previous);
    }
}

/// GETs a target's exposition within its timeout, refusing answers over `max_bytes`.
pub async fn fetch(
    client: &reqwest::Client,
    target: &TargetScrape,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
    let mut request = client
        .get(&target.url)
        .timeout(target.timeout)
        .header("Accept", ACCEPT)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", target.timeout.as_secs_f64()),
        );
    if !target.bearer_token.is_empty() {
        request = request.bearer_auth(target.bearer_token.expose());
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| format!("request failed: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("server answered HTTP {}", response.status()));
    }
    if response
        .content_length()
        .is_some_and(|n| n as usize > max_bytes)
    {
        return Err(format!("answer larger than {max_bytes} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer failed: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err(format!("answer larger than {max_bytes} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The URL as shown in logs and the API: scheme, host, port and path; never credentials or a
/// query string (either may hold a token).
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}{}",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path()
        ),
        Err(_) => "<invalid url>".into(),
    }
}

/// Health of one target, as `GET /api/v1/targets` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetHealth {
    pub job: String,
    pub instance: String,
    pub url: String,
    pub health: &'static str,
    pub last_scrape_unix_ms: i64,
    pub last_scrape_duration_seconds: f64,
    pub last_samples: usize,
    pub last_error: String,
    pub scrapes_succeeded: u64,
    pub scrapes_failed: u64,
}

/// Every target's health; updated once per scrape, read by /metrics and the API.
#[derive(Default)]
pub struct ScrapeHealth(Mutex<BTreeMap<(String, String), TargetHealth>>);

impl ScrapeHealth {
    /// Registers a target before its first scrape, so it is listed as `unknown` at once.
    pub fn register(&self, t: &TargetScrape) {
        self.lock()
            .entry((t.job.clone(), t.instance.clone()))
            .or_insert_with(|| TargetHealth {
                job: t.job.clone(),
                instance: t.instance.clone(),
                url: t.shown_url.clone(),
                health: "unknown",
                last_scrape_unix_ms: 0,
                last_scrape_duration_seconds: 0.0,
                last_samples: 0,
                last_error: String::new(),
                scrapes_succeeded: 0,
                scrapes_failed: 0,
            });
    }

    pub fn record(&self, t: &TargetScrape, ts_ms: i64, duration: Duration, o: &ScrapeOutcome) {
        let mut map = self.lock();
        let Some(h) = map.get_mut(&(t.job.clone(), t.instance.clone())) else {
            return;
        };
        h.health = if o.up { "up" } else { "down" };
        h.last_scrape_unix_ms = ts_ms;
        h.last_scrape_duration_seconds = duration.as_secs_f64();
        h.last_samples = o.samples;
        h.last_error = o.error.clone().unwrap_or_default();
        if o.up {
            h.scrapes_succeeded += 1;
        } else {
            h.scrapes_failed += 1;
        }
    }

    pub fn snapshot(&self) -> Vec<TargetHealth> {
        self.lock().values().cloned().collect()
    }

    /// `sre_agent_scrape_*` families (headers even without targets, so they are discoverable).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let targets = self.snapshot();
        let families: [(&str, &str, &str); 4] = [
            (
                "sre_agent_scrape_target_up",
                "gauge",
                "1 if the last scrape of the target succeeded, 0 if it failed.",
            ),
            (
                "sre_agent_scrapes_total",
                "counter",
                "Scrapes of the target, by result (success, failure).",
            ),
            (
                "sre_agent_scrape_duration_seconds",
                "gauge",
                "Duration of the target's last scrape.",
            ),
            (
                "sre_agent_scrape_samples",
                "gauge",
                "Samples in the target's last successful scrape.",
            ),
        ];
        for (name, kind, help) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for t in &targets {
                let labels = format!(
                    "job=\"{}\",instance=\"{}\"",
                    escape(&t.job),
                    escape(&t.instance)
                );
                match name {
                    "sre_agent_scrape_target_up" => {
                        let up = u8::from(t.health == "up");
                        let _ = writeln!(out, "{name}{{{labels}}} {up}");
                    }
                    "sre_agent_scrapes_total" => {
                        let _ = writeln!(
                            out,
                            "{name}{{{labels},result=\"success\"}} {}\n{name}{{{labels},result=\"failure\"}} {}",
                            t.scrapes_succeeded, t.scrapes_failed
                        );
                    }
                    "sre_agent_scrape_duration_seconds" => {
                        let _ =
                            writeln!(out, "{name}{{{labels}}} {}", t.last_scrape_duration_seconds);
                    }
                    _ => {
                        let _ = writeln!(out, "{name}{{{labels}}} {}", t.last_samples);
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), TargetHealth>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> TargetScrape {
        let t = ScrapeTarget {
            job: "node".into(),
            url: "http://user:pw@10.0.0.1:9100/metrics?token=x".into(),
            interval: None,
            timeout: None,
            labels: [("namespace".to_string(), "infra".to_string())].into(),
            bearer_token: Default::default(),
        };
        TargetScrape::new(&t, &ScrapeConfig::default())
    }

    fn names(batch: &Batch) -> Vec<(String, f64)> {
        batch
            .series
            .iter()
            .map(|s| {
                let name = String::from_utf8_lossy(batch.metric_name(s).unwrap()).into_owned();
                (name, batch.series_samples(s)[0].1)
            })
            .collect()
    }

    #[test]
    fn a_scrape_adds_up_and_target_labels_and_hides_credentials() {
        let mut t = target();
        assert_eq!(t.shown_url, "http://10.0.0.1:9100/metrics");
        assert_eq!(t.instance, "10.0.0.1:9100");
        let outcome = t.build(Ok(b"a 1\nb 2\n"), 1000, Duration::from_millis(20));
        let batch = t.batch();
        assert_eq!(outcome.samples, 2);
        assert!(outcome.up);
        let got = names(batch);
        assert_eq!(got[2], ("up".into(), 1.0));
        assert_eq!(got[3], ("scrape_duration_seconds".into(), 0.02));
        assert_eq!(got[4], ("scrape_samples_scraped".into(), 2.0));
        let labels: Vec<_> = batch
            .label_pairs(&batch.series[2])
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            labels,
            [
                ("__name__", "up"),
                ("instance", "10.0.0.1:9100"),
                ("job", "node"),
                ("namespace", "infra")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        // The same series from the parser and from push_series hash alike.
        t.build(Ok(b"up 7\n"), 1000, Duration::ZERO);
        let batch = t.batch();
        assert_eq!(batch.series[0].hash, batch.series[1].hash);
    }

    #[test]
    fn vanished_series_get_one_staleness_marker_and_failures_mark_everything() {
        let mut t = target();
        t.build(Ok(b"a 1\nb 2\n"), 1000, Duration::ZERO);
        t.finish();
        let outcome = t.build(Ok(b"a 1\n"), 2000, Duration::ZERO);
        assert_eq!(outcome.stale_markers, 1);
        let last = names(t.batch()).pop().unwrap();
        assert_eq!(last.0, "b");
        assert_eq!(last.1.to_bits(), STALE_NAN_BITS);
        t.finish();
        // b is not marked again; a failed scrape marks a, keeps up = 0.
        let outcome = t.build(Err("refused".into()), 3000, Duration::ZERO);
        assert!(!outcome.up);
        assert_eq!(outcome.error.as_deref(), Some("refused"));
        assert_eq!(outcome.stale_markers, 1);
        let got = names(t.batch());
        assert_eq!(got[0], ("up".into(), 0.0));
        assert_eq!(got[2], ("scrape_samples_scraped".into(), 0.0));
        assert_eq!(got[3].0, "a");
        t.finish();
        let outcome = t.build(Err("refused".into()), 4000, Duration::ZERO);
        assert_eq!(outcome.stale_markers, 0);
    }

    #[test]
    fn a_malformed_answer_fails_the_scrape_and_keeps_nothing_of_it() {
        let mut t = target();
        let outcome = t.build(Ok(b"a 1\nb{ 2\n"), 1000, Duration::ZERO);
        assert!(!outcome.up);
        assert!(outcome.error.unwrap().contains("line 2"));
        assert_eq!(t.batch().series.len(), 3, "only up and the scrape series");
    }

    #[test]
    fn health_renders_per_target() {
        let t = target();
        let h = ScrapeHealth::default();
        h.register(&t);
        let outcome = ScrapeOutcome {
            up: false,
            samples: 0,
            stale_markers: 0,
            error: Some("timeout".into()),
        };
        h.record(&t, 5, Duration::from_millis(10), &outcome);
        let mut out = String::new();
        h.render(&mut out);
        assert!(
            out.contains("sre_agent_scrape_target_up{job=\"node\",instance=\"10.0.0.1:9100\"} 0")
        );
        assert!(out.contains(
            "sre_agent_scrapes_total{job=\"node\",instance=\"10.0.0.1:9100\",result=\"failure\"} 1"
        ));
        assert_eq!(h.snapshot()[0].last_error, "timeout");
    }
}
