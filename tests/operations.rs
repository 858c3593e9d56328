//! Operating Jingzhi: operator actions with roles and district scopes,
//! silences, resuming the feed, personal-data masking, and recovery after
//! `kill -9` — all against the real binary over real HTTP and WebSocket.

mod support;

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{binary, listening_address, sensor, T0};
use tokio_tungstenite::tungstenite::Message;

const FLOOD: &str = r#"
rule flood "积水" {
  severity orange
  group by cell
  let water = max(sensor.value where kind == "water_level") over 10m
  when water > 0.3
  message "网格 {cell} 积水 {water:.2} m"
}
"#;

/// Tokens of the test config: (name, token, roles, districts).
struct People {
    tokens: BTreeMap<&'static str, String>,
}

impl People {
    fn token(&self, who: &str) -> &str {
        &self.tokens[who]
    }
}

/// Writes a config file granting one token per person; `scoped` limits
/// the operator `scoped` to `district`.
fn write_config(root: &Path, district: Option<&str>, extra: &str) -> People {
    let people: [(&str, &str, Option<&str>); 5] = [
        ("feed", "ingest", None),
        ("ops", "operator", None),
        ("scoped", "operator", district),
        ("author", "author", None),
        ("root", "admin", None),
    ];
    let mut text = String::from(extra);
    let mut tokens = BTreeMap::new();
    for (name, role, district) in people {
        let token = format!("test-token-{name}");
        let hash = hash(&token);
        text.push_str(&format!(
            "\n[[auth.tokens]]\nname = \"{name}\"\nsha256 = \"{hash}\"\nroles = [\"{role}\"]\n"
        ));
        if let Some(d) = district {
            text.push_str(&format!("districts = [\"{d}\"]\n"));
        }
        tokens.insert(name, token);
    }
    std::fs::write(root.join("jingzhi.toml"), text).expect("write config");
    People { tokens }
}

/// The SHA-256 the config wants, computed by the binary's own helper
/// would hide a bug in it; use the system's `sha256sum` instead.
fn hash(token: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(token.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_string()
}

/// A `jingzhi serve` process with its files under `root`.
struct Node {
    child: Child,
    base: String,
    addr: String,
    http: reqwest::Client,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(root: &Path, args: &[&str]) -> Node {
        let rules = root.join("rules");
        std::fs::create_dir_all(&rules).expect("rules dir");
        if !rules.join("flood.rules").exists() {
            std::fs::write(rules.join("flood.rules"), FLOOD).expect("rule");
        }
        // `data` names the data directory under `root`.
        let data = root.join("data");
        let args: Vec<&std::ffi::OsStr> = args
            .iter()
            .map(|a| {
                if *a == "data" {
                    data.as_os_str()
                } else {
                    std::ffi::OsStr::new(a)
                }
            })
            .collect();
        let mut child = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--clock", "event"])
            .arg("--rules")
            .arg(&rules)
            .arg("--config")
            .arg(root.join("jingzhi.toml"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start jingzhi");
        let addr = listening_address(&mut child);
        Node {
            child,
            base: format!("http://{addr}"),
            addr,
            http: reqwest::Client::new(),
        }
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn events(&self, token: &str, body: String) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/events", self.base))
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .expect("POST events");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn watermark(&self, token: &str, ts: u64) -> Value {
        let (status, body) = self
            .post("/api/v1/watermark", Some(token), json!({ "ts": ts }))
            .await;
        assert_eq!(status, 200, "watermark: {body}");
        body
    }

    async fn alerts(&self, token: &str) -> Vec<Value> {
        let (status, body) = self.get("/api/v1/alerts", Some(token)).await;
        assert_eq!(status, 200, "{body}");
        body["alerts"].as_array().cloned().unwrap_or_default()
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no metric {series}"))
    }

    async fn feed(&self, token: Option<&str>, since: Option<u64>) -> Feed {
        let mut url = format!("ws://{}/api/v1/alerts/ws?", self.addr);
        if let Some(t) = token {
            url.push_str(&format!("token={t}&"));
        }
        if let Some(s) = since {
            url.push_str(&format!("since={s}"));
        }
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect WebSocket");
        Feed { ws }
    }
}

struct Feed {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Feed {
    async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("feed message in time")
                .expect("feed open")
                .expect("feed message");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).expect("feed JSON"),
                Message::Close(f) => panic!("feed closed: {f:?}"),
                _ => {}
            }
        }
    }

    /// Nothing arrives for `ms` milliseconds.
    async fn quiet(&mut self, ms: u64) {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(ms), self.ws.next()).await
        {
            panic!("unexpected feed message: {t}");
        }
    }

    /// The next message for alert `id`, skipping others.
    async fn next_for(&mut self, id: &str) -> Value {
        loop {
            let m = self.next().await;
            if m["alert"]["id"] == id {
                return m;
            }
        }
    }
}

