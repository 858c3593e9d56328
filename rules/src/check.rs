//! The checker: AST → [`RulePlan`], knowing the schema.
//!
//! It resolves every name (streams, fields, `let` bindings, inline
//! aggregates, message placeholders), types every expression, checks windows
//! against the engine's resolution, and reports each problem with a code
//! from `docs/rules.md`. It keeps going after a problem so that one run shows
//! them all; a sub-expression that failed yields `None`, and nothing is said
//! about its parent's type, so one mistake is reported once.
//!
//! Terms are numbered as the plan lists them: `let` bindings in declaration
//! order, then aggregates written inline in `when`, in order of appearance.

use crate::ast::{self, Aggregate, ClauseKind, ExprKind, ListValue};
use crate::diag::{place, Diagnostic};
use crate::lang::{CheckOptions, SourceFile};
use crate::lexer::scan_string;
use crate::plan::{
    AggFn, ArithOp, Expr, GroupBy, Literal, RulePlan, Severity, TemplatePart, TemplateVar, Term,
    Window,
};
use crate::schema::{FieldDef, StreamKind, Type};
use crate::span::{line_col, Span};
use crate::suggest;
use crate::sym::{Sym, SymError};
use crate::time::format_duration;
use std::collections::HashMap;

/// Longest window accepted: a year and a day. Longer ones are surely a
/// slip of the unit, and would keep events in memory for as long.
pub const MAX_WINDOW_MS: u64 = 366 * 86_400_000;

/// A plan, with the file and span of the rule it came from.
pub struct CheckedRule {
    pub file: usize,
    pub span: Span,
    pub plan: RulePlan,
}

/// Checks every rule of every file. `asts` pairs each parsed file with its
/// index in `files`. Problems go to `diags`; rules with errors yield no plan.
pub fn check(
    files: &[SourceFile],
    asts: &[(usize, ast::File)],
    opts: &CheckOptions,
    diags: &mut Vec<Diagnostic>,
) -> Vec<CheckedRule> {
    let mut first_definition: HashMap<&str, (usize, Span)> = HashMap::new();
    let mut checked = Vec::new();
    for (file, ast) in asts {
        for rule in &ast.rules {
            let mut checker = RuleChecker::new(files, *file, opts, diags);
            match first_definition.get(rule.name.name.as_str()) {
                Some(&(first_file, first_span)) => {
                    checker.error(
                        Diagnostic::error(
                            "E015",
                            *file,
                            rule.name.span,
                            format!("duplicate rule name `{}`", rule.name.name),
                        )
                        .with_label("defined again here")
                        .with_help("rule names identify alerts; give this rule another name")
                        .with_note(format!(
                            "first defined at {}",
                            place(files, first_file, first_span.start)
                        )),
                    );
                }
                None => {
                    first_definition.insert(&rule.name.name, (*file, rule.name.span));
                }
            }
            if let Some(plan) = checker.rule(rule) {
                checked.push(CheckedRule {
                    file: *file,
                    span: rule.span,
                    plan,
                });
            }
        }
    }
    checked
}

/// A term being built: its name, and its content once checked.
struct TermSlot {
    name: String,
    term: Option<Term>,
    /// The `let` name's span; `None` for inline aggregates.
    let_span: Option<Span>,
    used: bool,
}

/// Where an expression is, which decides what its names mean.
enum Ctx {
    /// `when`: names are terms; fields are not allowed.
    Condition,
    /// An aggregate's value: fields written `stream.field`, all from one
    /// stream (the first one named).
    Value { stream: Option<StreamKind> },
    /// An aggregate's `where`: fields of `stream`, bare or qualified.
    Filter { stream: StreamKind },
}

struct RuleChecker<'a> {
    files: &'a [SourceFile],
    file: usize,
    opts: &'a CheckOptions,
    diags: &'a mut Vec<Diagnostic>,
    /// Errors reported for this rule so far.
    errors: usize,
    terms: Vec<TermSlot>,
    by_name: HashMap<String, usize>,
    /// Inline aggregates in `when`, by the start of their span.
    inline: HashMap<u32, usize>,
    group_by: Option<GroupBy>,
}

fn a_type(ty: Type) -> &'static str {
    match ty {
        Type::Number => "a number",
        Type::String => "a string",
        Type::Bool => "a boolean",
    }
}

fn arith_symbol(op: ArithOp) -> &'static str {
    match op {
        ArithOp::Add => "+",
        ArithOp::Sub => "-",
        ArithOp::Mul => "*",
        ArithOp::Div => "/",
    }
}

/// Names that mean something in a message but not in `when`.
const MESSAGE_ONLY: [&str; 7] = [
    "cell",
    "district",
    "key",
    "district_name",
    "rule",
    "title",
    "severity",
];

