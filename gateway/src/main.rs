//! `jingzhi`: parse the command line, check it, run the command.

use clap::{Args, Parser, Subcommand};
use jingzhi_gateway::config::{ClockMode, ServerConfig};
use jingzhi_gateway::{bench, demo, rules_cli, serve};
use jingzhi_rules::time::parse_duration;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jingzhi",
    version,
    about = "京智 Jingzhi: real-time risk correlation for a city command center"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Run the server fed by the built-in city simulator, with the sample rules and the dashboard.
    Demo(DemoArgs),
    /// Write a simulated event stream (NDJSON) and its reference data.
    Simulate(SimulateArgs),
    /// Measure throughput, latency and memory.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Work with rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Replay an NDJSON file through the engine in process (event clock).
    Replay {
        /// NDJSON events with a `stream` field on each line.
        #[arg(long)]
        events: PathBuf,
        /// Rule files or directories.
        #[arg(long, required = true, num_args = 1..)]
        rules: Vec<PathBuf>,
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Bytes of NDJSON per chunk handed to a worker; the clock advances after each.
        #[arg(long, default_value_t = 1 << 20)]
        chunk_bytes: usize,
        #[arg(long, default_value = "0s", value_parser = duration)]
        lateness: u64,
        #[arg(long, default_value = "1s", value_parser = duration)]
        resolution: u64,
        /// Do not keep recent events for rules installed later.
        #[arg(long)]
        no_history: bool,
        /// Install the rules this many times (scaling with the number of rules).
        #[arg(long, default_value_t = 1)]
        copies: usize,
        /// Also run the naive baseline (recompute everything after every chunk).
        #[arg(long)]
        naive: bool,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check rule files; print every problem as file:line:column with a caret.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn duration(s: &str) -> Result<u64, String> {
    parse_duration(s)
}

#[derive(Args, Clone)]
struct EngineArgs {
    /// Timely worker threads (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Reference data file (districts, cells, sensors, segments).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Sliding windows' exits are rounded up to this.
    #[arg(long, default_value = "1s", value_parser = duration)]
    resolution: u64,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Engine clock: `wall` (live) or `event` (replay and tests).
    #[arg(long, default_value = "wall")]
    clock: ClockMode,
    /// Event clock: how far the clock stays behind the largest event time.
    #[arg(long, default_value = "0s", value_parser = duration)]
    lateness: u64,
    /// Directory of `*.rules` files to load.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Largest ingest request body, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
    /// Feed messages buffered per WebSocket client before it is resynchronised.
    #[arg(long, default_value_t = 4096)]
    ws_buffer: usize,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args)]
struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Simulator seed.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Load rules from this directory instead of the built-in sample rules.
    #[arg(long)]
    rules: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args)]
struct SimulateArgs {
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of events to write.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Output NDJSON file; the reference data goes next to it as `<stem>.reference.json`.
    #[arg(long)]
    out: PathBuf,
    /// Start of simulated time (RFC 3339).
    #[arg(long, default_value = "2026-07-15T08:00:00+08:00")]
    start: String,
    /// Write the W1 benchmark shape instead (10,000 cells, one hour from 2026-01-01).
    #[arg(long)]
    w1: bool,
}

fn server_config(listen: SocketAddr, engine: &EngineArgs) -> ServerConfig {
    let mut c = ServerConfig {
        listen,
        reference: engine.reference.clone(),
        resolution_ms: engine.resolution,
        ..ServerConfig::default()
    };
    if let Some(w) = engine.workers {
        c.workers = w.max(1);
    }
    c
}

fn main() -> ExitCode {
    // A panicking timely worker would leave the others waiting for it
    // forever; stop the whole process instead, and let the supervisor
    // restart it (recovery comes from the event log, not half-alive threads).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    let cli = Cli::parse();
    match cli.command {
        Command::Rules {
            command: RulesCommand::Check { files },
        } => rules_cli::check(&files),
        Command::Bench {
            command:
                BenchCommand::Replay {
                    events,
                    rules,
                    workers,
                    chunk_bytes,
                    lateness,
                    resolution,
                    no_history,
                    copies,
                    naive,
                },
        } => {
            let opts = bench::ReplayOptions {
                events,
                rules,
                workers,
                chunk_bytes,
                lateness_ms: lateness,
                resolution_ms: resolution,
                history: !no_history,
                copies,
            };
            match bench::replay(&opts) {
                Ok(report) => {
                    println!("{}", bench::describe(&report, &opts));
                    if naive {
                        match bench::naive::run(&opts) {
                            Ok(n) => println!(
                                "naive baseline: {} events in {} batches: {:.3} s, {:.0} events/s ({} alert-set changes); incremental is {:.1}x faster",
                                n.events,
                                n.batches,
                                n.seconds,
                                n.events as f64 / n.seconds,
                                n.changes,
                                n.seconds / report.seconds
                            ),
                            Err(e) => {
                                eprintln!("jingzhi: naive baseline: {e}");
                                return ExitCode::FAILURE;
                            }
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("jingzhi: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Simulate(a) => demo::simulate(a.seed, a.events, &a.out, &a.start, a.w1),
        Command::Serve(a) => {
            let mut config = server_config(a.listen, &a.engine);
            config.clock = a.clock;
            config.lateness_ms = a.lateness;
            config.rules_dir = a.rules;
            config.max_body_bytes = a.max_body_bytes;
            config.ws_buffer = a.ws_buffer.max(16);
            run_async(async move {
                let running = serve::start(config).await?;
                println!("jingzhi: listening on http://{}", running.addr);
                running.until_signal().await
            })
        }
        Command::Demo(a) => {
            let mut config = server_config(a.listen, &a.engine);
            config.rules_dir = a.rules;
            run_async(demo::run(config, a.seed))
        }
    }
}

fn run_async<F>(f: F) -> ExitCode
where
    F: std::future::Future<Output = Result<(), serve::ServeError>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jingzhi: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jingzhi: {e}");
            ExitCode::FAILURE
        }
    }
}
