//! Silences: an operator's "I know, stop telling me" for alerts of a rule,
//! a district, a cell, or any combination of them, for a while or until
//! the silenced alerts have cleared. A silence does not stop alerts from
//! being raised or recorded; the service decides what it mutes
//! (notifications, the dashboard's attention).

use super::incidents::Subject;
use super::{check_len, check_text, get_opt_u64, get_u64, to_sql, Context, Store, StoreError};
use crate::alerts::Alert;
use rusqlite::{params, Row, Transaction};
use serde::{Deserialize, Serialize};

/// Silences are numbered by the store, from 1.
pub type SilenceId = i64;

/// Which alerts a silence covers: every given field must match; at least
/// one must be given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceMatcher {
    pub rule: Option<String>,
    /// A district code such as `110105`.
    pub district: Option<String>,
    pub cell: Option<u32>,
}

impl SilenceMatcher {
    /// Matches nothing and is refused by [`Store::create_silence`].
    pub fn is_empty(&self) -> bool {
        self.rule.is_none() && self.district.is_none() && self.cell.is_none()
    }

    /// Whether an alert with this rule, district and cell is covered. An
    /// alert without a district (or cell) never matches a matcher that
    /// names one.
    pub fn matches_parts(&self, rule: &str, district: Option<&str>, cell: Option<u32>) -> bool {
        !self.is_empty()
            && self.rule.as_deref().is_none_or(|r| r == rule)
            && self.district.as_deref().is_none_or(|d| district == Some(d))
            && self.cell.is_none_or(|c| cell == Some(c))
    }
}

/// A silence as an operator asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub matcher: SilenceMatcher,
    /// When it ends. `None`: when the alerts it covers have cleared — it
    /// ends at the first clear of a covered alert after which no covered
    /// alert is active.
    pub until: Option<u64>,
    pub reason: String,
    pub created_by: String,
    pub created_at: u64,
}

impl Silence {
    /// Whether the silence covers `alert` (by its rule, district and cell).
    pub fn matches(&self, alert: &Alert) -> bool {
        self.matcher
            .matches_parts(&alert.rule, alert.district.as_deref(), alert.cell)
    }
}

/// A stored silence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredSilence {
    pub id: SilenceId,
    #[serde(flatten)]
    pub silence: Silence,
    /// When it was ended early, or ended with its alerts' clear.
    pub expired_at: Option<u64>,
}

impl StoredSilence {
    /// Whether the silence covers `alert`.
    pub fn matches(&self, alert: &Alert) -> bool {
        self.silence.matches(alert)
    }

    /// Whether it is in force at `now`.
    pub fn is_active(&self, now: u64) -> bool {
        self.expired_at.is_none_or(|t| t > now) && self.silence.until.is_none_or(|t| t > now)
    }
}

fn silence_from_row(row: &Row<'_>) -> rusqlite::Result<StoredSilence> {
    Ok(StoredSilence {
        id: row.get(0)?,
        silence: Silence {
            matcher: SilenceMatcher {
                rule: row.get(1)?,
                district: row.get(2)?,
                cell: row.get(3)?,
            },
            until: get_opt_u64(row, 4)?,
            reason: row.get(5)?,
            created_by: row.get(6)?,
            created_at: get_u64(row, 7)?,
        },
        expired_at: get_opt_u64(row, 8)?,
    })
}

/// Ends the open-ended silences covering a just-cleared alert once no
/// active alert they cover is left (`alert_latest` is already updated).
pub(super) fn expire_open_ended_tx(
    tx: &Transaction<'_>,
    cleared: &Subject<'_>,
    at: u64,
) -> Result<usize, StoreError> {
    tx.prepare_cached(
        "UPDATE silences SET expired_at = ?4
         WHERE until IS NULL AND expired_at IS NULL
           AND (rule IS NULL OR rule = ?1)
           AND (district IS NULL OR district = ?2)
           AND (cell IS NULL OR cell = ?3)
           AND NOT EXISTS (
               SELECT 1 FROM alert_latest a WHERE a.active = 1
                 AND (silences.rule IS NULL OR a.rule = silences.rule)
                 AND (silences.district IS NULL OR a.district = silences.district)
                 AND (silences.cell IS NULL OR a.cell = silences.cell))",
    )
    .and_then(|mut s| {
        s.execute(params![
            cleared.rule,
            cleared.district,
            cleared.cell,
            to_sql(at)?
        ])
    })
    .ctx("expire open-ended", "silences")
}

