//! # jingzhi-rules: the risk-rule language and the data it talks about
//!
//! This crate owns what a rule author sees: the event schema of the three
//! streams ([`schema`], [`event`]), the spatial model of cells, districts,
//! sensors and segments ([`space`]), the rule language's text → AST → checked
//! plan pipeline, and the diagnostics it prints. Its output is a
//! [`plan::RulePlan`]: plain data that says *what* a rule computes.
//!
//! It must not know *how* rules run: nothing here depends on timely,
//! differential dataflow, HTTP or storage. The engine (`jingzhi-dataflow`)
//! consumes plans; the gateway composes both.
//!
//! ```text
//! rule text ──lexer──▶ tokens ──parser──▶ AST (with spans) ──checker──▶ RulePlan
//!                                              │                  │
//!                                              └──── Diagnostic ◀─┘ (file:line:col, caret, hint)
//! NDJSON line ──event::parse_line──▶ Event        (per-line errors naming the field)
//! ```

pub mod ast;
pub mod check;
pub mod diag;
pub mod event;
pub mod fxhash;
pub mod lang;
pub mod lexer;
pub mod oracle;
pub mod parser;
pub mod plan;
pub mod print;
mod scan;
pub mod schema;
pub mod smallstr;
pub mod space;
pub mod span;
pub mod suggest;
pub mod sym;
pub mod time;

pub use diag::{Diagnostic, DiagnosticJson, Level};
pub use event::{Event, LineError, ParseContext};
pub use lang::{
    check_files, compile, diagnostics_json, render_diagnostics, CheckOptions, Compiled, SourceFile,
};
pub use plan::{RulePlan, Severity};
pub use span::Span;
pub use sym::Sym;
