// The load bench's `--paced` mode: rounds sent as Prometheus sends them, the whole server's CPU
// read from /proc over the measured phase, so upkeep, snapshots, write-back and /metrics that run
// meanwhile are counted; series creation reported on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{
    PER_REQUEST, Server, cpu_seconds, encode, rss_bytes, send_round, start_sink, start_vm,
    wait_ready, workload,
};

pub struct PacedOpts {
    pub series: usize,
    /// Measured rounds after the round that creates the series.
    pub rounds: usize,
    pub interval: Duration,
    /// Share of series replaced by new ones every round, in percent (pods rolling).
    pub churn_percent: usize,
    /// Interleaved runs per server; medians are reported.
    pub repeat: usize,
    /// Seconds without writes after the rounds, to measure upkeep on its own (0 = skip).
    pub idle_seconds: u64,
    pub concurrency: usize,
    pub skip_vm: bool,
}

impl PacedOpts {
    pub fn from_args(args: &[String], bench: bool, skip_vm: bool) -> Self {
        let get = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .and_then(|v| v.parse::<f64>().ok())
        };
        let interval = Duration::from_secs_f64(get("--interval").unwrap_or(1.0).max(0.01));
        // At least one detector upkeep (60 s by default) inside the measured phase.
        let default_rounds = (65.0 / interval.as_secs_f64()).ceil().max(8.0) as usize;
        Self {
            series: get("--series").map_or(if bench { 100_000 } else { 4_000 }, |v| v as usize),
            rounds: get("--rounds").map_or(if bench { default_rounds } else { 2 }, |v| v as usize),
            interval: if bench {
                interval
            } else {
                Duration::from_millis(200)
            },
            churn_percent: get("--churn").map_or(0, |v| v as usize).min(100),
            repeat: get("--repeat").map_or(1, |v| v as usize).max(1),
            idle_seconds: get("--idle").map_or(0, |v| v as u64),
            // Two connections, as the independent measurement used.
            concurrency: get("--concurrency").map_or(2, |v| v as usize).max(1),
            skip_vm,
        }
    }

    fn churned(&self) -> usize {
        self.series * self.churn_percent / 100
    }
}

pub struct Paced {
    name: &'static str,
    creation_cpu: f64,
    created: usize,
    samples: usize,
    new_series: usize,
    cpu: f64,
    wall: f64,
    failed: usize,
    request_p99_ms: f64,
    idle_cpu: f64,
    rss: u64,
}

/// Round `r`'s bodies: series `r * churned ..` for `series` series, stamped `interval` apart.
fn encode_rounds(o: &PacedOpts, base_ms: i64) -> Vec<Arc<Vec<Vec<u8>>>> {
    (0..=o.rounds)
        .map(|r| {
            let first = r * o.churned();
            let ts = base_ms + r as i64 * o.interval.as_millis() as i64;
            Arc::new(encode(&workload::requests_at(
                first..first + o.series,
                PER_REQUEST,
                r,
                ts,
            )))
        })
        .collect()
}

/// A receiver for the sink's write-back: answers 204 and counts requests.
async fn start_writeback_receiver() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = axum::Router::new().route(
        "/api/v1/write",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind write-back receiver");
    let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, count)
}

