//! Durable state in SQLite (`DIR/jingzhi.db`): the history of alert
//! changes, incidents with their operator state and actions, silences,
//! published rule versions, the audit log, and the effectiveness figures
//! (the 评 of 汇-管-用-评) computed from them.
//!
//! The store is a library of short blocking calls on one connection behind
//! a mutex: callers in async code use `spawn_blocking` (or the publisher
//! thread, which is not async); each call is one statement or one
//! transaction. It knows alerts only as the alert book publishes them
//! ([`crate::alerts::Change`]) and must not know HTTP, the engine or the
//! event log.
//!
//! Durability: WAL journal with `synchronous=NORMAL`. A committed
//! transaction survives a process crash; a power loss can undo the last
//! transactions committed before it (the database itself stays
//! consistent). Operator actions are rare and valuable, but each one is
//! also in the audit log the service writes, and alert history can be
//! rebuilt from the event log, so the cheaper sync mode is the right trade.
//!
//! Times are milliseconds since the Unix epoch. Alert changes carry engine
//! clock times; actions, silences, rules and audit entries carry whatever
//! time the caller passes (the wall clock in live use, where the two
//! agree). Durations in [`Stats`] subtract one from the other.

mod audit;
mod changes;
mod incidents;
pub mod migrations;
mod rules;
mod silences;
mod stats;

pub use audit::AuditEntry;
pub use changes::{AlertPlace, StoredChange};
pub use incidents::{Action, ActionRecord, Comment, IncidentId, OperatorState};
pub use rules::RuleVersion;
pub use silences::{Silence, SilenceId, SilenceMatcher, StoredSilence};
pub use stats::{Durations, Effectiveness, Stats};

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The database file inside the data directory.
pub const DB_FILE: &str = "jingzhi.db";

/// Default re-open window: an alert raised again within five minutes of
/// its clear continues the same incident.
pub const DEFAULT_REOPEN_WINDOW_MS: u64 = 5 * 60 * 1000;

/// Longest free text (comments, notes, reasons) accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// How long a call waits for a lock held by another connection (a backup
/// or the `sqlite3` shell) before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Store settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// An alert raised again within this many milliseconds after its clear
    /// continues its previous incident (same id, same operator state)
    /// instead of opening a new one: a flapping condition is one incident
    /// for the operator. 0 always opens a new incident.
    pub reopen_window_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            reopen_window_ms: DEFAULT_REOPEN_WINDOW_MS,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: cannot create the data directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store: cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "store: {} has schema version {found}, but this build of jingzhi knows versions up to \
         {supported} only; run the newer jingzhi that wrote it, or restore a backup taken before \
         the upgrade",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("store: migration {version} ({name}) failed: {source}")]
    Migration {
        version: u32,
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store: {op} ({table}): {source}")]
    Sql {
        op: &'static str,
        table: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "store: alert change {seq} is not after the last recorded change {last}; the alert \
         book must continue numbering from Store::last_seq"
    )]
    SeqNotIncreasing { seq: u64, last: u64 },
    #[error("store: no incident is recorded for alert {0}")]
    UnknownAlert(String),
    #[error("store: invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
}

/// Adds the operation and table to a SQLite error.
trait Context<T> {
    fn ctx(self, op: &'static str, table: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, rusqlite::Error> {
    fn ctx(self, op: &'static str, table: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sql { op, table, source })
    }
}

/// A time or counter as SQLite stores it (a signed 64-bit integer).
fn to_sql(v: u64) -> rusqlite::Result<i64> {
    i64::try_from(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Reads a non-negative integer column; a negative value on disk is an
/// error, not a wrap-around.
fn get_u64(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

fn get_opt_u64(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    match row.get::<_, Option<i64>>(idx)? {
        None => Ok(None),
        Some(v) => u64::try_from(v)
            .map(Some)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v)),
    }
}

/// A text column holding a value outside its closed set.
fn unexpected(idx: usize, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        rusqlite::types::Type::Text,
        format!("unexpected value {value:?}").into(),
    )
}

/// Checks required free text: not blank, not too long.
fn check_text(what: &'static str, text: &str) -> Result<(), StoreError> {
    if text.trim().is_empty() {
        return Err(StoreError::Invalid {
            what,
            why: "must not be empty".into(),
        });
    }
    check_len(what, text)
}

fn check_len(what: &'static str, text: &str) -> Result<(), StoreError> {
    let n = text.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(StoreError::Invalid {
            what,
            why: format!("{n} characters, more than the limit of {MAX_TEXT_CHARS}"),
        });
    }
    Ok(())
}

/// The durable store. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    config: StoreConfig,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("config", &self.config)
            .finish()
    }
}

impl Store {
    /// Opens (or creates) `dir/jingzhi.db` with the default settings and
    /// brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, StoreConfig::default())
    }

    /// Opens (or creates) `dir/jingzhi.db`, creating `dir` if needed, and
    /// applies pending migrations. Refuses a database written by a newer
    /// schema ([`StoreError::TooNew`]).
    pub fn open_with(dir: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Store::prepare(conn, path, config)
    }

    /// A private database in memory, for tests and tools.
    pub fn open_in_memory(config: StoreConfig) -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Store::prepare(conn, path, config)
    }

    fn prepare(
        mut conn: Connection,
        path: PathBuf,
        config: StoreConfig,
    ) -> Result<Store, StoreError> {
        let opened = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(opened)?;
        // `journal_mode` answers with the mode now in force ("memory" for
        // an in-memory database, which has no WAL).
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(opened)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(opened)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(opened)?;
        migrations::apply(&mut conn, &path)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            config,
            path,
        })
    }

    /// The database file (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings the store was opened with.
    pub fn config(&self) -> StoreConfig {
        self.config
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        migrations::current_version(&self.conn()).ctx("read", "schema_migrations")
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave a half-done
        // transaction behind (rusqlite rolls back on drop), so the
        // connection is still good.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_the_directory_and_the_database_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = Store::open(&data).unwrap();
        assert!(data.join(DB_FILE).exists());
        assert_eq!(
            store.schema_version().unwrap(),
            migrations::latest_version()
        );
        let conn = store.conn();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "NORMAL");
    }

    #[test]
    fn reopening_keeps_data_and_applies_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .record_rule_version("r", "rule r {}", "张工", 1, false)
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.current_rules().unwrap().len(), 1);
        let applied: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(applied as usize, migrations::MIGRATIONS.len());
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
            [],
        )
        .unwrap();
        drop(conn);
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::TooNew { found: 999, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("schema version 999"), "{err}");
    }

    #[test]
    fn the_store_is_shareable_across_threads() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Store>();
        let store = Store::open_in_memory(StoreConfig::default()).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for j in 0..25 {
                        store
                            .audit("t", "test", &format!("{i}-{j}"), &serde_json::json!({}), j)
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(store.audit_log(0, 1000).unwrap().len(), 100);
    }
}