/// Floods `cells` at `ts` (water 0.5 m): one alert per cell.
fn flood(ts: u64, cells: &[u32]) -> String {
    cells
        .iter()
        .map(|c| sensor(ts, *c, "water_level", 0.5))
        .collect()
}

/// Cells spread over the grid, so that they fall in different districts.
const SPREAD: [u32; 6] = [4545, 5050, 5555, 3030, 6060, 4060];

#[tokio::test]
async fn operator_actions_need_the_right_role_and_reach_every_dashboard() {
    let root = tempfile::tempdir().expect("temp dir");
    // Find the districts of the cells first (any token sees them all).
    let people = write_config(root.path(), None, "");
    let probe = Node::start(root.path(), &[]);
    probe.events(people.token("feed"), flood(T0, &SPREAD)).await;
    probe.watermark(people.token("feed"), T0 + 1).await;
    let districts: BTreeSet<String> = probe
        .alerts(people.token("root"))
        .await
        .iter()
        .filter_map(|a| a["district"].as_str().map(str::to_string))
        .collect();
    assert!(
        districts.len() >= 2,
        "the cells span districts: {districts:?}"
    );
    drop(probe);
    let mine = districts.iter().next().expect("a district").clone();

    let root = tempfile::tempdir().expect("temp dir");
    let people = write_config(root.path(), Some(&mine), "");
    let node = Node::start(root.path(), &["--data-dir", "data"]);
    let (feed_t, ops, scoped, author, admin) = (
        people.token("feed"),
        people.token("ops"),
        people.token("scoped"),
        people.token("author"),
        people.token("root"),
    );

    // Who may do what: no token, a wrong token, the wrong role.
    let (status, body) = node.get("/api/v1/alerts", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = node.get("/api/v1/alerts", Some("nope")).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = node.events(ops, flood(T0, &SPREAD)).await;
    assert_eq!(status, 403, "an operator may not ingest: {body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, body) = node.events(feed_t, flood(T0, &SPREAD)).await;
    assert_eq!(status, 200, "{body}");
    node.watermark(feed_t, T0 + 1).await;
    let (status, me) = node.get("/api/v1/whoami", Some(scoped)).await;
    assert_eq!(status, 200);
    assert_eq!(me["name"], "scoped");
    assert_eq!(me["districts"], json!([mine]));

    let all = node.alerts(admin).await;
    assert_eq!(all.len(), SPREAD.len());
    let inside: Vec<&Value> = all
        .iter()
        .filter(|a| a["district"] == mine.as_str())
        .collect();
    let outside: Vec<&Value> = all
        .iter()
        .filter(|a| a["district"] != mine.as_str())
        .collect();
    assert!(!inside.is_empty() && !outside.is_empty());
    for a in &all {
        assert_eq!(a["operator"]["state"], "new", "{a}");
        assert_eq!(a["silenced"], false);
    }
    // The scoped operator sees only their district, over REST and WebSocket.
    let seen: Vec<Value> = node.alerts(scoped).await;
    assert_eq!(seen.len(), inside.len());
    assert!(seen.iter().all(|a| a["district"] == mine.as_str()));
    let mut scoped_feed = node.feed(Some(scoped), None).await;
    let snapshot = scoped_feed.next().await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(
        snapshot["alerts"].as_array().map(Vec::len),
        Some(inside.len())
    );
    let mut wall = node.feed(Some(admin), None).await;
    assert_eq!(wall.next().await["type"], "snapshot");
    let (status, _) = node
        .get(
            &format!("/api/v1/alerts/{}", outside[0]["id"].as_str().unwrap()),
            Some(scoped),
        )
        .await;
    assert_eq!(status, 404, "an alert outside the scope is not shown");

    // Acknowledge: the wrong role, the wrong district, then the right one.
    let target = inside[0]["id"].as_str().unwrap().to_string();
    let other = outside[0]["id"].as_str().unwrap().to_string();
    let ack = |id: &str| format!("/api/v1/alerts/{id}/acknowledge");
    for (verb, body) in [
        ("acknowledge", json!({})),
        ("assign", json!({"to": "朝阳消防中队"})),
        ("comment", json!({"text": "到场"})),
        ("resolve", json!({})),
        ("false-alarm", json!({})),
    ] {
        let path = format!("/api/v1/alerts/{target}/{verb}");
        for wrong in [author, feed_t] {
            let (status, body) = node.post(&path, Some(wrong), body.clone()).await;
            assert_eq!(status, 403, "{verb} with the wrong role: {body}");
            assert_eq!(body["error"]["code"], "forbidden");
        }
        let (status, _) = node.post(&path, None, body.clone()).await;
        assert_eq!(status, 401, "{verb} without a token");
    }
    let (status, _) = node.post(&ack(&target), None, json!({})).await;
    assert_eq!(status, 401);
    let (status, body) = node.post(&ack(&other), Some(scoped), json!({})).await;
    assert_eq!(status, 403, "outside the operator's district: {body}");
    let (status, body) = node
        .post(&ack(&target), Some(scoped), json!({"note": "已派人查看"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["operator"]["state"], "acknowledged");
    assert_eq!(body["operator"]["acknowledged_by"], "scoped");
    assert_eq!(body["alert"]["operator"]["state"], "acknowledged");
    // Every dashboard hears of it as an update, the scoped one included.
    for feed in [&mut wall, &mut scoped_feed] {
        let update = feed.next_for(&target).await;
        assert_eq!(update["type"], "updated", "{update}");
        assert_eq!(update["alert"]["operator"]["state"], "acknowledged");
        assert_eq!(update["alert"]["operator"]["acknowledged_by"], "scoped");
    }
    // An action on an alert outside the scope never reaches the scoped feed.
    let (status, _) = node
        .post(
            &format!("/api/v1/alerts/{other}/assign"),
            Some(ops),
            json!({"to": "朝阳消防中队"}),
        )
        .await;
    assert_eq!(status, 200);
    let update = wall.next_for(&other).await;
    assert_eq!(update["alert"]["operator"]["state"], "assigned");
    assert_eq!(update["alert"]["operator"]["assigned_to"], "朝阳消防中队");
    scoped_feed.quiet(300).await;

    // The rest of the workflow, and its errors.
    let act = |verb: &str| format!("/api/v1/alerts/{target}/{verb}");
    let (status, body) = node.post(&act("assign"), Some(ops), json!({})).await;
    assert_eq!(status, 400, "assign needs `to`: {body}");
    let (status, body) = node
        .post(&act("comment"), Some(ops), json!({"text": "  "}))
        .await;
    assert_eq!(status, 400, "a blank comment: {body}");
    let (status, body) = node.post(&act("dance"), Some(ops), json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = node
        .post(
            "/api/v1/alerts/0000000000000000/acknowledge",
            Some(ops),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = node
        .post(&act("comment"), Some(ops), json!({"text": "水位仍在上涨"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["operator"]["last_comment"]["text"], "水位仍在上涨");
    let (status, body) = node.post(&act("false-alarm"), Some(admin), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["operator"]["state"], "false_alarm");
    let (status, body) = node.post(&act("resolve"), Some(ops), json!({})).await;
    assert_eq!(status, 200, "{body}");

    // The history and the audit log record all of it; stats count it.
    let (status, history) = node
        .get(&format!("/api/v1/alerts/{target}/history"), Some(ops))
        .await;
    assert_eq!(status, 200, "{history}");
    let actions: Vec<&str> = history["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["acknowledge", "comment", "false_alarm", "resolve"]
    );
    assert_eq!(history["changes"][0]["kind"], "raised");
    let (status, _) = node.get("/api/v1/audit", Some(ops)).await;
    assert_eq!(status, 403, "the audit log is for admins");
    let (status, audit) = node.get("/api/v1/audit", Some(admin)).await;
    assert_eq!(status, 200);
    let who: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("alert."))
        })
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            ("scoped".to_string(), "alert.acknowledge".to_string()),
            ("ops".into(), "alert.assign".into()),
            ("ops".into(), "alert.comment".into()),
            ("root".into(), "alert.false_alarm".into()),
            ("ops".into(), "alert.resolve".into()),
        ]
    );
    let (status, stats) = node.get("/api/v1/stats?since=0", Some(ops)).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["by_rule"]["flood"]["raised"], SPREAD.len());
    assert_eq!(stats["by_rule"]["flood"]["acknowledged"], 1);
    assert_eq!(stats["by_rule"]["flood"]["false_alarms"], 1);
    let (_, scoped_stats) = node.get("/api/v1/stats?since=0", Some(scoped)).await;
    assert!(scoped_stats.get("by_rule").is_none(), "{scoped_stats}");
    assert_eq!(
        scoped_stats["by_district"]
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>()),
        Some(vec![mine.clone()])
    );

    // Refusals are counted by reason; actions by kind.
    assert!(
        node.metric("jingzhi_auth_refused_total{reason=\"missing_token\"}")
            .await
            >= 2.0
    );
    assert!(
        node.metric("jingzhi_auth_refused_total{reason=\"invalid_token\"}")
            .await
            >= 1.0
    );
    assert!(
        node.metric("jingzhi_auth_refused_total{reason=\"forbidden\"}")
            .await
            >= 3.0
    );
    assert!(
        node.metric("jingzhi_auth_refused_total{reason=\"out_of_scope\"}")
            .await
            >= 1.0
    );
    assert_eq!(
        node.metric("jingzhi_operator_actions_total{action=\"acknowledge\"}")
            .await,
        1.0
    );
    // Effectiveness as metrics, per rule and district.
    let ratio = node
        .metric("jingzhi_rule_false_alarm_ratio{rule=\"flood\"}")
        .await;
    assert!((ratio - 1.0 / SPREAD.len() as f64).abs() < 1e-9, "{ratio}");
    let series = format!(
        "jingzhi_district_response_seconds{{district=\"{mine}\",kind=\"acknowledge\",percentile=\"50\"}}"
    );
    assert!(node.metric(&series).await >= 0.0);
}

#[tokio::test]
async fn silences_mute_alerts_until_they_end() {
    let root = tempfile::tempdir().expect("temp dir");
    let people = write_config(root.path(), None, "");
    let node = Node::start(root.path(), &[]);
    let (feed_t, ops) = (people.token("feed"), people.token("ops"));
    node.events(feed_t, flood(T0, &[4545, 5050])).await;
    node.watermark(feed_t, T0 + 1).await;
    let mut feed = node.feed(Some(ops), None).await;
    let snapshot = feed.next().await;
    let a = snapshot["alerts"][0].clone();
    let id = a["id"].as_str().unwrap().to_string();
    let cell = a["cell"].as_u64().unwrap();

    // Bad requests first.
    let (status, body) = node
        .post("/api/v1/silences", Some(ops), json!({"reason": "施工"}))
        .await;
    assert_eq!(status, 400, "a silence must name what it covers: {body}");
    let (status, body) = node
        .post(
            "/api/v1/silences",
            Some(ops),
            json!({"cell": cell, "reason": "施工", "duration": "soon"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = node
        .post(
            "/api/v1/silences",
            Some(people.token("author")),
            json!({"cell": cell, "reason": "施工"}),
        )
        .await;
    assert_eq!(status, 403);

    // A two-second silence on the cell: silenced now, not later.
    let (status, silence) = node
        .post(
            "/api/v1/silences",
            Some(ops),
            json!({"cell": cell, "reason": "道路施工，已知积水", "duration": "2s"}),
        )
        .await;
    assert_eq!(status, 201, "{silence}");
    let update = feed.next_for(&id).await;
    assert_eq!(update["type"], "updated");
    assert_eq!(update["alert"]["silenced"], true);
    assert_eq!(update["alert"]["silences"], json!([silence["id"]]));
    let shown = node.alerts(ops).await;
    assert_eq!(shown.len(), 2, "a silenced alert stays visible");
    assert_eq!(
        shown.iter().filter(|a| a["silenced"] == true).count(),
        1,
        "only the silenced cell"
    );
    let (_, listed) = node.get("/api/v1/silences", Some(ops)).await;
    assert_eq!(listed["silences"].as_array().map(Vec::len), Some(1));
    let update = feed.next_for(&id).await;
    assert_eq!(
        update["alert"]["silenced"], false,
        "the silence ran out: {update}"
    );
    let (_, listed) = node.get("/api/v1/silences", Some(ops)).await;
    assert_eq!(listed["silences"], json!([]));

    // A silence ended early through the API.
    let (status, silence) = node
        .post(
            "/api/v1/silences",
            Some(ops),
            json!({"rule": "flood", "reason": "演练"}),
        )
        .await;
    assert_eq!(status, 201);
    for _ in 0..2 {
        let m = feed.next().await;
        assert_eq!(m["alert"]["silenced"], true, "{m}");
    }
    let sid = silence["id"].as_i64().unwrap();
    let (status, ended) = node
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/silences/{sid}"),
            Some(ops),
            None,
        )
        .await;
    assert_eq!(status, 200, "{ended}");
    assert!(ended["expired_at"].is_u64());
    for _ in 0..2 {
        let m = feed.next().await;
        assert_eq!(m["alert"]["silenced"], false, "{m}");
    }
    let (status, _) = node
        .send(
            reqwest::Method::DELETE,
            "/api/v1/silences/999",
            Some(ops),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_client_resumes_with_exactly_the_changes_it_missed() {
    let root = tempfile::tempdir().expect("temp dir");
    let people = write_config(root.path(), None, "");
    let node = Node::start(root.path(), &[]);
    let (feed_t, ops) = (people.token("feed"), people.token("ops"));
    let mut feed = node.feed(Some(ops), None).await;
    let seen = feed.next().await["seq"].as_u64().unwrap();
    drop(feed);

    // Missed: three raises, an update, a clear.
    node.events(feed_t, flood(T0, &[1000, 2000, 3000])).await;
    node.watermark(feed_t, T0 + 1).await;
    node.events(feed_t, sensor(T0 + 2, 1000, "water_level", 0.9))
        .await;
    node.watermark(feed_t, T0 + 3).await;
    node.watermark(feed_t, T0 + 11 * 60_000).await;
    node.events(feed_t, flood(T0 + 11 * 60_000, &[2000])).await;
    node.watermark(feed_t, T0 + 11 * 60_000 + 1).await;
    let (_, now) = node.get("/api/v1/alerts", Some(ops)).await;
    let last = now["seq"].as_u64().unwrap();
    assert!(last > seen + 4, "changes happened: {seen} → {last}");

    let mut resumed = node.feed(Some(ops), Some(seen)).await;
    let mut got = Vec::new();
    for _ in seen..last {
        let m = resumed.next().await;
        assert_ne!(m["type"], "snapshot", "a resume is not a snapshot: {m}");
        got.push(m["seq"].as_u64().unwrap());
    }
    let want: Vec<u64> = (seen + 1..=last).collect();
    assert_eq!(got, want, "every missed change, in order, once");
    resumed.quiet(300).await;

    // Up to date: nothing to replay, then live changes.
    let mut current = node.feed(Some(ops), Some(last)).await;
    current.quiet(300).await;
    node.events(feed_t, flood(T0 + 11 * 60_000 + 2, &[4000]))
        .await;
    node.watermark(feed_t, T0 + 11 * 60_000 + 3).await;
    let m = current.next().await;
    assert_eq!(m["type"], "raised");
    assert_eq!(m["seq"], last + 1);

    // A number the server never gave: a fresh snapshot, marked.
    let mut lost = node.feed(Some(ops), Some(last + 1000)).await;
    let m = lost.next().await;
    assert_eq!(m["type"], "snapshot");
    assert_eq!(m["resync"], true);
    assert_eq!(m["reason"], "since_unavailable");
    assert_eq!(m["seq"], last + 1);
}

#[tokio::test]
async fn personal_data_is_masked_before_it_is_written() {
    let root = tempfile::tempdir().expect("temp dir");
    let people = write_config(
        root.path(),
        None,
        "[masking]\n[[masking.patterns]]\nname = \"work_order\"\nregex = \"WO-[0-9]{6}\"\nkeep_prefix = 2\nkeep_suffix = 2\n",
    );
    let node = Node::start(root.path(), &["--data-dir", "data"]);
    let text =
        "京A12345与京B6D789追尾，报警人电话13812345678，身份证110105199001011234，工单WO-123456";
    let line = json!({
        "stream": "incident", "ts": T0, "cell": 5050, "incident_id": "110-7",
        "kind": "accident", "severity": 2, "description": text,
    });
    let (status, body) = node.events(people.token("feed"), format!("{line}\n")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(node.metric("jingzhi_events_masked_total").await, 1.0);
    let mut logged = String::new();
    for entry in std::fs::read_dir(root.path().join("data/log")).expect("log dir") {
        logged.push_str(&std::fs::read_to_string(entry.expect("entry").path()).expect("segment"));
    }
    let description = logged
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["description"].as_str().map(str::to_string))
        .expect("the incident is in the log");
    assert_eq!(
        description,
        "京A***45与京B***89追尾，报警人电话138****5678，身份证110105********1234，工单WO****56"
    );
    for raw in ["13812345678", "110105199001011234", "京A12345", "WO-123456"] {
        assert!(!logged.contains(raw), "`{raw}` reached the disk");
    }
}

/// What must survive a crash, per alert.
fn picture(alerts: &[Value]) -> BTreeMap<String, Value> {
    alerts
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_string(),
                json!({
                    "started_at": a["started_at"],
                    "severity": a["severity"],
                    "values": a["values"],
                    "operator": a["operator"]["state"],
                    "by": a["operator"]["acknowledged_by"],
                }),
            )
        })
        .collect()
}

#[tokio::test]
async fn kill_9_loses_no_accepted_event_and_no_acknowledgement() {
    let root = tempfile::tempdir().expect("temp dir");
    let people = write_config(root.path(), None, "");
    let (feed_t, ops) = (
        people.token("feed").to_string(),
        people.token("ops").to_string(),
    );
    let args = ["--data-dir", "data", "--sync", "always", "--workers", "2"];
    let node = Node::start(root.path(), &args);

    // Alerts raised at different times, one acknowledged.
    node.events(&feed_t, flood(T0, &[4545, 5050])).await;
    node.watermark(&feed_t, T0 + 60_000).await;
    node.events(&feed_t, flood(T0 + 120_000, &[5555])).await;
    node.watermark(&feed_t, T0 + 180_000).await;
    let before = node.alerts(&ops).await;
    assert_eq!(before.len(), 3);
    let acked = before[0]["id"].as_str().unwrap().to_string();
    let (status, _) = node
        .post(
            &format!("/api/v1/alerts/{acked}/acknowledge"),
            Some(&ops),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let before = node.alerts(&ops).await;
    let (_, listing) = node.get("/api/v1/alerts", Some(&ops)).await;
    let seq_before = listing["seq"].as_u64().unwrap();

    // A stream of readings that raise nothing, killed in the middle.
    let streamer = {
        let (base, token) = (node.base.clone(), feed_t.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acknowledged = 0u64;
            for i in 0..10_000u64 {
                let body: String = (0..50)
                    .map(|j| sensor(T0 + 180_000 + i, 100 + (j as u32), "water_level", 0.05))
                    .collect();
                let sent = http
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(&token)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => acknowledged += 50,
                    _ => break,
                }
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let accepted_live = node
        .metric("jingzhi_events_accepted_total{stream=\"sensor\"}")
        .await;
    node.kill9();
    let acknowledged = streamer.await.expect("streamer");
    assert!(
        acknowledged > 0,
        "the stream was running when the process died"
    );
    assert!(accepted_live >= 5.0);

    // Restart on the same data directory.
    let node = Node::start(root.path(), &args);
    let recovered = node.metric("jingzhi_events_recovered_total").await;
    let sent_before = 2.0 + 1.0;
    assert!(
        recovered >= sent_before + acknowledged as f64,
        "every acknowledged event is back: {recovered} recovered, {acknowledged} acknowledged in the stream"
    );
    assert!(
        recovered <= sent_before + acknowledged as f64 + 50.0,
        "at most the batch in flight more: {recovered}"
    );
    let after = node.alerts(&ops).await;
    assert_eq!(
        picture(&after),
        picture(&before),
        "the same alerts, start times and acknowledgements"
    );
    let (_, listing) = node.get("/api/v1/alerts", Some(&ops)).await;
    let seq_after = listing["seq"].as_u64().unwrap();
    assert_eq!(
        seq_after, seq_before,
        "nothing changed, so no change was published"
    );

    // A client that saw everything before the crash misses nothing and
    // is told of nothing twice.
    let mut feed = node.feed(Some(&ops), Some(seq_before)).await;
    feed.quiet(300).await;
    node.events(&feed_t, flood(T0 + 200_000, &[6060])).await;
    node.watermark(&feed_t, T0 + 200_001).await;
    let m = feed.next().await;
    assert_eq!(m["type"], "raised");
    assert_eq!(
        m["seq"],
        seq_before + 1,
        "numbers continue across the restart"
    );

    // The windows close as they would have: the flood alerts clear once
    // their ten minutes pass, and the acknowledgement stays on record.
    node.watermark(&feed_t, T0 + 13 * 60_000).await;
    let left: Vec<String> = node
        .alerts(&ops)
        .await
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!left.contains(&acked));
    let (_, history) = node
        .get(&format!("/api/v1/alerts/{acked}/history"), Some(&ops))
        .await;
    assert_eq!(history["actions"][0]["action"], "acknowledge");
}

#[tokio::test]
async fn an_alert_back_within_the_reopen_window_is_the_same_incident() {
    let root = tempfile::tempdir().expect("temp dir");
    let people = write_config(root.path(), None, "reopen_window = \"5m\"\n");
    let node = Node::start(root.path(), &[]);
    let (feed_t, ops) = (people.token("feed"), people.token("ops"));
    node.events(feed_t, flood(T0, &[4545])).await;
    node.watermark(feed_t, T0 + 1).await;
    let id = node.alerts(ops).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = node
        .post(
            &format!("/api/v1/alerts/{id}/acknowledge"),
            Some(ops),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);

    // The window passes (clear at T0 + 10m), the water is back 2 minutes later.
    node.watermark(feed_t, T0 + 10 * 60_000 + 1).await;
    assert!(node.alerts(ops).await.is_empty());
    node.events(feed_t, flood(T0 + 12 * 60_000, &[4545])).await;
    node.watermark(feed_t, T0 + 12 * 60_000 + 1).await;
    let back = node.alerts(ops).await;
    assert_eq!(back[0]["id"], id.as_str());
    assert_eq!(back[0]["operator"]["state"], "acknowledged", "{}", back[0]);
    assert_eq!(back[0]["operator"]["reopened"], 1);

    // Back after the window: a new incident, nobody has seen it yet.
    node.watermark(feed_t, T0 + 22 * 60_000 + 1).await;
    assert!(node.alerts(ops).await.is_empty());
    node.events(feed_t, flood(T0 + 40 * 60_000, &[4545])).await;
    node.watermark(feed_t, T0 + 40 * 60_000 + 1).await;
    let fresh = node.alerts(ops).await;
    assert_eq!(fresh[0]["id"], id.as_str());
    assert_eq!(fresh[0]["operator"]["state"], "new", "{}", fresh[0]);
    let (_, stats) = node.get("/api/v1/stats?since=0", Some(ops)).await;
    assert_eq!(
        stats["total"]["raised"], 2,
        "two incidents, not three: {stats}"
    );
}

#[tokio::test]
async fn sigterm_closes_clients_flushes_the_log_and_exits_cleanly() {
    let root = tempfile::tempdir().expect("temp dir");
    let people = write_config(root.path(), None, "");
    let (feed_t, ops) = (people.token("feed"), people.token("ops"));
    let args = ["--data-dir", "data", "--sync", "never"];
    let mut node = Node::start(root.path(), &args);
    let (status, ready) = node.get("/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    node.events(feed_t, flood(T0, &[4545, 5050])).await;
    node.watermark(feed_t, T0 + 1).await;
    let mut feed = node.feed(Some(ops), None).await;
    assert_eq!(feed.next().await["type"], "snapshot");

    let pid = node.child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let close = tokio::time::timeout(Duration::from_secs(10), feed.ws.next())
        .await
        .expect("a close frame in time");
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
    let status = node.child.wait().expect("exit");
    assert!(status.success(), "a clean exit: {status}");

    // `sync = never` leaves syncing to the kernel, but a clean stop syncs:
    // everything is back after the restart.
    let node = Node::start(root.path(), &args);
    assert_eq!(node.metric("jingzhi_events_recovered_total").await, 2.0);
    assert_eq!(node.alerts(ops).await.len(), 2);
}

#[tokio::test]
async fn the_timeline_counts_recorded_raises_and_clears_per_bucket() {
    let root = tempfile::tempdir().expect("temp dir");
    let people = write_config(root.path(), None, "");
    let node = Node::start(root.path(), &[]);
    let (feed_t, ops) = (people.token("feed"), people.token("ops"));
    node.events(feed_t, flood(T0, &[4545, 5050])).await;
    node.watermark(feed_t, T0 + 1).await;
    node.events(feed_t, flood(T0 + 20 * 60_000, &[5555])).await;
    // The first two clear at T0 + 10m; the third is raised at T0 + 20m.
    node.watermark(feed_t, T0 + 20 * 60_000 + 1).await;
    let path = format!(
        "/api/v1/alerts/timeline?since={T0}&until={}&step=600000",
        T0 + 30 * 60_000
    );
    let (status, body) = node.get(&path, Some(ops)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["buckets"],
        json!([[T0, 2, 0], [T0 + 600_000, 0, 2], [T0 + 1_200_000, 1, 0]])
    );
    let (status, _) = node
        .get("/api/v1/alerts/timeline?since=10&until=5", Some(ops))
        .await;
    assert_eq!(status, 400);
    let (status, _) = node.get("/api/v1/alerts/timeline", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_incident_continues_across_a_restart_within_the_reopen_window() {
    let root = tempfile::tempdir().expect("temp dir");
    let people = write_config(root.path(), None, "reopen_window = \"5m\"\n");
    let (feed_t, ops) = (people.token("feed"), people.token("ops"));
    let args = ["--data-dir", "data"];
    let node = Node::start(root.path(), &args);
    node.events(feed_t, flood(T0, &[4545])).await;
    node.watermark(feed_t, T0 + 1).await;
    let id = node.alerts(ops).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = node
        .post(
            &format!("/api/v1/alerts/{id}/acknowledge"),
            Some(ops),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    node.watermark(feed_t, T0 + 10 * 60_000 + 1).await;
    assert!(node.alerts(ops).await.is_empty(), "cleared before the stop");
    node.kill9();

    // Back two minutes after the clear, on a restarted server.
    let node = Node::start(root.path(), &args);
    node.events(feed_t, flood(T0 + 12 * 60_000, &[4545])).await;
    node.watermark(feed_t, T0 + 12 * 60_000 + 1).await;
    let back = node.alerts(ops).await;
    assert_eq!(back[0]["id"], id.as_str());
    assert_eq!(back[0]["operator"]["state"], "acknowledged", "{}", back[0]);
    assert_eq!(back[0]["operator"]["reopened"], 1);
}
