//! `jingzhi bench http`: throughput over real HTTP ingest, measured from a
//! separate load-generating process. The bench spawns `jingzhi serve` on the
//! event clock as a child process, streams an NDJSON file to it in bodies of
//! a fixed number of lines over several concurrent connections, closes every
//! window with a watermark and checks that the server accepted every event.
//!
//! Also holds what `bench latency` shares with it: the child server guard,
//! a temporary directory, percentiles and reading Prometheus text.

use super::{load_rules, sha256_hex};
use futures_util::StreamExt;
use jingzhi_rules::plan::{GroupBy, Window};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};
use tokio_tungstenite::tungstenite::Message;

/// Largest body the bench sends, under the server's default 16 MiB limit.
const MAX_BODY_BYTES: usize = (16 << 20) - (64 << 10);

/// Settings of `jingzhi bench http`.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub events: PathBuf,
    /// A rule file or a directory of `*.rules`.
    pub rules: PathBuf,
    /// Server timely workers; the server's default (cores) when `None`.
    pub workers: Option<usize>,
    pub connections: usize,
    pub batch_lines: usize,
    /// The server's `--lateness`: concurrent bodies arrive slightly out of
    /// event-time order, and this keeps them from being late.
    pub lateness_ms: u64,
    /// Further arguments for `jingzhi serve`.
    pub server_args: Vec<String>,
}

/// Percentiles of a sample, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Millis {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Millis {
    pub fn of(mut sample: Vec<f64>) -> Millis {
        sample.sort_by(f64::total_cmp);
        Millis {
            n: sample.len(),
            p50: percentile(&sample, 0.50),
            p99: percentile(&sample, 0.99),
            p999: percentile(&sample, 0.999),
            max: sample.last().copied().unwrap_or(0.0),
        }
    }
}

/// The alert set of one tumbling, per-cell rule, as `bench replay` hashes it.
#[derive(Clone, Debug, Serialize)]
pub struct AlertSet {
    pub rule: String,
    pub pairs: usize,
    pub hash: String,
}

/// What `jingzhi bench http` measured.
#[derive(Clone, Debug, Serialize)]
pub struct HttpReport {
    pub mode: &'static str,
    pub events_file: String,
    pub rules: String,
    pub workers: u64,
    pub connections: usize,
    pub batch_lines: usize,
    pub lateness_ms: u64,
    pub server_args: Vec<String>,
    /// Non-blank lines in the file.
    pub lines: u64,
    pub bytes: u64,
    pub requests: usize,
    /// The widest span of event time within one body.
    pub max_body_span_ms: u64,
    /// From the first POST leaving to the watermark's reply.
    pub seconds: f64,
    /// Of which posting the file (first POST to last ingest reply).
    pub post_seconds: f64,
    pub events_per_second: f64,
    pub bytes_per_second: f64,
    pub request_latency_ms: Millis,
    /// Sums of the ingest replies.
    pub accepted: u64,
    pub rejected: u64,
    pub late: u64,
    pub expired: u64,
    /// `jingzhi_events_accepted_total` at the end.
    pub accepted_server: u64,
    pub all_accepted: bool,
    pub watermark: u64,
    pub alert_seq: u64,
    pub active_alerts_at_end: usize,
    pub alert_changes: BTreeMap<String, u64>,
    /// Whether the WebSocket reader saw every change (no resync).
    pub feed_complete: bool,
    pub alert_sets: Vec<AlertSet>,
    pub server_peak_rss_bytes: Option<u64>,
}

