//! The checked form of a rule: plain data that the engine executes and the
//! reference evaluator interprets. Nothing here knows how it is run.
//!
//! A rule is a set of windowed aggregate *terms* over one stream each, a
//! *condition* over the terms' values, a group key, a severity and a message
//! template. Expressions are evaluated with SQL's three-valued logic: a
//! comparison with a missing value is unknown, and a rule fires only when
//! its condition is true.

use crate::event::{Event, FieldValue};
use crate::schema::{Field, StreamKind};
use crate::sym::Sym;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The four warning colours, in increasing order of urgency.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Blue = 1,
    Yellow = 2,
    Orange = 3,
    Red = 4,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Blue,
        Severity::Yellow,
        Severity::Orange,
        Severity::Red,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Blue => "blue",
            Severity::Yellow => "yellow",
            Severity::Orange => "orange",
            Severity::Red => "red",
        }
    }

    pub fn from_name(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.name() == s)
    }

    pub fn from_level(level: u8) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| *v as u8 == level)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an alert is keyed by.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Cell,
    District,
    /// The road segment: `segment_id` of traffic events and of incidents
    /// that carry one.
    Segment,
    /// The sensor: `sensor_id` of sensor events.
    Sensor,
}

impl GroupBy {
    pub const ALL: [GroupBy; 4] = [
        GroupBy::Cell,
        GroupBy::District,
        GroupBy::Segment,
        GroupBy::Sensor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Cell => "cell",
            GroupBy::District => "district",
            GroupBy::Segment => "segment",
            GroupBy::Sensor => "sensor",
        }
    }

    pub fn from_name(s: &str) -> Option<GroupBy> {
        GroupBy::ALL.into_iter().find(|g| g.name() == s)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggFn {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// The value of the latest event (by event time; on a tie, the larger value).
    Last,
    /// How many distinct values (numbers or strings) the window holds.
    #[serde(rename = "count_distinct")]
    CountDistinct,
}

impl AggFn {
    pub const ALL: [AggFn; 7] = [
        AggFn::Count,
        AggFn::Sum,
        AggFn::Avg,
        AggFn::Min,
        AggFn::Max,
        AggFn::Last,
        AggFn::CountDistinct,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::Sum => "sum",
            AggFn::Avg => "avg",
            AggFn::Min => "min",
            AggFn::Max => "max",
            AggFn::Last => "last",
            AggFn::CountDistinct => "count_distinct",
        }
    }

    pub fn from_name(s: &str) -> Option<AggFn> {
        AggFn::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Whether the aggregated value must be a number (count and
    /// count_distinct take any value).
    pub fn needs_number(self) -> bool {
        !matches!(self, AggFn::Count | AggFn::CountDistinct)
    }
}

/// An event-time window.
///
/// * `Sliding(w)`: at clock time `t` the window holds events with
///   `t - w < ts <= t`, its far edge advancing in steps (see
///   [`sliding_step`]): an event leaves at `ts + w` rounded up to the step.
/// * `Tumbling(w)`: windows are `[k·w, (k+1)·w)` of event time; the result of
///   a window is reported once it has closed, from `(k+1)·w` until the next
///   window closes at `(k+2)·w`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "ms", rename_all = "lowercase")]
pub enum Window {
    Sliding(Millis),
    Tumbling(Millis),
}

impl Window {
    pub fn length(self) -> Millis {
        match self {
            Window::Sliding(w) | Window::Tumbling(w) => w,
        }
    }

    /// How far back in event time the window can reach from the clock, at
    /// step `step` (see [`sliding_step`]): the horizon beyond which an
    /// event can no longer contribute.
    pub fn reach(self, step: Millis) -> Millis {
        match self {
            Window::Sliding(w) => w.saturating_add(step),
            Window::Tumbling(w) => w.saturating_mul(2),
        }
    }
}

/// How many steps a sliding window without `every` is cut into.
pub const SLIDING_STEPS: Millis = 60;

/// The step a sliding window of length `w` advances in: `every` as
/// written, or else a sixtieth of the window, but never less than the
/// engine's resolution; always a multiple of the resolution. An event
/// leaves the window at `ts + w` rounded up to a multiple of the step, so
/// a key's window holds at most about `w / step` slices however many events
/// fall in it: state grows with keys and steps, not with events.
pub fn sliding_step(w: Millis, every: Option<Millis>, resolution: Millis) -> Millis {
    let r = resolution.max(1);
    let wanted = every.unwrap_or(w / SLIDING_STEPS);
    wanted.div_ceil(r).max(1) * r
}

/// One windowed aggregate over one stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Term {
    /// The name the message template and the alert's `values` use.
    pub name: String,
    pub agg: AggFn,
    pub stream: StreamKind,
    /// The aggregated expression; `None` only for `count`.
    pub value: Option<Expr>,
    /// Which events of the stream count; `None` means all.
    pub filter: Option<Expr>,
    pub window: Window,
    /// With `group by cell`: the term also counts events in the cells within
    /// this many rings of the key's cell (`within 1 ring`). 0: the cell only.
    #[serde(default)]
    pub rings: u32,
    /// Made by the checker for a construct (absence, sequence), not written
    /// by the author: not shown in an alert's values.
    #[serde(default)]
    pub hidden: bool,
    /// `every D` after a sliding window: the step its far edge advances
    /// in, instead of the default (see [`sliding_step`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Millis>,
}

impl Term {
    /// The step this term's window advances in (a tumbling window's length).
    pub fn step(&self, resolution: Millis) -> Millis {
        match self.window {
            Window::Sliding(w) => sliding_step(w, self.every, resolution),
            Window::Tumbling(w) => w,
        }
    }

    /// How far back in event time the term can reach from the clock.
    pub fn reach(&self, resolution: Millis) -> Millis {
        self.window.reach(self.step(resolution))
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A literal in an `in [...]` list or a comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    Number(f64),
    String(Sym),
    Bool(bool),
}

/// A typed expression. In filters and values the leaves are event fields;
/// in conditions they are terms. The checker guarantees which.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    Literal(Literal),
    Field(Field),
    Term(usize),
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Vec<Literal>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

/// The value of an expression under three-valued logic.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Number(f64),
    Sym(Sym),
    Text(&'a str),
    Bool(bool),
}

impl Value<'_> {
    fn as_number(self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    /// `Some(true)`, `Some(false)` or unknown.
    pub fn truth(self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
}

fn literal_value(l: &Literal) -> Value<'_> {
    match l {
        Literal::Number(n) => Value::Number(*n),
        Literal::String(s) => Value::Sym(*s),
        Literal::Bool(b) => Value::Bool(*b),
    }
}

fn values_equal(a: Value, b: Value) -> Option<bool> {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Number(x), Value::Number(y)) => Some(x == y),
        (Value::Sym(x), Value::Sym(y)) => Some(x == y),
        (Value::Sym(x), Value::Text(y)) | (Value::Text(y), Value::Sym(x)) => Some(x.as_str() == y),
        (Value::Text(x), Value::Text(y)) => Some(x == y),
        (Value::Bool(x), Value::Bool(y)) => Some(x == y),
        _ => Some(false),
    }
}

