//! The demo end to end: simulator → real HTTP remote write → detection → webhook, scored
//! against the incidents it injected. The simulator and detectors are deterministic for a seed,
//! so the outcome is exact; the pace (wall time) does not change it.

use std::time::Duration;

use sre_agent::sim::demo::{DemoOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_detects_every_injected_incident_without_false_alarms() {
    sre_agent::net::install_crypto_provider();
    let mut config =
        sre_agent::Config::parse(sre_agent::config::DEFAULT_CONFIG, "test", |_| None).unwrap();
    // The knowledge base learns across runs; the test starts from an empty one.
    config.rca.knowledge_persist = false;
    let summary = run(DemoOptions {
        config,
        listen: "127.0.0.1:0".into(),
        duration: Some(Duration::from_secs(4)),
        seed: 7,
        verbose: false,
        data_dir: None,
        dry_run: false,
    })
    .await
    .expect("demo runs");
    eprintln!("{}", summary.render());
    assert_eq!(summary.write_errors, 0);
    assert_eq!(summary.scrapes, 840);
    assert_eq!(summary.incidents.len(), 4);
    assert_eq!(summary.detected, 4, "{:?}", summary.incidents);
    assert!(
        summary.false_alarms.is_empty(),
        "{:?}",
        summary.false_alarms
    );
    assert!(summary.notifications >= 4);
    // The memory leak is predicted from its forecast, before the OOM restart (40 min in).
    let leak = summary
        .incidents
        .iter()
        .find(|i| format!("{:?}", i.kind) == "MemoryLeak")
        .expect("leak incident");
    assert_eq!(
        leak.first_metric.as_deref(),
        Some("memory_usage"),
        "{leak:?}"
    );
    assert!(leak.delay_seconds.is_some_and(|d| d < 2400.0), "{leak:?}");
    // Root cause: the top RCA hypothesis (rules + correlation + the simulated cluster's
    // events, no LLM) is the injected cause for at least 85 % of incidents, i.e. all four.
    let correct = summary
        .incidents
        .iter()
        .filter(|i| i.cause_correct())
        .count();
    assert!(
        correct * 100 >= summary.incidents.len() * 85,
        "{:?}",
        summary.incidents
    );
    // Each injected incident is one agent incident (the leak: its prediction, then the OOM).
    for i in &summary.incidents {
        assert!(!i.agent_incidents.is_empty(), "{i:?}");
    }
    // Rendering names every incident and the verdict lines.
    let text = summary.render();
    assert!(text.contains("detected 4/4"));
    assert!(text.contains(&format!("root cause correct {correct}/4")));

    // Decide and act: a plan per incident, by the playbook its cause calls for.
    let by_playbook = |id: &str| {
        summary
            .plans
            .iter()
            .find(|p| p.playbook == id)
            .unwrap_or_else(|| panic!("no {id} plan: {text}"))
    };
    // The leak's restart needs no approval and ran against the simulated cluster.
    let restart = by_playbook("pod-restart");
    assert_eq!(
        (restart.risk_level.as_str(), restart.state.as_str()),
        ("AUTO", "approved")
    );
    assert!(
        restart.steps[0].starts_with("done pod_restart on risk/"),
        "{restart:?}"
    );
    // The bad deploy's rollback waited for two people, who approved through the links.
    let rollback = by_playbook("service-rollback");
    assert_eq!(rollback.approvers.len(), 2, "{rollback:?}");
    assert!(rollback.approvers.iter().all(|a| a.ends_with("(callback)")));
    assert!(rollback.steps[0].starts_with("done deployment_rollback on api/api-gateway"));
    // Wallets are never touched.
    let wallet = summary
        .plans
        .iter()
        .find(|p| p.incident_id == summary.incidents[3].agent_incidents[0])
        .expect("wallet plan");
    assert_eq!(wallet.state, "diagnose_only", "{wallet:?}");
    assert!(summary.approvals_by_link >= 2);
    assert!(
        summary
            .cluster_changes
            .iter()
            .any(|c| c.starts_with("DELETE /api/v1/namespaces/risk/pods/"))
    );
    assert!(
        summary
            .cluster_changes
            .iter()
            .any(|c| c == "PUT /apis/apps/v1/namespaces/api/deployments/api-gateway")
    );
    assert!(
        !summary
            .cluster_changes
            .iter()
            .any(|c| c.contains("/wallet/"))
    );
    assert!(
        summary.audit_intact && summary.audit_records >= 10,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_keeps_its_state_in_a_data_dir_across_runs() {
    sre_agent::net::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("sre-agent-demo-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let config =
            sre_agent::Config::parse(sre_agent::config::DEFAULT_CONFIG, "test", |_| None).unwrap();
        runs.push(
            run(DemoOptions {
                config,
                listen: "127.0.0.1:0".into(),
                duration: Some(Duration::from_secs(3)),
                seed: 7,
                verbose: false,
                data_dir: Some(dir.clone()),
                dry_run: true,
            })
            .await
            .expect("demo runs"),
        );
    }
    let ids = |i: usize| -> Vec<String> { runs[i].plans.iter().map(|p| p.id.clone()).collect() };
    assert!(!ids(0).is_empty());
    // The second run continues the first one's plans and audit chain; nothing is reused.
    assert!(
        ids(1).iter().all(|id| !ids(0).contains(id)),
        "{:?} {:?}",
        ids(0),
        ids(1)
    );
    assert!(runs[1].audit_records > runs[0].audit_records);
    assert!(runs[1].audit_intact);
    // A dry run changes nothing in the simulated cluster.
    assert!(runs.iter().all(|r| r.cluster_changes.is_empty()));
    assert!(runs[0].plans.iter().any(|p| p.outcome == "dry_run"));
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_sre-agent"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
