//! The parser: tokens → [`ast::File`], by recursive descent, with
//! expressions by precedence climbing (Pratt) following the table in
//! `docs/rules.md`:
//!
//! | binding power | operators |
//! |---|---|
//! | 1 | `or` |
//! | 2 | `and` |
//! | 3 | prefix `not` |
//! | 4 | `==` `!=` `<` `<=` `>` `>=` `in [..]` (not chained) |
//! | 5 | `+` `-` |
//! | 6 | `*` `/` |
//! | 7 | prefix `-` |
//!
//! Clauses need no separator, and three places need care:
//!
//! * `severity LEVEL when …` is a ladder entry only when `when` is on the
//!   line of `LEVEL`; a `when` starting a line is the rule's condition
//!   (`severity red` followed by `when x > 1` on the next line).
//! * `when … after STREAM [where …] within DURATION`: `after` and `within`
//!   are reserved words, so they end the expression before them.
//! * `within` after an aggregate's window is a neighbourhood (`within 1
//!   ring`) unless a duration follows it, in which case it belongs to the
//!   enclosing sequence (`after incident where … over 1m within 15m`).
//!
//! On a syntax error (E001) the rule is abandoned: the parser records the
//! diagnostic and skips to the rule's closing brace or the next `rule`
//! keyword, so one broken rule does not hide the problems of the next.
//! Nesting is bounded, so hostile input cannot overflow the stack.

use crate::ast::{
    Absence, Aggregate, Clause, ClauseKind, DurationLit, Expr, ExprKind, File, Ident, Label,
    ListItem, ListValue, Rings, Rule, Sequence, StrLit, WindowSpec,
};
use crate::diag::Diagnostic;
use crate::lexer::{tokenize, Keyword, Token, TokenKind};
use crate::plan::{ArithOp, CmpOp};
use crate::span::{line_col, Span};
use crate::time::parse_duration;

/// Deepest expression tree (and parenthesis nesting) accepted. Real
/// conditions are a handful of levels deep; the bound keeps every
/// recursive walk over the tree (checker, printer, drop) shallow.
pub const MAX_DEPTH: u32 = 100;

const BP_OR: u8 = 1;
const BP_AND: u8 = 2;
const BP_NOT: u8 = 3;
const BP_CMP: u8 = 4;
const BP_SUM: u8 = 5;
const BP_PRODUCT: u8 = 6;
const BP_NEG: u8 = 7;

/// Parses one file. Diagnostics are tagged with `file`.
pub fn parse(text: &str, file: usize) -> (File, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let tokens = tokenize(text, file, &mut diags);
    let mut parser = Parser {
        text,
        tokens,
        pos: 0,
        file,
        diags,
    };
    let ast = parser.file();
    (ast, parser.diags)
}

/// The error has been recorded; unwind to the rule level.
struct Reported;

type PResult<T> = Result<T, Reported>;

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    file: usize,
    diags: Vec<Diagnostic>,
}

/// An operator that may follow an operand.
#[derive(Copy, Clone)]
enum Infix {
    Or,
    And,
    Compare(CmpOp),
    In,
    Arith(ArithOp),
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof, and `pos` never passes it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_kind_at(&self, ahead: usize) -> &TokenKind {
        let i = (self.pos + ahead).min(self.tokens.len() - 1);
        &self.tokens[i].kind
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != TokenKind::Eof {
            self.pos += 1;
        }
        token
    }

    fn at_keyword(&self, k: Keyword) -> bool {
        self.peek().kind == TokenKind::Keyword(k)
    }

    fn at(&self, kind: &TokenKind) -> bool {
        &self.peek().kind == kind
    }

    /// Records "expected WHAT, found …" at the current token.
    fn expected(&mut self, what: &str, help: Option<String>) -> Reported {
        let token = self.peek().clone();
        let mut d = Diagnostic::error(
            "E001",
            self.file,
            token.span,
            format!("expected {what}, found {}", token.kind),
        )
        .with_label(format!("expected {what}"));
        if let Some(help) = help {
            d = d.with_help(help);
        } else if let TokenKind::Keyword(k) = token.kind {
            d = d.with_help(format!("`{}` is a reserved word", k.as_str()));
        }
        self.diags.push(d);
        Reported
    }

    fn expect(&mut self, kind: TokenKind, what: &str) -> PResult<Token> {
        if self.at(&kind) {
            Ok(self.bump())
        } else {
            Err(self.expected(what, None))
        }
    }

    fn where_is(&self, offset: u32) -> String {
        let at = line_col(self.text, offset as usize);
        format!("line {}, column {}", at.line, at.column)
    }

    // ---- file and rules ----

