//! Safety rails, enforced where steps run so no caller can skip them: blacklisted namespaces
//! and labels (checked on the live object as the executor reads it, and on the incident's
//! series), a cooldown per target, and a bound on concurrent actions.
//!
//! A check that passes returns a [`Cleared`] step, the only thing an executor's `apply` takes;
//! it cannot be built elsewhere. The check reserves the target atomically before its first
//! await, so two plans cannot both pass for one target; the reservation becomes the cooldown
//! when the step acts ([`Cleared::acted`]) and is released if the step is dropped unrun. The
//! cleared step carries the live object the rails read (with its `resourceVersion`), so the
//! executor changes exactly the object that was checked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use super::executor::{Executor, LiveObject};
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
    /// Target → who holds it: a plan checking or running a step on it, or the plan that last
    /// acted on it and when. Steps of one plan may share a target.
    targets: Mutex<HashMap<String, Hold>>,
    slots: Semaphore,
}

/// How long reading the live object may take.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(15);

fn target_key(step: &PlannedStep) -> String {
    format!("{}/{}", step.namespace, step.target)
}

#[derive(Debug, Clone)]
enum Hold {
    /// A plan's step is between its check and its outcome; `before` is what to restore if it
    /// does not act.
    Reserved {
        plan: String,
        before: Option<Box<Hold>>,
    },
    Acted {
        plan: String,
        at: Instant,
    },
}

/// A step that passed every rail, with the target reserved for its plan. Only [`Rails::check`]
/// makes one; dropping it unrun releases the target.
pub struct Cleared<'a> {
    step: &'a PlannedStep,
    plan: String,
    live: Option<LiveObject>,
    rails: &'a Rails,
    acted: bool,
}

impl Cleared<'_> {
    pub fn step(&self) -> &PlannedStep {
        self.step
    }

    /// The target as the rails read it (`None`: an outside endpoint, or a dry run without an
    /// executor).
    pub fn live(&self) -> Option<&LiveObject> {
        self.live.as_ref()
    }

    /// The step changed the world: its target's cooldown starts now.
    pub fn acted(mut self) {
        self.acted = true;
        self.rails.lock().insert(
            target_key(self.step),
            Hold::Acted {
                plan: self.plan.clone(),
                at: Instant::now(),
            },
        );
    }
}

impl Drop for Cleared<'_> {
    fn drop(&mut self) {
        if !self.acted {
            self.rails.release(self.step, &self.plan);
        }
    }
}

impl std::fmt::Debug for Cleared<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cleared")
            .field("plan", &self.plan)
            .field("step", &self.step.name)
            .field("target", &target_key(self.step))
            .field("live", &self.live)
            .finish()
    }
}

impl std::ops::Deref for Cleared<'_> {
    type Target = PlannedStep;

    fn deref(&self) -> &PlannedStep {
        self.step
    }
}

