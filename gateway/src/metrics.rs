//! Prometheus metrics of the service, in their own registry.
//!
//! Names follow Prometheus conventions: a `jingzhi_` prefix, base units in
//! the name (`_seconds`, `_bytes`; timestamps as `_timestamp_seconds`),
//! `_total` on counters and only on counters. Every label has a bounded set
//! of values: streams, reasons, severities, change kinds, actions, worker
//! indexes, and the names of installed rules and of districts (both fixed by
//! configuration, not by traffic). Series that dashboards and alerts rely on
//! are created at zero before the first event.
//!
//! `docs/operations.md` lists every metric; `tests/ops.rs` checks that the
//! dashboards and alert rules in `ops/` only use names registered here and
//! that `promtool check metrics` finds nothing to complain about.

use crate::alerts::ChangeKind;
use crate::config::ClockMode;
use crate::eventlog::LogMetrics;
use jingzhi_rules::event::RejectReason;
use jingzhi_rules::plan::Severity;
use jingzhi_rules::schema::StreamKind;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// The version `jingzhi_build_info` reports.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit the binary was built from (`git rev-parse --short HEAD` at
/// build time, `JINGZHI_BUILD_COMMIT` if set, else `unknown`).
pub const BUILD_COMMIT: &str = env!("JINGZHI_BUILD_COMMIT");

/// The label value for an alert with no district (grouped by something
/// that lies in none).
pub const NO_DISTRICT: &str = "none";

/// The service's metrics, registered in their own registry.
pub struct Metrics {
    pub registry: Registry,
    pub events_accepted: IntCounterVec,
    pub events_rejected: IntCounterVec,
    pub events_late: IntCounterVec,
    pub ingest_requests: IntCounterVec,
    pub ingest_duration: HistogramVec,
    pub ingest_to_alert: Histogram,
    pub alerts_active: IntGaugeVec,
    pub alerts_active_by_rule: IntGaugeVec,
    pub alerts_active_by_district: IntGaugeVec,
    pub alert_changes: IntCounterVec,
    pub alerts_raised: IntCounterVec,
    pub alerts_cleared: IntCounterVec,
    pub rule_evaluation_errors: IntCounterVec,
    pub ws_clients: IntGauge,
    pub ws_messages: IntCounter,
    pub ws_lagged: IntCounter,
    pub ws_dropped: IntCounter,
    /// The published engine clock; set in milliseconds, exported in seconds.
    pub clock_ms: MillisTimestamp,
    pub clock_lag_seconds: Gauge,
    pub clock_mode: IntGaugeVec,
    pub worker_frontier: GaugeVec,
    pub window_records: IntGauge,
    pub history_events: IntGauge,
    pub updates_coalesced: IntCounter,
    pub rules_loaded: IntGauge,
    pub reference_changes: IntCounter,
    pub build_info: IntGaugeVec,
    // The operator workflow, storage and access control.
    pub operator_actions: IntCounterVec,
    pub operator_response_seconds: HistogramVec,
    pub store_write_seconds: Histogram,
    pub store_errors: IntCounterVec,
    pub event_log_append_seconds: Histogram,
    /// Also refreshed at every scrape from the log given to
    /// [`Metrics::watch_event_log`].
    pub event_log_bytes: IntGauge,
    pub events_masked: IntCounter,
    pub events_recovered: IntCounter,
    pub auth_refused: IntCounterVec,
    // Effectiveness over the last day, refreshed from the store.
    pub rule_false_alarm_ratio: GaugeVec,
    pub rule_response_seconds: GaugeVec,
    pub district_response_seconds: GaugeVec,
    /// The event log's counters, read at every scrape.
    event_log: Arc<EventLogCollector>,
    /// Label values set by the last `set_rules` / `set_active_alerts`, so
    /// that series of rules and districts that went away are removed.
    labels: Mutex<LabelSets>,
    /// Every metric family name registered here, in registration order.
    names: Vec<String>,
}

#[derive(Default)]
struct LabelSets {
    rules: BTreeSet<String>,
    active_rules: BTreeSet<String>,
    active_districts: BTreeSet<String>,
}

/// A timestamp gauge in seconds that is set in milliseconds, the engine's
/// unit of time.
#[derive(Clone)]
pub struct MillisTimestamp(Gauge);

