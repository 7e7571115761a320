//! Learned baselines survive a restart of the real binary (snapshot on SIGTERM, restore at
//! start), and move between agents through the export/import API.

mod common;

use std::time::Duration;

use common::{
    Agent, free_port, remote_write_request, scratch_dir, spike_series, start_agent_process,
    test_config, wait_ready, wait_until,
};

const LABELS: &[(&str, &str)] = &[("__name__", "queue_depth"), ("pod", "p1")];

async fn samples_seen(client: &reqwest::Client, port: u16) -> Option<u64> {
    let url = format!("http://127.0.0.1:{port}/api/v1/baselines?match=queue_depth");
    let body: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    body["baselines"][0]["samples_seen"].as_u64()
}

#[tokio::test]
async fn baselines_survive_a_restart_and_move_by_export_and_import() {
    sre_agent::net::install_crypto_provider();
    let dir = scratch_dir("persistence");
    let _ = std::fs::remove_file(dir.join("baselines.jsonl"));
    let client = reqwest::Client::new();
    let port = free_port();
    let mut agent = start_agent_process(&dir, port, &[]);
    let up = wait_ready(
        &client,
        &format!("http://127.0.0.1:{port}/ready"),
        Duration::from_secs(20),
    )
    .await;
    assert!(up, "agent did not start");

    let series = spike_series(LABELS, 1_700_000_000_000, 200, usize::MAX);
    let write = format!("http://127.0.0.1:{port}/api/v1/write");
    let resp = remote_write_request(&client, &write, &series)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(samples_seen(&client, port).await, Some(200));
    let export = client
        .get(format!("http://127.0.0.1:{port}/api/v1/baselines/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        export.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let exported = export.bytes().await.unwrap();
    assert_eq!(exported.iter().filter(|b| **b == b'\n').count(), 1);

    // SIGTERM: graceful shutdown writes the snapshot.
    let pid = agent.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let snapshot = std::fs::read_to_string(dir.join("baselines.jsonl")).expect("snapshot written");
    assert_eq!(snapshot.lines().count(), 1);

    // A new process knows the series' baseline before any new sample arrives.
    let port = free_port();
    let _agent = start_agent_process(&dir, port, &[]);
    let restored = wait_until(Duration::from_secs(20), || async {
        samples_seen(&client, port).await == Some(200)
    })
    .await;
    assert!(restored, "baseline not restored after restart");

    // The export moves the same baseline into another agent; import needs the API token.
    let mut config = test_config();
    config.api.auth_token = sre_agent::config::Secret::new("s3cret");
    let other = Agent::start(config).await;
    let url = other.url("/api/v1/baselines/import");
    let denied = other
        .client
        .post(&url)
        .body(exported.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let report: serde_json::Value = other
        .client
        .post(&url)
        .bearer_auth("s3cret")
        .body(exported)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["created"], 1, "{report}");
    assert_eq!(report["rejected"], 0, "{report}");
    let baselines = other.get_json("/api/v1/baselines?match=queue_depth").await;
    assert_eq!(baselines["baselines"][0]["samples_seen"], 200);
}
