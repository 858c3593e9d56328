//! `POST /api/v1/rules/backtest`: what rule text would have raised over a
//! recorded event file, for the rule-authoring page.
//!
//! The request is JSON, `{"rules": "rule text", "events": "NDJSON text"}`;
//! the reply is the document `jingzhi rules backtest --json` prints (see
//! [`crate::backtest`]) plus the rule text's warnings as `diagnostics`.
//! Rule text that does not check is answered `400` `invalid_rule` with
//! diagnostics (lines and columns), as `PUT /api/v1/rules/{name}` does.
//!
//! The backtest runs its own engine on the event clock, on a blocking
//! thread, one at a time: it never touches the running engine, its clock or
//! its alerts. The body is limited to the ingest limit
//! (`--max-body-bytes`).

use crate::app::App;
use crate::auth::Access;
use crate::backtest::{self, Backtest, BacktestOptions};
use crate::http::ApiError;
use crate::operator_api::{authorize, Token};
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jingzhi_rules::lang::{compile, diagnostics_json, CheckOptions, SourceFile};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The name diagnostics give the rule text.
const REQUEST_FILE: &str = "<request>";

/// The time resolution backtests run at (as `jingzhi rules backtest`).
const RESOLUTION_MS: u64 = 1000;

/// Workers of a backtest's engine: enough to be quick, few enough to leave
/// the running engine its cores.
const WORKERS: usize = 2;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BacktestRequest {
    /// One or more rules, as in a rules file.
    rules: String,
    /// The recording: NDJSON events, as `POST /api/v1/events` takes them.
    events: String,
}

/// One backtest at a time; later requests wait their turn.
fn turn() -> &'static tokio::sync::Semaphore {
    static TURN: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    TURN.get_or_init(|| tokio::sync::Semaphore::new(1))
}

/// `POST /api/v1/rules/backtest` (author or admin).
pub async fn backtest(State(app): State<Arc<App>>, token: Token, body: Body) -> Response {
    match run(&app, &token, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(app: &Arc<App>, token: &Token, body: Body) -> Result<Response, ApiError> {
    authorize(app, token, Access::Author)?;
    let limit = app.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the request body exceeds the limit of {limit} bytes; backtest a shorter recording"
                ),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.to_string())
        }
    })?;
    let request: BacktestRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "the body must be a JSON object {{\"rules\": \"rule text\", \"events\": \"NDJSON text\"}}: {e}"
            ),
        )
    })?;
    drop(bytes);

    let sources = [SourceFile {
        name: REQUEST_FILE.into(),
        text: request.rules,
    }];
    let compiled = compile(
        &sources,
        &CheckOptions {
            min_window_ms: RESOLUTION_MS,
        },
    );
    let diagnostics = diagnostics_json(&compiled.diagnostics, &sources);
    if compiled.has_errors() {
        let n = compiled.diagnostics.iter().filter(|d| d.is_error()).count();
        let first = compiled
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map_or(String::new(), |d| format!(": {}", d.message));
        let body = json!({
            "error": {
                "code": "invalid_rule",
                "message": format!("the rules do not check ({n} error{}){first}", if n == 1 { "" } else { "s" }),
            },
            "diagnostics": diagnostics,
        });
        return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
    }
    if compiled.plans.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "no_rules",
            "the rule text defines no rule",
        ));
    }
    let [SourceFile { text: rules, .. }] = sources;
    let reference = app
        .reference
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let lateness_ms = app.config.lateness_ms;

    let _turn = turn().acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "shutting down",
        )
    })?;
    let result = tokio::task::spawn_blocking(move || -> Result<Backtest, String> {
        let dir = ScratchDir::new().map_err(|e| format!("cannot make a scratch directory: {e}"))?;
        let rules_path = dir.0.join("request.rules");
        let events_path = dir.0.join("events.ndjson");
        std::fs::write(&rules_path, rules).map_err(|e| e.to_string())?;
        std::fs::write(&events_path, request.events).map_err(|e| e.to_string())?;
        let opts = BacktestOptions {
            rules: vec![rules_path.clone()],
            events: events_path,
            json: true,
            against: None,
            workers: WORKERS,
            lateness_ms,
            reference: None,
        };
        backtest::backtest(&[rules_path], &opts, &reference)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the backtest failed: {e}"),
        )
    })?
    .map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the backtest failed: {e}"),
        )
    })?;
    let mut doc = backtest_json(&result);
    doc["diagnostics"] = json!(diagnostics);
    Ok(Json(doc).into_response())
}

/// Whether reading the body failed at the size limit (`http-body-util`'s
/// `LengthLimitError`, which axum does not re-export).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.to_string() == "length limit exceeded" {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The document `jingzhi rules backtest --json` prints, with the counts
/// of events read and the end of the recording.
pub fn backtest_json(b: &Backtest) -> Value {
    let mut doc = b.json();
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("events".into(), json!(b.events));
        obj.insert("rejected".into(), json!(b.rejected));
        obj.insert("end".into(), json!(backtest::rfc3339(b.end)));
        obj.insert("end_ms".into(), json!(b.end));
    }
    doc
}

/// A private directory for one backtest's files, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<ScratchDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = base.join(format!(
                "jingzhi-backtest-{}-{}-{nanos}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(ScratchDir(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
