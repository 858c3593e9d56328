//! HTTP routes. `router` builds the whole service so that tests can serve
//! it on any listener.

use crate::app::App;
use crate::auth::Access;
use crate::config::ClockMode;
use crate::operator_api::{self, authorize, Token};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use jingzhi_rules::event::{parse_ndjson, ParsedBatch, MIN_TS};
use jingzhi_rules::space::{ReferenceChange, SegmentRef, SensorRef};
use jingzhi_rules::Sym;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A JSON error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", r.body_text())
    }
}

/// The whole HTTP surface of the service.
pub fn router(app: Arc<App>) -> Router {
    let max_body = app.config.max_body_bytes;
    Router::new()
        .route(
            "/api/v1/events",
            post(ingest).layer(DefaultBodyLimit::max(max_body)),
        )
        .route("/api/v1/watermark", post(watermark))
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/ws", get(crate::ws::upgrade))
        .route("/api/v1/alerts/timeline", get(operator_api::timeline))
        .route("/api/v1/alerts/{id}", get(get_alert))
        .route("/api/v1/alerts/{id}/history", get(operator_api::history))
        .route("/api/v1/alerts/{id}/{action}", post(operator_api::act))
        .route(
            "/api/v1/silences",
            get(operator_api::list_silences).post(operator_api::create_silence),
        )
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(operator_api::end_silence),
        )
        .route("/api/v1/stats", get(operator_api::stats))
        .route("/api/v1/audit", get(operator_api::audit))
        .route("/api/v1/whoami", get(operator_api::whoami))
        .route("/api/v1/status", get(status))
        .route("/api/v1/rules", get(crate::rules_api::list))
        .route("/api/v1/rules/validate", post(crate::rules_api::validate))
        .route(
            "/api/v1/rules/backtest",
            post(crate::backtest_api::backtest),
        )
        .route(
            "/api/v1/rules/{name}",
            get(crate::rules_api::get_rule)
                .put(crate::rules_api::put_rule)
                .delete(crate::rules_api::delete_rule),
        )
        .route(
            "/api/v1/reference/sensors/{id}",
            put(put_sensor).delete(delete_sensor),
        )
        .route(
            "/api/v1/reference/segments/{id}",
            put(put_segment).delete(delete_segment),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(static_file)
        .layer(axum::middleware::from_fn(request_id))
        .with_state(app)
}

/// Gives every request an id — the caller's `x-request-id` if it sent a
/// sane one, else a new one — logs under it, and returns it in the reply's
/// `x-request-id`, so an operator's complaint can be found in the logs.
async fn request_id(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tracing::Instrument;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let given = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string);
    let id = given.unwrap_or_else(|| {
        format!(
            "{:x}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    });
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::info_span!("request", id = %id, %method, %path);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    let _entered = span.enter();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), ms, "request failed");
    } else {
        tracing::debug!(status = status.as_u16(), ms, "request served");
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

#[derive(Serialize)]
struct RejectedLine {
    line: usize,
    stream: Option<&'static str>,
    field: Option<&'static str>,
    reason: &'static str,
    message: String,
}

/// Rejected lines listed in a reply; the count covers all of them.
const MAX_LISTED_REJECTIONS: usize = 1000;

async fn ingest(
    State(app): State<Arc<App>>,
    token: Token,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let response = match authorize(&app, &token, Access::Ingest) {
        Err(e) => Err(e),
        Ok(_) => ingest_body(&app, body).await,
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    app.metrics
        .ingest_requests
        .with_label_values(&[response.status().as_str()])
        .inc();
    app.metrics
        .ingest_duration
        .with_label_values(&["/api/v1/events"])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn ingest_body(
    app: &Arc<App>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| match r {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the request body exceeds the limit of {} bytes; send smaller batches",
                    app.config.max_body_bytes
                ),
            )
        }
        other => ApiError::new(StatusCode::BAD_REQUEST, "bad_body", other.body_text()),
    })?;
    let ctx = app.parse_context();
    // Large bodies are parsed off the async threads.
    let parsed: ParsedBatch = if body.len() > 256 * 1024 {
        tokio::task::spawn_blocking(move || parse_ndjson(&body, &ctx))
            .await
            .map_err(|e| ApiError::unavailable(format!("parser failed: {e}")))?
    } else {
        parse_ndjson(&body, &ctx)
    };
    for (_, e) in &parsed.rejected {
        let stream = e.stream.map_or("unknown", |s| s.name());
        app.metrics
            .events_rejected
            .with_label_values(&[stream, e.reason.as_str()])
            .inc();
    }
    let rejected = parsed.rejected.len();
    let outcome = app.ingest_events(parsed.events).await.map_err(|e| {
        ApiError::unavailable(format!(
            "{e}; the batch was not acknowledged, send it again"
        ))
    })?;
    let listed: Vec<RejectedLine> = parsed
        .rejected
        .into_iter()
        .take(MAX_LISTED_REJECTIONS)
        .map(|(line, e)| RejectedLine {
            line,
            stream: e.stream.map(|s| s.name()),
            field: e.field,
            reason: e.reason.as_str(),
            message: e.message,
        })
        .collect();
    let status = if outcome.accepted == 0 && rejected > 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = json!({
        "accepted": outcome.accepted,
        "rejected": rejected,
        "late": outcome.late,
        "expired": outcome.expired,
        "clock": outcome.clock,
        "errors": listed,
        "errors_truncated": rejected > MAX_LISTED_REJECTIONS,
    });
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WatermarkRequest {
    ts: u64,
}

