//! The remediation loop: an analyzed incident gets a plan (its playbook, risk and required
//! approvals); the plan is approved by API or by a signed callback link, rejected, or expires;
//! an approved plan runs once, step by step, through the safety rails and an executor, with a
//! verification after each action and a rollback of completed steps when one fails.
//!
//! The audit log is the source of truth: every plan, approval, rejection, refusal, step and
//! outcome is appended (fsync'd) before the state it describes takes effect, and each state
//! change carries the whole plan, so [`Remediator::open`] rebuilds the plans from it after a
//! restart. A plan that was running when the process died is marked `interrupted`, never
//! resumed: the world changed while nobody watched.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::audit::{AuditError, AuditLog};
use super::executor::Executor;
use super::safety::Rails;
use super::token::{TokenError, TokenSigner};
use crate::config::remediation::{RemediationConfig, RiskConfig};
use crate::decide::plan::{
    ExecutionStatus, Plan, PlanContext, PlanError, PlanState, StepRun, plan_for,
};
use crate::decide::playbooks::Playbook;
use crate::incident::{IncidentBook, IncidentState, RemediationNote};
use crate::model::action::Action;
use crate::notify::Notifier;

#[derive(Debug, thiserror::Error)]
pub enum RemediationError {
    #[error("no plan with id {0}")]
    NotFound(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("callback refused: {0}")]
    Token(TokenError),
    #[error("audit log unavailable, nothing was changed: {0}")]
    Audit(#[from] AuditError),
}

/// Why the remediator could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Key(#[from] super::token::NoRandomKey),
}

pub use crate::model::clock::now_ms;
pub use crate::model::links::CallbackLinks;

#[derive(Default)]
/// What a reload may change in how plans are made.
pub struct Policy {
    pub risk: RiskConfig,
    pub playbooks: Vec<Playbook>,
}

struct Book {
    plans: HashMap<String, Plan>,
    next: u64,
}

/// What a [`Remediator`] works with.
pub struct Parts {
    pub config: RemediationConfig,
    pub risk: RiskConfig,
    pub playbooks: Vec<Playbook>,
    pub executors: Vec<Arc<dyn Executor>>,
    pub incidents: Arc<IncidentBook>,
    pub notifier: Notifier,
    /// The pipeline's newest sample time (ms).
    pub sample_clock: Arc<std::sync::atomic::AtomicI64>,
}

pub struct Remediator {
    config: RemediationConfig,
    /// Risk weights and playbooks: swapped whole by a config reload; a plan is made with one
    /// consistent pair.
    policy: std::sync::RwLock<Arc<Policy>>,
    audit: Arc<AuditLog>,
    book: Mutex<Book>,
    /// Decisions one at a time, so the audit order is the order state changed in.
    decide: tokio::sync::Mutex<()>,
    tokens: TokenSigner,
    executors: Vec<Arc<dyn Executor>>,
    rails: Rails,
    incidents: Arc<IncidentBook>,
    notifier: Notifier,
    /// (action, result) → count, for `sre_agent_remediation_total`.
    outcomes: Mutex<BTreeMap<(String, String), u64>>,
    /// Newest sample time (ms): verification windows pass in sample time as well as on the
    /// clock, so replays and the simulator verify as live traffic does.
    sample_clock: Arc<std::sync::atomic::AtomicI64>,
}

