//! Serves the OTLP/HTTP router with hyper directly (not `axum::serve`) for the limits axum
//! does not expose: a client must send a request's headers within `--otlp-http-header-timeout`
//! (a slowloris connection is cut), and HTTP/2 connections are pinged and closed when dead.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;

/// Accepts from `listener` (plain TCP or TLS) until `shutdown`, then waits for the requests in
/// flight to finish.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    shutdown: CancellationToken,
    header_timeout: Duration,
) where
    L: axum::serve::Listener,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10))
        .max_concurrent_streams(256);
    let graceful = GracefulShutdown::new();
    loop {
        let io = tokio::select! {
            (io, _) = listener.accept() => io,
            _ = shutdown.cancelled() => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "OTLP/HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
