//! Rule tooling end to end: `jingzhi rules test` and `rules backtest` run as
//! a user would, and publishing rules over HTTP and through the watched
//! rules directory against the real server.

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const FLOOD_WATCH: &str = r#"rule flood_watch "积水观察" {
  severity orange
  group by cell
  let water = max(sensor.value where kind == "water_level") over 10m
  when water > 0.3
  message "网格 {cell} 积水 {water:.2} m"
}
"#;

const ANY_WATER: &str = r#"rule any_water "有积水" {
  severity blue
  group by cell
  let water = max(sensor.value where kind == "water_level") over 10m
  when water > 0.1
}
"#;

const DEEP_WATER: &str = r#"rule deep_water "深积水" {
  severity red
  group by cell
  let water = max(sensor.value where kind == "water_level") over 10m
  when water > 0.4
}
"#;

fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/examples"))
}

fn run(args: &[&str], files: &[&Path]) -> (bool, String, String) {
    let out = Command::new(binary())
        .args(args)
        .args(files)
        .output()
        .expect("run jingzhi");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------- rules test

#[test]
fn every_example_rule_has_a_passing_test() {
    let mut rules = Vec::new();
    let mut tests = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".test.toml") {
            tests.push(path);
        } else if name.ends_with(".rules") {
            rules.push(path);
        }
    }
    rules.sort();
    tests.sort();
    for r in &rules {
        let test = r.with_extension("test.toml");
        assert!(tests.contains(&test), "{} has no test", r.display());
    }
    let files: Vec<&Path> = tests.iter().map(PathBuf::as_path).collect();
    let (ok, stdout, stderr) = run(&["rules", "test"], &files);
    assert!(ok, "{stdout}\n{stderr}");
    let n = tests.len();
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with(&format!("{n} tests, ")) && summary.ends_with(" 0 failed"),
        "{stdout}"
    );
}

const WATER_TEST: &str = r#"
rules = ["flood.rules"]
start = "2026-07-15T08:00:00+08:00"

[[events]]
at = "0s"
stream = "sensor"
sensor_id = "wl-1"
kind = "water_level"
cell = 5050
value = 0.45

[[expect]]
at = "1m"
alerts = [{ rule = "flood_watch", key = "5050", severity = "orange", values = { water = 0.45 } }]
"#;

#[test]
fn a_failing_rule_test_exits_non_zero_and_prints_the_actual_alerts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flood.rules"), FLOOD_WATCH).unwrap();
    let good = dir.path().join("good.test.toml");
    std::fs::write(&good, WATER_TEST).unwrap();
    let (ok, stdout, stderr) = run(&["rules", "test"], &[&good]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 test, 1 expectation, 0 failed"),
        "{stdout}"
    );

    let bad = dir.path().join("bad.test.toml");
    std::fs::write(
        &bad,
        WATER_TEST.replace("severity = \"orange\"", "severity = \"red\""),
    )
    .unwrap();
    let (ok, stdout, _) = run(&["rules", "test"], &[&bad]);
    assert!(!ok);
    assert!(
        stdout.contains(
            "bad.test.toml: expectation at 1m: flood_watch 5050: severity is orange, expected red"
        ),
        "{stdout}"
    );
    // The actual alerts, with their values.
    assert!(
        stdout.contains("    flood_watch 5050 orange {water = 0.45} \"网格 5050 积水 0.45 m\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 test, 1 expectation, 1 failed"),
        "{stdout}"
    );

    // A missing alert and an unexpected one, across two files.
    let none = dir.path().join("none.test.toml");
    std::fs::write(
        &none,
        WATER_TEST.replace(
            "alerts = [{ rule = \"flood_watch\", key = \"5050\", severity = \"orange\", values = { water = 0.45 } }]",
            "alerts = []",
        ),
    )
    .unwrap();
    let (ok, stdout, _) = run(&["rules", "test"], &[&good, &none]);
    assert!(!ok);
    assert!(
        stdout.contains("none.test.toml: expectation at 1m: unexpected: flood_watch 5050 orange"),
        "{stdout}"
    );
    assert!(stdout.contains("(no alerts)"), "{stdout}");
    assert!(
        stdout.contains("2 tests, 2 expectations, 1 failed"),
        "{stdout}"
    );
}

