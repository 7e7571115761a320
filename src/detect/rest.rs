//! A rest after a report: once a sample's novelty reaches the report level, the next samples of
//! the series score zero unless they beat the surprise that started the rest.
//!
//! Why: one episode (a ramp of new highs, a burst of rare values) is one piece of news; every
//! further sample above the threshold is a repeat that a person or NAB's scorer counts as a false
//! alarm once it falls outside the labelled window. CAD OSE (NAB 69.9) does the same with a rest of
//! a fifth of its probation; here the rest is counted in the series' own samples, so it means the
//! same at 1 s and at 1 h cadence. A bigger surprise during the rest (`escalation` times the one
//! resting) is reported and starts a new rest. Only the score is rested: the band, and with it a
//! firing anomaly's lifecycle, is untouched. Two fields per series, no allocation.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestParams {
    /// Samples after a report during which repeats score zero (0 = no rest).
    pub samples: u16,
    /// A ratio this many times the resting peak is reported during the rest.
    pub escalation: f64,
    /// The ratio of the alert threshold: a sample at it starts a rest.
    pub report_ratio: f64,
}

impl Default for RestParams {
    fn default() -> Self {
        Self {
            samples: 20,
            escalation: 2.0,
            report_ratio: super::ratio_at(super::DEFAULT_ALERT_THRESHOLD),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rest {
    left: u16,
    peak: f32,
}

impl Rest {
    /// The ratio to report for this sample.
    pub fn filter(&mut self, ratio: f64, p: &RestParams) -> f64 {
        let report = p.report_ratio;
        if p.samples == 0 || ratio.is_nan() {
            return ratio;
        }
        if self.left == 0 {
            if ratio >= report {
                self.start(ratio, p);
            }
            return ratio;
        }
        self.left -= 1;
        if ratio.min(f64::from(f32::MAX)) > f64::from(self.peak) * p.escalation {
            self.start(ratio, p);
            return ratio;
        }
        if ratio >= report {
            // Still at report level: the episode goes on, and so does the rest.
            self.left = p.samples;
        }
        0.0
    }

    fn start(&mut self, ratio: f64, p: &RestParams) {
        self.left = p.samples;
        self.peak = ratio.min(f64::from(f32::MAX)) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: f64 = 2.0;

    fn run(p: &RestParams, ratios: &[f64]) -> Vec<f64> {
        let mut rest = Rest::default();
        ratios.iter().map(|&r| rest.filter(r, p)).collect()
    }

    #[test]
    fn no_rest_passes_everything_through() {
        let p = RestParams {
            samples: 0,
            escalation: 2.0,
            report_ratio: REPORT,
        };
        let ratios = [0.1, 3.0, 3.0, 5.0, 0.0];
        assert_eq!(run(&p, &ratios), ratios);
    }

    #[test]
    fn repeats_during_the_rest_score_zero_and_calm_samples_end_it() {
        let p = RestParams {
            samples: 3,
            escalation: 2.0,
            report_ratio: REPORT,
        };
        // report, repeat (rested, extends), calm ×3 (rest runs out), report again.
        let out = run(&p, &[3.0, 4.0, 0.5, 0.5, 0.5, 3.0]);
        assert_eq!(out, [3.0, 0.0, 0.0, 0.0, 0.0, 3.0]);
    }

    #[test]
    fn a_much_bigger_surprise_breaks_through_the_rest() {
        let p = RestParams {
            samples: 10,
            escalation: 2.0,
            report_ratio: REPORT,
        };
        let out = run(&p, &[3.0, 5.0, 7.0, 1.0, 13.0]);
        assert_eq!(out, [3.0, 0.0, 7.0, 0.0, 0.0]);
    }

    #[test]
    fn infinite_ratios_are_reported_once() {
        let p = RestParams {
            samples: 5,
            escalation: 2.0,
            report_ratio: REPORT,
        };
        let out = run(&p, &[f64::INFINITY, f64::INFINITY, 0.0]);
        assert_eq!(out, [f64::INFINITY, 0.0, 0.0]);
    }

    proptest::proptest! {
        /// A rest only ever silences: every output is the ratio itself or zero, and the first
        /// report-level ratio always gets through.
        #[test]
        fn a_rest_only_silences(ratios in proptest::collection::vec(0.0f64..20.0, 1..200)) {
            let p = RestParams { samples: 7, escalation: 2.0, report_ratio: REPORT };
            let out = run(&p, &ratios);
            for (r, o) in ratios.iter().zip(&out) {
                proptest::prop_assert!(*o == *r || *o == 0.0);
            }
            if let Some(first) = ratios.iter().position(|&r| r >= REPORT) {
                proptest::prop_assert_eq!(out[first], ratios[first]);
            }
        }
    }
}
