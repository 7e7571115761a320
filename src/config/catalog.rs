//! The metric catalog (`config/metrics.yaml`): the seed's crypto-exchange metrics in categories,
//! each with the direction that matters and the smallest move worth a page.
//!
//! A series is classified once, when it is created; the per-sample path only reads the class.

use serde::{Deserialize, Serialize};

use crate::model::kind::{ClassParams, Direction};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// Metric name; `*` matches any run of characters (e.g. `*_latency_p99`).
    pub name: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub min_abs_deviation: f64,
    #[serde(default)]
    pub min_rel_deviation: f64,
    /// Learn a daily profile for this metric (traffic-driven metrics have one).
    #[serde(default)]
    pub seasonal: bool,
    /// Forecast this metric and predict when it crosses this value (in `direction`; `both`
    /// means above). Gauges only.
    #[serde(default)]
    pub breach_threshold: Option<f64>,
    #[serde(default)]
    pub unit: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    pub categories: std::collections::BTreeMap<String, Vec<CatalogEntry>>,
    #[serde(default)]
    pub default: DefaultClass,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultClass {
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub min_abs_deviation: f64,
    #[serde(default)]
    pub min_rel_deviation: f64,
    #[serde(default)]
    pub seasonal: bool,
}

/// A resolved metric class.
#[derive(Debug, Clone, Serialize)]
pub struct MetricClass {
    pub category: String,
    #[serde(flatten)]
    pub entry: CatalogEntry,
}

impl MetricClass {
    pub fn params(&self) -> ClassParams {
        ClassParams {
            direction: self.entry.direction,
            min_abs_deviation: self.entry.min_abs_deviation,
            min_rel_deviation: self.entry.min_rel_deviation,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub classes: Vec<MetricClass>,
    pub default: DefaultClass,
}

pub const NO_CLASS: u16 = u16::MAX;

impl Catalog {
    pub fn from_file(file: CatalogFile) -> Self {
        let classes = file
            .categories
            .into_iter()
            .flat_map(|(category, entries)| {
                entries.into_iter().map(move |entry| MetricClass {
                    category: category.clone(),
                    entry,
                })
            })
            .collect();
        Self {
            classes,
            default: file.default,
        }
    }

    /// The first class whose name pattern and labels match; `NO_CLASS` when none does.
    pub fn classify<'a>(
        &self,
        name: &str,
        labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> u16 {
        self.classes
            .iter()
            .position(|c| {
                glob_match(&c.entry.name, name)
                    && c.entry
                        .labels
                        .iter()
                        .all(|(k, v)| labels.clone().any(|(n, lv)| n == k && lv == v))
            })
            .map_or(NO_CLASS, |i| i.min(NO_CLASS as usize - 1) as u16)
    }

    pub fn class(&self, id: u16) -> Option<&MetricClass> {
        self.classes.get(id as usize)
    }

    pub fn params(&self, id: u16) -> ClassParams {
        self.class(id).map_or(
            ClassParams {
                direction: self.default.direction,
                min_abs_deviation: self.default.min_abs_deviation,
                min_rel_deviation: self.default.min_rel_deviation,
            },
            MetricClass::params,
        )
    }

    pub fn seasonal(&self, id: u16) -> bool {
        self.class(id)
            .map_or(self.default.seasonal, |c| c.entry.seasonal)
    }

    /// The predicted-breach threshold and direction of a class, if it is forecast.
    pub fn breach(&self, id: u16) -> Option<(f64, Direction)> {
        let entry = &self.class(id)?.entry;
        let direction = match entry.direction {
            Direction::Both => Direction::Above,
            d => d,
        };
        entry.breach_threshold.map(|t| (t, direction))
    }

    pub fn category(&self, id: u16) -> &str {
        self.class(id)
            .map_or("uncategorized", |c| c.category.as_str())
    }
}

/// `*` matches any (possibly empty) run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("up", "up"));
        assert!(!glob_match("up", "upx"));
        assert!(glob_match("*_latency_p99", "order_latency_p99"));
        assert!(glob_match("a*b*c", "a__b__c"));
        assert!(!glob_match("a*b*c", "a__c"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("*", ""));
    }
}
