//! `jingzhi rules test FILE...`: unit tests for rules, written in TOML.
//!
//! A test file names rule files, a start time, events (offsets from the
//! start) and expectations: the exact set of alerts active at given times.
//! It runs through the real engine in process, on the event clock, the way
//! a replay does: events in order of arrival, the clock advanced to each
//! arrival and to each expectation's time before checking. The format is
//! described in `docs/rule-tests.md`.

use crate::alerts::{Alert, AlertBook};
use jingzhi_dataflow::{Engine, EngineConfig, EngineOutput, Time, WindowConfig};
use jingzhi_rules::event::{parse_line, Event, ParseContext};
use jingzhi_rules::lang::{check_files, render_diagnostics, CheckOptions};
use jingzhi_rules::plan::{RulePlan, Severity};
use jingzhi_rules::schema::StreamKind;
use jingzhi_rules::space::Reference;
use jingzhi_rules::span::line_col;
use jingzhi_rules::time::{parse_duration, parse_rfc3339};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// Values are compared to this (relative to the expected value when it is
/// larger than 1).
pub const VALUE_TOLERANCE: f64 = 1e-9;

/// How long to wait for the engine to finish one clock time.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// An event table: field → value, with positions.
type EventTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestToml {
    rules: Vec<Spanned<String>>,
    start: Spanned<String>,
    #[serde(default)]
    reference: Option<Spanned<String>>,
    #[serde(default)]
    lateness: Option<Spanned<String>>,
    #[serde(default)]
    events: Vec<Spanned<EventTable>>,
    #[serde(default)]
    expect: Vec<Spanned<ExpectToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectToml {
    at: Spanned<String>,
    alerts: Vec<Spanned<AlertToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertToml {
    rule: String,
    key: Spanned<toml::Value>,
    severity: Spanned<String>,
    #[serde(default)]
    values: BTreeMap<String, f64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// An alert an expectation names.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedAlert {
    pub rule: String,
    pub key: String,
    pub severity: Severity,
    pub values: BTreeMap<String, f64>,
    pub message: Option<String>,
    /// When given, the alert's labels exactly.
    pub labels: Option<BTreeMap<String, String>>,
}

/// An alert active when an expectation was checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveAlert {
    pub rule: String,
    pub key: String,
    pub severity: Severity,
    pub values: BTreeMap<String, Option<f64>>,
    pub message: String,
    pub labels: BTreeMap<String, String>,
}

impl From<&Alert> for ActiveAlert {
    fn from(a: &Alert) -> ActiveAlert {
        ActiveAlert {
            rule: a.rule.clone(),
            key: a.key.clone(),
            severity: a.severity,
            values: a.values.clone(),
            message: a.message.clone(),
            labels: a.labels.clone(),
        }
    }
}

/// One expectation: the exact set of alerts active at `at`.
#[derive(Clone, Debug)]
pub struct Expectation {
    /// As written (`1m`), for messages.
    pub at_text: String,
    pub at: Time,
    pub alerts: Vec<ExpectedAlert>,
}

/// A test file, read and checked, ready to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub plans: Vec<RulePlan>,
    pub reference: Reference,
    pub lateness_ms: u64,
    /// (arrival, event), in order of arrival (stable).
    pub events: Vec<(Time, Event)>,
    /// In order of time (stable).
    pub expectations: Vec<Expectation>,
}

/// What running one test file found.
#[derive(Clone, Debug, Default)]
pub struct FileReport {
    pub expectations: usize,
    /// One message per failed expectation.
    pub failures: Vec<String>,
    /// Why the file could not be run.
    pub error: Option<String>,
}

