//! Test support: start the real `jingzhi` binary on a loopback port and
//! talk to it over real HTTP and WebSocket.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// A running server process; killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    pub addr: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a started `jingzhi serve` (stdout piped) to print its address,
/// and keeps draining stdout so the server never blocks on a full pipe.
pub fn listening_address(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("jingzhi exited before listening")
            .expect("read stdout");
        if let Some(rest) = line.strip_prefix("jingzhi: listening on http://") {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    addr
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_jingzhi"))
}

impl Server {
    /// Starts `jingzhi serve` with the given rule files (name, text) and
    /// extra arguments, on a free loopback port.
    pub fn start(rules: &[(&str, &str)], args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let rules_dir = dir.path().join("rules");
        std::fs::create_dir_all(&rules_dir).expect("rules dir");
        for (name, text) in rules {
            std::fs::write(rules_dir.join(name), text).expect("write rule");
        }
        let mut child = Command::new(binary())
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--rules"])
            .arg(&rules_dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start jingzhi");
        let addr = listening_address(&mut child);
        Server {
            child,
            base: format!("http://{addr}"),
            addr,
            dir,
            http: reqwest::Client::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub async fn post_events(&self, body: String) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/events", self.base))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("POST events");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn watermark(&self, ts: u64) -> Value {
        let r = self
            .http
            .post(format!("{}/api/v1/watermark", self.base))
            .json(&serde_json::json!({ "ts": ts }))
            .send()
            .await
            .expect("POST watermark");
        assert_eq!(r.status().as_u16(), 200, "watermark {ts}");
        r.json().await.expect("watermark json")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    pub async fn alerts(&self) -> Vec<Value> {
        let (status, body) = self.get_json("/api/v1/alerts").await;
        assert_eq!(status, 200);
        body["alerts"].as_array().cloned().unwrap_or_default()
    }

    pub async fn feed(&self) -> Feed {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/api/v1/alerts/ws", self.addr))
                .await
                .expect("connect WebSocket");
        Feed { ws }
    }

    /// The value of a metric sample line, e.g. `jingzhi_events_accepted_total{stream="sensor"}`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.get_text("/metrics").await;
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

/// A WebSocket client of the alert feed.
pub struct Feed {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Feed {
    /// The next feed message, failing the test after `secs` seconds.
    pub async fn next(&mut self, secs: u64) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(secs), self.ws.next())
                .await
                .expect("feed message in time")
                .expect("feed open")
                .expect("feed message");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).expect("feed JSON"),
                Message::Ping(p) => {
                    let _ = self.ws.send(Message::Pong(p)).await;
                }
                Message::Close(f) => panic!("feed closed: {f:?}"),
                _ => {}
            }
        }
    }

    /// Asserts that nothing arrives for `ms` milliseconds.
    pub async fn quiet(&mut self, ms: u64) {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(ms), self.ws.next()).await
        {
            panic!("unexpected feed message: {t}");
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// One NDJSON line of a sensor reading placed in a cell.
pub fn sensor(ts: u64, cell: u32, kind: &str, value: f64) -> String {
    format!(
        "{{\"stream\":\"sensor\",\"ts\":{ts},\"sensor_id\":\"s{cell}-{kind}\",\"kind\":\"{kind}\",\"cell\":{cell},\"value\":{value}}}\n"
    )
}

pub fn traffic(ts: u64, cell: u32, speed: f64) -> String {
    format!(
        "{{\"stream\":\"traffic\",\"ts\":{ts},\"segment_id\":\"g{cell}\",\"cell\":{cell},\"speed_kmh\":{speed},\"flow\":20}}\n"
    )
}

pub fn incident(ts: u64, cell: u32, id: &str, kind: &str) -> String {
    format!(
        "{{\"stream\":\"incident\",\"ts\":{ts},\"incident_id\":\"{id}\",\"kind\":\"{kind}\",\"cell\":{cell},\"severity\":2}}\n"
    )
}
