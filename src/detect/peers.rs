//! Peer-group outliers: the pod of a deployment that behaves unlike its siblings.
//!
//! Periodic, off the hot path. Series of the same metric that share the grouping labels (by
//! default `namespace` and `deployment`) form a group; each member's level is its latest value.
//! A member is an outlier when its level lies more than `threshold_sigmas` from the group's
//! median, in units of the larger of the group's robust spread and the members' typical own
//! noise (so three pods with slightly different baselines are not outliers of each other), and
//! by at least `MIN_RELATIVE` of the median and the class's minimum deviations.

use serde::Serialize;

use super::robust::median;

/// A pod within 10 % of its siblings' median is not "unlike" them, however quiet they are.
const MIN_RELATIVE: f64 = 0.1;

#[derive(Debug, Clone, PartialEq)]
pub struct PeerParams {
    pub enabled: bool,
    pub group_by: Vec<String>,
    pub min_group: usize,
    pub threshold_sigmas: f64,
}

impl Default for PeerParams {
    fn default() -> Self {
        Self {
            enabled: true,
            group_by: vec!["namespace".into(), "deployment".into()],
            min_group: 3,
            threshold_sigmas: 5.0,
        }
    }
}

/// One member's view for the group test.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub series: u64,
    pub level: f64,
    /// The member's own noise (robust sigma of its band).
    pub sigma: f64,
    pub min_rel_deviation: f64,
    pub min_abs_deviation: f64,
}

/// Why a member stands out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PeerDeviation {
    pub level: f64,
    /// Median level of the group (the member included).
    pub peers_median: f64,
    pub sigmas: f64,
    pub group_size: usize,
}

/// The outliers of one group (empty for groups smaller than `min_group`).
pub fn outliers(members: &[Member], p: &PeerParams) -> Vec<(u64, PeerDeviation)> {
    let levels: Vec<f64> = members.iter().map(|m| m.level).collect();
    if members.len() < p.min_group.max(3) || levels.iter().any(|l| !l.is_finite()) {
        return Vec::new();
    }
    let mid = median(&mut levels.clone());
    let mad = median(&mut levels.iter().map(|l| (l - mid).abs()).collect::<Vec<_>>());
    let noise = median(&mut members.iter().map(|m| m.sigma.max(0.0)).collect::<Vec<_>>());
    let scale = (1.4826 * mad).max(noise).max(mid.abs() * 1e-6).max(1e-12);
    members
        .iter()
        .filter_map(|m| {
            let deviation = (m.level - mid).abs();
            let sigmas = deviation / scale;
            let big_enough = deviation >= m.min_rel_deviation.max(MIN_RELATIVE) * mid.abs()
                && deviation >= m.min_abs_deviation;
            (sigmas >= p.threshold_sigmas && big_enough).then_some((
                m.series,
                PeerDeviation {
                    level: m.level,
                    peers_median: mid,
                    sigmas,
                    group_size: members.len(),
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(series: u64, level: f64, sigma: f64) -> Member {
        Member {
            series,
            level,
            sigma,
            min_rel_deviation: 0.05,
            min_abs_deviation: 0.0,
        }
    }

    #[test]
    fn the_pod_unlike_its_siblings_is_named() {
        let group = [
            member(1, 0.40, 0.02),
            member(2, 0.42, 0.02),
            member(3, 0.95, 0.02),
            member(4, 0.39, 0.02),
        ];
        let out = outliers(&group, &PeerParams::default());
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].0, 3);
        assert!(out[0].1.sigmas > 5.0);
    }

    #[test]
    fn siblings_with_slightly_different_baselines_are_not_outliers() {
        let group = [
            member(1, 0.38, 0.02),
            member(2, 0.42, 0.02),
            member(3, 0.45, 0.02),
        ];
        assert!(outliers(&group, &PeerParams::default()).is_empty());
        // Two pods are not a group.
        let pair = [member(1, 0.1, 0.01), member(2, 0.9, 0.01)];
        assert!(outliers(&pair, &PeerParams::default()).is_empty());
    }
}
