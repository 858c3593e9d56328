//! Incidents and what operators did about them.
//!
//! An alert id is a fingerprint of rule and key, so the same id comes back
//! whenever the same condition holds again at the same place. Operator
//! state therefore belongs to an *incident*: one raise of an alert, up to
//! its clear. A raise within [`StoreConfig::reopen_window_ms`] of the
//! previous clear continues the previous incident (a flapping condition is
//! one incident for the operator, who keeps their acknowledgement,
//! assignment and comments); it counts as a re-open.
//!
//! Actions are stored as they happened; the derived state on the incident
//! keeps the *first* acknowledgement, resolution and false-alarm mark (the
//! response times are measured to them), the *latest* assignment and the
//! *latest* comment.

use super::{
    check_len, check_text, get_opt_u64, get_u64, to_sql, unexpected, Context, Store, StoreConfig,
    StoreError,
};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Incidents are numbered by the store, from 1.
pub type IncidentId = i64;

/// What an operator can do to an alert's incident. As JSON:
/// `{"action":"assign","to":"朝阳区指挥中心"}`, `{"action":"acknowledge"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Acknowledge,
    Assign { to: String },
    Comment { text: String },
    Resolve,
    FalseAlarm,
}

impl Action {
    /// The action's name as stored and in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Assign { .. } => "assign",
            Action::Comment { .. } => "comment",
            Action::Resolve => "resolve",
            Action::FalseAlarm => "false_alarm",
        }
    }
}

/// One recorded action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionRecord {
    pub id: i64,
    pub incident: IncidentId,
    pub alert_id: String,
    #[serde(flatten)]
    pub action: Action,
    pub note: Option<String>,
    pub actor: String,
    pub at: u64,
}

/// A comment and who left it when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Comment {
    pub text: String,
    pub by: String,
    pub at: u64,
}

/// The operator state of an alert's latest incident. `incident` is `None`
/// (and everything else empty) for an alert the store has no incident for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OperatorState {
    pub alert_id: String,
    pub incident: Option<IncidentId>,
    pub raised_at: Option<u64>,
    /// `None` while the incident is open.
    pub cleared_at: Option<u64>,
    /// How often the alert came back within the re-open window.
    pub reopened: u32,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<u64>,
    pub assigned_to: Option<String>,
    pub assigned_at: Option<u64>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<u64>,
    pub false_alarm: bool,
    pub false_alarm_by: Option<String>,
    pub false_alarm_at: Option<u64>,
    pub last_comment: Option<Comment>,
}

/// What an incident is about, copied from the alert change that opened it.
pub(super) struct Subject<'a> {
    pub rule: &'a str,
    pub key: &'a str,
    pub district: Option<&'a str>,
    pub cell: Option<u32>,
}

/// The incident an alert is in now, if open.
fn open_incident_of(conn: &Connection, alert_id: &str) -> Result<Option<IncidentId>, StoreError> {
    conn.prepare_cached(
        "SELECT id FROM incidents WHERE alert_id = ?1 AND cleared_at IS NULL
         ORDER BY id DESC LIMIT 1",
    )
    .and_then(|mut s| s.query_row([alert_id], |r| r.get(0)).optional())
    .ctx("find open", "incidents")
}

/// The alert's most recent incident, open or not.
fn latest_incident_of(conn: &Connection, alert_id: &str) -> Result<Option<IncidentId>, StoreError> {
    conn.prepare_cached("SELECT id FROM incidents WHERE alert_id = ?1 ORDER BY id DESC LIMIT 1")
        .and_then(|mut s| s.query_row([alert_id], |r| r.get(0)).optional())
        .ctx("find latest", "incidents")
}

