//! Publishing rules without a restart: `GET/PUT/DELETE /api/v1/rules/{name}`,
//! `GET /api/v1/rules` and `POST /api/v1/rules/validate`.
//!
//! A published rule is checked together with the installed rules (names
//! stay unique, `inhibited by` may name them), versioned in
//! [`App::versions`], and installed at the next clock instant through
//! [`App::edit_rules`]; its errors come back with lines and columns.

use crate::app::{rule_names, App, RuleEdit, RuleEditError, RuleEditOutcome};
use crate::auth::Access;
use crate::http::ApiError;
use crate::operator_api::{authorize, Token};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jingzhi_rules::lang::{diagnostics_json, Diagnostic, SourceFile};
use jingzhi_rules::plan::RulePlan;
use jingzhi_rules::span::Span;
use jingzhi_rules::time::format_duration;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The name diagnostics give a request body.
const REQUEST_FILE: &str = "<request>";

/// An error reply that also lists rule diagnostics.
fn with_diagnostics(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
    diagnostics: &[Diagnostic],
    sources: &[SourceFile],
) -> Response {
    let body = json!({
        "error": {"code": code, "message": message.into()},
        "diagnostics": diagnostics_json(diagnostics, sources),
    });
    (status, Json(body)).into_response()
}

/// The body as rule text: `text/plain` (or no content type) and UTF-8.
fn rule_text(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<String, Box<Response>> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let plain = ct
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/plain"));
        if !plain {
            return Err(Box::new(
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the rule's text with content type text/plain; charset=utf-8",
                )
                .into_response(),
            ));
        }
    }
    let body = body.map_err(|r| {
        Box::new(ApiError::new(StatusCode::BAD_REQUEST, "bad_body", r.body_text()).into_response())
    })?;
    match String::from_utf8(body.to_vec()) {
        Ok(text) => Ok(text),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let end = text
                .get(at..)
                .and_then(|t| t.chars().next())
                .map_or(at, |c| at + c.len_utf8());
            let diag = Diagnostic::error("E000", 0, Span::new(at, end), "text is not valid UTF-8")
                .with_label("invalid byte")
                .with_help("send the rule as UTF-8");
            let sources = [SourceFile {
                name: REQUEST_FILE.into(),
                text,
            }];
            let place = &diagnostics_json(std::slice::from_ref(&diag), &sources)[0];
            Err(Box::new(with_diagnostics(
                StatusCode::BAD_REQUEST,
                "invalid_utf8",
                format!(
                    "the body is not valid UTF-8 (byte {at}, line {}, column {})",
                    place.line, place.column
                ),
                std::slice::from_ref(&diag),
                &sources,
            )))
        }
    }
}

fn errors_message(diagnostics: &[Diagnostic]) -> String {
    let n = diagnostics.iter().filter(|d| d.is_error()).count();
    let first = diagnostics
        .iter()
        .find(|d| d.is_error())
        .map_or(String::new(), |d| format!(": {}", d.message));
    format!(
        "the rule does not check ({n} error{}){first}",
        if n == 1 { "" } else { "s" }
    )
}

fn edit_error(e: RuleEditError, code: &'static str, status: StatusCode) -> Response {
    match e {
        RuleEditError::Invalid {
            diagnostics,
            sources,
        } => with_diagnostics(
            status,
            code,
            errors_message(&diagnostics),
            &diagnostics,
            &sources,
        ),
        RuleEditError::Engine(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
        .into_response(),
    }
}

/// What a rule computes, in brief.
pub fn plan_summary(plan: &RulePlan, resolution_ms: u64) -> Value {
    json!({
        "severity": plan.severity,
        "severity_ladder": plan.severity_ladder.iter().map(|(s, _)| s).collect::<Vec<_>>(),
        "group_by": plan.group_by,
        "terms": plan.terms.iter().map(|t| json!({
            "name": t.name,
            "aggregate": t.agg.name(),
            "stream": t.stream.name(),
            "window": t.window,
            "step": format_duration(t.step(resolution_ms)),
            "rings": t.rings,
            "hidden": t.hidden,
        })).collect::<Vec<_>>(),
        "hold": (plan.hold_ms > 0).then(|| format_duration(plan.hold_ms)),
        "clear_when": plan.clear.is_some(),
        "sequence": plan.after.is_some(),
        "inhibited_by": plan.inhibited_by,
        "labels": plan.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "reach": format_duration(plan.reach(resolution_ms)),
        "temporal": plan.is_temporal(),
    })
}

/// `GET /api/v1/rules`: the installed rules with their current versions.
pub async fn list(State(app): State<Arc<App>>, token: Token) -> Result<Json<Value>, ApiError> {
    authorize(&app, &token, Access::Read)?;
    let rules = app.rules.read().unwrap_or_else(|e| e.into_inner());
    let versions = app.versions.lock().unwrap_or_else(|e| e.into_inner());
    let list: Vec<Value> = rules
        .values()
        .map(|r| {
            let current = versions.current(&r.plan.name);
            json!({
                "name": r.plan.name,
                "title": r.plan.title,
                "severity": r.plan.severity,
                "group_by": r.plan.group_by,
                "origin": r.plan.origin,
                "version": current.map(|v| v.version),
                "published_at": current.map(|v| v.published_at),
                "terms": r.plan.terms.iter().map(|t| json!({
                    "name": t.name,
                    "aggregate": t.agg.name(),
                    "stream": t.stream.name(),
                    "window": t.window,
                })).collect::<Vec<_>>(),
                "source": r.plan.source,
            })
        })
        .collect();
    Ok(Json(json!({ "rules": list })))
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no rule `{name}` is installed"),
    )
}

