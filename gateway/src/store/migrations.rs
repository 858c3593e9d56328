//! The schema, as numbered migrations applied in order, each in its own
//! transaction, and recorded in `schema_migrations`.
//!
//! Migrations are append-only: a released migration is never edited; a
//! change to the schema is a new, higher-numbered migration. A database
//! whose recorded version is higher than the last one here was written by
//! a newer build and is refused rather than misread.

use super::{Context, StoreError};
use rusqlite::{params, Connection, TransactionBehavior};
use std::path::Path;

/// One step of the schema.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// 1, 2, 3, … without gaps.
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "alert history, incidents, actions, silences, rules, audit",
    sql: V1_INITIAL,
}];

/// The version a fully migrated database has.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const V1_INITIAL: &str = r#"
-- Counters that must survive the rows they describe being trimmed.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO store_meta (key, value) VALUES ('last_seq', 0), ('trimmed_through_seq', 0);

-- Every raise, update and clear the alert book published, by seq.
CREATE TABLE alert_changes (
    seq        INTEGER PRIMARY KEY,
    time       INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('raised', 'updated', 'cleared')),
    alert_id   TEXT NOT NULL,
    rule       TEXT NOT NULL,
    key        TEXT NOT NULL,
    severity   TEXT NOT NULL,
    district   TEXT,
    cell       INTEGER,
    alert_json TEXT NOT NULL
) STRICT;
CREATE INDEX alert_changes_time ON alert_changes (time);
CREATE INDEX alert_changes_alert ON alert_changes (alert_id, seq);

-- The latest change of every alert: the active set without scanning history.
CREATE TABLE alert_latest (
    alert_id TEXT PRIMARY KEY,
    seq      INTEGER NOT NULL,
    active   INTEGER NOT NULL CHECK (active IN (0, 1)),
    rule     TEXT NOT NULL,
    key      TEXT NOT NULL,
    district TEXT,
    cell     INTEGER
) STRICT;
CREATE INDEX alert_latest_active ON alert_latest (seq) WHERE active = 1;

-- One incident per raise of an alert (a raise soon after a clear continues
-- the previous one). Operator state is kept here, derived from `actions`.
CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id        TEXT NOT NULL,
    rule            TEXT NOT NULL,
    key             TEXT NOT NULL,
    district        TEXT,
    cell            INTEGER,
    raised_at       INTEGER NOT NULL,
    cleared_at      INTEGER,
    reopened        INTEGER NOT NULL DEFAULT 0,
    acknowledged_by TEXT,
    acknowledged_at INTEGER,
    assigned_to     TEXT,
    assigned_at     INTEGER,
    resolved_by     TEXT,
    resolved_at     INTEGER,
    false_alarm_by  TEXT,
    false_alarm_at  INTEGER,
    comment         TEXT,
    comment_by      TEXT,
    comment_at      INTEGER
) STRICT;
CREATE INDEX incidents_alert ON incidents (alert_id, id);
CREATE INDEX incidents_raised ON incidents (raised_at);

CREATE TABLE actions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    alert_id    TEXT NOT NULL,
    action      TEXT NOT NULL
                CHECK (action IN ('acknowledge', 'assign', 'comment', 'resolve', 'false_alarm')),
    assignee    TEXT,
    text        TEXT,
    note        TEXT,
    actor       TEXT NOT NULL,
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX actions_incident ON actions (incident_id, id);

CREATE TABLE silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    rule       TEXT,
    district   TEXT,
    cell       INTEGER,
    until      INTEGER,
    reason     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expired_at INTEGER,
    CHECK (rule IS NOT NULL OR district IS NOT NULL OR cell IS NOT NULL)
) STRICT;

CREATE TABLE rule_versions (
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    source       TEXT NOT NULL,
    published_by TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    deleted      INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    PRIMARY KEY (name, version)
) STRICT;

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_at ON audit_log (at);
"#;

/// The highest applied version (0 for a new database).
pub(super) fn current_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )
}

/// Brings the database at `path` up to [`latest_version`].
pub(super) fn apply(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at INTEGER NOT NULL
         ) STRICT",
    )
    .ctx("create", "schema_migrations")?;
    let supported = latest_version();
    for migration in MIGRATIONS {
        // The version is checked inside the write transaction so that two
        // processes opening a new database at once do not both migrate it.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("begin migration", "schema_migrations")?;
        let found = current_version(&tx).ctx("read", "schema_migrations")?;
        if found > supported {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                supported,
            });
        }
        if found >= migration.version {
            continue;
        }
        let failed = |source| StoreError::Migration {
            version: migration.version,
            name: migration.name,
            source,
        };
        tx.execute_batch(migration.sql).map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![
                migration.version,
                migration.name,
                super::to_sql(now_ms()).map_err(failed)?
            ],
        )
        .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    // A database that is already at (or past) every version here still
    // has to be checked once: the loop above may not have run at all.
    let found = current_version(conn).ctx("read", "schema_migrations")?;
    if found > supported {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "migration {}", m.name);
        }
    }

    #[test]
    fn every_migration_applies_to_an_empty_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn, Path::new(":memory:")).unwrap();
        assert_eq!(current_version(&conn).unwrap(), latest_version());
        // Applying again is a no-op.
        apply(&mut conn, Path::new(":memory:")).unwrap();
    }

    #[test]
    fn a_failing_migration_leaves_nothing_behind() {
        let mut conn = Connection::open_in_memory().unwrap();
        // The initial schema's first table already exists: migration 1 fails.
        conn.execute_batch("CREATE TABLE store_meta (x INTEGER)")
            .unwrap();
        let err = apply(&mut conn, Path::new(":memory:")).unwrap_err();
        assert!(
            matches!(err, StoreError::Migration { version: 1, .. }),
            "{err}"
        );
        assert_eq!(current_version(&conn).unwrap(), 0);
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'alert_changes'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
    }
}
