//! Running an approved plan: a slot, the safety rails, each step under its timeout, the
//! verification after each action, and the rollback of completed steps when one fails. Every
//! step is audited before it runs and after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Remediator, now_ms};
use crate::act::executor::{ActError, Executor};
use crate::act::safety::Refusal;
use crate::decide::plan::{ApprovedPlan, ExecutionStatus, Plan, StepRun};
use crate::incident::IncidentState;
use crate::model::action::Action;

impl Remediator {
    fn executor_for(&self, action: Action) -> Option<&Arc<dyn Executor>> {
        self.executors.iter().find(|e| e.handles(action))
    }

    /// Runs an approved plan once: rails, steps, verification, rollback; audited throughout.
    pub async fn execute(self: &Arc<Self>, approved: ApprovedPlan) {
        let _permit = self.rails.permit().await;
        let id = approved.plan().id.clone();
        // Claim it: a plan runs at most once, even if two approvals race.
        let mut plan = {
            let _turn = self.decide.lock().await;
            let Some(mut plan) = self.get(&id) else {
                return;
            };
            if plan.execution.status != ExecutionStatus::NotStarted {
                return;
            }
            if plan.approved(now_ms()).is_none() {
                // Approved, then expired while waiting for a free slot.
                plan.execution.status = ExecutionStatus::Refused;
                plan.execution.reason =
                    Some("the approval expired before an action slot was free".into());
                if self
                    .record("refusal", "executor", &id, json!({"plan": plan}))
                    .await
                    .is_ok()
                {
                    self.lock().plans.insert(id.clone(), plan.clone());
                    self.note(&plan);
                }
                return;
            }
            plan.execution.status = ExecutionStatus::Running;
            plan.execution.dry_run = self.config.dry_run;
            plan.execution.started_ms = Some(now_ms());
            if let Err(e) = self
                .record("execution_start", "executor", &id, json!({"plan": plan}))
                .await
            {
                tracing::error!(plan = %id, error = %e, "plan not started: the audit log cannot be written");
                return;
            }
            self.lock().plans.insert(id.clone(), plan.clone());
            plan
        };
        tracing::info!(plan = %id, dry_run = self.config.dry_run, steps = plan.steps.len(), "executing plan");
        let (status, reason, verified) = self.run_steps(&mut plan).await;
        plan.execution.status = status;
        plan.execution.reason = reason;
        plan.execution.verified = verified;
        plan.execution.finished_ms = Some(now_ms());
        {
            let _turn = self.decide.lock().await;
            if let Err(e) = self
                .record("execution_end", "executor", &id, json!({"plan": plan}))
                .await
            {
                tracing::error!(plan = %id, error = %e, "plan outcome not audited");
            }
            self.lock().plans.insert(id.clone(), plan.clone());
        }
        self.note(&plan);
        tracing::info!(plan = %id, outcome = status.as_str(), verified = ?verified, "plan finished");
        self.notifier.publish_plan(
            match status {
                ExecutionStatus::Succeeded | ExecutionStatus::DryRun => "plan.executed",
                _ => "plan.failed",
            },
            plan,
            None,
        );
    }

