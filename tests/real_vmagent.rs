//! A real vmagent (Debian `victoria-metrics` package) scrapes itself and remote-writes to the
//! agent with basic auth: every request accepted, no retries or drops, and both sides count the
//! same samples. Skips when vmagent is not installed, unless `SRE_AGENT_REQUIRE_REAL=1`.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmagent_remote_writes_with_basic_auth_and_counts_match() {
    sre_agent::net::install_crypto_provider();
    let Some(vmagent) = real_binary(&["vmagent"]) else {
        return;
    };
    let agent = Agent::start(basic_auth_config("vmagent", "vm-pw")).await;

    let dir = scratch_dir("vmagent");
    let port = free_port();
    std::fs::write(
        dir.join("scrape.yml"),
        format!("scrape_configs:\n  - job_name: vmagent\n    scrape_interval: 1s\n    static_configs: [{{targets: [\"127.0.0.1:{port}\"]}}]\n  - job_name: sre-agent\n    scrape_interval: 1s\n    static_configs: [{{targets: [\"{}\"]}}]\n", agent.addr),
    )
    .unwrap();
    let program = Spawned::start(
        &vmagent,
        &[
            format!("-promscrape.config={}", dir.join("scrape.yml").display()),
            format!("-remoteWrite.url=http://{}/api/v1/write", agent.addr),
            "-remoteWrite.basicAuth.username=vmagent".to_string(),
            "-remoteWrite.basicAuth.password=vm-pw".to_string(),
            "-remoteWrite.flushInterval=1s".to_string(),
            format!("-remoteWrite.tmpDataPath={}", dir.join("queue").display()),
            format!("-httpListenAddr=127.0.0.1:{port}"),
        ],
        dir.join("vmagent.log"),
    );
    let client = reqwest::Client::new();

    let sent_enough = wait_until(Duration::from_secs(60), || async {
        scrape_sum(&client, port, "vmagent_remotewrite_block_size_rows_sum")
            .await
            .unwrap_or(0.0)
            >= 5000.0
    })
    .await;
    let log = program.log_text();
    assert!(
        sent_enough,
        "vmagent did not send 5000 samples; its log:\n{log}"
    );

    let matched = counts_match(
        &agent,
        &client,
        port,
        "vmagent_remotewrite_block_size_rows_sum",
    )
    .await;
    let retries = scrape_sum(&client, port, "vmagent_remotewrite_retries_count_total")
        .await
        .unwrap_or(0.0);
    let dropped = scrape_sum(&client, port, "vmagent_remotewrite_packets_dropped_total")
        .await
        .unwrap_or(0.0);
    assert_eq!(
        (retries, dropped),
        (0.0, 0.0),
        "vmagent retried or dropped; its log:\n{log}"
    );
    let matched = matched.expect("sample counts never matched at a quiet instant");
    eprintln!("vmagent sent and the agent received {matched} samples; 0 retried, 0 dropped");
    let m = agent.metrics_text().await;
    assert!(
        m.lines()
            .filter(|l| l.starts_with("sre_agent_write_requests_total{"))
            .all(|l| l.contains("code=\"204\"")),
        "{m}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
