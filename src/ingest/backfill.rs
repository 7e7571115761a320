//! Warm start: history of the catalog's series from the Prometheus HTTP API, fed through the
//! live path so detection works from the first minute instead of after days.
//!
//! `query_range` over `lookback`, in time chunks (oldest first, so every series sees its history
//! in order), each chunk retried with backoff. Every chunk's series are encoded as remote-write
//! requests and applied to the store exactly as live samples are; anomalies found in history are
//! not notified, and lifecycles are reset afterwards so nothing fires about the past. Series that
//! already have a learned baseline (restored from a snapshot) are left alone. Runs before the
//! agent accepts writes: a live sample would make older history out of order.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use super::encode::{TimeSeries, encode_v1};
use super::{Batch, remote_write_v1};
use crate::config::Config;
use crate::model::batch::hash_labels;
use crate::net::{client, delay, form_encode, redact_url, retry_after, retryable_status};
use crate::store::Store;

/// Series per remote-write request built from a chunk.
const SERIES_PER_BATCH: usize = 500;

#[derive(Debug, Clone)]
pub struct BackfillOptions {
    pub url: String,
    pub lookback: Duration,
    pub step: Duration,
    pub chunk: Duration,
    pub timeout: Duration,
    pub retries: u32,
}

impl BackfillOptions {
    pub fn from_config(config: &Config) -> Self {
        let p = &config.prometheus;
        Self {
            url: p.url.trim_end_matches('/').to_string(),
            lookback: p.backfill.lookback,
            step: p.backfill.step,
            chunk: p.backfill.chunk,
            timeout: Duration::from_secs(p.timeout_seconds.max(1)),
            retries: p.retry_attempts,
        }
    }
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct BackfillReport {
    pub chunks: usize,
    pub series: usize,
    pub samples: u64,
    /// Series skipped because a snapshot already gave them a baseline.
    pub skipped_series: usize,
}

#[derive(Debug, Error)]
pub enum BackfillError {
    #[error("prometheus.url is not set")]
    NoUrl,
    #[error("the catalog has no metric names to fetch")]
    EmptyCatalog,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("query_range on {url} failed after {attempts} attempts: {reason}")]
    Query {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("Prometheus answered {url} with an error: {reason}")]
    Prometheus { url: String, reason: String },
}

#[derive(Deserialize)]
struct QueryResponse {
    status: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    data: Option<QueryData>,
}

#[derive(Deserialize)]
struct QueryData {
    #[serde(default)]
    result: Vec<MatrixSeries>,
}

#[derive(Deserialize)]
struct MatrixSeries {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// One series of a `query_range` answer: sorted labels and (ms, value) samples.
pub type FetchedSeries = (Vec<(String, String)>, Vec<(i64, f64)>);

/// Parses a `query_range` answer (`{"status":"success","data":{"result":[…]}}`). `Err` carries
/// Prometheus' own error text, or why the body is not such an answer.
pub fn parse_query_range(body: &[u8]) -> Result<Vec<FetchedSeries>, String> {
    let q: QueryResponse =
        serde_json::from_slice(body).map_err(|e| format!("not a query_range answer ({e})"))?;
    if q.status != "success" {
        return Err(q.error);
    }
    Ok(q.data
        .map(|d| d.result)
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let mut labels: Vec<(String, String)> = s.metric.into_iter().collect();
            labels.sort();
            let samples = s
                .values
                .iter()
                .filter(|(t, _)| t.is_finite())
                .filter_map(|(t, v)| Some(((t * 1000.0).round() as i64, v.parse::<f64>().ok()?)))
                .collect();
            (labels, samples)
        })
        .collect())
}

