//! Readers and writers at once: concurrent remote-write requests to overlapping series while the
//! API, /metrics and upkeep read the store. Nothing deadlocks, nothing is lost, and every read
//! sees a consistent ring (timestamps strictly increasing).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use sre_agent::ingest::encode::TimeSeries;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_readers_agree() {
    let agent = Arc::new(Agent::start(test_config()).await);
    let writers = 4;
    let rounds = 60;
    let series_per_request = 200;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let agent = agent.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..rounds {
                // Writer w owns series w, w+4, …: disjoint series, shared shards.
                let batch: Vec<TimeSeries> = (0..series_per_request)
                    .map(|i| {
                        let id = (i * writers + w).to_string();
                        TimeSeries::new(
                            &[("__name__", "load_gauge"), ("id", &id)],
                            &[(1_000 + r as i64 * 15_000, (r % 7) as f64)],
                        )
                    })
                    .collect();
                let status = agent.write_v1(&batch).await.status();
                assert_eq!(status, 204);
            }
        }));
    }
    let reader = {
        let agent = agent.clone();
        tokio::spawn(async move {
            let mut reads = 0;
            for _ in 0..150 {
                let list = agent
                    .get_json("/api/v1/series?match=load_gauge&limit=5")
                    .await;
                for s in list["series"].as_array().unwrap() {
                    let id = s["id"].as_str().unwrap();
                    let one = agent.get_json(&format!("/api/v1/series/{id}")).await;
                    let ts: Vec<i64> = one["samples"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p[0].as_i64().unwrap())
                        .collect();
                    assert!(
                        ts.windows(2).all(|w| w[0] < w[1]),
                        "ring out of order: {ts:?}"
                    );
                    reads += 1;
                }
                let _ = agent.metrics_text().await;
                let _ = agent.pipeline.store.maintain(0.3);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            reads
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    assert!(reader.await.unwrap() > 0);
    let expected = (writers * rounds * series_per_request) as f64;
    let m = agent.metrics_text().await;
    assert_eq!(
        metric_value(&m, "sre_agent_samples_received_total"),
        Some(expected)
    );
    assert_eq!(
        metric_value(
            &m,
            "sre_agent_samples_rejected_total{reason=\"out_of_order\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        agent.pipeline.store.series_count(),
        writers * series_per_request
    );
    let total_in_rings: usize = agent
        .pipeline
        .store
        .find(&Default::default(), usize::MAX)
        .iter()
        .map(|s| s.samples_in_ring)
        .sum();
    assert_eq!(total_in_rings as f64, expected);
}