#[test]
fn a_malformed_rule_test_reports_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flood.rules"), FLOOD_WATCH).unwrap();
    let cases = [
        // An unknown top-level field.
        (
            WATER_TEST.replace("start =", "strat ="),
            "bad.test.toml:3:1: unknown field `strat`",
        ),
        // An event field of the wrong type, named by the ingest parser.
        (
            WATER_TEST.replace("value = 0.45", "value = \"high\""),
            "bad.test.toml:11:9: event 1: field `value`: expected a number, got a string",
        ),
        // A misspelt event field.
        (
            WATER_TEST.replace("value = 0.45", "vlaue = 0.45"),
            "bad.test.toml:11:1: event 1: unknown field `vlaue` for stream `sensor`",
        ),
        // An unknown severity in an expectation.
        (
            WATER_TEST.replace("severity = \"orange\"", "severity = \"purple\""),
            "bad.test.toml:15:",
        ),
        // TOML syntax.
        (
            WATER_TEST.replace("at = \"1m\"", "at = 1m"),
            "bad.test.toml:14:6:",
        ),
    ];
    for (text, wanted) in cases {
        let bad = dir.path().join("bad.test.toml");
        std::fs::write(&bad, &text).unwrap();
        let (ok, stdout, stderr) = run(&["rules", "test"], &[&bad]);
        assert!(!ok, "{text}");
        assert!(stderr.contains(wanted), "wanted {wanted:?} in:\n{stderr}");
        assert!(stdout.contains("1 test file could not be run"), "{stdout}");
    }
    // Rule files that do not check are reported as rule diagnostics.
    std::fs::write(
        dir.path().join("flood.rules"),
        FLOOD_WATCH.replace("sensor.value", "sensor.valu"),
    )
    .unwrap();
    let good = dir.path().join("good.test.toml");
    std::fs::write(&good, WATER_TEST).unwrap();
    let (ok, _, stderr) = run(&["rules", "test"], &[&good]);
    assert!(!ok);
    assert!(stderr.contains("flood.rules:4:"), "{stderr}");
    assert!(stderr.contains("error[E011]"), "{stderr}");
}

// ------------------------------------------------------------------ backtest