/// `{__name__=~"a|b|.*_latency_p99"}` for the catalog's names (`*` is the catalog's wildcard).
pub fn catalog_selector(config: &Config) -> Result<String, BackfillError> {
    let catalog = config
        .catalog()
        .map_err(|e| BackfillError::Client(e.to_string()))?;
    let mut names: Vec<String> = catalog
        .classes
        .iter()
        .map(|c| {
            c.entry
                .name
                .split('*')
                .map(regex_escape)
                .collect::<Vec<_>>()
                .join(".*")
        })
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(BackfillError::EmptyCatalog);
    }
    Ok(format!("{{__name__=~\"{}\"}}", names.join("|")))
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$\"".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Fetches `[end - lookback, end]` and applies it to `store`.
pub async fn backfill(
    store: &Store,
    options: &BackfillOptions,
    selector: &str,
    end_ms: i64,
) -> Result<BackfillReport, BackfillError> {
    if options.url.is_empty() {
        return Err(BackfillError::NoUrl);
    }
    let http = client(options.timeout).map_err(|e| BackfillError::Client(e.to_string()))?;
    let step_ms = options.step.as_millis().max(1000) as i64;
    let chunk_ms = (options.chunk.as_millis() as i64).max(step_ms);
    let start_ms = end_ms - options.lookback.as_millis() as i64;
    let mut report = BackfillReport::default();
    let mut seen_series = std::collections::HashSet::new();
    let mut skipped = std::collections::HashSet::new();
    let mut scratch = Vec::new();
    let mut from = start_ms;
    while from <= end_ms {
        let to = (from + chunk_ms - step_ms).min(end_ms);
        let series = query_range(&http, options, selector, from, to, step_ms).await?;
        report.chunks += 1;
        let mut pending: Vec<TimeSeries> = Vec::new();
        for (labels, samples) in series {
            let (hash, _) = hash_labels(
                labels.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                &mut scratch,
            );
            if !seen_series.contains(&hash) {
                let learned = store
                    .with_series(hash, |x| x.state.has_learned())
                    .unwrap_or(false);
                if learned {
                    skipped.insert(hash);
                }
                seen_series.insert(hash);
            }
            if skipped.contains(&hash) {
                continue;
            }
            report.samples += samples.len() as u64;
            pending.push(TimeSeries { labels, samples });
            if pending.len() >= SERIES_PER_BATCH {
                apply(store, &pending);
                pending.clear();
            }
        }
        apply(store, &pending);
        from = to + step_ms;
    }
    store.reset_lifecycles();
    report.series = seen_series.len() - skipped.len();
    report.skipped_series = skipped.len();
    Ok(report)
}

fn apply(store: &Store, series: &[TimeSeries]) {
    if series.is_empty() {
        return;
    }
    let mut batch = Batch::default();
    encode_v1(series, &mut batch.body);
    if remote_write_v1::decode(&mut batch).is_ok() {
        // History's anomalies are not news: the events are dropped and lifecycles reset after.
        let mut events = Vec::new();
        store.apply(&mut batch, &mut events);
    }
}

async fn query_range(
    http: &reqwest::Client,
    options: &BackfillOptions,
    selector: &str,
    from_ms: i64,
    to_ms: i64,
    step_ms: i64,
) -> Result<Vec<FetchedSeries>, BackfillError> {
    let url = format!("{}/api/v1/query_range", options.url);
    let shown = redact_url(&url);
    let params = [
        ("query", selector.to_string()),
        ("start", format!("{:.3}", from_ms as f64 / 1000.0)),
        ("end", format!("{:.3}", to_ms as f64 / 1000.0)),
        ("step", format!("{}s", step_ms / 1000)),
    ];
    let mut last = String::new();
    let mut hint = None;
    for attempt in 0..=options.retries {
        if attempt > 0 {
            tokio::time::sleep(delay(attempt - 1, hint.take())).await;
        }
        let request = http
            .post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form_encode(&params));
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                last = format!("request failed: {}", e.without_url());
                continue;
            }
        };
        let status = response.status();
        hint = retry_after(response.headers());
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                last = format!("reading the answer failed: {}", e.without_url());
                continue;
            }
        };
        let parsed = parse_query_range(&body);
        if status.is_success() {
            match parsed {
                Ok(series) => return Ok(series),
                Err(reason) => last = format!("{status}: {reason}"),
            }
            continue;
        }
        let reason = match parsed {
            Ok(_) => status.to_string(),
            Err(reason) => format!("{status}: {reason}"),
        };
        // A 4xx other than 408/429: the query itself is wrong; retrying will not help.
        if !retryable_status(status) {
            return Err(BackfillError::Prometheus { url: shown, reason });
        }
        last = reason;
    }
    Err(BackfillError::Query {
        url: shown,
        attempts: options.retries + 1,
        reason: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_answers_and_errors() {
        let ok = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"pod":"a","__name__":"memory_usage"},"values":[[1700000000.5,"0.5"],[1700000015,"NaN"],[1700000030,"oops"]]}]}}"#;
        let series = parse_query_range(ok).unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].0[0].0, "__name__", "labels sorted");
        assert_eq!(series[0].1.len(), 2, "unparseable values are skipped");
        assert_eq!(series[0].1[0], (1_700_000_000_500, 0.5));
        let err = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert_eq!(parse_query_range(err).unwrap_err(), "parse error");
        assert!(
            parse_query_range(b"<html>")
                .unwrap_err()
                .contains("not a query_range")
        );
    }

    #[test]
    fn selector_covers_the_catalog_with_globs_as_regex() {
        let config = Config::default();
        let s = catalog_selector(&config).unwrap();
        assert!(s.starts_with("{__name__=~\""), "{s}");
        assert!(s.contains("memory_usage"), "{s}");
        assert!(s.contains("|"), "{s}");
        assert!(!s.contains("*_"), "globs become .*: {s}");
        assert_eq!(regex_escape("a.b*c"), "a\\.b\\*c");
        assert_eq!(
            form_encode(&[("query", "{a=~\"b|c\"}".into()), ("step", "60s".into())]),
            "query=%7Ba%3D~%22b%7Cc%22%7D&step=60s"
        );
    }
}
