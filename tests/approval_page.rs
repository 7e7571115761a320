//! The approval page in a real browser: headless Chromium (Debian `chromium` and
//! `chromium-driver`, which `.ci/run` installs) driven over WebDriver by `fantoccini`. A bad
//! deploy becomes a plan waiting for approval; the on-call opens the webhook's approve link,
//! reads the plan, types a name and clicks; the approval lands in the plan and the audit log;
//! the link then says it was used; a label value holding `<script>` renders as text. Kubernetes
//! is the in-process fake API server (`sre_agent::sim::cluster`), as in `tests/remediation.rs`.
#![cfg(feature = "kube")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Agent, now_ms, real_binary, receiver, test_config, write_pods};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sre_agent::sim::cluster::FakeCluster;

const HOSTILE: &str = "<script>document.title='pwned'</script>";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free port, and a headless Chromium session through it.
async fn browser() -> Option<(Driver, Client)> {
    let driver = real_binary(&["chromedriver"])?;
    let chromium = real_binary(&["chromium", "chromium-browser"])?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let guard = Driver(child);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return Some((guard, client)),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("no WebDriver session from chromedriver on {url}");
}

/// The api-gateway's error rate jumps two minutes after a rollout (its pods carry a hostile
/// label value).
async fn bad_deploy(agent: &Agent, cluster: &FakeCluster) {
    let start = now_ms() - 3_600_000;
    let at = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis((start + 110 * 15_000 - 120_000) as u64),
    )
    .to_string();
    cluster.put(json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "rollout.1", "namespace": "api", "creationTimestamp": at},
        "involvedObject": {"kind": "Deployment", "name": "api-gateway", "namespace": "api"},
        "reason": "ScalingReplicaSet", "message": "ScalingReplicaSet api-gateway", "type": "Normal",
        "firstTimestamp": at, "lastTimestamp": at, "count": 1,
        "source": {"component": "deployment-controller"}
    }));
    let mut rng = fastrand::Rng::with_seed(11);
    let labels = [
        ("__name__", "api_error_rate"),
        ("deployment", "api-gateway"),
        ("namespace", "api"),
        ("service", "api-gateway"),
        ("team", HOSTILE),
    ];
    write_pods(agent, start, &labels, "api-gateway", 3, |_, i| {
        if i >= 110 {
            0.09
        } else {
            0.002 + rng.f64() * 0.0005
        }
    })
    .await;
}

