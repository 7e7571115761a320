//! Outbound HTTP shared by every stage that calls out (notifiers, write-back, backfill, RCA
//! sources, the HTTP executor): client construction, retry backoff, and redaction of URLs and
//! errors so credentials in paths and queries never reach a log. Depends on no other layer.

#[cfg(feature = "kube")]
pub mod kube;
pub mod retry;

pub use retry::{backoff, delay, retry_after, retryable_status};

use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
#[error("cannot build HTTP client: {0}")]
pub struct ClientError(String);

/// Installs rustls' ring crypto provider once per process; reqwest panics without one.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("sre-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError(e.to_string()))
}

/// `scheme://host[:port]/…`: enough to tell which receiver failed, never its path or query,
/// which for chat webhooks carry the credential.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<invalid url>".to_string(),
    }
}

/// `application/x-www-form-urlencoded`, for PromQL and LogQL queries (they hold `{`, `"`, `|`,
/// `=`, `~`).
pub fn form_encode(params: &[(&str, String)]) -> String {
    let encode = |s: &str| {
        let mut out = String::with_capacity(s.len() * 3);
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// reqwest errors print the full URL; keep only the cause.
pub fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.without_url_ref().to_string();
    if let Some(src) = std::error::Error::source(e) {
        msg = format!("{msg}: {src}");
    }
    msg
}

trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        if self.is_timeout() {
            "timed out".into()
        } else if self.is_connect() {
            "connection failed".into()
        } else if self.is_request() {
            "request error".into()
        } else {
            "error".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_path_and_credentials() {
        let r = redact_url("https://user:pw@hooks.example.com:8443/services/T000/B000/SECRET?x=1");
        assert_eq!(r, "https://hooks.example.com:8443/…");
        assert!(!r.contains("SECRET") && !r.contains("pw"));
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(20), Duration::from_secs(30));
    }
}
