//! What the sample rules and the tutorial promise, checked against the
//! reference semantics (`jingzhi_rules::oracle`): holds, hysteresis,
//! ladders, absence, inhibition, neighbourhoods and segment keys.

mod common;

use jingzhi_rules::event::{Body, Event, Incident, Location, Sensor, Traffic};
use jingzhi_rules::lang::{compile, render_diagnostics, CheckOptions, SourceFile};
use jingzhi_rules::oracle::{evaluate, OracleChange, OracleKey, Step};
use jingzhi_rules::plan::{RulePlan, Severity};
use jingzhi_rules::space::{Grid, Reference};
use jingzhi_rules::Sym;
use std::collections::BTreeMap;

const T0: u64 = 1_767_225_600_000;
const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const CELL: u32 = 5050;

fn sym(s: &str) -> Sym {
    Sym::intern(s).unwrap()
}

fn examples() -> Vec<RulePlan> {
    let files = common::examples();
    let compiled = compile(&files, &CheckOptions::default());
    assert!(
        !compiled.has_errors(),
        "{}",
        render_diagnostics(&compiled.diagnostics, &files)
    );
    compiled.plans
}

fn plans(text: &str) -> Vec<RulePlan> {
    let files = [SourceFile {
        name: "t.rules".into(),
        text: text.into(),
    }];
    let compiled = compile(&files, &CheckOptions::default());
    assert!(
        !compiled.has_errors(),
        "{}",
        render_diagnostics(&compiled.diagnostics, &files)
    );
    compiled.plans
}

fn water(at: u64, cell: u32, sensor: &str, metres: f64) -> Event {
    Event {
        ts: T0 + at,
        location: Location::Cell(cell),
        body: Body::Sensor(Sensor {
            sensor_id: sensor.into(),
            kind: sym("water_level"),
            value: metres,
            unit: None,
        }),
    }
}

fn gas(at: u64, cell: u32, lel: f64) -> Event {
    Event {
        ts: T0 + at,
        location: Location::Cell(cell),
        body: Body::Sensor(Sensor {
            sensor_id: "gas-1".into(),
            kind: sym("gas_lel"),
            value: lel,
            unit: None,
        }),
    }
}

fn traffic(at: u64, cell: u32, segment: &str, speed: f64) -> Event {
    Event {
        ts: T0 + at,
        location: Location::Cell(cell),
        body: Body::Traffic(Traffic {
            segment_id: segment.into(),
            speed_kmh: speed,
            flow: None,
            occupancy: None,
        }),
    }
}

fn incident(at: u64, cell: u32, kind: &str, id: &str, segment: Option<&str>) -> Event {
    Event {
        ts: T0 + at,
        location: Location::Cell(cell),
        body: Body::Incident(Incident {
            incident_id: id.into(),
            kind: sym(kind),
            severity: None,
            segment_id: segment.map(Into::into),
            description: None,
        }),
    }
}

/// Each event arrives live, at its own time; then the clock runs to `end`.
fn live(events: Vec<Event>, end: u64) -> Vec<Step> {
    let mut events = events;
    events.sort_by_key(|e| e.ts);
    let mut steps = Vec::new();
    for e in events {
        steps.push(Step::Advance(e.ts));
        steps.push(Step::Events(vec![e]));
    }
    steps.push(Step::Advance(T0 + end));
    steps
}

fn run(rules: &[RulePlan], steps: &[Step]) -> Vec<OracleChange> {
    evaluate(
        rules,
        &Reference::with_grid(Grid::default()),
        steps,
        SECOND,
        SECOND,
    )
}

/// One rule's alert on one key as (time since T0, severity or cleared),
/// keeping only the changes of state or colour.
fn timeline(changes: &[OracleChange], rule: &str, key: &OracleKey) -> Vec<(u64, Option<Severity>)> {
    let mut out: Vec<(u64, Option<Severity>)> = Vec::new();
    for c in changes.iter().filter(|c| c.rule == rule && &c.key == key) {
        let now = c.row.as_ref().map(|r| r.severity);
        if out.last().map(|(_, s)| *s) != Some(now) {
            out.push((c.time - T0, now));
        }
    }
    out
}

/// The alerts active at the end: rule → keys.
fn active(changes: &[OracleChange]) -> BTreeMap<String, Vec<OracleKey>> {
    let mut state: BTreeMap<(String, OracleKey), bool> = BTreeMap::new();
    for c in changes {
        state.insert((c.rule.clone(), c.key.clone()), c.row.is_some());
    }
    let mut out: BTreeMap<String, Vec<OracleKey>> = BTreeMap::new();
    for ((rule, key), on) in state {
        if on {
            out.entry(rule).or_default().push(key);
        }
    }
    out
}

fn only(rules: Vec<RulePlan>, name: &str) -> Vec<RulePlan> {
    rules.into_iter().filter(|p| p.name == name).collect()
}

