//! Orrery's query service (see issue 4).

use anyhow::Result;
use clap::Args;
use orrery_store::ClickHouseArgs;
use tokio_util::sync::CancellationToken;

/// Query service settings.
#[derive(Args, Debug, Clone)]
pub struct QueryArgs {
    /// Listen address of the HTTP API and the web UI.
    #[arg(long, env = "ORRERY_QUERY_ADDR", default_value = "0.0.0.0:16686")]
    pub query_addr: std::net::SocketAddr,
}

/// Runs the query service until `shutdown` is cancelled.
pub async fn run(
    _args: QueryArgs,
    _clickhouse: ClickHouseArgs,
    shutdown: CancellationToken,
) -> Result<()> {
    shutdown.cancelled().await;
    Ok(())
}
