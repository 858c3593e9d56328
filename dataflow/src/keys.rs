//! The key operator: every rule of a key evaluated at once.
//!
//! Terms are shared: rules that read the same events the same way use one
//! term (`registry::term_id`), whose window contents arrive here as slice
//! summaries and whole-window partials, keyed by (term, group key). The
//! operator owns each key on one worker (input exchanged by key), keeps
//! the key's partials per term in memory, and — once the frontier has
//! passed a time — re-evaluates the rules of every key that changed at that
//! time: it merges each term the key's rules use once, tests each rule's
//! condition (or builds a temporal rule's facts) and emits the difference
//! to what it emitted before, as updates of ((rule, key), output).
//!
//! A rule is evaluated at a key only while at least one of its own terms
//! has data there, exactly as a per-(rule, key) reduce would. Installing
//! or removing a rule is data too (the rule-change stream, which every
//! worker receives in order): at that time every key is re-evaluated, so a
//! new rule is judged at once on the windows its terms already hold.
//!
//! Compared with one differential reduce per (rule, key), a hundred rules
//! of a few kinds cost one pass per changed key instead of a hundred
//! arranged records, and no per-rule copy of the partials is kept.

use crate::registry::PlanRegistry;
use crate::types::{
    AlertRow, Facts, GroupKey, KeyOutput, Partial, RuleId, TermEvidence, TermId, Time, F64,
};
use differential_dataflow::{AsCollection, VecCollection};
use jingzhi_rules::fxhash::FxHashMap;
use jingzhi_rules::plan::{AggFn, GroupBy, RulePlan, TermStats};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

/// An installed rule as the operator sees it.
struct Installed {
    plan: Arc<RulePlan>,
    terms: Vec<TermId>,
}

/// A key's window contents and what was emitted for it. A key has a few
/// terms and each term a few partials (at most the slices of its window,
/// or a tumbling window's partials), so plain vectors beat maps here.
#[derive(Default)]
struct KeyState {
    /// Per term, its partials (slice summaries and whole-window partials)
    /// with their multiplicities.
    partials: Vec<(TermId, Vec<(Partial, isize)>)>,
    /// The output last emitted per rule.
    outputs: Vec<(RuleId, KeyOutput)>,
}

impl KeyState {
    fn apply(&mut self, term: TermId, partial: Partial, diff: isize) {
        let t = match self.partials.iter().position(|(id, _)| *id == term) {
            Some(t) => t,
            None => {
                self.partials.push((term, Vec::new()));
                self.partials.len() - 1
            }
        };
        let list = &mut self.partials[t].1;
        match list.iter_mut().position(|(p, _)| *p == partial) {
            Some(i) => {
                list[i].1 += diff;
                if list[i].1 == 0 {
                    list.swap_remove(i);
                }
            }
            None => list.push((partial, diff)),
        }
        if list.is_empty() {
            self.partials.swap_remove(t);
        }
    }

    fn partials_of(&self, term: TermId) -> Option<&[(Partial, isize)]> {
        self.partials
            .iter()
            .find(|(id, _)| *id == term)
            .map(|(_, l)| l.as_slice())
    }

    fn has_data(&self, term: TermId) -> bool {
        self.partials_of(term)
            .is_some_and(|l| l.iter().any(|(_, m)| *m > 0))
    }