#[test]
fn backtest_prints_alerts_summaries_and_what_a_change_does() {
    let dir = tempfile::tempdir().unwrap();
    let new_rules = dir.path().join("new");
    let old_rules = dir.path().join("old");
    std::fs::create_dir_all(&new_rules).unwrap();
    std::fs::create_dir_all(&old_rules).unwrap();
    // The change: flood_watch turns red above 0.4 m; any_water is new.
    std::fs::write(
        new_rules.join("flood.rules"),
        FLOOD_WATCH.replace("when water > 0.3", "when water > 0.4"),
    )
    .unwrap();
    std::fs::write(new_rules.join("any.rules"), ANY_WATER).unwrap();
    std::fs::write(old_rules.join("flood.rules"), FLOOD_WATCH).unwrap();

    // Cell 1: 0.35 m at 0s (old rule only); cell 2: 0.5 m at 0s (both);
    // cell 3: 0.45 m at 0s then 0.2 m until 30m.
    let mut events = String::new();
    events += &sensor(T0, 1, "water_level", 0.35);
    events += &sensor(T0, 2, "water_level", 0.5);
    events += &sensor(T0 + 60_000, 3, "water_level", 0.45);
    for m in 2..=30 {
        events += &sensor(T0 + m * 60_000, 9, "water_level", 0.05);
    }
    events += "not an event\n";
    let recording = dir.path().join("rec.ndjson");
    std::fs::write(&recording, events).unwrap();

    let (ok, stdout, stderr) = run(
        &["rules", "backtest"],
        &[new_rules.as_path(), recording.as_path()],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("1 line of"), "{stderr}");
    assert!(stdout.contains("32 events (1 rejected)"), "{stdout}");
    // Raised at 0s, cleared when the reading leaves its 10-minute window.
    assert!(
        stdout.contains("2026-01-01T00:00:00Z       2026-01-01T00:10:00Z       flood_watch"),
        "{stdout}"
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("flood_watch ") && !l.contains("2026"))
        .unwrap_or_default()
        .to_string();
    assert!(
        summary.split_whitespace().collect::<Vec<_>>() == ["flood_watch", "2", "20m", "10m"],
        "{stdout}"
    );

    let (ok, stdout, stderr) = run(
        &["rules", "backtest", "--json"],
        &[new_rules.as_path(), recording.as_path()],
    );
    assert!(ok, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(doc["events"], 32);
    let alerts = doc["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 5, "{doc:#}"); // flood_watch on 2 and 3; any_water on 1, 2, 3
    let first = &alerts[0];
    assert_eq!(first["raised"], "2026-01-01T00:00:00Z");
    assert_eq!(first["cleared"], "2026-01-01T00:10:00Z");
    assert_eq!(first["duration_ms"], 600_000);
    let flood = doc["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rule"] == "flood_watch")
        .unwrap();
    assert_eq!(flood["alerts"], 2);
    assert_eq!(flood["active_ms"], 1_200_000);
    assert_eq!(flood["longest_ms"], 600_000);

    let (ok, stdout, stderr) = run(
        &["rules", "backtest", "--json", "--against"],
        &[
            old_rules.as_path(),
            new_rules.as_path(),
            recording.as_path(),
        ],
    );
    assert!(ok, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("one JSON document");
    let keys = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["rule"].as_str().unwrap().to_string(),
                    a["key"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let mut added = keys(&doc["added"]);
    added.sort();
    assert_eq!(
        added,
        vec![
            ("any_water".to_string(), "1".to_string()),
            ("any_water".to_string(), "2".to_string()),
            ("any_water".to_string(), "3".to_string()),
        ]
    );
    assert_eq!(
        keys(&doc["removed"]),
        vec![("flood_watch".into(), "1".into())]
    );
    assert_eq!(doc["changed"], Value::Array(vec![]));
    assert_eq!(doc["unchanged"], 2);

    let (ok, stdout, _) = run(
        &["rules", "backtest", "--against"],
        &[
            old_rules.as_path(),
            new_rules.as_path(),
            recording.as_path(),
        ],
    );
    assert!(ok);
    assert!(
        stdout.contains("the change adds 3, removes 1 and changes 0 alerts; 2 unchanged"),
        "{stdout}"
    );
    assert!(stdout.contains("- 2026-01-01T00:00:00Z"), "{stdout}");

    // Rules that do not check are reported with their positions.
    std::fs::write(
        new_rules.join("bad.rules"),
        "rule x \"x\" {\n  severity purple\n}\n",
    )
    .unwrap();
    let (ok, _, stderr) = run(
        &["rules", "backtest"],
        &[new_rules.as_path(), recording.as_path()],
    );
    assert!(!ok);
    assert!(stderr.contains("bad.rules:2:"), "{stderr}");
}

// ---------------------------------------------------------- publishing (HTTP)

async fn put_rule(server: &Server, name: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = server
        .http
        .put(format!("{}/api/v1/rules/{name}", server.base))
        .header("content-type", "text/plain; charset=utf-8")
        .body(body)
        .send()
        .await
        .expect("PUT rule");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn delete_rule(server: &Server, name: &str) -> (u16, Value) {
    let r = server
        .http
        .delete(format!("{}/api/v1/rules/{name}", server.base))
        .send()
        .await
        .expect("DELETE rule");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn validate(server: &Server, body: &str) -> (u16, Value) {
    let r = server
        .http
        .post(format!("{}/api/v1/rules/validate", server.base))
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .expect("POST validate");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_published_rule_alerts_at_once_on_retained_events() {
    let server = Server::start(&[("flood.rules", FLOOD_WATCH)], &["--clock", "event"]);
    let body = sensor(T0, 42, "water_level", 0.45) + &sensor(T0 + 1000, 7, "water_level", 0.35);
    let (status, reply) = server.post_events(body).await;
    assert_eq!(status, 200, "{reply}");
    server.watermark(T0 + 1000).await;
    let mut feed = server.feed().await;
    let snapshot = feed.next(10).await;
    assert_eq!(snapshot["alerts"].as_array().map(Vec::len), Some(2));

    let (status, reply) = put_rule(&server, "deep_water", DEEP_WATER).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["change"], "created");
    assert_eq!(reply["version"], 1);

    // The next clock instant: the new rule sees the reading from before it
    // existed (its window is not empty at birth).
    server.watermark(T0 + 2000).await;
    let raised = feed.next(10).await;
    assert_eq!(raised["type"], "raised", "{raised}");
    assert_eq!(raised["alert"]["rule"], "deep_water");
    assert_eq!(raised["alert"]["key"], "42");
    assert_eq!(raised["alert"]["severity"], "red");
    assert_eq!(raised["alert"]["values"]["water"], 0.45);
    assert_eq!(raised["alert"]["evidence"][0]["count"], 1);
    feed.quiet(300).await;

    let (_, list) = server.get_json("/api/v1/rules").await;
    let names: Vec<(&str, u64)> = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(names, vec![("deep_water", 1), ("flood_watch", 1)]);
    assert_eq!(server.metric("jingzhi_rules_loaded").await, Some(2.0));
}

#[tokio::test]
async fn a_changed_rule_updates_its_alert_in_place_and_leaves_others_alone() {
    let server = Server::start(
        &[("flood.rules", FLOOD_WATCH), ("any.rules", ANY_WATER)],
        &["--clock", "event", "--workers", "2"],
    );
    let (status, _) = server
        .post_events(sensor(T0, 42, "water_level", 0.45))
        .await;
    assert_eq!(status, 200);
    server.watermark(T0 + 1000).await;
    let mut feed = server.feed().await;
    let snapshot = feed.next(10).await;
    let alerts = snapshot["alerts"].as_array().unwrap().clone();
    assert_eq!(alerts.len(), 2, "{snapshot}");
    let flood = alerts.iter().find(|a| a["rule"] == "flood_watch").unwrap();
    let any = alerts.iter().find(|a| a["rule"] == "any_water").unwrap();
    assert_eq!(flood["severity"], "orange");

    let red = FLOOD_WATCH.replace("severity orange", "severity red");
    let (status, reply) = put_rule(&server, "flood_watch", red.clone()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["change"], "updated");
    assert_eq!(reply["version"], 2);
    server.watermark(T0 + 2000).await;
    let updated = feed.next(10).await;
    assert_eq!(updated["type"], "updated", "{updated}");
    assert_eq!(updated["alert"]["id"], flood["id"]);
    assert_eq!(updated["alert"]["severity"], "red");
    assert_eq!(updated["alert"]["started_at"], flood["started_at"]);
    // Nothing else: the other rule's alert is untouched.
    feed.quiet(300).await;
    let now = server.alerts().await;
    let any_now = now.iter().find(|a| a["rule"] == "any_water").unwrap();
    assert_eq!(any_now, any);

    // The same text again is a no-op.
    let (status, reply) = put_rule(&server, "flood_watch", red.clone()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["change"], "unchanged");
    assert_eq!(reply["version"], 2);
    server.watermark(T0 + 3000).await;
    feed.quiet(300).await;

    // Versions and their sources.
    let (status, rule) = server.get_json("/api/v1/rules/flood_watch").await;
    assert_eq!(status, 200, "{rule}");
    assert_eq!(rule["version"], 2);
    assert_eq!(rule["source"], red.as_str());
    assert_eq!(rule["plan"]["terms"][0]["name"], "water");
    assert_eq!(rule["plan"]["group_by"], "cell");
    let history = rule["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["version"], 1);
    assert_eq!(history[0]["source"], FLOOD_WATCH.trim_end());
    assert!(history[0]["origin"]
        .as_str()
        .unwrap()
        .starts_with("startup "));
    assert_eq!(history[1]["source"], red.as_str());
    assert_eq!(history[1]["origin"], "api by anonymous");
    assert!(history[1]["published_at"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_deleted_rule_clears_its_alerts() {
    let server = Server::start(
        &[("flood.rules", FLOOD_WATCH), ("any.rules", ANY_WATER)],
        &["--clock", "event"],
    );
    server
        .post_events(sensor(T0, 42, "water_level", 0.45))
        .await;
    server.watermark(T0 + 1000).await;
    let mut feed = server.feed().await;
    let snapshot = feed.next(10).await;
    let flood = snapshot["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "flood_watch")
        .cloned()
        .unwrap();

    let (status, reply) = delete_rule(&server, "flood_watch").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["deleted"], true);
    server.watermark(T0 + 2000).await;
    let cleared = feed.next(10).await;
    assert_eq!(cleared["type"], "cleared", "{cleared}");
    assert_eq!(cleared["alert"]["id"], flood["id"]);
    feed.quiet(300).await;
    let left: Vec<Value> = server.alerts().await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["rule"], "any_water");

    let (status, _) = server.get_json("/api/v1/rules/flood_watch").await;
    assert_eq!(status, 404);
    let (status, reply) = delete_rule(&server, "flood_watch").await;
    assert_eq!(status, 404);
    assert_eq!(reply["error"]["code"], "not_found");

    // Publishing it again continues its version numbers after the
    // deletion, which took number 2.
    let (status, reply) = put_rule(&server, "flood_watch", FLOOD_WATCH).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["version"], 3);

    // A rule may name an installed rule in `inhibited by` …
    let quiet = ANY_WATER.replace("}\n", "  inhibited by flood_watch\n}\n");
    let (status, reply) = put_rule(&server, "any_water", quiet).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["change"], "updated");
    // … which then cannot be deleted from under it.
    let (status, reply) = delete_rule(&server, "flood_watch").await;
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["error"]["code"], "rule_in_use");
    assert_eq!(reply["diagnostics"][0]["code"], "E028");
    assert_eq!(
        reply["diagnostics"][0]["file"],
        "installed rule `any_water`"
    );
    let (status, _) = server.get_json("/api/v1/rules/flood_watch").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn invalid_rules_are_refused_with_lines_and_columns() {
    let server = Server::start(&[("flood.rules", FLOOD_WATCH)], &["--clock", "event"]);
    let bad = "rule slow \"慢行\" {\n  severity yellow\n  group by cell\n  when avg(traffic.speed) over 5m < 20\n}\n";

    let (status, reply) = put_rule(&server, "slow", bad).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["error"]["code"], "invalid_rule");
    let d = &reply["diagnostics"][0];
    assert_eq!(d["code"], "E011");
    assert_eq!(d["level"], "error");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(4), Some(20))
    );
    assert_eq!(d["help"], "did you mean `speed_kmh`?");

    let (status, reply) = validate(&server, bad).await;
    assert_eq!(status, 200);
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["diagnostics"][0]["line"], 4);
    assert_eq!(reply["diagnostics"][0]["column"], 20);
    let (status, reply) = validate(&server, &bad.replace("speed)", "speed_kmh)")).await;
    assert_eq!(status, 200);
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["diagnostics"], Value::Array(vec![]));
    // Checked with the installed rules: a second flood_watch is fine to
    // validate (it would replace the first) …
    let (_, reply) = validate(&server, FLOOD_WATCH).await;
    assert_eq!(reply["ok"], true, "{reply}");
    // … but a body defining it twice is not.
    let (_, reply) = validate(&server, &format!("{FLOOD_WATCH}{FLOOD_WATCH}")).await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["diagnostics"][0]["code"], "E015");

    // The rule in the body must be the one in the path.
    let (status, reply) = put_rule(&server, "other", DEEP_WATER).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["error"]["code"], "name_mismatch");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deep_water"),
        "{reply}"
    );
    let two = format!("{DEEP_WATER}{ANY_WATER}");
    let (status, reply) = put_rule(&server, "deep_water", two).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["error"]["code"], "name_mismatch");
    let (status, reply) = put_rule(&server, "deep_water", "# nothing here\n").await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["error"]["code"], "name_mismatch");

    // Not UTF-8: the position of the bad byte.
    let mut bytes = DEEP_WATER.as_bytes().to_vec();
    let at = DEEP_WATER.find("深").unwrap();
    bytes[at] = 0xff;
    let (status, reply) = put_rule(&server, "deep_water", bytes).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["error"]["code"], "invalid_utf8");
    assert_eq!(reply["diagnostics"][0]["line"], 1);
    assert_eq!(reply["diagnostics"][0]["column"], 18);

    // Only text.
    let r = server
        .http
        .put(format!("{}/api/v1/rules/deep_water", server.base))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);

    // Nothing of that was installed.
    let (_, list) = server.get_json("/api/v1/rules").await;
    assert_eq!(list["rules"].as_array().map(Vec::len), Some(1));
    let (_, rule) = server.get_json("/api/v1/rules/flood_watch").await;
    assert_eq!(rule["version"], 1);
}

