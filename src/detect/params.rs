//! Detection's parameters from its config section (`anomaly_detection`): the stage converts its
//! own section, so `config` stays a leaf that knows no stage's types.

use super::DetectParams;
use super::drift::DriftParams;
use super::lifecycle::LifecycleParams;
use super::multivariate::ServiceParams;
use super::novelty::NoveltyParams;
use super::peers::PeerParams;
use super::rest::RestParams;
use crate::config::{DetectionConfig, PeersConfig, ServicesConfig};

impl DetectParams {
    pub fn from_config(c: &DetectionConfig) -> Self {
        let s = c;
        DetectParams {
            zscore_threshold: s.zscore_threshold,
            mad_threshold: s.mad_threshold,
            min_votes: s.ensemble_min_votes,
            warmup_samples: s.warmup_samples,
            ewma_alpha: s.ewma_alpha,
            alert_threshold: s.alert_threshold,
            seasonal_period_ms: s.seasonality.period.as_millis() as i64,
            seasonal_bins: s.seasonality.bins,
            seasonal_enabled: s.seasonality.enabled,
            period_discovery_strength: if s.seasonality.discover {
                s.seasonality.discover_min_strength
            } else {
                0.0
            },
            novelty: NoveltyParams {
                range_unit: s.novelty.range_unit,
                density_unit: s.novelty.density_unit,
                memory_ms: s.novelty.memory.as_millis() as f64,
                context_learning_rate: s.novelty.context_learning_rate,
                stuck_factor: s.novelty.stuck_factor,
                stuck_min_samples: s.novelty.stuck_min_samples,
                drift: DriftParams {
                    alpha: s.novelty.drift_alpha,
                    unit: s.novelty.drift_unit,
                    travel_unit: s.novelty.drift_travel_unit,
                    report_ratio: super::ratio_at(s.alert_threshold),
                },
                rest: RestParams {
                    samples: s.novelty.rest_samples,
                    escalation: s.novelty.rest_escalation,
                    report_ratio: super::ratio_at(s.alert_threshold),
                },
            },
        }
    }
}

impl LifecycleParams {
    pub fn from_config(c: &DetectionConfig) -> Self {
        let s = c;
        Self {
            pending_samples: s.pending_samples,
            pending_ms: s.pending_for.as_millis().min(i64::MAX as u128) as i64,
            resolve_samples: s.resolve_samples,
            resolve_ms: s.resolve_after.as_millis().min(i64::MAX as u128) as i64,
            resolve_ratio: s.resolve_ratio,
            alert_threshold: s.alert_threshold,
        }
    }
}

impl PeerParams {
    pub fn from_config(c: &PeersConfig) -> Self {
        Self {
            enabled: c.enabled,
            group_by: c.group_by.clone(),
            min_group: c.min_group,
            threshold_sigmas: c.threshold_sigmas,
        }
    }
}

impl ServiceParams {
    pub fn from_config(c: &ServicesConfig) -> Self {
        Self {
            enabled: c.enabled,
            group_by: c.group_by.clone(),
            bucket_ms: c.bucket.as_millis().min(i64::MAX as u128) as i64,
            min_history: c.min_history,
            threshold_sigmas: c.threshold_sigmas,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Config writes its defaults out (so it imports no stage); they must be the detectors' own.
    #[test]
    fn config_defaults_are_the_detectors_defaults() {
        let c = DetectionConfig::default();
        assert_eq!(
            format!("{:?}", DetectParams::from_config(&c)),
            format!("{:?}", DetectParams::default())
        );
        assert_eq!(
            format!("{:?}", LifecycleParams::from_config(&c)),
            format!("{:?}", LifecycleParams::default())
        );
        assert_eq!(PeerParams::from_config(&c.peers), PeerParams::default());
        assert_eq!(
            ServiceParams::from_config(&c.services),
            ServiceParams::default()
        );
    }
}