    async fn run_steps(
        self: &Arc<Self>,
        plan: &mut Plan,
    ) -> (ExecutionStatus, Option<String>, Option<bool>) {
        let id = plan.id.clone();
        let dry_run = self.config.dry_run;
        // (index into plan.steps, saved state) of the reversible steps done so far.
        let mut done: Vec<(usize, serde_json::Value, bool)> = Vec::new();
        let steps = plan.steps.clone();
        for (i, step) in steps.iter().enumerate() {
            let mut run = StepRun::of(step, step.name.clone(), "", now_ms());
            let executor = self.executor_for(step.action).cloned();
            let cleared = match self.clear(step, &id, executor.as_deref(), plan).await {
                Ok(c) => c,
                Err(why) => return self.refuse_step(plan, run, i, why, &done).await,
            };
            if let Err(e) = self
                .record(
                    "step_start",
                    "executor",
                    &id,
                    json!({"index": i, "step": step, "dry_run": dry_run}),
                )
                .await
            {
                return self.audit_lost(plan, &done, e).await;
            }
            if dry_run {
                drop(cleared);
                run.status = "dry_run".into();
                run.finished_ms = now_ms();
                tracing::info!(plan = %id, step = %step.name, action = %step.action, target = %run.target, "DRY RUN: would execute step");
                if let Err(e) = self.step_done(plan, run, "dry_run").await {
                    return self.audit_lost(plan, &done, e).await;
                }
                continue;
            }
            let Some(executor) = executor else {
                // Only reachable in a dry run, handled above; kept for the types.
                return (
                    ExecutionStatus::Failed,
                    Some(format!("no executor runs {}", step.action)),
                    None,
                );
            };
            let mut cleared = cleared;
            let mut outcome = apply_within(executor.as_ref(), &cleared).await;
            if let Err(ActError::Conflict(why)) = &outcome {
                // The target changed between the rails' read and the change, and nothing was
                // done: the rails look at it again before a second try.
                tracing::warn!(plan = %id, step = %step.name, reason = %why, "target changed after the rails read it; checking again");
                drop(cleared);
                cleared = match self.clear(step, &id, Some(executor.as_ref()), plan).await {
                    Ok(c) => c,
                    Err(why) => return self.refuse_step(plan, run, i, why, &done).await,
                };
                outcome = apply_within(executor.as_ref(), &cleared).await;
            }
            run.finished_ms = now_ms();
            match outcome {
                Ok(applied) => {
                    cleared.acted();
                    run.status = "done".into();
                    run.before = applied.before.clone();
                    done.push((i, applied.before, applied.reversible));
                    if let Err(e) = self.step_done(plan, run, "success").await {
                        return self.audit_lost(plan, &done, e).await;
                    }
                    tracing::info!(plan = %id, step = %step.name, action = %step.action, target = %step.target, "step done");
                    if self
                        .verify(&plan.incident_id, &plan.watched_anomalies)
                        .await
                    {
                        for rest in &steps[i + 1..] {
                            let mut skipped =
                                StepRun::of(rest, rest.name.clone(), "skipped", now_ms());
                            skipped.error = Some("the incident recovered".into());
                            plan.execution.steps.push(skipped);
                        }
                        return (ExecutionStatus::Succeeded, None, Some(true));
                    }
                }
                Err(e) => {
                    run.status = "failed".into();
                    run.error = Some(e.to_string());
                    if let Err(audit) = self.step_done(plan, run, "failure").await {
                        return self.audit_lost(plan, &done, audit).await;
                    }
                    tracing::warn!(plan = %id, step = %step.name, error = %e, "step failed; rolling back");
                    let rolled = self.roll_back(plan, &done).await;
                    return (
                        if rolled {
                            ExecutionStatus::RolledBack
                        } else {
                            ExecutionStatus::Failed
                        },
                        Some(format!("step {} failed: {e}", step.name)),
                        None,
                    );
                }
            }
        }
        if dry_run {
            (ExecutionStatus::DryRun, None, None)
        } else {
            (
                ExecutionStatus::Unverified,
                Some(format!(
                    "the incident did not recover within {:?} of the last action",
                    self.config.verification_window
                )),
                Some(false),
            )
        }
    }

