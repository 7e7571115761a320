//! Scale-out as documented in `deploy/prometheus/prometheus-sharded.yml`: one real Prometheus
//! 2.42 remote-writes to three agent processes through that file's hashmod relabelling. Every
//! series Prometheus has lands on exactly one replica, the series of one service all meet in
//! one replica, each replica gets a share, and nothing fails. Skips when `prometheus` is not
//! installed, unless `SRE_AGENT_REQUIRE_REAL=1` (CI) makes that a failure.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use common::*;

type LabelSet = BTreeMap<String, String>;

/// An exporter of an exchange's services: 4 namespaces x 3 services x 2 pods x 3 metrics.
fn exposition() -> String {
    let mut out = String::new();
    for ns in ["trading", "matching", "risk", "wallet"] {
        for svc in ["api", "engine", "gateway"] {
            for pod in 0..2 {
                for (metric, v) in [
                    ("cpu_usage", 0.4),
                    ("memory_usage", 0.6),
                    ("request_rate", 120.0),
                ] {
                    out.push_str(&format!(
                        "{metric}{{namespace=\"{ns}\",service=\"{svc}\",pod=\"{svc}-{pod}\"}} {}\n",
                        v + fastrand::f64() * 0.01
                    ));
                }
            }
        }
    }
    out
}

