//! `jingzhi bench`: measures the whole path from NDJSON bytes to the final
//! alert set, in process (replay of a file) and over HTTP.

pub mod http;
pub mod latency;
pub mod naive;
pub mod rulegen;

use crate::app::now_ms;
use jingzhi_dataflow::{
    ChunkReport, Engine, EngineConfig, EngineOutput, GroupKey, RuleId, Time, WindowConfig,
};
use jingzhi_rules::event::ParseContext;
use jingzhi_rules::lang::{compile, render_diagnostics, CheckOptions, SourceFile};
use jingzhi_rules::plan::{RulePlan, Severity, Window};
use jingzhi_rules::space::Reference;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The rule files named: files as given, directories' `*.rules`.
pub fn rule_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(crate::rules_load::rule_files(p)?);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// Reads rules from files and directories of `*.rules`.
pub fn load_rules(paths: &[PathBuf], min_window_ms: u64) -> Result<Vec<RulePlan>, String> {
    let mut sources = Vec::new();
    for f in rule_files(paths)? {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        sources.push(SourceFile {
            name: f.display().to_string(),
            text,
        });
    }
    let compiled = compile(&sources, &CheckOptions { min_window_ms });
    if compiled.has_errors() {
        return Err(render_diagnostics(&compiled.diagnostics, &sources));
    }
    Ok(compiled.plans)
}

/// `plans` repeated `copies` times, the copies renamed `NAME_2`, `NAME_3`, ….
pub fn replicate(plans: Vec<RulePlan>, copies: usize) -> Vec<RulePlan> {
    let mut out = Vec::with_capacity(plans.len() * copies.max(1));
    for k in 1..=copies.max(1) {
        for p in &plans {
            let mut p = p.clone();
            if k > 1 {
                p.name = format!("{}_{k}", p.name);
            }
            out.push(p);
        }
    }
    out
}

/// Settings of an in-process replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub events: PathBuf,
    pub rules: Vec<PathBuf>,
    pub workers: usize,
    /// Bytes of NDJSON handed to a worker at a time (the clock advances after each).
    pub chunk_bytes: usize,
    pub lateness_ms: u64,
    pub resolution_ms: u64,
    /// Keep recent events for rules installed later (off for a fixed rule set).
    pub history: bool,
    /// Install the rules this many times (under distinct names), to measure
    /// how throughput scales with the number of rules.
    pub copies: usize,
    /// Reference data (grid, districts, sensors, segments); `None`: the
    /// built-in default grid and districts.
    pub reference: Option<PathBuf>,
}

impl ReplayOptions {
    /// The reference data to replay with: the file given, or the built-in
    /// default grid and districts.
    pub fn load_reference(&self) -> Result<Reference, String> {
        match &self.reference {
            Some(path) => Reference::load(path),
            None => crate::city::default_reference(),
        }
    }
}

/// `<stem>.reference.json` beside an event file, if there is one: what
/// `jingzhi simulate` writes, so a simulated city's events (located by
/// sensor id and on its own grid) replay with their own reference data.
pub fn reference_beside(events: &std::path::Path) -> Option<PathBuf> {
    let path = crate::sim::batch::reference_path_for(events);
    path.is_file().then_some(path)
}

/// One alert's active interval.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub rule: RuleId,
    pub key: GroupKey,
    pub raised: Time,
    pub cleared: Option<Time>,
}

/// What a replay measured.
#[derive(Clone, Debug)]
pub struct ReplayReport {
    pub events: usize,
    pub rejected: usize,
    pub bytes: usize,
    pub seconds: f64,
    pub changes: usize,
    pub intervals: Vec<Interval>,
    pub peak_rss_bytes: Option<u64>,
    pub window_records_at_end: u64,
    /// Contributions placed (event × term × key) and value-only alert
    /// updates held back by the update interval.
    pub contributions: u64,
    pub coalesced_updates: u64,
    pub plans: Vec<Arc<RulePlan>>,
    pub rule_ids: Vec<RuleId>,
}