    /// A term's contents at this key: merged partials and distinct tokens.
    fn stats(&self, term: TermId) -> TermStats {
        let Some(list) = self.partials_of(term) else {
            return TermStats::default();
        };
        let mut merged = Partial::empty();
        let mut tokens: Vec<u64> = Vec::new();
        for (p, mult) in list {
            if *mult > 0 {
                merged.merge(p, *mult as u64);
                tokens.push(p.token);
            }
        }
        if merged.count == 0 {
            return TermStats::default();
        }
        tokens.sort_unstable();
        tokens.dedup();
        let mut s = merged.stats();
        s.distinct = tokens.len() as u64;
        s
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

/// Evaluates one rule at one key from its terms' contents.
fn evaluate(plan: &RulePlan, stats: &[TermStats]) -> Option<KeyOutput> {
    let values: Vec<Option<f64>> = plan
        .terms
        .iter()
        .zip(stats)
        .map(|(t, s)| s.value(t.agg))
        .collect();
    let evidence = stats
        .iter()
        .map(|s| TermEvidence {
            count: s.count,
            sum: F64(s.sum),
            min: F64(s.min),
            max: F64(s.max),
            last: F64(s.last),
            distinct: s.distinct,
        })
        .collect();
    if plan.is_temporal() {
        return Some(KeyOutput::Facts(Facts {
            values: values.into_iter().map(|v| v.map(F64)).collect(),
            evidence,
        }));
    }
    if plan.condition.eval_terms(&values).truth() != Some(true) {
        return None;
    }
    Some(KeyOutput::Alert(AlertRow {
        severity: plan.severity_for(&values),
        values: values.into_iter().map(|v| v.map(F64)).collect(),
        evidence,
    }))
}

/// Re-evaluates the rules of `group` at a key — all of them, or those
/// that use one of the `changed` terms — and reports each rule whose
/// output changed as (rule, old, new).
fn reevaluate(
    state: &mut KeyState,
    rules: &BTreeMap<RuleId, Installed>,
    group: &[RuleId],
    changed: Option<&[TermId]>,
    scratch: &mut Scratch,
    mut report: impl FnMut(RuleId, Option<KeyOutput>, Option<&KeyOutput>),
) {
    let Scratch {
        cache,
        fresh,
        stats,
    } = scratch;
    cache.clear();
    fresh.clear();
    for id in group {
        let Some(rule) = rules.get(id) else {
            continue;
        };
        if let Some(changed) = changed {
            if !rule.terms.iter().any(|t| changed.contains(t)) {
                continue;
            }
        }
        if !rule.terms.iter().any(|t| state.has_data(*t)) {
            fresh.push((*id, None));
            continue;
        }
        stats.clear();
        for (id, term) in rule.terms.iter().zip(&rule.plan.terms) {
            let mut s = match cache.iter().find(|(t, _)| t == id) {
                Some((_, s)) => *s,
                None => {
                    let s = state.stats(*id);
                    cache.push((*id, s));
                    s
                }
            };
            if term.agg != AggFn::CountDistinct {
                // Only a distinct count collects tokens.
                s.distinct = 0;
            }
            stats.push(s);
        }
        fresh.push((*id, evaluate(&rule.plan, stats)));
    }
    if changed.is_none() {
        // Every rule was judged: outputs of rules no longer installed go.
        let gone: Vec<RuleId> = state
            .outputs
            .iter()
            .map(|(r, _)| *r)
            .filter(|r| !fresh.iter().any(|(f, _)| f == r))
            .collect();
        for r in gone {
            fresh.push((r, None));
        }
    }
    for (rule, new) in fresh.drain(..) {
        let at = state.outputs.iter().position(|(r, _)| *r == rule);
        let old = at.map(|i| &state.outputs[i].1);
        if old == new.as_ref() {
            continue;
        }
        match (at, new) {
            (Some(i), Some(new)) => {
                let old = std::mem::replace(&mut state.outputs[i].1, new);
                report(rule, Some(old), Some(&state.outputs[i].1));
            }
            (Some(i), None) => {
                let (_, old) = state.outputs.swap_remove(i);
                report(rule, Some(old), None);
            }
            (None, Some(new)) => {
                state.outputs.push((rule, new));
                if let Some((_, new)) = state.outputs.last() {
                    report(rule, None, Some(new));
                }
            }
            (None, None) => {}
        }
    }
}

/// Buffers `reevaluate` reuses from key to key.
#[derive(Default)]
struct Scratch {
    cache: Vec<(TermId, TermStats)>,
    fresh: Vec<(RuleId, Option<KeyOutput>)>,
    stats: Vec<TermStats>,
}

/// Index of a group in per-group tables.
fn group_index(group: GroupBy) -> usize {
    match group {
        GroupBy::Cell => 0,
        GroupBy::District => 1,
        GroupBy::Segment => 2,
        GroupBy::Sensor => 3,
    }
}

fn route(key: &GroupKey) -> u64 {
    let mut h = jingzhi_rules::fxhash::FxHasher::default();
    key.hash(&mut h);
    h.finish()
}

type Summary = ((TermId, GroupKey), Partial);
type Output = ((RuleId, GroupKey), KeyOutput);

/// Evaluates every installed rule at every key whose terms changed.
pub fn evaluate_keys<'s>(
    summaries: VecCollection<'s, Time, Summary, isize>,
    rule_changes: StreamVec<'s, Time, (RuleId, bool)>,
    registry: PlanRegistry,
) -> VecCollection<'s, Time, Output, isize> {
    let exchange = Exchange::new(|(((_, key), _), _, _): &(Summary, Time, isize)| route(key));
    summaries
        .inner
        .binary_frontier(
            rule_changes,
            exchange,
            Pipeline,
            "Keys",
            move |_initial, _info| {
                type Pending = (Vec<(TermId, GroupKey, Partial, isize)>, Vec<(RuleId, bool)>);
                let mut pending: BTreeMap<Time, Pending> = BTreeMap::new();
                let mut rules: BTreeMap<RuleId, Installed> = BTreeMap::new();
                let mut by_group: [Vec<RuleId>; 4] = Default::default();
                let mut keys: FxHashMap<GroupKey, KeyState> = FxHashMap::default();
                let mut held: Option<Capability<Time>> = None;
                let mut scratch = Scratch::default();
                let mut changed: Vec<TermId> = Vec::new();
                move |(summaries, summaries_frontier), (changes, changes_frontier), output| {
                    summaries.for_each(|cap, data| {
                        let Some(t) = cap.least().copied() else {
                            return;
                        };
                        if held.as_ref().is_none_or(|h| t < *h.time()) {
                            held = cap.retain_least(0);
                        }
                        for (((term, key), p), time, diff) in data.drain(..) {
                            pending
                                .entry(time)
                                .or_default()
                                .0
                                .push((term, key, p, diff));
                        }
                    });
                    changes.for_each(|cap, data| {
                        let Some(t) = cap.least().copied() else {
                            return;
                        };
                        if held.as_ref().is_none_or(|h| t < *h.time()) {
                            held = cap.retain_least(0);
                        }
                        pending.entry(t).or_default().1.append(data);
                    });
                    let first = |f: &timely::progress::frontier::MutableAntichain<Time>| {
                        f.frontier().first().copied().unwrap_or(Time::MAX)
                    };
                    let complete_before = first(summaries_frontier).min(first(changes_frontier));
                    if let Some(cap) = held.as_ref() {
                        let mut session = output.session(cap);
                        while let Some(entry) = pending.first_entry() {
                            let now = *entry.key();
                            if now >= complete_before {
                                break;
                            }
                            let (updates, rule_changes) = entry.remove();
                            let rules_changed = !rule_changes.is_empty();
                            if rules_changed {
                                for (id, add) in rule_changes {
                                    if add {
                                        if let Some(info) = registry.info(id) {
                                            rules.insert(
                                                id,
                                                Installed {
                                                    plan: info.plan.clone(),
                                                    terms: info.term_ids.clone(),
                                                },
                                            );
                                        }
                                    } else {
                                        rules.remove(&id);
                                    }
                                }
                                for list in &mut by_group {
                                    list.clear();
                                }
                                for (id, r) in &rules {
                                    by_group[group_index(r.plan.group_by)].push(*id);
                                }
                            }
                            // (key, term) pairs that changed; after a rule
                            // change, every key and every rule.
                            let mut touched: Vec<(GroupKey, TermId)> =
                                Vec::with_capacity(updates.len());
                            for (term, key, p, diff) in updates {
                                keys.entry(key).or_default().apply(term, p, diff);
                                touched.push((key, term));
                            }
                            if rules_changed {
                                touched.extend(keys.keys().map(|k| (*k, 0)));
                            }
                            touched.sort_unstable();
                            touched.dedup();
                            let mut i = 0;
                            while i < touched.len() {
                                let key = touched[i].0;
                                let mut j = i;
                                while j < touched.len() && touched[j].0 == key {
                                    j += 1;
                                }
                                changed.clear();
                                changed.extend(touched[i..j].iter().map(|(_, t)| *t));
                                i = j;
                                let Some(state) = keys.get_mut(&key) else {
                                    continue;
                                };
                                let group = &by_group[group_index(group_of(&key))];
                                let only = (!rules_changed).then_some(changed.as_slice());
                                reevaluate(
                                    state,
                                    &rules,
                                    group,
                                    only,
                                    &mut scratch,
                                    |rule, old, new| {
                                        if let Some(old) = old {
                                            session.give((((rule, key), old), now, -1));
                                        }
                                        if let Some(new) = new {
                                            session.give((((rule, key), new.clone()), now, 1));
                                        }
                                    },
                                );
                                if state.partials.is_empty() && state.outputs.is_empty() {
                                    keys.remove(&key);
                                }
                            }
                        }
                    }
                    match pending.keys().next() {
                        Some(t) => {
                            if let Some(cap) = held.as_mut() {
                                if *cap.time() < *t {
                                    cap.downgrade(t);
                                }
                            }
                        }
                        None => held = None,
                    }
                }
            },
        )
        .as_collection()
}
