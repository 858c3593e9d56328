//! The alert book: turns the engine's consolidated changes into raised,
//! updated and cleared alerts with stable ids and a gap-free sequence.
//!
//! The engine keys alerts by rule *version* and group key; the book keys
//! them by rule *name* and group key (the fingerprint), so that publishing a
//! new version of a rule updates its alerts in place instead of clearing and
//! raising them again.

use crate::store::OperatorState;
use jingzhi_dataflow::{AlertRow, AlertUpdate, GroupKey, RuleId, Time};
use jingzhi_rules::event::json_string;
use jingzhi_rules::plan::{
    format_number, render_message, AggFn, GroupBy, RulePlan, Severity, Window,
};
use jingzhi_rules::space::Reference;
use jingzhi_rules::time::format_duration;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One term's window contents, as shown to an operator.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    pub term: String,
    pub stream: &'static str,
    pub aggregate: &'static str,
    pub window: String,
    pub count: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub sum: f64,
    pub avg: Option<f64>,
    pub last: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct: Option<u64>,
}

/// An alert as clients see it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub id: String,
    pub rule: String,
    pub title: String,
    pub severity: Severity,
    pub message: String,
    pub group_by: GroupBy,
    pub key: String,
    pub cell: Option<u32>,
    pub district: Option<String>,
    pub district_name: Option<String>,
    pub started_at: Time,
    pub updated_at: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<Time>,
    pub values: BTreeMap<String, Option<f64>>,
    pub labels: BTreeMap<String, String>,
    pub evidence: Vec<Evidence>,
    pub summary: String,
    /// What operators did about the alert's incident.
    pub operator: Operator,
    /// Covered by a silence: shown, but not to be announced.
    pub silenced: bool,
    /// The silences covering it.
    pub silences: Vec<i64>,
    #[serde(skip)]
    rule_id: RuleId,
    #[serde(skip)]
    row: AlertRow,
}

/// An alert's operator state, with a one-word summary for lists:
/// `false_alarm`, `resolved`, `assigned`, `acknowledged` or `new`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Operator {
    pub state: &'static str,
    #[serde(flatten)]
    pub detail: OperatorState,
}

impl Operator {
    pub fn new(detail: OperatorState) -> Operator {
        let state = if detail.false_alarm {
            "false_alarm"
        } else if detail.resolved_at.is_some() {
            "resolved"
        } else if detail.assigned_to.is_some() {
            "assigned"
        } else if detail.acknowledged_at.is_some() {
            "acknowledged"
        } else {
            "new"
        };
        Operator { state, detail }
    }
}

/// What happened to an alert.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Raised,
    Updated,
    Cleared,
}

impl ChangeKind {
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Raised => "raised",
            ChangeKind::Updated => "updated",
            ChangeKind::Cleared => "cleared",
        }
    }
}

/// A published change: its kind, its sequence number and the alert.
#[derive(Clone, Debug)]
pub struct Change {
    pub kind: ChangeKind,
    pub seq: u64,
    pub time: Time,
    pub alert: Alert,
}

impl Change {
    /// The feed message for this change.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(512);
        out.push_str("{\"type\":");
        json_string(&mut out, self.kind.name());
        out.push_str(&format!(",\"seq\":{},\"alert\":", self.seq));
        out.push_str(&serde_json::to_string(&self.alert).unwrap_or_else(|_| "null".into()));
        out.push('}');
        out
    }
}

