//! A real Prometheus 2.42 remote-writes to the agent with basic auth: nothing fails and both
//! sides count the same samples. Skips when `prometheus` is not installed, unless
//! `SRE_AGENT_REQUIRE_REAL=1` (CI) makes that a failure.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_writes_with_basic_auth_and_counts_match() {
    sre_agent::net::install_crypto_provider();
    let Some(prometheus) = real_binary(&["prometheus"]) else {
        return;
    };
    let agent = Agent::start(basic_auth_config("prometheus", "remote-write-pw")).await;

    let dir = scratch_dir("prom");
    let port = free_port();
    let yml = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: sre-agent
    static_configs: [{{targets: ["{agent}"]}}]
remote_write:
  - url: http://{agent}/api/v1/write
    basic_auth: {{username: prometheus, password: remote-write-pw}}
    queue_config: {{batch_send_deadline: 1s, max_samples_per_send: 2000, min_backoff: 100ms, max_backoff: 1s}}
    metadata_config: {{send_interval: 2s}}
"#,
        agent = agent.addr
    );
    std::fs::write(dir.join("prometheus.yml"), yml).unwrap();
    let program = Spawned::start(
        &prometheus,
        &[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        dir.join("prometheus.log"),
    );
    let client = reqwest::Client::new();

    // Let it send for a while: several thousand samples and a few metadata requests.
    let sent_enough = wait_until(Duration::from_secs(60), || async {
        scrape_sum(&client, port, "prometheus_remote_storage_samples_total")
            .await
            .unwrap_or(0.0)
            >= 5000.0
            && agent
                .pipeline
                .telemetry
                .metadata_received
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
    })
    .await;
    let log = program.log_text();
    assert!(
        sent_enough,
        "Prometheus did not send 5000 samples; its log:\n{log}"
    );

    // Counts are compared at a quiet instant: ours, theirs, ours again, all equal.
    let matched = counts_match(
        &agent,
        &client,
        port,
        "prometheus_remote_storage_samples_total",
    )
    .await;
    let failed = scrape_sum(
        &client,
        port,
        "prometheus_remote_storage_samples_failed_total",
    )
    .await
    .unwrap_or(0.0);
    let retried = scrape_sum(
        &client,
        port,
        "prometheus_remote_storage_samples_retried_total",
    )
    .await
    .unwrap_or(0.0);
    let dropped = scrape_sum(
        &client,
        port,
        "prometheus_remote_storage_samples_dropped_total",
    )
    .await
    .unwrap_or(0.0);
    assert_eq!(
        (failed, retried, dropped),
        (0.0, 0.0, 0.0),
        "Prometheus reported failures; its log:\n{log}"
    );
    let matched = matched.expect("sample counts never matched at a quiet instant");
    eprintln!("Prometheus sent and the agent received {matched} samples; 0 failed, 0 retried");
    assert!(matched >= 5000.0);
    // Every request was accepted with 204 (no 4xx for anything Prometheus sends).
    let m = agent.metrics_text().await;
    assert!(
        m.lines()
            .filter(|l| l.starts_with("sre_agent_write_requests_total{"))
            .all(|l| l.contains("code=\"204\"")),
        "{m}"
    );
    assert!(agent.pipeline.store.series_count() > 100);
    let _ = std::fs::remove_dir_all(&dir);
}
