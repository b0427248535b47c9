//! Orrery's query service (issue 4): the live service graph (rolled up per minute in
//! ClickHouse, the open minutes computed from spans), trace search and trace by id, a
//! Jaeger-compatible API and the web UI's static files. The on-call CLI that talks to it lives in
//! the `orrery` binary crate (src/cli/).
//!
//! Nothing is kept in memory that a restart or a second replica would get wrong: every answer
//! is computed from ClickHouse, and the rollup job is idempotent (see `rollup`).

pub mod calls;
pub mod catalog;
pub mod checks;
pub mod error;
pub mod graph;
pub mod http;
pub mod jaeger;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod middleware;
pub mod model;
pub mod params;
pub mod rollup;
pub mod server;
pub mod state;
pub mod trace_stream;
pub mod traces;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use orrery_store::ClickHouseArgs;
use tokio_util::sync::CancellationToken;

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// Query service settings.
#[derive(Args, Debug, Clone)]
pub struct QueryArgs {
    /// Listen address of the HTTP API and the web UI.
    #[arg(long, env = "ORRERY_QUERY_ADDR", default_value = "0.0.0.0:16686")]
    pub query_addr: std::net::SocketAddr,

    /// Require `Authorization: Bearer <token>` on the APIs (Orrery's and Jaeger's; the UI's
    /// static files and health stay public). Without it, anyone who reaches the port can
    /// read every trace: a warning is logged when the listener is not on loopback.
    #[arg(long, env = "ORRERY_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,

    /// Directory of the built web UI (served with fallback to index.html).
    #[arg(long, env = "ORRERY_UI_DIR", default_value = "web/dist")]
    pub ui_dir: PathBuf,

    #[command(flatten)]
    pub graph: GraphArgs,

    #[command(flatten)]
    pub limits: limits::LimitArgs,
}

