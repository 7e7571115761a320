//! Load bench: pre-encoded realistic RW 1.0 batches (≈10 labels and ≈260 bytes of labels per
//! series, 2000 samples per request) sent over HTTP to a running sink and, in the same run, to
//! VictoriaMetrics (`victoria-metrics`, Debian package). Reports samples/s and samples per server
//! CPU-second for both, and the sink's memory per series.
//!
//!   cargo bench --bench load                      # 100k series, 20 measured rounds
//!   cargo bench --bench load -- --series 20000 --rounds 10 --concurrency 4
//!   cargo bench --bench load -- --fill-rings      # memory per series with full 1 h rings
//!   SINK_CPUS=0 cargo bench --bench load -- --skip-vm --concurrency 1   # the sink on one core
//!   cargo bench --bench load -- --paced           # all in: paced 1 s rounds, CPU incl. upkeep
//!   cargo bench --bench load -- --paced --interval 15 --repeat 3   # the real scrape interval
//!   cargo bench --bench load -- --paced --churn 10 # 10 % of series replaced per round
//!   cargo bench --bench load -- --paced --skip-vm --idle 120   # upkeep CPU without writes
//!   cargo bench --bench load -- --soak 600      # 10 min at 80 % of peak: RSS every 10 s, p99
//!
//! Under `cargo test` (no `--bench` argument) it runs a tiny load so it never rots.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sre_agent::ingest::encode::{compress, encode_v1};

#[path = "support/workload.rs"]
mod workload;

#[path = "support/paced.rs"]
mod paced;

#[path = "support/soak.rs"]
mod soak;

const PER_REQUEST: usize = 2000;

struct Opts {
    series: usize,
    rounds: usize,
    warmup: usize,
    concurrency: usize,
    fill_rings: bool,
    skip_vm: bool,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    let mut o = if bench {
        Opts {
            series: 100_000,
            rounds: 20,
            warmup: 3,
            concurrency: 4,
            fill_rings: false,
            skip_vm: false,
        }
    } else {
        Opts {
            series: 4_000,
            rounds: 2,
            warmup: 1,
            concurrency: 2,
            fill_rings: false,
            skip_vm: false,
        }
    };
    o.series = get("--series").unwrap_or(o.series);
    o.rounds = get("--rounds").unwrap_or(o.rounds);
    o.warmup = get("--warmup").unwrap_or(o.warmup);
    o.concurrency = get("--concurrency").unwrap_or(o.concurrency);
    o.fill_rings = args.iter().any(|a| a == "--fill-rings");
    o.skip_vm = args.iter().any(|a| a == "--skip-vm");
    o
}

