//! The `sre-agent` command line: serve | demo | check-config.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use sre_agent::Pipeline;
use sre_agent::config::Config;
use sre_agent::sim::demo::{self, DemoOptions};

#[derive(Parser)]
#[command(
    name = "sre-agent",
    version,
    about = "Prometheus remote-write sink with streaming anomaly detection"
)]
struct Cli {
    /// Log as JSON lines instead of text (overrides app.log_format).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum AuditAction {
    /// Check the hash chain: exit 0 when intact; otherwise name the first altered, removed or
    /// reordered record and exit 1.
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: remote-write ingest, detection, API, notifications.
    Serve {
        /// Config file (YAML); without one the embedded defaults are used.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address, overriding api.host/api.port (e.g. 127.0.0.1:8000).
        #[arg(long)]
        listen: Option<String>,
        /// Data directory, overriding app.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run the agent with the built-in exchange simulator writing into it over HTTP.
    Demo {
        /// Play the scenario once in this many seconds, then print a summary and exit.
        #[arg(long)]
        duration: Option<u64>,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address of the agent.
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: String,
        /// Random seed of the simulator.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Keep state (audit log, knowledge base, incidents) here; default a fresh temp dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Plan, approve and audit, but change nothing in the simulated cluster.
        #[arg(long)]
        dry_run: bool,
    },
    /// Feed the noisy exchange (1 s scrapes, skewed noise, decoys that must not page, five
    /// injected incidents) through the detectors in simulated time and print, per seed, the
    /// pages, false alarms, detection delays and resolve notices.
    NoiseTrial {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Seeds to run, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        seeds: Vec<u64>,
        /// Scrape interval of the simulated exchange, in seconds.
        #[arg(long, default_value_t = 1)]
        step: u64,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate a config file (and the catalog it names) and exit.
    CheckConfig { file: PathBuf },
    /// Stream CSV files (timestamp,value) through the live detectors and write
    /// timestamp,value,anomaly_score to the same relative paths under OUTPUT.
    Replay {
        /// A CSV file or a folder tree of them.
        #[arg(long)]
        input: PathBuf,
        /// Output folder.
        #[arg(long)]
        output: PathBuf,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// The audit log in the data directory.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Fetch the catalog's history from Prometheus (prometheus.url / PROMETHEUS_URL), train the
    /// baselines on it, and save them to the data directory for the next `serve`.
    Backfill {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Data directory, overriding app.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Loads the config, applies `--data-dir`, and creates the directory now: snapshots (and later
/// the audit log) live there, so a bad path fails at start, not at the first write.
fn load_with_data_dir(path: Option<&PathBuf>, data_dir: Option<PathBuf>) -> Result<Config> {
    let mut config = load(path)?;
    if let Some(d) = data_dir {
        config.app.data_dir = d.display().to_string();
    }
    std::fs::create_dir_all(&config.app.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.app.data_dir))?;
    Ok(config)
}

fn load(path: Option<&PathBuf>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::defaults()?,
    })
}

fn init_logging(config: &Config, json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = config.app.log_level.to_ascii_lowercase();
        EnvFilter::new(format!("{level},hyper=warn,reqwest=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json || config.app.log_format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// `SIGHUP` reloads the config, as it does for Prometheus; the outcome is logged and on
/// /metrics (`sre_agent_config_last_reload_successful`).
fn reload_on_sighup(pipeline: std::sync::Arc<Pipeline>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP cannot be watched; reload with POST /-/reload");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            // The outcome is logged and counted by `reload` itself.
            let _ = pipeline.reload().await;
        }
    });
    #[cfg(not(unix))]
    let _ = pipeline;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

fn main() -> std::process::ExitCode {
    // Errors are for people: the message and its causes on one line, no backtrace.
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::CheckConfig { file } => {
            let config = Config::load(&file)?;
            let catalog = config.catalog()?;
            let rules = sre_agent::analyze::rules::RulesFile::load(&config.rca.rules_file)?;
            println!(
                "{}: OK ({} catalog entries, {} RCA rules)",
                file.display(),
                catalog.classes.len(),
                rules.rules.len()
            );
            Ok(())
        }
        Command::Replay {
            input,
            output,
            config,
        } => {
            let config = load(config.as_ref())?;
            let started = std::time::Instant::now();
            let report = sre_agent::ingest::replay::replay(&input, &output, &config)?;
            println!(
                "replayed {} files, {} rows in {:.2} s ({} rows not scored: duplicate or out-of-order timestamps, NaN; {} rows anomalous) into {}",
                report.files,
                report.rows,
                started.elapsed().as_secs_f64(),
                report.unscored,
                report.anomalous_rows,
                output.display()
            );
            // Machine-readable for scripts/nab.sh, which scores at the threshold that runs live.
            println!(
                "alert_threshold {}",
                config.anomaly_detection.alert_threshold
            );
            Ok(())
        }
        Command::Audit {
            action: AuditAction::Verify { data_dir },
        } => {
            let path = data_dir.join(sre_agent::act::audit::FILE);
            match sre_agent::act::audit::verify(&path) {
                Ok(s) => {
                    println!("{}: intact ({} records)", path.display(), s.records);
                    Ok(())
                }
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    std::process::exit(1);
                }
            }
        }
        Command::Backfill { config, data_dir } => {
            let config = load_with_data_dir(config.as_ref(), data_dir)?;
            init_logging(&config, cli.log_json);
            runtime()?.block_on(async move {
                let pipeline = Pipeline::new(config)?;
                pipeline.restore_snapshot();
                let report = pipeline.warm_start().await?;
                let dir = PathBuf::from(&pipeline.config.app.data_dir);
                let saved = pipeline.store.save_snapshot(&dir)?;
                println!(
                    "backfilled {} series ({} samples in {} query_range chunks; {} already had a baseline); {} baselines saved to {}",
                    report.series,
                    report.samples,
                    report.chunks,
                    report.skipped_series,
                    saved,
                    dir.join(sre_agent::store::baselines::SNAPSHOT_FILE).display()
                );
                Ok(())
            })
        }
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            let config_path = config.clone();
            let data_dir_override = data_dir.clone();
            let config = load_with_data_dir(config.as_ref(), data_dir)?;
            init_logging(&config, cli.log_json);
            let listen = listen.unwrap_or_else(|| config.listen_addr());
            runtime()?.block_on(async move {
                #[cfg(feature = "kube")]
                let events = sre_agent::analyze::kubernetes::event_source(&config.kubernetes).await;
                #[cfg(not(feature = "kube"))]
                let events = None;
                let executors = sre_agent::act::executor::cluster_executors(&config.kubernetes).await;
                let pipeline = Pipeline::build(config, events, executors)?;
                // Reloads read the same file and apply the same command-line overrides.
                pipeline.set_config_source(
                    config_path,
                    Box::new(move |c: &mut Config| {
                        if let Some(d) = &data_dir_override {
                            c.app.data_dir = d.display().to_string();
                        }
                    }),
                );
                report_remediation(&pipeline);
                connect_qdrant(&pipeline).await;
                pipeline.restore_snapshot();
                pipeline.restore_incidents();
                pipeline.remediator.sync_incidents();
                if !pipeline.config.prometheus.url.is_empty() && pipeline.config.prometheus.backfill.on_start {
                    // Before the listener opens: a live sample would make older history out of order.
                    match pipeline.warm_start().await {
                        Ok(r) => tracing::info!(series = r.series, samples = r.samples, chunks = r.chunks, skipped = r.skipped_series, "warm start from Prometheus history done"),
                        Err(e) => tracing::warn!(error = %e, "warm start from Prometheus failed; starting cold"),
                    }
                }
                pipeline.start_background()?;
                reload_on_sighup(pipeline.clone());
                let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
                tracing::info!(addr = %listener.local_addr()?, version = env!("CARGO_PKG_VERSION"), "sre-agent listening; remote_write to /api/v1/write");
                sre_agent::serve(pipeline.clone(), listener, shutdown_signal()).await?;
                // Queued webhooks, alerts and knowledge-base writes go out before the state is saved.
                pipeline.shutdown(SHUTDOWN_GRACE).await;
                let p = pipeline.clone();
                tokio::task::spawn_blocking(move || {
                    p.save_snapshot_now();
                    p.save_incidents();
                })
                .await?;
                tracing::info!("baselines and incidents saved; bye");
                Ok(())
            })
        }
        Command::NoiseTrial {
            config,
            seeds,
            step,
            json,
        } => {
            let config = load(config.as_ref())?;
            init_logging(&config, cli.log_json);
            runtime()?.block_on(async move {
                let mut reports = Vec::new();
                for seed in seeds {
                    let report = sre_agent::sim::trial::run_at(
                        config.clone(),
                        seed,
                        (step.clamp(1, 3600) * 1000) as i64,
                    )?;
                    if !json {
                        print!("{}", report.render());
                    }
                    reports.push(report);
                }
                let pages: usize = reports.iter().map(|r| r.pages).sum();
                let false_alarms: usize = reports.iter().map(|r| r.false_alarms.len()).sum();
                if json {
                    println!("{}", serde_json::to_string_pretty(&reports)?);
                } else {
                    println!(
                        "all seeds: {pages} pages, {false_alarms} false ({:.1} %)",
                        100.0 * false_alarms as f64 / pages.max(1) as f64
                    );
                }
                Ok(())
            })
        }
        Command::Demo {
            duration,
            config,
            listen,
            seed,
            json,
            data_dir,
            dry_run,
        } => {
            let config = load(config.as_ref())?;
            init_logging(&config, cli.log_json);
            runtime()?.block_on(async move {
                let opts = DemoOptions {
                    config,
                    listen,
                    duration: duration.map(Duration::from_secs),
                    seed,
                    verbose: !json,
                    data_dir,
                    dry_run,
                };
                let summary = tokio::select! {
                    s = demo::run(opts) => s?,
                    _ = shutdown_signal() => return Ok(()),
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&summary)?);
                } else {
                    println!("{}", summary.render());
                }
                Ok(())
            })
        }
    }
}

