//! `jingzhi bench latency`: event-to-WebSocket latency at fixed offered
//! rates, on the wall clock. For each rate the bench starts a fresh
//! `jingzhi serve --clock wall` with a probe rule, connects one WebSocket
//! client and posts NDJSON bodies every 5 ms: background sensor readings
//! plus about 1 % probes, each probe in a cell not probed for seconds, so
//! that each raises a new alert whose `values.seq` names it. A probe's
//! latency is the receipt of its `raised` message minus the instant just
//! before its body's POST was sent.

use super::http::{
    client, get_json, get_text, histogram_quantile, metric_sum, metric_with_label, mib,
    post_ndjson, Millis, ServerProcess, TempDir,
};
use crate::app::now_ms;
use crate::sim::batch::{interval_scale_for, write_reference};
use crate::sim::{CityChoice, Schedule, Simulator};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_tungstenite::tungstenite::Message;

/// The rule every probe raises an alert of.
pub const PROBE_RULE: &str = r#"rule probe "latency probe" {
  severity blue
  group by cell
  let seq = max(sensor.value where kind == "probe") over 2s
  when seq >= 0
}
"#;

/// How often a body is posted.
const TICK: Duration = Duration::from_millis(5);
/// Probes: 1 % of the events, at most this many a second.
const MAX_PROBES_PER_SECOND: f64 = 2000.0;
/// Cells probes cycle through (the default grid's 0..9999); at 2,000
/// probes a second a cell comes back after 5 s, past the 2 s window.
const PROBE_CELLS: u64 = 10_000;
/// Distinct background lines generated up front and cycled through.
const BACKGROUND_LINES: usize = 1 << 14;
/// How long to wait for the last probes' alerts after the last POST.
const SETTLE: Duration = Duration::from_secs(5);

const NOTE: &str = "latency = receipt of the probe's `raised` WebSocket message minus the instant just before its body's POST was sent; it includes the HTTP request transfer, the server's parsing of the whole body, and the load generator's own scheduling (client and server share the machine's cores)";

/// Settings of `jingzhi bench latency`.
#[derive(Clone, Debug)]
pub struct LatencyOptions {
    /// Offered rates, events per second.
    pub rates: Vec<u64>,
    pub duration_ms: u64,
    /// Concurrent ingest connections.
    pub connections: usize,
    /// Server timely workers; the server's default (cores) when `None`.
    pub workers: Option<usize>,
    /// Further arguments for `jingzhi serve`.
    pub server_args: Vec<String>,
    /// Stamp events this long before the wall clock (0: `ts` = now).
    pub event_age_ms: u64,
    /// Rule files or directories installed beside the probe rule.
    pub rules: Vec<PathBuf>,
    /// A simulated city's events as the background, with its reference
    /// data; generic rain readings if `None`.
    pub city: Option<CityChoice>,
}

/// A background event as two halves around its time stamp, so that each
/// send stamps it anew.
#[derive(Clone)]
struct Background {
    head: Vec<u8>,
    tail: Vec<u8>,
}

