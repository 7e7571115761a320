//! What the pipeline keeps across restarts and where: the baselines snapshot, the incidents
//! file, the audit directory, and the warm start from Prometheus history. Blocking file I/O:
//! callers run it before the listener opens, on `spawn_blocking`, or at shutdown.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Pipeline, unix_ms};
use crate::config::Config;
use crate::store::Store;

/// The audit log's directory: `auto_remediation.audit_dir`, else `app.data_dir`.
pub fn audit_dir(config: &Config) -> PathBuf {
    let dir = &config.auto_remediation.audit_dir;
    PathBuf::from(if dir.is_empty() {
        &config.app.data_dir
    } else {
        dir
    })
}

impl Pipeline {
    /// Trains the baselines on Prometheus history (see [`ingest::backfill`]). Call before the
    /// agent accepts writes.
    pub async fn warm_start(
        &self,
    ) -> Result<crate::ingest::backfill::BackfillReport, crate::ingest::backfill::BackfillError>
    {
        let options = crate::ingest::backfill::BackfillOptions::from_config(&self.config);
        let selector = crate::ingest::backfill::catalog_selector(&self.config)?;
        tracing::info!(url = %crate::net::redact_url(&options.url), lookback = ?options.lookback, "warm start: fetching history");
        crate::ingest::backfill::backfill(&self.store, &options, &selector, unix_ms()).await
    }

    /// Where baselines are snapshotted, unless snapshots are off.
    pub fn snapshot_dir(&self) -> Option<PathBuf> {
        (!self.config.store.snapshot_interval.is_zero())
            .then(|| PathBuf::from(&self.config.app.data_dir))
    }

    /// Restores the baselines snapshot, if snapshots are on and one exists. A damaged snapshot
    /// is reported and skipped line by line; start-up goes on either way.
    pub fn restore_snapshot(&self) {
        let Some(dir) = self.snapshot_dir() else {
            return;
        };
        match self.store.load_snapshot(&dir) {
            Ok(Some(r)) if r.rejected > 0 => tracing::warn!(
                created = r.created, rejected = r.rejected, first_errors = ?r.errors,
                "baselines snapshot restored in part"
            ),
            Ok(Some(r)) => tracing::info!(series = r.created, "baselines snapshot restored"),
            Ok(None) => tracing::info!(dir = %dir.display(), "no baselines snapshot yet"),
            Err(e) => tracing::warn!(error = %e, "baselines snapshot not restored"),
        }
    }

    /// Saves incidents when they changed and persistence is on; blocks (file I/O).
    pub fn save_incidents(&self) {
        if !self.config.incidents.persist {
            return;
        }
        let dir = Path::new(&self.config.app.data_dir);
        match self.incidents.save_if_changed(dir) {
            Ok(true) => tracing::debug!("incidents saved"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "incidents not saved"),
        }
    }

    /// Restores the incidents saved by a previous run, when persistence is on.
    pub fn restore_incidents(&self) {
        if !self.config.incidents.persist {
            return;
        }
        match self.incidents.restore(Path::new(&self.config.app.data_dir)) {
            Ok(0) => {}
            Ok(n) => tracing::info!(incidents = n, "incidents restored"),
            Err(e) => tracing::warn!(error = %e, "incidents not restored"),
        }
    }

    /// Writes the baselines snapshot now (at shutdown); blocks.
    pub fn save_snapshot_now(&self) {
        if let Some(dir) = self.snapshot_dir() {
            save_snapshot(&self.store, &dir);
        }
    }
}

pub(super) fn save_snapshot(store: &Store, dir: &Path) {
    let started = Instant::now();
    match store.save_snapshot(dir) {
        Ok(n) => tracing::debug!(
            series = n,
            ms = started.elapsed().as_millis() as u64,
            "baselines snapshot written"
        ),
        Err(e) => tracing::warn!(error = %e, "baselines snapshot failed"),
    }
}