async fn serve_exporter() -> std::net::SocketAddr {
    let app = axum::Router::new().route("/metrics", axum::routing::get(|| async { exposition() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn series_of(client: &reqwest::Client, port: u16) -> BTreeSet<LabelSet> {
    let body: serde_json::Value = client
        .get(format!(
            "http://127.0.0.1:{port}/api/v1/series?limit=100000"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_value(s["labels"].clone()).unwrap())
        .collect()
}

fn is_agent_output(name: &str) -> bool {
    name == "anomaly_score" || name.starts_with("yhat") || name == "predicted_breach_seconds"
}

async fn prometheus_series(client: &reqwest::Client, port: u16) -> BTreeSet<LabelSet> {
    let body: serde_json::Value = client
        .post(format!("http://127.0.0.1:{port}/api/v1/series"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(sre_agent::net::form_encode(&[(
            "match[]",
            r#"{__name__=~".+"}"#.into(),
        )]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_value(s.clone()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_sharded_by_hashmod_each_series_on_exactly_one() {
    sre_agent::net::install_crypto_provider();
    let Some(prometheus) = real_binary(&["prometheus"]) else {
        return;
    };
    let dir = scratch_dir("scale-out");
    let client = reqwest::Client::new();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut agents = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let data = dir.join(format!("agent-{i}"));
        std::fs::create_dir_all(&data).unwrap();
        agents.push(start_agent_process(
            &data,
            *port,
            &[
                ("SRE_AGENT_WRITE_USERNAME", "prometheus"),
                ("SRE_AGENT_WRITE_PASSWORD", "shard-pw"),
            ],
        ));
        let ready = wait_ready(
            &client,
            &format!("http://127.0.0.1:{port}/ready"),
            Duration::from_secs(20),
        )
        .await;
        assert!(ready, "agent {i} did not start");
    }
    let exporter = serve_exporter().await;

    // The documented file, pointed at this machine: replica hostnames → local agents.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/prometheus/prometheus-sharded.yml"),
    )
    .unwrap();
    let mut config: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    std::fs::write(dir.join("password"), "shard-pw").unwrap();
    let prom_port = free_port();
    config["global"]["scrape_interval"] = "1s".into();
    let writes = config["remote_write"].as_array_mut().unwrap();
    assert_eq!(writes.len(), 3);
    for (i, rw) in writes.iter_mut().enumerate() {
        let host = format!("sre-agent-{i}.sre-agent-headless.sre-agent.svc:8000");
        let url = rw["url"]
            .as_str()
            .unwrap()
            .replace(&host, &format!("127.0.0.1:{}", ports[i]));
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        rw["url"] = url.into();
        rw["basic_auth"]["password_file"] = dir.join("password").display().to_string().into();
        rw["queue_config"]["batch_send_deadline"] = "1s".into();
    }
    config["scrape_configs"] = serde_json::json!([
        {"job_name": "exchange", "honor_labels": true, "static_configs": [{"targets": [exporter.to_string()]}]},
        {"job_name": "sre-agent", "static_configs": [{"targets": ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>()}]},
    ]);
    std::fs::write(
        dir.join("prometheus.yml"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    let program = Spawned::start(
        &prometheus,
        &[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        dir.join("prometheus.log"),
    );

    // Wait until every series Prometheus has is on some replica, twice in a row.
    let mut stable = 0;
    let mut last = (BTreeSet::new(), Vec::new());
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        // The agents' outputs, scraped from their /metrics, are not sent back to them.
        let theirs: BTreeSet<LabelSet> = prometheus_series(&client, prom_port)
            .await
            .into_iter()
            .filter(|s| !is_agent_output(&s["__name__"]))
            .collect();
        let mut ours = Vec::new();
        for p in &ports {
            ours.push(series_of(&client, *p).await);
        }
        let union: BTreeSet<LabelSet> = ours.iter().flatten().cloned().collect();
        let exchange = theirs
            .iter()
            .filter(|s| s.get("job").is_some_and(|j| j == "exchange"))
            .count();
        let done = theirs.len() > 80 && exchange >= 72 && theirs.is_subset(&union);
        stable = if done { stable + 1 } else { 0 };
        last = (theirs, ours);
        if stable >= 2 {
            break;
        }
    }
    let (theirs, ours) = last;
    let log = program.log_text();
    let union: BTreeSet<&LabelSet> = ours.iter().flatten().collect();
    let missing: Vec<&LabelSet> = theirs
        .iter()
        .filter(|s| !union.contains(s))
        .take(5)
        .collect();
    assert!(
        stable >= 2,
        "replicas never held all {} series ({} missing, e.g. {missing:?}); Prometheus log:\n{log}",
        theirs.len(),
        theirs.iter().filter(|s| !union.contains(s)).count()
    );

    // Exactly one replica per series, and no replica holds a series Prometheus does not have.
    let mut owner: HashMap<&LabelSet, usize> = HashMap::new();
    for (i, set) in ours.iter().enumerate() {
        for s in set {
            assert!(
                theirs.contains(s),
                "replica {i} holds a series Prometheus lacks: {s:?}"
            );
            assert!(!s.keys().any(|k| k.starts_with("__tmp")), "{s:?}");
            if let Some(j) = owner.insert(s, i) {
                panic!("series {s:?} on replicas {j} and {i}");
            }
        }
    }
    // One service, one replica.
    let mut service_owner: HashMap<(String, String), usize> = HashMap::new();
    for (s, i) in &owner {
        if let (Some(ns), Some(svc)) = (s.get("namespace"), s.get("service")) {
            let prev = service_owner.insert((ns.clone(), svc.clone()), *i);
            assert!(
                prev.is_none_or(|p| p == *i),
                "{ns}/{svc} split across replicas"
            );
        }
    }
    assert_eq!(service_owner.len(), 12);
    let per_replica: Vec<usize> = (0..3)
        .map(|i| service_owner.values().filter(|o| **o == i).count())
        .collect();
    eprintln!(
        "{} series over 3 replicas: {:?} series, {:?} services each",
        theirs.len(),
        ours.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        per_replica
    );
    assert!(
        per_replica.iter().all(|n| *n >= 1),
        "a replica got no service: {per_replica:?}"
    );

    // Nothing failed or was retried on any of the three queues (`dropped` counts the samples
    // relabelling sent elsewhere, so it is not checked).
    for name in [
        "prometheus_remote_storage_samples_failed_total",
        "prometheus_remote_storage_samples_retried_total",
    ] {
        let n = scrape_sum(&client, prom_port, name).await.unwrap_or(0.0);
        assert_eq!(n, 0.0, "{name} = {n}; Prometheus log:\n{log}");
    }
    drop(agents);
    let _ = std::fs::remove_dir_all(&dir);
}
