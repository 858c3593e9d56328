//! The built-in city simulator: a plausible Beijing ([`city`]) whose
//! sensors, road segments and incident reports produce the three event
//! streams, with staged situations ([`scenario`]) that make the sample rules
//! fire and then clear by themselves. It feeds `jingzhi demo` live and
//! writes files for backtests and benchmarks ([`batch`]).
//!
//! Everything is driven by one seeded generator and a queue of timed tasks
//! (the next report of each source, planned incidents, scenario starts), so
//! one seed gives the same events however the caller slices time.
//!
//! Background behaviour, per source, at the default city's natural cadence
//! (`--rate` scales every reporting interval by one factor; see
//! [`Simulator::with_interval_scale`]):
//!
//! | source | normally | when a scenario touches it |
//! |---|---|---|
//! | water level (m) | every 15 min, 0–0.05 | every 1–2 min while wet; 0.3–0.6 at flooded underpasses |
//! | rainfall (mm since the last report) | every 5 min, 0 | intensity × 5 min |
//! | PM2.5 (µg/m³) | hourly ± 5 min, 20–60 | above 75 across a district |
//! | gas (%LEL) | every minute, 0–5 | every 15 s, past 25 |
//! | traffic (km/h) | every minute; expressway 60–90, arterial 35–55, secondary 25–45, lower at rush hours | below 15–20 |
//! | incidents | a dozen an hour across the city | floods, gas leak, crowd reports |

pub mod batch;
pub mod city;
mod queue;
mod rng;
pub mod scenario;
mod text;

#[cfg(test)]
mod tests;

pub use batch::{
    write_simulation, write_w1_shape, SimulationOptions, SimulationSummary, W1Summary,
};
pub use city::{beijing_city, full_scale_beijing, Cadence, City, CityPlan, RoadClass, SensorKind};
pub use scenario::{ScenarioKind, ScenarioRecord};

use city::round_to;
use jingzhi_rules::event::{Body, Event, Incident, Location, Sensor, Traffic};
use jingzhi_rules::smallstr::SmallStr;
use jingzhi_rules::space::CellId;
use jingzhi_rules::sym::Sym;
use jingzhi_rules::time::format_rfc3339;
use queue::{CalendarQueue, Due};
use rng::Rng;
use scenario::{PlannedIncident, Scenario};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
/// Beijing time is UTC+8 all year.
const BEIJING_OFFSET_MS: u64 = 8 * HOUR;

/// Share of sensor events that carry only their `sensor_id`, as legacy
/// gateways send them; the engine locates them through reference data.
const ID_ONLY_SENSOR_SHARE: f64 = 0.1;

/// Which city `jingzhi simulate` (and the demo) plays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CityChoice {
    /// The plausible Beijing on the default grid ([`beijing_city`]).
    #[default]
    Default,
    /// Beijing at full scale: 500 m cells, about 50,000 sources
    /// ([`full_scale_beijing`]).
    Beijing,
}

impl CityChoice {
    pub fn name(self) -> &'static str {
        match self {
            CityChoice::Default => "default",
            CityChoice::Beijing => "beijing",
        }
    }

    pub fn build(self, seed: u64) -> City {
        match self {
            CityChoice::Default => beijing_city(seed),
            CityChoice::Beijing => full_scale_beijing(seed),
        }
    }
}

impl std::str::FromStr for CityChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<CityChoice, String> {
        match s {
            "default" => Ok(CityChoice::Default),
            "beijing" => Ok(CityChoice::Beijing),
            other => Err(format!(
                "unknown city `{other}`: the cities are `default` (about 2,000 sources on 1.8 km cells) and `beijing` (the municipality at full scale: about 50,000 sources on 500 m cells)"
            )),
        }
    }
}

