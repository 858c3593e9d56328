//! Alert history: every published change, the active set, catching up a
//! client that reconnects with its last sequence number, and trimming.

use super::incidents::{close_incident_tx, open_incident_tx, refresh_incident_tx, Subject};
use super::silences::expire_open_ended_tx;
use super::{get_u64, to_sql, unexpected, Context, Store, StoreError};
use crate::alerts::{Change, ChangeKind};
use rusqlite::{params, OptionalExtension, Row, Transaction, TransactionBehavior};
use serde::Serialize;

/// Raises and clears in one bucket of time and one district:
/// `(bucket start, district, raised, cleared)`.
pub type ChangeCount = (u64, Option<String>, u64, u64);

/// Where an alert is, as the store last saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlertPlace {
    pub rule: String,
    pub district: Option<String>,
    pub cell: Option<u32>,
    pub active: bool,
}

/// One published alert change as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredChange {
    pub seq: u64,
    /// Engine-clock time of the change.
    pub time: u64,
    pub kind: ChangeKind,
    pub alert_id: String,
    pub rule: String,
    pub key: String,
    /// The severity's name (`blue` … `red`).
    pub severity: String,
    /// The alert's district code, if it has one (for silences and stats).
    pub district: Option<String>,
    /// The alert's cell, if it has one (for silences).
    pub cell: Option<u32>,
    /// The alert as clients see it (`serde_json` of [`crate::alerts::Alert`]).
    pub alert_json: String,
}

impl StoredChange {
    /// The row for a change the alert book published.
    pub fn from_change(change: &Change) -> StoredChange {
        let alert = &change.alert;
        StoredChange {
            seq: change.seq,
            time: change.time,
            kind: change.kind,
            alert_id: alert.id.clone(),
            rule: alert.rule.clone(),
            key: alert.key.clone(),
            severity: alert.severity.name().to_string(),
            district: alert.district.clone(),
            cell: alert.cell,
            // Serialising an alert cannot fail (string keys, finite or
            // null numbers); the book's own feed relies on the same.
            alert_json: serde_json::to_string(alert).unwrap_or_else(|_| "null".into()),
        }
    }

    fn subject(&self) -> Subject<'_> {
        Subject {
            rule: &self.rule,
            key: &self.key,
            district: self.district.as_deref(),
            cell: self.cell,
        }
    }
}

fn kind_from_sql(idx: usize, text: &str) -> rusqlite::Result<ChangeKind> {
    match text {
        "raised" => Ok(ChangeKind::Raised),
        "updated" => Ok(ChangeKind::Updated),
        "cleared" => Ok(ChangeKind::Cleared),
        other => Err(unexpected(idx, other)),
    }
}

const CHANGE_COLUMNS: &str =
    "c.seq, c.time, c.kind, c.alert_id, c.rule, c.key, c.severity, c.district, c.cell, c.alert_json";

fn change_from_row(row: &Row<'_>) -> rusqlite::Result<StoredChange> {
    Ok(StoredChange {
        seq: get_u64(row, 0)?,
        time: get_u64(row, 1)?,
        kind: kind_from_sql(2, &row.get::<_, String>(2)?)?,
        alert_id: row.get(3)?,
        rule: row.get(4)?,
        key: row.get(5)?,
        severity: row.get(6)?,
        district: row.get(7)?,
        cell: row.get(8)?,
        alert_json: row.get(9)?,
    })
}

pub(super) fn meta_tx(tx: &Transaction<'_>, key: &str) -> Result<u64, StoreError> {
    let v: i64 = tx
        .query_row("SELECT value FROM store_meta WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .ctx("read", "store_meta")?;
    u64::try_from(v)
        .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, v))
        .ctx("read", "store_meta")
}

fn set_meta_tx(tx: &Transaction<'_>, key: &str, value: u64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE store_meta SET value = ?2 WHERE key = ?1",
        params![key, to_sql(value).ctx("write", "store_meta")?],
    )
    .ctx("write", "store_meta")?;
    Ok(())
}