/// `jingzhi rules test FILE...`: runs every file, prints failures and a
/// summary, fails on any failure or error.
pub fn run(files: &[PathBuf], workers: usize) -> ExitCode {
    let (mut expectations, mut failed, mut errors) = (0, 0, 0);
    for path in files {
        let report = run_file(path, workers);
        expectations += report.expectations;
        failed += report.failures.len();
        if let Some(e) = &report.error {
            errors += 1;
            eprintln!("{e}");
        }
        for f in &report.failures {
            print!("{f}");
        }
        if report.error.is_none() && report.failures.is_empty() {
            println!(
                "{}: ok ({} expectation{})",
                path.display(),
                report.expectations,
                plural(report.expectations)
            );
        }
    }
    println!(
        "{} test{}, {expectations} expectation{}, {failed} failed",
        files.len(),
        plural(files.len()),
        plural(expectations)
    );
    if errors > 0 {
        println!("{errors} test file{} could not be run", plural(errors));
    }
    if failed > 0 || errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Reads, runs and checks one test file.
pub fn run_file(path: &Path, workers: usize) -> FileReport {
    let scenario = match load(path) {
        Ok(s) => s,
        Err(e) => {
            return FileReport {
                error: Some(e),
                ..FileReport::default()
            }
        }
    };
    let mut report = FileReport {
        expectations: scenario.expectations.len(),
        ..FileReport::default()
    };
    match run_scenario(&scenario, workers) {
        Ok(observed) => {
            for (expect, active) in scenario.expectations.iter().zip(&observed) {
                let problems = compare(&expect.alerts, active);
                if !problems.is_empty() {
                    report.failures.push(describe_failure(
                        &path.display().to_string(),
                        expect,
                        active,
                        &problems,
                    ));
                }
            }
        }
        Err(e) => report.error = Some(format!("{}: {e}", path.display())),
    }
    report
}

/// `file:line:column: message` for a byte offset into the test file.
fn at(file: &str, text: &str, offset: usize, message: impl std::fmt::Display) -> String {
    let lc = line_col(text, offset);
    format!("{file}:{}:{}: {message}", lc.line, lc.column)
}

/// A signed offset from the start: `90s`, `-5m`, `0s`.
fn parse_offset(text: &str) -> Result<i64, String> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let ms = parse_duration(body)?;
    let ms = i64::try_from(ms).map_err(|_| format!("`{text}` is too large"))?;
    Ok(if negative { -ms } else { ms })
}

fn offset_time(start: Time, offset: i64) -> Option<Time> {
    if offset >= 0 {
        start.checked_add(offset as u64)
    } else {
        start.checked_sub(offset.unsigned_abs())
    }
}

/// The fields ingest reads on a stream (the location fields included).
fn ingest_fields(stream: StreamKind) -> Vec<&'static str> {
    let mut fields: Vec<&'static str> = stream.fields().iter().map(|f| f.name).collect();
    fields.extend(["cell", "lon", "lat"]);
    if stream == StreamKind::Incident {
        fields.push("description");
    }
    fields
}

fn toml_to_json(v: &toml::Value) -> Result<serde_json::Value, String> {
    match v {
        toml::Value::String(s) => Ok(serde_json::Value::String(s.clone())),
        toml::Value::Integer(i) => Ok(serde_json::Value::from(*i)),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| format!("{f} is not a finite number")),
        toml::Value::Boolean(b) => Ok(serde_json::Value::Bool(*b)),
        toml::Value::Datetime(d) => Ok(serde_json::Value::String(d.to_string())),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            Err("must be a string, a number or a boolean".into())
        }
    }
}

