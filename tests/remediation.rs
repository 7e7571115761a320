//! Decide and act over HTTP: an analyzed incident becomes a plan; AUTO plans run at once,
//! others wait for approval by API or by the signed callback links of the approval webhook;
//! the Kubernetes executor acts on an in-process fake API server speaking Kubernetes' real JSON
//! (`sre_agent::sim::cluster`; no real cluster runs here), the HTTP executor on a local
//! endpoint; safety rails, rollback and the audit log are checked from the outside.
#![cfg(feature = "kube")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Agent, metric_value, now_ms, receiver, test_config, write_pods};
use serde_json::{Value, json};
use sre_agent::act::executor::Executor;
use sre_agent::config::Config;
use sre_agent::sim::cluster::FakeCluster;

const TOKEN: &str = "test-api-token";

fn event(ns: &str, name: &str, reason: &str, kind: &str, object: &str, at_ms: i64) -> Value {
    let at = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(at_ms as u64),
    )
    .to_string();
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": at},
        "involvedObject": {"kind": kind, "name": object, "namespace": ns},
        "reason": reason, "message": format!("{reason} {object}"), "type": "Warning",
        "firstTimestamp": at, "lastTimestamp": at, "count": 1,
        "source": {"component": "kubelet"}
    })
}

/// A cluster with risk-service (two pods) and api-gateway (revision 2 after a rollout).
fn cluster(pod_labels: Value) -> FakeCluster {
    let c = FakeCluster::new();
    c.add_deployment("risk", "risk-service", 2, 1, json!({}));
    c.add_pod("risk", "risk-service", "risk-service-0", pod_labels);
    c.add_pod("risk", "risk-service", "risk-service-1", json!({}));
    c.add_deployment("api", "api-gateway", 3, 2, json!({}));
    c
}

fn live_config(api: &str) -> Config {
    let mut config = test_config();
    config.kubernetes.api_url = api.to_string();
    config.api.auth_token = sre_agent::config::Secret::new(TOKEN);
    config.auto_remediation.dry_run = false;
    config.auto_remediation.verification_window = Duration::from_secs(1);
    config
}

async fn agent_on(config: Config, with_executor: bool) -> Agent {
    sre_agent::net::install_crypto_provider();
    let events = sre_agent::analyze::kubernetes::event_source(&config.kubernetes).await;
    let mut executors: Vec<Arc<dyn Executor>> = Vec::new();
    if with_executor {
        let client = sre_agent::act::kubernetes::client(&config.kubernetes)
            .await
            .unwrap();
        executors.push(Arc::new(sre_agent::act::kubernetes::KubeExecutor::new(
            client,
        )));
    }
    Agent::start_with_parts(config, events, executors).await
}

/// risk-service-0's memory jumps to 93–95 % of its limit and the kubelet OOM-kills it.
async fn memory_leak(agent: &Agent, cluster: &FakeCluster) {
    let start = now_ms() - 3_600_000;
    cluster.put(event(
        "risk",
        "oom.1",
        "OOMKilled",
        "Pod",
        "risk-service-0",
        start + 112 * 15_000,
    ));
    let mut rng = fastrand::Rng::with_seed(5);
    let labels = [
        ("__name__", "memory_usage"),
        ("deployment", "risk-service"),
        ("namespace", "risk"),
        ("service", "risk-service"),
    ];
    write_pods(agent, start, &labels, "risk-service", 2, |p, i| {
        // A fast climb: remediation is under test here, not ramp detection.
        if p == 0 && i >= 110 {
            0.93 + 0.002 * (i - 110) as f64
        } else {
            0.5 + rng.f64() * 0.01
        }
    })
    .await;
}

/// The api-gateway's error rate jumps two minutes after a rollout.
async fn bad_deploy(agent: &Agent, cluster: &FakeCluster) {
    let start = now_ms() - 3_600_000;
    let mut rollout = event(
        "api",
        "rollout.1",
        "ScalingReplicaSet",
        "Deployment",
        "api-gateway",
        start + 110 * 15_000 - 120_000,
    );
    rollout["type"] = json!("Normal");
    cluster.put(rollout);
    let mut rng = fastrand::Rng::with_seed(11);
    let labels = [
        ("__name__", "api_error_rate"),
        ("deployment", "api-gateway"),
        ("namespace", "api"),
        ("service", "api-gateway"),
    ];
    write_pods(agent, start, &labels, "api-gateway", 3, |_, i| {
        if i >= 110 {
            0.09
        } else {
            0.002 + rng.f64() * 0.0005
        }
    })
    .await;
}