impl ReplayReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    /// For a rule on tumbling windows grouped by cell: every (cell, window)
    /// whose result was an alert, and a hash of the sorted set in the form
    /// `shared/bench/w1_duckdb.py` prints.
    pub fn tumbling_windows(&self, rule: RuleId) -> Option<(BTreeSet<(u32, u64)>, String)> {
        let idx = self.rule_ids.iter().position(|&r| r == rule)?;
        let w = match self.plans[idx].terms.first()?.window {
            Window::Tumbling(w) => w,
            Window::Sliding(_) => return None,
        };
        let mut set = BTreeSet::new();
        for i in self.intervals.iter().filter(|i| i.rule == rule) {
            let GroupKey::Cell(cell) = i.key else {
                continue;
            };
            // Window k is reported from (k+1)·w; count every report start
            // inside the interval.
            let first = i.raised.div_ceil(w);
            let Some(end) = i.cleared else { continue };
            let mut b = first * w;
            while b < end {
                set.insert((cell, b / w - 1));
                b += w;
            }
        }
        let text: String = set.iter().map(|(c, w)| format!("{c},{w}\n")).collect();
        let hash = sha256_hex(text.as_bytes());
        Some((set, hash[..16].to_string()))
    }
}

/// Peak resident set size of this process, from /proc.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Reads a file in blocks of about `size` bytes, each ending at a line end.
struct Blocks {
    file: std::fs::File,
    carry: Vec<u8>,
    size: usize,
    done: bool,
}