/// Runs the benchmark and prints its report; `json` adds a JSON object on
/// stdout (the human summary then goes to stderr).
pub fn command(opts: &HttpOptions, json: bool) -> ExitCode {
    match run(opts) {
        Ok(report) => {
            if !super::print_report(&describe(&report), &report, json) {
                return ExitCode::FAILURE;
            }
            if report.all_accepted {
                ExitCode::SUCCESS
            } else {
                eprintln!("jingzhi: the server did not accept every event");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("jingzhi: bench http: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Formats a report for people.
pub fn describe(r: &HttpReport) -> String {
    let mut s = format!(
        "bench http {}: {} events ({:.1} MB) in {} bodies of up to {} lines over {} connection(s); server: {} worker(s), event clock, lateness {} ms{}\n",
        r.events_file,
        r.lines,
        r.bytes as f64 / 1e6,
        r.requests,
        r.batch_lines,
        r.connections,
        r.workers,
        r.lateness_ms,
        if r.server_args.is_empty() {
            String::new()
        } else {
            format!(", extra args {:?}", r.server_args)
        },
    );
    s.push_str(&format!(
        "  throughput: {:.0} events/s, {:.1} MB/s ({:.3} s from the first POST to the watermark's reply; posting took {:.3} s)\n",
        r.events_per_second,
        r.bytes_per_second / 1e6,
        r.seconds,
        r.post_seconds,
    ));
    s.push_str(&format!(
        "  request latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={})\n",
        r.request_latency_ms.p50,
        r.request_latency_ms.p99,
        r.request_latency_ms.max,
        r.request_latency_ms.n
    ));
    s.push_str(&format!(
        "  accepted {} of {} lines (server counter {}), rejected {}, late {} (expired {}): {}\n",
        r.accepted,
        r.lines,
        r.accepted_server,
        r.rejected,
        r.late,
        r.expired,
        if r.all_accepted {
            "every event accepted"
        } else {
            "NOT every event accepted"
        }
    ));
    if r.late > 0 {
        // A body waits behind up to 2 × connections others, more when one
        // request stalls; leave room for twice that.
        let suggest = (4 * r.connections as u64 * r.max_body_span_ms).div_ceil(1000);
        s.push_str(&format!(
            "  warning: {} events arrived after the clock had passed them (a body spans up to {:.1} s of event time and {} connections reorder bodies); the alert set may differ from an in-order replay; try --lateness {}s or more\n",
            r.late,
            r.max_body_span_ms as f64 / 1e3,
            r.connections,
            suggest.max(1)
        ));
    }
    let changes: Vec<String> = r
        .alert_changes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    s.push_str(&format!(
        "  alerts: watermark {} -> seq {}; changes: {}; active at the end {}\n",
        r.watermark,
        r.alert_seq,
        if changes.is_empty() {
            "none".to_string()
        } else {
            changes.join(", ")
        },
        r.active_alerts_at_end
    ));
    for a in &r.alert_sets {
        s.push_str(&format!(
            "  rule {}: {} alerting (cell, window) pairs, hash={}{}\n",
            a.rule,
            a.pairs,
            a.hash,
            if r.feed_complete {
                ""
            } else {
                " (INCOMPLETE: the feed resynchronised)"
            }
        ));
    }
    s.push_str(&format!(
        "  server peak RSS: {}",
        mib(r.server_peak_rss_bytes)
    ));
    s
}

pub(crate) fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("unknown".into(), |b| {
        format!("{:.1} MiB", b as f64 / 1048576.0)
    })
}

/// Counts of one connection's requests.
#[derive(Default)]
struct PostStats {
    requests: usize,
    accepted: u64,
    rejected: u64,
    late: u64,
    expired: u64,
    latencies_ms: Vec<f64>,
    last_reply: Option<Instant>,
}

/// What the file reader saw.
#[derive(Default)]
struct FileStats {
    lines: u64,
    bytes: u64,
    max_ts: u64,
    /// The widest span of event time within one body.
    max_body_span_ms: u64,
}

/// Runs `jingzhi bench http`.
pub fn run(opts: &HttpOptions) -> Result<HttpReport, String> {
    let connections = opts.connections.max(1);
    let batch_lines = opts.batch_lines.max(1);
    if !opts.events.is_file() {
        return Err(format!("{}: no such file", opts.events.display()));
    }
    // The rules as the server will see them, for the longest window and
    // the alert sets.
    let plans = load_rules(std::slice::from_ref(&opts.rules), 1000)?;
    let reach = plans.iter().map(|p| p.reach(1000)).max().unwrap_or(0);
    let tumbling: BTreeMap<String, u64> = plans
        .iter()
        .filter(|p| p.group_by == GroupBy::Cell)
        .filter_map(|p| match p.terms.first()?.window {
            Window::Tumbling(w) => Some((p.name.clone(), w)),
            Window::Sliding(_) => None,
        })
        .collect();

    let dir = TempDir::new("http")?;
    let rules_dir = rules_dir_for(&opts.rules, &dir)?;
    let mut args: Vec<OsString> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--clock".into(),
        "event".into(),
        "--lateness".into(),
        format!("{}ms", opts.lateness_ms).into(),
        "--rules".into(),
        rules_dir.into_os_string(),
    ];
    if let Some(w) = opts.workers {
        args.push("--workers".into());
        args.push(w.max(1).to_string().into());
    }
    args.extend(opts.server_args.iter().map(OsString::from));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    eprintln!("jingzhi: bench http: starting the server");
    let mut server = ServerProcess::spawn(&args, dir)?;
    let result = runtime.block_on(drive(
        opts,
        &server,
        connections,
        batch_lines,
        reach,
        &tumbling,
    ));
    let peak = server.peak_rss_bytes();
    server.stop();
    let mut report = result?;
    report.server_peak_rss_bytes = peak;
    Ok(report)
}

async fn drive(
    opts: &HttpOptions,
    server: &ServerProcess,
    connections: usize,
    batch_lines: usize,
    reach: u64,
    tumbling: &BTreeMap<String, u64>,
) -> Result<HttpReport, String> {
    let client = client(connections)?;
    let status = get_json(&client, &format!("{}/api/v1/status", server.base)).await?;
    let workers = status["workers"].as_u64().unwrap_or(0);

    // The feed, to rebuild the alert set the way `bench replay` does.
    let (ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/v1/alerts/ws", server.addr))
            .await
            .map_err(|e| format!("cannot connect to the alert feed: {e}"))?;
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(0u64);
    let (stop_feed, stop_rx) = tokio::sync::oneshot::channel();
    let feed = tokio::spawn(read_feed(ws, seen_tx, stop_rx));

    // Bodies flow from a reader thread through a small queue to the
    // connections: at most `connections` in flight plus `connections - 1`
    // queued plus the one being filled.
    let (body_tx, body_rx) = mpsc::channel::<Vec<u8>>(connections.saturating_sub(1).max(1));
    let path = opts.events.clone();
    let reader = std::thread::spawn(move || read_bodies(&path, batch_lines, body_tx));

    let body_rx = Arc::new(Mutex::new(body_rx));
    let first_post: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let url = format!("{}/api/v1/events", server.base);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url, rx, first) = (
            client.clone(),
            url.clone(),
            body_rx.clone(),
            first_post.clone(),
        );
        tasks.spawn(async move {
            let mut stats = PostStats::default();
            loop {
                let body = { rx.lock().await.recv().await };
                let Some(body) = body else { break };
                let sent = Instant::now();
                first.get_or_init(|| sent);
                let reply = post_ndjson(&client, &url, body).await?;
                let now = Instant::now();
                stats.latencies_ms.push((now - sent).as_secs_f64() * 1e3);
                stats.last_reply = Some(now);
                stats.requests += 1;
                stats.accepted += reply["accepted"].as_u64().unwrap_or(0);
                stats.rejected += reply["rejected"].as_u64().unwrap_or(0);
                stats.late += reply["late"].as_u64().unwrap_or(0);
                stats.expired += reply["expired"].as_u64().unwrap_or(0);
            }
            Ok::<PostStats, String>(stats)
        });
    }
    let mut total = PostStats::default();
    let mut failure = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(s)) => {
                total.requests += s.requests;
                total.accepted += s.accepted;
                total.rejected += s.rejected;
                total.late += s.late;
                total.expired += s.expired;
                total.latencies_ms.extend(s.latencies_ms);
                total.last_reply = total.last_reply.max(s.last_reply);
            }
            Ok(Err(e)) => {
                failure.get_or_insert(e);
                // Stop the other connections; closing the queue below stops the reader.
                tasks.abort_all();
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                failure.get_or_insert(format!("a connection task failed: {e}"));
                tasks.abort_all();
            }
        }
    }
    // Close the queue and drain it, so that the reader finishes.
    body_rx.lock().await.close();
    while body_rx.lock().await.try_recv().is_ok() {}
    let file = reader
        .join()
        .map_err(|_| "the file reader failed".to_string())?;
    if let Some(e) = failure {
        return Err(e);
    }
    let file = file?;
    let Some(&started) = first_post.get() else {
        return Err(format!("{}: no events to send", opts.events.display()));
    };
    let posted = total.last_reply.unwrap_or(started);

    // Close every window: past the last event plus the longest window.
    let watermark = file.max_ts + reach + 1000;
    let reply = client
        .post(format!("{}/api/v1/watermark", server.base))
        .json(&serde_json::json!({ "ts": watermark }))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .map_err(|e| format!("watermark: {e}"))?;
    let code = reply.status();
    let text = reply
        .text()
        .await
        .map_err(|e| format!("watermark reply: {e}"))?;
    let finished = Instant::now();
    if !code.is_success() {
        return Err(format!("watermark: HTTP {code}: {}", snippet(&text)));
    }
    let wm: Value =
        serde_json::from_str(&text).map_err(|e| format!("watermark reply is not JSON: {e}"))?;
    let alert_seq = wm["seq"].as_u64().unwrap_or(0);

    // Let the feed reader catch up with the last change, then stop it.
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        seen_rx.wait_for(|&s| s >= alert_seq),
    )
    .await;
    let _ = stop_feed.send(());
    let feed = feed.await.unwrap_or_else(|_| FeedLog {
        resynced: true,
        ..FeedLog::default()
    });
    let feed_complete = !feed.resynced && *seen_rx.borrow() >= alert_seq;

    let alerts = get_json(&client, &format!("{}/api/v1/alerts", server.base)).await?;
    let active = alerts["alerts"].as_array().map_or(0, |a| a.len());
    let metrics = get_text(&client, &format!("{}/metrics", server.base)).await?;
    let accepted_server = metric_sum(&metrics, "jingzhi_events_accepted_total") as u64;
    let mut alert_changes = BTreeMap::new();
    for kind in ["raised", "updated", "cleared"] {
        alert_changes.insert(
            kind.to_string(),
            metric_with_label(&metrics, "jingzhi_alert_changes_total", kind) as u64,
        );
    }

    let mut alert_sets = Vec::new();
    for (rule, &w) in tumbling {
        let mut set = BTreeSet::new();
        for &(cell, raised, cleared) in feed.intervals.get(rule).into_iter().flatten() {
            let mut b = raised.div_ceil(w) * w;
            while b < cleared {
                set.insert((cell, b / w - 1));
                b += w;
            }
        }
        let text: String = set.iter().map(|(c, w)| format!("{c},{w}\n")).collect();
        alert_sets.push(AlertSet {
            rule: rule.clone(),
            pairs: set.len(),
            hash: sha256_hex(text.as_bytes())[..16].to_string(),
        });
    }

    let seconds = (finished - started).as_secs_f64();
    Ok(HttpReport {
        mode: "http",
        events_file: opts.events.display().to_string(),
        rules: opts.rules.display().to_string(),
        workers,
        connections,
        batch_lines,
        lateness_ms: opts.lateness_ms,
        server_args: opts.server_args.clone(),
        lines: file.lines,
        bytes: file.bytes,
        requests: total.requests,
        max_body_span_ms: file.max_body_span_ms,
        seconds,
        post_seconds: (posted - started).as_secs_f64(),
        events_per_second: total.accepted as f64 / seconds,
        bytes_per_second: file.bytes as f64 / seconds,
        request_latency_ms: Millis::of(total.latencies_ms),
        accepted: total.accepted,
        rejected: total.rejected,
        late: total.late,
        expired: total.expired,
        accepted_server,
        all_accepted: total.accepted == file.lines
            && accepted_server == file.lines
            && total.rejected == 0,
        watermark,
        alert_seq,
        active_alerts_at_end: active,
        alert_changes,
        feed_complete,
        alert_sets,
        server_peak_rss_bytes: None,
    })
}

