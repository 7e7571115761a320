//! The store: series registry (label set → compact slot) and per-series rings. Each series
//! carries its detector state (`detect::state::SeriesState`) for `detect::engine::Detection`
//! to update under the shard lock; the store holds it but never reads inside it.
//!
//! Series are partitioned into shards by the hash of their label set. A write request groups its
//! series by shard and takes each shard's lock once for all of that shard's samples, so there is
//! no global lock and no lock per sample; concurrent requests only meet when they touch the same
//! shard. Readers (API, /metrics, write-back) take a shard lock for a bounded copy of the data
//! they need. A seqlock would let readers skip the lock, but the rings hold variable-length
//! compressed chunks that cannot be read optimistically, and readers are rare next to writers.
//!
//! The store does not do I/O and does not wait: anomaly transitions are returned to the caller,
//! which hands them to the notifiers after the locks are released.

pub mod baselines;
pub mod bits;
pub mod chunk;
pub mod decimal;
pub use crate::model::labels;
pub mod matcher;
pub mod packed;
mod read;
pub mod ring;
pub mod series;
mod slots;
mod upkeep;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::config::catalog::Catalog;
use crate::detect::DetectorState;
use crate::detect::engine::{Detection, DetectionOptions};
use crate::detect::event::AnomalyEvent;
use crate::detect::state::SeriesView;
use crate::model::batch::{Batch, MetricType, SeriesEntry};

use crate::model::labels::SeriesLabels;
pub use read::{Baseline, RecentSeries, SeriesSnapshot};
pub use series::Series;
use slots::Slots;

pub use crate::model::{STALE_NAN_BITS, series_id};

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub shards: usize,
    pub max_series: usize,
    pub retention: Duration,
    pub idle_timeout: Duration,
    pub detection: DetectionOptions,
}

impl StoreOptions {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            shards: config.store.shards,
            max_series: config.store.max_series,
            retention: config.store.retention,
            idle_timeout: config.store.series_idle_timeout,
            detection: DetectionOptions::from_config(&config.anomaly_detection),
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            shards: 64,
            max_series: 500_000,
            retention: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(900),
            detection: DetectionOptions::default(),
        }
    }
}

/// What one batch did, counted per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Samples written (staleness markers included).
    pub applied: u64,
    pub stale_markers: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub refused_series_limit: u64,
    pub refused_invalid_labels: u64,
    pub new_series: u64,
    /// First reason a series was refused, for the 400 answer.
    pub first_refusal: Option<String>,
    /// Samples that went through the detectors.
    pub detected: u64,
    /// Shard locks this request found held (by another request, upkeep or a reader) and
    /// waited for: how much the shard locks limit concurrent writers.
    pub lock_waits: u64,
}

impl ApplyStats {
    pub fn refused(&self) -> u64 {
        self.refused_series_limit + self.refused_invalid_labels
    }
}

/// The index keys are already xxh3 hashes: hashing them again (SipHash) would be wasted work.
#[derive(Default, Clone, Copy)]
struct PrehashedKey(u64);

impl std::hash::Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type SeriesIndex = HashMap<u64, u32, std::hash::BuildHasherDefault<PrehashedKey>>;

#[derive(Default)]
struct Shard {
    index: SeriesIndex,
    slots: Slots,
    free: Vec<u32>,
}

impl Shard {
    /// Puts a new series in a free slot (or a new one) and indexes it.
    fn insert(&mut self, hash: u64, series: Series) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots.put(slot as usize, series);
                slot
            }
            None => self.slots.push(series) as u32,
        };
        self.index.insert(hash, slot);
        slot
    }
}

pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    mask: u64,
    pub catalog: Arc<Catalog>,
    pub options: StoreOptions,
    retention_ms: i64,
    series_count: AtomicUsize,
    metadata: RwLock<HashMap<Box<str>, MetricType>>,
    epoch: Instant,
    /// The detectors: called with each series' state on every sample and at upkeep.
    pub detection: Detection,
    /// Shard where the next upkeep cycle starts its refits (where the last ran out of budget).
    upkeep_cursor: AtomicUsize,
}