impl Remediator {
    /// Opens the audit log in `dir` and rebuilds the plans recorded in it; plans that were
    /// running are marked interrupted (and audited so).
    pub fn open(dir: &std::path::Path, parts: Parts) -> Result<Self, OpenError> {
        let Parts {
            config,
            risk,
            playbooks,
            executors,
            incidents,
            notifier,
            sample_clock,
        } = parts;
        let audit = Arc::new(AuditLog::open(dir)?);
        let tokens = TokenSigner::new(config.callback_secret.expose().as_bytes())?;
        let rails = Rails::new(&config);
        let mut book = Book {
            plans: HashMap::new(),
            next: 1,
        };
        for r in audit.all()? {
            if let Some(nonce) = r.detail.get("nonce").and_then(|n| n.as_str()) {
                // Records from before expiries were written keep their nonce for good.
                let until = r.detail.get("expires_ms").and_then(|e| e.as_i64());
                tokens.consume(nonce, until.unwrap_or(i64::MAX), now_ms());
            }
            if let Some(plan) = r
                .detail
                .get("plan")
                .and_then(|p| serde_json::from_value::<Plan>(p.clone()).ok())
            {
                if let Some(n) = plan
                    .id
                    .strip_prefix("PLAN-")
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                {
                    book.next = book.next.max(n + 1);
                }
                book.plans.insert(plan.id.clone(), plan);
            } else if r.kind == "step_end"
                && let Some(step) = r
                    .detail
                    .get("step")
                    .and_then(|s| serde_json::from_value::<StepRun>(s.clone()).ok())
                && let Some(plan) = book.plans.get_mut(&r.subject)
                && plan.execution.status == ExecutionStatus::Running
            {
                plan.execution.steps.push(step);
            }
        }
        // The log holds parameters with credentials masked: take them from the playbook.
        for plan in book.plans.values_mut() {
            if let Some(playbook) = playbooks.iter().find(|p| p.id == plan.playbook_id) {
                for (step, source) in plan.steps.iter_mut().zip(&playbook.steps) {
                    if step.name == source.name && step.action == source.action {
                        step.parameters = source.parameters.clone();
                    }
                }
            }
        }
        let interrupted: Vec<String> = book
            .plans
            .values()
            .filter(|p| p.execution.status == ExecutionStatus::Running)
            .map(|p| p.id.clone())
            .collect();
        for id in interrupted {
            if let Some(plan) = book.plans.get_mut(&id) {
                plan.execution.status = ExecutionStatus::Interrupted;
                plan.execution.finished_ms = Some(now_ms());
                plan.execution.reason = Some(
                    "the agent stopped while this plan ran; it is not resumed (check the targets)"
                        .into(),
                );
                audit.append(
                    "interrupted",
                    "agent",
                    &id,
                    json!({"plan": plan, "steps_done": plan.execution.steps.len()}),
                )?;
                tracing::warn!(plan = %id, steps_done = plan.execution.steps.len(), "plan was running when the agent stopped: marked interrupted");
            }
        }
        if !book.plans.is_empty() {
            tracing::info!(
                plans = book.plans.len(),
                "plans restored from the audit log"
            );
        }
        // Plans name incidents: those ids are taken even if the incidents file is lost.
        if let Some(max) = book
            .plans
            .values()
            .filter_map(|p| p.incident_id.strip_prefix("INC-"))
            .filter_map(|h| u64::from_str_radix(h, 16).ok())
            .max()
        {
            incidents.skip_ids_through(max);
        }
        Ok(Self {
            config,
            policy: std::sync::RwLock::new(Arc::new(Policy { risk, playbooks })),
            audit,
            book: Mutex::new(book),
            decide: tokio::sync::Mutex::new(()),
            tokens,
            executors,
            rails,
            incidents,
            notifier,
            outcomes: Mutex::default(),
            sample_clock,
        })
    }

    /// Writes every plan's state into its incident (after incidents are restored at start).
    pub fn sync_incidents(&self) {
        for plan in self.list() {
            self.note(&plan);
        }
    }