fn text_of(v: Value<'_>) -> Option<&str> {
    match v {
        Value::Sym(s) => Some(s.as_str()),
        Value::Text(t) => Some(t),
        _ => None,
    }
}

impl Expr {
    /// Evaluates with `leaf` supplying fields and terms.
    pub fn eval<'a>(&self, leaf: &impl Fn(&Expr) -> Value<'a>) -> Value<'a> {
        match self {
            Expr::Literal(l) => match l {
                Literal::Number(n) => Value::Number(*n),
                Literal::String(s) => Value::Sym(*s),
                Literal::Bool(b) => Value::Bool(*b),
            },
            Expr::Field(_) | Expr::Term(_) => leaf(self),
            Expr::Neg(e) => match e.eval(leaf).as_number() {
                Some(n) => Value::Number(-n),
                None => Value::Null,
            },
            Expr::Arith(op, a, b) => match (a.eval(leaf).as_number(), b.eval(leaf).as_number()) {
                (Some(x), Some(y)) => {
                    let r = match op {
                        ArithOp::Add => x + y,
                        ArithOp::Sub => x - y,
                        ArithOp::Mul => x * y,
                        ArithOp::Div => x / y,
                    };
                    if r.is_finite() {
                        Value::Number(r)
                    } else {
                        Value::Null
                    }
                }
                _ => Value::Null,
            },
            Expr::Compare(op, a, b) => {
                let (x, y) = (a.eval(leaf), b.eval(leaf));
                let r = match op {
                    CmpOp::Eq => values_equal(x, y),
                    CmpOp::Ne => values_equal(x, y).map(|e| !e),
                    _ => {
                        let ord = match (x, y) {
                            (Value::Number(p), Value::Number(q)) => p.partial_cmp(&q),
                            _ => match (text_of(x), text_of(y)) {
                                (Some(p), Some(q)) => Some(p.cmp(q)),
                                _ => None,
                            },
                        };
                        ord.map(|o| match op {
                            CmpOp::Lt => o.is_lt(),
                            CmpOp::Le => o.is_le(),
                            CmpOp::Gt => o.is_gt(),
                            CmpOp::Ge => o.is_ge(),
                            CmpOp::Eq | CmpOp::Ne => unreachable!("handled above"),
                        })
                    }
                };
                r.map_or(Value::Null, Value::Bool)
            }
            Expr::In(e, list) => {
                let x = e.eval(leaf);
                if matches!(x, Value::Null) {
                    return Value::Null;
                }
                Value::Bool(
                    list.iter()
                        .any(|l| values_equal(x, literal_value(l)) == Some(true)),
                )
            }
            // Three-valued logic, without reading the right side when the
            // left decides.
            Expr::And(a, b) => match a.eval(leaf).truth() {
                Some(false) => Value::Bool(false),
                left => match (left, b.eval(leaf).truth()) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                },
            },
            Expr::Or(a, b) => match a.eval(leaf).truth() {
                Some(true) => Value::Bool(true),
                left => match (left, b.eval(leaf).truth()) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                },
            },
            Expr::Not(e) => match e.eval(leaf).truth() {
                Some(b) => Value::Bool(!b),
                None => Value::Null,
            },
        }
    }

    /// Evaluates a filter or value expression against one event.
    pub fn eval_event<'a>(&self, event: &'a Event) -> Value<'a> {
        self.eval(&|leaf| match leaf {
            Expr::Field(f) => match event.field(*f) {
                FieldValue::Missing => Value::Null,
                FieldValue::Number(n) => Value::Number(n),
                FieldValue::Sym(s) => Value::Sym(s),
                FieldValue::Text(t) => Value::Text(t),
            },
            _ => Value::Null,
        })
    }

    /// Whether a filter admits an event (unknown counts as no).
    pub fn admits(&self, event: &Event) -> bool {
        self.eval_event(event).truth() == Some(true)
    }

    /// Evaluates a condition given each term's current value.
    pub fn eval_terms(&self, terms: &[Option<f64>]) -> Value<'static> {
        self.eval(&|leaf| match leaf {
            Expr::Term(i) => terms
                .get(*i)
                .copied()
                .flatten()
                .map_or(Value::Null, Value::Number),
            _ => Value::Null,
        })
    }
}