/// Reads and checks a test file; every problem is reported with the file
/// and its position.
pub fn load(path: &Path) -> Result<Scenario, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let doc: TestToml = toml::from_str(&text).map_err(|e| {
        let message = e.message().trim_end().to_string();
        match e.span() {
            Some(span) => at(&file, &text, span.start, message),
            None => format!("{file}: {message}"),
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut errors = Vec::new();
    let err_at = |offset: usize, message: String| at(&file, &text, offset, message);

    let start = match parse_rfc3339(doc.start.get_ref()) {
        Ok(ms) => Some(ms),
        Err(e) => {
            errors.push(err_at(
                doc.start.span().start,
                format!("`start` {e} (like 2026-07-15T08:00:00+08:00)"),
            ));
            None
        }
    };
    let lateness_ms = match &doc.lateness {
        None => 0,
        Some(l) => parse_duration(l.get_ref()).unwrap_or_else(|e| {
            errors.push(err_at(l.span().start, format!("`lateness`: {e}")));
            0
        }),
    };
    let reference = match &doc.reference {
        None => crate::city::default_reference().map_err(|e| format!("{file}: {e}"))?,
        Some(r) => match Reference::load(&base.join(r.get_ref())) {
            Ok(reference) => reference,
            Err(e) => {
                errors.push(err_at(r.span().start, format!("`reference`: {e}")));
                crate::city::default_reference().map_err(|e| format!("{file}: {e}"))?
            }
        },
    };

    if doc.rules.is_empty() {
        errors.push(format!("{file}: `rules` names no rule file"));
    }
    let rule_paths: Vec<PathBuf> = doc.rules.iter().map(|r| base.join(r.get_ref())).collect();
    let (compiled, sources) = check_files(&rule_paths, &CheckOptions::default());
    if compiled.has_errors() {
        errors.push(format!(
            "{file}: the rules do not check:\n{}",
            render_diagnostics(&compiled.diagnostics, &sources).trim_end()
        ));
    }
    let rule_names: Vec<&str> = compiled.plans.iter().map(|p| p.name.as_str()).collect();

    let ctx = ParseContext::new(reference.grid.clone(), u64::MAX / 2, 0);
    let mut events = Vec::new();
    for (n, table) in doc.events.iter().enumerate() {
        let n = n + 1;
        let mut json = serde_json::Map::new();
        let (mut ts, mut arrival) = (None, None);
        let stream = table
            .get_ref()
            .iter()
            .find(|(k, _)| k.get_ref() == "stream")
            .and_then(|(_, v)| v.get_ref().as_str())
            .and_then(StreamKind::from_name);
        for (key, value) in table.get_ref() {
            let name = key.get_ref().as_str();
            let pos = key.span().start;
            match name {
                "at" | "arrive" => {
                    let Some(text_value) = value.get_ref().as_str() else {
                        errors.push(err_at(
                            value.span().start,
                            format!("event {n}: `{name}` must be a duration like \"90s\""),
                        ));
                        continue;
                    };
                    match (parse_offset(text_value), start) {
                        (Ok(offset), Some(start)) => match offset_time(start, offset) {
                            Some(t) if name == "at" => ts = Some(t),
                            Some(t) => arrival = Some(t),
                            None => errors.push(err_at(
                                value.span().start,
                                format!("event {n}: `{name}` is out of range"),
                            )),
                        },
                        (Err(e), _) => errors.push(err_at(
                            value.span().start,
                            format!("event {n}: `{name}`: {e}"),
                        )),
                        (Ok(_), None) => {}
                    }
                }
                "ts" => errors.push(err_at(
                    pos,
                    format!("event {n}: give the time as `at` (an offset from `start`), not `ts`"),
                )),
                _ => {
                    if let Some(stream) = stream {
                        if name != "stream" && !ingest_fields(stream).contains(&name) {
                            errors.push(err_at(
                                pos,
                                format!(
                                    "event {n}: unknown field `{name}` for stream `{}` (fields: at, arrive, stream, {})",
                                    stream.name(),
                                    ingest_fields(stream).join(", ")
                                ),
                            ));
                            continue;
                        }
                    }
                    match toml_to_json(value.get_ref()) {
                        Ok(j) => {
                            json.insert(name.to_string(), j);
                        }
                        Err(e) => errors.push(err_at(
                            value.span().start,
                            format!("event {n}: field `{name}` {e}"),
                        )),
                    }
                }
            }
        }
        let Some(ts) = ts else {
            if start.is_some() && !table.get_ref().keys().any(|k| k.get_ref() == "at") {
                errors.push(err_at(
                    table.span().start,
                    format!("event {n}: missing `at` (the event's time, an offset from `start`)"),
                ));
            }
            continue;
        };
        json.insert("ts".into(), serde_json::Value::from(ts));
        let line = serde_json::Value::Object(json).to_string();
        match parse_line(line.as_bytes(), &ctx) {
            Ok(event) => events.push((arrival.unwrap_or(ts), event)),
            Err(e) => {
                let pos = e
                    .field
                    .and_then(|f| {
                        table
                            .get_ref()
                            .iter()
                            .find(|(k, _)| k.get_ref() == f)
                            .map(|(_, v)| v.span().start)
                    })
                    .unwrap_or(table.span().start);
                errors.push(err_at(pos, format!("event {n}: {}", e.message)));
            }
        }
    }
    events.sort_by_key(|(arrival, _)| *arrival);

    let mut expectations = Vec::new();
    for (n, expect) in doc.expect.iter().enumerate() {
        let n = n + 1;
        let e = expect.get_ref();
        let time = match parse_offset(e.at.get_ref()) {
            Ok(offset) => start.and_then(|s| offset_time(s, offset)),
            Err(msg) => {
                errors.push(err_at(
                    e.at.span().start,
                    format!("expectation {n}: `at`: {msg}"),
                ));
                None
            }
        };
        let mut alerts = Vec::new();
        for a in &e.alerts {
            let a_ref = a.get_ref();
            let severity = Severity::from_name(a_ref.severity.get_ref());
            if severity.is_none() {
                errors.push(err_at(
                    a_ref.severity.span().start,
                    format!(
                        "expectation {n}: unknown severity `{}` (blue, yellow, orange or red)",
                        a_ref.severity.get_ref()
                    ),
                ));
            }
            let key = match a_ref.key.get_ref() {
                toml::Value::String(s) => Some(s.clone()),
                toml::Value::Integer(i) => Some(i.to_string()),
                _ => {
                    errors.push(err_at(
                        a_ref.key.span().start,
                        format!("expectation {n}: `key` must be a string (a cell number, district code, sensor or segment id)"),
                    ));
                    None
                }
            };
            if !compiled.has_errors() && !rule_names.contains(&a_ref.rule.as_str()) {
                errors.push(err_at(
                    a.span().start,
                    format!(
                        "expectation {n}: no rule `{}` in the rule files (they define: {})",
                        a_ref.rule,
                        rule_names.join(", ")
                    ),
                ));
            }
            if let (Some(severity), Some(key)) = (severity, key) {
                alerts.push(ExpectedAlert {
                    rule: a_ref.rule.clone(),
                    key,
                    severity,
                    values: a_ref.values.clone(),
                    message: a_ref.message.clone(),
                    labels: a_ref.labels.clone(),
                });
            }
        }
        if let Some(time) = time {
            expectations.push(Expectation {
                at_text: e.at.get_ref().clone(),
                at: time,
                alerts,
            });
        }
    }
    expectations.sort_by_key(|e| e.at);
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(Scenario {
        plans: compiled.plans,
        reference,
        lateness_ms,
        events,
        expectations,
    })
}

/// Waits until the engine has reported every change up to and including
/// `t`, applying them to the book.
fn drain_through(
    output: &Receiver<EngineOutput>,
    t: Time,
    through: &mut Time,
    book: &mut AlertBook,
    engine: &Engine,
    reference: &Reference,
) -> Result<(), String> {
    while *through <= t {
        match output.recv_timeout(STEP_TIMEOUT) {
            Ok(EngineOutput::Changes { time, updates }) => {
                book.apply(time, updates, |id| engine.plan(id), reference);
            }
            Ok(EngineOutput::Complete { through: done }) => *through = done,
            Ok(EngineOutput::Stopped { reason }) => {
                return Err(format!("the engine stopped: {reason}"))
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "the engine did not finish time {t} within {} s",
                    STEP_TIMEOUT.as_secs()
                ))
            }
            Err(RecvTimeoutError::Disconnected) => return Err("the engine stopped".into()),
        }
    }
    Ok(())
}

