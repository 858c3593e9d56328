//! The operator workflow: acting on alerts, silences, and the upkeep that
//! keeps the store and the event log within their retention.
//!
//! Every action is recorded in the store (with the incident it belongs
//! to), written to the audit log, and — while the alert is active — sent
//! to every client as an `updated` change carrying the new operator state.
//! These are blocking calls (SQLite): HTTP handlers run them with
//! `spawn_blocking`.

use crate::alerts::{Alert, Operator};
use crate::app::{now_ms, App};
use crate::auth::{Principal, Refusal};
use crate::store::{
    Action, ActionRecord, OperatorState, Silence, SilenceMatcher, StoreError, StoredSilence,
};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The alert history kept without a data directory.
const MEMORY_HISTORY_MS: u64 = 3_600_000;

/// Why an operator request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("no alert `{0}` is known")]
    NotFound(String),
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Store(StoreError),
}

impl From<StoreError> for ActError {
    fn from(e: StoreError) -> ActError {
        match e {
            StoreError::UnknownAlert(id) => ActError::NotFound(id),
            StoreError::Invalid { what, why } => ActError::Invalid(format!("{what} {why}")),
            other => ActError::Store(other),
        }
    }
}

/// What an action did.
#[derive(Debug, serde::Serialize)]
pub struct ActOutcome {
    pub action: ActionRecord,
    pub operator: Operator,
    /// The alert as clients now see it, if it is active.
    pub alert: Option<Alert>,
}

/// A silence as an operator asks for it over the API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub district: Option<String>,
    #[serde(default)]
    pub cell: Option<u32>,
    /// How long, such as `2h`; with neither this nor `until`, the silence
    /// lasts until the alerts it covers have cleared.
    #[serde(default)]
    pub duration: Option<String>,
    /// Until when, in epoch milliseconds.
    #[serde(default)]
    pub until: Option<u64>,
    pub reason: String,
}

impl App {
    /// The district of an alert, active or known to the store.
    fn district_of(&self, alert_id: &str) -> Result<Option<String>, ActError> {
        if let Some(a) = self
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(alert_id)
        {
            return Ok(a.district.clone());
        }
        match self.store.alert_place(alert_id)? {
            Some(place) => Ok(place.district),
            None => Err(ActError::NotFound(alert_id.to_string())),
        }
    }

    /// Refuses a caller limited to districts an alert outside them.
    pub fn check_scope(&self, who: &Principal, alert_id: &str) -> Result<(), ActError> {
        let district = self.district_of(alert_id)?;
        if who.sees(district.as_deref()) {
            Ok(())
        } else {
            Err(ActError::Refused(Refusal::OutOfScope {
                name: who.name.clone(),
                district: district.unwrap_or_else(|| "(none)".into()),
            }))
        }
    }

    /// Records an operator action on an alert's incident and publishes the
    /// new operator state. Blocking.
    pub fn act(
        &self,
        who: &Principal,
        alert_id: &str,
        action: Action,
        note: Option<&str>,
    ) -> Result<ActOutcome, ActError> {
        // The incident is opened by the recorded raise.
        self.wait_recorded_all();
        self.check_scope(who, alert_id)?;
        let now = now_ms();
        let record = self
            .store
            .record_action(alert_id, &action, note, &who.name, now)?;
        self.audit(
            &who.name,
            &format!("alert.{}", action.name()),
            alert_id,
            serde_json::json!({"action": &action, "note": note, "incident": record.incident}),
        );
        self.metrics
            .operator_actions
            .with_label_values(&[action.name()])
            .inc();
        let state: OperatorState = self.store.operator_state(alert_id)?;
        if let Some(raised) = state.raised_at {
            let first = |at: Option<u64>| at == Some(now);
            let kind = match action {
                Action::Acknowledge if first(state.acknowledged_at) => Some("acknowledge"),
                Action::Resolve if first(state.resolved_at) => Some("resolve"),
                _ => None,
            };
            if let Some(kind) = kind {
                self.metrics
                    .operator_response_seconds
                    .with_label_values(&[kind])
                    .observe(now.saturating_sub(raised) as f64 / 1000.0);
            }
        }
        let operator = Operator::new(state);
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let clock = self.published_clock();
        let change = book.amend(alert_id, clock, |a| a.operator = operator.clone());
        match change {
            Some(change) => self.commit(&book, std::slice::from_ref(&change)),
            // Acting on a cleared alert: its return continues with this.
            None => book.update_cleared(alert_id, operator.clone()),
        }
        let alert = book.get(alert_id).cloned();
        drop(book);
        self.refresh_effectiveness();
        Ok(ActOutcome {
            action: record,
            operator,
            alert,
        })
    }

    /// Recomputes the effectiveness metrics over the last 24 hours of the
    /// engine clock (raises carry its times).
    pub fn refresh_effectiveness(&self) {
        match self
            .store
            .stats(self.published_clock().saturating_sub(86_400_000))
        {
            Ok(stats) => self.metrics.set_effectiveness(&stats),
            Err(e) => tracing::error!("cannot compute effectiveness figures: {e}"),
        }
    }

    /// Writes an audit entry; a failure is logged and counted, never fatal
    /// to the request it describes (which has already happened).
    pub fn audit(&self, actor: &str, action: &str, target: &str, detail: serde_json::Value) {
        if let Err(e) = self.store.audit(actor, action, target, &detail, now_ms()) {
            self.metrics
                .store_errors
                .with_label_values(&["audit"])
                .inc();
            tracing::error!("cannot write the audit log ({action} {target} by {actor}): {e}");
        }
    }

