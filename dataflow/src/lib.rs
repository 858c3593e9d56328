//! # jingzhi-dataflow: rule plans as timely/differential dataflows
//!
//! This crate owns the engine: timely worker threads that run beside the
//! gateway's tokio runtime, the dataflow every worker builds, and the
//! ordered stream of alert changes that comes out. It consumes checked
//! [`RulePlan`](jingzhi_rules::plan::RulePlan)s and parsed
//! [`Event`](jingzhi_rules::event::Event)s from `jingzhi-rules`.
//!
//! It must not know about HTTP, WebSocket, storage or metrics formats: the
//! gateway drives it through [`Engine`] and reads [`EngineOutput`].
//!
//! ```text
//!  Engine::send_events ─┐                       (per worker, routed by place)
//!  Engine::add_rule ────┼─▶ command channel ─▶ timely input
//!  Engine::advance ─────┘                          │
//!                                                  ▼
//!                    window operator: filter, key, combine; +1 at window entry, −1 at exit
//!                                                  │  ((rule, group, place), partial)
//!  reference data ─▶ sensors / segments / cell→district collections
//!                                                  ▼
//!                    join (place → cell → district) ▶ reduce per (rule, key): aggregate + condition
//!                                                  │  ((rule, key), AlertRow)
//!                                                  ▼
//!                    inspect + probe ─▶ merge thread ─▶ EngineOutput (changes per time, in order)
//! ```

mod alerts;
pub mod engine;
mod keys;
mod registry;
mod temporal;
pub mod types;
pub mod window;

pub use engine::{Engine, EngineConfig, EngineError, EngineOutput, RetainedStats};
pub use types::{AlertRow, AlertUpdate, GroupKey, RuleId, Time, F64};
pub use window::{placement, ChunkReport, WindowConfig};
