//! Anomaly lifecycle per series: normal → pending → firing → resolved, with hysteresis.
//!
//! A series must be anomalous for `pending_samples` consecutive samples to fire (critical fires
//! at once), and must then stay below a lower threshold for `resolve_samples` samples to
//! resolve, so a series hovering around the threshold does not flap.

use super::{Score, Severity};

#[derive(Debug, Clone)]
pub struct LifecycleParams {
    pub pending_samples: u16,
    pub resolve_samples: u16,
    /// Resolve only below `alert_threshold × resolve_ratio`.
    pub resolve_ratio: f64,
    pub alert_threshold: f64,
}

impl Default for LifecycleParams {
    fn default() -> Self {
        Self {
            pending_samples: 2,
            resolve_samples: 4,
            resolve_ratio: 0.8,
            alert_threshold: 0.5,
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
}

impl Lifecycle {
    pub fn observe(&mut self, ts: i64, score: &Score, p: &LifecycleParams) -> Option<Transition> {
        match self.phase {
            Phase::Normal | Phase::Pending if score.anomalous => {
                if self.phase == Phase::Normal {
                    self.phase = Phase::Pending;
                    self.streak = 0;
                    self.started_ts = ts;
                    self.peak = Severity::Low;
                }
                self.streak += 1;
                self.peak = self.peak.max(score.severity());
                if self.streak >= p.pending_samples || self.peak == Severity::Critical {
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
                let calm = !score.anomalous && score.score < p.alert_threshold * p.resolve_ratio;
                self.streak = if calm { self.streak + 1 } else { 0 };
                if self.streak >= p.resolve_samples {
                    return Some(self.resolve());
                }
                let severity = score.severity();
                if score.anomalous && severity > self.peak {
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
            sigma,
            ..Default::default()
        }
    }

    #[test]
    fn fires_after_pending_and_resolves_with_hysteresis() {
        let p = LifecycleParams::default();
        let mut l = Lifecycle::default();
        assert_eq!(l.observe(0, &score(0.6, 3.5), &p), None);
        assert_eq!(
            l.observe(1, &score(0.6, 3.5), &p),
            Some(Transition::Fired(Severity::Medium))
        );
        // Hovering just under the alert threshold does not resolve.
        for t in 2..20 {
            assert_eq!(l.observe(t, &score(0.45, 2.0), &p), None);
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
    fn single_blip_does_not_fire_but_critical_does() {
        let p = LifecycleParams::default();
        let mut l = Lifecycle::default();
        assert_eq!(l.observe(0, &score(0.6, 3.5), &p), None);
        assert_eq!(l.observe(1, &score(0.1, 0.5), &p), None);
        assert_eq!(l.phase, Phase::Normal);
        assert_eq!(
            l.observe(2, &score(0.9, 8.0), &p),
            Some(Transition::Fired(Severity::Critical))
        );
    }
}