/// Opens the alert's incident at `raised_at`: the open one if there is
/// one, the previous one if it cleared within the re-open window, or a new
/// one.
pub(super) fn open_incident_tx(
    tx: &Transaction<'_>,
    alert_id: &str,
    raised_at: u64,
    subject: &Subject<'_>,
    config: &StoreConfig,
) -> Result<IncidentId, StoreError> {
    if let Some(open) = open_incident_of(tx, alert_id)? {
        return Ok(open);
    }
    let previous: Option<(IncidentId, Option<i64>)> = tx
        .prepare_cached(
            "SELECT id, cleared_at FROM incidents WHERE alert_id = ?1 ORDER BY id DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row([alert_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .ctx("find previous", "incidents")?;
    if let Some((id, Some(cleared_at))) = previous {
        // A clock that went backwards (a replay) counts as "soon after".
        let gap =
            u64::try_from(cleared_at).map_or(0, |cleared_at| raised_at.saturating_sub(cleared_at));
        if config.reopen_window_ms > 0 && gap <= config.reopen_window_ms {
            tx.prepare_cached(
                "UPDATE incidents SET cleared_at = NULL, reopened = reopened + 1 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute([id]))
            .ctx("reopen", "incidents")?;
            return Ok(id);
        }
    }
    tx.prepare_cached(
        "INSERT INTO incidents (alert_id, rule, key, district, cell, raised_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            alert_id,
            subject.rule,
            subject.key,
            subject.district,
            subject.cell,
            to_sql(raised_at)?
        ])
    })
    .ctx("insert", "incidents")?;
    Ok(tx.last_insert_rowid())
}

/// Keeps an open incident's place up to date (a moved sensor moves its
/// alerts).
pub(super) fn refresh_incident_tx(
    tx: &Transaction<'_>,
    id: IncidentId,
    subject: &Subject<'_>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE incidents SET rule = ?2, key = ?3, district = ?4, cell = ?5 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            subject.rule,
            subject.key,
            subject.district,
            subject.cell
        ])
    })
    .ctx("update", "incidents")?;
    Ok(())
}

/// Closes the alert's open incident, if any.
pub(super) fn close_incident_tx(
    tx: &Transaction<'_>,
    alert_id: &str,
    cleared_at: u64,
) -> Result<Option<IncidentId>, StoreError> {
    let Some(id) = open_incident_of(tx, alert_id)? else {
        return Ok(None);
    };
    tx.prepare_cached("UPDATE incidents SET cleared_at = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![id, to_sql(cleared_at)?]))
        .ctx("close", "incidents")?;
    Ok(Some(id))
}

const STATE_COLUMNS: &str = "alert_id, id, raised_at, cleared_at, reopened,
    acknowledged_by, acknowledged_at, assigned_to, assigned_at, resolved_by, resolved_at,
    false_alarm_by, false_alarm_at, comment, comment_by, comment_at";

fn state_from_row(row: &Row<'_>) -> rusqlite::Result<OperatorState> {
    let comment: Option<String> = row.get(13)?;
    let last_comment = match comment {
        Some(text) => Some(Comment {
            text,
            by: row.get::<_, Option<String>>(14)?.unwrap_or_default(),
            at: get_opt_u64(row, 15)?.unwrap_or_default(),
        }),
        None => None,
    };
    let false_alarm_at = get_opt_u64(row, 12)?;
    Ok(OperatorState {
        alert_id: row.get(0)?,
        incident: Some(row.get(1)?),
        raised_at: Some(get_u64(row, 2)?),
        cleared_at: get_opt_u64(row, 3)?,
        reopened: row.get(4)?,
        acknowledged_by: row.get(5)?,
        acknowledged_at: get_opt_u64(row, 6)?,
        assigned_to: row.get(7)?,
        assigned_at: get_opt_u64(row, 8)?,
        resolved_by: row.get(9)?,
        resolved_at: get_opt_u64(row, 10)?,
        false_alarm: false_alarm_at.is_some(),
        false_alarm_by: row.get(11)?,
        false_alarm_at,
        last_comment,
    })
}

fn state_of(conn: &Connection, alert_id: &str) -> Result<OperatorState, StoreError> {
    let sql = format!(
        "SELECT {STATE_COLUMNS} FROM incidents WHERE alert_id = ?1 ORDER BY id DESC LIMIT 1"
    );
    let state = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row([alert_id], state_from_row).optional())
        .ctx("read", "incidents")?;
    Ok(state.unwrap_or_else(|| OperatorState {
        alert_id: alert_id.to_string(),
        ..OperatorState::default()
    }))
}

