//! The query service against hostile clients, on the real embedded engine (issue 13): extreme
//! parameters on every endpoint (a property test), queries that hit the engine's time and
//! memory limits, clients that disconnect mid-query, slow clients (slowloris), too many
//! connections, requests and streams, and auth / security headers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use orrery_query::limits::LimitArgs;
use orrery_query::{GraphArgs, QueryArgs};
use orrery_store::ClickHouseArgs;
use orrery_store::testing::fresh_database;
use proptest::prelude::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

struct Server {
    base: String,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(ch: &ClickHouseArgs, token: Option<&str>, limits: LimitArgs) -> Server {
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

fn now_ms() -> i64 {
    orrery_query::now_ns() / 1_000_000
}

/// `pairs` spans (a client span and its server child, in 50 services) in one hour starting
/// `start_ms`, written by the engine itself (fast enough for millions).
async fn bulk_spans(ch: &ClickHouseArgs, pairs: u64, start_ms: i64) {
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

// --- extreme parameters ------------------------------------------------------------------

/// Every endpoint with a query string, `{}` standing for the parameter under test.
const ENDPOINTS: &[&str] = &[
    "/orrery/api/graph?{}",
    "/orrery/api/graph?level=focused&service=svc-1&{}",
    "/orrery/api/graph/diff?{}",
    "/orrery/api/graph/diff?base_start=0&base_end=60000&{}",
    "/orrery/api/nodes/svc-1?{}",
    "/orrery/api/edges?source=svc-1&target=svc-2&{}",
    "/orrery/api/services?{}",
    "/orrery/api/operations?service=svc-1&{}",
    "/orrery/api/traces?{}",
    "/orrery/api/traces?service=svc-1&attr=a%3Db&{}",
    "/orrery/api/traces/abc?{}",
    "/orrery/api/graph/stream?{}",
    "/api/services?{}",
    "/api/services/svc-1/operations?{}",
    "/api/operations?service=svc-1&{}",
    "/api/traces?service=svc-1&{}",
    "/api/traces?traceID=abc&{}",
    "/api/traces/abc?{}",
    "/api/dependencies?{}",
    "/api/v3/services?{}",
    "/api/v3/operations?service=svc-1&{}",
    "/api/v3/traces?query.service_name=svc-1&{}",
    "/api/v3/traces/abc?{}",
    "/api/v3/trace-summaries?query.serviceName=svc-1&{}",
];

/// Every numeric, duration, time and enum parameter any endpoint reads.
const PARAMS: &[&str] = &[
    "since",
    "start",
    "end",
    "base_start",
    "base_end",
    "interval",
    "min_duration",
    "max_duration",
    "limit",
    "level",
    "order",
    "errors",
    "attr",
    "lookback",
    "endTs",
    "minDuration",
    "maxDuration",
    "start_time_min",
    "query.start_time_min",
    "query.start_time_max",
    "query.duration_min",
    "query.duration_max",
    "query.num_traces",
    "query.search_depth",
    "query.searchDepth",
    "start_time",
    "end_time",
    "raw_traces",
    "query.raw_traces",
    "spanKind",
    "tags",
    "traceID",
];

const EXTREMES: &[&str] = &[
    "1e300",
    "-1e300",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "infinity",
    "-1",
    "-0",
    "0",
    "1e-300",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999999",
    "9223372036854775807000",
    "1e300s",
    "1e300ms",
    "1e300us",
    "1e300d",
    "-5s",
    "0s",
    "1e19h",
    "584942417356y",
    "18446744073709551615ns",
    "3650d",
    "3651d",
    "5000000000h",
    "1.5",
    "abc",
    "",
    " ",
    "%00",
    "2024-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "{\"a\":1e300}",
    "[]",
    "true",
    "=",
    "a=",
    "=b",
];

fn extreme() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(EXTREMES).prop_map(String::from),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| f.to_string()),
        1 => (any::<i64>(), prop::sample::select(&["ms", "s", "m", "h", "d", "us", "ns"][..]))
            .prop_map(|(n, u)| format!("{n}{u}")),
        1 => "[ -~]{0,24}",
    ]
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What a client sees: status and body; `Err` if the connection broke (a handler panicked,
/// the server hung up) — which must never happen.
async fn probe(http: &reqwest::Client, url: &str) -> Result<(u16, String), String> {
    let r = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = r.status().as_u16();
    if r.headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"))
    {
        // A live stream that was accepted: its first event is enough.
        return Ok((status, "stream".into()));
    }
    let body = r.text().await.map_err(|e| format!("{url}: body: {e}"))?;
    Ok((status, body))
}

#[test]
fn extreme_parameters_on_every_endpoint_are_answered_never_5xx_or_dropped() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, http) = rt.block_on(async {
        let ch = fresh_database().await;
        bulk_spans(&ch, 50, now_ms() - 120_000).await;
        let limits = LimitArgs {
            query_max_streams: 1000,
            ..LimitArgs::default()
        };
        let server = start(&ch, None, limits).await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        (server, http)
    });
    let config = ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let base = server.base.clone();
    proptest!(config, |(
        endpoint in prop::sample::select(ENDPOINTS),
        params in prop::collection::vec((prop::sample::select(PARAMS), extreme()), 1..4),
    )| {
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        let url = format!("{base}{}", endpoint.replace("{}", &query.join("&")));
        let (status, body) = rt.block_on(probe(&http, &url)).map_err(TestCaseError::fail)?;
        prop_assert!(status < 500, "{url} -> {status} {body}");
        if status >= 400 {
            let v: Value = serde_json::from_str(&body)
                .map_err(|e| TestCaseError::fail(format!("{url} -> {status}, not JSON ({e}): {body}")))?;
            prop_assert!(v != Value::Null, "{url} -> {status} {body}");
        }
    });
    // Still alive and well.
    let (status, _) = rt
        .block_on(probe(&http, &format!("{base}/orrery/api/health")))
        .unwrap();
    assert_eq!(status, 200);
    let (status, body) = rt
        .block_on(probe(&http, &format!("{base}/orrery/api/graph?since=5m")))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    drop(server);
}

#[tokio::test]
async fn known_panics_of_the_past_are_400s_with_the_parameter_named() {
    let ch = fresh_database().await;
    let s = start(&ch, None, LimitArgs::default()).await;
    let http = reqwest::Client::new();
    for (path, name) in [
        ("/orrery/api/graph?since=1e300", "since"),
        ("/orrery/api/traces?min_duration=1e300", "min_duration"),
        ("/orrery/api/traces?max_duration=NaN", "max_duration"),
        ("/orrery/api/graph/stream?interval=1e300", "interval"),
        ("/orrery/api/graph/stream?interval=2h", "interval"),
        (
            "/orrery/api/graph/diff?base_start=9223372036854775000&base_end=9223372036854775807",
            "base_start",
        ),
        ("/orrery/api/graph?start=-9223372036854775808", "start"),
        ("/orrery/api/graph?start=0&end=9223372036854775807", "end"),
        ("/orrery/api/graph?end=9223372036854775807", "end"),
    ] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let v: Value = r.json().await.unwrap();
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(name), "{path}: {msg}");
    }
    // Twenty-one attribute filters: refused before any SQL is built.
    let attrs: Vec<String> = (0..21).map(|i| format!("attr=k{i}%3Dv")).collect();
    let r = http
        .get(format!("{}/orrery/api/traces?{}", s.base, attrs.join("&")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("at most 20"), "{v}");
    // A method the API does not answer: JSON 405, not an empty body.
    let r = http
        .post(format!("{}/orrery/api/graph", s.base))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("GET"), "{v}");
}