/// The approval request's links of one kind (`approve` or `reject`).
async fn links_of(agent: &Agent, inbox: &common::Inbox, kind: &str) -> Vec<String> {
    for _ in 0..100 {
        let request = inbox
            .lock()
            .unwrap()
            .iter()
            .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
            .find(|v| v["event"] == "plan.approval_requested");
        if let Some(r) = request {
            // One approve link per approver, one reject link. They start with
            // auto_remediation.public_url (its default here).
            let found = &r["callbacks"][kind];
            let links = found
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![found.clone()]);
            return links
                .iter()
                .map(|l| {
                    l.as_str()
                        .unwrap()
                        .replace("http://localhost:8000", &agent.url(""))
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no approval request by webhook");
}

async fn text_of(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} not on the page: {e}"))
        .text()
        .await
        .unwrap()
}

/// An agent (dry-run, the default) with a bad deploy's plan waiting for approval.
async fn agent_with_pending_plan() -> (Agent, common::Inbox, String) {
    let (agent, inbox) = agent_with_bad_deploy(sre_agent::config::WebhookFormat::Json).await;
    // The request's links exist once it was sent; the plan is then listed.
    links_of(&agent, &inbox, "approve").await;
    let plan_id = agent.get_json("/api/v1/approvals").await["approvals"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (agent, inbox, plan_id)
}

/// An agent whose webhook speaks `format`, after a bad deploy.
async fn agent_with_bad_deploy(format: sre_agent::config::WebhookFormat) -> (Agent, common::Inbox) {
    let cluster = FakeCluster::new();
    cluster.add_deployment("api", "api-gateway", 3, 2, json!({}));
    let api = cluster.serve().await.unwrap();
    let (hook, inbox) = receiver("/hook").await;
    let mut config = test_config();
    config.kubernetes.api_url = api;
    config.notification.webhook.url = hook;
    config.notification.webhook.format = format;
    sre_agent::net::install_crypto_provider();
    let events = sre_agent::analyze::kubernetes::event_source(&config.kubernetes).await;
    let agent = Agent::start_with_parts(config, events, Vec::new()).await;
    bad_deploy(&agent, &cluster).await;
    (agent, inbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_approval_request_has_buttons_that_open_the_approval_page() {
    let (agent, inbox) = agent_with_bad_deploy(sre_agent::config::WebhookFormat::Slack).await;
    let mut buttons = Vec::new();
    for _ in 0..100 {
        buttons = inbox
            .lock()
            .unwrap()
            .iter()
            .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
            .flat_map(|m| m["blocks"].as_array().cloned().unwrap_or_default())
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
            .collect();
        if !buttons.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bodies: Vec<Value> = inbox
        .lock()
        .unwrap()
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect();
    assert!(!buttons.is_empty(), "no Block Kit buttons in {bodies:#?}");
    // Every message is Block Kit (no generic payload leaks through), hostile label escaped.
    for b in &bodies {
        assert!(b["blocks"].is_array() && b["text"].is_string(), "{b:#}");
        assert!(b.get("event").is_none());
    }
    assert!(!serde_json::to_string(&bodies).unwrap().contains("<script>"));
    let texts: Vec<&str> = buttons
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.last(), Some(&"Reject"), "{texts:?}");
    assert!(texts[0].starts_with("Approve"));
    let url = buttons[0]["url"]
        .as_str()
        .unwrap()
        .replace("http://localhost:8000", &agent.url(""));
    let page = agent
        .client
        .get(&url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Approve plan"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_page_is_locked_down_and_a_form_decides_only_with_a_name() {
    let (agent, inbox, plan_id) = agent_with_pending_plan().await;
    let reject = links_of(&agent, &inbox, "reject").await;
    let approve = links_of(&agent, &inbox, "approve").await;
    let html = |url: String| {
        let client = agent.client.clone();
        async move {
            client
                .get(url)
                .header("accept", "text/html,application/xhtml+xml")
                .send()
                .await
                .unwrap()
        }
    };
    let page = html(reject[0].clone()).await;
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(
        h["content-security-policy"],
        sre_agent::api::ui::CONTENT_SECURITY_POLICY
    );
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-frame-options"], "DENY");
    let body = page.text().await.unwrap();
    assert!(
        body.contains("name=\"reason\"") && body.contains("Reject"),
        "{body}"
    );
    assert!(!body.contains(HOSTILE) && body.contains("&lt;script&gt;"));
    // Without asking for HTML the link still answers JSON, as chat integrations expect.
    let json: Value = agent
        .client
        .get(&reject[0])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["plan_id"], plan_id.as_str());

    let form = |url: String, fields: &'static [(&'static str, &'static str)]| {
        let client = agent.client.clone();
        async move {
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(fields).unwrap())
                .send()
                .await
                .unwrap()
        }
    };
    // No name: refused before the link is used, so it still works.
    let nameless = form(reject[0].clone(), &[("by", "  "), ("reason", "x")]).await;
    assert_eq!(nameless.status(), 400);
    assert!(nameless.text().await.unwrap().contains("Enter your name"));
    let plan = agent.get_json(&format!("/api/v1/plans/{plan_id}")).await;
    assert_eq!(plan["state"], "pending_approval");
    let done = form(
        reject[0].clone(),
        &[
            ("by", "carol@exchange"),
            ("reason", "<b>not during the auction</b>"),
        ],
    )
    .await;
    assert_eq!(done.status(), 200);
    let text = done.text().await.unwrap();
    assert!(text.contains("Rejected by carol@exchange"), "{text}");
    let plan = agent.get_json(&format!("/api/v1/plans/{plan_id}")).await;
    assert_eq!(plan["state"], "rejected");
    assert_eq!(plan["rejection"][1], "<b>not during the auction</b>");
    // The used link says so; an approve link of the decided plan shows no button.
    let again = form(reject[0].clone(), &[("by", "carol@exchange")]).await;
    assert_eq!(again.status(), 403);
    assert!(again.text().await.unwrap().contains("already been used"));
    let closed = html(approve[0].clone()).await.text().await.unwrap();
    assert!(
        closed.contains("already rejected") && !closed.contains("id=\"decide\""),
        "{closed}"
    );
    // A malformed form body is a 400 with a reason, not a decision.
    let bad = agent
        .client
        .post(&approve[0])
        .header("content-type", "application/x-www-form-urlencoded")
        .body("by=%ZZ&by=2&reason")
        .send()
        .await
        .unwrap();
    assert!(bad.status().is_client_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_call_approves_a_plan_from_the_link_in_a_real_browser() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let (agent, inbox, plan_id) = agent_with_pending_plan().await;
    let links = links_of(&agent, &inbox, "approve").await;

    let names = ["alice@exchange", "bob@exchange"];
    for (i, link) in links.iter().enumerate() {
        c.goto(link).await.unwrap();
        assert!(text_of(&c, "h1").await.starts_with("Approve plan"));
        assert!(text_of(&c, "#plan").await.contains("service-rollback"));
        assert!(text_of(&c, "#steps").await.contains("api/api-gateway"));
        assert!(text_of(&c, "#risk").await.contains("complexity"));
        assert!(text_of(&c, "#expires").await.starts_with("20"));
        assert!(!text_of(&c, "#hypotheses").await.is_empty());
        // The hostile label value is text on the page, never a script in it.
        assert!(text_of(&c, "#anomalies").await.contains(HOSTILE));
        assert!(c.find_all(Locator::Css("script")).await.unwrap().is_empty());
        assert!(!c.title().await.unwrap().contains("pwned"));
        // Opening the page decided nothing.
        let plan = agent.get_json(&format!("/api/v1/plans/{plan_id}")).await;
        assert_eq!(plan["approvals"].as_array().unwrap().len(), i, "{plan:#}");

        c.find(Locator::Css("#by"))
            .await
            .unwrap()
            .send_keys(names[i])
            .await
            .unwrap();
        c.find(Locator::Css("#decide"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let result = text_of(&c, "#result").await;
        assert!(result.contains(names[i]), "{result}");

        // The same link again: back (the page is not cached, so it is asked for anew) and
        // opened afresh both say it was used.
        c.back().await.unwrap();
        assert_eq!(text_of(&c, "h1").await, "Link already used");
        c.goto(link).await.unwrap();
        assert_eq!(text_of(&c, "h1").await, "Link already used");
        assert!(
            c.find_all(Locator::Css("#decide"))
                .await
                .unwrap()
                .is_empty()
        );
    }

    let plan = agent.get_json(&format!("/api/v1/plans/{plan_id}")).await;
    assert_eq!(plan["state"], "approved", "{plan:#}");
    assert_eq!(plan["approvals"][0]["approver"], names[0]);
    assert_eq!(plan["approvals"][0]["via"], "callback");
    let audit = agent
        .get_json(&format!("/api/v1/audit?subject={plan_id}&limit=1000"))
        .await["records"]
        .clone();
    let approvals: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "approval")
        .collect();
    assert_eq!(approvals.len(), links.len(), "{audit:#}");
    assert!(approvals[0].to_string().contains(names[0]));

    // A forged link gets a page that says so.
    c.goto(&agent.url("/api/v1/callbacks/UExBTi0xfGFwcHJvdmV8OTk5fDA.AAAA"))
        .await
        .unwrap();
    assert_eq!(text_of(&c, "h1").await, "Link not valid");

    // The console lists the incident with its ring drawn, the label as text, and the plan.
    c.goto(&agent.url("/ui/incidents")).await.unwrap();
    assert!(text_of(&c, "main").await.contains("api_error_rate"));
    assert!(
        !c.find_all(Locator::Css("svg.spark polyline"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(text_of(&c, "main").await.contains(HOSTILE));
    assert!(c.find_all(Locator::Css("script")).await.unwrap().is_empty());
    c.goto(&agent.url("/ui/plans")).await.unwrap();
    assert!(text_of(&c, "main").await.contains(&plan_id));
    c.close().await.unwrap();
}
