//! The real server, over real HTTP and WebSocket.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use support::*;

const FLOOD_WATCH: &str = r#"
rule flood_watch "积水观察" {
  severity orange
  group by cell
  let water = max(sensor.value where kind == "water_level") over 10m
  when water > 0.3
  message "网格 {cell} 积水 {water:.2} m"
}
"#;

#[tokio::test]
async fn alert_is_raised_on_the_feed_and_clears_when_its_window_passes() {
    let server = Server::start(
        &[("flood.rules", FLOOD_WATCH)],
        &["--clock", "event", "--workers", "2"],
    );
    let mut feed = server.feed().await;
    let snapshot = feed.next(10).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["alerts"], Value::Array(vec![]));
    let seq0 = snapshot["seq"].as_u64().unwrap();

    let body = sensor(T0, 42, "water_level", 0.1) + &sensor(T0 + 60_000, 42, "water_level", 0.45);
    let (status, reply) = server.post_events(body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], 2);
    assert_eq!(reply["rejected"], 0);

    server.watermark(T0 + 60_000).await;
    let raised = feed.next(10).await;
    assert_eq!(raised["type"], "raised", "{raised}");
    let seq1 = raised["seq"].as_u64().unwrap();
    assert!(seq1 > seq0);
    let alert = &raised["alert"];
    assert_eq!(alert["rule"], "flood_watch");
    assert_eq!(alert["title"], "积水观察");
    assert_eq!(alert["severity"], "orange");
    assert_eq!(alert["group_by"], "cell");
    assert_eq!(alert["cell"], 42);
    assert_eq!(alert["key"], "42");
    assert_eq!(alert["started_at"], T0 + 60_000);
    assert_eq!(alert["values"]["water"], 0.45);
    assert_eq!(alert["message"], "网格 42 积水 0.45 m");
    assert_eq!(alert["evidence"][0]["count"], 2);
    assert_eq!(alert["evidence"][0]["max"], 0.45);
    assert_eq!(alert["id"].as_str().map(str::len), Some(16));

    // The watermark answered only after publishing, so the REST view agrees.
    let active = server.alerts().await;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["id"], alert["id"]);

    // The first reading leaves its 10-minute window: the alert stays, with
    // its evidence updated in place …
    server.watermark(T0 + 600_000).await;
    let updated = feed.next(10).await;
    assert_eq!(updated["type"], "updated", "{updated}");
    assert_eq!(updated["alert"]["id"], alert["id"]);
    assert_eq!(updated["alert"]["started_at"], T0 + 60_000);
    assert_eq!(updated["alert"]["evidence"][0]["count"], 1);
    // … and nothing changes until the second one leaves too.
    server.watermark(T0 + 60_000 + 599_000).await;
    feed.quiet(300).await;
    assert_eq!(server.alerts().await.len(), 1);
    // … and cleared by itself when it does.
    server.watermark(T0 + 60_000 + 600_000).await;
    let cleared = feed.next(10).await;
    assert_eq!(cleared["type"], "cleared", "{cleared}");
    assert_eq!(cleared["alert"]["id"], alert["id"]);
    assert!(cleared["seq"].as_u64().unwrap() > seq1);
    assert!(server.alerts().await.is_empty());

    // A client connecting now starts from the current state.
    let mut late_feed = server.feed().await;
    let snap = late_feed.next(10).await;
    assert_eq!(snap["seq"], cleared["seq"]);
    assert_eq!(snap["alerts"], Value::Array(vec![]));
    feed.close().await;
}