/// The first plan, once it satisfies `done`.
async fn plan_where(agent: &Agent, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        last = agent.get_json("/api/v1/plans").await["plans"][0].clone();
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let incidents = agent.get_json("/api/v1/incidents").await;
    panic!("plan never got there: {last:#}\nincidents: {incidents:#}");
}

/// A decision on a plan through the API (`approve` or `reject`), with the API token or without.
async fn decide(
    agent: &Agent,
    id: &str,
    action: &str,
    token: bool,
    body: Value,
) -> reqwest::Response {
    let mut request = agent
        .client
        .post(agent.url(&format!("/api/v1/approvals/{id}/{action}")))
        .json(&body);
    if token {
        request = request.bearer_auth(TOKEN);
    }
    request.send().await.unwrap()
}

fn finished(p: &Value) -> bool {
    !p.is_null()
        && !["not_started", "running"].contains(&p["execution"]["status"].as_str().unwrap_or(""))
}

async fn audit_kinds(agent: &Agent, plan: &str) -> Vec<String> {
    agent
        .get_json(&format!("/api/v1/audit?subject={plan}&limit=1000"))
        .await["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect()
}

fn audit_intact(agent: &Agent) -> u64 {
    let dir = Agent::audit_dir(agent);
    sre_agent::act::audit::verify(&dir.join(sre_agent::act::audit::FILE))
        .expect("audit chain intact")
        .records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_leak_restarts_the_pod_automatically_audited_before_and_after() {
    let c = cluster(json!({}));
    let api = c.serve().await.unwrap();
    let agent = agent_on(live_config(&api), true).await;
    memory_leak(&agent, &c).await;
    let plan = plan_where(&agent, finished).await;
    assert_eq!(plan["playbook_id"], "pod-restart", "{plan:#}");
    assert_eq!(plan["risk"]["level"], "AUTO");
    assert_eq!(plan["state"], "approved");
    // The data stopped with the leak at its peak: the restart is done but not verified.
    assert_eq!(plan["execution"]["status"], "unverified", "{plan:#}");
    assert_eq!(plan["execution"]["steps"][0]["status"], "done");
    assert_eq!(
        plan["execution"]["steps"][0]["target"],
        "risk/risk-service-0"
    );
    let deletes: Vec<_> = c
        .changes()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(
        deletes[0].path,
        "/api/v1/namespaces/risk/pods/risk-service-0"
    );
    assert_eq!(deletes[0].body["gracePeriodSeconds"], 30);
    assert!(c.get("Pod", "risk", "risk-service-1").is_some());
    let id = plan["id"].as_str().unwrap();
    assert_eq!(
        audit_kinds(&agent, id).await,
        [
            "plan",
            "execution_start",
            "step_start",
            "step_end",
            "execution_end"
        ]
    );
    assert!(audit_intact(&agent) >= 5);
    let metrics = agent.metrics_text().await;
    assert_eq!(
        metric_value(
            &metrics,
            "sre_agent_remediation_total{action=\"pod_restart\",result=\"success\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    let incident = agent
        .get_json(&format!(
            "/api/v1/incidents/{}",
            plan["incident_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(incident["remediation"][0]["status"], "unverified");
    assert_eq!(
        incident["remediation"][0]["actions"][0],
        "done pod_restart on risk/risk-service-0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_is_the_default_and_changes_nothing() {
    let c = cluster(json!({}));
    let api = c.serve().await.unwrap();
    let mut config = test_config();
    config.kubernetes.api_url = api;
    assert!(config.auto_remediation.dry_run, "dry run by default");
    let agent = agent_on(config, true).await;
    memory_leak(&agent, &c).await;
    let plan = plan_where(&agent, finished).await;
    assert_eq!(plan["execution"]["status"], "dry_run", "{plan:#}");
    assert_eq!(plan["execution"]["steps"][0]["status"], "dry_run");
    assert!(c.changes().is_empty(), "{:?}", c.changes());
    // The live pod was still read: the rails see its labels in a dry run too.
    assert!(
        c.requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == "/api/v1/namespaces/risk/pods/risk-service-0")
    );
    let id = plan["id"].as_str().unwrap();
    assert_eq!(
        audit_kinds(&agent, id).await,
        [
            "plan",
            "execution_start",
            "step_start",
            "step_end",
            "execution_end"
        ]
    );
    let metrics = agent.metrics_text().await;
    assert_eq!(
        metric_value(
            &metrics,
            "sre_agent_remediation_total{action=\"pod_restart\",result=\"dry_run\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blacklisted_label_on_the_live_pod_refuses_the_step() {
    let c = cluster(json!({"do-not-remediate": "true"}));
    let api = c.serve().await.unwrap();
    let agent = agent_on(live_config(&api), true).await;
    memory_leak(&agent, &c).await;
    let plan = plan_where(&agent, finished).await;
    assert_eq!(plan["execution"]["status"], "refused", "{plan:#}");
    let reason = plan["execution"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "Pod risk/risk-service-0 carries the blacklisted label do-not-remediate=true"
        ),
        "{reason}"
    );
    assert!(c.changes().is_empty());
    let id = plan["id"].as_str().unwrap();
    assert!(
        audit_kinds(&agent, id)
            .await
            .contains(&"refusal".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blacklisted_namespace_is_never_touched() {
    let c = cluster(json!({}));
    let api = c.serve().await.unwrap();
    let mut config = live_config(&api);
    config
        .auto_remediation
        .blacklist
        .namespaces
        .push("risk".into());
    let agent = agent_on(config, true).await;
    memory_leak(&agent, &c).await;
    let plan = plan_where(&agent, finished).await;
    assert_eq!(plan["execution"]["status"], "refused", "{plan:#}");
    assert!(
        plan["execution"]["reason"]
            .as_str()
            .unwrap()
            .contains("namespace risk is blacklisted")
    );
    assert!(c.changes().is_empty());
}

fn plan_events(inbox: &common::Inbox) -> Vec<Value> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
        .filter(|v| v["event"].as_str().is_some_and(|e| e.starts_with("plan.")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_deploy_is_rolled_back_after_approval_by_callback_links() {
    let c = cluster(json!({}));
    let api = c.serve().await.unwrap();
    let (hook, inbox) = receiver("/hook").await;
    let mut config = live_config(&api);
    config.notification.webhook.url = hook;
    let agent = agent_on(config, true).await;
    bad_deploy(&agent, &c).await;
    let plan = plan_where(&agent, |p| p["state"] == "pending_approval").await;
    assert_eq!(plan["playbook_id"], "service-rollback", "{plan:#}");
    let needed = plan["approvals_required"].as_u64().unwrap();
    assert!(needed >= 1, "{plan:#}");
    let id = plan["id"].as_str().unwrap().to_string();
    assert_eq!(
        agent.get_json("/api/v1/approvals").await["approvals"][0]["id"],
        id.as_str()
    );

    // The approval request arrives by webhook with one single-use approve link per approver.
    let mut request = Value::Null;
    for _ in 0..50 {
        if let Some(f) = plan_events(&inbox)
            .into_iter()
            .find(|e| e["event"] == "plan.approval_requested")
        {
            request = f;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!request.is_null(), "no approval request by webhook");
    // The links start with auto_remediation.public_url (its default here): point them at the agent.
    let links = &request["callbacks"];
    let approve: Vec<String> = links["approve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l.as_str()
                .unwrap()
                .replace("http://localhost:8000", &agent.url(""))
        })
        .collect();
    assert_eq!(approve.len() as u64, needed);

    // A GET (a chat client's link preview) decides nothing.
    let preview = agent.client.get(&approve[0]).send().await.unwrap();
    assert_eq!(preview.status(), 200);
    assert_eq!(
        agent.get_json(&format!("/api/v1/plans/{id}")).await["approvals"],
        json!([])
    );

    // Forged: a token of our own making.
    let forged = agent
        .client
        .post(agent.url("/api/v1/callbacks/UExBTi0xfGFwcHJvdmV8OTk5OTk5OTk5OTk5OXww.AAAA"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let post = |url: String, by: &'static str| {
        let client = agent.client.clone();
        async move {
            client
                .post(url)
                .json(&json!({"by": by}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        post(approve[0].clone(), "alice@exchange").await.status(),
        200
    );
    // Replayed: the same link again.
    let replay = post(approve[0].clone(), "mallory").await;
    assert_eq!(replay.status(), 403);
    assert!(replay.text().await.unwrap().contains("already used"));
    if needed == 2 {
        // The second link by the same person is refused: two distinct approvers.
        assert_eq!(
            post(approve[1].clone(), "alice@exchange").await.status(),
            409
        );
        let again = decide(
            &agent,
            &id,
            "approve",
            true,
            json!({"approver": "bob@exchange"}),
        )
        .await;
        assert_eq!(again.status(), 200);
    }
    let plan = plan_where(&agent, finished).await;
    assert_eq!(plan["state"], "approved");
    assert_eq!(plan["approvals"][0]["approver"], "alice@exchange");
    assert_eq!(plan["approvals"][0]["via"], "callback");
    assert_eq!(plan["execution"]["steps"][0]["status"], "done", "{plan:#}");
    // The deployment runs revision 1's image again, as `kubectl rollout undo` leaves it.
    let d = c.get("Deployment", "api", "api-gateway").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/api-gateway:v1"
    );
    assert!(d["spec"]["template"]["metadata"]["labels"]["pod-template-hash"].is_null());
    assert_eq!(
        plan["execution"]["steps"][0]["before"]["rolled_back_to"], 1,
        "{plan:#}"
    );
    let kinds = audit_kinds(&agent, &id).await;
    for k in [
        "plan",
        "approval",
        "refusal",
        "execution_start",
        "step_start",
        "step_end",
    ] {
        assert!(kinds.contains(&k.to_string()), "{k} in {kinds:?}");
    }
    // Forged and replayed tokens are audited (they name no trustworthy plan).
    let all = agent.get_json("/api/v1/audit?limit=1000").await["records"].clone();
    let refused: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "token_refused")
        .collect();
    assert_eq!(refused.len(), 2, "{all:#}");
    assert!(audit_intact(&agent) > 6);
    // Nothing secret in the audit log or the plans.
    let text = all.to_string() + &agent.get_json("/api/v1/plans").await.to_string();
    assert!(!text.contains(TOKEN));
    let outcome = plan_events(&inbox);
    assert!(
        outcome
            .iter()
            .any(|e| e["event"] == "plan.failed" || e["event"] == "plan.executed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_approvals_need_the_bearer_token_and_rejection_closes_the_plan() {
    let c = cluster(json!({}));
    let api = c.serve().await.unwrap();
    let agent = agent_on(live_config(&api), true).await;
    bad_deploy(&agent, &c).await;
    let plan = plan_where(&agent, |p| p["state"] == "pending_approval").await;
    let id = plan["id"].as_str().unwrap();
    let anonymous = decide(&agent, id, "approve", false, json!({"approver": "eve"})).await;
    assert_eq!(anonymous.status(), 401);
    let nameless = decide(&agent, id, "approve", true, json!({"approver": " "})).await;
    assert_eq!(nameless.status(), 400);
    let rejected = decide(
        &agent,
        id,
        "reject",
        true,
        json!({"rejector": "carol", "reason": "not during the auction"}),
    )
    .await;
    assert_eq!(rejected.status(), 200);
    let late = decide(&agent, id, "approve", true, json!({"approver": "dave"})).await;
    assert_eq!(late.status(), 409);
    let plan = agent.get_json(&format!("/api/v1/plans/{id}")).await;
    assert_eq!(plan["state"], "rejected");
    assert_eq!(
        plan["rejection"],
        json!(["carol", "not during the auction"])
    );
    assert_eq!(plan["execution"]["status"], "not_started");
    assert!(c.changes().is_empty());
    let kinds = audit_kinds(&agent, id).await;
    assert!(kinds.contains(&"unauthorized".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"rejection".to_string()), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| *k == "refusal").count() >= 2,
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_plan_is_never_executed() {
    let c = cluster(json!({}));
    let api = c.serve().await.unwrap();
    let mut config = live_config(&api);
    config.auto_remediation.approval_ttl = Duration::from_secs(2);
    let agent = agent_on(config, true).await;
    bad_deploy(&agent, &c).await;
    let plan = plan_where(&agent, |p| p["state"] == "pending_approval").await;
    let id = plan["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = decide(&agent, id, "approve", true, json!({"approver": "alice"})).await;
    assert_eq!(late.status(), 409);
    assert!(late.text().await.unwrap().contains("expired"));
    let plan = agent.get_json(&format!("/api/v1/plans/{id}")).await;
    assert_eq!(plan["state"], "expired");
    assert!(c.changes().is_empty());
    assert!(agent.get_json("/api/v1/approvals").await["count"] == 0);
}

/// A circuit breaker endpoint that fails: the HPA raised by the step before it is restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_rolls_back_the_completed_ones() {
    let c = cluster(json!({}));
    let api = c.serve().await.unwrap();
    let breaker_calls: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = breaker_calls.clone();
    let app = axum::Router::new().route(
        "/breaker",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(v);
                axum::http::StatusCode::BAD_REQUEST
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let breaker = format!("http://{}/breaker", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = common::scratch_dir("playbooks-rollback");
    std::fs::write(
        dir.join("scale-then-break.yaml"),
        format!(
            "id: scale-then-break\ntrigger_conditions: [\"memory_usage > 0.9\"]\nrisk_override: 0.1\nsteps:\n  - name: Raise HPA\n    action: hpa_scale\n    target: \"{{{{ deployment }}}}\"\n    parameters: {{min_replicas_increase: 2, max_replicas_increase: 4}}\n  - name: Open breaker\n    action: circuit_breaker\n    target: \"{{{{ service }}}}\"\n    parameters: {{url: \"{breaker}\"}}\n    timeout_seconds: 10\n"
        ),
    )
    .unwrap();
    let mut config = live_config(&api);
    config.auto_remediation.playbooks_dir = dir.display().to_string();
    let agent = agent_on(config, true).await;
    memory_leak(&agent, &c).await;
    let plan = plan_where(&agent, finished).await;
    assert_eq!(plan["execution"]["status"], "rolled_back", "{plan:#}");
    let statuses: Vec<&str> = plan["execution"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["done", "failed", "rolled_back"], "{plan:#}");
    let hpa = c
        .get("HorizontalPodAutoscaler", "risk", "risk-service")
        .unwrap();
    assert_eq!(hpa["spec"]["minReplicas"], 2, "restored: {hpa}");
    assert_eq!(hpa["spec"]["maxReplicas"], 6);
    let patches: Vec<Value> = c
        .changes()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.body)
        .collect();
    let specs: Vec<&Value> = patches.iter().map(|p| &p["spec"]).collect();
    assert_eq!(
        specs,
        [
            &json!({"minReplicas": 4, "maxReplicas": 10}),
            &json!({"minReplicas": 2, "maxReplicas": 6})
        ]
    );
    // The change is made only on the HPA the rails read; the undo restores whatever is there.
    assert!(
        patches[0]["metadata"]["resourceVersion"].is_string(),
        "{patches:?}"
    );
    assert!(patches[1].get("metadata").is_none(), "{patches:?}");
    // 400 is not retried; the breaker got the step's request once.
    let calls = breaker_calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["state"], "open");
    assert_eq!(calls[0]["target"], "risk-service");
    let kinds = audit_kinds(&agent, plan["id"].as_str().unwrap()).await;
    assert!(kinds.contains(&"rollback_start".to_string()), "{kinds:?}");
}

/// The rails read the object, then someone labels it do-not-remediate before the change: the
/// change carries the version the rails read, the API refuses it (409), and the rails, run
/// again, see the label. Nothing is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_added_between_the_rails_and_the_change_is_refused() {
    use sre_agent::act::executor::ActError;
    use sre_agent::act::safety::Rails;
    use sre_agent::decide::plan::PlannedStep;
    use sre_agent::model::action::Action;
    sre_agent::net::install_crypto_provider();
    let c = cluster(json!({}));
    let kubernetes = sre_agent::config::KubernetesConfig {
        api_url: c.serve().await.unwrap(),
        ..Default::default()
    };
    let client = sre_agent::act::kubernetes::client(&kubernetes)
        .await
        .unwrap();
    let executor = sre_agent::act::kubernetes::KubeExecutor::new(client);
    let rails = Rails::new(&live_config("").auto_remediation);
    let book = sre_agent::incident::IncidentBook::new(
        sre_agent::incident::IncidentParams::from_config(&Default::default()),
    );
    for (action, kind, target) in [
        (Action::PodRestart, "Pod", "risk-service-0"),
        (Action::ScaleDeployment, "Deployment", "risk-service"),
    ] {
        let step = PlannedStep {
            name: "act".into(),
            action,
            target: target.into(),
            namespace: "risk".into(),
            parameters: Default::default(),
            timeout_seconds: 10,
            idempotency_key: "PLAN-1.0".into(),
            idempotent: false,
        };
        let cleared = rails
            .check(&step, "PLAN-1", Some(&executor), &book, "INC-1")
            .await
            .expect("nothing protects the target yet");
        let mut object = c.get(kind, "risk", target).unwrap();
        object["metadata"]["labels"]["do-not-remediate"] = json!("true");
        c.put(object);
        let e = executor
            .apply(&cleared)
            .await
            .expect_err("changed since read");
        assert!(matches!(e, ActError::Conflict(_)), "{kind}: {e:?}");
        drop(cleared);
        let refused = rails
            .check(&step, "PLAN-1", Some(&executor), &book, "INC-1")
            .await
            .expect_err("the rails see the label now");
        assert!(refused.0.contains("do-not-remediate=true"), "{refused:?}");
    }
    // The refused requests reached the API, but changed nothing.
    assert!(
        c.get("Pod", "risk", "risk-service-0").is_some(),
        "the pod was not deleted"
    );
    let d = c.get("Deployment", "risk", "risk-service").unwrap();
    assert_eq!(d["spec"]["replicas"], 2, "the deployment was not scaled");
}

/// The Kubernetes executor, except that right after the rails' first read of a target someone
/// labels that pod do-not-remediate (as a person protecting it by hand would).
struct ProtectedAfterRead {
    inner: sre_agent::act::kubernetes::KubeExecutor,
    cluster: FakeCluster,
    labelled: std::sync::atomic::AtomicBool,
}

impl Executor for ProtectedAfterRead {
    fn name(&self) -> &'static str {
        "kubernetes"
    }
    fn handles(&self, action: sre_agent::model::action::Action) -> bool {
        self.inner.handles(action)
    }
    fn inspect<'a>(
        &'a self,
        step: &'a sre_agent::decide::plan::PlannedStep,
    ) -> sre_agent::act::executor::ActFuture<'a, Option<sre_agent::act::executor::LiveObject>> {
        Box::pin(async move {
            let live = self.inner.inspect(step).await;
            if !self
                .labelled
                .swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                let mut pod = self
                    .cluster
                    .get("Pod", &step.namespace, &step.target)
                    .unwrap();
                pod["metadata"]["labels"]["do-not-remediate"] = json!("true");
                self.cluster.put(pod);
            }
            live
        })
    }
    fn apply<'a>(
        &'a self,
        cleared: &'a sre_agent::act::safety::Cleared<'_>,
    ) -> sre_agent::act::executor::ActFuture<'a, sre_agent::act::executor::Applied> {
        self.inner.apply(cleared)
    }
    fn undo<'a>(
        &'a self,
        step: &'a sre_agent::decide::plan::PlannedStep,
        before: &'a Value,
    ) -> sre_agent::act::executor::ActFuture<'a, ()> {
        self.inner.undo(step, before)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_whose_target_is_protected_mid_step_is_refused_not_run() {
    let c = cluster(json!({}));
    let api = c.serve().await.unwrap();
    let config = live_config(&api);
    sre_agent::net::install_crypto_provider();
    let events = sre_agent::analyze::kubernetes::event_source(&config.kubernetes).await;
    let client = sre_agent::act::kubernetes::client(&config.kubernetes)
        .await
        .unwrap();
    let executor: Arc<dyn Executor> = Arc::new(ProtectedAfterRead {
        inner: sre_agent::act::kubernetes::KubeExecutor::new(client),
        cluster: c.clone(),
        labelled: Default::default(),
    });
    let agent = Agent::start_with_parts(config, events, vec![executor]).await;
    memory_leak(&agent, &c).await;
    let plan = plan_where(&agent, finished).await;
    assert_eq!(plan["execution"]["status"], "refused", "{plan:#}");
    let reason = plan["execution"]["reason"].as_str().unwrap();
    assert!(reason.contains("do-not-remediate=true"), "{reason}");
    assert!(
        c.get("Pod", "risk", "risk-service-0").is_some(),
        "the protected pod was not deleted"
    );
    assert!(
        c.changes().iter().all(|r| r.method != "DELETE"),
        "{:?}",
        c.changes()
    );
    let id = plan["id"].as_str().unwrap();
    assert!(
        audit_kinds(&agent, id)
            .await
            .contains(&"refusal".to_string())
    );
    audit_intact(&agent);
}
