//! A minimal remote-write client (RW 1.0, snappy) for the simulator and the load bench: sends
//! one body, retrying while the receiver answers 429 (as Prometheus would).

use std::time::Duration;

/// Attempts on 429 before giving up; with the linear backoff below that is ~25 s in all.
const MAX_ATTEMPTS: u32 = 50;

/// Posts an already compressed `prometheus.WriteRequest`. `Err` carries the status and body of a
/// refusal, or the transport error.
pub async fn post_remote_write(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    for attempt in 1..=MAX_ATTEMPTS {
        let response = client
            .post(url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.as_u16() != 429 {
            let text = response.text().await.unwrap_or_default();
            return Err(format!(
                "{status}: {}",
                text.chars().take(300).collect::<String>()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
    }
    Err("still overloaded (429) after retries".into())
}
