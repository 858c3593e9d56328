//! Retained state is bounded by the longest window in use: a steady stream
//! through rules of several window lengths must reach a plateau of records
//! held by the engine, however long it runs.

use jingzhi_dataflow::{Engine, EngineConfig, EngineOutput, Time, WindowConfig};
use jingzhi_rules::event::{Body, Event, Location, Sensor, Traffic};
use jingzhi_rules::lang::{compile, CheckOptions, SourceFile};
use jingzhi_rules::Sym;
use std::sync::Arc;

const T0: Time = 1_767_225_600_000;

const RULES: &str = r#"
rule short_window "10 s" {
  severity blue
  group by cell
  when count(sensor) over 10s >= 3
}
rule minute_window "1 min" {
  severity yellow
  group by cell
  let speed = avg(traffic.speed_kmh) over 1m
  when speed < 30
}
rule five_minutes "5 min" {
  severity orange
  group by cell
  let high = max(sensor.value) over 5m
  when high > 9
}
rule tumbling_two "tumbling 2 min" {
  severity red
  group by cell
  when sum(sensor.value) over tumbling 2m > 50
}
"#;

#[test]
fn retained_records_stop_growing_at_a_steady_rate() {
    let files = [SourceFile {
        name: "bounded.rules".into(),
        text: RULES.into(),
    }];
    let compiled = compile(&files, &CheckOptions::default());
    assert!(!compiled.has_errors());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let samples = rt.block_on(async {
        let config = EngineConfig {
            workers: 2,
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
        for p in compiled.plans {
            engine.add_rule(Arc::new(p)).await.unwrap();
        }
        // 40 minutes of event time, 100 events a second over 500 cells,
        // in one-second batches; the longest reach is 5 minutes, so from
        // minute 10 on nothing new should accumulate.
        let mut x: u64 = 7;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut samples = Vec::new();
        for second in 0..2400u64 {
            let events: Vec<Event> = (0..100u64)
                .map(|i| {
                    let cell = (next() % 500) as u32;
                    let ts = T0 + second * 1000 + i * 10;
                    let body = if i % 3 == 0 {
                        Body::Traffic(Traffic {
                            segment_id: "g".into(),
                            speed_kmh: (next() % 80) as f64,
                            flow: None,
                            occupancy: None,
                        })
                    } else {
                        Body::Sensor(Sensor {
                            sensor_id: "s".into(),
                            kind: Sym::intern("rainfall").unwrap(),
                            value: (next() % 40) as f64 * 0.25,
                            unit: None,
                        })
                    };
                    Event {
                        ts,
                        location: Location::Cell(cell),
                        body,
                    }
                })
                .collect();
            engine.send_events(events).await.unwrap();
            let clock = T0 + second * 1000 + 999;
            engine.advance(clock).await.unwrap();
            if second % 60 == 59 {
                // Sample once the engine has caught up with the clock.
                loop {
                    match out.recv().unwrap() {
                        EngineOutput::Complete { through } if through > clock => break,
                        EngineOutput::Stopped { reason } => panic!("{reason}"),
                        _ => {}
                    }
                }
                let r = engine.retained();
                samples.push((second / 60 + 1, r.window_records(), r.history_events));
            } else {
                while out.try_recv().is_ok() {}
            }
        }
        engine.shutdown().await;
        samples
    });
    for (minute, records, history) in &samples {
        println!("minute {minute:2}: {records:7} window records, {history:6} events of history");
    }
    let settled = |from: u64, to: u64| {
        samples
            .iter()
            .filter(|(m, ..)| (from..=to).contains(m))
            .map(|&(_, r, h)| (r, h))
            .fold((0, 0), |a, b| (a.0.max(b.0), a.1.max(b.1)))
    };
    let (early_records, early_history) = settled(10, 20);
    let (late_records, late_history) = settled(30, 40);
    assert!(early_records > 0 && early_history > 0);
    // Twice as long running, and no more than the noise of a random stream.
    assert!(
        late_records * 10 <= early_records * 11,
        "window records grew from {early_records} to {late_records}"
    );
    assert!(
        late_history * 10 <= early_history * 11,
        "history grew from {early_history} to {late_history}"
    );
    // History covers the longest reach (the 5-minute window and its
    // 5-second step, at 100 events a second), not the 40 minutes streamed.
    assert!(
        late_history <= (5 * 60 + 5) * 100 + 2 * 100,
        "history {late_history}"
    );
}