/// A piece of a message template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplatePart {
    Text(String),
    /// `{name}` or `{name:.N}` — N digits after the decimal point.
    Var {
        var: TemplateVar,
        precision: Option<u8>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateVar {
    /// The group key (`{cell}` or `{district}`).
    Key,
    /// The district's name (`{district_name}`), from reference data.
    DistrictName,
    /// A term's value, by index.
    Term(usize),
    Rule,
    Title,
    Severity,
}

/// A checked rule, ready to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RulePlan {
    pub name: String,
    pub title: String,
    /// The severity when no entry of the ladder applies.
    pub severity: Severity,
    /// `severity red when EXPR` entries, tried in order before `severity`.
    #[serde(default)]
    pub severity_ladder: Vec<(Severity, Expr)>,
    pub group_by: GroupBy,
    pub terms: Vec<Term>,
    /// The raise condition (`when`).
    pub condition: Expr,
    /// Hysteresis (`clear when EXPR`): once raised, the alert stays until
    /// this is true (or the key has no data left), not merely until the
    /// raise condition stops holding.
    #[serde(default)]
    pub clear: Option<Expr>,
    /// `for D`: the raise condition must hold continuously this long.
    #[serde(default)]
    pub hold_ms: Millis,
    /// `when B after A within T`: the raise condition must start to hold
    /// while an A event is in the term's window (a hidden count over T).
    #[serde(default)]
    pub after: Option<usize>,
    /// Names of rules whose active alert on the same key, or on the
    /// district containing the key's cell, suppresses this rule's alert.
    #[serde(default)]
    pub inhibited_by: Vec<String>,
    /// `labels { team: "防汛" }`, in the order written.
    #[serde(default)]
    pub labels: Vec<(String, String)>,
    pub message: Vec<TemplatePart>,
    /// Where the rule came from, for people: `file:line`.
    pub origin: String,
    /// The rule's text exactly as written, from `rule` to its closing brace.
    pub source: String,
}

