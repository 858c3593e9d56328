//! The simulator's queue of timed tasks: a calendar queue that hands tasks
//! out in exactly the order of one binary heap, with less work per task.
//!
//! The full-scale city keeps about 50,000 tasks queued (one next report per
//! source). In one binary heap every pop walks 16 levels of a 2 MB array,
//! missing the cache at most of them, and that was a quarter of the time
//! spent writing events. Here only the tasks due within the next
//! [`BUCKET_MS`] wait in a heap (a couple of thousand at 20,000 events/s,
//! which fit in the cache); those due within the next [`BUCKETS`] buckets
//! wait unsorted in their bucket; later ones in a second heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Width of a bucket of due times, ms.
const BUCKET_MS: u64 = 100;
/// Buckets in the ring: 409.6 s ahead, which holds road and gas reports
/// at every natural cadence; hourly and quarter-hourly ones wait in `later`.
const BUCKETS: u64 = 4096;
const SPAN_MS: u64 = BUCKET_MS * BUCKETS;

/// A task's due time, ms; the queue's order is the task's own `Ord`, which
/// must sort by due time first.
pub(crate) trait Due {
    fn due(&self) -> u64;
}

/// Tasks in their `Ord` order (smallest first), as a `BinaryHeap` of
/// `Reverse` would give them.
pub(crate) struct CalendarQueue<T> {
    /// Every task due before `horizon`.
    near: BinaryHeap<Reverse<T>>,
    /// A multiple of `BUCKET_MS`; nothing outside `near` is due before it.
    horizon: u64,
    /// Tasks due in `[horizon, horizon + SPAN_MS)`, the bucket of due time
    /// `d` at `(d / BUCKET_MS) % BUCKETS`.
    buckets: Vec<Vec<Reverse<T>>>,
    in_buckets: usize,
    /// Tasks due at or after `horizon + SPAN_MS`.
    later: BinaryHeap<Reverse<T>>,
    len: usize,
}

impl<T: Ord + Due> CalendarQueue<T> {
    pub(crate) fn new() -> CalendarQueue<T> {
        CalendarQueue {
            near: BinaryHeap::new(),
            horizon: 0,
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            in_buckets: 0,
            later: BinaryHeap::new(),
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, task: T) {
        self.len += 1;
        let due = task.due();
        if due < self.horizon {
            self.near.push(Reverse(task));
        } else if due - self.horizon < SPAN_MS {
            self.bucket_of(due).push(Reverse(task));
            self.in_buckets += 1;
        } else {
            self.later.push(Reverse(task));
        }
    }

    /// The due time of the first task.
    pub(crate) fn next_due(&mut self) -> Option<u64> {
        if self.near.is_empty() {
            self.refill();
        }
        self.near.peek().map(|Reverse(t)| t.due())
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.near.is_empty() {
            self.refill();
        }
        let Reverse(task) = self.near.pop()?;
        self.len -= 1;
        Some(task)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn bucket_of(&mut self, due: u64) -> &mut Vec<Reverse<T>> {
        // In range by the callers' checks: the index is below BUCKETS.
        &mut self.buckets[((due / BUCKET_MS) % BUCKETS) as usize]
    }

    /// Moves the next non-empty bucket into `near` (whose tasks are then
    /// all due before the new horizon, and everything else after it).
    fn refill(&mut self) {
        while self.len > 0 {
            if self.in_buckets == 0 {
                // Nothing within the ring: jump to the first later task.
                let Some(Reverse(first)) = self.later.peek() else {
                    return;
                };
                self.horizon = first.due() / BUCKET_MS * BUCKET_MS;
                self.pull_later();
            }
            let horizon = self.horizon;
            let bucket = std::mem::take(self.bucket_of(horizon));
            self.in_buckets -= bucket.len();
            self.horizon += BUCKET_MS;
            // The freed bucket now stands for the ring's last slot.
            self.pull_later();
            if !bucket.is_empty() {
                self.near = BinaryHeap::from(bucket);
                return;
            }
        }
    }

    /// Moves later tasks that fall within the ring into their buckets.
    fn pull_later(&mut self) {
        let end = self.horizon + SPAN_MS;
        while self.later.peek().is_some_and(|Reverse(t)| t.due() < end) {
            if let Some(task) = self.later.pop() {
                let due = task.0.due();
                self.bucket_of(due).push(task);
                self.in_buckets += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::Rng;

    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Task(u64, u64);

    impl Due for Task {
        fn due(&self) -> u64 {
            self.0
        }
    }

    /// Random pushes, some in the past, many at equal times, gaps of hours,
    /// interleaved with pops: the same order as one binary heap.
    #[test]
    fn hands_out_tasks_in_the_order_of_a_heap() {
        let mut rng = Rng::new(5);
        let mut queue = CalendarQueue::new();
        let mut heap = BinaryHeap::new();
        let mut now = 1_784_095_200_000u64;
        let mut seq = 0;
        for round in 0..200_000 {
            if rng.chance(0.52) {
                let ahead = match rng.index(5) {
                    0 => 0,
                    1 => rng.below(BUCKET_MS),
                    2 => rng.below(SPAN_MS),
                    3 => rng.below(3 * SPAN_MS),
                    _ => rng.below(6 * 3_600_000),
                };
                seq += 1;
                queue.push(Task(now + ahead, seq));
                heap.push(Reverse(Task(now + ahead, seq)));
            } else {
                let want = heap.pop().map(|Reverse(t)| t);
                assert_eq!(
                    queue.next_due(),
                    want.as_ref().map(|t| t.0),
                    "round {round}"
                );
                let got = queue.pop();
                assert_eq!(got, want, "round {round}");
                if let Some(t) = got {
                    now = t.0;
                }
            }
            assert_eq!(queue.len(), heap.len());
        }
        while let Some(Reverse(want)) = heap.pop() {
            assert_eq!(queue.pop(), Some(want));
        }
        assert_eq!(queue.pop(), None);
        assert_eq!(queue.next_due(), None);
    }
}
