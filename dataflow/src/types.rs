//! The records that flow through the engine's dataflow.

use jingzhi_rules::event::Location;
use jingzhi_rules::plan::{GroupBy, Severity, TermStats};
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

/// How a rule term keys its contributions: the rule's group and, for cell
/// groups, how many rings of neighbouring cells the term also covers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scope {
    pub group_by: GroupBy,
    pub rings: u8,
}

/// A combined contribution of one or more events to one shared term,
/// entering and leaving the window together.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Partial {
    /// Which slice of the window, by exit time, this partial leaves in:
    /// aggregation first merges each slice, then the slices, so that a
    /// change re-reads one slice rather than the whole window.
    pub slice: u32,
    pub count: u64,
    pub sum: F64,
    pub min: F64,
    pub max: F64,
    /// Event time and value of the latest contribution (for `last`).
    pub last_ts: u64,
    pub last: F64,
    /// For `count_distinct`: the value's token; partials only combine
    /// events with equal tokens. 0 for other aggregates.
    pub token: u64,
}

impl Partial {
    pub fn new(slice: u32, x: f64, ts: u64, token: u64) -> Partial {
        Partial {
            slice,
            count: 1,
            sum: F64(x),
            min: F64(x),
            max: F64(x),
            last_ts: ts,
            last: F64(x),
            token,
        }
    }

    /// An empty partial, to merge into.
    pub fn empty() -> Partial {
        Partial {
            count: 0,
            ..Partial::new(0, 0.0, 0, 0)
        }
    }

    pub fn add(&mut self, x: f64, ts: u64) {
        self.count += 1;
        self.sum.0 += x;
        if x < self.min.0 {
            self.min = F64(x);
        }
        if x > self.max.0 {
            self.max = F64(x);
        }
        if (ts, F64(x)) > (self.last_ts, self.last) {
            self.last_ts = ts;
            self.last = F64(x);
        }
    }

    /// Merges `other`, counted `times` times.
    pub fn merge(&mut self, other: &Partial, times: u64) {
        if other.count == 0 || times == 0 {
            return;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
            self.last_ts = other.last_ts;
            self.last = other.last;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
            if (other.last_ts, other.last) > (self.last_ts, self.last) {
                self.last_ts = other.last_ts;
                self.last = other.last;
            }
        }
        self.count += other.count * times;
        self.sum.0 += other.sum.0 * times as f64;
    }

    pub fn stats(&self) -> TermStats {
        TermStats {
            count: self.count,
            sum: self.sum.0,
            min: self.min.0,
            max: self.max.0,
            last_ts: self.last_ts,
            last: self.last.0,
            distinct: 0,
        }
    }
}

/// A term computed once for every rule that uses it: a hash of what the
/// window operator and the aggregation read (stream, filter, value,
/// window, grouping, rings), not of the rule or the term's name.
pub type TermId = u64;

/// The key of a partial on its way to its group: term, how it groups, where.
pub type PartialKey = (TermId, Scope, Place);

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

/// A key's term values and evidence at one time: what a temporal rule's
/// state machine reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Facts {
    pub values: Vec<Option<F64>>,
    pub evidence: Vec<TermEvidence>,
}

impl Facts {
    pub fn plain_values(&self) -> Vec<Option<f64>> {
        self.values.iter().map(|v| v.map(|x| x.0)).collect()
    }
}

/// What the per-key reduce produces: an alert outright (rules without
/// history), or facts for a temporal rule's state machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyOutput {
    Alert(AlertRow),
    Facts(Facts),
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