impl Store {
    /// Stores a silence and returns its id. The matcher must name at least
    /// one of rule, district and cell; reason and creator must not be
    /// blank; an end must come after the start.
    pub fn create_silence(&self, silence: &Silence) -> Result<SilenceId, StoreError> {
        if silence.matcher.is_empty() {
            return Err(StoreError::Invalid {
                what: "silence",
                why: "name a rule, a district or a cell (or several)".into(),
            });
        }
        check_text("silence reason", &silence.reason)?;
        check_text("silence creator", &silence.created_by)?;
        for text in [&silence.matcher.rule, &silence.matcher.district]
            .into_iter()
            .flatten()
        {
            check_len("silence matcher", text)?;
        }
        if silence
            .until
            .is_some_and(|until| until <= silence.created_at)
        {
            return Err(StoreError::Invalid {
                what: "silence",
                why: "it would end before it starts".into(),
            });
        }
        let conn = self.conn();
        let m = &silence.matcher;
        let until = silence
            .until
            .map(to_sql)
            .transpose()
            .ctx("insert", "silences")?;
        conn.prepare_cached(
            "INSERT INTO silences (rule, district, cell, until, reason, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut s| {
            s.execute(params![
                m.rule,
                m.district,
                m.cell,
                until,
                silence.reason,
                silence.created_by,
                to_sql(silence.created_at)?
            ])
        })
        .ctx("insert", "silences")?;
        Ok(conn.last_insert_rowid())
    }

    /// Ends a silence at `at`. Returns false if there is no such silence
    /// or it had already ended by then.
    pub fn expire_silence(&self, id: SilenceId, at: u64) -> Result<bool, StoreError> {
        let conn = self.conn();
        let n = conn
            .prepare_cached(
                "UPDATE silences SET expired_at = ?2
                 WHERE id = ?1 AND (expired_at IS NULL OR expired_at > ?2)
                   AND (until IS NULL OR until > ?2)",
            )
            .and_then(|mut s| s.execute(params![id, to_sql(at)?]))
            .ctx("expire", "silences")?;
        Ok(n > 0)
    }

    /// One silence, in force or not.
    pub fn silence(&self, id: SilenceId) -> Result<Option<StoredSilence>, StoreError> {
        use rusqlite::OptionalExtension;
        let conn = self.conn();
        conn.prepare_cached(
            "SELECT id, rule, district, cell, until, reason, created_by, created_at, expired_at
             FROM silences WHERE id = ?1",
        )
        .and_then(|mut s| s.query_row([id], silence_from_row).optional())
        .ctx("read", "silences")
    }

    /// The silences in force at `now`, oldest first.
    pub fn active_silences(&self, now: u64) -> Result<Vec<StoredSilence>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, rule, district, cell, until, reason, created_by, created_at, expired_at
                 FROM silences
                 WHERE (expired_at IS NULL OR expired_at > ?1) AND (until IS NULL OR until > ?1)
                 ORDER BY id",
            )
            .ctx("query", "silences")?;
        let rows = stmt
            .query_map([to_sql(now).ctx("query", "silences")?], silence_from_row)
            .ctx("query", "silences")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("read", "silences")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::ChangeKind::{Cleared, Raised};
    use crate::store::changes::tests::change;
    use crate::store::StoreConfig;

    fn matcher(rule: Option<&str>, district: Option<&str>, cell: Option<u32>) -> SilenceMatcher {
        SilenceMatcher {
            rule: rule.map(str::to_string),
            district: district.map(str::to_string),
            cell,
        }
    }

    fn silence(m: SilenceMatcher, until: Option<u64>) -> Silence {
        Silence {
            matcher: m,
            until,
            reason: "施工占道，已知情况".into(),
            created_by: "王五".into(),
            created_at: 1_000,
        }
    }

    #[test]
    fn matchers_need_every_given_field() {
        let m = matcher(Some("underpass_flooding"), Some("110105"), None);
        assert!(m.matches_parts("underpass_flooding", Some("110105"), Some(5050)));
        assert!(!m.matches_parts("underpass_flooding", Some("110108"), Some(5050)));
        assert!(!m.matches_parts("heavy_rain", Some("110105"), Some(5050)));
        assert!(!m.matches_parts("underpass_flooding", None, Some(5050)));
        let by_cell = matcher(None, None, Some(5050));
        assert!(by_cell.matches_parts("any", None, Some(5050)));
        assert!(!by_cell.matches_parts("any", Some("110105"), None));
        assert!(!SilenceMatcher::default().matches_parts("any", Some("110105"), Some(5050)));
    }

    #[test]
    fn silences_are_active_until_their_end_or_expiry() {
        let s = Store::open_in_memory(StoreConfig::default()).unwrap();
        let timed = s
            .create_silence(&silence(matcher(Some("r"), None, None), Some(5_000)))
            .unwrap();
        let open = s
            .create_silence(&silence(matcher(None, Some("110105"), None), None))
            .unwrap();
        let ids = |now| -> Vec<SilenceId> {
            s.active_silences(now)
                .unwrap()
                .iter()
                .map(|x| x.id)
                .collect()
        };
        assert_eq!(ids(2_000), [timed, open]);
        assert_eq!(ids(5_000), [open]);
        assert!(s.expire_silence(open, 3_000).unwrap());
        assert!(!s.expire_silence(open, 4_000).unwrap(), "already ended");
        assert!(!s.expire_silence(999, 4_000).unwrap());
        assert_eq!(ids(2_999), [timed, open]);
        assert_eq!(ids(3_000), [timed]);
        let stored = &s.active_silences(2_000).unwrap()[1];
        assert_eq!(stored.expired_at, Some(3_000));
        assert!(stored.is_active(2_999) && !stored.is_active(3_000));
    }

    #[test]
    fn an_open_ended_silence_ends_when_its_last_alert_clears() {
        let s = Store::open_in_memory(StoreConfig::default()).unwrap();
        // `change` makes alerts of rule underpass_flooding in 110105, cell 5050.
        s.record_changes(&[change(1, 1_000, Raised, "a"), change(2, 1_000, Raised, "b")])
            .unwrap();
        let by_district = s
            .create_silence(&silence(matcher(None, Some("110105"), None), None))
            .unwrap();
        let elsewhere = s
            .create_silence(&silence(matcher(None, Some("110108"), None), None))
            .unwrap();
        let timed = s
            .create_silence(&silence(
                matcher(Some("underpass_flooding"), None, None),
                Some(99_000),
            ))
            .unwrap();
        s.record_changes(&[change(3, 2_000, Cleared, "a")]).unwrap();
        let ids: Vec<SilenceId> = s
            .active_silences(2_500)
            .unwrap()
            .iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(ids, [by_district, elsewhere, timed], "b is still active");
        s.record_changes(&[change(4, 3_000, Cleared, "b")]).unwrap();
        let ids: Vec<SilenceId> = s
            .active_silences(3_500)
            .unwrap()
            .iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(ids, [elsewhere, timed]);
    }

    #[test]
    fn invalid_silences_are_refused() {
        let s = Store::open_in_memory(StoreConfig::default()).unwrap();
        let mut bad = silence(SilenceMatcher::default(), None);
        assert!(matches!(
            s.create_silence(&bad),
            Err(StoreError::Invalid { .. })
        ));
        bad.matcher.cell = Some(1);
        bad.reason = " ".into();
        assert!(matches!(
            s.create_silence(&bad),
            Err(StoreError::Invalid { .. })
        ));
        bad.reason = "r".into();
        bad.until = Some(bad.created_at);
        assert!(matches!(
            s.create_silence(&bad),
            Err(StoreError::Invalid { .. })
        ));
    }

    #[test]
    fn silences_read_and_write_as_json() {
        let silence: Silence = serde_json::from_str(
            r#"{"matcher":{"rule":"underpass_flooding","cell":5050},"until":null,
                "reason":"已派人处置","created_by":"王五","created_at":1}"#,
        )
        .unwrap();
        assert_eq!(
            silence.matcher,
            matcher(Some("underpass_flooding"), None, Some(5050))
        );
    }
}