async fn run_one(
    server: &Server,
    client: &reqwest::Client,
    rounds: &[Arc<Vec<Vec<u8>>>],
    o: &PacedOpts,
    ready: &str,
) -> Paced {
    assert!(
        wait_ready(client, ready).await,
        "{} did not become ready",
        server.name
    );
    let pid = server.child.id();
    let rss0 = rss_bytes(pid);
    let cpu0 = cpu_seconds(pid);
    let created = send_round(client, &server.write_url, rounds[0].clone(), o.concurrency).await;
    let creation_cpu = cpu_seconds(pid) - cpu0;

    let metrics_every = Duration::from_secs(15);
    let mut next_scrape = Instant::now();
    let start = Instant::now();
    let cpu1 = cpu_seconds(pid);
    let mut failed = created.failed;
    let mut latencies = Vec::new();
    for (i, bodies) in rounds[1..].iter().enumerate() {
        tokio::time::sleep_until((start + o.interval * i as u32).into()).await;
        if Instant::now() >= next_scrape {
            // Prometheus scraping the server's own /metrics, as in production.
            if let Ok(response) = client.get(format!("{}/metrics", server.base)).send().await {
                let _ = response.bytes().await;
            }
            next_scrape += metrics_every;
        }
        let outcome = send_round(client, &server.write_url, bodies.clone(), o.concurrency).await;
        failed += outcome.failed;
        latencies.extend(outcome.latencies_ms);
    }
    // The last round's interval counts too: upkeep that runs after it belongs to the phase.
    tokio::time::sleep_until((start + o.interval * (rounds.len() - 1) as u32).into()).await;
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu1;
    let rss = rss_bytes(pid).saturating_sub(rss0);
    let idle_cpu = if o.idle_seconds > 0 {
        let c = cpu_seconds(pid);
        tokio::time::sleep(Duration::from_secs(o.idle_seconds)).await;
        cpu_seconds(pid) - c
    } else {
        0.0
    };
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies
        .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    Paced {
        name: server.name,
        creation_cpu,
        created: o.series,
        samples: o.series * (rounds.len() - 1),
        new_series: o.churned() * (rounds.len() - 1),
        cpu,
        wall,
        failed,
        request_p99_ms: p99,
        idle_cpu,
        rss,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub fn run(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    dir: &std::path::Path,
    o: &PacedOpts,
) {
    let base_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    eprintln!(
        "encoding {} rounds of {} series ({}% churn per round)...",
        o.rounds + 1,
        o.series,
        o.churn_percent
    );
    let rounds = encode_rounds(o, base_ms);
    let (writeback_url, writebacks) = rt.block_on(start_writeback_receiver());
    let config = dir.join("paced.yaml");
    std::fs::write(
        &config,
        format!("app:\n  log_level: warn\nwriteback:\n  url: {writeback_url}\n  interval: 15s\n"),
    )
    .expect("write bench config");
    let vm_present = std::process::Command::new("victoria-metrics")
        .arg("-version")
        .output()
        .is_ok();
    let with_vm = !o.skip_vm && vm_present;
    if !o.skip_vm && !vm_present {
        eprintln!("victoria-metrics not installed: comparison skipped");
    }
    let mut sink_runs = Vec::new();
    let mut vm_runs = Vec::new();
    for run in 0..o.repeat {
        let run_dir = dir.join(format!("run{run}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let sink = start_sink(&run_dir, Some(&config));
        sink_runs.push(rt.block_on(run_one(
            &sink,
            client,
            &rounds,
            o,
            &format!("{}/ready", sink.base),
        )));
        drop(sink);
        if with_vm && let Some(vm) = start_vm(&run_dir) {
            vm_runs.push(rt.block_on(run_one(
                &vm,
                client,
                &rounds,
                o,
                &format!("{}/health", vm.base),
            )));
        }
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    println!(
        "paced: {} series, {} measured rounds every {:.1} s, {}% churn, {} samples per request, {} senders, {} cores, medians of {}",
        o.series,
        o.rounds,
        o.interval.as_secs_f64(),
        o.churn_percent,
        PER_REQUEST,
        o.concurrency,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        o.repeat
    );
    println!(
        "{:<18} {:>20} {:>18} {:>14} {:>12} {:>12} {:>10} {:>8}",
        "server",
        "samples/server CPU-s",
        "new series/CPU-s",
        "CPU share",
        "p99 req ms",
        "ΔRSS B/series",
        "idle CPU s",
        "failed"
    );
    let mut per_cpu = Vec::new();
    for runs in [&sink_runs, &vm_runs] {
        let Some(first) = runs.first() else { continue };
        let rate = median(
            runs.iter()
                .map(|r| r.samples as f64 / r.cpu.max(1e-9))
                .collect(),
        );
        let creation = median(
            runs.iter()
                .map(|r| r.created as f64 / r.creation_cpu.max(1e-9))
                .collect(),
        );
        println!(
            "{:<18} {:>20.0} {:>18.0} {:>13.1}% {:>12.1} {:>12.0} {:>10.2} {:>8}",
            first.name,
            rate,
            creation,
            median(
                runs.iter()
                    .map(|r| 100.0 * r.cpu / r.wall.max(1e-9))
                    .collect()
            ),
            median(runs.iter().map(|r| r.request_p99_ms).collect()),
            median(
                runs.iter()
                    .map(|r| r.rss as f64 / (r.created + r.new_series) as f64)
                    .collect()
            ),
            median(runs.iter().map(|r| r.idle_cpu).collect()),
            runs.iter().map(|r| r.failed).sum::<usize>()
        );
        per_cpu.push(rate);
    }
    if o.idle_seconds > 0 {
        let idle = median(sink_runs.iter().map(|r| r.idle_cpu).collect());
        println!(
            "sre-agent upkeep without writes: {:.2} CPU-s per 100k series per minute",
            idle / (o.idle_seconds as f64 / 60.0) * 100_000.0 / o.series as f64
        );
    }
    println!(
        "write-back requests received: {}",
        writebacks.load(Ordering::Relaxed)
    );
    if let [sink, vm] = per_cpu[..] {
        println!(
            "sre-agent vs victoria-metrics: {:.2}x samples per server CPU-second (paced, all in)",
            sink / vm
        );
    }
    let failed: usize = sink_runs.iter().chain(&vm_runs).map(|r| r.failed).sum();
    assert_eq!(failed, 0, "some writes failed");
}
