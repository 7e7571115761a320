//! Results out as series: vmanomaly-compatible `anomaly_score`, `yhat`, `yhat_lower`,
//! `yhat_upper` on `/metrics` and remote-written to `REMOTE_WRITE_URL`; for forecast metrics also
//! `yhat_forecast`, `yhat_forecast_lower`, `yhat_forecast_upper` per `horizon` and
//! `predicted_breach_seconds` (time until the forecast crosses the catalog threshold).
//!
//! Each exported series carries the source series' labels with its metric name in the label
//! `for`, and `anomaly_score` is above 1 exactly when the source is judged anomalous, so rules
//! and dashboards written for vmanomaly (`anomaly_score > 1`) work unchanged.

pub mod remote;

use std::fmt::Write;

use crate::detect::forecast::ForecastPoint;
use crate::ingest::encode::TimeSeries;
use crate::store::Store;

pub const EXPORTED: [&str; 4] = ["anomaly_score", "yhat", "yhat_lower", "yhat_upper"];
pub const FORECAST: [&str; 3] = [
    "yhat_forecast",
    "yhat_forecast_lower",
    "yhat_forecast_upper",
];
pub const BREACH: &str = "predicted_breach_seconds";

#[derive(Debug, Clone)]
pub struct ExportSeries {
    /// Source labels without `__name__`, plus `for`, sorted.
    pub labels: Vec<(String, String)>,
    pub timestamp_ms: i64,
    /// anomaly_score, yhat, yhat_lower, yhat_upper.
    pub values: [f64; 4],
    /// Forecast per horizon (forecast metrics only).
    pub forecast: Vec<ForecastPoint>,
    /// Seconds until the predicted breach, when one is predicted.
    pub breach_in_seconds: Option<f64>,
}

fn horizon_label(seconds: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}

/// One exported sample: metric name, an extra label (the forecast horizon), value.
type Sample = (&'static str, Option<(String, String)>, f64);

/// Every sample of one exported series.
fn samples(s: &ExportSeries) -> Vec<Sample> {
    let mut out: Vec<_> = EXPORTED
        .iter()
        .zip(s.values)
        .map(|(n, v)| (*n, None, v))
        .collect();
    for p in &s.forecast {
        let h = Some(("horizon".to_string(), horizon_label(p.horizon_seconds)));
        for (name, v) in FORECAST.iter().zip([p.yhat, p.lower, p.upper]) {
            out.push((name, h.clone(), v));
        }
    }
    if let Some(b) = s.breach_in_seconds {
        out.push((BREACH, None, b));
    }
    out
}

/// Series to export: those firing, or every detected series with `all`.
pub fn collect(store: &Store, all: bool) -> Vec<ExportSeries> {
    let threshold = store.options.detection.detect.alert_threshold;
    let mut out = Vec::new();
    store.for_each(|s| {
        let points = s.state.forecast_points();
        let forecasting = !points.is_empty();
        if !s.state.enabled()
            || s.last_ts == i64::MIN
            || s.stale
            || !(all || s.state.is_firing() || forecasting)
        {
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
        let sc = s.state.last_score();
        out.push(ExportSeries {
            labels,
            timestamp_ms: s.last_ts,
            values: [
                sc.vm_score(threshold, s.state.is_firing()),
                sc.expected,
                sc.lower,
                sc.upper,
            ],
            forecast: points.to_vec(),
            breach_in_seconds: s
                .state
                .predicted_breach()
                .map(|b| ((b.at_ms - s.last_ts).max(0) as f64) / 1000.0),
        });
    });
    out
}

use crate::model::labels::escape_value as escape;

/// Appends the exported series in text exposition format.
pub fn render(out: &mut String, series: &[ExportSeries]) {
    let help = |name: &str| match name {
        "anomaly_score" => {
            "Anomaly score of the series named in label for; above 1 means anomalous (vmanomaly convention)."
        }
        "yhat" => "Expected value of the series named in label for.",
        "yhat_lower" => "Lower bound of the normal band.",
        "yhat_upper" => "Upper bound of the normal band.",
        "yhat_forecast" => {
            "Forecast of the series named in label for, horizon ahead of its last sample."
        }
        "yhat_forecast_lower" => "Lower bound of the 95 % forecast interval.",
        "yhat_forecast_upper" => "Upper bound of the 95 % forecast interval.",
        _ => {
            "Seconds until the forecast of the series named in label for crosses its catalog breach_threshold."
        }
    };
    let all: Vec<Vec<_>> = series.iter().map(samples).collect();
    let names = EXPORTED
        .iter()
        .chain(FORECAST.iter())
        .chain([BREACH].iter());
    for name in names {
        // Headers even with no series yet, so the families are discoverable from the start.
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} gauge", help(name));
        for (s, samples) in series.iter().zip(&all) {
            for (n, extra, v) in samples {
                if n != name || !v.is_finite() {
                    continue;
                }
                let mut labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                if let Some((k, v)) = extra {
                    labels.push(format!("{k}=\"{}\"", escape(v)));
                }
                let _ = writeln!(out, "{name}{{{}}} {v}", labels.join(","));
            }
        }
    }
}

/// The same series as remote-write 1.0 time series.
pub fn to_timeseries(series: &[ExportSeries]) -> Vec<TimeSeries> {
    let mut out = Vec::with_capacity(series.len() * 4);
    for s in series {
        for (name, extra, v) in samples(s) {
            if !v.is_finite() {
                continue;
            }
            let mut labels = s.labels.clone();
            labels.push(("__name__".into(), name.to_string()));
            labels.extend(extra);
            labels.sort();
            out.push(TimeSeries {
                labels,
                samples: vec![(s.timestamp_ms, v)],
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
            forecast: vec![ForecastPoint {
                horizon_seconds: 3600,
                yhat: 0.7,
                lower: 0.6,
                upper: 0.8,
            }],
            breach_in_seconds: Some(7200.0),
        };
        let mut out = String::new();
        render(&mut out, std::slice::from_ref(&s));
        assert!(
            out.contains("anomaly_score{for=\"cpu_usage\",pod=\"a\\\"b\"} 1.5"),
            "{out}"
        );
        assert!(
            out.contains("yhat_forecast{for=\"cpu_usage\",pod=\"a\\\"b\",horizon=\"1h\"} 0.7"),
            "{out}"
        );
        assert!(
            out.contains("predicted_breach_seconds{for=\"cpu_usage\",pod=\"a\\\"b\"} 7200"),
            "{out}"
        );
        let ts = to_timeseries(&[s]);
        assert_eq!(ts.len(), 8);
        assert_eq!(
            ts[0].labels[0],
            ("__name__".to_string(), "anomaly_score".to_string())
        );
    }
}
