//! Simulations on file: `jingzhi simulate` writes an NDJSON event file with
//! its reference data beside it (Realistic schedule), or the W1 benchmark
//! workload's shape (the distributions of `shared/bench/gen_w1.py`).

use super::city::beijing_city;
use super::rng::Rng;
use super::{City, ScenarioRecord, Schedule, Simulator};
use jingzhi_rules::event::{Body, Event};
use jingzhi_rules::time::format_rfc3339;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

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
}

impl SimulationSummary {
    fn new(reference: PathBuf, sampled: f64) -> SimulationSummary {
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
        }
    }

    fn count(&mut self, event: &Event) {
        self.events += 1;
        match &event.body {
            Body::Sensor(s) => {
                self.sensor += 1;
                *self
                    .sensor_kinds
                    .entry(s.kind.as_str().to_string())
                    .or_default() += 1;
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
            "{} events (sensor {}, traffic {}, incident {})",
            self.events, self.sensor, self.traffic, self.incident
        )?;
        if let (Some(a), Some(b)) = (self.first_ts, self.last_ts) {
            write!(f, " from {} to {}", format_rfc3339(a), format_rfc3339(b))?;
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

/// Writes `events` NDJSON lines of the simulated Beijing (Realistic
/// schedule) from `start_ms` to `out`, and the city's reference data to
/// `<out stem>.reference.json` beside it.
///
/// At the city's natural rate (about 100,000 events per simulated hour) the
/// file spans `events / 100,000` hours; when fewer events are asked for than
/// one hour holds, only a sample of the sensors and segments report, so that
/// the file still spans at least an hour.
pub fn write_simulation(
    seed: u64,
    events: usize,
    start_ms: u64,
    out: &Path,
) -> io::Result<SimulationSummary> {
    let full = beijing_city(seed);
    let sampled = sample_for_an_hour(&full, seed, events, start_ms);
    let city = full.sampled(sampled, seed);
    let reference = reference_path_for(out);
    let mut json =
        serde_json::to_string_pretty(&city.reference_file()).map_err(io::Error::other)?;
    json.push('\n');
    std::fs::write(&reference, json)?;

    let mut writer = BufWriter::with_capacity(1 << 20, File::create(out)?);
    let mut summary = SimulationSummary::new(reference, sampled);
    let mut sim = Simulator::new(&city, seed, start_ms, Schedule::Realistic);
    let mut batch = Vec::new();
    let mut line = String::with_capacity(256);
    let mut until = start_ms;
    // The city always reports something; the bound only guards a city with
    // nothing in it.
    let give_up = start_ms.saturating_add(366 * 24 * HOUR);
    while summary.events < events && until < give_up {
        until = until.saturating_add(10 * MINUTE);
        sim.advance_to(until, &mut batch);
        for event in batch.drain(..) {
            if summary.events == events {
                break;
            }
            line.clear();
            event.write_json(&mut line);
            writer.write_all(line.as_bytes())?;
            summary.count(&event);
        }
    }
    writer.flush()?;
    let last = summary.last_ts.unwrap_or(start_ms);
    summary.scenarios = sim
        .scenario_log()
        .iter()
        .filter(|s| s.starts_ms <= last)
        .cloned()
        .collect();
    Ok(summary)
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
