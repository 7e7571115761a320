//! Level shifts in a series' recent samples, found off the hot path.
//!
//! For a series in a firing anomaly, upkeep asks whether the ring shows a lasting change of
//! level: Bayesian online changepoint detection ([`super::bocpd`]) says where the current run
//! began, and medians and MADs on both sides confirm it (so a few outliers cannot fake it, and
//! a ramp, which has no steady new level, is not one). A confirmed shift is reported as its own
//! anomaly kind and the band adopts the new level, so a deploy that moved a metric for good
//! does not alert forever.

use super::robust::median;

/// The changepoint model must put at least this much mass near the change it reports.
const MIN_PROBABILITY: f64 = 0.5;

/// Both sides of a split need this many samples (15 minutes at a 15 s interval): a shorter
/// departure is an incident to page about, not a new normal.
pub const MIN_SEGMENT: usize = 60;
/// ...and must span this long: at one-second scrapes sixty samples are a minute, and a
/// five-minute incident is not a new normal.
pub const MIN_SEGMENT_MS: i64 = 10 * 60_000;
/// The changepoint model runs on at most this many points (bucket means of the ring): its cost
/// grows with the square of its input, and a level that lasts minutes needs no finer grain.
const MAX_POINTS: usize = 480;
/// The medians must differ by this many robust sigmas.
const MIN_SHIFT_SIGMAS: f64 = 5.0;
/// The new level must be about as steady as the old one (not a ramp or a burst).
const MAX_SPREAD_RATIO: f64 = 4.0;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Shift {
    /// Timestamp (ms) of the first sample at the new level.
    pub at_ms: i64,
    /// Median levels on both sides. For a series with an active seasonal profile the shift is
    /// found in the deseasonalized residual, and these are the levels expected at the time of
    /// day of the newest sample, before and after.
    pub before: f64,
    pub after: f64,
    /// |after − before| in robust sigmas of the old level.
    pub sigmas: f64,
}

/// The most likely level shift in `samples` (time order), if it is clear and lasting.
pub fn level_shift(samples: &[(i64, f64)]) -> Option<Shift> {
    let n = samples.len();
    if n < 2 * MIN_SEGMENT || samples.iter().any(|s| !s.1.is_finite()) {
        return None;
    }
    let bucket = n.div_ceil(MAX_POINTS);
    let points: Vec<f64> = samples
        .chunks(bucket)
        .map(|c| c.iter().map(|s| s.1).sum::<f64>() / c.len() as f64)
        .collect();
    let change = super::bocpd::last_change(&points)?;
    let split = (change.start * bucket).min(n);
    if change.probability < MIN_PROBABILITY || split < MIN_SEGMENT {
        return None;
    }
    let spans = |from: usize, to: usize| samples[to - 1].0.saturating_sub(samples[from].0);
    if split > n - MIN_SEGMENT
        || spans(0, split) < MIN_SEGMENT_MS
        || spans(split, n) < MIN_SEGMENT_MS
    {
        // The shift is younger than MIN_SEGMENT samples: wait for more before calling it a new
        // normal.
        return None;
    }
    let before: Vec<f64> = samples[..split].iter().map(|s| s.1).collect();
    let after: Vec<f64> = samples[split..].iter().map(|s| s.1).collect();
    let (mb, sb) = median_mad(before);
    let (ma, sa) = median_mad(after);
    let floor = 1e-9_f64.max(mb.abs() * 1e-6);
    let sigma_before = (1.4826 * sb).max(floor);
    let sigma_after = (1.4826 * sa).max(floor);
    let sigmas = (ma - mb).abs() / sigma_before.max(sigma_after);
    let steady = sigma_after <= MAX_SPREAD_RATIO * sigma_before
        && sigma_before <= MAX_SPREAD_RATIO * sigma_after;
    // Still there: the newest samples sit at the new level, not back at the old one.
    let mut tail: Vec<f64> = samples[n - MIN_SEGMENT / 2..].iter().map(|s| s.1).collect();
    let now = median(&mut tail);
    let lasting = (now - ma).abs() <= 3.0 * sigma_after
        && (now - mb).abs() >= MIN_SHIFT_SIGMAS * sigma_before.max(sigma_after);
    (sigmas >= MIN_SHIFT_SIGMAS && steady && lasting).then_some(Shift {
        at_ms: samples[split].0,
        before: mb,
        after: ma,
        sigmas,
    })
}

fn median_mad(mut v: Vec<f64>) -> (f64, f64) {
    super::robust::median_and_mad(&mut v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(n: usize, level: f64, seed: u64) -> Vec<f64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n).map(|_| level + (rng.f64() - 0.5) * 2.0).collect()
    }

    fn timed(values: Vec<f64>) -> Vec<(i64, f64)> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 15_000, v))
            .collect()
    }

    #[test]
    fn finds_a_lasting_shift_where_it_happened() {
        let mut v = noisy(160, 100.0, 1);
        v.extend(noisy(80, 130.0, 2));
        let s = level_shift(&timed(v)).expect("shift");
        assert_eq!(s.at_ms, 160 * 15_000);
        assert!(
            (s.before - 100.0).abs() < 0.5 && (s.after - 130.0).abs() < 0.5,
            "{s:?}"
        );
        assert!(s.sigmas > 10.0);
    }

    #[test]
    fn noise_spikes_and_short_blips_are_not_shifts() {
        for seed in 0..30 {
            assert_eq!(
                level_shift(&timed(noisy(240, 50.0, seed))),
                None,
                "seed {seed}"
            );
        }
        let mut spiky = noisy(240, 50.0, 99);
        for i in (10..240).step_by(37) {
            spiky[i] = 500.0;
        }
        assert_eq!(level_shift(&timed(spiky)), None);
        // Fifty samples high, then back: shorter than a segment.
        let mut blip = noisy(240, 50.0, 7);
        for x in &mut blip[150..200] {
            *x += 40.0;
        }
        assert_eq!(level_shift(&timed(blip)), None);
    }

    #[test]
    fn a_ramp_is_not_a_level_shift() {
        // A steady climb has no level on either side; the after-segment is no steadier.
        let ramp: Vec<f64> = (0..240).map(|i| i as f64 * 0.05).collect();
        assert_eq!(level_shift(&timed(ramp)), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn a_clear_lasting_shift_is_found_where_it_began(
            before in 70usize..170,
            after in 65usize..120,
            jump in 8.0f64..50.0,
            up in proptest::bool::ANY,
            level in -1e4f64..1e4,
            seed in 0u64..1000,
        ) {
            let mut v = noisy(before, level, seed);
            let delta = if up { jump } else { -jump };
            v.extend(noisy(after, level + delta, seed + 1));
            let s = level_shift(&timed(v)).expect("shift");
            let at = (s.at_ms / 15_000) as usize;
            proptest::prop_assert!(at.abs_diff(before) <= 2, "{at} vs {before}: {s:?}");
            proptest::prop_assert!(((s.after - s.before) - delta).abs() < 1.0, "{s:?}");
        }

        #[test]
        fn noise_alone_is_never_a_shift(n in 120usize..300, level in -1e4f64..1e4, seed in 0u64..10_000) {
            proptest::prop_assert_eq!(level_shift(&timed(noisy(n, level, seed))), None);
        }
    }
}