impl Rails {
    pub fn new(config: &RemediationConfig) -> Self {
        Self {
            namespaces: config.blacklist.namespaces.clone(),
            labels: config.blacklisted_labels(),
            cooldown: config.cooldown(),
            dry_run: config.dry_run,
            targets: Mutex::default(),
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Hold>> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the target for `plan_id`, or says who holds it. One lock, no await: the first
    /// of two racing plans wins.
    fn reserve(&self, step: &PlannedStep, plan_id: &str) -> Result<(), Refusal> {
        let key = target_key(step);
        let mut targets = self.lock();
        let before = match targets.get(&key) {
            Some(Hold::Reserved { plan, .. }) if plan != plan_id => {
                return Err(Refusal(format!("{key} is being acted on by {plan}")));
            }
            Some(Hold::Acted { plan, at }) if plan != plan_id && at.elapsed() < self.cooldown => {
                return Err(Refusal(format!(
                    "cooldown: {key} was acted on by {plan} {} s ago (cooldown {} s)",
                    at.elapsed().as_secs(),
                    self.cooldown.as_secs()
                )));
            }
            Some(Hold::Reserved { before, .. }) => before.clone(),
            Some(held) => Some(Box::new(held.clone())),
            None => None,
        };
        targets.insert(
            key,
            Hold::Reserved {
                plan: plan_id.to_string(),
                before,
            },
        );
        Ok(())
    }

    fn release(&self, step: &PlannedStep, plan_id: &str) {
        let key = target_key(step);
        let mut targets = self.lock();
        if let Some(Hold::Reserved { plan, before }) = targets.get(&key)
            && plan == plan_id
        {
            match before.clone() {
                Some(previous) => targets.insert(key, *previous),
                None => targets.remove(&key),
            };
        }
    }

    /// Every rail for one step: blacklists (static, incident, live object), cooldown and the
    /// target's reservation. Passing, the step comes back [`Cleared`] for its plan.
    pub async fn check<'a>(
        &'a self,
        step: &'a PlannedStep,
        plan_id: &str,
        executor: Option<&dyn Executor>,
        incidents: &IncidentBook,
        incident_id: &str,
    ) -> Result<Cleared<'a>, Refusal> {
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
        self.reserve(step, plan_id)?;
        // From here an early return drops `cleared`, which releases the target.
        let mut cleared = Cleared {
            step,
            plan: plan_id.to_string(),
            live: None,
            rails: self,
            acted: false,
        };
        let Some(executor) = executor else {
            return if self.dry_run {
                Ok(cleared)
            } else {
                Err(Refusal(format!("no executor runs {}", step.action)))
            };
        };
        let live = tokio::time::timeout(INSPECT_TIMEOUT, executor.inspect(step))
            .await
            .map_err(|_| Refusal(format!("reading {key} timed out")))?
            .map_err(|e| Refusal(format!("cannot read the target: {e}")))?;
        if let Some(object) = &live {
            if let Some(r) = self.namespace_refused(&object.namespace) {
                return Err(r);
            }
            let what = format!("{} {}/{}", object.kind, object.namespace, object.name);
            if let Some(r) = self.labels_refused(&what, object.labels.iter()) {
                return Err(r);
            }
        }
        cleared.live = live;
        Ok(cleared)
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
        r.check(&s, "PLAN-1", None, &book, "INC-1")
            .await
            .unwrap()
            .acted();
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

    #[tokio::test]
    async fn a_cleared_step_holds_its_target_until_it_acts_or_is_dropped() {
        let r = rails(true);
        let s = step("risk", "risk-service-0");
        let book = incidents();
        let held = r.check(&s, "PLAN-1", None, &book, "INC-1").await.unwrap();
        let refused = r
            .check(&s, "PLAN-2", None, &book, "INC-1")
            .await
            .unwrap_err();
        assert!(
            refused.0.contains("being acted on by PLAN-1"),
            "{refused:?}"
        );
        drop(held);
        let second = r.check(&s, "PLAN-2", None, &book, "INC-1").await.unwrap();
        second.acted();
        let cooled = r
            .check(&s, "PLAN-1", None, &book, "INC-1")
            .await
            .unwrap_err();
        assert!(cooled.0.contains("cooldown"), "{cooled:?}");
    }

    /// Reads the target slowly, so two plans' checks overlap.
    struct SlowInspect(std::sync::atomic::AtomicUsize);

    impl Executor for SlowInspect {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn handles(&self, _: crate::model::action::Action) -> bool {
            true
        }
        fn inspect<'a>(
            &'a self,
            step: &'a PlannedStep,
        ) -> super::super::executor::ActFuture<'a, Option<LiveObject>> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(Some(LiveObject {
                    kind: "Pod".into(),
                    namespace: step.namespace.clone(),
                    name: step.target.clone(),
                    labels: Default::default(),
                    resource_version: Some("1".into()),
                }))
            })
        }
        fn apply<'a>(
            &'a self,
            _: &'a Cleared<'_>,
        ) -> super::super::executor::ActFuture<'a, super::super::executor::Applied> {
            Box::pin(async move {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::task::yield_now().await;
                Ok(super::super::executor::Applied {
                    before: serde_json::Value::Null,
                    reversible: false,
                })
            })
        }
        fn undo<'a>(
            &'a self,
            _: &'a PlannedStep,
            _: &'a serde_json::Value,
        ) -> super::super::executor::ActFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_concurrent_plans_on_one_target_never_both_act() {
        for round in 0..100 {
            let r = std::sync::Arc::new(rails(false));
            let book = std::sync::Arc::new(incidents());
            let executor = std::sync::Arc::new(SlowInspect(Default::default()));
            let s = std::sync::Arc::new(step("risk", "risk-service-0"));
            let run = |plan: &'static str| {
                let (r, book, executor, s) = (r.clone(), book.clone(), executor.clone(), s.clone());
                tokio::spawn(async move {
                    let Ok(cleared) = r
                        .check(&s, plan, Some(executor.as_ref()), &book, "INC-1")
                        .await
                    else {
                        return false;
                    };
                    executor.apply(&cleared).await.expect("applied");
                    cleared.acted();
                    true
                })
            };
            let (a, b) = (run("PLAN-A"), run("PLAN-B"));
            let acted = [a.await.unwrap(), b.await.unwrap()];
            assert_eq!(
                acted.iter().filter(|x| **x).count(),
                1,
                "round {round}: exactly one plan acts, {acted:?}"
            );
            assert_eq!(executor.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        }
    }
}
