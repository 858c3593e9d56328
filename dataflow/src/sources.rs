//! The sources operator: windows whose key comes from reference data.
//!
//! A district's contributions are placed by their cell, and a cell's by a
//! sensor's or a segment's registration; reference data can change while
//! they sit in a window. The window operator therefore sends such
//! contributions here, exchanged by their *source* (the cell, sensor or
//! segment), where this operator keeps two things:
//!
//! * each source's own contributions per term (`sources`), passive;
//! * this worker's share of every key's window per term (`shares`),
//!   derived from the sources under the reference data in force, with the
//!   timers that let slices enter and leave.
//!
//! Reference data arrives as a stream of changes in clock order, the same
//! on every worker (the engine broadcasts it). When it changes, every share
//! is rebuilt from the sources under the new mapping, so a moved sensor's
//! readings move to its new cell at that instant and leave the old one, as
//! a join of the windows with the reference collections would. Changes are
//! rare and the rebuild costs one pass over this worker's sources.
//!
//! After each time, every share that changed is sent to the key's owner as
//! a [`SummaryMsg`]; the keys operator merges the workers' shares.

use crate::place::{KeyInput, SummaryMsg, WindowStats};
use crate::queue::{first, Queued, Work};
use crate::registry::PlanRegistry;
use crate::slices::{Calendar, Piece, SliceWindow, Summary};
use crate::types::{GroupKey, Place, RuleId, TermId, Time};
use jingzhi_rules::fxhash::{FxHashMap, FxHashSet};
use jingzhi_rules::plan::{AggFn, GroupBy};
use jingzhi_rules::space::{CellId, Grid, ReferenceChange};
use jingzhi_rules::Sym;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::StreamVec;

/// What every worker hears in the same order: rule installs and removals,
/// reference data changes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Control {
    AddRule(RuleId),
    RemoveRule(RuleId),
    Reference(ReferenceChange),
}