/// The rules directory to hand the server: the directory itself, or a
/// copy of a single file in `dir`.
fn rules_dir_for(rules: &Path, dir: &TempDir) -> Result<PathBuf, String> {
    if rules.is_dir() {
        return Ok(rules.to_path_buf());
    }
    let stem = rules
        .file_stem()
        .map_or("rules".into(), |s| s.to_string_lossy().into_owned());
    let target_dir = dir.path().join("rules");
    std::fs::create_dir_all(&target_dir).map_err(|e| format!("{}: {e}", target_dir.display()))?;
    let target = target_dir.join(format!("{stem}.rules"));
    std::fs::copy(rules, &target).map_err(|e| format!("{}: {e}", rules.display()))?;
    Ok(target_dir)
}

/// Streams the file into bodies of `batch_lines` non-blank lines (or fewer
/// when the body would pass the size limit) and sends them to `tx`.
fn read_bodies(
    path: &Path,
    batch_lines: usize,
    tx: mpsc::Sender<Vec<u8>>,
) -> Result<FileStats, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut stats = FileStats::default();
    let mut body = Vec::new();
    let mut lines_in_body = 0;
    let (mut body_min, mut body_max) = (u64::MAX, 0);
    loop {
        let start = body.len();
        let n = reader
            .read_until(b'\n', &mut body)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        let line = &body[start..];
        if line.iter().all(u8::is_ascii_whitespace) {
            body.truncate(start);
            continue;
        }
        if line.last() != Some(&b'\n') {
            body.push(b'\n');
        }
        stats.lines += 1;
        stats.bytes += n as u64;
        if let Some(ts) = line_ts(&body[start..]) {
            stats.max_ts = stats.max_ts.max(ts);
            body_min = body_min.min(ts);
            body_max = body_max.max(ts);
        }
        lines_in_body += 1;
        if lines_in_body >= batch_lines || body.len() >= MAX_BODY_BYTES {
            let full = std::mem::replace(&mut body, Vec::with_capacity(start + n + 4096));
            lines_in_body = 0;
            stats.max_body_span_ms = stats
                .max_body_span_ms
                .max(body_max.saturating_sub(body_min));
            (body_min, body_max) = (u64::MAX, 0);
            if tx.blocking_send(full).is_err() {
                // The connections stopped; they report why.
                return Ok(stats);
            }
        }
    }
    if !body.is_empty() {
        stats.max_body_span_ms = stats
            .max_body_span_ms
            .max(body_max.saturating_sub(body_min));
        let _ = tx.blocking_send(body);
    }
    Ok(stats)
}

