//! Copies of series state for readers off the sample path (API, RCA): a bounded walk of the
//! shards, one lock at a time, returning owned data so no reader holds a shard while it works.

use super::matcher::Matcher;
use super::{Series, Store};
use crate::detect::Score;
use crate::detect::forecast;
use crate::detect::state::BaselineSummary;
use crate::model::series_id;

/// A copy of one series' state for readers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesSnapshot {
    pub id: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub category: String,
    pub cumulative: bool,
    pub stale: bool,
    pub samples_in_ring: usize,
    pub last_timestamp: i64,
    pub last_score: Score,
    pub firing: bool,
    pub memory_bytes: usize,
    /// Forecast per horizon (catalog metrics with a breach threshold).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forecast: Vec<forecast::ForecastPoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_breach: Option<forecast::Breach>,
}

/// A series' recent samples, copied out for analysis (see [`Store::recent`]).
#[derive(Debug, Clone)]
pub struct RecentSeries {
    pub labels: std::collections::BTreeMap<String, String>,
    pub cumulative: bool,
    pub samples: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Baseline {
    pub id: String,
    pub series: String,
    #[serde(flatten)]
    pub band: BaselineSummary,
}

impl Store {
    pub fn snapshot(&self, series: &Series) -> SeriesSnapshot {
        SeriesSnapshot {
            id: series_id(series.hash),
            labels: series.labels.to_map(),
            category: self.catalog.category(series.class).to_string(),
            cumulative: series.cumulative,
            stale: series.stale,
            samples_in_ring: series.ring.len(),
            last_timestamp: series.last_ts,
            last_score: series.state.last_score(),
            firing: series.state.is_firing(),
            forecast: series.state.forecast_points().to_vec(),
            predicted_breach: series.state.predicted_breach(),
            memory_bytes: series.memory_bytes(),
        }
    }

    pub fn find(&self, matcher: &Matcher, limit: usize) -> Vec<SeriesSnapshot> {
        let mut out = Vec::new();
        self.for_each(|s| {
            if out.len() < limit && matcher.matches(&s.labels) {
                out.push(self.snapshot(s));
            }
        });
        out
    }

    /// Recent samples of matching series (at most `limit` series), for analysis off the hot
    /// path: labels, whether the series is cumulative, and the ring's samples since `since_ms`.
    pub fn recent(&self, matcher: &Matcher, since_ms: i64, limit: usize) -> Vec<RecentSeries> {
        let mut out = Vec::new();
        self.for_each(|s| {
            if out.len() < limit && matcher.matches(&s.labels) {
                out.push(RecentSeries {
                    labels: s
                        .labels
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect(),
                    cumulative: s.cumulative,
                    samples: s.ring.samples_since(since_ms),
                });
            }
        });
        out
    }

    pub fn baselines(&self, matcher: &Matcher, limit: usize) -> Vec<Baseline> {
        let mut out = Vec::new();
        self.for_each(|s| {
            if out.len() < limit && s.state.enabled() && matcher.matches(&s.labels) {
                out.push(Baseline {
                    id: series_id(s.hash),
                    series: s.labels.display(),
                    band: s.state.baseline(),
                });
            }
        });
        out
    }
}