/// How scenarios are spread over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// For the live demo: every ten minutes a cycle of all five scenarios
    /// at new places, due within 20 s of the cycle start and overlapping,
    /// so that alerts of all four colours are up within a minute of start;
    /// each lasts 2–4 minutes and passes.
    Demo,
    /// For batch files: scenarios at plausible rates (a storm every ~8 h, a
    /// gas leak every ~4 h, a jam every hour, …) with plausible durations;
    /// the first of each kind falls within the first hour.
    Realistic,
}

/// The simulator. Create it with [`Simulator::new`], then call
/// [`Simulator::advance_to`] with increasing times.
pub struct Simulator {
    city: City,
    schedule: Schedule,
    start_ms: u64,
    /// Events before this time have been produced.
    clock: u64,
    rng: Rng,
    queue: CalendarQueue<Pending>,
    next_seq: u64,
    /// Sensors first, then segments, in the city's order.
    sources: Vec<Source>,
    index: CityIndex,
    scenarios: Vec<Scenario>,
    log: Vec<ScenarioRecord>,
    /// Places recently used per scenario kind, so demo cycles move around.
    recent: BTreeMap<ScenarioKind, VecDeque<u64>>,
    /// Districts already given a scenario in the demo cycle being planned.
    cycle_districts: BTreeSet<usize>,
    incidents_reported: u64,
    /// Every background reporting interval is multiplied by this (1 at the
    /// city's natural rate).
    interval_scale: f64,
    /// Each sensor's own offset from the typical reading.
    sensor_bias: Vec<f64>,
    /// Each district's typical PM2.5.
    district_pm: Vec<f64>,
    next_retirement: u64,
    syms: Syms,
}

#[derive(Clone, Debug)]
struct Source {
    next_due: u64,
    /// Bumped whenever the next report is rescheduled; queued reports of an
    /// older generation are stale.
    generation: u32,
    /// The id its events carry, made once. It sits beside `generation`,
    /// which every report reads first: sources report in no particular
    /// order, and one cache line per report instead of two saves a good
    /// part of the time spent writing the full-scale city.
    id: SmallStr,
}

#[derive(Clone, Debug, Default)]
struct CityIndex {
    segments_by_cell: BTreeMap<CellId, Vec<usize>>,
    sensors_by_cell: BTreeMap<CellId, Vec<usize>>,
}

struct Syms {
    sensor_kind: [Sym; 4],
    sensor_unit: [Sym; 4],
}

#[derive(Debug)]
enum Task {
    Report {
        source: usize,
        generation: u32,
    },
    /// Make a source report now, whatever its cadence (an alarm, a
    /// threshold crossing).
    Wake {
        source: usize,
    },
    Incident(Box<PlannedIncident>),
    /// Plan the demo cycle whose alerts are due from `base`.
    DemoCycle {
        base: u64,
    },
    /// Start a scenario of this kind (Realistic schedule).
    Scenario(ScenarioKind),
    BackgroundIncident,
}

#[derive(Debug)]
struct Pending {
    ts: u64,
    seq: u64,
    task: Task,
}

impl Due for Pending {
    fn due(&self) -> u64 {
        self.ts
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.ts, self.seq).cmp(&(other.ts, other.seq))
    }
}

fn sym(text: &str) -> Sym {
    Sym::intern(text).expect("simulator names are short, non-empty words")
}

fn kind_slot(kind: SensorKind) -> usize {
    match kind {
        SensorKind::WaterLevel => 0,
        SensorKind::Rainfall => 1,
        SensorKind::Pm25 => 2,
        SensorKind::GasLel => 3,
    }
}

/// Hour of the day in Beijing, 0.0–24.0.
fn beijing_hour(t: u64) -> f64 {
    ((t + BEIJING_OFFSET_MS) % (24 * HOUR)) as f64 / HOUR as f64
}

