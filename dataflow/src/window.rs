//! The window operator: where events become differential updates.
//!
//! For every installed rule term that an event passes, the event enters the
//! term's window as an update `+1` at `max(start, arrival)` and leaves it as
//! `-1` at `end`, where `[start, end)` is the event's validity interval for
//! that window (see [`placement`]). Everything downstream — resolution of
//! places through reference data, grouping, aggregation, the condition — is
//! ordinary differential dataflow over these updates, so results retract by
//! themselves when windows pass.
//!
//! Two things make this cheap enough to run at millions of events a second:
//!
//! * **Combining.** Events of one term and place that enter and leave at the
//!   same times are merged into one [`Partial`] (count, sum, min, max) before
//!   they reach differential. A tumbling window has one interval per window,
//!   so a whole window of readings of a cell becomes one record.
//! * **Holding until due.** An update is handed downstream only when the
//!   clock reaches its time, while the operator holds a capability for it.
//!   Far-future retractions therefore wait here, in a map keyed by time,
//!   instead of being re-merged by differential's batcher at every step.
//!
//! The operator also keeps the recent events it has seen (bounded by the
//! longest window in use), so that a rule installed while running starts
//! with full windows, and it drops all of a removed rule's contributions at
//! the moment of removal.

use crate::registry::term_id;
use crate::types::{Partial, PartialKey, Place, RuleId, Scope, TermId, Time};
use differential_dataflow::{AsCollection, VecCollection};
use jingzhi_rules::event::{parse_line, Body, Event, ParseContext};
use jingzhi_rules::plan::{term_input, term_token, AggFn, GroupBy, RulePlan, Window};
use jingzhi_rules::Sym;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

/// What a worker made of an NDJSON chunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkReport {
    pub accepted: usize,
    pub rejected: usize,
    /// Largest event time accepted (0 if none).
    pub max_ts: Time,
}

/// What the window operator reads, in the order each worker received it.
#[derive(Clone, Debug)]
pub enum WindowInput {
    Event(Event),
    /// NDJSON lines to parse right here, so bulk replay moves bytes, not
    /// events, between threads.
    Ndjson {
        bytes: Vec<u8>,
        context: Arc<ParseContext>,
        reply: std::sync::mpsc::Sender<ChunkReport>,
    },
    AddRule(RuleId, Arc<RulePlan>),
    RemoveRule(RuleId),
}

/// Settings of the window operator.
#[derive(Clone, Debug)]
pub struct WindowConfig {
    /// Sliding windows' ends are rounded up to a multiple of this.
    pub resolution_ms: u64,
    /// Keep recent events so rules installed later see them.
    pub keep_history: bool,
    /// Keep at least this much history even if no rule needs it.
    pub min_history_ms: u64,
}

/// Counters one worker's window operator keeps up to date.
#[derive(Debug, Default)]
pub struct WindowStats {
    /// Partials waiting to enter their window.
    pub pending_inserts: AtomicU64,
    /// Partials in their window, waiting to leave it.
    pub pending_retracts: AtomicU64,
    /// Events kept for rules installed later.
    pub history_events: AtomicU64,
    /// Events that reached the operator.
    pub events: AtomicU64,
    /// (event, term) pairs that arrived after their window had passed.
    pub expired_contributions: AtomicU64,
}

/// When a contribution enters its window: on arrival, or — for a sliding
/// window and an event that arrives before its time (replay on the event
/// clock) — at its time rounded up to the resolution, so that a replay's
/// events share entry times and combine, as exits already do. Live events
/// (time at or before arrival) enter exactly on arrival.
pub fn entry(window: Window, start: Time, arrival: Time, resolution_ms: u64) -> Time {
    match window {
        Window::Sliding(_) if start > arrival => {
            let r = resolution_ms.max(1);
            start.div_ceil(r) * r
        }
        _ => start.max(arrival),
    }
}

/// Slices per sliding window for two-level aggregation.
const SLICES: u64 = 32;

/// A tumbling window's partials all leave together: they need no slices.
pub const WHOLE_WINDOW: u32 = u32::MAX;

