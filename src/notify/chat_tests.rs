use serde_json::{Value, json};

use super::*;

const HOSTILE: &str = "<!channel> [click](http://evil.example) *x*";

fn approval_request() -> Value {
    json!({
        "version": "1",
        "event": "plan.approval_requested",
        "notification_id": "plan.approval_requested:PLAN-7",
        "plan": {
            "id": "PLAN-7", "incident_id": "INC-3", "playbook_id": "service-rollback",
            "state": "pending_approval", "approvals": [], "approvals_required": 2,
            "risk": {"score": 0.61, "level": "MANUAL"},
            "steps": [{"name": "roll back", "action": "deployment_rollback",
                       "namespace": "api", "target": HOSTILE}],
        },
        "callbacks": {
            "approve": ["https://agent.example/api/v1/callbacks/a1", "https://agent.example/api/v1/callbacks/a2"],
            "reject": "https://agent.example/api/v1/callbacks/r1",
            "expires_at": "2026-12-07T10:00:00.000Z",
        },
    })
}

fn incident_opened() -> Value {
    json!({
        "version": "1", "event": "incident.analyzed", "notification_id": "k",
        "incident": {
            "id": "INC-3", "title": "api-gateway: api_error_rate", "severity": "high",
            "state": "open", "anomalies_firing": 1, "opened_at": "2026-12-07T09:00:00Z",
            "group": {"service": "api-gateway", "team": HOSTILE},
            "anomalies": [{"metric": "api_error_rate", "labels": {"pod": "api-0", "team": HOSTILE},
                           "kind": "anomaly", "firing": true}],
            "rca": {"hypotheses": [{"root_cause": "bad deploy", "confidence": 0.8}]},
        },
    })
}

fn anomaly_fired() -> Value {
    json!({
        "version": "1", "event": "anomaly.fired", "notification_id": "k2",
        "anomaly": {"metric": "order_latency_seconds", "summary": "latency high",
                    "severity": "medium", "labels": {"__name__": "order_latency_seconds", "team": HOSTILE},
                    "value": 0.9, "expected": 0.1, "started_at": "2026-12-07T09:00:00Z"},
    })
}

fn mrkdwn_texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if m.get("type") == Some(&json!("mrkdwn"))
                || m.get("type") == Some(&json!("plain_text"))
            {
                out.push(m["text"].as_str().unwrap().to_string());
            }
            m.values().for_each(|x| mrkdwn_texts(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| mrkdwn_texts(x, out)),
        _ => {}
    }
}

/// The Block Kit rules a Slack incoming webhook enforces on what we send.
fn assert_block_kit(msg: &Value) {
    let top: Vec<&String> = msg.as_object().unwrap().keys().collect();
    assert_eq!(top, ["blocks", "text"], "{msg:#}");
    let blocks = msg["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    let mut action_ids = std::collections::HashSet::new();
    for b in blocks {
        match b["type"].as_str().unwrap() {
            "header" => {
                assert_eq!(b["text"]["type"], "plain_text");
                assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 150);
            }
            "section" => {
                let t = &b["text"];
                assert_eq!(t["type"], "mrkdwn");
                let s = t["text"].as_str().unwrap();
                assert!(!s.is_empty() && s.chars().count() <= 3000);
                if let Some(f) = b.get("fields") {
                    let f = f.as_array().unwrap();
                    assert!(!f.is_empty() && f.len() <= 10);
                    for x in f {
                        assert_eq!(x["type"], "mrkdwn");
                        assert!(x["text"].as_str().unwrap().chars().count() <= 2000);
                    }
                }
            }
            "actions" => {
                let e = b["elements"].as_array().unwrap();
                assert!(!e.is_empty() && e.len() <= 25);
                for x in e {
                    assert_eq!(x["type"], "button");
                    assert_eq!(x["text"]["type"], "plain_text");
                    assert!(x["text"]["text"].as_str().unwrap().chars().count() <= 75);
                    assert!(x["url"].as_str().unwrap().starts_with("https://"));
                    assert!(["primary", "danger"].contains(&x["style"].as_str().unwrap()));
                    assert!(action_ids.insert(x["action_id"].as_str().unwrap().to_string()));
                }
            }
            "context" => assert!(!b["elements"].as_array().unwrap().is_empty()),
            other => panic!("block type {other} not used by us"),
        }
    }
    let mut texts = Vec::new();
    mrkdwn_texts(msg, &mut texts);
    for t in texts {
        assert!(
            !t.contains('<') && !t.contains('>'),
            "unescaped link syntax: {t}"
        );
    }
}

