//! Learned baselines out and in: export/import as JSON lines, and snapshots in the data
//! directory so a restart does not forget what the detectors learned.
//!
//! One line per series: its labels and its detector state (band, novelty history, seasonal
//! profile). Ring samples and anomaly lifecycles are not part of it: a restored series starts
//! with an empty ring and no open anomaly. Everything read back is validated, so a hand-edited or
//! truncated file is refused line by line with a reason and never poisons a detector. Runs off
//! the hot path; each shard is locked only while its series' states are copied or installed.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::Store;
use super::matcher::Matcher;
use crate::detect::DetectorState;
use crate::model::batch::hash_labels;
use crate::model::labels::SeriesLabels;

/// File name of the snapshot inside the data directory.
pub const SNAPSHOT_FILE: &str = "baselines.jsonl";
/// Errors reported back in detail; the rest are counted.
const MAX_REPORTED_ERRORS: usize = 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRecord {
    pub labels: BTreeMap<String, String>,
    pub detector: DetectorState,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ImportReport {
    /// Series that did not exist and were created with the imported baseline.
    pub created: usize,
    /// Existing series whose baseline was replaced.
    pub updated: usize,
    pub rejected: usize,
    /// The first rejections, as `line N: reason`.
    pub errors: Vec<String>,
}

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Store {
    /// Writes one JSON line per detected series matching `matcher`; returns how many.
    pub fn export_baselines(
        &self,
        matcher: &Matcher,
        out: &mut impl Write,
    ) -> std::io::Result<usize> {
        let mut written = 0;
        let mut records = Vec::new();
        for shard in 0..self.shard_count() {
            // Copy under the lock, serialize after releasing it.
            records.clear();
            self.for_each_in_shard(shard, |s| {
                if s.state.enabled() && s.state.has_learned() && matcher.matches(&s.labels) {
                    records.push(BaselineRecord {
                        labels: s.labels.to_map(),
                        detector: s.state.detector().clone(),
                    });
                }
            });
            for record in &records {
                serde_json::to_writer(&mut *out, record)?;
                out.write_all(b"\n")?;
                written += 1;
            }
        }
        out.flush()?;
        Ok(written)
    }

    /// Installs baselines from JSON lines: replaces the detector state of existing series and
    /// creates the others (they are evicted as usual if no sample arrives). Invalid lines are
    /// rejected with their line number and reason; the others still apply.
    pub fn import_baselines(&self, input: impl BufRead) -> ImportReport {
        let mut report = ImportReport::default();
        let reject = |report: &mut ImportReport, line: usize, reason: String| {
            report.rejected += 1;
            if report.errors.len() < MAX_REPORTED_ERRORS {
                report.errors.push(format!("line {line}: {reason}"));
            }
        };
        let mut scratch = Vec::new();
        for (index, line) in input.lines().enumerate() {
            let line_no = index + 1;
            let line = match line {
                Ok(line) => line,
                Err(e) => {
                    reject(&mut report, line_no, format!("unreadable: {e}"));
                    break;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            let record: BaselineRecord = match serde_json::from_str(&line) {
                Ok(r) => r,
                Err(e) => {
                    reject(&mut report, line_no, format!("invalid JSON: {e}"));
                    continue;
                }
            };
            let labels = match SeriesLabels::from_pairs(
                record
                    .labels
                    .iter()
                    .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            ) {
                Ok(l) => l,
                Err(e) => {
                    reject(&mut report, line_no, format!("invalid labels: {e}"));
                    continue;
                }
            };
            let mut detector = record.detector;
            if let Err(e) = detector.validate(&self.options.detection.detect) {
                reject(&mut report, line_no, format!("invalid detector state: {e}"));
                continue;
            }
            let (hash, hash_check) = hash_labels(
                labels.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                &mut scratch,
            );
            match self.install_baseline(hash, hash_check, labels, detector) {
                Ok(true) => report.created += 1,
                Ok(false) => report.updated += 1,
                Err(reason) => reject(&mut report, line_no, reason),
            }
        }
        report
    }

    /// Writes the snapshot to `dir` atomically (temporary file, fsync, rename).
    pub fn save_snapshot(&self, dir: &Path) -> Result<usize, SnapshotError> {
        let path = dir.join(SNAPSHOT_FILE);
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| SnapshotError::Io { path: p, source }
        };
        let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let mut writer = std::io::BufWriter::new(file);
        let count = self
            .export_baselines(&Matcher::default(), &mut writer)
            .map_err(io(&tmp))?;
        let file = writer.into_inner().map_err(|e| SnapshotError::Io {
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        // The rename is durable only once the directory entry is.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(count)
    }

    /// Restores the snapshot in `dir`, if there is one.
    pub fn load_snapshot(&self, dir: &Path) -> Result<Option<ImportReport>, SnapshotError> {
        let path = dir.join(SNAPSHOT_FILE);
        match std::fs::File::open(&path) {
            Ok(file) => Ok(Some(self.import_baselines(std::io::BufReader::new(file)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SnapshotError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::ingest::encode::{TimeSeries, encode_v1};
    use crate::ingest::{Batch, remote_write_v1};

    fn store() -> Store {
        let config = Config::default();
        Store::new(
            crate::store::StoreOptions::from_config(&config),
            config.catalog().expect("catalog"),
        )
    }

    fn feed(store: &Store, labels: &[(&str, &str)], n: usize) {
        let mut rng = fastrand::Rng::with_seed(4);
        let mut events = Vec::new();
        for i in 0..n {
            let samples = [(i as i64 * 15_000, 100.0 + rng.f64() * 10.0)];
            let mut batch = Batch::default();
            encode_v1(&[TimeSeries::new(labels, &samples)], &mut batch.body);
            remote_write_v1::decode(&mut batch).expect("decodes");
            store.apply(&mut batch, &mut events);
        }
    }

    // No catalog entry: the default class, which keeps a seasonal profile.
    const LABELS: &[(&str, &str)] = &[("__name__", "queue_depth"), ("pod", "a")];

    #[test]
    fn export_then_import_restores_the_same_detector_state() {
        let a = store();
        feed(&a, LABELS, 500);
        let mut out = Vec::new();
        assert_eq!(
            a.export_baselines(&Matcher::default(), &mut out).unwrap(),
            1
        );

        let b = store();
        let report = b.import_baselines(&out[..]);
        assert_eq!((report.created, report.updated, report.rejected), (1, 0, 0));
        let mut again = Vec::new();
        b.export_baselines(&Matcher::default(), &mut again).unwrap();
        assert_eq!(out, again, "a round trip changes nothing");

        // Importing into a store that has the series replaces its state.
        let report = b.import_baselines(&out[..]);
        assert_eq!((report.created, report.updated), (0, 1));
    }

    #[test]
    fn bad_lines_are_rejected_with_their_line_and_the_rest_applies() {
        let a = store();
        feed(&a, LABELS, 100);
        let mut good = Vec::new();
        a.export_baselines(&Matcher::default(), &mut good).unwrap();
        let good = String::from_utf8(good).unwrap();
        let poisoned = good.replace("\"seen\":", "\"seen\":-");
        let no_name = good.replace("\"__name__\":\"queue_depth\",", "");
        let input = format!("{good}not json\n{poisoned}{no_name}\n");
        let report = store().import_baselines(input.as_bytes());
        assert_eq!(report.created, 1);
        assert_eq!(report.rejected, 3, "{report:?}");
        assert!(
            report.errors[0].starts_with("line 2: invalid JSON"),
            "{report:?}"
        );
        assert!(
            report.errors[2].starts_with("line 4: invalid labels"),
            "{report:?}"
        );
    }

    #[test]
    fn a_state_that_would_break_the_detector_is_refused() {
        let a = store();
        feed(&a, LABELS, 100);
        let mut good = Vec::new();
        a.export_baselines(&Matcher::default(), &mut good).unwrap();
        let mut record: serde_json::Value = serde_json::from_slice(&good).unwrap();
        record["detector"]["seasonal"]["bins"] = serde_json::json!([]);
        let report = store().import_baselines(record.to_string().as_bytes());
        assert_eq!(report.rejected, 1, "{report:?}");
        assert!(report.errors[0].contains("seasonal"), "{report:?}");
    }

    #[test]
    fn snapshot_is_written_atomically_and_restored() {
        let dir = std::env::temp_dir().join(format!("sre-agent-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = store();
        feed(&a, LABELS, 300);
        assert_eq!(a.save_snapshot(&dir).unwrap(), 1);
        assert!(!dir.join(format!("{SNAPSHOT_FILE}.tmp")).exists());
        let b = store();
        let report = b.load_snapshot(&dir).unwrap().expect("snapshot present");
        assert_eq!(report.created, 1);
        assert!(
            store()
                .load_snapshot(&dir.join("missing"))
                .unwrap()
                .is_none()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
