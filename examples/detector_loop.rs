//! Runs the per-sample detector update in a loop, for instruction counts that a shared, noisy
//! machine cannot blur: run it twice under callgrind with different sample counts and divide the
//! difference in instructions by the difference in samples (set-up cancels out).
//!
//! ```text
//! cargo build --release --example detector_loop
//! valgrind --tool=callgrind target/release/examples/detector_loop plain 100000
//! valgrind --tool=callgrind target/release/examples/detector_loop plain 200000
//! ```
//!
//! `plain` is a series without a seasonal profile, `seasonal` one whose profile is learning.

use sre_agent::detect::{ClassParams, DetectParams, DetectorState};

fn main() {
    let mut args = std::env::args().skip(1);
    let seasonal = args.next().as_deref() == Some("seasonal");
    let samples: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000_000);
    let params = DetectParams::default();
    let class = ClassParams::default();
    let mut detector = DetectorState::new(&params, seasonal);
    let mut rng = fastrand::Rng::with_seed(1);
    let values: Vec<f64> = (0..4096).map(|_| 100.0 + rng.f64()).collect();
    let mut ts = 0i64;
    let mut total = 0.0;
    let started = std::time::Instant::now();
    for i in 0..samples {
        ts += 15_000;
        total += detector.update(ts, values[i & 4095], &params, &class).score;
    }
    let elapsed = started.elapsed();
    println!(
        "{:.1} ns per update over {samples} samples (score sum {total:.3})",
        elapsed.as_nanos() as f64 / samples.max(1) as f64
    );
}