/// Background lines from a simulated city at `rate` events per second:
/// `seconds` of its event time (at most `MAX_CITY_LINES` lines), cycled
/// through with fresh time stamps. Returns the lines and the city.
fn city_background(
    choice: CityChoice,
    rate: u64,
    seconds: u64,
) -> Result<(Vec<Background>, crate::sim::City), String> {
    let city = choice.build(7);
    let scale = interval_scale_for(&city, rate as f64)?;
    let start = 1_784_073_600_000;
    let mut sim = Simulator::with_interval_scale(&city, 7, start, Schedule::Realistic, scale);
    let wanted = ((rate * seconds) as usize).min(MAX_CITY_LINES);
    let mut events = Vec::new();
    let mut until = start;
    let mut lines = Vec::with_capacity(wanted);
    let mut text = String::new();
    while lines.len() < wanted && until < start + 86_400_000 {
        until += 1000;
        sim.advance_to(until, &mut events);
        for e in events.drain(..) {
            if lines.len() == wanted {
                break;
            }
            text.clear();
            e.write_json(&mut text);
            // `{"stream":"…","ts":NUMBER,…}`: cut out the number.
            let Some(at) = text.find("\"ts\":") else {
                continue;
            };
            let head_end = at + 5;
            let digits = text[head_end..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            lines.push(Background {
                head: text.as_bytes()[..head_end].to_vec(),
                tail: text.as_bytes()[head_end + digits..].to_vec(),
            });
        }
    }
    if lines.is_empty() {
        return Err(format!("the {} city made no events", choice.name()));
    }
    Ok((lines, city))
}

/// Most background lines generated from a city (about 250 MB).
const MAX_CITY_LINES: usize = 2_000_000;

/// The server's own view of one run, from `/metrics` at its end.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerSide {
    pub accepted: u64,
    pub rejected: u64,
    pub late_applied: u64,
    pub late_expired: u64,
    /// `jingzhi_ingest_to_alert_seconds`: observations and quantiles
    /// estimated from its buckets, in milliseconds.
    pub ingest_to_alert_count: u64,
    pub ingest_to_alert_p50_ms: Option<f64>,
    pub ingest_to_alert_p99_ms: Option<f64>,
    pub ws_lagged: u64,
    pub peak_rss_bytes: Option<u64>,
}

/// What one offered rate measured.
#[derive(Clone, Debug, Serialize)]
pub struct RateReport {
    pub offered_per_second: u64,
    pub events_sent: u64,
    pub requests: usize,
    /// From the first tick to the last ingest reply.
    pub send_seconds: f64,
    pub achieved_per_second: f64,
    /// The generator met its schedule (achieved at least 97 % of offered
    /// and was not stopped for falling too far behind).
    pub kept_up: bool,
    /// Latest a body was built after its scheduled tick.
    pub max_schedule_lag_ms: f64,
    pub probes_sent: u64,
    pub probes_received: u64,
    pub latency_ms: Millis,
    pub request_latency_ms: Millis,
    /// Fresh snapshots the feed sent because the client fell behind.
    pub resyncs: u64,
    pub server: ServerSide,
}

/// What `jingzhi bench latency` measured.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyReport {
    pub mode: &'static str,
    pub workers: u64,
    pub connections: usize,
    pub duration_s: f64,
    pub server_args: Vec<String>,
    pub event_age_ms: u64,
    pub note: &'static str,
    pub rates: Vec<RateReport>,
}

