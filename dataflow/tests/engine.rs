//! The engine against plain batch computations of the same windows.

use jingzhi_dataflow::{Engine, EngineConfig, EngineOutput, GroupKey, Time, WindowConfig};
use jingzhi_rules::event::{Body, Event, Incident, Location, Sensor, Traffic};
use jingzhi_rules::lang::{compile, render_diagnostics, CheckOptions, SourceFile};
use jingzhi_rules::plan::RulePlan;
use jingzhi_rules::Sym;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const T0: Time = 1_767_225_600_000;
const W: Time = 300_000;

fn compile_one(text: &str) -> RulePlan {
    let files = [SourceFile {
        name: "test.rules".into(),
        text: text.into(),
    }];
    let compiled = compile(&files, &CheckOptions::default());
    assert!(
        !compiled.has_errors(),
        "{}",
        render_diagnostics(&compiled.diagnostics, &files)
    );
    compiled.plans.into_iter().next().unwrap()
}

fn w1_plan() -> RulePlan {
    compile_one(
        r#"rule w1 "W1" {
  severity red
  group by cell
  let water = max(sensor.value where kind == "water_level") over tumbling 5m
  let speed = avg(traffic.speed_kmh) over tumbling 5m
  let incidents = count(incident) over tumbling 5m
  when water > 0.3 and speed < 15 and incidents >= 1
}"#,
    )
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn w1_events(n: usize, cells: u32, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed);
    let span = 3_600_000u64;
    (0..n)
        .map(|i| {
            let ts = T0 + (i as u64 * span) / n as u64;
            let cell = rng.below(u64::from(cells)) as u32;
            let hot = cell.is_multiple_of(3);
            let u = rng.below(100);
            let body = if u < 60 {
                let kind = ["water_level", "rainfall"][rng.below(2) as usize];
                let value = if hot {
                    0.2 + rng.below(60) as f64 / 100.0
                } else {
                    rng.below(25) as f64 / 100.0
                };
                Body::Sensor(Sensor {
                    sensor_id: format!("s{cell}").as_str().into(),
                    kind: Sym::intern(kind).unwrap(),
                    value,
                    unit: None,
                })
            } else if u < 95 {
                let q = if hot {
                    12 + rng.below(89)
                } else {
                    80 + rng.below(241)
                };
                Body::Traffic(Traffic {
                    segment_id: format!("g{cell}").as_str().into(),
                    speed_kmh: q as f64 * 0.25,
                    flow: None,
                    occupancy: None,
                })
            } else {
                Body::Incident(Incident {
                    incident_id: format!("i{i}").into(),
                    kind: Sym::intern("flood").unwrap(),
                    severity: None,
                    segment_id: None,
                    description: None,
                })
            };
            Event {
                ts,
                location: Location::Cell(cell),
                body,
            }
        })
        .collect()
}

/// The W1 answer computed directly: (cell, window) pairs.
fn w1_batch(events: &[Event]) -> BTreeSet<(u32, u64)> {
    #[derive(Default)]
    struct Acc {
        water: Option<f64>,
        speed_sum: f64,
        speed_n: u64,
        incidents: u64,
    }
    let mut acc: BTreeMap<(u32, u64), Acc> = BTreeMap::new();
    for e in events {
        let Location::Cell(cell) = e.location else {
            continue;
        };
        let a = acc.entry((cell, e.ts / W)).or_default();
        match &e.body {
            Body::Sensor(s) if s.kind.as_str() == "water_level" => {
                a.water = Some(a.water.map_or(s.value, |m: f64| m.max(s.value)))
            }
            Body::Sensor(_) => {}
            Body::Traffic(t) => {
                a.speed_sum += t.speed_kmh;
                a.speed_n += 1;
            }
            Body::Incident(_) => a.incidents += 1,
        }
    }
    acc.into_iter()
        .filter(|(_, a)| {
            a.water.is_some_and(|w| w > 0.3)
                && a.speed_n > 0
                && a.speed_sum / (a.speed_n as f64) < 15.0
                && a.incidents >= 1
        })
        .map(|(k, _)| k)
        .collect()
}