// --- engine limits -------------------------------------------------------------------------

/// Three days ago: before the rollup backfill horizon, so the graph self-joins raw spans.
fn old_window() -> (i64, i64) {
    let start = (now_ms() - 3 * 86_400_000) / 60_000 * 60_000;
    (start, start + 3_600_000)
}

#[tokio::test]
async fn a_query_over_the_limits_is_a_503_naming_the_limit_and_what_to_do() {
    let ch = fresh_database().await;
    let (start, end) = old_window();
    bulk_spans(&ch, 1_000_000, start).await;
    let http = reqwest::Client::new();
    let url = |s: &Server| format!("{}/orrery/api/graph?start={start}&end={end}", s.base);

    // Generous limits: the window's graph is computed (from raw spans).
    let s = start_with(&ch, LimitArgs::default()).await;
    let r = http.get(url(&s)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    drop(s);

    let s = start_with(
        &ch,
        LimitArgs {
            query_max_execution_time: Duration::from_millis(20),
            ..LimitArgs::default()
        },
    )
    .await;
    let r = http.get(url(&s)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["limit"], "max_execution_time", "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("--query-max-execution-time") && msg.contains("narrow the time window"),
        "{msg}"
    );
    let text = http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric(
            &text,
            "orrery_query_limit_hits_total{limit=\"max_execution_time\"}"
        ) >= 1.0,
        "{text}"
    );
    drop(s);

    let s = start_with(
        &ch,
        LimitArgs {
            query_max_memory: 4 << 20,
            ..LimitArgs::default()
        },
    )
    .await;
    let r = http.get(url(&s)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["limit"], "max_memory_usage", "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("--query-max-memory"),
        "{v}"
    );
}

async fn start_with(ch: &ClickHouseArgs, limits: LimitArgs) -> Server {
    start(ch, None, limits).await
}

