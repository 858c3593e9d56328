//! The syntax tree of a rule file, as written: every node carries the byte
//! span it came from, so the checker can point at it. Nothing here is
//! checked yet — a field may name no stream, a severity may be `purple`.
//!
//! [`File::erase_spans`] zeroes all spans, so two trees can be compared for
//! shape alone (the printer's round-trip test does).

use crate::plan::{ArithOp, CmpOp};
use crate::span::Span;

/// One rule file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct File {
    pub rules: Vec<Rule>,
    /// The names of rules abandoned on a syntax error (already reported):
    /// they exist, so `inhibited by` them is not an unknown rule. Not
    /// printed, and not kept by [`File::erase_spans`].
    pub abandoned: Vec<Ident>,
}

/// `rule NAME "title" { clauses }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// From `rule` to the closing `}`.
    pub span: Span,
    /// The `rule` keyword.
    pub keyword: Span,
    pub name: Ident,
    pub title: StrLit,
    pub clauses: Vec<Clause>,
}

/// A name as written, where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A string literal: its decoded value; the span includes the quotes.
#[derive(Clone, Debug, PartialEq)]
pub struct StrLit {
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Clause {
    pub kind: ClauseKind,
    /// The clause's leading keyword (`severity`, `group`, `let`, …).
    pub keyword: Span,
    /// The whole clause.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ClauseKind {
    /// `severity LEVEL` (the default) or `severity LEVEL when CONDITION`
    /// (an entry of the ladder).
    Severity {
        level: Ident,
        condition: Option<Expr>,
    },
    GroupBy(Ident),
    Let {
        name: Ident,
        value: Aggregate,
    },
    /// `when CONDITION [after STREAM [where FILTER] within DURATION]`.
    When {
        condition: Expr,
        after: Option<Sequence>,
    },
    /// `clear when CONDITION`.
    Clear(Expr),
    /// `for DURATION`.
    Hold(DurationLit),
    /// `inhibited by NAME, …`.
    InhibitedBy(Vec<Ident>),
    /// `labels { key: "value", … }`.
    Labels(Vec<Label>),
    Message(StrLit),
}

impl ClauseKind {
    /// The clause as the author writes it, for messages.
    pub fn keyword_text(&self) -> &'static str {
        match self {
            ClauseKind::Severity { .. } => "severity",
            ClauseKind::GroupBy(_) => "group by",
            ClauseKind::Let { .. } => "let",
            ClauseKind::When { .. } => "when",
            ClauseKind::Clear(_) => "clear when",
            ClauseKind::Hold(_) => "for",
            ClauseKind::InhibitedBy(_) => "inhibited by",
            ClauseKind::Labels(_) => "labels",
            ClauseKind::Message(_) => "message",
        }
    }
}

/// A duration as written (`for 1m`, `within 15m`, `absent(…) over 30m`).
#[derive(Clone, Debug, PartialEq)]
pub struct DurationLit {
    /// Milliseconds; `None` when malformed (already reported).
    pub length: Option<u64>,
    pub span: Span,
}

/// `after STREAM [where FILTER] within DURATION`, ending a `when`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    pub stream: Ident,
    pub filter: Option<Box<Expr>>,
    pub within: DurationLit,
    /// From `after` to the duration.
    pub span: Span,
}

/// `absent(STREAM [where FILTER]) over DURATION`.
#[derive(Clone, Debug, PartialEq)]
pub struct Absence {
    pub stream: Ident,
    pub filter: Option<Box<Expr>>,
    pub window: DurationLit,
    /// From `absent` to the duration.
    pub span: Span,
}

/// `key: "value"` in `labels { … }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub key: Ident,
    pub value: StrLit,
}

/// `within N ring(s)` after an aggregate's window.
#[derive(Clone, Debug, PartialEq)]
pub struct Rings {
    /// As written; the checker wants a whole number from 0 to 5.
    pub count: f64,
    /// The number.
    pub number: Span,
    /// From `within` to `ring`/`rings`.
    pub span: Span,
}

