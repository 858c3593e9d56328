//! The keys operator: every key's windows, and every rule of a key judged
//! at once.
//!
//! Input, exchanged by key so that each key lives on one worker:
//! contributions to keys that reference data cannot move (a cell named by
//! the event, a segment, a sensor), which enter the key's own windows; and
//! the sources operator's summaries of each worker's share of windows keyed
//! through reference data. Terms are shared: rules that read the same
//! events the same way use one term (`registry::term_id`).
//!
//! **Each key runs its own timeline.** Keys are independent of each other
//! here, so once the frontier has passed a time the operator runs every key
//! with something due before the frontier through all of its due times in
//! order — slices entering and leaving, other workers' shares changing,
//! holds expiring — rather than visiting every key once per time. During a
//! replay a key's whole batch of events is handled while its state is in
//! the cache. At each of its times a key re-judges the rules that use a
//! term that changed there: it tests each plain rule's condition, steps
//! each temporal rule's state machine (hold, hysteresis, sequence;
//! `temporal`), and emits the difference to what it emitted before as
//! updates of ((rule, key), AlertRow) at that time. A rule is judged at a
//! key only while at least one of its own terms has data there.
//!
//! Installing or removing a rule is data too (the control stream, which
//! every worker receives in order): at that time every key is re-judged, so
//! a new rule is judged at once on the windows its terms already hold.
//!
//! **Value-only updates are coalesced.** An alert whose values or evidence
//! change, with the same severity, is re-emitted at most once per update
//! interval of engine time: a change within the interval is held back and
//! goes out, with the values then current, when the interval has passed.
//! Raises, clears and severity changes go out at once. `rules::oracle`
//! applies the same rule, so the state after any time is still exact.

use crate::place::{KeyInput, SummaryMsg, WindowStats};
use crate::queue::{first, Queued, Work};
use crate::registry::{as_plain_count, PlanRegistry};
use crate::slices::{Calendar, Piece, SliceWindow, Summary};
use crate::sources::{route_input, Control};
use crate::temporal::Temporal;
use crate::types::{AlertRow, GroupKey, RuleId, TermEvidence, TermId, Time, F64};
use differential_dataflow::{AsCollection, VecCollection};
use jingzhi_rules::fxhash::FxHashMap;
use jingzhi_rules::plan::{AggFn, FastRule, GroupBy, RulePlan, TermStats};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::StreamVec;

/// An installed rule as the operator sees it.
struct Installed {
    id: RuleId,
    plan: Arc<RulePlan>,
    fast: FastRule,
    /// Its terms as it reads them, in the plan's order.
    terms: Vec<RuleTerm>,
    temporal: bool,
}

/// How a rule reads one of its terms from the shared window.
#[derive(Copy, Clone)]
struct RuleTerm {
    id: TermId,
    agg: AggFn,
    reading: Reading,
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Reading {
    /// As merged (the distinct count is not its business).
    Merged,
    /// A plain count computed on a shared sum (`registry::term_shape`).
    PlainCount,
    Distinct,
}

impl RuleTerm {
    fn read(&self, s: &TermStats) -> TermStats {
        match self.reading {
            Reading::Merged => TermStats { distinct: 0, ..*s },
            Reading::PlainCount => as_plain_count(s),
            Reading::Distinct => *s,
        }
    }
}

struct TermInfo {
    users: u32,
    distinct: bool,
}

/// One term's window at a key: the contributions held here and the other
/// workers' shares of it (from the sources operator).
struct TermSlot {
    term: TermId,
    distinct: bool,
    local: SliceWindow,
    remote: Vec<(u32, Summary)>,
}

impl TermSlot {
    fn has_data(&self) -> bool {
        self.local.has_data() || !self.remote.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty()
    }