/// Traffic demand over the day as a share of the peak, by Beijing hour.
fn demand(t: u64) -> f64 {
    const BY_HOUR: [f64; 25] = [
        0.25, 0.18, 0.15, 0.14, 0.16, 0.28, 0.55, 0.85, 1.0, 0.9, 0.78, 0.75, 0.72, 0.72, 0.74,
        0.78, 0.86, 0.98, 1.0, 0.85, 0.7, 0.58, 0.46, 0.34, 0.25,
    ];
    let h = beijing_hour(t);
    let i = (h as usize).min(23);
    let f = h - i as f64;
    BY_HOUR[i] * (1.0 - f) + BY_HOUR[i + 1] * f
}

/// Speed multiplier for the morning (around 8:00) and evening (around
/// 18:00) rush hours.
fn rush_factor(t: u64) -> f64 {
    let h = beijing_hour(t);
    let bell = |centre: f64, width: f64| (-((h - centre) / width).powi(2)).exp();
    1.0 - 0.22 * bell(8.0, 1.1).max(bell(18.0, 1.3))
}

impl Simulator {
    /// A simulator of `city` whose first events are at `start_ms`, at the
    /// city's natural rate.
    pub fn new(city: &City, seed: u64, start_ms: u64, schedule: Schedule) -> Simulator {
        Simulator::with_interval_scale(city, seed, start_ms, schedule, 1.0)
    }

    /// A simulator whose sources report `interval_scale` times as far apart
    /// as at the city's natural cadence (0.5: twice as often), so that the
    /// same city can be played at several densities. Background incidents
    /// scale with them; when scenarios start and how long they last does
    /// not. Rain gauges report the rain since their previous report, so an
    /// hour's sum is the hour's rain at any scale. The scale is a positive
    /// number; [`batch::interval_scale_for`] makes it from a rate and
    /// refuses rates a city cannot make.
    pub fn with_interval_scale(
        city: &City,
        seed: u64,
        start_ms: u64,
        schedule: Schedule,
        interval_scale: f64,
    ) -> Simulator {
        let mut index = CityIndex::default();
        for (i, s) in city.segments.iter().enumerate() {
            index.segments_by_cell.entry(s.cell).or_default().push(i);
        }
        for (i, s) in city.sensors.iter().enumerate() {
            index.sensors_by_cell.entry(s.cell).or_default().push(i);
        }
        let syms = Syms {
            sensor_kind: SensorKind::ALL.map(|k| sym(k.name())),
            sensor_unit: SensorKind::ALL.map(|k| sym(k.unit())),
        };
        let mut rng = Rng::for_stream(seed, "simulator");
        let sensor_bias = city
            .sensors
            .iter()
            .map(|s| match s.kind {
                SensorKind::WaterLevel => rng.uniform(0.0, 0.03),
                SensorKind::Rainfall => 0.0,
                SensorKind::Pm25 => rng.uniform(-6.0, 6.0),
                SensorKind::GasLel => rng.uniform(0.0, 2.0),
            })
            .collect();
        let district_pm = city
            .districts
            .iter()
            .map(|_| rng.uniform(28.0, 42.0))
            .collect();
        let source_count = city.sensors.len() + city.segments.len();
        let mut sim = Simulator {
            city: city.clone(),
            schedule,
            start_ms,
            clock: start_ms,
            rng,
            queue: CalendarQueue::new(),
            next_seq: 0,
            sources: city
                .sensors
                .iter()
                .map(|s| s.id)
                .chain(city.segments.iter().map(|s| s.id))
                .map(|id| Source {
                    next_due: u64::MAX,
                    generation: 0,
                    id: SmallStr::from(id),
                })
                .collect(),
            index,
            scenarios: Vec::new(),
            log: Vec::new(),
            recent: BTreeMap::new(),
            cycle_districts: BTreeSet::new(),
            incidents_reported: 0,
            interval_scale,
            sensor_bias,
            district_pm,
            next_retirement: start_ms,
            syms,
        };
        // Scenario planning comes first so that, at equal times, it happens
        // before the reports it affects.
        match schedule {
            Schedule::Demo => sim.push(start_ms, Task::DemoCycle { base: start_ms }),
            Schedule::Realistic => {
                for kind in ScenarioKind::ALL {
                    let at = sim.first_realistic(kind);
                    sim.push(at, Task::Scenario(kind));
                }
            }
        }
        let first_incident = start_ms + sim.background_incident_gap();
        sim.push(first_incident, Task::BackgroundIncident);
        // First reports are spread over each source's normal interval, so
        // the rate is steady from the first minute.
        for source in 0..source_count {
            let cadence = &sim.city.cadence;
            let interval = match sim.sensor_kind(source) {
                Some(kind) => cadence.sensor(kind),
                None => cadence.traffic,
            };
            let period = sim.scaled(city::middle(interval));
            let at = start_ms + sim.rng.below(period);
            sim.schedule_report(source, at);
        }
        sim
    }