fn action_from_row(row: &Row<'_>) -> rusqlite::Result<ActionRecord> {
    let name: String = row.get(3)?;
    let action = match name.as_str() {
        "acknowledge" => Action::Acknowledge,
        "assign" => Action::Assign {
            to: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
        },
        "comment" => Action::Comment {
            text: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
        },
        "resolve" => Action::Resolve,
        "false_alarm" => Action::FalseAlarm,
        other => return Err(unexpected(3, other)),
    };
    Ok(ActionRecord {
        id: row.get(0)?,
        incident: row.get(1)?,
        alert_id: row.get(2)?,
        action,
        note: row.get(6)?,
        actor: row.get(7)?,
        at: get_u64(row, 8)?,
    })
}

impl Store {
    /// Opens the incident of an alert the store has seen (through
    /// [`Store::record_changes`], which calls this for every raise): the
    /// open incident if there is one, the previous one if the alert
    /// cleared at most `reopen_window_ms` before `raised_at` (re-opened,
    /// operator state kept), or a new one.
    pub fn open_incident(&self, alert_id: &str, raised_at: u64) -> Result<IncidentId, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("begin", "incidents")?;
        type Place = (String, String, Option<String>, Option<u32>);
        let place: Option<Place> = tx
            .query_row(
                "SELECT rule, key, district, cell FROM alert_latest WHERE alert_id = ?1",
                [alert_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .ctx("read", "alert_latest")?;
        let Some((rule, key, district, cell)) = place else {
            return Err(StoreError::UnknownAlert(alert_id.to_string()));
        };
        let subject = Subject {
            rule: &rule,
            key: &key,
            district: district.as_deref(),
            cell,
        };
        let id = open_incident_tx(&tx, alert_id, raised_at, &subject, &self.config)?;
        tx.commit().ctx("commit", "incidents")?;
        Ok(id)
    }

    /// Closes the alert's open incident at `cleared_at` ([`Store::record_changes`]
    /// calls this for every clear). Returns the incident closed, if one was
    /// open.
    pub fn close_incident(
        &self,
        alert_id: &str,
        cleared_at: u64,
    ) -> Result<Option<IncidentId>, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("begin", "incidents")?;
        let id = close_incident_tx(&tx, alert_id, cleared_at)?;
        tx.commit().ctx("commit", "incidents")?;
        Ok(id)
    }

