//! Durability of plans and incidents: the real binary is killed with SIGKILL while a step is in
//! flight (an HTTP action whose endpoint never answers). After a restart on the same data
//! directory the plan is `interrupted`, never run again, every audited record is still there
//! and the chain verifies; the incident is back with the plan's outcome.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ChildGuard, free_port, now_ms, remote_write_request, scratch_dir, wait_ready};
use serde_json::Value;
use sre_agent::ingest::encode::TimeSeries;

fn start(dir: &std::path::Path, port: u16) -> ChildGuard {
    common::serve_binary(dir, port, &format!("agent-{port}.log"))
}

async fn get(client: &reqwest::Client, port: u16, path: &str) -> Value {
    client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_killed_mid_step_is_interrupted_never_rerun_and_nothing_audited_is_lost() {
    // An endpoint that takes the request and never answers.
    let calls: Arc<Mutex<u32>> = Arc::default();
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/breaker",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap() += 1;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let breaker = format!("http://{}/breaker", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = scratch_dir("crash");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("playbooks")).unwrap();
    std::fs::write(
        dir.join("playbooks/breaker.yaml"),
        format!(
            "id: breaker\ntrigger_conditions: [\"memory_usage > 0.9\"]\nrisk_override: 0.1\nsteps:\n  - name: Open breaker\n    action: circuit_breaker\n    target: \"{{{{ service }}}}\"\n    parameters: {{url: \"{breaker}\"}}\n    timeout_seconds: 600\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "api:\n  auth_token: crash-test-token\nanomaly_detection:\n  check_interval_seconds: 1\nstore:\n  snapshot_interval: 0s\nrca:\n  knowledge_persist: false\nkubernetes:\n  events: false\nauto_remediation:\n  dry_run: false\n  playbooks_dir: {}\n  verification_window: 1s\n",
            dir.join("playbooks").display()
        ),
    )
    .unwrap();
    sre_agent::net::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let port = free_port();
    let mut agent = start(&dir, port);
    assert!(
        wait_ready(
            &client,
            &format!("http://127.0.0.1:{port}/ready"),
            Duration::from_secs(30)
        )
        .await,
        "agent not ready"
    );
    let start_ms = now_ms() - 3_600_000;
    for i in 0..120i64 {
        let batch: Vec<TimeSeries> = (0..2)
            .map(|p| {
                let pod = format!("risk-service-{p}");
                let labels = [
                    ("__name__", "memory_usage"),
                    ("namespace", "risk"),
                    ("pod", pod.as_str()),
                    ("service", "risk-service"),
                ];
                let v = if p == 0 && i >= 110 {
                    0.95
                } else {
                    0.5 + (i % 7) as f64 * 0.001
                };
                TimeSeries::new(&labels, &[(start_ms + i * 15_000, v)])
            })
            .collect();
        let r = remote_write_request(
            &client,
            &format!("http://127.0.0.1:{port}/api/v1/write"),
            &batch,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 204);
    }
    // The step is in flight: its request reached the endpoint, the plan is running.
    let mut plan = Value::Null;
    for _ in 0..150 {
        plan = get(&client, port, "/api/v1/plans").await["plans"][0].clone();
        if plan["execution"]["status"] == "running" && *calls.lock().unwrap() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(plan["execution"]["status"], "running", "{plan:#}");
    let id = plan["id"].as_str().unwrap().to_string();
    let incident_id = plan["incident_id"].as_str().unwrap().to_string();
    // Incidents are saved at the event; a moment for the save that follows the plan's note.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audit_path = dir.join(sre_agent::act::audit::FILE);
    let before: Vec<String> = std::fs::read_to_string(&audit_path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    agent.0.kill().unwrap(); // SIGKILL
    agent.0.wait().unwrap();

    let port2 = free_port();
    let _agent2 = start(&dir, port2);
    assert!(
        wait_ready(
            &client,
            &format!("http://127.0.0.1:{port2}/ready"),
            Duration::from_secs(30)
        )
        .await,
        "agent not ready after the crash"
    );
    let after = get(&client, port2, &format!("/api/v1/plans/{id}")).await;
    assert_eq!(after["execution"]["status"], "interrupted", "{after:#}");
    assert_eq!(after["state"], "approved");
    // Never run twice: give a resumption every chance to happen, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(*calls.lock().unwrap(), 1);
    // Every record written before the kill is still there, in order, and the chain holds.
    let now: Vec<String> = std::fs::read_to_string(&audit_path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(&now[..before.len()], &before[..]);
    let kinds: Vec<String> = now
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        ["plan", "execution_start", "step_start", "interrupted"],
        "{kinds:?}"
    );
    sre_agent::act::audit::verify(&audit_path).expect("audit chain intact");
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_sre-agent"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    // The incident came back, with the plan's outcome.
    let incident = get(&client, port2, &format!("/api/v1/incidents/{incident_id}")).await;
    assert_eq!(incident["id"], incident_id.as_str(), "{incident:#}");
    assert_eq!(incident["remediation"][0]["plan_id"], id.as_str());
    assert_eq!(incident["remediation"][0]["status"], "interrupted");
}
