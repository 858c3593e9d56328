//! The incremental engine against the batch oracle (`jingzhi_rules::oracle`)
//! on random rules and random scripts: out-of-order arrivals within the
//! window, late events beyond it, duplicate ids, entity-located events and
//! sensors moving between cells, windows from a second to an hour (with
//! and without `every`), dense bursts of events on few keys, and value-only
//! updates coalesced to one a second, with 1, 2 and 4 workers.
//!
//! Seeded and reproducible: `JINGZHI_SEED=<n>` replays a run (the seed is
//! printed on failure), `JINGZHI_CASES=<n>` sets the number of cases. A
//! failing case is shrunk and printed as a rule file and an NDJSON script
//! (events, and `{"watermark": ts}` / `{"reference": …}` lines in arrival
//! order) that reproduce it against `jingzhi serve --clock event`.
//!
//! Every new language construct gets its generator here.

use jingzhi_dataflow::{Engine, EngineConfig, EngineOutput, GroupKey, Time, WindowConfig};
use jingzhi_rules::event::{Body, Event, Incident, Location, Sensor, Traffic};
use jingzhi_rules::lang::{compile, render_diagnostics, CheckOptions, SourceFile};
use jingzhi_rules::oracle::{evaluate, OracleChange, OracleKey, OracleRow, Step};
use jingzhi_rules::plan::{RulePlan, TermStats};
use jingzhi_rules::space::{Reference, ReferenceChange, ReferenceFile, SensorRef};
use jingzhi_rules::Sym;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

const T0: Time = 1_767_225_600_000;
const RESOLUTION: Time = 1000;
/// Value-only updates within this much engine time are coalesced (both
/// sides follow the same rule); events arrive on 250 ms steps.
const UPDATE_INTERVAL: Time = 1000;
const CELLS: u32 = 6;
const SENSORS: usize = 3;

// ---------------------------------------------------------------- rules

