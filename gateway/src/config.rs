//! Settings of a running server, after flags have been parsed and checked.

use crate::auth::AuthConfig;
use crate::eventlog::SyncPolicy;
use crate::masking::MaskPattern;
use jingzhi_rules::space::Reference;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The default `interval` sync policy: fsync at most this often.
pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 10;

/// Parses a sync policy: `always`, `never`, or `interval` / `interval:50ms`.
pub fn parse_sync_policy(s: &str) -> Result<SyncPolicy, String> {
    match s {
        "always" => Ok(SyncPolicy::Always),
        "never" => Ok(SyncPolicy::Never),
        "interval" => Ok(SyncPolicy::Interval(std::time::Duration::from_millis(
            DEFAULT_SYNC_INTERVAL_MS,
        ))),
        other => match other.strip_prefix("interval:") {
            Some(d) => jingzhi_rules::time::parse_duration(d)
                .map(|ms| SyncPolicy::Interval(std::time::Duration::from_millis(ms.max(1)))),
            None => Err(format!(
                "unknown sync policy `{other}` (expected always, interval, interval:DURATION or never)"
            )),
        },
    }
}

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
    /// Keep at most this many events (per worker) for rules added while
    /// running.
    pub history_max_events: usize,
    /// An alert's value-only updates go out at most once per this much
    /// engine time; raises, clears and colour changes go out at once.
    pub update_interval_ms: u64,
    /// Where the store (`jingzhi.db`) and the event log (`log/`) live;
    /// without one, alert history and operator state are kept in memory
    /// and accepted events are not logged.
    pub data_dir: Option<PathBuf>,
    /// When the event log forces appended batches to disk.
    pub sync: SyncPolicy,
    /// The event log keeps at least this much (engine-clock) time, and
    /// always the longest window in use.
    pub log_retention_ms: u64,
    /// Alert changes older than this are deleted from the store (the
    /// incidents and their operator state stay).
    pub history_retention_ms: u64,
    /// An alert raised again within this long after its clear continues
    /// its incident (same operator state): flapping is one incident.
    pub reopen_window_ms: u64,
    /// API tokens and what they may do; no tokens: access control is off.
    pub auth: AuthConfig,
    /// Personal-data patterns masked in incident descriptions.
    pub masking: Vec<MaskPattern>,
    pub log_format: LogFormat,
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
            history_max_events: 1_000_000,
            update_interval_ms: 1000,
            data_dir: None,
            sync: SyncPolicy::Interval(std::time::Duration::from_millis(DEFAULT_SYNC_INTERVAL_MS)),
            log_retention_ms: 3_600_000,
            history_retention_ms: 30 * 86_400_000,
            reopen_window_ms: crate::store::DEFAULT_REOPEN_WINDOW_MS,
            auth: AuthConfig::default(),
            masking: MaskPattern::china_defaults(),
            log_format: LogFormat::Text,
        }
    }
}

/// Masking settings in the config file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// Keep the built-in patterns (resident ID numbers, mobile numbers,
    /// licence plates); the listed patterns are applied after them.
    #[serde(default = "yes")]
    pub defaults: bool,
    #[serde(default)]
    pub patterns: Vec<MaskPattern>,
}

fn yes() -> bool {
    true
}

/// The config file (`jingzhi serve --config FILE`, TOML). Every setting is
/// optional; command-line flags override it. Durations are written like
/// rule durations (`90s`, `15m`, `1h`). Relative paths are relative to
/// the file.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub clock: Option<ClockMode>,
    pub lateness: Option<String>,
    pub workers: Option<usize>,
    pub rules: Option<PathBuf>,
    pub reference: Option<PathBuf>,
    pub resolution: Option<String>,
    pub update_interval: Option<String>,
    pub history_max_events: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub max_future: Option<String>,
    pub ws_buffer: Option<usize>,
    pub ws_send_timeout: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `always`, `interval`, `interval:20ms` or `never`.
    pub sync: Option<String>,
    pub log_retention: Option<String>,
    pub history_retention: Option<String>,
    pub reopen_window: Option<String>,
    /// `text` (default) or `json`.
    pub log_format: Option<LogFormat>,
    pub auth: Option<AuthConfig>,
    pub masking: Option<MaskingConfig>,
}

/// How logs are written to stderr.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, with the request id and other fields.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format `{other}` (expected text or json)"
            )),
        }
    }
}

