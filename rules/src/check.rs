//! The checker: AST → [`RulePlan`], knowing the schema.
//!
//! It resolves every name (streams, fields, `let` bindings, inline
//! aggregates, message placeholders, the rules named by `inhibited by`),
//! types every expression, checks windows against the engine's resolution,
//! and reports each problem with a code from `docs/rules.md`. It keeps going
//! after a problem so that one run shows them all; a sub-expression that
//! failed yields `None`, and nothing is said about its parent's type, so one
//! mistake is reported once.
//!
//! Terms are numbered as the plan lists them: `let` bindings in declaration
//! order, then aggregates written inline in the conditions (`when`,
//! `severity … when`, `clear when`), in order of appearance, then the
//! *hidden* terms the checker makes for constructs, in order of appearance:
//!
//! * `absent(S where F) over T` becomes two counts, `_absent_N_recent`
//!   (`count(S where F) over T`) and `_absent_N_seen` (the same over `1d`),
//!   and the condition `(recent == 0 and seen >= 1)`;
//! * `when … after S where F within T` becomes `_after`, `count(S where F)
//!   over T`, whose index is the plan's `after`.
//!
//! Hidden terms have no name a rule can use: they are not offered in
//! suggestions, in a message, or warned about when unused.

use crate::ast::{self, Aggregate, ClauseKind, ExprKind, ListValue};
use crate::diag::{place, Diagnostic};
use crate::lang::{CheckOptions, SourceFile};
use crate::lexer::scan_string;
use crate::plan::{
    AggFn, ArithOp, CmpOp, Expr, GroupBy, Literal, RulePlan, Severity, TemplatePart, TemplateVar,
    Term, Window,
};
use crate::schema::{FieldDef, StreamKind, Type};
use crate::span::{line_col, Span};
use crate::suggest;
use crate::sym::{Sym, SymError};
use crate::time::{format_duration, Millis};
use std::collections::HashMap;

/// Longest window accepted: a year and a day. Longer ones are surely a
/// slip of the unit, and would keep events in memory for as long.
pub const MAX_WINDOW_MS: u64 = 366 * 86_400_000;

/// How far back `absent(…)` looks for a key's earlier events: a key is
/// absent-able only if it has had a matching event in the last day.
pub const ABSENCE_SEEN_MS: u64 = 86_400_000;

/// The widest neighbourhood `within N rings` accepts.
pub const MAX_RINGS: u32 = 5;

/// A plan, with the file and span of the rule it came from.
pub struct CheckedRule {
    pub file: usize,
    pub span: Span,
    pub plan: RulePlan,
}

/// The rules compiled together, for `inhibited by`: each name's group key,
/// when it is a known one.
type RuleIndex = HashMap<String, Option<GroupBy>>;

