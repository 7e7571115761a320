//! Per-sample costs of the hot path: decode (RW 1.0 and 2.0), the detector update, and a full
//! store apply (registry lookup, ring append, rate, detectors, lifecycle); and, off the hot path,
//! one upkeep cycle over 10k series (seasonality, forecast refits, level shifts, peer groups).
//! `cargo bench --bench hot_path`; `cargo test --benches` runs each once so they never rot.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sre_agent::detect::{ClassParams, DetectParams, DetectorState};
use sre_agent::ingest::encode::{encode_v1, encode_v2};
use sre_agent::ingest::{Batch, Protocol, decode_decompressed};
use sre_agent::store::{Store, StoreOptions};

#[path = "support/workload.rs"]
mod workload;

const PER_REQUEST: usize = 2000;

fn decode(c: &mut Criterion) {
    let series = &workload::round_requests(PER_REQUEST, PER_REQUEST, 0, 1_700_000_000_000)[0];
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(PER_REQUEST as u64));
    for (name, protocol) in [("rw1", Protocol::V1), ("rw2", Protocol::V2)] {
        let mut raw = Vec::new();
        match protocol {
            Protocol::V1 => encode_v1(series, &mut raw),
            Protocol::V2 => encode_v2(series, &mut raw),
        }
        let mut batch = Batch::default();
        g.bench_function(name, |b| {
            b.iter(|| {
                batch.clear();
                batch.body.extend_from_slice(&raw);
                decode_decompressed(protocol, &mut batch).unwrap();
                black_box(batch.samples.len())
            })
        });
    }
    g.finish();
}

fn detector(c: &mut Criterion) {
    let p = DetectParams::default();
    let class = ClassParams::default();
    let mut g = c.benchmark_group("detector");
    g.throughput(Throughput::Elements(1));
    for (name, seasonal) in [("update", false), ("update_seasonal", true)] {
        let mut d = DetectorState::new(&p, seasonal);
        let mut rng = fastrand::Rng::with_seed(1);
        for i in 0..1000 {
            d.update(i * 15_000, 100.0 + rng.f64(), &p, &class);
        }
        let mut ts = 1000 * 15_000;
        g.bench_function(name, |b| {
            b.iter(|| {
                ts += 15_000;
                black_box(d.update(ts, 100.0 + rng.f64(), &p, &class))
            })
        });
    }
    g.finish();
}

