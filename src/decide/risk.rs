//! Risk of an action on an incident: the seed's four dimensions (severity 0.35, urgency 0.25,
//! impact 0.25, complexity 0.15; weights configurable) and its levels (< 0.4 auto, < 0.6 one
//! approver, < 0.8 two approvers, ≥ 0.8 diagnose only). Anything touching wallets or funds is
//! critical whatever the score. Every assessment shows its parts and why.

use serde::{Deserialize, Serialize};

pub use crate::config::remediation::{RiskThresholds, RiskWeights};
use crate::detect::Severity;
use crate::model::action::Action;

impl RiskWeights {
    pub fn problems(&self) -> Vec<String> {
        let all = [self.severity, self.urgency, self.impact, self.complexity];
        let mut p = Vec::new();
        if all.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            p.push("weights must be non-negative numbers".to_string());
        }
        if (all.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
            p.push(format!(
                "weights must sum to 1 (they sum to {})",
                all.iter().sum::<f64>()
            ));
        }
        p
    }
}

impl RiskThresholds {
    pub fn problems(&self) -> Vec<String> {
        let ok = 0.0 < self.auto
            && self.auto <= self.semi_auto
            && self.semi_auto <= self.manual
            && self.manual <= 1.0;
        if ok {
            Vec::new()
        } else {
            vec!["must satisfy 0 < auto <= semi_auto <= manual <= 1".into()]
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RiskLevel {
    /// Executed without approval.
    Auto,
    /// One approver.
    SemiAuto,
    /// Two distinct approvers.
    Manual,
    /// Diagnose only; never executed.
    Critical,
}

impl RiskLevel {
    pub fn from_score(score: f64) -> Self {
        Self::from_score_with(score, &RiskThresholds::default())
    }

    pub fn from_score_with(score: f64, t: &RiskThresholds) -> Self {
        if score < t.auto {
            Self::Auto
        } else if score < t.semi_auto {
            Self::SemiAuto
        } else if score < t.manual {
            Self::Manual
        } else {
            Self::Critical
        }
    }

    /// Distinct approvers needed before execution; `None` when it may never run.
    pub fn approvals_required(self) -> Option<usize> {
        match self {
            Self::Auto => Some(0),
            Self::SemiAuto => Some(1),
            Self::Manual => Some(2),
            Self::Critical => None,
        }
    }
}

/// What is being judged.
#[derive(Debug, Clone)]
pub struct RiskInput<'a> {
    pub severity: Severity,
    /// Metric categories of the incident (trading, wallet, …).
    pub categories: &'a [String],
    /// Namespace and labels of the action's target.
    pub namespace: &'a str,
    pub target_labels: &'a [(String, String)],
    /// Anomalies firing now.
    pub firing: usize,
    /// Minutes since the incident opened.
    pub age_minutes: f64,
    /// A forecast breach within the hour.
    pub breach_within_hour: bool,
    /// The action (pod_restart, hpa_scale, deployment_rollback, config_rollback,
    /// circuit_breaker, database_failover, …).
    pub action: Action,
    /// Fraction of the service's pods the action touches (1 for deployment-wide actions).
    pub blast_radius: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RiskAssessment {
    pub score: f64,
    pub level: RiskLevel,
    pub severity: f64,
    pub urgency: f64,
    pub impact: f64,
    pub complexity: f64,
    pub weights: RiskWeights,
    /// Why each part is what it is, and any override.
    pub reasons: Vec<String>,
}

fn category_weight(category: &str) -> f64 {
    match category {
        "wallet" | "trading" | "matching" => 1.0,
        "risk" => 0.9,
        "api" => 0.8,
        _ => 0.7,
    }
}

/// Wallets and funds are never touched automatically.
pub fn touches_funds(input: &RiskInput) -> bool {
    let words = [
        "wallet",
        "fund",
        "custody",
        "treasury",
        "hot-wallet",
        "cold-wallet",
    ];
    let hit = |s: &str| {
        let lower = s.to_lowercase();
        words.iter().any(|w| lower.contains(w))
    };
    input.categories.iter().any(|c| c == "wallet")
        || hit(input.namespace)
        || input.target_labels.iter().any(|(_, v)| hit(v))
}

pub fn assess(
    input: &RiskInput,
    weights: &RiskWeights,
    thresholds: &RiskThresholds,
) -> RiskAssessment {
    let mut reasons = Vec::new();
    let base = match input.severity {
        Severity::Low => 0.25,
        Severity::Medium => 0.5,
        Severity::High => 0.75,
        Severity::Critical => 1.0,
    };
    let category = input
        .categories
        .iter()
        .map(|c| category_weight(c))
        .fold(0.7, f64::max);
    let severity = base * category;
    reasons.push(format!(
        "severity {:?} ({base}) × category weight {category}",
        input.severity
    ));
    let urgency = (0.3
        + 0.1 * (input.firing.min(4) as f64)
        + if input.breach_within_hour { 0.3 } else { 0.0 }
        + if input.age_minutes >= 15.0 { 0.1 } else { 0.0 })
    .min(1.0);
    reasons.push(format!(
        "urgency: {} firing, {:.0} min open{}",
        input.firing,
        input.age_minutes,
        if input.breach_within_hour {
            ", breach forecast within the hour"
        } else {
            ""
        }
    ));
    let production = !["dev", "test", "staging", "sandbox"]
        .iter()
        .any(|e| input.namespace.contains(e));
    let impact =
        (0.2 + 0.5 * input.blast_radius.clamp(0.0, 1.0) + if production { 0.2 } else { 0.0 })
            * category;
    let impact = impact.min(1.0);
    reasons.push(format!(
        "impact: {:.0} % of the service's pods, {} namespace {}",
        input.blast_radius.clamp(0.0, 1.0) * 100.0,
        if production {
            "production"
        } else {
            "non-production"
        },
        input.namespace
    ));
    let complexity = input.action.complexity();
    reasons.push(format!("complexity of {}: {complexity}", input.action));
    let score = weights.severity * severity
        + weights.urgency * urgency
        + weights.impact * impact
        + weights.complexity * complexity;
    let mut level = RiskLevel::from_score_with(score, thresholds);
    if touches_funds(input) {
        level = RiskLevel::Critical;
        reasons.push("wallet/fund-related target: CRITICAL regardless of score".into());
    }
    RiskAssessment {
        score,
        level,
        severity,
        urgency,
        impact,
        complexity,
        weights: *weights,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        categories: &'a [String],
        namespace: &'a str,
        action: &str,
        severity: Severity,
    ) -> RiskInput<'a> {
        RiskInput {
            severity,
            categories,
            namespace,
            target_labels: &[],
            firing: 1,
            age_minutes: 2.0,
            breach_within_hour: false,
            action: action.parse().expect("a known action"),
            blast_radius: 1.0 / 3.0,
        }
    }

    #[test]
    fn levels_follow_the_seed_thresholds() {
        assert_eq!(RiskLevel::from_score(0.39), RiskLevel::Auto);
        assert_eq!(RiskLevel::from_score(0.4), RiskLevel::SemiAuto);
        assert_eq!(RiskLevel::from_score(0.6), RiskLevel::Manual);
        assert_eq!(RiskLevel::from_score(0.8), RiskLevel::Critical);
        assert_eq!(RiskLevel::Manual.approvals_required(), Some(2));
        assert_eq!(RiskLevel::Critical.approvals_required(), None);
    }

    #[test]
    fn score_is_the_weighted_sum_of_its_parts() {
        let cats = vec!["infrastructure".to_string()];
        let a = assess(
            &input(&cats, "staging-apps", "pod_restart", Severity::Low),
            &RiskWeights::default(),
            &RiskThresholds::default(),
        );
        let w = RiskWeights::default();
        let sum = w.severity * a.severity
            + w.urgency * a.urgency
            + w.impact * a.impact
            + w.complexity * a.complexity;
        assert!((a.score - sum).abs() < 1e-12);
        assert_eq!(a.level, RiskLevel::Auto, "{a:?}");
        assert_eq!(a.reasons.len(), 4);
        // A database failover on a critical trading incident in production needs people.
        let cats = vec!["trading".to_string()];
        let mut i = input(&cats, "trading", "database_failover", Severity::Critical);
        i.firing = 6;
        i.blast_radius = 1.0;
        let b = assess(&i, &w, &RiskThresholds::default());
        assert!(b.level >= RiskLevel::Manual, "{b:?}");
    }

    #[test]
    fn wallets_and_funds_are_always_critical() {
        let cats = vec!["infrastructure".to_string()];
        let i = input(&cats, "wallet", "pod_restart", Severity::Low);
        assert_eq!(
            assess(&i, &RiskWeights::default(), &RiskThresholds::default()).level,
            RiskLevel::Critical
        );
        let labels = vec![("app".to_string(), "fund-settlement".to_string())];
        let mut i = input(&cats, "payments", "pod_restart", Severity::Low);
        i.target_labels = &labels;
        let a = assess(&i, &RiskWeights::default(), &RiskThresholds::default());
        assert_eq!(a.level, RiskLevel::Critical);
        assert!(a.reasons.last().unwrap().contains("CRITICAL"));
        let wallet = vec!["wallet".to_string()];
        let i = input(&wallet, "ops", "hpa_scale", Severity::Low);
        assert_eq!(
            assess(&i, &RiskWeights::default(), &RiskThresholds::default()).level,
            RiskLevel::Critical
        );
    }

    #[test]
    fn weights_are_validated() {
        assert!(RiskWeights::default().problems().is_empty());
        let bad = RiskWeights {
            severity: 0.5,
            ..RiskWeights::default()
        };
        assert!(bad.problems()[0].contains("sum to 1"));
    }

    #[test]
    fn thresholds_move_the_levels_and_are_validated() {
        let strict = RiskThresholds {
            auto: 0.2,
            semi_auto: 0.3,
            manual: 0.5,
        };
        assert_eq!(
            RiskLevel::from_score_with(0.25, &strict),
            RiskLevel::SemiAuto
        );
        assert_eq!(
            RiskLevel::from_score_with(0.55, &strict),
            RiskLevel::Critical
        );
        assert!(strict.problems().is_empty());
        let bad = RiskThresholds {
            auto: 0.7,
            semi_auto: 0.6,
            manual: 0.8,
        };
        assert!(!bad.problems().is_empty());
    }
}