#[derive(Clone, Debug)]
enum Filter {
    SensorKind(&'static str),
    SensorKindIn,
    ValueAbove(f64),
    SpeedBelow(f64),
    FlowPresent,
    IncidentKind(&'static str),
    SeverityAtLeast(u8),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

/// Where a term reads from.
#[derive(Copy, Clone, Debug, PartialEq)]
enum Source {
    SensorValue,
    TrafficSpeed,
    TrafficFlow,
    IncidentSeverity,
    CountSensor,
    CountTraffic,
    CountIncident,
    /// Only for count / count_distinct: a string field.
    SensorKind,
    TrafficSegment,
}

impl Source {
    fn stream(self) -> &'static str {
        match self {
            Source::SensorValue | Source::CountSensor | Source::SensorKind => "sensor",
            Source::TrafficSpeed
            | Source::TrafficFlow
            | Source::CountTraffic
            | Source::TrafficSegment => "traffic",
            Source::IncidentSeverity | Source::CountIncident => "incident",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Source::SensorValue => "sensor.value",
            Source::TrafficSpeed => "traffic.speed_kmh",
            Source::TrafficFlow => "traffic.flow",
            Source::IncidentSeverity => "incident.severity",
            Source::CountSensor => "sensor",
            Source::CountTraffic => "traffic",
            Source::CountIncident => "incident",
            Source::SensorKind => "sensor.kind",
            Source::TrafficSegment => "traffic.segment_id",
        }
    }

    fn is_count(self) -> bool {
        matches!(
            self,
            Source::CountSensor | Source::CountTraffic | Source::CountIncident
        )
    }

    fn is_text(self) -> bool {
        matches!(self, Source::SensorKind | Source::TrafficSegment)
    }
}

#[derive(Copy, Clone, Debug, PartialEq)]
enum Group {
    Cell,
    District,
    Segment,
    Sensor,
}

impl Group {
    fn name(self) -> &'static str {
        match self {
            Group::Cell => "cell",
            Group::District => "district",
            Group::Segment => "segment",
            Group::Sensor => "sensor",
        }
    }

    fn sources(self) -> Vec<Source> {
        use Source::*;
        match self {
            Group::Cell | Group::District => vec![
                SensorValue,
                TrafficSpeed,
                TrafficFlow,
                IncidentSeverity,
                CountSensor,
                CountTraffic,
                CountIncident,
                SensorKind,
                TrafficSegment,
            ],
            Group::Segment => vec![
                TrafficSpeed,
                TrafficFlow,
                IncidentSeverity,
                CountTraffic,
                CountIncident,
                TrafficSegment,
            ],
            Group::Sensor => vec![SensorValue, CountSensor, SensorKind],
        }
    }

    /// The stream a sequence or an absence reads, compatible with the group.
    fn pattern(self) -> (&'static str, &'static str) {
        match self {
            Group::Cell | Group::District => ("incident", "kind == \"flood\""),
            Group::Segment => ("traffic", "speed_kmh < 20"),
            Group::Sensor => ("sensor", "kind == \"water_level\""),
        }
    }
}

#[derive(Clone, Debug)]
struct TermSpec {
    agg: &'static str,
    source: Source,
    filter: Option<Filter>,
    tumbling: bool,
    seconds: u64,
    /// `every N s` after a sliding window.
    every: Option<u64>,
    rings: u32,
}

#[derive(Clone, Debug)]
enum Cond {
    Cmp(usize, &'static str, f64),
    Absent(u64),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

#[derive(Clone, Debug)]
struct RuleSpec {
    group: Group,
    severity: &'static str,
    ladder: Vec<(&'static str, Cond)>,
    terms: Vec<TermSpec>,
    when: Cond,
    hold: Option<u64>,
    clear: Option<Cond>,
    after: Option<u64>,
    inhibited: bool,
}

fn filter_text(f: &Filter) -> String {
    match f {
        Filter::SensorKind(k) | Filter::IncidentKind(k) => format!("kind == \"{k}\""),
        Filter::SensorKindIn => "kind in [\"water_level\", \"gas_lel\"]".into(),
        Filter::ValueAbove(x) => format!("value > {x}"),
        Filter::SpeedBelow(x) => format!("speed_kmh < {x}"),
        Filter::FlowPresent => "flow >= 0".into(),
        Filter::SeverityAtLeast(n) => format!("incident.severity >= {n}"),
        Filter::Not(a) => format!("not ({})", filter_text(a)),
        Filter::And(a, b) => format!("({}) and ({})", filter_text(a), filter_text(b)),
        Filter::Or(a, b) => format!("({}) or ({})", filter_text(a), filter_text(b)),
    }
}

fn cond_text(c: &Cond, group: Group) -> String {
    match c {
        Cond::Cmp(t, op, x) => format!("t{t} {op} {x}"),
        Cond::Absent(secs) => {
            let (stream, filter) = group.pattern();
            format!("absent({stream} where {filter}) over {secs}s")
        }
        Cond::And(a, b) => format!("({}) and ({})", cond_text(a, group), cond_text(b, group)),
        Cond::Or(a, b) => format!("({}) or ({})", cond_text(a, group), cond_text(b, group)),
        Cond::Not(a) => format!("not ({})", cond_text(a, group)),
    }
}

impl RuleSpec {
    fn text(&self, i: usize) -> String {
        let mut s = format!("rule r{i} \"规则 {i}\" {{\n");
        for (level, c) in &self.ladder {
            s.push_str(&format!(
                "  severity {level} when {}\n",
                cond_text(c, self.group)
            ));
        }
        s.push_str(&format!(
            "  severity {}\n  group by {}\n",
            self.severity,
            self.group.name()
        ));
        for (t, term) in self.terms.iter().enumerate() {
            let agg = if term.source.is_count() {
                "count"
            } else {
                term.agg
            };
            let filter = term
                .filter
                .as_ref()
                .map(|f| format!(" where {}", filter_text(f)))
                .unwrap_or_default();
            let window = if term.tumbling { "tumbling " } else { "" };
            let rings = match term.rings {
                0 => String::new(),
                1 => " within 1 ring".into(),
                n => format!(" within {n} rings"),
            };
            let every = match term.every {
                Some(e) if !term.tumbling && e <= term.seconds => format!(" every {e}s"),
                _ => String::new(),
            };
            s.push_str(&format!(
                "  let t{t} = {agg}({}{filter}) over {window}{}s{every}{rings}\n",
                term.source.arg(),
                term.seconds
            ));
        }
        let after = match self.after {
            Some(secs) => {
                let (stream, filter) = self.group.pattern();
                format!(" after {stream} where {filter} within {secs}s")
            }
            None => String::new(),
        };
        s.push_str(&format!(
            "  when {}{after}\n",
            cond_text(&self.when, self.group)
        ));
        if let Some(h) = self.hold {
            s.push_str(&format!("  for {h}s\n"));
        }
        if let Some(c) = &self.clear {
            s.push_str(&format!("  clear when {}\n", cond_text(c, self.group)));
        }
        if self.inhibited && i > 0 {
            s.push_str("  inhibited by r0\n");
        }
        s.push_str("}\n");
        s
    }
}

fn filter_for(stream: &'static str) -> BoxedStrategy<Filter> {
    let leaf: BoxedStrategy<Filter> = match stream {
        "sensor" => prop_oneof![
            prop::sample::select(vec!["water_level", "gas_lel", "rainfall"])
                .prop_map(Filter::SensorKind),
            Just(Filter::SensorKindIn),
            (0..8u8).prop_map(|x| Filter::ValueAbove(f64::from(x) * 0.5)),
        ]
        .boxed(),
        "traffic" => prop_oneof![
            (1..8u8).prop_map(|x| Filter::SpeedBelow(f64::from(x) * 5.0)),
            Just(Filter::FlowPresent),
        ]
        .boxed(),
        _ => prop_oneof![
            prop::sample::select(vec!["flood", "accident"]).prop_map(Filter::IncidentKind),
            (1..5u8).prop_map(Filter::SeverityAtLeast),
        ]
        .boxed(),
    };
    leaf.prop_recursive(2, 4, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| Filter::Not(Box::new(a))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
        ]
    })
    .boxed()
}

fn term_spec(group: Group) -> impl Strategy<Value = TermSpec> {
    (
        prop::sample::select(group.sources()),
        prop::sample::select(vec![
            "count",
            "sum",
            "avg",
            "min",
            "max",
            "last",
            "count_distinct",
        ]),
        any::<bool>(),
        // Short windows step by the resolution; long ones by a sixtieth
        // of their length, or by `every`.
        prop::sample::select(vec![1u64, 2, 3, 5, 10, 30, 120, 300, 600, 3600]),
        prop::option::weighted(0.25, prop::sample::select(vec![1u64, 2, 5, 30])),
        prop::sample::select(vec![0u32, 0, 0, 1, 2]),
    )
        .prop_flat_map(move |(source, agg, tumbling, seconds, every, rings)| {
            // Text fields can only be counted.
            let agg = if source.is_text() && !matches!(agg, "count" | "count_distinct") {
                "count_distinct"
            } else {
                agg
            };
            let rings = if group == Group::Cell { rings } else { 0 };
            (
                Just(source),
                Just(agg),
                prop::option::of(filter_for(source.stream())),
                Just(tumbling),
                Just(seconds),
                Just(every),
                Just(rings),
            )
        })
        .prop_map(
            |(source, agg, filter, tumbling, seconds, every, rings)| TermSpec {
                agg,
                source,
                filter,
                tumbling,
                seconds,
                every,
                rings,
            },
        )
}

fn cond(terms: usize, absence: bool) -> BoxedStrategy<Cond> {
    let cmp = (
        0..terms,
        prop::sample::select(vec![">", ">=", "<", "<=", "==", "!="]),
        (0..12u8).prop_map(|x| f64::from(x) * 0.5),
    )
        .prop_map(|(t, op, x)| Cond::Cmp(t, op, x));
    let leaf = if absence {
        prop_oneof![4 => cmp, 1 => prop::sample::select(vec![2u64, 5, 10]).prop_map(Cond::Absent)]
            .boxed()
    } else {
        cmp.boxed()
    };
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Cond::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Cond::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Cond::Not(Box::new(a))),
        ]
    })
    .boxed()
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    prop::sample::select(vec![
        Group::Cell,
        Group::Cell,
        Group::District,
        Group::Segment,
        Group::Sensor,
    ])
    .prop_flat_map(|group| (Just(group), prop::collection::vec(term_spec(group), 1..=3)))
    .prop_flat_map(|(group, terms)| {
        let n = terms.len();
        let absence = matches!(group, Group::Cell | Group::District | Group::Sensor);
        (
            Just(group),
            prop::sample::select(vec!["blue", "yellow", "orange", "red"]),
            prop::collection::vec(
                (prop::sample::select(vec!["orange", "red"]), cond(n, false)),
                0..=2,
            ),
            Just(terms),
            cond(n, absence),
            prop::option::weighted(0.25, 1..5u64),
            prop::option::weighted(0.25, cond(n, false)),
            prop::option::weighted(0.2, prop::sample::select(vec![3u64, 10, 20])),
            prop::bool::weighted(0.3),
        )
    })
    .prop_map(
        |(group, severity, ladder, terms, when, hold, clear, after, inhibited)| RuleSpec {
            group,
            severity,
            ladder,
            terms,
            when,
            hold,
            clear,
            after,
            inhibited,
        },
    )
}

