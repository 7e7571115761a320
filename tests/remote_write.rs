//! Remote write over HTTP: content negotiation, status codes, headers, what real senders send.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use sre_agent::ingest::encode::{TimeSeries, compress};

const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

fn series(name: &str, samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries::new(
        &[("__name__", name), ("job", "test"), ("instance", "a:1")],
        samples,
    )
}

async fn error_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.expect("JSON error body");
    (
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn v1_write_is_applied_and_answered_204() {
    let agent = Agent::start(test_config()).await;
    let r = agent
        .write_v1(&[
            series("up", &[(1000, 1.0), (2000, 1.0)]),
            series("x_total", &[(1000, 5.0)]),
        ])
        .await;
    assert_eq!(r.status(), 204);
    assert!(
        r.headers()
            .get("X-Prometheus-Remote-Write-Samples-Written")
            .is_none()
    );
    let m = agent.metrics_text().await;
    assert_eq!(
        metric_value(&m, "sre_agent_samples_received_total"),
        Some(3.0)
    );
    assert_eq!(metric_value(&m, "sre_agent_series_active"), Some(2.0));
}

#[tokio::test]
async fn v2_write_carries_written_headers_and_hashes_like_v1() {
    let agent = Agent::start(test_config()).await;
    let r = agent
        .write_v2(&[series("up", &[(1000, 1.0), (2000, 0.0)])])
        .await;
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["X-Prometheus-Remote-Write-Samples-Written"], "2");
    assert_eq!(h["X-Prometheus-Remote-Write-Histograms-Written"], "0");
    assert_eq!(h["X-Prometheus-Remote-Write-Exemplars-Written"], "0");
    // The same series over v1 continues it rather than creating a new one.
    assert_eq!(
        agent
            .write_v1(&[series("up", &[(3000, 1.0)])])
            .await
            .status(),
        204
    );
    assert_eq!(agent.pipeline.store.series_count(), 1);
}