impl Store {
    pub fn new(options: StoreOptions, catalog: Catalog) -> Self {
        let shards = options.shards.next_power_of_two().max(1);
        let catalog = Arc::new(catalog);
        let detection = Detection::new(
            options.detection.clone(),
            Arc::clone(&catalog),
            options.retention,
        );
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            mask: shards as u64 - 1,
            catalog,
            retention_ms: options.retention.as_millis() as i64,
            options,
            series_count: AtomicUsize::new(0),
            metadata: RwLock::new(HashMap::new()),
            epoch: Instant::now(),
            detection,
            upkeep_cursor: AtomicUsize::new(0),
        }
    }

    /// Series whose refits were left for a later upkeep cycle because the cycle's
    /// `refit_budget` was spent (a steadily growing count means the budget is too small).
    pub fn refits_deferred(&self) -> u64 {
        self.detection.refits_deferred()
    }

    pub fn series_count(&self) -> usize {
        self.series_count.load(Ordering::Relaxed)
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding a shard lock would be a bug; keep serving rather than cascade.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Self::lock`], adding one to `waits` when the lock was held by someone else.
    fn lock_counting(&self, i: usize, waits: &mut u64) -> MutexGuard<'_, Shard> {
        match self.shards[i].try_lock() {
            Ok(shard) => shard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                *waits += 1;
                self.lock(i)
            }
        }
    }

    fn now_secs(&self) -> u32 {
        self.epoch.elapsed().as_secs() as u32
    }

    /// Records metric types from RW 1.0 metadata (sent in separate, infrequent requests).
    pub fn record_metadata(&self, batch: &Batch) {
        if batch.metadata.is_empty() {
            return;
        }
        let mut map = self.metadata.write().unwrap_or_else(|p| p.into_inner());
        for m in &batch.metadata {
            if let Ok(name) = std::str::from_utf8(batch.bytes(m.family))
                && map.get(name) != Some(&m.metric_type)
            {
                map.insert(name.into(), m.metric_type);
            }
        }
    }

    fn is_cumulative(&self, name: &str, sent: MetricType) -> bool {
        if sent != MetricType::Unknown {
            return sent.is_cumulative();
        }
        let known = self
            .metadata
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied();
        match known {
            Some(t) if t != MetricType::Unknown => t.is_cumulative(),
            _ => ["_total", "_count", "_sum", "_bucket"]
                .iter()
                .any(|s| name.ends_with(s)),
        }
    }

    /// Applies a decoded batch. Anomaly transitions are appended to `events`.
    pub fn apply(&self, batch: &mut Batch, events: &mut Vec<AnomalyEvent>) -> ApplyStats {
        let mut stats = ApplyStats::default();
        let shards = self.shards.len();
        // Counting sort of series indices by shard.
        let mut order = std::mem::take(&mut batch.order);
        let mut offsets = std::mem::take(&mut batch.shard_offsets);
        offsets.clear();
        offsets.resize(shards + 1, 0);
        for s in &batch.series {
            offsets[(s.hash & self.mask) as usize + 1] += 1;
        }
        for i in 0..shards {
            offsets[i + 1] += offsets[i];
        }
        order.clear();
        order.resize(batch.series.len(), 0);
        let mut cursor = std::mem::take(&mut batch.shard_cursor);
        cursor.clear();
        cursor.extend_from_slice(&offsets[..shards]);
        for (i, s) in batch.series.iter().enumerate() {
            let sh = (s.hash & self.mask) as usize;
            order[cursor[sh] as usize] = i as u32;
            cursor[sh] += 1;
        }
        batch.shard_cursor = cursor;
        let now = self.now_secs();
        for shard_index in 0..shards {
            let (start, end) = (
                offsets[shard_index] as usize,
                offsets[shard_index + 1] as usize,
            );
            if start == end {
                continue;
            }
            let mut shard = self.lock_counting(shard_index, &mut stats.lock_waits);
            for &i in &order[start..end] {
                let entry = &batch.series[i as usize];
                self.apply_series(&mut shard, batch, entry, now, &mut stats, events);
            }
        }
        batch.order = order;
        batch.shard_offsets = offsets;
        stats
    }

    fn apply_series(
        &self,
        shard: &mut Shard,
        batch: &Batch,
        entry: &SeriesEntry,
        now: u32,
        stats: &mut ApplyStats,
        events: &mut Vec<AnomalyEvent>,
    ) {
        let samples = batch.series_samples(entry);
        if samples.is_empty() {
            return;
        }
        let slot = match shard.index.get(&entry.hash) {
            Some(&slot) => {
                let same = shard
                    .slots
                    .get(slot as usize)
                    .is_some_and(|s| s.hash_check == entry.hash_check);
                if !same {
                    stats.refused_invalid_labels += samples.len() as u64;
                    stats.first_refusal.get_or_insert_with(|| {
                        "64-bit label hash collision with another series".into()
                    });
                    return;
                }
                slot
            }
            None => match self.create_series(shard, batch, entry, now) {
                Ok(slot) => {
                    stats.new_series += 1;
                    slot
                }
                Err((reason, limit)) => {
                    if limit {
                        stats.refused_series_limit += samples.len() as u64;
                    } else {
                        stats.refused_invalid_labels += samples.len() as u64;
                    }
                    stats.first_refusal.get_or_insert(reason);
                    return;
                }
            },
        };
        let Some(series) = shard.slots.get_mut(slot as usize) else {
            return;
        };
        series.last_seen = now;
        let class = self.detection.class_params(series.class);
        for &(ts, value) in samples {
            let view = SeriesView {
                hash: series.hash,
                labels: &series.labels,
                class: series.class,
                cumulative: series.cumulative,
                stale: series.stale,
                last_ts: series.last_ts,
            };
            if value.to_bits() == STALE_NAN_BITS {
                stats.applied += 1;
                stats.stale_markers += 1;
                series.stale = true;
                self.detection
                    .on_stale(&view, &mut series.state, ts, events);
                continue;
            }
            if ts <= series.last_ts {
                if ts == series.last_ts {
                    stats.duplicates += 1;
                } else {
                    stats.out_of_order += 1;
                }
                continue;
            }
            series.last_ts = ts;
            series.stale = false;
            series.ring.push(ts, value, self.retention_ms);
            stats.applied += 1;
            let view = SeriesView {
                stale: false,
                last_ts: ts,
                ..view
            };
            let start = entry.start_timestamp;
            if self
                .detection
                .on_sample(&view, &mut series.state, &class, ts, value, start, events)
            {
                stats.detected += 1;
            }
        }
    }

    fn create_series(
        &self,
        shard: &mut Shard,
        batch: &Batch,
        entry: &SeriesEntry,
        now: u32,
    ) -> Result<u32, (String, bool)> {
        let labels = SeriesLabels::from_pairs(batch.label_pairs(entry))
            .map_err(|e| (format!("invalid labels: {e}"), false))?;
        let limit = self.options.max_series;
        if self.series_count.fetch_add(1, Ordering::Relaxed) >= limit {
            self.series_count.fetch_sub(1, Ordering::Relaxed);
            return Err((
                format!(
                    "series limit of {limit} active series reached; new series {} refused",
                    labels.display()
                ),
                true,
            ));
        }
        let series = self.new_series(
            entry.hash,
            entry.hash_check,
            labels,
            entry.metric_type,
            None,
            now,
        );
        Ok(shard.insert(entry.hash, series))
    }

    /// Forgets every open anomaly without reporting it (after a backfill: history's anomalies
    /// are not news).
    pub fn reset_lifecycles(&self) {
        for i in 0..self.shards.len() {
            for series in self.lock(i).slots.iter_mut() {
                series.state.forget_anomalies();
            }
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Visits the series of one shard under its lock. Keep `f` cheap.
    pub fn for_each_in_shard(&self, shard: usize, mut f: impl FnMut(&Series)) {
        if shard < self.shards.len() {
            for series in self.lock(shard).slots.iter() {
                f(series);
            }
        }
    }

    /// A new series, classified by the catalog; with `detector` when one was learned elsewhere.
    fn new_series(
        &self,
        hash: u64,
        hash_check: u64,
        labels: SeriesLabels,
        metric_type: MetricType,
        detector: Option<DetectorState>,
        now: u32,
    ) -> Series {
        let name = labels.metric_name();
        let class = self.catalog.classify(name, labels.iter());
        Series {
            hash,
            hash_check,
            cumulative: self.is_cumulative(name, metric_type),
            state: self.detection.new_state(class, detector),
            class,
            labels,
            stale: false,
            last_seen: now,
            last_ts: i64::MIN,
            ring: Default::default(),
        }
    }

    /// Gives a series a learned detector state: replaces an existing series' state (returns
    /// `Ok(false)`) or creates the series with it (`Ok(true)`).
    pub fn install_baseline(
        &self,
        hash: u64,
        hash_check: u64,
        labels: SeriesLabels,
        detector: DetectorState,
    ) -> Result<bool, String> {
        let mut shard = self.lock((hash & self.mask) as usize);
        if let Some(&slot) = shard.index.get(&hash) {
            return match shard.slots.get_mut(slot as usize) {
                Some(series) if series.hash_check == hash_check => {
                    series.state.replace_detector(detector);
                    Ok(false)
                }
                _ => Err("label hash collides with another series".into()),
            };
        }
        let limit = self.options.max_series;
        if self.series_count.fetch_add(1, Ordering::Relaxed) >= limit {
            self.series_count.fetch_sub(1, Ordering::Relaxed);
            return Err(format!("series limit of {limit} reached"));
        }
        let now = self.now_secs();
        let series = self.new_series(
            hash,
            hash_check,
            labels,
            MetricType::Unknown,
            Some(detector),
            now,
        );
        shard.insert(hash, series);
        Ok(true)
    }

    /// Visits every series under its shard's lock. Keep `f` cheap: it blocks that shard's writers.
    pub fn for_each(&self, mut f: impl FnMut(&Series)) {
        for i in 0..self.shards.len() {
            let shard = self.lock(i);
            for series in shard.slots.iter() {
                f(series);
            }
        }
    }

    pub fn with_series<T>(&self, hash: u64, f: impl FnOnce(&Series) -> T) -> Option<T> {
        let shard = self.lock((hash & self.mask) as usize);
        let slot = *shard.index.get(&hash)?;
        shard.slots.get(slot as usize).map(f)
    }

    /// Total bytes held by all series (inline and heap) and the label strings they share, for
    /// the memory figure.
    pub fn memory_bytes(&self) -> usize {
        let mut total = crate::model::symbols::held_bytes();
        self.for_each(|s| total += s.memory_bytes());
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::changepoint;
    use crate::detect::event::{AnomalyKind, EventKind, ResolveReason};
    use crate::ingest::encode::{TimeSeries, encode_v1};
    use crate::ingest::remote_write_v1;

    fn store(max_series: usize) -> Store {
        let opts = StoreOptions {
            shards: 4,
            max_series,
            ..Default::default()
        };
        Store::new(opts, crate::config::Config::default().catalog().unwrap())
    }

    /// A 2-shard store with the default catalog and options changed by `tune`.
    fn store_with(tune: impl FnOnce(&mut StoreOptions)) -> Store {
        let mut opts = StoreOptions {
            shards: 2,
            ..Default::default()
        };
        tune(&mut opts);
        Store::new(opts, crate::config::Config::default().catalog().unwrap())
    }

    fn batch(series: &[TimeSeries]) -> Batch {
        let mut b = Batch::default();
        encode_v1(series, &mut b.body);
        remote_write_v1::decode(&mut b).unwrap();
        b
    }

    #[test]
    fn applies_counts_duplicates_out_of_order_and_staleness() {
        let s = store(100);
        let mut ev = Vec::new();
        let mut b = batch(&[TimeSeries::new(
            &[("__name__", "x"), ("a", "1")],
            &[(1000, 1.0), (2000, 2.0), (2000, 2.0), (1500, 9.0)],
        )]);
        let st = s.apply(&mut b, &mut ev);
        assert_eq!(
            (st.applied, st.duplicates, st.out_of_order, st.new_series),
            (2, 1, 1, 1)
        );
        let mut b = batch(&[TimeSeries::new(
            &[("__name__", "x"), ("a", "1")],
            &[(3000, f64::from_bits(STALE_NAN_BITS))],
        )]);
        let st = s.apply(&mut b, &mut ev);
        assert_eq!((st.applied, st.stale_markers, st.new_series), (1, 1, 0));
        assert_eq!(s.series_count(), 1);
        let hash = b.series[0].hash;
        assert!(s.with_series(hash, |x| x.stale).unwrap());
        assert_eq!(s.with_series(hash, |x| x.ring.len()).unwrap(), 2);
    }

    #[test]
    fn series_limit_refuses_new_series_only() {
        let s = store(2);
        let mut ev = Vec::new();
        let mk = |n: &str, t: i64| TimeSeries::new(&[("__name__", "m"), ("i", n)], &[(t, 1.0)]);
        let st = s.apply(&mut batch(&[mk("a", 1), mk("b", 1), mk("c", 1)]), &mut ev);
        assert_eq!(st.applied, 2);
        assert_eq!(st.refused_series_limit, 1);
        assert!(st.first_refusal.unwrap().contains("series limit"));
        let st = s.apply(&mut batch(&[mk("a", 2), mk("b", 2)]), &mut ev);
        assert_eq!((st.applied, st.refused()), (2, 0));
    }

    #[test]
    fn invalid_labels_refuse_the_series_with_a_reason() {
        let s = store(10);
        let mut ev = Vec::new();
        let bad = TimeSeries {
            labels: vec![("b".into(), "1".into()), ("__name__".into(), "x".into())],
            samples: vec![(1, 1.0)],
        };
        let good = TimeSeries::new(&[("__name__", "ok")], &[(1, 1.0)]);
        let st = s.apply(&mut batch(&[bad, good]), &mut ev);
        assert_eq!(st.applied, 1);
        assert_eq!(st.refused_invalid_labels, 1);
        assert!(st.first_refusal.unwrap().contains("sorted"));
    }

    #[test]
    fn counters_become_rates_and_an_incident_fires_then_resolves() {
        let s = store(10);
        let mut ev = Vec::new();
        let mut total = 0.0;
        let mut rng = fastrand::Rng::with_seed(4);
        for i in 0..400i64 {
            let rate = if (300..310).contains(&i) {
                500.0
            } else {
                100.0 + rng.f64() * 10.0
            };
            total += rate * 15.0;
            let mut b = batch(&[TimeSeries::new(
                &[("__name__", "orders_total"), ("svc", "a")],
                &[(i * 15_000, total)],
            )]);
            s.apply(&mut b, &mut ev);
        }
        let kinds: Vec<EventKind> = ev.iter().map(|e| e.kind).collect();
        assert_eq!(kinds.first(), Some(&EventKind::Fired), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&EventKind::Resolved), "{kinds:?}");
        assert_eq!(ev[0].category, "trading");
        assert!(ev[0].started_ts >= 300 * 15_000);
        assert_eq!(
            ev.first().unwrap().anomaly_id,
            ev.last().unwrap().anomaly_id
        );
        assert!(s.with_series(ev[0].series_id, |x| x.cumulative).unwrap());
    }

    #[test]
    fn idle_series_are_evicted() {
        let s = store_with(|o| o.idle_timeout = Duration::from_secs(0));
        let mut ev = Vec::new();
        s.apply(
            &mut batch(&[TimeSeries::new(&[("__name__", "x")], &[(1, 1.0)])]),
            &mut ev,
        );
        assert_eq!(s.series_count(), 1);
        std::thread::sleep(Duration::from_millis(1100));
        s.maintain(0.3);
        assert_eq!(s.series_count(), 0);
    }

    #[test]
    fn series_past_one_segment_are_found_and_freed_slots_reused() {
        let s = store_with(|o| o.idle_timeout = Duration::from_secs(0));
        let mut ev = Vec::new();
        let write = |prefix: &str, ev: &mut Vec<AnomalyEvent>| {
            let series: Vec<TimeSeries> = (0..300)
                .map(|i| {
                    let pod = format!("{prefix}-{i}");
                    TimeSeries::new(&[("__name__", "x"), ("pod", &pod)], &[(1, i as f64)])
                })
                .collect();
            s.apply(&mut batch(&series), ev);
        };
        write("a", &mut ev);
        assert_eq!(s.series_count(), 300);
        let mut values = Vec::new();
        s.for_each(|x| values.push(x.ring.len()));
        assert_eq!(values.len(), 300);
        std::thread::sleep(Duration::from_millis(1100));
        s.maintain(0.3);
        assert_eq!(s.series_count(), 0);
        write("b", &mut ev);
        let mut pods = Vec::new();
        s.for_each(|x| pods.push(x.labels.get("pod").unwrap_or("").to_string()));
        pods.sort();
        let mut expected: Vec<String> = (0..300).map(|i| format!("b-{i}")).collect();
        expected.sort();
        assert_eq!(pods, expected);
        let slots: usize = (0..2).map(|i| s.lock(i).slots.len()).sum();
        // Each shard reuses its freed slots; only the shard that got more of the second 300
        // than of the first needs new ones.
        assert!((300..400).contains(&slots), "{slots}");
    }

    /// Feeds `f` at 15 s for `minutes`, running upkeep every simulated minute; returns the
    /// predicted-breach events.
    fn forecast_events(pod: &str, minutes: i64, f: impl Fn(i64) -> f64) -> Vec<AnomalyEvent> {
        forecast_events_within(
            pod,
            minutes,
            f,
            StoreOptions::default().detection.refit_budget,
        )
        .0
    }

    /// Also returns how many series refits were deferred for lack of budget.
    fn forecast_events_within(
        pod: &str,
        minutes: i64,
        f: impl Fn(i64) -> f64,
        refit_budget: Duration,
    ) -> (Vec<AnomalyEvent>, u64) {
        let s = store_with(|o| o.detection.refit_budget = refit_budget);
        let mut out = Vec::new();
        let mut ev = Vec::new();
        for i in 0..minutes * 4 {
            let ts = i * 15_000;
            let labels = [("__name__", "memory_usage"), ("pod", pod)];
            s.apply(
                &mut batch(&[TimeSeries::new(&labels, &[(ts, f(ts))])]),
                &mut ev,
            );
            if i % 4 == 3 {
                out.extend(s.maintain(0.3));
            }
        }
        out.retain(|e| e.anomaly_kind == AnomalyKind::PredictedBreach);
        (out, s.refits_deferred())
    }

    #[test]
    fn timestamps_at_the_ends_of_the_range_do_not_overflow_detection_or_upkeep() {
        let s = store(10);
        let labels = [("__name__", "wild_clock"), ("pod", "a")];
        // From near i64::MIN to near i64::MAX in 80 steps.
        let step = i128::from(i64::MAX / 40);
        for i in 0..80i64 {
            let ts = i64::try_from(i128::from(i64::MIN) + 1 + i128::from(i) * step).unwrap();
            let mut ev = Vec::new();
            s.apply(
                &mut batch(&[TimeSeries::new(&labels, &[(ts, (i % 7) as f64)])]),
                &mut ev,
            );
            if i % 4 == 3 {
                s.maintain(0.3);
            }
        }
        // One step across the whole range: every difference of timestamps overflows i64. A
        // gauge, a counter (rated) and a forecast metric (refit in upkeep).
        for name in ["wild_clock", "wild_requests_total", "memory_usage"] {
            let jump = [("__name__", name), ("pod", "b")];
            for (i, ts) in [i64::MIN + 1, i64::MAX - 1].into_iter().enumerate() {
                let mut ev = Vec::new();
                s.apply(
                    &mut batch(&[TimeSeries::new(&jump, &[(ts, i as f64)])]),
                    &mut ev,
                );
            }
        }
        s.maintain(0.3);
        assert_eq!(s.series_count(), 4);
    }

    #[test]
    fn refits_past_the_budget_wait_and_are_counted() {
        const HOUR: i64 = 3_600_000;
        let leak = |ts: i64| 0.5 + 0.4 * ts as f64 / (3 * HOUR) as f64;
        let (events, deferred) = forecast_events_within("leaky", 60, leak, Duration::ZERO);
        assert!(events.is_empty(), "no refit ran: {events:?}");
        assert_eq!(deferred, 60, "one series deferred in each of the 60 checks");
        let (events, deferred) = forecast_events_within("leaky", 60, leak, Duration::from_secs(5));
        assert_eq!(deferred, 0);
        assert!(!events.is_empty(), "within budget the leak is predicted");
    }

    #[test]
    fn a_leaking_pod_gets_a_predicted_breach_hours_ahead_and_a_flat_one_none() {
        const HOUR: i64 = 3_600_000;
        let noise = |ts: i64| ((ts / 15_000 * 7919) % 100) as f64 * 1e-4;
        // 0.5 → 0.9 over four hours; watch the first 2 h.
        let leak = |ts: i64| 0.5 + 0.4 * ts as f64 / (4 * HOUR) as f64 + noise(ts);
        let events = forecast_events("leaky", 120, leak);
        let fired = events.first().expect("a predicted breach");
        assert_eq!(fired.kind, EventKind::Fired);
        let breach = fired.breach.expect("breach details");
        assert!(
            4 * HOUR - fired.ts >= 2 * HOUR,
            "predicted only {} min ahead",
            (4 * HOUR - fired.ts) / 60_000
        );
        assert!((breach.at_ms - 4 * HOUR).abs() < HOUR / 2, "{breach:?}");
        assert_eq!(breach.threshold, 0.9);
        assert!(
            events.iter().all(|e| e.kind == EventKind::Fired),
            "stays predicted"
        );

        let flat = forecast_events("steady", 120, |ts| 0.6 + noise(ts));
        assert!(flat.is_empty(), "{flat:?}");
    }

    #[test]
    fn a_lasting_level_shift_is_reported_once_as_its_own_kind() {
        let s = store(100);
        let mut rng = fastrand::Rng::with_seed(8);
        let mut events = Vec::new();
        let labels = [("__name__", "queue_depth"), ("pod", "a")];
        for i in 0..400i64 {
            let level = if i < 200 { 100.0 } else { 130.0 };
            let v = level + (rng.f64() - 0.5) * 2.0;
            let mut ev = Vec::new();
            s.apply(
                &mut batch(&[TimeSeries::new(&labels, &[(i * 15_000, v)])]),
                &mut ev,
            );
            events.extend(ev.into_iter().map(|e| (i, e)));
            if i % 4 == 3 {
                events.extend(s.maintain(0.3).into_iter().map(|e| (i, e)));
            }
        }
        let of_kind = |k: AnomalyKind| -> Vec<&(i64, AnomalyEvent)> {
            events.iter().filter(|(_, e)| e.anomaly_kind == k).collect()
        };
        let shifts = of_kind(AnomalyKind::LevelShift);
        assert_eq!(shifts.len(), 2, "fired and adopted once: {shifts:?}");
        let shift = shifts[0].1.shift.expect("shift details");
        assert_eq!(shift.at_ms, 200 * 15_000);
        assert_eq!(shifts[1].1.reason, Some(ResolveReason::Adopted));
        let anomaly = of_kind(AnomalyKind::Anomaly);
        assert_eq!(anomaly.first().map(|(_, e)| e.kind), Some(EventKind::Fired));
        let (_, last) = anomaly.last().expect("resolved");
        assert_eq!(last.kind, EventKind::Resolved);
        // Reported once the new level has lasted a full segment (samples 200..=259), not before.
        let reported_at = shifts[0].0;
        let full = 200 + changepoint::MIN_SEGMENT as i64 - 1;
        assert!((full..full + 10).contains(&reported_at), "{reported_at}");
    }

    #[test]
    fn a_seasonal_series_that_moves_as_a_whole_gets_one_level_shift_and_keeps_its_shape() {
        const PERIOD: i64 = 2 * 3_600_000;
        let s = store_with(|o| o.detection.detect.seasonal_period_ms = PERIOD);
        let mut rng = fastrand::Rng::with_seed(11);
        let swing =
            |ts: i64| 100.0 + 50.0 * (ts as f64 / PERIOD as f64 * std::f64::consts::TAU).sin();
        // Three periods to learn the shape, then the whole curve 80 higher (most of its swing:
        // the score measures novelty against the span of what the series has done) for 1.5
        // periods.
        let start_shift = 3 * PERIOD / 15_000;
        let mut events = Vec::new();
        let labels = [("__name__", "queue_depth"), ("pod", "a")];
        for i in 0..start_shift + 3 * PERIOD / 2 / 15_000 {
            let ts = i * 15_000;
            let lift = if i < start_shift { 0.0 } else { 80.0 };
            let v = swing(ts) + lift + (rng.f64() - 0.5) * 2.0;
            let mut ev = Vec::new();
            s.apply(&mut batch(&[TimeSeries::new(&labels, &[(ts, v)])]), &mut ev);
            events.extend(ev.into_iter().map(|e| (i, e)));
            if i % 4 == 3 {
                events.extend(s.maintain(0.3).into_iter().map(|e| (i, e)));
            }
        }
        let before_shift = events.iter().filter(|(i, _)| *i < start_shift).count();
        assert_eq!(
            before_shift, 0,
            "the daily swing alone is normal: {events:?}"
        );
        let shifts: Vec<_> = events
            .iter()
            .filter(|(_, e)| e.anomaly_kind == AnomalyKind::LevelShift)
            .collect();
        assert_eq!(shifts.len(), 2, "fired and adopted once: {events:?}");
        let shift = shifts[0].1.shift.expect("shift details");
        assert!(
            (shift.at_ms / 15_000 - start_shift).abs() <= 2,
            "placed at sample {} not {start_shift}",
            shift.at_ms / 15_000
        );
        assert!((shift.after - shift.before - 80.0).abs() < 2.0, "{shift:?}");
        let now = swing(shifts[0].1.ts);
        assert!(
            (shift.before - now).abs() < 3.0 && (shift.after - now - 80.0).abs() < 3.0,
            "levels at the time of day of the report ({now}): {shift:?}"
        );
        // The profile moved with it: the anomaly the shift opened has ended, and nothing fires
        // for the rest of the run.
        let reported_at = shifts[0].0;
        let (_, last) = events
            .iter()
            .rfind(|(_, e)| e.anomaly_kind == AnomalyKind::Anomaly)
            .expect("the shift was an anomaly first");
        assert_eq!(last.kind, EventKind::Resolved, "{events:?}");
        let later_fired = events
            .iter()
            .filter(|(i, e)| *i > reported_at + 40 && e.kind == EventKind::Fired)
            .count();
        assert_eq!(later_fired, 0, "{events:?}");
        let (mean, _) = s
            .with_series(shifts[0].1.series_id, |x| {
                x.state
                    .detector()
                    .seasonal
                    .as_deref()
                    .map(|p| p.expected(PERIOD / 4))
            })
            .flatten()
            .expect("an active profile");
        assert!(
            (mean - 230.0).abs() < 4.0,
            "the peak moved up by 80: {mean}"
        );
    }

    /// Events by the index of the sample (or upkeep after it) that produced them.
    type Timeline = Vec<(i64, AnomalyEvent)>;

    /// A queue that a batch job fills for 2 minutes of every 10 (15 s samples) for 3 hours, then
    /// fills for 2 minutes in the middle of a quiet phase, then goes back to its routine for an
    /// hour. Returns the events by sample index and the series' profile (period, active).
    fn batch_cycle_run(discovery: f64) -> (Timeline, Option<(i64, bool)>) {
        let s = store_with(|o| o.detection.detect.period_discovery_strength = discovery);
        let mut rng = fastrand::Rng::with_seed(12);
        let labels = [("__name__", "batch_queue_depth"), ("pod", "a")];
        let mut events = Vec::new();
        for i in 0..4 * 240i64 {
            let routine = i % 40 < 8;
            let off_phase = (720 + 20..720 + 28).contains(&i);
            let v = if routine || off_phase { 800.0 } else { 200.0 } + rng.f64() * 40.0;
            let mut ev = Vec::new();
            s.apply(
                &mut batch(&[TimeSeries::new(&labels, &[(i * 15_000, v.round())])]),
                &mut ev,
            );
            events.extend(ev.into_iter().map(|e| (i, e)));
            if i % 4 == 3 {
                events.extend(s.maintain(0.3).into_iter().map(|e| (i, e)));
            }
        }
        let profile = (0..2).find_map(|shard| {
            s.lock(shard).slots.iter().next().and_then(|x| {
                x.state
                    .detector()
                    .seasonal
                    .as_deref()
                    .map(|p| (p.period_ms, p.active))
            })
        });
        (events, profile)
    }

    #[test]
    fn a_ten_minute_batch_cycle_is_discovered_and_its_level_off_phase_is_flagged() {
        let (events, profile) = batch_cycle_run(0.6);
        assert_eq!(
            profile,
            Some((600_000, true)),
            "the 10-minute period, confirmed"
        );
        let fired: Vec<i64> = events
            .iter()
            .filter(|(_, e)| e.kind == EventKind::Fired)
            .map(|(i, _)| *i)
            .collect();
        // Once: in the off-phase fill, not at any of the 24 routine fills.
        assert_eq!(fired.len(), 1, "{events:?}");
        assert!((740..748).contains(&fired[0]), "{fired:?}");

        // Without discovery the daily profile cannot be confirmed in 4 hours, and a value the
        // series reaches every 10 minutes is nothing new.
        let (events, profile) = batch_cycle_run(0.0);
        assert_eq!(profile, Some((86_400_000, false)));
        assert!(
            events.iter().all(|(_, e)| e.kind != EventKind::Fired),
            "{events:?}"
        );
    }

    #[test]
    fn the_pod_unlike_its_siblings_gets_a_peer_outlier_that_resolves_when_it_rejoins() {
        let s = store(100);
        let mut rng = fastrand::Rng::with_seed(9);
        let mut events = Vec::new();
        let pods = ["p0", "p1", "p2"];
        for i in 0..300i64 {
            let mut ev = Vec::new();
            for (k, pod) in pods.iter().enumerate() {
                let hot = k == 1 && (150..200).contains(&i);
                let v = if hot { 0.95 } else { 0.4 } + (rng.f64() - 0.5) * 0.02;
                let labels = [
                    ("__name__", "cpu_usage"),
                    ("deployment", "order-service"),
                    ("namespace", "trading"),
                    ("pod", pod),
                ];
                s.apply(
                    &mut batch(&[TimeSeries::new(&labels, &[(i * 15_000, v)])]),
                    &mut ev,
                );
            }
            if i % 4 == 3 {
                events.extend(s.maintain(0.3).into_iter().map(|e| (i, e)));
            }
        }
        let peer: Vec<_> = events
            .iter()
            .filter(|(_, e)| e.anomaly_kind == AnomalyKind::PeerOutlier)
            .collect();
        assert_eq!(peer.len(), 2, "{peer:?}");
        let (fired_at, fired) = peer[0];
        assert_eq!(fired.kind, EventKind::Fired);
        assert_eq!(fired.labels.get("pod"), Some("p1"));
        assert!((150..158).contains(fired_at), "{fired_at}");
        let deviation = fired.peer.expect("peer details");
        assert!((deviation.peers_median - 0.4).abs() < 0.05, "{deviation:?}");
        assert_eq!(deviation.group_size, 3);
        let (resolved_at, resolved) = peer[1];
        assert_eq!(resolved.kind, EventKind::Resolved);
        assert!((200..212).contains(resolved_at), "{resolved_at}");
    }

    /// Three pods of a service whose load swings with a 20-minute period; CPU follows the
    /// load, latency does not. During `broken` (minutes), p1's CPU is `p1_cpu` of what it
    /// should be while its siblings take a little more load. Returns the service anomalies by
    /// minute.
    fn service_with_broken_pod(
        minutes: i64,
        broken: std::ops::Range<i64>,
        p1_cpu: fn(f64) -> f64,
    ) -> Vec<(i64, AnomalyEvent)> {
        let s = store_with(|o| {
            o.max_series = 100;
            o.detection.services.enabled = true;
        });
        let mut rng = fastrand::Rng::with_seed(12);
        let mut events = Vec::new();
        let minute = 4; // samples per minute at 15 s
        for i in 0..minutes * minute {
            let t = i as f64 / minute as f64;
            let qps = 100.0 + 80.0 * (t * std::f64::consts::TAU / 20.0).sin() + rng.f64() * 4.0;
            let broken = broken.contains(&(i / minute));
            let latency = 50.0 + rng.f64() * 3.0;
            let mut ev = Vec::new();
            for pod in ["p0", "p1", "p2"] {
                let normal = 0.2 + qps * 0.004;
                let cpu = match (broken, pod) {
                    (true, "p1") => p1_cpu(normal),
                    (true, _) => normal + 0.05,
                    _ => normal,
                } + rng.f64() * 0.01;
                let series: Vec<TimeSeries> = [
                    ("order_qps", qps),
                    ("cpu_usage", cpu),
                    ("order_latency_p99", latency),
                ]
                .iter()
                .map(|(name, v)| {
                    let labels = [
                        ("__name__", *name),
                        ("namespace", "trading"),
                        ("service", "order-service"),
                        ("pod", pod),
                    ];
                    TimeSeries::new(&labels, &[(i * 15_000, *v)])
                })
                .collect();
                s.apply(&mut batch(&series), &mut ev);
            }
            if i % minute == minute - 1 {
                events.extend(s.maintain(0.3).into_iter().map(|e| (i / minute, e)));
            }
        }
        events
            .into_iter()
            .filter(|(_, e)| e.anomaly_kind == AnomalyKind::ServiceAnomaly)
            .collect()
    }

    #[test]
    fn a_lasting_new_combination_is_adopted_once_the_history_before_it_has_left_the_ring() {
        // From minute 90 on, p1 burns 0.3 more CPU than its load explains, for good.
        let service = service_with_broken_pod(180, 90..180, |normal| normal + 0.3);
        assert_eq!(service.len(), 2, "{service:?}");
        assert_eq!(service[0].1.kind, EventKind::Fired);
        let (resolved_at, resolved) = &service[1];
        assert_eq!(resolved.kind, EventKind::Resolved);
        assert_eq!(
            resolved.reason,
            Some(ResolveReason::Adopted),
            "at minute {resolved_at}"
        );
        // Not before the ring (1 h) has too little history from before the firing left.
        assert!(
            (110..160).contains(resolved_at),
            "resolved at minute {resolved_at}"
        );
    }

    #[test]
    fn a_pod_whose_cpu_leaves_its_load_gets_one_service_anomaly_naming_cpu_on_that_pod() {
        // Minutes 90-99: the quiet half of the swing, while p1's CPU stays at its busiest.
        let service = service_with_broken_pod(120, 90..100, |_| 0.9);
        assert_eq!(service.len(), 2, "{service:?}");
        let (fired_at, fired) = &service[0];
        assert_eq!(fired.kind, EventKind::Fired);
        assert!((90..93).contains(fired_at), "fired at minute {fired_at}");
        assert_eq!(
            fired.labels.get("pod"),
            Some("p1"),
            "reported on the pod that moved"
        );
        let d = fired.service.as_deref().expect("service details");
        assert_eq!(d.metrics, 3);
        assert!(d.sigmas >= 6.0, "{d:?}");
        assert_eq!(
            d.service,
            vec![
                ("namespace".to_string(), "trading".to_string()),
                ("service".to_string(), "order-service".to_string())
            ]
        );
        let named: Vec<&str> = d.contributors.iter().map(|c| c.metric.as_str()).collect();
        assert!(named.contains(&"cpu_usage"), "{named:?}");
        assert!(!named.contains(&"order_latency_p99"), "{named:?}");
        let (resolved_at, resolved) = &service[1];
        assert_eq!(resolved.kind, EventKind::Resolved);
        assert_eq!(resolved.anomaly_id, fired.anomaly_id);
        assert_eq!(resolved.reason, Some(ResolveReason::Recovered));
        assert!(
            (100..104).contains(resolved_at),
            "resolved at minute {resolved_at}"
        );
    }
}
