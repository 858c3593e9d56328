//! Simulations on file: `jingzhi simulate` writes an NDJSON event file with
//! its reference data beside it (Realistic schedule), or the W1 benchmark
//! workload's shape (the distributions of `shared/bench/gen_w1.py`).
//!
//! Events are written as they are made, a slice of event time at a time,
//! so a file of tens of millions of events needs no more memory than the
//! city and one slice.

use super::rng::Rng;
use super::{City, CityChoice, ScenarioRecord, Schedule, Simulator};
use jingzhi_rules::event::{Body, Event};
use jingzhi_rules::time::format_rfc3339;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// About this many events are made before they are written out.
const EVENTS_PER_SLICE: f64 = 50_000.0;
/// `--rate` may not make any source report more often than this on
/// average, ms.
const SHORTEST_MEAN_INTERVAL_MS: u64 = 100;
/// Nor so rarely that the city falls silent for days.
const LOWEST_RATE: f64 = 0.01;

/// What [`write_simulation`] is asked to write.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulationOptions {
    pub city: CityChoice,
    pub seed: u64,
    /// Number of events to write.
    pub events: usize,
    /// Event time of the start, ms since the epoch.
    pub start_ms: u64,
    /// Average events per second of event time; `None`: the city's natural
    /// rate.
    pub rate: Option<f64>,
}

impl SimulationOptions {
    /// The default city at its natural rate.
    pub fn default_city(seed: u64, events: usize, start_ms: u64) -> SimulationOptions {
        SimulationOptions {
            city: CityChoice::Default,
            seed,
            events,
            start_ms,
            rate: None,
        }
    }
}

/// What [`write_simulation`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulationSummary {
    pub events: usize,
    pub sensor: usize,
    pub traffic: usize,
    pub incident: usize,
    /// Sensor events by `kind`.
    pub sensor_kinds: BTreeMap<String, usize>,
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
    /// Scenarios that had started by the last event.
    pub scenarios: Vec<ScenarioRecord>,
    /// The reference file written next to the events.
    pub reference: PathBuf,
    /// Share of the city's sensors and road segments that report: below 1
    /// when few events were asked for, so that they still span an hour.
    pub sampled: f64,
    /// `default` or `beijing`.
    pub city: &'static str,
    pub start_ms: u64,
    /// The rate asked for with `--rate`, events/s.
    pub requested_rate: Option<f64>,
    /// The (sampled) city's rate at its natural cadence, events/s.
    pub natural_rate: f64,
}

impl SimulationSummary {
    fn new(
        reference: PathBuf,
        sampled: f64,
        options: &SimulationOptions,
        natural_rate: f64,
    ) -> SimulationSummary {
        SimulationSummary {
            events: 0,
            sensor: 0,
            traffic: 0,
            incident: 0,
            sensor_kinds: BTreeMap::new(),
            first_ts: None,
            last_ts: None,
            scenarios: Vec::new(),
            reference,
            sampled,
            city: options.city.name(),
            start_ms: options.start_ms,
            requested_rate: options.rate,
            natural_rate,
        }
    }

    /// Events per second of event time, from the start to the last event.
    pub fn achieved_rate(&self) -> Option<f64> {
        let last = self.last_ts?;
        let span_s = last.checked_sub(self.start_ms)? as f64 / 1000.0;
        (span_s > 0.0).then(|| self.events as f64 / span_s)
    }

    fn count(&mut self, event: &Event) {
        self.events += 1;
        match &event.body {
            Body::Sensor(s) => {
                self.sensor += 1;
                // Looked up by `&str` first: no allocation per event.
                match self.sensor_kinds.get_mut(s.kind.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        self.sensor_kinds.insert(s.kind.as_str().to_string(), 1);
                    }
                }
            }
            Body::Traffic(_) => self.traffic += 1,
            Body::Incident(_) => self.incident += 1,
        }
        self.first_ts.get_or_insert(event.ts);
        self.last_ts = Some(event.ts);
    }
}

