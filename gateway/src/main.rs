//! `jingzhi`: parse the command line, check it, run the command.

use clap::{Args, Parser, Subcommand};
use jingzhi_gateway::config::{ClockMode, FileConfig, LogFormat, ServerConfig};
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
    /// Make API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a config file (with the JINGZHI_* environment over it): every
    /// setting, the tokens, the masking patterns, the rules and reference
    /// data it names. Exits non-zero on the first problem.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new random token and the config-file entry (with its hash) that grants it.
    New {
        /// Who will use it (recorded as the actor of what it does).
        #[arg(long)]
        name: String,
        /// ingest, operator, author or admin (repeat or separate with commas).
        #[arg(long = "role", required = true, value_delimiter = ',')]
        roles: Vec<jingzhi_gateway::auth::Role>,
        /// Limit it to these district codes (repeat or separate with commas).
        #[arg(long = "district", value_delimiter = ',')]
        districts: Vec<String>,
    },
}

fn token_new(name: &str, roles: &[jingzhi_gateway::auth::Role], districts: &[String]) -> ExitCode {
    let token = match jingzhi_gateway::auth::new_token() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("jingzhi: cannot read random bytes: {e}");
            return ExitCode::FAILURE;
        }
    };
    let entry = jingzhi_gateway::auth::TokenEntry {
        name: name.to_string(),
        sha256: jingzhi_gateway::auth::hash_token(&token),
        roles: roles.to_vec(),
        districts: (!districts.is_empty()).then(|| districts.to_vec()),
    };
    let toml = toml::to_string(&entry).unwrap_or_default();
    println!("token: {token}");
    println!("(give the token to {name}; it is shown only now)\n");
    println!("# add to the config file:\n[[auth.tokens]]\n{toml}");
    ExitCode::SUCCESS
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
        /// Reference data file [default: `<stem>.reference.json` beside
        /// --events if there is one, else the built-in districts on the
        /// default grid].
        #[arg(long)]
        reference: Option<PathBuf>,
    },
    /// Throughput over real HTTP: start `jingzhi serve --clock event` as a
    /// child process and post an NDJSON file to it over concurrent connections.
    Http {
        /// NDJSON events with a `stream` field on each line.
        #[arg(long)]
        events: PathBuf,
        /// A rule file or a directory of `*.rules`.
        #[arg(long)]
        rules: PathBuf,
        /// The server's timely workers (default: its default, the number of cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Concurrent ingest connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// NDJSON lines per request body (bodies also stop short of 16 MiB).
        #[arg(long, default_value_t = 10_000)]
        batch_lines: usize,
        /// The server's --lateness: concurrent bodies arrive slightly out of order.
        #[arg(long, default_value = "300s", value_parser = duration)]
        lateness: u64,
        /// An extra argument for `jingzhi serve` (repeat for several: --server-arg=--ws-buffer --server-arg=8192).
        #[arg(long = "server-arg", allow_hyphen_values = true)]
        server_arg: Vec<String>,
        /// Also print the report as JSON on stdout (the summary goes to stderr).
        #[arg(long)]
        json: bool,
    },
    /// Write a set of varied, realistic rules drawn from the library's kinds
    /// (one `.rules` file each), to benchmark a city-scale rule book.
    Rules {
        /// How many rules.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// The same seed and count always give the same rules.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Directory to write to (created if missing; `*.rules` files an
        /// earlier run wrote there are replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Event-to-WebSocket latency at fixed offered rates: start `jingzhi serve
    /// --clock wall` with a probe rule, post background events and probes
    /// every 5 ms, time each probe's alert on the WebSocket feed.
    Latency {
        /// Offered rates in events per second, comma-separated; one fresh server each.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,500000")]
        rates: Vec<u64>,
        /// How long to offer each rate.
        #[arg(long, default_value = "10s", value_parser = duration)]
        duration: u64,
        /// Concurrent ingest connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// The server's timely workers (default: its default, the number of cores).
        #[arg(long)]
        workers: Option<usize>,
        /// An extra argument for `jingzhi serve` (repeat for several).
        #[arg(long = "server-arg", allow_hyphen_values = true)]
        server_arg: Vec<String>,
        /// Stamp events this long before the wall clock (default: `ts` = now).
        #[arg(long, default_value = "0ms", value_parser = duration)]
        event_age: u64,
        /// Rule files or directories to install beside the probe rule
        /// (e.g. the example library).
        #[arg(long)]
        rules: Vec<PathBuf>,
        /// Send a simulated city's events as the background (`default` or
        /// `beijing`, with that city's reference data loaded by the server)
        /// instead of generic rain readings.
        #[arg(long, value_parser = city_choice)]
        city: Option<jingzhi_gateway::sim::CityChoice>,
        /// Also print the report as JSON on stdout (the summary goes to stderr).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check rule files; print every problem as file:line:column with a caret.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run rule tests (`*.test.toml`: events and the alerts expected; see docs/rule-tests.md).
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Timely workers of the engine each test runs in.
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Replay recorded events through rules; print every alert's raise and clear
    /// times and a summary per rule, or with --against what a rule change does.
    Backtest {
        /// A rule file or a directory of `*.rules`.
        rules: PathBuf,
        /// NDJSON events, in time order.
        events: PathBuf,
        /// Print one JSON document instead of tables.
        #[arg(long)]
        json: bool,
        /// Compare with these rules (a file or a directory): alerts added, removed, changed.
        #[arg(long)]
        against: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// How far the clock stays behind the largest event time read.
        #[arg(long, default_value = "0s", value_parser = duration)]
        lateness: u64,
        /// Reference data file (default: the built-in Beijing districts).
        #[arg(long)]
        reference: Option<PathBuf>,
    },
}

fn run_rules(command: RulesCommand) -> ExitCode {
    match command {
        RulesCommand::Check { files } => rules_cli::check(&files),
        RulesCommand::Test { files, workers } => rules_cli::test(&files, workers),
        RulesCommand::Backtest {
            rules,
            events,
            json,
            against,
            workers,
            lateness,
            reference,
        } => rules_cli::backtest(&jingzhi_gateway::backtest::BacktestOptions {
            rules: vec![rules],
            events,
            json,
            against: against.map(|a| vec![a]),
            workers,
            lateness_ms: lateness,
            reference,
        }),
    }
}

fn duration(s: &str) -> Result<u64, String> {
    parse_duration(s)
}

fn city_choice(s: &str) -> Result<jingzhi_gateway::sim::CityChoice, String> {
    s.parse()
}

fn events_per_second(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "`{s}` is not a rate: give a positive number of events per second of event time, e.g. 20000"
        )),
    }
}

