//! Write-back into a real Prometheus 2.42 started with `--web.enable-remote-write-receiver`:
//! the agent remote-writes `anomaly_score`/`yhat*` while samples keep arriving, Prometheus
//! accepts every batch (no duplicate- or out-of-order refusals), and a PromQL query finds
//! `anomaly_score > 1` for the anomalous series. Skips when `prometheus` is not installed,
//! unless `SRE_AGENT_REQUIRE_REAL=1` (CI) makes that a failure.

mod common;

use std::time::Duration;

use common::*;

const LABELS: &[(&str, &str)] = &[
    ("__name__", "order_latency_p99"),
    ("namespace", "trading"),
    ("service", "order-service"),
    ("pod", "order-1"),
];

async fn query(client: &reqwest::Client, port: u16, promql: &str) -> serde_json::Value {
    client
        .post(format!("http://127.0.0.1:{port}/api/v1/query"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(sre_agent::net::form_encode(&[(
            "query",
            promql.to_string(),
        )]))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("query json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writeback_lands_in_a_real_prometheus_and_promql_finds_the_anomaly() {
    sre_agent::net::install_crypto_provider();
    let Some((program, port, dir)) = prometheus_receiver("prom-writeback").await else {
        return;
    };
    let client = reqwest::Client::new();

    let mut config = test_config();
    config.writeback.url = format!("http://127.0.0.1:{port}/api/v1/write");
    config.writeback.interval = Duration::from_secs(1);
    config.writeback.export_all = true;
    let agent = Agent::start(config).await;

    // Half an hour of 15 s samples ending now, spiking for the last ten; sent in slices with
    // pauses so that several write-back ticks see the same and advancing timestamps.
    let n = 120;
    let start = now_ms() - (n as i64 - 1) * 15_000;
    let series = spike_series(LABELS, start, n, n - 10);
    for (i, ts) in series.into_iter().enumerate() {
        assert_eq!(agent.write_v1(&[ts]).await.status(), 204);
        if i % 30 == 0 || i >= n - 10 {
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
    assert!(agent.pipeline.book.active_count() > 0, "the spike fired");

    let promql = r#"anomaly_score{for="order_latency_p99",namespace="trading",pod="order-1"} > 1"#;
    let found = wait_until(Duration::from_secs(20), || async {
        let r = query(&client, port, promql).await;
        r["data"]["result"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    let log = program.log_text();
    assert!(
        found,
        "PromQL found no anomaly_score > 1; Prometheus log:\n{log}"
    );

    // The band came along with the score, under the source's labels.
    for name in ["yhat", "yhat_lower", "yhat_upper"] {
        let r = query(
            &client,
            port,
            &format!(r#"{name}{{for="order_latency_p99"}}"#),
        )
        .await;
        assert_eq!(
            r["data"]["result"].as_array().map(Vec::len),
            Some(1),
            "{name}: {r}"
        );
    }
    // Nothing was refused: every batch was sent, none failed or dropped.
    let channel = |result| {
        agent
            .pipeline
            .telemetry
            .channel_count("remote_write", result)
    };
    assert!(channel("sent") >= 3, "{log}");
    assert_eq!((channel("failed"), channel("dropped")), (0, 0), "{log}");
    assert!(
        !log.contains("Out of order sample") && !log.contains("duplicate sample"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
