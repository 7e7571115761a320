use super::*;
use crate::decide::playbooks::load;
use crate::decide::test_support::analyzed_incident;

fn ctx(risk: &RiskConfig) -> PlanContext<'_> {
    PlanContext {
        id: "PLAN-1".into(),
        now_ms: 10_000,
        approval_ttl: Duration::from_secs(900),
        risk,
    }
}

#[test]
fn a_memory_leak_gets_the_pod_restart_playbook_with_its_risk() {
    let w = RiskConfig::default();
    let incident = analyzed_incident("memory_leak", "risk", "infrastructure");
    let plan = plan_for(&incident, &load(None).unwrap(), &ctx(&w)).unwrap();
    assert_eq!(plan.playbook_id, "pod-restart");
    assert_eq!(plan.steps[0].target, "risk-service-0");
    assert_eq!(
        plan.steps[0].action,
        crate::model::action::Action::PodRestart
    );
    // risk_override 0.25: AUTO, no approval needed.
    assert_eq!(plan.risk.score, 0.25);
    assert_eq!(plan.state, PlanState::Approved);
    assert!(plan.approved(10_001).is_some());
    assert!(plan.risk.reasons.iter().any(|r| r.contains("overrides")));
}

#[test]
fn wallet_incidents_are_diagnose_only_whatever_the_playbook_says() {
    let w = RiskConfig::default();
    let incident = analyzed_incident("memory_leak", "wallet", "wallet");
    let mut plan = plan_for(&incident, &load(None).unwrap(), &ctx(&w)).unwrap();
    assert_eq!(plan.risk.level, RiskLevel::Critical);
    assert_eq!(plan.state, PlanState::DiagnoseOnly);
    assert_eq!(
        plan.approve("alice", "api", 10_001),
        Err(PlanError::DiagnoseOnly("PLAN-1".into()))
    );
    assert!(plan.approved(10_002).is_none());
}

#[test]
fn manual_plans_need_two_distinct_approvers_in_time() {
    let w = RiskConfig::default();
    let incident = analyzed_incident("bad_deploy", "trading", "trading");
    let mut plan = plan_for(&incident, &load(None).unwrap(), &ctx(&w)).unwrap();
    assert_eq!(plan.playbook_id, "service-rollback");
    // Force MANUAL to exercise the two-approver path regardless of the computed score.
    plan.approvals_required = Some(2);
    plan.state = PlanState::PendingApproval;
    assert!(plan.approved(10_001).is_none());
    assert_eq!(
        plan.approve("alice", "api", 10_001),
        Ok(PlanState::PendingApproval)
    );
    assert!(matches!(
        plan.approve("alice", "api", 10_002),
        Err(PlanError::SameApprover(..))
    ));
    assert!(matches!(
        plan.approve(" ", "api", 10_002),
        Err(PlanError::Anonymous)
    ));
    assert_eq!(plan.approve("bob", "api", 10_003), Ok(PlanState::Approved));
    assert!(plan.approved(10_004).is_some());
    assert!(
        plan.approved(plan.expires_ms).is_none(),
        "an expired approval is not executed"
    );

    let mut late = plan_for(&incident, &load(None).unwrap(), &ctx(&w)).unwrap();
    late.approvals_required = Some(1);
    late.state = PlanState::PendingApproval;
    let too_late = late.expires_ms;
    assert!(matches!(
        late.approve("alice", "api", too_late),
        Err(PlanError::Expired(_))
    ));
    assert_eq!(late.state, PlanState::Expired);

    let mut rejected = plan_for(&incident, &load(None).unwrap(), &ctx(&w)).unwrap();
    rejected.approvals_required = Some(1);
    rejected.state = PlanState::PendingApproval;
    rejected
        .reject("carol", "not during the auction", 10_001)
        .unwrap();
    assert!(matches!(
        rejected.approve("bob", "api", 10_002),
        Err(PlanError::Closed(_, "rejected"))
    ));
}

#[test]
fn no_playbook_no_plan() {
    let w = RiskConfig::default();
    let incident = analyzed_incident("metric:orderbook_depth", "matching", "matching");
    assert!(plan_for(&incident, &load(None).unwrap(), &ctx(&w)).is_none());
}

#[test]
fn credentials_in_step_parameters_never_serialize() {
    let mut p = std::collections::BTreeMap::new();
    p.insert(
        "url".to_string(),
        serde_json::json!("https://ops:hunter2@breaker.internal/open?token=abc123"),
    );
    p.insert("api_token".to_string(), serde_json::json!("s3cr3t-value"));
    p.insert("grace_period".to_string(), serde_json::json!(30));
    let step = PlannedStep {
        name: "s".into(),
        action: crate::model::action::Action::CircuitBreaker,
        target: "t".into(),
        namespace: "n".into(),
        parameters: p.clone(),
        timeout_seconds: 10,
        idempotency_key: "PLAN-1.0".into(),
        idempotent: false,
    };
    let text = serde_json::to_string(&step).unwrap();
    for secret in ["hunter2", "abc123", "s3cr3t-value"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(text.contains("breaker.internal") && text.contains("\"grace_period\":30"));
    // The executor still sees the real values.
    assert_eq!(step.parameters, p);
}