    /// The rails for one step of `plan`.
    async fn clear<'a>(
        &'a self,
        step: &'a crate::decide::plan::PlannedStep,
        plan_id: &str,
        executor: Option<&dyn Executor>,
        plan: &Plan,
    ) -> Result<crate::act::safety::Cleared<'a>, String> {
        self.rails
            .check(step, plan_id, executor, &self.incidents, &plan.incident_id)
            .await
            .map_err(|Refusal(why)| why)
    }

    /// A step the rails refused: recorded, and the plan's completed steps rolled back.
    async fn refuse_step(
        &self,
        plan: &mut Plan,
        mut run: StepRun,
        index: usize,
        why: String,
        done: &[(usize, serde_json::Value, bool)],
    ) -> (ExecutionStatus, Option<String>, Option<bool>) {
        run.status = "refused".into();
        run.error = Some(why.clone());
        run.finished_ms = now_ms();
        if let Err(e) = self
            .record(
                "refusal",
                "executor",
                &plan.id,
                json!({"step": run, "index": index}),
            )
            .await
        {
            return self.audit_lost(plan, done, e).await;
        }
        let step = run.name.clone();
        if let Err(e) = self.step_done(plan, run, "refused").await {
            return self.audit_lost(plan, done, e).await;
        }
        tracing::warn!(plan = %plan.id, step = %step, reason = %why, "step refused by the safety rails");
        let rolled = self.roll_back(plan, done).await;
        (
            if rolled {
                ExecutionStatus::Refused
            } else {
                ExecutionStatus::Failed
            },
            Some(why),
            None,
        )
    }

    /// Records a step's end; the step is kept in the plan either way, and an error means the
    /// plan must stop (the next change could not be recorded either).
    async fn step_done(
        &self,
        plan: &mut Plan,
        run: StepRun,
        result: &str,
    ) -> Result<(), crate::act::audit::AuditError> {
        self.count(run.action, result);
        let recorded = self
            .record("step_end", "executor", &plan.id, json!({"step": run}))
            .await;
        plan.execution.steps.push(run);
        self.lock().plans.insert(plan.id.clone(), plan.clone());
        recorded
    }

    /// The audit log failed mid-plan: nothing more runs, and completed steps are rolled back
    /// only as far as their rollbacks can be recorded first (usually not at all).
    async fn audit_lost(
        &self,
        plan: &mut Plan,
        done: &[(usize, serde_json::Value, bool)],
        e: crate::act::audit::AuditError,
    ) -> (ExecutionStatus, Option<String>, Option<bool>) {
        tracing::error!(plan = %plan.id, error = %e, completed = done.len(), "audit log unavailable: plan stopped, no further step runs");
        let rolled = self.roll_back(plan, done).await;
        let undone = if done.is_empty() || rolled {
            ""
        } else {
            "; completed steps were not rolled back and need a human"
        };
        (
            ExecutionStatus::Failed,
            Some(format!("audit log unavailable, plan stopped: {e}{undone}")),
            None,
        )
    }

    /// Undoes completed reversible steps, newest first; true when all undos worked.
    async fn roll_back(&self, plan: &mut Plan, done: &[(usize, serde_json::Value, bool)]) -> bool {
        let mut all_ok = true;
        for (i, before, reversible) in done.iter().rev() {
            let Some(step) = plan.steps.get(*i).cloned() else {
                continue;
            };
            let mut run = StepRun::of(&step, format!("rollback: {}", step.name), "", now_ms());
            run.before = before.clone();
            if !reversible {
                run.status = "not_reversible".into();
                if self.step_done(plan, run, "not_reversible").await.is_err() {
                    return false;
                }
                continue;
            }
            // No undo that is not recorded first.
            if let Err(e) = self
                .record(
                    "rollback_start",
                    "executor",
                    &plan.id,
                    json!({"index": i, "step": step}),
                )
                .await
            {
                tracing::error!(plan = %plan.id, step = %step.name, error = %e, "rollback not started: the audit log cannot be written; needs a human");
                return false;
            }
            let outcome = match self.executor_for(step.action) {
                Some(ex) => tokio::time::timeout(
                    Duration::from_secs(step.timeout_seconds.max(1)),
                    ex.undo(&step, before),
                )
                .await
                .unwrap_or_else(|_| Err(ActError::Failed("rollback timed out".into()))),
                None => Err(ActError::Invalid("no executor".into())),
            };
            run.finished_ms = now_ms();
            match outcome {
                Ok(()) => {
                    run.status = "rolled_back".into();
                    if self.step_done(plan, run, "rolled_back").await.is_err() {
                        return false;
                    }
                }
                Err(e) => {
                    all_ok = false;
                    run.status = "rollback_failed".into();
                    run.error = Some(e.to_string());
                    tracing::error!(plan = %plan.id, step = %step.name, error = %e, "rollback failed: needs a human");
                    if self.step_done(plan, run, "rollback_failed").await.is_err() {
                        return false;
                    }
                }
            }
        }
        all_ok
    }

    /// Waits, up to the verification window, for the anomalies that called for the plan to
    /// resolve (all of the incident's, when none were recorded).
    async fn verify(&self, incident_id: &str, watched: &[String]) -> bool {
        use std::sync::atomic::Ordering;
        let started = Instant::now();
        let window = self.config.verification_window;
        let sample_start = self.sample_clock.load(Ordering::Relaxed);
        let sample_elapsed = || {
            let now = self.sample_clock.load(Ordering::Relaxed);
            if sample_start > i64::MIN && now > sample_start {
                Duration::from_millis((now - sample_start) as u64)
            } else {
                Duration::ZERO
            }
        };
        loop {
            let recovered = self.incidents.get(incident_id).is_none_or(|i| {
                i.state != IncidentState::Open
                    || i.anomalies_firing == 0
                    || (!watched.is_empty()
                        && i.anomalies
                            .iter()
                            .filter(|m| watched.contains(&m.anomaly_id))
                            .all(|m| !m.firing))
            });
            if recovered {
                return true;
            }
            if started.elapsed() >= window || sample_elapsed() >= window {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Applies a cleared step under its timeout.
async fn apply_within(
    executor: &dyn Executor,
    cleared: &crate::act::safety::Cleared<'_>,
) -> Result<crate::act::executor::Applied, ActError> {
    let seconds = cleared.step().timeout_seconds.max(1);
    tokio::time::timeout(Duration::from_secs(seconds), executor.apply(cleared))
        .await
        .unwrap_or_else(|_| Err(ActError::Failed(format!("timed out after {seconds} s"))))
}