/// Service-graph settings.
#[derive(Args, Debug, Clone)]
pub struct GraphArgs {
    /// Resource attributes that name a span's region, first non-empty wins.
    #[arg(
        long,
        env = "ORRERY_GRAPH_REGION_ATTRIBUTES",
        value_delimiter = ',',
        default_value = "cloud.region,k8s.cluster.name,deployment.environment.name"
    )]
    pub graph_region_attributes: Vec<String>,

    /// How long after a span ended a missing parent (orphan) or missing child (virtual node)
    /// is taken as final.
    #[arg(long, env = "ORRERY_GRAPH_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub graph_grace: Duration,

    /// How far before a child span its parent is looked for (and after a client span, its child).
    #[arg(long, env = "ORRERY_GRAPH_PARENT_LOOKBACK", default_value = "10m", value_parser = parse_duration)]
    pub graph_parent_lookback: Duration,

    /// Do not run the rollup job in this replica (graphs are then computed from spans).
    #[arg(long, env = "ORRERY_GRAPH_NO_ROLLUP")]
    pub graph_no_rollup: bool,

    /// How often the rollup job runs.
    #[arg(long, env = "ORRERY_GRAPH_ROLLUP_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub graph_rollup_interval: Duration,

    /// How long after a minute closes it is rolled up.
    #[arg(long, env = "ORRERY_GRAPH_ROLLUP_DELAY", default_value = "30s", value_parser = parse_duration)]
    pub graph_rollup_delay: Duration,

    /// Rolled-up minutes younger than this are re-checked every run for late spans.
    #[arg(long, env = "ORRERY_GRAPH_ROLLUP_LOOKBACK", default_value = "15m", value_parser = parse_duration)]
    pub graph_rollup_lookback: Duration,

    /// At start (and every 4 runs), minutes this far back without a rollup, or with late spans,
    /// are (re)computed (those older than the call copy's 6 hours from the spans).
    /// Two days: a day-long window and the day before it (its "what's wrong" baseline, which is
    /// read from rollups only) — but never before the hour 24 h ago (`rollup::minutes_from`):
    /// minute rollups are kept ~a day (schema v14); older hours are the hourly backfill's.
    #[arg(long, env = "ORRERY_GRAPH_ROLLUP_BACKFILL", default_value = "48h", value_parser = parse_duration)]
    pub graph_rollup_backfill: Duration,

    /// Longest stretch of a window the graph reads from spans where nothing is rolled up
    /// (old hours the hourly backfill has not reached yet, a rollup that lags); what lies
    /// beyond is left out and reported in `data_quality` (`rollup_coverage`, `uncovered`), so
    /// no window joins days of spans.
    #[arg(long, env = "ORRERY_GRAPH_MAX_UNROLLED", default_value = "1h", value_parser = parse_duration)]
    pub graph_max_unrolled: Duration,

    /// Longest step of the hourly backfill (a few hours older than --graph-rollup-backfill,
    /// rolled up newest first): the engine stops a step past it, and it is retried later.
    #[arg(long, env = "ORRERY_GRAPH_BACKFILL_STEP_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub graph_backfill_step_timeout: Duration,

    /// Error rate (0..1) from which a node or edge is `warning`.
    #[arg(long, env = "ORRERY_GRAPH_ERROR_WARNING", default_value_t = 0.01)]
    pub graph_error_warning: f64,

    /// Error rate (0..1) from which a node or edge is `danger`.
    #[arg(long, env = "ORRERY_GRAPH_ERROR_DANGER", default_value_t = 0.05)]
    pub graph_error_danger: f64,

    /// p95 latency (ms) from which a node or edge is `warning`.
    #[arg(long, env = "ORRERY_GRAPH_P95_WARNING_MS", default_value_t = 500.0)]
    pub graph_p95_warning_ms: f64,

    /// p95 latency (ms) from which a node or edge is `danger`.
    #[arg(long, env = "ORRERY_GRAPH_P95_DANGER_MS", default_value_t = 2000.0)]
    pub graph_p95_danger_ms: f64,

    /// Interval of the live graph stream (SSE).
    #[arg(long, env = "ORRERY_GRAPH_STREAM_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub graph_stream_interval: Duration,

    /// Rolled-up parts of graph windows kept in memory (0: none). Each is keyed by the rollup
    /// versions it was read at, so it is never stale; it saves re-reading closed minutes while
    /// a live map refreshes.
    #[arg(long, env = "ORRERY_GRAPH_CACHE_ENTRIES", default_value_t = 16)]
    pub graph_cache_entries: usize,

    /// A graph reads its 10-second slots from spans instead, in one statement with its live
    /// tail, when the tail, the slots and their --graph-parent-lookback hold at most this many
    /// spans (counted on insert): two statements of slot rows cost more than joining a few
    /// spans (0: always slot rows).
    #[arg(long, env = "ORRERY_GRAPH_SMALL_TAIL_SPANS", default_value_t = 200_000)]
    pub graph_small_tail_spans: u64,

    /// Also read a live graph's newest seconds — after the last 10-second slot the rollup
    /// closed, 5–15 s ago while it keeps up — from spans. Off by default: a live graph ends at
    /// that slot (`window.through_ms`), because those seconds' calls are still being exported
    /// (a client span leaves its SDK after its call ends, 5 s later by default) and joining
    /// them costs about half a cold 15-minute graph's engine time at 30k spans/s
    /// (docs/decisions.md). A slot rollup more than 30 s behind is read to now either way.
    #[arg(long, env = "ORRERY_GRAPH_LIVE_EDGE_FROM_SPANS")]
    pub graph_live_edge_from_spans: bool,

    /// The collector's OTLP/gRPC endpoint as the UI's empty map tells users to set
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (e.g. `http://collector.example:4317`); `all-in-one` and
    /// `demo` fill it in from their own collector's bound address. Unset: the UI shows port
    /// 4317 on the page's host. It sits with the graph settings because `/orrery/api/config`
    /// serves them together.
    #[arg(long, env = "ORRERY_UI_OTLP_GRPC_ENDPOINT")]
    pub ui_otlp_grpc_endpoint: Option<String>,

    /// The collector's OTLP/HTTP endpoint for the same empty-map hint (default: port 4318 on
    /// the page's host; `all-in-one` fills it in).
    #[arg(long, env = "ORRERY_UI_OTLP_HTTP_ENDPOINT")]
    pub ui_otlp_http_endpoint: Option<String>,

    /// Rules file (docs/checks.md) this replica evaluates every --graph-rules-interval; the
    /// states are served at /orrery/api/checks. An invalid file stops the start with the line
    /// and the reason.
    #[arg(long, env = "ORRERY_GRAPH_RULES")]
    pub graph_rules: Option<PathBuf>,

    /// How often the --graph-rules are evaluated (1s to 1h).
    #[arg(long, env = "ORRERY_GRAPH_RULES_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub graph_rules_interval: Duration,

    /// Alertmanager base URLs (comma-separated) the firing --graph-rules are posted to
    /// (`/api/v2/alerts`) after every evaluation; every replica may send, Alertmanager merges
    /// the copies (docs/checks.md).
    #[arg(long, env = "ORRERY_GRAPH_ALERTMANAGER_URL", value_delimiter = ',')]
    pub graph_alertmanager_url: Vec<String>,

    /// Plain webhook URLs (comma-separated) POSTed one JSON object per --graph-rules rule that
    /// starts or stops firing (docs/checks.md has the shape).
    #[arg(long, env = "ORRERY_GRAPH_WEBHOOK_URL", value_delimiter = ',')]
    pub graph_webhook_url: Vec<String>,
}