// -------------------------------------------------------- directory watching

/// A server whose stderr is captured (for the reload log); killed when dropped.
struct Logged {
    child: std::process::Child,
    base: String,
    addr: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Logged {
    fn start(rules: &[(&str, &str)]) -> Logged {
        let dir = tempfile::tempdir().expect("temp dir");
        let rules_dir = dir.path().join("rules");
        std::fs::create_dir_all(&rules_dir).expect("rules dir");
        for (name, text) in rules {
            std::fs::write(rules_dir.join(name), text).expect("write rule");
        }
        let mut child = Command::new(binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--clock",
                "event",
                "--rules",
            ])
            .arg(&rules_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start jingzhi");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let addr = listening_address(&mut child);
        Logged {
            child,
            base: format!("http://{addr}"),
            addr,
            dir,
            http: reqwest::Client::new(),
            stderr,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post_events(&self, body: String) {
        let r = self
            .http
            .post(format!("{}/api/v1/events", self.base))
            .body(body)
            .send()
            .await
            .expect("POST events");
        assert_eq!(r.status().as_u16(), 200);
    }

    async fn watermark(&self, ts: u64) {
        let r = self
            .http
            .post(format!("{}/api/v1/watermark", self.base))
            .json(&serde_json::json!({ "ts": ts }))
            .send()
            .await
            .expect("POST watermark");
        assert_eq!(r.status().as_u16(), 200);
    }

    async fn metric(&self, series: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    async fn feed(&self) -> Ws {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/api/v1/alerts/ws", self.addr))
                .await
                .expect("connect WebSocket");
        ws
    }
}

/// The next text message of a feed.
async fn next_message(ws: &mut Ws) -> Value {
    use futures_util::StreamExt;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("feed message in time")
            .expect("feed open")
            .expect("feed message");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("feed JSON");
        }
    }
}

/// Asserts that no text message arrives for `ms` milliseconds.
async fn no_message(ws: &mut Ws, ms: u64) {
    use futures_util::StreamExt;
    if let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) =
        tokio::time::timeout(Duration::from_millis(ms), ws.next()).await
    {
        panic!("unexpected feed message: {t}");
    }
}

async fn wait_for<F: Fn(&Value) -> bool>(server: &Logged, path: &str, what: &str, ok: F) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = server.get_json(path).await;
        if ok(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rule_version(list: &Value, name: &str) -> Option<u64> {
    list["rules"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["version"].as_u64())
}

#[tokio::test]
async fn the_rules_directory_is_watched() {
    let logged = Logged::start(&[("flood.rules", FLOOD_WATCH)]);
    let server = &logged;
    let dir = server.path().join("rules");
    server
        .post_events(sensor(T0, 42, "water_level", 0.45))
        .await;
    server.watermark(T0 + 1000).await;
    let mut feed = server.feed().await;
    let snapshot = next_message(&mut feed).await;
    let flood_id = snapshot["alerts"][0]["id"].clone();

    // A changed file: its rule is published, its alert updated in place.
    std::fs::write(
        dir.join("flood.rules"),
        FLOOD_WATCH.replace("severity orange", "severity red"),
    )
    .unwrap();
    wait_for(server, "/api/v1/rules", "flood_watch version 2", |l| {
        rule_version(l, "flood_watch") == Some(2)
    })
    .await;
    server.watermark(T0 + 2000).await;
    let updated = next_message(&mut feed).await;
    assert_eq!(updated["type"], "updated", "{updated}");
    assert_eq!(updated["alert"]["id"], flood_id);
    assert_eq!(updated["alert"]["severity"], "red");
    let (_, rule) = server.get_json("/api/v1/rules/flood_watch").await;
    assert!(
        rule["history"][1]["origin"]
            .as_str()
            .unwrap()
            .ends_with("flood.rules:1"),
        "{rule}"
    );

    // An added file.
    std::fs::write(dir.join("deep.rules"), DEEP_WATER).unwrap();
    wait_for(server, "/api/v1/rules", "deep_water", |l| {
        rule_version(l, "deep_water") == Some(1)
    })
    .await;
    server.watermark(T0 + 3000).await;
    let raised = next_message(&mut feed).await;
    assert_eq!(raised["type"], "raised", "{raised}");
    assert_eq!(raised["alert"]["rule"], "deep_water");

    // A file with errors changes nothing, is logged and counted.
    std::fs::write(
        dir.join("deep.rules"),
        DEEP_WATER.replace("when water > 0.4", "when watr > 0.5"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.metric("jingzhi_rule_reload_errors_total").await != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the reload error was not counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = logged.stderr.lock().unwrap().clone();
    assert!(log.contains("not reloaded"), "{log}");
    assert!(log.contains("deep.rules:5:8: error[E016]"), "{log}");
    // Counted once, not once per poll.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        server.metric("jingzhi_rule_reload_errors_total").await,
        Some(1.0)
    );
    let (_, list) = server.get_json("/api/v1/rules").await;
    assert_eq!(rule_version(&list, "deep_water"), Some(1));
    assert_eq!(rule_version(&list, "flood_watch"), Some(2));

    // A removed file: its rules are removed and their alerts clear.
    std::fs::remove_file(dir.join("deep.rules")).unwrap();
    wait_for(server, "/api/v1/rules", "deep_water removed", |l| {
        l["rules"].as_array().is_some_and(|r| r.len() == 1)
    })
    .await;
    server.watermark(T0 + 4000).await;
    let cleared = next_message(&mut feed).await;
    assert_eq!(cleared["type"], "cleared", "{cleared}");
    assert_eq!(cleared["alert"]["rule"], "deep_water");
    no_message(&mut feed, 300).await;
}