    /// A natural-cadence interval at this simulator's scale; never 0, so a
    /// source always moves on in time.
    fn scaled(&self, ms: u64) -> u64 {
        ((ms as f64 * self.interval_scale).round() as u64).max(1)
    }

    /// A uniform draw from a natural-cadence interval range, scaled.
    fn draw_interval(&mut self, (lo, hi): (u64, u64)) -> u64 {
        let (lo, hi) = (self.scaled(lo), self.scaled(hi));
        self.rng.between(lo, hi)
    }

    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// Time up to which events have been produced.
    pub fn now_ms(&self) -> u64 {
        self.clock
    }

    /// The city being simulated.
    pub fn city(&self) -> &City {
        &self.city
    }

    /// Scenarios planned so far, in planning order (a demo cycle is planned
    /// five minutes before its alerts are due, so this may run ahead of
    /// [`Simulator::now_ms`]).
    pub fn scenario_log(&self) -> &[ScenarioRecord] {
        &self.log
    }

    /// Appends every event with a time in [previous time, `until_ms`) to
    /// `out`, in time order. How time is sliced does not change the events.
    pub fn advance_to(&mut self, until_ms: u64, out: &mut Vec<Event>) {
        while let Some(due) = self.queue.next_due() {
            if due >= until_ms {
                break;
            }
            let Some(Pending { ts, task, .. }) = self.queue.pop() else {
                break;
            };
            self.clock = self.clock.max(ts);
            if ts >= self.next_retirement {
                self.retire_scenarios(ts);
                self.next_retirement = ts + MINUTE;
            }
            self.run(task, ts, out);
        }
        self.clock = self.clock.max(until_ms);
    }

    fn run(&mut self, task: Task, t: u64, out: &mut Vec<Event>) {
        match task {
            Task::Report { source, generation } => {
                if self.sources[source].generation != generation {
                    return;
                }
                self.report(source, t, out);
            }
            Task::Wake { source } => {
                if self.sources[source].next_due > t {
                    self.schedule_report(source, t);
                }
            }
            Task::Incident(incident) => self.emit_incident(t, *incident, out),
            Task::DemoCycle { base } => {
                self.plan_demo_cycle(base);
                let next = base + scenario::DEMO_CYCLE_MS;
                self.push(
                    next - scenario::DEMO_LEAD_MS,
                    Task::DemoCycle { base: next },
                );
            }
            Task::Scenario(kind) => {
                let next = self.start_realistic(kind);
                self.push(next, Task::Scenario(kind));
            }
            Task::BackgroundIncident => {
                self.background_incident(t, out);
                let next = t + self.background_incident_gap();
                self.push(next, Task::BackgroundIncident);
            }
        }
    }

