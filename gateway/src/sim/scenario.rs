//! Scenarios: the situations the sample rules exist for — a rainstorm over
//! a district, a gas leak, a crowd at a venue, an air-quality episode, a
//! traffic jam — each shaped in time by envelopes, placed in the city, and
//! over by itself. This module owns where and when they happen (the Demo
//! and Realistic schedules) and what they do to readings; the simulator in
//! `mod.rs` asks it for the effect on each reading it makes.

use super::city::{CitySensor, SensorKind};
use super::Simulator;
use jingzhi_rules::space::CellId;
use jingzhi_rules::sym::Sym;
use std::collections::{BTreeMap, BTreeSet};

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// How far ahead of a demo cycle its places are chosen: traffic on the
/// chosen roads starts to slow and water starts to rise this long before
/// the cycle's alerts are due, so that five-minute averages are already low
/// when they should be.
pub(crate) const DEMO_LEAD_MS: u64 = 5 * MINUTE;
/// A new demo cycle, with new places, this often.
pub(crate) const DEMO_CYCLE_MS: u64 = 10 * MINUTE;

/// A ramp up, a plateau and a ramp down, in absolute milliseconds; its level
/// is 0 before `start`, 1 from `full` to `fade`, and 0 from `end` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub start: u64,
    pub full: u64,
    pub fade: u64,
    pub end: u64,
}

impl Envelope {
    fn new(start: u64, full: u64, fade: u64, end: u64) -> Envelope {
        let full = full.max(start);
        let fade = fade.max(full);
        Envelope {
            start,
            full,
            fade,
            end: end.max(fade),
        }
    }

    pub(crate) fn level(&self, t: u64) -> f64 {
        if t < self.start || t >= self.end {
            0.0
        } else if t < self.full {
            (t - self.start) as f64 / (self.full - self.start) as f64
        } else if t < self.fade {
            1.0
        } else {
            (self.end - t) as f64 / (self.end - self.fade) as f64
        }
    }

    pub(crate) fn active(&self, t: u64) -> bool {
        t >= self.start && t < self.end
    }
}

/// The kinds of situation the simulator stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScenarioKind {
    /// Rain over a district: gauges, underpass water, slow traffic, floods.
    Rainstorm,
    /// One gas detector past the first alarm level, and a report.
    GasLeak,
    /// Crowd reports around a venue and slow traffic near it.
    CrowdBuildup,
    /// PM2.5 above the moderate band across a district.
    AirEpisode,
    /// Average speeds below 20 km/h in a few neighbouring cells.
    Congestion,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 5] = [
        ScenarioKind::Rainstorm,
        ScenarioKind::GasLeak,
        ScenarioKind::CrowdBuildup,
        ScenarioKind::AirEpisode,
        ScenarioKind::Congestion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Rainstorm => "rainstorm",
            ScenarioKind::GasLeak => "gas_leak",
            ScenarioKind::CrowdBuildup => "crowd_buildup",
            ScenarioKind::AirEpisode => "air_episode",
            ScenarioKind::Congestion => "congestion",
        }
    }

    /// Mean time between two scenarios of this kind in the Realistic
    /// schedule, and the latest time of the first one (so that an
    /// hour-long file shows each kind once).
    fn realistic_rate(self) -> (u64, u64) {
        match self {
            ScenarioKind::Rainstorm => (8 * HOUR, 10 * MINUTE),
            ScenarioKind::GasLeak => (4 * HOUR, 50 * MINUTE),
            ScenarioKind::CrowdBuildup => (6 * HOUR, 30 * MINUTE),
            ScenarioKind::AirEpisode => (12 * HOUR, 20 * MINUTE),
            ScenarioKind::Congestion => (HOUR, 30 * MINUTE),
        }
    }

    /// When this kind's alert is due within a demo cycle: all within the
    /// first 20 s.
    fn demo_offset(self) -> u64 {
        match self {
            ScenarioKind::Rainstorm => 2 * SECOND,
            ScenarioKind::GasLeak => 4 * SECOND,
            ScenarioKind::Congestion => 6 * SECOND,
            ScenarioKind::CrowdBuildup => 8 * SECOND,
            ScenarioKind::AirEpisode => 12 * SECOND,
        }
    }
}

