//! `POST /api/v1/write`: remote write 1.0 and 2.0 in, answered per the specs.
//!
//! The answer comes only after every sample has been applied: 204 when all were, 400 with the
//! first reason when some series were refused (bad labels, series limit; the rest is applied
//! and retrying would not help), 413/415 before any work, 429 with `Retry-After` when too many
//! requests are in flight or a hand-off queue behind detection (RCA, knowledge base, webhook,
//! Alertmanager) is nearly full. Duplicate and out-of-order samples are counted and ignored with a
//! 204 (see README: they can never be applied, and a 400 would only make the sender drop the
//! good samples of its batch too). RW 2.0 answers always carry the `-Written` headers.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::write_allowed;
use super::body::{BodyError, read_within};
use super::error::ApiError;
use crate::ingest::{Protocol, decode_request, snappy};

/// How far past the limit a body is read and discarded so its sender can read the 413.
const DISCARD_FACTOR: usize = 8;
use crate::pipeline::intake::Intake;

pub const SAMPLES_WRITTEN: &str = "X-Prometheus-Remote-Write-Samples-Written";
pub const HISTOGRAMS_WRITTEN: &str = "X-Prometheus-Remote-Write-Histograms-Written";
pub const EXEMPLARS_WRITTEN: &str = "X-Prometheus-Remote-Write-Exemplars-Written";

/// Chooses the protocol from `Content-Type` (the specs' content negotiation).
pub fn protocol_of(headers: &HeaderMap) -> Result<Protocol, ApiError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = raw.split(';').map(str::trim);
    let media = parts.next().unwrap_or("").to_ascii_lowercase();
    if media != "application/x-protobuf" {
        return Err(ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Type {raw:?}: expected application/x-protobuf with proto=prometheus.WriteRequest or proto=io.prometheus.write.v2.Request"
        )));
    }
    let proto = parts
        .find_map(|p| p.strip_prefix("proto="))
        .map(|p| p.trim_matches('"'));
    match proto {
        None | Some("prometheus.WriteRequest") => Ok(Protocol::V1),
        Some("io.prometheus.write.v2.Request") => Ok(Protocol::V2),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "unsupported remote-write message {other:?}"
        ))),
    }
}

fn check_encoding(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        // Some senders omit the header; the body is still snappy per both specs.
        None => Ok(()),
        Some(e) if e == "snappy" => Ok(()),
        Some(e) => Err(ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {e:?}: only snappy is accepted"
        ))),
    }
}

struct Written {
    samples: u64,
    histograms: u64,
    exemplars: u64,
}

fn with_written(mut resp: Response, protocol: Option<Protocol>, w: &Written) -> Response {
    if protocol == Some(Protocol::V2) {
        let h = resp.headers_mut();
        h.insert(SAMPLES_WRITTEN, HeaderValue::from(w.samples));
        h.insert(HISTOGRAMS_WRITTEN, HeaderValue::from(w.histograms));
        h.insert(EXEMPLARS_WRITTEN, HeaderValue::from(w.exemplars));
    }
    resp
}

pub async fn handle(State(p): State<Arc<Intake>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let protocol = protocol_of(&headers).ok();
    let nothing = Written {
        samples: 0,
        histograms: 0,
        exemplars: 0,
    };
    let label = protocol.map_or("unknown", |p| if p == Protocol::V1 { "1.0" } else { "2.0" });
    let (resp, written) = match process(&p, &headers, body, protocol).await {
        Ok(w) => (StatusCode::NO_CONTENT.into_response(), w),
        Err((err, w)) => {
            if err.status().is_server_error() || err.status() == StatusCode::TOO_MANY_REQUESTS {
                tracing::warn!(status = err.status().as_u16(), reason = %err.message(), "write request not accepted");
            } else {
                tracing::debug!(status = err.status().as_u16(), reason = %err.message(), "write request rejected");
            }
            (err.into_response(), w.unwrap_or(nothing))
        }
    };
    p.telemetry.request(label, resp.status().as_u16());
    p.telemetry
        .write_request_duration
        .observe(started.elapsed().as_secs_f64());
    with_written(resp, protocol, &written)
}