/// The slice of a window that a partial leaving at `end` belongs to.
pub fn slice_of(window: Window, end: Time, resolution_ms: u64) -> u32 {
    match window {
        Window::Sliding(w) => {
            let width = (w / SLICES).max(resolution_ms).max(1);
            // Wraps after many years of slices; slices of one window stay distinct.
            ((end / width) % u64::from(WHOLE_WINDOW)) as u32
        }
        Window::Tumbling(_) => WHOLE_WINDOW,
    }
}

/// `[start, end)`: when an event with time `ts` is inside the window.
pub fn placement(window: Window, ts: Time, resolution_ms: u64) -> (Time, Time) {
    match window {
        Window::Sliding(w) => {
            let end = (ts + w).div_ceil(resolution_ms.max(1)) * resolution_ms.max(1);
            (ts, end)
        }
        Window::Tumbling(w) => {
            let k = ts / w;
            ((k + 1) * w, (k + 2) * w)
        }
    }
}

type FxMap<K, V> = jingzhi_rules::fxhash::FxHashMap<K, V>;

/// (term, scope, place, end, distinct token) — partials with equal keys
/// combine.
type CombineKey = (TermId, Scope, Place, Time, u64);

/// A shared term: computed once for all the rules that use it.
#[derive(Clone)]
struct InstalledTerm {
    id: TermId,
    scope: Scope,
    /// A plan that has the term, and where.
    plan: Arc<RulePlan>,
    term: usize,
    /// How many (rule, term) pairs use it.
    users: u32,
}

/// Where a term's contribution is keyed: the event's location for cell and
/// district groups, its segment or sensor for those groups.
fn place_for(group_by: GroupBy, event: &Event) -> Option<Place> {
    let intern = |s: &str| Sym::intern(s).ok();
    match group_by {
        GroupBy::Cell | GroupBy::District => Some(Place::from(&event.location)),
        GroupBy::Segment => match &event.body {
            Body::Traffic(t) => intern(&t.segment_id).map(Place::Segment),
            Body::Incident(i) => i.segment_id.as_deref().and_then(intern).map(Place::Segment),
            Body::Sensor(_) => None,
        },
        GroupBy::Sensor => match &event.body {
            Body::Sensor(x) => intern(&x.sensor_id).map(Place::Sensor),
            _ => None,
        },
    }
}

struct WindowState {
    config: WindowConfig,
    rules: BTreeMap<RuleId, Arc<RulePlan>>,
    terms: BTreeMap<TermId, InstalledTerm>,
    by_stream: [Vec<InstalledTerm>; 3],
    inserts: BTreeMap<Time, FxMap<CombineKey, Partial>>,
    retracts: BTreeMap<Time, Vec<(PartialKey, Partial)>>,
    /// Updates to hand over at once, whatever is pending: a removed term's
    /// partials leave at the time of the removal.
    immediate: Vec<(PartialKey, Partial, Time, isize)>,
    history: VecDeque<Event>,
    history_ms: u64,
    stats: Arc<WindowStats>,
}

impl WindowState {
    fn rebuild_index(&mut self) {
        for list in &mut self.by_stream {
            list.clear();
        }
        for t in self.terms.values() {
            self.by_stream[t.plan.terms[t.term].stream.index()].push(t.clone());
        }
        let reach = self.rules.values().map(|p| p.reach()).max().unwrap_or(0);
        self.history_ms = if self.config.keep_history {
            reach.max(self.config.min_history_ms)
        } else {
            0
        };
    }

