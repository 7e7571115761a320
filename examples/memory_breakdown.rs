//! Where a series' memory goes with full 1 h rings: fills a store in-process with the load
//! bench's series (labels and values of `benches/support/workload.rs`), 240 samples each at
//! 15 s, and prints per series: what each part holds (inline, labels, ring, detector heap), what
//! the allocator was asked for, and the process RSS growth.
//!
//!   cargo run --release --example memory_breakdown -- [series]   # default 100000

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use sre_agent::ingest::encode::{TimeSeries, encode_v1};
use sre_agent::ingest::{Batch, Protocol, decode_decompressed};
use sre_agent::store::{Store, StoreOptions};

#[path = "../benches/support/workload.rs"]
mod workload;

struct Counting;
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BLOCKS: AtomicI64 = AtomicI64::new(0);
static TOTAL_ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        TOTAL_ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        TOTAL_ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let rounds = 240;
    let base = 1_700_000_000_000i64;
    let store = Store::new(
        StoreOptions::default(),
        sre_agent::Config::default().catalog().expect("catalog"),
    );
    let mut batch = Batch::default();
    let mut events = Vec::new();
    let mut raw = Vec::new();
    // Warm the batch buffers before the baseline so they are not counted.
    let rss0 = rss_bytes();
    let live0 = LIVE_BYTES.load(Ordering::Relaxed);
    let blocks0 = LIVE_BLOCKS.load(Ordering::Relaxed);
    for r in 0..rounds {
        for start in (0..n).step_by(2000) {
            let series: Vec<TimeSeries> = (start..(start + 2000).min(n))
                .map(|i| TimeSeries {
                    labels: workload::labels(i),
                    samples: vec![(base + r as i64 * 15_000, workload::value(i, r))],
                })
                .collect();
            raw.clear();
            encode_v1(&series, &mut raw);
            batch.clear();
            batch.body.extend_from_slice(&raw);
            decode_decompressed(Protocol::V1, &mut batch).expect("decode");
            store.apply(&mut batch, &mut events);
            events.clear();
        }
    }
    let series = store.series_count().max(1) as f64;
    let (mut inline, mut labels, mut ring, mut state) = (0usize, 0usize, 0usize, 0usize);
    let mut ring_parts = [0usize; 4];
    store.for_each(|s| {
        inline += std::mem::size_of_val(s);
        labels += s.labels.heap_bytes();
        ring += s.ring.heap_bytes();
        for (sum, part) in ring_parts.iter_mut().zip(s.ring.heap_parts()) {
            *sum += part;
        }
        state += s.state.heap_bytes();
    });
    let live = (LIVE_BYTES.load(Ordering::Relaxed) - live0) as f64;
    let blocks = (LIVE_BLOCKS.load(Ordering::Relaxed) - blocks0) as f64;
    let rss = rss_bytes().saturating_sub(rss0) as f64;
    println!(
        "{} series, {rounds} samples each (bytes per series):",
        series as u64
    );
    println!("  inline (Series struct)   {:7.0}", inline as f64 / series);
    println!(
        "    of which labels {}, ring {}, detection state {}:",
        std::mem::size_of::<sre_agent::model::labels::SeriesLabels>(),
        std::mem::size_of::<sre_agent::store::ring::Ring>(),
        std::mem::size_of::<sre_agent::detect::state::SeriesState>()
    );
    for (part, bytes) in sre_agent::detect::state::SeriesState::inline_layout() {
        println!("      {part:<20} {bytes:5}");
    }
    println!(
        "    novelty: drift {}; seasonal profile when present {} + {} per bin",
        std::mem::size_of::<sre_agent::detect::drift::DriftState>(),
        std::mem::size_of::<sre_agent::detect::seasonal::SeasonalProfile>(),
        std::mem::size_of::<sre_agent::detect::seasonal::Bin>()
    );
    println!("  labels heap              {:7.0}", labels as f64 / series);
    println!("  ring heap                {:7.0}", ring as f64 / series);
    let per = |b: usize| b as f64 / series;
    println!(
        "    sealed {:.0} used of {:.0} held, head {:.0} used of {:.0} held",
        per(ring_parts[0]),
        per(ring_parts[1]),
        per(ring_parts[2]),
        per(ring_parts[3])
    );
    println!("  detector heap            {:7.0}", state as f64 / series);
    let shared = sre_agent::model::symbols::held_bytes();
    println!("  shared label strings     {:7.0}", shared as f64 / series);
    let parts = (inline + labels + ring + state + shared) as f64 / series;
    println!("  = accounted              {parts:7.0}");
    println!(
        "  allocator live bytes     {:7.0}  ({:.1} blocks per series)",
        live / series,
        blocks / series
    );
    println!("  RSS growth               {:7.0}", rss / series);
}
