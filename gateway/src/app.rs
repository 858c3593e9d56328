//! The running service: engine, alert book, feed, clock and metrics, and
//! the ingest path that HTTP and the demo simulator share.

use crate::alerts::{AlertBook, Change};
use crate::auth::Auth;
use crate::config::{ClockMode, ServerConfig};
use crate::eventlog::{EventLog, LogConfig, Recovery};
use crate::masking::Masker;
use crate::metrics::Metrics;
use crate::rules_load;
use crate::store::{Store, StoreConfig, StoredSilence};
use jingzhi_dataflow::{
    Engine, EngineConfig, EngineError, EngineOutput, RuleId, Time, WindowConfig,
};
use jingzhi_rules::event::{Event, ParseContext};
use jingzhi_rules::lang::{compile, CheckOptions, Compiled, Diagnostic, SourceFile};
use jingzhi_rules::plan::RulePlan;
use jingzhi_rules::space::{Reference, ReferenceChange};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};

/// Milliseconds since the Unix epoch by the wall clock.
pub fn now_ms() -> Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Time)
}

/// A feed message with its sequence number and the district of its alert
/// (clients limited to districts see only theirs).
#[derive(Clone, Debug)]
pub struct FeedItem {
    pub seq: u64,
    pub district: Option<Arc<str>>,
    pub text: Arc<str>,
}

impl FeedItem {
    /// The feed message of a recorded change, from its stored JSON (the
    /// alert is serialised once, for the store and the feed).
    pub fn stored(change: &crate::store::StoredChange) -> FeedItem {
        FeedItem {
            seq: change.seq,
            district: change.district.as_deref().map(Arc::from),
            text: Arc::from(format!(
                "{{\"type\":\"{}\",\"seq\":{},\"alert\":{}}}",
                change.kind.name(),
                change.seq,
                change.alert_json
            )),
        }
    }
}