async fn process(
    p: &Intake,
    headers: &HeaderMap,
    body: Body,
    protocol: Option<Protocol>,
) -> Result<Written, (ApiError, Option<Written>)> {
    let cfg = &p.config;
    if !write_allowed(headers, &cfg.auth) {
        return Err((ApiError::Unauthorized, None));
    }
    let protocol = match protocol {
        Some(proto) => proto,
        None => {
            return Err((
                protocol_of(headers)
                    .err()
                    .unwrap_or(ApiError::UnsupportedMediaType(
                        "unsupported Content-Type".into(),
                    )),
                None,
            ));
        }
    };
    check_encoding(headers).map_err(|e| (e, None))?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());

    // Admission control before reading the body: when full, the sender backs off and retries.
    let Ok(_permit) = p.inflight.clone().try_acquire_owned() else {
        return Err((
            ApiError::Overloaded {
                retry_after_seconds: cfg.retry_after_seconds,
                reason: "too many concurrent write requests".into(),
            },
            None,
        ));
    };
    // A hand-off queue that is nearly full would have to drop what this batch produces: refuse
    // the batch instead, before reading it, so the sender keeps it and retries.
    if let Some(backlog) = p.backlog() {
        p.telemetry.channel(backlog.queue, "backpressure");
        return Err((
            ApiError::Overloaded {
                retry_after_seconds: cfg.retry_after_seconds,
                reason: backlog.to_string(),
            },
            None,
        ));
    }
    // A body over the limit is still read (and dropped) up to DISCARD_FACTOR times the limit,
    // so the sender reads the 413 instead of a broken pipe.
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "body exceeds the limit of {} bytes",
            cfg.max_body_bytes
        ))
    };
    let discard_up_to = cfg.max_body_bytes.saturating_mul(DISCARD_FACTOR);
    if declared.is_some_and(|n| n > discard_up_to) {
        // Too large even to read past: answer now.
        return Err((too_large(), None));
    }
    let read = tokio::time::timeout(
        cfg.body_read_timeout,
        read_within(body, cfg.max_body_bytes, discard_up_to, declared),
    )
    .await;
    let Ok(read) = read else {
        return Err((
            ApiError::RequestTimeout(format!(
                "request body not received within {:?}",
                cfg.body_read_timeout
            )),
            None,
        ));
    };
    let bytes = read.map_err(|e| match e {
        BodyError::TooLarge => (too_large(), None),
        BodyError::Broken(msg) => (
            ApiError::BadRequest(format!("cannot read request body: {msg}")),
            None,
        ),
    })?;

    // Decode, apply and detect: synchronous, no awaits, pooled buffers.
    let mut batch = p.take_batch();
    if let Err(e) = decode_request(protocol, &bytes, cfg.max_decompressed_bytes, &mut batch) {
        p.return_batch(batch);
        let err = if snappy::is_too_large(&e) {
            ApiError::PayloadTooLarge(e.to_string())
        } else {
            ApiError::BadRequest(e.to_string())
        };
        return Err((err, None));
    }
    let received = batch.sample_count() as u64;
    let t = &p.telemetry;
    t.samples_received
        .fetch_add(received, std::sync::atomic::Ordering::Relaxed);
    let stats = p.apply_batch(&mut batch);
    p.return_batch(batch);

    let written = Written {
        samples: stats.applied,
        histograms: 0,
        exemplars: 0,
    };
    if let Some(reason) = stats.first_refusal.as_deref() {
        let msg = format!(
            "{} of {received} samples refused ({} series-limit, {} invalid labels); the rest were applied. First reason: {reason}",
            stats.refused(),
            stats.refused_series_limit,
            stats.refused_invalid_labels
        );
        return Err((ApiError::BadRequest(msg), Some(written)));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, v.parse().unwrap());
        h
    }

    #[test]
    fn content_negotiation() {
        assert_eq!(protocol_of(&ct("application/x-protobuf")), Ok(Protocol::V1));
        assert_eq!(
            protocol_of(&ct("application/x-protobuf;proto=prometheus.WriteRequest")),
            Ok(Protocol::V1)
        );
        assert_eq!(
            protocol_of(&ct(
                "application/x-protobuf; proto=io.prometheus.write.v2.Request"
            )),
            Ok(Protocol::V2)
        );
        assert!(protocol_of(&ct("application/json")).is_err());
        assert!(
            protocol_of(&ct(
                "application/x-protobuf;proto=io.prometheus.write.v3.Request"
            ))
            .is_err()
        );
        assert!(protocol_of(&HeaderMap::new()).is_err());
    }
}
