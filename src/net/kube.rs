//! The Kubernetes API client, shared by the RCA's event source and the executor.

/// A client for `api_url` (`kubernetes.api_url`), else in-cluster or `KUBECONFIG`.
pub async fn client(api_url: &str) -> Result<kube::Client, String> {
    if api_url.is_empty() {
        kube::Client::try_default().await.map_err(|e| e.to_string())
    } else {
        let uri = api_url
            .parse::<http::Uri>()
            .map_err(|e| format!("kubernetes.api_url: {e}"))?;
        let mut c = kube::Config::new(uri);
        c.read_timeout = Some(std::time::Duration::from_secs(10));
        kube::Client::try_from(c).map_err(|e| e.to_string())
    }
}