/// Runs the benchmark and prints its report; `json` adds a JSON object on
/// stdout (the human summary then goes to stderr).
pub fn command(opts: &LatencyOptions, json: bool) -> ExitCode {
    match run(opts) {
        Ok(report) => {
            if !super::print_report(&describe(&report), &report, json) {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jingzhi: bench latency: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Formats a report for people.
pub fn describe(r: &LatencyReport) -> String {
    let mut s = format!(
        "bench latency: server with {} worker(s) on the wall clock, probe rule; {} ingest connection(s), a body every {} ms, {:.0} s per rate, events stamped {}{}\n",
        r.workers,
        r.connections,
        TICK.as_millis(),
        r.duration_s,
        if r.event_age_ms == 0 {
            "now".to_string()
        } else {
            format!("{} ms before now", r.event_age_ms)
        },
        if r.server_args.is_empty() {
            String::new()
        } else {
            format!(", extra server args {:?}", r.server_args)
        },
    );
    s.push_str(&format!(
        "  {:>9} {:>10} {:>7} {:>8} {:>13} {:>8} {:>8} {:>9} {:>8} {:>9} {:>12} {:>10}\n",
        "offered/s",
        "achieved/s",
        "kept up",
        "lag ms",
        "probes s/r",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "req p99",
        "srv p50/p99",
        "server RSS"
    ));
    for x in &r.rates {
        let srv = match (
            x.server.ingest_to_alert_p50_ms,
            x.server.ingest_to_alert_p99_ms,
        ) {
            (Some(a), Some(b)) => format!("{a:.1}/{b:.1}"),
            _ => "-".into(),
        };
        s.push_str(&format!(
            "  {:>9} {:>10.0} {:>7} {:>8.1} {:>13} {:>8.1} {:>8.1} {:>9.1} {:>8.1} {:>9.1} {:>12} {:>10}\n",
            x.offered_per_second,
            x.achieved_per_second,
            if x.kept_up { "yes" } else { "NO" },
            x.max_schedule_lag_ms,
            format!("{}/{}", x.probes_sent, x.probes_received),
            x.latency_ms.p50,
            x.latency_ms.p99,
            x.latency_ms.p999,
            x.latency_ms.max,
            x.request_latency_ms.p99,
            srv,
            mib(x.server.peak_rss_bytes),
        ));
    }
    for x in &r.rates {
        if x.resyncs > 0 || x.server.late_expired > 0 || x.server.rejected > 0 {
            s.push_str(&format!(
                "  at {}/s: {} feed resync(s), {} rejected, {} expired events\n",
                x.offered_per_second, x.resyncs, x.server.rejected, x.server.late_expired
            ));
        }
    }
    s.push_str(&format!("  note: {NOTE}; `srv` is the server's jingzhi_ingest_to_alert_seconds (request accepted to alert published), quantiles estimated from its buckets, ms; `lag ms` is the most a body was built behind its 5 ms schedule; `req p99` the ingest request latency"));
    s
}

/// Runs `jingzhi bench latency`.
pub fn run(opts: &LatencyOptions) -> Result<LatencyReport, String> {
    if opts.rates.is_empty() {
        return Err("no rates given".into());
    }
    if opts.rates.contains(&0) {
        return Err("rates must be positive".into());
    }
    let connections = opts.connections.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let library = super::rule_files(&opts.rules)?;
    let mut rates = Vec::new();
    let mut workers = 0;
    for &rate in &opts.rates {
        let dir = TempDir::new("latency")?;
        let rules_dir = dir.path().join("rules");
        let io = |p: &std::path::Path, e: std::io::Error| format!("{}: {e}", p.display());
        std::fs::create_dir_all(&rules_dir).map_err(|e| io(&rules_dir, e))?;
        std::fs::write(rules_dir.join("probe.rules"), PROBE_RULE).map_err(|e| io(&rules_dir, e))?;
        for (i, file) in library.iter().enumerate() {
            let name = file.file_name().map_or_else(
                || format!("library-{i}.rules"),
                |n| format!("{i}-{}", n.to_string_lossy()),
            );
            std::fs::copy(file, rules_dir.join(&name)).map_err(|e| io(file, e))?;
        }
        let (background, reference) = match opts.city {
            None => (background_lines(42), None),
            Some(choice) => {
                eprintln!(
                    "jingzhi: bench latency: simulating the {} city at {rate} events/s",
                    choice.name()
                );
                let (lines, city) = city_background(choice, rate, 20)?;
                let path = dir.path().join("city.reference.json");
                write_reference(&city, &path).map_err(|e| io(&path, e))?;
                (lines, Some(path))
            }
        };
        let mut args: Vec<OsString> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--clock".into(),
            "wall".into(),
            "--rules".into(),
            rules_dir.into_os_string(),
        ];
        if let Some(path) = reference {
            args.push("--reference".into());
            args.push(path.into_os_string());
        }
        if let Some(w) = opts.workers {
            args.push("--workers".into());
            args.push(w.max(1).to_string().into());
        }
        args.extend(opts.server_args.iter().map(OsString::from));
        eprintln!(
            "jingzhi: bench latency: {rate} events/s for {:.1} s",
            opts.duration_ms as f64 / 1e3
        );
        let mut server = ServerProcess::spawn(&args, dir)?;
        let result = runtime.block_on(one_rate(
            &server,
            rate,
            opts.duration_ms,
            connections,
            opts.event_age_ms,
            &background,
        ));
        drop(background);
        let peak = server.peak_rss_bytes();
        server.stop();
        let (w, mut report) = result?;
        workers = w;
        report.server.peak_rss_bytes = peak;
        eprintln!(
            "jingzhi: bench latency: {rate}/s: achieved {:.0}/s, probes {}/{}, p50 {:.1} ms, p99 {:.1} ms",
            report.achieved_per_second,
            report.probes_sent,
            report.probes_received,
            report.latency_ms.p50,
            report.latency_ms.p99
        );
        rates.push(report);
    }
    Ok(LatencyReport {
        mode: "latency",
        workers,
        connections,
        duration_s: opts.duration_ms as f64 / 1e3,
        server_args: opts.server_args.clone(),
        event_age_ms: opts.event_age_ms,
        note: NOTE,
        rates,
    })
}

/// A body ready to post, with the probes it carries.
struct Batch {
    body: Vec<u8>,
    probes: Vec<u64>,
}

/// One connection's results.
#[derive(Default)]
struct Sent {
    requests: usize,
    accepted: u64,
    latencies_ms: Vec<f64>,
    probes: Vec<(u64, Instant)>,
    last_reply: Option<Instant>,
}

/// What the feed reader saw.
#[derive(Default)]
struct Received {
    probes: Vec<(u64, Instant)>,
    resyncs: u64,
}

async fn one_rate(
    server: &ServerProcess,
    rate: u64,
    duration_ms: u64,
    connections: usize,
    event_age_ms: u64,
    background: &[Background],
) -> Result<(u64, RateReport), String> {
    let client = client(connections)?;
    let status = get_json(&client, &format!("{}/api/v1/status", server.base)).await?;
    let workers = status["workers"].as_u64().unwrap_or(0);

    let (ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/v1/alerts/ws", server.addr))
            .await
            .map_err(|e| format!("cannot connect to the alert feed: {e}"))?;
    let (stop_feed, stop_rx) = oneshot::channel();
    let received_count = Arc::new(AtomicU64::new(0));
    let feed = tokio::spawn(read_probes(ws, stop_rx, received_count.clone()));

    // Connections take bodies from a short queue; when all are busy the
    // generator waits, and its missed ticks fire in a burst afterwards.
    let (tx, rx) = mpsc::channel::<Batch>(connections);
    let rx = Arc::new(Mutex::new(rx));
    let url = format!("{}/api/v1/events", server.base);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url, rx) = (client.clone(), url.clone(), rx.clone());
        tasks.spawn(async move {
            let mut sent = Sent::default();
            loop {
                let batch = { rx.lock().await.recv().await };
                let Some(batch) = batch else { break };
                let at = Instant::now();
                let reply = post_ndjson(&client, &url, batch.body).await?;
                let now = Instant::now();
                sent.requests += 1;
                sent.accepted += reply["accepted"].as_u64().unwrap_or(0);
                sent.latencies_ms.push((now - at).as_secs_f64() * 1e3);
                sent.last_reply = Some(now);
                sent.probes
                    .extend(batch.probes.into_iter().map(|n| (n, at)));
            }
            Ok::<Sent, String>(sent)
        });
    }

    // The generator.
    let ticks = (duration_ms / TICK.as_millis() as u64).max(1);
    let per_tick = rate as f64 * TICK.as_secs_f64();
    let probes_per_tick = (rate as f64 / 100.0).min(MAX_PROBES_PER_SECOND) * TICK.as_secs_f64();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let give_up = started + Duration::from_millis(duration_ms * 3) + Duration::from_secs(10);
    let (mut events_built, mut next_probe, mut cursor) = (0u64, 0u64, 0usize);
    let mut max_lag = Duration::ZERO;
    let mut stopped_early = false;
    for k in 1..=ticks {
        let scheduled = interval.tick().await;
        max_lag = max_lag.max(scheduled.elapsed());
        if Instant::now() > give_up {
            stopped_early = true;
            break;
        }
        let events = (k as f64 * per_tick).round() as u64 - events_built;
        let probes_due = (k as f64 * probes_per_tick).floor() as u64;
        let probes = probes_due.saturating_sub(next_probe).min(events);
        let mut body = Vec::with_capacity(events as usize * 112 + 64);
        let ts = now_ms().saturating_sub(event_age_ms).to_string();
        let mut carried = Vec::with_capacity(probes as usize);
        for _ in 0..probes {
            let n = next_probe;
            next_probe += 1;
            body.extend_from_slice(
                format!(
                    "{{\"stream\":\"sensor\",\"ts\":{ts},\"sensor_id\":\"probe-{n}\",\"kind\":\"probe\",\"cell\":{},\"value\":{n}}}\n",
                    n % PROBE_CELLS
                )
                .as_bytes(),
            );
            carried.push(n);
        }
        for _ in probes..events {
            let line = &background[cursor];
            body.extend_from_slice(&line.head);
            body.extend_from_slice(ts.as_bytes());
            body.extend_from_slice(&line.tail);
            cursor = (cursor + 1) % background.len();
        }
        events_built += events;
        if events == 0 {
            continue;
        }
        let batch = Batch {
            body,
            probes: carried,
        };
        if tx.send(batch).await.is_err() {
            // Every connection stopped; they report why.
            break;
        }
    }
    drop(tx);

    let mut total = Sent::default();
    let mut failure = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(s)) => {
                total.requests += s.requests;
                total.accepted += s.accepted;
                total.latencies_ms.extend(s.latencies_ms);
                total.probes.extend(s.probes);
                total.last_reply = total.last_reply.max(s.last_reply);
            }
            Ok(Err(e)) => {
                failure.get_or_insert(e);
                tasks.abort_all();
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                failure.get_or_insert(format!("a connection task failed: {e}"));
                tasks.abort_all();
            }
        }
    }
    if let Some(e) = failure {
        let _ = stop_feed.send(());
        return Err(e);
    }
    let send_seconds = (total.last_reply.unwrap_or(started) - started).as_secs_f64();

    // Wait for the last probes' alerts.
    let probes_sent = total.probes.len() as u64;
    let settle_until = Instant::now() + SETTLE;
    while received_count.load(Ordering::Relaxed) < probes_sent && Instant::now() < settle_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_feed.send(());
    let received = feed
        .await
        .map_err(|e| format!("the feed reader failed: {e}"))?;

    let sent_at: HashMap<u64, Instant> = total.probes.iter().copied().collect();
    let mut seen = std::collections::HashSet::new();
    let mut latencies = Vec::with_capacity(received.probes.len());
    for (n, at) in &received.probes {
        if let Some(sent) = sent_at.get(n) {
            if seen.insert(*n) {
                latencies.push(at.saturating_duration_since(*sent).as_secs_f64() * 1e3);
            }
        }
    }

    let metrics = get_text(&client, &format!("{}/metrics", server.base)).await?;
    let quantile = |q| {
        histogram_quantile(&metrics, "jingzhi_ingest_to_alert_seconds", q)
            .filter(|(n, _)| *n > 0)
            .map(|(_, v)| v * 1e3)
    };
    let server_side = ServerSide {
        accepted: metric_sum(&metrics, "jingzhi_events_accepted_total") as u64,
        rejected: metric_sum(&metrics, "jingzhi_events_rejected_total") as u64,
        late_applied: metric_with_label(&metrics, "jingzhi_events_late_total", "applied") as u64,
        late_expired: metric_with_label(&metrics, "jingzhi_events_late_total", "expired") as u64,
        ingest_to_alert_count: histogram_quantile(&metrics, "jingzhi_ingest_to_alert_seconds", 0.5)
            .map_or(0, |(n, _)| n),
        ingest_to_alert_p50_ms: quantile(0.5),
        ingest_to_alert_p99_ms: quantile(0.99),
        ws_lagged: metric_sum(&metrics, "jingzhi_ws_lagged_total") as u64,
        peak_rss_bytes: None,
    };

    let achieved = if send_seconds > 0.0 {
        total.accepted as f64 / send_seconds
    } else {
        0.0
    };
    Ok((
        workers,
        RateReport {
            offered_per_second: rate,
            events_sent: events_built,
            requests: total.requests,
            send_seconds,
            achieved_per_second: achieved,
            kept_up: !stopped_early && achieved >= 0.97 * rate as f64,
            max_schedule_lag_ms: max_lag.as_secs_f64() * 1e3,
            probes_sent,
            probes_received: seen.len() as u64,
            latency_ms: Millis::of(latencies),
            request_latency_ms: Millis::of(total.latencies_ms),
            resyncs: received.resyncs,
            server: server_side,
        },
    ))
}

