//! The `ops/` files against the real tools, and a real Prometheus scraping
//! a real Jingzhi:
//!
//! * `promtool` checks the scrape config and the alert rules and runs their
//!   unit tests, in which every alert has a case that fires and one that
//!   must not;
//! * `promtool check metrics` finds nothing wrong with the live `/metrics`;
//! * Debian's `prometheus` scrapes the binary on loopback, and its query API
//!   reports exactly the events the test posted; it loads the alert rules
//!   and evaluates them without error, and every dashboard query runs;
//! * the Grafana dashboard and the alert rules use only metrics the service
//!   exports, and `docs/operations.md` describes every metric;
//! * the systemd unit passes `systemd-analyze verify`, the unit's and the
//!   image's command lines use flags that `jingzhi serve` has, the sample
//!   config checks, and the image's health check really asks `/healthz`.
//!
//! A missing tool fails the test with what to install (`.ci/run` installs
//! them); nothing here passes by skipping.

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{binary, incident, sensor, traffic, Server};

const FLOOD: &str = r#"
rule flood "积水" {
  severity orange
  group by cell
  let water = max(sensor.value where kind == "water_level") over 10m
  when water > 0.3
  message "网格 {cell} 积水 {water:.2} m"
}
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ops(path: &str) -> PathBuf {
    repo().join("ops").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The path of a system tool, or a failure saying how to install it.
fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: run `.ci/run` (it installs the system packages the \
                 tests need) or `apt-get install {package}`"
            )
        })
}

fn promtool() -> PathBuf {
    tool("promtool", "prometheus")
}

/// Runs a command to its end and fails the test with its output unless it
/// succeeded.
fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Metric families in a text exposition: name → type.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect()
}

/// The series names a query may use for these families (a histogram's
/// `_bucket`, `_sum` and `_count`, a summary's `_sum` and `_count`).
fn series_names(families: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, kind) in families {
        out.insert(name.clone());
        let suffixes: &[&str] = match kind.as_str() {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["_sum", "_count"],
            _ => &[],
        };
        for s in suffixes {
            out.insert(format!("{name}{s}"));
        }
    }
    out
}

/// Every family the service registers, with each labelled family given a
/// series so that it renders (a family without series is left out of
/// `/metrics`).
fn registered_families() -> BTreeMap<String, String> {
    use jingzhi_gateway::metrics::Metrics;
    let m = Metrics::new();
    m.set_rules(["r"]);
    m.set_worker_frontiers(&[support::T0]);
    m.set_active_alerts(
        &BTreeMap::new(),
        &BTreeMap::from([("r".to_string(), 1)]),
        &BTreeMap::from([("110105".to_string(), 1)]),
    );
    m.rule_false_alarm_ratio.with_label_values(&["r"]).set(0.0);
    m.rule_response_seconds
        .with_label_values(&["r", "acknowledge", "50"])
        .set(1.0);
    m.district_response_seconds
        .with_label_values(&["110105", "acknowledge", "50"])
        .set(1.0);
    let families = families(&m.render());
    for name in m.names() {
        assert!(families.contains_key(name), "{name} does not render");
    }
    families
}