impl MillisTimestamp {
    pub fn set(&self, ms: i64) {
        self.0.set(ms as f64 / 1000.0);
    }

    /// The value in seconds.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric definitions are constants of this file; a failure here is a
    // programming error caught by the first test that builds the metrics.
    r.unwrap_or_else(|e| panic!("invalid metric definition: {e}"))
}

/// Registers collectors and remembers the names of their families.
struct Builder {
    registry: Registry,
    names: Vec<String>,
}

impl Builder {
    fn register<C: Collector + Clone + 'static>(&mut self, c: C) -> C {
        self.names
            .extend(c.desc().iter().map(|d: &&Desc| d.fq_name.clone()));
        must(self.registry.register(Box::new(c.clone())));
        c
    }

    fn counter(&mut self, name: &str, help: &str) -> IntCounter {
        self.register(must(IntCounter::new(name, help)))
    }

    fn counter_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(must(IntCounterVec::new(Opts::new(name, help), labels)))
    }

    fn gauge(&mut self, name: &str, help: &str) -> IntGauge {
        self.register(must(IntGauge::new(name, help)))
    }

    fn float_gauge(&mut self, name: &str, help: &str) -> Gauge {
        self.register(must(Gauge::new(name, help)))
    }

    fn gauge_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.register(must(IntGaugeVec::new(Opts::new(name, help), labels)))
    }

    fn float_gauge_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.register(must(GaugeVec::new(Opts::new(name, help), labels)))
    }

    fn histogram(&mut self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        self.register(must(Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        )))
    }

    fn histogram_vec(
        &mut self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> HistogramVec {
        self.register(must(HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )))
    }
}

