//! Command line: every flag has an `ORRERY_*` environment twin.

pub mod check;
pub mod oncall;

use clap::{Args, Parser, Subcommand};
use orrery_collector::CollectorArgs;
use orrery_query::QueryArgs;
use orrery_store::ClickHouseArgs;
use orrery_store::embedded::EmbeddedArgs;

use crate::logging::LogArgs;

/// Orrery: a distributed-tracing backend and live service-topology map on ClickHouse.
///
/// Without a subcommand, runs all-in-one: OTLP collector (gRPC :4317, HTTP :4318), query API and
/// web UI (:16686), and, unless --clickhouse-url is set, an embedded ClickHouse (chDB) with its
/// data under --data-dir.
#[derive(Parser, Debug)]
#[command(name = "orrery", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub all_in_one: AllInOneArgs,

    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Collector, query service and UI in one process, with the embedded ClickHouse unless
    /// --clickhouse-url is given (the default command).
    AllInOne(AllInOneArgs),
    /// The OTLP collector alone (stateless; run as many as needed). Needs --clickhouse-url.
    Collector(CollectorCmd),
    /// The query API and web UI alone (stateless; run as many as needed). Needs --clickhouse-url.
    Query(QueryCmd),
    /// Create or upgrade the schema, then exit. Without --clickhouse-url, migrates the embedded
    /// ClickHouse under --data-dir.
    Migrate(MigrateCmd),
    /// Run only the embedded ClickHouse (chDB behind the ClickHouse HTTP interface) in the
    /// foreground, e.g. to put several collectors and query replicas in front of it.
    EmbeddedClickhouse(EmbeddedArgs),
    /// Find traces on a running query service (e.g. `orrery traces --service X --errors --since 15m`).
    Traces(oncall::TracesCmd),
    /// Show one trace as a span tree with durations and errors.
    Trace(oncall::TraceCmd),
    /// Table of service-graph edges with rate, errors and p95 (e.g. `orrery graph --since 5m`).
    Graph(oncall::GraphCmd),
    /// Check SLO, regression and conformity rules against the live graph: a deploy gate
    /// (`orrery check --rules rules.yaml`, or `--edge a->b --max-error-rate 1% --max-p95 300ms`);
    /// exits 0 pass, 1 violated, 2 not enough data or error.
    Check(check::CheckCmd),
    /// All-in-one plus a living demo fleet (18 services in 3 regions with load and chaos
    /// controls); prints the UI's URL. `orrery demo chaos ...` controls a running demo.
    Demo(DemoCmd),
    /// Big-mesh generator: synthetic OTLP from hundreds of services to one or more collectors,
    /// then a JSON report of exactly what was accepted.
    Mesh(orrery_demo::mesh::MeshArgs),
    /// A collector's spool: list, inspect, replay (once the cause is fixed) and drop its dead
    /// letters (spans ClickHouse refused); `replay --all` drains a whole spool.
    Spool(orrery_collector::spool_cli::SpoolCmd),
}

#[derive(Args, Debug, Clone)]
pub struct AllInOneArgs {
    #[command(flatten)]
    pub embedded: EmbeddedArgs,
    #[command(flatten)]
    pub collector: CollectorArgs,
    #[command(flatten)]
    pub query: QueryArgs,
    /// Do not apply schema migrations at start.
    #[arg(long, env = "ORRERY_NO_MIGRATE")]
    pub no_migrate: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CollectorCmd {
    #[command(flatten)]
    pub collector: CollectorArgs,
    /// Do not apply schema migrations at start.
    #[arg(long, env = "ORRERY_NO_MIGRATE")]
    pub no_migrate: bool,
}

#[derive(Args, Debug, Clone)]
pub struct QueryCmd {
    #[command(flatten)]
    pub query: QueryArgs,
    /// Do not apply schema migrations at start.
    #[arg(long, env = "ORRERY_NO_MIGRATE")]
    pub no_migrate: bool,
}

#[derive(Args, Debug, Clone)]
pub struct MigrateCmd {
    /// Print the DDL for the configured database, retention and cluster instead of applying it.
    #[arg(long)]
    pub print: bool,
    #[command(flatten)]
    pub embedded: EmbeddedArgs,
}

#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DemoCmd {
    #[command(subcommand)]
    pub action: Option<orrery_demo::DemoAction>,
    #[command(flatten)]
    pub demo: orrery_demo::DemoArgs,
    #[command(flatten)]
    pub all_in_one: AllInOneArgs,
}