// ---------------------------------------------------------------- events

#[derive(Clone, Debug)]
enum EventSpec {
    /// offset from the clock in 250 ms steps (negative: late), cell, kind, value
    Sensor(i32, u32, u8, u8, bool),
    Traffic(i32, u32, u8, Option<u8>),
    /// offset, cell, kind, severity, id (small, so ids repeat), on a segment
    Incident(i32, u32, u8, Option<u8>, u8, bool),
}

#[derive(Clone, Debug)]
enum StepSpec {
    Events(Vec<EventSpec>),
    /// Advance by this many 250 ms steps.
    Advance(u16),
    MoveSensor(usize, u32),
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    let offset = -140..60i32; // up to 35 s late, 15 s early
    prop_oneof![
        5 => (offset.clone(), 0..CELLS, 0..3u8, 0..20u8, prop::bool::weighted(0.2))
            .prop_map(|(o, c, k, v, by_id)| EventSpec::Sensor(o, c, k, v, by_id)),
        3 => (offset.clone(), 0..CELLS, 0..30u8, prop::option::of(0..10u8))
            .prop_map(|(o, c, s, f)| EventSpec::Traffic(o, c, s, f)),
        2 => (offset, 0..CELLS, 0..3u8, prop::option::of(1..5u8), 0..4u8, any::<bool>())
            .prop_map(|(o, c, k, s, id, seg)| EventSpec::Incident(o, c, k, s, id, seg)),
    ]
}

