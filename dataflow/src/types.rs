//! The records that flow through the engine's dataflow.

use jingzhi_rules::event::Location;
use jingzhi_rules::plan::{Severity, TermStats};
use jingzhi_rules::space::CellId;
use jingzhi_rules::Sym;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// Logical time of the dataflow: the engine clock, in epoch milliseconds.
pub type Time = u64;

/// One installed version of a rule. Publishing a changed rule installs a new
/// id; ids are never reused within a process.
pub type RuleId = u32;

/// An `f64` with the total order differential's sorting needs.
#[derive(Copy, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct F64(pub f64);

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0) == Ordering::Equal
    }
}
impl Eq for F64 {}
impl PartialOrd for F64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for F64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for F64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}
impl fmt::Debug for F64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a contribution happened, before reference data resolves it to a cell.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Place {
    Cell(CellId),
    Sensor(Sym),
    Segment(Sym),
}

impl From<&Location> for Place {
    fn from(l: &Location) -> Place {
        match l {
            Location::Cell(c) => Place::Cell(*c),
            Location::Sensor(s) => Place::Sensor(*s),
            Location::Segment(s) => Place::Segment(*s),
        }
    }
}

/// What one alert is about.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GroupKey {
    Cell(CellId),
    District(Sym),
    Segment(Sym),
    Sensor(Sym),
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupKey::Cell(c) => write!(f, "{c}"),
            GroupKey::District(d) | GroupKey::Segment(d) | GroupKey::Sensor(d) => write!(f, "{d}"),
        }
    }
}

/// A windowed aggregate's running state: what any number of contributions
/// merge into exactly (count, sum, extremes, latest).
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// Event time and value of the latest contribution (for `last`).
    pub last_ts: u64,
    pub last: f64,
}

impl Default for Partial {
    fn default() -> Partial {
        Partial::EMPTY
    }
}

impl Partial {
    /// Nothing yet, to merge into.
    pub const EMPTY: Partial = Partial {
        count: 0,
        sum: 0.0,
        min: 0.0,
        max: 0.0,
        last_ts: 0,
        last: 0.0,
    };

    /// One contribution `x` of an event at `ts`.
    pub fn of(x: f64, ts: u64) -> Partial {
        Partial {
            count: 1,
            sum: x,
            min: x,
            max: x,
            last_ts: ts,
            last: x,
        }
    }

    pub fn merge(&mut self, other: &Partial) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        self.count += other.count;
        self.sum += other.sum;
        if other.min < self.min {
            self.min = other.min;
        }
        if other.max > self.max {
            self.max = other.max;
        }
        if (other.last_ts, F64(other.last)) > (self.last_ts, F64(self.last)) {
            self.last_ts = other.last_ts;
            self.last = other.last;
        }
    }

    /// As the rule language sees it; `distinct` is counted by whoever
    /// holds the tokens.
    pub fn stats(&self, distinct: u64) -> TermStats {
        TermStats {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            last_ts: self.last_ts,
            last: self.last,
            distinct,
        }
    }
}

/// A term computed once for every rule that uses it: a hash of what the
/// window operator and the aggregation read (stream, filter, value,
/// window, step, grouping, rings), not of the rule or the term's name.
pub type TermId = u64;

/// One term's window contents for one key, as evidence.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TermEvidence {
    pub count: u64,
    pub sum: F64,
    pub min: F64,
    pub max: F64,
    pub last: F64,
    pub distinct: u64,
}

impl TermEvidence {
    pub fn of(s: &TermStats) -> TermEvidence {
        TermEvidence {
            count: s.count,
            sum: F64(s.sum),
            min: F64(s.min),
            max: F64(s.max),
            last: F64(s.last),
            distinct: s.distinct,
        }
    }
}

/// The state of an active alert as the dataflow computes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlertRow {
    pub severity: Severity,
    /// Each term's value (`None` where the window is empty).
    pub values: Vec<Option<F64>>,
    /// Each term's count and extremes.
    pub evidence: Vec<TermEvidence>,
}

/// A change to the alert collection at one time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertUpdate {
    pub rule: RuleId,
    pub key: GroupKey,
    pub row: AlertRow,
    pub diff: isize,
}