#[derive(Args, Clone)]
struct EngineArgs {
    /// Timely worker threads (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Reference data file (districts, cells, sensors, segments).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Sliding windows' exits are rounded up to this [default: 1s].
    #[arg(long, value_parser = duration)]
    resolution: Option<u64>,
}

#[derive(Args)]
struct ServeArgs {
    /// A TOML config file (see docs/operations.md); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Engine clock: `wall` (live) or `event` (replay and tests) [default: wall].
    #[arg(long)]
    clock: Option<ClockMode>,
    /// Event clock: how far the clock stays behind the largest event time [default: 0s].
    #[arg(long, value_parser = duration)]
    lateness: Option<u64>,
    /// Directory of `*.rules` files to load.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Largest ingest request body, in bytes [default: 16 MiB].
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Feed messages buffered per WebSocket client before it is resynchronised [default: 4096].
    #[arg(long)]
    ws_buffer: Option<usize>,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args, Clone)]
struct StorageArgs {
    /// Logs on stderr: `text` or `json` [default: text].
    #[arg(long)]
    log_format: Option<LogFormat>,
    /// Keep alert history, operator actions, rule versions and the event log
    /// here, and recover from them at start.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// When the event log is forced to disk: `always`, `interval`,
    /// `interval:DURATION` or `never` [default: interval:10ms].
    #[arg(long, value_parser = jingzhi_gateway::config::parse_sync_policy)]
    sync: Option<jingzhi_gateway::eventlog::SyncPolicy>,
    /// An alert raised again within this long after clearing is the same incident [default: 5m].
    #[arg(long, value_parser = duration)]
    reopen_window: Option<u64>,
}

