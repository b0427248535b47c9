//! Serves the OTLP/HTTP router with hyper directly (not `axum::serve`) for the limits axum
//! does not expose: a client must send a request's headers within `--otlp-http-header-timeout`
//! (a slowloris connection is cut), and HTTP/2 connections are pinged and closed when dead.
//! For OTLP/gRPC, [`grpc_incoming`] drops connections that do not send the HTTP/2 preface
//! within the same timeout (tonic has no such limit of its own).

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

/// Accepted gRPC connections, each handed to tonic only once its first 24 bytes (the HTTP/2
/// client preface, or the start of a TLS handshake) arrived within `timeout`; a client that
/// connects and sends nothing, or a partial preface, is disconnected.
pub fn grpc_incoming(
    listener: tokio::net::TcpListener,
    timeout: Duration,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            // Ends with the server (which drops the receiving side).
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => return,
            };
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    // E.g. out of file descriptors: back off rather than spin.
                    tracing::warn!(error = %e, "OTLP/gRPC accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let conn_tx = tx.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 24];
                let ready = async {
                    loop {
                        match stream.peek(&mut head).await {
                            Ok(n) if n >= head.len() => return true,
                            Ok(0) | Err(_) => return false,
                            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                };
                match tokio::time::timeout(timeout, ready).await {
                    Ok(true) => {
                        let _ = conn_tx.send(Ok(stream)).await;
                    }
                    _ => tracing::debug!("OTLP/gRPC connection without a preface in time: closed"),
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}
