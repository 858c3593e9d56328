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
    Severity(Ident),
    GroupBy(Ident),
    Let { name: Ident, value: Aggregate },
    When(Expr),
    Message(StrLit),
}

impl ClauseKind {
    /// The clause as the author writes it, for messages.
    pub fn keyword_text(&self) -> &'static str {
        match self {
            ClauseKind::Severity(_) => "severity",
            ClauseKind::GroupBy(_) => "group by",
            ClauseKind::Let { .. } => "let",
            ClauseKind::When(_) => "when",
            ClauseKind::Message(_) => "message",
        }
    }
}

/// `FUNCTION(ARGUMENT [where FILTER]) over [tumbling] DURATION`.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    pub function: Ident,
    pub argument: Box<Expr>,
    pub filter: Option<Box<Expr>>,
    pub window: WindowSpec,
    /// From the function name to the end of the window.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WindowSpec {
    pub tumbling: bool,
    /// Milliseconds; `None` when the duration was malformed (already reported).
    pub length: Option<u64>,
    /// The duration.
    pub span: Span,
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
    }
}

impl File {
    /// Zeroes every span, leaving only the tree's shape and values.
    pub fn erase_spans(&mut self) {
        for rule in &mut self.rules {
            rule.span = Span::default();
            rule.keyword = Span::default();
            rule.name.span = Span::default();
            rule.title.span = Span::default();
            for clause in &mut rule.clauses {
                clause.keyword = Span::default();
                clause.span = Span::default();
                match &mut clause.kind {
                    ClauseKind::Severity(id) | ClauseKind::GroupBy(id) => id.span = Span::default(),
                    ClauseKind::Let { name, value } => {
                        name.span = Span::default();
                        value.erase_spans();
                    }
                    ClauseKind::When(e) => e.erase_spans(),
                    ClauseKind::Message(s) => s.span = Span::default(),
                }
            }
        }
    }
}
