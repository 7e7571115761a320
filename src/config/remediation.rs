//! Risk assessment and remediation settings (the seed's `risk_assessment` and
//! `auto_remediation` sections, extended): weights and thresholds, dry run, safety rails,
//! approvals and their callback links, where playbooks come from and how actions are verified.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Secret, duration};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    pub weights: RiskWeights,
    pub thresholds: RiskThresholds,
}

impl RiskConfig {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = self
            .weights
            .problems()
            .into_iter()
            .map(|m| ("risk_assessment.weights".to_string(), m))
            .collect();
        p.extend(
            self.thresholds
                .problems()
                .into_iter()
                .map(|m| ("risk_assessment.thresholds".to_string(), m)),
        );
        p
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationConfig {
    /// Plans are made for analyzed incidents; false: no plans at all.
    pub enabled: bool,
    /// Every step is planned, audited and logged, nothing is changed.
    pub dry_run: bool,
    /// Playbook directory; empty = the embedded `config/playbooks/*.yaml`.
    #[serde(deserialize_with = "duration::nullable_string")]
    pub playbooks_dir: String,
    pub max_concurrent_actions: usize,
    /// No second action on the same target within this many minutes.
    pub cooldown_minutes: u64,
    /// A plan not approved within this time expires and is never executed.
    #[serde(with = "duration")]
    pub approval_ttl: Duration,
    /// After each action: how long the incident has to recover before the plan counts as
    /// unverified.
    #[serde(with = "duration")]
    pub verification_window: Duration,
    pub blacklist: Blacklist,
    /// Base URL of this agent as approvers reach it; callback links start with it.
    #[serde(deserialize_with = "duration::nullable_string")]
    pub public_url: String,
    /// HMAC key of the callback tokens. Empty: a random key per process (links stop working
    /// after a restart).
    pub callback_secret: Secret,
    /// Where the audit log (and with it every plan's history) lives; empty = `app.data_dir`.
    #[serde(deserialize_with = "duration::nullable_string")]
    pub audit_dir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Blacklist {
    pub namespaces: Vec<String>,
    /// `key=value`: an object carrying the label is never touched.
    pub labels: Vec<String>,
}

impl Default for Blacklist {
    fn default() -> Self {
        Self {
            namespaces: vec!["kube-system".into()],
            labels: vec!["do-not-remediate=true".into()],
        }
    }
}

impl Default for RemediationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dry_run: true,
            playbooks_dir: String::new(),
            max_concurrent_actions: 3,
            cooldown_minutes: 5,
            approval_ttl: Duration::from_secs(1800),
            verification_window: Duration::from_secs(300),
            blacklist: Blacklist::default(),
            public_url: "http://localhost:8000".into(),
            callback_secret: Secret::default(),
            audit_dir: String::new(),
        }
    }
}

impl RemediationConfig {
    pub fn problems(&self, api_token_set: bool) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut check = |ok: bool, key: &str, msg: &str| {
            if !ok {
                p.push((format!("auto_remediation.{key}"), msg.to_string()));
            }
        };
        check(
            (1..=100).contains(&self.max_concurrent_actions),
            "max_concurrent_actions",
            "must be 1..=100",
        );
        check(
            self.approval_ttl >= Duration::from_secs(1),
            "approval_ttl",
            "must be at least 1s",
        );
        check(
            self.verification_window >= Duration::from_secs(1),
            "verification_window",
            "must be at least 1s",
        );
        check(
            self.public_url.starts_with("http://") || self.public_url.starts_with("https://"),
            "public_url",
            "must be an http(s) URL",
        );
        check(
            self.blacklist
                .labels
                .iter()
                .all(|l| l.split_once('=').is_some_and(|(k, _)| !k.is_empty())),
            "blacklist.labels",
            "entries must be key=value",
        );
        check(
            self.callback_secret.is_empty() || self.callback_secret.expose().len() >= 16,
            "callback_secret",
            "must be at least 16 characters",
        );
        // Live actions with open approval routes would let anyone on the network approve them.
        check(
            !self.enabled || self.dry_run || api_token_set,
            "dry_run",
            "is false, so api.auth_token must be set (approvals would be open to anyone)",
        );
        p
    }

    pub fn cooldown(&self) -> Duration {
        Duration::from_secs(self.cooldown_minutes * 60)
    }

    /// The blacklisted labels as pairs.
    pub fn blacklisted_labels(&self) -> Vec<(String, String)> {
        self.blacklist
            .labels
            .iter()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }
}

/// Weights of the risk score's four parts (`decide::risk` computes it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskWeights {
    pub severity: f64,
    pub urgency: f64,
    pub impact: f64,
    pub complexity: f64,
}

impl Default for RiskWeights {
    fn default() -> Self {
        Self {
            severity: 0.35,
            urgency: 0.25,
            impact: 0.25,
            complexity: 0.15,
        }
    }
}

/// Upper bounds of the AUTO, SEMI_AUTO and MANUAL levels (the seed's 0.4, 0.6, 0.8).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskThresholds {
    pub auto: f64,
    pub semi_auto: f64,
    pub manual: f64,
}

impl Default for RiskThresholds {
    fn default() -> Self {
        Self {
            auto: 0.4,
            semi_auto: 0.6,
            manual: 0.8,
        }
    }
}
