//! A deliberately simple batch evaluator of the rule semantics: the oracle
//! that the incremental engine is tested against.
//!
//! It knows nothing of timely or differential. Given rules, reference data
//! and a finite script of arrivals and clock moves, it recomputes every
//! rule's alerts from scratch at every instant where anything could change,
//! straight from the documented semantics (`docs/rules.md`, "Windows"):
//!
//! * events arriving while the clock reads `c` take effect at `c + 1`;
//! * a sliding window `W` holds an event from its arrival (or, if it
//!   arrives before its time, from `ts` rounded up to the resolution) until
//!   `ts + W` rounded up to the resolution;
//! * a tumbling window `W` reports window `k = ts / W` from `(k+1)·W` until
//!   `(k+2)·W` (and a late event from its arrival);
//! * places resolve to cells, and cells to districts, through the reference
//!   data in force at each instant.
//!
//! It is quadratic and meant for tests of hundreds of events.

use crate::event::{Event, Location};
use crate::plan::{term_input, GroupBy, RulePlan, Severity, TermStats, Window};
use crate::space::{CellId, Reference, ReferenceChange};
use crate::sym::Sym;
use crate::time::Millis;
use std::collections::{BTreeMap, BTreeSet};

/// One step of a scenario, in arrival order.
#[derive(Clone, Debug)]
pub enum Step {
    /// Events arriving now (effective from the next instant).
    Events(Vec<Event>),
    /// Moves the clock forward (never back).
    Advance(Millis),
    /// A reference data change (effective from the next instant).
    Reference(ReferenceChange),
}

/// What an alert is about, as the oracle names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OracleKey {
    Cell(CellId),
    District(Sym),
}

/// The value of an active alert.
#[derive(Clone, Debug, PartialEq)]
pub struct OracleRow {
    pub severity: Severity,
    pub values: Vec<Option<f64>>,
    pub stats: Vec<TermStats>,
}

/// A change in the alert set: at `time`, `(rule, key)` became `row`
/// (`None`: cleared).
#[derive(Clone, Debug, PartialEq)]
pub struct OracleChange {
    pub time: Millis,
    pub rule: String,
    pub key: OracleKey,
    pub row: Option<OracleRow>,
}

struct Arrival {
    effective: Millis,
    event: Event,
}

/// Runs a scenario and returns every change of every rule's alerts at the
/// instants up to and including the final clock, in time order (and by rule
/// and key within a time).
pub fn evaluate(
    rules: &[RulePlan],
    initial: &Reference,
    steps: &[Step],
    resolution_ms: Millis,
) -> Vec<OracleChange> {
    let resolution = resolution_ms.max(1);
    let mut clock: Millis = 0;
    let mut arrivals: Vec<Arrival> = Vec::new();
    let mut ref_changes: Vec<(Millis, ReferenceChange)> = Vec::new();
    for step in steps {
        match step {
            Step::Events(events) => arrivals.extend(events.iter().map(|e| Arrival {
                effective: clock + 1,
                event: e.clone(),
            })),
            Step::Advance(t) => clock = clock.max(*t),
            Step::Reference(c) => ref_changes.push((clock + 1, c.clone())),
        }
    }

    // Every instant at which some input to some rule can change.
    let mut instants: BTreeSet<Millis> = BTreeSet::new();
    for a in &arrivals {
        instants.insert(a.effective);
        for rule in rules {
            for term in &rule.terms {
                let (start, end) = interval(term.window, a.event.ts, resolution);
                instants.insert(entry(term.window, start, a.effective, resolution));
                instants.insert(end);
            }
        }
    }
    instants.extend(ref_changes.iter().map(|(t, _)| *t));
    let instants: Vec<Millis> = instants.into_iter().filter(|&t| t <= clock).collect();

    let mut previous: BTreeMap<(String, OracleKey), OracleRow> = BTreeMap::new();
    let mut changes = Vec::new();
    for &now in &instants {
        let first_of_instant = changes.len();
        let reference = reference_at(initial, &ref_changes, now);
        let current = alerts_at(rules, &arrivals, &reference, now, resolution);
        for (k, row) in &current {
            if previous.get(k) != Some(row) {
                changes.push(OracleChange {
                    time: now,
                    rule: k.0.clone(),
                    key: k.1.clone(),
                    row: Some(row.clone()),
                });
            }
        }
        for k in previous.keys() {
            if !current.contains_key(k) {
                changes.push(OracleChange {
                    time: now,
                    rule: k.0.clone(),
                    key: k.1.clone(),
                    row: None,
                });
            }
        }
        changes[first_of_instant..].sort_by(|a, b| (&a.rule, &a.key).cmp(&(&b.rule, &b.key)));
        previous = current;
    }
    changes
}