/// Runs a scenario through the engine; returns the alerts active at each
/// expectation, in order.
pub fn run_scenario(s: &Scenario, workers: usize) -> Result<Vec<Vec<ActiveAlert>>, String> {
    let lateness = s.lateness_ms;
    let first = s
        .events
        .iter()
        .flat_map(|(arrival, e)| [arrival.saturating_sub(lateness), e.ts])
        .chain(s.expectations.iter().map(|e| e.at))
        .min()
        .unwrap_or(0);
    let initial = first.saturating_sub(2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let config = EngineConfig {
            workers: workers.max(1),
            window: WindowConfig {
                resolution_ms: 1000,
                keep_history: true,
                min_history_ms: 0,
                ..WindowConfig::default()
            },
            command_capacity: 1024,
            grid: s.reference.grid.clone(),
            update_interval_ms: 1000,
        };
        let (engine, output) = Engine::start(config, initial).map_err(|e| e.to_string())?;
        let result = drive(s, &engine, &output, initial).await;
        engine.shutdown().await;
        result
    })
}

async fn drive(
    s: &Scenario,
    engine: &Engine,
    output: &Receiver<EngineOutput>,
    initial: Time,
) -> Result<Vec<Vec<ActiveAlert>>, String> {
    let e = |e: jingzhi_dataflow::EngineError| e.to_string();
    engine
        .update_reference(s.reference.as_changes())
        .await
        .map_err(e)?;
    for plan in &s.plans {
        engine.add_rule(Arc::new(plan.clone())).await.map_err(e)?;
    }
    let mut book = AlertBook::default();
    let mut through = initial + 1;
    let mut observed = Vec::with_capacity(s.expectations.len());
    let mut expectations = s.expectations.iter().peekable();
    let mut i = 0;
    while i < s.events.len() {
        let arrival = s.events[i].0;
        let mut j = i;
        while j < s.events.len() && s.events[j].0 == arrival {
            j += 1;
        }
        // Expectations before this arrival see the state without it.
        while let Some(x) = expectations.next_if(|x| x.at < arrival) {
            engine.advance(x.at).await.map_err(e)?;
            drain_through(output, x.at, &mut through, &mut book, engine, &s.reference)?;
            observed.push(active_alerts(&book));
        }
        // The events arrive when the clock is just short of their arrival
        // (less the allowed lateness), then the clock moves to it.
        let clock = arrival.saturating_sub(s.lateness_ms);
        engine.advance(clock.saturating_sub(1)).await.map_err(e)?;
        let batch: Vec<Event> = s.events[i..j].iter().map(|(_, ev)| ev.clone()).collect();
        engine.send_events(batch).await.map_err(e)?;
        engine.advance(clock).await.map_err(e)?;
        i = j;
    }
    for x in expectations {
        engine.advance(x.at).await.map_err(e)?;
        drain_through(output, x.at, &mut through, &mut book, engine, &s.reference)?;
        observed.push(active_alerts(&book));
    }
    Ok(observed)
}