/// The settings that can come from the environment, as `JINGZHI_` and the
/// setting's name in capitals (`JINGZHI_DATA_DIR`), and whether their TOML
/// value is text (quoted) or a number.
const ENV_SETTINGS: &[(&str, bool)] = &[
    ("listen", true),
    ("clock", true),
    ("lateness", true),
    ("workers", false),
    ("rules", true),
    ("reference", true),
    ("resolution", true),
    ("update_interval", true),
    ("history_max_events", false),
    ("max_body_bytes", false),
    ("max_future", true),
    ("ws_buffer", false),
    ("ws_send_timeout", true),
    ("data_dir", true),
    ("sync", true),
    ("log_retention", true),
    ("history_retention", true),
    ("reopen_window", true),
    ("log_format", true),
];

impl FileConfig {
    /// The settings given as `JINGZHI_*` environment variables (tokens and
    /// masking patterns only come from the file). An error names the
    /// variable.
    pub fn from_env(vars: impl Iterator<Item = (String, String)>) -> Result<FileConfig, String> {
        let mut toml_text = String::new();
        let mut given = Vec::new();
        for (key, value) in vars {
            let Some(name) = key.strip_prefix("JINGZHI_") else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            let Some((setting, quoted)) = ENV_SETTINGS.iter().find(|(s, _)| *s == name) else {
                continue;
            };
            let value = if *quoted {
                toml::Value::String(value).to_string()
            } else {
                value.trim().to_string()
            };
            toml_text.push_str(&format!("{setting} = {value}\n"));
            given.push(key);
        }
        toml::from_str(&toml_text)
            .map_err(|e| format!("environment ({}): {}", given.join(", "), e.message()))
    }

    /// `other`'s settings over this one's.
    pub fn overlay(self, other: FileConfig) -> FileConfig {
        FileConfig {
            listen: other.listen.or(self.listen),
            clock: other.clock.or(self.clock),
            lateness: other.lateness.or(self.lateness),
            workers: other.workers.or(self.workers),
            rules: other.rules.or(self.rules),
            reference: other.reference.or(self.reference),
            resolution: other.resolution.or(self.resolution),
            update_interval: other.update_interval.or(self.update_interval),
            history_max_events: other.history_max_events.or(self.history_max_events),
            max_body_bytes: other.max_body_bytes.or(self.max_body_bytes),
            max_future: other.max_future.or(self.max_future),
            ws_buffer: other.ws_buffer.or(self.ws_buffer),
            ws_send_timeout: other.ws_send_timeout.or(self.ws_send_timeout),
            data_dir: other.data_dir.or(self.data_dir),
            sync: other.sync.or(self.sync),
            log_retention: other.log_retention.or(self.log_retention),
            history_retention: other.history_retention.or(self.history_retention),
            reopen_window: other.reopen_window.or(self.reopen_window),
            log_format: other.log_format.or(self.log_format),
            auth: other.auth.or(self.auth),
            masking: other.masking.or(self.masking),
        }
    }

    /// Reads and parses a config file; errors name the file, the line and
    /// the setting.
    pub fn load(path: &std::path::Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
        let mut file: FileConfig =
            toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        for p in [&mut file.rules, &mut file.reference, &mut file.data_dir]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(file)
    }