#[tokio::test]
async fn unsupported_types_and_encodings_get_415() {
    let agent = Agent::start(test_config()).await;
    let body = compress(b"").unwrap();
    let (code, msg) = error_of(agent.post_write(body.clone(), "application/json").await).await;
    assert_eq!(code, 415);
    assert!(msg.contains("Content-Type"), "{msg}");
    let (code, _) = error_of(
        agent
            .post_write(
                body.clone(),
                "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            )
            .await,
    )
    .await;
    assert_eq!(code, 415);
    // Newer vmagent tries zstd first and falls back on 415.
    let r = agent
        .client
        .post(agent.url("/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "zstd")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (code, msg) = error_of(r).await;
    assert_eq!(code, 415);
    assert!(msg.contains("zstd"), "{msg}");
    // A v2 refusal still carries the -Written headers.
    let r = agent
        .client
        .post(agent.url("/api/v1/write"))
        .header("Content-Type", V2)
        .header("Content-Encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(
        r.headers()["X-Prometheus-Remote-Write-Samples-Written"],
        "0"
    );
}

#[tokio::test]
async fn malformed_snappy_and_protobuf_get_400_with_a_reason() {
    let agent = Agent::start(test_config()).await;
    let (code, msg) = error_of(
        agent
            .post_write(
                vec![0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2],
                "application/x-protobuf",
            )
            .await,
    )
    .await;
    assert_eq!(code, 400);
    assert!(msg.contains("snappy"), "{msg}");
    // Valid snappy, truncated protobuf.
    let (code, msg) = error_of(
        agent
            .post_write(
                compress(&[0x0a, 0x10, 0x0a]).unwrap(),
                "application/x-protobuf",
            )
            .await,
    )
    .await;
    assert_eq!(code, 400);
    assert!(msg.contains("protobuf"), "{msg}");
    // RW 2.0 with symbols[0] != "".
    let (code, msg) = error_of(
        agent
            .post_write(compress(&[0x22, 0x01, b'x']).unwrap(), V2)
            .await,
    )
    .await;
    assert_eq!(code, 400);
    assert!(msg.contains("symbols[0]"), "{msg}");
    // RW 2.0 with an out-of-range symbol reference.
    let (code, msg) = error_of(
        agent
            .post_write(
                compress(&[0x22, 0x00, 0x2a, 0x04, 0x0a, 0x02, 0x01, 0x07]).unwrap(),
                V2,
            )
            .await,
    )
    .await;
    assert_eq!(code, 400);
    assert!(msg.contains("out of range"), "{msg}");
    assert_eq!(agent.pipeline.store.series_count(), 0);
}

#[tokio::test]
async fn invalid_labels_get_400_and_the_rest_is_applied() {
    let agent = Agent::start(test_config()).await;
    let unsorted = TimeSeries {
        labels: vec![("job".into(), "x".into()), ("__name__".into(), "m".into())],
        samples: vec![(1, 1.0)],
    };
    let r = agent
        .write_v2(&[unsorted, series("good", &[(1, 1.0)])])
        .await;
    assert_eq!(
        r.headers()["X-Prometheus-Remote-Write-Samples-Written"],
        "1"
    );
    let (code, msg) = error_of(r).await;
    assert_eq!(code, 400);
    assert!(msg.contains("sorted"), "{msg}");
    assert_eq!(agent.pipeline.store.series_count(), 1);
}

#[tokio::test]
async fn empty_duplicate_and_invalid_label_names_get_400_with_the_reason() {
    let agent = Agent::start(test_config()).await;
    for (labels, reason) in [
        (vec![("", "x"), ("__name__", "m")], "empty label name"),
        (
            vec![("__name__", "m"), ("a", "1"), ("a", "2")],
            "sorted or duplicated",
        ),
        (
            vec![("__name__", "m"), ("bad-name", "1")],
            "invalid label name",
        ),
        (vec![("job", "x")], "no __name__"),
    ] {
        let bad = TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            samples: vec![(1, 1.0)],
        };
        for v2 in [false, true] {
            let r = if v2 {
                agent.write_v2(std::slice::from_ref(&bad)).await
            } else {
                agent.write_v1(std::slice::from_ref(&bad)).await
            };
            if v2 {
                assert_eq!(
                    r.headers()["X-Prometheus-Remote-Write-Samples-Written"],
                    "0"
                );
            }
            let (code, msg) = error_of(r).await;
            assert_eq!(code, 400, "{labels:?}");
            assert!(msg.contains(reason), "{labels:?}: {msg}");
        }
    }
    assert_eq!(agent.pipeline.store.series_count(), 0);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let mut config = test_config();
    config.ingest.max_body_bytes = 4096;
    config.ingest.max_decompressed_bytes = 8192;
    let agent = Agent::start(config).await;
    let (code, _) = error_of(
        agent
            .post_write(vec![0u8; 5000], "application/x-protobuf")
            .await,
    )
    .await;
    assert_eq!(code, 413);
    // Small compressed, too large decompressed.
    let (code, msg) = error_of(
        agent
            .post_write(
                compress(&vec![0u8; 20_000]).unwrap(),
                "application/x-protobuf",
            )
            .await,
    )
    .await;
    assert_eq!(code, 413);
    assert!(msg.contains("decompressed"), "{msg}");
}

/// A sender still uploading when the limit is passed reads the 413 and its reason, not a
/// broken pipe: the body is read on and dropped (up to 8 times the limit).
#[tokio::test]
async fn a_96_mib_body_gets_a_413_the_sender_can_read() {
    let agent = Agent::start(test_config()).await;
    let response = agent
        .client
        .post(agent.url("/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(vec![0u8; 96 << 20])
        .send()
        .await
        .expect("an answer, not a broken pipe");
    assert_eq!(response.status(), 413);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("exceeds the limit of 16777216 bytes"),
        "{text}"
    );

    // Chunked: no Content-Length to refuse on, so the limit is met mid-stream.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = agent
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(format!("POST /api/v1/write HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..96 {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        s.write_all(&chunk).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("exceeds the limit of 16777216 bytes"),
        "{answer}"
    );
    assert_eq!(agent.pipeline.store.series_count(), 0);
}

#[tokio::test]
async fn overload_gets_429_with_retry_after() {
    let mut config = test_config();
    config.ingest.max_inflight_requests = 1;
    let agent = Agent::start(config).await;
    // Hold the only slot: headers and half a body, then nothing.
    let addr = agent.addr;
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    write!(slow, "POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: 100\r\n\r\n0123456789").unwrap();
    slow.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = agent.write_v1(&[series("up", &[(1, 1.0)])]).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["Retry-After"], "1");
    drop(slow);
    // Once the slot frees up, the same request is accepted.
    let ok = wait_until(Duration::from_secs(5), || async {
        agent.write_v1(&[series("up", &[(1, 1.0)])]).await.status() == 204
    })
    .await;
    assert!(ok);
}

#[tokio::test]
async fn basic_auth_protects_the_write_endpoint() {
    let mut config = test_config();
    config.ingest.auth.username = "prometheus".into();
    config.ingest.auth.password = sre_agent::config::Secret::new("s3cret");
    let agent = Agent::start(config).await;
    let r = agent.write_v1(&[series("up", &[(1, 1.0)])]).await;
    assert_eq!(r.status(), 401);
    let mut raw = Vec::new();
    sre_agent::ingest::encode::encode_v1(&[series("up", &[(1, 1.0)])], &mut raw);
    let r = agent
        .client
        .post(agent.url("/api/v1/write"))
        .basic_auth("prometheus", Some("s3cret"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(compress(&raw).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The password is in no API answer.
    let status = agent
        .client
        .get(agent.url("/api/v1/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!status.contains("s3cret"));
}

#[tokio::test]
async fn staleness_duplicates_out_of_order_nan_and_metadata_only() {
    let agent = Agent::start(test_config()).await;
    let stale = f64::from_bits(sre_agent::model::STALE_NAN_BITS);
    let r = agent
        .write_v1(&[series(
            "g",
            &[
                (1000, 1.0),
                (2000, f64::NAN),
                (2000, 3.0),
                (1500, 4.0),
                (3000, stale),
            ],
        )])
        .await;
    assert_eq!(r.status(), 204);
    let m = agent.metrics_text().await;
    assert_eq!(
        metric_value(&m, "sre_agent_samples_received_total"),
        Some(5.0)
    );
    assert_eq!(
        metric_value(&m, "sre_agent_samples_rejected_total{reason=\"duplicate\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &m,
            "sre_agent_samples_rejected_total{reason=\"out_of_order\"}"
        ),
        Some(1.0)
    );
    let s = agent.get_json("/api/v1/series?match=g").await;
    assert_eq!(s["series"][0]["stale"], true);
    assert_eq!(s["series"][0]["samples_in_ring"], 2);
    // Metadata only, as Prometheus sends every minute: WriteRequest.metadata (field 3) with
    // type COUNTER (1) for family "g".
    let metadata = [0x1a, 0x05, 0x08, 0x01, 0x12, 0x01, b'g'];
    let r = agent
        .post_write(compress(&metadata).unwrap(), "application/x-protobuf")
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        metric_value(
            &agent.metrics_text().await,
            "sre_agent_metadata_received_total"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn garbage_never_panics_the_server() {
    let agent = Agent::start(test_config()).await;
    let mut rng = fastrand::Rng::with_seed(1);
    for i in 0..200 {
        let len = rng.usize(0..300);
        let raw: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let body = if i % 2 == 0 {
            compress(&raw).unwrap()
        } else {
            raw
        };
        let ct = if i % 3 == 0 {
            V2
        } else {
            "application/x-protobuf"
        };
        let status = agent.post_write(body, ct).await.status().as_u16();
        assert!(matches!(status, 204 | 400 | 413), "status {status}");
    }
    assert_eq!(
        agent
            .client
            .get(agent.url("/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn raw_http_without_content_type_is_415() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let agent = rt.block_on(Agent::start(test_config()));
    let mut s = std::net::TcpStream::connect(agent.addr).unwrap();
    write!(
        s,
        "POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 415"), "{out}");
}

/// Hand-encoded RW 2.0 bodies for cases the encoder does not produce.
mod v2_raw {
    /// symbols ["", "__name__", "h"]; one series {__name__="h"} whose body is `series`.
    pub fn request(series: &[u8]) -> Vec<u8> {
        let mut out = vec![0x22, 0x00, 0x22, 0x08];
        out.extend_from_slice(b"__name__");
        out.extend_from_slice(&[0x22, 0x01, b'h', 0x2a, series.len() as u8]);
        out.extend_from_slice(series);
        out
    }
    pub const LABELS: [u8; 4] = [0x0a, 0x02, 0x01, 0x02];
    pub const EMPTY_HISTOGRAM: [u8; 2] = [0x1a, 0x00];
    pub fn sample(ts: u8, value: f64) -> Vec<u8> {
        let mut s = vec![0x12, 0x0b, 0x09];
        s.extend_from_slice(&value.to_bits().to_le_bytes());
        s.extend_from_slice(&[0x10, ts]);
        s
    }
}

#[tokio::test]
async fn v2_series_with_samples_and_histograms_is_400_with_headers() {
    let agent = Agent::start(test_config()).await;
    let mut series = v2_raw::LABELS.to_vec();
    series.extend(v2_raw::sample(5, 1.0));
    series.extend(v2_raw::EMPTY_HISTOGRAM);
    let r = agent
        .post_write(compress(&v2_raw::request(&series)).unwrap(), V2)
        .await;
    assert_eq!(
        r.headers()["X-Prometheus-Remote-Write-Samples-Written"],
        "0"
    );
    let (code, msg) = error_of(r).await;
    assert_eq!(code, 400);
    assert!(msg.contains("both samples and histograms"), "{msg}");
}

#[tokio::test]
async fn v2_series_with_neither_samples_nor_histograms_is_400() {
    let agent = Agent::start(test_config()).await;
    let (code, msg) = error_of(
        agent
            .post_write(compress(&v2_raw::request(&v2_raw::LABELS)).unwrap(), V2)
            .await,
    )
    .await;
    assert_eq!(code, 400);
    assert!(msg.contains("neither samples nor histograms"), "{msg}");
}

#[tokio::test]
async fn v2_native_histograms_are_counted_and_reported_as_not_written() {
    let agent = Agent::start(test_config()).await;
    let mut series = v2_raw::LABELS.to_vec();
    series.extend(v2_raw::EMPTY_HISTOGRAM);
    let r = agent
        .post_write(compress(&v2_raw::request(&series)).unwrap(), V2)
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["X-Prometheus-Remote-Write-Histograms-Written"],
        "0"
    );
    assert_eq!(
        r.headers()["X-Prometheus-Remote-Write-Samples-Written"],
        "0"
    );
    let m = agent.metrics_text().await;
    assert_eq!(
        metric_value(&m, "sre_agent_histograms_received_total"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &m,
            "sre_agent_samples_rejected_total{reason=\"native_histogram_unsupported\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn v2_staleness_marker_marks_the_series_stale() {
    let agent = Agent::start(test_config()).await;
    let stale = f64::from_bits(sre_agent::model::STALE_NAN_BITS);
    let r = agent
        .write_v2(&[series("s", &[(1000, 1.0), (2000, stale)])])
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["X-Prometheus-Remote-Write-Samples-Written"],
        "2"
    );
    let s = agent.get_json("/api/v1/series?match=s").await;
    assert_eq!(s["series"][0]["stale"], true);
}

#[tokio::test]
async fn v2_series_without_labels_is_refused_with_a_reason() {
    let agent = Agent::start(test_config()).await;
    let r = agent
        .post_write(
            compress(&v2_raw::request(&v2_raw::sample(5, 1.0))).unwrap(),
            V2,
        )
        .await;
    let (code, msg) = error_of(r).await;
    assert_eq!(code, 400);
    assert!(msg.contains("no labels"), "{msg}");
}

#[tokio::test]
async fn a_stalled_upload_times_out_and_frees_its_slot() {
    let mut config = test_config();
    config.ingest.max_inflight_requests = 1;
    config.ingest.body_read_timeout = Duration::from_millis(500);
    let agent = Agent::start(config).await;
    // Headers and part of the body, then silence; the connection stays open.
    let mut stalled = std::net::TcpStream::connect(agent.addr).unwrap();
    write!(stalled, "POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: 100\r\n\r\n0123").unwrap();
    stalled.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        agent.write_v1(&[series("up", &[(1, 1.0)])]).await.status(),
        429
    );
    // After the deadline the stalled request is answered 408 and the slot is free again.
    let freed = wait_until(Duration::from_secs(5), || async {
        agent.write_v1(&[series("up", &[(2, 1.0)])]).await.status() == 204
    })
    .await;
    assert!(freed);
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = [0u8; 12];
    stalled.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 408");
}
