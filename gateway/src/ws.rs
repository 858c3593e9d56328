//! The live alert feed over WebSocket.
//!
//! A client first gets a snapshot of the active alerts with the sequence
//! number it reflects, then every change after it, numbered. Clients never
//! slow the engine or each other: each reads the shared feed through its
//! own bounded buffer. A client that falls more than that buffer behind is
//! sent a fresh snapshot marked `"resync": true` and continues from there
//! (counted in `jingzhi_ws_lagged_total`); one that does not accept a
//! message within the send timeout is disconnected (`jingzhi_ws_dropped_total`).

use crate::app::{App, FeedItem};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

pub async fn upgrade(State(app): State<Arc<App>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| serve_client(app, socket))
}

/// A snapshot and a subscription that starts right after it.
fn subscribe(app: &App, resync: bool) -> (u64, String, broadcast::Receiver<FeedItem>) {
    // Holding the book while subscribing means no change falls between
    // the snapshot and the first message received.
    let book = app.book.lock().unwrap_or_else(|e| e.into_inner());
    let rx = app.feed.subscribe();
    (book.seq(), book.snapshot_json(resync), rx)
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

async fn serve_client(app: Arc<App>, mut socket: WebSocket) {
    app.metrics.ws_clients.inc();
    let mut shutdown = app.shutdown.subscribe();
    let (mut seen, snapshot, mut rx) = subscribe(&app, false);
    if let Outcome::Continue = send(&app, &mut socket, &snapshot).await {
        loop {
            tokio::select! {
                item = rx.recv() => match item {
                    Ok((seq, text)) => {
                        if seq <= seen {
                            continue;
                        }
                        seen = seq;
                        if let Outcome::Stop = send(&app, &mut socket, &text).await {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        app.metrics.ws_lagged.inc();
                        let (seq, snapshot, fresh) = subscribe(&app, true);
                        seen = seq;
                        rx = fresh;
                        if let Outcome::Stop = send(&app, &mut socket, &snapshot).await {
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
