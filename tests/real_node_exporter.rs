//! Pull mode against a real `prometheus-node-exporter`: the agent scrapes it at its interval,
//! every sample the exporter exposes lands in the store under the target's labels (counters as
//! cumulative, gauges not), `up` and the agent's target health say so, and when the exporter
//! dies the target goes down and its series are marked stale at once. Skips when the exporter
//! is not installed, unless `SRE_AGENT_REQUIRE_REAL=1` (CI) makes that a failure.

mod common;

use std::time::Duration;

use common::*;
use sre_agent::config::ScrapeTarget;

/// Sample lines in an exposition (what a scrape should store).
fn sample_lines(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_a_real_node_exporter_and_notices_when_it_dies() {
    sre_agent::net::install_crypto_provider();
    let Some(exporter) = real_binary(&["prometheus-node-exporter", "node_exporter"]) else {
        return;
    };
    let dir = scratch_dir("node-exporter");
    let port = free_port();
    let program = Spawned::start(
        &exporter,
        &[format!("--web.listen-address=127.0.0.1:{port}")],
        dir.join("node-exporter.log"),
    );
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let up = wait_ready(&client, &url, Duration::from_secs(30)).await;
    assert!(up, "node exporter did not start:\n{}", program.log_text());

    let mut config = test_config();
    config.scrape.targets = vec![ScrapeTarget {
        job: "node".into(),
        url: url.clone(),
        interval: Some(Duration::from_secs(1)),
        timeout: None,
        labels: [("namespace".to_string(), "infra".to_string())].into(),
        bearer_token: Default::default(),
    }];
    let agent = Agent::start(config).await;
    let instance = format!("127.0.0.1:{port}");

    let scraped = wait_until(Duration::from_secs(30), || async {
        let t = agent.get_json("/api/v1/targets").await;
        t["targets"][0]["scrapes_succeeded"].as_u64().unwrap_or(0) >= 3
    })
    .await;
    let targets = agent.get_json("/api/v1/targets").await;
    assert!(scraped, "{targets}\n{}", program.log_text());
    let target = &targets["targets"][0];
    assert_eq!(target["health"], "up", "{targets}");
    assert_eq!(target["job"], "node");
    assert_eq!(target["instance"], instance.as_str());
    assert_eq!(target["scrapes_failed"], 0, "{targets}");

    // What the exporter exposes now and what the last scrape stored agree (the exporter's own
    // series count moves a little between scrapes, e.g. with open file descriptors).
    let exposed = sample_lines(&client.get(&url).send().await.unwrap().text().await.unwrap());
    let last = target["last_samples"].as_u64().unwrap() as usize;
    eprintln!("node exporter exposes {exposed} samples; the agent's last scrape stored {last}");
    assert!(
        exposed > 200,
        "node exporter exposed only {exposed} samples"
    );
    assert!(
        last.abs_diff(exposed) * 50 <= exposed,
        "scraped {last}, exporter exposes {exposed}"
    );
    let metrics = agent.metrics_text().await;
    let scraped_total =
        metric_value(&metrics, "sre_agent_samples_scraped_total").unwrap_or(0.0) as usize;
    assert!(
        scraped_total >= 3 * last * 9 / 10,
        "{scraped_total} vs {last}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            &format!(r#"sre_agent_scrape_target_up{{job="node",instance="{instance}"}}"#)
        ),
        Some(1.0),
        "{metrics}"
    );
    // Remote-write counters are untouched by scrapes.
    assert_eq!(
        metric_value(&metrics, "sre_agent_samples_received_total"),
        Some(0.0)
    );

    // Series carry the target's labels; types follow the exposition's TYPE lines.
    let series = |selector: String| {
        let agent = &agent;
        async move {
            let q = sre_agent::net::form_encode(&[("match", selector)]);
            agent.get_json(&format!("/api/v1/series?{q}")).await
        }
    };
    let load = series(format!(
        r#"node_load1{{job="node",instance="{instance}",namespace="infra"}}"#
    ))
    .await;
    assert_eq!(load["count"], 1, "{load}");
    assert_eq!(load["series"][0]["cumulative"], false);
    let cpu = series(r#"node_cpu_seconds_total{mode="idle"}"#.into()).await;
    assert!(cpu["count"].as_u64().unwrap() >= 1, "{cpu}");
    assert_eq!(cpu["series"][0]["cumulative"], true);
    let up_series = series(format!(r#"up{{job="node",instance="{instance}"}}"#)).await;
    assert_eq!(up_series["count"], 1, "{up_series}");
    let id = up_series["series"][0]["id"].as_str().unwrap().to_string();

    // The exporter dies: the next scrape fails, up goes to 0, and its series turn stale.
    drop(program);
    let down = wait_until(Duration::from_secs(15), || async {
        agent.get_json("/api/v1/targets").await["targets"][0]["health"] == "down"
    })
    .await;
    let targets = agent.get_json("/api/v1/targets").await;
    assert!(down, "{targets}");
    assert!(
        targets["targets"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("request failed"),
        "{targets}"
    );
    let up_now = agent.get_json(&format!("/api/v1/series/{id}")).await;
    let last_up = up_now["samples"].as_array().unwrap().last().unwrap()[1].clone();
    assert_eq!(last_up, 0.0, "{up_now}");
    let load = series(format!(r#"node_load1{{instance="{instance}"}}"#)).await;
    assert_eq!(load["series"][0]["stale"], true, "{load}");
    let _ = std::fs::remove_dir_all(&dir);
}