    fn stats(&self, tokens: &mut Vec<u64>) -> TermStats {
        if self.remote.is_empty() {
            return self.local.merged().stats(self.local.distinct());
        }
        let mut merged = *self.local.merged();
        for (_, s) in &self.remote {
            merged.merge(&s.agg);
        }
        let mut distinct = 0;
        if self.distinct {
            tokens.clear();
            tokens.extend(self.local.summary(true).tokens);
            for (_, s) in &self.remote {
                tokens.extend_from_slice(&s.tokens);
            }
            tokens.sort_unstable();
            tokens.dedup();
            distinct = tokens.len() as u64;
        }
        merged.stats(distinct)
    }
}

/// What one rule emitted at a key, and its state there.
struct RuleSlot {
    rule: RuleId,
    emitted: Option<AlertRow>,
    emitted_at: Time,
    /// A value-only change waits for the update interval.
    deferred: bool,
    temporal: Temporal,
    /// When the rule must be judged again without new data: a hold
    /// expiring, or a held-back update becoming due.
    wake: Option<Time>,
}

impl RuleSlot {
    fn new(rule: RuleId) -> RuleSlot {
        RuleSlot {
            rule,
            emitted: None,
            emitted_at: 0,
            deferred: false,
            temporal: Temporal::default(),
            wake: None,
        }
    }

    fn is_idle(&self) -> bool {
        self.emitted.is_none() && !self.deferred && self.temporal.is_idle()
    }
}

/// A share of one of the key's terms from the sources operator, to take
/// effect at its time.
type ShareIn = (Time, TermId, u32, Option<Summary>);

struct KeyState {
    key: GroupKey,
    terms: Vec<TermSlot>,
    rules: Vec<RuleSlot>,
    shares_in: VecDeque<ShareIn>,
    /// The time this key is in the calendar for (`Time::MAX`: none).
    scheduled: Time,
}

impl KeyState {
    fn new(key: GroupKey) -> KeyState {
        KeyState {
            key,
            terms: Vec::new(),
            rules: Vec::new(),
            shares_in: VecDeque::new(),
            scheduled: Time::MAX,
        }
    }

    fn term_mut(&mut self, term: TermId, distinct: bool) -> &mut TermSlot {
        let i = match self.terms.iter().position(|t| t.term == term) {
            Some(i) => i,
            None => {
                self.terms.push(TermSlot {
                    term,
                    distinct,
                    local: SliceWindow::default(),
                    remote: Vec::new(),
                });
                self.terms.len() - 1
            }
        };
        &mut self.terms[i]
    }

    /// The next time something happens at this key.
    fn next_due(&self) -> Option<Time> {
        let mut due = self.shares_in.front().map_or(Time::MAX, |s| s.0);
        for t in &self.terms {
            if let Some(d) = t.local.next_due() {
                due = due.min(d);
            }
        }
        for r in &self.rules {
            if let Some(w) = r.wake {
                due = due.min(w);
            }
        }
        (due < Time::MAX).then_some(due)
    }

    fn is_empty(&self) -> bool {
        self.terms.is_empty() && self.rules.is_empty() && self.shares_in.is_empty()
    }
}

fn group_of(key: &GroupKey) -> GroupBy {
    match key {
        GroupKey::Cell(_) => GroupBy::Cell,
        GroupKey::District(_) => GroupBy::District,
        GroupKey::Segment(_) => GroupBy::Segment,
        GroupKey::Sensor(_) => GroupBy::Sensor,
    }
}

fn group_index(group: GroupBy) -> usize {
    match group {
        GroupBy::Cell => 0,
        GroupBy::District => 1,
        GroupBy::Segment => 2,
        GroupBy::Sensor => 3,
    }
}

type Output = ((RuleId, GroupKey), AlertRow);

/// Buffers reused from key to key.
#[derive(Default)]
struct Scratch {
    stats: Vec<TermStats>,
    values: Vec<Option<f64>>,
    cache: Vec<(TermId, TermStats, bool)>,
    tokens: Vec<u64>,
    candidates: Vec<u32>,
    changed: Vec<TermId>,
}

/// The installed rules, as every key reads them. Rules are referred to by
/// their place in `list` (dense, reused after a removal).
#[derive(Default)]
struct Rules {
    list: Vec<Option<Installed>>,
    index: FxHashMap<RuleId, u32>,
    terms: FxHashMap<TermId, TermInfo>,
    by_group: [Vec<u32>; 4],
    term_rules: FxHashMap<TermId, Vec<u32>>,
}

impl Rules {
    fn get(&self, at: u32) -> Option<&Installed> {
        self.list.get(at as usize).and_then(Option::as_ref)
    }

