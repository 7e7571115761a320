//! A real Prometheus 2.42 against the agent's backpressure: the webhook receiver hangs, so the
//! agent's webhook queue fills and every write is answered 429 with `Retry-After`; Prometheus
//! (with `retry_on_http_429: true`, which 2.x needs: without it a 429 drops the batch) retries;
//! once the receiver answers again the queue drains, the retries are taken, and both sides count
//! the same samples with none failed or dropped. Skips without `prometheus` unless
//! `SRE_AGENT_REQUIRE_REAL=1`.

mod common;

use std::time::Duration;

use common::*;

const LABELS: [(&str, &str); 4] = [
    ("__name__", "order_latency_p99"),
    ("namespace", "trading"),
    ("pod", "order-1"),
    ("service", "order-service"),
];

/// A webhook receiver that holds every request until released, then answers 200.
async fn held_receiver() -> (String, tokio::sync::watch::Sender<bool>) {
    let (release, watch) = tokio::sync::watch::channel(false);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let mut watch = watch.clone();
            async move {
                let _ = watch.wait_for(|released| *released).await;
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, release)
}

async fn received(agent: &Agent) -> f64 {
    metric_value(
        &agent.metrics_text().await,
        "sre_agent_samples_received_total",
    )
    .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_retries_the_429s_and_loses_no_sample() {
    sre_agent::net::install_crypto_provider();
    let Some(prometheus) = real_binary(&["prometheus"]) else {
        return;
    };
    let (hook, release) = held_receiver().await;
    let mut config = test_config();
    config.notification.webhook.url = hook;
    config.notification.webhook.queue_size = 2;
    config.notification.webhook.timeout_seconds = 120;
    config.notification.webhook.events = vec![sre_agent::config::WebhookEvents::Anomaly];
    let agent = Agent::start(config).await;

    // Spikes of pod after pod fill the webhook queue until the agent refuses writes, and still
    // refuses a second later: then the worker is hung in its send and cannot drain the queue
    // (a first 429 can come while it is still moving notices into its outbox).
    let start = now_ms() - 3_600_000;
    let mut rng = fastrand::Rng::with_seed(7);
    let pods: Vec<String> = (0..40).map(|k| format!("p{k}")).collect();
    let series = |pod: &str, ts: i64, v: f64| {
        let mut labels = LABELS.to_vec();
        labels[2] = ("pod", pod);
        sre_agent::ingest::encode::TimeSeries::new(&labels, &[(ts, v)])
    };
    for i in 0..100i64 {
        let batch: Vec<_> = pods
            .iter()
            .map(|pod| series(pod, start + i * 15_000, 100.0 + rng.f64() * 10.0))
            .collect();
        assert_eq!(agent.write_v1(&batch).await.status(), 204);
    }
    let mut refusing = false;
    'pods: for (k, pod) in pods.iter().enumerate() {
        for j in 0..3i64 {
            let s = series(pod, start + (100 + k as i64 * 3 + j) * 15_000, 500.0);
            if agent.write_v1(&[s]).await.status() == 429 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let probe = series(&pods[0], start + 99 * 15_000, 100.0);
                if agent.write_v1(&[probe]).await.status() == 429 {
                    refusing = true;
                    break 'pods;
                }
            }
        }
    }
    assert!(refusing, "the agent never pushed back for good");
    let offset = received(&agent).await;

    let dir = scratch_dir("prom-backpressure");
    let port = free_port();
    let yml = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
remote_write:
  - url: http://{agent}/api/v1/write
    queue_config: {{batch_send_deadline: 1s, max_samples_per_send: 2000, min_backoff: 100ms, max_backoff: 2s, retry_on_http_429: true}}
    metadata_config: {{send: false}}
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
    // Prometheus meets the 429s and retries.
    let retried = wait_until(Duration::from_secs(40), || async {
        scrape_sum(
            &client,
            port,
            "prometheus_remote_storage_samples_retried_total",
        )
        .await
        .unwrap_or(0.0)
            > 0.0
    })
    .await;
    let m = agent.metrics_text().await;
    let requests: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("sre_agent_write_requests_total{") || l.contains("backpressure"))
        .collect();
    let theirs = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let remote: Vec<&str> = theirs
        .lines()
        .filter(|l| {
            l.starts_with("prometheus_remote_storage_samples")
                || l.starts_with("prometheus_remote_storage_enqueue")
        })
        .collect();
    assert!(
        retried,
        "no retries seen; agent: {requests:#?}\nprometheus: {remote:#?}"
    );
    assert_eq!(
        received(&agent).await,
        offset,
        "nothing taken while refusing"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;

    // The receiver answers again: the queue drains and the writes are taken.
    release.send(true).unwrap();
    let caught_up = wait_until(Duration::from_secs(60), || async {
        received(&agent).await - offset >= 3000.0
    })
    .await;
    assert!(caught_up, "writes not taken after the queue drained");
    // Prometheus 2.x counts `samples_total` on every attempt, retries included: what it
    // delivered is that minus `samples_retried_total`.
    let mut matched = None;
    let mut last = (0.0, 0.0, 0.0);
    for _ in 0..200 {
        let ours = received(&agent).await - offset;
        let attempts = scrape_sum(&client, port, "prometheus_remote_storage_samples_total")
            .await
            .unwrap_or(-2.0);
        let retried = scrape_sum(
            &client,
            port,
            "prometheus_remote_storage_samples_retried_total",
        )
        .await
        .unwrap_or(-2.0);
        let again = received(&agent).await - offset;
        last = (ours, attempts, retried);
        if ours == attempts - retried && ours == again {
            matched = Some(ours);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = program.log_text();
    let failed = scrape_sum(
        &client,
        port,
        "prometheus_remote_storage_samples_failed_total",
    )
    .await
    .unwrap_or(-1.0);
    let dropped = scrape_sum(
        &client,
        port,
        "prometheus_remote_storage_samples_dropped_total",
    )
    .await
    .unwrap_or(-1.0);
    let retried = scrape_sum(
        &client,
        port,
        "prometheus_remote_storage_samples_retried_total",
    )
    .await
    .unwrap_or(0.0);
    assert_eq!(
        (failed, dropped),
        (0.0, 0.0),
        "Prometheus lost samples; log:\n{log}"
    );
    let matched = matched.unwrap_or_else(|| {
        panic!("counts never matched (ours, their attempts, their retries): {last:?}")
    });
    let t = &agent.pipeline.telemetry;
    assert_eq!(t.channel_count("webhook", "dropped"), 0);
    let refused = t.channel_count("webhook", "backpressure");
    eprintln!(
        "Prometheus: {retried} samples retried after 429s ({refused} requests refused), then {matched} sent and received, 0 failed, 0 dropped"
    );
    assert!(refused >= 2);
    let _ = std::fs::remove_dir_all(&dir);
}
