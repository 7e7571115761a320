//! A real Alertmanager 0.25 receives the agent's alerts, firing and then resolved, and notifies
//! a webhook receiver of both. Skips when Alertmanager is not installed, unless
//! `SRE_AGENT_REQUIRE_REAL=1`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use common::*;
use sre_agent::ingest::encode::TimeSeries;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_receives_firing_then_resolved() {
    sre_agent::net::install_crypto_provider();
    let Some(am) = real_binary(&["prometheus-alertmanager", "alertmanager"]) else {
        return;
    };

    // Where Alertmanager delivers its notifications.
    let notes: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = notes.clone();
    let app = axum::Router::new().route(
        "/am",
        post(move |Json(v): Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(v);
                axum::http::StatusCode::OK
            }
        }),
    );
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = hook.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(hook, app).await.unwrap() });

    let dir = scratch_dir("am");
    let port = free_port();
    std::fs::write(
        dir.join("am.yml"),
        format!(
            "route:\n  receiver: test\n  group_by: [alertname, metric]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: http://{hook_addr}/am\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let program = Spawned::start(
        &am,
        &[
            format!("--config.file={}", dir.join("am.yml").display()),
            format!("--storage.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".to_string(),
        ],
        dir.join("am.log"),
    );
    let client = reqwest::Client::new();
    let ready = format!("http://127.0.0.1:{port}/-/ready");
    let up = wait_ready(&client, &ready, Duration::from_secs(20)).await;
    assert!(up, "alertmanager did not start: {}", program.log_text());

    let mut config = test_config();
    config.notification.alertmanager.url = format!("http://127.0.0.1:{port}");
    let agent = Agent::start(config).await;
    let labels = [
        ("__name__", "api_error_rate"),
        ("namespace", "api"),
        ("service", "api-gateway"),
        ("pod", "gw-1"),
    ];
    let start = now_ms() - 3_600_000;
    let mut rng = fastrand::Rng::with_seed(8);
    let mut i = 0i64;
    let mut send = |v: f64| {
        i += 1;
        TimeSeries::new(&labels, &[(start + i * 15_000, v)])
    };
    for _ in 0..100 {
        let s = send(0.002 + rng.f64() * 0.0004);
        agent.write_v1(&[s]).await;
    }
    for _ in 0..3 {
        let s = send(0.09);
        agent.write_v1(&[s]).await;
    }
    assert_eq!(agent.pipeline.book.active_count(), 1);

    // Firing: visible in Alertmanager's API with our labels and annotations.
    let alerts_url = format!("http://127.0.0.1:{port}/api/v2/alerts");
    let mut seen = serde_json::Value::Null;
    for _ in 0..50 {
        let v: serde_json::Value = client
            .get(&alerts_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(a) = v
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["labels"]["alertname"] == "SREAgentAnomaly")
        {
            seen = a.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let firing = !seen.is_null();
    assert!(firing, "alert never reached Alertmanager");
    assert_eq!(seen["labels"]["metric"], "api_error_rate");
    assert_eq!(seen["labels"]["category"], "api");
    assert_eq!(seen["labels"]["pod"], "gw-1");
    assert_eq!(seen["status"]["state"], "active");
    assert!(
        seen["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("expected")
    );

    // Recovery resolves it: the alert leaves Alertmanager's active list and a resolved
    // notification goes out.
    for _ in 0..20 {
        let s = send(0.002 + rng.f64() * 0.0004);
        agent.write_v1(&[s]).await;
    }
    assert_eq!(agent.pipeline.book.active_count(), 0);
    let resolved = wait_until(Duration::from_secs(20), || async {
        notes
            .lock()
            .unwrap()
            .iter()
            .any(|n| n["status"] == "resolved")
    })
    .await;
    assert!(
        resolved,
        "no resolved notification; got {:?}",
        notes.lock().unwrap()
    );
    assert!(
        notes
            .lock()
            .unwrap()
            .iter()
            .any(|n| n["status"] == "firing")
    );
    let v: serde_json::Value = client
        .get(&alerts_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|a| a["labels"]["alertname"] != "SREAgentAnomaly"
                || a["status"]["state"] != "active")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
