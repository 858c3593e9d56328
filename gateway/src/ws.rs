//! The live alert feed over WebSocket.
//!
//! A client first gets a snapshot of the active alerts with the sequence
//! number it reflects, then every change after it, numbered. A client that
//! reconnects with `?since=SEQ` (the last number it saw) instead gets
//! exactly the changes after SEQ, in order, from the store — or, when they
//! are no longer kept, a snapshot marked `"resync": true, "reason":
//! "since_unavailable"`. Sequence numbers continue across restarts.
//!
//! Clients never slow the engine or each other: each reads the shared feed
//! through its own bounded buffer. A client that falls more than that
//! buffer behind is sent a fresh snapshot marked `"resync": true, "reason":
//! "lagged"` and continues from there (counted in `jingzhi_ws_lagged_total`);
//! one that does not accept a message within the send timeout is
//! disconnected (`jingzhi_ws_dropped_total`). A client limited to districts
//! sees only their alerts, in the snapshot and in the changes.

use crate::app::{App, FeedItem};
use crate::auth::{Access, Principal};
use crate::http::ApiError;
use crate::operator_api::{authorize, Token};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Most changes replayed to a resuming client; further back, a snapshot is
/// cheaper for both sides.
const MAX_RESUME_CHANGES: usize = 50_000;

#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    /// The last sequence number the client saw.
    #[serde(default)]
    since: Option<u64>,
}

pub async fn upgrade(
    State(app): State<Arc<App>>,
    token: Token,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
    ws: WebSocketUpgrade,
) -> Response {
    let who = match authorize(&app, &token, Access::Read) {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    let since = match query {
        Ok(Query(q)) => q.since,
        Err(e) => {
            return ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "bad_query",
                format!("since must be a sequence number: {}", e.body_text()),
            )
            .into_response()
        }
    };
    ws.on_upgrade(move |socket| serve_client(app, socket, who, since))
}

/// What a client gets first.
enum Start {
    /// A snapshot of the alerts it may see.
    Snapshot(String),
    /// The changes it missed.
    Resume(Vec<String>),
}

/// The first messages and a subscription that starts right after them.
fn subscribe(
    app: &App,
    who: &Principal,
    since: Option<u64>,
    resync: Option<&str>,
) -> (u64, Start, broadcast::Receiver<FeedItem>) {
    // Holding the book while subscribing means no change falls between
    // the first messages and the first one received.
    let book = app.book.lock().unwrap_or_else(|e| e.into_inner());
    let rx = app.feed.subscribe();
    let seq = book.seq();
    let visible = |district: Option<&str>| who.sees(district);
    match since {
        None => {
            let snapshot = book.snapshot_json(resync, |a| visible(a.district.as_deref()));
            (seq, Start::Snapshot(snapshot), rx)
        }
        Some(since) if since == seq => (seq, Start::Resume(Vec::new()), rx),
        Some(since) => {
            // A snapshot now, used if the missed changes are not all kept.
            let fallback = book.snapshot_json(Some("since_unavailable"), |a| {
                visible(a.district.as_deref())
            });
            drop(book);
            let missed = (since < seq)
                .then(|| missed_changes(app, since, seq))
                .flatten();
            match missed {
                Some(changes) => {
                    let messages = changes
                        .into_iter()
                        .filter(|c| visible(c.district.as_deref()))
                        .map(|c| {
                            format!(
                                "{{\"type\":\"{}\",\"seq\":{},\"alert\":{}}}",
                                c.kind.name(),
                                c.seq,
                                c.alert_json
                            )
                        })
                        .collect();
                    (seq, Start::Resume(messages), rx)
                }
                None => (seq, Start::Snapshot(fallback), rx),
            }
        }
    }
}

/// The changes after `since` up to `seq`, if the store has all of them.
fn missed_changes(app: &App, since: u64, seq: u64) -> Option<Vec<crate::store::StoredChange>> {
    // Without a data directory the store is written behind the feed.
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| app.wait_recorded(seq));
    } else {
        app.wait_recorded(seq);
    }
    let mut changes = app.store.changes_since(since, MAX_RESUME_CHANGES).ok()??;
    changes.retain(|c| c.seq <= seq);
    let complete = changes.last().is_some_and(|c| c.seq == seq)
        && changes.first().is_some_and(|c| c.seq == since + 1);
    complete.then_some(changes)
}

enum Outcome {
    Continue,
    Stop,
}

async fn send(app: &App, socket: &mut WebSocket, text: &str) -> Outcome {
    let timeout = Duration::from_millis(app.config.ws_send_timeout_ms.max(1));
    match tokio::time::timeout(timeout, socket.send(Message::Text(Utf8Bytes::from(text)))).await {
        Ok(Ok(())) => {
            app.metrics.ws_messages.inc();
            Outcome::Continue
        }
        Ok(Err(_)) => Outcome::Stop,
        Err(_) => {
            app.metrics.ws_dropped.inc();
            Outcome::Stop
        }
    }
}

async fn send_start(app: &App, socket: &mut WebSocket, start: Start) -> Outcome {
    match start {
        Start::Snapshot(text) => send(app, socket, &text).await,
        Start::Resume(messages) => {
            for text in messages {
                if let Outcome::Stop = send(app, socket, &text).await {
                    return Outcome::Stop;
                }
            }
            Outcome::Continue
        }
    }
}

async fn serve_client(app: Arc<App>, mut socket: WebSocket, who: Principal, since: Option<u64>) {
    app.metrics.ws_clients.inc();
    let mut shutdown = app.shutdown.subscribe();
    let (mut seen, start, mut rx) = subscribe(&app, &who, since, None);
    if let Outcome::Continue = send_start(&app, &mut socket, start).await {
        loop {
            tokio::select! {
                item = rx.recv() => match item {
                    Ok(item) => {
                        if item.seq <= seen {
                            continue;
                        }
                        seen = item.seq;
                        if !who.sees(item.district.as_deref()) {
                            continue;
                        }
                        if let Outcome::Stop = send(&app, &mut socket, &item.text).await {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        app.metrics.ws_lagged.inc();
                        let (seq, start, fresh) = subscribe(&app, &who, None, Some("lagged"));
                        seen = seq;
                        rx = fresh;
                        if let Outcome::Stop = send_start(&app, &mut socket, start).await {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                incoming = socket.recv() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(_)) => {}
                },
                _ = shutdown.changed() => {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: 1001,
                            reason: Utf8Bytes::from_static("server shutting down"),
                        })))
                        .await;
                    break;
                }
            }
        }
    }
    app.metrics.ws_clients.dec();
}