impl<'a> RuleChecker<'a> {
    fn new(
        files: &'a [SourceFile],
        file: usize,
        opts: &'a CheckOptions,
        diags: &'a mut Vec<Diagnostic>,
    ) -> RuleChecker<'a> {
        RuleChecker {
            files,
            file,
            opts,
            diags,
            errors: 0,
            terms: Vec::new(),
            by_name: HashMap::new(),
            inline: HashMap::new(),
            group_by: None,
        }
    }

    fn text(&self) -> &'a str {
        self.files.get(self.file).map_or("", |f| f.text.as_str())
    }

    fn error(&mut self, d: Diagnostic) {
        self.errors += 1;
        self.diags.push(d);
    }

    fn err(&self, code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(code, self.file, span, message)
    }

    fn place(&self, span: Span) -> String {
        place(self.files, self.file, span.start)
    }

    // ---- the rule ----

    fn rule(&mut self, rule: &ast::Rule) -> Option<RulePlan> {
        let mut severity: Option<&ast::Clause> = None;
        let mut group_by: Option<&ast::Clause> = None;
        let mut when: Option<&ast::Clause> = None;
        let mut message: Option<&ast::Clause> = None;
        let mut lets = Vec::new();
        for clause in &rule.clauses {
            let slot = match &clause.kind {
                ClauseKind::Let { name, value } => {
                    lets.push((name, value));
                    continue;
                }
                ClauseKind::Severity(_) => &mut severity,
                ClauseKind::GroupBy(_) => &mut group_by,
                ClauseKind::When(_) => &mut when,
                ClauseKind::Message(_) => &mut message,
            };
            match slot {
                Some(first) => {
                    let keyword = clause.kind.keyword_text();
                    let d = self
                        .err(
                            "E019",
                            clause.keyword,
                            format!("`{keyword}` given twice in rule `{}`", rule.name.name),
                        )
                        .with_label(format!("second `{keyword}`"))
                        .with_help(format!("a rule has one `{keyword}`; remove one"))
                        .with_note(format!("first given at {}", self.place(first.keyword)));
                    self.error(d);
                }
                None => *slot = Some(clause),
            }
        }
        for (present, what, help) in [
            (
                severity.is_some(),
                "severity",
                "add `severity blue`, `yellow`, `orange` or `red`",
            ),
            (
                group_by.is_some(),
                "group by",
                "add `group by cell` or `group by district`",
            ),
            (
                when.is_some(),
                "when",
                "add `when CONDITION`: the alert is active while it holds",
            ),
        ] {
            if !present {
                let d = self
                    .err(
                        "E018",
                        rule.name.span,
                        format!("rule `{}` has no `{what}` clause", rule.name.name),
                    )
                    .with_label(format!("needs `{what}`"))
                    .with_help(help);
                self.error(d);
            }
        }

        let severity = severity.and_then(|c| match &c.kind {
            ClauseKind::Severity(level) => self.severity(level),
            _ => None,
        });
        self.group_by = group_by.and_then(|c| match &c.kind {
            ClauseKind::GroupBy(key) => self.group_key(key),
            _ => None,
        });

        for (name, value) in lets {
            let term = self.aggregate(value);
            if let Some(&first) = self.by_name.get(&name.name) {
                let first_span = self.terms[first].let_span.unwrap_or(name.span);
                let d = self
                    .err(
                        "E017",
                        name.span,
                        format!("`{}` is defined twice", name.name),
                    )
                    .with_label("defined again here")
                    .with_help("give each `let` its own name")
                    .with_note(format!("first defined at {}", self.place(first_span)));
                self.error(d);
                continue;
            }
            self.by_name.insert(name.name.clone(), self.terms.len());
            self.terms.push(TermSlot {
                name: name.name.clone(),
                term: term.map(|t| Term {
                    name: name.name.clone(),
                    ..t
                }),
                let_span: Some(name.span),
                used: false,
            });
        }

        let when = when.and_then(|c| match &c.kind {
            ClauseKind::When(e) => Some(e),
            _ => None,
        });
        let condition = when.and_then(|e| self.condition(e));
        let message = match message.map(|c| &c.kind) {
            Some(ClauseKind::Message(text)) => self.template(text),
            _ => Some(vec![TemplatePart::Text(rule.title.value.clone())]),
        };

        for slot in &self.terms {
            if let (Some(span), false) = (slot.let_span, slot.used) {
                self.diags.push(
                    Diagnostic::warning(
                        "W001",
                        self.file,
                        span,
                        format!("`{}` is never used", slot.name),
                    )
                    .with_label("defined here")
                    .with_help(format!(
                        "use it in `when` or in the message as `{{{}}}`, or remove it",
                        slot.name
                    )),
                );
            }
        }

        if self.errors > 0 {
            return None;
        }
        let terms: Option<Vec<Term>> = self.terms.iter().map(|s| s.term.clone()).collect();
        let text = self.text();
        let name = self.files.get(self.file).map_or("", |f| f.name.as_str());
        Some(RulePlan {
            name: rule.name.name.clone(),
            title: rule.title.value.clone(),
            severity: severity?,
            group_by: self.group_by?,
            terms: terms?,
            condition: condition?,
            message: message?,
            origin: format!(
                "{name}:{}",
                line_col(text, rule.keyword.start as usize).line
            ),
            source: text.get(rule.span.range()).unwrap_or("").to_string(),
        })
    }

    fn severity(&mut self, level: &ast::Ident) -> Option<Severity> {
        if let Some(s) = Severity::from_name(&level.name) {
            return Some(s);
        }
        let chinese = match level.name.trim_end_matches('色') {
            "蓝" => Some("blue"),
            "黄" => Some("yellow"),
            "橙" => Some("orange"),
            "红" => Some("red"),
            _ => None,
        };
        let help = match chinese {
            Some(english) => Some(format!("write `{english}` for {}", level.name)),
            None => suggest::help(&level.name, Severity::ALL.map(Severity::name)),
        };
        let d = self
            .err(
                "E020",
                level.span,
                format!("unknown severity `{}`", level.name),
            )
            .with_label("not a severity")
            .with_help_opt(help)
            .with_note("the severities are blue, yellow, orange and red, in increasing urgency");
        self.error(d);
        None
    }

    fn group_key(&mut self, key: &ast::Ident) -> Option<GroupBy> {
        match key.name.as_str() {
            "cell" => Some(GroupBy::Cell),
            "district" => Some(GroupBy::District),
            other => {
                let d = self
                    .err("E021", key.span, format!("unknown group key `{other}`"))
                    .with_label("not a group key")
                    .with_help_opt(suggest::help(other, ["cell", "district"]))
                    .with_note("a rule groups by `cell` (a grid cell) or `district` (区)");
                self.error(d);
                None
            }
        }
    }

    // ---- aggregates ----

    /// Checks one aggregate; the term's name is left for the caller.
    fn aggregate(&mut self, agg: &Aggregate) -> Option<Term> {
        let errors_before = self.errors;
        let function = AggFn::from_name(&agg.function.name);
        if function.is_none() {
            let name = agg.function.name.as_str();
            let alias = match name {
                "mean" | "average" => Some("avg"),
                "total" => Some("sum"),
                "maximum" => Some("max"),
                "minimum" => Some("min"),
                "cnt" => Some("count"),
                _ => None,
            };
            let help = alias
                .map(|a| format!("did you mean `{a}`?"))
                .or_else(|| suggest::help(name, ["count", "sum", "avg", "min", "max"]));
            let d = self
                .err(
                    "E024",
                    agg.function.span,
                    format!("unknown aggregate function `{name}`"),
                )
                .with_label("not an aggregate")
                .with_help_opt(help)
                .with_note("the aggregates are count, sum, avg, min and max");
            self.error(d);
        }
        let window = self.window(&agg.window);

        let (stream, value) = if function == Some(AggFn::Count) {
            self.count_argument(&agg.argument)
        } else {
            self.value_argument(agg, function)
        };
        let filter = match (&agg.filter, stream) {
            (Some(filter), Some(stream)) => {
                let checked = self.expr(filter, &mut Ctx::Filter { stream });
                match checked {
                    Some((e, Type::Bool)) => Some(Some(e)),
                    Some((_, ty)) => {
                        let d = self
                            .err(
                                "E012",
                                filter.span,
                                "`where` needs a condition (true or false)",
                            )
                            .with_label(format!("this is {}", a_type(ty)))
                            .with_help("compare it, like `where kind == \"flood\"`");
                        self.error(d);
                        None
                    }
                    None => None,
                }
            }
            (Some(_), None) => None,
            (None, _) => Some(None),
        };
        if self.errors > errors_before {
            return None;
        }
        Some(Term {
            name: String::new(),
            agg: function?,
            stream: stream?,
            value: value?,
            filter: filter?,
            window: window?,
        })
    }

    fn window(&mut self, w: &ast::WindowSpec) -> Option<Window> {
        // A malformed duration has been reported by the lexer.
        let ms = w.length?;
        let min = self.opts.min_window_ms;
        if ms == 0 {
            let d = self
                .err("E014", w.span, "a window must be longer than zero")
                .with_label("empty window")
                .with_help(format!("use at least `{}`", format_duration(min.max(1))));
            self.error(d);
            return None;
        }
        if ms < min {
            let d = self
                .err(
                    "E014",
                    w.span,
                    format!(
                        "window `{}` is shorter than the time resolution `{}`",
                        format_duration(ms),
                        format_duration(min)
                    ),
                )
                .with_label("too short")
                .with_help(format!("use at least `{}`", format_duration(min)));
            self.error(d);
            return None;
        }
        if ms > MAX_WINDOW_MS {
            let d = self
                .err(
                    "E004",
                    w.span,
                    format!("window `{}` is too long", format_duration(ms)),
                )
                .with_label("too long")
                .with_help(format!(
                    "windows are at most `{}`",
                    format_duration(MAX_WINDOW_MS)
                ));
            self.error(d);
            return None;
        }
        Some(if w.tumbling {
            Window::Tumbling(ms)
        } else {
            Window::Sliding(ms)
        })
    }

    /// `count(STREAM)` or `count(STREAM.FIELD)`: the stream, and the value
    /// whose presence is counted (`Some(None)`: every event).
    fn count_argument(
        &mut self,
        argument: &ast::Expr,
    ) -> (Option<StreamKind>, Option<Option<Expr>>) {
        match &argument.kind {
            ExprKind::Name(name) => (self.stream(name), Some(None)),
            ExprKind::Field { stream, field } => {
                let Some(kind) = self.stream(stream) else {
                    return (None, None);
                };
                let value = self.field(kind, field).map(|f| Some(Expr::Field(f.field)));
                (Some(kind), value)
            }
            _ => {
                let d = self
                    .err("E012", argument.span, "`count` counts the events of a stream")
                    .with_label("expected a stream or `stream.field`")
                    .with_help("count events that pass a test with `where`: `count(incident where kind == \"fire\")`");
                self.error(d);
                (None, None)
            }
        }
    }

    /// The numeric value of `sum`, `avg`, `min`, `max` (or of an unknown
    /// function, so its argument is still checked).
    fn value_argument(
        &mut self,
        agg: &Aggregate,
        function: Option<AggFn>,
    ) -> (Option<StreamKind>, Option<Option<Expr>>) {
        let fname = agg.function.name.as_str();
        if let ExprKind::Name(name) = &agg.argument.kind {
            if let Some(stream) = StreamKind::from_name(&name.name) {
                let example = if stream == StreamKind::Incident {
                    "incident.severity".to_string()
                } else {
                    format!(
                        "{}.{}",
                        stream.name(),
                        numeric_fields(stream).first().copied().unwrap_or("value")
                    )
                };
                let d = self
                    .err("E013", name.span, format!("`{fname}` needs a numeric value, not a whole stream"))
                    .with_label("a stream")
                    .with_help(format!("aggregate one of its numeric fields, like `{fname}({example})`, or count its events with `count({})`", stream.name()));
                self.error(d);
                return (Some(stream), None);
            }
        }
        let errors_before = self.errors;
        let mut ctx = Ctx::Value { stream: None };
        let checked = self.expr(&agg.argument, &mut ctx);
        let stream = match ctx {
            Ctx::Value { stream } => stream,
            _ => None,
        };
        let Some((value, ty)) = checked else {
            return (stream, None);
        };
        if ty != Type::Number && function.is_some() {
            let d = self
                .err(
                    "E013",
                    agg.argument.span,
                    format!("`{fname}` needs a numeric value"),
                )
                .with_label(format!("this is {}", a_type(ty)))
                .with_help_opt(stream.map(|s| {
                    format!(
                        "numeric fields of `{s}`: {}",
                        suggest::list(&numeric_fields(s))
                    )
                }));
            self.error(d);
            return (stream, None);
        }
        if stream.is_none() && self.errors == errors_before {
            let d = self
                .err(
                    "E013",
                    agg.argument.span,
                    format!("`{fname}` needs a value read from a stream"),
                )
                .with_label("no field of any stream here")
                .with_help(format!("aggregate a field, like `{fname}(sensor.value)`"));
            self.error(d);
        }
        (stream, Some(Some(value)))
    }

    fn stream(&mut self, name: &ast::Ident) -> Option<StreamKind> {
        if let Some(s) = StreamKind::from_name(&name.name) {
            return Some(s);
        }
        let help = suggest::help(&name.name, StreamKind::ALL.map(StreamKind::name)).or_else(|| {
            streams_with_field(&name.name).first().map(|s| {
                format!(
                    "`{}` is a field of `{s}`; write `{s}.{}`",
                    name.name, name.name
                )
            })
        });
        let d = self
            .err("E010", name.span, format!("unknown stream `{}`", name.name))
            .with_label("not a stream")
            .with_help_opt(help)
            .with_note("the streams are incident, traffic and sensor");
        self.error(d);
        None
    }

    fn field(&mut self, stream: StreamKind, name: &ast::Ident) -> Option<&'static FieldDef> {
        if let Some(f) = stream.field(&name.name) {
            return Some(f);
        }
        let names: Vec<&str> = stream.fields().iter().map(|f| f.name).collect();
        let help = suggest::help(&name.name, names.iter().copied()).or_else(|| {
            streams_with_field(&name.name)
                .first()
                .map(|other| format!("`{}` is a field of `{other}`, not of `{stream}`", name.name))
        });
        let d = self
            .err(
                "E011",
                name.span,
                format!("unknown field `{}` on stream `{stream}`", name.name),
            )
            .with_label(format!("not a field of `{stream}`"))
            .with_help_opt(help)
            .with_note(format!("{stream} has: {}", names.join(", ")));
        self.error(d);
        None
    }

    // ---- the condition ----

    fn condition(&mut self, when: &ast::Expr) -> Option<Expr> {
        // Name the inline aggregates first, in order of appearance, so that
        // `when` may refer to one by its name anywhere.
        let mut inline = Vec::new();
        top_level_aggregates(when, &mut inline);
        for agg in inline {
            let term = self.aggregate(agg);
            let name = self.fresh_name(&inline_base_name(agg));
            let index = self.terms.len();
            self.by_name.insert(name.clone(), index);
            self.inline.insert(agg.span.start, index);
            self.terms.push(TermSlot {
                term: term.map(|t| Term {
                    name: name.clone(),
                    ..t
                }),
                name,
                let_span: None,
                used: false,
            });
        }
        let (condition, ty) = self.expr(when, &mut Ctx::Condition)?;
        if ty != Type::Bool {
            let d = self
                .err(
                    "E012",
                    when.span,
                    "`when` needs a condition (true or false)",
                )
                .with_label(format!("this is {}", a_type(ty)))
                .with_help("compare it, like `when water > 0.3`");
            self.error(d);
            return None;
        }
        Some(condition)
    }

    /// `base`, or `base_2`, `base_3`, … if taken.
    fn fresh_name(&self, base: &str) -> String {
        if !self.by_name.contains_key(base) {
            return base.to_string();
        }
        (2..)
            .map(|n| format!("{base}_{n}"))
            .find(|candidate| !self.by_name.contains_key(candidate))
            .unwrap_or_else(|| base.to_string())
    }

    // ---- expressions ----

    fn expr(&mut self, e: &ast::Expr, ctx: &mut Ctx) -> Option<(Expr, Type)> {
        match &e.kind {
            ExprKind::Number(n) => Some((Expr::Literal(Literal::Number(*n)), Type::Number)),
            ExprKind::Bool(b) => Some((Expr::Literal(Literal::Bool(*b)), Type::Bool)),
            ExprKind::String(s) => Some((
                Expr::Literal(Literal::String(self.intern(s, e.span)?)),
                Type::String,
            )),
            ExprKind::Name(name) => self.name(name, ctx),
            ExprKind::Field { stream, field } => self.qualified_field(e.span, stream, field, ctx),
            ExprKind::Aggregate(agg) => match ctx {
                Ctx::Condition => {
                    let index = *self.inline.get(&agg.span.start)?;
                    Some((Expr::Term(index), Type::Number))
                }
                Ctx::Value { .. } | Ctx::Filter { .. } => {
                    let d = self
                        .err("E023", agg.span, "an aggregate cannot be inside another aggregate")
                        .with_label("nested aggregate")
                        .with_help("compute it separately with its own `let`, and combine the two in `when`");
                    self.error(d);
                    None
                }
            },
            ExprKind::Neg(operand) => {
                let (x, ty) = self.expr(operand, ctx)?;
                self.expect_type(operand, ty, Type::Number, "`-` needs a number")?;
                Some((Expr::Neg(Box::new(x)), Type::Number))
            }
            ExprKind::Not(operand) => {
                let (x, ty) = self.expr(operand, ctx)?;
                self.expect_type(
                    operand,
                    ty,
                    Type::Bool,
                    "`not` needs a condition (true or false)",
                )?;
                Some((Expr::Not(Box::new(x)), Type::Bool))
            }
            ExprKind::Arith(op, a, b) => {
                let what = format!("`{}` needs numbers", arith_symbol(*op));
                let l = self.expr(a, ctx);
                let r = self.expr(b, ctx);
                let l =
                    l.and_then(|(x, ty)| self.expect_type(a, ty, Type::Number, &what).map(|_| x));
                let r =
                    r.and_then(|(x, ty)| self.expect_type(b, ty, Type::Number, &what).map(|_| x));
                Some((Expr::Arith(*op, Box::new(l?), Box::new(r?)), Type::Number))
            }
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                let is_and = matches!(e.kind, ExprKind::And(..));
                let what = format!(
                    "`{}` needs conditions (true or false) on both sides",
                    if is_and { "and" } else { "or" }
                );
                let l = self.expr(a, ctx);
                let r = self.expr(b, ctx);
                let l = l.and_then(|(x, ty)| self.expect_type(a, ty, Type::Bool, &what).map(|_| x));
                let r = r.and_then(|(x, ty)| self.expect_type(b, ty, Type::Bool, &what).map(|_| x));
                let (l, r) = (Box::new(l?), Box::new(r?));
                Some((
                    if is_and {
                        Expr::And(l, r)
                    } else {
                        Expr::Or(l, r)
                    },
                    Type::Bool,
                ))
            }
            ExprKind::Compare(op, a, b) => {
                let l = self.expr(a, ctx);
                let r = self.expr(b, ctx);
                let ((l, lt), (r, rt)) = (l?, r?);
                if lt != rt {
                    let mut d = self
                        .err(
                            "E012",
                            e.span,
                            format!("cannot compare {} with {}", a_type(lt), a_type(rt)),
                        )
                        .with_label(format!("{} `{}` {}", lt.name(), op.symbol(), rt.name()));
                    let quoted_number = [a, b].into_iter().find_map(|side| match &side.kind {
                        ExprKind::String(s) if s.trim().parse::<f64>().is_ok() => Some(s.clone()),
                        _ => None,
                    });
                    if let Some(s) = quoted_number {
                        d = d.with_help(format!(
                            "\"{s}\" is a string; write the number without quotes: {}",
                            s.trim()
                        ));
                    }
                    self.error(d);
                    return None;
                }
                let ordering = !matches!(op, crate::plan::CmpOp::Eq | crate::plan::CmpOp::Ne);
                if ordering && lt == Type::Bool {
                    let d = self
                        .err(
                            "E012",
                            e.span,
                            format!(
                                "`{}` compares numbers or strings, not booleans",
                                op.symbol()
                            ),
                        )
                        .with_label("booleans have no order");
                    self.error(d);
                    return None;
                }
                Some((Expr::Compare(*op, Box::new(l), Box::new(r)), Type::Bool))
            }
            ExprKind::In(a, items) => {
                let (x, ty) = self.expr(a, ctx)?;
                let mut literals = Some(Vec::with_capacity(items.len()));
                for item in items {
                    let (literal, item_ty) = match &item.value {
                        ListValue::Number(n) => (Some(Literal::Number(*n)), Type::Number),
                        ListValue::Bool(b) => (Some(Literal::Bool(*b)), Type::Bool),
                        ListValue::String(s) => {
                            (self.intern(s, item.span).map(Literal::String), Type::String)
                        }
                    };
                    if item_ty != ty {
                        let d = self
                            .err("E012", item.span, format!("list element is {}, but the value tested is {}", a_type(item_ty), a_type(ty)))
                            .with_label(format!("this is {}", a_type(item_ty)))
                            .with_help("every element of an `in` list must have the type of the value tested");
                        self.error(d);
                        literals = None;
                        continue;
                    }
                    match (literal, literals.as_mut()) {
                        (Some(l), Some(list)) => list.push(l),
                        _ => literals = None,
                    }
                }
                Some((Expr::In(Box::new(x), literals?), Type::Bool))
            }
        }
    }

    /// Reports `found` where `wanted` was needed, with `what` as the message.
    fn expect_type(&mut self, e: &ast::Expr, found: Type, wanted: Type, what: &str) -> Option<()> {
        if found == wanted {
            return Some(());
        }
        let mut d = self
            .err("E012", e.span, what)
            .with_label(format!("this is {}", a_type(found)));
        if wanted == Type::Bool && found == Type::Number {
            d = d.with_help("compare it, like `water > 0.3`");
        }
        self.error(d);
        None
    }

    fn intern(&mut self, text: &str, span: Span) -> Option<Sym> {
        match Sym::intern(text) {
            Ok(sym) => Some(sym),
            Err(why) => {
                let help = match why {
                    SymError::Empty => {
                        "no field is ever empty: a field an event lacks is missing, not \"\""
                    }
                    SymError::TooLong => "string literals in rules are at most 128 bytes long",
                    SymError::TableFull => "the process has interned too many names; restart it",
                };
                let d = self
                    .err(
                        "E026",
                        span,
                        format!("this string cannot be used in a rule: it {why}"),
                    )
                    .with_label("unusable string")
                    .with_help(help);
                self.error(d);
                None
            }
        }
    }

    fn name(&mut self, name: &ast::Ident, ctx: &mut Ctx) -> Option<(Expr, Type)> {
        match ctx {
            Ctx::Condition => {
                if let Some(&index) = self.by_name.get(&name.name) {
                    if let Some(slot) = self.terms.get_mut(index) {
                        slot.used = true;
                    }
                    return Some((Expr::Term(index), Type::Number));
                }
                let candidates: Vec<&str> = self.terms.iter().map(|t| t.name.as_str()).collect();
                let n = name.name.as_str();
                let help = suggest::help(n, candidates.iter().copied())
                    .or_else(|| bare_name_help(n, true));
                let mut d = self
                    .err("E016", name.span, format!("undefined name `{n}`"))
                    .with_label("not defined in this rule")
                    .with_help_opt(help);
                if !candidates.is_empty() {
                    d = d.with_note(format!("this rule's values are: {}", candidates.join(", ")));
                }
                self.error(d);
                None
            }
            Ctx::Filter { stream } => {
                let stream = *stream;
                let f = self.field(stream, name)?;
                Some((Expr::Field(f.field), f.ty))
            }
            Ctx::Value { stream } => {
                let n = name.name.as_str();
                let help = match stream {
                    Some(s) if s.field(n).is_some() => {
                        Some(format!("write the field with its stream: `{s}.{n}`"))
                    }
                    _ => bare_name_help(n, false),
                };
                let d = self
                    .err("E016", name.span, format!("undefined name `{n}`"))
                    .with_label("not a field")
                    .with_help_opt(help)
                    .with_note("an aggregate's value reads fields written with their stream, like `sensor.value`");
                self.error(d);
                None
            }
        }
    }

    fn qualified_field(
        &mut self,
        span: Span,
        stream: &ast::Ident,
        field: &ast::Ident,
        ctx: &mut Ctx,
    ) -> Option<(Expr, Type)> {
        let kind = self.stream(stream)?;
        match ctx {
            Ctx::Condition => {
                self.field(kind, field)?;
                let d = self
                    .err("E023", span, format!("field `{kind}.{}` outside an aggregate", field.name))
                    .with_label("a field of single events")
                    .with_help(format!(
                        "a condition reads aggregates over a window, like `max({kind}.{}) over 10m`",
                        field.name
                    ));
                self.error(d);
                None
            }
            Ctx::Value { stream: expected } => {
                match *expected {
                    Some(first) if first != kind => {
                        let d = self
                            .err("E023", span, format!("fields from two streams in one aggregate: `{first}` and `{kind}`"))
                            .with_label(format!("a field of `{kind}`"))
                            .with_help("an aggregate reads one stream; aggregate each stream separately and combine them in `when`");
                        self.error(d);
                        return None;
                    }
                    _ => *expected = Some(kind),
                }
                let f = self.field(kind, field)?;
                Some((Expr::Field(f.field), f.ty))
            }
            Ctx::Filter { stream: expected } => {
                let expected = *expected;
                if expected != kind {
                    let d = self
                        .err("E023", span, format!("fields from two streams in one aggregate: `{expected}` and `{kind}`"))
                        .with_label(format!("a field of `{kind}`"))
                        .with_help(format!("this aggregate reads `{expected}`; its `where` can only test `{expected}`'s fields"));
                    self.error(d);
                    return None;
                }
                let f = self.field(kind, field)?;
                Some((Expr::Field(f.field), f.ty))
            }
        }
    }

    // ---- the message ----

    fn template(&mut self, text: &ast::StrLit) -> Option<Vec<TemplatePart>> {
        // Map positions in the decoded text back to the source, escapes and all.
        let scanned = scan_string(self.text(), text.span.start as usize);
        let offsets = if scanned.value == text.value {
            scanned.offsets
        } else {
            vec![text.span.start; text.value.len() + 1]
        };
        let at = |i: usize| offsets.get(i).copied().unwrap_or(text.span.end);
        let span = |from: usize, to: usize| Span {
            start: at(from),
            end: at(to).max(at(from)),
        };

        let value = text.value.as_str();
        let mut parts: Vec<TemplatePart> = Vec::new();
        let mut literal = String::new();
        let mut ok = true;
        let mut i = 0;
        while i < value.len() {
            let rest = &value[i..];
            if rest.starts_with("{{") {
                literal.push('{');
                i += 2;
            } else if rest.starts_with("}}") {
                literal.push('}');
                i += 2;
            } else if rest.starts_with('}') {
                let d = self
                    .err("E025", span(i, i + 1), "unmatched `}` in the message")
                    .with_label("no `{` before it")
                    .with_help("write `}}` for a literal `}`");
                self.error(d);
                ok = false;
                i += 1;
            } else if rest.starts_with('{') {
                let Some(close) = rest.find('}') else {
                    let d = self
                        .err("E025", span(i, value.len()), "unclosed `{` in the message")
                        .with_label("this `{` is never closed")
                        .with_help(
                            "close the placeholder with `}`, or write `{{` for a literal `{`",
                        );
                    self.error(d);
                    ok = false;
                    break;
                };
                let inner = &rest[1..close];
                match self.placeholder(
                    inner,
                    span(i, i + close + 1),
                    span(i + 1, i + 1 + inner.find(':').unwrap_or(inner.len())),
                ) {
                    Some(part) => {
                        if !literal.is_empty() {
                            parts.push(TemplatePart::Text(std::mem::take(&mut literal)));
                        }
                        parts.push(part);
                    }
                    None => ok = false,
                }
                i += close + 1;
            } else {
                let c = rest.chars().next().unwrap_or(' ');
                literal.push(c);
                i += c.len_utf8();
            }
        }
        if !literal.is_empty() {
            parts.push(TemplatePart::Text(literal));
        }
        ok.then_some(parts)
    }

    /// `{NAME}` or `{NAME:.N}`; `inner` is the text between the braces.
    fn placeholder(&mut self, inner: &str, whole: Span, name_span: Span) -> Option<TemplatePart> {
        let (name, spec) = match inner.split_once(':') {
            Some((name, spec)) => (name, Some(spec)),
            None => (inner, None),
        };
        let shape_help =
            "placeholders are `{name}` or `{name:.2}`; write `{{` and `}}` for literal braces";
        if !crate::lexer::is_plain_name(name) && !matches!(name, "severity" | "rule") {
            let message = if name.is_empty() {
                "empty placeholder `{}` in the message".to_string()
            } else {
                format!("invalid placeholder `{{{inner}}}` in the message")
            };
            let d = self
                .err("E025", whole, message)
                .with_label("not a placeholder")
                .with_help(shape_help);
            self.error(d);
            return None;
        }
        let precision = match spec {
            None => None,
            Some(spec) => {
                let digits = spec.strip_prefix('.').unwrap_or("");
                match digits.parse::<u8>() {
                    Ok(p)
                        if !digits.is_empty()
                            && digits.chars().all(|c| c.is_ascii_digit())
                            && p <= 17 =>
                    {
                        Some(p)
                    }
                    _ => {
                        let d = self
                            .err("E025", whole, format!("invalid format `:{spec}` in the message"))
                            .with_label("expected `:.N`")
                            .with_help(format!("`{{{name}:.2}}` shows two digits after the decimal point (0 to 17)"));
                        self.error(d);
                        return None;
                    }
                }
            }
        };
        let var = self.template_var(name, name_span)?;
        if precision.is_some() && !matches!(var, TemplateVar::Term(_)) {
            let d = self
                .err(
                    "E025",
                    whole,
                    format!("`{name}` is not a number, so it takes no precision"),
                )
                .with_label("precision on text")
                .with_help(format!("write `{{{name}}}`"));
            self.error(d);
            return None;
        }
        Some(TemplatePart::Var { var, precision })
    }

    fn template_var(&mut self, name: &str, span: Span) -> Option<TemplateVar> {
        if let Some(&index) = self.by_name.get(name) {
            if let Some(slot) = self.terms.get_mut(index) {
                slot.used = true;
            }
            return Some(TemplateVar::Term(index));
        }
        let key = self.group_by;
        match (name, key) {
            ("cell", Some(GroupBy::Cell) | None)
            | ("district", Some(GroupBy::District) | None)
            | ("key", _) => return Some(TemplateVar::Key),
            ("district_name", _) => return Some(TemplateVar::DistrictName),
            ("rule", _) => return Some(TemplateVar::Rule),
            ("title", _) => return Some(TemplateVar::Title),
            ("severity", _) => return Some(TemplateVar::Severity),
            _ => {}
        }
        let key_name = key.map_or("cell", GroupBy::name);
        let mut available: Vec<&str> = self.terms.iter().map(|t| t.name.as_str()).collect();
        available.extend([key_name, "district_name", "rule", "title", "severity"]);
        let d = if matches!(name, "cell" | "district") {
            self.err(
                "E022",
                span,
                format!("`{name}` is not available in this message"),
            )
            .with_label(format!("this rule groups by `{key_name}`"))
            .with_help(format!(
                "the message can show the group key `{{{key_name}}}`{}",
                if name == "district" {
                    " or the district's name `{district_name}`"
                } else {
                    ""
                }
            ))
        } else {
            self.err(
                "E022",
                span,
                format!("unknown name `{name}` in the message"),
            )
            .with_label("not a value of this rule")
            .with_help_opt(suggest::help(name, available.iter().copied()))
            .with_note(format!("the message can use: {}", available.join(", ")))
        };
        self.error(d);
        None
    }
}