async fn watermark(
    State(app): State<Arc<App>>,
    token: Token,
    body: Result<Json<WatermarkRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &token, Access::Ingest)?;
    let Json(req) = body?;
    if app.config.clock != ClockMode::Event {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wall_clock",
            "the clock follows the wall clock; start the server with --clock event to set watermarks",
        ));
    }
    if req.ts < MIN_TS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_timestamp",
            format!(
                "ts {} is before 2000-01-01; it must be epoch milliseconds",
                req.ts
            ),
        ));
    }
    let clock = app
        .watermark(req.ts, Duration::from_secs(60))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let seq = app.book.lock().unwrap_or_else(|e| e.into_inner()).seq();
    Ok(Json(json!({"clock": clock, "seq": seq})))
}

async fn list_alerts(State(app): State<Arc<App>>, token: Token) -> Result<Response, ApiError> {
    let who = authorize(&app, &token, Access::Read)?;
    let clock = app.published_clock();
    let book = app.book.lock().unwrap_or_else(|e| e.into_inner());
    let alerts: Vec<_> = book
        .alerts()
        .into_iter()
        .filter(|a| who.sees(a.district.as_deref()))
        .collect();
    let body = json!({"seq": book.seq(), "clock": clock, "alerts": alerts});
    drop(book);
    Ok(Json(body).into_response())
}

async fn get_alert(
    State(app): State<Arc<App>>,
    token: Token,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = authorize(&app, &token, Access::Read)?;
    let book = app.book.lock().unwrap_or_else(|e| e.into_inner());
    match book.get(&id).filter(|a| who.sees(a.district.as_deref())) {
        Some(a) => Ok(Json(a).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no active alert `{id}`"),
        )),
    }
}

async fn status(
    State(app): State<Arc<App>>,
    token: Token,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &token, Access::Read)?;
    let rules = app.rules.read().unwrap_or_else(|e| e.into_inner()).len();
    let active = app.book.lock().unwrap_or_else(|e| e.into_inner()).len();
    let grid = {
        let reference = app.reference.read().unwrap_or_else(|e| e.into_inner());
        let g = &reference.grid;
        json!({"west": g.west, "south": g.south, "east": g.east, "north": g.north, "cols": g.cols, "rows": g.rows})
    };
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "clock_mode": app.config.clock.name(),
        "clock": app.published_clock(),
        "workers": app.engine.workers(),
        "rules": rules,
        "alerts_active": active,
        "ready": app.is_ready(),
        "uptime_s": app.started.elapsed().as_secs(),
        "durable": app.log.is_some(),
        "grid": grid,
        "auth": app.auth.enabled(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SensorBody {
    cell: u32,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentBody {
    cell: u32,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    road_class: Option<String>,
}

fn entity_id(id: &str) -> Result<Sym, ApiError> {
    Sym::intern(id).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_id", format!("id {e}")))
}

async fn apply_reference(
    app: &App,
    change: ReferenceChange,
) -> Result<Json<serde_json::Value>, ApiError> {
    app.update_reference(vec![change.clone()])
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_reference", e))?;
    Ok(Json(json!({"applied": change})))
}

async fn put_sensor(
    State(app): State<Arc<App>>,
    token: Token,
    Path(id): Path<String>,
    body: Result<Json<SensorBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &token, Access::Ingest)?;
    let Json(b) = body?;
    let kind = b.kind.as_deref().map(entity_id).transpose()?;
    let change = ReferenceChange::UpsertSensor(SensorRef {
        id: entity_id(&id)?,
        cell: b.cell,
        kind,
        name: b.name,
    });
    apply_reference(&app, change).await
}

async fn delete_sensor(
    State(app): State<Arc<App>>,
    token: Token,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &token, Access::Ingest)?;
    let id = Sym::lookup(&id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no sensor `{id}`"),
        )
    })?;
    apply_reference(&app, ReferenceChange::RemoveSensor { id }).await
}

async fn put_segment(
    State(app): State<Arc<App>>,
    token: Token,
    Path(id): Path<String>,
    body: Result<Json<SegmentBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &token, Access::Ingest)?;
    let Json(b) = body?;
    let change = ReferenceChange::UpsertSegment(SegmentRef {
        id: entity_id(&id)?,
        cell: b.cell,
        name: b.name,
        road_class: b.road_class,
    });
    apply_reference(&app, change).await
}

async fn delete_segment(
    State(app): State<Arc<App>>,
    token: Token,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&app, &token, Access::Ingest)?;
    let id = Sym::lookup(&id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no segment `{id}`"),
        )
    })?;
    apply_reference(&app, ReferenceChange::RemoveSegment { id }).await
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.is_ready() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        ApiError::unavailable("not ready: the engine is starting or has stopped").into_response()
    }
}

async fn static_file(uri: axum::http::Uri) -> Response {
    match jingzhi_ui::asset(uri.path()) {
        Some(asset) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            asset.body,
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such resource: {}", uri.path()),
        )
        .into_response(),
    }
}
