//! Test harness: an agent on an ephemeral port, request builders, and finding real binaries.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sre_agent::Pipeline;
use sre_agent::config::Config;
use sre_agent::ingest::encode::{TimeSeries, compress, encode_v1, encode_v2};

pub struct Agent {
    pub addr: SocketAddr,
    pub pipeline: Arc<Pipeline>,
    pub client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Agent {
    pub async fn start(config: Config) -> Agent {
        Self::start_with_events(config, None).await
    }

    /// An agent whose RCA reads cluster events from `events`.
    pub async fn start_with_events(
        config: Config,
        events: Option<Arc<dyn sre_agent::analyze::events::EventSource>>,
    ) -> Agent {
        Self::start_with_parts(config, events, Vec::new()).await
    }

    /// An agent with cluster events and remediation executors.
    pub async fn start_with_parts(
        config: Config,
        events: Option<Arc<dyn sre_agent::analyze::events::EventSource>>,
        executors: Vec<Arc<dyn sre_agent::act::executor::Executor>>,
    ) -> Agent {
        sre_agent::net::install_crypto_provider();
        let pipeline = Pipeline::build(config, events, executors).expect("pipeline");
        pipeline.start_background().expect("background");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let p = pipeline.clone();
        tokio::spawn(async move {
            sre_agent::serve(p, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Agent {
            addr,
            pipeline,
            client,
            _stop: tx,
        }
    }

    /// Where this agent's audit log lives.
    pub fn audit_dir(&self) -> std::path::PathBuf {
        sre_agent::pipeline::persist::audit_dir(&self.pipeline.config)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn write_v1(&self, series: &[TimeSeries]) -> reqwest::Response {
        let mut raw = Vec::new();
        encode_v1(series, &mut raw);
        self.post_write(compress(&raw).unwrap(), "application/x-protobuf")
            .await
    }

    pub async fn write_v2(&self, series: &[TimeSeries]) -> reqwest::Response {
        let mut raw = Vec::new();
        encode_v2(series, &mut raw);
        self.post_write(
            compress(&raw).unwrap(),
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )
        .await
    }

    pub async fn post_write(&self, body: Vec<u8>, content_type: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/write"))
            .header("Content-Type", content_type)
            .header("Content-Encoding", "snappy")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.client.get(self.url(path)).send().await.expect("get");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json")
    }

    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }
}

/// Reads one sample value from Prometheus text exposition (`name` or `name{labels}` exactly).
/// 120 scrapes (30 minutes at 15 s from `start_ms`) of the pods `{pod_prefix}-0..pods` of one
/// service, each scrape one remote-write request; `value(pod, i)` is pod's i-th sample and
/// `labels` the labels every pod shares (`pod` is added).
pub async fn write_pods(
    agent: &Agent,
    start_ms: i64,
    labels: &[(&str, &str)],
    pod_prefix: &str,
    pods: usize,
    mut value: impl FnMut(usize, i64) -> f64,
) {
    for i in 0..120i64 {
        let batch: Vec<TimeSeries> = (0..pods)
            .map(|p| {
                let pod = format!("{pod_prefix}-{p}");
                let mut all = labels.to_vec();
                all.push(("pod", pod.as_str()));
                TimeSeries::new(&all, &[(start_ms + i * 15_000, value(p, i))])
            })
            .collect();
        assert_eq!(agent.write_v1(&batch).await.status(), 204);
    }
}

pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == series).then(|| v.parse().ok()).flatten()
    })
}

pub fn test_config() -> Config {
    let mut c =
        Config::parse(sre_agent::config::DEFAULT_CONFIG, "test", |_| None).expect("default config");
    c.anomaly_detection.check_interval_seconds = 1;
    // In-process agents share the working directory: no snapshots unless a test asks.
    c.store.snapshot_interval = Duration::ZERO;
    c.rca.knowledge_persist = false;
    c.incidents.persist = false;
    // Each agent its own audit log: tests run in parallel in one process.
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sre-agent-audit-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    c.auto_remediation.audit_dir = dir.display().to_string();
    c.notification.webhook.outbox_dir = dir.display().to_string();
    c
}

/// A series with a quiet baseline then a spike, one sample per 15 s.
pub fn spike_series(
    labels: &[(&str, &str)],
    start_ms: i64,
    n: usize,
    spike_at: usize,
) -> Vec<TimeSeries> {
    let mut rng = fastrand::Rng::with_seed(42);
    (0..n)
        .map(|i| {
            let v = if i >= spike_at {
                500.0
            } else {
                100.0 + rng.f64() * 10.0
            };
            TimeSeries::new(labels, &[(start_ms + i as i64 * 15_000, v)])
        })
        .collect()
}

/// Whether tests that need real programs must fail rather than skip (CI sets it).
pub fn require_real() -> bool {
    std::env::var("SRE_AGENT_REQUIRE_REAL").is_ok_and(|v| v == "1")
}

