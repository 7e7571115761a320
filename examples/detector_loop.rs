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
//! `plain` is a series without a seasonal profile, `seasonal` one whose profile is learning,
//! `active` one whose daily profile is confirmed (it also scores against the time of day).

use sre_agent::detect::{ClassParams, DetectParams, DetectorState};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let seasonal = mode == "seasonal" || mode == "active";
    let samples: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000_000);
    let params = DetectParams::default();
    let class = ClassParams::default();
    let mut detector = DetectorState::new(&params, seasonal);
    let mut rng = fastrand::Rng::with_seed(1);
    // One day of samples at 15 s: flat noise, or a daily shape for the profile to learn.
    let day = 86_400_000.0;
    let values: Vec<f64> = (0..5760)
        .map(|i| {
            let shape = if mode == "active" {
                20.0 * ((i * 15_000) as f64 / day * std::f64::consts::TAU).sin()
            } else {
                0.0
            };
            100.0 + shape + rng.f64()
        })
        .collect();
    let mut ts = 0i64;
    if mode == "active" {
        // Three days of the daily shape, then the profile is judged (and switches on).
        for i in 0..3 * 5760 {
            ts += 15_000;
            detector.update(ts, values[(i + 1) % 5760], &params, &class);
        }
        if let Some(profile) = detector.seasonal.as_deref_mut() {
            profile.evaluate(0.3);
            assert!(profile.active, "the daily shape should be confirmed");
        }
    }
    let mut total = 0.0;
    let started = std::time::Instant::now();
    for i in 0..samples {
        ts += 15_000;
        let offset = if mode == "active" { 3 * 5760 } else { 0 };
        total += detector
            .update(ts, values[(offset + i + 1) % 5760], &params, &class)
            .score;
    }
    let elapsed = started.elapsed();
    println!(
        "{:.1} ns per update over {samples} samples (score sum {total:.3})",
        elapsed.as_nanos() as f64 / samples.max(1) as f64
    );
}
