//! Starting again after a stop or a crash: the rules that were published,
//! the events the log kept, and the alert picture the clients last saw.
//!
//! The event log holds every accepted batch with the clock it entered the
//! engine at. Replaying the batches at those clocks gives the engine the
//! same state and the alert book the same alerts, at the same times, as
//! before the stop. While replaying, nothing reaches the store or the
//! clients (they saw it already); afterwards the result is reconciled with
//! the store's active set, so that a client sees only what really changed:
//! an alert that cleared while the service was down is `cleared`, one the
//! store missed is `raised`, and the others keep their start times, their
//! numbers and their operator state.

use crate::alerts::{AlertBook, Change, ChangeKind, Operator};
use crate::app::{now_ms, App, FeedItem, RuleVersions, StartError};
use crate::config::ClockMode;
use crate::eventlog::Recovery;
use crate::store::{OperatorState, StoredChange};
use jingzhi_dataflow::Time;
use jingzhi_rules::lang::SourceFile;
use jingzhi_rules::plan::RulePlan;
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

impl App {
    /// Installs the rules of the rules directory (or the built-in set) and,
    /// with a data directory, the rules published through the API before
    /// the restart. A rule whose text is what the store has as its current
    /// version keeps that version number.
    pub(crate) async fn install_startup_rules(
        &self,
        plans: Vec<RulePlan>,
    ) -> Result<(), StartError> {
        let stored = self.store.all_rule_versions()?;
        *self.versions.lock().unwrap_or_else(|e| e.into_inner()) =
            RuleVersions::from_store(&stored);
        let startup: BTreeSet<String> = plans.iter().map(|p| p.name.clone()).collect();
        for plan in plans {
            let (name, source, origin) =
                (plan.name.clone(), plan.source.clone(), plan.origin.clone());
            self.install_rule(Arc::new(plan)).await?;
            let same = self
                .versions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .current(&name)
                .is_some_and(|v| v.source == source);
            if !same {
                self.record_version(&name, source, format!("startup {origin}"));
            }
        }
        // Rules published through the API live only in the store.
        let published: Vec<(String, String)> = self
            .store
            .current_rules()?
            .into_iter()
            .filter(|(name, _, _)| !startup.contains(name))
            .filter(|(name, version, _)| {
                stored.iter().any(|v| {
                    &v.name == name && v.version == *version && v.published_by.starts_with("api")
                })
            })
            .map(|(name, _, source)| (name, source))
            .collect();
        if published.is_empty() {
            return Ok(());
        }
        let files: Vec<SourceFile> = published
            .iter()
            .map(|(name, source)| SourceFile {
                name: format!("published rule `{name}`"),
                text: source.clone(),
            })
            .collect();
        let (compiled, _, _) = self.check_rule_set(&files, &BTreeSet::new());
        if compiled.has_errors() {
            let names: Vec<&str> = published.iter().map(|(n, _)| n.as_str()).collect();
            tracing::warn!(
                "the rules published through the API ({}) no longer check with the rules directory; they stay uninstalled until published again",
                names.join(", ")
            );
            return Ok(());
        }
        for plan in compiled.plans {
            if published.iter().any(|(n, _)| *n == plan.name) {
                self.install_rule(Arc::new(plan)).await?;
            }
        }
        Ok(())
    }

    /// Replays the logged events at the clocks they entered at, brings the
    /// clock up to date, and reconciles the alerts with the store. Ends
    /// recovery mode: from here on every change is recorded and published.
    pub(crate) async fn recover(&self, recovery: Recovery) -> Result<(), StartError> {
        let events = recovery.events();
        let batches = recovery.batches.len();
        let mut max_ts = 0;
        let mut clock = self.engine.clock().await;
        for batch in recovery.batches {
            if batch.clock > clock {
                self.advance(batch.clock).await?;
                clock = batch.clock;
            }
            max_ts = batch.events.iter().map(|e| e.ts).fold(max_ts, u64::max);
            if !batch.events.is_empty() {
                self.engine.send_events(batch.events).await?;
            }
        }
        let target = match self.config.clock {
            ClockMode::Wall => now_ms(),
            ClockMode::Event => max_ts.saturating_sub(self.config.lateness_ms),
        };
        if target > clock {
            self.advance(target).await?;
        }
        let clock = self.engine.clock().await;
        // Everything before `clock` is complete once published through it.
        if let Err(e) = self
            .wait_published(clock.saturating_sub(1), Duration::from_secs(600))
            .await
        {
            return Err(StartError::Config(format!("replaying the event log: {e}")));
        }
        self.metrics.events_recovered.inc_by(events as u64);
        let changes = self.reconcile(clock)?;
        if batches > 0 || changes > 0 {
            tracing::info!(
                "recovered {events} events in {batches} batches from the event log; {changes} alert changes since the last run"
            );
        }
        Ok(())
    }