/// Aggregates in `when` that are not inside another aggregate, in source order.
fn top_level_aggregates<'e>(e: &'e ast::Expr, out: &mut Vec<&'e Aggregate>) {
    match &e.kind {
        ExprKind::Aggregate(a) => out.push(a),
        ExprKind::Number(_)
        | ExprKind::String(_)
        | ExprKind::Bool(_)
        | ExprKind::Name(_)
        | ExprKind::Field { .. } => {}
        ExprKind::Neg(x) | ExprKind::Not(x) | ExprKind::In(x, _) => top_level_aggregates(x, out),
        ExprKind::Arith(_, a, b)
        | ExprKind::Compare(_, a, b)
        | ExprKind::And(a, b)
        | ExprKind::Or(a, b) => {
            top_level_aggregates(a, out);
            top_level_aggregates(b, out);
        }
    }
}

/// `FUNCTION_FIELD` (the first field the value reads) or `count_STREAM`.
fn inline_base_name(agg: &Aggregate) -> String {
    let function = agg.function.name.as_str();
    let mut first_field = None;
    agg.argument.walk(&mut |e| {
        if first_field.is_none() {
            if let ExprKind::Field { field, .. } = &e.kind {
                first_field = Some(field.name.clone());
            }
        }
    });
    match (&agg.argument.kind, first_field) {
        (_, Some(field)) => format!("{function}_{field}"),
        (ExprKind::Name(stream), None) => format!("{function}_{}", stream.name),
        (_, None) => function.to_string(),
    }
}

fn streams_with_field(name: &str) -> Vec<StreamKind> {
    StreamKind::ALL
        .into_iter()
        .filter(|s| s.field(name).is_some())
        .collect()
}

fn numeric_fields(stream: StreamKind) -> Vec<&'static str> {
    stream
        .fields()
        .iter()
        .filter(|f| f.ty == Type::Number)
        .map(|f| f.name)
        .collect()
}

/// Why a bare name in `when` (or in an aggregate's value) is not a value,
/// when it is something else the author may have had in mind.
fn bare_name_help(name: &str, in_condition: bool) -> Option<String> {
    if let Some(stream) = StreamKind::from_name(name) {
        return Some(format!(
            "`{stream}` is a stream; count its events with `count({stream}) over 10m`"
        ));
    }
    if let Some(stream) = streams_with_field(name).first() {
        return Some(if in_condition {
            format!("`{name}` is a field of `{stream}`; read it through an aggregate, like `max({stream}.{name}) over 10m`")
        } else {
            format!("write the field with its stream: `{stream}.{name}`")
        });
    }
    if in_condition && MESSAGE_ONLY.contains(&name) {
        return Some(format!(
            "`{name}` can be used only in the message, as `{{{name}}}`"
        ));
    }
    None
}
