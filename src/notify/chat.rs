//! Chat-native webhook bodies (`notification.webhook.format`): the generic JSON payload of an
//! incident, plan or anomaly notification turned into a Slack Block Kit message or a Microsoft
//! Teams Adaptive Card, so an incoming-webhook URL renders it with fields and, for approval
//! requests, approve and reject buttons that open the approval page. The outbox keeps the
//! generic payload; the body is rendered at delivery. Label values come from outside: they are
//! escaped for each format so they cannot mention `@channel`, forge links or break markup.

use serde_json::{Value, json};

use crate::config::WebhookFormat;

/// Slack: a header is at most 150 characters, a section field 2000, a section text 3000, a
/// button's text 75, and a section holds at most 10 fields.
const SLACK_HEADER_MAX: usize = 150;
const SLACK_FIELD_MAX: usize = 2000;
const SLACK_TEXT_MAX: usize = 3000;
const SLACK_BUTTON_MAX: usize = 75;
const SLACK_FIELDS_MAX: usize = 10;
/// Lines (steps, hypotheses, anomalies) listed in one message.
const LINES_MAX: usize = 10;

/// A notification as a person reads it, whatever the chat.
#[derive(Debug, Default, PartialEq)]
struct Message {
    title: String,
    summary: String,
    facts: Vec<(String, String)>,
    lines: Vec<String>,
    buttons: Vec<Button>,
    footer: String,
}

#[derive(Debug, PartialEq)]
struct Button {
    text: String,
    url: String,
    danger: bool,
}

/// The body to POST for `payload` (the generic JSON) in `format`.
pub fn render(format: WebhookFormat, payload: Value) -> Value {
    match format {
        WebhookFormat::Json => payload,
        WebhookFormat::Slack => slack(&message(&payload)),
        WebhookFormat::Teams => teams(&message(&payload)),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn labels(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "__name__")
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn message(p: &Value) -> Message {
    let event = text(&p["event"]);
    let mut m = if let Some(i) = p.get("incident") {
        incident(&event, i)
    } else if let Some(plan) = p.get("plan") {
        plan_message(&event, plan, &p["callbacks"])
    } else if let Some(a) = p.get("anomaly") {
        anomaly(&event, a)
    } else {
        Message {
            title: event.clone(),
            ..Message::default()
        }
    };
    m.footer = format!("sre-agent · {event} · {}", text(&p["notification_id"]));
    m
}

fn incident(event: &str, i: &Value) -> Message {
    let what = event.strip_prefix("incident.").unwrap_or(event);
    let mut m = Message {
        title: format!("Incident {what}: {}", text(&i["title"])),
        summary: format!("{} · {}", text(&i["id"]), labels(&i["group"])),
        ..Message::default()
    };
    m.facts = vec![
        ("Severity".into(), text(&i["severity"])),
        ("State".into(), text(&i["state"])),
        ("Firing".into(), text(&i["anomalies_firing"])),
        ("Opened".into(), text(&i["opened_at"])),
    ];
    if let Some(h) = i["rca"]["hypotheses"].get(0) {
        m.facts.push((
            "Likely cause".into(),
            format!(
                "{} ({:.0} %)",
                text(&h["root_cause"]),
                h["confidence"].as_f64().unwrap_or(0.0) * 100.0
            ),
        ));
    }
    for a in i["anomalies"].as_array().into_iter().flatten() {
        m.lines.push(format!(
            "{} {{{}}} {}{}",
            text(&a["metric"]),
            labels(&a["labels"]),
            text(&a["kind"]),
            if a["firing"] == true {
                ""
            } else {
                " (resolved)"
            }
        ));
    }
    m
}

fn plan_message(event: &str, plan: &Value, links: &Value) -> Message {
    let what = event
        .strip_prefix("plan.")
        .unwrap_or(event)
        .replace('_', " ");
    let mut m = Message {
        title: format!("Plan {what}: {}", text(&plan["playbook_id"])),
        summary: format!(
            "{} for incident {}",
            text(&plan["id"]),
            text(&plan["incident_id"])
        ),
        ..Message::default()
    };
    let risk = &plan["risk"];
    m.facts = vec![
        (
            "Risk".into(),
            format!(
                "{:.2} {}",
                risk["score"].as_f64().unwrap_or(0.0),
                text(&risk["level"])
            ),
        ),
        ("State".into(), text(&plan["state"])),
        (
            "Approvals".into(),
            format!(
                "{} of {}",
                plan["approvals"].as_array().map_or(0, Vec::len),
                text(&plan["approvals_required"])
            ),
        ),
        ("Expires".into(), text(&links["expires_at"])),
    ];
    m.facts.retain(|(_, v)| !v.is_empty());
    for s in plan["steps"].as_array().into_iter().flatten() {
        m.lines.push(format!(
            "{}: {} {}/{}",
            text(&s["name"]),
            text(&s["action"]),
            text(&s["namespace"]),
            text(&s["target"])
        ));
    }
    let approve = links["approve"].as_array().cloned().unwrap_or_default();
    let n = approve.len();
    for (k, url) in approve.iter().enumerate() {
        m.buttons.push(Button {
            text: if n > 1 {
                format!("Approve ({} of {n})", k + 1)
            } else {
                "Approve".into()
            },
            url: text(url),
            danger: false,
        });
    }
    if let Some(url) = links["reject"].as_str() {
        m.buttons.push(Button {
            text: "Reject".into(),
            url: url.into(),
            danger: true,
        });
    }
    m
}

fn anomaly(event: &str, a: &Value) -> Message {
    let what = event.strip_prefix("anomaly.").unwrap_or(event);
    Message {
        title: format!("Anomaly {what}: {}", text(&a["metric"])),
        summary: text(&a["summary"]),
        facts: vec![
            ("Severity".into(), text(&a["severity"])),
            ("Series".into(), labels(&a["labels"])),
            ("Value".into(), text(&a["value"])),
            ("Expected".into(), text(&a["expected"])),
            ("Since".into(), text(&a["started_at"])),
        ],
        ..Message::default()
    }
}

/// At most `max` characters (not bytes), with an ellipsis when cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Slack refuses an empty text object.
fn nonempty(s: String) -> String {
    if s.trim().is_empty() { " ".into() } else { s }
}

/// Slack's control characters in mrkdwn and plain text: `<…>` makes links and mentions.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack(m: &Message) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": clip(&m.title, SLACK_HEADER_MAX), "emoji": false},
    })];
    let mut section = json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": nonempty(clip(&slack_escape(&m.summary), SLACK_TEXT_MAX))},
    });
    let fields: Vec<Value> = m
        .facts
        .iter()
        .take(SLACK_FIELDS_MAX)
        .map(|(k, v)| {
            json!({"type": "mrkdwn", "text": clip(&format!("*{k}*\n{}", slack_escape(v)), SLACK_FIELD_MAX)})
        })
        .collect();
    if !fields.is_empty() {
        section["fields"] = Value::Array(fields);
    }
    blocks.push(section);
    if !m.lines.is_empty() {
        let listed: Vec<String> = m
            .lines
            .iter()
            .take(LINES_MAX)
            .map(|l| format!("• {}", slack_escape(l)))
            .collect();
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(&listed.join("\n"), SLACK_TEXT_MAX)},
        }));
    }
    if !m.buttons.is_empty() {
        let elements: Vec<Value> = m
            .buttons
            .iter()
            .enumerate()
            .map(|(i, b)| {
                json!({
                    "type": "button",
                    "text": {"type": "plain_text", "text": clip(&b.text, SLACK_BUTTON_MAX)},
                    "url": b.url,
                    "action_id": format!("sre_agent_{i}"),
                    "style": if b.danger { "danger" } else { "primary" },
                })
            })
            .collect();
        blocks.push(json!({"type": "actions", "elements": elements}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": slack_escape(&m.footer)}],
    }));
    json!({"text": slack_escape(&clip(&m.title, SLACK_TEXT_MAX)), "blocks": blocks})
}

