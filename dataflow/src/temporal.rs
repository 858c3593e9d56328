//! The temporal operator: alerts that depend on history — a hold duration
//! (`for 2m`), a clear condition (hysteresis) or a sequence (`after … within`).
//!
//! Its input is each key's facts (term values and evidence) as a
//! differential collection; it processes them in time order, once the
//! frontier has passed each time, running one small state machine per key,
//! and emits the alert collection as differential updates. A hold that
//! expires without any new fact is a timer: the operator keeps a capability
//! for it and acts at exactly that time.
//!
//! The rules of the state machine, per key, at each time something changes:
//!
//! 1. The *run*: while the raise condition holds, the run continues; it
//!    starts when the condition becomes true — and is good only if, for a
//!    sequence, its A term is non-empty at that moment; it ends when the
//!    condition stops holding.
//! 2. An active alert clears when its key has no data left, or when the
//!    clear condition is true, or — without a clear condition — when the run
//!    ends.
//! 3. An inactive alert is raised once a good run has lasted the hold.

use crate::registry::PlanRegistry;
use crate::types::{AlertRow, Facts, GroupKey, RuleId, Time};
use differential_dataflow::{AsCollection, VecCollection};
use jingzhi_rules::plan::RulePlan;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

type Key = (RuleId, GroupKey);

#[derive(Default)]
struct KeyState {
    facts: Option<Facts>,
    run_start: Option<Time>,
    run_ok: bool,
    active: bool,
    /// The row currently published for this key.
    row: Option<AlertRow>,
}

impl KeyState {
    fn step(&mut self, plan: &RulePlan, now: Time) {
        let values = self.facts.as_ref().map(|f| f.plain_values());
        let raise = values
            .as_ref()
            .is_some_and(|v| plan.condition.eval_terms(v).truth() == Some(true));
        if raise {
            if self.run_start.is_none() {
                self.run_start = Some(now);
                self.run_ok = match plan.after {
                    Some(a) => values
                        .as_ref()
                        .and_then(|v| v.get(a).copied().flatten())
                        .is_some_and(|n| n >= 1.0),
                    None => true,
                };
            }
        } else {
            self.run_start = None;
            self.run_ok = false;
        }
        if self.active {
            let clear = match (&values, &plan.clear) {
                (None, _) => true,
                (Some(v), Some(c)) => c.eval_terms(v).truth() == Some(true),
                (Some(_), None) => self.run_start.is_none(),
            };
            if clear {
                self.active = false;
            }
        }
        if !self.active && self.run_ok {
            if let Some(s) = self.run_start {
                if now.saturating_sub(s) >= plan.hold_ms {
                    self.active = true;
                }
            }
        }
    }

    fn current_row(&self, plan: &RulePlan) -> Option<AlertRow> {
        let facts = self.facts.as_ref()?;
        if !self.active {
            return None;
        }
        Some(AlertRow {
            severity: plan.severity_for(&facts.plain_values()),
            values: facts.values.clone(),
            evidence: facts.evidence.clone(),
        })
    }

    fn is_idle(&self) -> bool {
        self.facts.is_none() && !self.active && self.run_start.is_none() && self.row.is_none()
    }
}

/// Runs the temporal rules' state machines over their keys' facts.
pub fn states<'s>(
    facts: VecCollection<'s, Time, (Key, Facts), isize>,
    registry: PlanRegistry,
) -> VecCollection<'s, Time, (Key, AlertRow), isize> {
    // The facts of one key all come from the reduce that owns the key, on
    // one worker, so the state machines need no exchange.
    facts
        .inner
        .unary_frontier(Pipeline, "Temporal", move |_initial, _info| {
            let mut pending: BTreeMap<Time, Vec<(Key, Facts, isize)>> = BTreeMap::new();
            let mut timers: BTreeMap<Time, BTreeSet<Key>> = BTreeMap::new();
            let mut keys: HashMap<Key, KeyState> = HashMap::new();
            let mut held: Option<Capability<Time>> = None;
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let Some(t) = cap.least().copied() else {
                        return;
                    };
                    if held.as_ref().is_none_or(|h| t < *h.time()) {
                        held = cap.retain_least(0);
                    }
                    for (d, time, diff) in data.drain(..) {
                        pending.entry(time).or_default().push((d.0, d.1, diff));
                    }
                });
                let complete_before = frontier.frontier().first().copied().unwrap_or(Time::MAX);
                if let Some(cap) = held.as_ref() {
                    let mut session = output.session(cap);
                    loop {
                        let next = match (pending.keys().next(), timers.keys().next()) {
                            (Some(a), Some(b)) => *a.min(b),
                            (Some(a), None) => *a,
                            (None, Some(b)) => *b,
                            (None, None) => break,
                        };
                        if next >= complete_before {
                            break;
                        }
                        let mut touched: BTreeSet<Key> = timers.remove(&next).unwrap_or_default();
                        let mut updates = pending.remove(&next).unwrap_or_default();
                        // A changed fact is a retraction and an insertion at
                        // one time: retract first, then insert.
                        updates.sort_by_key(|u| u.2 > 0);
                        for (key, f, diff) in updates {
                            let state = keys.entry(key).or_default();
                            if diff < 0 {
                                if state.facts.as_ref() == Some(&f) {
                                    state.facts = None;
                                }
                            } else {
                                state.facts = Some(f);
                            }
                            touched.insert(key);
                        }
                        for key in touched {
                            let Some(plan) = registry.get(key.0) else {
                                continue;
                            };
                            let Some(state) = keys.get_mut(&key) else {
                                continue;
                            };
                            state.step(&plan, next);
                            let row = state.current_row(&plan);
                            if row != state.row {
                                if let Some(old) = state.row.take() {
                                    session.give(((key, old), next, -1));
                                }
                                if let Some(new) = row.clone() {
                                    session.give(((key, new), next, 1));
                                }
                                state.row = row;
                            }
                            if !state.active && state.run_ok {
                                if let Some(s) = state.run_start {
                                    let due = s.saturating_add(plan.hold_ms);
                                    if due > next {
                                        timers.entry(due).or_default().insert(key);
                                    }
                                }
                            }
                            if state.is_idle() {
                                keys.remove(&key);
                            }
                        }
                    }
                }
                let earliest = match (pending.keys().next(), timers.keys().next()) {
                    (Some(a), Some(b)) => Some(*a.min(b)),
                    (a, b) => a.or(b).copied(),
                };
                match earliest {
                    Some(t) => {
                        if let Some(cap) = held.as_mut() {
                            if *cap.time() < t {
                                cap.downgrade(&t);
                            }
                        }
                    }
                    None => held = None,
                }
            }
        })
        .as_collection()
}
