//! Incidents over HTTP: an alert storm of one service (20 pods spiking together) is one
//! incident, listed and fetched through the API, and every webhook of the storm carries its id.

mod common;

use std::time::Duration;

use common::*;
use sre_agent::ingest::encode::TimeSeries;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_storm_of_one_service_becomes_one_incident() {
    let (hook, inbox) = receiver("/hook").await;
    let mut config = test_config();
    config.notification.webhook.url = hook;
    config.notification.webhook.events = vec![
        sre_agent::config::WebhookEvents::Anomaly,
        sre_agent::config::WebhookEvents::Incident,
    ];
    let agent = Agent::start(config).await;
    let pods: Vec<String> = (0..20).map(|i| format!("order-{i}")).collect();
    let start = now_ms() - 3_600_000;
    let mut rng = fastrand::Rng::with_seed(3);
    for i in 0..120i64 {
        let batch: Vec<TimeSeries> = pods
            .iter()
            .map(|pod| {
                let labels = [
                    ("__name__", "order_latency_p99"),
                    ("namespace", "trading"),
                    ("pod", pod.as_str()),
                    ("service", "order-service"),
                ];
                let v = if i >= 110 {
                    500.0
                } else {
                    100.0 + rng.f64() * 10.0
                };
                TimeSeries::new(&labels, &[(start + i * 15_000, v)])
            })
            .collect();
        assert_eq!(agent.write_v1(&batch).await.status(), 204);
    }
    // A different service's spike is a separate incident.
    let other = [
        ("__name__", "api_latency_p99"),
        ("namespace", "api"),
        ("service", "api-gateway"),
    ];
    for ts in spike_series(&other, start, 120, 110) {
        agent.write_v1(&[ts]).await;
    }
    assert!(agent.pipeline.book.active_count() >= 21);

    let list = agent.get_json("/api/v1/incidents?state=open").await;
    assert_eq!(list["count"], 2, "{list}");
    let storm = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["group"]["service"] == "order-service")
        .unwrap()
        .clone();
    assert_eq!(storm["anomalies"].as_array().unwrap().len(), 20, "{storm}");
    assert_eq!(storm["anomalies_firing"], 20);
    assert_eq!(storm["group"]["namespace"], "trading");
    assert_eq!(storm["severity"], "critical");
    let id = storm["id"].as_str().unwrap().to_string();
    let one = agent.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(one["id"], id.as_str());
    let m = agent.metrics_text().await;
    assert_eq!(metric_value(&m, "sre_agent_incidents_active"), Some(2.0));

    // Every anomaly of the storm names the incident, in the API and in its webhook.
    let anomalies = agent.get_json("/api/v1/anomalies").await;
    let in_storm = anomalies["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["service"] == "order-service")
        .count();
    assert_eq!(in_storm, 20);
    assert!(
        anomalies["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["service"] == "order-service")
            .all(|a| a["incident_id"] == id.as_str())
    );
    let delivered = wait_until(Duration::from_secs(10), || async {
        inbox.lock().unwrap().len() >= 21
    })
    .await;
    assert!(delivered);
    let hooks: Vec<serde_json::Value> = inbox
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    let storm_hooks = hooks
        .iter()
        .filter(|h| h["anomaly"]["labels"]["service"] == "order-service")
        .collect::<Vec<_>>();
    assert!(storm_hooks.len() >= 20);
    assert!(
        storm_hooks
            .iter()
            .all(|h| h["anomaly"]["incident_id"] == id.as_str())
    );
    // One page for the storm: a single incident.opened, then its analysis.
    let opened = hooks
        .iter()
        .filter(|h| h["event"] == "incident.opened" && h["incident"]["id"] == id.as_str())
        .count();
    assert_eq!(opened, 1, "{hooks:?}");
    let analyzed = wait_until(Duration::from_secs(10), || async {
        inbox.lock().unwrap().iter().any(|b| {
            let h: serde_json::Value = serde_json::from_slice(b).unwrap();
            h["event"] == "incident.analyzed" && h["incident"]["id"] == id.as_str()
        })
    })
    .await;
    assert!(analyzed, "no incident.analyzed webhook");

    // Errors: unknown id 404, bad filter 400.
    let r = agent
        .client
        .get(agent.url("/api/v1/incidents/INC-ffff"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = agent
        .client
        .get(agent.url("/api/v1/incidents?state=sleeping"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