#[derive(Args)]
struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Do not require API tokens (by default the demo makes one per role and prints them).
    #[arg(long)]
    open: bool,
    #[command(flatten)]
    storage: StorageArgs,
    /// Simulator seed.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// The simulated city: `default` or `beijing` (full scale, about 18,000 events/s).
    #[arg(long, default_value = "default", value_parser = city_choice)]
    city: jingzhi_gateway::sim::CityChoice,
    /// Load rules from this directory instead of the built-in sample rules.
    #[arg(long)]
    rules: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Args)]
struct SimulateArgs {
    /// `default` (about 2,000 sources on 1.8 km cells, about 28 events/s) or
    /// `beijing` (the municipality at full scale: about 50,000 sources on
    /// 500 m cells, about 18,000 events/s).
    #[arg(long, default_value = "default", value_parser = city_choice)]
    city: jingzhi_gateway::sim::CityChoice,
    /// Average events per second of event time: every source reports
    /// proportionally faster or slower [default: the city's natural rate].
    #[arg(long, value_parser = events_per_second)]
    rate: Option<f64>,
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
    #[arg(long, conflicts_with_all = ["city", "rate"])]
    w1: bool,
}

/// Applies the engine and storage flags given over `c`.
fn apply_flags(c: &mut ServerConfig, engine: &EngineArgs, storage: &StorageArgs) {
    if let Some(r) = &engine.reference {
        c.reference = Some(r.clone());
    }
    if let Some(r) = engine.resolution {
        c.resolution_ms = r.max(1);
    }
    if let Some(w) = engine.workers {
        c.workers = w.max(1);
    }
    if let Some(d) = &storage.data_dir {
        c.data_dir = Some(d.clone());
    }
    if let Some(s) = storage.sync {
        c.sync = s;
    }
    if let Some(w) = storage.reopen_window {
        c.reopen_window_ms = w;
    }
    if let Some(f) = storage.log_format {
        c.log_format = f;
    }
}