    /// Applies a rule install or removal; returns the terms no rule uses
    /// any more, or `None` if nothing changed.
    fn apply(&mut self, registry: &PlanRegistry, control: &Control) -> Option<Vec<TermId>> {
        match control {
            Control::AddRule(id) => {
                let info = registry.info(*id)?;
                let mut terms = Vec::with_capacity(info.term_ids.len());
                for (term, tid) in info.plan.terms.iter().zip(&info.term_ids) {
                    let distinct = term.agg == AggFn::CountDistinct;
                    self.terms
                        .entry(*tid)
                        .and_modify(|t| t.users += 1)
                        .or_insert(TermInfo { users: 1, distinct });
                    let reading = if distinct {
                        Reading::Distinct
                    } else if term.agg == AggFn::Count && term.value.is_none() {
                        Reading::PlainCount
                    } else {
                        Reading::Merged
                    };
                    terms.push(RuleTerm {
                        id: *tid,
                        agg: term.agg,
                        reading,
                    });
                }
                let installed = Installed {
                    id: *id,
                    fast: FastRule::new(&info.plan),
                    temporal: info.plan.is_temporal(),
                    plan: info.plan.clone(),
                    terms,
                };
                let at = match self.list.iter().position(Option::is_none) {
                    Some(free) => {
                        self.list[free] = Some(installed);
                        free
                    }
                    None => {
                        self.list.push(Some(installed));
                        self.list.len() - 1
                    }
                };
                self.index.insert(*id, at as u32);
                self.reindex();
                Some(Vec::new())
            }
            Control::RemoveRule(id) => {
                let at = self.index.remove(id)?;
                let rule = self.list.get_mut(at as usize)?.take()?;
                let mut dead = Vec::new();
                for rt in &rule.terms {
                    if let Some(t) = self.terms.get_mut(&rt.id) {
                        t.users -= 1;
                        if t.users == 0 {
                            self.terms.remove(&rt.id);
                            dead.push(rt.id);
                        }
                    }
                }
                self.reindex();
                Some(dead)
            }
            Control::Reference(_) => None,
        }
    }

    fn reindex(&mut self) {
        for list in &mut self.by_group {
            list.clear();
        }
        self.term_rules.clear();
        let mut order: Vec<(RuleId, u32)> = self.index.iter().map(|(r, a)| (*r, *a)).collect();
        order.sort_unstable();
        for (_, at) in order {
            let Some(r) = self.list.get(at as usize).and_then(Option::as_ref) else {
                continue;
            };
            self.by_group[group_index(r.plan.group_by)].push(at);
            for tid in r.terms.iter().map(|t| t.id) {
                let users = self.term_rules.entry(tid).or_default();
                if !users.contains(&at) {
                    users.push(at);
                }
            }
        }
    }
}

struct KeysState {
    registry: PlanRegistry,
    update_interval: Time,
    rules: Rules,
    slots: Vec<KeyState>,
    free: Vec<u32>,
    index: FxHashMap<GroupKey, u32>,
    calendar: Calendar,
    /// Inputs not yet due, by the time they take effect.
    arriving: BTreeMap<Time, Vec<KeyInput>>,
    scratch: Scratch,
    stats: Arc<WindowStats>,
    counted_at: Time,
}

/// How often the slices held are counted for the metrics.
const COUNT_EVERY_MS: Time = 60_000;

impl KeysState {
    fn slot_of(&mut self, key: GroupKey) -> u32 {
        if let Some(&slot) = self.index.get(&key) {
            return slot;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = KeyState::new(key);
                slot
            }
            None => {
                self.slots.push(KeyState::new(key));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key, slot);
        slot
    }