impl RulePlan {
    /// The longest event-time reach of any term at the engine's
    /// resolution: how much history the rule needs to be whole.
    pub fn reach(&self, resolution: Millis) -> Millis {
        self.terms
            .iter()
            .map(|t| t.reach(resolution))
            .max()
            .unwrap_or(0)
    }

    pub fn streams(&self) -> impl Iterator<Item = StreamKind> + '_ {
        self.terms.iter().map(|t| t.stream)
    }

    /// Whether alerts depend on history beyond the current values: a hold
    /// duration, a clear condition or a sequence.
    pub fn is_temporal(&self) -> bool {
        self.hold_ms > 0 || self.clear.is_some() || self.after.is_some()
    }

    /// The severity for the given term values: the first ladder entry that
    /// is true, or the default.
    pub fn severity_for(&self, values: &[Option<f64>]) -> Severity {
        self.severity_ladder
            .iter()
            .find(|(_, e)| e.eval_terms(values).truth() == Some(true))
            .map_or(self.severity, |(s, _)| *s)
    }
}

/// The current value of one term for one key.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct TermStats {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// Event time and value of the latest contribution.
    pub last_ts: Millis,
    pub last: f64,
    /// Distinct values, counted by whoever merges (sets do not fit here).
    pub distinct: u64,
}

impl TermStats {
    /// One contribution `x` of an event at `ts`.
    pub fn of(x: f64, ts: Millis) -> TermStats {
        TermStats {
            count: 1,
            sum: x,
            min: x,
            max: x,
            last_ts: ts,
            last: x,
            distinct: 0,
        }
    }

    pub fn merge(&mut self, other: &TermStats) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if (other.last_ts, other.last) > (self.last_ts, self.last) {
            self.last_ts = other.last_ts;
            self.last = other.last;
        }
    }

    /// The aggregate's value; empty windows give 0 for count and sum and
    /// nothing for the others.
    pub fn value(&self, agg: AggFn) -> Option<f64> {
        match agg {
            AggFn::Count => Some(self.count as f64),
            AggFn::Sum => Some(if self.count == 0 { 0.0 } else { self.sum }),
            AggFn::CountDistinct => Some(self.distinct as f64),
            _ if self.count == 0 => None,
            AggFn::Avg => Some(self.sum / self.count as f64),
            AggFn::Min => Some(self.min),
            AggFn::Max => Some(self.max),
            AggFn::Last => Some(self.last),
        }
    }
}

