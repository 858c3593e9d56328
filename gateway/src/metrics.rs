//! Prometheus metrics of the service. Every label has a bounded set of
//! values: streams, reasons, severities, change kinds.

use jingzhi_rules::event::RejectReason;
use jingzhi_rules::plan::Severity;
use jingzhi_rules::schema::StreamKind;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

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
    pub alert_changes: IntCounterVec,
    pub ws_clients: IntGauge,
    pub ws_messages: IntCounter,
    pub ws_lagged: IntCounter,
    pub ws_dropped: IntCounter,
    pub clock_ms: IntGauge,
    pub clock_lag_seconds: prometheus::Gauge,
    pub window_records: IntGauge,
    pub history_events: IntGauge,
    pub rules_loaded: IntGauge,
    pub reference_changes: IntCounter,
    // The operator workflow, storage and access control.
    pub operator_actions: IntCounterVec,
    pub operator_response_seconds: HistogramVec,
    pub store_write_seconds: Histogram,
    pub store_errors: IntCounterVec,
    pub event_log_append_seconds: Histogram,
    pub event_log_bytes: IntGauge,
    pub events_masked: IntCounter,
    pub events_recovered: IntCounter,
    pub auth_refused: IntCounterVec,
    // Effectiveness over the last day, refreshed from the store.
    pub rule_false_alarm_ratio: prometheus::GaugeVec,
    pub rule_response_seconds: prometheus::GaugeVec,
    pub district_response_seconds: prometheus::GaugeVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric definitions are constants of this file; a failure here is a
    // programming error caught by the first test that builds the metrics.
    r.unwrap_or_else(|e| panic!("invalid metric definition: {e}"))
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = must(IntCounterVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(c.clone())));
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = must(IntGauge::new(name, help));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let counter = |name: &str, help: &str| {
            let c = must(IntCounter::new(name, help));
            must(registry.register(Box::new(c.clone())));
            c
        };
        let events_accepted = counter_vec(
            "jingzhi_events_accepted_total",
            "Events accepted by ingest, by stream.",
            &["stream"],
        );
        let events_rejected = counter_vec(
            "jingzhi_events_rejected_total",
            "Ingest lines rejected, by stream (unknown when the line did not say) and reason.",
            &["stream", "reason"],
        );
        let events_late = counter_vec(
            "jingzhi_events_late_total",
            "Accepted events whose time the clock had already passed: applied to the windows still open, or expired (too late for every window in use).",
            &["stream", "outcome"],
        );
        let ingest_requests = counter_vec(
            "jingzhi_ingest_requests_total",
            "Ingest requests by HTTP status code.",
            &["code"],
        );
        let ingest_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "jingzhi_ingest_request_duration_seconds",
                "Time to parse an ingest request and hand its events to the engine.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["path"],
        ));
        must(registry.register(Box::new(ingest_duration.clone())));
        let ingest_to_alert = must(Histogram::with_opts(
            HistogramOpts::new(
                "jingzhi_ingest_to_alert_seconds",
                "From an ingest request's acceptance to the publication of the alert changes it completed.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ]),
        ));
        must(registry.register(Box::new(ingest_to_alert.clone())));
        let alerts_active = must(IntGaugeVec::new(
            Opts::new("jingzhi_alerts_active", "Active alerts by severity."),
            &["severity"],
        ));
        must(registry.register(Box::new(alerts_active.clone())));
        let alert_changes = counter_vec(
            "jingzhi_alert_changes_total",
            "Alert changes published, by kind (raised, updated, cleared).",
            &["kind"],
        );
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = must(Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(buckets),
            ));
            must(registry.register(Box::new(h.clone())));
            h
        };
        let operator_actions = counter_vec(
            "jingzhi_operator_actions_total",
            "Operator actions on alerts, by action (acknowledge, assign, comment, resolve, false_alarm).",
            &["action"],
        );
        let operator_response_seconds = must(HistogramVec::new(
            HistogramOpts::new(
                "jingzhi_operator_response_seconds",
                "From an incident's raise to its first acknowledgement or resolution.",
            )
            .buckets(vec![
                10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
            ]),
            &["kind"],
        ));
        must(registry.register(Box::new(operator_response_seconds.clone())));
        let store_write_seconds = histogram(
            "jingzhi_store_write_seconds",
            "Time to record a group of alert changes in the store.",
            vec![
                0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
            ],
        );
        let store_errors = counter_vec(
            "jingzhi_store_errors_total",
            "Failed writes to the store or the event log, by operation.",
            &["op"],
        );
        let event_log_append_seconds = histogram(
            "jingzhi_event_log_append_seconds",
            "From handing a batch to the event log to its being durable (group commit and sync).",
            vec![
                0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
            ],
        );
        let auth_refused = counter_vec(
            "jingzhi_auth_refused_total",
            "Requests refused by access control, by reason (missing_token, invalid_token, forbidden, out_of_scope).",
            &["reason"],
        );
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = must(prometheus::GaugeVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let rule_false_alarm_ratio = gauge_vec(
            "jingzhi_rule_false_alarm_ratio",
            "Share of a rule's incidents raised in the last 24 hours that operators marked as false alarms.",
            &["rule"],
        );
        let rule_response_seconds = gauge_vec(
            "jingzhi_rule_response_seconds",
            "Time from raise to first acknowledgement or resolution of a rule's incidents raised in the last 24 hours, by kind (acknowledge, resolve) and quantile (0.5, 0.9).",
            &["rule", "kind", "quantile"],
        );
        let district_response_seconds = gauge_vec(
            "jingzhi_district_response_seconds",
            "Time from raise to first acknowledgement or resolution of a district's incidents raised in the last 24 hours, by kind and quantile.",
            &["district", "kind", "quantile"],
        );
        let metrics = Metrics {
            rule_false_alarm_ratio,
            rule_response_seconds,
            district_response_seconds,
            operator_actions,
            operator_response_seconds,
            store_write_seconds,
            store_errors,
            event_log_append_seconds,
            event_log_bytes: gauge(
                "jingzhi_event_log_bytes",
                "Bytes in the event log's segment files.",
            ),
            events_masked: counter(
                "jingzhi_events_masked_total",
                "Incident descriptions in which personal data was masked.",
            ),
            events_recovered: counter(
                "jingzhi_events_recovered_total",
                "Events replayed from the event log at start.",
            ),
            auth_refused,
            events_accepted,
            events_rejected,
            events_late,
            ingest_requests,
            ingest_duration,
            ingest_to_alert,
            alerts_active,
            alert_changes,
            ws_clients: gauge("jingzhi_ws_clients", "Connected WebSocket clients."),
            ws_messages: counter(
                "jingzhi_ws_messages_sent_total",
                "Messages written to WebSocket clients.",
            ),
            ws_lagged: counter(
                "jingzhi_ws_lagged_total",
                "Times a WebSocket client fell behind the feed and was sent a fresh snapshot.",
            ),
            ws_dropped: counter(
                "jingzhi_ws_dropped_total",
                "WebSocket clients disconnected because they did not take messages in time.",
            ),
            clock_ms: gauge(
                "jingzhi_clock_milliseconds",
                "The engine clock: every alert change up to this time is published.",
            ),
            clock_lag_seconds: {
                let g = must(prometheus::Gauge::new(
                    "jingzhi_clock_lag_seconds",
                    "How far the published clock is behind the wall clock.",
                ));
                must(registry.register(Box::new(g.clone())));
                g
            },
            window_records: gauge(
                "jingzhi_window_records",
                "Combined records held in open windows (entries waiting and exits pending).",
            ),
            history_events: gauge(
                "jingzhi_history_events",
                "Recent events kept so that rules installed later start with full windows.",
            ),
            rules_loaded: gauge("jingzhi_rules_loaded", "Rules installed in the engine."),
            reference_changes: counter(
                "jingzhi_reference_changes_total",
                "Changes applied to reference data while running.",
            ),
            registry,
        };
        // Pre-create the label combinations dashboards and alerts rely on,
        // so that series exist (at zero) before the first event.
        for s in StreamKind::ALL {
            metrics.events_accepted.with_label_values(&[s.name()]);
            for r in RejectReason::ALL {
                metrics
                    .events_rejected
                    .with_label_values(&[s.name(), r.as_str()]);
            }
            for o in ["applied", "expired"] {
                metrics.events_late.with_label_values(&[s.name(), o]);
            }
        }
        for r in RejectReason::ALL {
            metrics
                .events_rejected
                .with_label_values(&["unknown", r.as_str()]);
        }
        for s in Severity::ALL {
            metrics.alerts_active.with_label_values(&[s.name()]);
        }
        for k in ["raised", "updated", "cleared"] {
            metrics.alert_changes.with_label_values(&[k]);
        }
        for a in ["acknowledge", "assign", "comment", "resolve", "false_alarm"] {
            metrics.operator_actions.with_label_values(&[a]);
        }
        for k in ["acknowledge", "resolve"] {
            metrics.operator_response_seconds.with_label_values(&[k]);
        }
        for r in [
            "missing_token",
            "invalid_token",
            "forbidden",
            "out_of_scope",
        ] {
            metrics.auth_refused.with_label_values(&[r]);
        }
        for op in ["record_changes", "event_log_append"] {
            metrics.store_errors.with_label_values(&[op]);
        }
        metrics
    }

    /// Publishes the effectiveness figures (replacing the previous ones,
    /// so that rules and districts without incidents disappear).
    pub fn set_effectiveness(&self, stats: &crate::store::Stats) {
        self.rule_false_alarm_ratio.reset();
        self.rule_response_seconds.reset();
        self.district_response_seconds.reset();
        let quantiles = |d: &crate::store::Durations| {
            [("0.5", d.median_ms), ("0.9", d.p90_ms)]
                .into_iter()
                .filter_map(|(q, ms)| ms.map(|ms| (q, ms as f64 / 1000.0)))
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
                for (q, s) in quantiles(d) {
                    self.rule_response_seconds
                        .with_label_values(&[rule, kind, q])
                        .set(s);
                }
            }
        }
        for (district, e) in &stats.by_district {
            for (kind, d) in [
                ("acknowledge", &e.time_to_acknowledge),
                ("resolve", &e.time_to_resolve),
            ] {
                for (q, s) in quantiles(d) {
                    self.district_response_seconds
                        .with_label_values(&[district, kind, q])
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