/// A dense burst: many readings on few keys within a few seconds, so that
/// slices combine many events.
fn burst_spec() -> impl Strategy<Value = EventSpec> {
    let offset = -8..8i32;
    prop_oneof![
        3 => (offset.clone(), 0..2u32, 0..3u8, 0..20u8, prop::bool::weighted(0.2))
            .prop_map(|(o, c, k, v, by_id)| EventSpec::Sensor(o, c, k, v, by_id)),
        2 => (offset, 0..2u32, 0..30u8, prop::option::of(0..10u8))
            .prop_map(|(o, c, s, f)| EventSpec::Traffic(o, c, s, f)),
    ]
}

fn step_spec() -> impl Strategy<Value = StepSpec> {
    prop_oneof![
        6 => prop::collection::vec(event_spec(), 1..12).prop_map(StepSpec::Events),
        1 => prop::collection::vec(burst_spec(), 20..50).prop_map(StepSpec::Events),
        5 => (0..40u16).prop_map(StepSpec::Advance),
        1 => (0..SENSORS, 0..CELLS).prop_map(|(s, c)| StepSpec::MoveSensor(s, c)),
    ]
}

// ---------------------------------------------------------------- a case

#[derive(Clone)]
struct Case {
    rules: Vec<RuleSpec>,
    steps: Vec<StepSpec>,
}

