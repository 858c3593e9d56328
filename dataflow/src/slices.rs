//! A term's window at one key, kept as slices: one partial aggregate per
//! exit time, in the manner of stream slicing (Scotty: Traub et al.).
//!
//! A sliding window lets each contribution go at its event time plus the
//! window, rounded up to the window's step, so every contribution that
//! leaves at the same step shares one slice whatever the event rate: a
//! key's window holds at most about sixty slices (`window / step`), and its
//! memory grows with keys and steps, not with events. A tumbling window's
//! contributions all leave when the next window closes: one slice.
//!
//! Contributions that arrive before they may enter (replay on the event
//! clock reads ahead of the clock) wait in `pending` until their entry
//! time. The merged aggregate of the live slices is kept up to date, so a
//! rule reads a term in constant time; it is recomputed from the slices
//! only when one leaves (extremes cannot be subtracted).

use crate::types::{Partial, TermId, Time, F64};
use jingzhi_rules::fxhash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// One event's contribution to one term, on its way to the window that
/// holds it: it enters at `enter` and leaves at `exit`.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Piece {
    pub term: TermId,
    pub enter: Time,
    pub exit: Time,
    /// The event's time and the value it contributes.
    pub ts: Time,
    pub value: f64,
    /// For `count_distinct`: the value's token (ignored otherwise).
    pub token: u64,
}

impl Piece {
    fn agg(&self) -> Partial {
        Partial::of(self.value, self.ts)
    }
}

/// Everything in a window that leaves at `exit`.
#[derive(Clone, Debug, Default, PartialEq)]
struct Slice {
    exit: Time,
    agg: Partial,
    /// Distinct tokens, sorted (`count_distinct` terms only).
    tokens: Vec<u64>,
}

impl Slice {
    fn add(&mut self, agg: &Partial, token: u64, distinct: bool) -> bool {
        self.agg.merge(agg);
        if distinct {
            if let Err(i) = self.tokens.binary_search(&token) {
                self.tokens.insert(i, token);
                return true;
            }
        }
        false
    }
}

/// A window's state as it leaves the worker that holds it: the merged
/// aggregate and, for `count_distinct`, its distinct tokens.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub agg: Partial,
    /// Sorted.
    pub tokens: Vec<u64>,
}

/// One term's window at one key.
#[derive(Clone, Debug, Default)]
pub struct SliceWindow {
    live: VecDeque<Slice>,
    /// (enter, slice) not yet entered: appended as they come, sorted by
    /// (enter, exit) only when some are due (pieces from several workers
    /// interleave, and sorting once beats inserting in the middle).
    pending: VecDeque<(Time, Slice)>,
    pending_sorted: bool,
    /// The earliest entry in `pending` (`Time::MAX` if none).
    pending_min: Time,
    merged: Partial,
    /// Slices taken out of `merged` by subtraction since it was last
    /// computed from the slices.
    subtractions: u32,
    /// How many live slices hold each token (`count_distinct` only).
    tokens: FxHashMap<u64, u32>,
}

/// A window's merged sum is recomputed from its slices at least this often.
const EXACT_EVERY: u32 = 64;

