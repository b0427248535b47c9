//! Extreme parameters on every endpoint: a JSON 4xx or a 2xx, never a 5xx or a dropped
//! connection.

use std::time::Duration;

use orrery_query::limits::LimitArgs;
use orrery_store::testing::fresh_database;
use proptest::prelude::*;
use serde_json::Value;

use crate::*;

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
    "/orrery/api/checks?{}",
    "/orrery/api/checks/versions?service=svc-1&version=v2&{}",
    "/orrery/api/checks/last-seen?service=svc-1&{}",
    "/orrery/api/checks/history?{}",
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
    // Jaeger's windows have no length cap, but ends beyond what can be stored are clamped:
    // answered, never an overflow (a 500).
    for path in [
        "/api/dependencies?lookback=9223371982612",
        "/api/dependencies?endTs=9223372036854775807&lookback=9223372036854775807",
        "/api/dependencies?endTs=-9223372036854775808",
        "/api/traces?service=svc-1&start=-9223372036854775808&end=9223372036854775807",
    ] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert!(r.status().as_u16() < 500, "{path}: {}", r.status());
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
