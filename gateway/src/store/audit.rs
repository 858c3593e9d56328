//! The audit log: who changed what, when — every mutating request the
//! service accepts (actions, silences, rule publishes, reference changes)
//! with a JSON detail of what was asked.

use super::{check_text, get_u64, to_sql, Context, Store, StoreError};
use rusqlite::{params, Row};
use serde::Serialize;

/// One audit entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Increasing in the order entries were written.
    pub id: i64,
    pub at: u64,
    pub actor: String,
    /// What was done, such as `alert.acknowledge` or `rule.publish`.
    pub action: String,
    /// What it was done to, such as an alert id or a rule name.
    pub target: String,
    pub detail: serde_json::Value,
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    let detail: String = row.get(5)?;
    let detail = serde_json::from_str(&detail).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(AuditEntry {
        id: row.get(0)?,
        at: get_u64(row, 1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        target: row.get(4)?,
        detail,
    })
}

impl Store {
    /// Appends an audit entry and returns its id. Actor and action must not
    /// be blank.
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &serde_json::Value,
        at: u64,
    ) -> Result<i64, StoreError> {
        check_text("audit actor", actor)?;
        check_text("audit action", action)?;
        let conn = self.conn();
        conn.prepare_cached(
            "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                to_sql(at)?,
                actor,
                action,
                target,
                detail.to_string()
            ])
        })
        .ctx("insert", "audit_log")?;
        Ok(conn.last_insert_rowid())
    }

    /// Up to `limit` entries at or after time `since`, in the order they
    /// were written.
    pub fn audit_log(&self, since: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, at, actor, action, target, detail FROM audit_log
                 WHERE at >= ?1 ORDER BY id LIMIT ?2",
            )
            .ctx("query", "audit_log")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(
                params![to_sql(since).ctx("query", "audit_log")?, limit],
                entry_from_row,
            )
            .ctx("query", "audit_log")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("read", "audit_log")
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Store, StoreConfig};
    use serde_json::json;

    #[test]
    fn entries_come_back_in_order_from_a_time() {
        let s = Store::open_in_memory(StoreConfig::default()).unwrap();
        let detail = json!({"action": "assign", "to": "朝阳分局"});
        let first = s
            .audit("王五", "alert.assign", "5f1c0a3e9b7d2c41", &detail, 1_000)
            .unwrap();
        s.audit(
            "张工",
            "rule.publish",
            "underpass_flooding",
            &json!({"version": 2}),
            2_000,
        )
        .unwrap();
        s.audit("admin", "silence.create", "3", &json!(null), 3_000)
            .unwrap();
        let all = s.audit_log(0, 10).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].id, first);
        assert_eq!(all[0].detail, detail);
        assert_eq!(all[0].actor, "王五");
        let later = s.audit_log(2_000, 10).unwrap();
        let actions: Vec<&str> = later.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["rule.publish", "silence.create"]);
        assert_eq!(s.audit_log(0, 1).unwrap().len(), 1);
        assert!(s.audit("", "x", "y", &json!({}), 1).is_err());
    }
}
