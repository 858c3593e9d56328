//! The placement operator: where events become contributions to terms.
//!
//! Each worker reads its own events (parsing NDJSON chunks right here, so
//! bulk replay moves bytes, not events, between threads). For every
//! installed term an event passes, it works out the interval in which the
//! event counts (see [`placement`] and [`entry`]) and where:
//!
//! * on a key that reference data cannot change — a segment, a sensor, or
//!   the cells around a cell the event names — the contribution goes
//!   straight to the key's owner ([`KeyInput::Piece`]);
//! * otherwise — a district, or a cell known only through a sensor's or a
//!   segment's registration — it goes to the owner of its *source* (the
//!   cell, sensor or segment), where the sources operator resolves it
//!   through reference data and can move it when that data changes
//!   ([`KeyInput::Sourced`]).
//!
//! It also keeps the recent events it has seen (bounded by the longest
//! reach in use and by a count), so that a rule installed while running
//! starts with full windows.

use crate::registry::{term_id, term_shape};
use crate::slices::{Piece, Summary};
use crate::types::{GroupKey, Place, RuleId, TermId, Time};
use jingzhi_rules::event::{parse_line, Body, Event, ParseContext};
use jingzhi_rules::plan::{
    term_value, term_value_token, AggFn, FastFilter, GroupBy, RulePlan, Term, Window,
};
use jingzhi_rules::space::Grid;
use jingzhi_rules::Sym;
use serde::{Deserialize, Serialize};
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

/// What the placement operator reads, in the order each worker received it.
#[derive(Clone, Debug)]
pub enum WindowInput {
    Event(Event),
    /// NDJSON lines to parse right here.
    Ndjson {
        bytes: Vec<u8>,
        context: Arc<ParseContext>,
        reply: std::sync::mpsc::Sender<ChunkReport>,
    },
    AddRule(RuleId, Arc<RulePlan>),
    RemoveRule(RuleId),
}

/// Settings of the windows.
#[derive(Clone, Debug)]
pub struct WindowConfig {
    /// Times are kept at this resolution: early events enter at their time
    /// rounded up to it, and steps are multiples of it.
    pub resolution_ms: u64,
    /// Keep recent events so rules installed later see them.
    pub keep_history: bool,
    /// Keep at least this much history even if no rule needs it.
    pub min_history_ms: u64,
    /// Keep at most this many events per worker: a rule installed while
    /// running sees at most this much of the past.
    pub max_history_events: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            resolution_ms: 1000,
            keep_history: true,
            min_history_ms: 0,
            max_history_events: 1_000_000,
        }
    }
}

/// Counters one worker's window operators keep up to date.
#[derive(Debug, Default)]
pub struct WindowStats {
    /// Slices waiting to enter their window.
    pub pending_inserts: AtomicU64,
    /// Slices in their window, waiting to leave it.
    pub pending_retracts: AtomicU64,
    /// Events kept for rules installed later.
    pub history_events: AtomicU64,
    /// Events that reached the operator.
    pub events: AtomicU64,
    /// (event, term) pairs that arrived after their window had passed.
    pub expired_contributions: AtomicU64,
    /// Contributions placed: one per event, term and key (a cell's
    /// neighbourhood counts each cell).
    pub contributions: AtomicU64,
    /// Value-only alert updates held back by the update interval.
    pub coalesced_updates: AtomicU64,
    /// Window slices held by the keys operator, and by the sources
    /// operator (live, pending) — summed into the two above.
    pub(crate) key_slices: [AtomicU64; 2],
    pub(crate) source_slices: [AtomicU64; 2],
}

