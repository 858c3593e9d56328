//! `jingzhi rules backtest RULES EVENTS.ndjson`: what a rule set would have
//! raised over a recording, and with `--against OLD_RULES` what a change to
//! the rules adds, removes and changes.
//!
//! The recording is replayed through the real engine on the event clock
//! ([`crate::bench::replay_alerts`]); the replay ends at the latest event
//! time, and alerts still active then are reported as such.

use crate::bench::{self, AlertReplay, AlertReplayOptions, SeverityInterval};
use jingzhi_dataflow::Time;
use jingzhi_rules::plan::Severity;
use jingzhi_rules::space::Reference;
use jingzhi_rules::time::{format_duration, format_rfc3339};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;

/// Settings of a backtest.
#[derive(Clone, Debug)]
pub struct BacktestOptions {
    /// Rule files or directories.
    pub rules: Vec<PathBuf>,
    pub events: PathBuf,
    pub json: bool,
    /// The rules to compare with (files or directories).
    pub against: Option<Vec<PathBuf>>,
    pub workers: usize,
    pub lateness_ms: u64,
    /// Reference data; the built-in Beijing districts if absent.
    pub reference: Option<PathBuf>,
}

/// One alert over the recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlertRecord {
    pub rule: String,
    pub key: String,
    pub raised: Time,
    /// `None`: still active at the end of the recording.
    pub cleared: Option<Time>,
    /// The severity it was raised with.
    pub severity: Severity,
    /// The highest severity it reached.
    pub highest: Severity,
}

impl AlertRecord {
    /// How long it was active (up to `end` if it did not clear).
    pub fn duration(&self, end: Time) -> Time {
        self.cleared.unwrap_or(end).saturating_sub(self.raised)
    }

    /// The alert as `--json` prints it.
    pub fn json(&self, end: Time) -> serde_json::Value {
        json!({
            "rule": self.rule,
            "key": self.key,
            "raised": rfc3339(self.raised),
            "raised_ms": self.raised,
            "cleared": self.cleared.map(rfc3339),
            "cleared_ms": self.cleared,
            "severity": self.severity,
            "highest_severity": self.highest,
            "duration_ms": self.duration(end),
        })
    }
}

/// Per rule: how many alerts, how long active in total, the longest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleSummary {
    pub rule: String,
    pub alerts: usize,
    pub active_ms: Time,
    pub longest_ms: Time,
}

/// A rule set's alerts over a recording.
#[derive(Clone, Debug)]
pub struct Backtest {
    pub events: usize,
    pub rejected: usize,
    /// The latest event time.
    pub end: Time,
    /// Every rule of the set, in order.
    pub rules: Vec<String>,
    /// Sorted by raise time, then rule and key.
    pub alerts: Vec<AlertRecord>,
}

impl Backtest {
    fn from_replay(r: AlertReplay) -> Backtest {
        let names: HashMap<u32, String> = r
            .rules
            .iter()
            .map(|(id, p)| (*id, p.name.clone()))
            .collect();
        let mut alerts: Vec<AlertRecord> = r
            .intervals
            .iter()
            .map(|i: &SeverityInterval| AlertRecord {
                rule: names.get(&i.rule).cloned().unwrap_or_default(),
                key: i.key.to_string(),
                raised: i.raised,
                cleared: i.cleared,
                severity: i.severity,
                highest: i.highest,
            })
            .collect();
        alerts.sort_by(|a, b| {
            (a.raised, &a.rule, &a.key, a.cleared).cmp(&(b.raised, &b.rule, &b.key, b.cleared))
        });
        Backtest {
            events: r.events,
            rejected: r.rejected,
            end: r.end,
            rules: r.rules.iter().map(|(_, p)| p.name.clone()).collect(),
            alerts,
        }
    }

    /// Every rule's summary, in the rule set's order.
    pub fn summary(&self) -> Vec<RuleSummary> {
        self.rules
            .iter()
            .map(|rule| {
                let mine = self.alerts.iter().filter(|a| &a.rule == rule);
                let durations: Vec<Time> = mine.map(|a| a.duration(self.end)).collect();
                RuleSummary {
                    rule: rule.clone(),
                    alerts: durations.len(),
                    active_ms: durations.iter().sum(),
                    longest_ms: durations.iter().copied().max().unwrap_or(0),
                }
            })
            .collect()
    }

    /// Alerts and summary, as `--json` prints them.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "alerts": self.alerts.iter().map(|a| a.json(self.end)).collect::<Vec<_>>(),
            "summary": self.summary(),
        })
    }
}

/// What changing the rules does to the alerts over a recording.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub added: Vec<AlertRecord>,
    pub removed: Vec<AlertRecord>,
    /// (old, new): the same rule and key over overlapping times, with other
    /// raise or clear times or severities.
    pub changed: Vec<(AlertRecord, AlertRecord)>,
    pub unchanged: usize,
}