/// Whether `t` holds one of `chars` without a backslash before it.
fn unescaped(t: &str, chars: &[char]) -> bool {
    let mut prev = ' ';
    for c in t.chars() {
        if chars.contains(&c) && prev != '\\' {
            return true;
        }
        prev = if prev == '\\' && c == '\\' { ' ' } else { c };
    }
    false
}

/// What Teams requires of an incoming webhook's Adaptive Card message.
fn assert_adaptive_card(msg: &Value) {
    assert_eq!(msg["type"], "message");
    let att = msg["attachments"].as_array().unwrap();
    assert_eq!(att.len(), 1);
    assert_eq!(
        att[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &att[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    for e in card["body"].as_array().unwrap() {
        match e["type"].as_str().unwrap() {
            "TextBlock" => {
                let t = e["text"].as_str().unwrap();
                assert!(!unescaped(t, &['[', '<', '*']), "unescaped markdown: {t}");
            }
            "FactSet" => {
                for f in e["facts"].as_array().unwrap() {
                    assert!(f["title"].is_string());
                    let v = f["value"].as_str().unwrap();
                    assert!(!unescaped(v, &['[', '<', '*']), "unescaped markdown: {v}");
                }
            }
            other => panic!("element {other} not used by us"),
        }
    }
    for a in card["actions"].as_array().into_iter().flatten() {
        assert_eq!(a["type"], "Action.OpenUrl");
        assert!(a["title"].is_string());
        assert!(a["url"].as_str().unwrap().starts_with("https://"));
    }
}

#[test]
fn an_approval_request_is_block_kit_with_a_button_per_link() {
    let msg = render(WebhookFormat::Slack, approval_request());
    assert_block_kit(&msg);
    let actions = msg["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap();
    let buttons: Vec<(&str, &str)> = actions["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["text"]["text"].as_str().unwrap(),
                b["url"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        buttons,
        [
            (
                "Approve (1 of 2)",
                "https://agent.example/api/v1/callbacks/a1"
            ),
            (
                "Approve (2 of 2)",
                "https://agent.example/api/v1/callbacks/a2"
            ),
            ("Reject", "https://agent.example/api/v1/callbacks/r1"),
        ]
    );
    let text = msg.to_string();
    assert!(text.contains("service-rollback") && text.contains("0.61 MANUAL"));
    assert!(text.contains("&lt;!channel&gt;"));
}

#[test]
fn incidents_and_anomalies_are_block_kit_too() {
    for p in [incident_opened(), anomaly_fired()] {
        let msg = render(WebhookFormat::Slack, p);
        assert_block_kit(&msg);
        assert!(!msg.to_string().contains("\"actions\""));
    }
    let msg = render(WebhookFormat::Slack, incident_opened());
    assert!(msg.to_string().contains("bad deploy (80 %)"));
}

#[test]
fn every_payload_is_an_adaptive_card_for_teams() {
    let msg = render(WebhookFormat::Teams, approval_request());
    assert_adaptive_card(&msg);
    let actions = msg["attachments"][0]["content"]["actions"]
        .as_array()
        .unwrap();
    assert_eq!(actions.len(), 3);
    assert_eq!(actions[2]["title"], "Reject");
    assert_eq!(actions[2]["style"], "destructive");
    for p in [incident_opened(), anomaly_fired()] {
        let msg = render(WebhookFormat::Teams, p);
        assert_adaptive_card(&msg);
        assert!(msg["attachments"][0]["content"].get("actions").is_none());
    }
}

#[test]
fn json_stays_our_payload_and_long_text_is_cut_by_characters() {
    assert_eq!(
        render(WebhookFormat::Json, approval_request()),
        approval_request()
    );
    let mut long = incident_opened();
    long["incident"]["title"] = json!("é".repeat(400));
    let msg = render(WebhookFormat::Slack, long);
    assert_block_kit(&msg);
    assert_eq!(clip("ab", 2), "ab");
    assert_eq!(clip("abc", 2), "a…");
}