/// What was staged, where and when — for operators checking a demo and for
/// backtests that want to know which alerts a file should produce.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioRecord {
    pub kind: ScenarioKind,
    /// Where, in words: a district, a venue, a detector, a road.
    pub place: String,
    /// District name (朝阳区), when the scenario is within one district.
    pub district: Option<String>,
    /// The cells most affected (flooded underpasses, jammed cells, the
    /// venue and its ring, the detector's cell).
    pub cells: Vec<CellId>,
    /// The sensors most affected.
    pub sensors: Vec<Sym>,
    /// Effects begin (readings start to move).
    pub starts_ms: u64,
    /// Effects are at their height; in the Demo schedule, the moment alerts
    /// are due.
    pub peak_ms: u64,
    /// Effects are over (readings are back to normal).
    pub ends_ms: u64,
}

/// A scenario being played.
#[derive(Clone, Debug)]
pub(crate) struct Scenario {
    /// Effects are over from here on; the scenario can be dropped.
    pub until: u64,
    pub effect: Effect,
}

#[derive(Clone, Debug)]
pub(crate) enum Effect {
    Rainstorm(Rainstorm),
    GasLeak(GasLeak),
    Crowd(Crowd),
    Air(AirEpisode),
    Congestion(Congestion),
}

#[derive(Clone, Debug)]
pub(crate) struct Rainstorm {
    pub district: usize,
    /// Rain intensity, as a share of `peak_mm_h`.
    pub rain: Envelope,
    pub peak_mm_h: f64,
    /// Gauge (sensor index) → local multiplier of the intensity.
    pub gauges: BTreeMap<usize, f64>,
    /// Water at underpasses, lagging the rain.
    pub water: Envelope,
    /// Water-level sensor → extra depth at the height of the storm, m.
    pub water_peak: BTreeMap<usize, f64>,
    /// Underpass cells that flood: traffic there all but stops.
    pub hot_cells: BTreeSet<CellId>,
}

impl Rainstorm {
    /// Rain intensity at `t`, mm/h.
    pub(crate) fn intensity(&self, t: u64) -> f64 {
        self.peak_mm_h * self.rain.level(t)
    }

    /// Millimetres fallen in the `window` before `t` (what a gauge
    /// reports: the rain since its previous report, five minutes at the
    /// natural cadence), by the midpoint rule over 30 steps of at most 10 s.
    pub(crate) fn rain_mm_before(&self, t: u64, window: u64) -> f64 {
        let step = (window / 30).clamp(1, 10 * SECOND);
        let from = t.saturating_sub(window);
        let mut mm = 0.0;
        let mut s = from;
        while s < t {
            let mid = s + step / 2;
            mm += self.intensity(mid) * (step.min(t - s) as f64 / HOUR as f64);
            s += step;
        }
        mm
    }