#[test]
fn underpass_water_holds_grades_and_clears_with_hysteresis() {
    let rules = only(examples(), "underpass_water");
    // One reading a minute: 5 cm, then 12 cm, 30 cm, 9 cm and 5 cm, ten
    // minutes each.
    let events = (0..50)
        .map(|m| {
            let level = [0.05, 0.12, 0.30, 0.09, 0.05][m as usize / 10];
            water(m * MINUTE, CELL, "w1", level)
        })
        .collect();
    let changes = run(&rules, &live(events, 60 * MINUTE));
    assert_eq!(
        timeline(&changes, "underpass_water", &OracleKey::Cell(CELL)),
        [
            // 12 cm from 10m (+1 ms: it arrives then), held for a minute.
            (11 * MINUTE + 1, Some(Severity::Blue)),
            (20 * MINUTE + 1, Some(Severity::Orange)),
            // The 5-minute maximum falls to 9 cm when the last 30 cm reading
            // leaves it: below the raise threshold, above the clear one.
            (34 * MINUTE, Some(Severity::Blue)),
            // Below 8 cm: cleared.
            (44 * MINUTE, None),
        ]
    );
}

#[test]
fn a_hold_is_on_the_condition_not_on_single_readings() {
    // A 50 cm splash between two 5 cm readings, 20 seconds later.
    let events = vec![
        water(0, CELL, "w1", 0.05),
        water(MINUTE, CELL, "w1", 0.5),
        water(MINUTE + 20 * SECOND, CELL, "w1", 0.05),
    ];
    // Over a 30-second window the condition holds for 30 seconds only:
    // shorter than the hold, so nothing is raised.
    let short = plans(
        r#"rule splash "t" {
  severity blue
  group by cell
  let water = max(sensor.value where kind == "water_level") over 30s
  when water >= 0.1
  for 1m
}"#,
    );
    assert!(run(&short, &live(events.clone(), 10 * MINUTE)).is_empty());
    // Over the example's 5-minute maximum the splash stands for 5 minutes,
    // longer than its hold: the hold filters flicker of the condition, the
    // window decides how long one reading counts.
    let rules = only(examples(), "underpass_water");
    let changes = run(&rules, &live(events, 10 * MINUTE));
    assert_eq!(
        timeline(&changes, "underpass_water", &OracleKey::Cell(CELL)),
        [(2 * MINUTE + 1, Some(Severity::Red)), (6 * MINUTE, None)]
    );
}

#[test]
fn sensor_offline_waits_for_35_minutes_of_silence() {
    let rules = only(examples(), "sensor_offline");
    let key = OracleKey::Sensor("w1".into());
    // Regular 15-minute reports for two hours: no alert.
    let regular: Vec<Event> = (0..=8)
        .map(|i| water(i * 15 * MINUTE, CELL, "w1", 0.02))
        .collect();
    assert!(run(&rules, &live(regular.clone(), 2 * 60 * MINUTE)).is_empty());
    // One lost report leaves a 30-minute gap: still no alert.
    let lost_one: Vec<Event> = regular
        .iter()
        .filter(|e| e.ts != T0 + 15 * MINUTE)
        .cloned()
        .collect();
    assert!(run(&rules, &live(lost_one, 2 * 60 * MINUTE)).is_empty());
    // Silence after the last report: raised 35 minutes after it, and gone a
    // day after it, when the station has no data left.
    let changes = run(
        &rules,
        &live(vec![water(0, CELL, "w1", 0.02)], 25 * 60 * MINUTE),
    );
    assert_eq!(
        timeline(&changes, "sensor_offline", &key),
        [
            (35 * MINUTE, Some(Severity::Blue)),
            (24 * 60 * MINUTE, None)
        ]
    );
    // A buffered reading that arrives late ends the alert when it arrives,
    // not from its own time.
    let mut steps = live(vec![water(0, CELL, "w1", 0.02)], 40 * MINUTE);
    steps.push(Step::Events(vec![water(20 * MINUTE, CELL, "w1", 0.02)]));
    steps.push(Step::Advance(T0 + 50 * MINUTE));
    let changes = run(&rules, &steps);
    assert_eq!(
        timeline(&changes, "sensor_offline", &key),
        [(35 * MINUTE, Some(Severity::Blue)), (40 * MINUTE + 1, None)]
    );
}

#[test]
fn congestion_is_inhibited_where_an_underpass_floods() {
    let rules = examples();
    let flooded = CELL;
    let jammed = CELL + 10;
    let mut events = Vec::new();
    for s in 0..4 {
        events.push(traffic(s * 10 * SECOND, flooded, "g1", 8.0));
        events.push(traffic(s * 10 * SECOND, jammed, "g2", 12.0));
    }
    events.push(water(5 * SECOND, flooded, "w1", 0.5));
    events.push(incident(6 * SECOND, flooded, "flood", "i1", None));
    let changes = run(&rules, &live(events, 2 * MINUTE));
    let alerts = active(&changes);
    assert_eq!(alerts["underpass_flooding"], [OracleKey::Cell(flooded)]);
    assert_eq!(alerts["traffic_congestion"], [OracleKey::Cell(jammed)]);
    assert_eq!(alerts["underpass_water"], [OracleKey::Cell(flooded)]);
}