/// How long shutdown waits for background tasks to drain their queues before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Mirrors the knowledge base into Qdrant when `rca.qdrant_url` is set (feature `qdrant`).
async fn connect_qdrant(pipeline: &std::sync::Arc<Pipeline>) {
    let rca = &pipeline.config.rca;
    if rca.qdrant_url.is_empty() {
        return;
    }
    #[cfg(feature = "qdrant")]
    match sre_agent::analyze::qdrant::QdrantKnowledge::connect(
        &rca.qdrant_url,
        rca.qdrant_api_key.expose(),
        &rca.qdrant_collection,
    )
    .await
    {
        Ok(q) => {
            let q = std::sync::Arc::new(q);
            // Entries written before Qdrant was configured go there too (upserts are idempotent).
            let entries = pipeline.analyzer.knowledge.list(None);
            let mirror = q.clone();
            tokio::spawn(async move {
                for e in entries {
                    if let Err(err) = mirror.upsert(&e).await {
                        tracing::warn!(error = %err, "Qdrant: initial sync stopped");
                        break;
                    }
                }
            });
            let _ = pipeline.analyzer.remote_knowledge.set(q);
            tracing::info!(collection = %rca.qdrant_collection, "knowledge base mirrored in Qdrant");
        }
        Err(e) => {
            tracing::warn!(error = %e, "Qdrant not reachable; the embedded knowledge base is used")
        }
    }
    #[cfg(not(feature = "qdrant"))]
    tracing::warn!(
        "rca.qdrant_url is set but this build lacks the `qdrant` feature; the embedded knowledge base is used"
    );
}

fn report_remediation(pipeline: &Pipeline) {
    let r = &pipeline.config.auto_remediation;
    if !r.enabled {
        tracing::info!("remediation off: no plans are made");
    } else if r.dry_run {
        tracing::info!(audit = %pipeline.remediator.audit_log().path().display(), "remediation in DRY RUN: plans are made, approved and audited; nothing is changed");
    } else {
        tracing::warn!(audit = %pipeline.remediator.audit_log().path().display(), "remediation LIVE: approved plans change the cluster");
    }
    if r.callback_secret.is_empty() {
        tracing::info!(
            "auto_remediation.callback_secret unset: approval links stop working when the agent restarts"
        );
    }
}