impl WindowStats {
    /// Counts the slices the keys operator (`keys`) or the sources
    /// operator holds, and publishes the totals.
    pub(crate) fn count_slices<'a>(
        &self,
        keys: bool,
        windows: impl Iterator<Item = &'a crate::slices::SliceWindow>,
    ) {
        let (mut live, mut pending) = (0, 0);
        for w in windows {
            let (l, p) = w.records();
            live += l;
            pending += p;
        }
        let target = if keys {
            &self.key_slices
        } else {
            &self.source_slices
        };
        target[0].store(live as u64, Ordering::Relaxed);
        target[1].store(pending as u64, Ordering::Relaxed);
        self.publish_slices();
    }

    fn publish_slices(&self) {
        let live = self.key_slices[0].load(Ordering::Relaxed)
            + self.source_slices[0].load(Ordering::Relaxed);
        let pending = self.key_slices[1].load(Ordering::Relaxed)
            + self.source_slices[1].load(Ordering::Relaxed);
        self.pending_retracts.store(live, Ordering::Relaxed);
        self.pending_inserts.store(pending, Ordering::Relaxed);
    }
}

/// What the keys operator reads: contributions to keys and the sources
/// operator's window summaries, both exchanged by key. `Sourced` is only
/// on its way to the sources operator (exchanged by source).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum KeyInput {
    Piece(GroupKey, Piece),
    Sourced(Place, Piece),
    /// A worker's share of a term's window at a key: `None` when empty.
    Summary(Box<SummaryMsg>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SummaryMsg {
    pub key: GroupKey,
    pub term: TermId,
    pub worker: u32,
    /// When the share became this.
    pub at: Time,
    pub summary: Option<Summary>,
}

/// When a contribution enters its window: on arrival, or — for a sliding
/// window and an event that arrives before its time (replay on the event
/// clock) — at its time rounded up to the resolution, so that a replay's
/// events share entry times and combine. Live events (time at or before
/// arrival) enter exactly on arrival.
pub fn entry(term: &Term, start: Time, arrival: Time, resolution_ms: u64) -> Time {
    match term.window {
        Window::Sliding(_) if start > arrival => {
            let r = resolution_ms.max(1);
            start.div_ceil(r) * r
        }
        _ => start.max(arrival),
    }
}

/// `[start, end)`: when an event with time `ts` is inside a term's window,
/// before arrival is considered. A sliding window lets go at `ts + w`
/// rounded up to its step.
pub fn placement(term: &Term, ts: Time, resolution_ms: u64) -> (Time, Time) {
    match term.window {
        Window::Sliding(w) => {
            let step = term.step(resolution_ms);
            (ts, ts.saturating_add(w).div_ceil(step) * step)
        }
        Window::Tumbling(w) => {
            let k = ts / w;
            ((k + 1) * w, (k + 2) * w)
        }
    }
}

/// A shared term as placement sees it: computed once for all the rules
/// that use it.
#[derive(Clone)]
struct PlacedTerm {
    id: TermId,
    /// What is computed (`registry::term_shape`).
    shape: Arc<Term>,
    group_by: GroupBy,
    rings: u32,
    distinct: bool,
    filter: Arc<FastFilter>,
    /// How many (rule, term) pairs use it.
    users: u32,
}

impl PlacedTerm {
    fn term(&self) -> &Term {
        &self.shape
    }
}

/// Names on an event, interned once per event however many terms read them.
#[derive(Default)]
struct EventNames {
    segment: Option<Option<Sym>>,
    sensor: Option<Option<Sym>>,
}

impl EventNames {
    fn segment(&mut self, event: &Event) -> Option<Sym> {
        *self.segment.get_or_insert_with(|| {
            let text = match &event.body {
                Body::Traffic(t) => Some(t.segment_id.as_str()),
                Body::Incident(i) => i.segment_id.as_deref(),
                Body::Sensor(_) => None,
            };
            text.and_then(|s| Sym::intern(s).ok())
        })
    }

    fn sensor(&mut self, event: &Event) -> Option<Sym> {
        *self.sensor.get_or_insert_with(|| match &event.body {
            Body::Sensor(x) => Sym::intern(&x.sensor_id).ok(),
            _ => None,
        })
    }
}

struct PlaceState {
    config: WindowConfig,
    grid: Grid,
    rules: BTreeMap<RuleId, Arc<RulePlan>>,
    terms: BTreeMap<TermId, PlacedTerm>,
    by_stream: [Vec<PlacedTerm>; 3],
    history: VecDeque<Event>,
    history_ms: u64,
    stats: Arc<WindowStats>,
}

impl PlaceState {
    fn rebuild_index(&mut self) {
        for list in &mut self.by_stream {
            list.clear();
        }
        for t in self.terms.values() {
            self.by_stream[t.term().stream.index()].push(t.clone());
        }
        let reach = self
            .rules
            .values()
            .map(|p| p.reach(self.config.resolution_ms))
            .max()
            .unwrap_or(0);
        self.history_ms = if self.config.keep_history && self.config.max_history_events > 0 {
            reach.max(self.config.min_history_ms)
        } else {
            0
        };
    }

    /// Sends what `event`, arriving at `arrival`, contributes to `terms`.
    /// Returns how many contributions came too late for their window.
    fn place<'t>(
        grid: &Grid,
        resolution_ms: u64,
        terms: impl Iterator<Item = &'t PlacedTerm>,
        event: &Event,
        arrival: Time,
        out: &mut impl FnMut(KeyInput),
    ) -> (u64, u64) {
        let (mut expired, mut placed) = (0, 0);
        let mut names = EventNames::default();
        for t in terms {
            let term = t.term();
            if !t.filter.admits(event) {
                continue;
            }
            let Some(x) = term_value(term, event) else {
                continue;
            };
            let token = if t.distinct {
                match term_value_token(term, event) {
                    Some(token) => token,
                    None => continue,
                }
            } else {
                0
            };
            let (start, end) = placement(term, event.ts, resolution_ms);
            let enter = entry(term, start, arrival, resolution_ms);
            if enter >= end {
                expired += 1;
                continue;
            }
            let piece = Piece {
                term: t.id,
                enter,
                exit: end,
                ts: event.ts,
                value: x,
                token,
            };
            let mut give = |x: KeyInput| {
                placed += 1;
                out(x)
            };
            match (t.group_by, &event.location) {
                (GroupBy::Segment, _) => {
                    if let Some(s) = names.segment(event) {
                        give(KeyInput::Piece(GroupKey::Segment(s), piece));
                    }
                }
                (GroupBy::Sensor, _) => {
                    if let Some(s) = names.sensor(event) {
                        give(KeyInput::Piece(GroupKey::Sensor(s), piece));
                    }
                }
                (GroupBy::Cell, jingzhi_rules::event::Location::Cell(c)) => {
                    if grid.contains(*c) {
                        for cell in grid.neighbourhood(*c, t.rings) {
                            give(KeyInput::Piece(GroupKey::Cell(cell), piece));
                        }
                    }
                }
                (GroupBy::Cell | GroupBy::District, location) => {
                    give(KeyInput::Sourced(Place::from(location), piece));
                }
            }
        }
        (expired, placed)
    }

    fn on_event(&mut self, event: Event, arrival: Time, out: &mut impl FnMut(KeyInput)) {
        let stream = event.stream().index();
        let (expired, placed) = Self::place(
            &self.grid,
            self.config.resolution_ms,
            self.by_stream[stream].iter(),
            &event,
            arrival,
            out,
        );
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        self.stats
            .contributions
            .fetch_add(placed, Ordering::Relaxed);
        if expired > 0 {
            self.stats
                .expired_contributions
                .fetch_add(expired, Ordering::Relaxed);
        }
        if self.history_ms > 0 {
            self.history.push_back(event);
            if self.history.len() > self.config.max_history_events {
                self.history.pop_front();
            }
        }
    }

    fn on_add(
        &mut self,
        rule: RuleId,
        plan: Arc<RulePlan>,
        at: Time,
        out: &mut impl FnMut(KeyInput),
    ) {
        if self.rules.contains_key(&rule) {
            return;
        }
        let mut fresh: Vec<PlacedTerm> = Vec::new();
        for term in &plan.terms {
            let id = term_id(term, plan.group_by);
            match self.terms.get_mut(&id) {
                Some(t) => t.users += 1,
                None => {
                    let t = PlacedTerm {
                        id,
                        shape: Arc::new(term_shape(term)),
                        group_by: plan.group_by,
                        rings: term.rings,
                        distinct: term.agg == AggFn::CountDistinct,
                        filter: Arc::new(FastFilter::new(term.filter.as_ref())),
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
                &self.grid,
                self.config.resolution_ms,
                fresh.iter().filter(|t| t.term().stream == stream),
                event,
                at,
                out,
            );
        }
    }

    fn on_remove(&mut self, rule: RuleId) {
        let Some(plan) = self.rules.remove(&rule) else {
            return;
        };
        for term in &plan.terms {
            let id = term_id(term, plan.group_by);
            if let Some(t) = self.terms.get_mut(&id) {
                t.users = t.users.saturating_sub(1);
                if t.users == 0 {
                    self.terms.remove(&id);
                }
            }
        }
        self.rebuild_index();
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
        self.stats
            .history_events
            .store(self.history.len() as u64, Ordering::Relaxed);
    }
}

/// Builds the placement operator over a worker's input stream.
pub fn place<'s>(
    input: StreamVec<'s, Time, WindowInput>,
    config: WindowConfig,
    grid: Grid,
    stats: Arc<WindowStats>,
) -> StreamVec<'s, Time, KeyInput> {
    input.unary_frontier(Pipeline, "Place", move |_initial, _info| {
        let mut state = PlaceState {
            config,
            grid,
            rules: BTreeMap::new(),
            terms: BTreeMap::new(),
            by_stream: Default::default(),
            history: VecDeque::new(),
            history_ms: 0,
            stats,
        };
        move |(input, frontier), output| {
            input.for_each(|cap, data| {
                let Some(arrival) = cap.least().copied() else {
                    return;
                };
                let Some(cap): Option<Capability<Time>> = cap.retain_least(0) else {
                    return;
                };
                let mut session = output.session(&cap);
                let mut out = |x: KeyInput| session.give(x);
                for item in data.drain(..) {
                    match item {
                        WindowInput::Event(e) => state.on_event(e, arrival, &mut out),
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
                                        state.on_event(e, arrival, &mut out);
                                    }
                                    Err(_) => report.rejected += 1,
                                }
                            }
                            // The sender may have given up waiting; nothing to undo.
                            let _ = reply.send(report);
                        }
                        WindowInput::AddRule(id, plan) => state.on_add(id, plan, arrival, &mut out),
                        WindowInput::RemoveRule(id) => state.on_remove(id),
                    }
                }
            });
            let complete_before = frontier.frontier().first().copied().unwrap_or(Time::MAX);
            if complete_before > 0 {
                state.trim_history(complete_before - 1);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jingzhi_rules::plan::AggFn;
    use jingzhi_rules::schema::StreamKind;

    fn term(window: Window, every: Option<u64>) -> Term {
        Term {
            name: "x".into(),
            agg: AggFn::Count,
            stream: StreamKind::Sensor,
            value: None,
            filter: None,
            window,
            rings: 0,
            hidden: false,
            every,
        }
    }

    #[test]
    fn placements() {
        // 10 minutes: steps of 10 s.
        let ten = term(Window::Sliding(600_000), None);
        assert_eq!(placement(&ten, 1_000, 1000), (1_000, 610_000));
        assert_eq!(placement(&ten, 0, 1000), (0, 600_000));
        // `every 1s`: the old resolution-only behaviour.
        let fine = term(Window::Sliding(600_000), Some(1000));
        assert_eq!(placement(&fine, 1_001, 1000), (1_001, 602_000));
        // Short windows step by the resolution.
        let short = term(Window::Sliding(30_000), None);
        assert_eq!(placement(&short, 1_001, 1000), (1_001, 32_000));
        let tumbling = term(Window::Tumbling(300_000), None);
        assert_eq!(placement(&tumbling, 299_999, 1000), (300_000, 600_000));
        assert_eq!(placement(&tumbling, 300_000, 1000), (600_000, 900_000));
    }
}