/// `GET /api/v1/rules/{name}`: source, plan summary, version and history.
pub async fn get_rule(
    State(app): State<Arc<App>>,
    token: Token,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&app, &token, Access::Read)?;
    let plan = app
        .rules
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&name)
        .map(|r| r.plan.clone())
        .ok_or_else(|| not_found(&name))?;
    let versions = app.versions.lock().unwrap_or_else(|e| e.into_inner());
    let current = versions.current(&name);
    let history: Vec<Value> = versions
        .history(&name)
        .map(|h| {
            h.versions
                .iter()
                .map(|v| {
                    json!({
                        "version": v.version,
                        "published_at": v.published_at,
                        "origin": v.origin,
                        "source": v.source,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(json!({
        "name": plan.name,
        "title": plan.title,
        "origin": plan.origin,
        "version": current.map(|v| v.version),
        "published_at": current.map(|v| v.published_at),
        "source": current.map_or(plan.source.as_str(), |v| v.source.as_str()),
        "plan": plan_summary(&plan, app.config.resolution_ms.max(1)),
        "history": history,
    })))
}

/// `PUT /api/v1/rules/{name}`: publishes the rule in the body (text/plain).
pub async fn put_rule(
    State(app): State<Arc<App>>,
    token: Token,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let who = match authorize(&app, &token, Access::Author) {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    let text = match rule_text(&headers, body) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let file = SourceFile {
        name: REQUEST_FILE.into(),
        text,
    };
    let names = rule_names(&file.text, 0);
    if names.len() != 1 || names[0] != name {
        if names.is_empty() {
            // Nothing parsed as a rule: the diagnostics say why, if any.
            let (compiled, sources, _) =
                app.check_rule_set(std::slice::from_ref(&file), &BTreeSet::new());
            if compiled.has_errors() {
                return with_diagnostics(
                    StatusCode::BAD_REQUEST,
                    "invalid_rule",
                    errors_message(&compiled.diagnostics),
                    &compiled.diagnostics,
                    &sources,
                );
            }
        }
        let message = match names.as_slice() {
            [] => format!("the body defines no rule; send the text of rule `{name}`"),
            [one] => format!(
                "the body defines rule `{one}`, but the path names `{name}`; PUT it to /api/v1/rules/{one}"
            ),
            many => format!(
                "the body defines {} rules ({}); publish one rule, `{name}`, per request",
                many.len(),
                many.join(", ")
            ),
        };
        return ApiError::new(StatusCode::BAD_REQUEST, "name_mismatch", message).into_response();
    }
    let edit = RuleEdit {
        files: vec![file],
        origin: format!("api by {}", who.name),
        whole_file_source: true,
        ..RuleEdit::default()
    };
    match app.edit_rules(edit).await {
        Ok(outcome) => publish_reply(&app, &name, &outcome),
        Err(e) => edit_error(e, "invalid_rule", StatusCode::BAD_REQUEST),
    }
}

fn publish_reply(app: &App, name: &str, outcome: &RuleEditOutcome) -> Response {
    let (status, change, version) =
        if let Some((_, v, created)) = outcome.published.iter().find(|p| p.0 == name) {
            if *created {
                (StatusCode::CREATED, "created", *v)
            } else {
                (StatusCode::OK, "updated", *v)
            }
        } else if let Some((_, v)) = outcome.unchanged.iter().find(|p| p.0 == name) {
            (StatusCode::OK, "unchanged", *v)
        } else {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("rule `{name}` was neither published nor found unchanged"),
            )
            .into_response();
        };
    let published_at = app
        .versions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .current(name)
        .map(|v| v.published_at);
    let body = json!({
        "rule": name,
        "version": version,
        "change": change,
        "published_at": published_at,
        "diagnostics": diagnostics_json(&outcome.diagnostics, &outcome.sources),
    });
    (status, Json(body)).into_response()
}

/// `DELETE /api/v1/rules/{name}`: removes the rule; its alerts clear at the
/// next clock instant.
pub async fn delete_rule(
    State(app): State<Arc<App>>,
    token: Token,
    Path(name): Path<String>,
) -> Response {
    let who = match authorize(&app, &token, Access::Author) {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    if !app
        .rules
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&name)
    {
        return not_found(&name).into_response();
    }
    let edit = RuleEdit {
        remove: BTreeSet::from([name.clone()]),
        origin: format!("api by {}", who.name),
        ..RuleEdit::default()
    };
    match app.edit_rules(edit).await {
        Ok(outcome) if outcome.removed.contains(&name) => {
            Json(json!({"rule": name, "deleted": true})).into_response()
        }
        Ok(_) => not_found(&name).into_response(),
        Err(e) => edit_error(e, "rule_in_use", StatusCode::CONFLICT),
    }
}

/// `POST /api/v1/rules/validate`: checks rule text (with the installed
/// rules it does not redefine) without publishing it.
pub async fn validate(
    State(app): State<Arc<App>>,
    token: Token,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(e) = authorize(&app, &token, Access::Author) {
        return e.into_response();
    }
    let text = match rule_text(&headers, body) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let file = SourceFile {
        name: REQUEST_FILE.into(),
        text,
    };
    let (compiled, sources, defined) =
        app.check_rule_set(std::slice::from_ref(&file), &BTreeSet::new());
    Json(json!({
        "ok": !compiled.has_errors(),
        "rules": defined,
        "diagnostics": diagnostics_json(&compiled.diagnostics, &sources),
    }))
    .into_response()
}
