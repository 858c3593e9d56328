//! # jingzhi-gateway: the service around the engine
//!
//! This crate composes the rule language (`jingzhi-rules`) and the engine
//! (`jingzhi-dataflow`) into the `jingzhi` service: HTTP ingest with
//! per-line errors, the engine clock (wall or event time), the alert book
//! that numbers changes, the WebSocket feed, Prometheus metrics, the
//! dashboard's static files, the city simulator and the command line.
//! It owns everything that speaks to the network; the engine knows nothing
//! of it.
//!
//! ```text
//!  POST /api/v1/events ─▶ parse NDJSON (per-line errors) ─▶ App::ingest_events ─▶ Engine
//!  wall-clock heartbeat / POST /api/v1/watermark ──────────▶ Engine::advance
//!  Engine output (changes per time, in order) ─▶ publisher thread ─▶ AlertBook
//!        ─▶ numbered raised/updated/cleared ─▶ broadcast ─▶ WebSocket clients
//!                                                        └▶ GET /api/v1/alerts, /metrics
//! ```

pub mod alerts;
pub mod app;
pub mod auth;
pub mod backtest;
pub mod backtest_api;
pub mod bench;
pub mod city;
pub mod config;
pub mod demo;
pub mod eventlog;
pub mod http;
pub mod masking;
pub mod metrics;
pub mod operator_api;
pub mod recovery;
pub mod rules_api;
pub mod rules_cli;
pub mod rules_load;
pub mod rules_test;
pub mod serve;
pub mod sim;
pub mod store;
pub mod watch;
pub mod workflow;
pub mod ws;
