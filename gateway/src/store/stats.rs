//! Effectiveness (the 评): how often each rule and each district raised
//! alerts, how operators answered them, how fast, and how many were false
//! alarms — computed from incidents, so a flapping alert counts once and
//! trimming the change history loses nothing here.

use super::{get_opt_u64, get_u64, to_sql, Context, Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;

/// Nearest-rank percentiles of a set of durations, in milliseconds;
/// `None` when there are none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Durations {
    pub count: u64,
    pub median_ms: Option<u64>,
    pub p90_ms: Option<u64>,
}

impl Durations {
    fn of(mut values: Vec<u64>) -> Durations {
        values.sort_unstable();
        let rank = |p: f64| -> Option<u64> {
            if values.is_empty() {
                return None;
            }
            let index = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
            Some(values[index])
        };
        Durations {
            count: values.len() as u64,
            median_ms: rank(0.5),
            p90_ms: rank(0.9),
        }
    }
}

/// Figures for one rule, one district, or everything.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Effectiveness {
    /// Incidents raised (a re-opened incident counts once).
    pub raised: u64,
    pub acknowledged: u64,
    pub resolved: u64,
    pub false_alarms: u64,
    /// `false_alarms / raised`; `None` when nothing was raised.
    pub false_alarm_ratio: Option<f64>,
    /// From the incident's raise to its first acknowledgement.
    pub time_to_acknowledge: Durations,
    /// From the incident's raise to its first resolution.
    pub time_to_resolve: Durations,
}

/// Effectiveness of incidents raised at or after `since`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub since: u64,
    pub total: Effectiveness,
    pub by_rule: BTreeMap<String, Effectiveness>,
    /// By district code; incidents of alerts without a district (such as
    /// segment alerts off the map) count only in `total` and `by_rule`.
    pub by_district: BTreeMap<String, Effectiveness>,
}

/// What the figures need of one incident.
struct IncidentFigures {
    rule: String,
    district: Option<String>,
    raised_at: u64,
    acknowledged_at: Option<u64>,
    resolved_at: Option<u64>,
    false_alarm: bool,
}

/// Raw figures gathered before the percentiles are taken.
#[derive(Default)]
struct Tally {
    raised: u64,
    false_alarms: u64,
    to_acknowledge: Vec<u64>,
    to_resolve: Vec<u64>,
}

impl Tally {
    fn add(&mut self, incident: &IncidentFigures) {
        self.raised += 1;
        self.false_alarms += u64::from(incident.false_alarm);
        // Actions carry the caller's clock and raises the engine's; a
        // response "before" the raise (clocks apart) counts as immediate.
        if let Some(at) = incident.acknowledged_at {
            self.to_acknowledge
                .push(at.saturating_sub(incident.raised_at));
        }
        if let Some(at) = incident.resolved_at {
            self.to_resolve.push(at.saturating_sub(incident.raised_at));
        }
    }

    fn finish(self) -> Effectiveness {
        Effectiveness {
            raised: self.raised,
            acknowledged: self.to_acknowledge.len() as u64,
            resolved: self.to_resolve.len() as u64,
            false_alarms: self.false_alarms,
            false_alarm_ratio: (self.raised > 0)
                .then(|| self.false_alarms as f64 / self.raised as f64),
            time_to_acknowledge: Durations::of(self.to_acknowledge),
            time_to_resolve: Durations::of(self.to_resolve),
        }
    }
}