impl Blocks {
    fn next_block(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        use std::io::Read;
        if self.done {
            return Ok(None);
        }
        let mut block = std::mem::take(&mut self.carry);
        let have = block.len();
        block.resize(have + self.size, 0);
        let mut filled = have;
        while filled < block.len() {
            let n = self.file.read(&mut block[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        block.truncate(filled);
        if filled < have + self.size {
            self.done = true;
            return Ok(if block.is_empty() { None } else { Some(block) });
        }
        if let Some(end) = block.iter().rposition(|&b| b == b'\n') {
            self.carry = block.split_off(end + 1);
        }
        Ok(Some(block))
    }
}

/// Replays an NDJSON file through the engine on the event clock and
/// collects every alert interval.
pub fn replay(opts: &ReplayOptions) -> Result<ReplayReport, String> {
    let open = |p: &PathBuf| std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut blocks = Blocks {
        file: open(&opts.events)?,
        carry: Vec::new(),
        size: opts.chunk_bytes.max(4096),
        done: false,
    };
    let plans = replicate(load_rules(&opts.rules, opts.resolution_ms)?, opts.copies);
    let reference = opts.load_reference()?;
    let context = Arc::new(ParseContext::new(
        reference.grid.clone(),
        now_ms(),
        86_400_000,
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let config = EngineConfig {
            workers: opts.workers.max(1),
            window: WindowConfig {
                resolution_ms: opts.resolution_ms.max(1),
                keep_history: opts.history,
                min_history_ms: 0,
                ..WindowConfig::default()
            },
            // A few chunks in flight per worker keep it busy without
            // holding the file in memory.
            command_capacity: 4,
            grid: reference.grid.clone(),
            update_interval_ms: 1000,
        };
        let (engine, output) = Engine::start(config, 0).map_err(|e| e.to_string())?;
        engine
            .update_reference(reference.as_changes())
            .await
            .map_err(|e| e.to_string())?;
        let mut rule_ids = Vec::new();
        let mut plans_arc = Vec::new();
        for p in plans {
            let p = Arc::new(p);
            rule_ids.push(
                engine
                    .add_rule(p.clone())
                    .await
                    .map_err(|e| e.to_string())?,
            );
            plans_arc.push(p);
        }
        let reach = plans_arc
            .iter()
            .map(|p| p.reach(opts.resolution_ms.max(1)))
            .max()
            .unwrap_or(0);
        let end_marker = Arc::new(AtomicU64::new(Time::MAX));
        let marker = end_marker.clone();
        let collector = std::thread::spawn(move || collect(output, &marker));

        let started = Instant::now();
        let (reply_tx, replies) = std::sync::mpsc::channel::<ChunkReport>();
        let (mut sent, mut answered) = (0usize, 0usize);
        let (mut events, mut rejected, mut bytes) = (0, 0, 0);
        let mut max_ts = 0;
        let absorb =
            |r: ChunkReport, events: &mut usize, rejected: &mut usize, max_ts: &mut u64| {
                *events += r.accepted;
                *rejected += r.rejected;
                *max_ts = (*max_ts).max(r.max_ts);
            };
        while let Some(block) = blocks.next_block().map_err(|e| e.to_string())? {
            bytes += block.len();
            engine
                .send_ndjson(block, context.clone(), reply_tx.clone())
                .await
                .map_err(|e| e.to_string())?;
            sent += 1;
            // The event clock follows what the workers have read so far;
            // later chunks hold later events, so none of them is late.
            // At most one chunk per worker is read ahead of the clock:
            // events far ahead of it only wait in their windows.
            while let Ok(r) = replies.try_recv() {
                answered += 1;
                absorb(r, &mut events, &mut rejected, &mut max_ts);
            }
            while sent - answered > opts.workers.max(1) {
                let r = replies.recv().map_err(|_| "a worker stopped".to_string())?;
                answered += 1;
                absorb(r, &mut events, &mut rejected, &mut max_ts);
            }
            engine
                .advance(max_ts.saturating_sub(opts.lateness_ms))
                .await
                .map_err(|e| e.to_string())?;
        }
        while answered < sent {
            let r = replies.recv().map_err(|_| "a worker stopped".to_string())?;
            answered += 1;
            absorb(r, &mut events, &mut rejected, &mut max_ts);
        }
        // Close every window: past the last event plus the longest reach.
        let end = max_ts + reach + opts.resolution_ms.max(1);
        end_marker.store(end, Ordering::SeqCst);
        engine.advance(end).await.map_err(|e| e.to_string())?;
        engine.shutdown().await;
        let (changes, intervals, finished) = collector
            .join()
            .map_err(|_| "the output collector failed".to_string())?;
        let seconds = finished
            .unwrap_or_else(Instant::now)
            .duration_since(started)
            .as_secs_f64();
        Ok(ReplayReport {
            events,
            rejected,
            bytes,
            seconds,
            changes,
            intervals,
            peak_rss_bytes: peak_rss_bytes(),
            window_records_at_end: engine.retained().window_records(),
            contributions: engine.retained().contributions,
            coalesced_updates: engine.retained().coalesced_updates,
            plans: plans_arc,
            rule_ids,
        })
    })
}

/// Drains engine output until it stops, turning changes into intervals;
/// also returns when the output first became complete past `end`.
fn collect(
    output: std::sync::mpsc::Receiver<EngineOutput>,
    end: &AtomicU64,
) -> (usize, Vec<Interval>, Option<Instant>) {
    let mut finished = None;
    let mut open: BTreeMap<(RuleId, GroupKey), (Time, isize)> = BTreeMap::new();
    let mut done = Vec::new();
    let mut changes = 0;
    while let Ok(out) = output.recv() {
        match out {
            EngineOutput::Changes { time, updates } => {
                changes += updates.len();
                let mut net: BTreeMap<(RuleId, GroupKey), isize> = BTreeMap::new();
                for u in updates {
                    *net.entry((u.rule, u.key)).or_default() += u.diff;
                }
                for (k, d) in net {
                    if d > 0 {
                        open.insert(k, (time, d));
                    } else if d < 0 {
                        if let Some((raised, _)) = open.remove(&k) {
                            done.push(Interval {
                                rule: k.0,
                                key: k.1,
                                raised,
                                cleared: Some(time),
                            });
                        }
                    }
                }
            }
            EngineOutput::Complete { through } => {
                if finished.is_none() && through > end.load(Ordering::SeqCst) {
                    finished = Some(Instant::now());
                }
            }
            EngineOutput::Stopped { .. } => break,
        }
    }
    for ((rule, key), (raised, _)) in open {
        done.push(Interval {
            rule,
            key,
            raised,
            cleared: None,
        });
    }
    done.sort();
    (changes, done, finished)
}

/// An alert's active interval with its severities (for backtests).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeverityInterval {
    pub raised: Time,
    /// `None`: still active when the recording ended.
    pub cleared: Option<Time>,
    pub rule: RuleId,
    pub key: GroupKey,
    /// The severity it was raised with.
    pub severity: Severity,
    /// The highest severity it reached.
    pub highest: Severity,
}

/// What a rule set did over a recording.
#[derive(Clone, Debug)]
pub struct AlertReplay {
    pub events: usize,
    pub rejected: usize,
    /// The latest event time: the replay ends there, and intervals still
    /// open then have no clear time.
    pub end: Time,
    /// The rules, and the ids the engine gave them.
    pub rules: Vec<(RuleId, Arc<RulePlan>)>,
    /// Sorted by raise time.
    pub intervals: Vec<SeverityInterval>,
}

/// Settings of [`replay_alerts`].
#[derive(Clone, Debug)]
pub struct AlertReplayOptions {
    pub events: PathBuf,
    pub workers: usize,
    pub lateness_ms: u64,
    pub resolution_ms: u64,
    pub chunk_bytes: usize,
}

/// Replays an NDJSON file through the engine on the event clock with the
/// given rules and reference data, like [`replay`], and collects every
/// alert interval with its severities. The replay stops at the latest event
/// time: windows are not closed past the end of the recording.
pub fn replay_alerts(
    opts: &AlertReplayOptions,
    plans: Vec<RulePlan>,
    reference: &Reference,
) -> Result<AlertReplay, String> {
    let file =
        std::fs::File::open(&opts.events).map_err(|e| format!("{}: {e}", opts.events.display()))?;
    let mut blocks = Blocks {
        file,
        carry: Vec::new(),
        size: opts.chunk_bytes.max(4096),
        done: false,
    };
    // Recorded events may lie anywhere in time; none is refused as future.
    let context = Arc::new(ParseContext::new(reference.grid.clone(), u64::MAX / 2, 0));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let config = EngineConfig {
            workers: opts.workers.max(1),
            window: WindowConfig {
                resolution_ms: opts.resolution_ms.max(1),
                keep_history: false,
                min_history_ms: 0,
                ..WindowConfig::default()
            },
            command_capacity: 4,
            grid: reference.grid.clone(),
            update_interval_ms: 1000,
        };
        let (engine, output) = Engine::start(config, 0).map_err(|e| e.to_string())?;
        let e = |e: jingzhi_dataflow::EngineError| e.to_string();
        engine
            .update_reference(reference.as_changes())
            .await
            .map_err(e)?;
        let mut rules = Vec::new();
        for p in plans {
            let p = Arc::new(p);
            rules.push((engine.add_rule(p.clone()).await.map_err(e)?, p));
        }
        let end_marker = Arc::new(AtomicU64::new(Time::MAX));
        let marker = end_marker.clone();
        let collector = std::thread::spawn(move || collect_severities(output, &marker));

        let (reply_tx, replies) = std::sync::mpsc::channel::<ChunkReport>();
        let (mut sent, mut answered) = (0usize, 0usize);
        let (mut events, mut rejected, mut max_ts) = (0, 0, 0);
        while let Some(block) = blocks.next_block().map_err(|e| e.to_string())? {
            engine
                .send_ndjson(block, context.clone(), reply_tx.clone())
                .await
                .map_err(e)?;
            sent += 1;
            while let Ok(r) = replies.try_recv() {
                answered += 1;
                events += r.accepted;
                rejected += r.rejected;
                max_ts = max_ts.max(r.max_ts);
            }
            engine
                .advance(max_ts.saturating_sub(opts.lateness_ms))
                .await
                .map_err(e)?;
        }
        while answered < sent {
            let r = replies.recv().map_err(|_| "a worker stopped".to_string())?;
            answered += 1;
            events += r.accepted;
            rejected += r.rejected;
            max_ts = max_ts.max(r.max_ts);
        }
        // One step past the end, after the marker is set: the collector
        // then surely sees a completion beyond the end.
        end_marker.store(max_ts, Ordering::SeqCst);
        engine.advance(max_ts + 1).await.map_err(e)?;
        let intervals = collector
            .join()
            .map_err(|_| "the output collector failed".to_string())?;
        engine.shutdown().await;
        Ok(AlertReplay {
            events,
            rejected,
            end: max_ts,
            rules,
            intervals: intervals?,
        })
    })
}

