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

pub mod event;
pub mod plan;
pub mod schema;
pub mod space;
pub mod sym;
pub mod time;

pub use event::{Event, LineError, ParseContext};
pub use plan::{RulePlan, Severity};
pub use sym::Sym;