/// A rule as installed in the engine.
#[derive(Clone, Debug)]
pub struct InstalledRule {
    pub id: RuleId,
    pub plan: Arc<RulePlan>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Reference(String),
    #[error("{0}")]
    Rules(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Log(#[from] crate::eventlog::LogError),
    #[error("{0}")]
    Config(String),
}

/// What ingest did with a batch of parsed events.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct IngestOutcome {
    pub accepted: usize,
    /// Events whose time the clock had already passed when they arrived.
    pub late: usize,
    /// Late events too old for every window in use.
    pub expired: usize,
    /// The clock when the events entered the engine.
    pub clock: Time,
}

pub struct App {
    pub config: ServerConfig,
    pub engine: Engine,
    pub metrics: Metrics,
    /// Alert history, incidents and operator state, silences, rule
    /// versions, audit (in memory without a data directory).
    pub store: Store,
    /// Accepted events, for recovery (only with a data directory).
    pub log: Option<EventLog>,
    pub masker: Masker,
    pub auth: Auth,
    /// The silences in force, as the store has them.
    pub silences: RwLock<Vec<StoredSilence>>,
    /// Without a data directory: the queue of the thread that writes
    /// alert changes to the store.
    recorder: Option<std_mpsc::Sender<Vec<crate::store::StoredChange>>>,
    /// The highest change number in the store.
    recorded: Arc<RecordedMark>,
    /// Set while the event log is replayed: the alert book follows the
    /// engine, but nothing is recorded or sent to clients.
    pub(crate) recovering: AtomicBool,
    pub book: Mutex<AlertBook>,
    pub feed: broadcast::Sender<FeedItem>,
    /// Every alert change at a time before this value has been published.
    pub published: watch::Receiver<Time>,
    pub reference: RwLock<Reference>,
    pub rules: RwLock<BTreeMap<String, InstalledRule>>,
    /// Every rule's published versions: the one place rule history lives.
    pub versions: Mutex<RuleVersions>,
    /// Rule reloads from the rules directory that failed to check.
    pub rule_reload_errors: prometheus::IntCounter,
    /// Serialises rule edits: each checks and installs against a stable set.
    rule_edits: tokio::sync::Mutex<()>,
    /// Held while a rule version replaces another, so that the clock cannot
    /// move between the new version's install and the old one's removal
    /// (both land at one instant, and the alert book sees an update).
    clock_gate: tokio::sync::Mutex<()>,
    max_reach: AtomicU64,
    latency_marks: Mutex<VecDeque<(Time, Instant)>>,
    ready: AtomicBool,
    engine_stopped: AtomicBool,
    pub shutdown: watch::Sender<bool>,
    pub started: Instant,
}

impl App {
    /// Loads reference data and rules, opens the store and the event log,
    /// starts the engine and the publisher, and replays the logged events
    /// so that the alerts and their operator state are as they were.
    pub async fn start(config: ServerConfig) -> Result<Arc<App>, StartError> {
        let reference = match (&config.reference_data, &config.reference) {
            (Some(given), _) => given.clone(),
            (None, Some(path)) => Reference::load(path).map_err(StartError::Reference)?,
            (None, None) => crate::city::default_reference().map_err(StartError::Reference)?,
        };
        let auth = Auth::new(&config.auth).map_err(StartError::Config)?;
        let masker = Masker::new(&config.masking)
            .map_err(|e| StartError::Config(format!("masking: {e}")))?;
        // Taken before the rules are read: a file changed in between is
        // seen as changed at the first poll (and is a no-op if it was read).
        let watched = config
            .rules_dir
            .as_deref()
            .map(crate::watch::Snapshot::take);
        let plans = rules_load::load(&config).map_err(StartError::Rules)?;

        let store_config = StoreConfig {
            reopen_window_ms: config.reopen_window_ms,
        };
        let (store, log, recovery) = match &config.data_dir {
            Some(dir) => {
                let store = Store::open_with(dir, store_config)?;
                let (log, recovery) = EventLog::open_with(
                    dir,
                    LogConfig {
                        sync: config.sync,
                        segment_bytes: crate::eventlog::DEFAULT_SEGMENT_BYTES,
                        grid: reference.grid.clone(),
                    },
                )?;
                (store, Some(log), recovery)
            }
            None => (
                Store::open_in_memory(store_config)?,
                None,
                Recovery::default(),
            ),
        };
        if let Some(torn) = &recovery.torn {
            tracing::warn!(
                "event log: cut off an unfinished batch at the end of {} ({} bytes, {} events; it was never acknowledged)",
                torn.file.display(),
                torn.bytes,
                torn.events
            );
        }

        let live_clock = match config.clock {
            ClockMode::Wall => now_ms(),
            ClockMode::Event => 0,
        };
        // Replayed events must enter at the clock they first entered at.
        let clock = recovery.batches.first().map_or(live_clock, |b| b.clock);
        let engine_config = EngineConfig {
            workers: config.workers.max(1),
            window: WindowConfig {
                resolution_ms: config.resolution_ms.max(1),
                keep_history: true,
                min_history_ms: config.min_history_ms,
                max_history_events: config.history_max_events,
            },
            command_capacity: 1024,
            grid: reference.grid.clone(),
            update_interval_ms: config.update_interval_ms,
        };
        let (engine, output) = Engine::start(engine_config, clock)?;
        engine.update_reference(reference.as_changes()).await?;

        let (feed, _) = broadcast::channel(config.ws_buffer.max(16));
        let (published_tx, published) = watch::channel(clock + 1);
        let (shutdown, _) = watch::channel(false);
        let metrics = Metrics::new();
        let rule_reload_errors = prometheus::IntCounter::new(
            "jingzhi_rule_reload_errors_total",
            "Reloads of the rules directory refused because a file did not check (the running rules stayed).",
        )
        .map_err(|e| StartError::Rules(e.to_string()))?;
        metrics
            .registry
            .register(Box::new(rule_reload_errors.clone()))
            .map_err(|e| StartError::Rules(e.to_string()))?;
        metrics.set_clock_mode(config.clock);
        if let Some(log) = &log {
            metrics.watch_event_log(log.metrics());
        }
        let mut book = AlertBook::with_reopen_window(config.reopen_window_ms);
        let last_seq = store.last_seq()?;
        book.set_seq(last_seq);
        let recorded = Arc::new(RecordedMark::default());
        recorded.mark(last_seq);
        let recorder = if log.is_none() {
            let (tx, rx) = std_mpsc::channel();
            let (store, metrics, mark) =
                (store.clone(), WriteMetrics::of(&metrics), recorded.clone());
            std::thread::Builder::new()
                .name("jingzhi-record".into())
                .spawn(move || run_recorder(store, metrics, mark, rx))
                .map_err(|e| StartError::Engine(EngineError::Start(e.to_string())))?;
            Some(tx)
        } else {
            None
        };
        let silences = store.active_silences(now_ms())?;
        let app = Arc::new(App {
            config,
            engine,
            metrics,
            store,
            log,
            masker,
            auth,
            silences: RwLock::new(silences),
            recorder,
            recorded,
            recovering: AtomicBool::new(true),
            book: Mutex::new(book),
            feed,
            published,
            reference: RwLock::new(reference),
            rules: RwLock::new(BTreeMap::new()),
            versions: Mutex::new(RuleVersions::default()),
            rule_reload_errors,
            rule_edits: tokio::sync::Mutex::new(()),
            clock_gate: tokio::sync::Mutex::new(()),
            max_reach: AtomicU64::new(0),
            latency_marks: Mutex::new(VecDeque::new()),
            ready: AtomicBool::new(false),
            engine_stopped: AtomicBool::new(false),
            shutdown,
            started: Instant::now(),
        });
        app.install_startup_rules(plans).await?;

        let publisher = app.clone();
        std::thread::Builder::new()
            .name("jingzhi-publish".into())
            .spawn(move || publisher.publish_loop(output, published_tx))
            .map_err(|e| StartError::Engine(EngineError::Start(e.to_string())))?;

        app.recover(recovery).await?;

        if app.config.clock == ClockMode::Wall {
            let heart = app.clone();
            tokio::spawn(async move { heart.heartbeat().await });
        }
        let stats = app.clone();
        tokio::spawn(async move { stats.refresh_gauges().await });
        let housekeeping = app.clone();
        tokio::spawn(async move { housekeeping.housekeeping().await });
        if let (Some(dir), Some(snapshot)) = (app.config.rules_dir.clone(), watched) {
            let watcher = app.clone();
            tokio::spawn(async move { crate::watch::run(watcher, dir, snapshot).await });
        }
        app.ready.store(true, Ordering::Release);
        Ok(app)
    }