    /// Records an operator action on the alert's latest incident (open, or
    /// cleared: resolving an alert after it cleared by itself is normal)
    /// and updates the incident's operator state. `actor`, an assignee and
    /// a comment's text must not be blank; free text is limited to
    /// [`super::MAX_TEXT_CHARS`] characters.
    pub fn record_action(
        &self,
        alert_id: &str,
        action: &Action,
        note: Option<&str>,
        actor: &str,
        at: u64,
    ) -> Result<ActionRecord, StoreError> {
        check_text("actor", actor)?;
        if let Some(note) = note {
            check_len("note", note)?;
        }
        let (assignee, text) = match action {
            Action::Assign { to } => {
                check_text("assignee", to)?;
                (Some(to.as_str()), None)
            }
            Action::Comment { text } => {
                check_text("comment", text)?;
                (None, Some(text.as_str()))
            }
            _ => (None, None),
        };
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("begin", "actions")?;
        let Some(incident) = latest_incident_of(&tx, alert_id)? else {
            return Err(StoreError::UnknownAlert(alert_id.to_string()));
        };
        let at_sql = to_sql(at).ctx("insert", "actions")?;
        tx.prepare_cached(
            "INSERT INTO actions (incident_id, alert_id, action, assignee, text, note, actor, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                incident,
                alert_id,
                action.name(),
                assignee,
                text,
                note,
                actor,
                at_sql
            ])
        })
        .ctx("insert", "actions")?;
        let id = tx.last_insert_rowid();
        // First acknowledgement, resolution and false-alarm mark win; the
        // latest assignment and comment win.
        let first = |column: &str| {
            format!(
                "UPDATE incidents SET {column}_by = COALESCE({column}_by, ?2),
                     {column}_at = COALESCE({column}_at, ?3) WHERE id = ?1"
            )
        };
        match action {
            Action::Acknowledge => {
                tx.execute(&first("acknowledged"), params![incident, actor, at_sql])
            }
            Action::Resolve => tx.execute(&first("resolved"), params![incident, actor, at_sql]),
            Action::FalseAlarm => {
                tx.execute(&first("false_alarm"), params![incident, actor, at_sql])
            }
            Action::Assign { to } => tx.execute(
                "UPDATE incidents SET assigned_to = ?2, assigned_at = ?3 WHERE id = ?1",
                params![incident, to, at_sql],
            ),
            Action::Comment { text } => tx.execute(
                "UPDATE incidents SET comment = ?2, comment_by = ?3, comment_at = ?4 WHERE id = ?1",
                params![incident, text, actor, at_sql],
            ),
        }
        .ctx("update operator state", "incidents")?;
        tx.commit().ctx("commit", "actions")?;
        Ok(ActionRecord {
            id,
            incident,
            alert_id: alert_id.to_string(),
            action: action.clone(),
            note: note.map(str::to_string),
            actor: actor.to_string(),
            at,
        })
    }

    /// The actions on the alert's latest incident, oldest first.
    pub fn actions_for(&self, alert_id: &str) -> Result<Vec<ActionRecord>, StoreError> {
        let conn = self.conn();
        match latest_incident_of(&conn, alert_id)? {
            Some(incident) => actions_of(&conn, incident),
            None => Ok(Vec::new()),
        }
    }

    /// The actions on one incident, oldest first.
    pub fn actions_for_incident(
        &self,
        incident: IncidentId,
    ) -> Result<Vec<ActionRecord>, StoreError> {
        actions_of(&self.conn(), incident)
    }

    /// The operator state of the alert's latest incident.
    pub fn operator_state(&self, alert_id: &str) -> Result<OperatorState, StoreError> {
        state_of(&self.conn(), alert_id)
    }

    /// The operator state of every alert whose latest incident cleared at
    /// or after `since` (the alerts that may come back as the same
    /// incident).
    pub fn recently_cleared(&self, since: u64) -> Result<Vec<OperatorState>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {STATE_COLUMNS} FROM incidents i WHERE cleared_at >= ?1
               AND id = (SELECT MAX(id) FROM incidents WHERE alert_id = i.alert_id)"
        );
        let mut stmt = conn.prepare_cached(&sql).ctx("query", "incidents")?;
        let rows = stmt
            .query_map([to_sql(since).ctx("query", "incidents")?], state_from_row)
            .ctx("query", "incidents")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("read", "incidents")
    }

    /// [`Store::operator_state`] for many alerts under one lock, keyed by
    /// alert id (every id given is in the map).
    pub fn operator_states(
        &self,
        alert_ids: &[&str],
    ) -> Result<HashMap<String, OperatorState>, StoreError> {
        let conn = self.conn();
        alert_ids
            .iter()
            .map(|id| Ok((id.to_string(), state_of(&conn, id)?)))
            .collect()
    }
}

