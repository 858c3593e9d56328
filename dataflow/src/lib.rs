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
//!  Engine::send_events ─┐                        (per worker, routed by place)
//!  Engine::add_rule ────┼─▶ command channel ─▶ timely inputs
//!  Engine::advance ─────┤                        │ events, rule changes
//!  Engine::update_reference ┘                    ▼
//!        place: parse, filter, (enter, exit) per term; key known? ──────────┐
//!                   │ keyed through reference data: by source (cell, entity) │
//!                   ▼                                                        │
//!        sources: each source's contributions; this worker's share of       │
//!                 each key's window under the reference data in force ──┐    │
//!                   (control: rule changes, reference changes)          │    │
//!                                                     summaries by key  ▼    ▼ contributions by key
//!        keys: each key's windows as slices (one partial per step), its own
//!              timeline to the frontier; every rule of a key judged at once;
//!              holds, hysteresis, sequences; value-only updates coalesced
//!                   │  ((rule, key), AlertRow) as a differential collection
//!                   ▼
//!        inhibition (differential: distinct, join with cell → district, antijoin)
//!                   │
//!                   ▼
//!        inspect + probe ─▶ merge thread ─▶ EngineOutput (changes per time, in order)
//! ```

mod alerts;
pub mod engine;
mod keys;
pub mod place;
mod queue;
mod registry;
mod slices;
mod sources;
mod temporal;
pub mod types;

pub use engine::{Engine, EngineConfig, EngineError, EngineOutput, RetainedStats};
pub use place::{placement, ChunkReport, WindowConfig};
pub use types::{AlertRow, AlertUpdate, GroupKey, RuleId, Time, F64};
