//! Tests of the simulator as a whole: determinism, well-formed events, the
//! reference file, and that the scenarios satisfy the sample rules'
//! conditions when they should and stop satisfying them afterwards.

use super::*;
use jingzhi_rules::event::{parse_line, ParseContext};
use jingzhi_rules::space::{Reference, ReferenceFile};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// 2026-07-15T14:00:00+08:00: a summer afternoon, away from rush hours, so
/// that "normal" traffic is unambiguous.
const AFTERNOON: u64 = 1_784_095_200_000;

fn run(
    city: &City,
    seed: u64,
    schedule: Schedule,
    start: u64,
    span: u64,
) -> (Simulator, Vec<Event>) {
    let mut sim = Simulator::new(city, seed, start, schedule);
    let mut out = Vec::new();
    sim.advance_to(start + span, &mut out);
    (sim, out)
}

fn ndjson(events: &[Event]) -> String {
    let mut s = String::new();
    for e in events {
        e.write_json(&mut s);
    }
    s
}

/// Places events the way the engine does: by cell, or through reference
/// data for id-only events.
struct View<'a> {
    city: &'a City,
    sensor_cell: HashMap<Sym, CellId>,
    segment_cell: HashMap<Sym, CellId>,
}

impl<'a> View<'a> {
    fn new(city: &'a City) -> View<'a> {
        View {
            city,
            sensor_cell: city.sensors.iter().map(|s| (s.id, s.cell)).collect(),
            segment_cell: city.segments.iter().map(|s| (s.id, s.cell)).collect(),
        }
    }

    fn cell(&self, e: &Event) -> CellId {
        match e.location {
            Location::Cell(c) => c,
            Location::Sensor(id) => self.sensor_cell[&id],
            Location::Segment(id) => self.segment_cell[&id],
        }
    }

    fn district(&self, e: &Event) -> Option<usize> {
        self.city.district_of(self.cell(e))
    }

    fn in_window(events: &[Event], from: u64, to: u64) -> impl Iterator<Item = &Event> {
        events.iter().filter(move |e| e.ts >= from && e.ts < to)
    }

    fn sensor_values(
        &self,
        events: &[Event],
        kind: &str,
        from: u64,
        to: u64,
    ) -> Vec<(CellId, Sym, f64)> {
        Self::in_window(events, from, to)
            .filter_map(|e| match &e.body {
                Body::Sensor(s) if s.kind.as_str() == kind => {
                    Some((self.cell(e), sym(&s.sensor_id), s.value))
                }
                _ => None,
            })
            .collect()
    }

    fn max_by_cell(
        &self,
        events: &[Event],
        kind: &str,
        from: u64,
        to: u64,
    ) -> BTreeMap<CellId, f64> {
        let mut out: BTreeMap<CellId, f64> = BTreeMap::new();
        for (cell, _, v) in self.sensor_values(events, kind, from, to) {
            let m = out.entry(cell).or_insert(f64::MIN);
            *m = m.max(v);
        }
        out
    }

    fn sum_by_district(
        &self,
        events: &[Event],
        kind: &str,
        from: u64,
        to: u64,
    ) -> BTreeMap<usize, f64> {
        let mut out: BTreeMap<usize, f64> = BTreeMap::new();
        for (cell, _, v) in self.sensor_values(events, kind, from, to) {
            if let Some(d) = self.city.district_of(cell) {
                *out.entry(d).or_default() += v;
            }
        }
        out
    }

    /// (average speed, readings) per cell.
    fn speed_by_cell(
        &self,
        events: &[Event],
        from: u64,
        to: u64,
    ) -> BTreeMap<CellId, (f64, usize)> {
        let mut sums: BTreeMap<CellId, (f64, usize)> = BTreeMap::new();
        for e in Self::in_window(events, from, to) {
            if let Body::Traffic(t) = &e.body {
                let s = sums.entry(self.cell(e)).or_default();
                s.0 += t.speed_kmh;
                s.1 += 1;
            }
        }
        sums.into_iter()
            .map(|(c, (sum, n))| (c, (sum / n as f64, n)))
            .collect()
    }

    fn incidents(
        &self,
        events: &[Event],
        kinds: &[&str],
        from: u64,
        to: u64,
    ) -> Vec<(CellId, Option<usize>)> {
        Self::in_window(events, from, to)
            .filter_map(|e| match &e.body {
                Body::Incident(i) if kinds.contains(&i.kind.as_str()) => {
                    Some((self.cell(e), self.district(e)))
                }
                _ => None,
            })
            .collect()
    }

    /// underpass_flooding (red): water > 0.4 and avg speed < 15 over 5m and
    /// a flood or accident over 30m, per cell; the cells where it holds at `t`.
    fn flooding_cells(&self, events: &[Event], t: u64) -> Vec<CellId> {
        let water = self.max_by_cell(events, "water_level", t.saturating_sub(5 * MINUTE), t);
        let speed = self.speed_by_cell(events, t.saturating_sub(5 * MINUTE), t);
        let reports: BTreeSet<CellId> = self
            .incidents(
                events,
                &["flood", "accident"],
                t.saturating_sub(30 * MINUTE),
                t,
            )
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        water
            .iter()
            .filter(|(c, w)| {
                **w > 0.4 && speed.get(c).is_some_and(|(avg, _)| *avg < 15.0) && reports.contains(c)
            })
            .map(|(c, _)| *c)
            .collect()
    }

    /// traffic_congestion (yellow): avg speed < 20 over 5m with >= 3 readings.
    fn congested_cells(&self, events: &[Event], t: u64) -> Vec<CellId> {
        self.speed_by_cell(events, t.saturating_sub(5 * MINUTE), t)
            .into_iter()
            .filter(|(_, (avg, n))| *avg < 20.0 && *n >= 3)
            .map(|(c, _)| c)
            .collect()
    }

    /// gas_leak (red): max gas_lel over 2m >= 25.
    fn gas_alarm_cells(&self, events: &[Event], t: u64) -> Vec<CellId> {
        self.max_by_cell(events, "gas_lel", t.saturating_sub(2 * MINUTE), t)
            .into_iter()
            .filter(|(_, v)| *v >= 25.0)
            .map(|(c, _)| c)
            .collect()
    }

    /// heavy_rain (blue): rainfall sum over 1h >= 30, per district.
    fn heavy_rain_districts(&self, events: &[Event], t: u64) -> Vec<usize> {
        self.sum_by_district(events, "rainfall", t.saturating_sub(HOUR), t)
            .into_iter()
            .filter(|(_, mm)| *mm >= 30.0)
            .map(|(d, _)| d)
            .collect()
    }

    /// underpass_water (orange): max water_level over 5m > 0.25, per cell.
    fn water_cells(&self, events: &[Event], t: u64) -> Vec<CellId> {
        self.max_by_cell(events, "water_level", t.saturating_sub(5 * MINUTE), t)
            .into_iter()
            .filter(|(_, v)| *v > 0.25)
            .map(|(c, _)| c)
            .collect()
    }

    /// crowd_buildup (orange): >= 3 crowd reports over 15m in a district.
    fn crowd_districts(&self, events: &[Event], t: u64) -> Vec<usize> {
        let mut per: BTreeMap<usize, usize> = BTreeMap::new();
        for (_, d) in self.incidents(events, &["crowd"], t.saturating_sub(15 * MINUTE), t) {
            if let Some(d) = d {
                *per.entry(d).or_default() += 1;
            }
        }
        per.into_iter()
            .filter(|(_, n)| *n >= 3)
            .map(|(d, _)| d)
            .collect()
    }

    /// air_quality (blue): avg pm25 over 1h > 75, per district.
    fn air_districts(&self, events: &[Event], t: u64) -> Vec<usize> {
        let mut per: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
        for (cell, _, v) in self.sensor_values(events, "pm25", t.saturating_sub(HOUR), t) {
            if let Some(d) = self.city.district_of(cell) {
                let s = per.entry(d).or_default();
                s.0 += v;
                s.1 += 1;
            }
        }
        per.into_iter()
            .filter(|(_, (s, n))| s / *n as f64 > 75.0)
            .map(|(d, _)| d)
            .collect()
    }
}

fn district_index(city: &City, name: &str) -> usize {
    city.districts.iter().position(|d| d.name == name).unwrap()
}

#[test]
fn same_seed_same_events() {
    let city = beijing_city(7);
    for schedule in [Schedule::Demo, Schedule::Realistic] {
        let a = ndjson(&run(&city, 7, schedule, AFTERNOON, 20 * MINUTE).1);
        let b = ndjson(&run(&beijing_city(7), 7, schedule, AFTERNOON, 20 * MINUTE).1);
        let c = ndjson(&run(&city, 8, schedule, AFTERNOON, 20 * MINUTE).1);
        assert!(a == b, "{schedule:?}: same seed, different events");
        assert_ne!(a, c, "{schedule:?}: different seeds, same events");
    }
}

#[test]
fn slicing_time_does_not_change_events() {
    let city = beijing_city(3);
    let whole = run(&city, 3, Schedule::Demo, AFTERNOON, 4 * MINUTE).1;
    let mut sim = Simulator::new(&city, 3, AFTERNOON, Schedule::Demo);
    let mut sliced = Vec::new();
    let mut t = AFTERNOON;
    while t < AFTERNOON + 4 * MINUTE {
        t += 250;
        sim.advance_to(t, &mut sliced);
    }
    assert_eq!(ndjson(&whole), ndjson(&sliced));
    assert_eq!(sim.now_ms(), AFTERNOON + 4 * MINUTE);
}

#[test]
fn every_line_parses_back_in_time_order() {
    let city = beijing_city(11);
    let ctx = ParseContext {
        grid: city.grid.clone(),
        max_ts: u64::MAX,
    };
    let sensors: HashMap<Sym, CellId> = city.sensors.iter().map(|s| (s.id, s.cell)).collect();
    let segments: HashMap<Sym, CellId> = city.segments.iter().map(|s| (s.id, s.cell)).collect();
    for (schedule, span) in [
        (Schedule::Demo, 12 * MINUTE),
        (Schedule::Realistic, 90 * MINUTE),
    ] {
        let (_, events) = run(&city, 11, schedule, AFTERNOON, span);
        assert!(events.len() > 1000);
        let text = ndjson(&events);
        let mut previous = AFTERNOON;
        let (mut sensor_events, mut id_only) = (0usize, 0usize);
        for (line, event) in text.lines().zip(&events) {
            let parsed =
                parse_line(line.as_bytes(), &ctx).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(&parsed, event, "{line}");
            assert!(
                event.ts >= previous && event.ts < AFTERNOON + span,
                "{line}"
            );
            previous = event.ts;
            match (&event.body, &event.location) {
                (Body::Sensor(s), Location::Cell(c)) => {
                    sensor_events += 1;
                    assert_eq!(sensors[&sym(&s.sensor_id)], *c, "{line}");
                }
                (Body::Sensor(s), Location::Sensor(id)) => {
                    sensor_events += 1;
                    id_only += 1;
                    assert_eq!(s.sensor_id, *id);
                }
                (Body::Traffic(t), Location::Cell(c)) => {
                    assert_eq!(segments[&sym(&t.segment_id)], *c, "{line}")
                }
                (Body::Incident(i), Location::Cell(c)) => {
                    assert!(city.district_of(*c).is_some(), "{line}");
                    assert!((1..=4).contains(&i.severity.unwrap()));
                    assert!(i.incident_id.starts_with("inc-2026071"), "{line}");
                }
                _ => panic!("unexpected location: {line}"),
            }
        }
        let share = id_only as f64 / sensor_events as f64;
        assert!((0.07..0.13).contains(&share), "{schedule:?}: {share}");
    }
}

#[test]
fn reference_file_round_trips() {
    let city = beijing_city(5);
    let text = serde_json::to_string_pretty(&city.reference_file()).unwrap();
    let file: ReferenceFile = serde_json::from_str(&text).unwrap();
    assert!(file.district_boundaries.is_none());
    let reference = Reference::from_file(file, None).unwrap();
    assert_eq!(reference.districts.len(), 16);
    assert_eq!(reference.sensors.len(), city.sensors.len());
    assert_eq!(reference.segments.len(), city.segments.len());
    for (cell, d) in city.cell_district.iter().enumerate() {
        assert_eq!(
            reference.cell_district[cell],
            d.map(|d| city.districts[d].id)
        );
    }
    let wl = reference.sensors[&Sym::intern("wl-0001").unwrap()].clone();
    assert_eq!(wl.kind.map(|k| k.as_str()), Some("water_level"));
    let seg = &reference.segments[&Sym::intern("seg-0001").unwrap()];
    assert!(matches!(
        seg.road_class.as_deref(),
        Some("expressway" | "arterial" | "secondary")
    ));
    // The server's own form keeps the polygons for the map.
    assert!(city.reference().boundaries.is_some());
}

#[test]
fn demo_raises_all_four_colours_within_a_minute() {
    for seed in [1, 2, 42] {
        let city = beijing_city(seed);
        let view = View::new(&city);
        let (_, events) = run(&city, seed, Schedule::Demo, AFTERNOON, MINUTE);
        let t = AFTERNOON + MINUTE;
        assert!(
            !view.heavy_rain_districts(&events, t).is_empty(),
            "seed {seed}: no blue (heavy rain)"
        );
        assert!(
            !view.air_districts(&events, t).is_empty(),
            "seed {seed}: no blue (air)"
        );
        assert!(
            !view.congested_cells(&events, t).is_empty(),
            "seed {seed}: no yellow"
        );
        assert!(
            !view.water_cells(&events, t).is_empty(),
            "seed {seed}: no orange (water)"
        );
        assert!(
            !view.crowd_districts(&events, t).is_empty(),
            "seed {seed}: no orange (crowd)"
        );
        assert!(
            !view.flooding_cells(&events, t).is_empty(),
            "seed {seed}: no red (flooding)"
        );
        assert!(
            !view.gas_alarm_cells(&events, t).is_empty(),
            "seed {seed}: no red (gas)"
        );
    }
}

#[test]
fn demo_scenarios_pass_and_readings_return_to_normal() {
    let seed = 42;
    let city = beijing_city(seed);
    let view = View::new(&city);
    let (sim, events) = run(&city, seed, Schedule::Demo, AFTERNOON, 16 * MINUTE);
    let first_cycle: Vec<&ScenarioRecord> = sim
        .scenario_log()
        .iter()
        .filter(|s| s.peak_ms < AFTERNOON + MINUTE)
        .collect();
    let second_cycle: Vec<&ScenarioRecord> = sim
        .scenario_log()
        .iter()
        .filter(|s| s.peak_ms >= AFTERNOON + 10 * MINUTE && s.peak_ms < AFTERNOON + 11 * MINUTE)
        .collect();
    assert_eq!(first_cycle.len(), 5);
    assert_eq!(second_cycle.len(), 5);
    for s in &first_cycle {
        assert!(s.ends_ms <= AFTERNOON + 7 * MINUTE, "{s:?} lasts too long");
        assert!(s.ends_ms >= s.peak_ms + 2 * MINUTE, "{s:?} is too short");
    }
    let of_kind = |cycle: &[&ScenarioRecord], kind| {
        cycle
            .iter()
            .find(|s| s.kind == kind)
            .copied()
            .cloned()
            .unwrap()
    };
    let storm = of_kind(&first_cycle, ScenarioKind::Rainstorm);
    let storm_district = district_index(&city, storm.district.as_deref().unwrap());
    let later_storm = of_kind(&second_cycle, ScenarioKind::Rainstorm);
    assert_ne!(
        storm.district, later_storm.district,
        "the second cycle storms elsewhere"
    );
    let later_storm_district = district_index(&city, later_storm.district.as_deref().unwrap());

    // The storm's district: the last water reading of every underpass and
    // the last five minutes of rain are dry again before the next storm.
    // The third cycle's storm front arrives five minutes before it is due.
    let end = AFTERNOON + 15 * MINUTE;
    let mut last_water: BTreeMap<Sym, f64> = BTreeMap::new();
    for (cell, id, v) in view.sensor_values(&events, "water_level", AFTERNOON, end) {
        if city.district_of(cell) == Some(storm_district) {
            last_water.insert(id, v);
        }
    }
    assert!(!last_water.is_empty());
    for (id, v) in &last_water {
        assert!(*v <= 0.05, "{id} still reads {v} m");
    }
    for (cell, id, v) in view.sensor_values(&events, "rainfall", AFTERNOON + 10 * MINUTE, end) {
        if city.district_of(cell) == Some(storm_district) {
            assert_eq!(v, 0.0, "{id} still reports rain");
        }
    }
    // Rain elsewhere belongs to the second cycle's storm only.
    for (cell, id, v) in view.sensor_values(&events, "rainfall", AFTERNOON + 10 * MINUTE, end) {
        if v > 0.0 {
            assert_eq!(city.district_of(cell), Some(later_storm_district), "{id}");
        }
    }

    // The first cycle's conditions no longer hold at its places well
    // before the second cycle is due (sliding windows included, except the
    // hour-long blue ones and the 15-minute crowd count).
    let t = AFTERNOON + 10 * MINUTE;
    let first_cells: BTreeSet<CellId> = first_cycle
        .iter()
        .filter(|s| s.kind != ScenarioKind::CrowdBuildup)
        .flat_map(|s| s.cells.iter().copied())
        .collect();
    let second_storm_cells: BTreeSet<CellId> = city.districts[later_storm_district]
        .cells
        .iter()
        .copied()
        .collect();
    let still = |cells: Vec<CellId>| -> Vec<CellId> {
        cells
            .into_iter()
            .filter(|c| first_cells.contains(c) && !second_storm_cells.contains(c))
            .collect()
    };
    assert_eq!(still(view.flooding_cells(&events, t)), Vec::<CellId>::new());
    assert_eq!(still(view.water_cells(&events, t)), Vec::<CellId>::new());
    assert_eq!(
        still(view.congested_cells(&events, t)),
        Vec::<CellId>::new()
    );
    assert_eq!(
        still(view.gas_alarm_cells(&events, t)),
        Vec::<CellId>::new()
    );
    let crowd = of_kind(&first_cycle, ScenarioKind::CrowdBuildup);
    let crowd_district = district_index(&city, crowd.district.as_deref().unwrap());
    assert!(!view
        .crowd_districts(&events, crowd.peak_ms + 15 * MINUTE + 3 * MINUTE)
        .contains(&crowd_district));

    // Air stations of the first episode read normally again, and the
    // hourly average has recovered.
    let air = of_kind(&first_cycle, ScenarioKind::AirEpisode);
    let air_district = district_index(&city, air.district.as_deref().unwrap());
    for (cell, id, v) in view.sensor_values(&events, "pm25", air.ends_ms, end) {
        if city.district_of(cell) == Some(air_district) {
            assert!(v <= 60.0, "{id} reads {v}");
        }
    }
    assert!(!view
        .air_districts(&events, air.ends_ms + 5 * MINUTE)
        .contains(&air_district));

    // Gas: every detector reads normally once the leak is fixed.
    let gas = of_kind(&first_cycle, ScenarioKind::GasLeak);
    for (_, id, v) in view.sensor_values(&events, "gas_lel", gas.ends_ms, AFTERNOON + 10 * MINUTE) {
        assert!(v <= 5.0, "{id} reads {v} %LEL");
    }
    // Traffic in the first cycle's jam is back to its usual speeds.
    let jam = of_kind(&first_cycle, ScenarioKind::Congestion);
    let speeds = view.speed_by_cell(&events, jam.ends_ms, AFTERNOON + 10 * MINUTE);
    for c in &jam.cells {
        if let Some((avg, _)) = speeds.get(c) {
            assert!(*avg >= 20.0, "cell {c} still at {avg} km/h");
        }
    }
}

#[test]
fn later_demo_cycles_raise_alerts_at_new_places() {
    let seed = 9;
    let city = beijing_city(seed);
    let view = View::new(&city);
    let (sim, events) = run(&city, seed, Schedule::Demo, AFTERNOON, 23 * MINUTE);
    for cycle in 1..=2u64 {
        let base = AFTERNOON + cycle * 10 * MINUTE;
        let records: Vec<&ScenarioRecord> = sim
            .scenario_log()
            .iter()
            .filter(|s| s.peak_ms >= base && s.peak_ms < base + MINUTE)
            .collect();
        assert_eq!(records.len(), 5, "cycle {cycle}");
        let storm = records
            .iter()
            .find(|s| s.kind == ScenarioKind::Rainstorm)
            .unwrap();
        let t = base + 90 * SECOND;
        let flooded = view.flooding_cells(&events, t);
        assert!(
            storm.cells.iter().any(|c| flooded.contains(c)),
            "cycle {cycle}: {storm:?} {flooded:?}"
        );
        let jam = records
            .iter()
            .find(|s| s.kind == ScenarioKind::Congestion)
            .unwrap();
        let congested = view.congested_cells(&events, base + 2 * MINUTE);
        assert!(
            jam.cells.iter().any(|c| congested.contains(c)),
            "cycle {cycle}: {jam:?}"
        );
        let gas = records
            .iter()
            .find(|s| s.kind == ScenarioKind::GasLeak)
            .unwrap();
        assert!(
            view.gas_alarm_cells(&events, base + MINUTE)
                .contains(&gas.cells[0]),
            "cycle {cycle}"
        );
        let crowd = records
            .iter()
            .find(|s| s.kind == ScenarioKind::CrowdBuildup)
            .unwrap();
        let crowd_district = district_index(&city, crowd.district.as_deref().unwrap());
        assert!(
            view.crowd_districts(&events, base + MINUTE)
                .contains(&crowd_district),
            "cycle {cycle}"
        );
    }
}

#[test]
fn readings_stay_in_their_normal_ranges_in_quiet_places() {
    let seed = 4;
    let city = beijing_city(seed);
    let view = View::new(&city);
    let (sim, events) = run(&city, seed, Schedule::Demo, AFTERNOON, 8 * MINUTE);
    let touched: BTreeSet<usize> = sim
        .scenario_log()
        .iter()
        .filter_map(|s| s.district.as_deref())
        .map(|d| district_index(&city, d))
        .collect();
    // A venue's ring may reach into the next district.
    let touched_cells: BTreeSet<CellId> = sim
        .scenario_log()
        .iter()
        .flat_map(|s| s.cells.iter().copied())
        .collect();
    let mut seen = BTreeSet::new();
    for e in &events {
        let Some(d) = view.district(e) else { continue };
        if touched.contains(&d) || touched_cells.contains(&view.cell(e)) {
            continue;
        }
        match &e.body {
            Body::Sensor(s) => {
                let v = s.value;
                let ok = match s.kind.as_str() {
                    "water_level" => (0.0..=0.05).contains(&v),
                    "rainfall" => v == 0.0,
                    "pm25" => (20.0..=60.0).contains(&v),
                    "gas_lel" => (0.0..=5.0).contains(&v),
                    other => panic!("unexpected kind {other}"),
                };
                assert!(ok, "{} {} = {v}", s.sensor_id, s.kind);
                seen.insert(s.kind.as_str());
            }
            Body::Traffic(t) => {
                let seg = city.segments.iter().find(|s| t.segment_id == s.id).unwrap();
                let (lo, hi) = seg.class.speed_range();
                assert!(
                    t.speed_kmh >= lo * 0.95 && t.speed_kmh <= hi * 1.05,
                    "{} {}",
                    seg.name,
                    t.speed_kmh
                );
                assert!(t.flow.unwrap() > 0.0 && t.occupancy.unwrap() < 40.0);
            }
            Body::Incident(_) => {}
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[test]
fn realistic_schedule_stages_every_kind_in_the_first_hour() {
    let seed = 42;
    let city = beijing_city(seed);
    let view = View::new(&city);
    let (sim, events) = run(&city, seed, Schedule::Realistic, AFTERNOON, 75 * MINUTE);
    let kinds: BTreeSet<ScenarioKind> = sim
        .scenario_log()
        .iter()
        .filter(|s| s.starts_ms < AFTERNOON + HOUR)
        .map(|s| s.kind)
        .collect();
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    let end = AFTERNOON + 75 * MINUTE;
    let max = |kind| {
        view.sensor_values(&events, kind, AFTERNOON, end)
            .into_iter()
            .map(|(_, _, v)| v)
            .fold(f64::MIN, f64::max)
    };
    assert!(max("water_level") > 0.3);
    assert!(max("gas_lel") >= 25.0);
    assert!(!view
        .incidents(&events, &["flood"], AFTERNOON, end)
        .is_empty());
    let crowd_at_some_point = (1..=15).any(|m| {
        !view
            .crowd_districts(&events, AFTERNOON + m * 5 * MINUTE)
            .is_empty()
    });
    assert!(crowd_at_some_point);
    // A realistic rate: about 100,000 events an hour from the whole city.
    let per_hour = events.len() as f64 / 1.25;
    assert!((80_000.0..130_000.0).contains(&per_hour), "{per_hour}");
}

#[test]
fn write_simulation_writes_events_and_reference() {
    let dir = std::env::temp_dir().join(format!("jingzhi-sim-{}-batch", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("city.ndjson");
    let summary =
        write_simulation(&SimulationOptions::default_city(6, 4000, AFTERNOON), &out).unwrap();
    assert_eq!(summary.events, 4000);
    assert_eq!(summary.sensor + summary.traffic + summary.incident, 4000);
    assert!(summary.sampled < 1.0);
    assert_eq!(summary.reference, dir.join("city.reference.json"));
    let span = summary.last_ts.unwrap() - summary.first_ts.unwrap();
    assert!(span >= 55 * MINUTE, "{span}");
    assert!(summary.to_string().contains("4000 events"), "{summary}");

    let reference = Reference::load(&summary.reference).unwrap();
    let ctx = ParseContext {
        grid: reference.grid.clone(),
        max_ts: u64::MAX,
    };
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 4000);
    for line in text.lines() {
        let e = parse_line(line.as_bytes(), &ctx).unwrap();
        match &e.body {
            Body::Sensor(s) => {
                assert!(reference.sensors.contains_key(&sym(&s.sensor_id)), "{line}")
            }
            Body::Traffic(t) => assert!(
                reference.segments.contains_key(&sym(&t.segment_id)),
                "{line}"
            ),
            Body::Incident(_) => {}
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn w1_shape_mirrors_the_benchmark_generator() {
    let dir = std::env::temp_dir().join(format!("jingzhi-sim-{}-w1", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("w1.ndjson");
    let n = 20_000;
    let summary = write_w1_shape(42, n, &out).unwrap();
    assert_eq!(summary.hot_cells, 200);
    assert_eq!(summary.sensor + summary.traffic + summary.incident, n);
    let share = |k: usize| k as f64 / n as f64;
    assert!((share(summary.sensor) - 0.60).abs() < 0.02, "{summary}");
    assert!((share(summary.traffic) - 0.35).abs() < 0.02, "{summary}");
    assert!((share(summary.incident) - 0.05).abs() < 0.01, "{summary}");
    let ctx = ParseContext::new(jingzhi_rules::space::Grid::default(), 0, u64::MAX);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut previous = 0;
    for line in text.lines() {
        assert!(line.starts_with("{\"stream\":\""), "{line}");
        let e = parse_line(line.as_bytes(), &ctx).unwrap_or_else(|err| panic!("{line}: {err}"));
        assert!(e.ts >= previous && e.ts >= 1_767_225_600_000 && e.ts < 1_767_225_600_000 + HOUR);
        previous = e.ts;
        let Location::Cell(cell) = e.location else {
            panic!("{line}")
        };
        assert!(cell < 10_000);
        if let Body::Traffic(t) = &e.body {
            assert_eq!((t.speed_kmh * 4.0).fract(), 0.0, "{line}");
            assert!((3.0..=80.0).contains(&t.speed_kmh), "{line}");
        }
    }
    let same = write_w1_shape(42, n, &out).unwrap();
    assert_eq!(same, summary);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The demo's promises hold whatever the seed and the hour (rush hours and
/// night included): every colour in the first minute, every later cycle's
/// red and yellow soon after it is due, and no jams outside the scenarios.
#[test]
fn demo_holds_across_seeds_and_hours() {
    let mut failures = Vec::new();
    for seed in 0..10u64 {
        let city = beijing_city(seed);
        let view = View::new(&city);
        let hours = [0, 18 * HOUR, 4 * HOUR, 13 * HOUR, 21 * HOUR];
        let start = AFTERNOON + hours[seed as usize % 5] + seed * 7919;
        let (sim, events) = run(&city, seed, Schedule::Demo, start, 23 * MINUTE);
        let t = start + MINUTE;
        let first_minute = [
            (
                "heavy rain",
                !view.heavy_rain_districts(&events, t).is_empty(),
            ),
            ("air quality", !view.air_districts(&events, t).is_empty()),
            ("congestion", !view.congested_cells(&events, t).is_empty()),
            ("underpass water", !view.water_cells(&events, t).is_empty()),
            ("crowd", !view.crowd_districts(&events, t).is_empty()),
            ("flooding", !view.flooding_cells(&events, t).is_empty()),
            ("gas", !view.gas_alarm_cells(&events, t).is_empty()),
        ];
        for (rule, holds) in first_minute {
            if !holds {
                failures.push(format!("seed {seed}: no {rule} in the first minute"));
            }
        }
        for cycle in 1..=2u64 {
            let base = start + cycle * 10 * MINUTE;
            let records: Vec<&ScenarioRecord> = sim
                .scenario_log()
                .iter()
                .filter(|s| s.peak_ms >= base && s.peak_ms < base + MINUTE)
                .collect();
            let find = |kind| records.iter().find(|s| s.kind == kind).unwrap();
            let storm = find(ScenarioKind::Rainstorm);
            let flooded = view.flooding_cells(&events, base + 90 * SECOND);
            if !storm.cells.iter().any(|c| flooded.contains(c)) {
                failures.push(format!("seed {seed} cycle {cycle}: no flooding"));
            }
            let storm_district = district_index(&city, storm.district.as_deref().unwrap());
            if !view
                .heavy_rain_districts(&events, base + MINUTE)
                .contains(&storm_district)
            {
                failures.push(format!("seed {seed} cycle {cycle}: no heavy rain"));
            }
            let jam = find(ScenarioKind::Congestion);
            let congested = view.congested_cells(&events, base + 2 * MINUTE);
            if !jam.cells.iter().any(|c| congested.contains(c)) {
                failures.push(format!("seed {seed} cycle {cycle}: no congestion"));
            }
            let gas = find(ScenarioKind::GasLeak);
            if !view
                .gas_alarm_cells(&events, base + MINUTE)
                .contains(&gas.cells[0])
            {
                failures.push(format!("seed {seed} cycle {cycle}: no gas alarm"));
            }
        }
        // Between cycles, only the scenarios' own cells (and the storm's
        // rain-slowed roads) may be congested.
        let quiet = start + 5 * MINUTE + 30 * SECOND;
        let staged: BTreeSet<CellId> = sim
            .scenario_log()
            .iter()
            .filter(|s| s.peak_ms < start + MINUTE)
            .flat_map(|s| s.cells.iter().copied())
            .collect();
        let stray = view
            .congested_cells(&events, quiet)
            .into_iter()
            .filter(|c| !staged.contains(c))
            .count();
        if stray > 3 {
            failures.push(format!(
                "seed {seed}: {stray} congested cells outside the scenarios"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// An event's entity id as the reference data's symbol.
fn sym(id: &str) -> Sym {
    Sym::intern(id).expect("simulated ids are valid symbols")
}

// --- the full-scale city and --rate ----------------------------------------

/// Events per second of event time a simulator makes over `span`.
fn measured_rate(city: &City, seed: u64, scale: f64, span: u64) -> f64 {
    let mut sim = Simulator::with_interval_scale(city, seed, AFTERNOON, Schedule::Realistic, scale);
    let mut batch = Vec::new();
    let mut count = 0usize;
    let mut t = AFTERNOON;
    while t < AFTERNOON + span {
        t += 10 * MINUTE;
        sim.advance_to(t.min(AFTERNOON + span), &mut batch);
        count += batch.len();
        batch.clear();
    }
    count as f64 / (span as f64 / 1000.0)
}

#[test]
fn full_scale_beijing_has_the_documented_counts_and_places() {
    let city = full_scale_beijing(42);
    let plan = city::full_scale_plan();
    // The grid: about 500 m cells at Beijing's latitude.
    let g = &city.grid;
    assert_eq!((g.cols, g.rows), (355, 370));
    let (dx, dy) = (
        (g.east - g.west) / f64::from(g.cols),
        (g.north - g.south) / f64::from(g.rows),
    );
    let km_east = dx * 111.32 * 39.9f64.to_radians().cos();
    let km_north = dy * 111.0;
    assert!((0.49..0.53).contains(&km_east), "{km_east}");
    assert!((0.49..0.51).contains(&km_north), "{km_north}");

    let count = |k: SensorKind| city.sensors.iter().filter(|s| s.kind == k).count();
    assert_eq!(count(SensorKind::WaterLevel), 2_000);
    assert_eq!(count(SensorKind::Rainfall), 1_000);
    assert_eq!(count(SensorKind::Pm25), 1_500);
    assert_eq!(count(SensorKind::GasLel), 15_000);
    assert_eq!(city.segments.len(), 30_000);
    assert_eq!(plan.road_segments, 30_000);

    // All sixteen districts have cells, and together they cover about the
    // municipality's 16,410 km².
    assert_eq!(city.districts.len(), 16);
    for d in &city.districts {
        assert!(
            d.cells.len() > 100,
            "{} has {} cells",
            d.name,
            d.cells.len()
        );
    }
    let cells: usize = city.districts.iter().map(|d| d.cells.len()).sum();
    let km2 = cells as f64 * km_east * km_north;
    assert!((15_500.0..17_300.0).contains(&km2), "{km2} km²");

    // Every sensor and segment lies in a cell of its district, with an id
    // of its own.
    for s in &city.sensors {
        assert_eq!(city.district_of(s.cell), Some(s.district), "{}", s.name);
    }
    for s in &city.segments {
        assert_eq!(city.district_of(s.cell), Some(s.district), "{}", s.name);
    }
    let ids: BTreeSet<Sym> = city
        .sensors
        .iter()
        .map(|s| s.id)
        .chain(city.segments.iter().map(|s| s.id))
        .collect();
    assert_eq!(ids.len(), city.sensors.len() + city.segments.len());

    // Dense in the six urban districts (about 8 % of the area), sparse
    // outside.
    let urban = |d: usize| city.districts[d].tier == city::DistrictTier::Urban;
    let urban_share = city.segments.iter().filter(|s| urban(s.district)).count() as f64
        / city.segments.len() as f64;
    assert!((0.4..0.8).contains(&urban_share), "{urban_share}");
    let micro = city
        .sensors
        .iter()
        .filter(|s| s.name.contains("微站"))
        .count();
    assert_eq!(micro, 1_500 - 67);

    // The natural rate is the documented 18,000 events/s.
    let natural = city.natural_rate();
    assert!((natural - 18_000.0).abs() < 20.0, "{natural}");
}

#[test]
fn cell_assignment_matches_the_point_in_polygon_test() {
    // The scanline assignment against the plain point test, on the default
    // grid and the real outlines.
    let geo: serde_json::Value = serde_json::from_str(crate::city::BEIJING_DISTRICTS).unwrap();
    let polygons = jingzhi_rules::space::district_polygons(&geo).unwrap();
    let grid = jingzhi_rules::space::Grid::default();
    let city = beijing_city(1);
    for cell in 0..grid.cell_count() {
        let (lon, lat) = grid.centre(cell);
        let slow = polygons.iter().position(|(.., p)| p.contains(lon, lat));
        assert_eq!(city.district_of(cell), slow, "cell {cell}");
    }
}

#[test]
fn rate_scales_the_default_city_over_hours() {
    let city = beijing_city(42);
    let natural = city.natural_rate();
    // About 100,000 events an hour, as the module documents.
    assert!((27.0..30.0).contains(&natural), "{natural}");
    for rate in [14.0, 60.0] {
        let scale = batch::interval_scale_for(&city, rate).unwrap();
        let got = measured_rate(&city, 42, scale, 4 * HOUR);
        assert!(
            (got / rate - 1.0).abs() < 0.03,
            "asked for {rate} events/s, got {got}"
        );
    }
}

#[test]
fn rate_scales_the_full_scale_city() {
    let city = full_scale_beijing(7);
    // Three hours at a low rate: every kind of source reports, scenarios
    // happen, and the file stays small.
    let rate = 40.0;
    let scale = batch::interval_scale_for(&city, rate).unwrap();
    let got = measured_rate(&city, 7, scale, 3 * HOUR);
    assert!(
        (got / rate - 1.0).abs() < 0.03,
        "asked for {rate}, got {got}"
    );
    // Ten seconds at the natural rate.
    let got = measured_rate(&city, 7, 1.0, 10 * SECOND);
    assert!((got / 18_000.0 - 1.0).abs() < 0.03, "natural: {got}");
}

#[test]
fn rates_a_city_cannot_make_are_refused() {
    let city = beijing_city(1);
    for rate in [0.0, -3.0, f64::NAN, f64::INFINITY, 0.001] {
        assert!(batch::interval_scale_for(&city, rate).is_err(), "{rate}");
    }
    let too_fast = batch::interval_scale_for(&city, 1e6).unwrap_err();
    assert!(too_fast.contains("at most"), "{too_fast}");
    assert!(batch::interval_scale_for(&city, 960.0).is_ok());
}

#[test]
fn rain_gauges_report_the_rain_since_their_last_report_at_any_rate() {
    // A storm of 60 mm/h for half an hour with ten-minute ramps: 40 mm.
    // Gauges reading every 5 minutes or eight times as often add up to the
    // same 40 mm, so an hourly rain sum means the same at every rate.
    let t0 = AFTERNOON;
    let rain = scenario::Envelope {
        start: t0,
        full: t0 + 10 * MINUTE,
        fade: t0 + 40 * MINUTE,
        end: t0 + 50 * MINUTE,
    };
    let storm = scenario::Rainstorm {
        district: 0,
        rain,
        peak_mm_h: 60.0,
        gauges: BTreeMap::new(),
        water: rain,
        water_peak: BTreeMap::new(),
        hot_cells: BTreeSet::new(),
    };
    for window in [5 * MINUTE, 5 * MINUTE / 8, 7 * SECOND] {
        let mut total = 0.0;
        let mut t = t0 + window;
        while t <= t0 + HOUR {
            total += storm.rain_mm_before(t, window);
            t += window;
        }
        assert!((total - 40.0).abs() < 0.5, "{window} ms: {total} mm");
    }
}

/// SHA-256 of the default city's file for seed 42, 20,000 events, from the
/// default start, as written before the full-scale city and `--rate` were
/// added: the default city's output must not change.
const DEFAULT_CITY_20K_SHA256: &str =
    "f003b7ea189db5a457b455c30cdd60994903b12d8d10785e52b29723a2f22429";

#[test]
fn the_default_city_writes_what_it_always_wrote() {
    let dir = std::env::temp_dir().join(format!("jingzhi-sim-{}-same", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("city.ndjson");
    let start = jingzhi_rules::time::parse_rfc3339("2026-07-15T08:00:00+08:00").unwrap();
    write_simulation(&SimulationOptions::default_city(42, 20_000, start), &out).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(crate::bench::sha256_hex(&bytes), DEFAULT_CITY_20K_SHA256);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_full_scale_city_writes_a_loadable_reference_of_reasonable_size() {
    let dir = std::env::temp_dir().join(format!("jingzhi-sim-{}-full", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("beijing.ndjson");
    let options = SimulationOptions {
        city: CityChoice::Beijing,
        seed: 3,
        events: 50_000,
        start_ms: AFTERNOON,
        rate: None,
    };
    let summary = write_simulation(&options, &out).unwrap();
    assert_eq!(summary.events, 50_000);
    let rate = summary.achieved_rate().unwrap();
    assert!((rate / 18_000.0 - 1.0).abs() < 0.05, "{rate}");
    assert!(
        summary.to_string().contains("events/s of event time"),
        "{summary}"
    );
    let size = std::fs::metadata(&summary.reference).unwrap().len();
    assert!(size < 20_000_000, "{size} bytes");
    let reference = Reference::load(&summary.reference).unwrap();
    assert_eq!(reference.grid, city::full_scale_grid());
    assert_eq!(reference.districts.len(), 16);
    assert_eq!(reference.sensors.len(), 19_500);
    assert_eq!(reference.segments.len(), 30_000);
    let ctx = ParseContext {
        grid: reference.grid.clone(),
        max_ts: u64::MAX,
    };
    let text = std::fs::read_to_string(&out).unwrap();
    for line in text.lines() {
        let e = parse_line(line.as_bytes(), &ctx).unwrap_or_else(|err| panic!("{line}: {err}"));
        let cell = match (&e.location, &e.body) {
            (Location::Cell(c), _) => *c,
            (Location::Sensor(id), _) => reference.sensors[id].cell,
            (Location::Segment(id), _) => reference.segments[id].cell,
        };
        assert!(reference.district_of(cell).is_some(), "{line}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