/// Checks every rule of every file. `asts` pairs each parsed file with its
/// index in `files`. Problems go to `diags`; rules with errors yield no plan.
pub fn check(
    files: &[SourceFile],
    asts: &[(usize, ast::File)],
    opts: &CheckOptions,
    diags: &mut Vec<Diagnostic>,
) -> Vec<CheckedRule> {
    let mut index = RuleIndex::new();
    for (_, ast) in asts {
        for rule in &ast.rules {
            let group = rule.clauses.iter().find_map(|c| match &c.kind {
                ClauseKind::GroupBy(key) => GroupBy::from_name(&key.name),
                _ => None,
            });
            index.entry(rule.name.name.clone()).or_insert(group);
        }
        for name in &ast.abandoned {
            index.entry(name.name.clone()).or_insert(None);
        }
    }
    let mut first_definition: HashMap<&str, (usize, Span)> = HashMap::new();
    let mut checked = Vec::new();
    for (file, ast) in asts {
        for rule in &ast.rules {
            let mut checker = RuleChecker::new(files, *file, opts, &index, diags);
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
    /// The `let` name's span; `None` for inline aggregates and hidden terms.
    let_span: Option<Span>,
    used: bool,
    /// Made by the checker (absence, sequence): no name a rule can use.
    hidden: bool,
}

/// Where an expression is, which decides what its names mean.
enum Ctx {
    /// A condition (`when`, `severity … when`, `clear when`): names are
    /// terms; fields are not allowed.
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
    rules: &'a RuleIndex,
    diags: &'a mut Vec<Diagnostic>,
    /// Errors reported for this rule so far.
    errors: usize,
    terms: Vec<TermSlot>,
    by_name: HashMap<String, usize>,
    /// Inline aggregates in conditions, by the start of their span.
    inline: HashMap<u32, usize>,
    group_by: Option<GroupBy>,
    /// `absent(…)` conditions desugared so far.
    absences: usize,
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
const MESSAGE_ONLY: [&str; 9] = [
    "cell",
    "district",
    "segment",
    "sensor",
    "key",
    "district_name",
    "rule",
    "title",
    "severity",
];

/// Whether a group key can read a stream: segments are on traffic readings
/// and on the incidents that carry a `segment_id`; sensors are sensors.
fn groupable(group: GroupBy, stream: StreamKind) -> bool {
    match group {
        GroupBy::Cell | GroupBy::District => true,
        GroupBy::Segment => matches!(stream, StreamKind::Traffic | StreamKind::Incident),
        GroupBy::Sensor => stream == StreamKind::Sensor,
    }
}

/// Whether an alert of a rule grouped by `inhibitor` can ever suppress one
/// grouped by `inhibited`: same key, or the district containing a cell.
fn can_inhibit(inhibitor: GroupBy, inhibited: GroupBy) -> bool {
    inhibitor == inhibited || (inhibited == GroupBy::Cell && inhibitor == GroupBy::District)
}

/// `count(STREAM [where FILTER]) over LENGTH`, as the checker sees the
/// hidden terms of absences and sequences.
fn hidden_count(
    stream: &ast::Ident,
    filter: &Option<Box<ast::Expr>>,
    length: &ast::DurationLit,
    span: Span,
) -> Aggregate {
    Aggregate {
        function: ast::Ident {
            name: "count".into(),
            span: stream.span,
        },
        argument: Box::new(ast::Expr {
            kind: ExprKind::Name(stream.clone()),
            span: stream.span,
        }),
        filter: filter.clone(),
        window: ast::WindowSpec {
            tumbling: false,
            length: length.length,
            span: length.span,
            every: None,
        },
        rings: None,
        span,
    }
}

/// The clauses of one rule, sorted by kind.
#[derive(Default)]
struct Clauses<'r> {
    severity: Option<&'r ast::Clause>,
    group_by: Option<&'r ast::Clause>,
    when: Option<&'r ast::Clause>,
    clear: Option<&'r ast::Clause>,
    hold: Option<&'r ast::Clause>,
    inhibited_by: Option<&'r ast::Clause>,
    labels: Option<&'r ast::Clause>,
    message: Option<&'r ast::Clause>,
    ladder: Vec<&'r ast::Clause>,
    lets: Vec<(&'r ast::Ident, &'r Aggregate)>,
}

impl<'a> RuleChecker<'a> {
    fn new(
        files: &'a [SourceFile],
        file: usize,
        opts: &'a CheckOptions,
        rules: &'a RuleIndex,
        diags: &'a mut Vec<Diagnostic>,
    ) -> RuleChecker<'a> {
        RuleChecker {
            files,
            file,
            opts,
            rules,
            diags,
            errors: 0,
            terms: Vec::new(),
            by_name: HashMap::new(),
            inline: HashMap::new(),
            group_by: None,
            absences: 0,
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

    /// Sorts the clauses by kind, reporting those given twice (E019).
    fn clauses<'r>(&mut self, rule: &'r ast::Rule) -> Clauses<'r> {
        let mut c = Clauses::default();
        for clause in &rule.clauses {
            let slot = match &clause.kind {
                ClauseKind::Let { name, value } => {
                    c.lets.push((name, value));
                    continue;
                }
                ClauseKind::Severity {
                    condition: Some(_), ..
                } => {
                    c.ladder.push(clause);
                    continue;
                }
                ClauseKind::Severity {
                    condition: None, ..
                } => &mut c.severity,
                ClauseKind::GroupBy(_) => &mut c.group_by,
                ClauseKind::When { .. } => &mut c.when,
                ClauseKind::Clear(_) => &mut c.clear,
                ClauseKind::Hold(_) => &mut c.hold,
                ClauseKind::InhibitedBy(_) => &mut c.inhibited_by,
                ClauseKind::Labels(_) => &mut c.labels,
                ClauseKind::Message(_) => &mut c.message,
            };
            match slot {
                Some(first) => {
                    let keyword = clause.kind.keyword_text();
                    let (message, help) = match clause.kind {
                        ClauseKind::Severity { .. } => (
                            format!("default `severity` given twice in rule `{}`", rule.name.name),
                            "a rule has one plain `severity`; the others need a condition, like `severity red when water > 0.4`".to_string(),
                        ),
                        ClauseKind::InhibitedBy(_) => (
                            format!("`{keyword}` given twice in rule `{}`", rule.name.name),
                            "name all the rules in one clause: `inhibited by a, b`".to_string(),
                        ),
                        _ => (
                            format!("`{keyword}` given twice in rule `{}`", rule.name.name),
                            format!("a rule has one `{keyword}`; remove one"),
                        ),
                    };
                    let first = first.keyword;
                    let d = self
                        .err("E019", clause.keyword, message)
                        .with_label(format!("second `{keyword}`"))
                        .with_help(help)
                        .with_note(format!("first given at {}", self.place(first)));
                    self.error(d);
                }
                None => *slot = Some(clause),
            }
        }
        c
    }

    fn rule(&mut self, rule: &ast::Rule) -> Option<RulePlan> {
        let c = self.clauses(rule);
        let missing_severity_help = if c.ladder.is_empty() {
            "add `severity blue`, `yellow`, `orange` or `red`"
        } else {
            "add a plain `severity LEVEL`: the colour when no `severity … when` applies"
        };
        for (present, what, help) in [
            (c.severity.is_some(), "severity", missing_severity_help),
            (
                c.group_by.is_some(),
                "group by",
                "add `group by cell`, `district`, `segment` or `sensor`",
            ),
            (
                c.when.is_some(),
                "when",
                "add `when CONDITION`: the alert is active while it holds",
            ),
        ] {
            if !present {
                let message = if what == "severity" && !c.ladder.is_empty() {
                    format!("rule `{}` has no default `severity`", rule.name.name)
                } else {
                    format!("rule `{}` has no `{what}` clause", rule.name.name)
                };
                let mut d = self
                    .err("E018", rule.name.span, message)
                    .with_label(format!("needs `{what}`"))
                    .with_help(help);
                if what == "when" && !c.ladder.is_empty() {
                    d = d.with_note(
                        "`severity LEVEL when …` only picks the colour of an active alert; \
                         the rule's own `when` goes on a line of its own",
                    );
                }
                self.error(d);
            }
        }

        let severity = c.severity.and_then(|c| match &c.kind {
            ClauseKind::Severity { level, .. } => self.severity(level),
            _ => None,
        });
        self.group_by = c.group_by.and_then(|c| match &c.kind {
            ClauseKind::GroupBy(key) => self.group_key(key),
            _ => None,
        });

        for &(name, value) in &c.lets {
            let term = self.aggregate(value);
            if name.name.starts_with('_') {
                // The checker names its own hidden terms with a leading `_`.
                let d = self
                    .err(
                        "E030",
                        name.span,
                        format!("`{}` starts with `_`, which is reserved", name.name),
                    )
                    .with_label("reserved name")
                    .with_help(format!("call it `{}`", name.name.trim_start_matches('_')));
                self.error(d);
                continue;
            }
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
                hidden: false,
            });
        }

        // The conditions, in the order written. Their inline aggregates are
        // named first, so that any condition may use any of their names.
        let is = |chosen: Option<&ast::Clause>, clause: &ast::Clause| {
            chosen.is_some_and(|c| std::ptr::eq(c, clause))
        };
        let conditions: Vec<&ast::Clause> = rule
            .clauses
            .iter()
            .filter(|clause| {
                matches!(
                    clause.kind,
                    ClauseKind::Severity {
                        condition: Some(_),
                        ..
                    }
                ) || is(c.when, clause)
                    || is(c.clear, clause)
            })
            .collect();
        let mut inline = Vec::new();
        for clause in &conditions {
            match &clause.kind {
                ClauseKind::Severity {
                    condition: Some(e), ..
                }
                | ClauseKind::When { condition: e, .. }
                | ClauseKind::Clear(e) => top_level_aggregates(e, &mut inline),
                _ => {}
            }
        }
        self.name_inline(&inline);

        let mut condition = None;
        let mut after = None;
        let mut ladder = Some(Vec::new());
        let mut clear = None;
        for clause in &conditions {
            match &clause.kind {
                ClauseKind::When {
                    condition: e,
                    after: sequence,
                } => {
                    condition = self.condition(e, "`when`", "when water > 0.3");
                    after = sequence.as_ref().map(|s| self.sequence(s));
                }
                ClauseKind::Severity {
                    level,
                    condition: Some(e),
                } => {
                    let level = self.severity(level);
                    let e = self.condition(e, "`severity … when`", "severity red when water > 0.4");
                    match (level, e, ladder.as_mut()) {
                        (Some(level), Some(e), Some(ladder)) => ladder.push((level, e)),
                        _ => ladder = None,
                    }
                }
                ClauseKind::Clear(e) => {
                    clear = Some(self.condition(e, "`clear when`", "clear when water < 0.08"))
                }
                _ => {}
            }
        }
        let hold_ms = match c.hold.map(|c| &c.kind) {
            Some(ClauseKind::Hold(d)) => self.hold(d),
            _ => Some(0),
        };
        let inhibited_by = match c.inhibited_by.map(|c| &c.kind) {
            Some(ClauseKind::InhibitedBy(names)) => self.inhibitors(&rule.name.name, names),
            _ => Some(Vec::new()),
        };
        let labels = match c.labels.map(|c| &c.kind) {
            Some(ClauseKind::Labels(labels)) => self.labels(labels),
            _ => Some(Vec::new()),
        };
        let message = match c.message.map(|c| &c.kind) {
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
            severity_ladder: ladder?,
            group_by: self.group_by?,
            terms: terms?,
            condition: condition?,
            clear: match clear {
                None => None,
                Some(c) => Some(c?),
            },
            hold_ms: hold_ms?,
            after: match after {
                None => None,
                Some(a) => Some(a?),
            },
            inhibited_by: inhibited_by?,
            labels: labels?,
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
        if let Some(g) = GroupBy::from_name(&key.name) {
            return Some(g);
        }
        let other = key.name.as_str();
        let alias = match other {
            "road" | "segment_id" | "路段" => Some("segment"),
            "sensor_id" | "station" => Some("sensor"),
            "grid" | "网格" => Some("cell"),
            "区" => Some("district"),
            _ => None,
        };
        let help = alias
            .map(|a| format!("did you mean `{a}`?"))
            .or_else(|| suggest::help(other, GroupBy::ALL.map(GroupBy::name)));
        let d = self
            .err("E021", key.span, format!("unknown group key `{other}`"))
            .with_label("not a group key")
            .with_help_opt(help)
            .with_note("a rule groups by `cell` (a grid cell), `district` (区), `segment` (a road segment) or `sensor` (one sensor)");
        self.error(d);
        None
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
                "distinct" | "count_unique" | "unique" | "distinct_count" => Some("count_distinct"),
                "latest" | "last_value" | "current" => Some("last"),
                _ => None,
            };
            let help = alias
                .map(|a| format!("did you mean `{a}`?"))
                .or_else(|| suggest::help(name, AggFn::ALL.map(AggFn::name)));
            let d = self
                .err(
                    "E024",
                    agg.function.span,
                    format!("unknown aggregate function `{name}`"),
                )
                .with_label("not an aggregate")
                .with_help_opt(help)
                .with_note("the aggregates are count, count_distinct, sum, avg, min, max and last");
            self.error(d);
        }
        let window = self.window(&agg.window);
        let every = match (&agg.window.every, window) {
            (None, _) => Some(None),
            (Some(every), Some(window)) => self.every(every, window).map(Some),
            (Some(_), None) => None,
        };

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
        if let (Some(group), Some(stream)) = (self.group_by, stream) {
            if !groupable(group, stream) {
                self.ungroupable(group, stream, agg.argument.span);
            }
        }
        let rings = match &agg.rings {
            None => Some(0),
            Some(r) => self.rings(r),
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
            rings: rings?,
            hidden: false,
            every: every?,
        })
    }

    /// `every D` after a window: a sliding window's step, at least the
    /// resolution, a multiple of it, and at most the window.
    fn every(&mut self, every: &ast::DurationLit, window: Window) -> Option<Millis> {
        // A malformed duration has been reported by the lexer.
        let ms = every.length?;
        let resolution = self.opts.min_window_ms.max(1);
        let problem = match window {
            Window::Tumbling(_) => Some((
                "`every` applies to sliding windows only".to_string(),
                "a tumbling window moves by its own length",
                "remove `every`, or make the window sliding".to_string(),
            )),
            Window::Sliding(w) if ms > w => Some((
                format!(
                    "step `{}` is longer than its window `{}`",
                    format_duration(ms),
                    format_duration(w)
                ),
                "too long",
                format!("use a step of at most `{}`", format_duration(w)),
            )),
            Window::Sliding(_) if ms < resolution || ms % resolution != 0 => Some((
                format!(
                    "step `{}` is not a whole number of time resolutions (`{}`)",
                    format_duration(ms),
                    format_duration(resolution)
                ),
                "not a multiple of the resolution",
                format!(
                    "use a multiple of `{}`, like `{}`",
                    format_duration(resolution),
                    format_duration(ms.div_ceil(resolution).max(1) * resolution)
                ),
            )),
            Window::Sliding(_) => None,
        };
        match problem {
            None => Some(ms),
            Some((message, label, help)) => {
                let d = self
                    .err("E031", every.span, message)
                    .with_label(label)
                    .with_help(help);
                self.error(d);
                None
            }
        }
    }

    /// E029: a term on a stream the group key cannot place.
    fn ungroupable(&mut self, group: GroupBy, stream: StreamKind, span: Span) {
        let help = match group {
            GroupBy::Segment => "`group by segment` reads `traffic` and `incident` (incidents that carry a `segment_id`); group by `cell` or `district` to combine them with sensors".to_string(),
            _ => format!("`group by sensor` reads only `sensor`; group by `cell` or `district` to combine sensors with `{stream}`"),
        };
        let d = self
            .err(
                "E029",
                span,
                format!("stream `{stream}` cannot be grouped by `{}`", group.name()),
            )
            .with_label(format!("reads `{stream}`"))
            .with_help(help);
        self.error(d);
    }

    /// `within N rings`: a whole number up to [`MAX_RINGS`], with `group by cell`.
    fn rings(&mut self, r: &ast::Rings) -> Option<u32> {
        let n = r.count;
        if n.fract() != 0.0 || n < 0.0 {
            let d = self
                .err(
                    "E004",
                    r.number,
                    format!("`{n}` is not a whole number of rings"),
                )
                .with_label("not a whole number")
                .with_help("write `within 1 ring` or `within 2 rings`");
            self.error(d);
            return None;
        }
        if n > f64::from(MAX_RINGS) {
            let d = self
                .err(
                    "E004",
                    r.number,
                    format!("`within {n} rings` reaches too far"),
                )
                .with_label("too many rings")
                .with_help(format!(
                    "a neighbourhood is at most {MAX_RINGS} rings of cells"
                ));
            self.error(d);
            return None;
        }
        match self.group_by {
            Some(GroupBy::Cell) | None => Some(n as u32),
            Some(group) => {
                let d = self
                    .err(
                        "E027",
                        r.span,
                        "`within … rings` needs `group by cell`".to_string(),
                    )
                    .with_label(format!("this rule groups by `{}`", group.name()))
                    .with_help("rings are rings of grid cells around an alert's cell: group by `cell`, or remove `within …`");
                self.error(d);
                None
            }
        }
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
                if function == Some(AggFn::CountDistinct) {
                    let example = match stream {
                        StreamKind::Incident => "incident.kind",
                        StreamKind::Traffic => "traffic.segment_id",
                        StreamKind::Sensor => "sensor.sensor_id",
                    };
                    let d = self
                        .err("E013", name.span, "`count_distinct` needs a value, not a whole stream")
                        .with_label("a stream")
                        .with_help(format!("count the distinct values of a field, like `count_distinct({example})`, or count events with `count({stream})`"));
                    self.error(d);
                    return (Some(stream), None);
                }
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
        if ty != Type::Number && function.is_some_and(AggFn::needs_number) {
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

    /// Names the inline aggregates of the conditions, in order of
    /// appearance, and checks them.
    fn name_inline(&mut self, inline: &[&Aggregate]) {
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
                hidden: false,
            });
        }
    }

    /// A condition (`what` names its clause for messages, `example` shows
    /// one).
    fn condition(&mut self, e: &ast::Expr, what: &str, example: &str) -> Option<Expr> {
        let (condition, ty) = self.expr(e, &mut Ctx::Condition)?;
        if ty != Type::Bool {
            let d = self
                .err(
                    "E012",
                    e.span,
                    format!("{what} needs a condition (true or false)"),
                )
                .with_label(format!("this is {}", a_type(ty)))
                .with_help(format!("compare it, like `{example}`"));
            self.error(d);
            return None;
        }
        Some(condition)
    }

    /// Adds a hidden term; returns its index.
    fn hidden(&mut self, name: String, term: Term) -> usize {
        let index = self.terms.len();
        self.terms.push(TermSlot {
            name: name.clone(),
            term: Some(Term {
                name,
                hidden: true,
                ..term
            }),
            let_span: None,
            used: true,
            hidden: true,
        });
        index
    }

    /// `after STREAM [where FILTER] within T`: the hidden `_after` count.
    fn sequence(&mut self, seq: &ast::Sequence) -> Option<usize> {
        let count = hidden_count(&seq.stream, &seq.filter, &seq.within, seq.span);
        let term = self.aggregate(&count)?;
        Some(self.hidden("_after".into(), term))
    }

    /// `absent(STREAM [where FILTER]) over T`: two hidden counts, over T
    /// and over a day, and `recent == 0 and seen >= 1`.
    fn absence(&mut self, absence: &ast::Absence) -> Option<(Expr, Type)> {
        let count = hidden_count(
            &absence.stream,
            &absence.filter,
            &absence.window,
            absence.span,
        );
        let term = self.aggregate(&count)?;
        if term.window.length() >= ABSENCE_SEEN_MS {
            let d = self
                .err(
                    "E004",
                    absence.window.span,
                    format!(
                        "`absent(…) over {}` can never be true",
                        format_duration(term.window.length())
                    ),
                )
                .with_label("a day or longer")
                .with_help(format!(
                    "absence is judged for keys seen within the last `{}`; use a shorter window",
                    format_duration(ABSENCE_SEEN_MS)
                ));
            self.error(d);
            return None;
        }
        self.absences += 1;
        let n = self.absences;
        let seen = Term {
            window: Window::Sliding(ABSENCE_SEEN_MS),
            ..term.clone()
        };
        let recent = self.hidden(format!("_absent_{n}_recent"), term);
        let seen = self.hidden(format!("_absent_{n}_seen"), seen);
        let number = |x: f64| Box::new(Expr::Literal(Literal::Number(x)));
        Some((
            Expr::And(
                Box::new(Expr::Compare(
                    CmpOp::Eq,
                    Box::new(Expr::Term(recent)),
                    number(0.0),
                )),
                Box::new(Expr::Compare(
                    CmpOp::Ge,
                    Box::new(Expr::Term(seen)),
                    number(1.0),
                )),
            ),
            Type::Bool,
        ))
    }

    /// `for D`: longer than zero and than the resolution.
    fn hold(&mut self, d: &ast::DurationLit) -> Option<u64> {
        // A malformed duration has been reported by the lexer.
        let ms = d.length?;
        let min = self.opts.min_window_ms;
        let problem = if ms == 0 {
            Some((
                "E014",
                "a hold duration must be longer than zero".to_string(),
                "zero",
                format!(
                    "remove `for`, or hold for at least `{}`",
                    format_duration(min.max(1))
                ),
            ))
        } else if ms < min {
            Some((
                "E014",
                format!(
                    "hold `{}` is shorter than the time resolution `{}`",
                    format_duration(ms),
                    format_duration(min)
                ),
                "too short",
                format!("hold for at least `{}`", format_duration(min)),
            ))
        } else if ms > MAX_WINDOW_MS {
            Some((
                "E004",
                format!("hold `{}` is too long", format_duration(ms)),
                "too long",
                format!("holds are at most `{}`", format_duration(MAX_WINDOW_MS)),
            ))
        } else {
            None
        };
        match problem {
            None => Some(ms),
            Some((code, message, label, help)) => {
                let d = self
                    .err(code, d.span, message)
                    .with_label(label)
                    .with_help(help);
                self.error(d);
                None
            }
        }
    }

    /// `inhibited by NAME, …`: other rules compiled together with this one.
    fn inhibitors(&mut self, this: &str, names: &[ast::Ident]) -> Option<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for name in names {
            let n = name.name.as_str();
            if n == this {
                let d = self
                    .err(
                        "E028",
                        name.span,
                        format!("rule `{n}` cannot inhibit itself"),
                    )
                    .with_label("this rule")
                    .with_help("name the other rules whose active alerts should suppress this one");
                self.error(d);
                ok = false;
                continue;
            }
            let Some(&group) = self.rules.get(n) else {
                let mut known: Vec<&str> = self
                    .rules
                    .keys()
                    .map(String::as_str)
                    .filter(|r| *r != this)
                    .collect();
                known.sort_unstable();
                let d = self
                    .err(
                        "E028",
                        name.span,
                        format!("unknown rule `{n}` in `inhibited by`"),
                    )
                    .with_label("no rule of this name")
                    .with_help_opt(suggest::help(n, known.iter().copied()))
                    .with_note(
                        "`inhibited by` names rules checked together with this one, in any file",
                    );
                self.error(d);
                ok = false;
                continue;
            };
            if let Some(first) = names.iter().find(|other| other.name == n) {
                if !std::ptr::eq(first, name) {
                    let d = self
                        .err(
                            "E019",
                            name.span,
                            format!("`{n}` is named twice in `inhibited by`"),
                        )
                        .with_label("named again here")
                        .with_help("name each rule once")
                        .with_note(format!("first named at {}", self.place(first.span)));
                    self.error(d);
                    ok = false;
                    continue;
                }
            }
            if let (Some(other), Some(ours)) = (group, self.group_by) {
                if !can_inhibit(other, ours) {
                    self.diags.push(
                        Diagnostic::warning(
                            "W002",
                            self.file,
                            name.span,
                            format!("`{n}` can never inhibit this rule"),
                        )
                        .with_label(format!("groups by `{}`", other.name()))
                        .with_help(format!(
                            "an alert is inhibited by the other rule's alert on the same key, or, for a cell, on the district containing it; this rule groups by `{}`",
                            ours.name()
                        )),
                    );
                }
            }
            out.push(n.to_string());
        }
        ok.then_some(out)
    }

    /// `labels { key: "value", … }`, each key once.
    fn labels(&mut self, labels: &[ast::Label]) -> Option<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut first: HashMap<&str, Span> = HashMap::new();
        let mut ok = true;
        for label in labels {
            let key = label.key.name.as_str();
            if let Some(&at) = first.get(key) {
                let d = self
                    .err("E019", label.key.span, format!("label `{key}` given twice"))
                    .with_label(format!("second `{key}`"))
                    .with_help("give each label once")
                    .with_note(format!("first given at {}", self.place(at)));
                self.error(d);
                ok = false;
                continue;
            }
            first.insert(key, label.key.span);
            out.push((key.to_string(), label.value.value.clone()));
        }
        ok.then_some(out)
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
            ExprKind::Absent(absence) => match ctx {
                Ctx::Condition => self.absence(absence),
                Ctx::Value { .. } | Ctx::Filter { .. } => {
                    let d = self
                        .err("E023", absence.span, "`absent(…)` can only be used in a condition")
                        .with_label("not in a condition")
                        .with_help("write it in `when`, `severity … when` or `clear when`, like `when absent(sensor where kind == \"water_level\") over 30m`");
                    self.error(d);
                    None
                }
            },
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
                let candidates: Vec<&str> = self
                    .terms
                    .iter()
                    .filter(|t| !t.hidden)
                    .map(|t| t.name.as_str())
                    .collect();
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
        let own_key = |g: GroupBy| key.is_none_or(|k| k == g);
        match name {
            "cell" if own_key(GroupBy::Cell) => return Some(TemplateVar::Key),
            "district" if own_key(GroupBy::District) => return Some(TemplateVar::Key),
            "segment" if own_key(GroupBy::Segment) => return Some(TemplateVar::Key),
            "sensor" if own_key(GroupBy::Sensor) => return Some(TemplateVar::Key),
            "key" => return Some(TemplateVar::Key),
            "district_name" => return Some(TemplateVar::DistrictName),
            "rule" => return Some(TemplateVar::Rule),
            "title" => return Some(TemplateVar::Title),
            "severity" => return Some(TemplateVar::Severity),
            _ => {}
        }
        let key_name = key.map_or("cell", GroupBy::name);
        let mut available: Vec<&str> = self
            .terms
            .iter()
            .filter(|t| !t.hidden)
            .map(|t| t.name.as_str())
            .collect();
        available.extend([
            key_name,
            "key",
            "district_name",
            "rule",
            "title",
            "severity",
        ]);
        let d = if GroupBy::from_name(name).is_some() {
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

/// Aggregates in a condition that are not inside another aggregate, in
/// source order.
fn top_level_aggregates<'e>(e: &'e ast::Expr, out: &mut Vec<&'e Aggregate>) {
    match &e.kind {
        ExprKind::Aggregate(a) => out.push(a),
        ExprKind::Number(_)
        | ExprKind::String(_)
        | ExprKind::Bool(_)
        | ExprKind::Name(_)
        | ExprKind::Field { .. } => {}
        // An absence's filter is about single events; an aggregate there
        // is reported when the filter is checked.
        ExprKind::Absent(_) => {}
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