impl fmt::Display for SimulationSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events of the {} city (sensor {}, traffic {}, incident {})",
            self.events, self.city, self.sensor, self.traffic, self.incident
        )?;
        if let (Some(a), Some(b)) = (self.first_ts, self.last_ts) {
            write!(f, " from {} to {}", format_rfc3339(a), format_rfc3339(b))?;
        }
        if let Some(rate) = self.achieved_rate() {
            write!(f, "; {rate:.1} events/s of event time")?;
            match self.requested_rate {
                Some(r) => write!(f, " (--rate {r})")?,
                None => write!(f, " (natural rate {:.1})", self.natural_rate)?,
            }
        }
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &self.scenarios {
            *kinds.entry(s.kind.name()).or_default() += 1;
        }
        write!(f, "; {} scenarios", self.scenarios.len())?;
        if !kinds.is_empty() {
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            write!(f, " ({})", kinds.join(", "))?;
        }
        if self.sampled < 1.0 {
            write!(
                f,
                "; {:.1} % of sensors and segments report, to span an hour",
                self.sampled * 100.0
            )?;
        }
        write!(f, "; reference data in {}", self.reference.display())
    }
}

/// `<dir>/<stem>.reference.json` for `<dir>/<stem>.<ext>`.
pub fn reference_path_for(events: &Path) -> PathBuf {
    let stem = events.file_stem().map_or_else(
        || "events".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    events.with_file_name(format!("{stem}.reference.json"))
}

/// Writes `options.events` NDJSON lines of the chosen city (Realistic
/// schedule) from `options.start_ms` to `out`, and the city's reference
/// data to `<out stem>.reference.json` beside it. Errors are messages for
/// the user.
///
/// At the default city's natural rate (about 100,000 events per simulated
/// hour) the file spans `events / 100,000` hours; when fewer events are
/// asked for than one hour holds, only a sample of its sensors and segments
/// report, so that the file still spans at least an hour. With `--rate`,
/// and for the full-scale city, every source reports and the file spans
/// `events / rate` seconds.
pub fn write_simulation(
    options: &SimulationOptions,
    out: &Path,
) -> Result<SimulationSummary, String> {
    let SimulationOptions {
        seed,
        events,
        start_ms,
        ..
    } = *options;
    let full = options.city.build(seed);
    let sampled = if options.city == CityChoice::Default && options.rate.is_none() {
        sample_for_an_hour(&full, seed, events, start_ms)
    } else {
        1.0
    };
    let city = full.sampled(sampled, seed);
    let natural_rate = city.natural_rate();
    let interval_scale = match options.rate {
        Some(rate) => interval_scale_for(&city, rate)?,
        None => 1.0,
    };
    let expected_rate = natural_rate / interval_scale;
    let cannot_write = |path: &Path, e: io::Error| format!("cannot write {}: {e}", path.display());

    let reference = reference_path_for(out);
    write_reference(&city, &reference).map_err(|e| cannot_write(&reference, e))?;

    let file = File::create(out).map_err(|e| cannot_write(out, e))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let mut summary = SimulationSummary::new(reference, sampled, options, natural_rate);
    let mut sim =
        Simulator::with_interval_scale(&city, seed, start_ms, Schedule::Realistic, interval_scale);
    // Slices of about EVENTS_PER_SLICE events bound the memory held; how
    // time is sliced does not change the events.
    let slice_ms = ((EVENTS_PER_SLICE / expected_rate * 1000.0) as u64).clamp(SECOND, 10 * MINUTE);
    let mut batch = Vec::new();
    let mut line = String::with_capacity(256);
    let mut until = start_ms;
    // The city always reports something; the bound only guards a city with
    // nothing in it.
    let give_up = start_ms.saturating_add(366 * 24 * HOUR);
    while summary.events < events && until < give_up {
        until = until.saturating_add(slice_ms);
        sim.advance_to(until, &mut batch);
        for event in batch.drain(..) {
            if summary.events == events {
                break;
            }
            line.clear();
            event.write_json(&mut line);
            writer
                .write_all(line.as_bytes())
                .map_err(|e| cannot_write(out, e))?;
            summary.count(&event);
        }
    }
    writer.flush().map_err(|e| cannot_write(out, e))?;
    let last = summary.last_ts.unwrap_or(start_ms);
    summary.scenarios = sim
        .scenario_log()
        .iter()
        .filter(|s| s.starts_ms <= last)
        .cloned()
        .collect();
    Ok(summary)
}

/// The factor on every reporting interval that makes `city` average `rate`
/// events per second, or why that rate cannot be had.
pub fn interval_scale_for(city: &City, rate: f64) -> Result<f64, String> {
    let natural = city.natural_rate();
    if !(rate.is_finite() && rate >= LOWEST_RATE) {
        return Err(format!(
            "--rate {rate}: give at least {LOWEST_RATE} events per second"
        ));
    }
    let scale = natural / rate;
    let fastest = city.shortest_interval_ms() as f64 * scale;
    if fastest < SHORTEST_MEAN_INTERVAL_MS as f64 {
        let most = natural * city.shortest_interval_ms() as f64 / SHORTEST_MEAN_INTERVAL_MS as f64;
        return Err(format!(
            "--rate {rate}: this city can make at most {most:.0} events/s (its {} sources would otherwise report more often than every {SHORTEST_MEAN_INTERVAL_MS} ms)",
            city.sensors.len() + city.segments.len()
        ));
    }
    Ok(scale)
}

/// Writes the city's reference file: pretty JSON, as the default city
/// always had it (a few hundred KB); the full-scale city's members are
/// written one entry a line, so its tens of thousands of sensors, segments
/// and cells stay a few MB and readable with `grep`.
pub fn write_reference(city: &City, path: &Path) -> io::Result<()> {
    let file = city.reference_file();
    let mut out = BufWriter::new(File::create(path)?);
    if city.sensors.len() + city.segments.len() <= 10_000 {
        serde_json::to_writer_pretty(&mut out, &file).map_err(io::Error::other)?;
    } else {
        write_reference_by_lines(&mut out, &file)?;
    }
    out.write_all(b"\n")?;
    out.flush()
}

/// A reference file with one district, cell list, sensor or segment a line.
fn write_reference_by_lines(
    out: &mut impl Write,
    file: &jingzhi_rules::space::ReferenceFile,
) -> io::Result<()> {
    fn member<T: serde::Serialize>(
        out: &mut impl Write,
        name: &str,
        items: &[T],
        last: bool,
    ) -> io::Result<()> {
        write!(out, "  \"{name}\": [")?;
        for (i, item) in items.iter().enumerate() {
            out.write_all(if i == 0 { b"\n    " } else { b",\n    " })?;
            serde_json::to_writer(&mut *out, item).map_err(io::Error::other)?;
        }
        if !items.is_empty() {
            out.write_all(b"\n  ")?;
        }
        out.write_all(if last { b"]\n" } else { b"],\n" })
    }
    out.write_all(b"{\n  \"grid\": ")?;
    serde_json::to_writer(&mut *out, &file.grid).map_err(io::Error::other)?;
    out.write_all(b",\n")?;
    member(out, "districts", &file.districts, false)?;
    member(out, "cells", &file.cells, false)?;
    member(out, "sensors", &file.sensors, false)?;
    member(out, "segments", &file.segments, true)?;
    out.write_all(b"}")
}

/// The share of sensors and segments to keep so that the first hour holds
/// no more than `events` events: measured by simulating the hour, since
/// scenarios add reports of their own.
fn sample_for_an_hour(city: &City, seed: u64, events: usize, start_ms: u64) -> f64 {
    let mut keep = 1.0;
    for _ in 0..6 {
        let in_first_hour = count_first_hour(&city.sampled(keep, seed), seed, start_ms);
        if in_first_hour <= events {
            break;
        }
        keep *= events as f64 / in_first_hour as f64 * 0.97;
    }
    keep
}

fn count_first_hour(city: &City, seed: u64, start_ms: u64) -> usize {
    let mut sim = Simulator::new(city, seed, start_ms, Schedule::Realistic);
    let mut batch = Vec::new();
    let mut count = 0;
    for step in 1..=6 {
        sim.advance_to(start_ms + step * 10 * MINUTE, &mut batch);
        count += batch.len();
        batch.clear();
    }
    count
}

/// W1's start: 2026-01-01T00:00:00Z.
const W1_START: u64 = 1_767_225_600_000;
const W1_SPAN: u64 = HOUR;
const W1_CELLS: u32 = 10_000;
const W1_HOT_SHARE: f64 = 0.02;
const W1_SENSOR_KINDS: [&str; 4] = ["water_level", "rainfall", "pm25", "gas"];
const W1_INCIDENT_KINDS: [&str; 4] = ["accident", "flood", "fire", "crowd"];

/// What [`write_w1_shape`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct W1Summary {
    pub events: usize,
    pub sensor: usize,
    pub traffic: usize,
    pub incident: usize,
    pub hot_cells: usize,
}

