// Shared by the benches: realistic remote-write series (~10 labels, ~260 bytes of labels).
#![allow(dead_code)]

use sre_agent::ingest::encode::TimeSeries;

pub fn labels(i: usize) -> Vec<(String, String)> {
    let services = [
        "order-service",
        "matching-engine",
        "risk-service",
        "wallet-service",
        "api-gateway",
    ];
    let svc = services[i % services.len()];
    let mut l = vec![
        (
            "__name__".to_string(),
            [
                "http_request_duration_seconds_bucket",
                "container_memory_working_set_bytes",
                "order_latency_p99",
                "process_cpu_seconds_total",
            ][i % 4]
                .to_string(),
        ),
        ("cluster".into(), "prod-eu-central-1".into()),
        ("container".into(), svc.to_string()),
        ("deployment".into(), svc.to_string()),
        ("endpoint".into(), format!("/api/v3/orders/{}", i % 17)),
        (
            "instance".into(),
            format!("10.42.{}.{}:8080", (i / 250) % 250, i % 250),
        ),
        ("job".into(), "kubernetes-pods".into()),
        ("namespace".into(), format!("exchange-{}", svc)),
        ("pod".into(), format!("{svc}-7d9f8b6c5-{:05x}", i / 50)),
        ("service".into(), svc.to_string()),
    ];
    l.push(("series_id".into(), format!("{i:08}")));
    l.sort();
    l
}

pub fn value(i: usize, round: usize) -> f64 {
    if i % 4 == 3 {
        // A counter.
        (round * 15 * (1 + i % 7)) as f64
    } else {
        let base = 10.0 + (i % 100) as f64;
        ((base + ((i * 7 + round * 13) % 23) as f64 * 0.1) * 100.0).round() / 100.0
    }
}

/// Requests of `per_request` samples covering `series` series once, at round `round`.
pub fn round_requests(
    series: usize,
    per_request: usize,
    round: usize,
    base_ms: i64,
) -> Vec<Vec<TimeSeries>> {
    requests_at(
        0..series,
        per_request,
        round,
        base_ms + round as i64 * 15_000,
    )
}

/// Requests of `per_request` samples, one per series in `ids`, all at `ts`.
pub fn requests_at(
    ids: std::ops::Range<usize>,
    per_request: usize,
    round: usize,
    ts: i64,
) -> Vec<Vec<TimeSeries>> {
    let all: Vec<TimeSeries> = ids
        .map(|i| TimeSeries {
            labels: labels(i),
            samples: vec![(ts, value(i, round))],
        })
        .collect();
    all.chunks(per_request).map(|c| c.to_vec()).collect()
}