    /// Applies the file's settings over `config`; an error names the setting.
    pub fn apply(self, config: &mut ServerConfig) -> Result<(), String> {
        fn duration(setting: &str, text: &str) -> Result<u64, String> {
            jingzhi_rules::time::parse_duration(text)
                .map_err(|e| format!("setting `{setting}`: {e}"))
        }
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = self.clock {
            config.clock = v;
        }
        if let Some(v) = &self.lateness {
            config.lateness_ms = duration("lateness", v)?;
        }
        if let Some(v) = self.workers {
            if v == 0 {
                return Err("setting `workers`: must be at least 1".into());
            }
            config.workers = v;
        }
        if let Some(v) = self.rules {
            config.rules_dir = Some(v);
        }
        if let Some(v) = self.reference {
            config.reference = Some(v);
        }
        if let Some(v) = &self.update_interval {
            config.update_interval_ms = duration("update_interval", v)?;
        }
        if let Some(v) = self.history_max_events {
            config.history_max_events = v;
        }
        if let Some(v) = &self.resolution {
            config.resolution_ms = duration("resolution", v)?.max(1);
        }
        if let Some(v) = self.max_body_bytes {
            config.max_body_bytes = v;
        }
        if let Some(v) = &self.max_future {
            config.max_future_ms = duration("max_future", v)?;
        }
        if let Some(v) = self.ws_buffer {
            config.ws_buffer = v.max(16);
        }
        if let Some(v) = &self.ws_send_timeout {
            config.ws_send_timeout_ms = duration("ws_send_timeout", v)?;
        }
        if let Some(v) = self.data_dir {
            config.data_dir = Some(v);
        }
        if let Some(v) = &self.sync {
            config.sync = parse_sync_policy(v).map_err(|e| format!("setting `sync`: {e}"))?;
        }
        if let Some(v) = &self.log_retention {
            config.log_retention_ms = duration("log_retention", v)?;
        }
        if let Some(v) = &self.history_retention {
            config.history_retention_ms = duration("history_retention", v)?;
        }
        if let Some(v) = &self.reopen_window {
            config.reopen_window_ms = duration("reopen_window", v)?;
        }
        if let Some(v) = self.log_format {
            config.log_format = v;
        }
        if let Some(auth) = self.auth {
            crate::auth::Auth::new(&auth).map_err(|e| format!("setting `{e}"))?;
            config.auth = auth;
        }
        if let Some(masking) = self.masking {
            let mut patterns = if masking.defaults {
                MaskPattern::china_defaults()
            } else {
                Vec::new()
            };
            patterns.extend(masking.patterns);
            crate::masking::Masker::new(&patterns)
                .map_err(|e| format!("setting `masking`: {e}"))?;
            config.masking = patterns;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, String> {
        let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut config = ServerConfig::default();
        file.apply(&mut config)?;
        Ok(config)
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = |pairs: &[(&str, &str)]| {
            FileConfig::from_env(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
        };
        let file: FileConfig =
            toml::from_str("clock = \"wall\"\nworkers = 2\nsync = \"never\"").unwrap();
        let over = env(&[
            ("JINGZHI_CLOCK", "event"),
            ("JINGZHI_WORKERS", "3"),
            ("JINGZHI_DATA_DIR", "/srv/jingzhi"),
            ("PATH", "/bin"),
            ("JINGZHI_UNRELATED", "x"),
        ])
        .unwrap();
        let mut c = ServerConfig::default();
        file.overlay(over).apply(&mut c).unwrap();
        assert_eq!(c.clock, ClockMode::Event);
        assert_eq!(c.workers, 3);
        assert_eq!(c.sync, SyncPolicy::Never);
        assert_eq!(c.data_dir, Some(PathBuf::from("/srv/jingzhi")));
        let e = env(&[("JINGZHI_WORKERS", "many")]).unwrap_err();
        assert!(e.contains("JINGZHI_WORKERS"), "{e}");
        let e = env(&[("JINGZHI_CLOCK", "sundial")]).unwrap_err();
        assert!(e.contains("JINGZHI_CLOCK"), "{e}");
    }

    #[test]
    fn settings_apply_and_errors_name_them() {
        let c = parse(
            "clock = \"event\"\nlateness = \"30s\"\nsync = \"always\"\nreopen_window = \"2m\"\n\
             [[auth.tokens]]\nname = \"值班员\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nroles = [\"operator\"]\ndistricts = [\"110105\"]\n\
             [masking]\ndefaults = false\n[[masking.patterns]]\nname = \"email\"\nregex = \"[a-z]+@[a-z.]+\"\nkeep_prefix = 1\nkeep_suffix = 0\n",
        )
        .unwrap();
        assert_eq!(c.clock, ClockMode::Event);
        assert_eq!(c.lateness_ms, 30_000);
        assert_eq!(c.sync, SyncPolicy::Always);
        assert_eq!(c.reopen_window_ms, 120_000);
        assert_eq!(c.auth.tokens.len(), 1);
        assert_eq!(c.masking.len(), 1);
        let e = parse("lateness = \"soon\"").unwrap_err();
        assert!(e.contains("`lateness`"), "{e}");
        let e = parse("sync = \"sometimes\"").unwrap_err();
        assert!(e.contains("`sync`"), "{e}");
        let e = parse("colour = \"red\"").unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = parse("[[auth.tokens]]\nname = \"x\"\nsha256 = \"12\"\nroles = [\"operator\"]")
            .unwrap_err();
        assert!(e.contains("auth.tokens[0].sha256"), "{e}");
        let e = parse(
            "[[masking.patterns]]\nname = \"x\"\nregex = \"(\"\nkeep_prefix = 0\nkeep_suffix = 0",
        )
        .unwrap_err();
        assert!(e.contains("masking"), "{e}");
    }
}