fn store_apply(c: &mut Criterion) {
    // 10k series, steady state: every series exists and has a warm baseline.
    let n = 10_000;
    let store = Store::new(
        StoreOptions::default(),
        sre_agent::Config::default().catalog().unwrap(),
    );
    let mut events = Vec::new();
    let mut round = 0;
    let encoded = |round: usize| -> Vec<Vec<u8>> {
        workload::round_requests(n, PER_REQUEST, round, 1_700_000_000_000)
            .iter()
            .map(|r| {
                let mut raw = Vec::new();
                encode_v1(r, &mut raw);
                raw
            })
            .collect()
    };
    let mut batch = Batch::default();
    for _ in 0..40 {
        for raw in encoded(round) {
            batch.clear();
            batch.body.extend_from_slice(&raw);
            decode_decompressed(Protocol::V1, &mut batch).unwrap();
            store.apply(&mut batch, &mut events);
        }
        round += 1;
    }
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(PER_REQUEST as u64));
    g.bench_function("apply_rw1_request", |b| {
        b.iter_batched(
            || {
                round += 1;
                let mut batch = Batch::default();
                let raw = &encoded(round)[round % (n / PER_REQUEST)];
                batch.body.extend_from_slice(raw);
                decode_decompressed(Protocol::V1, &mut batch).unwrap();
                batch
            },
            |mut batch| {
                events.clear();
                black_box(store.apply(&mut batch, &mut events))
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// A store of `n` series of `metric` (pods in deployments of 3) with a full hour of samples.
fn filled_store(metric: &str, n: usize, options: StoreOptions) -> Store {
    filled_store_of(&[metric], n, options)
}

/// A store of `n` series cycling through `metrics`: each pod (of 3 per deployment, which is
/// also its service) has every metric, with a full hour of samples.
fn filled_store_of(metrics: &[&str], n: usize, options: StoreOptions) -> Store {
    let store = Store::new(options, sre_agent::Config::default().catalog().unwrap());
    let mut rng = fastrand::Rng::with_seed(1);
    let mut events = Vec::new();
    let m = metrics.len();
    let names: Vec<(&str, String, String)> = (0..n)
        .map(|i| {
            let pod = i / m;
            (
                metrics[i % m],
                format!("deploy-{}", pod / 3),
                format!("pod-{pod}"),
            )
        })
        .collect();
    for step in 0..240i64 {
        for chunk in names.chunks(1000) {
            let series: Vec<sre_agent::ingest::encode::TimeSeries> = chunk
                .iter()
                .map(|(metric, d, p)| {
                    let labels = [
                        ("__name__", *metric),
                        ("deployment", d.as_str()),
                        ("namespace", "bench"),
                        ("pod", p.as_str()),
                        ("service", d.as_str()),
                    ];
                    let v = 0.5 + step as f64 * 1e-4 + rng.f64() * 0.01;
                    sre_agent::ingest::encode::TimeSeries::new(&labels, &[(step * 15_000, v)])
                })
                .collect();
            let mut batch = Batch::default();
            encode_v1(&series, &mut batch.body);
            decode_decompressed(Protocol::V1, &mut batch).unwrap();
            store.apply(&mut batch, &mut events);
        }
    }
    store
}

fn upkeep(c: &mut Criterion) {
    let n = if cfg!(debug_assertions) { 300 } else { 10_000 };
    let mut g = c.benchmark_group("upkeep");
    g.sample_size(10);
    // Gauges of the default class: seasonality evaluation and peer groups.
    let plain = filled_store("queue_depth", n, StoreOptions::default());
    g.bench_function("cycle_10k_series", |b| {
        b.iter(|| black_box(plain.maintain(0.3)))
    });
    // Every series forecast and refit on every cycle (refit interval 0): the worst case.
    let mut options = StoreOptions::default();
    options.detection.forecast.refit_ms = 0;
    let forecast = filled_store("memory_usage", n, options);
    g.bench_function("cycle_10k_series_all_refit", |b| {
        b.iter(|| black_box(forecast.maintain(0.3)))
    });
    // Catalog metrics of services (4 metrics × 3 pods each): the multi-metric service score
    // buckets every ring and fits each service.
    let metrics = [
        "cpu_usage",
        "memory_usage",
        "order_qps",
        "order_latency_p99",
    ];
    let mut options = StoreOptions::default();
    options.detection.forecast.enabled = false;
    let services = filled_store_of(&metrics, n, options.clone());
    g.bench_function("cycle_10k_series_services", |b| {
        b.iter(|| black_box(services.maintain(0.3)))
    });
    options.detection.services.enabled = false;
    let without = filled_store_of(&metrics, n, options);
    g.bench_function("cycle_10k_series_services_off", |b| {
        b.iter(|| black_box(without.maintain(0.3)))
    });
    g.finish();
}

/// The level-shift check of one firing series: BOCPD over a full 1 h ring (240 samples).
fn level_shift(c: &mut Criterion) {
    let mut rng = fastrand::Rng::with_seed(3);
    let samples: Vec<(i64, f64)> = (0..240)
        .map(|i| {
            let level = if i < 160 { 100.0 } else { 130.0 };
            (i as i64 * 15_000, level + rng.f64() * 2.0)
        })
        .collect();
    let flat: Vec<(i64, f64)> = samples
        .iter()
        .map(|&(t, _)| (t, 100.0 + rng.f64() * 2.0))
        .collect();
    let mut g = c.benchmark_group("level_shift");
    g.bench_function("ring_240_with_shift", |b| {
        b.iter(|| {
            black_box(sre_agent::detect::changepoint::level_shift(black_box(
                &samples,
            )))
        })
    });
    g.bench_function("ring_240_flat", |b| {
        b.iter(|| {
            black_box(sre_agent::detect::changepoint::level_shift(black_box(
                &flat,
            )))
        })
    });
    g.finish();
}

/// The period search of one series: periodogram and folds over a full 1 h ring (240 samples),
/// done for a series at most every half ring while its configured period is unconfirmed.
fn period_search(c: &mut Criterion) {
    let mut rng = fastrand::Rng::with_seed(4);
    let cycle: Vec<f64> = (0..240)
        .map(|i| if i % 40 < 8 { 800.0 } else { 200.0 } + rng.f64() * 40.0)
        .collect();
    let noise: Vec<f64> = (0..240).map(|_| 200.0 + rng.f64() * 40.0).collect();
    let mut g = c.benchmark_group("period_search");
    g.bench_function("ring_240_batch_cycle", |b| {
        b.iter(|| {
            black_box(sre_agent::detect::periods::dominant_period(
                black_box(&cycle),
                0.6,
            ))
        })
    });
    g.bench_function("ring_240_noise", |b| {
        b.iter(|| {
            black_box(sre_agent::detect::periods::dominant_period(
                black_box(&noise),
                0.6,
            ))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    decode,
    detector,
    store_apply,
    upkeep,
    level_shift,
    period_search
);
criterion_main!(benches);
