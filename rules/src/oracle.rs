//! A deliberately simple batch evaluator of the rule semantics: the oracle
//! that the incremental engine is tested against.
//!
//! It knows nothing of timely or differential. Given rules, reference data
//! and a finite script of arrivals and clock moves, it recomputes every
//! rule's facts from scratch at every instant where anything could change,
//! straight from the documented semantics (`docs/rules.md`):
//!
//! * events arriving while the clock reads `c` take effect at `c + 1`;
//! * a sliding window `W` holds an event from its arrival (or, if it
//!   arrives before its time, from `ts` rounded up to the resolution) until
//!   `ts + W` rounded up to the window's step (`every`, or `W / 60`, at
//!   least the resolution);
//! * a tumbling window `W` reports window `k = ts / W` from `(k+1)·W` until
//!   `(k+2)·W` (and a late event from its arrival);
//! * places resolve to cells, cells to districts, through the reference data
//!   in force at each instant; a term `within k rings` also counts events in
//!   the cells around the key's cell;
//! * a key's **facts** at an instant are its terms' values; a key with no
//!   contribution in any term has none;
//! * without a hold, a clear condition or a sequence, an alert is active
//!   exactly while its key has facts and the condition is true. Otherwise
//!   each key runs the state machine in [`step`], in time order, including
//!   the instants at which a hold duration expires;
//! * an alert whose values change but not its severity shows the change
//!   only once the update interval has passed since its row last changed,
//!   with the values current then; raises, clears and changes of severity
//!   show at once;
//! * an alert of a rule inhibited by another is suppressed while that
//!   rule's (own, uninhibited) alert is active on the same key or, for a
//!   cell, on the district that contains the cell.
//!
//! It is quadratic and meant for tests of hundreds of events.

use crate::event::{Body, Event, Location};
use crate::plan::{
    distinct_token, sliding_step, term_input, AggFn, GroupBy, RulePlan, Severity, Term, TermStats,
    Window,
};
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
    Segment(String),
    Sensor(String),
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

/// The facts of one key at one instant.
#[derive(Clone, Debug, PartialEq)]
struct Facts {
    values: Vec<Option<f64>>,
    stats: Vec<TermStats>,
}

/// Per-key state of a temporal rule.
#[derive(Clone, Debug, Default)]
struct KeyState {
    /// Since when the raise condition has held without a break.
    run_start: Option<Millis>,
    /// Whether that run may raise (a sequence's A was in its window when it began).
    run_ok: bool,
    active: bool,
}

/// Advances a key's state machine to instant `now` with the key's facts
/// (`None`: the key has no data). Returns whether the alert is active.
///
/// 1. The run: while the raise condition holds the run continues; it
///    starts when the condition becomes true (and, for `after`, is only good
///    if the sequence's A term is non-empty at that moment); it ends when the
///    condition stops holding.
/// 2. An active alert clears when the key has no data left, or when the
///    clear condition is true (hysteresis), or — without a clear condition —
///    when the run ends.
/// 3. An inactive alert is raised when a good run has lasted the hold
///    duration.
fn step(rule: &RulePlan, state: &mut KeyState, now: Millis, facts: Option<&Facts>) -> bool {
    let raise = facts.is_some_and(|f| rule.condition.eval_terms(&f.values).truth() == Some(true));
    if raise {
        if state.run_start.is_none() {
            state.run_start = Some(now);
            state.run_ok = match rule.after {
                Some(a) => {
                    facts.is_some_and(|f| f.values.get(a).copied().flatten().unwrap_or(0.0) >= 1.0)
                }
                None => true,
            };
        }
    } else {
        state.run_start = None;
        state.run_ok = false;
    }
    if state.active {
        let clear = match (facts, &rule.clear) {
            (None, _) => true,
            (Some(f), Some(c)) => c.eval_terms(&f.values).truth() == Some(true),
            (Some(_), None) => state.run_start.is_none(),
        };
        if clear {
            state.active = false;
        }
    }
    if !state.active {
        if let Some(s) = state.run_start {
            if state.run_ok && now - s >= rule.hold_ms {
                state.active = true;
            }
        }
    }
    state.active
}

