//! The operator API: who is calling, acting on alerts, silences, an
//! alert's history, effectiveness figures and the audit log.
//!
//! Every route here and in `http.rs` asks [`authorize`] for the access it
//! needs; refusals are answered 401 (no or unknown token) or 403 (not
//! allowed), counted in `jingzhi_auth_refused_total` and logged without
//! the token.

use crate::app::{now_ms, App};
use crate::auth::{Access, Principal, Refusal};
use crate::http::ApiError;
use crate::store::Action;
use crate::workflow::{ActError, SilenceRequest};
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The API token a request presents: `Authorization: Bearer TOKEN`, or
/// the `token` query parameter (browsers cannot set headers on a
/// WebSocket).
#[derive(Clone, Debug, Default)]
pub struct Token(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Token {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Token, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_string());
        let query = || {
            parts.uri.query().and_then(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == "token")
                    .map(|(_, v)| v.to_string())
            })
        };
        Ok(Token(bearer.or_else(query).filter(|t| !t.is_empty())))
    }
}

/// The caller, if they may have `access`; else the refusal as a reply.
pub fn authorize(app: &App, token: &Token, access: Access) -> Result<Principal, ApiError> {
    app.auth
        .check(token.0.as_deref(), access)
        .map_err(|r| refused(app, r))
}

/// Counts, logs and answers a refusal.
pub fn refused(app: &App, refusal: Refusal) -> ApiError {
    app.metrics
        .auth_refused
        .with_label_values(&[refusal.reason()])
        .inc();
    tracing::warn!(reason = refusal.reason(), "refused a request: {refusal}");
    if refusal.is_unauthenticated() {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            refusal.to_string(),
        )
    } else {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", refusal.to_string())
    }
}

impl From<(&App, ActError)> for ApiError {
    fn from((app, e): (&App, ActError)) -> ApiError {
        match e {
            ActError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no {what} is known"),
            ),
            ActError::Refused(r) => refused(app, r),
            ActError::Invalid(why) => ApiError::new(StatusCode::BAD_REQUEST, "invalid", why),
            ActError::Store(e) => {
                app.metrics
                    .store_errors
                    .with_label_values(&["action"])
                    .inc();
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string())
            }
        }
    }
}

/// Runs a blocking workflow call off the async threads.
async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&App) -> Result<T, ActError> + Send + 'static,
) -> Result<T, ApiError> {
    let worker = app.clone();
    match tokio::task::spawn_blocking(move || f(&worker)).await {
        Ok(r) => r.map_err(|e| ApiError::from((app.as_ref(), e))),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the request failed: {e}"),
        )),
    }
}

/// `GET /api/v1/whoami`
pub async fn whoami(State(app): State<Arc<App>>, token: Token) -> Result<Json<Value>, ApiError> {
    let who = authorize(&app, &token, Access::Read)?;
    Ok(Json(json!({
        "auth": app.auth.enabled(),
        "name": who.name,
        "roles": who.roles,
        "districts": who.districts,
    })))
}

/// The body of an action; which fields apply depends on the action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    note: Option<String>,
    /// `assign`: the person or team.
    #[serde(default)]
    to: Option<String>,
    /// `comment`: the comment.
    #[serde(default)]
    text: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
}

/// `POST /api/v1/alerts/{id}/{action}`: `acknowledge`, `assign`,
/// `comment`, `resolve`, `false-alarm`.
pub async fn act(
    State(app): State<Arc<App>>,
    token: Token,
    Path((id, verb)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&app, &token, Access::Operate)?;
    let body: ActionBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body must be a JSON object like {{\"note\": \"…\"}}: {e}"),
            )
        })?
    };
    let action = match verb.as_str() {
        "acknowledge" => Action::Acknowledge,
        "resolve" => Action::Resolve,
        "false-alarm" | "false_alarm" => Action::FalseAlarm,
        "assign" => Action::Assign {
            to: body.to.clone().ok_or_else(|| {
                bad("assign needs `to`: the person or team to assign the alert to")
            })?,
        },
        "comment" => Action::Comment {
            text: body
                .text
                .clone()
                .ok_or_else(|| bad("comment needs `text`"))?,
        },
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no action `{other}`: use acknowledge, assign, comment, resolve or false-alarm"
                ),
            ))
        }
    };
    if body.to.is_some() && !matches!(action, Action::Assign { .. }) {
        return Err(bad(format!("`to` only applies to assign, not {verb}")));
    }
    if body.text.is_some() && !matches!(action, Action::Comment { .. }) {
        return Err(bad(format!("`text` only applies to comment, not {verb}")));
    }
    let outcome = blocking(&app, move |app| {
        app.act(&who, &id, action, body.note.as_deref())
    })
    .await?;
    Ok(Json(json!(outcome)))
}

/// `GET /api/v1/alerts/{id}/history`: recorded changes and the actions of
/// its latest incident.
pub async fn history(
    State(app): State<Arc<App>>,
    token: Token,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&app, &token, Access::Read)?;
    let value = blocking(&app, move |app| {
        app.wait_recorded_all();
        app.check_scope(&who, &id)?;
        let changes = app.store.changes_of(&id, 1000)?;
        let actions = app.store.actions_for(&id)?;
        let operator = app.store.operator_state(&id)?;
        let changes: Vec<Value> = changes
            .into_iter()
            .map(|c| {
                json!({
                    "seq": c.seq,
                    "time": c.time,
                    "kind": c.kind,
                    "severity": c.severity,
                    "alert": serde_json::from_str::<Value>(&c.alert_json).unwrap_or(Value::Null),
                })
            })
            .collect();
        Ok(json!({"alert_id": id, "operator": operator, "changes": changes, "actions": actions}))
    })
    .await?;
    Ok(Json(value))
}