/// Runs events through the engine with the event clock (batches in order,
/// the clock following the largest time seen) and returns the alert set at
/// every time it changed.
fn run(
    plan: RulePlan,
    events: Vec<Event>,
    workers: usize,
    batch: usize,
    end: Time,
) -> Vec<(Time, BTreeSet<GroupKey>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let config = EngineConfig {
            workers,
            window: WindowConfig {
                resolution_ms: 1000,
                keep_history: true,
                min_history_ms: 0,
                ..WindowConfig::default()
            },
            command_capacity: 64,
            grid: Default::default(),
            update_interval_ms: 1000,
        };
        let (engine, out) = Engine::start(config, 0).unwrap();
        engine.add_rule(Arc::new(plan)).await.unwrap();
        for chunk in events.chunks(batch) {
            let max_ts = chunk.iter().map(|e| e.ts).max().unwrap();
            engine.send_events(chunk.to_vec()).await.unwrap();
            engine.advance(max_ts).await.unwrap();
        }
        engine.advance(end).await.unwrap();
        let mut counts: BTreeMap<GroupKey, isize> = BTreeMap::new();
        let mut history = Vec::new();
        loop {
            match out
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("engine output")
            {
                EngineOutput::Changes { time, updates } => {
                    // A changed alert is a retraction and an insertion at
                    // the same time, in no particular order.
                    for u in updates {
                        *counts.entry(u.key).or_default() += u.diff;
                    }
                    counts.retain(|_, c| *c != 0);
                    assert!(
                        counts.values().all(|&c| c == 1),
                        "an alert is active at most once"
                    );
                    history.push((time, counts.keys().copied().collect()));
                }
                EngineOutput::Complete { through } if through > end => break,
                EngineOutput::Complete { .. } => {}
                EngineOutput::Stopped { reason } => panic!("engine stopped: {reason}"),
            }
        }
        engine.shutdown().await;
        history
    })
}

/// Which alerts were active at the start of each closed window's report.
fn windows_reported(history: &[(Time, BTreeSet<GroupKey>)]) -> BTreeSet<(u32, u64)> {
    let mut out = BTreeSet::new();
    for (time, active) in history {
        if time.is_multiple_of(W) {
            for key in active {
                if let GroupKey::Cell(c) = key {
                    out.insert((*c, time / W - 1));
                }
            }
        }
    }
    out
}

#[test]
fn tumbling_w1_matches_batch_with_1_2_and_4_workers() {
    let events = w1_events(20_000, 40, 7);
    let expected = w1_batch(&events);
    assert!(
        expected.len() > 10,
        "the workload should produce alerts: {}",
        expected.len()
    );
    let end = T0 + 3_600_000 + 3 * W;
    for workers in [1, 2, 4] {
        let history = run(w1_plan(), events.clone(), workers, 997, end);
        assert_eq!(windows_reported(&history), expected, "workers = {workers}");
        assert!(
            history.last().unwrap().1.is_empty(),
            "every alert clears once windows pass"
        );
    }
}

#[test]
fn sliding_count_raises_and_clears_on_time() {
    let plan = compile_one(
        r#"rule three "three readings" {
  severity blue
  group by cell
  when count(sensor) over 10m >= 3
}"#,
    );
    let at = |ms: u64| Event {
        ts: T0 + ms,
        location: Location::Cell(5),
        body: Body::Sensor(Sensor {
            sensor_id: "s5".into(),
            kind: Sym::intern("rainfall").unwrap(),
            value: 1.0,
            unit: None,
        }),
    };
    // Three readings at 0 s, 60 s and 120 s: three in the window from 120 s
    // until the first leaves at 600 s.
    let events = vec![at(0), at(60_000), at(120_000)];
    let history = run(plan, events, 2, 1, T0 + 700_000);
    let changes: Vec<(Time, usize)> = history.iter().map(|(t, a)| (t - T0, a.len())).collect();
    assert_eq!(changes, vec![(120_000, 1), (600_000, 0)]);
}