#[tokio::test]
async fn rejected_lines_are_reported_by_line_and_field_and_good_ones_kept() {
    let server = Server::start(&[("flood.rules", FLOOD_WATCH)], &["--clock", "event"]);
    let body = [
        sensor(T0, 1, "water_level", 0.5),
        "{not json\n".to_string(),
        r#"{"stream":"weather","ts":1767225600000}"#.to_string() + "\n",
        r#"{"stream":"sensor","ts":1767225600000,"sensor_id":"s","kind":"water_level","cell":1,"value":"high"}"#.to_string() + "\n",
        r#"{"stream":"traffic","ts":1767225600000,"cell":1,"speed_kmh":30}"#.to_string() + "\n",
        "\n".to_string(),
        r#"{"stream":"sensor","ts":12,"sensor_id":"s","kind":"water_level","cell":1,"value":1}"#.to_string() + "\n",
        sensor(T0 + 1000, 2, "water_level", 0.6),
    ]
    .concat();
    let (status, reply) = server.post_events(body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], 2);
    assert_eq!(reply["rejected"], 5);
    let errors = reply["errors"].as_array().unwrap();
    let summary: Vec<(u64, Option<&str>, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["field"].as_str(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, None, "invalid_json"),
            (3, Some("stream"), "unknown_stream"),
            (4, Some("value"), "wrong_type"),
            (5, Some("segment_id"), "missing_field"),
            (7, Some("ts"), "bad_timestamp"),
        ]
    );
    for e in errors {
        let message = e["message"].as_str().unwrap();
        if let Some(field) = e["field"].as_str() {
            assert!(message.contains(field), "{message}");
        }
    }
    // The good lines made it into the engine.
    server.watermark(T0 + 1000).await;
    assert_eq!(server.alerts().await.len(), 2);
    // Counted by stream and reason.
    assert_eq!(
        server
            .metric(r#"jingzhi_events_accepted_total{stream="sensor"}"#)
            .await,
        Some(2.0)
    );
    assert_eq!(
        server
            .metric(r#"jingzhi_events_rejected_total{reason="wrong_type",stream="sensor"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        server
            .metric(r#"jingzhi_events_rejected_total{reason="unknown_stream",stream="unknown"}"#)
            .await,
        Some(1.0)
    );
    // A body with nothing good in it is a client error.
    let (status, reply) = server.post_events("garbage\n".into()).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["rejected"], 1);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let server = Server::start(
        &[("flood.rules", FLOOD_WATCH)],
        &["--clock", "event", "--max-body-bytes", "2048"],
    );
    let body: String = (0..40)
        .map(|i| sensor(T0 + i, 1, "water_level", 0.1))
        .collect();
    assert!(body.len() > 2048);
    let (status, reply) = server.post_events(body).await;
    assert_eq!(status, 413);
    assert_eq!(reply["error"]["code"], "body_too_large");
    // The server is still serving.
    let (status, reply) = server.post_events(sensor(T0, 1, "water_level", 0.1)).await;
    assert_eq!((status, reply["accepted"].as_u64()), (200, Some(1)));
}

#[tokio::test]
async fn watermarks_need_the_event_clock_and_valid_json() {
    let server = Server::start(&[("flood.rules", FLOOD_WATCH)], &[]);
    let r = server
        .http
        .post(format!("{}/api/v1/watermark", server.base))
        .json(&serde_json::json!({"ts": T0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wall_clock");
    let (status, _) = server.get_json("/healthz").await;
    assert_eq!(status, 200);
    let (status, _) = server.get_json("/readyz").await;
    assert_eq!(status, 200);
}

/// Windowed aggregates per cell and per district, as served, against a
/// plain computation over the same events, at several clock times, with
/// events arriving out of order within the allowed lateness.
#[tokio::test]
async fn windowed_aggregates_match_a_batch_computation() {
    const STATS: &str = r#"
rule cell_stats "cell stats" {
  severity blue
  group by cell
  let n = count(sensor) over 5m
  let total = sum(sensor.value) over 5m
  let mean = avg(sensor.value) over 5m
  let low = min(sensor.value) over 5m
  let high = max(sensor.value where kind == "rainfall") over 5m
  when n >= 1
}
rule district_stats "district stats" {
  severity yellow
  group by district
  let n = count(sensor) over 5m
  let mean = avg(sensor.value) over 5m
  when n >= 2
}
"#;
    let server = Server::start(
        &[("stats.rules", STATS)],
        &["--clock", "event", "--lateness", "2m", "--workers", "2"],
    );
    let reference = jingzhi_gateway::city::default_reference().unwrap();
    // Cells in central Beijing, in more than one district.
    let cells: Vec<u32> = (0..12).map(|i| 6040 + i * 3 + (i % 3) * 100).collect();

    let mut rng = 0x5eed_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // 30 minutes of readings at whole seconds, delivered in batches whose
    // order is shuffled within 90 s (less than the 2 m lateness).
    let mut events: Vec<(u64, u32, &str, f64)> = (0..1500)
        .map(|i| {
            let ts = T0 + (i as u64 * 1200) / 1000 * 1000;
            let cell = cells[(next() % cells.len() as u64) as usize];
            let kind = if next() % 2 == 0 {
                "rainfall"
            } else {
                "water_level"
            };
            let value = (next() % 400) as f64 * 0.25;
            (ts, cell, kind, value)
        })
        .collect();
    for chunk in events.chunks_mut(75) {
        for i in (1..chunk.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            chunk.swap(i, j);
        }
    }
    let window = 300_000;
    let checkpoints = [T0 + 600_000, T0 + 1_200_000, T0 + 1_750_000];
    let mut sent = 0;
    for &clock in &checkpoints {
        // Send everything up to 2 minutes past the checkpoint (the clock
        // lags by the lateness), then fix the clock at the checkpoint.
        let upto = events
            .iter()
            .position(|e| e.0 > clock + 120_000)
            .unwrap_or(events.len());
        let upto = upto - upto % 75;
        let body: String = events[sent..upto]
            .iter()
            .map(|&(ts, cell, kind, v)| sensor(ts, cell, kind, v))
            .collect();
        sent = upto;
        let (status, reply) = server.post_events(body).await;
        assert_eq!(status, 200);
        assert_eq!(
            reply["late"], 0,
            "nothing is later than the lateness allows"
        );
        server.watermark(clock).await;

        // What was delivered and is inside the window at `clock`.
        let visible: Vec<_> = events[..sent]
            .iter()
            .filter(|e| e.0 <= clock && e.0 + window > clock)
            .collect();
        let mut per_cell: BTreeMap<u32, Vec<&(u64, u32, &str, f64)>> = BTreeMap::new();
        let mut per_district: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for e in &visible {
            per_cell.entry(e.1).or_default().push(e);
            if let Some(d) = reference.district_of(e.1) {
                per_district.entry(d.to_string()).or_default().push(e.3);
            }
        }
        let alerts = server.alerts().await;
        let served_cells: BTreeMap<u32, &Value> = alerts
            .iter()
            .filter(|a| a["rule"] == "cell_stats")
            .map(|a| (a["cell"].as_u64().unwrap() as u32, &a["values"]))
            .collect();
        assert_eq!(
            served_cells.keys().collect::<Vec<_>>(),
            per_cell.keys().collect::<Vec<_>>()
        );
        for (cell, evs) in &per_cell {
            let v = served_cells[cell];
            let values: Vec<f64> = evs.iter().map(|e| e.3).collect();
            let rain: Vec<f64> = evs
                .iter()
                .filter(|e| e.2 == "rainfall")
                .map(|e| e.3)
                .collect();
            let sum: f64 = values.iter().sum();
            assert_eq!(v["n"], values.len() as f64, "cell {cell} at {clock}");
            assert_eq!(v["total"], sum, "cell {cell}");
            assert_eq!(v["mean"], sum / values.len() as f64, "cell {cell}");
            assert_eq!(
                v["low"],
                values.iter().cloned().fold(f64::INFINITY, f64::min),
                "cell {cell}"
            );
            let high = rain.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if rain.is_empty() {
                assert_eq!(v["high"], Value::Null, "cell {cell}");
            } else {
                assert_eq!(v["high"], high, "cell {cell}");
            }
        }
        let served_districts: BTreeMap<String, &Value> = alerts
            .iter()
            .filter(|a| a["rule"] == "district_stats")
            .map(|a| (a["district"].as_str().unwrap().to_string(), &a["values"]))
            .collect();
        let expected: BTreeMap<&String, &Vec<f64>> =
            per_district.iter().filter(|(_, v)| v.len() >= 2).collect();
        assert_eq!(
            served_districts.keys().collect::<Vec<_>>(),
            expected.keys().copied().collect::<Vec<_>>()
        );
        for (d, values) in expected {
            let sum: f64 = values.iter().sum();
            assert_eq!(served_districts[d]["n"], values.len() as f64);
            assert_eq!(served_districts[d]["mean"], sum / values.len() as f64);
        }
    }
}

/// Events located only by sensor id follow the sensor when reference data
/// says it moved.
#[tokio::test]
async fn moving_a_sensor_moves_its_alerts() {
    const SENSOR_RULE: &str = r#"
rule water_seen "water reading" {
  severity blue
  group by cell
  when count(sensor where kind == "water_level") over 10m >= 1
}
"#;
    let server = Server::start(&[("w.rules", SENSOR_RULE)], &["--clock", "event"]);
    let put = |cell: u32| {
        server
            .http
            .put(format!("{}/api/v1/reference/sensors/wl-test", server.base))
            .json(&serde_json::json!({"cell": cell, "kind": "water_level"}))
            .send()
    };
    assert_eq!(put(100).await.unwrap().status().as_u16(), 200);
    let line = format!(
        "{{\"stream\":\"sensor\",\"ts\":{T0},\"sensor_id\":\"wl-test\",\"kind\":\"water_level\",\"value\":0.2}}\n"
    );
    let (status, reply) = server.post_events(line).await;
    assert_eq!(
        (status, reply["accepted"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
    server.watermark(T0).await;
    let cells = |alerts: Vec<Value>| {
        alerts
            .iter()
            .map(|a| a["cell"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(cells(server.alerts().await), vec![100]);

    let mut feed = server.feed().await;
    feed.next(10).await;
    assert_eq!(put(200).await.unwrap().status().as_u16(), 200);
    server.watermark(T0 + 1000).await;
    let mut kinds = vec![];
    for _ in 0..2 {
        let m = feed.next(10).await;
        kinds.push((
            m["type"].as_str().unwrap().to_string(),
            m["alert"]["cell"].as_u64().unwrap(),
        ));
    }
    kinds.sort();
    assert_eq!(
        kinds,
        vec![("cleared".to_string(), 100), ("raised".to_string(), 200)]
    );
    assert_eq!(cells(server.alerts().await), vec![200]);

    // A bad reference change is refused with a reason.
    let r = put(99_999_999).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("outside the grid"));
}

#[tokio::test]
async fn dashboard_and_metrics_are_served() {
    let server = Server::start(&[("flood.rules", FLOOD_WATCH)], &["--clock", "event"]);
    let (status, html) = server.get_text("/").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("app.js"),
        "the dashboard page loads its script"
    );
    let (status, _) = server.get_text("/app.js").await;
    assert_eq!(status, 200);
    let (status, metrics) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "jingzhi_events_accepted_total",
        "jingzhi_events_rejected_total",
        "jingzhi_alerts_active",
        "jingzhi_ingest_to_alert_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let (status, body) = server.get_json("/api/v1/status").await;
    assert_eq!(status, 200);
    assert_eq!(body["clock_mode"], "event");
    assert_eq!(body["rules"], 1);
    let (status, body) = server.get_json("/api/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

/// The demo's promise: with the sample rules and the simulated city, alerts
/// of all four colours are active within a minute of the start.
#[tokio::test]
async fn demo_city_raises_all_four_colours_within_a_minute() {
    use jingzhi_gateway::sim::{beijing_city, Schedule, Simulator};
    let city = beijing_city(2026);
    let examples: Vec<(String, String)> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/examples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rules"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
    let rules: Vec<(&str, &str)> = examples
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("city.reference.json");
    std::fs::write(
        &reference,
        serde_json::to_string(&city.reference_file()).unwrap(),
    )
    .unwrap();
    let server = Server::start(
        &rules,
        &[
            "--clock",
            "event",
            "--reference",
            reference.to_str().unwrap(),
        ],
    );

    let start = T0;
    let mut sim = Simulator::new(&city, 7, start, Schedule::Demo);
    let mut events = Vec::new();
    for second in 1..=60 {
        sim.advance_to(start + second * 1000, &mut events);
        let mut body = String::new();
        for e in events.drain(..) {
            e.write_json(&mut body);
        }
        let (status, reply) = server.post_events(body).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["rejected"], 0, "{reply}");
    }
    server.watermark(start + 60_000).await;
    let alerts = server.alerts().await;
    let colours: std::collections::BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["severity"].as_str().unwrap())
        .collect();
    assert_eq!(
        colours.into_iter().collect::<Vec<_>>(),
        vec!["blue", "orange", "red", "yellow"],
        "{alerts:#?}"
    );
}

/// A client that stops reading neither slows ingest nor the other clients;
/// when it reads again it is resynchronised with a fresh snapshot.
#[tokio::test]
async fn a_stalled_client_is_resynchronised_and_slows_nobody() {
    const ANY: &str = r#"
rule any_reading "reading" {
  severity blue
  group by cell
  when count(sensor) over 10m >= 1
}
"#;
    let server = Server::start(
        &[("any.rules", ANY)],
        &["--clock", "event", "--ws-buffer", "600"],
    );
    let mut reader = server.feed().await;
    let mut stalled = server.feed().await;
    assert_eq!(reader.next(10).await["type"], "snapshot");

    // 10,000 alerts raised, in batches smaller than a client's buffer,
    // while `stalled` reads nothing (far more than its buffer and its
    // socket's can hold).
    let mut expected_seq = 0;
    for batch in 0..20u32 {
        let body: String = (0..500u32)
            .map(|i| {
                sensor(
                    T0 + 1000 * u64::from(batch),
                    batch * 500 + i,
                    "rainfall",
                    1.0,
                )
            })
            .collect();
        let (status, _) = server.post_events(body).await;
        assert_eq!(status, 200);
        server.watermark(T0 + 1000 * u64::from(batch)).await;
        for _ in 0..500 {
            let m = reader.next(10).await;
            assert_eq!(m["type"], "raised");
            expected_seq += 1;
            assert_eq!(
                m["seq"], expected_seq,
                "the reading client sees every change in order"
            );
        }
    }
    // The stalled client, reading at last, is told it fell behind and
    // gets the whole current state.
    let mut resynced = None;
    for _ in 0..12_000 {
        let m = stalled.next(10).await;
        if m["type"] == "snapshot" && m["resync"] == true {
            resynced = Some(m);
            break;
        }
    }
    let snapshot = resynced.expect("a resync snapshot");
    assert!(snapshot["seq"].as_u64().unwrap() <= expected_seq);
    assert_eq!(
        snapshot["alerts"].as_array().unwrap().len() as u64,
        snapshot["seq"].as_u64().unwrap()
    );
    assert!(server.metric("jingzhi_ws_lagged_total").await.unwrap() >= 1.0);
}