    /// Puts the key in the calendar for its next due time, if that is
    /// earlier than the time it is there for.
    fn schedule(&mut self, slot: u32) {
        let state = &mut self.slots[slot as usize];
        if let Some(due) = state.next_due() {
            if due < state.scheduled {
                state.scheduled = due;
                self.calendar.push(due, slot);
            }
        }
    }

    /// Takes in contributions and shares that arrived; they take effect at
    /// their own times.
    /// Takes in contributions and shares that arrived. They wait, in
    /// arrival order, until they are due: keys are scattered in memory,
    /// and touching one for every piece as it arrives costs more than the
    /// rest of the work.
    fn insert(&mut self, batch: Vec<KeyInput>) {
        for x in batch {
            let due = match &x {
                KeyInput::Piece(_, piece) if self.rules.terms.contains_key(&piece.term) => {
                    piece.enter
                }
                KeyInput::Summary(s) if self.rules.terms.contains_key(&s.term) => s.at,
                _ => continue,
            };
            self.arriving.entry(due).or_default().push(x);
        }
    }

    /// Hands every input due before `bound` to its key, a key's inputs
    /// together, and — unless every key is about to be run anyway — runs
    /// each such key through its times before `bound`.
    fn deliver(&mut self, bound: Time, run: bool, out: &mut impl FnMut(Output, Time, isize)) {
        let later = self.arriving.split_off(&bound);
        let due = std::mem::replace(&mut self.arriving, later);
        if due.is_empty() {
            return;
        }
        let mut pieces: Vec<(u32, Piece)> = Vec::new();
        let mut touched: Vec<u32> = Vec::new();
        for x in due.into_values().flatten() {
            match x {
                KeyInput::Piece(key, piece) if self.rules.terms.contains_key(&piece.term) => {
                    pieces.push((self.slot_of(key), piece));
                }
                KeyInput::Summary(s)
                    if self.rules.terms.contains_key(&s.term)
                        && (s.summary.is_some() || self.index.contains_key(&s.key)) =>
                {
                    let slot = self.slot_of(s.key);
                    self.on_share(slot, *s);
                    touched.push(slot);
                }
                _ => {}
            }
        }
        // By key (a counting sort: keys are dense numbers), in time order
        // within a key.
        let mut starts = vec![0u32; self.slots.len() + 1];
        for (slot, _) in &pieces {
            starts[*slot as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut order = vec![0u32; pieces.len()];
        for (i, (slot, _)) in pieces.iter().enumerate() {
            let at = &mut starts[*slot as usize];
            order[*at as usize] = i as u32;
            *at += 1;
        }
        for i in order {
            let (slot, piece) = pieces[i as usize];
            if touched.last() != Some(&slot) {
                touched.push(slot);
            }
            self.on_piece(slot, piece);
        }
        touched.sort_unstable();
        touched.dedup();
        for slot in touched {
            if run {
                self.run_key(slot, bound, None, out);
            } else {
                self.schedule(slot);
            }
        }
    }

    fn on_piece(&mut self, slot: u32, piece: Piece) {
        let distinct = self
            .rules
            .terms
            .get(&piece.term)
            .is_some_and(|t| t.distinct);
        self.slots[slot as usize]
            .term_mut(piece.term, distinct)
            .local
            .insert(&piece, distinct);
    }

    fn on_share(&mut self, slot: u32, share: SummaryMsg) {
        let incoming = &mut self.slots[slot as usize].shares_in;
        // Shares come in time order from each worker; keep them sorted.
        let at = incoming.partition_point(|s| s.0 <= share.at);
        incoming.insert(at, (share.at, share.term, share.worker, share.summary));
    }

    /// Runs every key with something due before `bound` through its times.
    fn run_due(&mut self, bound: Time, out: &mut impl FnMut(Output, Time, isize)) {
        self.deliver(bound, true, out);
        while let Some((at, slot)) = self.calendar.peek() {
            if at >= bound {
                break;
            }
            self.calendar.pop();
            if self.slots[slot as usize].scheduled != at {
                continue; // stale: the key was run or rescheduled since
            }
            self.run_key(slot, bound, None, out);
        }
    }

    /// Runs one key through its due times before `bound`; at `judge_all`
    /// (a rule change) it re-judges every rule whether or not anything is
    /// due.
    fn run_key(
        &mut self,
        slot: u32,
        bound: Time,
        judge_all: Option<Time>,
        out: &mut impl FnMut(Output, Time, isize),
    ) {
        self.slots[slot as usize].scheduled = Time::MAX;
        let mut all_pending = judge_all;
        loop {
            let state = &mut self.slots[slot as usize];
            let due = state.next_due();
            let now = match (due, all_pending) {
                (Some(d), Some(a)) => d.min(a),
                (d, a) => match d.or(a) {
                    Some(t) => t,
                    None => break,
                },
            };
            if now >= bound {
                break;
            }
            let all = all_pending == Some(now);
            if all {
                all_pending = None;
            }
            let changed = &mut self.scratch.changed;
            changed.clear();
            for ts in &mut state.terms {
                if ts.local.next_due().is_some_and(|d| d <= now)
                    && ts.local.advance(now, ts.distinct)
                {
                    changed.push(ts.term);
                }
            }
            while state.shares_in.front().is_some_and(|s| s.0 <= now) {
                if let Some((_, term, worker, summary)) = state.shares_in.pop_front() {
                    let distinct = self.rules.terms.get(&term).is_some_and(|t| t.distinct);
                    let ts = state.term_mut(term, distinct);
                    let at = ts.remote.iter().position(|(w, _)| *w == worker);
                    match (at, summary) {
                        (Some(i), Some(s)) => ts.remote[i].1 = s,
                        (Some(i), None) => {
                            ts.remote.swap_remove(i);
                        }
                        (None, Some(s)) => ts.remote.push((worker, s)),
                        (None, None) => continue,
                    }
                    changed.push(term);
                }
            }
            let woken = state.rules.iter().any(|r| r.wake.is_some_and(|w| w <= now));
            if all || woken || !self.scratch.changed.is_empty() {
                self.judge(slot, now, all, woken, out);
            }
        }
        let state = &mut self.slots[slot as usize];
        state.terms.retain(|t| !t.is_empty());
        if state.is_empty() {
            self.index.remove(&state.key);
            self.free.push(slot);
            return;
        }
        self.schedule(slot);
    }

    /// Re-judges the rules of a key at `now`: those that use a term that
    /// changed and those woken, or — after a rule change — all of them.
    fn judge(
        &mut self,
        slot: u32,
        now: Time,
        all: bool,
        woken: bool,
        out: &mut impl FnMut(Output, Time, isize),
    ) {
        let KeysState {
            rules,
            slots,
            scratch,
            update_interval,
            stats,
            ..
        } = self;
        let state = &mut slots[slot as usize];
        let key = state.key;
        let candidates = &mut scratch.candidates;
        candidates.clear();
        if all {
            candidates.extend_from_slice(&rules.by_group[group_index(group_of(&key))]);
            // Rules no longer installed retract what they emitted.
            state.rules.retain_mut(|r| {
                if rules.index.contains_key(&r.rule) {
                    return true;
                }
                if let Some(old) = r.emitted.take() {
                    out(((r.rule, key), old), now, -1);
                }
                false
            });
        } else {
            for t in &scratch.changed {
                if let Some(users) = rules.term_rules.get(t) {
                    candidates.extend_from_slice(users);
                }
            }
            if woken {
                for r in &state.rules {
                    if r.wake.is_some_and(|w| w <= now) {
                        if let Some(at) = rules.index.get(&r.rule) {
                            candidates.push(*at);
                        }
                    }
                }
            }
            if scratch.changed.len() > 1 || woken {
                candidates.sort_unstable();
                candidates.dedup();
            }
        }
        scratch.cache.clear();
        for i in 0..scratch.candidates.len() {
            let Some(rule) = rules.get(scratch.candidates[i]) else {
                continue;
            };
            let (id, plan) = (rule.id, &*rule.plan);
            // The rule's term values at this key.
            let mut has_data = false;
            scratch.stats.clear();
            scratch.values.clear();
            for rt in &rule.terms {
                let (s, data) = match scratch.cache.iter().find(|(t, _, _)| *t == rt.id) {
                    Some((_, s, d)) => (*s, *d),
                    None => {
                        let (s, d) = match state.terms.iter().find(|t| t.term == rt.id) {
                            Some(ts) => (ts.stats(&mut scratch.tokens), ts.has_data()),
                            None => (TermStats::default(), false),
                        };
                        scratch.cache.push((rt.id, s, d));
                        (s, d)
                    }
                };
                has_data |= data;
                let s = rt.read(&s);
                scratch.values.push(s.value(rt.agg));
                scratch.stats.push(s);
            }
            let at = state.rules.iter().position(|r| r.rule == id);
            let (active, hold_wake, at) = if rule.temporal {
                let mut machine = at.map_or(Temporal::default(), |i| state.rules[i].temporal);
                let values = has_data.then_some(scratch.values.as_slice());
                let (active, wake) = machine.step(plan, &rule.fast, now, values);
                if at.is_none() && machine.is_idle() {
                    continue;
                }
                let i = at.unwrap_or_else(|| {
                    state.rules.push(RuleSlot::new(id));
                    state.rules.len() - 1
                });
                state.rules[i].temporal = machine;
                (active && has_data, wake, i)
            } else {
                let holds = has_data && rule.fast.condition.truth(&scratch.values) == Some(true);
                let Some(i) = at.or_else(|| {
                    holds.then(|| {
                        state.rules.push(RuleSlot::new(id));
                        state.rules.len() - 1
                    })
                }) else {
                    continue;
                };
                (holds, None, i)
            };
            let slot_state = &mut state.rules[at];
            slot_state.wake = hold_wake;
            if !active {
                slot_state.deferred = false;
                if let Some(old) = slot_state.emitted.take() {
                    out(((id, key), old), now, -1);
                    slot_state.emitted_at = now;
                }
                continue;
            }
            let severity = rule.fast.severity_for(plan, &scratch.values);
            if let Some(old) = &slot_state.emitted {
                if old.severity == severity {
                    let same_values = old.values.len() == scratch.values.len()
                        && old
                            .values
                            .iter()
                            .zip(&scratch.values)
                            .all(|(a, b)| *a == b.map(F64))
                        && old
                            .evidence
                            .iter()
                            .zip(&scratch.stats)
                            .all(|(a, b)| *a == TermEvidence::of(b));
                    if same_values {
                        slot_state.deferred = false;
                        continue;
                    }
                    let due = slot_state.emitted_at.saturating_add(*update_interval);
                    if now < due {
                        slot_state.deferred = true;
                        stats.coalesced_updates.fetch_add(1, Ordering::Relaxed);
                        slot_state.wake = Some(hold_wake.map_or(due, |w| w.min(due)));
                        continue;
                    }
                }
            }
            let row = AlertRow {
                severity,
                values: scratch.values.iter().map(|v| v.map(F64)).collect(),
                evidence: scratch.stats.iter().map(TermEvidence::of).collect(),
            };
            if let Some(old) = slot_state.emitted.take() {
                out(((id, key), old), now, -1);
            }
            out(((id, key), row.clone()), now, 1);
            slot_state.emitted = Some(row);
            slot_state.emitted_at = now;
            slot_state.deferred = false;
        }
        if state.rules.iter().any(RuleSlot::is_idle) {
            state.rules.retain(|r| !r.is_idle());
        }
    }

    /// Applies rule installs and removals; returns whether any happened.
    fn apply_controls(&mut self, controls: Vec<Control>) -> bool {
        let mut changed = false;
        for c in &controls {
            if let Some(dead) = self.rules.apply(&self.registry, c) {
                changed = true;
                if !dead.is_empty() {
                    for state in &mut self.slots {
                        state.terms.retain(|t| !dead.contains(&t.term));
                        state.shares_in.retain(|s| !dead.contains(&s.1));
                    }
                    for inputs in self.arriving.values_mut() {
                        inputs.retain(|x| match x {
                            KeyInput::Piece(_, p) => !dead.contains(&p.term),
                            KeyInput::Summary(s) => !dead.contains(&s.term),
                            KeyInput::Sourced(..) => false,
                        });
                    }
                }
            }
        }
        changed
    }

    /// Re-judges every key at `at` (after a rule change).
    fn rejudge_all(&mut self, at: Time, out: &mut impl FnMut(Output, Time, isize)) {
        self.deliver(at + 1, false, out);
        let slots: Vec<u32> = self.index.values().copied().collect();
        for slot in slots {
            self.run_key(slot, at + 1, Some(at), out);
        }
    }

    fn count_slices(&mut self, now: Time) {
        if now < self.counted_at.saturating_add(COUNT_EVERY_MS) {
            return;
        }
        self.counted_at = now;
        let windows = self
            .slots
            .iter()
            .flat_map(|k| k.terms.iter().map(|t| &t.local));
        self.stats.count_slices(true, windows);
    }
}

/// Builds the keys operator over contributions and shares (exchanged by
/// key) and the control stream.
pub fn keys<'s>(
    input: StreamVec<'s, Time, KeyInput>,
    control: StreamVec<'s, Time, Control>,
    registry: PlanRegistry,
    update_interval: Time,
    stats: Arc<WindowStats>,
) -> VecCollection<'s, Time, Output, isize> {
    let exchange = Exchange::new(route_input);
    input
        .binary_frontier(
            control,
            exchange,
            Pipeline,
            "Keys",
            move |_initial, _info| {
                let mut state = KeysState {
                    registry,
                    update_interval,
                    rules: Rules::default(),
                    slots: Vec::new(),
                    free: Vec::new(),
                    index: FxHashMap::default(),
                    calendar: Calendar::default(),
                    arriving: BTreeMap::new(),
                    scratch: Scratch::default(),
                    stats,
                    counted_at: 0,
                };
                let mut queued: Queued<KeyInput> = Queued::default();
                move |(input, input_frontier), (control_in, control_frontier), output| {
                    input.for_each(|cap, data| queued.data(cap, data));
                    control_in.for_each(|cap, data| queued.controls(cap, data));
                    let complete_before = first(input_frontier).min(first(control_frontier));
                    let Queued { waiting, held } = &mut queued;
                    if let Some(cap) = held.as_ref() {
                        let mut session = output.session(cap);
                        let mut out = |data: Output, at: Time, diff: isize| {
                            session.give((data, at, diff));
                        };
                        let mut rules_changed = false;
                        waiting.work(complete_before, |work| match work {
                            Work::Arrived(batch) => state.insert(batch),
                            Work::RunTo(bound) => state.run_due(bound, &mut out),
                            Work::Controls(changes) => {
                                rules_changed = state.apply_controls(changes);
                            }
                            Work::Changed(at) => {
                                if std::mem::take(&mut rules_changed) {
                                    state.rejudge_all(at, &mut out);
                                }
                                state.run_due(at + 1, &mut out);
                            }
                        });
                        if complete_before < Time::MAX {
                            state.count_slices(complete_before);
                        }
                    }
                    let due = state.calendar.peek().map(|(t, _)| t);
                    let arriving = state.arriving.keys().next().copied();
                    queued.settle(due.into_iter().chain(arriving).min());
                }
            },
        )
        .as_collection()
}
