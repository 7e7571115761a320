//! The per-sample path allocates per chunk and per new series, not per sample: a counting
//! allocator measures a steady-state store (every series known, baselines warm).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use sre_agent::ingest::encode::{TimeSeries, encode_v1};
use sre_agent::ingest::{Batch, Protocol, decode_decompressed};
use sre_agent::store::{Store, StoreOptions};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn round(n: usize, r: usize) -> Vec<u8> {
    let series: Vec<TimeSeries> = (0..n)
        .map(|i| {
            let pod = format!("pod-{i}");
            let v = 100.0 + ((i * 31 + r * 17) % 13) as f64;
            TimeSeries::new(
                &[
                    ("__name__", "cpu_usage"),
                    ("namespace", "trading"),
                    ("pod", &pod),
                ],
                &[(r as i64 * 15_000, v)],
            )
        })
        .collect();
    let mut raw = Vec::new();
    encode_v1(&series, &mut raw);
    raw
}

#[test]
fn steady_state_allocates_per_chunk_not_per_sample() {
    let n = 1000;
    let store = Store::new(
        StoreOptions::default(),
        sre_agent::Config::default().catalog().unwrap(),
    );
    let mut batch = Batch::default();
    let mut events = Vec::new();
    let bodies: Vec<Vec<u8>> = (0..400).map(|r| round(n, r)).collect();
    let mut transitions = 0;
    let mut apply = |raw: &[u8], batch: &mut Batch| {
        batch.clear();
        batch.body.extend_from_slice(raw);
        decode_decompressed(Protocol::V1, batch).unwrap();
        store.apply(batch, &mut events);
        transitions += events.len();
        events.clear();
    };
    // Warm up: series created, baselines past warm-up, buffers grown.
    for raw in &bodies[..100] {
        apply(raw, &mut batch);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for raw in &bodies[100..] {
        apply(raw, &mut batch);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let samples = (n * 300) as f64;
    let per_sample = allocations as f64 / samples;
    eprintln!(
        "{allocations} allocations for {samples} samples: {per_sample:.4} per sample ({transitions} anomaly transitions in all)"
    );
    // Only sealing may allocate: the ring's one buffer of sealed chunks grows when the new
    // chunk does not fit where the dropped oldest one was, and a head buffer a burst of XOR
    // values grew is given back.
    let chunks = samples / f64::from(sre_agent::store::chunk::SAMPLES_PER_CHUNK);
    assert!(
        allocations as f64 <= chunks + 50.0,
        "{allocations} allocations for {chunks} sealed chunks"
    );
}
