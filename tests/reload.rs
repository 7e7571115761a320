//! Config reload on the real binary, as an operator does it: `kill -HUP` and `POST /-/reload`.
//! A broken playbook or config keeps the running one (the agent goes on serving, says why, and
//! `sre_agent_config_last_reload_successful` drops to 0); a good reload takes effect (a new
//! playbook, new RCA rules) without touching a series' baseline; keys that need a restart are
//! named.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    ChildGuard, free_port, metric_value, now_ms, remote_write_request, scratch_dir, wait_ready,
};
use serde_json::Value;
use sre_agent::ingest::encode::TimeSeries;

const PLAYBOOKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/playbooks");
const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/rca_rules.yaml");

fn write_config(dir: &Path, extra: &str) {
    let text = format!(
        "anomaly_detection:\n  check_interval_seconds: 1\nstore:\n  snapshot_interval: 0s\n{extra}rca:\n  rules_file: {}\n  knowledge_persist: false\nauto_remediation:\n  playbooks_dir: {}\n",
        dir.join("rules.yaml").display(),
        dir.join("playbooks").display()
    );
    std::fs::write(dir.join("config.yaml"), text).unwrap();
}

fn start(dir: &Path, port: u16) -> ChildGuard {
    common::serve_binary(dir, port, "agent.log")
}

fn hangup(agent: &ChildGuard) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &agent.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP failed");
}

async fn reload_gauge(client: &reqwest::Client, port: u16) -> Option<f64> {
    let text = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    metric_value(&text, "sre_agent_config_last_reload_successful")
}

async fn wait_gauge(client: &reqwest::Client, port: u16, want: f64) {
    for _ in 0..100 {
        if reload_gauge(client, port).await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "reload gauge never became {want}: {:?}",
        reload_gauge(client, port).await
    );
}

async fn post_reload(client: &reqwest::Client, port: u16) -> (u16, Value) {
    let r = client
        .post(format!("http://127.0.0.1:{port}/-/reload"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// samples_seen of the one series written.
async fn samples_seen(client: &reqwest::Client, port: u16) -> u64 {
    let v: Value = client
        .get(format!(
            "http://127.0.0.1:{port}/api/v1/baselines?match=order_latency_seconds"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["baselines"][0]["samples_seen"].as_u64().unwrap_or(0)
}

async fn write(client: &reqwest::Client, port: u16, from: i64, n: i64) {
    let start = now_ms() - 3_600_000;
    for i in from..from + n {
        let s = TimeSeries::new(
            &[("__name__", "order_latency_seconds"), ("service", "orders")],
            &[(start + i * 15_000, 0.1 + (i % 5) as f64 * 0.001)],
        );
        let url = format!("http://127.0.0.1:{port}/api/v1/write");
        let r = remote_write_request(client, &url, &[s])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_post_reload_keep_a_broken_config_out_and_baselines_in() {
    let dir = scratch_dir("reload");
    let books = dir.join("playbooks");
    let _ = std::fs::remove_dir_all(&books);
    std::fs::create_dir_all(&books).unwrap();
    for name in ["pod-restart.yaml", "service-rollback.yaml"] {
        std::fs::copy(Path::new(PLAYBOOKS).join(name), books.join(name)).unwrap();
    }
    std::fs::copy(RULES, dir.join("rules.yaml")).unwrap();
    write_config(&dir, "");
    let port = free_port();
    let agent = start(&dir, port);
    sre_agent::net::install_crypto_provider();
    let client = reqwest::Client::new();
    assert!(
        wait_ready(
            &client,
            &format!("http://127.0.0.1:{port}/ready"),
            Duration::from_secs(30)
        )
        .await
    );
    assert_eq!(reload_gauge(&client, port).await, Some(1.0));
    write(&client, port, 0, 60).await;
    let seen = samples_seen(&client, port).await;
    assert!(seen >= 60, "{seen}");

    // Unchanged files: a reload applies them and needs no restart.
    let (status, ok) = post_reload(&client, port).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["playbooks"], 2);
    assert_eq!(ok["restart_required"], serde_json::json!([]));

    // A broken playbook: SIGHUP keeps the running set, says why, and the agent serves on.
    std::fs::write(books.join("broken.yaml"), "id: broken\nsteps: [oops\n").unwrap();
    hangup(&agent);
    wait_gauge(&client, port, 0.0).await;
    write(&client, port, 60, 5).await;
    let (status, err) = post_reload(&client, port).await;
    assert_eq!(status, 500, "{err}");
    let reason = err["error"].as_str().unwrap();
    assert!(
        reason.contains("broken.yaml") && reason.contains("kept"),
        "{reason}"
    );
    let log = std::fs::read_to_string(dir.join("agent.log")).unwrap();
    assert!(
        log.contains("configuration reload failed") && log.contains("broken.yaml"),
        "{log}"
    );

    // A broken RCA rules file is refused the same way.
    std::fs::remove_file(books.join("broken.yaml")).unwrap();
    std::fs::write(dir.join("rules.yaml"), "rules: [\n").unwrap();
    let (status, err) = post_reload(&client, port).await;
    assert_eq!(status, 500, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("RCA rules"),
        "{err}"
    );
    std::fs::copy(RULES, dir.join("rules.yaml")).unwrap();

    // Fixed, with a third playbook: SIGHUP applies it.
    std::fs::copy(
        Path::new(PLAYBOOKS).join("hpa-scale-up.yaml"),
        books.join("hpa-scale-up.yaml"),
    )
    .unwrap();
    hangup(&agent);
    wait_gauge(&client, port, 1.0).await;
    let (status, ok) = post_reload(&client, port).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["playbooks"], 3, "{ok}");
    // The series kept its baseline: it counts on from where it was.
    write(&client, port, 65, 5).await;
    assert!(samples_seen(&client, port).await >= seen + 10);

    // A bad value in the config file is refused with its key and line.
    write_config(&dir, "  max_series: -3\n");
    let (status, err) = post_reload(&client, port).await;
    assert_eq!(status, 500);
    let reason = err["error"].as_str().unwrap();
    assert!(
        reason.contains("line 5") && reason.contains("max_series"),
        "{err}"
    );
    assert_eq!(reload_gauge(&client, port).await, Some(0.0));
    // A key that needs a restart is named and keeps its running value.
    write_config(&dir, "  max_series: 1000\n");
    let (status, ok) = post_reload(&client, port).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(
        ok["restart_required"],
        serde_json::json!(["store.max_series"])
    );
    assert_eq!(reload_gauge(&client, port).await, Some(1.0));
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
}
