//! Replay: streams `timestamp,value` CSV files through the live path and writes
//! `timestamp,value,anomaly_score` beside them.
//!
//! Each row becomes a one-sample remote-write request that is encoded, decoded and applied to a
//! store exactly as a live request is, so the score is the one the running agent would compute.
//! Rows are read in file order with no look-ahead (no sorting, no second pass, no file-wide
//! statistics). Upkeep that the live agent runs every `check_interval_seconds` of wall time runs
//! here every `check_interval_seconds` of sample time.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use thiserror::Error;

use super::encode::{TimeSeries, encode_v1};
use super::{Batch, Protocol, decode_decompressed};
use crate::config::Config;
use crate::detect::engine::DetectionOptions;
use crate::store::{Store, StoreOptions};

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("{path}: {reason}")]
    Io {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Row {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{0}: no CSV files found")]
    Empty(PathBuf),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReplayReport {
    pub files: usize,
    pub rows: usize,
    /// Rows the live path does not score (duplicate or out-of-order timestamps, NaN values);
    /// they get score 0.
    pub unscored: usize,
    pub anomalous_rows: usize,
}

/// Parses `YYYY-MM-DD HH:MM:SS` (NAB), RFC 3339, or epoch seconds / milliseconds.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(time) = humantime::parse_rfc3339_weak(t) {
        return time
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as i64);
    }
    let n: f64 = t.parse().ok()?;
    // Epoch seconds until the year 5138; milliseconds above.
    Some(if n.abs() < 1e11 {
        (n * 1000.0) as i64
    } else {
        n as i64
    })
}

/// One parsed CSV row: the timestamp and value as written (echoed to the output) and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    pub ts_text: &'a str,
    pub value_text: &'a str,
    pub ts: i64,
    pub value: f64,
}

/// Parses `timestamp,value[,…]`. `Ok(None)` for a blank line; `Err` names what is wrong.
pub fn parse_row(line: &str) -> Result<Option<Row<'_>>, String> {
    let row = line.trim_end_matches('\r');
    if row.trim().is_empty() {
        return Ok(None);
    }
    let (ts_text, rest) = row.split_once(',').ok_or("expected timestamp,value")?;
    let value_text = rest.split(',').next().unwrap_or("").trim();
    let ts =
        parse_timestamp(ts_text).ok_or_else(|| format!("cannot parse timestamp {ts_text:?}"))?;
    let value = value_text
        .parse::<f64>()
        .map_err(|_| format!("cannot parse value {value_text:?}"))?;
    Ok(Some(Row {
        ts_text: ts_text.trim(),
        value_text,
        ts,
        value,
    }))
}

fn csv_files(root: &Path) -> Result<Vec<PathBuf>, ReplayError> {
    let io = |reason| ReplayError::Io {
        path: root.to_path_buf(),
        reason,
    };
    if root.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "csv") {
                out.push(path);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(ReplayError::Empty(root.to_path_buf()));
    }
    Ok(out)
}

/// Replays `input` (a CSV file or a folder tree of them) into `output` (a folder).
pub fn replay(input: &Path, output: &Path, config: &Config) -> Result<ReplayReport, ReplayError> {
    let files = csv_files(input)?;
    let catalog = config.catalog()?;
    let mut report = ReplayReport::default();
    for file in &files {
        let relative = if input.is_file() {
            PathBuf::from(file.file_name().unwrap_or_default())
        } else {
            file.strip_prefix(input).unwrap_or(file).to_path_buf()
        };
        let target = output.join(&relative);
        // A fresh store per file: files are independent series, as separate series are live.
        let store = Store::new(store_options(config), catalog.clone());
        replay_file(
            file,
            &target,
            &relative.display().to_string(),
            &store,
            config,
            &mut report,
        )?;
        report.files += 1;
    }
    Ok(report)
}

fn store_options(config: &Config) -> StoreOptions {
    let d = &config.anomaly_detection;
    StoreOptions {
        shards: 1,
        max_series: 1,
        retention: config.store.retention,
        // Replay runs far faster than sample time; nothing is idle.
        idle_timeout: std::time::Duration::from_secs(u64::from(u32::MAX)),
        detection: replay_detection(d),
    }
}

/// Detection as live, less what replay cannot do the same way.
fn replay_detection(d: &crate::config::DetectionConfig) -> DetectionOptions {
    DetectionOptions {
        detect: crate::detect::DetectParams::from_config(d),
        lifecycle: crate::detect::lifecycle::LifecycleParams::from_config(d),
        only_catalog: false,
        // Replay scores samples; forecasts need wall-clock refits and a ring of live history.
        forecast: crate::detect::forecast::ForecastParams {
            enabled: false,
            ..Default::default()
        },
        // One series per store: no peers, no service of several metrics.
        peers: crate::detect::peers::PeerParams {
            enabled: false,
            ..Default::default()
        },
        services: crate::detect::multivariate::ServiceParams {
            enabled: false,
            ..Default::default()
        },
        // Results must not depend on how fast the machine is.
        refit_budget: std::time::Duration::MAX,
    }
}