/// Adaptive Cards read a Markdown subset in text: outside values are escaped so they cannot
/// make links or emphasis.
fn teams_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '[' | ']' | '(' | ')' | '~' | '`' | '#' | '<' | '>'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn teams(m: &Message) -> Value {
    let mut body = vec![
        json!({"type": "TextBlock", "text": teams_escape(&m.title), "weight": "Bolder", "size": "Medium", "wrap": true}),
        json!({"type": "TextBlock", "text": teams_escape(&m.summary), "wrap": true, "isSubtle": true}),
    ];
    if !m.facts.is_empty() {
        let facts: Vec<Value> = m
            .facts
            .iter()
            .map(|(k, v)| json!({"title": k, "value": teams_escape(v)}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    for l in m.lines.iter().take(LINES_MAX) {
        body.push(json!({"type": "TextBlock", "text": format!("- {}", teams_escape(l)), "wrap": true, "spacing": "None"}));
    }
    body.push(json!({"type": "TextBlock", "text": teams_escape(&m.footer), "wrap": true, "size": "Small", "isSubtle": true}));
    let actions: Vec<Value> = m
        .buttons
        .iter()
        .map(|b| {
            json!({
                "type": "Action.OpenUrl",
                "title": b.text,
                "url": b.url,
                "style": if b.danger { "destructive" } else { "positive" },
            })
        })
        .collect();
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if !actions.is_empty() {
        card["actions"] = Value::Array(actions);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

#[cfg(test)]
#[path = "chat_tests.rs"]
mod tests;