impl Case {
    fn rules_text(&self) -> String {
        self.rules
            .iter()
            .enumerate()
            .map(|(i, r)| r.text(i))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The script as the engine and the oracle see it, and its final clock.
    fn script(&self) -> (Vec<Step>, Time) {
        let mut clock = T0;
        let mut out = vec![Step::Advance(clock)];
        for step in &self.steps {
            match step {
                StepSpec::Events(events) => out.push(Step::Events(
                    events.iter().map(|e| make_event(e, clock)).collect(),
                )),
                StepSpec::Advance(n) => {
                    clock += u64::from(*n) * 250;
                    out.push(Step::Advance(clock));
                }
                StepSpec::MoveSensor(s, c) => out.push(Step::Reference(
                    ReferenceChange::UpsertSensor(sensor_ref(*s, *c)),
                )),
            }
        }
        // Let every window close within the script (the longest reach is a
        // tumbling hour's two hours).
        clock += 2 * 3_600_000 + 65_000;
        out.push(Step::Advance(clock));
        (out, clock)
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (steps, _) = self.script();
        writeln!(f, "\n--- rules (case.rules) ---\n{}", self.rules_text())?;
        writeln!(f, "--- script (case.ndjson: post event lines in order, watermark lines to /api/v1/watermark) ---")?;
        for s in steps {
            match s {
                Step::Events(events) => {
                    for e in events {
                        let mut line = String::new();
                        e.write_json(&mut line);
                        write!(f, "{line}")?;
                    }
                }
                Step::Advance(t) => writeln!(f, "{{\"watermark\":{t}}}")?,
                Step::Reference(c) => writeln!(
                    f,
                    "{{\"reference\":{}}}",
                    serde_json::to_string(&c).unwrap_or_default()
                )?,
            }
        }
        Ok(())
    }
}

fn sensor_ref(s: usize, cell: u32) -> SensorRef {
    SensorRef {
        id: Sym::intern(&format!("s{s}")).unwrap(),
        cell,
        kind: None,
        name: None,
    }
}

fn make_event(e: &EventSpec, clock: Time) -> Event {
    let ts = |o: i32| (clock as i64 + i64::from(o) * 250) as Time;
    match e {
        EventSpec::Sensor(o, cell, kind, value, by_id) => {
            let id = format!("s{}", *cell as usize % SENSORS);
            Event {
                ts: ts(*o),
                location: if *by_id {
                    Location::Sensor(Sym::intern(&id).unwrap())
                } else {
                    Location::Cell(*cell)
                },
                body: Body::Sensor(Sensor {
                    sensor_id: id.as_str().into(),
                    kind: Sym::intern(["water_level", "gas_lel", "rainfall"][*kind as usize])
                        .unwrap(),
                    value: f64::from(*value) * 0.25,
                    unit: None,
                }),
            }
        }
        EventSpec::Traffic(o, cell, speed, flow) => Event {
            ts: ts(*o),
            location: Location::Cell(*cell),
            body: Body::Traffic(Traffic {
                segment_id: format!("g{cell}").as_str().into(),
                speed_kmh: f64::from(*speed) * 1.5,
                flow: flow.map(f64::from),
                occupancy: None,
            }),
        },
        EventSpec::Incident(o, cell, kind, severity, id, on_segment) => Event {
            ts: ts(*o),
            location: Location::Cell(*cell),
            body: Body::Incident(Incident {
                incident_id: format!("i{id}").into(),
                kind: Sym::intern(["flood", "accident", "fire"][*kind as usize]).unwrap(),
                severity: *severity,
                segment_id: on_segment.then(|| format!("g{cell}").as_str().into()),
                description: None,
            }),
        },
    }
}

/// A 3 × 2 grid in two districts, with three sensors registered.
fn reference() -> Reference {
    let file: ReferenceFile = serde_json::from_value(serde_json::json!({
        "grid": {"west": 116.0, "south": 39.0, "east": 116.3, "north": 39.2, "cols": 3, "rows": 2},
        "districts": [{"id": "d1", "name": "东区"}, {"id": "d2", "name": "西区"}],
        "cells": [{"district": "d1", "cells": [0, 1, 3]}, {"district": "d2", "cells": [2, 4]}],
        "sensors": [{"id": "s0", "cell": 0}, {"id": "s1", "cell": 2}, {"id": "s2", "cell": 5}]
    }))
    .unwrap();
    Reference::from_file(file, None).unwrap()
}

fn compile_rules(text: &str) -> Vec<RulePlan> {
    let files = [SourceFile {
        name: "case.rules".into(),
        text: text.into(),
    }];
    let compiled = compile(
        &files,
        &CheckOptions {
            min_window_ms: RESOLUTION,
        },
    );
    assert!(
        !compiled.has_errors(),
        "the generator wrote an invalid rule:\n{text}\n{}",
        render_diagnostics(&compiled.diagnostics, &files)
    );
    compiled.plans
}

/// An alert row in a comparable form: severity, values, (count, sum, min, max) per term.
type FlatRow = (
    String,
    Vec<Option<f64>>,
    Vec<(u64, f64, f64, f64, f64, u64)>,
);
/// One change in a comparable form: time, rule, key, row (None: cleared).
type Flat = (Time, String, String, Option<FlatRow>);

fn flat_oracle(changes: Vec<OracleChange>) -> Vec<Flat> {
    changes
        .into_iter()
        .map(|c| {
            let key = match c.key {
                OracleKey::Cell(x) => format!("cell:{x}"),
                OracleKey::District(d) => format!("district:{d}"),
                OracleKey::Segment(s) => format!("segment:{s}"),
                OracleKey::Sensor(s) => format!("sensor:{s}"),
            };
            (c.time, c.rule, key, c.row.map(flat_row))
        })
        .collect()
}

fn flat_row(r: OracleRow) -> FlatRow {
    (
        r.severity.name().into(),
        r.values,
        r.stats.iter().map(stats).collect(),
    )
}

fn stats(s: &TermStats) -> (u64, f64, f64, f64, f64, u64) {
    (s.count, s.sum, s.min, s.max, s.last, s.distinct)
}

fn run_engine(plans: &[RulePlan], steps: &[Step], end: Time, workers: usize) -> Vec<Flat> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = EngineConfig {
            workers,
            window: WindowConfig {
                resolution_ms: RESOLUTION,
                ..WindowConfig::default()
            },
            command_capacity: 64,
            grid: reference().grid,
            update_interval_ms: UPDATE_INTERVAL,
        };
        let (engine, out) = Engine::start(config, 0).unwrap();
        engine
            .update_reference(reference().as_changes())
            .await
            .unwrap();
        let mut names = BTreeMap::new();
        for p in plans {
            let id = engine.add_rule(Arc::new(p.clone())).await.unwrap();
            names.insert(id, p.name.clone());
        }
        for s in steps {
            match s {
                Step::Events(e) => {
                    engine.send_events(e.clone()).await.unwrap();
                }
                Step::Advance(t) => engine.advance(*t).await.unwrap(),
                Step::Reference(c) => engine.update_reference(vec![c.clone()]).await.unwrap(),
            }
        }
        let mut flat = Vec::new();
        loop {
            match out
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("engine output")
            {
                EngineOutput::Changes { time, updates } => {
                    let mut per_key: BTreeMap<(String, String), Option<_>> = BTreeMap::new();
                    for u in updates {
                        let key = match u.key {
                            GroupKey::Cell(x) => format!("cell:{x}"),
                            GroupKey::District(d) => format!("district:{d}"),
                            GroupKey::Segment(s) => format!("segment:{s}"),
                            GroupKey::Sensor(s) => format!("sensor:{s}"),
                        };
                        let entry = per_key.entry((names[&u.rule].clone(), key)).or_insert(None);
                        if u.diff > 0 {
                            *entry = Some((
                                u.row.severity.name().to_string(),
                                u.row.values.iter().map(|v| v.map(|x| x.0)).collect(),
                                u.row
                                    .evidence
                                    .iter()
                                    .map(|e| {
                                        (e.count, e.sum.0, e.min.0, e.max.0, e.last.0, e.distinct)
                                    })
                                    .collect(),
                            ));
                        }
                    }
                    for ((rule, key), row) in per_key {
                        flat.push((time, rule, key, row));
                    }
                }
                EngineOutput::Complete { through } if through > end => break,
                EngineOutput::Complete { .. } => {}
                EngineOutput::Stopped { reason } => panic!("engine stopped: {reason}"),
            }
        }
        engine.shutdown().await;
        flat
    })
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(rule_spec(), 1..=3),
        prop::collection::vec(step_spec(), 1..40),
        prop::option::of(0..3usize),
    )
        .prop_map(|(mut rules, steps, twin)| {
            // Sometimes a second rule with the same terms under another
            // name: terms are computed once for every rule that uses them,
            // and each rule must still get exactly its own alerts.
            if let Some(i) = twin {
                let copy = rules[i % rules.len()].clone();
                rules.push(copy);
            }
            Case { rules, steps }
        })
}

