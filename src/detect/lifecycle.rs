//! Anomaly lifecycle per series: normal → pending → firing → resolved, with hysteresis.
//!
//! An anomaly starts with a surprise (a sample whose score reaches the alert threshold) and must
//! be confirmed: the following samples stay surprising or off the expected band for
//! `pending_samples` in a row spanning at least `pending_ms` — however surprising one sample is.
//! A page must mean a lasting condition: at one-second scrapes a 2–3 s burst or one tail sample
//! of right-skewed noise is as extreme as an incident's first sample, and only its duration
//! tells them apart. The anomaly then lasts while the series stays off its band and resolves
//! once the series has been calm for `resolve_samples` samples in a row or, at slow scrapes, for
//! `resolve_ms` (at least two samples), so a series hovering around the band does not flap and
//! the resolve notice does not wait a minute of 15 s scrapes.

use super::{Score, Severity};

#[derive(Debug, Clone)]
pub struct LifecycleParams {
    pub pending_samples: u16,
    /// The pending samples must span this long (sample time).
    pub pending_ms: i64,
    pub resolve_samples: u16,
    /// Calm this long (and at least two samples) also resolves.
    pub resolve_ms: i64,
    /// Resolve only below `alert_threshold × resolve_ratio`.
    pub resolve_ratio: f64,
    pub alert_threshold: f64,
}

