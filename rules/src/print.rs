//! The pretty-printer: AST → canonical rule text.
//!
//! Canonical means: two-space indentation, one clause per line in the order
//! written, parentheses only where precedence needs them, durations as
//! [`format_duration`] writes them, and a long condition (`when`,
//! `severity … when`, `clear when`) broken before each top-level `and`, with
//! a `when`'s `after …` on a line of its own. A ladder entry's `when` stays
//! on the line of its `severity`, as the parser requires. Comments are not part of the AST and are not printed.
//! Parsing the output gives back the same tree (spans aside); the tests hold
//! the printer to that.

use crate::ast::{Aggregate, ClauseKind, Expr, ExprKind, File, ListValue, Rule, Sequence};
use crate::plan::ArithOp;
use crate::time::format_duration;
use std::fmt::Write;

/// Lines longer than this get their `when` broken at each `and`.
const WIDTH: usize = 80;

/// A whole file: its rules, separated by blank lines.
pub fn print_file(file: &File) -> String {
    let rules: Vec<String> = file.rules.iter().map(print_rule).collect();
    rules.join("\n")
}

/// One rule, ending in a newline.
pub fn print_rule(rule: &Rule) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rule {} {} {{",
        rule.name.name,
        quote(&rule.title.value)
    );
    for clause in &rule.clauses {
        match &clause.kind {
            ClauseKind::Severity {
                level,
                condition: None,
            } => {
                let _ = writeln!(out, "  severity {}", level.name);
            }
            ClauseKind::Severity {
                level,
                condition: Some(condition),
            } => print_condition(
                &mut out,
                &format!("severity {} when", level.name),
                condition,
                None,
            ),
            ClauseKind::GroupBy(key) => {
                let _ = writeln!(out, "  group by {}", key.name);
            }
            ClauseKind::Let { name, value } => {
                let _ = writeln!(out, "  let {} = {}", name.name, print_aggregate(value));
            }
            ClauseKind::When { condition, after } => {
                let after = after.as_ref().map(print_sequence);
                print_condition(&mut out, "when", condition, after.as_deref());
            }
            ClauseKind::Clear(condition) => {
                print_condition(&mut out, "clear when", condition, None)
            }
            ClauseKind::Hold(d) => {
                let _ = writeln!(out, "  for {}", format_duration(d.length.unwrap_or(0)));
            }
            ClauseKind::InhibitedBy(names) => {
                let names: Vec<&str> = names.iter().map(|n| n.name.as_str()).collect();
                let _ = writeln!(out, "  inhibited by {}", names.join(", "));
            }
            ClauseKind::Labels(labels) => {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|l| format!("{}: {}", l.key.name, quote(&l.value.value)))
                    .collect();
                if labels.is_empty() {
                    out.push_str("  labels {}\n");
                } else {
                    let _ = writeln!(out, "  labels {{ {} }}", labels.join(", "));
                }
            }
            ClauseKind::Message(text) => {
                let _ = writeln!(out, "  message {}", quote(&text.value));
            }
        }
    }
    out.push_str("}\n");
    out
}

/// `after STREAM [where FILTER] within DURATION`.
fn print_sequence(seq: &Sequence) -> String {
    let mut out = format!("after {}", seq.stream.name);
    if let Some(filter) = &seq.filter {
        out.push_str(" where ");
        write_expr(&mut out, filter, 0);
    }
    let _ = write!(
        out,
        " within {}",
        format_duration(seq.within.length.unwrap_or(0))
    );
    out
}

/// `KEYWORDS CONDITION [SUFFIX]` on one line, or, when too long, broken
/// before each top-level `and`, with the suffix on a line of its own.
fn print_condition(out: &mut String, keywords: &str, condition: &Expr, suffix: Option<&str>) {
    let mut line = format!("  {keywords} {}", print_expr(condition));
    if let Some(suffix) = suffix {
        line.push(' ');
        line.push_str(suffix);
    }
    if line.chars().count() <= WIDTH {
        let _ = writeln!(out, "{line}");
        return;
    }
    // `a and b and c` is left-nested: ((a and b) and c).
    let mut operands = Vec::new();
    let mut rest = condition;
    while let ExprKind::And(left, right) = &rest.kind {
        operands.push(right.as_ref());
        rest = left;
    }
    if operands.is_empty() {
        let _ = writeln!(out, "  {keywords} {}", print_expr(condition));
    } else {
        let mut first = String::new();
        write_expr(&mut first, rest, PREC_AND);
        let _ = writeln!(out, "  {keywords} {first}");
    }
    for operand in operands.iter().rev() {
        let mut text = String::new();
        write_expr(&mut text, operand, PREC_NOT);
        let _ = writeln!(out, "   and {text}");
    }
    if let Some(suffix) = suffix {
        let _ = writeln!(out, "    {suffix}");
    }
}

/// An expression on one line.
pub fn print_expr(e: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, e, 0);
    out
}

pub fn print_aggregate(agg: &Aggregate) -> String {
    let mut out = String::new();
    write_aggregate(&mut out, agg);
    out
}

const PREC_OR: u8 = 1;
const PREC_AND: u8 = 2;
const PREC_NOT: u8 = 3;
const PREC_CMP: u8 = 4;
const PREC_SUM: u8 = 5;
const PREC_PRODUCT: u8 = 6;
const PREC_NEG: u8 = 7;
const PREC_ATOM: u8 = 8;