/// A stable token for a value counted by `count_distinct`: numbers by their
/// bits, text by a 64-bit FNV-1a hash (collisions are possible in theory and
/// would undercount by one).
pub fn distinct_token(v: Value<'_>) -> Option<u64> {
    let text = |t: &str| {
        t.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }) | 1
    };
    match v {
        Value::Number(x) => Some((if x == 0.0 { 0.0f64 } else { x }).to_bits() & !1),
        Value::Sym(s) => Some(text(s.as_str())),
        Value::Text(t) => Some(text(t)),
        Value::Bool(b) => Some(u64::from(b) << 1),
        Value::Null => None,
    }
}

/// What one event contributes to a `count_distinct` term: its value's token.
pub fn term_token(term: &Term, event: &Event) -> Option<u64> {
    if event.stream() != term.stream {
        return None;
    }
    if let Some(f) = &term.filter {
        if !f.admits(event) {
            return None;
        }
    }
    term_value_token(term, event)
}

/// The token of an event's value for a `count_distinct` term, whatever
/// its stream and filter (callers have checked them).
pub fn term_value_token(term: &Term, event: &Event) -> Option<u64> {
    distinct_token(term.value.as_ref()?.eval_event(event))
}

/// What one event contributes to a term, if anything: `Some(x)` where x is
/// the aggregated value (1 for count).
pub fn term_input(term: &Term, event: &Event) -> Option<f64> {
    if event.stream() != term.stream {
        return None;
    }
    if let Some(f) = &term.filter {
        if !f.admits(event) {
            return None;
        }
    }
    term_value(term, event)
}

/// What an event's value contributes to a term, whatever its stream and
/// filter (callers have checked them).
pub fn term_value(term: &Term, event: &Event) -> Option<f64> {
    let value = match &term.value {
        None => return Some(1.0),
        // The common case, without the general evaluator.
        Some(Expr::Field(f)) => match event.field(*f) {
            FieldValue::Number(x) => return Some(x),
            FieldValue::Missing => return None,
            _ => Value::Bool(true),
        },
        Some(v) => v.eval_event(event),
    };
    match value {
        Value::Number(x) => Some(x),
        Value::Null => None,
        // `count(stream.field)` counts the events that have the field,
        // whatever its type (`count(sensor.unit)`); only a missing
        // field is not counted. `count_distinct` reads tokens from
        // `term_token`; here it only needs to know the value is there.
        _ if matches!(term.agg, AggFn::Count | AggFn::CountDistinct) => Some(1.0),
        _ => None,
    }
}

/// A condition over term values in a form that is quick to judge at every
/// change: comparisons of terms with numbers, joined by `and`, `or` and
/// `not`, are judged directly; anything else goes through the general
/// evaluator. Same three-valued logic as [`Expr::eval_terms`].
#[derive(Clone, Debug)]
pub enum FastCondition {
    Compare(CmpOp, Operand, Operand),
    And(Box<FastCondition>, Box<FastCondition>),
    Or(Box<FastCondition>, Box<FastCondition>),
    Not(Box<FastCondition>),
    General(Expr),
}

/// A side of a compiled comparison.
#[derive(Copy, Clone, Debug)]
pub enum Operand {
    Term(usize),
    Number(f64),
}

impl Operand {
    fn of(e: &Expr) -> Option<Operand> {
        match e {
            Expr::Term(i) => Some(Operand::Term(*i)),
            Expr::Literal(Literal::Number(x)) => Some(Operand::Number(*x)),
            _ => None,
        }
    }

    fn value(self, terms: &[Option<f64>]) -> Option<f64> {
        match self {
            Operand::Term(i) => terms.get(i).copied().flatten(),
            Operand::Number(x) => Some(x),
        }
    }
}