    /// Makes the alert book agree with what clients were last told (the
    /// store), publishing only the differences, and leaves recovery mode.
    /// Returns how many changes it published.
    fn reconcile(&self, clock: Time) -> Result<usize, StartError> {
        let stored = self.store.active_alerts()?;
        let last_seq = self.store.last_seq()?;
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        // The replay numbered its changes; none of them went out. Its
        // clears carry no operator state: the store has the real one, for
        // every alert that may still come back as the same incident.
        book.set_seq(last_seq);
        let window = self.config.reopen_window_ms;
        book.restore_cleared(self.store.recently_cleared(clock.saturating_sub(window))?);
        let mut out: Vec<(StoredChange, FeedItem)> = Vec::new();
        let mut known = HashSet::new();
        for before in &stored {
            known.insert(before.alert_id.clone());
            let old: Value = serde_json::from_str(&before.alert_json).unwrap_or(Value::Null);
            if book.get(&before.alert_id).is_some() {
                let started = old.get("started_at").and_then(Value::as_u64);
                let state = self.store.operator_state(&before.alert_id)?;
                let silence = book
                    .get(&before.alert_id)
                    .map(|a| self.silences_of(a))
                    .unwrap_or_default();
                book.annotate(&before.alert_id, |a| {
                    if let Some(t) = started {
                        a.started_at = t;
                    }
                    a.operator = Operator::new(state);
                    a.silenced = !silence.is_empty();
                    a.silences = silence;
                });
                let updated = old.get("updated_at").and_then(Value::as_u64);
                book.annotate(&before.alert_id, |a| {
                    if let Some(t) = updated {
                        a.updated_at = a.updated_at.max(t);
                    }
                });
                let now = book
                    .get(&before.alert_id)
                    .and_then(|a| serde_json::to_value(a).ok());
                if now.map(comparable) != Some(comparable(old.clone())) {
                    if let Some(change) =
                        book.renumber(&before.alert_id, ChangeKind::Updated, clock)
                    {
                        out.push(pair(&change));
                    }
                }
            } else {
                // Cleared while the service was down (or never re-raised by
                // the retained events): tell the clients it is over.
                let state = self.store.operator_state(&before.alert_id)?;
                book.note_cleared_operator(&before.alert_id, clock, Operator::new(state));
                let seq = book.next_seq();
                let mut alert = old;
                if let Some(obj) = alert.as_object_mut() {
                    obj.insert("cleared_at".into(), Value::from(clock));
                    obj.insert("updated_at".into(), Value::from(clock));
                }
                let text = serde_json::json!({"type": "cleared", "seq": seq, "alert": alert});
                let change = StoredChange {
                    seq,
                    time: clock,
                    kind: ChangeKind::Cleared,
                    alert_json: alert.to_string(),
                    ..before.clone()
                };
                let item = FeedItem {
                    seq,
                    district: before.district.as_deref().map(Arc::from),
                    text: Arc::from(text.to_string()),
                };
                out.push((change, item));
            }
        }
        let fresh: Vec<String> = book
            .iter()
            .filter(|a| !known.contains(&a.id))
            .map(|a| a.id.clone())
            .collect();
        for id in fresh {
            if let Some(mut change) = book.renumber(&id, ChangeKind::Raised, clock) {
                self.annotate_raise(&mut book, &mut change);
                out.push(pair(&change));
            }
        }
        let (stored, items): (Vec<StoredChange>, Vec<FeedItem>) = out.into_iter().unzip();
        let published = stored.len();
        self.record(stored);
        for item in items {
            let _ = self.feed.send(item);
        }
        self.refresh_alert_metrics(&book);
        self.recovering.store(false, Ordering::Release);
        Ok(published)
    }

    /// Gives a raise the operator state of the incident it continues (a
    /// raise within the re-open window after a clear) and its silences.
    pub(crate) fn annotate_raise(&self, book: &mut AlertBook, change: &mut Change) {
        let operator = self.carried_operator(book, &change.alert.id, change.time);
        let silences = self.silences_of(&change.alert);
        let apply = |a: &mut crate::alerts::Alert| {
            a.operator = operator.clone();
            a.silenced = !silences.is_empty();
            a.silences = silences.clone();
        };
        book.annotate(&change.alert.id, apply);
        apply(&mut change.alert);
    }

    /// The operator state a raise at `time` starts with: that of the
    /// alert's incident if it is open or cleared within the re-open window
    /// (the store re-opens it when the raise is recorded), else none.
    fn carried_operator(&self, book: &AlertBook, alert_id: &str, time: Time) -> Operator {
        let fresh = || {
            Operator::new(OperatorState {
                alert_id: alert_id.to_string(),
                ..OperatorState::default()
            })
        };
        let window = self.config.reopen_window_ms;
        let within = |cleared: Time| window > 0 && time.saturating_sub(cleared) <= window;
        // The book knows every clear within the window: those since the
        // start, and those before it, from the store at recovery. Asking the
        // store here would wait on its writer.
        match book.recently_cleared(alert_id) {
            Some((cleared, operator)) if within(*cleared) => {
                let mut state = operator.detail.clone();
                state.cleared_at = None;
                state.reopened += 1;
                Operator::new(state)
            }
            _ => fresh(),
        }
    }
}

/// An alert's JSON without what legitimately differs between the change
/// last published and the same alert rebuilt by replay: the operator
/// state's incident number and raise time (known to the store only after
/// the raise was recorded) and the time of the last update.
fn comparable(mut alert: Value) -> Value {
    if let Some(obj) = alert.as_object_mut() {
        obj.remove("updated_at");
        if let Some(op) = obj.get_mut("operator").and_then(Value::as_object_mut) {
            op.remove("incident");
            op.remove("raised_at");
        }
    }
    alert
}

fn pair(change: &Change) -> (StoredChange, FeedItem) {
    let stored = StoredChange::from_change(change);
    let item = FeedItem::stored(&stored);
    (stored, item)
}
