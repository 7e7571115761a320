//! Results out as series: vmanomaly-compatible `anomaly_score`, `yhat`, `yhat_lower`,
//! `yhat_upper` on `/metrics` and remote-written to `REMOTE_WRITE_URL`.
//!
//! Each exported series carries the source series' labels with its metric name in the label
//! `for`, and `anomaly_score` is above 1 exactly when the source is judged anomalous, so rules
//! and dashboards written for vmanomaly (`anomaly_score > 1`) work unchanged.

pub mod remote;

use std::fmt::Write;

use crate::ingest::encode::TimeSeries;
use crate::store::Store;

pub const EXPORTED: [&str; 4] = ["anomaly_score", "yhat", "yhat_lower", "yhat_upper"];

#[derive(Debug, Clone)]
pub struct ExportSeries {
    /// Source labels without `__name__`, plus `for`, sorted.
    pub labels: Vec<(String, String)>,
    pub timestamp_ms: i64,
    /// anomaly_score, yhat, yhat_lower, yhat_upper.
    pub values: [f64; 4],
}

/// Series to export: those firing, or every detected series with `all`.
pub fn collect(store: &Store, all: bool) -> Vec<ExportSeries> {
    let threshold = store.options.detect.alert_threshold;
    let mut out = Vec::new();
    store.for_each(|s| {
        if !s.detect || s.last_ts == i64::MIN || s.stale || !(all || s.lifecycle.is_firing()) {
            return;
        }
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .filter(|(n, _)| *n != "__name__" && *n != "for")
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        labels.push(("for".into(), s.labels.metric_name().to_string()));
        labels.sort();
        let sc = &s.last_score;
        out.push(ExportSeries {
            labels,
            timestamp_ms: s.last_ts,
            values: [
                sc.vm_score(threshold, s.lifecycle.is_firing()),
                sc.expected,
                sc.lower,
                sc.upper,
            ],
        });
    });
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Appends the exported series in text exposition format.
pub fn render(out: &mut String, series: &[ExportSeries]) {
    let help = [
        "Anomaly score of the series named in label for; above 1 means anomalous (vmanomaly convention).",
        "Expected value of the series named in label for.",
        "Lower bound of the normal band.",
        "Upper bound of the normal band.",
    ];
    for (i, name) in EXPORTED.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} gauge", help[i]);
        for s in series {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let v = s.values[i];
            if v.is_finite() {
                let _ = writeln!(out, "{name}{{{}}} {v}", labels.join(","));
            }
        }
    }
}

/// The same series as remote-write 1.0 time series.
pub fn to_timeseries(series: &[ExportSeries]) -> Vec<TimeSeries> {
    let mut out = Vec::with_capacity(series.len() * 4);
    for s in series {
        for (i, name) in EXPORTED.iter().enumerate() {
            if !s.values[i].is_finite() {
                continue;
            }
            let mut labels = s.labels.clone();
            labels.push(("__name__".into(), name.to_string()));
            labels.sort();
            out.push(TimeSeries {
                labels,
                samples: vec![(s.timestamp_ms, s.values[i])],
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_for_label_and_escaping() {
        let s = ExportSeries {
            labels: vec![
                ("for".into(), "cpu_usage".into()),
                ("pod".into(), "a\"b".into()),
            ],
            timestamp_ms: 1,
            values: [1.5, 0.5, 0.4, 0.6],
        };
        let mut out = String::new();
        render(&mut out, std::slice::from_ref(&s));
        assert!(
            out.contains("anomaly_score{for=\"cpu_usage\",pod=\"a\\\"b\"} 1.5"),
            "{out}"
        );
        let ts = to_timeseries(&[s]);
        assert_eq!(ts.len(), 4);
        assert_eq!(
            ts[0].labels[0],
            ("__name__".to_string(), "anomaly_score".to_string())
        );
    }
}