#[test]
fn rules_sharing_terms_come_and_go_independently() {
    // Two rules over the same term (same stream, filter, value, window and
    // grouping), with different thresholds and aggregates: the term is
    // computed once, each rule is judged on it, and adding or removing one
    // rule leaves the other alone.
    let deep = compile_one(
        r#"rule deep "deep" {
  severity red
  group by cell
  when max(sensor.value where kind == "water_level") over 10m > 0.5
}"#,
    );
    let wet = compile_one(
        r#"rule wet "wet" {
  severity blue
  group by cell
  let level = avg(sensor.value where kind == "water_level") over 10m
  when level > 0.1
}"#,
    );
    let reading = |ms: u64, cell: u32, value: f64| Event {
        ts: T0 + ms,
        location: Location::Cell(cell),
        body: Body::Sensor(Sensor {
            sensor_id: format!("s{cell}").as_str().into(),
            kind: Sym::intern("water_level").unwrap(),
            value,
            unit: None,
        }),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let config = EngineConfig {
            workers: 2,
            window: WindowConfig {
                resolution_ms: 1000,
                keep_history: false,
                min_history_ms: 0,
                ..WindowConfig::default()
            },
            command_capacity: 64,
            grid: Default::default(),
            update_interval_ms: 1000,
        };
        let (engine, out) = Engine::start(config, T0).unwrap();
        let wet_id = engine.add_rule(Arc::new(wet)).await.unwrap();
        engine
            .send_events(vec![reading(1_000, 7, 0.6), reading(1_000, 8, 0.2)])
            .await
            .unwrap();
        engine.advance(T0 + 2_000).await.unwrap();
        // Without history, a rule added now sees only what its terms hold:
        // `deep` shares `wet`'s term, so cell 7's reading is there.
        let deep_id = engine.add_rule(Arc::new(deep)).await.unwrap();
        engine.advance(T0 + 3_000).await.unwrap();
        engine.remove_rule(wet_id).await.unwrap();
        engine.advance(T0 + 4_000).await.unwrap();
        // `deep` keeps the shared term after `wet` is gone.
        engine
            .send_events(vec![reading(4_000, 9, 0.9)])
            .await
            .unwrap();
        engine.advance(T0 + 5_000).await.unwrap();
        engine.remove_rule(deep_id).await.unwrap();
        engine.advance(T0 + 6_000).await.unwrap();

        let mut active: BTreeMap<(u32, GroupKey), isize> = BTreeMap::new();
        let mut at: BTreeMap<Time, BTreeSet<(u32, GroupKey)>> = BTreeMap::new();
        loop {
            match out
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("engine output")
            {
                EngineOutput::Changes { time, updates } => {
                    for u in updates {
                        *active.entry((u.rule, u.key)).or_default() += u.diff;
                    }
                    active.retain(|_, c| *c != 0);
                    at.insert(time, active.keys().copied().collect());
                }
                EngineOutput::Complete { through } if through > T0 + 6_000 => break,
                EngineOutput::Complete { .. } => {}
                EngineOutput::Stopped { reason } => panic!("engine stopped: {reason}"),
            }
        }
        engine.shutdown().await;
        let state = |t: Time| {
            at.range(..=t)
                .next_back()
                .map(|(_, s)| s.clone())
                .unwrap_or_default()
        };
        let (c7, c8, c9) = (GroupKey::Cell(7), GroupKey::Cell(8), GroupKey::Cell(9));
        assert_eq!(
            state(T0 + 2_000),
            BTreeSet::from([(wet_id, c7), (wet_id, c8)])
        );
        assert_eq!(
            state(T0 + 3_000),
            BTreeSet::from([(wet_id, c7), (wet_id, c8), (deep_id, c7)]),
            "the new rule is judged at once on the shared term"
        );
        assert_eq!(state(T0 + 4_000), BTreeSet::from([(deep_id, c7)]));
        assert_eq!(
            state(T0 + 5_000),
            BTreeSet::from([(deep_id, c7), (deep_id, c9)])
        );
        assert_eq!(state(T0 + 6_000), BTreeSet::new());
    });
}