/// A stable hash of a place or key: of the text of a name, not of its
/// intern number, so that it means the same in every process.
pub fn route_sym(s: Sym) -> u64 {
    s.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

pub fn route_key(key: &GroupKey) -> u64 {
    match key {
        GroupKey::Cell(c) => u64::from(*c),
        GroupKey::District(s) | GroupKey::Segment(s) | GroupKey::Sensor(s) => route_sym(*s),
    }
}

pub fn route_place(place: &Place) -> u64 {
    match place {
        Place::Cell(c) => u64::from(*c),
        Place::Sensor(s) | Place::Segment(s) => route_sym(*s),
    }
}

/// Where an input of the keys or sources operator goes: to its source's
/// worker on its way to the sources operator, to its key's otherwise.
pub fn route_input(x: &KeyInput) -> u64 {
    match x {
        KeyInput::Sourced(place, _) => route_place(place),
        KeyInput::Piece(key, _) => route_key(key),
        KeyInput::Summary(s) => route_key(&s.key),
    }
}

/// The reference data in force, as the sources operator reads it.
#[derive(Default)]
struct RefMap {
    sensors: FxHashMap<Sym, CellId>,
    segments: FxHashMap<Sym, CellId>,
    districts: FxHashMap<CellId, Sym>,
}

impl RefMap {
    fn apply(&mut self, change: &ReferenceChange) {
        match change {
            ReferenceChange::UpsertSensor(s) => {
                self.sensors.insert(s.id, s.cell);
            }
            ReferenceChange::RemoveSensor { id } => {
                self.sensors.remove(id);
            }
            ReferenceChange::UpsertSegment(s) => {
                self.segments.insert(s.id, s.cell);
            }
            ReferenceChange::RemoveSegment { id } => {
                self.segments.remove(id);
            }
            ReferenceChange::AssignCell { cell, district } => match district {
                Some(d) => {
                    self.districts.insert(*cell, *d);
                }
                None => {
                    self.districts.remove(cell);
                }
            },
        }
    }

    fn cell(&self, place: Place) -> Option<CellId> {
        match place {
            Place::Cell(c) => Some(c),
            Place::Sensor(s) => self.sensors.get(&s).copied(),
            Place::Segment(s) => self.segments.get(&s).copied(),
        }
    }
}

#[derive(Clone, Copy)]
struct SourceTerm {
    group_by: GroupBy,
    rings: u32,
    distinct: bool,
    users: u32,
}

/// The keys a source's contributions to a term count for, now.
fn keys_of(term: &SourceTerm, place: Place, map: &RefMap, grid: &Grid, out: &mut Vec<GroupKey>) {
    out.clear();
    let Some(cell) = map.cell(place) else {
        return;
    };
    match term.group_by {
        GroupBy::Cell if grid.contains(cell) => {
            out.extend(grid.neighbourhood(cell, term.rings).map(GroupKey::Cell));
        }
        GroupBy::District => {
            if let Some(d) = map.districts.get(&cell) {
                out.push(GroupKey::District(*d));
            }
        }
        _ => {}
    }
}

type ShareKey = (TermId, GroupKey);

/// This worker's share of one term's window at one key.
struct Share {
    id: ShareKey,
    window: SliceWindow,
    /// The time this share is in the calendar for (`Time::MAX`: none).
    scheduled: Time,
}

struct SourcesState {
    worker: u32,
    grid: Grid,
    registry: PlanRegistry,
    rules: BTreeMap<RuleId, Vec<TermId>>,
    terms: FxHashMap<TermId, SourceTerm>,
    map: RefMap,
    sources: FxHashMap<(TermId, Place), SliceWindow>,
    shares: Vec<Share>,
    free: Vec<u32>,
    index: FxHashMap<ShareKey, u32>,
    calendar: Calendar,
    /// Contributions not yet due, by their entry time.
    arriving: BTreeMap<Time, Vec<(Place, Piece)>>,
    keys: Vec<GroupKey>,
    /// When the sources were last swept of empty windows.
    swept: Time,
    stats: Arc<WindowStats>,
}

/// How often sources that no longer hold anything are dropped.
const SWEEP_EVERY_MS: Time = 60_000;

impl SourcesState {
    /// Applies a control; returns whether reference data changed.
    fn on_control(&mut self, control: Control) -> bool {
        match control {
            Control::AddRule(id) => {
                let Some(info) = self.registry.info(id) else {
                    return false;
                };
                let plan = &info.plan;
                for (term, tid) in plan.terms.iter().zip(&info.term_ids) {
                    self.terms
                        .entry(*tid)
                        .and_modify(|t| t.users += 1)
                        .or_insert(SourceTerm {
                            group_by: plan.group_by,
                            rings: term.rings,
                            distinct: term.agg == AggFn::CountDistinct,
                            users: 1,
                        });
                }
                self.rules.insert(id, info.term_ids.clone());
                false
            }
            Control::RemoveRule(id) => {
                let Some(terms) = self.rules.remove(&id) else {
                    return false;
                };
                for tid in terms {
                    let dead = self.terms.get_mut(&tid).is_some_and(|t| {
                        t.users -= 1;
                        t.users == 0
                    });
                    if dead {
                        // The keys operator drops the term at this time too.
                        self.terms.remove(&tid);
                        for pieces in self.arriving.values_mut() {
                            pieces.retain(|(_, p)| p.term != tid);
                        }
                        self.sources.retain(|(t, _), _| *t != tid);
                        for slot in 0..self.shares.len() {
                            if self.shares[slot].id.0 == tid
                                && self.index.remove(&self.shares[slot].id).is_some()
                            {
                                self.shares[slot].window = SliceWindow::default();
                                self.shares[slot].scheduled = Time::MAX;
                                self.free.push(slot as u32);
                            }
                        }
                    }
                }
                false
            }
            Control::Reference(change) => {
                self.map.apply(&change);
                true
            }
        }
    }

    fn share_of(&mut self, id: ShareKey) -> u32 {
        if let Some(&slot) = self.index.get(&id) {
            return slot;
        }
        let share = Share {
            id,
            window: SliceWindow::default(),
            scheduled: Time::MAX,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.shares[slot as usize] = share;
                slot
            }
            None => {
                self.shares.push(share);
                (self.shares.len() - 1) as u32
            }
        };
        self.index.insert(id, slot);
        slot
    }

    fn schedule(&mut self, slot: u32) {
        let share = &mut self.shares[slot as usize];
        if let Some(due) = share.window.next_due() {
            if due < share.scheduled {
                share.scheduled = due;
                self.calendar.push(due, slot);
            }
        }
    }

    /// Takes in contributions that arrived; they wait, in arrival order,
    /// until they are due (see the keys operator).
    fn insert(&mut self, batch: Vec<KeyInput>) {
        for x in batch {
            if let KeyInput::Sourced(place, piece) = x {
                self.arriving
                    .entry(piece.enter)
                    .or_default()
                    .push((place, piece));
            }
        }
    }

    /// Hands every contribution due before `bound` to its source and the
    /// shares it counts for, a source's contributions together.
    fn deliver(&mut self, bound: Time) {
        let later = self.arriving.split_off(&bound);
        let due = std::mem::replace(&mut self.arriving, later);
        let mut pieces: Vec<(Place, Piece)> = due.into_values().flatten().collect();
        // Stable: a source's pieces stay in time order.
        pieces.sort_by_key(|(place, piece)| (piece.term, *place));
        for (place, piece) in pieces {
            self.on_piece(place, piece);
        }
    }

    /// Takes in a contribution due now: into its source's window, and into
    /// the shares of the keys the source counts for now.
    fn on_piece(&mut self, place: Place, piece: Piece) {
        let Some(term) = self.terms.get(&piece.term).copied() else {
            return;
        };
        let source = self.sources.entry((piece.term, place)).or_default();
        // Sources are passive: bring them up to date as they are touched.
        source.advance(piece.enter, term.distinct);
        source.insert(&piece, term.distinct);
        keys_of(&term, place, &self.map, &self.grid, &mut self.keys);
        let keys = std::mem::take(&mut self.keys);
        for key in &keys {
            let slot = self.share_of((piece.term, *key));
            self.shares[slot as usize]
                .window
                .insert(&piece, term.distinct);
            self.schedule(slot);
        }
        self.keys = keys;
    }

    fn summary_of(&self, slot: u32) -> Option<Summary> {
        let share = &self.shares[slot as usize];
        let distinct = self.terms.get(&share.id.0).is_some_and(|t| t.distinct);
        share
            .window
            .has_data()
            .then(|| share.window.summary(distinct))
    }

    fn message(&self, slot: u32, at: Time) -> KeyInput {
        let share = &self.shares[slot as usize];
        KeyInput::Summary(Box::new(SummaryMsg {
            key: share.id.1,
            term: share.id.0,
            worker: self.worker,
            at,
            summary: self.summary_of(slot),
        }))
    }

    /// Runs every share with something due before `bound` through its
    /// times, sending its summary at each time it changes.
    fn run_due(&mut self, bound: Time, out: &mut impl FnMut(KeyInput)) {
        self.deliver(bound);
        while let Some((at, slot)) = self.calendar.peek() {
            if at >= bound {
                break;
            }
            self.calendar.pop();
            if self.shares[slot as usize].scheduled != at {
                continue;
            }
            self.shares[slot as usize].scheduled = Time::MAX;
            let distinct = self
                .terms
                .get(&self.shares[slot as usize].id.0)
                .is_some_and(|t| t.distinct);
            while let Some(now) = self.shares[slot as usize].window.next_due() {
                if now >= bound {
                    break;
                }
                if self.shares[slot as usize].window.advance(now, distinct) {
                    out(self.message(slot, now));
                }
            }
            if self.shares[slot as usize].window.is_empty() {
                let id = self.shares[slot as usize].id;
                self.index.remove(&id);
                self.free.push(slot);
            } else {
                self.schedule(slot);
            }
        }
    }

    /// Rebuilds every share from the sources under the reference data now
    /// in force, at `at`, and sends every share that was or is there.
    fn rebuild(&mut self, at: Time, out: &mut impl FnMut(KeyInput)) {
        let before: Vec<ShareKey> = self.index.keys().copied().collect();
        for share in &mut self.shares {
            share.window = SliceWindow::default();
            share.scheduled = Time::MAX;
        }
        self.index.clear();
        self.free.clear();
        self.shares.clear();
        self.calendar = Calendar::default();
        let sources = std::mem::take(&mut self.sources);
        for ((tid, place), source) in &sources {
            let Some(term) = self.terms.get(tid).copied() else {
                continue;
            };
            keys_of(&term, *place, &self.map, &self.grid, &mut self.keys);
            let keys = std::mem::take(&mut self.keys);
            for key in &keys {
                let slot = self.share_of((*tid, *key));
                self.shares[slot as usize]
                    .window
                    .absorb(source, term.distinct);
            }
            self.keys = keys;
        }
        self.sources = sources;
        // Bring every share to `at` and tell the keys what it now holds.
        let mut sent: FxHashSet<ShareKey> = FxHashSet::default();
        for slot in 0..self.shares.len() as u32 {
            let id = self.shares[slot as usize].id;
            let distinct = self.terms.get(&id.0).is_some_and(|t| t.distinct);
            self.shares[slot as usize].window.advance(at, distinct);
            out(self.message(slot, at));
            sent.insert(id);
            self.schedule(slot);
        }
        for id in before {
            if !sent.contains(&id) {
                out(KeyInput::Summary(Box::new(SummaryMsg {
                    key: id.1,
                    term: id.0,
                    worker: self.worker,
                    at,
                    summary: None,
                })));
            }
        }
    }

    fn sweep(&mut self, now: Time) {
        if now < self.swept.saturating_add(SWEEP_EVERY_MS) {
            return;
        }
        self.swept = now;
        let terms = &self.terms;
        self.sources.retain(|(tid, _), source| {
            let distinct = terms.get(tid).is_some_and(|t| t.distinct);
            source.advance(now, distinct);
            !source.is_empty()
        });
        let windows = self.shares.iter().map(|s| &s.window);
        self.stats
            .count_slices(false, self.sources.values().chain(windows));
    }
}