/// The config file (if any) with the `JINGZHI_*` environment over it.
fn file_settings(path: Option<&std::path::Path>) -> Result<FileConfig, String> {
    let file = match path {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    Ok(file.overlay(FileConfig::from_env(std::env::vars())?))
}

/// Structured logs on stderr; `JINGZHI_LOG` filters them (`info` by
/// default, e.g. `JINGZHI_LOG=debug` to see every request).
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JINGZHI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

fn config_check(path: &std::path::Path) -> ExitCode {
    let mut c = ServerConfig::default();
    let checked = file_settings(Some(path)).and_then(|f| f.apply(&mut c));
    if let Err(e) = checked {
        eprintln!("jingzhi: {e}");
        return ExitCode::FAILURE;
    }
    let rules = match jingzhi_gateway::rules_load::load(&c) {
        Ok(plans) => plans.len(),
        Err(e) => {
            eprintln!("jingzhi: {}: setting `rules`: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(r) = &c.reference {
        if let Err(e) = jingzhi_rules::space::Reference::load(r) {
            eprintln!("jingzhi: {}: setting `reference`: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(d) = &c.data_dir {
        if d.exists() && !d.is_dir() {
            eprintln!(
                "jingzhi: {}: setting `data_dir`: {} is not a directory",
                path.display(),
                d.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let tokens: Vec<String> = c
        .auth
        .tokens
        .iter()
        .map(|t| {
            let roles: Vec<&str> = t.roles.iter().map(|r| r.name()).collect();
            format!("{} ({})", t.name, roles.join(","))
        })
        .collect();
    println!(
        "{}: ok — listen {}, clock {}, {} rules, data dir {}, {} tokens{}{}, {} masking patterns",
        path.display(),
        c.listen,
        c.clock.name(),
        rules,
        c.data_dir
            .as_ref()
            .map_or("none (nothing survives a restart)".to_string(), |d| d
                .display()
                .to_string()),
        tokens.len(),
        if tokens.is_empty() {
            " (access control off)"
        } else {
            ": "
        },
        tokens.join(", "),
        c.masking.len()
    );
    ExitCode::SUCCESS
}

/// The server's settings: defaults, then the config file, then the flags.
fn serve_config(a: ServeArgs) -> Result<ServerConfig, String> {
    let mut c = ServerConfig::default();
    file_settings(a.config.as_deref())?.apply(&mut c)?;
    apply_flags(&mut c, &a.engine, &a.storage);
    if let Some(v) = a.listen {
        c.listen = v;
    }
    if let Some(v) = a.clock {
        c.clock = v;
    }
    if let Some(v) = a.lateness {
        c.lateness_ms = v;
    }
    if let Some(v) = a.rules {
        c.rules_dir = Some(v);
    }
    if let Some(v) = a.max_body_bytes {
        c.max_body_bytes = v;
    }
    if let Some(v) = a.ws_buffer {
        c.ws_buffer = v.max(16);
    }
    Ok(c)
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
        Command::Rules { command } => run_rules(command),
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
                    reference,
                },
        } => {
            let reference = reference.or_else(|| bench::reference_beside(&events));
            match &reference {
                Some(path) => println!("reference data: {}", path.display()),
                None => println!("reference data: built-in districts on the default grid"),
            }
            let opts = bench::ReplayOptions {
                events,
                rules,
                workers,
                chunk_bytes,
                lateness_ms: lateness,
                resolution_ms: resolution,
                history: !no_history,
                copies,
                reference,
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
        Command::Bench {
            command:
                BenchCommand::Http {
                    events,
                    rules,
                    workers,
                    connections,
                    batch_lines,
                    lateness,
                    server_arg,
                    json,
                },
        } => bench::http::command(
            &bench::http::HttpOptions {
                events,
                rules,
                workers,
                connections,
                batch_lines,
                lateness_ms: lateness,
                server_args: server_arg,
            },
            json,
        ),
        Command::Bench {
            command:
                BenchCommand::Latency {
                    rates,
                    duration,
                    connections,
                    workers,
                    server_arg,
                    event_age,
                    rules,
                    city,
                    json,
                },
        } => bench::latency::command(
            &bench::latency::LatencyOptions {
                rates,
                duration_ms: duration,
                connections,
                workers,
                server_args: server_arg,
                event_age_ms: event_age,
                rules,
                city,
            },
            json,
        ),
        Command::Bench {
            command: BenchCommand::Rules { count, seed, out },
        } => bench::rulegen::command(count, seed, &out),
        Command::Simulate(a) => demo::simulate(
            demo::SimulateCommand {
                city: a.city,
                seed: a.seed,
                events: a.events,
                start: a.start,
                rate: a.rate,
                w1: a.w1,
            },
            &a.out,
        ),
        Command::Serve(a) => {
            let config = match serve_config(a) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("jingzhi: {e}");
                    return ExitCode::FAILURE;
                }
            };
            init_logs(config.log_format);
            if config.auth.tokens.is_empty() {
                tracing::warn!("no API tokens are configured: access control is off and anyone who can reach the port may act on alerts and publish rules");
            }
            run_async(async move {
                let running = serve::start(config).await?;
                println!("jingzhi: listening on http://{}", running.addr);
                running.until_signal().await
            })
        }
        Command::Demo(a) => {
            let mut config = ServerConfig {
                listen: a.listen,
                ..ServerConfig::default()
            };
            apply_flags(&mut config, &a.engine, &a.storage);
            config.rules_dir = a.rules;
            init_logs(config.log_format);
            run_async(demo::run(config, a.city, a.seed, !a.open))
        }
        Command::Token(TokenCommand::New {
            name,
            roles,
            districts,
        }) => token_new(&name, &roles, &districts),
        Command::Config(ConfigCommand::Check { file }) => config_check(&file),
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