/// Finds an executable on PATH under any of the names given.
pub fn find_binary(names: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Returns the binary, or `None` after printing why the test is skipped; panics when
/// `SRE_AGENT_REQUIRE_REAL=1`.
pub fn real_binary(names: &[&str]) -> Option<std::path::PathBuf> {
    match find_binary(names) {
        Some(p) => Some(p),
        None if require_real() => {
            panic!("{names:?} not found on PATH and SRE_AGENT_REQUIRE_REAL=1")
        }
        None => {
            eprintln!(
                "skipping: {names:?} not found on PATH (set SRE_AGENT_REQUIRE_REAL=1 to fail instead)"
            );
            None
        }
    }
}

/// Waits until `url` answers 2xx (a program's readiness endpoint).
pub async fn wait_ready(client: &reqwest::Client, url: &str, timeout: Duration) -> bool {
    wait_until(timeout, || async {
        client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await
}

/// A remote-write 1.0 request as a sender makes it: snappy body, protobuf content type.
pub fn remote_write_request(
    client: &reqwest::Client,
    url: &str,
    series: &[TimeSeries],
) -> reqwest::RequestBuilder {
    let mut raw = Vec::new();
    encode_v1(series, &mut raw);
    client
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(compress(&raw).expect("snappy"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A child process killed on drop.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn wait_until<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Sum of a metric over its label sets, from a program's `/metrics` on 127.0.0.1:`port`.
pub async fn scrape_sum(client: &reqwest::Client, port: u16, name: &str) -> Option<f64> {
    let text = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let mut total = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (key, value) = line.rsplit_once(' ')?;
        if key == name || key.starts_with(&format!("{name}{{")) {
            *total.get_or_insert(0.0) += value.parse::<f64>().ok()?;
        }
    }
    total
}

/// Compares the samples a sender reports sent (`sent_metric` on its /metrics) with what the
/// agent received, at a quiet instant: ours, theirs, ours again, all equal. Returns the count,
/// or `None` if they never matched.
pub async fn counts_match(
    agent: &Agent,
    client: &reqwest::Client,
    sender_port: u16,
    sent_metric: &str,
) -> Option<f64> {
    for _ in 0..200 {
        let ours_before = metric_value(
            &agent.metrics_text().await,
            "sre_agent_samples_received_total",
        )
        .unwrap_or(-1.0);
        let theirs = scrape_sum(client, sender_port, sent_metric)
            .await
            .unwrap_or(-2.0);
        let ours_after = metric_value(
            &agent.metrics_text().await,
            "sre_agent_samples_received_total",
        )
        .unwrap_or(-3.0);
        if ours_before == theirs && theirs == ours_after {
            return Some(theirs);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}

/// A real program started by a test: stderr goes to `log`, the process is killed on drop.
pub struct Spawned {
    _guard: ChildGuard,
    pub log: std::path::PathBuf,
}

impl Spawned {
    pub fn start(bin: &std::path::Path, args: &[String], log: std::path::PathBuf) -> Spawned {
        let child = std::process::Command::new(bin)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::from(
                std::fs::File::create(&log).expect("log file"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Spawned {
            _guard: ChildGuard(child),
            log,
        }
    }

    /// What the program has logged so far, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The default test config with basic auth required on the write endpoint.
pub fn basic_auth_config(username: &str, password: &str) -> Config {
    let mut config = test_config();
    config.ingest.auth.username = username.into();
    config.ingest.auth.password = sre_agent::config::Secret::new(password);
    config
}

/// A fresh per-process scratch directory for a test's program files.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sre-agent-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Bodies a [`receiver`] got, in arrival order.
pub type Inbox = Arc<std::sync::Mutex<Vec<axum::body::Bytes>>>;

/// An HTTP receiver on an ephemeral port that stores every POST body to `path` (a webhook or a
/// remote-write endpoint); returns its URL.
pub async fn receiver(path: &'static str) -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let sink = inbox.clone();
    let app = axum::Router::new().route(
        path,
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{}", listener.local_addr().unwrap(), path);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, inbox)
}

/// The real `sre-agent serve` binary on 127.0.0.1:`port` with its data in `dir` (log in
/// `dir/agent-<port>.log`), with extra environment variables; killed on drop.
pub fn start_agent_process(dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> ChildGuard {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sre-agent"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("agent-{port}.log"))).expect("log"))
        .spawn()
        .expect("start sre-agent");
    ChildGuard(child)
}

/// A real Prometheus with its remote-write receiver on, scraping nothing, in a scratch dir
/// named after `name`; waits until it is ready. `None` when `prometheus` is not installed (and
/// `SRE_AGENT_REQUIRE_REAL` is unset).
pub async fn prometheus_receiver(name: &str) -> Option<(Spawned, u16, std::path::PathBuf)> {
    let prometheus = real_binary(&["prometheus"])?;
    let dir = scratch_dir(name);
    let port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1h\n",
    )
    .unwrap();
    let program = Spawned::start(
        &prometheus,
        &[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-remote-write-receiver".into(),
        ],
        dir.join("prometheus.log"),
    );
    let up = wait_ready(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}/-/ready"),
        Duration::from_secs(30),
    )
    .await;
    assert!(up, "Prometheus did not start:\n{}", program.log_text());
    Some((program, port, dir))
}

/// The real binary serving `dir/config.yaml` on `port` with `dir` as its data directory, its
/// stderr in `dir/<log>`; killed when the guard drops.
pub fn serve_binary(dir: &std::path::Path, port: u16, log: &str) -> ChildGuard {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sre-agent"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(dir.join("config.yaml"))
        .arg("--data-dir")
        .arg(dir)
        .env_remove("KUBECONFIG")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join(log)).expect("log file"))
        .spawn()
        .expect("start sre-agent");
    ChildGuard(child)
}