fn actions_of(conn: &Connection, incident: IncidentId) -> Result<Vec<ActionRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, incident_id, alert_id, action, assignee, text, note, actor, at
             FROM actions WHERE incident_id = ?1 ORDER BY id",
        )
        .ctx("query", "actions")?;
    let rows = stmt
        .query_map([incident], action_from_row)
        .ctx("query", "actions")?;
    rows.collect::<Result<Vec<_>, _>>().ctx("read", "actions")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::ChangeKind::{Cleared, Raised, Updated};
    use crate::store::changes::tests::change;

    fn store(reopen_window_ms: u64) -> Store {
        Store::open_in_memory(StoreConfig { reopen_window_ms }).unwrap()
    }

    #[test]
    fn recording_changes_opens_and_closes_incidents() {
        let s = store(60_000);
        s.record_changes(&[change(1, 1_000, Raised, "a")]).unwrap();
        let state = s.operator_state("a").unwrap();
        let first = state.incident.unwrap();
        assert_eq!((state.raised_at, state.cleared_at), (Some(1_000), None));
        s.record_changes(&[
            change(2, 5_000, Updated, "a"),
            change(3, 9_000, Cleared, "a"),
        ])
        .unwrap();
        let state = s.operator_state("a").unwrap();
        assert_eq!(state.incident, Some(first));
        assert_eq!(state.cleared_at, Some(9_000));
        // Opening is idempotent while the incident is open.
        s.record_changes(&[change(4, 10_000, Raised, "a")]).unwrap();
        assert_eq!(s.open_incident("a", 11_000).unwrap(), first);
    }

    #[test]
    fn a_raise_within_the_window_reopens_the_incident_with_its_state() {
        let s = store(60_000);
        s.record_changes(&[change(1, 1_000, Raised, "a")]).unwrap();
        let first = s
            .record_action("a", &Action::Acknowledge, None, "李警官", 2_000)
            .unwrap()
            .incident;
        s.record_action(
            "a",
            &Action::Assign {
                to: "朝阳分局".into(),
            },
            None,
            "李警官",
            2_500,
        )
        .unwrap();
        s.record_changes(&[change(2, 10_000, Cleared, "a")])
            .unwrap();
        // Back 60 s after the clear: the same incident, state kept.
        s.record_changes(&[change(3, 70_000, Raised, "a")]).unwrap();
        let state = s.operator_state("a").unwrap();
        assert_eq!(state.incident, Some(first));
        assert_eq!(state.reopened, 1);
        assert_eq!(state.cleared_at, None);
        assert_eq!(state.raised_at, Some(1_000));
        assert_eq!(state.acknowledged_by.as_deref(), Some("李警官"));
        assert_eq!(state.assigned_to.as_deref(), Some("朝阳分局"));
        // Back 60.001 s after the next clear: a new incident, clean state.
        s.record_changes(&[
            change(4, 80_000, Cleared, "a"),
            change(5, 140_001, Raised, "a"),
        ])
        .unwrap();
        let state = s.operator_state("a").unwrap();
        assert_ne!(state.incident, Some(first));
        assert_eq!(state.reopened, 0);
        assert_eq!(state.raised_at, Some(140_001));
        assert_eq!(state.acknowledged_by, None);
        assert_eq!(s.actions_for("a").unwrap(), vec![]);
        assert_eq!(s.actions_for_incident(first).unwrap().len(), 2);
    }

    #[test]
    fn a_zero_window_never_reopens() {
        let s = store(0);
        s.record_changes(&[
            change(1, 1_000, Raised, "a"),
            change(2, 2_000, Cleared, "a"),
        ])
        .unwrap();
        let first = s.operator_state("a").unwrap().incident;
        s.record_changes(&[change(3, 2_000, Raised, "a")]).unwrap();
        assert_ne!(s.operator_state("a").unwrap().incident, first);
    }

    #[test]
    fn operator_state_is_derived_from_actions() {
        let s = store(60_000);
        s.record_changes(&[change(1, 1_000, Raised, "a")]).unwrap();
        let record = s
            .record_action("a", &Action::Acknowledge, Some("已联系现场"), "王五", 2_000)
            .unwrap();
        assert_eq!(record.action, Action::Acknowledge);
        assert_eq!(record.note.as_deref(), Some("已联系现场"));
        s.record_action("a", &Action::Acknowledge, None, "赵六", 3_000)
            .unwrap();
        s.record_action(
            "a",
            &Action::Assign {
                to: "排水集团".into(),
            },
            None,
            "王五",
            4_000,
        )
        .unwrap();
        s.record_action(
            "a",
            &Action::Assign {
                to: "交管局".into(),
            },
            None,
            "王五",
            5_000,
        )
        .unwrap();
        s.record_action(
            "a",
            &Action::Comment {
                text: "泵车已到".into(),
            },
            None,
            "赵六",
            6_000,
        )
        .unwrap();
        s.record_action("a", &Action::Resolve, None, "王五", 7_000)
            .unwrap();
        s.record_action("a", &Action::Resolve, None, "赵六", 8_000)
            .unwrap();
        let state = s.operator_state("a").unwrap();
        assert_eq!(state.acknowledged_by.as_deref(), Some("王五"));
        assert_eq!(state.acknowledged_at, Some(2_000));
        assert_eq!(state.assigned_to.as_deref(), Some("交管局"));
        assert_eq!(state.assigned_at, Some(5_000));
        assert_eq!(
            state.last_comment,
            Some(Comment {
                text: "泵车已到".into(),
                by: "赵六".into(),
                at: 6_000
            })
        );
        assert_eq!(
            (state.resolved_by.as_deref(), state.resolved_at),
            (Some("王五"), Some(7_000))
        );
        assert!(!state.false_alarm);
        let actions = s.actions_for("a").unwrap();
        let names: Vec<&str> = actions.iter().map(|a| a.action.name()).collect();
        assert_eq!(
            names,
            [
                "acknowledge",
                "acknowledge",
                "assign",
                "assign",
                "comment",
                "resolve",
                "resolve"
            ]
        );
        assert_eq!(actions[0], record);
    }

    #[test]
    fn false_alarms_and_many_states_at_once() {
        let s = store(60_000);
        s.record_changes(&[change(1, 1_000, Raised, "a"), change(2, 1_000, Raised, "b")])
            .unwrap();
        s.record_action("b", &Action::FalseAlarm, Some("传感器故障"), "王五", 3_000)
            .unwrap();
        let states = s.operator_states(&["a", "b", "nope"]).unwrap();
        assert_eq!(states.len(), 3);
        assert!(!states["a"].false_alarm);
        assert!(states["b"].false_alarm);
        assert_eq!(states["b"].false_alarm_by.as_deref(), Some("王五"));
        assert_eq!(states["nope"].incident, None);
    }

    #[test]
    fn actions_are_validated_and_need_a_known_alert() {
        let s = store(60_000);
        let err = s
            .record_action("ghost", &Action::Acknowledge, None, "王五", 1)
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownAlert(_)), "{err}");
        assert!(matches!(
            s.open_incident("ghost", 1).unwrap_err(),
            StoreError::UnknownAlert(_)
        ));
        s.record_changes(&[change(1, 1_000, Raised, "a")]).unwrap();
        for (action, actor) in [
            (Action::Acknowledge, " "),
            (Action::Assign { to: "".into() }, "王五"),
            (Action::Comment { text: "\n".into() }, "王五"),
            (
                Action::Comment {
                    text: "长".repeat(4001),
                },
                "王五",
            ),
        ] {
            let err = s.record_action("a", &action, None, actor, 2).unwrap_err();
            assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
        }
        assert_eq!(s.actions_for("a").unwrap(), vec![]);
    }

    #[test]
    fn actions_read_as_tagged_json() {
        let action: Action = serde_json::from_str(r#"{"action":"assign","to":"海淀区"}"#).unwrap();
        assert_eq!(
            action,
            Action::Assign {
                to: "海淀区".into()
            }
        );
        let action: Action = serde_json::from_str(r#"{"action":"false_alarm"}"#).unwrap();
        assert_eq!(action, Action::FalseAlarm);
        let record = ActionRecord {
            id: 1,
            incident: 2,
            alert_id: "a".into(),
            action: Action::Comment { text: "好".into() },
            note: None,
            actor: "王五".into(),
            at: 3,
        };
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            serde_json::json!({"id":1,"incident":2,"alert_id":"a","action":"comment","text":"好",
                               "note":null,"actor":"王五","at":3})
        );
    }
}