fn replay_file(
    input: &Path,
    output: &Path,
    name: &str,
    store: &Store,
    config: &Config,
    report: &mut ReplayReport,
) -> Result<(), ReplayError> {
    let io_in = |reason| ReplayError::Io {
        path: input.to_path_buf(),
        reason,
    };
    let io_out = |reason| ReplayError::Io {
        path: output.to_path_buf(),
        reason,
    };
    let reader = std::io::BufReader::new(std::fs::File::open(input).map_err(io_in)?);
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent).map_err(io_out)?;
    }
    let mut writer = BufWriter::new(std::fs::File::create(output).map_err(io_out)?);
    writeln!(writer, "timestamp,value,anomaly_score").map_err(io_out)?;

    let labels = [("__name__", "replay"), ("file", name)];
    let upkeep_every_ms = config.anomaly_detection.check_interval_seconds.max(1) as i64 * 1000;
    let min_strength = config.anomaly_detection.seasonality.min_strength;
    let mut next_upkeep = i64::MIN;
    let mut batch = Batch::default();
    let mut events = Vec::new();
    let mut series = vec![TimeSeries::new(&labels, &[(0, 0.0)])];
    for (index, line) in reader.lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(io_in)?;
        let Row {
            ts_text,
            value_text,
            ts,
            value,
        } = match parse_row(&line) {
            Ok(Some(row)) => row,
            Ok(None) => continue,
            Err(_) if index == 0 => continue, // the header
            Err(reason) => {
                return Err(ReplayError::Row {
                    path: input.into(),
                    line: line_no,
                    reason,
                });
            }
        };
        // The live path: encode → decode → apply.
        series[0].samples[0] = (ts, value);
        batch.clear();
        encode_v1(&series, &mut batch.body);
        decode_decompressed(Protocol::V1, &mut batch).map_err(|e| ReplayError::Row {
            path: input.into(),
            line: line_no,
            reason: e.to_string(),
        })?;
        let hash = batch.series[0].hash;
        let stats = store.apply(&mut batch, &mut events);
        events.clear();
        let score = if stats.detected == 1 {
            store
                .with_series(hash, |s| s.state.last_score())
                .unwrap_or_default()
        } else {
            Default::default()
        };
        report.rows += 1;
        report.unscored += usize::from(stats.detected == 0);
        report.anomalous_rows += usize::from(score.anomalous);
        writeln!(writer, "{ts_text},{value_text},{}", score.score).map_err(io_out)?;
        if ts >= next_upkeep {
            if next_upkeep != i64::MIN {
                store.maintain(min_strength);
            }
            next_upkeep = ts + upkeep_every_ms;
        }
    }
    writer.flush().map_err(io_out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_line_parses_or_errs_without_panicking(line in "\\PC{0,60}") {
            let _ = parse_row(&line);
        }

        #[test]
        fn written_rows_parse_back(secs in 0i64..4_000_000_000, value in -1e12f64..1e12) {
            let line = format!("{secs},{value}");
            let row = parse_row(&line).unwrap().unwrap();
            prop_assert_eq!(row.ts, secs * 1000);
            prop_assert_eq!(row.value, value);
        }
    }

    #[test]
    fn rows() {
        assert_eq!(parse_row("").unwrap(), None);
        assert!(parse_row("timestamp,value").is_err());
        assert!(parse_row("2014-02-14 14:30:00").is_err());
        let r = parse_row("2014-02-14 14:30:00,0.132,extra\r")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.ts_text, r.value_text, r.value),
            ("2014-02-14 14:30:00", "0.132", 0.132)
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("2014-02-14 14:30:00"),
            Some(1_392_388_200_000)
        );
        assert_eq!(
            parse_timestamp("2014-02-14T14:30:00Z"),
            Some(1_392_388_200_000)
        );
        assert_eq!(parse_timestamp("1392388200"), Some(1_392_388_200_000));
        assert_eq!(parse_timestamp("1392388200000"), Some(1_392_388_200_000));
        assert_eq!(parse_timestamp("timestamp"), None);
    }

    #[test]
    fn replays_a_file_row_for_row_and_flags_the_spike() {
        let dir = std::env::temp_dir().join(format!("sre-agent-replay-{}", std::process::id()));
        let input = dir.join("in/sub/series.csv");
        std::fs::create_dir_all(input.parent().unwrap()).unwrap();
        let mut text = String::from("timestamp,value\n");
        let mut rng = fastrand::Rng::with_seed(3);
        for i in 0..600 {
            let v = if i == 500 {
                900.0
            } else {
                100.0 + rng.f64() * 5.0
            };
            text.push_str(&format!("{},{v}\n", 1_400_000_000 + i * 300));
        }
        // A repeated timestamp, as some NAB files have: kept in order, scored 0.
        text.push_str(&format!("{},{}\n", 1_400_000_000 + 599 * 300, 101.0));
        std::fs::write(&input, text).unwrap();
        let config = Config::parse(crate::config::DEFAULT_CONFIG, "t", |_| None).unwrap();
        let report = replay(&dir.join("in"), &dir.join("out"), &config).unwrap();
        assert_eq!((report.files, report.rows, report.unscored), (1, 601, 1));
        let out = std::fs::read_to_string(dir.join("out/sub/series.csv")).unwrap();
        let rows: Vec<&str> = out.lines().collect();
        assert_eq!(rows[0], "timestamp,value,anomaly_score");
        assert_eq!(rows.len(), 602);
        let score = |i: usize| {
            rows[i + 1]
                .rsplit(',')
                .next()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        };
        assert!(score(500) > 0.5, "{}", rows[501]);
        assert!((0..600).filter(|&i| i != 500).all(|i| score(i) < 0.99));
        assert_eq!(score(600), 0.0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