impl Default for GraphArgs {
    fn default() -> Self {
        Self {
            graph_region_attributes: vec![
                "cloud.region".into(),
                "k8s.cluster.name".into(),
                "deployment.environment.name".into(),
            ],
            graph_grace: Duration::from_secs(5),
            graph_parent_lookback: Duration::from_secs(600),
            graph_no_rollup: false,
            graph_rollup_interval: Duration::from_secs(15),
            graph_rollup_delay: Duration::from_secs(30),
            graph_rollup_lookback: Duration::from_secs(900),
            graph_rollup_backfill: Duration::from_secs(2 * 86400),
            graph_max_unrolled: Duration::from_secs(3600),
            graph_backfill_step_timeout: Duration::from_secs(120),
            graph_error_warning: 0.01,
            graph_error_danger: 0.05,
            graph_p95_warning_ms: 500.0,
            graph_p95_danger_ms: 2000.0,
            graph_stream_interval: Duration::from_secs(5),
            graph_cache_entries: 16,
            graph_small_tail_spans: 200_000,
            graph_live_edge_from_spans: false,
            ui_otlp_grpc_endpoint: None,
            ui_otlp_http_endpoint: None,
            graph_rules: None,
            graph_rules_interval: Duration::from_secs(30),
            graph_alertmanager_url: Vec::new(),
            graph_webhook_url: Vec::new(),
        }
    }
}

/// Runs the query service until `shutdown` is cancelled.
pub async fn run(
    args: QueryArgs,
    clickhouse: ClickHouseArgs,
    shutdown: CancellationToken,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.query_addr)
        .await
        .with_context(|| format!("binding the query API on {}", args.query_addr))?;
    serve(listener, args, clickhouse, shutdown).await
}

