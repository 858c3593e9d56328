//! Published rule versions: every publish and delete of a rule with its
//! full source, who did it and when, so the installed rule set can be
//! restored after a restart and any past version read back.

use super::{check_text, get_u64, to_sql, Context, Store, StoreError};
use rusqlite::{params, Row, TransactionBehavior};
use serde::Serialize;

/// One version of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleVersion {
    pub name: String,
    /// 1, 2, 3, … per rule name.
    pub version: u32,
    /// The rule's text as published (empty for a deletion).
    pub source: String,
    pub published_by: String,
    pub published_at: u64,
    /// This version removes the rule.
    pub deleted: bool,
}

fn version_from_row(row: &Row<'_>) -> rusqlite::Result<RuleVersion> {
    Ok(RuleVersion {
        name: row.get(0)?,
        version: row.get(1)?,
        source: row.get(2)?,
        published_by: row.get(3)?,
        published_at: get_u64(row, 4)?,
        deleted: row.get(5)?,
    })
}

impl Store {
    /// Records a publish (or, with `deleted`, a removal) of rule `name` and
    /// returns its version number, one more than the rule's last.
    pub fn record_rule_version(
        &self,
        name: &str,
        source: &str,
        published_by: &str,
        at: u64,
        deleted: bool,
    ) -> Result<u32, StoreError> {
        check_text("rule name", name)?;
        check_text("publisher", published_by)?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("begin", "rule_versions")?;
        let version: u32 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM rule_versions WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .ctx("number", "rule_versions")?;
        tx.execute(
            "INSERT INTO rule_versions (name, version, source, published_by, published_at, deleted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                name,
                version,
                source,
                published_by,
                to_sql(at).ctx("insert", "rule_versions")?,
                deleted
            ],
        )
        .ctx("insert", "rule_versions")?;
        tx.commit().ctx("commit", "rule_versions")?;
        Ok(version)
    }

    /// Every version of rule `name`, oldest first.
    pub fn rule_versions(&self, name: &str) -> Result<Vec<RuleVersion>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT name, version, source, published_by, published_at, deleted
                 FROM rule_versions WHERE name = ?1 ORDER BY version",
            )
            .ctx("query", "rule_versions")?;
        let rows = stmt
            .query_map([name], version_from_row)
            .ctx("query", "rule_versions")?;
        rows.collect::<Result<Vec<_>, _>>()
            .ctx("read", "rule_versions")
    }

    /// Every version of every rule, by name, oldest first.
    pub fn all_rule_versions(&self) -> Result<Vec<RuleVersion>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT name, version, source, published_by, published_at, deleted
                 FROM rule_versions ORDER BY name, version",
            )
            .ctx("query", "rule_versions")?;
        let rows = stmt
            .query_map([], version_from_row)
            .ctx("query", "rule_versions")?;
        rows.collect::<Result<Vec<_>, _>>()
            .ctx("read", "rule_versions")
    }

    /// The rules to install: for every name whose latest version is not a
    /// deletion, `(name, version, source)`, by name.
    pub fn current_rules(&self) -> Result<Vec<(String, u32, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT r.name, r.version, r.source FROM rule_versions r
                 JOIN (SELECT name, MAX(version) AS version FROM rule_versions GROUP BY name) l
                   ON r.name = l.name AND r.version = l.version
                 WHERE r.deleted = 0 ORDER BY r.name",
            )
            .ctx("query", "rule_versions")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .ctx("query", "rule_versions")?;
        rows.collect::<Result<Vec<_>, _>>()
            .ctx("read", "rule_versions")
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Store, StoreConfig};

    #[test]
    fn versions_count_up_per_rule_and_deletions_hide_a_rule() {
        let s = Store::open_in_memory(StoreConfig::default()).unwrap();
        assert_eq!(
            s.record_rule_version("flood", "rule flood v1", "张工", 10, false)
                .unwrap(),
            1
        );
        assert_eq!(
            s.record_rule_version("fire", "rule fire v1", "张工", 11, false)
                .unwrap(),
            1
        );
        assert_eq!(
            s.record_rule_version("flood", "rule flood v2", "李工", 12, false)
                .unwrap(),
            2
        );
        assert_eq!(
            s.current_rules().unwrap(),
            vec![
                ("fire".to_string(), 1, "rule fire v1".to_string()),
                ("flood".to_string(), 2, "rule flood v2".to_string()),
            ]
        );
        assert_eq!(
            s.record_rule_version("fire", "", "李工", 13, true).unwrap(),
            2
        );
        let current = s.current_rules().unwrap();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].0, "flood");
        // Publishing again after a deletion brings it back.
        assert_eq!(
            s.record_rule_version("fire", "rule fire v3", "张工", 14, false)
                .unwrap(),
            3
        );
        assert_eq!(s.current_rules().unwrap().len(), 2);
        let history = s.rule_versions("fire").unwrap();
        let summary: Vec<(u32, bool, &str)> = history
            .iter()
            .map(|v| (v.version, v.deleted, v.published_by.as_str()))
            .collect();
        assert_eq!(
            summary,
            [(1, false, "张工"), (2, true, "李工"), (3, false, "张工")]
        );
        assert_eq!(history[2].published_at, 14);
        assert!(s.rule_versions("nope").unwrap().is_empty());
        assert!(s.record_rule_version(" ", "x", "张工", 1, false).is_err());
    }
}