    /// Whether it rains, or the water has not yet drained, in the district.
    pub(crate) fn wet(&self, t: u64) -> bool {
        self.rain.active(t) || self.water.active(t)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct GasLeak {
    pub sensor: usize,
    pub leak: Envelope,
    pub peak_lel: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct Crowd {
    /// The venue's cell and its neighbours.
    pub ring: BTreeSet<CellId>,
    pub slow: Envelope,
    /// Speed multiplier at the height of the crowd.
    pub speed_factor: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct AirEpisode {
    pub district: usize,
    pub episode: Envelope,
    /// PM2.5 the district's stations read at the height, µg/m³.
    pub target: f64,
    /// Stations in the district report every minute until then (Demo only,
    /// so that the hourly average recovers within minutes).
    pub fast_reports_until: Option<u64>,
}

#[derive(Clone, Debug)]
pub(crate) struct Congestion {
    pub cells: BTreeSet<CellId>,
    pub jam: Envelope,
}

/// An incident to report at a given time.
#[derive(Clone, Debug)]
pub(crate) struct PlannedIncident {
    pub cell: CellId,
    pub kind: &'static str,
    pub severity: u8,
    pub description: String,
}

/// Whether a schedule wants snappy demo shapes or plausible durations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pace {
    Demo,
    Realistic,
}

impl Simulator {
    /// Plans the demo cycle whose alerts are due from `base` (each kind at
    /// its offset within the first 20 s).
    pub(crate) fn plan_demo_cycle(&mut self, base: u64) {
        self.cycle_districts.clear();
        for kind in ScenarioKind::ALL {
            let due = base + kind.demo_offset();
            self.stage(kind, due, Pace::Demo);
        }
    }

    /// Starts a scenario of `kind` now (Realistic schedule) and returns
    /// when the next one of that kind starts.
    pub(crate) fn start_realistic(&mut self, kind: ScenarioKind) -> u64 {
        let now = self.clock;
        self.cycle_districts.clear();
        self.stage(kind, now, Pace::Realistic);
        let (mean, _) = kind.realistic_rate();
        if kind != ScenarioKind::Congestion {
            return now + (self.rng.exponential(mean as f64) as u64).max(10 * MINUTE);
        }
        // Jams follow demand: candidates at twice the mean rate, kept in
        // proportion to the square of the hour's demand (about half of
        // them over a day), so most fall in the rush hours.
        let mut next = now;
        for _ in 0..100 {
            next += (self.rng.exponential(mean as f64 / 2.0) as u64).max(10 * MINUTE);
            if self.rng.chance(super::demand(next).powi(2)) {
                break;
            }
        }
        next
    }

    /// When the first scenario of `kind` starts in the Realistic schedule.
    pub(crate) fn first_realistic(&mut self, kind: ScenarioKind) -> u64 {
        let (_, first_within) = kind.realistic_rate();
        self.start_ms + self.rng.below(first_within)
    }

    fn stage(&mut self, kind: ScenarioKind, at: u64, pace: Pace) {
        match kind {
            ScenarioKind::Rainstorm => self.stage_rainstorm(at, pace),
            ScenarioKind::GasLeak => self.stage_gas_leak(at, pace),
            ScenarioKind::CrowdBuildup => self.stage_crowd(at, pace),
            ScenarioKind::AirEpisode => self.stage_air(at, pace),
            ScenarioKind::Congestion => self.stage_congestion(at, pace),
        }
    }

    /// A time no earlier than now.
    fn not_before_now(&self, t: u64) -> u64 {
        t.max(self.clock)
    }

    fn secs(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.between(lo * SECOND, hi * SECOND)
    }

    fn mins(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.between(lo * MINUTE, hi * MINUTE)
    }

    /// Picks one of `candidates` (place keys), preferring those not used by
    /// the last few scenarios of `kind` and weighting by `weight`.
    fn choose_place(
        &mut self,
        kind: ScenarioKind,
        candidates: &[(u64, f64)],
        memory: usize,
    ) -> Option<u64> {
        let recent = self.recent.entry(kind).or_default();
        let fresh: Vec<(u64, f64)> = candidates
            .iter()
            .copied()
            .filter(|(key, _)| !recent.contains(key))
            .collect();
        let pool = if fresh.is_empty() {
            candidates
        } else {
            &fresh[..]
        };
        let weights: Vec<f64> = pool.iter().map(|(_, w)| *w).collect();
        let key = pool.get(self.rng.weighted(&weights)?)?.0;
        let recent = self.recent.entry(kind).or_default();
        recent.push_back(key);
        while recent.len() > memory {
            recent.pop_front();
        }
        Some(key)
    }

    /// How likely a district is to host a scenario: busy districts more,
    /// and a district already used in this demo cycle much less, so that
    /// one cycle's alerts spread over the map.
    fn district_weight(&self, d: usize) -> f64 {
        let tier = match self.city.districts[d].tier {
            super::city::DistrictTier::Urban => 6.0,
            super::city::DistrictTier::InnerSuburb => 1.5,
            super::city::DistrictTier::OuterSuburb => 0.5,
        };
        if self.cycle_districts.contains(&d) {
            tier * 0.1
        } else {
            tier
        }
    }

    /// Cells of a district with a water-level sensor and at least one road
    /// segment: underpasses whose flooding stops traffic.
    fn underpass_cells(&self, district: usize) -> Vec<CellId> {
        let mut cells: BTreeSet<CellId> = BTreeSet::new();
        for s in &self.city.sensors {
            if s.kind == SensorKind::WaterLevel
                && s.district == district
                && self.index.segments_by_cell.contains_key(&s.cell)
            {
                cells.insert(s.cell);
            }
        }
        cells.into_iter().collect()
    }

    fn sensors_in_district(&self, kind: SensorKind, district: usize) -> Vec<usize> {
        (0..self.city.sensors.len())
            .filter(|&i| {
                let s = &self.city.sensors[i];
                s.kind == kind && s.district == district
            })
            .collect()
    }

    fn stage_rainstorm(&mut self, due: u64, pace: Pace) {
        let mut candidates = Vec::new();
        for d in 0..self.city.districts.len() {
            let gauges = self.sensors_in_district(SensorKind::Rainfall, d).len();
            let underpasses = self.underpass_cells(d).len();
            // In the demo one round of gauge reports must reach 30 mm in the
            // district, and a flooded underpass must have traffic to stop.
            let eligible = match pace {
                Pace::Demo => gauges >= 7 && underpasses >= 1,
                Pace::Realistic => gauges >= 1,
            };
            if eligible {
                candidates.push((d as u64, self.district_weight(d)));
            }
        }
        if candidates.is_empty() {
            candidates = (0..self.city.districts.len())
                .map(|d| (d as u64, self.district_weight(d)))
                .collect();
        }
        let Some(district) = self.choose_place(ScenarioKind::Rainstorm, &candidates, 3) else {
            return;
        };
        let district = district as usize;
        self.cycle_districts.insert(district);
        let (rain, water, peak_mm_h) = match pace {
            Pace::Demo => {
                // The storm front arrived five minutes before the alert is
                // due, at full strength: the first gauge reports already
                // hold five minutes of heavy rain.
                let fade = due + self.secs(150, 200);
                let front = due.saturating_sub(5 * MINUTE);
                let rain = Envelope::new(front, front, fade, fade + MINUTE);
                // Water peaks well before the alert is due, so that in later
                // cycles the five-minute speed average at the flooded
                // underpass is already low when it should be.
                let water = Envelope::new(
                    due.saturating_sub(270 * SECOND),
                    due.saturating_sub(150 * SECOND),
                    rain.end,
                    rain.end + 90 * SECOND,
                );
                (rain, water, self.rng.uniform(70.0, 100.0))
            }
            Pace::Realistic => {
                let full = due + self.mins(5, 15);
                let fade = full + self.mins(15, 40);
                let rain = Envelope::new(due, full, fade, fade + self.mins(10, 20));
                let water_full = full + 10 * MINUTE;
                let water = Envelope::new(
                    due + 5 * MINUTE,
                    water_full,
                    rain.end,
                    rain.end + self.mins(20, 40),
                );
                (rain, water, self.rng.uniform(25.0, 60.0))
            }
        };
        let mut underpasses = self.underpass_cells(district);
        self.rng.shuffle(&mut underpasses);
        let hot_count = match pace {
            Pace::Demo => 2,
            Pace::Realistic => 1 + self.rng.index(3),
        };
        let hot_cells: BTreeSet<CellId> = underpasses.into_iter().take(hot_count).collect();
        let mut gauges = BTreeMap::new();
        for g in self.sensors_in_district(SensorKind::Rainfall, district) {
            gauges.insert(g, self.rng.uniform(0.85, 1.15));
        }
        // Underpasses in the flooded cells fill to 0.42–0.6 m; a few others
        // hold standing water past the 0.25 m closing depth; the rest of
        // the district's low points collect a few centimetres to 0.2 m.
        let mut others = Vec::new();
        let mut water_peak = BTreeMap::new();
        let mut hot_sensors = Vec::new();
        for w in self.sensors_in_district(SensorKind::WaterLevel, district) {
            if hot_cells.contains(&self.city.sensors[w].cell) {
                hot_sensors.push(self.city.sensors[w].id);
                water_peak.insert(w, self.rng.uniform(0.42, 0.6));
            } else {
                others.push(w);
            }
        }
        self.rng.shuffle(&mut others);
        let standing = match pace {
            Pace::Demo => 2 + self.rng.index(3),
            Pace::Realistic => 3 + self.rng.index(6),
        };
        for (k, w) in others.into_iter().enumerate() {
            let peak = if k < standing {
                self.rng.uniform(0.27, 0.38)
            } else {
                self.rng.uniform(0.02, 0.2)
            };
            water_peak.insert(w, peak);
        }

        // Underpass stations switch to their rain cadence as the water
        // starts to rise (an immediate report, then every 1–2 minutes).
        let wake_from = self.not_before_now(water.start);
        for &w in water_peak.keys() {
            let at = wake_from + self.secs(2, 30);
            self.wake(w, at);
        }
        if pace == Pace::Demo {
            // Gauges report as the alert falls due, so the district's hourly
            // total passes 30 mm within the first minute.
            for &g in gauges.keys() {
                let at = self.not_before_now(due) + self.secs(0, 40);
                self.wake(g, at);
            }
        }
        let flood_at = match pace {
            Pace::Demo => due,
            Pace::Realistic => water.full,
        };
        for &cell in &hot_cells {
            let first = match pace {
                Pace::Demo => flood_at + self.secs(3, 30),
                Pace::Realistic => flood_at + self.mins(0, 5),
            };
            let severity = 2 + self.rng.below(2) as u8;
            self.plan_incident(first, cell, "flood", severity);
            if self.rng.chance(0.4) {
                let later = match pace {
                    Pace::Demo => flood_at + self.secs(60, 150),
                    Pace::Realistic => flood_at + self.mins(5, 20),
                };
                let kind = if self.rng.chance(0.5) {
                    "flood"
                } else {
                    "accident"
                };
                self.plan_incident(later, cell, kind, 2);
            }
        }
        let name = self.city.districts[district].name.clone();
        self.record(ScenarioRecord {
            kind: ScenarioKind::Rainstorm,
            place: format!("{name}暴雨"),
            district: Some(name),
            cells: hot_cells.iter().copied().collect(),
            sensors: hot_sensors,
            starts_ms: rain.start.max(self.start_ms),
            peak_ms: due,
            ends_ms: water.end,
        });
        self.scenarios.push(Scenario {
            until: rain.end.max(water.end),
            effect: Effect::Rainstorm(Rainstorm {
                district,
                rain,
                peak_mm_h,
                gauges,
                water,
                water_peak,
                hot_cells,
            }),
        });
    }

    fn stage_gas_leak(&mut self, due: u64, pace: Pace) {
        let candidates: Vec<(u64, f64)> = (0..self.city.sensors.len())
            .filter(|&i| self.city.sensors[i].kind == SensorKind::GasLel)
            .map(|i| {
                (
                    i as u64,
                    self.district_weight(self.city.sensors[i].district),
                )
            })
            .collect();
        let Some(sensor) = self.choose_place(ScenarioKind::GasLeak, &candidates, 5) else {
            return;
        };
        let sensor = sensor as usize;
        self.cycle_districts
            .insert(self.city.sensors[sensor].district);
        let (leak, peak_lel, incident_at) = match pace {
            Pace::Demo => {
                let full = due + 30 * SECOND;
                let fade = full + self.secs(100, 160);
                let leak = Envelope::new(due, full, fade, fade + 40 * SECOND);
                let incident_at = full + self.secs(5, 20);
                (leak, self.rng.uniform(30.0, 45.0), incident_at)
            }
            Pace::Realistic => {
                let full = due + self.mins(2, 6);
                let fade = full + self.mins(5, 15);
                let leak = Envelope::new(due, full, fade, fade + self.mins(2, 4));
                let incident_at = full + self.mins(0, 3);
                (leak, self.rng.uniform(28.0, 55.0), incident_at)
            }
        };
        // A detector in alarm reports at once and then every 15 s.
        let at = self.not_before_now(due) + self.secs(1, 4);
        self.wake(sensor, at);
        let s: &CitySensor = &self.city.sensors[sensor];
        let (cell, id, name) = (s.cell, s.id, s.name.clone());
        let district = self.city.districts[s.district].name.clone();
        self.plan_incident(incident_at, cell, "gas_leak", 3);
        self.record(ScenarioRecord {
            kind: ScenarioKind::GasLeak,
            place: name,
            district: Some(district),
            cells: vec![cell],
            sensors: vec![id],
            starts_ms: leak.start,
            peak_ms: leak.full,
            ends_ms: leak.end,
        });
        self.scenarios.push(Scenario {
            until: leak.end,
            effect: Effect::GasLeak(GasLeak {
                sensor,
                leak,
                peak_lel,
            }),
        });
    }

    fn stage_crowd(&mut self, due: u64, pace: Pace) {
        // The place key is the district: the rule counts crowd reports per
        // district, and a new place should be a new alert.
        let candidates: Vec<(u64, f64)> = self
            .city
            .venues
            .iter()
            .map(|v| (v.district as u64, self.district_weight(v.district)))
            .collect();
        let Some(district) = self.choose_place(ScenarioKind::CrowdBuildup, &candidates, 2) else {
            return;
        };
        let venues: Vec<usize> = (0..self.city.venues.len())
            .filter(|&i| self.city.venues[i].district as u64 == district)
            .collect();
        let Some(&venue) = self.rng.pick(&venues) else {
            return;
        };
        let venue = self.city.venues[venue].clone();
        self.cycle_districts.insert(venue.district);
        let ring: BTreeSet<CellId> = self.city.grid.neighbourhood(venue.cell, 1).collect();
        let same_district: Vec<CellId> = ring
            .iter()
            .copied()
            .filter(|c| self.city.district_of(*c) == Some(venue.district))
            .collect();
        let (slow, count, mut at, gap) = match pace {
            Pace::Demo => {
                let fade = due + self.secs(150, 210);
                let slow = Envelope::new(due.saturating_sub(2 * MINUTE), due, fade, fade + MINUTE);
                let count = 4 + self.rng.below(3);
                (
                    slow,
                    count,
                    due + self.secs(3, 10),
                    (8 * SECOND, 18 * SECOND),
                )
            }
            Pace::Realistic => {
                let full = due + self.mins(10, 20);
                let fade = full + self.mins(20, 60);
                let slow = Envelope::new(due, full, fade, fade + self.mins(10, 20));
                let count = 3 + self.rng.below(5);
                (
                    slow,
                    count,
                    due + self.mins(5, 15),
                    (2 * MINUTE, 5 * MINUTE),
                )
            }
        };
        for _ in 0..count {
            let cell = if self.rng.chance(0.3) {
                self.rng.pick(&same_district).copied().unwrap_or(venue.cell)
            } else {
                venue.cell
            };
            let severity = 2 + u8::from(self.rng.chance(0.3));
            self.plan_crowd_incident(at, cell, venue.name, severity);
            at += self.rng.between(gap.0, gap.1);
        }
        let speed_factor = self.rng.uniform(0.45, 0.6);
        self.record(ScenarioRecord {
            kind: ScenarioKind::CrowdBuildup,
            place: venue.name.to_string(),
            district: Some(self.city.districts[venue.district].name.clone()),
            cells: ring.iter().copied().collect(),
            sensors: Vec::new(),
            starts_ms: slow.start.max(self.start_ms),
            peak_ms: due,
            ends_ms: slow.end,
        });
        self.scenarios.push(Scenario {
            until: slow.end,
            effect: Effect::Crowd(Crowd {
                ring,
                slow,
                speed_factor,
            }),
        });
    }

    fn stage_air(&mut self, due: u64, pace: Pace) {
        // Rain washes the air clean: not where a storm is playing.
        let raining: BTreeSet<usize> = self
            .scenarios
            .iter()
            .filter_map(|s| match &s.effect {
                Effect::Rainstorm(r) if r.wet(due) => Some(r.district),
                _ => None,
            })
            .collect();
        let candidates: Vec<(u64, f64)> = (0..self.city.districts.len())
            .filter(|d| !raining.contains(d))
            .filter(|&d| !self.sensors_in_district(SensorKind::Pm25, d).is_empty())
            .map(|d| (d as u64, self.district_weight(d)))
            .collect();
        let Some(district) = self.choose_place(ScenarioKind::AirEpisode, &candidates, 3) else {
            return;
        };
        let district = district as usize;
        self.cycle_districts.insert(district);
        let (episode, target, fast_reports_until) = match pace {
            Pace::Demo => {
                let fade = due + self.secs(150, 210);
                let episode = Envelope::new(due, due, fade, fade + MINUTE);
                let fast = episode.end + 10 * MINUTE;
                (episode, self.rng.uniform(85.0, 110.0), Some(fast))
            }
            Pace::Realistic => {
                let full = due + self.mins(20, 40);
                let fade = full + self.mins(60, 240);
                let episode = Envelope::new(due, full, fade, fade + self.mins(60, 120));
                (episode, self.rng.uniform(90.0, 170.0), None)
            }
        };
        let stations = self.sensors_in_district(SensorKind::Pm25, district);
        if pace == Pace::Demo {
            for &s in &stations {
                let at = self.not_before_now(due) + self.secs(3, 30);
                self.wake(s, at);
            }
        }
        let name = self.city.districts[district].name.clone();
        self.record(ScenarioRecord {
            kind: ScenarioKind::AirEpisode,
            place: format!("{name}空气污染过程"),
            district: Some(name),
            cells: Vec::new(),
            sensors: stations.iter().map(|&s| self.city.sensors[s].id).collect(),
            starts_ms: episode.start,
            peak_ms: episode.full,
            ends_ms: episode.end,
        });
        self.scenarios.push(Scenario {
            until: fast_reports_until.unwrap_or(episode.end).max(episode.end),
            effect: Effect::Air(AirEpisode {
                district,
                episode,
                target,
                fast_reports_until,
            }),
        });
    }

    fn stage_congestion(&mut self, due: u64, pace: Pace) {
        // Jams show where there are roads; the demo needs three segments in
        // the first cell so that one minute of reports is three readings.
        let min_segments = match pace {
            Pace::Demo => 3,
            Pace::Realistic => 2,
        };
        let storm_districts: BTreeSet<usize> = self
            .scenarios
            .iter()
            .filter_map(|s| match &s.effect {
                Effect::Rainstorm(r) => Some(r.district),
                _ => None,
            })
            .collect();
        let mut candidates: Vec<(u64, f64)> = self
            .index
            .segments_by_cell
            .iter()
            .filter(|(_, segs)| segs.len() >= min_segments)
            .filter(|(cell, _)| {
                self.city
                    .district_of(**cell)
                    .is_some_and(|d| !storm_districts.contains(&d))
            })
            .map(|(cell, segs)| {
                let district = self
                    .city
                    .district_of(*cell)
                    .map_or(1.0, |d| self.district_weight(d) / 6.0);
                (u64::from(*cell), segs.len() as f64 * district)
            })
            .collect();
        if candidates.is_empty() {
            candidates = self
                .index
                .segments_by_cell
                .iter()
                .map(|(cell, segs)| (u64::from(*cell), segs.len() as f64))
                .collect();
        }
        let Some(seed) = self.choose_place(ScenarioKind::Congestion, &candidates, 4) else {
            return;
        };
        let seed = seed as CellId;
        let mut neighbours: Vec<CellId> = self
            .city
            .grid
            .neighbourhood(seed, 1)
            .filter(|c| *c != seed && self.index.segments_by_cell.contains_key(c))
            .collect();
        self.rng.shuffle(&mut neighbours);
        let extra = match pace {
            Pace::Demo => 2,
            Pace::Realistic => self.rng.index(4),
        };
        let cells: BTreeSet<CellId> = std::iter::once(seed)
            .chain(neighbours.into_iter().take(extra))
            .collect();
        let jam = match pace {
            Pace::Demo => {
                let fade = due + self.secs(150, 210);
                Envelope::new(
                    due.saturating_sub(270 * SECOND),
                    due.saturating_sub(150 * SECOND),
                    fade,
                    fade + 45 * SECOND,
                )
            }
            Pace::Realistic => {
                let full = due + self.mins(5, 10);
                let fade = full + self.mins(10, 30);
                Envelope::new(due, full, fade, fade + self.mins(5, 10))
            }
        };
        if self.rng.chance(0.5) {
            let at = match pace {
                Pace::Demo => due + self.secs(5, 30),
                Pace::Realistic => due + self.mins(0, 5),
            };
            let severity = 1 + self.rng.below(2) as u8;
            self.plan_incident(at, seed, "accident", severity);
        }
        let road = self
            .index
            .segments_by_cell
            .get(&seed)
            .and_then(|s| s.first())
            .map(|&s| {
                let seg = &self.city.segments[s];
                seg.name.clone()
            });
        let district = self
            .city
            .district_of(seed)
            .map(|d| self.city.districts[d].name.clone());
        self.record(ScenarioRecord {
            kind: ScenarioKind::Congestion,
            place: road.unwrap_or_else(|| format!("网格{seed}")),
            district,
            cells: cells.iter().copied().collect(),
            sensors: Vec::new(),
            starts_ms: jam.start.max(self.start_ms),
            peak_ms: jam.full.max(due),
            ends_ms: jam.end,
        });
        self.scenarios.push(Scenario {
            until: jam.end,
            effect: Effect::Congestion(Congestion { cells, jam }),
        });
    }

    /// Keeps a scenario's record; a demo left running for weeks keeps the
    /// most recent ones only.
    fn record(&mut self, record: ScenarioRecord) {
        const KEEP: usize = 10_000;
        if self.log.len() >= KEEP {
            self.log.drain(..KEEP / 2);
        }
        self.log.push(record);
    }

    // --- what scenarios do to readings -------------------------------------

    /// Extra water depth at a water-level sensor, m, and whether a storm
    /// touches it at all.
    pub(crate) fn storm_water(&self, sensor: usize, t: u64) -> Option<f64> {
        let mut extra = None;
        for s in &self.scenarios {
            if let Effect::Rainstorm(r) = &s.effect {
                if let Some(peak) = r.water_peak.get(&sensor) {
                    if r.water.active(t) {
                        *extra.get_or_insert(0.0) += peak * r.water.level(t);
                    }
                }
            }
        }
        extra
    }

    /// Rain in the `window` before `t` at a gauge, mm.
    pub(crate) fn gauge_rain(&self, gauge: usize, t: u64, window: u64) -> f64 {
        self.scenarios
            .iter()
            .filter_map(|s| match &s.effect {
                Effect::Rainstorm(r) => r
                    .gauges
                    .get(&gauge)
                    .map(|f| f * r.rain_mm_before(t, window)),
                _ => None,
            })
            .sum()
    }

    /// Whether it rains, or water stands, in a district.
    pub(crate) fn district_wet(&self, district: usize, t: u64) -> bool {
        self.scenarios.iter().any(|s| match &s.effect {
            Effect::Rainstorm(r) => r.district == district && r.wet(t),
            _ => false,
        })
    }

    /// A gas reading under any leak at the detector: the leak's share and
    /// its peak.
    pub(crate) fn leak_at(&self, sensor: usize, t: u64) -> Option<(f64, f64)> {
        self.scenarios.iter().find_map(|s| match &s.effect {
            Effect::GasLeak(g) if g.sensor == sensor && g.leak.active(t) => {
                Some((g.leak.level(t), g.peak_lel))
            }
            _ => None,
        })
    }

    /// PM2.5 episode in a district: its share and its target value.
    pub(crate) fn air_episode(&self, district: usize, t: u64) -> Option<(f64, f64)> {
        self.scenarios.iter().find_map(|s| match &s.effect {
            Effect::Air(a) if a.district == district && a.episode.active(t) => {
                Some((a.episode.level(t), a.target))
            }
            _ => None,
        })
    }

    /// Whether the district's air stations are on their fast demo cadence.
    pub(crate) fn air_fast_reports(&self, district: usize, t: u64) -> bool {
        self.scenarios.iter().any(|s| match &s.effect {
            Effect::Air(a) => {
                a.district == district
                    && a.fast_reports_until
                        .is_some_and(|u| t >= a.episode.start && t < u)
            }
            _ => false,
        })
    }

    /// Applies every scenario's effect to a normal speed at a segment.
    pub(crate) fn scenario_speed(&mut self, segment: usize, normal: f64, t: u64) -> f64 {
        let seg = &self.city.segments[segment];
        let (cell, district) = (seg.cell, seg.district);
        let mut speed = normal;
        // Jam speeds are drawn per reading; collect the shares first so the
        // draws do not depend on how many scenarios happen to be active.
        let mut flooded: f64 = 0.0;
        let mut jammed: f64 = 0.0;
        for s in &self.scenarios {
            match &s.effect {
                Effect::Rainstorm(r) if r.district == district => {
                    speed *= 1.0 - 0.15 * r.rain.level(t);
                    if r.hot_cells.contains(&cell) {
                        flooded = flooded.max(r.water.level(t));
                    }
                }
                Effect::Congestion(c) if c.cells.contains(&cell) => {
                    jammed = jammed.max(c.jam.level(t));
                }
                Effect::Crowd(c) if c.ring.contains(&cell) => {
                    speed *= 1.0 - (1.0 - c.speed_factor) * c.slow.level(t);
                }
                _ => {}
            }
        }
        if flooded > 0.0 {
            let crawl = self.rng.uniform(4.0, 13.0);
            speed = speed * (1.0 - flooded) + crawl * flooded;
        }
        if jammed > 0.0 {
            let crawl = self.rng.uniform(5.0, 13.0);
            speed = speed * (1.0 - jammed) + crawl * jammed;
        }
        speed
    }

    /// Drops scenarios whose effects are over.
    pub(crate) fn retire_scenarios(&mut self, t: u64) {
        self.scenarios.retain(|s| s.until > t);
    }
}
