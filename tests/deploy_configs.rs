//! The deploy configs are valid for the real tools, and every agent metric they use exists in
//! what a running agent emits.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const RULE_FILES: [&str; 2] = [
    "deploy/prometheus/rules/sre-agent.rules.yml",
    "deploy/prometheus/rules/exchange.recording.yml",
];

fn check(tool: &[&str], args: &[&str]) {
    let Some(bin) = real_binary(tool) else { return };
    let out = Command::new(&bin)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run checker");
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        bin.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_config_and_rules_pass_promtool() {
    for config in [
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/prometheus-sharded.yml",
    ] {
        check(&["promtool"], &["check", "config", config]);
    }
    let mut args = vec!["check", "rules"];
    args.extend(RULE_FILES);
    check(&["promtool"], &args);
}

#[test]
fn alertmanager_config_passes_amtool() {
    check(
        &["amtool"],
        &["check-config", "deploy/alertmanager/alertmanager.yml"],
    );
}

/// The metric families a running agent exposes on /metrics.
async fn emitted_families() -> Vec<String> {
    let agent = Agent::start(test_config()).await;
    agent
        .metrics_text()
        .await
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(String::from)
        .collect()
}

/// Whether `name` is one of `families` (a histogram's `_bucket`/`_sum`/`_count` included).
fn is_emitted(families: &[String], name: &str) -> bool {
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .filter(|b| families.iter().any(|f| f == b));
    families.iter().any(|f| f == base.unwrap_or(name))
}

/// Metric names in rule text that the agent is responsible for emitting.
fn agent_metrics_used(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("sre_agent_") || sre_agent::writeback::EXPORTED.contains(w))
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test]
async fn every_agent_metric_a_rule_uses_is_emitted() {
    let families = emitted_families().await;
    let mut checked = 0;
    for file in RULE_FILES {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        for name in agent_metrics_used(&text) {
            assert!(
                is_emitted(&families, &name),
                "{file} uses {name}, which the agent does not emit"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 8,
        "only {checked} agent metrics found in the rules"
    );
}

/// Agent-owned metric names in a PromQL expression (its own `sre_agent_*` and the exported
/// anomaly and forecast series); Prometheus' own (`up`), functions and labels are not ours.
fn agent_names_in(expr: &str) -> Vec<String> {
    let ours = |w: &str| {
        w.starts_with("sre_agent_")
            || sre_agent::writeback::EXPORTED.contains(&w)
            || sre_agent::writeback::FORECAST.contains(&w)
            || w == sre_agent::writeback::BREACH
    };
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| ours(w))
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn grafana_dashboards_parse_and_use_only_emitted_metrics() {
    let families = emitted_families().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dashboards");
    let mut dashboards = 0;
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let dash: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        assert!(
            dash["uid"].is_string() && dash["title"].is_string(),
            "{}",
            path.display()
        );
        let panels = dash["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{}", path.display());
        let mut ids = std::collections::HashSet::new();
        for panel in panels {
            assert!(
                ids.insert(panel["id"].as_i64().unwrap()),
                "duplicate panel id"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
            for t in targets {
                let expr = t["expr"].as_str().expect("expr");
                assert!(!expr.trim().is_empty());
                for name in agent_names_in(expr) {
                    assert!(
                        is_emitted(&families, &name),
                        "{} uses {name}, which the agent does not emit",
                        path.display()
                    );
                    checked += 1;
                }
            }
        }
        dashboards += 1;
    }
    assert!(dashboards >= 2, "dashboards found: {dashboards}");
    assert!(checked >= 20, "only {checked} agent metric uses found");
}
