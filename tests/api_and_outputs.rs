//! Detection results over HTTP: the anomaly API, /metrics, webhooks and write-back.

mod common;

use std::time::Duration;

use common::*;

const LABELS: &[(&str, &str)] = &[
    ("__name__", "order_latency_p99"),
    ("namespace", "trading"),
    ("service", "order-service"),
    ("pod", "order-1"),
];

#[tokio::test]
async fn a_spike_fires_an_anomaly_visible_in_api_metrics_and_webhook() {
    let (hook, inbox) = receiver("/hook").await;
    let mut config = test_config();
    config.notification.webhook.url = hook;
    config.notification.webhook.events = vec![sre_agent::config::WebhookEvents::Anomaly];
    let agent = Agent::start(config).await;
    let start = now_ms() - 3_600_000;
    let mut fired_after = None;
    for (i, ts) in spike_series(LABELS, start, 120, 110)
        .into_iter()
        .enumerate()
    {
        assert_eq!(agent.write_v1(&[ts]).await.status(), 204);
        if fired_after.is_none() && agent.pipeline.book.active_count() > 0 {
            fired_after = Some(i);
        }
    }
    // Fires on the second anomalous sample (pending_samples = 2) or at once when critical.
    assert!(
        matches!(fired_after, Some(110) | Some(111)),
        "{fired_after:?}"
    );

    let list = agent.get_json("/api/v1/anomalies").await;
    assert_eq!(list["count"], 1);
    let a = &list["anomalies"][0];
    assert_eq!(a["metric"], "order_latency_p99");
    assert_eq!(a["category"], "trading");
    assert_eq!(a["state"], "firing");
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["direction"], "above");
    assert!(a["sigma"].as_f64().unwrap() >= 5.0);
    let id = a["id"].as_str().unwrap().to_string();

    // Filters.
    assert_eq!(
        agent.get_json("/api/v1/anomalies?category=wallet").await["count"],
        0
    );
    assert_eq!(
        agent.get_json("/api/v1/anomalies?severity=critical").await["count"],
        1
    );
    let bad = agent
        .client
        .get(agent.url("/api/v1/anomalies?severity=huge"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Detail and acknowledge.
    assert_eq!(
        agent.get_json(&format!("/api/v1/anomalies/{id}")).await["id"],
        id
    );
    let ack = agent
        .client
        .post(agent.url(&format!("/api/v1/anomalies/{id}/acknowledge")))
        .json(&serde_json::json!({"by": "sre@example.com", "comment": "looking"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), 200);
    let ack: serde_json::Value = ack.json().await.unwrap();
    assert_eq!(ack["acknowledged"]["by"], "sre@example.com");
    let missing = agent
        .client
        .get(agent.url("/api/v1/anomalies/ANO-ffff"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.json::<serde_json::Value>().await.unwrap()["error"].is_string());

    // vmanomaly-style series on /metrics: above 1 for the anomalous series, `for` = metric name.
    let m = agent.metrics_text().await;
    let line = m
        .lines()
        .find(|l| l.starts_with("anomaly_score{"))
        .expect("anomaly_score exported");
    assert!(line.contains("for=\"order_latency_p99\""), "{line}");
    assert!(
        line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() > 1.0,
        "{line}"
    );
    for name in ["yhat{", "yhat_lower{", "yhat_upper{"] {
        assert!(m.lines().any(|l| l.starts_with(name)), "{name}");
    }
    for name in [
        "sre_agent_samples_received_total",
        "sre_agent_samples_rejected_total",
        "sre_agent_series_active",
        "sre_agent_series_memory_bytes",
        "sre_agent_write_request_duration_seconds_bucket",
        "sre_agent_detection_duration_seconds_bucket",
        "sre_agent_anomalies_active{severity=\"critical\"} 1",
    ] {
        assert!(m.contains(name), "{name} missing from /metrics");
    }

    // Baselines and the series' ring.
    let b = agent
        .get_json("/api/v1/baselines?match=order_latency_p99")
        .await;
    assert_eq!(b["count"], 1);
    assert!(b["baselines"][0]["samples_seen"].as_u64().unwrap() >= 119);
    let sid = a["series_id"].as_str().unwrap();
    let s = agent.get_json(&format!("/api/v1/series/{sid}")).await;
    assert_eq!(s["samples"].as_array().unwrap().len(), 120);

    // The webhook saw the firing.
    let got = wait_until(Duration::from_secs(5), || async {
        !inbox.lock().unwrap().is_empty()
    })
    .await;
    assert!(got);
    let first: serde_json::Value = serde_json::from_slice(&inbox.lock().unwrap()[0]).unwrap();
    assert_eq!(first["event"], "anomaly.fired");
    assert_eq!(first["anomaly"]["id"], id);
    assert_eq!(first["anomaly"]["labels"]["pod"], "order-1");
}

#[tokio::test]
async fn a_dead_webhook_receiver_never_blocks_ingest() {
    let mut config = test_config();
    config.notification.webhook.url =
        format!("http://127.0.0.1:{}/nothing-listens-here", free_port());
    config.notification.webhook.max_retries = 1;
    config.notification.webhook.events = vec![
        sre_agent::config::WebhookEvents::Anomaly,
        sre_agent::config::WebhookEvents::Incident,
    ];
    let agent = Agent::start(config).await;
    let start = now_ms() - 3_600_000;
    for ts in spike_series(LABELS, start, 120, 100) {
        let t = std::time::Instant::now();
        assert_eq!(agent.write_v1(&[ts]).await.status(), 204);
        // Not a performance assertion: a blocked ingest would hang for the client timeout.
        assert!(t.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(agent.pipeline.book.active_count(), 1);
    let failed = wait_until(Duration::from_secs(10), || async {
        agent.pipeline.telemetry.channel_count("webhook", "failed") >= 1
    })
    .await;
    assert!(failed, "the failed delivery is counted");
}

#[tokio::test]
async fn writeback_remote_writes_the_anomaly_series() {
    let (url, inbox) = receiver("/api/v1/write").await;
    let mut config = test_config();
    config.writeback.url = url;
    config.writeback.interval = Duration::from_secs(1);
    let agent = Agent::start(config).await;
    let start = now_ms() - 3_600_000;
    for ts in spike_series(LABELS, start, 120, 115) {
        agent.write_v1(&[ts]).await;
    }
    let got = wait_until(Duration::from_secs(10), || async {
        !inbox.lock().unwrap().is_empty()
    })
    .await;
    assert!(got, "write-back arrived");
    let body = inbox.lock().unwrap()[0].clone();
    let mut batch = sre_agent::ingest::Batch::default();
    sre_agent::ingest::decode_request(sre_agent::ingest::Protocol::V1, &body, 1 << 24, &mut batch)
        .unwrap();
    let names: Vec<String> = batch
        .series
        .clone()
        .iter()
        .map(|s| String::from_utf8(batch.metric_name(s).unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for n in ["anomaly_score", "yhat", "yhat_lower", "yhat_upper"] {
        assert!(names.iter().any(|x| x == n), "{n}");
    }
    let s0 = batch.series[0].clone();
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = batch
        .label_pairs(&s0)
        .map(|(a, b)| (a.to_vec(), b.to_vec()))
        .collect();
    assert!(pairs.contains(&(b"for".to_vec(), b"order_latency_p99".to_vec())));
}

#[tokio::test]
async fn health_ready_live_status_and_catalog() {
    let agent = Agent::start(test_config()).await;
    for path in ["/health", "/ready", "/live"] {
        assert_eq!(
            agent
                .client
                .get(agent.url(path))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{path}"
        );
    }
    let status = agent.get_json("/api/v1/status").await;
    assert_eq!(status["running"], true);
    assert_eq!(status["active_anomalies"], 0);
    let catalog = agent.get_json("/api/v1/metrics").await;
    let metrics = catalog["metrics"].as_array().unwrap();
    assert!(
        metrics
            .iter()
            .any(|m| m["name"] == "balance_sync_latency" && m["category"] == "wallet")
    );
    let r = agent
        .client
        .get(agent.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = agent
        .client
        .get(agent.url("/api/v1/write"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn acknowledge_requires_the_api_token_when_one_is_set() {
    let mut config = test_config();
    config.api.auth_token = sre_agent::config::Secret::new("t0ken");
    let agent = Agent::start(config).await;
    let r = agent
        .client
        .post(agent.url("/api/v1/anomalies/ANO-1/acknowledge"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = agent
        .client
        .post(agent.url("/api/v1/anomalies/ANO-1/acknowledge"))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_full_notification_queue_answers_429_instead_of_dropping() {
    // A receiver that accepts connections and never answers: the worker hangs in its send
    // while the next notices fill the (tiny) queue.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut config = test_config();
    config.notification.webhook.url = hook;
    config.notification.webhook.queue_size = 2;
    config.notification.webhook.timeout_seconds = 60;
    config.notification.webhook.events = vec![sre_agent::config::WebhookEvents::Anomaly];
    let agent = Agent::start(config).await;
    let start = now_ms() - 3_600_000;
    let pod_labels = |pod: &'static str| {
        let mut l = LABELS.to_vec();
        l[3] = ("pod", pod);
        l
    };
    const PODS: [&str; 6] = ["p0", "p1", "p2", "p3", "p4", "p5"];
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..100i64 {
        for pod in PODS {
            let v = 100.0 + rng.f64() * 10.0;
            let ts = sre_agent_ts(&pod_labels(pod), start + i * 15_000, v);
            assert_eq!(agent.write_v1(&[ts]).await.status(), 204);
        }
    }
    // One pod after another spikes: each fires one anomaly, i.e. one notice.
    let mut refused = None;
    'pods: for (k, pod) in PODS.iter().enumerate() {
        for j in 0..3i64 {
            let ts = sre_agent_ts(
                &pod_labels(pod),
                start + (100 + k as i64 * 3 + j) * 15_000,
                500.0,
            );
            let r = agent.write_v1(&[ts]).await;
            if r.status() == 429 {
                refused = Some(r);
                break 'pods;
            }
            assert_eq!(r.status(), 204);
        }
    }
    let r = refused.expect("a write is refused once the webhook queue is nearly full");
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(msg.contains("webhook queue"), "{msg}");
    let t = &agent.pipeline.telemetry;
    assert_eq!(t.channel_count("webhook", "dropped"), 0);
    assert!(t.channel_count("webhook", "backpressure") >= 1);
}

fn sre_agent_ts(labels: &[(&str, &str)], ts: i64, v: f64) -> sre_agent::ingest::encode::TimeSeries {
    sre_agent::ingest::encode::TimeSeries::new(labels, &[(ts, v)])
}
