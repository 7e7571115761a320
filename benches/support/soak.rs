// The load bench's `--soak SECONDS` mode: first the peak this harness reaches (rounds back to
// back), then rounds paced at `--load` (80 %) of that peak for SECONDS, stamped with the wall
// clock as Prometheus stamps them. The store keeps `--retention` (2 min) so rings are full after
// the warm-up and RSS must then stay flat; RSS is sampled every 10 s. Every write must succeed
// (a 429 counts as failed), and p99 write latency is reported.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sre_agent::ingest::encode::TimeSeries;

use super::{PER_REQUEST, encode, rss_bytes, send_round, start_sink, wait_ready, workload};

pub struct SoakOpts {
    pub seconds: u64,
    pub series: usize,
    /// Share of the measured peak to soak at.
    pub load: f64,
    pub retention_s: u64,
    pub concurrency: usize,
}

impl SoakOpts {
    pub fn from_args(args: &[String]) -> Option<Self> {
        let get = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .and_then(|v| v.parse::<f64>().ok())
        };
        let seconds = get("--soak")? as u64;
        Some(Self {
            seconds,
            series: get("--series").map_or(100_000, |v| v as usize),
            load: get("--load").map_or(0.8, |v| v.clamp(0.05, 1.0)),
            retention_s: get("--retention").map_or(120, |v| v as u64).max(60),
            concurrency: get("--concurrency").map_or(2, |v| v as usize).max(1),
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The series' label sets, built once; each round only stamps a new sample.
struct Rounds {
    series: Vec<TimeSeries>,
    round: usize,
}

impl Rounds {
    fn new(n: usize) -> Self {
        let series = workload::requests_at(0..n, n.max(1), 0, 0)
            .into_iter()
            .flatten()
            .collect();
        Self { series, round: 0 }
    }

    /// The next round's bodies, stamped now.
    fn next(&mut self) -> Arc<Vec<Vec<u8>>> {
        let ts = now_ms();
        self.round += 1;
        for (i, s) in self.series.iter_mut().enumerate() {
            s.samples = vec![(ts, workload::value(i, self.round))];
        }
        let requests: Vec<Vec<TimeSeries>> = self
            .series
            .chunks(PER_REQUEST)
            .map(|c| c.to_vec())
            .collect();
        Arc::new(encode(&requests))
    }
}

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

pub fn run(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    dir: &std::path::Path,
    o: &SoakOpts,
) {
    let config = dir.join("soak.yaml");
    std::fs::write(
        &config,
        format!(
            "app:\n  log_level: warn\nstore:\n  retention: {}s\n",
            o.retention_s
        ),
    )
    .expect("write soak config");
    let sink = start_sink(dir, Some(&config));
    let pid = sink.child.id();
    let mut rounds = Rounds::new(o.series);
    rt.block_on(async {
        assert!(wait_ready(client, &format!("{}/ready", sink.base)).await);
        let created = send_round(client, &sink.write_url, rounds.next(), o.concurrency).await;
        assert_eq!(created.failed, 0, "series creation failed");

        // Peak: rounds back to back, encoding included (the harness shares the machine).
        let peak_rounds = 10;
        let start = Instant::now();
        for _ in 0..peak_rounds {
            let bodies = rounds.next();
            let r = send_round(client, &sink.write_url, bodies, o.concurrency).await;
            assert_eq!(r.failed, 0, "writes failed at peak");
        }
        let peak = (peak_rounds * o.series) as f64 / start.elapsed().as_secs_f64();
        let interval = Duration::from_secs_f64(o.series as f64 / (peak * o.load));
        println!(
            "soak: {} series, peak {:.0} samples/s (this harness, 2 senders), soaking at {:.0} % = one round every {:.2} s for {} s, retention {} s, {} cores",
            o.series,
            peak,
            o.load * 100.0,
            interval.as_secs_f64(),
            o.seconds,
            o.retention_s,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("{:>6} {:>10} {:>12} {:>8} {:>10}", "t s", "RSS MiB", "samples", "failed", "p99 ms");

        let start = Instant::now();
        let end = start + Duration::from_secs(o.seconds);
        let mut next_report = start;
        let mut next_scrape = start;
        let mut tick = 0u32;
        let (mut samples, mut failed) = (0usize, 0usize);
        let mut window = Vec::new();
        let mut all = Vec::new();
        let mut rss = Vec::new();
        while Instant::now() < end {
            tokio::time::sleep_until((start + interval * tick).into()).await;
            tick += 1;
            if Instant::now() >= next_scrape {
                if let Ok(r) = client.get(format!("{}/metrics", sink.base)).send().await {
                    let _ = r.bytes().await;
                }
                next_scrape += Duration::from_secs(15);
            }
            let bodies = rounds.next();
            let r = send_round(client, &sink.write_url, bodies, o.concurrency).await;
            samples += o.series;
            failed += r.failed;
            window.extend(r.latencies_ms.iter().copied());
            all.extend(r.latencies_ms);
            if Instant::now() >= next_report {
                let t = start.elapsed().as_secs_f64();
                let bytes = rss_bytes(pid);
                rss.push((t, bytes));
                window.sort_by(f64::total_cmp);
                println!(
                    "{t:>6.0} {:>10.1} {samples:>12} {failed:>8} {:>10.1}",
                    bytes as f64 / 1048576.0,
                    percentile(&window, 99)
                );
                window.clear();
                next_report += Duration::from_secs(10);
            }
        }
        let wall = start.elapsed().as_secs_f64();
        all.sort_by(f64::total_cmp);
        // Warm-up: the rings fill over one retention; a minute more for the first seals and
        // upkeep.
        let warm = (o.retention_s + 60) as f64;
        let steady: Vec<u64> = rss.iter().filter(|(t, _)| *t >= warm).map(|(_, b)| *b).collect();
        println!(
            "achieved {:.0} samples/s; write latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; failed requests {} (of {PER_REQUEST} samples each)",
            samples as f64 / wall,
            percentile(&all, 50),
            percentile(&all, 99),
            all.last().copied().unwrap_or(0.0),
            failed
        );
        if steady.len() >= 2 {
            let mut sorted = steady.clone();
            sorted.sort_unstable();
            let median = sorted[sorted.len() / 2] as f64;
            let (lo, hi) = (sorted[0] as f64, sorted[sorted.len() - 1] as f64);
            let spread = (hi - median).max(median - lo) / median * 100.0;
            println!(
                "RSS after {warm:.0} s warm-up: median {:.1} MiB, min {:.1}, max {:.1}: within ±{spread:.1} % of the median ({} samples) → {}",
                median / 1048576.0,
                lo / 1048576.0,
                hi / 1048576.0,
                steady.len(),
                if spread <= 5.0 { "flat (bar ±5 %)" } else { "NOT flat (bar ±5 %)" }
            );
        } else {
            println!("soak shorter than the warm-up ({warm:.0} s): no steady-state RSS figure");
        }
        assert_eq!(failed, 0, "some writes failed during the soak");
    });
    drop(sink);
}