/// A stable id for an alert: FNV-1a of rule name and key.
pub fn fingerprint(rule: &str, group_by: GroupBy, key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in rule
        .bytes()
        .chain([0])
        .chain(group_by.name().bytes())
        .chain([0])
        .chain(key.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A row present after a change: rule version, key, row, plan.
type Present = (RuleId, GroupKey, AlertRow, Arc<RulePlan>);

/// The active alerts and the sequence of changes.
#[derive(Default)]
pub struct AlertBook {
    seq: u64,
    active: HashMap<String, Alert>,
    /// Active alerts by severity, kept as alerts come and go (read at
    /// every publication for the metrics).
    by_severity: BTreeMap<Severity, usize>,
    /// Alerts cleared within the re-open window: when, and their operator
    /// state, so that a raise soon after continues the incident without
    /// waiting for the store.
    recent: HashMap<String, (Time, Operator)>,
    /// How long a cleared alert is kept in `recent`.
    reopen_window_ms: u64,
    /// `recent`'s size at which it is next pruned.
    prune_at: usize,
}

fn window_text(w: Window) -> String {
    match w {
        Window::Sliding(ms) => format_duration(ms),
        Window::Tumbling(ms) => format!("tumbling {}", format_duration(ms)),
    }
}

impl AlertBook {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Active alerts, most severe first, then newest first.
    pub fn alerts(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self.active.values().collect();
        v.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(b.started_at.cmp(&a.started_at))
                .then(a.id.cmp(&b.id))
        });
        v
    }

    pub fn get(&self, id: &str) -> Option<&Alert> {
        self.active.get(id)
    }

    /// Active alerts by severity.
    pub fn counts(&self) -> BTreeMap<Severity, usize> {
        let mut counts: BTreeMap<Severity, usize> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
        for (s, n) in &self.by_severity {
            counts.insert(*s, *n);
        }
        counts
    }

    fn put(&mut self, id: String, alert: Alert) {
        *self.by_severity.entry(alert.severity).or_default() += 1;
        if let Some(old) = self.active.insert(id, alert) {
            self.uncount(old.severity);
        }
    }

    fn take(&mut self, id: &str) -> Option<Alert> {
        let old = self.active.remove(id)?;
        self.uncount(old.severity);
        Some(old)
    }

    fn uncount(&mut self, severity: Severity) {
        if let Some(n) = self.by_severity.get_mut(&severity) {
            *n = n.saturating_sub(1);
        }
    }

    /// An empty book whose cleared alerts can come back as the same
    /// incident within `reopen_window_ms`.
    pub fn with_reopen_window(reopen_window_ms: u64) -> AlertBook {
        AlertBook {
            reopen_window_ms,
            ..AlertBook::default()
        }
    }

    /// When an alert cleared and its operator state then, if that was
    /// within the re-open window.
    pub fn recently_cleared(&self, id: &str) -> Option<&(Time, Operator)> {
        self.recent.get(id)
    }

    /// Records what an operator did to an alert after it cleared, so that
    /// its return within the window carries it.
    pub fn update_cleared(&mut self, id: &str, operator: Operator) {
        if let Some(entry) = self.recent.get_mut(id) {
            entry.1 = operator;
        }
    }

    /// Notes a clear made outside [`AlertBook::apply`] (recovery).
    pub fn note_cleared_operator(&mut self, id: &str, time: Time, operator: Operator) {
        if self.reopen_window_ms > 0 {
            self.recent.insert(id.to_string(), (time, operator));
        }
    }

    /// Replaces the recent clears with what the store knows (after a
    /// replay, whose alerts carry no operator state).
    pub fn restore_cleared(&mut self, cleared: Vec<OperatorState>) {
        self.recent.clear();
        for state in cleared {
            if let Some(at) = state.cleared_at {
                self.recent
                    .insert(state.alert_id.clone(), (at, Operator::new(state)));
            }
        }
    }

    fn note_cleared(&mut self, alert: &Alert, time: Time) {
        if self.reopen_window_ms == 0 {
            return;
        }
        // Prune when the map has doubled since the last pruning, so that
        // pruning costs O(1) per clear however many alerts stay recent.
        if self.recent.len() >= self.prune_at.max(4096) {
            let keep = self.reopen_window_ms;
            self.recent
                .retain(|_, (t, _)| t.saturating_add(keep) >= time);
            self.prune_at = self.recent.len() * 2;
        }
        self.recent
            .insert(alert.id.clone(), (time, alert.operator.clone()));
    }

    /// Numbers the next change `seq + 1` (after a restart: the last change
    /// recorded before it).
    pub fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// Takes the next sequence number for a change made outside the book.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Active alerts, unsorted.
    pub fn iter(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// Changes an active alert in place without a change (before its
    /// change is published, e.g. to attach operator state to a raise).
    pub fn annotate(&mut self, id: &str, f: impl FnOnce(&mut Alert)) -> Option<&Alert> {
        let alert = self.active.get_mut(id)?;
        f(alert);
        Some(alert)
    }

    /// Changes an active alert and numbers the result as an `updated`
    /// change at `time` (an operator action, a silence); `None` when the
    /// alert is not active or `f` changed nothing.
    pub fn amend(&mut self, id: &str, time: Time, f: impl FnOnce(&mut Alert)) -> Option<Change> {
        let alert = self.active.get_mut(id)?;
        let before = alert.clone();
        f(alert);
        if *alert == before {
            return None;
        }
        alert.updated_at = alert.updated_at.max(time);
        self.seq += 1;
        Some(Change {
            kind: ChangeKind::Updated,
            seq: self.seq,
            time,
            alert: alert.clone(),
        })
    }

    /// Takes an alert out of the active set and numbers its `cleared`
    /// change (recovery: an alert the store had active that the replayed
    /// events no longer raise).
    pub fn force_clear(&mut self, alert: Alert, time: Time) -> Change {
        self.take(&alert.id);
        let mut alert = alert;
        alert.cleared_at = Some(time);
        alert.updated_at = time;
        self.seq += 1;
        Change {
            kind: ChangeKind::Cleared,
            seq: self.seq,
            time,
            alert,
        }
    }

    /// Numbers a change for an alert already in the active set as it is
    /// now (recovery: the alert differs from, or is missing in, the store).
    pub fn renumber(&mut self, id: &str, kind: ChangeKind, time: Time) -> Option<Change> {
        let alert = self.active.get(id)?.clone();
        self.seq += 1;
        Some(Change {
            kind,
            seq: self.seq,
            time,
            alert,
        })
    }

    /// `{"type":"snapshot","seq":N,"alerts":[…]}`
    /// `resync` names why a client that had a feed gets a snapshot again
    /// (`lagged`, `since_unavailable`); `visible` picks the alerts the
    /// client may see.
    pub fn snapshot_json(&self, resync: Option<&str>, visible: impl Fn(&Alert) -> bool) -> String {
        let shown: Vec<&Alert> = self.alerts().into_iter().filter(|a| visible(a)).collect();
        let alerts = serde_json::to_string(&shown).unwrap_or_else(|_| "[]".into());
        let resync = match resync {
            Some(reason) => format!(",\"resync\":true,\"reason\":\"{reason}\""),
            None => String::new(),
        };
        format!(
            "{{\"type\":\"snapshot\",\"seq\":{}{resync},\"alerts\":{alerts}}}",
            self.seq
        )
    }

    /// Applies the engine's changes at `time` and returns what to publish.
    pub fn apply(
        &mut self,
        time: Time,
        updates: Vec<AlertUpdate>,
        plan_of: impl Fn(RuleId) -> Option<Arc<RulePlan>>,
        reference: &Reference,
    ) -> Vec<Change> {
        // Net effect per fingerprint: the row now present, if any. A rule's
        // new version retracts the old row and inserts the new one under the
        // same fingerprint, which is an update, not a clear and a raise.
        let mut net: BTreeMap<String, Option<Present>> = BTreeMap::new();
        for u in updates {
            let Some(plan) = plan_of(u.rule) else {
                continue;
            };
            let id = fingerprint(&plan.name, plan.group_by, &u.key.to_string());
            let entry = net.entry(id).or_insert(None);
            if u.diff > 0 {
                *entry = Some((u.rule, u.key, u.row, plan));
            }
        }
        let mut changes = Vec::new();
        for (id, present) in net {
            match (present, self.active.get(&id)) {
                (Some((rule_id, key, row, plan)), Some(old)) => {
                    if old.rule_id == rule_id && old.row == row {
                        continue;
                    }
                    let mut alert = build_alert(
                        &id,
                        rule_id,
                        key,
                        row,
                        &plan,
                        reference,
                        old.started_at,
                        time,
                    );
                    alert.operator = old.operator.clone();
                    alert.silenced = old.silenced;
                    alert.silences = old.silences.clone();
                    self.seq += 1;
                    self.put(id, alert.clone());
                    changes.push(Change {
                        kind: ChangeKind::Updated,
                        seq: self.seq,
                        time,
                        alert,
                    });
                }
                (Some((rule_id, key, row, plan)), None) => {
                    let alert = build_alert(&id, rule_id, key, row, &plan, reference, time, time);
                    self.seq += 1;
                    self.put(id, alert.clone());
                    changes.push(Change {
                        kind: ChangeKind::Raised,
                        seq: self.seq,
                        time,
                        alert,
                    });
                }
                (None, Some(_)) => {
                    if let Some(mut alert) = self.take(&id) {
                        alert.cleared_at = Some(time);
                        alert.updated_at = time;
                        self.note_cleared(&alert, time);
                        self.seq += 1;
                        changes.push(Change {
                            kind: ChangeKind::Cleared,
                            seq: self.seq,
                            time,
                            alert,
                        });
                    }
                }
                (None, None) => {}
            }
        }
        changes
    }
}

#[allow(clippy::too_many_arguments)]
fn build_alert(
    id: &str,
    rule_id: RuleId,
    key: GroupKey,
    row: AlertRow,
    plan: &RulePlan,
    reference: &Reference,
    started_at: Time,
    now: Time,
) -> Alert {
    let cell = match key {
        GroupKey::Cell(c) => Some(c),
        GroupKey::District(_) => None,
        GroupKey::Segment(s) => reference.segments.get(&s).map(|s| s.cell),
        GroupKey::Sensor(s) => reference.sensors.get(&s).map(|s| s.cell),
    };
    let district = match key {
        GroupKey::District(d) => Some(d),
        _ => cell.and_then(|c| reference.district_of(c)),
    };
    let district_name = district
        .and_then(|d| reference.district_name(d))
        .map(str::to_string);
    let key_text = key.to_string();
    let values: Vec<Option<f64>> = row.values.iter().map(|v| v.map(|x| x.0)).collect();
    let message = render_message(
        plan,
        &key_text,
        district_name.as_deref(),
        row.severity,
        &values,
    );
    // Hidden terms (made by the checker for absence and sequences) are
    // machinery, not values an operator reads.
    let shown = |i: &usize| !plan.terms[*i].hidden;
    let evidence: Vec<Evidence> = plan
        .terms
        .iter()
        .zip(&row.evidence)
        .enumerate()
        .filter(|(i, _)| shown(i))
        .map(|(_, (t, e))| {
            let some = |x: f64| (e.count > 0).then_some(x);
            Evidence {
                term: t.name.clone(),
                stream: t.stream.name(),
                aggregate: t.agg.name(),
                window: window_text(t.window),
                count: e.count,
                min: some(e.min.0),
                max: some(e.max.0),
                sum: if e.count > 0 { e.sum.0 } else { 0.0 },
                avg: some(e.sum.0 / e.count.max(1) as f64),
                last: some(e.last.0),
                distinct: (t.agg == AggFn::CountDistinct).then_some(e.distinct),
            }
        })
        .collect();
    let shown_values: Vec<Option<f64>> = values
        .iter()
        .enumerate()
        .filter(|(i, _)| shown(i))
        .map(|(_, v)| *v)
        .collect();
    let summary = evidence
        .iter()
        .zip(&shown_values)
        .map(|(e, value)| {
            let value = value.map_or("–".to_string(), |v| format_number(v, None));
            match (e.min, e.max) {
                (Some(lo), Some(hi)) if e.aggregate != "count" => format!(
                    "{} {} over {}: {value} (n={}, {}–{})",
                    e.aggregate,
                    e.term,
                    e.window,
                    e.count,
                    format_number(lo, None),
                    format_number(hi, None)
                ),
                _ => format!("{} {} over {}: {value}", e.aggregate, e.term, e.window),
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    Alert {
        id: id.to_string(),
        rule: plan.name.clone(),
        title: plan.title.clone(),
        severity: row.severity,
        message,
        group_by: plan.group_by,
        key: key_text,
        cell,
        district: district.map(|d| d.to_string()),
        district_name,
        started_at,
        updated_at: now,
        cleared_at: None,
        values: plan
            .terms
            .iter()
            .zip(&values)
            .filter(|(t, _)| !t.hidden)
            .map(|(t, v)| (t.name.clone(), *v))
            .collect(),
        labels: plan.labels.iter().cloned().collect(),
        evidence,
        summary,
        operator: Operator::new(OperatorState {
            alert_id: id.to_string(),
            ..OperatorState::default()
        }),
        silenced: false,
        silences: Vec::new(),
        rule_id,
        row,
    }
}