impl SliceWindow {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.pending.is_empty()
    }

    /// Whether anything is in the window now.
    pub fn has_data(&self) -> bool {
        !self.live.is_empty()
    }

    pub fn merged(&self) -> &Partial {
        &self.merged
    }

    pub fn distinct(&self) -> u64 {
        self.tokens.len() as u64
    }

    /// Slices held, live and waiting.
    pub fn records(&self) -> (usize, usize) {
        (self.live.len(), self.pending.len())
    }

    pub fn summary(&self, distinct: bool) -> Summary {
        let mut tokens = Vec::new();
        if distinct {
            tokens.extend(self.tokens.keys().copied());
            tokens.sort_unstable();
        }
        Summary {
            agg: self.merged,
            tokens,
        }
    }

    /// Adds a contribution; it enters when the window is advanced to its
    /// entry time.
    pub fn insert(&mut self, piece: &Piece, distinct: bool) {
        if let Some((e, s)) = self.pending.back_mut() {
            match (*e, s.exit).cmp(&(piece.enter, piece.exit)) {
                std::cmp::Ordering::Equal => {
                    s.add(&piece.agg(), piece.token, distinct);
                    return;
                }
                std::cmp::Ordering::Greater => self.pending_sorted = false,
                std::cmp::Ordering::Less => {}
            }
        }
        let mut slice = Slice {
            exit: piece.exit,
            agg: piece.agg(),
            tokens: Vec::new(),
        };
        if distinct {
            slice.tokens.push(piece.token);
        }
        self.push_pending(piece.enter, slice);
    }

    fn push_pending(&mut self, enter: Time, slice: Slice) {
        if self.pending.is_empty() {
            self.pending_sorted = true;
            self.pending_min = Time::MAX;
        }
        self.pending_min = self.pending_min.min(enter);
        self.pending.push_back((enter, slice));
    }

    /// The next time at which something enters or leaves.
    pub fn next_due(&self) -> Option<Time> {
        let enter = (!self.pending.is_empty()).then_some(self.pending_min);
        let exit = self.live.front().map(|s| s.exit);
        match (enter, exit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sorts `pending` by (enter, exit), merging equal ones.
    fn sort_pending(&mut self, distinct: bool) {
        if self.pending_sorted {
            return;
        }
        self.pending
            .make_contiguous()
            .sort_unstable_by_key(|(e, s)| (*e, s.exit));
        let mut merged: VecDeque<(Time, Slice)> = VecDeque::with_capacity(self.pending.len());
        for (e, s) in self.pending.drain(..) {
            match merged.back_mut() {
                Some((me, ms)) if (*me, ms.exit) == (e, s.exit) => {
                    ms.agg.merge(&s.agg);
                    if distinct {
                        for &t in &s.tokens {
                            ms.add(&Partial::EMPTY, t, true);
                        }
                    }
                }
                _ => merged.push_back((e, s)),
            }
        }
        self.pending = merged;
        self.pending_sorted = true;
    }

    /// Puts a contribution leaving at `exit` into the live slices.
    fn enter(&mut self, exit: Time, agg: &Partial, tokens: &[u64], distinct: bool) {
        self.merged.merge(agg);
        // Exits mostly arrive in order: look from the back.
        let mut i = self.live.len();
        while i > 0 && self.live[i - 1].exit > exit {
            i -= 1;
        }
        let slice = if i > 0 && self.live[i - 1].exit == exit {
            &mut self.live[i - 1]
        } else {
            self.live.insert(
                i,
                Slice {
                    exit,
                    agg: Partial::EMPTY,
                    tokens: Vec::new(),
                },
            );
            &mut self.live[i]
        };
        slice.agg.merge(agg);
        if distinct {
            for &token in tokens {
                if slice.add(&Partial::EMPTY, token, true) {
                    *self.tokens.entry(token).or_default() += 1;
                }
            }
        }
    }

    /// Brings the window to clock time `now`: pending contributions whose
    /// time has come enter, slices whose exit has come leave. Returns
    /// whether the window changed.
    pub fn advance(&mut self, now: Time, distinct: bool) -> bool {
        let mut changed = false;
        if !self.pending.is_empty() && self.pending_min <= now {
            self.sort_pending(distinct);
            while self.pending.front().is_some_and(|(enter, _)| *enter <= now) {
                if let Some((_, slice)) = self.pending.pop_front() {
                    self.enter(slice.exit, &slice.agg, &slice.tokens, distinct);
                    changed = true;
                }
            }
            self.pending_min = self.pending.front().map_or(Time::MAX, |(e, _)| *e);
        }
        let mut recompute = false;
        while self.live.front().is_some_and(|s| s.exit <= now) {
            let Some(slice) = self.live.pop_front() else {
                break;
            };
            changed = true;
            for token in &slice.tokens {
                if let Some(n) = self.tokens.get_mut(token) {
                    *n -= 1;
                    if *n == 0 {
                        self.tokens.remove(token);
                    }
                }
            }
            // Counts and sums are taken out; an extreme or the latest
            // value that leaves needs the remaining slices read again, as
            // does a long run of subtractions (rounding).
            let (m, a) = (&mut self.merged, &slice.agg);
            m.count -= a.count;
            m.sum -= a.sum;
            self.subtractions += 1;
            if a.min <= m.min
                || a.max >= m.max
                || (a.last_ts, F64(a.last)) >= (m.last_ts, F64(m.last))
                || self.subtractions >= EXACT_EVERY
            {
                recompute = true;
            }
        }
        if recompute || (changed && self.live.is_empty()) {
            let mut merged = Partial::EMPTY;
            for s in &self.live {
                merged.merge(&s.agg);
            }
            self.merged = merged;
            self.subtractions = 0;
        }
        changed
    }

    /// Adds everything `other` holds (for rebuilding a derived window).
    pub fn absorb(&mut self, other: &SliceWindow, distinct: bool) {
        for s in &other.live {
            self.enter(s.exit, &s.agg, &s.tokens, distinct);
        }
        for (enter, s) in &other.pending {
            if self
                .pending
                .back()
                .is_some_and(|(e, b)| (*e, b.exit) > (*enter, s.exit))
            {
                self.pending_sorted = false;
            }
            self.push_pending(*enter, s.clone());
        }
    }
}

/// When each thing (a key, a share) is next due, earliest first. A thing
/// is in the calendar under the time it was last scheduled for; an entry
/// whose time no longer matches is stale and skipped.
#[derive(Debug, Default)]
pub struct Calendar {
    heap: BinaryHeap<Reverse<(Time, u32)>>,
}

impl Calendar {
    pub fn push(&mut self, at: Time, id: u32) {
        self.heap.push(Reverse((at, id)));
    }

    pub fn peek(&self) -> Option<(Time, u32)> {
        self.heap.peek().map(|Reverse(x)| *x)
    }

    pub fn pop(&mut self) -> Option<(Time, u32)> {
        self.heap.pop().map(|Reverse(x)| x)
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(enter: Time, exit: Time, x: f64, token: u64) -> Piece {
        Piece {
            term: 1,
            enter,
            exit,
            ts: enter,
            value: x,
            token,
        }
    }

    #[test]
    fn slices_enter_merge_and_leave() {
        let mut w = SliceWindow::default();
        w.insert(&piece(10, 100, 3.0, 0), false);
        // Same entry and exit: the same slice.
        w.insert(&piece(10, 100, 5.0, 0), false);
        w.insert(&piece(20, 110, 1.0, 0), false);
        assert_eq!(w.next_due(), Some(10));
        assert!(!w.has_data());
        assert!(w.advance(10, false));
        assert_eq!(w.merged().count, 2);
        assert_eq!(w.next_due(), Some(20));
        assert!(w.advance(20, false));
        assert_eq!((w.merged().count, w.merged().min), (3, 1.0));
        assert_eq!(w.next_due(), Some(100));
        assert!(w.advance(100, false));
        assert_eq!((w.merged().count, w.merged().max), (1, 1.0));
        assert!(w.advance(110, false));
        assert!(w.is_empty());
        assert!(!w.advance(120, false));
        assert_eq!(w.next_due(), None);
    }

    #[test]
    fn distinct_tokens_count_once_across_slices() {
        let mut w = SliceWindow::default();
        w.insert(&piece(0, 100, 1.0, 7), true);
        w.insert(&piece(0, 200, 1.0, 7), true);
        w.insert(&piece(0, 200, 1.0, 9), true);
        w.advance(0, true);
        assert_eq!(w.distinct(), 2);
        w.advance(100, true);
        assert_eq!(w.distinct(), 2);
        assert_eq!(w.summary(true).tokens, vec![7, 9]);
        w.advance(200, true);
        assert_eq!(w.distinct(), 0);
    }

    #[test]
    fn the_calendar_gives_the_earliest_first() {
        let mut c = Calendar::default();
        c.push(30, 1);
        c.push(10, 2);
        c.push(20, 3);
        assert_eq!(c.pop(), Some((10, 2)));
        assert_eq!(c.peek(), Some((20, 3)));
        assert_eq!(c.pop(), Some((20, 3)));
        assert_eq!(c.pop(), Some((30, 1)));
        assert!(c.is_empty());
    }
}
