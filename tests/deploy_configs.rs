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
    check(
        &["promtool"],
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
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
    let agent = Agent::start(test_config()).await;
    let exposition = agent.metrics_text().await;
    let families: Vec<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut checked = 0;
    for file in RULE_FILES {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        for name in agent_metrics_used(&text) {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|base| families.contains(base)))
                .unwrap_or(&name);
            assert!(
                families.contains(&family),
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