/// Builds the sources operator: contributions exchanged by source in,
/// summaries of this worker's shares of keys' windows out.
pub fn sources<'s>(
    sourced: StreamVec<'s, Time, KeyInput>,
    control: StreamVec<'s, Time, Control>,
    registry: PlanRegistry,
    grid: Grid,
    worker: u32,
    stats: Arc<WindowStats>,
) -> StreamVec<'s, Time, KeyInput> {
    let exchange = Exchange::new(route_input);
    sourced.binary_frontier(
        control,
        exchange,
        Pipeline,
        "Sources",
        move |_initial, _info| {
            let mut state = SourcesState {
                worker,
                grid,
                registry,
                rules: BTreeMap::new(),
                terms: FxHashMap::default(),
                map: RefMap::default(),
                sources: FxHashMap::default(),
                shares: Vec::new(),
                free: Vec::new(),
                index: FxHashMap::default(),
                calendar: Calendar::default(),
                arriving: BTreeMap::new(),
                keys: Vec::new(),
                swept: 0,
                stats,
            };
            let mut queued: Queued<KeyInput> = Queued::default();
            move |(pieces, pieces_frontier), (control_in, control_frontier), output| {
                pieces.for_each(|cap, data| queued.data(cap, data));
                control_in.for_each(|cap, data| queued.controls(cap, data));
                let complete_before = first(pieces_frontier).min(first(control_frontier));
                let Queued { waiting, held } = &mut queued;
                if let Some(cap) = held.as_ref() {
                    let mut session = output.session(cap);
                    let mut out = |x: KeyInput| session.give(x);
                    let mut reference_changed = false;
                    waiting.work(complete_before, |work| match work {
                        Work::Arrived(batch) => state.insert(batch),
                        Work::RunTo(bound) => state.run_due(bound, &mut out),
                        Work::Controls(changes) => {
                            for c in changes {
                                reference_changed |= state.on_control(c);
                            }
                        }
                        Work::Changed(at) => {
                            if std::mem::take(&mut reference_changed) {
                                state.deliver(at + 1);
                                state.rebuild(at, &mut out);
                            }
                            state.run_due(at + 1, &mut out);
                        }
                    });
                    if complete_before < Time::MAX {
                        state.sweep(complete_before);
                    }
                }
                let due = state.calendar.peek().map(|(t, _)| t);
                let arriving = state.arriving.keys().next().copied();
                queued.settle(due.into_iter().chain(arriving).min());
            }
        },
    )
}
