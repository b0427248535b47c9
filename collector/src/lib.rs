//! Orrery's OTLP collector (see issue 3): receivers → spool → ClickHouse sink.

use anyhow::Result;
use clap::Args;
use orrery_store::ClickHouseArgs;
use tokio_util::sync::CancellationToken;

/// Collector settings.
#[derive(Args, Debug, Clone)]
pub struct CollectorArgs {
    /// OTLP/gRPC listen address.
    #[arg(long, env = "ORRERY_OTLP_GRPC_ADDR", default_value = "0.0.0.0:4317")]
    pub otlp_grpc_addr: std::net::SocketAddr,
    /// OTLP/HTTP listen address.
    #[arg(long, env = "ORRERY_OTLP_HTTP_ADDR", default_value = "0.0.0.0:4318")]
    pub otlp_http_addr: std::net::SocketAddr,
}

/// Runs the collector until `shutdown` is cancelled.
pub async fn run(
    _args: CollectorArgs,
    _clickhouse: ClickHouseArgs,
    shutdown: CancellationToken,
) -> Result<()> {
    shutdown.cancelled().await;
    Ok(())
}