/// `[start, end)` of event time `ts` in a window, before arrival is considered.
fn interval(window: Window, ts: Millis, resolution: Millis) -> (Millis, Millis) {
    match window {
        Window::Sliding(w) => (ts, (ts + w).div_ceil(resolution) * resolution),
        Window::Tumbling(w) => ((ts / w + 1) * w, (ts / w + 2) * w),
    }
}

/// When an arrival starts to count in a window: see the module docs.
fn entry(window: Window, start: Millis, effective: Millis, resolution: Millis) -> Millis {
    match window {
        Window::Sliding(_) if start > effective => start.div_ceil(resolution) * resolution,
        _ => start.max(effective),
    }
}

fn reference_at(
    initial: &Reference,
    changes: &[(Millis, ReferenceChange)],
    now: Millis,
) -> Reference {
    let mut r = initial.clone();
    for (t, c) in changes {
        if *t <= now {
            // The oracle replays what the service accepted; a change the
            // service would refuse is skipped the same way.
            let _ = r.apply(c);
        }
    }
    r
}

fn cell_of(event: &Event, reference: &Reference) -> Option<CellId> {
    match &event.location {
        Location::Cell(c) => Some(*c),
        Location::Sensor(id) => reference.sensors.get(id).map(|s| s.cell),
        Location::Segment(id) => reference.segments.get(id).map(|s| s.cell),
    }
}

fn alerts_at(
    rules: &[RulePlan],
    arrivals: &[Arrival],
    reference: &Reference,
    now: Millis,
    resolution: Millis,
) -> BTreeMap<(String, OracleKey), OracleRow> {
    let mut out = BTreeMap::new();
    for rule in rules {
        let mut per_key: BTreeMap<OracleKey, Vec<TermStats>> = BTreeMap::new();
        for a in arrivals.iter() {
            let Some(cell) = cell_of(&a.event, reference) else {
                continue;
            };
            let key = match rule.group_by {
                GroupBy::Cell => OracleKey::Cell(cell),
                GroupBy::District => match reference.district_of(cell) {
                    Some(d) => OracleKey::District(d),
                    None => continue,
                },
            };
            for (i, term) in rule.terms.iter().enumerate() {
                let (start, end) = interval(term.window, a.event.ts, resolution);
                if !(entry(term.window, start, a.effective, resolution) <= now && now < end) {
                    continue;
                }
                if let Some(x) = term_input(term, &a.event) {
                    let stats = per_key
                        .entry(key.clone())
                        .or_insert_with(|| vec![TermStats::default(); rule.terms.len()]);
                    stats[i].merge(&TermStats::of(x));
                }
            }
        }
        for (key, stats) in per_key {
            let values: Vec<Option<f64>> = rule
                .terms
                .iter()
                .zip(&stats)
                .map(|(t, s)| s.value(t.agg))
                .collect();
            if rule.condition.eval_terms(&values).truth() == Some(true) {
                out.insert(
                    (rule.name.clone(), key),
                    OracleRow {
                        severity: rule.severity,
                        values,
                        stats,
                    },
                );
            }
        }
    }
    out
}