/// Matches alerts by rule name and key and overlapping intervals (each
/// alert at most once, earliest first).
pub fn diff(old: &[AlertRecord], new: &[AlertRecord]) -> Diff {
    let end_of = |a: &AlertRecord| a.cleared.unwrap_or(Time::MAX);
    let mut by_key: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, a) in old.iter().enumerate() {
        by_key.entry((&a.rule, &a.key)).or_default().push(i);
    }
    let mut used = vec![false; old.len()];
    let mut d = Diff::default();
    for n in new {
        let candidates = by_key
            .get(&(n.rule.as_str(), n.key.as_str()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let found = candidates
            .iter()
            .copied()
            .find(|&i| !used[i] && old[i].raised < end_of(n) && n.raised < end_of(&old[i]));
        match found {
            Some(i) => {
                used[i] = true;
                if old[i] == *n {
                    d.unchanged += 1;
                } else {
                    d.changed.push((old[i].clone(), n.clone()));
                }
            }
            None => d.added.push(n.clone()),
        }
    }
    d.removed = old
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(a, _)| a.clone())
        .collect();
    d
}

/// Runs a rule set (files or directories) over the recording.
pub fn backtest(
    rules: &[PathBuf],
    opts: &BacktestOptions,
    reference: &Reference,
) -> Result<Backtest, String> {
    let resolution_ms = 1000;
    let plans = bench::load_rules(rules, resolution_ms)?;
    let replay = bench::replay_alerts(
        &AlertReplayOptions {
            events: opts.events.clone(),
            workers: opts.workers,
            lateness_ms: opts.lateness_ms,
            resolution_ms,
            chunk_bytes: 1 << 20,
        },
        plans,
        reference,
    )?;
    Ok(Backtest::from_replay(replay))
}

/// RFC 3339 in UTC, without a fraction when the time is a whole second.
pub fn rfc3339(t: Time) -> String {
    let text = format_rfc3339(t);
    match text.strip_suffix(".000Z") {
        Some(whole) => format!("{whole}Z"),
        None => text,
    }
}

fn time_text(t: Option<Time>) -> String {
    t.map_or_else(|| "(active at end)".to_string(), rfc3339)
}

fn alert_lines(alerts: &[AlertRecord], prefix: &str, out: &mut String) {
    for a in alerts {
        out.push_str(&format!(
            "{prefix}{:<26} {:<26} {:<24} {:<12} {:<8} {}\n",
            rfc3339(a.raised),
            time_text(a.cleared),
            a.rule,
            a.key,
            a.severity.name(),
            a.highest.name()
        ));
    }
}

fn header(prefix: &str) -> String {
    format!(
        "{prefix}{:<26} {:<26} {:<24} {:<12} {:<8} {}\n",
        "raised", "cleared", "rule", "key", "severity", "highest"
    )
}

/// The report for people.
pub fn describe(b: &Backtest, opts: &BacktestOptions) -> String {
    let mut out = format!(
        "backtest over {}: {} events ({} rejected), up to {}; {} alert{}\n",
        opts.events.display(),
        b.events,
        b.rejected,
        rfc3339(b.end),
        b.alerts.len(),
        if b.alerts.len() == 1 { "" } else { "s" }
    );
    if !b.alerts.is_empty() {
        out.push('\n');
        out.push_str(&header(""));
        alert_lines(&b.alerts, "", &mut out);
    }
    out.push('\n');
    out.push_str(&format!(
        "{:<24} {:>7} {:>12} {:>12}\n",
        "rule", "alerts", "active", "longest"
    ));
    for s in b.summary() {
        out.push_str(&format!(
            "{:<24} {:>7} {:>12} {:>12}\n",
            s.rule,
            s.alerts,
            format_duration(s.active_ms),
            format_duration(s.longest_ms)
        ));
    }
    out
}