    /// Reports not ready and tells every task and client to stop.
    pub fn begin_shutdown(&self) {
        self.ready.store(false, Ordering::Release);
        self.shutdown.send_replace(true);
    }

    /// Rules loaded, reference data loaded, the event log replayed, the
    /// engine running, not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.engine_stopped.load(Ordering::Acquire)
    }

    /// Installs a rule (replacing one of the same name) and returns its id.
    /// A replaced version is removed at the same clock instant as the new
    /// one is installed, so its alerts are updated in place.
    pub async fn install_rule(&self, plan: Arc<RulePlan>) -> Result<RuleId, EngineError> {
        let _gate = self.clock_gate.lock().await;
        let id = self.engine.add_rule(plan.clone()).await?;
        let previous = self
            .rules
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(plan.name.clone(), InstalledRule { id, plan });
        if let Some(old) = previous {
            self.engine.remove_rule(old.id).await?;
        }
        self.rules_changed();
        Ok(id)
    }

    fn rules_changed(&self) {
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner());
        let resolution = self.config.resolution_ms.max(1);
        let reach = rules
            .values()
            .map(|r| r.plan.reach(resolution))
            .max()
            .unwrap_or(0);
        self.max_reach.store(reach, Ordering::Relaxed);
        self.metrics.rules_loaded.set(rules.len() as i64);
        self.metrics.set_rules(rules.keys().map(String::as_str));
    }

    /// The longest time any installed rule looks back.
    pub fn max_reach(&self) -> u64 {
        self.max_reach.load(Ordering::Relaxed)
    }

    /// How the parser should judge event times and places right now.
    pub fn parse_context(&self) -> ParseContext {
        let grid = self
            .reference
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .grid
            .clone();
        ParseContext::new(grid, now_ms(), self.config.max_future_ms)
    }

    /// Masks personal data in the events, appends them to the event log
    /// (when there is one, and waits until they are durable), hands them
    /// to the engine and moves the clock.
    pub async fn ingest_events(
        &self,
        mut events: Vec<Event>,
    ) -> Result<IngestOutcome, IngestError> {
        if events.is_empty() {
            return Ok(IngestOutcome {
                clock: self.engine.clock().await,
                ..Default::default()
            });
        }
        let mut per_stream = [0u64; 3];
        let mut stamps = Vec::with_capacity(events.len());
        let mut max_ts = 0;
        let mut masked = 0;
        for e in &mut events {
            let s = e.stream().index();
            per_stream[s] += 1;
            stamps.push((s as u8, e.ts));
            max_ts = max_ts.max(e.ts);
            masked += u64::from(self.masker.mask_event(e));
        }
        if masked > 0 {
            self.metrics.events_masked.inc_by(masked);
        }
        let accepted = events.len();
        let clock = match &self.log {
            None => {
                if self.config.clock == ClockMode::Wall {
                    // Bring the clock up to now first: a live event stamped
                    // "now" then arrives at or after its own time and enters
                    // its windows at once, instead of waiting for its time
                    // rounded up to the resolution like an event from the
                    // future.
                    self.advance(now_ms()).await?;
                }
                self.engine.send_events(events).await?
            }
            Some(log) => {
                let serialized = EventLog::serialize(&events);
                let (clock, durable) = {
                    // The batch is logged with the clock it enters the
                    // engine at, which cannot move while the gate is held;
                    // replay after a restart re-enters it at that clock.
                    let _gate = self.clock_gate.lock().await;
                    if self.config.clock == ClockMode::Wall {
                        self.engine.advance(now_ms()).await?;
                    }
                    let clock = self.engine.clock().await;
                    let durable = log.append_serialized(clock, serialized);
                    self.engine.send_events(events).await?;
                    (clock, durable)
                };
                let started = Instant::now();
                let logged = durable.await;
                self.metrics
                    .event_log_append_seconds
                    .observe(started.elapsed().as_secs_f64());
                if let Err(e) = logged {
                    self.metrics
                        .store_errors
                        .with_label_values(&["event_log_append"])
                        .inc();
                    return Err(IngestError::Log(e));
                }
                clock
            }
        };
        for s in jingzhi_rules::schema::StreamKind::ALL {
            self.metrics
                .events_accepted
                .with_label_values(&[s.name()])
                .inc_by(per_stream[s.index()]);
        }
        let reach = self.max_reach.load(Ordering::Relaxed);
        let (mut late, mut expired) = (0, 0);
        for (s, ts) in stamps {
            if ts <= clock {
                let stream = jingzhi_rules::schema::StreamKind::ALL[s as usize].name();
                let outcome = if ts.saturating_add(reach) <= clock {
                    expired += 1;
                    "expired"
                } else {
                    late += 1;
                    "applied"
                };
                self.metrics
                    .events_late
                    .with_label_values(&[stream, outcome])
                    .inc();
            }
        }
        let target = match self.config.clock {
            // At least one instant past the events' arrival, so that their
            // effects are complete and published now, not at the next heartbeat.
            ClockMode::Wall => now_ms().max(clock + 1),
            ClockMode::Event => max_ts.saturating_sub(self.config.lateness_ms),
        };
        if target > clock {
            self.mark_latency(target);
            self.advance(target).await?;
        }
        Ok(IngestOutcome {
            accepted,
            late: late + expired,
            expired,
            clock,
        })
    }

    /// Moves the engine clock, never between the two halves of a rule
    /// replacement.
    pub(crate) async fn advance(&self, clock: Time) -> Result<(), EngineError> {
        let _gate = self.clock_gate.lock().await;
        self.engine.advance(clock).await
    }

    fn mark_latency(&self, clock: Time) {
        let mut marks = self.latency_marks.lock().unwrap_or_else(|e| e.into_inner());
        if marks.len() < 100_000 {
            marks.push_back((clock, Instant::now()));
        }
    }

    /// Event mode: moves the clock to `ts` and waits until every alert
    /// change up to it is published. Returns the clock.
    pub async fn watermark(&self, ts: Time, wait: Duration) -> Result<Time, WatermarkError> {
        self.mark_latency(ts);
        self.advance(ts)
            .await
            .map_err(|_| WatermarkError::Stopped)?;
        if let Some(log) = &self.log {
            // An empty batch at the new clock: replay moves the clock there
            // too, so windows that closed before a crash close again.
            let clock = self.engine.clock().await;
            log.append(clock, &[])
                .await
                .map_err(|e| WatermarkError::Log(e.to_string()))?;
        }
        let clock = self.engine.clock().await;
        self.wait_published(clock, wait).await?;
        Ok(clock)
    }

    /// Waits until every change at times up to and including `clock` is published.
    pub async fn wait_published(&self, clock: Time, wait: Duration) -> Result<(), WatermarkError> {
        let mut rx = self.published.clone();
        let done = tokio::time::timeout(wait, rx.wait_for(|&through| through > clock)).await;
        match done {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(WatermarkError::Stopped),
            Err(_) => Err(WatermarkError::Timeout),
        }
    }

    /// The clock as published: every alert change up to it is out.
    pub fn published_clock(&self) -> Time {
        self.published.borrow().saturating_sub(1)
    }

    /// Applies reference data changes to the service's copy and the engine.
    pub async fn update_reference(&self, changes: Vec<ReferenceChange>) -> Result<(), String> {
        {
            let mut reference = self.reference.write().unwrap_or_else(|e| e.into_inner());
            let mut trial = reference.clone();
            for c in &changes {
                trial.apply(c)?;
            }
            *reference = trial;
        }
        self.metrics.reference_changes.inc_by(changes.len() as u64);
        self.engine
            .update_reference(changes)
            .await
            .map_err(|e| e.to_string())
    }

    /// Wall mode: keeps the clock moving so windows close without events.
    async fn heartbeat(self: Arc<Self>) {
        let mut tick =
            tokio::time::interval(Duration::from_millis(self.config.heartbeat_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = self.shutdown.subscribe();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if self.advance(now_ms()).await.is_err() {
                        return;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn refresh_gauges(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut shutdown = self.shutdown.subscribe();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            self.metrics
                .set_worker_frontiers(&self.engine.worker_frontiers());
            self.refresh_alert_breakdown();
            let r = self.engine.retained();
            self.metrics.window_records.set(r.window_records() as i64);
            self.metrics.history_events.set(r.history_events as i64);
            // The engine counts since start; the counter follows it.
            let seen = self.metrics.updates_coalesced.get();
            if r.coalesced_updates > seen {
                self.metrics
                    .updates_coalesced
                    .inc_by(r.coalesced_updates - seen);
            }
            let clock = self.published_clock();
            self.metrics.clock_ms.set(clock as i64);
            self.metrics
                .clock_lag_seconds
                .set((now_ms() as f64 - clock as f64) / 1000.0);
        }
    }

    /// Turns engine output into published changes, on its own thread.
    fn publish_loop(
        self: Arc<Self>,
        output: std_mpsc::Receiver<EngineOutput>,
        published: watch::Sender<Time>,
    ) {
        while let Ok(out) = output.recv() {
            match out {
                EngineOutput::Changes { time, updates } => self.publish(time, updates),
                EngineOutput::Complete { through } => {
                    self.latency_marks
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .retain(|(clock, _)| *clock >= through);
                    published.send_replace(through);
                }
                EngineOutput::Stopped { reason } => {
                    if *self.shutdown.borrow() {
                        tracing::info!("the engine stopped: {reason}");
                    } else {
                        tracing::error!("the engine stopped: {reason}");
                    }
                    break;
                }
            }
        }
        self.engine_stopped.store(true, Ordering::Release);
    }

    fn publish(&self, time: Time, updates: Vec<jingzhi_dataflow::AlertUpdate>) {
        let since = {
            let marks = self.latency_marks.lock().unwrap_or_else(|e| e.into_inner());
            marks
                .iter()
                .find(|(clock, _)| *clock >= time)
                .map(|(_, at)| *at)
        };
        let reference = self.reference.read().unwrap_or_else(|e| e.into_inner());
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let mut changes: Vec<Change> =
            book.apply(time, updates, |id| self.engine.plan(id), &reference);
        drop(reference);
        if self.recovering.load(Ordering::Acquire) {
            // Replaying the log: these changes were published before the
            // restart; `recover` reconciles the result with the store.
            return;
        }
        for change in &mut changes {
            if change.kind == crate::alerts::ChangeKind::Raised {
                self.annotate_raise(&mut book, change);
            }
        }
        self.commit(&book, &changes);
        if let Some(at) = since {
            let seconds = at.elapsed().as_secs_f64();
            for _ in &changes {
                self.metrics.ingest_to_alert.observe(seconds);
            }
        }
    }

    /// Records changes in the store, then sends them to clients, then
    /// updates the metrics. Called with the alert book locked, so that
    /// changes reach the store and the feed in the order of their numbers.
    pub(crate) fn commit(&self, book: &AlertBook, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let stored: Vec<crate::store::StoredChange> = changes
            .iter()
            .map(crate::store::StoredChange::from_change)
            .collect();
        let items: Vec<FeedItem> = stored.iter().map(FeedItem::stored).collect();
        self.record(stored);
        for (change, item) in changes.iter().zip(items) {
            self.metrics
                .record_alert_change(change.kind, &change.alert.rule);
            // A send error only means that no client is connected.
            let _ = self.feed.send(item);
        }
        self.refresh_alert_metrics(book);
    }

    pub(crate) fn refresh_alert_metrics(&self, book: &AlertBook) {
        for (severity, n) in book.counts() {
            self.metrics
                .alerts_active
                .with_label_values(&[severity.name()])
                .set(n as i64);
        }
    }

    /// Active alerts by severity, rule and district. Walks every active
    /// alert, so it runs with the other gauges once a second rather than
    /// at every publication.
    fn refresh_alert_breakdown(&self) {
        let book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_district: BTreeMap<String, usize> = BTreeMap::new();
        for a in book.iter() {
            *by_rule.entry(a.rule.clone()).or_default() += 1;
            *by_district
                .entry(a.district.clone().unwrap_or_default())
                .or_default() += 1;
        }
        let counts = book.counts();
        drop(book);
        self.metrics
            .set_active_alerts(&counts, &by_rule, &by_district);
    }

    /// Writes changes to the store; a failure is logged and counted, and
    /// the changes still go out (an operator must see a raise even when
    /// the disk is full). With a data directory the write happens here,
    /// before the changes are sent, so that a crash can never leave a
    /// client knowing a change the store does not. Without one (nothing
    /// survives a restart anyway) the writer thread does it, off the path
    /// from engine to client; readers of the store wait for it with
    /// [`App::wait_recorded`].
    pub(crate) fn record(&self, stored: Vec<crate::store::StoredChange>) {
        let Some(last) = stored.last().map(|c| c.seq) else {
            return;
        };
        let stored = match &self.recorder {
            Some(tx) => match tx.send(stored) {
                Ok(()) => return,
                // The writer is gone (it never stops while the app lives):
                // write here rather than lose the changes.
                Err(std_mpsc::SendError(stored)) => stored,
            },
            None => stored,
        };
        write_changes(&self.store, &WriteMetrics::of(&self.metrics), &stored);
        self.recorded.mark(last);
    }

    /// Waits (briefly, blocking) until every change numbered up to `seq`
    /// is in the store.
    pub fn wait_recorded(&self, seq: u64) {
        self.recorded.wait_for(seq, Duration::from_secs(5));
    }

    /// Waits until the store has every change published so far.
    pub fn wait_recorded_all(&self) {
        let seq = self.book.lock().unwrap_or_else(|e| e.into_inner()).seq();
        self.wait_recorded(seq);
    }
}

/// The metrics a store writer keeps.
#[derive(Clone)]
struct WriteMetrics {
    seconds: prometheus::Histogram,
    errors: prometheus::IntCounterVec,
}

impl WriteMetrics {
    fn of(metrics: &Metrics) -> WriteMetrics {
        WriteMetrics {
            seconds: metrics.store_write_seconds.clone(),
            errors: metrics.store_errors.clone(),
        }
    }
}

/// Records a group of changes, timing it and counting failures.
fn write_changes(store: &Store, metrics: &WriteMetrics, stored: &[crate::store::StoredChange]) {
    let started = Instant::now();
    let result = store.record_changes(stored);
    metrics.seconds.observe(started.elapsed().as_secs_f64());
    if let Err(e) = result {
        metrics.errors.with_label_values(&["record_changes"]).inc();
        tracing::error!("cannot record alert changes: {e}");
    }
}

/// Gives the calling thread a lower scheduling priority (nice 10): the
/// store writer then takes the cores when the engine, the ingest handlers
/// and the publisher leave them idle, instead of competing with them on a
/// busy machine. Its queue absorbs the delay.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take and return plain integers
        // and touch no memory of ours; on Linux, PRIO_PROCESS with a thread
        // id changes that thread only.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10)
        };
        if result != 0 {
            tracing::debug!(
                "cannot lower the store writer's priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// How long the writer thread lets changes gather before writing them.
const RECORD_GATHER: Duration = Duration::from_millis(20);

/// The highest change number the store has, and a way to wait for it.
#[derive(Default)]
pub struct RecordedMark {
    seq: Mutex<u64>,
    moved: std::sync::Condvar,
}

impl RecordedMark {
    fn mark(&self, seq: u64) {
        let mut at = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        if seq > *at {
            *at = seq;
            self.moved.notify_all();
        }
    }

    fn wait_for(&self, seq: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut at = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        while *at < seq {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            at = self
                .moved
                .wait_timeout(at, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The writer thread of a store without a data directory: takes every
/// group of changes queued while it was busy and writes them in one go.
fn run_recorder(
    store: Store,
    metrics: WriteMetrics,
    recorded: Arc<RecordedMark>,
    rx: std_mpsc::Receiver<Vec<crate::store::StoredChange>>,
) {
    lower_thread_priority();
    while let Ok(mut batch) = rx.recv() {
        // Let a burst gather: one transaction for many changes costs far
        // less than one each, and this thread competes with the engine.
        std::thread::sleep(RECORD_GATHER);
        while let Ok(more) = rx.try_recv() {
            batch.extend(more);
        }
        let last = batch.last().map(|c| c.seq);
        write_changes(&store, &metrics, &batch);
        if let Some(last) = last {
            recorded.mark(last);
        }
    }
}

/// Why accepted events could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The events reached the engine but are not known to be durable.
    #[error("{0}")]
    Log(crate::eventlog::LogError),
}

/// Why a watermark request did not complete.
#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    #[error("the engine has stopped")]
    Stopped,
    #[error("alert changes were not published in time")]
    Timeout,
    #[error("{0}")]
    Log(String),
}

/// One published version of a rule.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleVersion {
    /// 1, 2, …: counts every publication of the name, across deletions.
    pub version: u32,
    /// The text that defines the rule: a request's body, or the rule's text
    /// in its file.
    pub source: String,
    /// Wall-clock milliseconds.
    pub published_at: Time,
    /// Who published it: `startup FILE:LINE`, `api`, `file PATH`.
    pub origin: String,
}

/// A rule's versions, oldest first.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleHistory {
    pub versions: Vec<RuleVersion>,
    /// Set while the rule is deleted (a later publication clears it).
    pub deleted_at: Option<Time>,
}

/// Every rule's published versions. This is the one place rule history is
/// kept, in memory for now; it is plain data so that it can be persisted.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleVersions {
    rules: BTreeMap<String, RuleHistory>,
}

impl RuleVersions {
    /// The current version of an installed rule.
    pub fn current(&self, name: &str) -> Option<&RuleVersion> {
        self.rules
            .get(name)
            .filter(|h| h.deleted_at.is_none())
            .and_then(|h| h.versions.last())
    }

    /// A rule's history, deleted or not.
    pub fn history(&self, name: &str) -> Option<&RuleHistory> {
        self.rules.get(name)
    }

    /// Records a new version and returns its number.
    pub fn publish(&mut self, name: &str, source: String, origin: String, now: Time) -> u32 {
        let history = self.rules.entry(name.to_string()).or_default();
        let version = history.versions.last().map_or(1, |v| v.version + 1);
        history.versions.push(RuleVersion {
            version,
            source,
            published_at: now,
            origin,
        });
        history.deleted_at = None;
        version
    }

    /// Records a version numbered elsewhere (by the store).
    pub fn publish_numbered(
        &mut self,
        name: &str,
        version: u32,
        source: String,
        origin: String,
        now: Time,
    ) {
        let history = self.rules.entry(name.to_string()).or_default();
        history.versions.push(RuleVersion {
            version,
            source,
            published_at: now,
            origin,
        });
        history.deleted_at = None;
    }

    /// The history the store kept: publications and deletions in order.
    pub fn from_store(stored: &[crate::store::RuleVersion]) -> RuleVersions {
        let mut versions = RuleVersions::default();
        for v in stored {
            if v.deleted {
                versions.delete(&v.name, v.published_at);
            } else {
                versions.publish_numbered(
                    &v.name,
                    v.version,
                    v.source.clone(),
                    v.published_by.clone(),
                    v.published_at,
                );
            }
        }
        versions
    }

    /// Records that a rule was deleted.
    pub fn delete(&mut self, name: &str, now: Time) {
        if let Some(h) = self.rules.get_mut(name) {
            h.deleted_at = Some(now);
        }
    }
}

/// A change to the installed rules, checked as a whole (with the rules that
/// stay) before anything is installed.
#[derive(Clone, Debug, Default)]
pub struct RuleEdit {
    /// Rule files whose rules are published (replacing the installed
    /// versions of the same names).
    pub files: Vec<SourceFile>,
    /// Publish only the rules of these names from `files` (the others are
    /// only checked); `None`: all of them.
    pub publish_only: Option<BTreeSet<String>>,
    /// Rules to remove.
    pub remove: BTreeSet<String>,
    /// Recorded with each new version (`api`, `file`).
    pub origin: String,
    /// Add where the rule was written (`PATH:LINE`) to `origin`.
    pub cite_place: bool,
    /// Record each file's whole text as its rule's source (a request body
    /// that defines one rule) rather than the rule's own text.
    pub whole_file_source: bool,
}

/// What a rule edit did.
#[derive(Clone, Debug, Default)]
pub struct RuleEditOutcome {
    /// Rules installed: name, version, whether the name was new.
    pub published: Vec<(String, u32, bool)>,
    /// Rules whose text (from `rule` to its closing brace) was already installed.
    pub unchanged: Vec<(String, u32)>,
    pub removed: Vec<String>,
    /// Warnings about the edited files.
    pub diagnostics: Vec<Diagnostic>,
    /// What the diagnostics point into.
    pub sources: Vec<SourceFile>,
}

/// Why a rule edit was refused. Nothing was installed.
#[derive(Debug)]
pub enum RuleEditError {
    /// The rule set would not check: every diagnostic, and the sources
    /// they point into (the edited files first, then the installed rules).
    Invalid {
        diagnostics: Vec<Diagnostic>,
        sources: Vec<SourceFile>,
    },
    Engine(EngineError),
}

impl App {
    /// Compiles `files` together with the installed rules they do not
    /// redefine and that are not in `remove`. Returns the result, the
    /// sources (the files first) and the names the files define.
    pub fn check_rule_set(
        &self,
        files: &[SourceFile],
        remove: &BTreeSet<String>,
    ) -> (Compiled, Vec<SourceFile>, BTreeSet<String>) {
        let defined: BTreeSet<String> = files
            .iter()
            .enumerate()
            .flat_map(|(i, f)| rule_names(&f.text, i))
            .collect();
        let mut sources = files.to_vec();
        {
            let rules = self.rules.read().unwrap_or_else(|e| e.into_inner());
            for (name, rule) in rules.iter() {
                if !defined.contains(name) && !remove.contains(name) {
                    sources.push(SourceFile {
                        name: format!("installed rule `{name}`"),
                        text: rule.plan.source.clone(),
                    });
                }
            }
        }
        let options = CheckOptions {
            min_window_ms: self.config.resolution_ms.max(1),
        };
        (compile(&sources, &options), sources, defined)
    }

    /// Checks and applies a rule edit: new and changed rules are installed
    /// at the next clock instant (a changed rule's alerts are updated in
    /// place; other rules keep their state), removed rules' alerts clear.
    /// A rule whose text is unchanged is left alone.
    pub async fn edit_rules(&self, edit: RuleEdit) -> Result<RuleEditOutcome, RuleEditError> {
        let _edits = self.rule_edits.lock().await;
        let (compiled, sources, defined) = self.check_rule_set(&edit.files, &edit.remove);
        if compiled.has_errors() {
            return Err(RuleEditError::Invalid {
                diagnostics: compiled.diagnostics,
                sources,
            });
        }
        let nfiles = edit.files.len();
        let mut outcome = RuleEditOutcome {
            diagnostics: compiled
                .diagnostics
                .into_iter()
                .filter(|d| d.file < nfiles)
                .collect(),
            ..RuleEditOutcome::default()
        };
        for plan in compiled.plans {
            let publish = defined.contains(&plan.name)
                && edit
                    .publish_only
                    .as_ref()
                    .is_none_or(|only| only.contains(&plan.name));
            if !publish {
                continue;
            }
            let installed_source = self
                .rules
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&plan.name)
                .map(|r| r.plan.source.clone());
            let current = self
                .versions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .current(&plan.name)
                .map(|v| v.version);
            if let (Some(source), Some(version)) = (&installed_source, current) {
                if *source == plan.source {
                    outcome.unchanged.push((plan.name.clone(), version));
                    continue;
                }
            }
            let recorded = if edit.whole_file_source {
                edit.files
                    .iter()
                    .find(|f| rule_names(&f.text, 0).contains(&plan.name))
                    .map_or_else(|| plan.source.clone(), |f| f.text.clone())
            } else {
                plan.source.clone()
            };
            let name = plan.name.clone();
            let origin = if edit.cite_place {
                format!("{} {}", edit.origin, plan.origin)
            } else {
                edit.origin.clone()
            };
            self.install_rule(Arc::new(plan))
                .await
                .map_err(RuleEditError::Engine)?;
            let version = self.record_version(&name, recorded, origin);
            outcome
                .published
                .push((name, version, installed_source.is_none()));
        }
        for name in &edit.remove {
            if defined.contains(name) {
                continue;
            }
            let removed = self
                .rules
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
            if let Some(rule) = removed {
                self.engine
                    .remove_rule(rule.id)
                    .await
                    .map_err(RuleEditError::Engine)?;
                self.record_deletion(name, &edit.origin);
                outcome.removed.push(name.clone());
            }
        }
        self.rules_changed();
        outcome.sources = sources;
        Ok(outcome)
    }
}

impl App {
    /// Records a new version of a rule, numbered and kept by the store
    /// (so numbers continue across restarts), and returns its number.
    pub(crate) fn record_version(&self, name: &str, source: String, origin: String) -> u32 {
        let now = now_ms();
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        match self
            .store
            .record_rule_version(name, &source, &origin, now, false)
        {
            Ok(version) => {
                versions.publish_numbered(name, version, source, origin.clone(), now);
                drop(versions);
                self.audit(
                    &origin,
                    "rule.publish",
                    name,
                    serde_json::json!({"version": version}),
                );
                version
            }
            Err(e) => {
                self.metrics
                    .store_errors
                    .with_label_values(&["record_rule_version"])
                    .inc();
                tracing::error!("cannot record rule `{name}`: {e}");
                versions.publish(name, source, origin, now)
            }
        }
    }

    pub(crate) fn record_deletion(&self, name: &str, origin: &str) {
        let now = now_ms();
        if let Err(e) = self.store.record_rule_version(name, "", origin, now, true) {
            self.metrics
                .store_errors
                .with_label_values(&["record_rule_version"])
                .inc();
            tracing::error!("cannot record the deletion of rule `{name}`: {e}");
        }
        self.audit(origin, "rule.delete", name, serde_json::json!({}));
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .delete(name, now);
    }
}

/// The names of the rules a file defines, as far as it parses.
pub fn rule_names(text: &str, file: usize) -> Vec<String> {
    let (ast, _) = jingzhi_rules::parser::parse(text, file);
    ast.rules.into_iter().map(|r| r.name.name).collect()
}