#[test]
fn chain_accidents_count_distinct_incidents_on_a_segment() {
    let rules = only(examples(), "expressway_chain_accidents");
    let key = OracleKey::Segment("g7".into());
    let slow = |at| traffic(at, CELL, "g7", 12.0);
    // The same accident reported twice is one accident.
    let once = vec![
        slow(0),
        incident(SECOND, CELL, "accident", "a1", Some("g7")),
        incident(2 * MINUTE, CELL + 1, "accident", "a1", Some("g7")),
    ];
    assert!(run(&rules, &live(once, 5 * MINUTE)).is_empty());
    // Two accidents, even in different cells, on one segment.
    let twice = vec![
        slow(0),
        incident(SECOND, CELL, "accident", "a1", Some("g7")),
        incident(2 * MINUTE, CELL + 1, "accident", "a2", Some("g7")),
        // Not on the segment: does not count.
        incident(3 * MINUTE, CELL, "accident", "a3", None),
    ];
    let changes = run(&rules, &live(twice, 5 * MINUTE));
    assert_eq!(
        timeline(&changes, "expressway_chain_accidents", &key),
        [(2 * MINUTE + 1, Some(Severity::Red))]
    );
}

#[test]
fn gas_in_the_next_cell_counts_for_a_crowd() {
    let rules = only(examples(), "gas_leak_near_crowd");
    let crowd = CELL;
    let next = CELL + 1;
    let far = CELL + 3;
    let near = vec![
        incident(0, crowd, "crowd", "c1", None),
        gas(MINUTE, next, 30.0),
    ];
    let alerts = active(&run(&rules, &live(near, 3 * MINUTE)));
    assert_eq!(alerts["gas_leak_near_crowd"], [OracleKey::Cell(crowd)]);
    let away = vec![
        incident(0, crowd, "crowd", "c1", None),
        gas(MINUTE, far, 30.0),
    ];
    assert!(active(&run(&rules, &live(away, 3 * MINUTE))).is_empty());
}

#[test]
fn a_sequence_needs_its_earlier_event_first() {
    let rules = plans(
        r#"rule slow_after_flood "积水后车速骤降" {
  severity orange
  group by cell
  let speed = avg(traffic.speed_kmh) over 5m
  when speed < 10 after incident where kind == "flood" within 15m
}"#,
    );
    let key = OracleKey::Cell(CELL);
    // The flood is reported, then traffic slows: raised.
    let flood_first = vec![
        incident(0, CELL, "flood", "f1", None),
        traffic(MINUTE, CELL, "g1", 5.0),
    ];
    let changes = run(&rules, &live(flood_first, 10 * MINUTE));
    assert_eq!(
        timeline(&changes, "slow_after_flood", &key),
        [(MINUTE + 1, Some(Severity::Orange)), (6 * MINUTE, None)]
    );
    // Traffic was already slow when the flood was reported: not raised.
    let slow_first = vec![
        traffic(0, CELL, "g1", 5.0),
        incident(MINUTE, CELL, "flood", "f1", None),
    ];
    assert!(run(&rules, &live(slow_first, 10 * MINUTE)).is_empty());
}

/// Value-only updates of an alert show at most once per update interval,
/// with the values current then; a change of severity shows at once.
#[test]
fn value_updates_are_coalesced_but_colours_are_not() {
    let rules = plans(
        r#"
rule deep "积水" {
  severity red when water >= 0.5
  severity blue
  group by cell
  let water = max(sensor.value where kind == "water_level") over 1m every 1s
  when water >= 0.1
}
"#,
    );
    // A reading every 200 ms, rising by 1 cm each time; red from 0.5 m.
    let events: Vec<Event> = (0..31)
        .map(|i| water(i * 200, CELL, "wl-1", 0.2 + 0.01 * i as f64))
        .collect();
    let steps = live(events, 3 * MINUTE);
    let changes = run(&rules, &steps);
    let key = OracleKey::Cell(CELL);
    let rows: Vec<(u64, Option<f64>)> = changes
        .iter()
        .filter(|c| c.key == key)
        .map(|c| (c.time - T0, c.row.as_ref().and_then(|r| r.values[0])))
        .collect();
    // Raised by the first reading (it arrives just after the clock reads
    // its time), then at most one update per second until the colour
    // changes, which shows at once.
    assert_eq!(rows[0], (1, Some(0.2)));
    for pair in rows.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let colour_change = b.1.is_some_and(|x| x >= 0.5) && a.1.is_some_and(|x| x < 0.5);
        assert!(
            b.0 >= a.0 + SECOND || colour_change || b.1.is_none(),
            "updates {a:?} then {b:?} less than a second apart"
        );
    }
    let red_at = rows
        .iter()
        .find(|(_, v)| v.is_some_and(|x| x >= 0.5))
        .expect("turns red");
    // The 31st reading (0.5 m) is taken at 6 s and counts from 6.001 s.
    assert_eq!(red_at.0, 6 * SECOND + 1, "{rows:?}");
    assert!(rows.len() < 20, "{} updates for 31 readings", rows.len());
    assert_eq!(rows.last().map(|r| r.1), Some(None), "clears at the end");
}