fn precedence(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Or(..) => PREC_OR,
        ExprKind::And(..) => PREC_AND,
        ExprKind::Not(_) => PREC_NOT,
        ExprKind::Compare(..) | ExprKind::In(..) => PREC_CMP,
        ExprKind::Arith(ArithOp::Add | ArithOp::Sub, ..) => PREC_SUM,
        ExprKind::Arith(ArithOp::Mul | ArithOp::Div, ..) => PREC_PRODUCT,
        ExprKind::Neg(_) => PREC_NEG,
        ExprKind::Number(_)
        | ExprKind::String(_)
        | ExprKind::Bool(_)
        | ExprKind::Name(_)
        | ExprKind::Field { .. }
        | ExprKind::Aggregate(_)
        | ExprKind::Absent(_) => PREC_ATOM,
    }
}

/// Writes `e` where the grammar needs at least precedence `min`,
/// parenthesising it if it binds more loosely.
fn write_expr(out: &mut String, e: &Expr, min: u8) {
    if precedence(e) < min {
        out.push('(');
        write_expr(out, e, 0);
        out.push(')');
        return;
    }
    match &e.kind {
        ExprKind::Number(n) => out.push_str(&number(*n)),
        ExprKind::String(s) => out.push_str(&quote(s)),
        ExprKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ExprKind::Name(name) => out.push_str(&name.name),
        ExprKind::Field { stream, field } => {
            let _ = write!(out, "{}.{}", stream.name, field.name);
        }
        ExprKind::Aggregate(agg) => write_aggregate(out, agg),
        ExprKind::Absent(absence) => {
            let _ = write!(out, "absent({}", absence.stream.name);
            if let Some(filter) = &absence.filter {
                out.push_str(" where ");
                write_expr(out, filter, 0);
            }
            let _ = write!(
                out,
                ") over {}",
                format_duration(absence.window.length.unwrap_or(0))
            );
        }
        ExprKind::Neg(x) => {
            out.push('-');
            write_expr(out, x, PREC_NEG);
        }
        ExprKind::Not(x) => {
            out.push_str("not ");
            write_expr(out, x, PREC_NOT);
        }
        ExprKind::Or(a, b) => binary(out, a, "or", b, PREC_OR),
        ExprKind::And(a, b) => binary(out, a, "and", b, PREC_AND),
        ExprKind::Arith(op, a, b) => {
            let (symbol, prec) = match op {
                ArithOp::Add => ("+", PREC_SUM),
                ArithOp::Sub => ("-", PREC_SUM),
                ArithOp::Mul => ("*", PREC_PRODUCT),
                ArithOp::Div => ("/", PREC_PRODUCT),
            };
            binary(out, a, symbol, b, prec);
        }
        ExprKind::Compare(op, a, b) => {
            // Comparisons do not chain: both operands must bind tighter.
            write_expr(out, a, PREC_SUM);
            let _ = write!(out, " {} ", op.symbol());
            write_expr(out, b, PREC_SUM);
        }
        ExprKind::In(a, items) => {
            write_expr(out, a, PREC_SUM);
            out.push_str(" in [");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match &item.value {
                    ListValue::Number(n) => out.push_str(&number(*n)),
                    ListValue::String(s) => out.push_str(&quote(s)),
                    ListValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                }
            }
            out.push(']');
        }
    }
}

/// A left-associative operator: the right operand must bind tighter.
fn binary(out: &mut String, a: &Expr, op: &str, b: &Expr, prec: u8) {
    write_expr(out, a, prec);
    let _ = write!(out, " {op} ");
    write_expr(out, b, prec + 1);
}

fn write_aggregate(out: &mut String, agg: &Aggregate) {
    let _ = write!(out, "{}(", agg.function.name);
    write_expr(out, &agg.argument, 0);
    if let Some(filter) = &agg.filter {
        out.push_str(" where ");
        write_expr(out, filter, 0);
    }
    out.push_str(") over ");
    if agg.window.tumbling {
        out.push_str("tumbling ");
    }
    out.push_str(&format_duration(agg.window.length.unwrap_or(0)));
    if let Some(every) = &agg.window.every {
        out.push_str(" every ");
        out.push_str(&format_duration(every.length.unwrap_or(0)));
    }
    if let Some(rings) = &agg.rings {
        let word = if rings.count == 1.0 { "ring" } else { "rings" };
        let _ = write!(out, " within {} {word}", number(rings.count));
    }
}

/// A number as the lexer reads it back exactly: plain digits for ordinary
/// magnitudes, exponent notation for very large or very small ones.
fn number(n: f64) -> String {
    let magnitude = n.abs();
    if magnitude != 0.0 && !(1e-4..1e15).contains(&magnitude) {
        format!("{n:e}")
    } else {
        format!("{n}")
    }
}

/// A string literal, escaped so the lexer reads back the same text.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:X}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    #[test]
    fn canonical_text() {
        let (file, diags) = parse(
            "rule r \"t\" { severity red group by cell let w = max((sensor.value) where kind==\"a\\\"\") over 90s \
             when (w > 1) and not (w < 2 or w == 3) and -(w + 1) * 2 > 1e20 message \"{w:.1}\" }",
            0,
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(
            print_file(&file),
            "rule r \"t\" {\n  severity red\n  group by cell\n  \
             let w = max(sensor.value where kind == \"a\\\"\") over 1m30s\n  \
             when w > 1 and not (w < 2 or w == 3) and -(w + 1) * 2 > 1e20\n  message \"{w:.1}\"\n}\n"
        );
    }
}
