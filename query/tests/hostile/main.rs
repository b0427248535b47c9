//! The query service against hostile clients, on the real embedded engine (issue 13): extreme
//! parameters on every endpoint (a property test), queries that hit the engine's time and
//! memory limits, clients that disconnect mid-query, slow clients (slowloris), too many
//! connections, requests and streams, and auth / security headers.
//!
//! One test binary, split by theme: `params` (extreme parameters), `checks` (the checks API's
//! parameters), `limits` (engine limits, killed queries, the trace cap), `clients` (slow and
//! many clients, shutdown, auth).

mod checks;
mod clients;
mod limits;
mod params;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use orrery_query::limits::LimitArgs;
use orrery_query::{GraphArgs, QueryArgs};
use orrery_store::ClickHouseArgs;
use tokio_util::sync::CancellationToken;

pub struct Server {
    pub base: String,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start(ch: &ClickHouseArgs, token: Option<&str>, limits: LimitArgs) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ui = tempfile::tempdir().unwrap().keep();
    std::fs::write(ui.join("index.html"), "<html>orrery ui</html>").unwrap();
    std::fs::write(ui.join("orrery_web_bg.wasm"), b"\0asm").unwrap();
    let args = QueryArgs {
        query_addr: addr,
        api_token: token.map(String::from),
        ui_dir: ui,
        graph: GraphArgs {
            graph_no_rollup: true,
            graph_grace: Duration::from_millis(1),
            ..GraphArgs::default()
        },
        limits,
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(orrery_query::serve(
        listener,
        args,
        ch.clone(),
        shutdown.clone(),
    ));
    Server {
        base: format!("http://{addr}"),
        addr,
        shutdown,
        task,
    }
}

pub fn now_ms() -> i64 {
    orrery_query::now_ns() / 1_000_000
}

/// `pairs` spans (a client span and its server child, in 50 services) in one hour starting
/// `start_ms`, written by the engine itself (fast enough for millions).
pub async fn bulk_spans(ch: &ClickHouseArgs, pairs: u64, start_ms: i64) {
    ch.client()
        .query(
            "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
                ServiceName, ResourceAttributes, Duration, StatusCode)
             SELECT fromUnixTimestamp64Milli({start:Int64} + intDiv(number, 2) % 3600000 + number % 2),
                leftPad(lower(hex(toUInt64(intDiv(number, 2)))), 32, '0'),
                lower(hex(toUInt64(number))),
                if(number % 2 = 0, '', lower(hex(toUInt64(number - 1)))),
                if(number % 2 = 0, 'call', 'handle'),
                if(number % 2 = 0, 'Client', 'Server'),
                concat('svc-', toString((intDiv(number, 2) + number % 2) % 50)) AS svc,
                map('service.name', svc),
                1000000, 'Unset'
             FROM numbers({n:UInt64})",
        )
        .param("start", start_ms)
        .param("n", pairs * 2)
        .execute()
        .await
        .unwrap();
}

pub async fn start_with(ch: &ClickHouseArgs, limits: LimitArgs) -> Server {
    start(ch, None, limits).await
}

/// The service's queries still running in the engine (tagged by `killed_if_dropped`).
pub async fn running_queries(ch: &ClickHouseArgs) -> u64 {
    ch.client()
        .query(
            "SELECT count() FROM system.processes
             WHERE startsWith(Settings['log_comment'], 'orrery-query:')",
        )
        .fetch_one::<u64>()
        .await
        .unwrap()
}

pub async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the first sample of `name` (with its labels, if any) in an exposition.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}
