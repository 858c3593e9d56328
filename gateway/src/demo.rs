//! `jingzhi demo` and `jingzhi simulate`: the built-in city, live or on file.

use crate::app::now_ms;
use crate::auth::{AuthConfig, Role, TokenEntry};
use crate::config::{ClockMode, ServerConfig};
use crate::serve::{self, ServeError};
use crate::sim::{self, Schedule, Simulator};
use jingzhi_rules::time::parse_rfc3339;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

/// How often the live simulator hands events to the engine.
const FEED_INTERVAL: Duration = Duration::from_millis(250);

/// Runs the server on the wall clock, fed live by the simulator.
pub async fn run(
    mut config: ServerConfig,
    city: sim::CityChoice,
    seed: u64,
    secure: bool,
) -> Result<(), ServeError> {
    let city = city.build(seed);
    let tokens = if secure {
        demo_tokens().map_err(ServeError::Io)?
    } else {
        Vec::new()
    };
    config.auth = AuthConfig {
        tokens: tokens.iter().map(|(entry, _)| entry.clone()).collect(),
        open_reads: false,
    };
    config.clock = ClockMode::Wall;
    config.reference_data = Some(city.reference());
    if config.rules_dir.is_none() {
        config.builtin_rules = EXAMPLE_RULES
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string()))
            .collect();
    }
    let running = serve::start(config).await?;
    println!("jingzhi: listening on http://{}", running.addr);
    let rules = running.app.rules.read().map(|r| r.len()).unwrap_or(0);
    match tokens.first() {
        None => println!(
            "京智 Jingzhi demo: open http://{}/ — a simulated Beijing with {rules} rules; alerts appear within a minute. Ctrl-C to stop.",
            running.addr
        ),
        Some((_, admin)) => {
            println!(
                "京智 Jingzhi demo: open http://{}/#token={admin} — a simulated Beijing with {rules} rules; alerts appear within a minute. Ctrl-C to stop.",
                running.addr
            );
            println!("API tokens made for this run (send as `Authorization: Bearer TOKEN`; `--open` turns access control off):");
            for (entry, token) in &tokens {
                let roles: Vec<&str> = entry.roles.iter().map(|r| r.name()).collect();
                let scope = entry
                    .districts
                    .as_ref()
                    .map_or("all districts".to_string(), |d| d.join(","));
                // Names last: CJK text does not line up in columns.
                println!(
                    "  {:<8} {:<13} http://{}/#token={token}  {}",
                    roles.join(","),
                    scope,
                    running.addr,
                    entry.name
                );
            }
        }
    }
    let app = running.app.clone();
    let mut simulator = Simulator::new(&city, seed, now_ms(), Schedule::Demo);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FEED_INTERVAL);
        let mut batch = Vec::new();
        let mut stop = app.shutdown.subscribe();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            simulator.advance_to(now_ms(), &mut batch);
            if app.ingest_events(std::mem::take(&mut batch)).await.is_err() {
                return;
            }
        }
    });
    running.until_signal().await
}

/// One token per role for a demo run: a duty lead (admin), an operator
/// of 朝阳区 only, a rule author, and a feed (ingest). Admin first.
fn demo_tokens() -> std::io::Result<Vec<(TokenEntry, String)>> {
    let people: [(&str, Role, Option<&str>); 4] = [
        ("值班长", Role::Admin, None),
        ("朝阳区值班员", Role::Operator, Some("110105")),
        ("规则工程师", Role::Author, None),
        ("数据接入", Role::Ingest, None),
    ];
    people
        .into_iter()
        .map(|(name, role, district)| {
            let token = crate::auth::new_token()?;
            Ok((
                TokenEntry {
                    name: name.to_string(),
                    sha256: crate::auth::hash_token(&token),
                    roles: vec![role],
                    districts: district.map(|d| vec![d.to_string()]),
                },
                token,
            ))
        })
        .collect()
}

/// `jingzhi simulate`: writes events and reference data to files.
pub fn simulate(options: SimulateCommand, out: &Path) -> ExitCode {
    let result = if options.w1 {
        sim::write_w1_shape(options.seed, options.events, out)
            .map(|s| format!("{s}"))
            .map_err(|e| format!("cannot write {}: {e}", out.display()))
    } else {
        let start_ms = match parse_rfc3339(&options.start) {
            Ok(ms) => ms,
            Err(e) => {
                eprintln!("jingzhi: --start `{}` {e}", options.start);
                return ExitCode::FAILURE;
            }
        };
        let simulation = sim::SimulationOptions {
            city: options.city,
            seed: options.seed,
            events: options.events,
            start_ms,
            rate: options.rate,
        };
        sim::write_simulation(&simulation, out).map(|s| format!("{s}"))
    };
    match result {
        Ok(summary) => {
            println!("wrote {}: {summary}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jingzhi: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `jingzhi simulate` was asked for.
#[derive(Clone, Debug)]
pub struct SimulateCommand {
    pub city: sim::CityChoice,
    pub seed: u64,
    pub events: usize,
    /// RFC 3339.
    pub start: String,
    pub rate: Option<f64>,
    /// Write the W1 benchmark's shape instead (no city, no rate).
    pub w1: bool,
}