/// Turns engine output into intervals with severities, up to and including
/// the time in `end` (set once the input is exhausted).
fn collect_severities(
    output: std::sync::mpsc::Receiver<EngineOutput>,
    end: &AtomicU64,
) -> Result<Vec<SeverityInterval>, String> {
    let mut open: BTreeMap<(RuleId, GroupKey), SeverityInterval> = BTreeMap::new();
    let mut done = Vec::new();
    while let Ok(out) = output.recv() {
        match out {
            EngineOutput::Changes { time, updates } => {
                if time > end.load(Ordering::SeqCst) {
                    continue;
                }
                // Per key: the row present after this time, if any.
                let mut now: BTreeMap<(RuleId, GroupKey), Option<Severity>> = BTreeMap::new();
                for u in updates {
                    let entry = now.entry((u.rule, u.key)).or_insert(None);
                    if u.diff > 0 {
                        *entry = Some(u.row.severity);
                    }
                }
                for (k, present) in now {
                    match (present, open.get_mut(&k)) {
                        (Some(s), Some(i)) => i.highest = i.highest.max(s),
                        (Some(s), None) => {
                            open.insert(
                                k,
                                SeverityInterval {
                                    raised: time,
                                    cleared: None,
                                    rule: k.0,
                                    key: k.1,
                                    severity: s,
                                    highest: s,
                                },
                            );
                        }
                        (None, _) => {
                            if let Some(mut i) = open.remove(&k) {
                                i.cleared = Some(time);
                                done.push(i);
                            }
                        }
                    }
                }
            }
            EngineOutput::Complete { through } => {
                if through > end.load(Ordering::SeqCst) {
                    break;
                }
            }
            EngineOutput::Stopped { reason } => {
                return Err(format!("the engine stopped before the end: {reason}"))
            }
        }
    }
    done.extend(open.into_values());
    done.sort();
    Ok(done)
}

