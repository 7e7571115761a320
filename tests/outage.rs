//! A webhook receiver down for a minute (`SRE_AGENT_OUTAGE_SECONDS`, 300 in
//! `scripts/outage.sh`) while the real binary ingests and opens incidents: ingest is unaffected
//! (every write 204), nothing is received while it is down, and once it is back every
//! notification arrives, each once by `notification_id`, in order per incident, with nothing
//! dropped.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, metric_value, now_ms, remote_write_request, scratch_dir, wait_ready};
use serde_json::Value;
use sre_agent::ingest::encode::TimeSeries;

type Got = Arc<Mutex<Vec<Value>>>;

/// A receiver that answers 503 while `down`, else 200 and keeps the body.
async fn receiver(down: Arc<AtomicBool>) -> (String, Got) {
    let got: Got = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (down, keep) = (down.clone(), keep.clone());
            async move {
                if down.load(Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                if let Ok(v) = serde_json::from_slice(&body) {
                    keep.lock().unwrap().push(v);
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

async fn metrics(client: &reqwest::Client, port: u16) -> String {
    client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn webhook(text: &str, result: &str) -> f64 {
    metric_value(
        text,
        &format!("sre_agent_notifications_total{{channel=\"webhook\",result=\"{result}\"}}"),
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_minute_gets_every_notification_once_back() {
    let outage = Duration::from_secs(
        std::env::var("SRE_AGENT_OUTAGE_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    );
    let down = Arc::new(AtomicBool::new(true));
    let (hook, got) = receiver(down.clone()).await;
    let dir = scratch_dir("outage");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "anomaly_detection:\n  check_interval_seconds: 1\nstore:\n  snapshot_interval: 0s\nrca:\n  knowledge_persist: false\nkubernetes:\n  events: false\nincidents:\n  window: 1m\nnotification:\n  webhook:\n    url: {hook}\n    events: [incident, anomaly]\n    max_retries: 3\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _agent = common::serve_binary(&dir, port, "agent.log");
    sre_agent::net::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(
        wait_ready(
            &client,
            &format!("http://127.0.0.1:{port}/ready"),
            Duration::from_secs(30)
        )
        .await
    );
    let began = tokio::time::Instant::now();
    // Three services, each with a jump that fires and then ends, written during the outage.
    let start = now_ms() - 3_600_000;
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    for i in 0..200i64 {
        let batch: Vec<TimeSeries> = ["orders", "matching", "wallet"]
            .iter()
            .enumerate()
            .map(|(k, svc)| {
                let jump = (110 + 20 * k as i64..118 + 20 * k as i64).contains(&i);
                let v = if jump {
                    0.95
                } else {
                    0.5 + (i % 7) as f64 * 0.001
                };
                TimeSeries::new(
                    &[
                        ("__name__", "memory_usage"),
                        ("namespace", svc),
                        ("pod", &format!("{svc}-0")),
                        ("service", svc),
                    ],
                    &[(start + i * 15_000, v)],
                )
            })
            .collect();
        let r = remote_write_request(&client, &url, &batch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "ingest is unaffected by the outage");
    }
    // Let the incidents' steps happen (the upkeep runs each second) while it is still down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = metrics(&client, port).await;
    let produced = webhook(&during, "retried");
    assert!(produced >= 1.0, "the agent tried and was refused: {during}");
    tokio::time::sleep_until(began + outage).await;
    assert!(got.lock().unwrap().is_empty(), "nothing arrives while down");
    down.store(false, Ordering::SeqCst);

    // Back: everything held arrives. Wait until the agent has nothing left to send.
    let mut text = String::new();
    for _ in 0..300 {
        text = metrics(&client, port).await;
        if webhook(&text, "sent") as usize == got.lock().unwrap().len()
            && got.lock().unwrap().len() >= 3
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let again = metrics(&client, port).await;
            if webhook(&again, "sent") == webhook(&text, "sent") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(webhook(&text, "dropped"), 0.0, "{text}");
    assert_eq!(webhook(&text, "sent") as usize, got.len());
    let ids: Vec<&str> = got
        .iter()
        .map(|v| v["notification_id"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "each once");
    // Per incident, the steps arrive in the order they happened (`detected_at`, when the agent
    // made them), the opening first.
    let mut per_incident: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for v in &got {
        if let Some(id) = v["incident"]["id"].as_str() {
            per_incident.entry(id.to_string()).or_default().push((
                v["event"].as_str().unwrap().to_string(),
                v["detected_at"].as_str().unwrap().to_string(),
            ));
        }
    }
    assert_eq!(per_incident.len(), 3, "three incidents: {per_incident:?}");
    for (id, events) in &per_incident {
        assert_eq!(events[0].0, "incident.opened", "{id}: {events:?}");
        let made: Vec<std::time::SystemTime> = events
            .iter()
            .map(|(_, at)| humantime::parse_rfc3339_weak(at).unwrap())
            .collect();
        assert!(
            made.windows(2).all(|w| w[0] <= w[1]),
            "{id} out of order: {events:?}"
        );
    }
    let anomalies = got.iter().filter(|v| v["anomaly"].is_object()).count();
    println!(
        "outage {} s: {} notifications held and delivered after it ({} incident steps over {} incidents, {anomalies} anomaly events), 0 dropped",
        outage.as_secs(),
        got.len(),
        got.len() - anomalies,
        per_incident.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