/// Serves the API and UI on `listener` (and runs the rollup job) until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    args: QueryArgs,
    clickhouse: ClickHouseArgs,
    shutdown: CancellationToken,
) -> Result<()> {
    check_region_attributes(&args.graph.graph_region_attributes)?;
    args.limits.check()?;
    let client = clickhouse.client();
    // Before anything runs: an invalid rules file stops the start.
    let runtime = state::GraphRuntime::default();
    let checks = start_checks(&args, &client, &runtime, &shutdown)?;
    // Tables made by an older exporter release are read with casts, decided once here; if
    // ClickHouse is not up yet, the current exporter shape is assumed.
    if let Err(e) = orrery_store::schema::resolve_span_columns(&client).await {
        tracing::warn!(error = %format!("{e:#}"), "could not read otel_traces columns; assuming the current exporter shape");
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, ui_dir = %args.ui_dir.display(), "query service listening");
    if !addr.ip().is_loopback() && args.api_token.as_deref().is_none_or(str::is_empty) {
        tracing::warn!(%addr, "the query API listens on a non-loopback address without --api-token: \
            anyone who can reach it can read every trace (set --api-token / ORRERY_API_TOKEN, \
            or bind 127.0.0.1)");
    }
    let rollup = if args.graph.graph_no_rollup {
        None
    } else {
        let job = rollup::Rollup::new(
            args.limits.bound_background(client.clone()),
            args.graph.clone(),
        );
        Some(tokio::spawn(job.run(shutdown.clone())))
    };
    let limits = args.limits.clone();
    let app = http::router(
        state::AppState::new(client, args)
            .with_runtime(runtime)
            .with_shutdown(shutdown.clone()),
    );
    let result = server::serve(listener, app, &limits, shutdown.clone())
        .await
        .context("query API server");
    shutdown.cancel();
    if let Some(mut r) = rollup {
        // A rollup run in progress (a backfill can take seconds) is not waited for long: a run
        // is idempotent, the next start redoes what this one left.
        let wait = limits.query_shutdown_grace.min(Duration::from_millis(500));
        if tokio::time::timeout(wait, &mut r).await.is_err() {
            tracing::info!("rollup run still in progress at shutdown: abandoned");
            r.abort();
        }
    }
    if let Some(c) = checks {
        c.abort();
    }
    tracing::info!("query service stopped");
    result
}

/// Loads `--graph-rules` (refusing an invalid file) and starts their evaluation.
fn start_checks(
    args: &QueryArgs,
    client: &clickhouse::Client,
    runtime: &state::GraphRuntime,
    shutdown: &CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let g = &args.graph;
    let Some(path) = &g.graph_rules else {
        if !g.graph_alertmanager_url.is_empty() || !g.graph_webhook_url.is_empty() {
            anyhow::bail!(
                "--graph-alertmanager-url and --graph-webhook-url need --graph-rules <file>: there is nothing to alert on"
            );
        }
        return Ok(None);
    };
    let interval = g.graph_rules_interval;
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&interval) {
        anyhow::bail!("--graph-rules-interval: between 1s and 1h");
    }
    let set = checks::rules::load(path).map_err(|e| anyhow::anyhow!("--graph-rules {e}"))?;
    Ok(Some(tokio::spawn(checks::server::run(
        args.limits.bound_background(client.clone()),
        g.clone(),
        runtime.cache.clone(),
        runtime.checks.clone(),
        set.rules,
        interval,
        shutdown.clone(),
    ))))
}

/// The graph reads regions from the resource attributes its call table keeps (schema v4).
pub fn check_region_attributes(attrs: &[String]) -> Result<()> {
    let kept = orrery_store::schema::CALL_RESOURCE_KEYS;
    if let Some(a) = attrs.iter().find(|a| !kept.contains(&a.as_str())) {
        anyhow::bail!(
            "--graph-region-attributes: {a:?} is not one of the resource attributes the service graph keeps: {}",
            kept.join(", ")
        );
    }
    Ok(())
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn region_attributes_must_be_kept_by_the_call_table() {
        let ok: Vec<String> = crate::GraphArgs::default().graph_region_attributes;
        assert!(super::check_region_attributes(&ok).is_ok());
        let err = super::check_region_attributes(&["team.name".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("team.name") && err.contains("cloud.region"),
            "{err}"
        );
    }
}