    fn push(&mut self, ts: u64, task: Task) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Pending { ts, seq, task });
    }

    fn schedule_report(&mut self, source: usize, at: u64) {
        let s = &mut self.sources[source];
        s.generation = s.generation.wrapping_add(1);
        s.next_due = at;
        let generation = s.generation;
        self.push(at, Task::Report { source, generation });
    }

    /// Makes a source report at `at` (as stations do on a threshold
    /// crossing or an alarm); its cadence then follows from that report.
    pub(crate) fn wake(&mut self, source: usize, at: u64) {
        let at = at.max(self.clock);
        self.push(at, Task::Wake { source });
    }

    fn sensor_kind(&self, source: usize) -> Option<SensorKind> {
        self.city.sensors.get(source).map(|s| s.kind)
    }

    // --- reports -------------------------------------------------------------

    fn report(&mut self, source: usize, t: u64, out: &mut Vec<Event>) {
        let sensors = self.city.sensors.len();
        let next = if source < sensors {
            let value = self.sensor_value(source, t);
            self.emit_sensor(source, t, value, out);
            self.sensor_interval(source, value, t)
        } else {
            self.emit_traffic(source - sensors, t, out);
            self.draw_interval(self.city.cadence.traffic)
        };
        self.schedule_report(source, t.saturating_add(next));
    }

    fn sensor_value(&mut self, i: usize, t: u64) -> f64 {
        let sensor = &self.city.sensors[i];
        let (kind, district) = (sensor.kind, sensor.district);
        let bias = self.sensor_bias[i];
        match kind {
            SensorKind::WaterLevel => {
                // A dry underpass reads a few centimetres of puddle or noise.
                let dry = bias + self.rng.uniform(0.0, 0.02);
                let value = match self.storm_water(i, t) {
                    Some(extra) => dry + extra + self.rng.uniform(-0.01, 0.01),
                    None => dry,
                };
                round_to(value.max(0.0), 3)
            }
            SensorKind::Rainfall => {
                let since_last_report = self.scaled(city::middle(self.city.cadence.rain));
                round_to(self.gauge_rain(i, t, since_last_report), 1)
            }
            SensorKind::Pm25 => {
                // Beijing's PM2.5 peaks late in the evening and bottoms out
                // in the afternoon.
                let h = beijing_hour(t);
                let daily = 6.0 * ((h - 22.0) / 24.0 * std::f64::consts::TAU).cos();
                let normal =
                    (self.district_pm[district] + daily + bias + self.rng.uniform(-4.0, 4.0))
                        .clamp(20.0, 60.0);
                let value = match self.air_episode(district, t) {
                    Some((share, target)) => {
                        let high = target + bias + self.rng.uniform(-5.0, 5.0);
                        normal * (1.0 - share) + high * share
                    }
                    None => normal,
                };
                value.round()
            }
            SensorKind::GasLel => {
                let normal = bias + self.rng.uniform(0.0, 3.0);
                let value = match self.leak_at(i, t) {
                    Some((share, peak)) => {
                        normal * (1.0 - share) + peak * share + self.rng.uniform(-1.5, 1.5) * share
                    }
                    None => normal,
                };
                round_to(value.clamp(0.0, 100.0), 1)
            }
        }
    }

    fn sensor_interval(&mut self, i: usize, value: f64, t: u64) -> u64 {
        let sensor = &self.city.sensors[i];
        let (kind, district) = (sensor.kind, sensor.district);
        let cadence = self.city.cadence;
        match kind {
            SensorKind::WaterLevel => {
                if self.district_wet(district, t) || value > 0.1 {
                    self.draw_interval(cadence.water_wet)
                } else {
                    self.draw_interval(cadence.water_dry)
                }
            }
            SensorKind::Rainfall => self.draw_interval(cadence.rain),
            SensorKind::Pm25 => {
                if self.air_fast_reports(district, t) {
                    self.draw_interval(cadence.air_fast)
                } else {
                    self.draw_interval(cadence.air)
                }
            }
            SensorKind::GasLel => {
                if self.leak_at(i, t).is_some() {
                    self.scaled(cadence.gas_alarm)
                } else {
                    self.draw_interval(cadence.gas)
                }
            }
        }
    }

    fn emit_sensor(&mut self, i: usize, t: u64, value: f64, out: &mut Vec<Event>) {
        let sensor = &self.city.sensors[i];
        let slot = kind_slot(sensor.kind);
        let (id, cell) = (sensor.id, sensor.cell);
        let location = if self.rng.chance(ID_ONLY_SENSOR_SHARE) {
            Location::Sensor(id)
        } else {
            Location::Cell(cell)
        };
        out.push(Event {
            ts: t,
            location,
            body: Body::Sensor(Sensor {
                sensor_id: self.sources[i].id.clone(),
                kind: self.syms.sensor_kind[slot],
                value,
                unit: Some(self.syms.sensor_unit[slot]),
            }),
        });
    }

    fn emit_traffic(&mut self, j: usize, t: u64, out: &mut Vec<Event>) {
        let seg = &self.city.segments[j];
        let (cell, class, lanes, free) = (seg.cell, seg.class, seg.lanes, seg.free_speed_kmh);
        let usual = free * rush_factor(t);
        let normal = usual * self.rng.uniform(0.95, 1.05);
        let speed = self.scenario_speed(j, normal, t).max(1.0);
        // Vehicles per minute: lanes × per-lane capacity × demand; a jam
        // passes fewer vehicles than free flow.
        let per_lane_capacity = match class {
            RoadClass::Expressway => 30.0,
            RoadClass::Arterial => 22.0,
            RoadClass::Secondary => 15.0,
        };
        let mut flow =
            f64::from(lanes) * per_lane_capacity * demand(t) * self.rng.uniform(0.9, 1.1);
        let ratio = speed / usual;
        if ratio < 0.6 {
            flow *= 0.4 + ratio;
        }
        let flow = flow.round().max(0.0);
        // Occupancy follows density (vehicles per km per lane).
        let density = flow / f64::from(lanes) * 60.0 / speed;
        let occupancy = round_to((density * 0.55).clamp(0.5, 95.0), 1);
        out.push(Event {
            ts: t,
            location: Location::Cell(cell),
            body: Body::Traffic(Traffic {
                segment_id: self.sources[self.city.sensors.len() + j].id.clone(),
                speed_kmh: round_to(speed, 1),
                flow: Some(flow),
                occupancy: Some(occupancy),
            }),
        });
    }

    // --- incidents -----------------------------------------------------------

    fn background_incident_gap(&mut self) -> u64 {
        let per_hour = match self.schedule {
            Schedule::Demo => 20.0,
            Schedule::Realistic => 12.0,
        } * self.city.cadence.incident_multiplier;
        let gap = self.rng.exponential(HOUR as f64 / per_hour) * self.interval_scale;
        (gap as u64).max(self.scaled(SECOND))
    }

    fn background_incident(&mut self, t: u64, out: &mut Vec<Event>) {
        const KINDS: [(&str, f64); 6] = [
            ("accident", 0.6),
            ("fire", 0.14),
            ("tree_fall", 0.08),
            ("gas_leak", 0.06),
            ("collapse", 0.06),
            ("crowd", 0.06),
        ];
        let weights: Vec<f64> = KINDS.iter().map(|(_, w)| *w).collect();
        let kind = self
            .rng
            .weighted(&weights)
            .map_or("accident", |i| KINDS[i].0);
        let on_road = matches!(kind, "accident" | "tree_fall" | "collapse");
        let cell = if on_road || self.city.sensors.is_empty() {
            self.rng.pick(&self.city.segments).map(|s| s.cell)
        } else {
            self.rng.pick(&self.city.sensors).map(|s| s.cell)
        };
        let Some(cell) = cell else {
            return;
        };
        let severity = match self.rng.weighted(&[0.4, 0.35, 0.18, 0.07]) {
            Some(i) => i as u8 + 1,
            None => 1,
        };
        let description = self.describe(kind, cell, None);
        self.emit_incident(
            t,
            PlannedIncident {
                cell,
                kind,
                severity,
                description,
            },
            out,
        );
    }

    pub(crate) fn plan_incident(
        &mut self,
        at: u64,
        cell: CellId,
        kind: &'static str,
        severity: u8,
    ) {
        let description = self.describe(kind, cell, None);
        self.queue_incident(at, cell, kind, severity, description);
    }

    pub(crate) fn plan_crowd_incident(&mut self, at: u64, cell: CellId, venue: &str, severity: u8) {
        let description = self.describe("crowd", cell, Some(venue));
        self.queue_incident(at, cell, "crowd", severity, description);
    }

    fn queue_incident(
        &mut self,
        at: u64,
        cell: CellId,
        kind: &'static str,
        severity: u8,
        description: String,
    ) {
        let at = at.max(self.clock);
        self.push(
            at,
            Task::Incident(Box::new(PlannedIncident {
                cell,
                kind,
                severity,
                description,
            })),
        );
    }

    /// A report text naming a road, landmark and district near `cell`.
    fn describe(&mut self, kind: &str, cell: CellId, landmark: Option<&str>) -> String {
        let district = self
            .city
            .district_of(cell)
            .map_or("北京市".to_string(), |d| {
                self.city.districts[d].name.clone()
            });
        let short = district.strip_suffix('区').unwrap_or(&district).to_string();
        let segments = self
            .index
            .segments_by_cell
            .get(&cell)
            .cloned()
            .unwrap_or_default();
        let road = match self.rng.pick(&segments).map(|&s| &self.city.segments[s]) {
            Some(seg) if seg.class == RoadClass::Expressway => {
                format!("{}处", seg.name.replace(' ', ""))
            }
            Some(seg) => seg.road.to_string(),
            None => format!("{short}某路段"),
        };
        let sensors = self
            .index
            .sensors_by_cell
            .get(&cell)
            .cloned()
            .unwrap_or_default();
        let sensor_named = |suffixes: &[&str], kind: SensorKind| {
            sensors
                .iter()
                .map(|&s| &self.city.sensors[s])
                .find(|s| s.kind == kind)
                .map(|s| {
                    let mut name = s.name.as_str();
                    for suffix in suffixes {
                        name = name.strip_suffix(suffix).unwrap_or(name);
                    }
                    name.trim_end().to_string()
                })
        };
        let place = match (landmark, kind) {
            (Some(l), _) => l.to_string(),
            (None, "flood") => sensor_named(&["积水监测点"], SensorKind::WaterLevel)
                .unwrap_or_else(|| road.clone()),
            (None, "gas_leak") => {
                sensor_named(&["可燃气体探测器", "燃气探测器"], SensorKind::GasLel)
                    .unwrap_or_else(|| format!("{short}某小区"))
            }
            (None, _) => road.clone(),
        };
        text::incident_description(
            &mut self.rng,
            kind,
            &text::Whereabouts {
                road: &road,
                place: &place,
                district: &district,
            },
        )
    }

    fn emit_incident(&mut self, t: u64, incident: PlannedIncident, out: &mut Vec<Event>) {
        self.incidents_reported += 1;
        // Dispatch numbers read like the 110 system's: date and a counter.
        let date = format_rfc3339(t + BEIJING_OFFSET_MS);
        let date: String = date.chars().take(10).filter(|c| *c != '-').collect();
        let incident_id = format!("inc-{date}-{:05}", self.incidents_reported);
        out.push(Event {
            ts: t,
            location: Location::Cell(incident.cell),
            body: Body::Incident(Incident {
                incident_id: incident_id.into(),
                kind: sym(incident.kind),
                severity: Some(incident.severity.clamp(1, 4)),
                segment_id: None,
                description: Some(incident.description.into()),
            }),
        });
    }
}