impl Default for LifecycleParams {
    fn default() -> Self {
        Self {
            pending_samples: 2,
            pending_ms: 10_000,
            resolve_samples: 4,
            resolve_ms: 30_000,
            resolve_ratio: 0.8,
            alert_threshold: super::DEFAULT_ALERT_THRESHOLD,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Normal,
    Pending,
    Firing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Fired(Severity),
    Escalated(Severity),
    Resolved,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Lifecycle {
    pub phase: Phase,
    streak: u16,
    pub peak: Severity,
    /// Id of the firing anomaly (0 when none).
    pub anomaly_id: u64,
    pub started_ts: i64,
    /// Sample time of the first calm sample of the current calm streak while firing.
    calm_since: i64,
    /// The novelty channel of the surprise that started the current anomaly.
    pub trigger: super::Channel,
    /// A level shift was looked for and adopted for the current anomaly.
    pub shift_checked: bool,
}

impl Lifecycle {
    pub fn observe(&mut self, ts: i64, score: &Score, p: &LifecycleParams) -> Option<Transition> {
        match self.phase {
            Phase::Normal | Phase::Pending
                if score.anomalous || (self.phase == Phase::Pending && score.deviating) =>
            {
                if self.phase == Phase::Normal {
                    self.phase = Phase::Pending;
                    self.streak = 0;
                    self.started_ts = ts;
                    self.peak = Severity::Low;
                    self.trigger = score.channel;
                    self.shift_checked = false;
                }
                self.streak = self.streak.saturating_add(1);
                self.peak = self.peak.max(score.severity());
                if self.streak >= p.pending_samples
                    && ts.saturating_sub(self.started_ts) >= p.pending_ms
                {
                    self.phase = Phase::Firing;
                    self.streak = 0;
                    return Some(Transition::Fired(self.peak));
                }
                None
            }
            Phase::Pending => {
                self.phase = Phase::Normal;
                self.streak = 0;
                None
            }
            Phase::Normal => None,
            Phase::Firing => {
                let calm = !score.anomalous
                    && !score.deviating
                    && score.score < p.alert_threshold * p.resolve_ratio;
                if !calm {
                    self.streak = 0;
                } else {
                    if self.streak == 0 {
                        self.calm_since = ts;
                    }
                    self.streak = self.streak.saturating_add(1);
                }
                let calm_long =
                    self.streak >= 2 && ts.saturating_sub(self.calm_since) >= p.resolve_ms;
                if self.streak >= p.resolve_samples || calm_long {
                    return Some(self.resolve());
                }
                let severity = score.severity();
                if (score.anomalous || score.deviating) && severity > self.peak {
                    self.peak = severity;
                    return Some(Transition::Escalated(severity));
                }
                None
            }
        }
    }

    /// Ends a firing anomaly (staleness marker, eviction) or a pending one. The caller clears
    /// `anomaly_id` once it has reported the resolution.
    pub fn resolve(&mut self) -> Transition {
        self.phase = Phase::Normal;
        self.streak = 0;
        Transition::Resolved
    }

    pub fn is_firing(&self) -> bool {
        self.phase == Phase::Firing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(s: f64, sigma: f64) -> Score {
        Score {
            score: s,
            anomalous: s > 0.5,
            deviating: sigma >= 3.0,
            sigma,
            ..Default::default()
        }
    }

    /// Counting samples only (the time conditions are tested on their own).
    fn by_samples() -> LifecycleParams {
        LifecycleParams {
            pending_ms: 0,
            resolve_ms: i64::MAX,
            ..Default::default()
        }
    }

    #[test]
    fn fires_after_pending_and_resolves_with_hysteresis() {
        let p = by_samples();
        let mut l = Lifecycle::default();
        assert_eq!(l.observe(0, &score(0.6, 3.5), &p), None);
        assert_eq!(
            l.observe(1, &score(0.6, 3.5), &p),
            Some(Transition::Fired(Severity::Medium))
        );
        // No longer surprising but still off the band: stays open.
        for t in 2..20 {
            assert_eq!(l.observe(t, &score(0.1, 3.2), &p), None);
        }
        assert_eq!(
            l.observe(20, &score(0.7, 4.5), &p),
            Some(Transition::Escalated(Severity::High))
        );
        for t in 21..24 {
            assert_eq!(l.observe(t, &score(0.1, 0.5), &p), None);
        }
        assert_eq!(
            l.observe(24, &score(0.1, 0.5), &p),
            Some(Transition::Resolved)
        );
        assert_eq!(l.phase, Phase::Normal);
    }

    #[test]
    fn a_surprise_confirmed_by_the_band_fires() {
        let p = by_samples();
        let mut l = Lifecycle::default();
        // Being off the band alone never starts an anomaly...
        for t in 0..10 {
            assert_eq!(l.observe(t, &score(0.2, 3.5), &p), None);
        }
        assert_eq!(l.phase, Phase::Normal);
        // ...but it confirms one that a surprise started.
        assert_eq!(l.observe(10, &score(0.8, 3.5), &p), None);
        assert_eq!(
            l.observe(11, &score(0.2, 3.5), &p),
            Some(Transition::Fired(Severity::Medium))
        );
    }

    #[test]
    fn a_blip_never_fires_however_extreme() {
        let p = LifecycleParams::default();
        let mut l = Lifecycle::default();
        assert_eq!(l.observe(0, &score(0.6, 3.5), &p), None);
        assert_eq!(l.observe(15_000, &score(0.1, 0.5), &p), None);
        assert_eq!(l.phase, Phase::Normal);
        // A critical 3 s burst at one-second scrapes: pending, then gone.
        for t in 0..3 {
            assert_eq!(l.observe(10_000 + t * 1000, &score(0.95, 9.0), &p), None);
        }
        assert_eq!(l.observe(13_000, &score(0.1, 0.5), &p), None);
        assert_eq!(l.phase, Phase::Normal);
    }

    #[test]
    fn fast_scrapes_confirm_over_the_pending_time_slow_ones_over_the_samples() {
        let p = LifecycleParams::default();
        let mut l = Lifecycle::default();
        for t in 0..10 {
            assert_eq!(l.observe(t * 1000, &score(0.9, 6.0), &p), None, "at {t} s");
        }
        assert_eq!(
            l.observe(10_000, &score(0.9, 6.0), &p),
            Some(Transition::Fired(Severity::Critical))
        );
        let mut l = Lifecycle::default();
        assert_eq!(l.observe(0, &score(0.9, 6.0), &p), None);
        assert_eq!(
            l.observe(15_000, &score(0.9, 6.0), &p),
            Some(Transition::Fired(Severity::Critical))
        );
        // At 15 s scrapes it resolves after 30 s calm (three samples), not four samples.
        for t in [30_000, 45_000] {
            assert_eq!(l.observe(t, &score(0.1, 0.5), &p), None);
        }
        assert_eq!(
            l.observe(60_000, &score(0.1, 0.5), &p),
            Some(Transition::Resolved)
        );
    }
}
