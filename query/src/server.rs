//! The query listener's HTTP server: `axum::serve` has no header-read timeout and no
//! connection cap, so connections are served here with hyper directly (HTTP/1.1, which is
//! what browsers, Grafana and the CLI speak to this port).
//!
//! - a client must send a request's headers within `--query-header-read-timeout`, also to
//!   start a request on an idle keep-alive connection (slowloris clients are cut off);
//! - at most `--query-max-connections` open connections: one more is closed at once;
//! - on shutdown, idle connections close, open requests get `--query-shutdown-grace` to
//!   finish (live streams end themselves on the same signal), then the rest are dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Result;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::limits::LimitArgs;
use crate::metrics::{CONNECTIONS_OPEN, CONNECTIONS_REFUSED};

pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &LimitArgs,
    shutdown: CancellationToken,
) -> Result<()> {
    let slots = Arc::new(Semaphore::new(limits.query_max_connections));
    let mut conns = JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.query_header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        // Reap finished connections so the set does not grow with the connections served.
        while conns.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "query listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if CONNECTIONS_REFUSED
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(1000)
            {
                tracing::warn!(%peer, limit = limits.query_max_connections,
                    "query listener: connection refused, --query-max-connections are open");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        // Counted here and uncounted by the guard's drop, which also runs when the task is
        // aborted before its first poll.
        CONNECTIONS_OPEN.fetch_add(1, Ordering::Relaxed);
        let open = OpenConnection;
        conns.spawn(async move {
            let _slot = slot;
            let _open = open;
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "query connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let open = conns.len();
    if open > 0 {
        tracing::info!(open, grace = ?limits.query_shutdown_grace, "query listener closed, waiting for open requests");
    }
    let waited = std::time::Instant::now();
    let drained = tokio::time::timeout(limits.query_shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    tracing::debug!(waited = ?waited.elapsed(), "query connections drained");
    if drained.is_err() {
        tracing::warn!(
            left = conns.len(),
            "query connections still open after the shutdown grace: dropped"
        );
        conns.abort_all();
    }
    Ok(())
}

/// Counts an open connection down when its task ends (or is aborted).
struct OpenConnection;

impl Drop for OpenConnection {
    fn drop(&mut self) {
        CONNECTIONS_OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}
