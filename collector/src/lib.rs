//! Orrery's OTLP collector (see issue 3 and docs/collector.md): OTLP/gRPC and OTLP/HTTP
//! receivers → a write-ahead spool on local disk (acknowledged only once written) → batched,
//! deduplicated RowBinary inserts into ClickHouse.

pub mod budget;
pub mod chhttp;
pub mod convert;
pub mod deadletter;
pub mod grpc;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod row;
pub mod rowbinary;
pub mod serve;
pub mod sink;
pub mod spool;
pub mod spool_cli;
/// Synthetic requests for tests and benchmarks (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod synth;
pub mod tls;
pub mod transcode;
pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use orrery_store::ClickHouseArgs;
use tokio_util::sync::CancellationToken;

use crate::convert::Limits;
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::sink::{Placer, SinkConfig};
use crate::spool::{Spool, SpoolConfig};

/// Collector settings.
#[derive(Args, Debug, Clone)]
pub struct CollectorArgs {
    /// The embedded engine's health when this collector runs in all-in-one next to it: `/readyz`
    /// answers 503 while the engine restarts, `/metrics` exports its up/restarts figures.
    #[arg(skip)]
    pub engine_health: Option<orrery_store::embedded::EngineHealth>,

    /// OTLP/gRPC listen address.
    #[arg(long, env = "ORRERY_OTLP_GRPC_ADDR", default_value = "0.0.0.0:4317")]
    pub otlp_grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address (also serves /metrics, /healthz, /readyz).
    #[arg(long, env = "ORRERY_OTLP_HTTP_ADDR", default_value = "0.0.0.0:4318")]
    pub otlp_http_addr: SocketAddr,
    /// Require `Authorization: Bearer <token>` on both receivers.
    #[arg(long, env = "ORRERY_OTLP_AUTH_TOKEN", hide_env_values = true)]
    pub otlp_auth_token: Option<String>,
    /// PEM certificate chain: with --otlp-tls-key, both receivers serve TLS only.
    #[arg(long, env = "ORRERY_OTLP_TLS_CERT")]
    pub otlp_tls_cert: Option<PathBuf>,
    /// PEM private key of --otlp-tls-cert.
    #[arg(long, env = "ORRERY_OTLP_TLS_KEY")]
    pub otlp_tls_key: Option<PathBuf>,
    /// Directory of the write-ahead spool [default: `<data-dir>/spool` in all-in-one,
    /// `./data/spool` otherwise].
    #[arg(long, env = "ORRERY_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Spool size at which requests are pushed back (HTTP 503 + Retry-After, gRPC UNAVAILABLE).
    #[arg(long, env = "ORRERY_SPOOL_MAX_BYTES", default_value_t = 1 << 30)]
    pub spool_max_bytes: u64,
    /// When the spool is fsynced: `always` (before every acknowledgement, one per group
    /// commit), `interval` (in the background every --spool-fsync-interval), `never`. Every mode
    /// survives a crash of the process; power loss can take the last interval (`interval`) or
    /// what the kernel had not written back (`never`). `true`/`false` mean always/never.
    #[arg(
        long,
        env = "ORRERY_SPOOL_FSYNC",
        value_enum,
        default_value = "interval"
    )]
    pub spool_fsync: spool::Fsync,
    /// Period of `--spool-fsync=interval`.
    #[arg(long, env = "ORRERY_SPOOL_FSYNC_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub spool_fsync_interval: Duration,
    /// A batch (one ClickHouse insert) holds at most this many spans…
    #[arg(long, env = "ORRERY_BATCH_MAX_SPANS", default_value_t = 200_000)]
    pub batch_max_spans: usize,
    /// …and about this many spooled bytes…
    #[arg(long, env = "ORRERY_BATCH_MAX_BYTES", default_value_t = 128 << 20)]
    pub batch_max_bytes: u64,
    /// …and waits at most this long for more spans (longer while every insert slot is busy:
    /// then it grows to the bounds above).
    #[arg(long, env = "ORRERY_BATCH_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub batch_timeout: Duration,
    /// Time to live of a batch: retries stop after this; the batch is parked on disk and
    /// retried at the next start.
    #[arg(long, env = "ORRERY_BATCH_TTL", default_value = "30m", value_parser = humantime::parse_duration)]
    pub batch_ttl: Duration,
    /// First retry backoff (doubles up to --batch-backoff-max, with full jitter).
    #[arg(long, env = "ORRERY_BATCH_BACKOFF_INITIAL", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub batch_backoff_initial: Duration,
    #[arg(long, env = "ORRERY_BATCH_BACKOFF_MAX", default_value = "30s", value_parser = humantime::parse_duration)]
    pub batch_backoff_max: Duration,
    /// Concurrent inserts into ClickHouse.
    #[arg(long, env = "ORRERY_BATCH_CONCURRENCY", default_value_t = 2)]
    pub batch_concurrency: usize,
    /// Longest one insert may take, sending the batch and waiting for ClickHouse's answer; a
    /// hung server then counts as a failed attempt (retried until --batch-ttl, then parked).
    #[arg(long, env = "ORRERY_BATCH_INSERT_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub batch_insert_timeout: Duration,
    /// Longest a TCP connect to ClickHouse may take.
    #[arg(long, env = "ORRERY_BATCH_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub batch_connect_timeout: Duration,
    /// Largest request body (after gzip inflation) in bytes; larger ones get 413 /
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "ORRERY_INGEST_MAX_REQUEST_BYTES", default_value_t = 16 << 20)]
    pub ingest_max_request_bytes: usize,
    /// Request bytes held in memory across all connections (as read, plus their gzip
    /// inflation and conversion); a request that does not fit is pushed back (HTTP 503 +
    /// Retry-After, gRPC RESOURCE_EXHAUSTED + RetryInfo). At least 2 × --ingest-max-request-bytes.
    #[arg(long, env = "ORRERY_INGEST_MAX_INFLIGHT_BYTES", default_value_t = 256 << 20)]
    pub ingest_max_inflight_bytes: usize,
    /// A client must send a request's headers (OTLP/HTTP) or the HTTP/2 preface (OTLP/gRPC)
    /// within this, or is disconnected.
    #[arg(long, env = "ORRERY_OTLP_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub otlp_http_header_timeout: Duration,
    /// A client must send a request's body within this (OTLP/HTTP), or gets 400.
    #[arg(long, env = "ORRERY_OTLP_HTTP_BODY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub otlp_http_body_timeout: Duration,
    /// An OTLP/gRPC request (receiving and answering it) must finish within this.
    #[arg(long, env = "ORRERY_OTLP_GRPC_REQUEST_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub otlp_grpc_request_timeout: Duration,
    /// Largest number of spans in one request; more is refused (400 / INVALID_ARGUMENT).
    #[arg(
        long,
        env = "ORRERY_INGEST_MAX_SPANS_PER_REQUEST",
        default_value_t = 100_000
    )]
    pub ingest_max_spans_per_request: usize,
    /// Spans starting more than this after the collector's clock are rejected (partial
    /// success, reason `too_far_in_future`). Spans starting before the retention
    /// (--retention-days, when not 0) are rejected too (`too_old`).
    #[arg(long, alias = "max-span-future", env = "ORRERY_INGEST_MAX_SPAN_FUTURE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub ingest_max_span_future: Duration,
    /// Attribute string and bytes values are cut to this many bytes (on a UTF-8 boundary).
    #[arg(long, env = "ORRERY_INGEST_MAX_ATTRIBUTE_LEN", default_value_t = 16384)]
    pub ingest_max_attribute_len: usize,
    /// On SIGTERM, how long to keep flushing the spool to ClickHouse before exiting (what is
    /// left stays spooled and is sent at the next start).
    #[arg(long, env = "ORRERY_COLLECTOR_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub collector_shutdown_timeout: Duration,
    /// Require `Authorization: Bearer <token>` on the collector's `/metrics` (unset: public).
    #[arg(long, env = "ORRERY_COLLECTOR_METRICS_TOKEN", hide_env_values = true)]
    pub collector_metrics_token: Option<String>,
}