/// Reads the feed until told to stop, noting when each probe's alert was raised.
async fn read_probes<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    mut stop: oneshot::Receiver<()>,
    count: Arc<AtomicU64>,
) -> Received
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut got = Received::default();
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = &mut stop => break,
        };
        let Some(Ok(msg)) = msg else { break };
        let at = Instant::now();
        let Message::Text(text) = msg else { continue };
        let t = text.as_str();
        if t.starts_with("{\"type\":\"raised\"") {
            if let Some(n) = probe_seq(t) {
                got.probes.push((n, at));
                count.fetch_add(1, Ordering::Relaxed);
            }
        } else if t.starts_with("{\"type\":\"snapshot\"")
            && t.get(..80).unwrap_or(t).contains("\"resync\":true")
        {
            got.resyncs += 1;
        }
    }
    got
}

/// The probe sequence number of a `raised` message of the probe rule.
fn probe_seq(text: &str) -> Option<u64> {
    let v: Value = serde_json::from_str(text).ok()?;
    let alert = &v["alert"];
    if alert["rule"] != "probe" {
        return None;
    }
    let n = alert["values"]["seq"].as_f64()?;
    (n >= 0.0 && n.fract() == 0.0).then_some(n as u64)
}

/// Background sensor lines after their `ts` value: rainfall readings in
/// random cells of the default grid, from a fixed seed.
fn background_lines(seed: u64) -> Vec<Background> {
    let mut state = seed;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..BACKGROUND_LINES)
        .map(|_| {
            let cell = next() % PROBE_CELLS;
            let sensor = next() % 4;
            let value = (next() % 100_000) as f64 / 1000.0;
            Background {
                head: b"{\"stream\":\"sensor\",\"ts\":".to_vec(),
                tail: format!(
                    ",\"sensor_id\":\"s{cell}-{sensor}\",\"kind\":\"rainfall\",\"cell\":{cell},\"value\":{value:.3}}}\n"
                )
                .into_bytes(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_lines_are_events() {
        let lines = background_lines(1);
        assert_eq!(lines.len(), BACKGROUND_LINES);
        let mut line = lines[0].head.clone();
        line.extend_from_slice(b"1767225600000");
        line.extend_from_slice(&lines[0].tail);
        let v: Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["kind"], "rainfall");
        assert!(v["cell"].as_u64().is_some_and(|c| c < PROBE_CELLS));
    }

    #[test]
    fn probe_messages() {
        let raised = r#"{"type":"raised","seq":3,"alert":{"rule":"probe","values":{"seq":17.0}}}"#;
        assert_eq!(probe_seq(raised), Some(17));
        let other = r#"{"type":"raised","seq":3,"alert":{"rule":"w1","values":{"seq":17.0}}}"#;
        assert_eq!(probe_seq(other), None);
    }

    #[test]
    fn probe_rule_compiles() {
        let sources = [jingzhi_rules::lang::SourceFile {
            name: "probe.rules".into(),
            text: PROBE_RULE.into(),
        }];
        let compiled = jingzhi_rules::lang::compile(
            &sources,
            &jingzhi_rules::lang::CheckOptions {
                min_window_ms: 1000,
            },
        );
        assert!(!compiled.has_errors());
        assert_eq!(compiled.plans.len(), 1);
    }
}
