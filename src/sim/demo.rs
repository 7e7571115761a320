//! `sre-agent demo`: the agent on its embedded defaults, fed by the simulator over real HTTP
//! remote write, with an in-process webhook receiver that prints anomalies, incidents and plans
//! as they happen and plays the on-call engineers who approve plans by their callback links.
//! Plans run against the simulated cluster's Kubernetes API (an in-process fake speaking the
//! real JSON; a restarted pod sheds its leaked memory in the simulator). With a duration it
//! ends with a summary: incidents injected and detected, detection delay, root causes, false
//! alarms, plans and their outcomes, and the notification latency.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::routing::post;
use thiserror::Error;

pub use super::summary::{DemoSummary, IncidentOutcome, ms_of};
use super::summary::{Received, score};
use super::{Exchange, STEP_MS, Scenario};
use crate::Pipeline;
use crate::config::Config;
use crate::detect::book::AnomalyFilter;
use crate::ingest::encode::{compress, encode_v1};

#[derive(Debug, Error)]
pub enum DemoError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Build(#[from] crate::BuildError),
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

pub struct DemoOptions {
    pub config: Config,
    pub listen: String,
    /// Run the scenario once in this wall time and print a summary; `None` runs until stopped.
    pub duration: Option<Duration>,
    pub seed: u64,
    /// Print each anomaly as it fires (the CLI does; tests do not).
    pub verbose: bool,
    /// Where state (audit log, knowledge base, incidents) is kept; `None`: a fresh temporary
    /// directory.
    pub data_dir: Option<std::path::PathBuf>,
    /// Plan and audit every step but change nothing in the simulated cluster.
    pub dry_run: bool,
}

/// Simulated time since the scenario began, as `+HH:MM:SS`.
fn sim_clock(offset_ms: i64) -> String {
    let secs = (offset_ms / 1000).max(0);
    format!("+{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

async fn start_receiver(
    verbose: bool,
    base_ms: i64,
) -> Result<(SocketAddr, Arc<Mutex<Received>>), DemoError> {
    let received = Arc::new(Mutex::new(Received::default()));
    let sink = received.clone();
    let http = crate::net::client(Duration::from_secs(10))
        .map_err(|e| DemoError::Client(e.to_string()))?;
    let app = axum::Router::new().route(
        "/hook",
        post(move |Json(v): Json<serde_json::Value>| {
            let sink = sink.clone();
            let http = http.clone();
            async move {
                let event = v["event"].as_str().unwrap_or("");
                if event.starts_with("plan.") {
                    let plan = &v["plan"];
                    if verbose {
                        println!(
                            "{:<9} {:<18} {:<8} {:<22} {} risk {} {:.2}{}",
                            "",
                            event,
                            "",
                            plan["id"].as_str().unwrap_or(""),
                            plan["playbook_id"].as_str().unwrap_or(""),
                            plan["risk"]["level"].as_str().unwrap_or(""),
                            plan["risk"]["score"].as_f64().unwrap_or(0.0),
                            match event {
                                "plan.approval_requested" => format!(
                                    ": {} approve link(s) sent; the on-call clicks them",
                                    v["callbacks"]["approve"].as_array().map_or(0, Vec::len)
                                ),
                                _ => format!(
                                    " → {}",
                                    plan["execution"]["status"].as_str().unwrap_or("")
                                ),
                            }
                        );
                    }
                    if event == "plan.approval_requested" {
                        sink.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .approval_requests += 1;
                        // Clicked after the webhook is answered, as a person would.
                        let sink = sink.clone();
                        tokio::spawn(async move {
                            let n = super::oncall::approve_by_links(&http, &v).await;
                            sink.lock().unwrap_or_else(|p| p.into_inner()).approvals += n;
                        });
                    }
                    return axum::http::StatusCode::NO_CONTENT;
                }
                if event.starts_with("incident.") {
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .incident_count += 1;
                    if verbose {
                        let i = &v["incident"];
                        let when = if event == "incident.resolved" {
                            &i["resolved_at"]
                        } else {
                            &i["updated_at"]
                        };
                        let at = when
                            .as_str()
                            .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
                            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_millis() as i64 - base_ms);
                        let detail = match &i["rca"]["hypotheses"][0] {
                            h if event == "incident.analyzed" && h.is_object() => format!(
                                "root cause: {} ({:.2}) {}",
                                h["cause"].as_str().unwrap_or(""),
                                h["confidence"].as_f64().unwrap_or(0.0),
                                h["root_cause"].as_str().unwrap_or("")
                            ),
                            _ => i["title"].as_str().unwrap_or("").to_string(),
                        };
                        println!(
                            "{} {:<18} {:<8} {:<22} {detail}",
                            sim_clock(at),
                            event,
                            i["severity"].as_str().unwrap_or(""),
                            i["id"].as_str().unwrap_or(""),
                        );
                    }
                    return axum::http::StatusCode::NO_CONTENT;
                }
                let now = SystemTime::now();
                let detected = v["detected_at"]
                    .as_str()
                    .and_then(|s| humantime::parse_rfc3339_weak(s).ok());
                let latency = detected
                    .and_then(|d| now.duration_since(d).ok())
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
                {
                    let mut r = sink.lock().unwrap_or_else(|p| p.into_inner());
                    r.count += 1;
                    r.latencies_ms.push(latency);
                }
                if verbose {
                    let a = &v["anomaly"];
                    let when = if event == "anomaly.resolved" {
                        &a["resolved_at"]
                    } else {
                        &a["fired_at"]
                    };
                    let at = when
                        .as_str()
                        .and_then(|s| humantime::parse_rfc3339_weak(s).ok());
                    let offset = at
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as i64 - base_ms);
                    let labels = &a["labels"];
                    println!(
                        "{} {:<18} {:<8} {:<22} {:<16} pod={:<28} {}",
                        sim_clock(offset),
                        event,
                        a["severity"].as_str().unwrap_or(""),
                        a["metric"].as_str().unwrap_or(""),
                        labels["service"].as_str().unwrap_or(""),
                        labels["pod"].as_str().unwrap_or(""),
                        a["description"].as_str().unwrap_or("")
                    );
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| DemoError::Listen {
            addr: "127.0.0.1:0".into(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| DemoError::Listen {
        addr: "127.0.0.1:0".into(),
        source,
    })?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, received))
}

pub async fn run(opts: DemoOptions) -> Result<DemoSummary, DemoError> {
    let scenario = Scenario::standard();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // The scenario ends at about "now", so its timestamps are realistic for any Prometheus.
    let base_ms = (now_ms - scenario.length_ms) / STEP_MS * STEP_MS;
    let (hook_addr, received) = start_receiver(opts.verbose, base_ms).await?;
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .map_err(|source| DemoError::Listen {
            addr: opts.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| DemoError::Listen {
        addr: opts.listen.clone(),
        source,
    })?;

    let mut config = opts.config;
    config.notification.webhook.url = format!("http://{hook_addr}/hook");
    config.notification.webhook.events = vec![
        crate::config::WebhookEvents::Anomaly,
        crate::config::WebhookEvents::Incident,
        crate::config::WebhookEvents::Plan,
    ];
    let data_dir = opts.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sre-agent-demo-{}-{now_ms}", std::process::id()))
    });
    std::fs::create_dir_all(&data_dir).map_err(|source| DemoError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    config.app.data_dir = data_dir.display().to_string();
    config.auto_remediation.audit_dir = String::new();
    config.auto_remediation.dry_run = opts.dry_run;
    config.auto_remediation.public_url = format!("http://{addr}");
    if config.api.auth_token.is_empty() {
        // Live plans need a token on the API; the demo's approvals go through the links.
        config.api.auth_token = crate::config::Secret::new(format!("{:032x}", fastrand::u128(..)));
    }
    let check_every_ms = config.anomaly_detection.check_interval_seconds as i64 * 1000;
    let mut exchange = Exchange::new(opts.seed, scenario.clone());
    let cluster = super::oncall::cluster_of(&exchange);
    let mut cluster_seen = 0;
    config.kubernetes.api_url = cluster.serve().await.map_err(|source| DemoError::Listen {
        addr: "127.0.0.1:0".into(),
        source,
    })?;
    let executors = crate::act::executor::cluster_executors(&config.kubernetes).await;
    // The simulated cluster's rollouts and OOM kills reach the RCA as Kubernetes events would.
    let cluster_events = std::sync::Arc::new(crate::analyze::events::RecordedEvents::default());
    let pipeline = Pipeline::build(config, Some(cluster_events.clone()), executors)?;
    pipeline.start_background()?;
    let server = pipeline.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = crate::serve(server, listener, async {
            let _ = stop_rx.await;
        })
        .await;
    });
    tracing::info!(%addr, "sre-agent listening; the simulator remote-writes into http://{addr}/api/v1/write");
    if opts.verbose {
        println!(
            "sre-agent demo: API on http://{addr} (try /api/v1/anomalies, /metrics); simulating a crypto exchange"
        );
        println!(
            "{:<9} {:<18} {:<8} {:<22} {:<16} {:<32} details",
            "sim time", "event", "severity", "metric", "service", "pod"
        );
    }

    let client = crate::net::client(Duration::from_secs(10))
        .map_err(|e| DemoError::Client(e.to_string()))?;
    let url = format!("http://{addr}/api/v1/write");
    let steps_per_cycle = (scenario.length_ms / STEP_MS) as u64;
    let pace = match opts.duration {
        Some(d) => d / steps_per_cycle as u32,
        None => Duration::from_millis(50),
    };
    let started = Instant::now();
    let (mut scrapes, mut samples, mut errors, mut series) = (0u64, 0u64, 0u64, 0usize);
    let mut raw = Vec::new();
    let mut step: u64 = 0;
    let mut next = tokio::time::Instant::now();
    loop {
        if opts.duration.is_some() && step >= steps_per_cycle {
            break;
        }
        let offset = step as i64 * STEP_MS;
        let ts = base_ms + offset;
        for e in scenario.cluster_events(&exchange.pods, base_ms, offset - STEP_MS, offset) {
            cluster_events.push(e);
        }
        // What the agent did to the simulated cluster shows in its metrics from now on.
        let changes = cluster.changes();
        for change in changes.iter().skip(cluster_seen) {
            exchange.apply_cluster_change(&change.method, &change.path, offset);
        }
        cluster_seen = changes.len();
        let batch = exchange.step(ts, offset);
        series = series.max(batch.len());
        samples += batch.len() as u64;
        encode_v1(&batch, &mut raw);
        let body = compress(&raw).map_err(|e| DemoError::Client(e.to_string()))?;
        if let Err(e) = super::sender::post_remote_write(&client, &url, body).await {
            errors += 1;
            tracing::warn!(error = %e, "simulator write failed");
        }
        scrapes += 1;
        step += 1;
        // Simulated time runs hundreds of times faster than the clock: the periodic work
        // (seasonality, forecast refits) runs every check interval of simulated time, so the
        // outcome does not depend on the pace.
        if (step as i64 * STEP_MS) % (check_every_ms.max(STEP_MS)) == 0 {
            pipeline.upkeep();
            // Open incidents are analyzed in simulated time too (live, the RCA worker does it
            // as they change), so the result does not depend on how fast the demo runs.
            for incident in pipeline
                .incidents
                .list(Some(crate::incident::IncidentState::Open))
            {
                if pipeline.analyze_incident(&incident.id).await.is_some() {
                    pipeline.remediator.consider(&incident.id).await;
                }
            }
        }
        next += pace;
        tokio::time::sleep_until(next).await;
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    // Let the last notifications arrive, approvals be clicked and plans finish verifying.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(10)
        && pipeline.remediator.list().iter().any(|p| {
            p.state == crate::decide::plan::PlanState::Approved && !p.execution.status.finished()
        })
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Resolved incidents reach the knowledge base (with their plans) off the request path.
    pipeline.upkeep();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A last analysis of every incident on all the evidence (the worker analyzed them as they
    // grew, while the simulation outran it).
    let mut causes = std::collections::HashMap::new();
    for incident in pipeline.incidents.list(None) {
        if let Some(rca) = pipeline.analyze_incident(&incident.id).await {
            causes.insert(
                incident.id.clone(),
                rca.top().map(|h| (h.cause.clone(), h.confidence)),
            );
        }
    }

    let anomalies = pipeline.book.list(&AnomalyFilter {
        active_only: false,
        ..Default::default()
    });
    let mut summary = score(
        &scenario,
        &exchange,
        &anomalies,
        base_ms,
        scrapes,
        samples,
        errors,
        series,
        wall_seconds,
        &received,
        &causes,
    );
    // This run's plans (a kept data directory holds earlier runs' too).
    let mut plans: Vec<_> = pipeline
        .remediator
        .list()
        .into_iter()
        .filter(|p| p.created_ms >= now_ms)
        .collect();
    plans.reverse();
    summary.plans = plans.iter().map(super::oncall::PlanOutcome::of).collect();
    summary.dry_run = opts.dry_run;
    {
        let r = received.lock().unwrap_or_else(|p| p.into_inner());
        summary.approval_requests = r.approval_requests;
        summary.approvals_by_link = r.approvals;
    }
    summary.cluster_changes = cluster
        .changes()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    summary.knowledge_with_outcome = pipeline
        .analyzer
        .knowledge
        .list(Some("incident"))
        .iter()
        .filter(|e| e.outcome.contains("; plan "))
        .count();
    let audit = pipeline.remediator.audit_log().path().to_path_buf();
    summary.data_dir = data_dir.display().to_string();
    match crate::act::audit::verify(&audit) {
        Ok(s) => {
            summary.audit_records = s.records;
            summary.audit_intact = true;
        }
        Err(_) if !audit.exists() => summary.audit_intact = true,
        Err(_) => summary.audit_intact = false,
    }
    let _ = stop_tx.send(());
    pipeline.shutdown(Duration::from_secs(5)).await;
    Ok(summary)
}