    /// Creates a silence. A caller limited to districts must silence
    /// within one of them. Blocking.
    pub fn create_silence(
        &self,
        who: &Principal,
        request: SilenceRequest,
    ) -> Result<StoredSilence, ActError> {
        if let Some(allowed) = &who.districts {
            match &request.district {
                Some(d) if allowed.contains(d) => {}
                other => {
                    return Err(ActError::Refused(Refusal::OutOfScope {
                        name: who.name.clone(),
                        district: other.clone().unwrap_or_else(|| "(any)".into()),
                    }))
                }
            }
        }
        let now = now_ms();
        let until = match (&request.duration, request.until) {
            (Some(_), Some(_)) => {
                return Err(ActError::Invalid(
                    "give `duration` or `until`, not both".into(),
                ))
            }
            (Some(d), None) => {
                let ms = jingzhi_rules::time::parse_duration(d)
                    .map_err(|e| ActError::Invalid(format!("duration: {e}")))?;
                Some(now.saturating_add(ms))
            }
            (None, Some(t)) => Some(t),
            (None, None) => None,
        };
        let silence = Silence {
            matcher: SilenceMatcher {
                rule: request.rule,
                district: request.district,
                cell: request.cell,
            },
            until,
            reason: request.reason,
            created_by: who.name.clone(),
            created_at: now,
        };
        let id = self.store.create_silence(&silence)?;
        self.audit(
            &who.name,
            "silence.create",
            &id.to_string(),
            serde_json::to_value(&silence).unwrap_or_default(),
        );
        self.refresh_silences()?;
        Ok(StoredSilence {
            id,
            silence,
            expired_at: None,
        })
    }

    /// Ends a silence now. Blocking.
    pub fn end_silence(&self, who: &Principal, id: i64) -> Result<StoredSilence, ActError> {
        let Some(silence) = self.store.silence(id)? else {
            return Err(ActError::NotFound(format!("silence {id}")));
        };
        if let Some(allowed) = &who.districts {
            let d = silence.silence.matcher.district.as_deref();
            if !d.is_some_and(|d| allowed.contains(d)) {
                return Err(ActError::Refused(Refusal::OutOfScope {
                    name: who.name.clone(),
                    district: d.unwrap_or("(any)").to_string(),
                }));
            }
        }
        let now = now_ms();
        self.store.expire_silence(id, now)?;
        self.audit(
            &who.name,
            "silence.end",
            &id.to_string(),
            serde_json::json!({}),
        );
        self.refresh_silences()?;
        Ok(self.store.silence(id)?.unwrap_or(silence))
    }

    /// The silences covering an alert now.
    pub fn silences_of(&self, alert: &Alert) -> Vec<i64> {
        let now = now_ms();
        self.silences
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| s.is_active(now) && s.matches(alert))
            .map(|s| s.id)
            .collect()
    }

    /// Reloads the silences in force and publishes an `updated` change
    /// for every active alert whose silencing changed. Blocking.
    pub fn refresh_silences(&self) -> Result<(), StoreError> {
        let active = self.store.active_silences(now_ms())?;
        *self.silences.write().unwrap_or_else(|e| e.into_inner()) = active;
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let clock = self.published_clock();
        let ids: Vec<String> = book.iter().map(|a| a.id.clone()).collect();
        let mut changes = Vec::new();
        for id in ids {
            let Some(covering) = book.get(&id).map(|a| self.silences_of(a)) else {
                continue;
            };
            let change = book.amend(&id, clock, |a| {
                a.silenced = !covering.is_empty();
                a.silences = covering;
            });
            changes.extend(change);
        }
        self.commit(&book, &changes);
        Ok(())
    }

    /// Upkeep, until shutdown: silences that ran out (every second), and
    /// trimming the event log and the alert history to their retention.
    pub(crate) async fn housekeeping(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = self.shutdown.subscribe();
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            n += 1;
            let app = self.clone();
            let trim = n.is_multiple_of(30);
            let done = tokio::task::spawn_blocking(move || app.upkeep(trim)).await;
            if done.is_err() {
                return;
            }
        }
    }

    fn upkeep(&self, trim: bool) {
        let now = now_ms();
        let stale = {
            let silences = self.silences.read().unwrap_or_else(|e| e.into_inner());
            // Open-ended silences end in the store when their alerts clear.
            silences
                .iter()
                .any(|s| !s.is_active(now) || s.silence.until.is_none())
        };
        if stale {
            if let Err(e) = self.refresh_silences() {
                self.metrics
                    .store_errors
                    .with_label_values(&["silences"])
                    .inc();
                tracing::error!("cannot refresh silences: {e}");
            }
        }
        if !trim {
            return;
        }
        self.refresh_effectiveness();
        if let Some(log) = &self.log {
            let keep = self
                .max_reach()
                .max(self.config.log_retention_ms)
                .max(self.config.min_history_ms);
            let horizon = self.published_clock().saturating_sub(keep);
            if let Err(e) = log.trim(horizon) {
                self.metrics
                    .store_errors
                    .with_label_values(&["event_log_trim"])
                    .inc();
                tracing::error!("cannot trim the event log: {e}");
            }
        }
        // Without a data directory the history lives in memory: keep an
        // hour at most, enough for clients to resume after a dropped
        // connection.
        let retention = match self.log {
            Some(_) => self.config.history_retention_ms,
            None => self.config.history_retention_ms.min(MEMORY_HISTORY_MS),
        };
        let horizon = self.published_clock().saturating_sub(retention);
        if let Err(e) = self.store.trim_changes(horizon) {
            self.metrics
                .store_errors
                .with_label_values(&["trim_changes"])
                .inc();
            tracing::error!("cannot trim the alert history: {e}");
        }
    }
}
