//! Logs as RCA evidence: Loki's `query_range` for the incident's labels over its window, and
//! counts of error patterns (timeouts, OOM, refused connections, 5xx, panics) in what comes
//! back. Optional: without `LOKI_URL` the RCA says logs were not consulted.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::net::{client, delay, form_encode, redact_url, retry_after, retryable_status};

/// Pattern name → lower-case needles (any one counts). `http_5xx` is judged separately.
pub const PATTERNS: [(&str, &[&str]); 5] = [
    ("timeout", &["timeout", "timed out", "deadline exceeded"]),
    (
        "oom",
        &[
            "out of memory",
            "oomkilled",
            "oom-kill",
            "cannot allocate memory",
        ],
    ),
    (
        "connection_refused",
        &["connection refused", "econnrefused", "connection reset"],
    ),
    ("http_5xx", &[]),
    (
        "panic",
        &[
            "panic",
            "fatal error",
            "segmentation fault",
            "stack overflow",
        ],
    ),
];

/// Counts each pattern once per line.
pub fn count_patterns<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> =
        PATTERNS.iter().map(|(n, _)| (n.to_string(), 0)).collect();
    for line in lines {
        let lower = line.to_ascii_lowercase();
        for (name, needles) in PATTERNS {
            let hit = if name == "http_5xx" {
                is_5xx(&lower)
            } else {
                needles.iter().any(|n| lower.contains(n))
            };
            if hit {
                *counts.entry(name.to_string()).or_default() += 1;
            }
        }
    }
    counts
}

/// A 5xx status: a 500–599 token on a line that speaks of HTTP status.
fn is_5xx(lower: &str) -> bool {
    let speaks_http = ["status", "http", "code"].iter().any(|w| lower.contains(w));
    speaks_http
        && lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|t| t.len() == 3 && t.starts_with('5') && t.bytes().all(|b| b.is_ascii_digit()))
}

pub use crate::model::rca::LogSummary;

#[derive(Debug, thiserror::Error)]
#[error("Loki query_range on {url} failed: {reason}")]
pub struct LokiError {
    pub url: String,
    pub reason: String,
}

pub struct Loki {
    http: reqwest::Client,
    url: String,
    limit: usize,
    retries: u32,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    result: Vec<Stream>,
}

#[derive(Deserialize)]
struct Stream {
    values: Vec<(String, String)>,
}

/// LogQL for a label set, with a line filter for the patterns (keeps the answer small).
pub fn logql(labels: &BTreeMap<String, String>) -> String {
    let matchers: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", crate::model::labels::escape_value(v)))
        .collect();
    format!(
        "{{{}}} |~ \"(?i)(timeout|timed out|deadline exceeded|out of memory|oom|refused|connection reset|panic|fatal| 5[0-9][0-9] |status=5)\"",
        matchers.join(",")
    )
}

impl Loki {
    pub fn new(
        url: &str,
        timeout: Duration,
        limit: usize,
    ) -> Result<Self, crate::net::ClientError> {
        Ok(Self {
            http: client(timeout)?,
            url: url.trim_end_matches('/').to_string(),
            limit,
            retries: 2,
        })
    }

    /// Counts error patterns in the logs of `labels` between the two times (ms).
    pub async fn summarize(
        &self,
        labels: &BTreeMap<String, String>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<LogSummary, LokiError> {
        let query = logql(labels);
        let url = format!("{}/loki/api/v1/query_range", self.url);
        let err = |reason: String| LokiError {
            url: redact_url(&url),
            reason,
        };
        let params = [
            ("query", query.clone()),
            ("start", format!("{}", from_ms as i128 * 1_000_000)),
            ("end", format!("{}", to_ms as i128 * 1_000_000)),
            ("limit", self.limit.to_string()),
            ("direction", "backward".to_string()),
        ];
        let mut last = String::new();
        let mut hint = None;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(delay(attempt - 1, hint.take())).await;
            }
            let sent = self
                .http
                .post(&url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form_encode(&params))
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    last = format!("request failed: {}", e.without_url());
                    continue;
                }
            };
            let status = response.status();
            hint = retry_after(response.headers());
            let body = response
                .bytes()
                .await
                .map_err(|e| err(e.without_url().to_string()))?;
            if retryable_status(status) {
                last = format!("HTTP {status}");
                continue;
            }
            if !status.is_success() {
                return Err(err(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )));
            }
            return summarize_answer(&body, query).map_err(err);
        }
        Err(err(last))
    }
}

/// Parses a Loki `query_range` answer (streams) and counts its error patterns.
pub fn summarize_answer(body: &[u8], query: String) -> Result<LogSummary, String> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| format!("not a query_range answer ({e})"))?;
    if answer.status != "success" {
        return Err(format!("status {}", answer.status));
    }
    let mut lines: Vec<(i128, String)> = answer
        .data
        .result
        .into_iter()
        .flat_map(|s| s.values)
        .map(|(ts, line)| (ts.parse().unwrap_or(0), line))
        .collect();
    lines.sort_by_key(|l| std::cmp::Reverse(l.0));
    let counts = count_patterns(lines.iter().map(|(_, l)| l.as_str()));
    let samples = lines
        .iter()
        .filter(|(_, l)| {
            count_patterns(std::iter::once(l.as_str()))
                .values()
                .any(|n| *n > 0)
        })
        .take(5)
        .map(|(_, l)| l.chars().take(300).collect())
        .collect();
    Ok(LogSummary {
        query,
        lines: lines.len(),
        counts,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_counted_once_per_line() {
        let lines = [
            "upstream request timeout after 5s",
            "dial tcp 10.0.0.1:5432: connect: connection refused",
            "GET /api/orders HTTP/1.1 status=503 took 12ms",
            "panic: runtime error: index out of range",
            "container OOMKilled",
            "processed 500 orders",
            "all fine",
        ];
        let c = count_patterns(lines.iter().copied());
        assert_eq!(c["timeout"], 1);
        assert_eq!(c["connection_refused"], 1);
        assert_eq!(
            c["http_5xx"], 1,
            "a bare 500 without HTTP context is not a status"
        );
        assert_eq!(c["panic"], 1);
        assert_eq!(c["oom"], 1);
    }

    #[test]
    fn logql_quotes_label_values() {
        let q = logql(&[("namespace".to_string(), "a\"b".to_string())].into());
        assert!(q.starts_with("{namespace=\"a\\\"b\"} |~"), "{q}");
    }
}