    /// Adds what `event`, arriving at `arrival`, contributes to the given terms.
    fn place<'t>(
        inserts: &mut BTreeMap<Time, FxMap<CombineKey, Partial>>,
        terms: impl Iterator<Item = &'t InstalledTerm>,
        event: &Event,
        arrival: Time,
        resolution_ms: u64,
    ) -> u64 {
        let mut expired = 0;
        for t in terms {
            let term = &t.plan.terms[t.term];
            let Some(x) = term_input(term, event) else {
                continue;
            };
            let (start, end) = placement(term.window, event.ts, resolution_ms);
            let enter = entry(term.window, start, arrival, resolution_ms);
            if enter >= end {
                expired += 1;
                continue;
            }
            let Some(place) = place_for(t.scope.group_by, event) else {
                continue;
            };
            let (token, slice) = if term.agg == AggFn::CountDistinct {
                match term_token(term, event) {
                    // Distinct values must meet in one place: no slices.
                    Some(token) => (token, WHOLE_WINDOW),
                    None => continue,
                }
            } else {
                (0, slice_of(term.window, end, resolution_ms))
            };
            let key = (t.id, t.scope, place, end, token);
            inserts
                .entry(enter)
                .or_default()
                .entry(key)
                .and_modify(|p| p.add(x, event.ts))
                .or_insert_with(|| Partial::new(slice, x, event.ts, token));
        }
        expired
    }

    fn on_event(&mut self, event: Event, arrival: Time) {
        let stream = event.stream().index();
        let expired = Self::place(
            &mut self.inserts,
            self.by_stream[stream].iter(),
            &event,
            arrival,
            self.config.resolution_ms,
        );
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        if expired > 0 {
            self.stats
                .expired_contributions
                .fetch_add(expired, Ordering::Relaxed);
        }
        if self.history_ms > 0 {
            self.history.push_back(event);
        }
    }

    fn on_add(&mut self, rule: RuleId, plan: Arc<RulePlan>, at: Time) {
        if self.rules.contains_key(&rule) {
            return;
        }
        let mut fresh: Vec<InstalledTerm> = Vec::new();
        for (i, term) in plan.terms.iter().enumerate() {
            let id = term_id(term, plan.group_by);
            match self.terms.get_mut(&id) {
                Some(t) => t.users += 1,
                None => {
                    let t = InstalledTerm {
                        id,
                        scope: Scope {
                            group_by: plan.group_by,
                            rings: term.rings.min(u32::from(u8::MAX)) as u8,
                        },
                        plan: plan.clone(),
                        term: i,
                        users: 1,
                    };
                    fresh.push(t.clone());
                    self.terms.insert(id, t);
                }
            }
        }
        self.rules.insert(rule, plan);
        self.rebuild_index();
        // A term no installed rule had before starts with the events kept;
        // a term shared with an installed rule is already complete.
        for event in &self.history {
            let stream = event.stream();
            Self::place(
                &mut self.inserts,
                fresh
                    .iter()
                    .filter(|t| t.plan.terms[t.term].stream == stream),
                event,
                at,
                self.config.resolution_ms,
            );
        }
    }

    fn on_remove(&mut self, rule: RuleId, at: Time) {
        let Some(plan) = self.rules.remove(&rule) else {
            return;
        };
        let mut dead: Vec<TermId> = Vec::new();
        for term in &plan.terms {
            let id = term_id(term, plan.group_by);
            if let Some(t) = self.terms.get_mut(&id) {
                t.users = t.users.saturating_sub(1);
                if t.users == 0 {
                    self.terms.remove(&id);
                    dead.push(id);
                }
            }
        }
        self.rebuild_index();
        if dead.is_empty() {
            return;
        }
        // Partials waiting to enter before the removal still enter (the
        // term existed then) and leave at the removal; later ones never do.
        for (&enter, map) in self.inserts.iter_mut() {
            map.retain(|&(term, scope, place, _end, _token), p| {
                if !dead.contains(&term) {
                    return true;
                }
                if enter < at {
                    let key = (term, scope, place);
                    self.immediate.push((key, *p, enter, 1));
                    self.immediate.push((key, *p, at, -1));
                }
                false
            });
        }
        self.inserts.retain(|_, m| !m.is_empty());
        for list in self.retracts.values_mut() {
            list.retain(|(k, p)| {
                if dead.contains(&k.0) {
                    self.immediate.push((*k, *p, at, -1));
                    false
                } else {
                    true
                }
            });
        }
        self.retracts.retain(|_, l| !l.is_empty());
    }

    fn trim_history(&mut self, clock: Time) {
        while let Some(front) = self.history.front() {
            if front.ts.saturating_add(self.history_ms) <= clock {
                self.history.pop_front();
            } else {
                break;
            }
        }
        if self.history_ms == 0 {
            self.history.clear();
        }
    }

    fn earliest_pending(&self) -> Option<Time> {
        let a = self.inserts.keys().next().copied();
        let b = self.retracts.keys().next().copied();
        match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    fn publish_stats(&self) {
        let inserts: usize = self.inserts.values().map(|m| m.len()).sum();
        let retracts: usize = self.retracts.values().map(|l| l.len()).sum();
        self.stats
            .pending_inserts
            .store(inserts as u64, Ordering::Relaxed);
        self.stats
            .pending_retracts
            .store(retracts as u64, Ordering::Relaxed);
        self.stats
            .history_events
            .store(self.history.len() as u64, Ordering::Relaxed);
    }
}