/// Metric names (ours, the process collector's and Prometheus's own `up`)
/// a query refers to.
fn referenced(query: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\b(?:(?:jingzhi|process)_[a-z0-9_]+|up)\b").expect("regex");
    re.find_iter(query)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// The dashboard's queries: every panel target's `expr` (panels nested in
/// collapsed rows too).
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push(e.to_string());
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn dashboard() -> Value {
    let path = ops("grafana/jingzhi-dashboard.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Alert names in the rule file, in order.
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

/// Posts a body of NDJSON lines and returns the reply.
async fn post(server: &Server, body: String) -> Value {
    let (status, reply) = server.post_events(body).await;
    assert_eq!(status, 200, "ingest reply: {reply}");
    reply
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A server on the wall clock with a data directory (so that the store and
/// event-log metrics are real) and one rule.
fn start_server() -> (Server, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("data dir");
    let data_dir = data.path().to_str().expect("UTF-8 temp path").to_string();
    let server = Server::start(
        &[("flood.rules", FLOOD)],
        &["--clock", "wall", "--workers", "2", "--data-dir", &data_dir],
    );
    (server, data)
}

/// `n` valid lines over all three streams, water high enough to raise.
fn valid_lines(n: usize, id: &str) -> String {
    let ts = now_ms().saturating_sub(1000);
    (0..n)
        .map(|i| match i % 5 {
            0 => traffic(ts, 100 + (i % 7) as u32, 12.0),
            1 => incident(ts, 100 + (i % 7) as u32, &format!("{id}-{i}"), "flood"),
            _ => sensor(ts, 100 + (i % 7) as u32, "water_level", 0.45),
        })
        .collect()
}

const BAD_LINES: &str =
    "not json\n{\"stream\":\"sensor\"}\n{\"stream\":\"weather\",\"ts\":1767225600000}\n";

#[test]
fn prometheus_config_and_alert_rules_pass_promtool() {
    let promtool = promtool();
    let dir = ops("prometheus");
    let out = run_ok(
        Command::new(&promtool)
            .args(["check", "config"])
            .arg(dir.join("prometheus.yml")),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 rule files found"), "{text}");
    run_ok(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(dir.join("jingzhi-alerts.yml")),
    );
    run_ok(
        Command::new(&promtool)
            .args(["test", "rules"])
            .arg(dir.join("jingzhi-alerts.test.yml")),
    );

    // Every alert is tested both firing and quiet.
    let alerts = alert_names(&read(&dir.join("jingzhi-alerts.yml")));
    for expected in [
        "JingzhiDown",
        "JingzhiIngestStalled",
        "JingzhiClockLagGrowing",
        "JingzhiManyRejectedEvents",
        "JingzhiWebSocketDrops",
        "JingzhiStorageErrors",
    ] {
        assert!(alerts.iter().any(|a| a == expected), "{expected} missing");
    }
    let tests = read(&dir.join("jingzhi-alerts.test.yml"));
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(name) = l.strip_prefix("alertname:") {
            let next = lines.get(i + 1).copied().unwrap_or_default();
            if next.starts_with("exp_alerts: []") {
                quiet.insert(name.trim().to_string());
            } else if next == "exp_alerts:" {
                firing.insert(name.trim().to_string());
            }
        }
    }
    for a in &alerts {
        assert!(firing.contains(a), "no test where {a} fires");
        assert!(quiet.contains(a), "no test where {a} stays quiet");
    }

    // Every alert carries a severity and a runbook section that exists.
    let rules = read(&dir.join("jingzhi-alerts.yml"));
    let docs = read(&repo().join("docs/operations.md")).to_lowercase();
    for a in &alerts {
        let anchor = format!("docs/operations.md#{}", a.to_lowercase());
        assert!(rules.contains(&anchor), "{a}: no runbook annotation");
        assert!(
            docs.contains(&format!("### {}", a.to_lowercase())),
            "docs/operations.md has no `### {a}` section"
        );
    }
    assert_eq!(
        rules.matches("severity:").count(),
        alerts.len(),
        "every alert has a severity label"
    );
}

#[tokio::test]
async fn live_metrics_pass_promtool_check_metrics() {
    let promtool = promtool();
    let (server, _data) = start_server();
    let reply = post(&server, valid_lines(25, "m") + BAD_LINES).await;
    assert_eq!(reply["accepted"], 25, "{reply}");
    // Wait for the alert, so that the alert and latency series have data.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.alerts().await.is_empty() {
        assert!(Instant::now() < deadline, "no alert raised");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, text) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("jingzhi_build_info{"), "{text}");
    assert!(text.contains("process_resident_memory_bytes"), "{text}");

    let (ok, said) = check_metrics(&promtool, text.as_bytes());
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics:\n{said}"
    );

    // promtool does complain about a badly named metric: the check is real.
    let (ok, _) = check_metrics(
        &promtool,
        b"# HELP jingzhi_bad_milliseconds x\n# TYPE jingzhi_bad_milliseconds counter\njingzhi_bad_milliseconds 1\n",
    );
    assert!(!ok, "promtool accepted a bad metric");
}

/// Pipes metrics text into `promtool check metrics`: whether it passed,
/// and everything it said.
fn check_metrics(promtool: &std::path::Path, text: &[u8]) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text)
        .expect("write metrics to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// Queries Prometheus's HTTP API; `None` until it answers with success.
async fn query(http: &reqwest::Client, base: &str, q: &str) -> Option<Value> {
    let r = http
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .ok()?;
    let body: Value = r.json().await.ok()?;
    (body["status"] == "success").then_some(body)
}

/// The value of a one-element instant vector.
fn scalar(body: &Value) -> Option<f64> {
    let result = body["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

/// Waits until `q` evaluates to `want`, or fails with what Prometheus said.
async fn wait_for_value(http: &reqwest::Client, base: &str, q: &str, want: f64, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        let body = query(http, base, q).await;
        if body.as_ref().and_then(scalar) == Some(want) {
            return;
        }
        last = body.or(last);
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "`{q}` did not reach {want} within 60 s; last answer: {last:?}\nprometheus log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn prometheus_scrapes_the_accepted_events_counter() {
    let prometheus = tool("prometheus", "prometheus");
    let (server, _data) = start_server();
    let reply = post(&server, valid_lines(45, "a") + BAD_LINES).await;
    assert_eq!(reply["accepted"], 45, "{reply}");
    assert_eq!(reply["rejected"], 3, "{reply}");

    // Prometheus scraping the server every second, with our alert rules.
    let dir = tempfile::tempdir().expect("prometheus dir");
    let rules = ops("prometheus/jingzhi-alerts.yml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {:?}\nscrape_configs:\n  - job_name: jingzhi\n    static_configs:\n      - targets: [\"{}\"]\n",
        rules.to_str().expect("UTF-8 path"),
        server.addr
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write prometheus.yml");
    let port = free_port();
    let log_path = dir.path().join("prometheus.log");
    let log = std::fs::File::create(&log_path).expect("prometheus log");
    let child = Command::new(&prometheus)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let _prometheus = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let q = "sum(jingzhi_events_accepted_total{job=\"jingzhi\"})";
    wait_for_value(&http, &base, q, 45.0, &log_path).await;

    // Later events show up at the next scrapes.
    let reply = post(&server, valid_lines(20, "b")).await;
    assert_eq!(reply["accepted"], 20, "{reply}");
    wait_for_value(&http, &base, q, 65.0, &log_path).await;
    wait_for_value(
        &http,
        &base,
        "sum(jingzhi_events_rejected_total{job=\"jingzhi\"})",
        3.0,
        &log_path,
    )
    .await;
    wait_for_value(&http, &base, "up{job=\"jingzhi\"}", 1.0, &log_path).await;

    let body = query(&http, &base, "jingzhi_build_info")
        .await
        .expect("build info");
    let labels = &body["data"]["result"][0]["metric"];
    assert_eq!(labels["version"], env!("CARGO_PKG_VERSION"), "{body}");
    assert!(labels["commit"].as_str().is_some_and(|c| !c.is_empty()));

    // The alert rules load and evaluate without error.
    let names = alert_names(&read(&rules));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body: Value = http
            .get(format!("{base}/api/v1/rules"))
            .send()
            .await
            .expect("rules API")
            .json()
            .await
            .expect("rules JSON");
        let loaded: Vec<&Value> = body["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        let evaluated = loaded
            .iter()
            .filter(|r| {
                r["health"] == "ok"
                    && !r["lastEvaluation"]
                        .as_str()
                        .unwrap_or("0001")
                        .starts_with("0001")
            })
            .count();
        for r in &loaded {
            assert_ne!(r["health"], "err", "rule failed to evaluate: {r}");
        }
        if loaded.len() == names.len() && evaluated == names.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alert rules not all loaded and evaluated: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every dashboard query is valid PromQL for a real Prometheus.
    for expr in dashboard_queries(&dashboard()) {
        let q = expr
            .replace("$__rate_interval", "1m")
            .replace("$__range", "1h")
            .replace("$job", "jingzhi")
            .replace("$instance", ".*");
        let r: Value = http
            .get(format!("{base}/api/v1/query"))
            .query(&[("query", q.as_str())])
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("query JSON");
        assert_eq!(r["status"], "success", "dashboard query `{q}`: {r}");
    }
}

#[tokio::test]
async fn dashboard_and_alerts_use_only_exported_metrics() {
    let (server, _data) = start_server();
    post(&server, valid_lines(5, "d")).await;
    let (_, live) = server.get_text("/metrics").await;
    let mut known = families(&live);
    known.extend(registered_families());
    known.insert("up".to_string(), "gauge".to_string()); // set by Prometheus
    let known = series_names(&known);

    let dashboard = dashboard();
    let queries = dashboard_queries(&dashboard);
    assert!(
        queries.len() >= 20,
        "only {} dashboard queries",
        queries.len()
    );
    let mut used = BTreeSet::new();
    for q in &queries {
        let names = referenced(q);
        assert!(!names.is_empty(), "query without a metric: {q}");
        for name in names {
            assert!(
                known.contains(&name),
                "dashboard query uses unknown `{name}`: {q}"
            );
            used.insert(name);
        }
    }
    // The panels the issue asks for.
    for name in [
        "jingzhi_events_accepted_total",
        "jingzhi_events_rejected_total",
        "jingzhi_ingest_request_duration_seconds_bucket",
        "jingzhi_ingest_to_alert_seconds_bucket",
        "jingzhi_clock_lag_seconds",
        "jingzhi_worker_frontier_timestamp_seconds",
        "jingzhi_window_records",
        "jingzhi_alerts_active",
        "jingzhi_alerts_active_by_district",
        "jingzhi_alerts_raised_total",
        "jingzhi_alerts_cleared_total",
        "jingzhi_ws_clients",
        "jingzhi_ws_dropped_total",
        "jingzhi_operator_actions_total",
        "jingzhi_operator_response_seconds_bucket",
        "jingzhi_event_log_bytes",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(used.contains(name), "no dashboard panel shows {name}");
    }

    let rules = read(&ops("prometheus/jingzhi-alerts.yml"));
    for name in referenced(&rules) {
        assert!(known.contains(&name), "alert rules use unknown `{name}`");
    }

    // Importable anywhere: the data source is a variable, not a fixed uid.
    let vars = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "no Prometheus data-source variable"
    );
    let mut ids = BTreeSet::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id: {p}"
        );
        let grid = &p["gridPos"];
        let (x, w) = (
            grid["x"].as_u64().expect("x"),
            grid["w"].as_u64().expect("w"),
        );
        assert!(x + w <= 24, "panel wider than the grid: {}", p["title"]);
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            for t in p["targets"].as_array().expect("targets") {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            }
        }
    }
    assert!(
        !read(&ops("grafana/jingzhi-dashboard.json")).contains("${DS_"),
        "a fixed import input would break provisioning"
    );
    let provisioning = read(&ops("grafana/provisioning/dashboards/jingzhi.yml"));
    assert!(provisioning.contains("type: file") && provisioning.contains("path:"));
    let datasource = read(&ops("grafana/provisioning/datasources/prometheus.yml"));
    assert!(datasource.contains("type: prometheus"));

    // docs/operations.md describes every metric the service exports.
    let docs = read(&repo().join("docs/operations.md"));
    let mut all: BTreeSet<String> = registered_families().into_keys().collect();
    all.extend(families(&live).into_keys());
    for name in all {
        assert!(
            docs.contains(&format!("`{name}`")),
            "docs/operations.md does not describe `{name}`"
        );
    }
}

/// The `--flags` of a command line.
fn flags<'a>(args: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    args.into_iter()
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_string())
        .collect()
}