/// SHA-256 of `data` as lowercase hex, for comparing alert sets with
/// `shared/bench/w1_duckdb.py`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Prints a benchmark's summary: on stdout, or — with `json` — on stderr
/// with the report as JSON on stdout. False if the JSON could not be made.
pub fn print_report(text: &str, report: &impl serde::Serialize, json: bool) -> bool {
    if !json {
        println!("{text}");
        return true;
    }
    eprintln!("{text}");
    match serde_json::to_string_pretty(report) {
        Ok(j) => {
            println!("{j}");
            true
        }
        Err(e) => {
            eprintln!("jingzhi: cannot write the report as JSON: {e}");
            false
        }
    }
}

/// Formats a replay report for people.
pub fn describe(report: &ReplayReport, opts: &ReplayOptions) -> String {
    let mut s = format!(
        "replay {}: {} events ({} rejected, {:.1} MB) with {} rule(s), {} worker(s): {:.3} s, {:.0} events/s; {} alert changes ({} value-only updates coalesced), {} alert intervals; peak RSS {}; {} contributions, window records at end {}",
        opts.events.display(),
        report.events,
        report.rejected,
        report.bytes as f64 / 1e6,
        report.plans.len(),
        opts.workers,
        report.seconds,
        report.events_per_second(),
        report.changes,
        report.coalesced_updates,
        report.intervals.len(),
        report
            .peak_rss_bytes
            .map_or("unknown".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
        report.contributions,
        report.window_records_at_end,
    );
    for (i, id) in report.rule_ids.iter().enumerate() {
        if let Some((set, hash)) = report.tumbling_windows(*id) {
            s.push_str(&format!(
                "\n  rule {}: {} alerting (cell, window) pairs, hash={hash}",
                report.plans[i].name,
                set.len()
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answers() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let long = vec![b'a'; 1000];
        assert_eq!(
            sha256_hex(&long),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    #[test]
    fn blocks_end_at_line_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ndjson");
        std::fs::write(&path, "aaaa\nbb\ncccccc\nd").unwrap();
        let mut blocks = Blocks {
            file: std::fs::File::open(&path).unwrap(),
            carry: Vec::new(),
            size: 6,
            done: false,
        };
        let mut got = Vec::new();
        while let Some(b) = blocks.next_block().unwrap() {
            got.push(String::from_utf8(b).unwrap());
        }
        assert_eq!(got.concat(), "aaaa\nbb\ncccccc\nd");
        for b in &got[..got.len() - 1] {
            assert!(b.ends_with('\n'), "{got:?}");
        }
    }
}