/// Builds the window operator over a worker's input stream.
pub fn windows<'s>(
    input: StreamVec<'s, Time, WindowInput>,
    config: WindowConfig,
    stats: Arc<WindowStats>,
) -> VecCollection<'s, Time, (PartialKey, Partial), isize> {
    input
        .unary_frontier(Pipeline, "Windows", move |_initial, _info| {
            let mut state = WindowState {
                config,
                rules: BTreeMap::new(),
                terms: BTreeMap::new(),
                by_stream: Default::default(),
                inserts: BTreeMap::new(),
                retracts: BTreeMap::new(),
                immediate: Vec::new(),
                history: VecDeque::new(),
                history_ms: 0,
                stats,
            };
            let mut held: Option<Capability<Time>> = None;
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let Some(arrival) = cap.least().copied() else {
                        return;
                    };
                    if held.as_ref().is_none_or(|h| arrival < *h.time()) {
                        held = cap.retain_least(0);
                    }
                    for item in data.drain(..) {
                        match item {
                            WindowInput::Event(e) => state.on_event(e, arrival),
                            WindowInput::Ndjson {
                                bytes,
                                context,
                                reply,
                            } => {
                                let mut report = ChunkReport::default();
                                for line in bytes.split(|&b| b == b'\n') {
                                    if line.iter().all(u8::is_ascii_whitespace) {
                                        continue;
                                    }
                                    match parse_line(line, &context) {
                                        Ok(e) => {
                                            report.accepted += 1;
                                            report.max_ts = report.max_ts.max(e.ts);
                                            state.on_event(e, arrival);
                                        }
                                        Err(_) => report.rejected += 1,
                                    }
                                }
                                // The sender may have given up waiting; nothing to undo.
                                let _ = reply.send(report);
                            }
                            WindowInput::AddRule(id, plan) => state.on_add(id, plan, arrival),
                            WindowInput::RemoveRule(id) => state.on_remove(id, arrival),
                        }
                    }
                });

                // Times strictly before the input frontier are complete.
                let complete_before = frontier.frontier().first().copied().unwrap_or(Time::MAX);
                if let Some(cap) = held.as_mut() {
                    let mut session = output.session(&*cap);
                    for (key, partial, at, diff) in state.immediate.drain(..) {
                        session.give(((key, partial), at, diff));
                    }
                    while let Some(entry) = state.inserts.first_entry() {
                        let at = *entry.key();
                        if at >= complete_before {
                            break;
                        }
                        for ((term, scope, place, end, _token), partial) in entry.remove() {
                            let key = (term, scope, place);
                            session.give(((key, partial), at, 1));
                            state.retracts.entry(end).or_default().push((key, partial));
                        }
                    }
                    while let Some(entry) = state.retracts.first_entry() {
                        let at = *entry.key();
                        if at >= complete_before {
                            break;
                        }
                        for (key, partial) in entry.remove() {
                            session.give(((key, partial), at, -1));
                        }
                    }
                }
                if complete_before > 0 {
                    state.trim_history(complete_before - 1);
                }
                match state.earliest_pending() {
                    Some(t) => {
                        if let Some(cap) = held.as_mut() {
                            if *cap.time() < t {
                                cap.downgrade(&t);
                            }
                        }
                    }
                    None => held = None,
                }
                state.publish_stats();
            }
        })
        .as_collection()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements() {
        assert_eq!(
            placement(Window::Sliding(600_000), 1_000, 1000),
            (1_000, 601_000)
        );
        assert_eq!(
            placement(Window::Sliding(600_000), 1_001, 1000),
            (1_001, 602_000)
        );
        assert_eq!(
            placement(Window::Tumbling(300_000), 299_999, 1000),
            (300_000, 600_000)
        );
        assert_eq!(
            placement(Window::Tumbling(300_000), 300_000, 1000),
            (600_000, 900_000)
        );
    }
}