/// The Dockerfile with continuation lines joined.
fn dockerfile_lines() -> Vec<String> {
    let text = read(&ops("Dockerfile"));
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') && cur.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => cur.push_str(part),
            None => {
                cur.push_str(line);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

/// The JSON array after `keyword` in a Dockerfile instruction.
fn exec_form(line: &str, keyword: &str) -> Vec<String> {
    let at = line.find(keyword).expect("keyword") + keyword.len();
    serde_json::from_str(line[at..].trim()).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn systemd_unit_and_image_run_real_commands() {
    let analyze = tool("systemd-analyze", "systemd");
    let help = run_ok(Command::new(binary()).args(["serve", "--help"]));
    let help = String::from_utf8_lossy(&help.stdout).to_string();

    // The unit, with ExecStart pointing at the binary under test.
    let unit = read(&ops("systemd/jingzhi.service"));
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args[0], "/usr/local/bin/jingzhi");
    assert_eq!(args[1], "serve");
    for flag in flags(args.iter().copied()) {
        assert!(
            help.contains(&flag),
            "ExecStart uses {flag}, which serve lacks"
        );
    }
    for setting in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "StateDirectory=jingzhi",
        "Restart=on-failure",
        "LimitNOFILE=",
        "MemoryMax=",
        "RestrictAddressFamilies=",
    ] {
        assert!(unit.contains(setting), "the unit lacks {setting}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("jingzhi.service");
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/jingzhi",
            binary().to_str().expect("UTF-8 path"),
        ),
    )
    .expect("write unit");
    let out = run_ok(Command::new(&analyze).arg("verify").arg(&copy));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.trim().is_empty(), "systemd-analyze verify:\n{said}");

    // The image: two stages, a locked release build, a non-root user, the
    // data volume, and a command line serve accepts.
    let lines = dockerfile_lines();
    let from = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(from, 2, "a build stage and a runtime stage");
    assert!(lines
        .iter()
        .any(|l| l.contains("cargo build --release --locked")));
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "runs as {user}"
    );
    assert!(lines.iter().any(|l| l == "EXPOSE 8080"));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("VOLUME") && l.contains("/var/lib/jingzhi")));
    let cmd = lines
        .iter()
        .find(|l| l.starts_with("CMD "))
        .map(|l| exec_form(l, "CMD"))
        .expect("CMD");
    assert_eq!(cmd[0], "serve");
    for flag in flags(cmd.iter().map(String::as_str)) {
        assert!(help.contains(&flag), "CMD uses {flag}, which serve lacks");
    }
    for copied in ["ops/jingzhi.toml", "rules/examples/"] {
        assert!(repo().join(copied).exists(), "the image copies {copied}");
    }

    // The sample config checks, with the sample rules beside it.
    let etc = tempfile::tempdir().expect("temp dir");
    std::fs::copy(ops("jingzhi.toml"), etc.path().join("jingzhi.toml")).expect("copy config");
    let rules = etc.path().join("rules");
    std::fs::create_dir(&rules).expect("rules dir");
    for e in std::fs::read_dir(repo().join("rules/examples")).expect("examples") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "rules") {
            std::fs::copy(&p, rules.join(p.file_name().expect("name"))).expect("copy rule");
        }
    }
    let out = run_ok(
        Command::new(binary())
            .args(["config", "check"])
            .arg(etc.path().join("jingzhi.toml")),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("ok"), "{said}");
}

/// Runs the image's health check against a loopback port instead of 8080.
fn health_check(bash: &Path, check: &[String], port: u16) -> Output {
    let args: Vec<String> = check[1..]
        .iter()
        .map(|a| a.replace("/8080", &format!("/{port}")))
        .collect();
    Command::new(bash)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run the health check")
}

#[tokio::test]
async fn container_health_check_asks_healthz() {
    let bash = tool("bash", "bash");
    let check = dockerfile_lines()
        .into_iter()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .map(|l| exec_form(&l, " CMD"))
        .expect("HEALTHCHECK ... CMD [...]");
    assert_eq!(check[0], "bash");
    assert!(check.iter().any(|a| a.contains("/healthz")), "{check:?}");
    let server = Server::start(&[], &[]);
    let port: u16 = server
        .addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let (b, c) = (bash.clone(), check.clone());
    let healthy = tokio::task::spawn_blocking(move || health_check(&b, &c, port))
        .await
        .expect("health check");
    assert!(
        healthy.status.success(),
        "health check failed against a running server: {}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    drop(server);
    let closed = free_port();
    let down = tokio::task::spawn_blocking(move || health_check(&bash, &check, closed))
        .await
        .expect("health check");
    assert!(!down.status.success(), "health check passed with no server");
}