/// The book's active alerts, by rule and key.
fn active_alerts(book: &AlertBook) -> Vec<ActiveAlert> {
    let mut active: Vec<ActiveAlert> = book.alerts().into_iter().map(ActiveAlert::from).collect();
    active.sort_by(|a, b| (&a.rule, &a.key).cmp(&(&b.rule, &b.key)));
    active
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= VALUE_TOLERANCE * expected.abs().max(1.0)
}

/// What differs between the expected and the active alerts (empty: pass).
pub fn compare(expected: &[ExpectedAlert], active: &[ActiveAlert]) -> Vec<String> {
    let mut problems = Vec::new();
    for x in expected {
        let Some(a) = active.iter().find(|a| a.rule == x.rule && a.key == x.key) else {
            problems.push(format!("missing: {} {} {}", x.rule, x.key, x.severity));
            continue;
        };
        if a.severity != x.severity {
            problems.push(format!(
                "{} {}: severity is {}, expected {}",
                x.rule, x.key, a.severity, x.severity
            ));
        }
        for (name, want) in &x.values {
            match a.values.get(name) {
                None => problems.push(format!(
                    "{} {}: has no value `{name}` (it has: {})",
                    x.rule,
                    x.key,
                    a.values.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
                Some(None) => problems.push(format!(
                    "{} {}: `{name}` is empty, expected {want}",
                    x.rule, x.key
                )),
                Some(Some(got)) if !close(*got, *want) => problems.push(format!(
                    "{} {}: `{name}` is {got}, expected {want}",
                    x.rule, x.key
                )),
                Some(Some(_)) => {}
            }
        }
        if let Some(m) = &x.message {
            if *m != a.message {
                problems.push(format!(
                    "{} {}: message is {:?}, expected {m:?}",
                    x.rule, x.key, a.message
                ));
            }
        }
        if let Some(labels) = &x.labels {
            if *labels != a.labels {
                problems.push(format!(
                    "{} {}: labels are{}, expected{}",
                    x.rule,
                    x.key,
                    labels_text(&a.labels),
                    labels_text(labels)
                ));
            }
        }
    }
    for a in active {
        if !expected.iter().any(|x| x.rule == a.rule && x.key == a.key) {
            problems.push(format!("unexpected: {} {} {}", a.rule, a.key, a.severity));
        }
    }
    problems
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        " {}".to_string()
    } else {
        values_text(labels, |v| format!("{v:?}"))
    }
}

fn values_text<T>(values: &BTreeMap<String, T>, show: impl Fn(&T) -> String) -> String {
    if values.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = values
        .iter()
        .map(|(k, v)| format!("{k} = {}", show(v)))
        .collect();
    format!(" {{{}}}", inner.join(", "))
}

/// The report of one failed expectation.
pub fn describe_failure(
    file: &str,
    expect: &Expectation,
    active: &[ActiveAlert],
    problems: &[String],
) -> String {
    let mut out = format!("{file}: expectation at {}: ", expect.at_text);
    if problems.len() == 1 {
        let _ = writeln!(out, "{}", problems[0]);
    } else {
        let _ = writeln!(out, "{} problems", problems.len());
        for p in problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    let _ = writeln!(out, "  expected:");
    if expect.alerts.is_empty() {
        let _ = writeln!(out, "    (no alerts)");
    }
    for x in &expect.alerts {
        let _ = write!(
            out,
            "    {} {} {}{}",
            x.rule,
            x.key,
            x.severity,
            values_text(&x.values, |v| v.to_string())
        );
        if let Some(labels) = &x.labels {
            let _ = write!(out, " labels{}", labels_text(labels));
        }
        if let Some(m) = &x.message {
            let _ = write!(out, " {m:?}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "  active alerts:");
    if active.is_empty() {
        let _ = writeln!(out, "    (none)");
    }
    for a in active {
        let labels = if a.labels.is_empty() {
            String::new()
        } else {
            format!(" labels{}", labels_text(&a.labels))
        };
        let _ = writeln!(
            out,
            "    {} {} {}{}{labels} {:?}",
            a.rule,
            a.key,
            a.severity,
            values_text(&a.values, |v| v
                .map_or("empty".to_string(), |x| x.to_string())),
            a.message
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const WATER: &str = r#"rule water "积水" {
  severity orange
  group by cell
  let water = max(sensor.value where kind == "water_level") over 5m
  when water > 0.25
}
"#;

    #[test]
    fn offsets_may_be_negative() {
        assert_eq!(parse_offset("90s"), Ok(90_000));
        assert_eq!(parse_offset("-1m"), Ok(-60_000));
        assert!(parse_offset("soon").is_err());
    }

    #[test]
    fn a_passing_file_passes_and_a_wrong_expectation_fails() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "water.rules", WATER);
        let good = write(
            dir.path(),
            "good.test.toml",
            r#"
rules = ["water.rules"]
start = "2026-07-15T08:00:00+08:00"
[[events]]
at = "0s"
stream = "sensor"
sensor_id = "wl-1"
kind = "water_level"
cell = 5050
value = 0.3
[[expect]]
at = "1m"
alerts = [{ rule = "water", key = "5050", severity = "orange", values = { water = 0.3 } }]
[[expect]]
at = "5m"
alerts = []
"#,
        );
        let r = run_file(&good, 1);
        assert_eq!(r.error, None);
        assert_eq!(r.failures, Vec::<String>::new());
        assert_eq!(r.expectations, 2);

        let bad = write(
            dir.path(),
            "bad.test.toml",
            &std::fs::read_to_string(&good)
                .unwrap()
                .replace("water = 0.3 }", "water = 0.4 }"),
        );
        let r = run_file(&bad, 1);
        assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
        assert!(
            r.failures[0].contains("expectation at 1m: water 5050: `water` is 0.3, expected 0.4"),
            "{}",
            r.failures[0]
        );
    }

    #[test]
    fn problems_are_reported_with_positions() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "water.rules", WATER);
        let f = write(
            dir.path(),
            "x.test.toml",
            "rules = [\"water.rules\"]\nstart = \"2026-07-15T08:00:00+08:00\"\n[[events]]\nat = \"0s\"\nstream = \"sensor\"\nsensor_id = \"a\"\nkind = \"water_level\"\ncell = 1\nvalue = \"high\"\n",
        );
        let e = run_file(&f, 1).error.unwrap();
        assert!(
            e.ends_with("x.test.toml:9:9: event 1: field `value`: expected a number, got a string"),
            "{e}"
        );
        let f = write(
            dir.path(),
            "y.test.toml",
            "rules = [\"water.rules\"]\nstart = \"2026-07-15T08:00:00+08:00\"\nstrat = 1\n",
        );
        let e = run_file(&f, 1).error.unwrap();
        assert!(e.contains("y.test.toml:3:1: unknown field `strat`"), "{e}");
    }
}
