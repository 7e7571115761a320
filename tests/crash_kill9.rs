//! `kill -9` at random points while the real binary ingests, opens an incident, plans and runs
//! an HTTP step: after a restart on the same data directory nothing a client was told about is
//! gone (every incident and plan a webhook receiver heard of is there), every audit record
//! written before the kill is still there in order, the chain verifies, and no step ran twice
//! (the step's endpoint counts calls by `Idempotency-Key`). Three kill points here (CI);
//! `SRE_AGENT_CRASH_ITERATIONS=20 cargo test --test crash_kill9 -- --nocapture` (or
//! `scripts/crash.sh`) runs twenty.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    ChildGuard, free_port, now_ms, receiver, remote_write_request, scratch_dir, wait_ready,
};
use serde_json::Value;
use sre_agent::ingest::encode::TimeSeries;

fn start(dir: &Path, port: u16, run: usize) -> ChildGuard {
    common::serve_binary(dir, port, &format!("agent-{run}.log"))
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

fn audit_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(sre_agent::act::audit::FILE))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Ids the webhook receiver was told about, by payload kind (`incident`, `plan`).
fn heard(inbox: &common::Inbox, kind: &str) -> BTreeSet<String> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
        .filter_map(|v| v[kind]["id"].as_str().map(String::from))
        .collect()
}

/// One life of the agent: write `rounds` rounds (the anomaly starts at round 110), wait
/// `linger`, then SIGKILL; restart and check.
async fn crash_once(iteration: usize, rounds: i64, linger: Duration, breaker: &str, calls: &Calls) {
    let dir = scratch_dir(&format!("kill9-{iteration}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("playbooks")).unwrap();
    std::fs::write(
        dir.join("playbooks/breaker.yaml"),
        format!(
            "id: breaker\ntrigger_conditions: [\"memory_usage > 0.9\"]\nrisk_override: 0.1\nsteps:\n  - name: Open breaker\n    action: circuit_breaker\n    target: \"{{{{ service }}}}\"\n    parameters: {{url: \"{breaker}\"}}\n    timeout_seconds: 30\n"
        ),
    )
    .unwrap();
    let (hook, inbox) = receiver("/hook").await;
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "api:\n  auth_token: crash-test-token\nanomaly_detection:\n  check_interval_seconds: 1\nstore:\n  snapshot_interval: 0s\nrca:\n  knowledge_persist: false\nkubernetes:\n  events: false\nnotification:\n  webhook:\n    url: {hook}\nauto_remediation:\n  dry_run: false\n  playbooks_dir: {}\n  verification_window: 1s\n",
            dir.join("playbooks").display()
        ),
    )
    .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let port = free_port();
    let mut agent = start(&dir, port, 0);
    assert!(
        wait_ready(
            &client,
            &format!("http://127.0.0.1:{port}/ready"),
            Duration::from_secs(30)
        )
        .await
    );
    let start_ms = now_ms() - 3_600_000;
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    for i in 0..rounds {
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
        let r = remote_write_request(&client, &url, &batch).send().await;
        assert!(r.is_ok_and(|r| r.status() == 204));
    }
    tokio::time::sleep(linger).await;
    let audited = audit_lines(&dir);
    agent.0.kill().unwrap(); // SIGKILL
    agent.0.wait().unwrap();
    // Whatever the receiver heard before the kill is what a client was told.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let incidents_heard = heard(&inbox, "incident");
    let plans_heard = heard(&inbox, "plan");

    let port2 = free_port();
    let _agent2 = start(&dir, port2, 1);
    assert!(
        wait_ready(
            &client,
            &format!("http://127.0.0.1:{port2}/ready"),
            Duration::from_secs(30)
        )
        .await,
        "not ready after the kill"
    );
    // A resumed step would run now: give it the chance, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let incidents: BTreeSet<String> = get(&client, port2, "/api/v1/incidents").await["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    let plans: BTreeSet<String> = get(&client, port2, "/api/v1/plans").await["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let now = audit_lines(&dir);
    println!(
        "kill {iteration} {:>5} ms after round {rounds}: incidents heard {} / kept {}, plans heard {} / kept {}, audit records before {} / after {}, step calls {:?}",
        linger.as_millis(),
        incidents_heard.len(),
        incidents.len(),
        plans_heard.len(),
        plans.len(),
        audited.len(),
        now.len(),
        calls.lock().unwrap()
    );
    assert!(
        incidents_heard.is_subset(&incidents),
        "incidents told to the receiver but lost: {:?}",
        incidents_heard.difference(&incidents).collect::<Vec<_>>()
    );
    assert!(
        plans_heard.is_subset(&plans),
        "plans told to the receiver but lost: {:?}",
        plans_heard.difference(&plans).collect::<Vec<_>>()
    );
    assert!(now.len() >= audited.len() && now[..audited.len()] == audited[..]);
    // Nothing audited yet (killed before any plan): there is no log to verify.
    if dir.join(sre_agent::act::audit::FILE).exists() {
        let verify = std::process::Command::new(env!("CARGO_BIN_EXE_sre-agent"))
            .args(["audit", "verify", "--data-dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(verify.status.success(), "{verify:?}");
    }
    for (key, n) in calls.lock().unwrap().iter() {
        assert!(*n <= 1, "step {key} ran {n} times");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

type Calls = Arc<Mutex<HashMap<String, u32>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_loses_nothing_told_and_runs_no_step_twice() {
    sre_agent::net::install_crypto_provider();
    let iterations: usize = std::env::var("SRE_AGENT_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/breaker",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string();
                *seen.lock().unwrap().entry(key).or_default() += 1;
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let breaker = format!("http://{}/breaker", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // Kill points spread over ingest (before round 110), detection, the incident, the plan and
    // its step (the rounds after, and the linger); seeded, so a failing point can be replayed.
    let mut rng = fastrand::Rng::with_seed(0x9e37);
    for it in 0..iterations {
        let rounds = rng.i64(100..=135);
        let linger = Duration::from_millis(rng.u64(0..1500));
        // Plan ids restart per data directory: count each life's calls apart.
        calls.lock().unwrap().clear();
        crash_once(it, rounds, linger, &breaker, &calls).await;
    }
}