/// The service's queries still running in the engine (tagged by `killed_if_dropped`).
async fn running_queries(ch: &ClickHouseArgs) -> u64 {
    ch.client()
        .query(
            "SELECT count() FROM system.processes
             WHERE startsWith(Settings['log_comment'], 'orrery-query:')",
        )
        .fetch_one::<u64>()
        .await
        .unwrap()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_dropped_request_kills_its_clickhouse_query() {
    // The mechanism on its own, with a query that would run for minutes.
    let ch = fresh_database().await;
    let client = LimitArgs::default().bound(ch.client());
    let tag = orrery_query::limits::new_tag();
    let heavy = orrery_query::limits::killed_if_dropped(client.clone(), tag, async {
        orrery_query::limits::tagged(&client)
            .query("SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 3")
            .fetch_one::<u64>()
            .await
    });
    let started = Instant::now();
    let timed_out = tokio::time::timeout(Duration::from_secs(1), heavy).await;
    assert!(timed_out.is_err(), "the heavy query cannot finish in 1 s");
    wait_for(
        "the dropped query is killed",
        Duration::from_secs(10),
        async || running_queries(&ch).await == 0,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn a_client_that_goes_away_leaves_no_query_running() {
    let ch = fresh_database().await;
    let (start, end) = old_window();
    bulk_spans(&ch, 2_000_000, start).await;
    let s = start_with(&ch, LimitArgs::default()).await;
    let path = format!("/orrery/api/graph?start={start}&end={end}&level=global");
    // How long the graph takes when the client waits for it.
    let t = Instant::now();
    let r = reqwest::get(format!("{}{path}", s.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    let full = t.elapsed();
    // A raw client: send the request, wait until its queries run, hang up.
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let t = Instant::now();
    conn.write_all(req.as_bytes()).await.unwrap();
    wait_for(
        "the graph's queries start",
        Duration::from_secs(20),
        async || running_queries(&ch).await > 0,
    )
    .await;
    drop(conn);
    wait_for(
        "the disconnected client's queries stop",
        Duration::from_secs(5),
        async || running_queries(&ch).await == 0,
    )
    .await;
    let gone = t.elapsed();
    eprintln!("graph answered in {full:?}; a client that hung up: its queries gone after {gone:?}");
    // Stopped, not finished: gone well before the full graph would have been computed.
    assert!(gone < full / 2, "{gone:?} vs {full:?}");
}

#[tokio::test]
async fn a_request_over_the_request_timeout_is_a_503_and_its_query_is_killed() {
    let ch = fresh_database().await;
    let (start, end) = old_window();
    bulk_spans(&ch, 2_000_000, start).await;
    let s = start_with(
        &ch,
        LimitArgs {
            query_request_timeout: Duration::from_millis(300),
            ..LimitArgs::default()
        },
    )
    .await;
    let r = reqwest::get(format!(
        "{}/orrery/api/graph?start={start}&end={end}&level=global",
        s.base
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["limit"], "request_timeout", "{v}");
    wait_for(
        "the timed-out request's queries stop",
        Duration::from_secs(5),
        async || running_queries(&ch).await == 0,
    )
    .await;
}

#[tokio::test]
async fn a_trace_over_the_span_cap_comes_back_truncated() {
    let ch = fresh_database().await;
    bulk_spans(&ch, 1, now_ms() - 60_000).await; // trace 0: 2 spans
    let s = start_with(
        &ch,
        LimitArgs {
            query_max_trace_spans: 1,
            ..LimitArgs::default()
        },
    )
    .await;
    let t: orrery_api::Trace = reqwest::get(format!("{}/orrery/api/traces/0", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(t.truncated);
    assert_eq!(t.spans.len(), 1);
    assert_eq!(t.spans[0].kind, "Client", "the earliest span is kept");
    drop(s);
    let s = start_with(&ch, LimitArgs::default()).await;
    let t: orrery_api::Trace = reqwest::get(format!("{}/orrery/api/traces/0", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!t.truncated);
    assert_eq!(t.spans.len(), 2);
}

// --- slow and many clients -------------------------------------------------------------------

/// Reads until the server closes the connection; how long that took.
async fn closed_within(conn: &mut tokio::net::TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
        }
    }
}

#[tokio::test]
async fn slowloris_and_silent_clients_are_cut_off() {
    let ch = fresh_database().await;
    let s = start_with(
        &ch,
        LimitArgs {
            query_header_read_timeout: Duration::from_secs(1),
            ..LimitArgs::default()
        },
    )
    .await;
    // Half a request's headers, then a byte every 300 ms: never finishes them.
    let mut slow = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /orrery/api/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let drip = tokio::spawn(async move {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow.write_all(b"X").await.is_err() {
                return slow;
            }
        }
        slow
    });
    let mut slow = drip.await.unwrap();
    let took = closed_within(&mut slow, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(5));
    // A client that connects and says nothing.
    let mut silent = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(5)).await;
    // Everyone else is served.
    let r = reqwest::get(format!("{}/orrery/api/health", s.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn requests_and_streams_are_capped() {
    let ch = fresh_database().await;
    let (start, end) = old_window();
    bulk_spans(&ch, 2_000_000, start).await;
    let s = start_with(
        &ch,
        LimitArgs {
            query_max_concurrent_requests: 1,
            query_max_streams: 1,
            ..LimitArgs::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    // One slow request holds the only request slot: another is shed with 503 at once.
    let slow = tokio::spawn({
        let url = format!(
            "{}/orrery/api/graph?start={start}&end={end}&level=global",
            s.base
        );
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    });
    wait_for(
        "the slow request runs",
        Duration::from_secs(20),
        async || running_queries(&ch).await > 0,
    )
    .await;
    let r = http
        .get(format!("{}/orrery/api/services", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["limit"], "max_concurrent_requests");
    assert_eq!(slow.await.unwrap(), 200);

    // One live stream per replica here: the second is 429 with Retry-After.
    let mut first = http
        .get(format!("{}/orrery/api/graph/stream?since=5m", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let _ = tokio::time::timeout(Duration::from_secs(10), first.chunk()).await;
    let r = http
        .get(format!("{}/orrery/api/graph/stream?since=5m", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["limit"], "max_streams");
    assert!(v["error"].as_str().unwrap().contains("--query-max-streams"));
    // What an operator sees.
    let text = http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\norrery_query_streams_open 1\n"), "{text}");
    assert!(
        metric(&text, "orrery_query_streams_refused_total") >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "orrery_query_requests_shed_total") >= 1.0,
        "{text}"
    );
    drop(first);
}

/// The value of the first sample of `name` (with its labels, if any) in an exposition.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let ch = fresh_database().await;
    let s = start_with(
        &ch,
        LimitArgs {
            query_max_connections: 2,
            ..LimitArgs::default()
        },
    )
    .await;
    // Two connections open (idle): a third is closed without an answer.
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(tokio::net::TcpStream::connect(s.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /orrery/api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), extra.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection over the cap was kept open");
    assert!(
        buf.is_empty(),
        "answered over the cap: {}",
        String::from_utf8_lossy(&buf)
    );
    // Once one closes, a new connection is served.
    drop(idle.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = reqwest::get(format!("{}/orrery/api/health", s.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn open_streams_end_on_shutdown_and_the_server_returns() {
    let ch = fresh_database().await;
    let mut s = start_with(&ch, LimitArgs::default()).await;
    let http = reqwest::Client::new();
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut r = http
            .get(format!(
                "{}/orrery/api/graph/stream?since=5m&interval=1s",
                s.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.chunk().await.unwrap();
        streams.push(r);
    }
    let started = Instant::now();
    s.shutdown.cancel();
    for r in &mut streams {
        // The stream ends (its body completes) rather than hanging.
        loop {
            match tokio::time::timeout(Duration::from_secs(5), r.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(_) => break,
                Err(_) => panic!("a stream stayed open after shutdown"),
            }
        }
    }
    let done = tokio::time::timeout(Duration::from_secs(5), &mut s.task).await;
    assert!(done.is_ok(), "serve() did not return after shutdown");
    assert!(started.elapsed() < Duration::from_secs(5));
}

// --- auth and headers ------------------------------------------------------------------------

#[tokio::test]
async fn auth_is_header_only_json_and_leaves_the_ui_public() {
    let ch = fresh_database().await;
    let s = start(&ch, Some("s3cret-token"), LimitArgs::default()).await;
    let http = reqwest::Client::new();
    for path in [
        "/orrery/api/graph",
        "/orrery/api/traces",
        "/orrery/api/nope",
        "/api/services",
        "/api/v3/services",
        "/api/nope",
        "/metrics",
    ] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer"),
            "{v}"
        );
        for bad in ["s3cret-toke", "s3cret-tokenX", "S3cret-token", ""] {
            let r = http
                .get(format!("{}{path}", s.base))
                .bearer_auth(bad)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{path} with {bad:?}");
        }
        let r = http
            .get(format!("{}{path}?access_token=s3cret-token", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}: no token in URLs");
    }
    let r = http
        .get(format!("{}/orrery/api/graph", s.base))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The UI loads without a token (to show its sign-in form), with its security headers.
    for path in ["/", "/orrery_web_bg.wasm", "/services/x"] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        check_security_headers(&r, path);
    }
    let r = http
        .get(format!("{}/orrery/api/graph", s.base))
        .send()
        .await
        .unwrap();
    check_security_headers(&r, "401");
}

fn check_security_headers(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in [
        "script-src 'self' 'wasm-unsafe-eval'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(part), "{what}: {csp}");
    }
    assert!(
        !csp.contains("unsafe-eval'") || csp.contains("wasm-unsafe-eval"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
}