    /// Risk weights and playbooks in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces risk weights and playbooks (a reload): plans made from now on use them; plans
    /// already made keep the steps and risk they were approved on.
    pub fn set_policy(&self, risk: RiskConfig, playbooks: Vec<Playbook>) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Policy { risk, playbooks });
    }

    pub fn audit_log(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    pub fn dry_run(&self) -> bool {
        self.config.dry_run
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends off the async workers: the fsync may take a while.
    async fn record(
        &self,
        kind: &str,
        actor: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<(), AuditError> {
        let audit = self.audit.clone();
        let (kind, actor, subject) = (kind.to_string(), actor.to_string(), subject.to_string());
        tokio::task::spawn_blocking(move || audit.append(&kind, &actor, &subject, detail))
            .await
            .map_err(|e| AuditError::Io {
                path: self.audit.path().to_path_buf(),
                reason: std::io::Error::other(e),
            })?
            .map(|_| ())
    }

    pub fn get(&self, id: &str) -> Option<Plan> {
        self.lock().plans.get(id).cloned()
    }

    /// Plans, newest first.
    pub fn list(&self) -> Vec<Plan> {
        let mut all: Vec<Plan> = self.lock().plans.values().cloned().collect();
        all.sort_by_key(|p| std::cmp::Reverse(p.created_ms));
        all
    }

    /// Plans waiting for approval (expired ones are swept first).
    pub async fn pending(&self) -> Vec<Plan> {
        self.expire().await;
        self.list()
            .into_iter()
            .filter(|p| p.state == PlanState::PendingApproval)
            .collect()
    }

    pub fn outcomes(&self) -> BTreeMap<(String, String), u64> {
        self.outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn count(&self, action: Action, result: &str) {
        *self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((action.to_string(), result.to_string()))
            .or_default() += 1;
    }

    /// Plans for an analyzed incident, unless one is still in flight for it or its playbook
    /// already had a plan for it. Returns the new plan's id.
    pub async fn consider(self: &Arc<Self>, incident_id: &str) -> Option<String> {
        if !self.config.enabled {
            return None;
        }
        let incident = self.incidents.get(incident_id)?;
        if incident.state != IncidentState::Open {
            return None;
        }
        let _turn = self.decide.lock().await;
        let policy = self.policy();
        let plan = {
            let book = self.lock();
            let mine: Vec<&Plan> = book
                .plans
                .values()
                .filter(|p| p.incident_id == incident_id)
                .collect();
            if mine.iter().any(|p| !p.settled()) {
                return None;
            }
            let ctx = PlanContext {
                id: format!("PLAN-{:x}", book.next),
                now_ms: now_ms(),
                approval_ttl: self.config.approval_ttl,
                risk: &policy.risk,
            };
            let plan = plan_for(&incident, &policy.playbooks, &ctx)?;
            if mine.iter().any(|p| p.playbook_id == plan.playbook_id) {
                return None;
            }
            plan
        };
        if let Err(e) = self
            .record("plan", "planner", &plan.id, json!({"plan": plan}))
            .await
        {
            tracing::error!(incident = %incident_id, error = %e, "plan not made: the audit log cannot be written");
            return None;
        }
        {
            let mut book = self.lock();
            book.next += 1;
            book.plans.insert(plan.id.clone(), plan.clone());
        }
        self.note(&plan);
        tracing::info!(plan = %plan.id, incident = %incident_id, playbook = %plan.playbook_id, risk_level = ?plan.risk.level, risk = format!("{:.2}", plan.risk.score), steps = plan.steps.len(), requires_approval = plan.state == PlanState::PendingApproval, "action plan created");
        match plan.state {
            PlanState::Approved => self.start(&plan.id),
            PlanState::PendingApproval => {
                let links = self.links(&plan);
                if links.is_none() {
                    tracing::error!(plan = %plan.id, "approval links not signed (the OS random generator failed); approve through the API");
                }
                tracing::info!(plan = %plan.id, approvals_required = ?plan.approvals_required, "approval requested");
                self.notifier
                    .publish_plan("plan.approval_requested", plan.clone(), links);
            }
            _ => {
                self.notifier
                    .publish_plan("plan.diagnose_only", plan.clone(), None);
            }
        }
        Some(plan.id)
    }

    /// The incident's record of its plans.
    fn note(&self, plan: &Plan) {
        let status = if plan.state == PlanState::Approved {
            plan.execution.status.as_str().to_string()
        } else {
            serde_json::to_value(plan.state)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        };
        self.incidents.record_remediation(
            &plan.incident_id,
            RemediationNote {
                plan_id: plan.id.clone(),
                playbook_id: plan.playbook_id.clone(),
                status,
                dry_run: plan.execution.dry_run,
                actions: plan
                    .execution
                    .steps
                    .iter()
                    .map(|s| format!("{} {} on {}", s.status, s.action, s.target))
                    .collect(),
            },
        );
    }

    /// Changes one plan under the decision lock: `change` runs on a copy; the audit record is
    /// written first, then the copy replaces the plan. A refused change is audited as such.
    async fn decide_on(
        self: &Arc<Self>,
        plan_id: &str,
        actor: &str,
        kind: &str,
        extra: serde_json::Value,
        change: impl FnOnce(&mut Plan) -> Result<(), PlanError>,
    ) -> Result<Plan, RemediationError> {
        let _turn = self.decide.lock().await;
        let mut plan = self
            .get(plan_id)
            .ok_or_else(|| RemediationError::NotFound(plan_id.into()))?;
        let before = plan.state;
        if let Err(e) = change(&mut plan) {
            let mut detail = json!({"refused": kind, "reason": e.to_string()});
            merge(&mut detail, &extra);
            if plan.state != before {
                // Found expired on the way: that is a state change worth keeping.
                detail["plan"] = json!(plan);
                self.lock().plans.insert(plan.id.clone(), plan.clone());
            }
            self.record("refusal", actor, plan_id, detail).await?;
            self.note(&plan);
            tracing::warn!(plan = %plan_id, actor, action = kind, reason = %e, "plan decision refused");
            return Err(e.into());
        }
        let mut detail = json!({"plan": plan});
        merge(&mut detail, &extra);
        self.record(kind, actor, plan_id, detail).await?;
        self.lock().plans.insert(plan.id.clone(), plan.clone());
        self.note(&plan);
        Ok(plan)
    }

    pub async fn approve(
        self: &Arc<Self>,
        plan_id: &str,
        approver: &str,
        via: &str,
        extra: serde_json::Value,
    ) -> Result<Plan, RemediationError> {
        let now = now_ms();
        let plan = self
            .decide_on(plan_id, approver, "approval", extra, |p| {
                p.approve(approver, via, now).map(|_| ())
            })
            .await?;
        tracing::info!(plan = %plan_id, approver, via, state = ?plan.state, "plan approved");
        if plan.state == PlanState::Approved {
            self.start(plan_id);
        }
        Ok(plan)
    }

    pub async fn reject(
        self: &Arc<Self>,
        plan_id: &str,
        rejector: &str,
        reason: &str,
        via: &str,
        extra: serde_json::Value,
    ) -> Result<Plan, RemediationError> {
        let now = now_ms();
        let mut extra = extra;
        merge(&mut extra, &json!({"via": via, "reason": reason}));
        let plan = self
            .decide_on(plan_id, rejector, "rejection", extra, |p| {
                p.reject(rejector, reason, now)
            })
            .await?;
        tracing::info!(plan = %plan_id, rejector, reason, "plan rejected");
        self.notifier
            .publish_plan("plan.rejected", plan.clone(), None);
        Ok(plan)
    }

    /// Audits a request refused before it reached a plan (e.g. no bearer token).
    pub async fn audit_refused(&self, kind: &str, subject: &str, detail: serde_json::Value) {
        if let Err(e) = self.record(kind, "api", subject, detail).await {
            tracing::error!(error = %e, "refusal not audited");
        }
    }

    /// Pending plans past their expiry become expired (audited).
    pub async fn expire(&self) {
        let now = now_ms();
        let due: Vec<String> = self
            .lock()
            .plans
            .values()
            .filter(|p| p.state == PlanState::PendingApproval && now >= p.expires_ms)
            .map(|p| p.id.clone())
            .collect();
        for id in due {
            let _turn = self.decide.lock().await;
            let Some(mut plan) = self.get(&id) else {
                continue;
            };
            if plan.state != PlanState::PendingApproval {
                continue;
            }
            plan.state = PlanState::Expired;
            if self
                .record("expired", "agent", &id, json!({"plan": plan}))
                .await
                .is_ok()
            {
                self.lock().plans.insert(id.clone(), plan.clone());
                self.note(&plan);
                tracing::info!(plan = %id, "plan expired without approval; it will not run");
                self.notifier.publish_plan("plan.expired", plan, None);
            }
        }
    }

    fn start(self: &Arc<Self>, plan_id: &str) {
        let Some(approved) = self.get(plan_id).and_then(|p| p.approved(now_ms())) else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move { me.execute(approved).await });
    }
}

mod execution;
mod links;

fn merge(into: &mut serde_json::Value, extra: &serde_json::Value) {
    if let (Some(a), Some(b)) = (into.as_object_mut(), extra.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::test_support::analyzed_book;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sre-agent-remediator-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn open(d: &std::path::Path, incidents: Arc<IncidentBook>) -> Arc<Remediator> {
        let config = RemediationConfig {
            callback_secret: crate::config::Secret::new("a-stable-callback-secret"),
            ..RemediationConfig::default()
        };
        Arc::new(
            Remediator::open(
                d,
                Parts {
                    config,
                    risk: RiskConfig::default(),
                    playbooks: crate::decide::playbooks::load(None).unwrap(),
                    executors: Vec::new(),
                    incidents,
                    notifier: Notifier::default(),
                    sample_clock: Arc::default(),
                },
            )
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn pending_plans_and_used_links_survive_a_restart() {
        let d = dir("restart");
        // A bad deploy in trading: the rollback needs approval.
        let (book, incident) = analyzed_book("bad_deploy", "trading", "trading");
        let book = Arc::new(book);
        let r = open(&d, book.clone());
        let id = r.consider(&incident).await.expect("a plan");
        let plan = r.get(&id).unwrap();
        assert_eq!(plan.state, PlanState::PendingApproval, "{plan:?}");
        let links = r.links(&plan).expect("signed");
        let first = links.approve[0].rsplit('/').next().unwrap().to_string();
        r.callback(&first, Some("alice"), None).await.unwrap();
        let needed = plan.approvals_required.unwrap();
        drop(r);

        let again = open(&d, book.clone());
        let restored = again.get(&id).expect("plan restored from the audit log");
        assert_eq!(restored.approvals.len(), 1);
        assert_eq!(restored.approvals[0].approver, "alice");
        // The link used before the restart stays used.
        assert!(matches!(
            again.callback(&first, Some("mallory"), None).await,
            Err(RemediationError::Token(TokenError::Replayed))
        ));
        // The step parameters come back from the playbook, not from the masked log.
        assert_eq!(restored.steps, plan.steps);
        if needed == 2 {
            let p = again.approve(&id, "bob", "api", json!({})).await.unwrap();
            assert_eq!(p.state, PlanState::Approved);
        } else {
            assert_eq!(restored.state, PlanState::Approved);
        }
        // The same playbook is not planned twice for the incident.
        assert!(again.consider(&incident).await.is_none());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn a_wallet_incident_is_planned_but_never_run() {
        let d = dir("wallet");
        let (book, incident) = analyzed_book("memory_leak", "wallet", "wallet");
        let r = open(&d, Arc::new(book));
        let id = r.consider(&incident).await.unwrap();
        let plan = r.get(&id).unwrap();
        assert_eq!(plan.state, PlanState::DiagnoseOnly);
        assert!(plan.approved(now_ms()).is_none());
        assert!(matches!(
            r.approve(&id, "alice", "api", json!({})).await,
            Err(RemediationError::Plan(PlanError::DiagnoseOnly(_)))
        ));
        let kinds: Vec<String> = r
            .audit_log()
            .all()
            .unwrap()
            .into_iter()
            .map(|x| x.kind)
            .collect();
        assert_eq!(kinds, ["plan", "refusal"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Runs every action; its first apply turns the audit log into a full disk (`/dev/full`).
    struct DiskFillingExecutor {
        audit: std::path::PathBuf,
        applied: std::sync::atomic::AtomicUsize,
        undone: std::sync::atomic::AtomicUsize,
    }

    impl crate::act::executor::Executor for DiskFillingExecutor {
        fn name(&self) -> &'static str {
            "disk-filling"
        }
        fn handles(&self, _: Action) -> bool {
            true
        }
        fn inspect<'a>(
            &'a self,
            step: &'a crate::decide::plan::PlannedStep,
        ) -> crate::act::executor::ActFuture<'a, Option<crate::act::executor::LiveObject>> {
            Box::pin(async move {
                Ok(Some(crate::act::executor::LiveObject {
                    kind: "Pod".into(),
                    namespace: step.namespace.clone(),
                    name: step.target.clone(),
                    labels: Default::default(),
                    resource_version: None,
                }))
            })
        }
        fn apply<'a>(
            &'a self,
            _: &'a crate::act::safety::Cleared<'_>,
        ) -> crate::act::executor::ActFuture<'a, crate::act::executor::Applied> {
            Box::pin(async move {
                use std::sync::atomic::Ordering;
                if self.applied.fetch_add(1, Ordering::SeqCst) == 0 {
                    std::fs::remove_file(&self.audit).unwrap();
                    std::os::unix::fs::symlink("/dev/full", &self.audit).unwrap();
                }
                Ok(crate::act::executor::Applied {
                    before: json!({"replicas": 1}),
                    reversible: true,
                })
            })
        }
        fn undo<'a>(
            &'a self,
            _: &'a crate::decide::plan::PlannedStep,
            _: &'a serde_json::Value,
        ) -> crate::act::executor::ActFuture<'a, ()> {
            Box::pin(async move {
                self.undone
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_full_audit_disk_stops_the_plan_and_nothing_runs_unrecorded() {
        if !std::path::Path::new("/dev/full").exists() {
            eprintln!("skipped: no /dev/full to stand in for a full disk");
            return;
        }
        let d = dir("disk-full");
        let (book, incident) = analyzed_book("memory_leak", "risk", "infrastructure");
        let yaml = "id: two-steps\ntrigger_conditions: [memory_leak]\nrisk_override: 0.1\nsteps:\n  - name: first\n    action: pod_restart\n    target: '{{ target_pod }}'\n  - name: second\n    action: scale_deployment\n    target: '{{ deployment }}'\n";
        let executor = Arc::new(DiskFillingExecutor {
            audit: d.join(crate::act::audit::FILE),
            applied: Default::default(),
            undone: Default::default(),
        });
        let config = RemediationConfig {
            callback_secret: crate::config::Secret::new("a-stable-callback-secret"),
            dry_run: false,
            ..RemediationConfig::default()
        };
        let r = Arc::new(
            Remediator::open(
                &d,
                Parts {
                    config,
                    risk: RiskConfig::default(),
                    playbooks: crate::decide::playbooks::parse_all(&[(
                        "two.yaml".into(),
                        yaml.into(),
                    )])
                    .unwrap(),
                    executors: vec![executor.clone()],
                    incidents: Arc::new(book),
                    notifier: Notifier::default(),
                    sample_clock: Arc::default(),
                },
            )
            .unwrap(),
        );
        let id = r.consider(&incident).await.expect("a plan");
        let mut plan = r.get(&id).unwrap();
        for _ in 0..200 {
            plan = r.get(&id).unwrap();
            if plan.execution.finished_ms.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        use std::sync::atomic::Ordering;
        assert_eq!(plan.execution.status, ExecutionStatus::Failed, "{plan:?}");
        let reason = plan.execution.reason.clone().unwrap_or_default();
        assert!(reason.contains("audit log unavailable"), "{reason}");
        assert_eq!(
            executor.applied.load(Ordering::SeqCst),
            1,
            "the second step never ran"
        );
        assert_eq!(
            executor.undone.load(Ordering::SeqCst),
            0,
            "no rollback without its record"
        );
        let _ = std::fs::remove_file(d.join(crate::act::audit::FILE));
        let _ = std::fs::remove_dir_all(&d);
    }
}
