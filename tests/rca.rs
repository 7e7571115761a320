//! Root-cause analysis over HTTP with an in-process fake Loki that speaks Loki's real
//! `query_range` API (no Loki server runs here): the incident's logs are fetched with LogQL
//! built from its labels, their error patterns become evidence, and a rule turns them into the
//! top hypothesis. A failing Loki is reported in the RCA's notes and the rest still stands.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

type Queries = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A Loki whose query_range answers a few log lines (or 500 when `broken`).
async fn fake_loki(broken: bool) -> (String, Queries) {
    let seen: Queries = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/loki/api/v1/query_range",
        axum::routing::post(move |body: String| {
            let log = log.clone();
            async move {
                let params = form_decode(&body);
                log.lock().unwrap().push(params.clone());
                if broken {
                    return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom".to_string());
                }
                let end: i128 = params.iter().find(|(k, _)| k == "end").unwrap().1.parse().unwrap();
                let line = |offset: i128, text: &str| serde_json::json!([(end - offset).to_string(), text]);
                let body = serde_json::json!({
                    "status": "success",
                    "data": {"resultType": "streams", "result": [{
                        "stream": {"namespace": "api", "service": "api-gateway", "pod": "gw-0"},
                        "values": [
                            line(1_000_000_000, "upstream request timeout after 5s calling risk-service"),
                            line(2_000_000_000, "dial tcp 10.0.3.4:8080: connect: connection refused"),
                            line(2_500_000_000, "pool error: connection refused for postgres://risk:hunter2@db:5432/risk password=hunter2"),
                            line(3_000_000_000, "GET /v1/orders HTTP/1.1 status=503"),
                            line(4_000_000_000, "served /health in 1ms"),
                        ]
                    }]}
                });
                (axum::http::StatusCode::OK, body.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// `application/x-www-form-urlencoded` → pairs (what Loki's HTTP server parses).
fn form_decode(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    };
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

async fn error_burst(agent: &Agent) {
    let mut rng = fastrand::Rng::with_seed(11);
    let labels = [
        ("__name__", "api_error_rate"),
        ("namespace", "api"),
        ("service", "api-gateway"),
    ];
    write_pods(agent, now_ms() - 3_600_000, &labels, "gw", 3, |_, i| {
        if i >= 110 {
            0.09
        } else {
            0.002 + rng.f64() * 0.0005
        }
    })
    .await;
}

async fn analyzed(agent: &Agent) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let mut done = false;
    for _ in 0..75 {
        last = agent.get_json("/api/v1/incidents").await["incidents"][0].clone();
        if last["rca"]["hypotheses"]
            .as_array()
            .is_some_and(|h| !h.is_empty())
            && last["anomalies"].as_array().is_some_and(|a| a.len() == 3)
        {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(done, "no RCA: {last}");
    // The worker may still be on an earlier state of the incident: analyze the final one.
    let id = last["id"].as_str().unwrap().to_string();
    agent.pipeline.analyze_incident(&id).await.unwrap();
    agent.get_json(&format!("/api/v1/incidents/{id}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_from_loki_make_the_error_burst_a_failing_dependency() {
    let (loki, queries) = fake_loki(false).await;
    let mut config = test_config();
    config.loki.url = loki;
    let agent = Agent::start(config).await;
    error_burst(&agent).await;
    let incident = analyzed(&agent).await;
    let rca = &incident["rca"];
    let top = &rca["hypotheses"][0];
    assert_eq!(top["cause"], "dependency_failure", "{rca:#}");
    assert_eq!(top["source"], "rule:errors_with_timeouts");
    let evidence = top["evidence"].to_string();
    assert!(
        evidence.contains("timeout ×1") && evidence.contains("connection_refused ×2"),
        "{evidence}"
    );
    assert_eq!(rca["logs"]["counts"]["http_5xx"], 1);
    assert_eq!(rca["logs"]["lines"], 5);
    // The bad-deploy rule applies in part (no rollout seen), so it ranks lower.
    let deploy = rca["hypotheses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["cause"] == "bad_deploy")
        .expect("bad_deploy considered");
    assert!(deploy["confidence"].as_f64().unwrap() < top["confidence"].as_f64().unwrap());
    assert!(
        rca["notes"]
            .to_string()
            .contains("no Kubernetes event source"),
        "{rca}"
    );
    // LogQL from the incident's labels, over a window that ends at the incident's sample time.
    let q = queries.lock().unwrap().last().unwrap().clone();
    let query = &q.iter().find(|(k, _)| k == "query").unwrap().1;
    assert!(
        query.starts_with(r#"{namespace="api",service="api-gateway"} |~"#),
        "{query}"
    );
    let start: i128 = q
        .iter()
        .find(|(k, _)| k == "start")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let end: i128 = q
        .iter()
        .find(|(k, _)| k == "end")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert!(end > start && end <= now_ms() as i128 * 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_loki_is_noted_and_the_analysis_still_stands() {
    let (loki, queries) = fake_loki(true).await;
    let mut config = test_config();
    config.loki.url = loki;
    let agent = Agent::start(config).await;
    error_burst(&agent).await;
    let incident = analyzed(&agent).await;
    let rca = &incident["rca"];
    assert!(rca["logs"].is_null());
    let notes = rca["notes"].to_string();
    assert!(
        notes.contains("Loki query_range") && notes.contains("500"),
        "{notes}"
    );
    assert!(!rca["hypotheses"].as_array().unwrap().is_empty());
    // Retried before giving up (3 attempts per analysis).
    assert!(queries.lock().unwrap().len() >= 3);
}

type LlmRequests = Arc<Mutex<Vec<(String, axum::http::HeaderMap, String)>>>;

/// An LLM API speaking both the Anthropic Messages and the OpenAI chat-completions wire
/// formats; answers one grounded and one ungrounded hypothesis, or 500 when `broken`.
async fn fake_llm(broken: bool) -> (String, LlmRequests) {
    let seen: LlmRequests = Arc::default();
    let answer = serde_json::json!({
        "hypotheses": [
            {"cause": "upstream_dependency_timeout", "root_cause": "calls to risk-service time out",
             "confidence": 0.7, "evidence": ["timeout in the logs", "api_error_rate rose on all pods"]},
            {"cause": "solar_flare", "root_cause": "cosmic rays", "confidence": 0.9, "evidence": ["sunspots"]}
        ],
        "summary": "A dependency is timing out."
    })
    .to_string();
    let handler = |path: &'static str, seen: LlmRequests, answer: String| {
        move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            let answer = answer.clone();
            async move {
                seen.lock().unwrap().push((path.to_string(), headers, body));
                if broken {
                    return (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "overloaded".to_string(),
                    );
                }
                let reply = if path == "anthropic" {
                    serde_json::json!({"id": "msg_1", "type": "message", "role": "assistant",
                        "content": [{"type": "text", "text": answer}],
                        "stop_reason": "end_turn", "usage": {"input_tokens": 900, "output_tokens": 120}})
                } else {
                    serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion",
                        "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": answer}}]})
                };
                (axum::http::StatusCode::OK, reply.to_string())
            }
        }
    };
    let app = axum::Router::new()
        .route(
            "/v1/messages",
            axum::routing::post(handler("anthropic", seen.clone(), answer.clone())),
        )
        .route(
            "/v1/chat/completions",
            axum::routing::post(handler("openai", seen.clone(), answer)),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn with_llm(provider: &str, key: &str, broken: bool) -> (serde_json::Value, LlmRequests) {
    let (loki, _) = fake_loki(false).await;
    let (llm, requests) = fake_llm(broken).await;
    let mut config = test_config();
    config.loki.url = loki;
    config.llm.provider = provider.into();
    config.llm.base_url = llm;
    config.llm.api_key = sre_agent::config::Secret::new(key);
    let agent = Agent::start(config).await;
    error_burst(&agent).await;
    let incident = analyzed(&agent).await;
    let text = incident.to_string();
    assert!(!text.contains(key), "the API key leaked into the incident");
    (incident, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_opinion_is_grounded_redacted_and_merged() {
    let key = "sk-ant-test-0123456789";
    let (incident, requests) = with_llm("anthropic", key, false).await;
    let rca = &incident["rca"];
    let llm = rca["hypotheses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["source"] == "llm")
        .expect("the grounded LLM hypothesis is kept");
    assert_eq!(llm["cause"], "upstream_dependency_timeout");
    assert!(llm["confidence"].as_f64().unwrap() <= 0.8);
    assert!(
        !rca["hypotheses"].to_string().contains("solar_flare"),
        "ungrounded kept"
    );
    let notes = rca["notes"].to_string();
    assert!(
        notes.contains("1 hypotheses accepted, 1 rejected") && notes.contains("cites nothing"),
        "{notes}"
    );
    assert_eq!(rca["llm_summary"], "A dependency is timing out.");
    // The rules' answer still leads: the LLM is an opinion.
    assert_eq!(rca["hypotheses"][0]["cause"], "dependency_failure");
    let requests = requests.lock().unwrap();
    let (path, headers, body) = requests.last().unwrap();
    assert_eq!(path, "anthropic");
    assert_eq!(headers["x-api-key"], key);
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["messages"][0]["role"], "user");
    assert!(body["max_tokens"].as_u64().unwrap() <= 4096);
    let prompt = body["messages"][0]["content"].as_str().unwrap();
    assert!(
        prompt.contains("api_error_rate") && prompt.contains("connection refused"),
        "{prompt}"
    );
    assert!(
        !prompt.contains("hunter2"),
        "a secret from the logs reached the LLM:\n{prompt}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_compatible_endpoint_gets_a_bearer_token_and_json_mode() {
    let (incident, requests) = with_llm("openai", "sk-local-model", false).await;
    assert!(
        incident["rca"]["hypotheses"]
            .to_string()
            .contains("upstream_dependency_timeout")
    );
    let requests = requests.lock().unwrap();
    let (path, headers, body) = requests.last().unwrap();
    assert_eq!(path, "openai");
    assert_eq!(headers["authorization"], "Bearer sk-local-model");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["response_format"]["type"], "json_object");
    assert_eq!(body["messages"][0]["role"], "system");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_llm_leaves_the_rule_based_result() {
    let (incident, _) = with_llm("anthropic", "sk-ant-x", true).await;
    let rca = &incident["rca"];
    assert_eq!(rca["hypotheses"][0]["cause"], "dependency_failure");
    let notes = rca["notes"].to_string();
    assert!(
        notes.contains("HTTP 500") && notes.contains("rule-based result stands"),
        "{notes}"
    );
}

#[cfg(feature = "kube")]
/// A Kubernetes API server's events endpoint (`GET /api/v1/namespaces/{ns}/events`) answering
/// an `EventList` in the API's JSON; records the paths and queries it was asked.
async fn fake_kubernetes(events: serde_json::Value) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/api/v1/namespaces/{ns}/events",
        axum::routing::get(move |uri: axum::http::Uri| {
            let log = log.clone();
            let events = events.clone();
            async move {
                log.lock().unwrap().push(uri.to_string());
                let list = serde_json::json!({
                    "apiVersion": "v1", "kind": "EventList",
                    "metadata": {"resourceVersion": "4711"},
                    "items": events,
                });
                ([("content-type", "application/json")], list.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[cfg(feature = "kube")]
fn k8s_event(
    name: &str,
    reason: &str,
    kind: &str,
    object: &str,
    message: &str,
    at_ms: i64,
) -> serde_json::Value {
    let at = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(at_ms as u64),
    )
    .to_string();
    serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "api", "creationTimestamp": at},
        "involvedObject": {"kind": kind, "name": object, "namespace": "api"},
        "reason": reason, "message": message, "type": "Normal",
        "firstTimestamp": at, "lastTimestamp": at, "count": 1,
        "source": {"component": "deployment-controller"}
    })
}

#[cfg(feature = "kube")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_seen_in_kubernetes_events_makes_it_a_bad_deploy() {
    sre_agent::net::install_crypto_provider();
    // error_burst's onset is sample 110 of an hour that ends now.
    let onset = now_ms() - 3_600_000 + 110 * 15_000;
    let (api, seen) = fake_kubernetes(serde_json::json!([
        k8s_event(
            "a.1",
            "ScalingReplicaSet",
            "Deployment",
            "api-gateway",
            "Scaled up replica set api-gateway-5f7c9d8b4 to 3",
            onset - 120_000
        ),
        k8s_event(
            "b.1",
            "ScalingReplicaSet",
            "Deployment",
            "billing",
            "Scaled up replica set billing-77 to 2",
            onset - 60_000
        ),
        k8s_event(
            "c.1",
            "ScalingReplicaSet",
            "Deployment",
            "api-gateway",
            "Scaled up replica set api-gateway-old to 3",
            onset - 6 * 3_600_000
        ),
    ]))
    .await;
    let mut config = test_config();
    config.kubernetes.api_url = api;
    let events = sre_agent::analyze::kubernetes::event_source(&config.kubernetes).await;
    assert!(events.is_some());
    let agent = Agent::start_with_events(config, events).await;
    error_burst(&agent).await;
    let incident = analyzed(&agent).await;
    let rca = &incident["rca"];
    let top = &rca["hypotheses"][0];
    assert_eq!(top["cause"], "bad_deploy", "{rca:#}");
    let evidence = top["evidence"].to_string();
    assert!(
        evidence.contains("event ScalingReplicaSet on Deployment/api-gateway 12")
            && evidence.contains("s before the onset"),
        "{evidence}"
    );
    // Only this service's event from the window: not billing's, not last night's rollout.
    let events = rca["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["object"], "Deployment/api-gateway");
    let paths = seen.lock().unwrap();
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("/api/v1/namespaces/api/events")),
        "{paths:?}"
    );
}
