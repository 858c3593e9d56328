//! What the keys and sources operators share: input held by the time it
//! was sent until the frontier passes it, rule and reference changes that
//! split the work at their times, and the capability held for the earliest
//! thing still to do.
//!
//! Both operators run each of their keys (or shares) through its own
//! times independently; only a control — a rule installed or removed, a
//! change of reference data — concerns every key at once. So the work
//! before the frontier is cut at control times: everything before a
//! control, then the control with what was sent along with it, then on.

use crate::sources::Control;
use crate::types::Time;
use std::collections::BTreeMap;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::progress::frontier::MutableAntichain;

/// What to do next, in order.
pub enum Work<D> {
    /// Input that arrived: take it in (it takes effect at its own times,
    /// never before it was sent).
    Arrived(Vec<D>),
    /// Run everything due before this time.
    RunTo(Time),
    /// The controls at the next control time, before what was sent with
    /// them arrives.
    Controls(Vec<Control>),
    /// The controls at this time and what was sent with them are in: act
    /// on the change, then run everything due at this time.
    Changed(Time),
}

/// Input and controls waiting for the frontier, and the capability held
/// for the earliest of them or of the operator's own due times.
pub struct Queued<D> {
    pub waiting: Waiting<D>,
    pub held: Option<Capability<Time>>,
}

impl<D> Default for Queued<D> {
    fn default() -> Self {
        Queued {
            waiting: Waiting {
                inbox: BTreeMap::new(),
                controls: BTreeMap::new(),
            },
            held: None,
        }
    }
}

impl<D> Queued<D> {
    pub fn data(&mut self, cap: InputCapability<Time>, data: &mut Vec<D>) {
        if let Some(sent) = self.hold_for(&cap) {
            self.waiting
                .inbox
                .entry(sent)
                .or_default()
                .push(std::mem::take(data));
        }
    }

    pub fn controls(&mut self, cap: InputCapability<Time>, controls: &mut Vec<Control>) {
        if let Some(at) = self.hold_for(&cap) {
            self.waiting
                .controls
                .entry(at)
                .or_default()
                .append(controls);
        }
    }

    /// Keeps the held capability at or before input just received.
    fn hold_for(&mut self, cap: &InputCapability<Time>) -> Option<Time> {
        let t = cap.least().copied()?;
        if self.held.as_ref().is_none_or(|h| t < *h.time()) {
            self.held = cap.retain_least(0);
        }
        Some(t)
    }

    /// Moves the held capability up to the earliest thing still to do
    /// (waiting input, or `due`, the operator's own next time), or lets it
    /// go.
    pub fn settle(&mut self, due: Option<Time>) {
        let earliest = self.waiting.earliest().into_iter().chain(due).min();
        match earliest {
            Some(t) => {
                if let Some(cap) = self.held.as_mut() {
                    if *cap.time() < t {
                        cap.downgrade(&t);
                    }
                }
            }
            None => self.held = None,
        }
    }
}

/// Input and controls by the time they were sent at.
pub struct Waiting<D> {
    inbox: BTreeMap<Time, Vec<Vec<D>>>,
    controls: BTreeMap<Time, Vec<Control>>,
}

impl<D> Waiting<D> {
    /// Hands out, in order, everything that can be done before
    /// `complete_before`.
    pub fn work(&mut self, complete_before: Time, mut f: impl FnMut(Work<D>)) {
        loop {
            let change = self
                .controls
                .keys()
                .next()
                .copied()
                .filter(|c| *c < complete_before);
            let bound = change.unwrap_or(complete_before);
            while let Some(entry) = self.inbox.first_entry() {
                if *entry.key() >= bound {
                    break;
                }
                for batch in entry.remove() {
                    f(Work::Arrived(batch));
                }
            }
            f(Work::RunTo(bound));
            let Some(at) = change else {
                break;
            };
            f(Work::Controls(
                self.controls.remove(&at).unwrap_or_default(),
            ));
            for batch in self.inbox.remove(&at).unwrap_or_default() {
                f(Work::Arrived(batch));
            }
            f(Work::Changed(at));
        }
    }

    pub fn earliest(&self) -> Option<Time> {
        let a = self.inbox.keys().next().copied();
        let b = self.controls.keys().next().copied();
        a.into_iter().chain(b).min()
    }
}

/// The first time of a frontier (every earlier time is complete).
pub fn first(frontier: &MutableAntichain<Time>) -> Time {
    frontier.frontier().first().copied().unwrap_or(Time::MAX)
}