/// The event time of an NDJSON line: the first `"ts"` field, as epoch
/// milliseconds or RFC 3339 text.
pub(crate) fn line_ts(line: &[u8]) -> Option<u64> {
    let key = b"\"ts\"";
    let at = line.windows(key.len()).position(|w| w == key)?;
    let mut rest = &line[at + key.len()..];
    let skip_ws = |r: &mut &[u8]| {
        while let Some((c, tail)) = r.split_first() {
            if !c.is_ascii_whitespace() {
                break;
            }
            *r = tail;
        }
    };
    skip_ws(&mut rest);
    rest = rest.strip_prefix(b":")?;
    skip_ws(&mut rest);
    if rest.first() == Some(&b'"') {
        let end = rest[1..].iter().position(|&c| c == b'"')?;
        let text = std::str::from_utf8(&rest[1..1 + end]).ok()?;
        return jingzhi_rules::time::parse_rfc3339(text).ok();
    }
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// What the feed reader collected: per rule, (cell, raised, cleared).
#[derive(Default)]
struct FeedLog {
    intervals: BTreeMap<String, Vec<(u32, u64, u64)>>,
    resynced: bool,
}

async fn read_feed<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    seen: tokio::sync::watch::Sender<u64>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> FeedLog
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut log = FeedLog::default();
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = &mut stop => break,
        };
        let Some(Ok(msg)) = msg else { break };
        let Message::Text(text) = msg else { continue };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        if v["type"] == "snapshot" && v["resync"] == true {
            log.resynced = true;
        }
        if v["type"] == "cleared" {
            let a = &v["alert"];
            if let (Some(rule), Some(cell), Some(raised), Some(cleared)) = (
                a["rule"].as_str(),
                a["cell"].as_u64(),
                a["started_at"].as_u64(),
                a["cleared_at"].as_u64(),
            ) {
                log.intervals.entry(rule.to_string()).or_default().push((
                    cell as u32,
                    raised,
                    cleared,
                ));
            }
        }
        if let Some(seq) = v["seq"].as_u64() {
            seen.send_replace(seq);
        }
    }
    log
}