impl fmt::Display for W1Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sensor={} traffic={} incident={} total={} hot_cells={}",
            self.sensor, self.traffic, self.incident, self.events, self.hot_cells
        )
    }
}

/// Writes the W1 benchmark workload's shape to `out`: `events` lines over
/// one hour from 2026-01-01T00:00:00Z on cells 0..9999 (the default grid's
/// cells), 60 % sensor / 35 % traffic / 5 % incident, 2 % hot cells (high
/// water, slow traffic, 30 % of incidents), speeds in multiples of 0.25 km/h,
/// each line with its `stream`, in time order. The distributions are those
/// of `gen_w1.py`; the random sequence is not Python's, so the file is not
/// byte-identical to the Python generator's.
pub fn write_w1_shape(seed: u64, events: usize, out: &Path) -> io::Result<W1Summary> {
    let mut rng = Rng::for_stream(seed, "w1");
    let mut cells: Vec<u32> = (0..W1_CELLS).collect();
    let hot_count = (f64::from(W1_CELLS) * W1_HOT_SHARE) as usize;
    // A partial Fisher–Yates shuffle draws the hot cells without repeats.
    for i in 0..hot_count {
        let j = i + rng.index(cells.len() - i);
        cells.swap(i, j);
    }
    let mut hot: Vec<u32> = cells[..hot_count].to_vec();
    hot.sort_unstable();
    let mut is_hot = vec![false; W1_CELLS as usize];
    for &c in &hot {
        is_hot[c as usize] = true;
    }

    let mut writer = BufWriter::with_capacity(1 << 20, File::create(out)?);
    let mut summary = W1Summary {
        events,
        sensor: 0,
        traffic: 0,
        incident: 0,
        hot_cells: hot.len(),
    };
    let step = W1_SPAN as f64 / events.max(1) as f64;
    let mut line = String::with_capacity(160);
    for i in 0..events {
        use std::fmt::Write as _;
        line.clear();
        let ts = W1_START + ((i as f64 + rng.unit()) * step) as u64;
        let u = rng.unit();
        if u < 0.60 {
            let cell = rng.below(u64::from(W1_CELLS)) as u32;
            let k = rng.index(4);
            let value = match k {
                0 if is_hot[cell as usize] => 0.2 + 0.6 * rng.unit(),
                0 => 0.25 * rng.unit(),
                1 => 50.0 * rng.unit() * rng.unit(),
                2 => 5.0 + 150.0 * rng.unit(),
                _ => 1000.0 * rng.unit(),
            };
            let _ = writeln!(
                line,
                r#"{{"stream":"sensor","ts":{ts},"sensor_id":"s{cell}-{k}","kind":"{}","cell":{cell},"value":{value:.3}}}"#,
                W1_SENSOR_KINDS[k]
            );
            summary.sensor += 1;
        } else if u < 0.95 {
            let cell = rng.below(u64::from(W1_CELLS)) as u32;
            // Quarter-km/h steps keep sums exact in any order:
            // 3.00–25.00 on hot cells, 20.00–80.00 elsewhere.
            let quarters = if is_hot[cell as usize] {
                12 + rng.below(89)
            } else {
                80 + rng.below(241)
            };
            let speed = quarters as f64 * 0.25;
            let flow = rng.between(5, 120);
            let lane = rng.below(3);
            let _ = writeln!(
                line,
                r#"{{"stream":"traffic","ts":{ts},"segment_id":"seg{cell}-{lane}","cell":{cell},"speed_kmh":{speed:?},"flow":{flow}}}"#
            );
            summary.traffic += 1;
        } else {
            let cell = if rng.chance(0.30) {
                hot[rng.index(hot.len())]
            } else {
                rng.below(u64::from(W1_CELLS)) as u32
            };
            let kind = W1_INCIDENT_KINDS[rng.index(4)];
            let severity = 1 + rng.below(4);
            let _ = writeln!(
                line,
                r#"{{"stream":"incident","ts":{ts},"incident_id":"inc{i}","kind":"{kind}","cell":{cell},"severity":{severity}}}"#
            );
            summary.incident += 1;
        }
        writer.write_all(line.as_bytes())?;
    }
    writer.flush()?;
    Ok(summary)
}