struct Server {
    name: &'static str,
    child: Child,
    write_url: String,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat, counted after the command name: indices 11 and 12.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn wait_ready(client: &reqwest::Client, url: &str) -> bool {
    for _ in 0..200 {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn start_sink(dir: &std::path::Path, config: Option<&std::path::Path>) -> Server {
    let port = free_port();
    // `SINK_CPUS=0` pins the sink to one core (taskset), to see how it scales with cores.
    let mut command = match std::env::var("SINK_CPUS") {
        Ok(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpus, env!("CARGO_BIN_EXE_sre-agent")]);
            c
        }
        Err(_) => Command::new(env!("CARGO_BIN_EXE_sre-agent")),
    };
    command.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let child = command
        .arg("--data-dir")
        .arg(dir.join("sink"))
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sre-agent");
    Server {
        name: "sre-agent",
        child,
        write_url: format!("http://127.0.0.1:{port}/api/v1/write"),
        base: format!("http://127.0.0.1:{port}"),
    }
}

fn start_vm(dir: &std::path::Path) -> Option<Server> {
    let port = free_port();
    let child = Command::new("victoria-metrics")
        .arg(format!("-storageDataPath={}", dir.join("vm").display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-retentionPeriod=1d")
        .arg("-loggerLevel=ERROR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some(Server {
        name: "victoria-metrics",
        child,
        write_url: format!("http://127.0.0.1:{port}/api/v1/write"),
        base: format!("http://127.0.0.1:{port}"),
    })
}

/// The sink's `/api/v1/status` (series, samples detected, memory held by series).
async fn status(client: &reqwest::Client, base: &str) -> serde_json::Value {
    let response = client
        .get(format!("{base}/api/v1/status"))
        .send()
        .await
        .expect("status request");
    response.json().await.expect("status JSON")
}

/// A counter of the sink's `/metrics` (0 when absent).
async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let Ok(response) = client.get(format!("{base}/metrics")).send().await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn encode(requests: &[Vec<sre_agent::ingest::encode::TimeSeries>]) -> Vec<Vec<u8>> {
    let mut raw = Vec::new();
    requests
        .iter()
        .map(|r| {
            encode_v1(r, &mut raw);
            compress(&raw).expect("compress")
        })
        .collect()
}

fn encode_round(series: usize, round: usize, base_ms: i64) -> Vec<Vec<u8>> {
    encode(&workload::round_requests(
        series,
        PER_REQUEST,
        round,
        base_ms,
    ))
}

struct RoundOutcome {
    failed: usize,
    latencies_ms: Vec<f64>,
}

/// Sends one round's bodies with `concurrency` workers.
async fn send_round(
    client: &reqwest::Client,
    url: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
) -> RoundOutcome {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, bodies, next) = (
            client.clone(),
            url.to_string(),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut outcome = RoundOutcome {
                failed: 0,
                latencies_ms: Vec::new(),
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let sent = Instant::now();
                if let Err(e) =
                    sre_agent::sim::sender::post_remote_write(&client, &url, body.clone()).await
                {
                    eprintln!("write failed: {e}");
                    outcome.failed += 1;
                }
                outcome
                    .latencies_ms
                    .push(sent.elapsed().as_secs_f64() * 1e3);
            }
            outcome
        }));
    }
    let mut all = RoundOutcome {
        failed: 0,
        latencies_ms: Vec::new(),
    };
    for t in tasks {
        if let Ok(o) = t.await {
            all.failed += o.failed;
            all.latencies_ms.extend(o.latencies_ms);
        }
    }
    all
}

struct Result {
    name: &'static str,
    samples: usize,
    wall: f64,
    cpu: f64,
    failed: usize,
}