// ---------------------------------------------------------------------------
// Shared with `bench latency`.

/// An HTTP client with a connection pool as large as the load's concurrency.
pub(crate) fn client(connections: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections.max(1))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Posts an NDJSON body; the reply as JSON, or an error for anything but 200.
pub(crate) async fn post_ndjson(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<Value, String> {
    let reply = client
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let code = reply.status();
    let text = reply
        .text()
        .await
        .map_err(|e| format!("POST {url}: reading the reply: {e}"))?;
    if code != reqwest::StatusCode::OK {
        return Err(format!("POST {url}: HTTP {code}: {}", snippet(&text)));
    }
    serde_json::from_str(&text).map_err(|e| format!("POST {url}: the reply is not JSON: {e}"))
}

pub(crate) async fn get_text(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let reply = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let code = reply.status();
    let text = reply
        .text()
        .await
        .map_err(|e| format!("GET {url}: reading the reply: {e}"))?;
    if !code.is_success() {
        return Err(format!("GET {url}: HTTP {code}: {}", snippet(&text)));
    }
    Ok(text)
}

pub(crate) async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let text = get_text(client, url).await?;
    serde_json::from_str(&text).map_err(|e| format!("GET {url}: the reply is not JSON: {e}"))
}

fn snippet(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

/// Nearest-rank percentile of a sorted sample (0 when empty).
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The name, labels and value of a Prometheus text sample line.
fn sample(line: &str) -> Option<(&str, &str, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (&line[..open], &line[open + 1..close], &line[close + 1..])
        }
        None => {
            let sp = line.find(' ')?;
            (&line[..sp], "", &line[sp..])
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

/// The sum of every sample of a metric.
pub(crate) fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(sample)
        .filter(|(n, _, _)| *n == name)
        .map(|(_, _, v)| v)
        .sum()
}

/// The sum of the samples of a metric that have some label equal to `value`.
pub(crate) fn metric_with_label(text: &str, name: &str, value: &str) -> f64 {
    let quoted = format!("=\"{value}\"");
    text.lines()
        .filter_map(sample)
        .filter(|(n, l, _)| *n == name && l.contains(&quoted))
        .map(|(_, _, v)| v)
        .sum()
}

/// A histogram's count and its quantile `q` estimated from the buckets
/// (linear within a bucket, as Prometheus' `histogram_quantile`).
pub(crate) fn histogram_quantile(text: &str, name: &str, q: f64) -> Option<(u64, f64)> {
    let bucket = format!("{name}_bucket");
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(sample)
        .filter(|(n, _, _)| *n == bucket)
        .filter_map(|(_, labels, v)| {
            let le = labels
                .split(',')
                .find_map(|l| l.trim().strip_prefix("le="))?;
            let le = le.trim_matches('"');
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return Some((0, 0.0));
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, cum) in &buckets {
        if cum >= rank {
            if le.is_infinite() {
                return Some((total as u64, lower));
            }
            let share = if cum > below {
                (rank - below) / (cum - below)
            } else {
                1.0
            };
            return Some((total as u64, lower + (le - lower) * share));
        }
        lower = le;
        below = cum;
    }
    Some((total as u64, lower))
}

/// A directory under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "jingzhi-bench-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TempDir(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `jingzhi serve` child process; killed when stopped or dropped.
pub(crate) struct ServerProcess {
    child: Option<Child>,
    /// `host:port`.
    pub addr: String,
    /// `http://host:port`.
    pub base: String,
    _dir: TempDir,
}

impl ServerProcess {
    /// Starts `jingzhi serve ARGS` from this executable and waits for its
    /// `listening on` line. `dir` lives as long as the server.
    pub(crate) fn spawn(args: &[OsString], dir: TempDir) -> Result<ServerProcess, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this executable to start the server: {e}"))?;
        let mut child = Command::new(&exe)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {} serve: {e}", exe.display()))?;
        let stdout = child.stdout.take();
        let mut server = ServerProcess {
            child: Some(child),
            addr: String::new(),
            base: String::new(),
            _dir: dir,
        };
        let stdout = stdout.ok_or("the server's stdout is not readable")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            // Keep draining stdout so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("jingzhi: listening on http://") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.trim().to_string());
                    }
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => {
                server.base = format!("http://{addr}");
                server.addr = addr;
                Ok(server)
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = server
                    .child
                    .as_mut()
                    .and_then(|c| c.wait().ok())
                    .map_or("unknown".to_string(), |s| s.to_string());
                Err(format!(
                    "the server exited before listening ({status}); its messages are above"
                ))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err("the server did not start listening within 120 s".into())
            }
        }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The server's peak resident set size (VmHWM).
    pub(crate) fn peak_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Kills the server and reaps it.
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_from_lines() {
        assert_eq!(
            line_ts(br#"{"stream":"sensor","ts":1767225600004,"cell":1}"#),
            Some(1_767_225_600_004)
        );
        assert_eq!(line_ts(br#"{"stream":"sensor", "ts" : 42 }"#), Some(42));
        assert_eq!(
            line_ts(br#"{"ts":"2026-01-01T08:00:00+08:00"}"#),
            Some(1_767_225_600_000)
        );
        assert_eq!(line_ts(br#"{"stream":"sensor"}"#), None);
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 500.0);
        assert_eq!(percentile(&v, 0.99), 990.0);
        assert_eq!(percentile(&v, 0.999), 999.0);
        assert_eq!(percentile(&v, 1.0), 1000.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    const METRICS: &str = r#"# HELP jingzhi_events_accepted_total Events accepted by ingest, by stream.
# TYPE jingzhi_events_accepted_total counter
jingzhi_events_accepted_total{stream="incident"} 10
jingzhi_events_accepted_total{stream="sensor"} 500
jingzhi_events_accepted_total{stream="traffic"} 490
jingzhi_alert_changes_total{kind="raised"} 7
jingzhi_alert_changes_total{kind="cleared"} 5
jingzhi_ingest_to_alert_seconds_bucket{le="0.001"} 0
jingzhi_ingest_to_alert_seconds_bucket{le="0.002"} 50
jingzhi_ingest_to_alert_seconds_bucket{le="0.005"} 100
jingzhi_ingest_to_alert_seconds_bucket{le="+Inf"} 100
jingzhi_ingest_to_alert_seconds_sum 0.2
jingzhi_ingest_to_alert_seconds_count 100
jingzhi_rules_loaded 1
"#;

    #[test]
    fn prometheus_text() {
        assert_eq!(metric_sum(METRICS, "jingzhi_events_accepted_total"), 1000.0);
        assert_eq!(metric_sum(METRICS, "jingzhi_rules_loaded"), 1.0);
        assert_eq!(
            metric_with_label(METRICS, "jingzhi_alert_changes_total", "raised"),
            7.0
        );
        let (n, p50) =
            histogram_quantile(METRICS, "jingzhi_ingest_to_alert_seconds", 0.5).expect("histogram");
        assert_eq!(n, 100);
        assert!((p50 - 0.002).abs() < 1e-9, "{p50}");
        let (_, p99) = histogram_quantile(METRICS, "jingzhi_ingest_to_alert_seconds", 0.99)
            .expect("histogram");
        assert!((p99 - (0.002 + 0.003 * 49.0 / 50.0)).abs() < 1e-9, "{p99}");
        assert!(histogram_quantile(METRICS, "nothing", 0.5).is_none());
    }
}