/// Runs a scenario and returns every change of every rule's alerts at the
/// instants up to and including the final clock, in time order (and by rule
/// and key within a time).
pub fn evaluate(
    rules: &[RulePlan],
    initial: &Reference,
    steps: &[Step],
    resolution_ms: Millis,
    update_interval_ms: Millis,
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

    // Every instant at which some input to some rule can change; hold
    // expiries are added as they are discovered.
    let mut instants: BTreeSet<Millis> = BTreeSet::new();
    for a in &arrivals {
        instants.insert(a.effective);
        for rule in rules {
            for term in &rule.terms {
                let (start, end) = interval(term, a.event.ts, resolution);
                instants.insert(entry(term, start, a.effective, resolution));
                instants.insert(end);
            }
        }
    }
    instants.extend(ref_changes.iter().map(|(t, _)| *t));

    let mut states: Vec<BTreeMap<OracleKey, KeyState>> = vec![BTreeMap::new(); rules.len()];
    // What each rule shows per key, and since when (value-only updates
    // wait for the update interval).
    let mut shown: Vec<BTreeMap<OracleKey, (OracleRow, Millis)>> =
        vec![BTreeMap::new(); rules.len()];
    let mut previous: BTreeMap<(String, OracleKey), OracleRow> = BTreeMap::new();
    let mut changes = Vec::new();
    while let Some(now) = instants.pop_first() {
        if now > clock {
            break;
        }
        let reference = reference_at(initial, &ref_changes, now);
        // Each rule's own alerts, before inhibition.
        let mut own: Vec<BTreeMap<OracleKey, OracleRow>> = Vec::with_capacity(rules.len());
        for (r, rule) in rules.iter().enumerate() {
            let facts = facts_at(rule, &arrivals, &reference, now, resolution);
            let mut active = BTreeMap::new();
            if rule.is_temporal() {
                let keys: BTreeSet<OracleKey> =
                    facts.keys().chain(states[r].keys()).cloned().collect();
                for key in keys {
                    let f = facts.get(&key);
                    let state = states[r].entry(key.clone()).or_default();
                    if step(rule, state, now, f) {
                        if let Some(f) = f {
                            active.insert(key.clone(), row(rule, f));
                        }
                    } else if let (Some(s), true) = (state.run_start, state.run_ok) {
                        // A hold that has not expired yet: look again when it does.
                        if s + rule.hold_ms > now {
                            instants.insert(s + rule.hold_ms);
                        }
                    }
                    if state.run_start.is_none() && !state.active {
                        states[r].remove(&key);
                    }
                }
            } else {
                for (key, f) in &facts {
                    if rule.condition.eval_terms(&f.values).truth() == Some(true) {
                        active.insert(key.clone(), row(rule, f));
                    }
                }
            }
            own.push(coalesce(
                &mut shown[r],
                active,
                now,
                update_interval_ms,
                &mut instants,
            ));
        }
        let mut current: BTreeMap<(String, OracleKey), OracleRow> = BTreeMap::new();
        for (r, rule) in rules.iter().enumerate() {
            for (key, row) in &own[r] {
                let district = containing_district(key, &reference);
                let inhibited = rule.inhibited_by.iter().any(|name| {
                    rules.iter().zip(&own).any(|(other, alerts)| {
                        &other.name == name
                            && (alerts.contains_key(key)
                                || district.as_ref().is_some_and(|d| alerts.contains_key(d)))
                    })
                });
                if !inhibited {
                    current.insert((rule.name.clone(), key.clone()), row.clone());
                }
            }
        }
        let first_of_instant = changes.len();
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

/// What a rule shows at `now`, given what it computes (`active`): a raise,
/// a clear or a change of severity shows at once; a change of values only
/// shows once `interval` has passed since the key's row last changed, with
/// the values current then (and `now` is looked at again when it has).
fn coalesce(
    shown: &mut BTreeMap<OracleKey, (OracleRow, Millis)>,
    active: BTreeMap<OracleKey, OracleRow>,
    now: Millis,
    interval: Millis,
    instants: &mut BTreeSet<Millis>,
) -> BTreeMap<OracleKey, OracleRow> {
    shown.retain(|key, _| active.contains_key(key));
    for (key, row) in active {
        match shown.get_mut(&key) {
            None => {
                shown.insert(key, (row, now));
            }
            Some((old, since)) => {
                if *old == row {
                    continue;
                }
                let due = *since + interval;
                if old.severity != row.severity || now >= due {
                    *old = row;
                    *since = now;
                } else {
                    instants.insert(due);
                }
            }
        }
    }
    shown
        .iter()
        .map(|(key, (row, _))| (key.clone(), row.clone()))
        .collect()
}

fn row(rule: &RulePlan, f: &Facts) -> OracleRow {
    OracleRow {
        severity: rule.severity_for(&f.values),
        values: f.values.clone(),
        // The time of the latest event only decides `last`; an alert does
        // not change when it alone moves.
        stats: f
            .stats
            .iter()
            .map(|s| TermStats { last_ts: 0, ..*s })
            .collect(),
    }
}

/// `[start, end)` of event time `ts` in a term's window, before arrival is
/// considered: a sliding window lets go at `ts + w` rounded up to its step.
fn interval(term: &Term, ts: Millis, resolution: Millis) -> (Millis, Millis) {
    match term.window {
        Window::Sliding(w) => {
            let step = sliding_step(w, term.every, resolution);
            (ts, (ts + w).div_ceil(step) * step)
        }
        Window::Tumbling(w) => ((ts / w + 1) * w, (ts / w + 2) * w),
    }
}

/// When an arrival starts to count in a window: see the module docs.
fn entry(term: &Term, start: Millis, effective: Millis, resolution: Millis) -> Millis {
    match term.window {
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

/// The keys an event's contribution to a term goes to.
fn keys_of(rule: &RulePlan, rings: u32, event: &Event, reference: &Reference) -> Vec<OracleKey> {
    match rule.group_by {
        GroupBy::Cell => match cell_of(event, reference) {
            Some(c) => reference
                .grid
                .neighbourhood(c, rings)
                .map(OracleKey::Cell)
                .collect(),
            None => vec![],
        },
        GroupBy::District => cell_of(event, reference)
            .and_then(|c| reference.district_of(c))
            .map(OracleKey::District)
            .into_iter()
            .collect(),
        GroupBy::Segment => match &event.body {
            Body::Traffic(t) => vec![OracleKey::Segment(t.segment_id.to_string())],
            Body::Incident(i) => i
                .segment_id
                .as_ref()
                .map(|s| OracleKey::Segment(s.to_string()))
                .into_iter()
                .collect(),
            Body::Sensor(_) => vec![],
        },
        GroupBy::Sensor => match &event.body {
            Body::Sensor(s) => vec![OracleKey::Sensor(s.sensor_id.to_string())],
            _ => vec![],
        },
    }
}

/// The district containing a key's cell, for inhibition (segment and
/// sensor keys are inhibited by their own key only).
fn containing_district(key: &OracleKey, reference: &Reference) -> Option<OracleKey> {
    match key {
        OracleKey::Cell(c) => reference.district_of(*c).map(OracleKey::District),
        _ => None,
    }
}

fn facts_at(
    rule: &RulePlan,
    arrivals: &[Arrival],
    reference: &Reference,
    now: Millis,
    resolution: Millis,
) -> BTreeMap<OracleKey, Facts> {
    let mut stats: BTreeMap<OracleKey, Vec<TermStats>> = BTreeMap::new();
    let mut tokens: BTreeMap<(OracleKey, usize), BTreeSet<u64>> = BTreeMap::new();
    for a in arrivals {
        for (i, term) in rule.terms.iter().enumerate() {
            let (start, end) = interval(term, a.event.ts, resolution);
            if !(entry(term, start, a.effective, resolution) <= now && now < end) {
                continue;
            }
            let Some(x) = term_input(term, &a.event) else {
                continue;
            };
            let token = if term.agg == AggFn::CountDistinct {
                match term
                    .value
                    .as_ref()
                    .and_then(|v| distinct_token(v.eval_event(&a.event)))
                {
                    Some(t) => Some(t),
                    None => continue,
                }
            } else {
                None
            };
            for key in keys_of(rule, term.rings, &a.event, reference) {
                let s = stats
                    .entry(key.clone())
                    .or_insert_with(|| vec![TermStats::default(); rule.terms.len()]);
                s[i].merge(&TermStats::of(x, a.event.ts));
                if let Some(t) = token {
                    tokens.entry((key, i)).or_default().insert(t);
                }
            }
        }
    }
    for ((key, i), set) in tokens {
        if let Some(s) = stats.get_mut(&key) {
            s[i].distinct = set.len() as u64;
        }
    }
    stats
        .into_iter()
        .map(|(key, stats)| {
            let values = rule
                .terms
                .iter()
                .zip(&stats)
                .map(|(t, s)| s.value(t.agg))
                .collect();
            (key, Facts { values, stats })
        })
        .collect()
}