/// The comparison for people.
pub fn describe_diff(old: &Backtest, new: &Backtest, d: &Diff, opts: &BacktestOptions) -> String {
    let mut out = format!(
        "backtest over {}: {} events ({} rejected), up to {}\n\
         the change adds {}, removes {} and changes {} alert{}; {} unchanged ({} alerts before, {} after)\n",
        opts.events.display(),
        new.events,
        new.rejected,
        rfc3339(new.end),
        d.added.len(),
        d.removed.len(),
        d.changed.len(),
        if d.changed.len() == 1 { "" } else { "s" },
        d.unchanged,
        old.alerts.len(),
        new.alerts.len()
    );
    if !d.added.is_empty() {
        out.push_str("\nadded:\n");
        out.push_str(&header("  "));
        alert_lines(&d.added, "+ ", &mut out);
    }
    if !d.removed.is_empty() {
        out.push_str("\nremoved:\n");
        out.push_str(&header("  "));
        alert_lines(&d.removed, "- ", &mut out);
    }
    if !d.changed.is_empty() {
        out.push_str("\nchanged (old, then new):\n");
        out.push_str(&header("  "));
        for (o, n) in &d.changed {
            alert_lines(std::slice::from_ref(o), "- ", &mut out);
            alert_lines(std::slice::from_ref(n), "+ ", &mut out);
        }
    }
    let olds: BTreeMap<String, RuleSummary> = old
        .summary()
        .into_iter()
        .map(|s| (s.rule.clone(), s))
        .collect();
    let news: BTreeMap<String, RuleSummary> = new
        .summary()
        .into_iter()
        .map(|s| (s.rule.clone(), s))
        .collect();
    let mut names: Vec<&String> = olds.keys().chain(news.keys()).collect();
    names.sort();
    names.dedup();
    out.push('\n');
    out.push_str(&format!(
        "{:<24} {:>15} {:>25}\n",
        "rule", "alerts old→new", "active old→new"
    ));
    let dash = || "–".to_string();
    for name in names {
        let (o, n) = (olds.get(name), news.get(name));
        out.push_str(&format!(
            "{:<24} {:>15} {:>25}\n",
            name,
            format!(
                "{}→{}",
                o.map_or_else(dash, |s| s.alerts.to_string()),
                n.map_or_else(dash, |s| s.alerts.to_string())
            ),
            format!(
                "{}→{}",
                o.map_or_else(dash, |s| format_duration(s.active_ms)),
                n.map_or_else(dash, |s| format_duration(s.active_ms))
            ),
        ));
    }
    out
}

/// `jingzhi rules backtest`.
pub fn run(opts: &BacktestOptions) -> ExitCode {
    match run_inner(opts) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jingzhi: {}", e.trim_end());
            ExitCode::FAILURE
        }
    }
}

fn run_inner(opts: &BacktestOptions) -> Result<String, String> {
    let reference = match &opts.reference {
        Some(p) => Reference::load(p)?,
        None => crate::city::default_reference()?,
    };
    let new = backtest(&opts.rules, opts, &reference)?;
    if new.rejected > 0 {
        eprintln!(
            "jingzhi: {} line{} of {} could not be read as events and were skipped",
            new.rejected,
            if new.rejected == 1 { "" } else { "s" },
            opts.events.display()
        );
    }
    let Some(against) = &opts.against else {
        return Ok(if opts.json {
            let mut doc = new.json();
            doc["events"] = json!(new.events);
            doc["rejected"] = json!(new.rejected);
            doc["end"] = json!(rfc3339(new.end));
            doc["end_ms"] = json!(new.end);
            format!("{doc:#}\n")
        } else {
            describe(&new, opts)
        });
    };
    let old = backtest(against, opts, &reference)?;
    let d = diff(&old.alerts, &new.alerts);
    Ok(if opts.json {
        let end = new.end;
        let doc = json!({
            "events": new.events,
            "rejected": new.rejected,
            "end": rfc3339(end),
            "end_ms": end,
            "added": d.added.iter().map(|a| a.json(end)).collect::<Vec<_>>(),
            "removed": d.removed.iter().map(|a| a.json(end)).collect::<Vec<_>>(),
            "changed": d.changed.iter().map(|(o, n)| json!({"old": o.json(end), "new": n.json(end)})).collect::<Vec<_>>(),
            "unchanged": d.unchanged,
            "old": old.json(),
            "new": new.json(),
        });
        format!("{doc:#}\n")
    } else {
        describe_diff(&old, &new, &d, opts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(rule: &str, key: &str, raised: Time, cleared: Option<Time>, s: Severity) -> AlertRecord {
        AlertRecord {
            rule: rule.into(),
            key: key.into(),
            raised,
            cleared,
            severity: s,
            highest: s,
        }
    }

    #[test]
    fn diff_matches_by_rule_key_and_overlap() {
        use Severity::*;
        let old = vec![
            a("r", "1", 10, Some(20), Orange),
            a("r", "1", 30, Some(40), Orange),
            a("r", "2", 10, Some(20), Orange),
            a("q", "1", 10, None, Red),
        ];
        let new = vec![
            a("r", "1", 10, Some(20), Orange),
            a("r", "1", 35, Some(45), Orange),
            a("r", "2", 20, Some(30), Orange),
            a("q", "1", 10, None, Yellow),
        ];
        let d = diff(&old, &new);
        assert_eq!(d.unchanged, 1);
        assert_eq!(d.changed.len(), 2);
        assert_eq!(d.changed[0].1.raised, 35);
        assert_eq!(d.changed[1].1.severity, Yellow);
        // Touching is not overlapping.
        assert_eq!(d.added, vec![a("r", "2", 20, Some(30), Orange)]);
        assert_eq!(d.removed, vec![a("r", "2", 10, Some(20), Orange)]);
    }
}