async fn run_against(
    server: &Server,
    client: &reqwest::Client,
    warm: &[Arc<Vec<Vec<u8>>>],
    measured: &[Arc<Vec<Vec<u8>>>],
    o: &Opts,
    ready: &str,
) -> Result {
    assert!(
        wait_ready(client, ready).await,
        "{} did not become ready",
        server.name
    );
    for bodies in warm {
        send_round(client, &server.write_url, bodies.clone(), o.concurrency).await;
    }
    let pid = server.child.id();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let mut failed = 0;
    for bodies in measured {
        failed += send_round(client, &server.write_url, bodies.clone(), o.concurrency)
            .await
            .failed;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    Result {
        name: server.name,
        samples: o.series * measured.len(),
        wall,
        cpu,
        failed,
    }
}

fn main() {
    let o = opts();
    sre_agent::net::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("sre-agent-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(16)
        .build()
        .unwrap();

    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    if let Some(s) = soak::SoakOpts::from_args(&args) {
        soak::run(&rt, &client, &dir, &s);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // Under `cargo test` the paced mode runs too (tiny), so it cannot rot.
    if args.iter().any(|a| a == "--paced") || !bench {
        let p = paced::PacedOpts::from_args(&args, bench, o.skip_vm);
        paced::run(&rt, &client, &dir, &p);
        if bench {
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
    }
    if o.fill_rings {
        // 240 rounds = 1 h at 15 s: every ring full.
        let rounds = 240;
        let base = now_ms - rounds as i64 * 15_000;
        let sink = start_sink(&dir, None);
        rt.block_on(async {
            assert!(wait_ready(&client, &format!("{}/ready", sink.base)).await);
            let rss_before = rss_bytes(sink.child.id());
            for r in 0..rounds {
                let bodies = Arc::new(encode_round(o.series, r, base));
                send_round(&client, &sink.write_url, bodies, o.concurrency).await;
            }
            let status = status(&client, &sink.base).await;
            let series = status["series_active"].as_u64().unwrap_or(0).max(1);
            let accounted = status["series_memory_bytes"].as_u64().unwrap_or(0);
            let rss = rss_bytes(sink.child.id());
            println!("memory with full 1 h rings (240 samples per series), {series} series:");
            println!(
                "  accounted by the store: {:.0} bytes/series ({:.1} MiB)",
                accounted as f64 / series as f64,
                accounted as f64 / 1048576.0
            );
            println!(
                "  process RSS:            {:.0} bytes/series ({:.1} MiB)",
                rss as f64 / series as f64,
                rss as f64 / 1048576.0
            );
            let grown = rss.saturating_sub(rss_before);
            println!(
                "  RSS after - before:     {:.0} bytes/series ({:.1} MiB before the first write)",
                grown as f64 / series as f64,
                rss_before as f64 / 1048576.0
            );
        });
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    let total = o.warmup + o.rounds;
    let base = now_ms - total as i64 * 15_000;
    eprintln!(
        "encoding {} rounds of {} series ({} requests of {PER_REQUEST} samples per round)...",
        total,
        o.series,
        o.series.div_ceil(PER_REQUEST)
    );
    let rounds: Vec<Arc<Vec<Vec<u8>>>> = (0..total)
        .map(|r| Arc::new(encode_round(o.series, r, base)))
        .collect();
    let bytes: usize = rounds[0].iter().map(Vec::len).sum();
    eprintln!(
        "round size {:.1} MiB compressed ({} bytes/sample on the wire)",
        bytes as f64 / 1048576.0,
        bytes / o.series
    );
    let (warm, measured) = rounds.split_at(o.warmup);

    let mut results = Vec::new();
    {
        let sink = start_sink(&dir, None);
        let r = rt.block_on(run_against(
            &sink,
            &client,
            warm,
            measured,
            &o,
            &format!("{}/ready", sink.base),
        ));
        let status = rt.block_on(status(&client, &sink.base));
        let waits = rt.block_on(metric(
            &client,
            &sink.base,
            "sre_agent_store_shard_lock_waits_total",
        ));
        let requests = (o.rounds + o.warmup) * o.series.div_ceil(PER_REQUEST);
        eprintln!(
            "sink: {} series, {} samples detected, {waits} shard lock waits in {requests} requests ({:.2} per request)",
            status["series_active"],
            status["samples_detected"],
            waits / requests.max(1) as f64
        );
        results.push(r);
    }
    let vm_present = Command::new("victoria-metrics")
        .arg("-version")
        .output()
        .is_ok();
    if !o.skip_vm && vm_present {
        if let Some(vm) = start_vm(&dir) {
            let r = rt.block_on(run_against(
                &vm,
                &client,
                warm,
                measured,
                &o,
                &format!("{}/health", vm.base),
            ));
            results.push(r);
        }
    } else if !o.skip_vm {
        eprintln!("victoria-metrics not installed: comparison skipped");
    }
    println!(
        "{} series, {} measured rounds, {} samples per request, {} concurrent senders, {} cores",
        o.series,
        o.rounds,
        PER_REQUEST,
        o.concurrency,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<18} {:>12} {:>14} {:>12} {:>22} {:>8}",
        "server", "samples", "samples/s", "server CPU s", "samples/server CPU-s", "failed"
    );
    for r in &results {
        println!(
            "{:<18} {:>12} {:>14.0} {:>12.2} {:>22.0} {:>8}",
            r.name,
            r.samples,
            r.samples as f64 / r.wall,
            r.cpu,
            r.samples as f64 / r.cpu.max(1e-9),
            r.failed
        );
    }
    if let [sink, vm] = &results[..] {
        let per_cpu =
            (sink.samples as f64 / sink.cpu.max(1e-9)) / (vm.samples as f64 / vm.cpu.max(1e-9));
        println!(
            "sre-agent vs victoria-metrics: {:.2}x samples per server CPU-second, {:.2}x samples/s",
            per_cpu,
            (sink.samples as f64 / sink.wall) / (vm.samples as f64 / vm.wall)
        );
    }
    assert!(results.iter().all(|r| r.failed == 0), "some writes failed");
    let _ = std::fs::remove_dir_all(&dir);
}