#[test]
fn engine_matches_the_oracle_on_random_rules_and_scripts() {
    let seed: u64 = std::env::var("JINGZHI_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261128);
    let cases: u32 = std::env::var("JINGZHI_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let eventful = std::cell::Cell::new(0u32);
    let changes = std::cell::Cell::new(0usize);
    let result = runner.run(&case_strategy(), |case| {
        let plans = compile_rules(&case.rules_text());
        let (steps, end) = case.script();
        let expected = flat_oracle(evaluate(
            &plans,
            &reference(),
            &steps,
            RESOLUTION,
            UPDATE_INTERVAL,
        ));
        if !expected.is_empty() {
            eventful.set(eventful.get() + 1);
            changes.set(changes.get() + expected.len());
        }
        for workers in [1, 2, 4] {
            let got = run_engine(&plans, &steps, end, workers);
            if got != expected {
                if let Ok(path) = std::env::var("JINGZHI_DUMP") {
                    let _ = std::fs::write(&path, format!("engine:\n{got:#?}\noracle:\n{expected:#?}\n{case:?}"));
                }
                let first = got.iter().zip(&expected).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len()));
                return Err(TestCaseError::fail(format!(
                    "{workers} worker(s) disagree with the oracle at change {first}:\n  engine: {:?}\n  oracle: {:?}\n  ({} engine changes, {} oracle changes)",
                    got.get(first),
                    expected.get(first),
                    got.len(),
                    expected.len()
                )));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("seed {seed} (rerun with JINGZHI_SEED={seed}): {e}");
    }
    // A generator that never makes alerts would test nothing.
    println!(
        "{} of {cases} cases had alerts; {} changes compared",
        eventful.get(),
        changes.get()
    );
    assert!(
        eventful.get() * 3 >= cases,
        "too few cases raise alerts: {}",
        eventful.get()
    );
}