#[derive(Debug, Deserialize)]
pub struct SilenceQuery {
    /// Also list ended silences (most recent first is not promised).
    #[serde(default)]
    all: bool,
}

/// `GET /api/v1/silences`: the silences in force.
pub async fn list_silences(
    State(app): State<Arc<App>>,
    token: Token,
    Query(q): Query<SilenceQuery>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&app, &token, Access::Read)?;
    let silences = blocking(&app, move |app| {
        let at = if q.all { 0 } else { now_ms() };
        Ok(app.store.active_silences(at)?)
    })
    .await?;
    let visible: Vec<_> = silences
        .into_iter()
        .filter(|s| {
            who.districts.is_none()
                || s.silence
                    .matcher
                    .district
                    .as_deref()
                    .is_some_and(|d| who.sees(Some(d)))
        })
        .collect();
    Ok(Json(json!({"silences": visible})))
}

/// `POST /api/v1/silences`
pub async fn create_silence(
    State(app): State<Arc<App>>,
    token: Token,
    body: Result<Json<SilenceRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = authorize(&app, &token, Access::Operate)?;
    let Json(request) = body?;
    let silence = blocking(&app, move |app| app.create_silence(&who, request)).await?;
    Ok((StatusCode::CREATED, Json(json!(silence))))
}

/// `DELETE /api/v1/silences/{id}`: ends a silence now.
pub async fn end_silence(
    State(app): State<Arc<App>>,
    token: Token,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&app, &token, Access::Operate)?;
    let silence = blocking(&app, move |app| app.end_silence(&who, id)).await?;
    Ok(Json(json!(silence)))
}

#[derive(Debug, Deserialize)]
pub struct TimelineQuery {
    /// Start, epoch milliseconds; default: `hours` before `until`.
    #[serde(default)]
    since: Option<u64>,
    /// End (exclusive); default: the published engine clock.
    #[serde(default)]
    until: Option<u64>,
    /// Bucket length in milliseconds; default 10 minutes.
    #[serde(default)]
    step: Option<u64>,
}

/// `GET /api/v1/alerts/timeline`: alerts raised and cleared per bucket,
/// from the recorded history (the dashboard's timeline). A caller limited
/// to districts counts only theirs.
pub async fn timeline(
    State(app): State<Arc<App>>,
    token: Token,
    Query(q): Query<TimelineQuery>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&app, &token, Access::Read)?;
    let step = q.step.unwrap_or(600_000).max(1000);
    let until = q.until.unwrap_or_else(|| app.published_clock() + 1);
    let since = q.since.unwrap_or(until.saturating_sub(6 * 3_600_000));
    if until <= since || (until - since) / step > 10_000 {
        return Err(bad(
            "the timeline needs since < until and at most 10,000 steps between them",
        ));
    }
    let rows = blocking(&app, move |app| {
        app.wait_recorded_all();
        Ok(app.store.change_counts(since, until, step)?)
    })
    .await?;
    let mut buckets: std::collections::BTreeMap<u64, (u64, u64)> = Default::default();
    for (bucket, district, raised, cleared) in rows {
        if who.sees(district.as_deref()) {
            let b = buckets.entry(bucket).or_default();
            b.0 += raised;
            b.1 += cleared;
        }
    }
    let buckets: Vec<Value> = buckets
        .into_iter()
        .map(|(t, (r, c))| json!([t, r, c]))
        .collect();
    Ok(Json(
        json!({"since": since, "until": until, "step": step, "buckets": buckets}),
    ))
}

#[derive(Debug, Deserialize)]
pub struct SinceQuery {
    /// Epoch milliseconds; default: the last 24 hours of the engine clock.
    #[serde(default)]
    since: Option<u64>,
}

/// `GET /api/v1/stats`: time to acknowledge and resolve, and false-alarm
/// ratios, per rule, per district and in total. A caller limited to
/// districts gets only their districts.
pub async fn stats(
    State(app): State<Arc<App>>,
    token: Token,
    Query(q): Query<SinceQuery>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&app, &token, Access::Read)?;
    // Raises carry engine-clock times: "the last day" is by that clock.
    let since = q
        .since
        .unwrap_or_else(|| app.published_clock().saturating_sub(86_400_000));
    let stats = blocking(&app, move |app| {
        app.wait_recorded_all();
        Ok(app.store.stats(since)?)
    })
    .await?;
    if who.districts.is_some() {
        let by_district: serde_json::Map<String, Value> = stats
            .by_district
            .iter()
            .filter(|(d, _)| who.sees(Some(d)))
            .map(|(d, e)| (d.clone(), json!(e)))
            .collect();
        return Ok(Json(json!({"since": since, "by_district": by_district})));
    }
    Ok(Json(json!(stats)))
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/v1/audit`: who did what, when (admin).
pub async fn audit(
    State(app): State<Arc<App>>,
    token: Token,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&app, &token, Access::Read)?;
    if !who.has(crate::auth::Role::Admin) {
        return Err(refused(
            &app,
            Refusal::Forbidden {
                name: who.name,
                needed: "the admin role",
            },
        ));
    }
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let entries = blocking(&app, move |app| Ok(app.store.audit_log(q.since, limit)?)).await?;
    Ok(Json(json!({"entries": entries})))
}