/// Seconds, for fast paths (ingest, store, event log).
const FAST_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Seconds, for people (an operator's first response).
const RESPONSE_BUCKETS: &[f64] = &[
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

impl Metrics {
    pub fn new() -> Metrics {
        let mut b = Builder {
            registry: Registry::new(),
            names: Vec::new(),
        };

        // Ingest.
        let events_accepted = b.counter_vec(
            "jingzhi_events_accepted_total",
            "Events accepted by ingest, by stream.",
            &["stream"],
        );
        let events_rejected = b.counter_vec(
            "jingzhi_events_rejected_total",
            "Ingest lines rejected, by stream (unknown when the line did not say) and reason.",
            &["stream", "reason"],
        );
        let events_late = b.counter_vec(
            "jingzhi_events_late_total",
            "Accepted events whose time the clock had already passed: applied to the windows still open, or expired (too late for every window in use).",
            &["stream", "outcome"],
        );
        let ingest_requests = b.counter_vec(
            "jingzhi_ingest_requests_total",
            "Ingest requests by HTTP status code.",
            &["code"],
        );
        let ingest_duration = b.histogram_vec(
            "jingzhi_ingest_request_duration_seconds",
            "Time to parse an ingest request and hand its events to the engine.",
            &["path"],
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ],
        );
        let ingest_to_alert = b.histogram(
            "jingzhi_ingest_to_alert_seconds",
            "From an ingest request's acceptance to the publication of the alert changes it completed.",
            &[
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ],
        );

        // Alerts and rules.
        let alerts_active = b.gauge_vec(
            "jingzhi_alerts_active",
            "Active alerts by severity.",
            &["severity"],
        );
        let alerts_active_by_rule = b.gauge_vec(
            "jingzhi_alerts_active_by_rule",
            "Active alerts by rule (installed rules only).",
            &["rule"],
        );
        let alerts_active_by_district = b.gauge_vec(
            "jingzhi_alerts_active_by_district",
            "Active alerts by district code (none: the alert lies in no district).",
            &["district"],
        );
        let alert_changes = b.counter_vec(
            "jingzhi_alert_changes_total",
            "Alert changes published, by kind (raised, updated, cleared).",
            &["kind"],
        );
        let alerts_raised = b.counter_vec(
            "jingzhi_alerts_raised_total",
            "Alerts raised, by rule.",
            &["rule"],
        );
        let alerts_cleared = b.counter_vec(
            "jingzhi_alerts_cleared_total",
            "Alerts cleared, by rule.",
            &["rule"],
        );
        let rule_evaluation_errors = b.counter_vec(
            "jingzhi_rule_evaluation_errors_total",
            "Rule evaluations that failed, by rule.",
            &["rule"],
        );
        let rules_loaded = b.gauge("jingzhi_rules_loaded", "Rules installed in the engine.");
        let reference_changes = b.counter(
            "jingzhi_reference_changes_total",
            "Changes applied to reference data while running.",
        );

        // The engine.
        let clock_ms = MillisTimestamp(b.float_gauge(
            "jingzhi_clock_timestamp_seconds",
            "The published engine clock as a Unix time: every alert change up to this time is published.",
        ));
        let clock_lag_seconds = b.float_gauge(
            "jingzhi_clock_lag_seconds",
            "How far the published clock is behind the wall clock.",
        );
        let clock_mode = b.gauge_vec(
            "jingzhi_clock_mode",
            "1 for the mode the engine clock runs in: wall (live) or event (replay).",
            &["mode"],
        );
        let worker_frontier = b.float_gauge_vec(
            "jingzhi_worker_frontier_timestamp_seconds",
            "Each timely worker's progress as a Unix time: every time before it is done on that worker.",
            &["worker"],
        );
        let window_records = b.gauge(
            "jingzhi_window_records",
            "Window slices held: one partial aggregate per key, term and step (waiting to enter or to leave).",
        );
        let updates_coalesced = b.counter(
            "jingzhi_alert_updates_coalesced_total",
            "Value-only alert updates held back by the update interval (a later update carried their values).",
        );
        let history_events = b.gauge(
            "jingzhi_history_events",
            "Recent events kept so that rules installed later start with full windows.",
        );

        // WebSocket feed.
        let ws_clients = b.gauge("jingzhi_ws_clients", "Connected WebSocket clients.");
        let ws_messages = b.counter(
            "jingzhi_ws_messages_sent_total",
            "Messages written to WebSocket clients.",
        );
        let ws_lagged = b.counter(
            "jingzhi_ws_lagged_total",
            "Times a WebSocket client fell behind the feed and was sent a fresh snapshot.",
        );
        let ws_dropped = b.counter(
            "jingzhi_ws_dropped_total",
            "WebSocket clients disconnected because they did not take messages in time.",
        );

        // Operators, storage, access control.
        let operator_actions = b.counter_vec(
            "jingzhi_operator_actions_total",
            "Operator actions on alerts, by action (acknowledge, assign, comment, resolve, false_alarm).",
            &["action"],
        );
        let operator_response_seconds = b.histogram_vec(
            "jingzhi_operator_response_seconds",
            "From an incident's raise to its first acknowledgement or resolution.",
            &["kind"],
            RESPONSE_BUCKETS,
        );
        let store_write_seconds = b.histogram(
            "jingzhi_store_write_seconds",
            "Time to record a group of alert changes in the store.",
            FAST_BUCKETS,
        );
        let store_errors = b.counter_vec(
            "jingzhi_store_errors_total",
            "Failed writes to the store or the event log, by operation.",
            &["op"],
        );
        let event_log_append_seconds = b.histogram(
            "jingzhi_event_log_append_seconds",
            "From handing a batch to the event log to its being durable (group commit and sync).",
            FAST_BUCKETS,
        );
        let event_log = Arc::new(EventLogCollector::new());
        b.register(EventLogHandle(event_log.clone()));
        let event_log_bytes = event_log.bytes.clone();
        let events_masked = b.counter(
            "jingzhi_events_masked_total",
            "Incident descriptions in which personal data was masked.",
        );
        let events_recovered = b.counter(
            "jingzhi_events_recovered_total",
            "Events replayed from the event log at start.",
        );
        let auth_refused = b.counter_vec(
            "jingzhi_auth_refused_total",
            "Requests refused by access control, by reason (missing_token, invalid_token, forbidden, out_of_scope).",
            &["reason"],
        );

        // Effectiveness.
        let rule_false_alarm_ratio = b.float_gauge_vec(
            "jingzhi_rule_false_alarm_ratio",
            "Share of a rule's incidents raised in the last 24 hours that operators marked as false alarms.",
            &["rule"],
        );
        let rule_response_seconds = b.float_gauge_vec(
            "jingzhi_rule_response_seconds",
            "Time from raise to first acknowledgement or resolution of a rule's incidents raised in the last 24 hours, by kind (acknowledge, resolve) and percentile (50, 90).",
            &["rule", "kind", "percentile"],
        );
        let district_response_seconds = b.float_gauge_vec(
            "jingzhi_district_response_seconds",
            "Time from raise to first acknowledgement or resolution of a district's incidents raised in the last 24 hours, by kind (acknowledge, resolve) and percentile (50, 90).",
            &["district", "kind", "percentile"],
        );

        // The process (CPU, memory, file descriptors, threads) and the build.
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            b.names
                .extend(process.desc().iter().map(|d| d.fq_name.clone()));
            must(b.registry.register(Box::new(process)));
        }
        let build_info = b.gauge_vec(
            "jingzhi_build_info",
            "Always 1; the labels say which version and commit is running.",
            &["version", "commit"],
        );
        build_info
            .with_label_values(&[BUILD_VERSION, BUILD_COMMIT])
            .set(1);

        let Builder { registry, names } = b;
        let metrics = Metrics {
            registry,
            events_accepted,
            events_rejected,
            events_late,
            ingest_requests,
            ingest_duration,
            ingest_to_alert,
            alerts_active,
            alerts_active_by_rule,
            alerts_active_by_district,
            alert_changes,
            alerts_raised,
            alerts_cleared,
            rule_evaluation_errors,
            ws_clients,
            ws_messages,
            ws_lagged,
            ws_dropped,
            clock_ms,
            clock_lag_seconds,
            clock_mode,
            worker_frontier,
            window_records,
            history_events,
            updates_coalesced,
            rules_loaded,
            reference_changes,
            build_info,
            operator_actions,
            operator_response_seconds,
            store_write_seconds,
            store_errors,
            event_log_append_seconds,
            event_log_bytes,
            events_masked,
            events_recovered,
            auth_refused,
            rule_false_alarm_ratio,
            rule_response_seconds,
            district_response_seconds,
            event_log,
            labels: Mutex::new(LabelSets::default()),
            names,
        };
        metrics.precreate();
        metrics
    }

    /// Creates, at zero, the label combinations dashboards and alerts rely
    /// on, so that series exist before the first event.
    fn precreate(&self) {
        for s in StreamKind::ALL {
            self.events_accepted.with_label_values(&[s.name()]);
            for r in RejectReason::ALL {
                self.events_rejected
                    .with_label_values(&[s.name(), r.as_str()]);
            }
            for o in ["applied", "expired"] {
                self.events_late.with_label_values(&[s.name(), o]);
            }
        }
        for r in RejectReason::ALL {
            self.events_rejected
                .with_label_values(&["unknown", r.as_str()]);
        }
        self.ingest_requests.with_label_values(&["200"]);
        self.ingest_duration.with_label_values(&["/api/v1/events"]);
        for s in Severity::ALL {
            self.alerts_active.with_label_values(&[s.name()]);
        }
        for k in ["raised", "updated", "cleared"] {
            self.alert_changes.with_label_values(&[k]);
        }
        for m in [ClockMode::Wall, ClockMode::Event] {
            self.clock_mode.with_label_values(&[m.name()]);
        }
        for a in ["acknowledge", "assign", "comment", "resolve", "false_alarm"] {
            self.operator_actions.with_label_values(&[a]);
        }
        for k in ["acknowledge", "resolve"] {
            self.operator_response_seconds.with_label_values(&[k]);
        }
        for r in [
            "missing_token",
            "invalid_token",
            "forbidden",
            "out_of_scope",
        ] {
            self.auth_refused.with_label_values(&[r]);
        }
        for op in ["record_changes", "event_log_append"] {
            self.store_errors.with_label_values(&[op]);
        }
    }

    /// The names of every metric family registered by [`Metrics::new`]
    /// (a family without series yet is left out of `/metrics`).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Says which clock the engine runs on (`jingzhi_clock_mode`).
    pub fn set_clock_mode(&self, mode: ClockMode) {
        for m in [ClockMode::Wall, ClockMode::Event] {
            self.clock_mode
                .with_label_values(&[m.name()])
                .set(i64::from(m == mode));
        }
    }

    /// The rules now installed: creates their per-rule series at zero and
    /// removes those of rules that are gone (keeping label values bounded
    /// by the rules in use).
    pub fn set_rules<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let now: BTreeSet<String> = names.into_iter().map(str::to_owned).collect();
        let mut labels = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        for gone in labels.rules.difference(&now) {
            let _ = self.alerts_raised.remove_label_values(&[gone]);
            let _ = self.alerts_cleared.remove_label_values(&[gone]);
            let _ = self.rule_evaluation_errors.remove_label_values(&[gone]);
            if !labels.active_rules.contains(gone) {
                let _ = self.alerts_active_by_rule.remove_label_values(&[gone]);
            }
        }
        for rule in &now {
            self.alerts_raised.with_label_values(&[rule]);
            self.alerts_cleared.with_label_values(&[rule]);
            self.rule_evaluation_errors.with_label_values(&[rule]);
            if !labels.active_rules.contains(rule) {
                self.alerts_active_by_rule.with_label_values(&[rule]).set(0);
            }
        }
        labels.rules = now;
    }

    /// The active alerts, counted by severity, by rule and by district
    /// (an empty district counts as [`NO_DISTRICT`]). Rules and districts
    /// missing from the maps show 0 while the rule is installed and are
    /// removed otherwise.
    pub fn set_active_alerts(
        &self,
        by_severity: &BTreeMap<Severity, usize>,
        by_rule: &BTreeMap<String, usize>,
        by_district: &BTreeMap<String, usize>,
    ) {
        for s in Severity::ALL {
            let n = by_severity.get(&s).copied().unwrap_or(0);
            self.alerts_active
                .with_label_values(&[s.name()])
                .set(gauge_value(n));
        }
        let mut labels = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        let rules: BTreeSet<String> = by_rule.keys().cloned().collect();
        for gone in labels.active_rules.difference(&rules) {
            if labels.rules.contains(gone) {
                self.alerts_active_by_rule.with_label_values(&[gone]).set(0);
            } else {
                let _ = self.alerts_active_by_rule.remove_label_values(&[gone]);
            }
        }
        for (rule, n) in by_rule {
            self.alerts_active_by_rule
                .with_label_values(&[rule])
                .set(gauge_value(*n));
        }
        labels.active_rules = rules;

        let mut districts: BTreeMap<&str, usize> = BTreeMap::new();
        for (d, n) in by_district {
            let d = if d.is_empty() {
                NO_DISTRICT
            } else {
                d.as_str()
            };
            *districts.entry(d).or_default() += n;
        }
        for gone in &labels.active_districts {
            if !districts.contains_key(gone.as_str()) {
                let _ = self.alerts_active_by_district.remove_label_values(&[gone]);
            }
        }
        for (d, n) in &districts {
            self.alerts_active_by_district
                .with_label_values(&[d])
                .set(gauge_value(*n));
        }
        labels.active_districts = districts.keys().map(|d| d.to_string()).collect();
    }

    /// Counts a published alert change: `jingzhi_alert_changes_total` by
    /// kind, and raises and clears by rule.
    pub fn record_alert_change(&self, kind: ChangeKind, rule: &str) {
        self.alert_changes.with_label_values(&[kind.name()]).inc();
        match kind {
            ChangeKind::Raised => self.alerts_raised.with_label_values(&[rule]).inc(),
            ChangeKind::Cleared => self.alerts_cleared.with_label_values(&[rule]).inc(),
            ChangeKind::Updated => {}
        }
    }

    /// Counts a failed evaluation of `rule`.
    pub fn record_rule_evaluation_error(&self, rule: &str) {
        self.rule_evaluation_errors.with_label_values(&[rule]).inc();
    }

    /// Each worker's frontier (engine time, milliseconds), by worker index;
    /// a worker that has not reported yet (0) or has finished (`u64::MAX`)
    /// has no series.
    pub fn set_worker_frontiers(&self, frontiers: &[u64]) {
        for (worker, f) in frontiers.iter().enumerate() {
            let label = worker.to_string();
            if *f == 0 || *f == u64::MAX {
                let _ = self.worker_frontier.remove_label_values(&[&label]);
            } else {
                self.worker_frontier
                    .with_label_values(&[&label])
                    .set(*f as f64 / 1000.0);
            }
        }
    }

    /// Reads the event log's counters at every scrape from now on
    /// (`jingzhi_event_log_bytes`, `_segments`, `_appends_total`,
    /// `_syncs_total`). Without a log they stay at zero.
    pub fn watch_event_log(&self, log: Arc<LogMetrics>) {
        *self
            .event_log
            .source
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(log);
    }

    /// Publishes the effectiveness figures (replacing the previous ones,
    /// so that rules and districts without incidents disappear).
    pub fn set_effectiveness(&self, stats: &crate::store::Stats) {
        self.rule_false_alarm_ratio.reset();
        self.rule_response_seconds.reset();
        self.district_response_seconds.reset();
        let percentiles = |d: &crate::store::Durations| {
            [("50", d.median_ms), ("90", d.p90_ms)]
                .into_iter()
                .filter_map(|(p, ms)| ms.map(|ms| (p, ms as f64 / 1000.0)))
                .collect::<Vec<_>>()
        };
        for (rule, e) in &stats.by_rule {
            if let Some(r) = e.false_alarm_ratio {
                self.rule_false_alarm_ratio
                    .with_label_values(&[rule])
                    .set(r);
            }
            for (kind, d) in [
                ("acknowledge", &e.time_to_acknowledge),
                ("resolve", &e.time_to_resolve),
            ] {
                for (p, s) in percentiles(d) {
                    self.rule_response_seconds
                        .with_label_values(&[rule, kind, p])
                        .set(s);
                }
            }
        }
        for (district, e) in &stats.by_district {
            for (kind, d) in [
                ("acknowledge", &e.time_to_acknowledge),
                ("resolve", &e.time_to_resolve),
            ] {
                for (p, s) in percentiles(d) {
                    self.district_response_seconds
                        .with_label_values(&[district, kind, p])
                        .set(s);
                }
            }
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            return format!("# error encoding metrics: {e}\n");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The event log's metrics, refreshed from its counters when scraped.
struct EventLogCollector {
    source: Mutex<Option<Arc<LogMetrics>>>,
    bytes: IntGauge,
    segments: IntGauge,
    appends: IntCounter,
    syncs: IntCounter,
}

impl EventLogCollector {
    fn new() -> EventLogCollector {
        EventLogCollector {
            source: Mutex::new(None),
            bytes: must(IntGauge::new(
                "jingzhi_event_log_bytes",
                "Bytes in the event log's segment files.",
            )),
            segments: must(IntGauge::new(
                "jingzhi_event_log_segments",
                "Segment files in the event log.",
            )),
            appends: must(IntCounter::new(
                "jingzhi_event_log_appends_total",
                "Batches of events appended to the event log (one per ingest request).",
            )),
            syncs: must(IntCounter::new(
                "jingzhi_event_log_syncs_total",
                "Times the event log was forced to disk (fdatasync).",
            )),
        }
    }

    fn refresh(&self) {
        let source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        let Some(m) = source.as_ref() else { return };
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        self.bytes
            .set(i64::try_from(load(&m.disk_bytes)).unwrap_or(i64::MAX));
        self.segments
            .set(i64::try_from(load(&m.segments)).unwrap_or(i64::MAX));
        // Counters only go up: add what the log counted since the last
        // scrape (the lock keeps two scrapes from adding it twice).
        for (counter, now) in [
            (&self.appends, load(&m.batches)),
            (&self.syncs, load(&m.fsyncs)),
        ] {
            let seen = counter.get();
            if now > seen {
                counter.inc_by(now - seen);
            }
        }
    }
}

/// Registers the shared collector (the registry wants an owned value).
#[derive(Clone)]
struct EventLogHandle(Arc<EventLogCollector>);

impl Collector for EventLogHandle {
    fn desc(&self) -> Vec<&Desc> {
        let c = &self.0;
        let mut d = c.bytes.desc();
        d.extend(c.segments.desc());
        d.extend(c.appends.desc());
        d.extend(c.syncs.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let c = &self.0;
        c.refresh();
        let mut families = c.bytes.collect();
        families.extend(c.segments.collect());
        families.extend(c.appends.collect());
        families.extend(c.syncs.collect());
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `# HELP` and `# TYPE` of every family in `text`: name → (type, help).
    fn families(text: &str) -> BTreeMap<String, (String, String)> {
        let mut out: BTreeMap<String, (String, String)> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP has a text");
                out.entry(name.to_string()).or_default().1 = help.to_string();
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE has a type");
                out.entry(name.to_string()).or_default().0 = kind.to_string();
            }
        }
        out
    }

    #[test]
    fn every_family_is_named_by_the_conventions_and_documented() {
        let m = Metrics::new();
        m.set_rules(["flood"]);
        m.set_worker_frontiers(&[1_767_225_600_000]);
        m.rule_false_alarm_ratio
            .with_label_values(&["flood"])
            .set(0.5);
        m.rule_response_seconds
            .with_label_values(&["flood", "acknowledge", "50"])
            .set(60.0);
        m.district_response_seconds
            .with_label_values(&["110105", "acknowledge", "50"])
            .set(60.0);
        m.set_active_alerts(
            &BTreeMap::new(),
            &BTreeMap::new(),
            &BTreeMap::from([("110105".to_string(), 1)]),
        );
        let text = m.render();
        let families = families(&text);
        for name in m.names() {
            let Some((kind, help)) = families.get(name) else {
                panic!("{name} is registered but not rendered:\n{text}");
            };
            assert!(
                name.starts_with("jingzhi_") || name.starts_with("process_"),
                "{name}: no jingzhi_ prefix"
            );
            assert!(help.len() > 10, "{name}: help too short: {help:?}");
            assert_eq!(
                kind == "counter",
                name.ends_with("_total"),
                "{name} ({kind}): `_total` is for counters, and counters need it"
            );
            for unit in [
                "milliseconds",
                "_ms",
                "millis",
                "kilobytes",
                "_kb",
                "minutes",
            ] {
                assert!(!name.contains(unit), "{name}: use base units");
            }
            if kind == "histogram" {
                assert!(
                    name.ends_with("_seconds") || name.ends_with("_bytes"),
                    "{name}: a histogram's name ends with its unit"
                );
            }
        }
        for expected in [
            "jingzhi_events_accepted_total",
            "jingzhi_events_rejected_total",
            "jingzhi_ingest_request_duration_seconds",
            "jingzhi_ingest_to_alert_seconds",
            "jingzhi_clock_lag_seconds",
            "jingzhi_clock_timestamp_seconds",
            "jingzhi_worker_frontier_timestamp_seconds",
            "jingzhi_window_records",
            "jingzhi_alert_updates_coalesced_total",
            "jingzhi_alerts_active",
            "jingzhi_alerts_active_by_rule",
            "jingzhi_alerts_raised_total",
            "jingzhi_alerts_cleared_total",
            "jingzhi_rule_evaluation_errors_total",
            "jingzhi_ws_clients",
            "jingzhi_ws_messages_sent_total",
            "jingzhi_ws_dropped_total",
            "jingzhi_ws_lagged_total",
            "jingzhi_operator_actions_total",
            "jingzhi_operator_response_seconds",
            "jingzhi_store_write_seconds",
            "jingzhi_store_errors_total",
            "jingzhi_event_log_bytes",
            "jingzhi_event_log_appends_total",
            "jingzhi_auth_refused_total",
            "jingzhi_build_info",
        ] {
            assert!(
                families.contains_key(expected),
                "{expected} missing:\n{text}"
            );
        }
        #[cfg(target_os = "linux")]
        for expected in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
        ] {
            assert!(families.contains_key(expected), "{expected} missing");
        }
        // `quantile` is kept for summaries and `le` for histograms.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family = |suffix: &str| {
                families
                    .get(name.strip_suffix(suffix).unwrap_or(name))
                    .map(|(k, _)| k.as_str())
            };
            let has = |label: &str| {
                line.contains(&format!("{{{label}=\"")) || line.contains(&format!(",{label}=\""))
            };
            if has("quantile") {
                assert_eq!(family(""), Some("summary"), "{line}");
            }
            if has("le") {
                assert_eq!(family("_bucket"), Some("histogram"), "{line}");
            }
        }
    }

    #[test]
    fn build_info_names_the_version_and_commit() {
        let text = Metrics::new().render();
        let line = text
            .lines()
            .find(|l| l.starts_with("jingzhi_build_info{"))
            .expect("a build_info series");
        assert!(
            line.contains(&format!("version=\"{BUILD_VERSION}\"")),
            "{line}"
        );
        assert!(
            line.contains(&format!("commit=\"{BUILD_COMMIT}\"")),
            "{line}"
        );
        assert!(line.ends_with(" 1"), "{line}");
        assert!(!BUILD_COMMIT.is_empty());
    }

    #[test]
    fn active_alerts_by_rule_and_district_follow_the_book() {
        let m = Metrics::new();
        m.set_rules(["flood", "jam"]);
        let sev = BTreeMap::from([(Severity::Red, 2)]);
        let rules = BTreeMap::from([("flood".to_string(), 2), ("old".to_string(), 1)]);
        let districts = BTreeMap::from([("110105".to_string(), 2), (String::new(), 1)]);
        m.set_active_alerts(&sev, &rules, &districts);
        let text = m.render();
        for line in [
            "jingzhi_alerts_active{severity=\"red\"} 2",
            "jingzhi_alerts_active{severity=\"blue\"} 0",
            "jingzhi_alerts_active_by_rule{rule=\"flood\"} 2",
            "jingzhi_alerts_active_by_rule{rule=\"jam\"} 0",
            "jingzhi_alerts_active_by_rule{rule=\"old\"} 1",
            "jingzhi_alerts_active_by_district{district=\"110105\"} 2",
            "jingzhi_alerts_active_by_district{district=\"none\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // The old rule's alert cleared, the district has none left, `jam`
        // was removed.
        m.set_rules(["flood"]);
        m.set_active_alerts(
            &BTreeMap::new(),
            &BTreeMap::from([("flood".to_string(), 1)]),
            &BTreeMap::from([("110105".to_string(), 1)]),
        );
        let text = m.render();
        assert!(text.contains("jingzhi_alerts_active_by_rule{rule=\"flood\"} 1"));
        assert!(text.contains("jingzhi_alerts_active{severity=\"red\"} 0"));
        for gone in ["rule=\"old\"", "rule=\"jam\"", "district=\"none\""] {
            assert!(!text.contains(gone), "{gone} still there:\n{text}");
        }
    }

    #[test]
    fn alert_changes_are_counted_by_kind_and_rule() {
        let m = Metrics::new();
        m.set_rules(["flood"]);
        m.record_alert_change(ChangeKind::Raised, "flood");
        m.record_alert_change(ChangeKind::Updated, "flood");
        m.record_alert_change(ChangeKind::Cleared, "flood");
        m.record_alert_change(ChangeKind::Raised, "flood");
        m.record_rule_evaluation_error("flood");
        let text = m.render();
        for line in [
            "jingzhi_alerts_raised_total{rule=\"flood\"} 2",
            "jingzhi_alerts_cleared_total{rule=\"flood\"} 1",
            "jingzhi_alert_changes_total{kind=\"raised\"} 2",
            "jingzhi_alert_changes_total{kind=\"updated\"} 1",
            "jingzhi_rule_evaluation_errors_total{rule=\"flood\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        m.set_rules([]);
        assert!(!m.render().contains("rule=\"flood\""));
    }

    #[test]
    fn clock_mode_and_worker_progress() {
        let m = Metrics::new();
        m.set_clock_mode(ClockMode::Event);
        m.clock_ms.set(1_767_225_600_500);
        m.set_worker_frontiers(&[1_767_225_601_000, 0, u64::MAX]);
        let text = m.render();
        for line in [
            "jingzhi_clock_mode{mode=\"event\"} 1",
            "jingzhi_clock_mode{mode=\"wall\"} 0",
            "jingzhi_clock_timestamp_seconds 1767225600.5",
            "jingzhi_worker_frontier_timestamp_seconds{worker=\"0\"} 1767225601",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("worker=\"1\"") && !text.contains("worker=\"2\""));
    }

    #[test]
    fn event_log_counters_are_read_when_scraped() {
        let m = Metrics::new();
        let text = m.render();
        assert!(text.contains("jingzhi_event_log_appends_total 0"));
        let log = Arc::new(LogMetrics::default());
        log.batches.store(3, Ordering::Relaxed);
        log.fsyncs.store(2, Ordering::Relaxed);
        log.disk_bytes.store(4096, Ordering::Relaxed);
        log.segments.store(1, Ordering::Relaxed);
        m.watch_event_log(log.clone());
        let text = m.render();
        for line in [
            "jingzhi_event_log_appends_total 3",
            "jingzhi_event_log_syncs_total 2",
            "jingzhi_event_log_bytes 4096",
            "jingzhi_event_log_segments 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        log.batches.store(5, Ordering::Relaxed);
        m.render();
        assert!(m.render().contains("jingzhi_event_log_appends_total 5"));
    }
}