/// `FUNCTION(ARGUMENT [where FILTER]) over [tumbling] DURATION [every DURATION] [within N rings]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    pub function: Ident,
    pub argument: Box<Expr>,
    pub filter: Option<Box<Expr>>,
    pub window: WindowSpec,
    pub rings: Option<Rings>,
    /// From the function name to the end of the window (or of the rings).
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WindowSpec {
    pub tumbling: bool,
    /// Milliseconds; `None` when the duration was malformed (already reported).
    pub length: Option<u64>,
    /// The duration.
    pub span: Span,
    /// `every DURATION`: the step a sliding window advances in.
    pub every: Option<DurationLit>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    /// Without any parentheses around it.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Number(f64),
    String(String),
    Bool(bool),
    /// A bare name: a `let` binding, an inline aggregate's name, a stream
    /// (as in `count(sensor)`) or a field inside a filter.
    Name(Ident),
    /// `stream.field`.
    Field {
        stream: Ident,
        field: Ident,
    },
    Aggregate(Box<Aggregate>),
    /// `absent(STREAM [where FILTER]) over DURATION`: a condition.
    Absent(Box<Absence>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Vec<ListItem>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// One literal of an `in [...]` list.
#[derive(Clone, Debug, PartialEq)]
pub struct ListItem {
    pub value: ListValue,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ListValue {
    /// Already signed (`-3` in a list is one literal).
    Number(f64),
    String(String),
    Bool(bool),
}

impl Expr {
    /// Calls `f` on this expression and every expression inside it, in
    /// source order (an operator's left operand before its right), including
    /// the insides of aggregates.
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        match &self.kind {
            ExprKind::Number(_)
            | ExprKind::String(_)
            | ExprKind::Bool(_)
            | ExprKind::Name(_)
            | ExprKind::Field { .. } => {}
            ExprKind::Aggregate(a) => {
                a.argument.walk(f);
                if let Some(filter) = &a.filter {
                    filter.walk(f);
                }
            }
            ExprKind::Absent(a) => {
                if let Some(filter) = &a.filter {
                    filter.walk(f);
                }
            }
            ExprKind::Neg(e) | ExprKind::Not(e) | ExprKind::In(e, _) => e.walk(f),
            ExprKind::Arith(_, a, b)
            | ExprKind::Compare(_, a, b)
            | ExprKind::And(a, b)
            | ExprKind::Or(a, b) => {
                a.walk(f);
                b.walk(f);
            }
        }
    }

    fn erase_spans(&mut self) {
        self.span = Span::default();
        match &mut self.kind {
            ExprKind::Number(_) | ExprKind::String(_) | ExprKind::Bool(_) => {}
            ExprKind::Name(id) => id.span = Span::default(),
            ExprKind::Field { stream, field } => {
                stream.span = Span::default();
                field.span = Span::default();
            }
            ExprKind::Aggregate(a) => a.erase_spans(),
            ExprKind::Absent(a) => {
                a.span = Span::default();
                a.stream.span = Span::default();
                if let Some(filter) = &mut a.filter {
                    filter.erase_spans();
                }
                a.window.span = Span::default();
            }
            ExprKind::Neg(e) | ExprKind::Not(e) => e.erase_spans(),
            ExprKind::In(e, items) => {
                e.erase_spans();
                for item in items {
                    item.span = Span::default();
                }
            }
            ExprKind::Arith(_, a, b)
            | ExprKind::Compare(_, a, b)
            | ExprKind::And(a, b)
            | ExprKind::Or(a, b) => {
                a.erase_spans();
                b.erase_spans();
            }
        }
    }
}

impl Aggregate {
    fn erase_spans(&mut self) {
        self.span = Span::default();
        self.function.span = Span::default();
        self.argument.erase_spans();
        if let Some(filter) = &mut self.filter {
            filter.erase_spans();
        }
        self.window.span = Span::default();
        if let Some(every) = &mut self.window.every {
            every.span = Span::default();
        }
        if let Some(rings) = &mut self.rings {
            rings.number = Span::default();
            rings.span = Span::default();
        }
    }
}

impl File {
    /// Zeroes every span, leaving only the tree's shape and values.
    pub fn erase_spans(&mut self) {
        self.abandoned.clear();
        for rule in &mut self.rules {
            rule.span = Span::default();
            rule.keyword = Span::default();
            rule.name.span = Span::default();
            rule.title.span = Span::default();
            for clause in &mut rule.clauses {
                clause.keyword = Span::default();
                clause.span = Span::default();
                match &mut clause.kind {
                    ClauseKind::Severity { level, condition } => {
                        level.span = Span::default();
                        if let Some(c) = condition {
                            c.erase_spans();
                        }
                    }
                    ClauseKind::GroupBy(id) => id.span = Span::default(),
                    ClauseKind::Let { name, value } => {
                        name.span = Span::default();
                        value.erase_spans();
                    }
                    ClauseKind::When { condition, after } => {
                        condition.erase_spans();
                        if let Some(seq) = after {
                            seq.span = Span::default();
                            seq.stream.span = Span::default();
                            if let Some(filter) = &mut seq.filter {
                                filter.erase_spans();
                            }
                            seq.within.span = Span::default();
                        }
                    }
                    ClauseKind::Clear(e) => e.erase_spans(),
                    ClauseKind::Hold(d) => d.span = Span::default(),
                    ClauseKind::InhibitedBy(names) => {
                        for name in names {
                            name.span = Span::default();
                        }
                    }
                    ClauseKind::Labels(labels) => {
                        for label in labels {
                            label.key.span = Span::default();
                            label.value.span = Span::default();
                        }
                    }
                    ClauseKind::Message(s) => s.span = Span::default(),
                }
            }
        }
    }
}