impl Store {
    /// Records published changes in one transaction, in order, and keeps
    /// incidents in step: a raise opens (or re-opens) the alert's
    /// incident, a clear closes it and ends the open-ended silences it was
    /// the last matching alert of. Sequence numbers must be strictly
    /// increasing and above [`Store::last_seq`] (call this before the
    /// changes are broadcast, so the store is never behind a client).
    pub fn record_changes(&self, changes: &[StoredChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("begin", "alert_changes")?;
        let mut last = meta_tx(&tx, "last_seq")?;
        for c in changes {
            if c.seq <= last {
                return Err(StoreError::SeqNotIncreasing { seq: c.seq, last });
            }
            let seq = to_sql(c.seq).ctx("insert", "alert_changes")?;
            let time = to_sql(c.time).ctx("insert", "alert_changes")?;
            tx.prepare_cached(
                "INSERT INTO alert_changes
                     (seq, time, kind, alert_id, rule, key, severity, district, cell, alert_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    seq,
                    time,
                    c.kind.name(),
                    c.alert_id,
                    c.rule,
                    c.key,
                    c.severity,
                    c.district,
                    c.cell,
                    c.alert_json
                ])
            })
            .ctx("insert", "alert_changes")?;
            tx.prepare_cached(
                "INSERT INTO alert_latest (alert_id, seq, active, rule, key, district, cell)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (alert_id) DO UPDATE SET
                     seq = excluded.seq, active = excluded.active, rule = excluded.rule,
                     key = excluded.key, district = excluded.district, cell = excluded.cell",
            )
            .and_then(|mut s| {
                s.execute(params![
                    c.alert_id,
                    seq,
                    c.kind != ChangeKind::Cleared,
                    c.rule,
                    c.key,
                    c.district,
                    c.cell
                ])
            })
            .ctx("upsert", "alert_latest")?;
            match c.kind {
                ChangeKind::Raised => {
                    open_incident_tx(&tx, &c.alert_id, c.time, &c.subject(), &self.config)?;
                }
                ChangeKind::Updated => {
                    // An update of an alert raised before the store knew it
                    // (an upgrade, a lost database) starts its incident now.
                    let id =
                        open_incident_tx(&tx, &c.alert_id, c.time, &c.subject(), &self.config)?;
                    refresh_incident_tx(&tx, id, &c.subject())?;
                }
                ChangeKind::Cleared => {
                    close_incident_tx(&tx, &c.alert_id, c.time)?;
                    expire_open_ended_tx(&tx, &c.subject(), c.time)?;
                }
            }
            last = c.seq;
        }
        set_meta_tx(&tx, "last_seq", last)?;
        tx.commit().ctx("commit", "alert_changes")?;
        Ok(())
    }

    /// The sequence number of the last recorded change (0 if none): the
    /// alert book continues from here after a restart.
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("begin", "store_meta")?;
        meta_tx(&tx, "last_seq")
    }

    /// Up to `limit` changes after `seq`, oldest first, for a client that
    /// reconnects having seen `seq`. `None` when the changes right after
    /// `seq` have been trimmed, or `seq` is beyond the last recorded
    /// change: the client needs a fresh snapshot instead.
    pub fn changes_since(
        &self,
        seq: u64,
        limit: usize,
    ) -> Result<Option<Vec<StoredChange>>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("begin", "alert_changes")?;
        let last = meta_tx(&tx, "last_seq")?;
        let trimmed = meta_tx(&tx, "trimmed_through_seq")?;
        if seq < trimmed || seq > last {
            return Ok(None);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM alert_changes c WHERE c.seq > ?1 ORDER BY c.seq LIMIT ?2"
        );
        let mut stmt = tx.prepare_cached(&sql).ctx("query", "alert_changes")?;
        let rows = stmt
            .query_map(
                params![to_sql(seq).ctx("query", "alert_changes")?, limit],
                change_from_row,
            )
            .ctx("query", "alert_changes")?;
        let changes = rows
            .collect::<Result<Vec<_>, _>>()
            .ctx("read", "alert_changes")?;
        Ok(Some(changes))
    }

    /// What the store knows of an alert's place, active or not: its rule,
    /// district and cell, and whether it is active.
    pub fn alert_place(&self, alert_id: &str) -> Result<Option<AlertPlace>, StoreError> {
        let conn = self.conn();
        conn.prepare_cached(
            "SELECT rule, district, cell, active FROM alert_latest WHERE alert_id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([alert_id], |r| {
                Ok(AlertPlace {
                    rule: r.get(0)?,
                    district: r.get(1)?,
                    cell: r.get(2)?,
                    active: r.get(3)?,
                })
            })
            .optional()
        })
        .ctx("read", "alert_latest")
    }

    /// Every recorded change of one alert, oldest first (as far as the
    /// history is kept).
    pub fn changes_of(
        &self,
        alert_id: &str,
        limit: usize,
    ) -> Result<Vec<StoredChange>, StoreError> {
        let conn = self.conn();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM alert_changes c WHERE c.alert_id = ?1
             ORDER BY c.seq DESC LIMIT ?2"
        );
        let mut stmt = conn.prepare_cached(&sql).ctx("query", "alert_changes")?;
        let rows = stmt
            .query_map(params![alert_id, limit], change_from_row)
            .ctx("query", "alert_changes")?;
        let mut changes = rows
            .collect::<Result<Vec<_>, _>>()
            .ctx("read", "alert_changes")?;
        changes.reverse();
        Ok(changes)
    }

    /// Raises and clears recorded at engine-clock times in `[since,
    /// until)`, counted per `step`-long bucket and district (`None` for
    /// alerts without one): `(bucket start, district, raised, cleared)`.
    pub fn change_counts(
        &self,
        since: u64,
        until: u64,
        step: u64,
    ) -> Result<Vec<ChangeCount>, StoreError> {
        let conn = self.conn();
        let step_sql = to_sql(step.max(1)).ctx("count", "alert_changes")?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT (time / ?3) * ?3 AS bucket, district,
                        SUM(kind = 'raised'), SUM(kind = 'cleared')
                 FROM alert_changes
                 WHERE time >= ?1 AND time < ?2 AND kind IN ('raised', 'cleared')
                 GROUP BY bucket, district ORDER BY bucket",
            )
            .ctx("count", "alert_changes")?;
        let rows = stmt
            .query_map(
                params![
                    to_sql(since).ctx("count", "alert_changes")?,
                    to_sql(until).ctx("count", "alert_changes")?,
                    step_sql
                ],
                |r| Ok((get_u64(r, 0)?, r.get(1)?, get_u64(r, 2)?, get_u64(r, 3)?)),
            )
            .ctx("count", "alert_changes")?;
        rows.collect::<Result<Vec<_>, _>>()
            .ctx("read", "alert_changes")
    }

    /// The latest change of every alert whose latest change is not a
    /// clear: the active set as of the last recorded change, by seq.
    pub fn active_alerts(&self) -> Result<Vec<StoredChange>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM alert_latest l JOIN alert_changes c ON c.seq = l.seq
             WHERE l.active = 1 ORDER BY c.seq"
        );
        let mut stmt = conn.prepare_cached(&sql).ctx("query", "alert_latest")?;
        let rows = stmt
            .query_map([], change_from_row)
            .ctx("query", "alert_latest")?;
        rows.collect::<Result<Vec<_>, _>>()
            .ctx("read", "alert_changes")
    }

    /// Deletes changes older than `keep_after_time`, except the latest
    /// change of every active alert (the active set must survive a
    /// restart). Returns how many rows went. Afterwards
    /// [`Store::changes_since`] answers `None` for a `seq` before the
    /// newest deleted change.
    pub fn trim_changes(&self, keep_after_time: u64) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("begin", "alert_changes")?;
        let before = to_sql(keep_after_time).ctx("trim", "alert_changes")?;
        const DOOMED: &str = "FROM alert_changes WHERE time < ?1
             AND seq NOT IN (SELECT seq FROM alert_latest WHERE active = 1)";
        let newest_doomed: Option<i64> = tx
            .query_row(&format!("SELECT MAX(seq) {DOOMED}"), [before], |r| r.get(0))
            .optional()
            .ctx("trim", "alert_changes")?
            .flatten();
        let Some(newest_doomed) = newest_doomed else {
            return Ok(0);
        };
        let deleted = tx
            .execute(&format!("DELETE {DOOMED}"), [before])
            .ctx("trim", "alert_changes")?;
        let newest_doomed = u64::try_from(newest_doomed)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, newest_doomed))
            .ctx("trim", "alert_changes")?;
        let trimmed = meta_tx(&tx, "trimmed_through_seq")?.max(newest_doomed);
        set_meta_tx(&tx, "trimmed_through_seq", trimmed)?;
        tx.commit().ctx("commit", "alert_changes")?;
        Ok(deleted)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::store::StoreConfig;

    /// A change as the alert book would record it.
    pub fn change(seq: u64, time: u64, kind: ChangeKind, alert_id: &str) -> StoredChange {
        StoredChange {
            seq,
            time,
            kind,
            alert_id: alert_id.to_string(),
            rule: "underpass_flooding".into(),
            key: "5050".into(),
            severity: "red".into(),
            district: Some("110105".into()),
            cell: Some(5050),
            alert_json: format!(r#"{{"id":"{alert_id}","seq":{seq}}}"#),
        }
    }

    fn store() -> Store {
        Store::open_in_memory(StoreConfig::default()).unwrap()
    }

    fn seqs(changes: &[StoredChange]) -> Vec<u64> {
        changes.iter().map(|c| c.seq).collect()
    }

    use ChangeKind::{Cleared, Raised, Updated};

    #[test]
    fn changes_round_trip_and_catch_up_from_a_seq() {
        let s = store();
        assert_eq!(s.last_seq().unwrap(), 0);
        let all = vec![
            change(1, 1000, Raised, "a"),
            change(2, 2000, Raised, "b"),
            change(3, 3000, Updated, "a"),
            change(4, 4000, Cleared, "b"),
        ];
        s.record_changes(&all[..2]).unwrap();
        s.record_changes(&all[2..]).unwrap();
        assert_eq!(s.last_seq().unwrap(), 4);
        assert_eq!(s.changes_since(0, 100).unwrap().unwrap(), all);
        assert_eq!(seqs(&s.changes_since(2, 100).unwrap().unwrap()), [3, 4]);
        assert_eq!(seqs(&s.changes_since(1, 2).unwrap().unwrap()), [2, 3]);
        assert_eq!(s.changes_since(4, 100).unwrap().unwrap(), vec![]);
        assert_eq!(s.changes_since(5, 100).unwrap(), None, "ahead of the store");
    }

    #[test]
    fn sequence_numbers_must_increase() {
        let s = store();
        s.record_changes(&[change(5, 1000, Raised, "a")]).unwrap();
        let err = s
            .record_changes(&[change(6, 1000, Updated, "a"), change(5, 1000, Cleared, "a")])
            .unwrap_err();
        assert!(
            matches!(err, StoreError::SeqNotIncreasing { seq: 5, last: 6 }),
            "{err}"
        );
        // The failed transaction recorded nothing.
        assert_eq!(s.last_seq().unwrap(), 5);
    }

    #[test]
    fn active_alerts_are_the_latest_uncleared_changes() {
        let s = store();
        s.record_changes(&[
            change(1, 1000, Raised, "a"),
            change(2, 1000, Raised, "b"),
            change(3, 2000, Updated, "a"),
            change(4, 3000, Cleared, "b"),
            change(5, 4000, Raised, "c"),
            change(6, 5000, Cleared, "c"),
            change(7, 6000, Raised, "c"),
        ])
        .unwrap();
        let active = s.active_alerts().unwrap();
        assert_eq!(seqs(&active), [3, 7]);
        assert_eq!(active[0].alert_id, "a");
        assert_eq!(active[0].kind, Updated);
    }

    #[test]
    fn trimming_keeps_active_alerts_and_refuses_stale_catch_up() {
        let s = store();
        s.record_changes(&[
            change(1, 1000, Raised, "a"), // active throughout: kept
            change(2, 2000, Raised, "b"),
            change(3, 3000, Cleared, "b"),
            change(4, 4000, Raised, "c"),
            change(5, 9000, Updated, "c"),
        ])
        .unwrap();
        assert_eq!(s.trim_changes(5000).unwrap(), 3, "2, 3 and 4 go");
        assert_eq!(seqs(&s.active_alerts().unwrap()), [1, 5]);
        assert_eq!(s.changes_since(1, 10).unwrap(), None);
        assert_eq!(s.changes_since(3, 10).unwrap(), None);
        assert_eq!(seqs(&s.changes_since(4, 10).unwrap().unwrap()), [5]);
        assert_eq!(s.trim_changes(5000).unwrap(), 0);
        // Trimming everything still remembers where numbering stands.
        s.record_changes(&[
            change(6, 10_000, Cleared, "a"),
            change(7, 10_000, Cleared, "c"),
        ])
        .unwrap();
        s.trim_changes(u64::MAX >> 1).unwrap();
        assert_eq!(s.last_seq().unwrap(), 7);
        assert_eq!(s.changes_since(7, 10).unwrap().unwrap(), vec![]);
        assert_eq!(s.changes_since(6, 10).unwrap(), None);
    }
}