impl Store {
    /// Effectiveness per rule, per district and in total, over incidents
    /// raised at or after `since`.
    pub fn stats(&self, since: u64) -> Result<Stats, StoreError> {
        let rows: Vec<IncidentFigures> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT rule, district, raised_at, acknowledged_at, resolved_at,
                            false_alarm_at IS NOT NULL
                     FROM incidents WHERE raised_at >= ?1",
                )
                .ctx("query", "incidents")?;
            let rows = stmt
                .query_map([to_sql(since).ctx("query", "incidents")?], |r| {
                    Ok(IncidentFigures {
                        rule: r.get(0)?,
                        district: r.get(1)?,
                        raised_at: get_u64(r, 2)?,
                        acknowledged_at: get_opt_u64(r, 3)?,
                        resolved_at: get_opt_u64(r, 4)?,
                        false_alarm: r.get(5)?,
                    })
                })
                .ctx("query", "incidents")?;
            rows.collect::<Result<Vec<_>, _>>()
                .ctx("read", "incidents")?
        };
        let mut total = Tally::default();
        let mut by_rule: BTreeMap<String, Tally> = BTreeMap::new();
        let mut by_district: BTreeMap<String, Tally> = BTreeMap::new();
        for incident in rows {
            total.add(&incident);
            by_rule
                .entry(incident.rule.clone())
                .or_default()
                .add(&incident);
            if let Some(district) = &incident.district {
                by_district
                    .entry(district.clone())
                    .or_default()
                    .add(&incident);
            }
        }
        Ok(Stats {
            since,
            total: total.finish(),
            by_rule: by_rule.into_iter().map(|(k, t)| (k, t.finish())).collect(),
            by_district: by_district
                .into_iter()
                .map(|(k, t)| (k, t.finish()))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::ChangeKind::{Cleared, Raised};
    use crate::store::changes::tests::change;
    use crate::store::{Action, StoreConfig, StoredChange};

    fn raise(seq: u64, time: u64, id: &str, rule: &str, district: Option<&str>) -> StoredChange {
        StoredChange {
            rule: rule.into(),
            district: district.map(str::to_string),
            ..change(seq, time, Raised, id)
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(Durations::of(vec![]), Durations::default());
        let d = Durations::of(vec![5]);
        assert_eq!((d.median_ms, d.p90_ms), (Some(5), Some(5)));
        let d = Durations::of((1..=10).rev().collect());
        assert_eq!((d.count, d.median_ms, d.p90_ms), (10, Some(5), Some(9)));
        let d = Durations::of(vec![10, 20, 30, 40]);
        assert_eq!((d.median_ms, d.p90_ms), (Some(20), Some(40)));
    }

    #[test]
    fn stats_per_rule_and_district() {
        let s = Store::open_in_memory(StoreConfig::default()).unwrap();
        let minute = 60_000;
        s.record_changes(&[
            raise(1, 0, "old", "flood", Some("110105")),
            raise(2, 10 * minute, "a", "flood", Some("110105")),
            raise(3, 10 * minute, "b", "flood", Some("110108")),
            raise(4, 10 * minute, "c", "fire", Some("110105")),
            raise(5, 10 * minute, "d", "fire", None),
        ])
        .unwrap();
        let act = |id: &str, action: Action, at: u64| {
            s.record_action(id, &action, None, "王五", at).unwrap();
        };
        act("a", Action::Acknowledge, 12 * minute); // 2 min
        act("a", Action::Resolve, 40 * minute); // 30 min
        act("b", Action::Acknowledge, 11 * minute); // 1 min
        act("b", Action::FalseAlarm, 15 * minute);
        act("c", Action::Acknowledge, 20 * minute); // 10 min
        act("d", Action::FalseAlarm, 11 * minute);
        // A flap of `a` re-opens its incident: still one raise.
        s.record_changes(&[change(6, 41 * minute, Cleared, "a")])
            .unwrap();
        s.record_changes(&[raise(7, 42 * minute, "a", "flood", Some("110105"))])
            .unwrap();

        let stats = s.stats(minute).unwrap();
        assert_eq!(stats.total.raised, 4, "`old` is before `since`");
        assert_eq!(stats.total.acknowledged, 3);
        assert_eq!(stats.total.resolved, 1);
        assert_eq!(stats.total.false_alarms, 2);
        assert_eq!(stats.total.false_alarm_ratio, Some(0.5));
        assert_eq!(stats.total.time_to_acknowledge.median_ms, Some(2 * minute));
        assert_eq!(stats.total.time_to_acknowledge.p90_ms, Some(10 * minute));
        assert_eq!(stats.total.time_to_resolve.median_ms, Some(30 * minute));

        let flood = &stats.by_rule["flood"];
        assert_eq!(
            (flood.raised, flood.acknowledged, flood.false_alarms),
            (2, 2, 1)
        );
        let fire = &stats.by_rule["fire"];
        assert_eq!(
            (fire.raised, fire.acknowledged, fire.false_alarms),
            (2, 1, 1)
        );
        assert_eq!(fire.time_to_resolve, Durations::default());

        assert_eq!(stats.by_district.len(), 2);
        let chaoyang = &stats.by_district["110105"];
        assert_eq!((chaoyang.raised, chaoyang.acknowledged), (2, 2));
        assert_eq!(chaoyang.false_alarm_ratio, Some(0.0));
        assert_eq!(stats.by_district["110108"].false_alarm_ratio, Some(1.0));

        let everything = s.stats(0).unwrap();
        assert_eq!(everything.total.raised, 5);
        assert_eq!(everything.by_district["110105"].raised, 3);
        assert_eq!(
            s.stats(u64::MAX >> 1).unwrap().total,
            Effectiveness::default()
        );
    }
}
