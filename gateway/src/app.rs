//! The running service: engine, alert book, feed, clock and metrics, and
//! the ingest path that HTTP and the demo simulator share.

use crate::alerts::{AlertBook, Change};
use crate::config::{ClockMode, ServerConfig};
use crate::metrics::Metrics;
use crate::rules_load;
use jingzhi_dataflow::{
    Engine, EngineConfig, EngineError, EngineOutput, RuleId, Time, WindowConfig,
};
use jingzhi_rules::event::{Event, ParseContext};
use jingzhi_rules::plan::RulePlan;
use jingzhi_rules::space::{Reference, ReferenceChange};
use std::collections::{BTreeMap, VecDeque};
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

/// A feed message with its sequence number.
pub type FeedItem = (u64, Arc<str>);

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
    pub book: Mutex<AlertBook>,
    pub feed: broadcast::Sender<FeedItem>,
    /// Every alert change at a time before this value has been published.
    pub published: watch::Receiver<Time>,
    pub reference: RwLock<Reference>,
    pub rules: RwLock<BTreeMap<String, InstalledRule>>,
    max_reach: AtomicU64,
    latency_marks: Mutex<VecDeque<(Time, Instant)>>,
    ready: AtomicBool,
    engine_stopped: AtomicBool,
    pub shutdown: watch::Sender<bool>,
    pub started: Instant,
}

impl App {
    /// Loads reference data and rules, starts the engine and the publisher.
    pub async fn start(config: ServerConfig) -> Result<Arc<App>, StartError> {
        let reference = match (&config.reference_data, &config.reference) {
            (Some(given), _) => given.clone(),
            (None, Some(path)) => Reference::load(path).map_err(StartError::Reference)?,
            (None, None) => crate::city::default_reference().map_err(StartError::Reference)?,
        };
        let plans = rules_load::load(&config).map_err(StartError::Rules)?;

        let clock = match config.clock {
            ClockMode::Wall => now_ms(),
            ClockMode::Event => 0,
        };
        let engine_config = EngineConfig {
            workers: config.workers.max(1),
            window: WindowConfig {
                resolution_ms: config.resolution_ms.max(1),
                keep_history: true,
                min_history_ms: config.min_history_ms,
            },
            command_capacity: 1024,
        };
        let (engine, output) = Engine::start(engine_config, clock)?;
        engine.update_reference(reference.as_changes()).await?;

        let (feed, _) = broadcast::channel(config.ws_buffer.max(16));
        let (published_tx, published) = watch::channel(clock + 1);
        let (shutdown, _) = watch::channel(false);
        let app = Arc::new(App {
            config,
            engine,
            metrics: Metrics::new(),
            book: Mutex::new(AlertBook::default()),
            feed,
            published,
            reference: RwLock::new(reference),
            rules: RwLock::new(BTreeMap::new()),
            max_reach: AtomicU64::new(0),
            latency_marks: Mutex::new(VecDeque::new()),
            ready: AtomicBool::new(false),
            engine_stopped: AtomicBool::new(false),
            shutdown,
            started: Instant::now(),
        });
        for plan in plans {
            app.install_rule(Arc::new(plan)).await?;
        }

        let publisher = app.clone();
        std::thread::Builder::new()
            .name("jingzhi-publish".into())
            .spawn(move || publisher.publish_loop(output, published_tx))
            .map_err(|e| StartError::Engine(EngineError::Start(e.to_string())))?;

        if app.config.clock == ClockMode::Wall {
            let heart = app.clone();
            tokio::spawn(async move { heart.heartbeat().await });
        }
        let stats = app.clone();
        tokio::spawn(async move { stats.refresh_gauges().await });
        app.ready.store(true, Ordering::Release);
        Ok(app)
    }

    /// Rules loaded, reference data loaded, engine running.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.engine_stopped.load(Ordering::Acquire)
    }

    /// Installs a rule (replacing one of the same name) and returns its id.
    pub async fn install_rule(&self, plan: Arc<RulePlan>) -> Result<RuleId, EngineError> {
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
        let reach = rules.values().map(|r| r.plan.reach()).max().unwrap_or(0);
        self.max_reach.store(reach, Ordering::Relaxed);
        self.metrics.rules_loaded.set(rules.len() as i64);
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

    /// Hands parsed events to the engine and moves the clock.
    pub async fn ingest_events(&self, events: Vec<Event>) -> Result<IngestOutcome, EngineError> {
        if events.is_empty() {
            return Ok(IngestOutcome {
                clock: self.engine.clock().await,
                ..Default::default()
            });
        }
        let mut per_stream = [0u64; 3];
        let mut stamps = Vec::with_capacity(events.len());
        let mut max_ts = 0;
        for e in &events {
            let s = e.stream().index();
            per_stream[s] += 1;
            stamps.push((s as u8, e.ts));
            max_ts = max_ts.max(e.ts);
        }
        let accepted = events.len();
        let clock = self.engine.send_events(events).await?;
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
            ClockMode::Wall => now_ms(),
            ClockMode::Event => max_ts.saturating_sub(self.config.lateness_ms),
        };
        if target > clock {
            self.mark_latency(target);
            self.engine.advance(target).await?;
        }
        Ok(IngestOutcome {
            accepted,
            late: late + expired,
            expired,
            clock,
        })
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
        self.engine
            .advance(ts)
            .await
            .map_err(|_| WatermarkError::Stopped)?;
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
                    if self.engine.advance(now_ms()).await.is_err() {
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
            let r = self.engine.retained();
            self.metrics.window_records.set(r.window_records() as i64);
            self.metrics.history_events.set(r.history_events as i64);
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
                    eprintln!("jingzhi: the engine stopped: {reason}");
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
        let changes: Vec<Change> = book.apply(time, updates, |id| self.engine.plan(id), &reference);
        for change in &changes {
            self.metrics
                .alert_changes
                .with_label_values(&[change.kind.name()])
                .inc();
            // A send error only means that no client is connected.
            let _ = self.feed.send((change.seq, Arc::from(change.to_json())));
        }
        for (severity, n) in book.counts() {
            self.metrics
                .alerts_active
                .with_label_values(&[severity.name()])
                .set(n as i64);
        }
        if let Some(at) = since {
            let seconds = at.elapsed().as_secs_f64();
            for _ in &changes {
                self.metrics.ingest_to_alert.observe(seconds);
            }
        }
    }
}

/// Why a watermark request did not complete.
#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    #[error("the engine has stopped")]
    Stopped,
    #[error("alert changes were not published in time")]
    Timeout,
}