impl FastCondition {
    pub fn new(e: &Expr) -> FastCondition {
        let boxed = |e: &Expr| Box::new(FastCondition::new(e));
        match e {
            Expr::Compare(op, a, b) => match (Operand::of(a), Operand::of(b)) {
                (Some(a), Some(b)) => FastCondition::Compare(*op, a, b),
                _ => FastCondition::General(e.clone()),
            },
            Expr::And(a, b) => FastCondition::And(boxed(a), boxed(b)),
            Expr::Or(a, b) => FastCondition::Or(boxed(a), boxed(b)),
            Expr::Not(a) => FastCondition::Not(boxed(a)),
            _ => FastCondition::General(e.clone()),
        }
    }

    /// `Some(true)`, `Some(false)` or unknown.
    pub fn truth(&self, terms: &[Option<f64>]) -> Option<bool> {
        match self {
            FastCondition::Compare(op, a, b) => {
                let (x, y) = (a.value(terms)?, b.value(terms)?);
                match op {
                    CmpOp::Eq => Some(x == y),
                    CmpOp::Ne => Some(x != y),
                    _ => {
                        let ord = x.partial_cmp(&y)?;
                        Some(match op {
                            CmpOp::Lt => ord.is_lt(),
                            CmpOp::Le => ord.is_le(),
                            CmpOp::Gt => ord.is_gt(),
                            _ => ord.is_ge(),
                        })
                    }
                }
            }
            FastCondition::And(a, b) => match a.truth(terms) {
                Some(false) => Some(false),
                left => match (left, b.truth(terms)) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
            },
            FastCondition::Or(a, b) => match a.truth(terms) {
                Some(true) => Some(true),
                left => match (left, b.truth(terms)) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
            },
            FastCondition::Not(a) => a.truth(terms).map(|t| !t),
            FastCondition::General(e) => e.eval_terms(terms).truth(),
        }
    }
}

/// A rule's conditions, compiled once for the engine.
#[derive(Clone, Debug)]
pub struct FastRule {
    pub condition: FastCondition,
    pub clear: Option<FastCondition>,
    pub ladder: Vec<(Severity, FastCondition)>,
}

impl FastRule {
    pub fn new(plan: &RulePlan) -> FastRule {
        FastRule {
            condition: FastCondition::new(&plan.condition),
            clear: plan.clear.as_ref().map(FastCondition::new),
            ladder: plan
                .severity_ladder
                .iter()
                .map(|(s, e)| (*s, FastCondition::new(e)))
                .collect(),
        }
    }

    /// As [`RulePlan::severity_for`].
    pub fn severity_for(&self, plan: &RulePlan, values: &[Option<f64>]) -> Severity {
        self.ladder
            .iter()
            .find(|(_, c)| c.truth(values) == Some(true))
            .map_or(plan.severity, |(s, _)| *s)
    }
}

/// A filter in a form that is quick to test on every event: the shapes
/// rules mostly use (`kind == "water_level"`, `kind in [...]`) compare
/// symbols directly; anything else goes through the general evaluator.
#[derive(Clone, Debug)]
pub enum FastFilter {
    All,
    SymEq(Field, Sym),
    SymIn(Field, Vec<Sym>),
    General(Expr),
}

impl FastFilter {
    pub fn new(filter: Option<&Expr>) -> FastFilter {
        let Some(e) = filter else {
            return FastFilter::All;
        };
        // The fields an event holds as symbols (`Event::field`).
        let sym_field = |x: &Expr| match x {
            Expr::Field(f @ (Field::IncidentKind | Field::SensorKind | Field::Unit)) => Some(*f),
            _ => None,
        };
        match e {
            Expr::Compare(CmpOp::Eq, a, b) => match (sym_field(a), &**b) {
                (Some(f), Expr::Literal(Literal::String(s))) => FastFilter::SymEq(f, *s),
                _ => FastFilter::General(e.clone()),
            },
            Expr::In(a, list) => match sym_field(a) {
                Some(f) => {
                    let syms: Option<Vec<Sym>> = list
                        .iter()
                        .map(|l| match l {
                            Literal::String(s) => Some(*s),
                            _ => None,
                        })
                        .collect();
                    match syms {
                        Some(syms) => FastFilter::SymIn(f, syms),
                        None => FastFilter::General(e.clone()),
                    }
                }
                None => FastFilter::General(e.clone()),
            },
            _ => FastFilter::General(e.clone()),
        }
    }

