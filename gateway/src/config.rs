//! Settings of a running server, after flags have been parsed and checked.

use jingzhi_rules::space::Reference;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the engine clock comes from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    /// Follows the wall clock (live operation).
    Wall,
    /// Follows event time: the largest event time seen minus the allowed
    /// lateness, or an explicit watermark (replay and tests).
    Event,
}

impl ClockMode {
    pub fn name(self) -> &'static str {
        match self {
            ClockMode::Wall => "wall",
            ClockMode::Event => "event",
        }
    }
}

impl std::str::FromStr for ClockMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "wall" => Ok(ClockMode::Wall),
            "event" => Ok(ClockMode::Event),
            other => Err(format!("unknown clock `{other}` (expected wall or event)")),
        }
    }
}

/// Everything the server needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub clock: ClockMode,
    /// In event mode, how far the clock stays behind the largest event time.
    pub lateness_ms: u64,
    /// Timely worker threads.
    pub workers: usize,
    /// Directory of `*.rules` files.
    pub rules_dir: Option<PathBuf>,
    /// Rules given as (name, text) instead of a directory (the demo's built-in set).
    pub builtin_rules: Vec<(String, String)>,
    /// Reference data file; the built-in Beijing districts on the default grid if absent.
    pub reference: Option<PathBuf>,
    /// Reference data given directly (the demo's simulated city); overrides `reference`.
    pub reference_data: Option<Reference>,
    /// Largest accepted ingest body.
    pub max_body_bytes: usize,
    /// Events more than this ahead of the wall clock are refused.
    pub max_future_ms: u64,
    /// Sliding windows' exits are rounded up to this.
    pub resolution_ms: u64,
    /// Wall mode: how often the clock advances when no events arrive.
    pub heartbeat_ms: u64,
    /// Feed messages buffered per WebSocket client before it is resynchronised.
    pub ws_buffer: usize,
    /// A WebSocket client that takes longer than this to accept a message is dropped.
    pub ws_send_timeout_ms: u64,
    /// Keep at least this much event history for rules added while running.
    pub min_history_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            clock: ClockMode::Wall,
            lateness_ms: 0,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            rules_dir: None,
            builtin_rules: Vec::new(),
            reference: None,
            reference_data: None,
            max_body_bytes: 16 << 20,
            max_future_ms: 86_400_000,
            resolution_ms: 1000,
            heartbeat_ms: 200,
            ws_buffer: 4096,
            ws_send_timeout_ms: 10_000,
            min_history_ms: 0,
        }
    }
}