/// Runs the collector until `shutdown` is cancelled, then stops accepting, flushes and returns.
pub async fn run(
    args: CollectorArgs,
    clickhouse: ClickHouseArgs,
    shutdown: CancellationToken,
) -> Result<()> {
    start(args, clickhouse, shutdown).await?.wait().await
}

/// A started collector: where it listens, and the future that ends when it has stopped.
pub struct Running {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Running {
    /// Waits until the collector has stopped (after `shutdown` is cancelled and the spool is
    /// flushed).
    pub async fn wait(self) -> Result<()> {
        self.task.await.context("collector task")?
    }
}

/// Binds both receivers, replays the spool and starts serving; returns once listening.
pub async fn start(
    args: CollectorArgs,
    clickhouse: ClickHouseArgs,
    shutdown: CancellationToken,
) -> Result<Running> {
    // Bad TLS files fail the start, before anything is opened or bound.
    let tls = tls::load(args.otlp_tls_cert.as_deref(), args.otlp_tls_key.as_deref())?;
    anyhow::ensure!(
        args.ingest_max_inflight_bytes >= 2 * args.ingest_max_request_bytes,
        "--ingest-max-inflight-bytes ({}) must be at least 2 × --ingest-max-request-bytes ({}): \
         a request of the largest size counts its bytes and its conversion",
        args.ingest_max_inflight_bytes,
        args.ingest_max_request_bytes
    );
    let metrics = Arc::new(match &args.engine_health {
        Some(health) => Metrics::new().with_engine(health),
        None => Metrics::new(),
    });
    let spool_dir = args
        .spool_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./data/spool"));
    let (spool, queue) = Spool::open(SpoolConfig {
        dir: spool_dir.clone(),
        max_bytes: args.spool_max_bytes,
        batch_max_spans: args.batch_max_spans,
        batch_max_bytes: args.batch_max_bytes,
        batch_timeout: args.batch_timeout,
        busy_backlog: args.batch_concurrency.max(1),
        fsync: args.spool_fsync,
        fsync_interval: args.spool_fsync_interval,
        fsync_errors: metrics.spool_fsync_errors.clone(),
    })?;
    let mut ingest = Ingest::new(
        spool.clone(),
        Limits {
            max_attribute_len: args.ingest_max_attribute_len,
            max_spans_per_request: args.ingest_max_spans_per_request,
            max_span_future: args.ingest_max_span_future,
            max_span_age: (clickhouse.retention_days > 0)
                .then(|| Duration::from_secs(u64::from(clickhouse.retention_days) * 86_400)),
        },
        metrics.clone(),
        args.ingest_max_request_bytes,
        args.otlp_auth_token.clone(),
        args.collector_metrics_token.clone(),
        budget::Budget::new(args.ingest_max_inflight_bytes),
    );
    ingest.body_timeout = args.otlp_http_body_timeout;
    ingest.engine_health = args.engine_health.clone();
    let ingest = Arc::new(ingest);

    let http_listener = tokio::net::TcpListener::bind(args.otlp_http_addr)
        .await
        .with_context(|| format!("binding OTLP/HTTP on {}", args.otlp_http_addr))?;
    let grpc_listener = tokio::net::TcpListener::bind(args.otlp_grpc_addr)
        .await
        .with_context(|| format!("binding OTLP/gRPC on {}", args.otlp_grpc_addr))?;
    let http_addr = http_listener.local_addr()?;
    let grpc_addr = grpc_listener.local_addr()?;
    tracing::info!(http = %http_addr, grpc = %grpc_addr, tls = tls.is_some(), spool = ?spool_dir, "collector listening");
    if args.otlp_auth_token.is_none() {
        for addr in [http_addr, grpc_addr] {
            if !addr.ip().is_loopback() {
                tracing::warn!(%addr, "OTLP listener on a non-loopback address without --otlp-auth-token: anyone who can reach it can write spans");
            }
        }
    }

    // Receivers stop on `shutdown`; the sink keeps going until the spool is drained (or the
    // flush deadline passes).
    let sink_stop = CancellationToken::new();
    let placer = Arc::new(Placer::new(
        SinkConfig {
            concurrency: args.batch_concurrency,
            ttl: args.batch_ttl,
            backoff_initial: args.batch_backoff_initial,
            backoff_max: args.batch_backoff_max,
            max_partitions_per_insert: sink::partitions_setting(clickhouse.retention_days),
            bisect_budget: 256,
        },
        chhttp::InsertClient::new(
            &clickhouse,
            args.batch_connect_timeout,
            args.batch_insert_timeout,
        ),
        clickhouse.client(),
        metrics.clone(),
        spool.dead_dir(),
    ));
    let dead = placer.refresh_dead_letters();
    if dead.segments > 0 {
        tracing::warn!(segments = dead.segments, spans = dead.spans, dir = ?spool.dead_dir(), "dead letters present (`orrery spool list`)");
    }
    let sink = tokio::spawn(sink::run(placer, spool.clone(), queue, sink_stop.clone()));

    let http = {
        let shutdown = shutdown.clone();
        let app = http::router(ingest.clone());
        let header_timeout = args.otlp_http_header_timeout;
        match &tls {
            Some(tls) => {
                let listener = tls::TlsListener::new(http_listener, tls.server_config.clone())?;
                tokio::spawn(async move {
                    serve::serve(listener, app, shutdown, header_timeout).await;
                    Ok::<(), std::io::Error>(())
                })
            }
            None => tokio::spawn(async move {
                serve::serve(http_listener, app, shutdown, header_timeout).await;
                Ok(())
            }),
        }
    };
    let grpc = {
        let shutdown = shutdown.clone();
        let service = grpc::TraceServer::new(ingest.clone(), args.ingest_max_request_bytes);
        let incoming = serve::grpc_incoming(grpc_listener, args.otlp_http_header_timeout);
        // Dead peers are found by HTTP/2 pings; a request cannot take longer than its timeout;
        // one connection cannot open unbounded concurrent streams.
        let mut server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .timeout(args.otlp_grpc_request_timeout)
            .concurrency_limit_per_connection(64)
            .max_concurrent_streams(Some(128));
        if let Some(tls) = &tls {
            let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
            server = server
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .context("OTLP/gRPC TLS")?;
        }
        tokio::spawn(async move {
            server
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async move { shutdown.cancelled().await })
                .await
        })
    };

    let timeout = args.collector_shutdown_timeout;
    let task = tokio::spawn(async move {
        shutdown.cancelled().await;
        tracing::info!("collector stopping: no new requests, flushing the spool");
        ingest.stop_accepting();
        let (h, g) = tokio::join!(http, grpc);
        if let Ok(Err(e)) = h {
            tracing::error!(error = %e, "OTLP/HTTP server failed");
        }
        if let Ok(Err(e)) = g {
            tracing::error!(error = %e, "OTLP/gRPC server failed");
        }
        // Every in-flight append has completed: closing the spool seals the open segment and
        // ends the sink's queue once everything queued is delivered.
        spool.close();
        let mut sink = sink;
        tokio::select! {
            _ = &mut sink => tracing::info!("spool flushed"),
            _ = tokio::time::sleep(timeout) => {
                tracing::warn!(?timeout, "flush deadline passed; the rest stays spooled for the next start");
                sink_stop.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(5), sink).await;
            }
        }
        Ok(())
    });
    Ok(Running {
        http_addr,
        grpc_addr,
        metrics,
        task,
    })
}