    /// Whether the event passes (unknown counts as no), as `Expr::admits`.
    pub fn admits(&self, event: &Event) -> bool {
        match self {
            FastFilter::All => true,
            FastFilter::SymEq(f, s) => matches!(event.field(*f), FieldValue::Sym(x) if x == *s),
            FastFilter::SymIn(f, list) => {
                matches!(event.field(*f), FieldValue::Sym(x) if list.contains(&x))
            }
            FastFilter::General(e) => e.admits(event),
        }
    }
}

/// Renders a message template. `key` is the group key as text, `district`
/// the district's display name when known.
pub fn render_message(
    plan: &RulePlan,
    key: &str,
    district_name: Option<&str>,
    severity: Severity,
    values: &[Option<f64>],
) -> String {
    let mut out = String::new();
    for part in &plan.message {
        match part {
            TemplatePart::Text(t) => out.push_str(t),
            TemplatePart::Var { var, precision } => match var {
                TemplateVar::Key => out.push_str(key),
                TemplateVar::DistrictName => out.push_str(district_name.unwrap_or(key)),
                TemplateVar::Rule => out.push_str(&plan.name),
                TemplateVar::Title => out.push_str(&plan.title),
                TemplateVar::Severity => out.push_str(severity.name()),
                TemplateVar::Term(i) => match values.get(*i).copied().flatten() {
                    Some(x) => out.push_str(&format_number(x, *precision)),
                    None => out.push('–'),
                },
            },
        }
    }
    out
}

/// Formats a number for people: fixed precision when asked, otherwise at
/// most three decimals without trailing zeros.
pub fn format_number(x: f64, precision: Option<u8>) -> String {
    match precision {
        Some(p) => format!("{:.*}", p as usize, x),
        None => {
            let s = format!("{x:.3}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" {
                "0".into()
            } else {
                s.to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_valued_logic() {
        let gt = |t: usize, n: f64| {
            Expr::Compare(
                CmpOp::Gt,
                Box::new(Expr::Term(t)),
                Box::new(Expr::Literal(Literal::Number(n))),
            )
        };
        let both = Expr::And(Box::new(gt(0, 1.0)), Box::new(gt(1, 1.0)));
        assert_eq!(both.eval_terms(&[Some(2.0), None]), Value::Null);
        assert_eq!(both.eval_terms(&[Some(0.0), None]), Value::Bool(false));
        let either = Expr::Or(Box::new(gt(0, 1.0)), Box::new(gt(1, 1.0)));
        assert_eq!(either.eval_terms(&[Some(2.0), None]), Value::Bool(true));
        assert_eq!(
            Expr::Not(Box::new(gt(0, 1.0))).eval_terms(&[None]),
            Value::Null
        );
    }

    #[test]
    fn stats_values() {
        let mut s = TermStats::default();
        assert_eq!(s.value(AggFn::Count), Some(0.0));
        assert_eq!(s.value(AggFn::Avg), None);
        s.merge(&TermStats::of(2.0, 10));
        s.merge(&TermStats::of(4.0, 5));
        assert_eq!(s.value(AggFn::Last), Some(2.0));
        assert_eq!(s.value(AggFn::Avg), Some(3.0));
        assert_eq!(s.value(AggFn::Max), Some(4.0));
        assert_eq!(format_number(0.30000000001, None), "0.3");
        assert_eq!(format_number(12.0, Some(1)), "12.0");
    }
}
