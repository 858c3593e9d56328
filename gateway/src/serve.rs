//! Running the server: bind, serve, shut down cleanly.

use crate::app::{App, StartError};
use crate::config::ServerConfig;
use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::sync::Arc;

/// A server that is listening.
pub struct Running {
    pub app: Arc<App>,
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Starts the service and listens on the configured address (port 0 picks
/// a free port; see [`Running::addr`]).
pub async fn start(config: ServerConfig) -> Result<Running, ServeError> {
    let addr = config.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let addr = listener.local_addr()?;
    let app = App::start(config).await?;
    let router = crate::http::router(app.clone());
    let mut stop = app.shutdown.subscribe();
    let server = tokio::spawn(async move {
        // Alert messages are small and latency matters more than packing:
        // do not let Nagle's algorithm hold them back.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    });
    Ok(Running { app, addr, server })
}

impl Running {
    /// Stops accepting requests (and reports not ready), lets the requests
    /// in flight finish, closes WebSocket clients with a close frame, stops
    /// the engine, and writes and syncs what the event log still holds.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        tracing::info!("shutting down");
        self.app.begin_shutdown();
        let result = self.server.await;
        self.app.engine.shutdown().await;
        if let Some(log) = self.app.log.clone() {
            let _ = tokio::task::spawn_blocking(move || log.close()).await;
        }
        tracing::info!("stopped");
        match result {
            Ok(r) => Ok(r?),
            Err(e) => Err(ServeError::Io(std::io::Error::other(e.to_string()))),
        }
    }

    /// Serves until SIGINT or SIGTERM, then shuts down.
    pub async fn until_signal(self) -> Result<(), ServeError> {
        wait_for_signal().await;
        self.shutdown().await
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
