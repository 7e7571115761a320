//! Safety rails, enforced where steps run so no caller can skip them: blacklisted namespaces
//! and labels (checked on the live object as the executor reads it, and on the incident's
//! series), a cooldown per target, and a bound on concurrent actions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use super::executor::Executor;
use crate::config::remediation::RemediationConfig;
use crate::decide::plan::PlannedStep;
use crate::incident::IncidentBook;

/// Why a step may not run.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal(pub String);

pub struct Rails {
    namespaces: Vec<String>,
    labels: Vec<(String, String)>,
    cooldown: Duration,
    dry_run: bool,
    /// Target → (plan that acted on it, when). Steps of one plan may share a target.
    last_action: Mutex<HashMap<String, (String, Instant)>>,
    slots: Semaphore,
}

/// How long reading the live object may take.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(15);

fn target_key(step: &PlannedStep) -> String {
    format!("{}/{}", step.namespace, step.target)
}

impl Rails {
    pub fn new(config: &RemediationConfig) -> Self {
        Self {
            namespaces: config.blacklist.namespaces.clone(),
            labels: config.blacklisted_labels(),
            cooldown: config.cooldown(),
            dry_run: config.dry_run,
            last_action: Mutex::default(),
            slots: Semaphore::new(config.max_concurrent_actions.max(1)),
        }
    }

    /// One of the `max_concurrent_actions` slots; waits for one to free up.
    pub async fn permit(&self) -> Option<SemaphorePermit<'_>> {
        self.slots.acquire().await.ok()
    }

    fn namespace_refused(&self, namespace: &str) -> Option<Refusal> {
        self.namespaces
            .iter()
            .any(|n| n == namespace)
            .then(|| Refusal(format!("namespace {namespace} is blacklisted")))
    }

    fn labels_refused<'a>(
        &self,
        what: &str,
        labels: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> Option<Refusal> {
        for (k, v) in labels {
            if self.labels.iter().any(|(bk, bv)| bk == k && bv == v) {
                return Some(Refusal(format!(
                    "{what} carries the blacklisted label {k}={v}"
                )));
            }
        }
        None
    }

    /// Every rail for one step: blacklists (static, incident, live object) and cooldown.
    pub async fn check(
        &self,
        step: &PlannedStep,
        plan_id: &str,
        executor: Option<&dyn Executor>,
        incidents: &IncidentBook,
        incident_id: &str,
    ) -> Result<(), Refusal> {
        if let Some(r) = self.namespace_refused(&step.namespace) {
            return Err(r);
        }
        if let Some(incident) = incidents.get(incident_id) {
            for m in &incident.anomalies {
                if let Some(r) = self.labels_refused("an affected series", m.labels.iter()) {
                    return Err(r);
                }
            }
        }
        let key = target_key(step);
        if let Some((by, at)) = self
            .last_action
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && by != plan_id
            && at.elapsed() < self.cooldown
        {
            return Err(Refusal(format!(
                "cooldown: {key} was acted on by {by} {} s ago (cooldown {} s)",
                at.elapsed().as_secs(),
                self.cooldown.as_secs()
            )));
        }
        let Some(executor) = executor else {
            return if self.dry_run {
                Ok(())
            } else {
                Err(Refusal(format!("no executor runs {}", step.action)))
            };
        };
        let live = tokio::time::timeout(INSPECT_TIMEOUT, executor.inspect(step))
            .await
            .map_err(|_| Refusal(format!("reading {key} timed out")))?
            .map_err(|e| Refusal(format!("cannot read the target: {e}")))?;
        if let Some(object) = live {
            if let Some(r) = self.namespace_refused(&object.namespace) {
                return Err(r);
            }
            let what = format!("{} {}/{}", object.kind, object.namespace, object.name);
            if let Some(r) = self.labels_refused(&what, object.labels.iter()) {
                return Err(r);
            }
        }
        Ok(())
    }

    /// Starts the target's cooldown (after a real action).
    pub fn acted(&self, step: &PlannedStep, plan_id: &str) {
        self.last_action
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(target_key(step), (plan_id.to_string(), Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(namespace: &str, target: &str) -> PlannedStep {
        PlannedStep {
            name: "s".into(),
            action: crate::model::action::Action::PodRestart,
            target: target.into(),
            namespace: namespace.into(),
            parameters: Default::default(),
            timeout_seconds: 10,
            idempotency_key: "PLAN-1.0".into(),
            idempotent: false,
        }
    }

    fn rails(dry_run: bool) -> Rails {
        Rails::new(&RemediationConfig {
            dry_run,
            ..RemediationConfig::default()
        })
    }

    fn incidents() -> IncidentBook {
        IncidentBook::new(crate::incident::IncidentParams::from_config(
            &crate::config::IncidentsConfig::default(),
        ))
    }

    #[tokio::test]
    async fn cooldown_holds_other_plans_off_a_target_but_not_the_same_plan() {
        let r = rails(true);
        let s = step("risk", "risk-service-0");
        let book = incidents();
        assert!(r.check(&s, "PLAN-1", None, &book, "INC-1").await.is_ok());
        r.acted(&s, "PLAN-1");
        assert!(r.check(&s, "PLAN-1", None, &book, "INC-1").await.is_ok());
        let refused = r
            .check(&s, "PLAN-2", None, &book, "INC-1")
            .await
            .unwrap_err();
        assert!(refused.0.contains("cooldown"), "{refused:?}");
        let other = step("risk", "risk-service-1");
        assert!(
            r.check(&other, "PLAN-2", None, &book, "INC-1")
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn blacklisted_namespaces_and_missing_executors_are_refused() {
        let book = incidents();
        let r = rails(true);
        let e = r
            .check(&step("kube-system", "coredns"), "P", None, &book, "INC-1")
            .await
            .unwrap_err();
        assert!(e.0.contains("kube-system is blacklisted"));
        // Live: a step nobody can run (or read) is refused; a dry run only plans it.
        let live = rails(false);
        let e = live
            .check(&step("risk", "x"), "P", None, &book, "INC-1")
            .await
            .unwrap_err();
        assert!(e.0.contains("no executor"));
    }

    #[tokio::test]
    async fn at_most_the_configured_number_of_actions_run_at_once() {
        let r = rails(true);
        let held: Vec<_> = futures_permits(&r, 3).await;
        assert_eq!(held.len(), 3);
        assert!(r.slots.try_acquire().is_err());
        drop(held);
        assert!(r.slots.try_acquire().is_ok());
    }

    async fn futures_permits(r: &Rails, n: usize) -> Vec<SemaphorePermit<'_>> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.extend(r.permit().await);
        }
        out
    }
}
