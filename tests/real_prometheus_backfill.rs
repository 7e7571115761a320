//! Warm start against a real Prometheus 2.42: history is written into it with remote write
//! (its `--web.enable-remote-write-receiver`), the agent fetches it with `query_range`, and a
//! spike in the first live minute is caught without any warm-up. Skips when `prometheus` is not
//! installed, unless `SRE_AGENT_REQUIRE_REAL=1` (CI) makes that a failure.

mod common;

use std::time::Duration;

use common::*;
use sre_agent::ingest::encode::TimeSeries;

const LABELS: &[(&str, &str)] = &[
    ("__name__", "memory_usage"),
    ("namespace", "risk"),
    ("pod", "risk-service-0"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_start_trains_baselines_from_prometheus_history() {
    sre_agent::net::install_crypto_provider();
    let Some((_program, port, _dir)) = prometheus_receiver("prom-backfill").await else {
        return;
    };
    let client = reqwest::Client::new();

    // Three hours of history at 15 s, in order, 240 samples per request.
    let now = now_ms() / 15_000 * 15_000;
    let start = now - 3 * 3_600_000;
    let mut rng = fastrand::Rng::with_seed(5);
    let history: Vec<(i64, f64)> = (0..720)
        .map(|i| (start + i * 15_000, 0.6 + (rng.f64() - 0.5) * 0.02))
        .collect();
    let write = format!("http://127.0.0.1:{port}/api/v1/write");
    for part in history.chunks(240) {
        let resp = remote_write_request(&client, &write, &[TimeSeries::new(LABELS, part)])
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "Prometheus refused history: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }

    let mut config = test_config();
    config.prometheus.url = format!("http://127.0.0.1:{port}");
    config.prometheus.backfill.lookback = Duration::from_secs(4 * 3600);
    config.prometheus.backfill.step = Duration::from_secs(15);
    config.prometheus.backfill.chunk = Duration::from_secs(3600);
    let agent = Agent::start(config).await;
    let report = agent.pipeline.warm_start().await.expect("warm start");
    assert_eq!(report.series, 1, "{report:?}");
    assert!(report.chunks >= 4, "{report:?}");
    // Every stored sample comes back once (query_range may add a few lookback repeats at the
    // edges, which the store counts as duplicates).
    assert!((700..=730).contains(&report.samples), "{report:?}");
    let baselines = agent.get_json("/api/v1/baselines?match=memory_usage").await;
    let seen = baselines["baselines"][0]["samples_seen"].as_u64().unwrap();
    assert!(seen >= 700, "{baselines}");
    // History is not news: nothing fired.
    assert_eq!(agent.get_json("/api/v1/anomalies").await["count"], 0);

    // The first live samples after the history: a jump to 0.95 is caught at once.
    for (i, v) in [0.6, 0.95, 0.95].iter().enumerate() {
        let ts = now + (i as i64 + 1) * 15_000;
        let resp = agent
            .write_v1(&[TimeSeries::new(LABELS, &[(ts, *v)])])
            .await;
        assert_eq!(resp.status(), 204);
    }
    let list = agent.get_json("/api/v1/anomalies").await;
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["anomalies"][0]["metric"], "memory_usage");

    // A second warm start leaves learned series alone.
    let again = agent.pipeline.warm_start().await.expect("warm start");
    assert_eq!((again.series, again.skipped_series), (0, 1), "{again:?}");
}