    fn file(&mut self) -> File {
        let mut rules = Vec::new();
        let mut abandoned = Vec::new();
        loop {
            match &self.peek().kind {
                TokenKind::Eof => break,
                TokenKind::Keyword(Keyword::Rule) => {
                    let start = self.pos;
                    let name = match self.tokens.get(start + 1) {
                        Some(Token {
                            kind: TokenKind::Name(name),
                            span,
                        }) => Some(Ident {
                            name: name.clone(),
                            span: *span,
                        }),
                        _ => None,
                    };
                    match self.rule() {
                        Ok(rule) => rules.push(rule),
                        Err(Reported) => {
                            abandoned.extend(name);
                            self.recover(start);
                        }
                    }
                }
                _ => {
                    let help = "a rule file holds rules: rule NAME \"title\" { … }".to_string();
                    self.expected("`rule`", Some(help));
                    while !matches!(
                        self.peek().kind,
                        TokenKind::Eof | TokenKind::Keyword(Keyword::Rule)
                    ) {
                        self.bump();
                    }
                }
            }
        }
        File { rules, abandoned }
    }

    /// After an error inside the rule starting at token `start`: continue
    /// after the brace that closes the rule's `{`, or at the next `rule`.
    fn recover(&mut self, start: usize) {
        let mut depth = 0usize;
        let mut i = start + 1;
        let end = loop {
            match self.tokens.get(i).map(|t| &t.kind) {
                None | Some(TokenKind::Eof) | Some(TokenKind::Keyword(Keyword::Rule)) => break i,
                Some(TokenKind::LBrace) => depth += 1,
                Some(TokenKind::RBrace) => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break i + 1;
                    }
                }
                Some(_) => {}
            }
            i += 1;
        };
        self.pos = self.pos.max(end).min(self.tokens.len() - 1);
    }

    fn rule(&mut self) -> PResult<Rule> {
        let keyword = self.bump().span;
        let name = match self.peek().kind.clone() {
            TokenKind::Name(n) => {
                let span = self.bump().span;
                Ident { name: n, span }
            }
            TokenKind::String(_) => {
                let help =
                    "write a name before the title: rule underpass_water \"下穿桥积水\" { … }";
                return Err(self.expected("the rule's name", Some(help.into())));
            }
            _ => return Err(self.expected("the rule's name", None)),
        };
        let title = match self.peek().kind.clone() {
            TokenKind::String(value) => {
                let span = self.bump().span;
                StrLit { value, span }
            }
            _ => {
                let help = format!(
                    "give the rule a title for operators: rule {} \"下穿桥积水\" {{ … }}",
                    name.name
                );
                return Err(self.expected("the rule's title in quotes", Some(help)));
            }
        };
        let open = self.expect(TokenKind::LBrace, "`{`")?.span;
        let mut clauses = Vec::new();
        loop {
            let token = self.peek().clone();
            let clause = match token.kind {
                TokenKind::RBrace => {
                    self.bump();
                    return Ok(Rule {
                        span: keyword.to(token.span),
                        keyword,
                        name,
                        title,
                        clauses,
                    });
                }
                TokenKind::Keyword(Keyword::Severity) => {
                    self.bump();
                    let level = self.ident(
                        "a severity",
                        Some("the severities are blue, yellow, orange and red"),
                    )?;
                    // `severity red when …` is a ladder entry only when
                    // `when` follows on the same line; a `when` on a line of
                    // its own is the rule's condition.
                    let condition = if self.at_keyword(Keyword::When)
                        && !self.line_break_between(level.span.end, self.peek().span.start)
                    {
                        self.bump();
                        Some(self.expr(0, 0)?.0)
                    } else {
                        None
                    };
                    ClauseKind::Severity { level, condition }
                }
                TokenKind::Keyword(Keyword::Group) => {
                    self.bump();
                    self.expect(TokenKind::Keyword(Keyword::By), "`by` after `group`")?;
                    ClauseKind::GroupBy(self.ident(
                        "a group key",
                        Some("rules group by `cell`, `district`, `segment` or `sensor`"),
                    )?)
                }
                TokenKind::Keyword(Keyword::Let) => {
                    self.bump();
                    let name = self.ident("a name for the value", None)?;
                    self.expect(TokenKind::Assign, "`=`")?;
                    let value = self.let_value()?;
                    ClauseKind::Let { name, value }
                }
                TokenKind::Keyword(Keyword::When) => {
                    self.bump();
                    let condition = self.expr(0, 0)?.0;
                    let after = if self.at_keyword(Keyword::After) {
                        Some(self.sequence()?)
                    } else {
                        None
                    };
                    ClauseKind::When { condition, after }
                }
                TokenKind::Keyword(Keyword::Clear) => {
                    self.bump();
                    if !self.at_keyword(Keyword::When) {
                        let help = "write `clear when CONDITION`: once raised, the alert stays until it holds";
                        return Err(self.expected("`when` after `clear`", Some(help.into())));
                    }
                    self.bump();
                    ClauseKind::Clear(self.expr(0, 0)?.0)
                }
                TokenKind::Keyword(Keyword::For) => {
                    self.bump();
                    let help = "`for` says how long the condition must hold, like `for 1m`";
                    ClauseKind::Hold(self.duration("a duration like `1m`", help)?)
                }
                TokenKind::Keyword(Keyword::Inhibited) => {
                    self.bump();
                    self.expect(TokenKind::Keyword(Keyword::By), "`by` after `inhibited`")?;
                    let help = "name the rules whose alerts suppress this one: `inhibited by underpass_flooding`";
                    let mut names = vec![self.ident("a rule name", Some(help))?];
                    while self.at(&TokenKind::Comma) {
                        self.bump();
                        names.push(self.ident("a rule name", Some(help))?);
                    }
                    ClauseKind::InhibitedBy(names)
                }
                TokenKind::Keyword(Keyword::Labels) => {
                    self.bump();
                    ClauseKind::Labels(self.labels()?)
                }
                TokenKind::Keyword(Keyword::Message) => {
                    self.bump();
                    match self.peek().kind.clone() {
                        TokenKind::String(value) => {
                            let span = self.bump().span;
                            ClauseKind::Message(StrLit { value, span })
                        }
                        _ => return Err(self.expected("the message in quotes", None)),
                    }
                }
                TokenKind::Keyword(Keyword::Rule) | TokenKind::Eof => {
                    let where_open = self.where_is(open.start);
                    let what = format!("`}}` to close rule `{}`", name.name);
                    self.expected(&what, Some("every rule's clauses end with `}`".into()));
                    if let Some(d) = self.diags.last_mut() {
                        d.notes.push(format!("the rule's `{{` is at {where_open}"));
                    }
                    return Err(Reported);
                }
                TokenKind::Keyword(Keyword::After) => {
                    let help =
                        "`after STREAM … within DURATION` can only end the rule's `when` condition";
                    return Err(self.expected("a clause or `}`", Some(help.into())));
                }
                TokenKind::Keyword(Keyword::Within) => {
                    let help = "`within N rings` follows an aggregate's window, and `within DURATION` ends `after STREAM …`";
                    return Err(self.expected("a clause or `}`", Some(help.into())));
                }
                _ => {
                    let help = "clauses are `severity`, `group by`, `let`, `when`, `clear when`, `for`, `inhibited by`, `labels` and `message`; `}` ends the rule";
                    return Err(self.expected("a clause or `}`", Some(help.into())));
                }
            };
            let end = self.tokens[self.pos.saturating_sub(1)].span;
            clauses.push(Clause {
                kind: clause,
                keyword: token.span,
                span: token.span.to(end),
            });
        }
    }

    /// A plain name (not a reserved word).
    fn ident(&mut self, what: &str, help: Option<&str>) -> PResult<Ident> {
        match self.peek().kind.clone() {
            TokenKind::Name(name) => {
                let span = self.bump().span;
                Ok(Ident { name, span })
            }
            TokenKind::String(s) if help.is_some() => {
                let help = format!("write it without quotes: `{s}`");
                Err(self.expected(what, Some(help)))
            }
            TokenKind::Keyword(k) => {
                let help = format!("`{}` is a reserved word", k.as_str());
                Err(self.expected(what, Some(help)))
            }
            _ => Err(self.expected(what, help.map(str::to_string))),
        }
    }

    /// Whether the text between two offsets has a line break.
    fn line_break_between(&self, from: u32, to: u32) -> bool {
        self.text
            .get(from as usize..to as usize)
            .is_some_and(|between| between.contains('\n'))
    }

    /// A duration token (`10m`); a bare number is reported as a duration
    /// without a unit (E004) and parsing goes on.
    fn duration(&mut self, what: &str, help: &str) -> PResult<DurationLit> {
        let token = self.peek().clone();
        let length = match token.kind {
            TokenKind::Duration(ms) => ms,
            TokenKind::Number(_) => {
                // `over 10`: the shape is right, only the unit is missing;
                // report it as a bad duration and keep checking the rule.
                let text = self.text.get(token.span.range()).unwrap_or("");
                let why = parse_duration(text)
                    .err()
                    .unwrap_or_else(|| "invalid duration".into());
                self.diags.push(
                    Diagnostic::error("E004", self.file, token.span, why)
                        .with_label("no unit")
                        .with_help(format!("write the unit, like `{text}m` for {text} minutes")),
                );
                None
            }
            _ => return Err(self.expected(what, Some(help.into()))),
        };
        self.bump();
        Ok(DurationLit {
            length,
            span: token.span,
        })
    }

    /// `after STREAM [where FILTER] within DURATION`, at `after`.
    fn sequence(&mut self) -> PResult<Sequence> {
        let start = self.bump().span;
        let help = "a sequence names the earlier event's stream: `after incident where kind == \"flood\" within 15m`";
        let stream = self.ident("a stream after `after`", Some(help))?;
        let filter = if self.at_keyword(Keyword::Where) {
            self.bump();
            Some(Box::new(self.expr(0, 0)?.0))
        } else {
            None
        };
        if !self.at_keyword(Keyword::Within) {
            let help = "say how recent the earlier event must be, like `within 15m`";
            return Err(self.expected("`within`", Some(help.into())));
        }
        self.bump();
        let within = self.duration(
            "a duration like `15m`",
            "`within` takes how long ago the earlier event may be, like `within 15m`",
        )?;
        Ok(Sequence {
            span: start.to(within.span),
            stream,
            filter,
            within,
        })
    }

    /// `{ key: "value", … }` after `labels`.
    fn labels(&mut self) -> PResult<Vec<Label>> {
        let help = "labels are written `labels { team: \"防汛\", area: \"东城\" }`";
        if !self.at(&TokenKind::LBrace) {
            return Err(self.expected("`{` after `labels`", Some(help.into())));
        }
        self.bump();
        let mut labels = Vec::new();
        loop {
            if self.at(&TokenKind::RBrace) {
                self.bump();
                return Ok(labels);
            }
            let key = self.ident("a label name", Some(help))?;
            if !self.at(&TokenKind::Colon) {
                return Err(self.expected("`:` after the label name", Some(help.into())));
            }
            self.bump();
            let value = match self.peek().kind.clone() {
                TokenKind::String(value) => {
                    let span = self.bump().span;
                    StrLit { value, span }
                }
                _ => return Err(self.expected("the label's value in quotes", Some(help.into()))),
            };
            labels.push(Label { key, value });
            match self.peek().kind {
                TokenKind::Comma => {
                    self.bump();
                }
                TokenKind::RBrace => {}
                _ => return Err(self.expected("`,` or `}`", Some(help.into()))),
            }
        }
    }

    fn let_value(&mut self) -> PResult<Aggregate> {
        match (self.peek().kind.clone(), self.peek_kind_at(1)) {
            (TokenKind::Name(name), TokenKind::LParen) => {
                let span = self.bump().span;
                Ok(self.aggregate(Ident { name, span }, 0)?.0)
            }
            (TokenKind::Keyword(Keyword::Absent), _) => {
                let help = "`absent(…)` is a condition, not a value: write it in `when`";
                Err(self.expected("an aggregate", Some(help.into())))
            }
            _ => {
                let help = "`let` names a windowed aggregate, like `let water = max(sensor.value) over 10m`";
                Err(self.expected("an aggregate", Some(help.into())))
            }
        }
    }

    // ---- expressions ----

    /// Parses an expression whose operators bind at least `min_bp`.
    /// Returns it with its tree depth.
    fn expr(&mut self, min_bp: u8, nesting: u32) -> PResult<(Expr, u32)> {
        if nesting > MAX_DEPTH {
            return Err(self.too_deep(self.peek().span));
        }
        let (mut lhs, mut depth) = self.prefix(min_bp, nesting)?;
        loop {
            let token = self.peek().clone();
            let (op, bp) = match token.kind {
                TokenKind::Keyword(Keyword::Or) => (Infix::Or, BP_OR),
                TokenKind::Keyword(Keyword::And) => (Infix::And, BP_AND),
                TokenKind::Keyword(Keyword::In) => (Infix::In, BP_CMP),
                TokenKind::EqEq => (Infix::Compare(CmpOp::Eq), BP_CMP),
                TokenKind::NotEq => (Infix::Compare(CmpOp::Ne), BP_CMP),
                TokenKind::Lt => (Infix::Compare(CmpOp::Lt), BP_CMP),
                TokenKind::Le => (Infix::Compare(CmpOp::Le), BP_CMP),
                TokenKind::Gt => (Infix::Compare(CmpOp::Gt), BP_CMP),
                TokenKind::Ge => (Infix::Compare(CmpOp::Ge), BP_CMP),
                TokenKind::Plus => (Infix::Arith(ArithOp::Add), BP_SUM),
                TokenKind::Minus => (Infix::Arith(ArithOp::Sub), BP_SUM),
                TokenKind::Star => (Infix::Arith(ArithOp::Mul), BP_PRODUCT),
                TokenKind::Slash => (Infix::Arith(ArithOp::Div), BP_PRODUCT),
                TokenKind::Assign => {
                    return Err(self.expected(
                        "an operator",
                        Some("compare with `==`; `=` is only for `let`".into()),
                    ));
                }
                _ => break,
            };
            if bp < min_bp {
                break;
            }
            self.bump();
            let (kind, rhs_depth, end) = match op {
                Infix::In => {
                    let (items, end) = self.list()?;
                    (ExprKind::In(Box::new(lhs), items), 0, end)
                }
                _ => {
                    // Left-associative: the right operand binds tighter.
                    let (rhs, rhs_depth) = self.expr(bp + 1, nesting + 1)?;
                    let end = rhs.span;
                    let (l, r) = (Box::new(lhs), Box::new(rhs));
                    let kind = match op {
                        Infix::Or => ExprKind::Or(l, r),
                        Infix::And => ExprKind::And(l, r),
                        Infix::Compare(c) => ExprKind::Compare(c, l, r),
                        Infix::Arith(a) => ExprKind::Arith(a, l, r),
                        Infix::In => unreachable!("handled above"),
                    };
                    (kind, rhs_depth, end)
                }
            };
            let start = match &kind {
                ExprKind::Or(l, _)
                | ExprKind::And(l, _)
                | ExprKind::Compare(_, l, _)
                | ExprKind::Arith(_, l, _)
                | ExprKind::In(l, _) => l.span,
                _ => token.span,
            };
            depth = depth.max(rhs_depth) + 1;
            lhs = Expr {
                kind,
                span: start.to(end),
            };
            if depth > MAX_DEPTH {
                return Err(self.too_deep(lhs.span));
            }
            if bp == BP_CMP && self.at_comparison() {
                let help = "combine comparisons with `and`: `a < b and b < c`";
                return Err(
                    self.expected("`and`, `or` or the end of the condition", Some(help.into()))
                );
            }
        }
        Ok((lhs, depth))
    }

    fn at_comparison(&self) -> bool {
        matches!(
            self.peek().kind,
            TokenKind::EqEq
                | TokenKind::NotEq
                | TokenKind::Lt
                | TokenKind::Le
                | TokenKind::Gt
                | TokenKind::Ge
                | TokenKind::Keyword(Keyword::In)
        )
    }

    fn too_deep(&mut self, span: Span) -> Reported {
        self.diags.push(
            Diagnostic::error("E001", self.file, span, "expression is nested too deeply")
                .with_label("too deep")
                .with_help(format!(
                    "split it into `let` values; at most {MAX_DEPTH} levels are allowed"
                )),
        );
        Reported
    }

    fn prefix(&mut self, min_bp: u8, nesting: u32) -> PResult<(Expr, u32)> {
        let token = self.peek().clone();
        match token.kind {
            TokenKind::Keyword(Keyword::Not) => {
                if min_bp > BP_NOT {
                    let help = "put the negated condition in parentheses: `(not …)`";
                    return Err(self.expected("a value", Some(help.into())));
                }
                self.bump();
                let (operand, depth) = self.expr(BP_NOT, nesting + 1)?;
                let span = token.span.to(operand.span);
                Ok((
                    Expr {
                        kind: ExprKind::Not(Box::new(operand)),
                        span,
                    },
                    depth + 1,
                ))
            }
            TokenKind::Minus => {
                self.bump();
                let (operand, depth) = self.expr(BP_NEG, nesting + 1)?;
                let span = token.span.to(operand.span);
                Ok((
                    Expr {
                        kind: ExprKind::Neg(Box::new(operand)),
                        span,
                    },
                    depth + 1,
                ))
            }
            _ => self.primary(nesting),
        }
    }

    fn primary(&mut self, nesting: u32) -> PResult<(Expr, u32)> {
        let token = self.peek().clone();
        let leaf = |kind| {
            Ok((
                Expr {
                    kind,
                    span: token.span,
                },
                1,
            ))
        };
        match token.kind {
            TokenKind::Number(n) => {
                self.bump();
                leaf(ExprKind::Number(n))
            }
            TokenKind::String(s) => {
                self.bump();
                leaf(ExprKind::String(s))
            }
            TokenKind::Keyword(Keyword::True) => {
                self.bump();
                leaf(ExprKind::Bool(true))
            }
            TokenKind::Keyword(Keyword::False) => {
                self.bump();
                leaf(ExprKind::Bool(false))
            }
            TokenKind::Name(name) => {
                self.bump();
                let ident = Ident {
                    name,
                    span: token.span,
                };
                match self.peek().kind {
                    TokenKind::LParen => {
                        let (agg, depth) = self.aggregate(ident, nesting)?;
                        let span = agg.span;
                        Ok((
                            Expr {
                                kind: ExprKind::Aggregate(Box::new(agg)),
                                span,
                            },
                            depth,
                        ))
                    }
                    TokenKind::Dot => {
                        self.bump();
                        let field = self.field_name()?;
                        let span = token.span.to(field.span);
                        Ok((
                            Expr {
                                kind: ExprKind::Field {
                                    stream: ident,
                                    field,
                                },
                                span,
                            },
                            1,
                        ))
                    }
                    _ => leaf(ExprKind::Name(ident)),
                }
            }
            TokenKind::LParen => {
                self.bump();
                let (inner, depth) = self.expr(0, nesting + 1)?;
                self.expect(TokenKind::RParen, "`)`")?;
                Ok((inner, depth))
            }
            TokenKind::Keyword(Keyword::Absent) => {
                let (absence, depth) = self.absence(nesting)?;
                let span = absence.span;
                Ok((
                    Expr {
                        kind: ExprKind::Absent(Box::new(absence)),
                        span,
                    },
                    depth,
                ))
            }
            TokenKind::Keyword(Keyword::Severity) => {
                let help = "`severity` is a reserved word; write the incident field as `incident.severity`";
                Err(self.expected("a value", Some(help.into())))
            }
            TokenKind::Duration(_) => {
                let help = "a duration belongs after `over`, as in `max(sensor.value) over 10m`";
                Err(self.expected("a value", Some(help.into())))
            }
            TokenKind::LBracket => {
                Err(self.expected("a value", Some("a list can only follow `in`".into())))
            }
            _ => Err(self.expected("a value", None)),
        }
    }

    /// The name after `stream.`; reserved words are allowed here, since a
    /// field may share a keyword's spelling (`incident.severity`).
    fn field_name(&mut self) -> PResult<Ident> {
        let token = self.peek().clone();
        let name = match token.kind {
            TokenKind::Name(n) => n,
            TokenKind::Keyword(k) => k.as_str().to_string(),
            _ => return Err(self.expected("a field name after `.`", None)),
        };
        self.bump();
        Ok(Ident {
            name,
            span: token.span,
        })
    }

    /// `(ARGUMENT [where FILTER]) over [tumbling] DURATION [every DURATION]`, after the
    /// function name.
    fn aggregate(&mut self, function: Ident, nesting: u32) -> PResult<(Aggregate, u32)> {
        self.expect(TokenKind::LParen, "`(`")?;
        if self.at(&TokenKind::RParen) {
            let help = format!(
                "say what to aggregate, like `{}(sensor.value)` or `count(incident)`",
                function.name
            );
            return Err(self.expected("a stream or a value", Some(help)));
        }
        let (argument, arg_depth) = self.expr(0, nesting + 1)?;
        let mut depth = arg_depth;
        let filter = if self.at_keyword(Keyword::Where) {
            self.bump();
            let (filter, filter_depth) = self.expr(0, nesting + 1)?;
            depth = depth.max(filter_depth);
            Some(Box::new(filter))
        } else {
            None
        };
        let close = format!("`)` to close `{}(`", function.name);
        self.expect(TokenKind::RParen, &close)?;
        if !self.at_keyword(Keyword::Over) {
            let help = "an aggregate needs a window, like `over 10m` or `over tumbling 5m`";
            return Err(self.expected(
                &format!("`over` after `{}(…)`", function.name),
                Some(help.into()),
            ));
        }
        self.bump();
        let tumbling = self.at_keyword(Keyword::Tumbling);
        if tumbling {
            self.bump();
        }
        let length = self.duration(
            "a window length like `10m`",
            "an aggregate needs a window, like `over 10m` or `over tumbling 5m`",
        )?;
        let every = if self.at_keyword(Keyword::Every) {
            self.bump();
            Some(self.duration(
                "a step like `10s` after `every`",
                "a sliding window's step is written `over 1h every 30s`",
            )?)
        } else {
            None
        };
        let window = WindowSpec {
            tumbling,
            length: length.length,
            span: length.span,
            every,
        };
        // `within N rings`; `within DURATION` belongs to a sequence.
        let rings = if self.at_keyword(Keyword::Within)
            && !matches!(self.peek_kind_at(1), TokenKind::Duration(_))
        {
            Some(self.rings()?)
        } else {
            None
        };
        let window_end = window.every.as_ref().map_or(window.span, |e| e.span);
        let span = function
            .span
            .to(rings.as_ref().map_or(window_end, |r| r.span));
        Ok((
            Aggregate {
                function,
                argument: Box::new(argument),
                filter,
                window,
                rings,
                span,
            },
            depth + 1,
        ))
    }

    /// `within N ring(s)`, at `within`.
    fn rings(&mut self) -> PResult<Rings> {
        let start = self.bump().span;
        let help = "a neighbourhood is written `within 1 ring` or `within 2 rings`";
        let token = self.peek().clone();
        let TokenKind::Number(count) = token.kind else {
            return Err(self.expected("the number of rings", Some(help.into())));
        };
        self.bump();
        if !matches!(
            self.peek().kind,
            TokenKind::Keyword(Keyword::Ring | Keyword::Rings)
        ) {
            return Err(self.expected("`ring` or `rings`", Some(help.into())));
        }
        let end = self.bump().span;
        Ok(Rings {
            count,
            number: token.span,
            span: start.to(end),
        })
    }

    /// `absent(STREAM [where FILTER]) over DURATION`, at `absent`; with
    /// its tree depth.
    fn absence(&mut self, nesting: u32) -> PResult<(Absence, u32)> {
        let start = self.bump().span;
        let help = "absence is written `absent(sensor where kind == \"water_level\") over 30m`";
        if !self.at(&TokenKind::LParen) {
            return Err(self.expected("`(` after `absent`", Some(help.into())));
        }
        self.bump();
        let stream = self.ident("a stream", Some(help))?;
        let (filter, depth) = if self.at_keyword(Keyword::Where) {
            self.bump();
            let (filter, depth) = self.expr(0, nesting + 1)?;
            (Some(Box::new(filter)), depth)
        } else {
            (None, 0)
        };
        self.expect(TokenKind::RParen, "`)` to close `absent(`")?;
        if !self.at_keyword(Keyword::Over) {
            return Err(self.expected("`over` after `absent(…)`", Some(help.into())));
        }
        self.bump();
        if self.at_keyword(Keyword::Tumbling) {
            let help = "absence is judged over a sliding window: `over 30m`";
            return Err(self.expected("a duration", Some(help.into())));
        }
        let window = self.duration("a duration like `30m`", help)?;
        Ok((
            Absence {
                span: start.to(window.span),
                stream,
                filter,
                window,
            },
            depth + 1,
        ))
    }

    /// `[ literal, … ]` after `in`; returns the items and the span of `]`.
    fn list(&mut self) -> PResult<(Vec<ListItem>, Span)> {
        let help = "`in` takes a list of literals, like `kind in [\"flood\", \"fire\"]`";
        if !self.at(&TokenKind::LBracket) {
            return Err(self.expected("`[`", Some(help.into())));
        }
        self.bump();
        let mut items = Vec::new();
        loop {
            if self.at(&TokenKind::RBracket) {
                return Ok((items, self.bump().span));
            }
            let token = self.peek().clone();
            let (value, span) = match token.kind {
                TokenKind::Number(n) => (ListValue::Number(n), token.span),
                TokenKind::String(s) => (ListValue::String(s), token.span),
                TokenKind::Keyword(Keyword::True) => (ListValue::Bool(true), token.span),
                TokenKind::Keyword(Keyword::False) => (ListValue::Bool(false), token.span),
                TokenKind::Minus => match self.peek_kind_at(1) {
                    &TokenKind::Number(n) => {
                        self.bump();
                        (ListValue::Number(-n), token.span.to(self.peek().span))
                    }
                    _ => return Err(self.expected("a literal", Some(help.into()))),
                },
                _ => {
                    return Err(self.expected(
                        "a literal (number, string, true or false)",
                        Some(help.into()),
                    ))
                }
            };
            self.bump();
            items.push(ListItem { value, span });
            match self.peek().kind {
                TokenKind::Comma => {
                    self.bump();
                }
                TokenKind::RBracket => {}
                _ => return Err(self.expected("`,` or `]`", None)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> File {
        let (file, diags) = parse(text, 0);
        assert!(diags.is_empty(), "{diags:?}");
        file
    }

    fn when_of(text: &str) -> Expr {
        let file = parse_ok(&format!("rule r \"t\" {{ when {text} }}"));
        match &file.rules[0].clauses[0].kind {
            ClauseKind::When { condition, .. } => condition.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// A compact parenthesised form, to check precedence.
    fn sexp(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Number(n) => n.to_string(),
            ExprKind::String(s) => format!("{s:?}"),
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Name(n) => n.name.clone(),
            ExprKind::Field { stream, field } => format!("{}.{}", stream.name, field.name),
            ExprKind::Aggregate(a) => format!("{}({})", a.function.name, sexp(&a.argument)),
            ExprKind::Absent(a) => format!("absent({})", a.stream.name),
            ExprKind::Neg(x) => format!("(- {})", sexp(x)),
            ExprKind::Not(x) => format!("(not {})", sexp(x)),
            ExprKind::Arith(op, a, b) => format!("({op:?} {} {})", sexp(a), sexp(b)),
            ExprKind::Compare(op, a, b) => format!("({} {} {})", op.symbol(), sexp(a), sexp(b)),
            ExprKind::In(a, items) => format!("(in {} {})", sexp(a), items.len()),
            ExprKind::And(a, b) => format!("(and {} {})", sexp(a), sexp(b)),
            ExprKind::Or(a, b) => format!("(or {} {})", sexp(a), sexp(b)),
        }
    }

    #[test]
    fn precedence() {
        assert_eq!(
            sexp(&when_of("a or b and not c > 1 + 2 * -d")),
            "(or a (and b (not (> c (Add 1 (Mul 2 (- d)))))))"
        );
        assert_eq!(sexp(&when_of("a - b - c")), "(Sub (Sub a b) c)");
        assert_eq!(sexp(&when_of("(a or b) and c")), "(and (or a b) c)");
        assert_eq!(sexp(&when_of("x in [1, -2, \"a\", true,]")), "(in x 4)");
        assert_eq!(sexp(&when_of("-a * b")), "(Mul (- a) b)");
    }

    #[test]
    fn aggregates_and_windows() {
        let e = when_of("count(incident where kind in [\"flood\"]) over tumbling 1h30m >= 1");
        let ExprKind::Compare(CmpOp::Ge, lhs, _) = e.kind else {
            panic!()
        };
        let ExprKind::Aggregate(a) = lhs.kind else {
            panic!()
        };
        assert!(a.window.tumbling);
        assert_eq!(a.window.length, Some(5_400_000));
        assert!(a.filter.is_some());
    }

    #[test]
    fn reserved_field_after_dot() {
        let e = when_of("max(incident.severity) over 1h >= 3");
        assert_eq!(sexp(&e), "(>= max(incident.severity) 3)");
    }

    #[test]
    fn chained_comparison_is_an_error() {
        let (_, diags) = parse("rule r \"t\" { when 1 < a < 3 }", 0);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, "E001");
    }

    #[test]
    fn recovery_reaches_the_next_rule() {
        let text = "rule a \"t\" { when x > }\nrule b \"u\" { severity }\nrule c \"v\" { when y }";
        let (file, diags) = parse(text, 0);
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert_eq!(file.rules.len(), 1);
        assert_eq!(file.rules[0].name.name, "c");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!(
            "rule r \"t\" {{ when {}x{} }}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        let (_, diags) = parse(&deep, 0);
        assert_eq!(diags[0].message, "expression is nested too deeply");
        let long = format!("rule r \"t\" {{ when x{} }}", " + x".repeat(10_000));
        let (_, diags) = parse(&long, 0);
        assert_eq!(diags[0].message, "expression is nested too deeply");
        let negs = format!("rule r \"t\" {{ when {}x }}", "- ".repeat(10_000));
        assert!(!parse(&negs, 0).1.is_empty());
    }

    #[test]
    fn ladder_when_only_on_the_same_line() {
        let file =
            parse_ok("rule r \"t\" {\n severity red when a > 1\n severity blue\n when a > 0\n}");
        let kinds: Vec<bool> = file.rules[0]
            .clauses
            .iter()
            .map(|c| {
                matches!(
                    c.kind,
                    ClauseKind::Severity {
                        condition: Some(_),
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(kinds, [true, false, false]);
        assert!(matches!(
            file.rules[0].clauses[2].kind,
            ClauseKind::When { after: None, .. }
        ));
    }

    #[test]
    fn within_is_rings_or_the_sequence_window() {
        let file = parse_ok(
            "rule r \"t\" { when count(incident) over 1m within 2 rings > 0 \
             after incident where x > max(sensor.value) over 1m within 15m }",
        );
        let ClauseKind::When {
            condition,
            after: Some(seq),
        } = &file.rules[0].clauses[0].kind
        else {
            panic!()
        };
        let ExprKind::Compare(_, lhs, _) = &condition.kind else {
            panic!()
        };
        let ExprKind::Aggregate(a) = &lhs.kind else {
            panic!()
        };
        assert_eq!(a.rings.as_ref().map(|r| r.count), Some(2.0));
        assert_eq!(seq.within.length, Some(900_000));
        assert_eq!(
            sexp(seq.filter.as_ref().unwrap()),
            "(> x max(sensor.value))"
        );
    }

    #[test]
    fn absence_depth_counts_its_filter() {
        let deep = format!(
            "rule r \"t\" {{ when absent(sensor where {}x{}) over 1m }}",
            "(".repeat(MAX_DEPTH as usize),
            ")".repeat(MAX_DEPTH as usize)
        );
        let (_, diags) = parse(&deep, 0);
        assert_eq!(diags[0].message, "expression is nested too deeply");
    }

    #[test]
    fn rule_span_covers_the_text() {
        let text = "# c\nrule r \"t\" {\n  when x\n}\n";
        let file = parse_ok(text);
        assert_eq!(
            &text[file.rules[0].span.range()],
            "rule r \"t\" {\n  when x\n}"
        );
    }
}
