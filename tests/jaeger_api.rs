//! Jaeger's HTTP APIs (v1 and v3) on the query port, on the real embedded engine, against
//! the contracts of Jaeger's own query service (jaegertracing/jaeger: the v1 handler and query
//! parser, the v3 HTTP gateway and its query parser, the memory store's tag matching).

mod query_support;

use clap::Parser;
use orrery_query::QueryArgs;
use orrery_store::SpanRow;
use orrery_store::testing::fresh_database;
use query_support::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    query: QueryArgs,
}

struct Server {
    base: String,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_with(ch: &orrery_store::ClickHouseArgs, flags: &[&str]) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut argv = vec!["test", "--query-addr", &addr, "--graph-no-rollup"];
    argv.extend_from_slice(flags);
    let mut args = Cli::parse_from(argv).query;
    args.graph = orrery_query::GraphArgs {
        graph_no_rollup: true,
        ..settings()
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(orrery_query::serve(
        listener,
        args,
        ch.clone(),
        shutdown.clone(),
    ));
    Server {
        base: format!("http://{addr}"),
        shutdown,
    }
}

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

const A: &str = "a1";
const B: &str = "b1";
const HOUR: i64 = 60 * MINUTE;

fn tid(s: &str) -> String {
    format!("{s:0>32}")
}

/// Trace A: a gateway root three hours before its api spans (two api instances, an internal
/// span with scope, event and link attributes, an orphan); trace B: one failing api span.
fn data(base: i64) -> Vec<SpanRow> {
    let mut internal = span(A, "4", "2", "api", "Internal", base + 2 * MS, 1)
        .name("compute")
        .resource("host.name", "h1")
        .resource("k8s.pod.name", "pod-7");
    internal.scope_name = "lib-x".into();
    internal.scope_version = "1.2".into();
    internal.status_code = "Ok".into();
    internal.events_timestamp.push(base + 2 * MS);
    internal.events_name.push("retry".into());
    internal
        .events_attributes
        .push(vec![("retry.count".into(), "3".into())]);
    internal.links_trace_id.push(tid(B));
    internal.links_span_id.push(format!("{:0>16}", "9"));
    internal.links_trace_state.push(String::new());
    internal
        .links_attributes
        .push(vec![("link.reason".into(), "batch".into())]);
    vec![
        span(
            A,
            "1",
            "",
            "gateway",
            "Server",
            base - 3 * HOUR,
            3 * 60 * 60_000 + 10,
        )
        .name("GET /long"),
        span(A, "2", "1", "api", "Server", base, 5)
            .name("GET /api")
            .resource("host.name", "h1")
            .resource("k8s.pod.name", "pod-7"),
        span(A, "3", "2", "api", "Unspecified", base + MS, 2)
            .name("db")
            .resource("host.name", "h2"),
        internal,
        span(A, "5", "404", "api", "Client", base + 3 * MS, 1)
            .name("orphan")
            .resource("host.name", "h1")
            .resource("k8s.pod.name", "pod-7"),
        span(B, "1", "", "api", "Server", base + 10 * MS, 7)
            .name("GET /api")
            .error(),
        // A 64-bit trace id, as old Jaeger clients send them.
        span(
            "00000000000000000123456789abcdef",
            "1",
            "",
            "legacy",
            "Server",
            base,
            1,
        ),
    ]
}

async fn setup() -> (Server, i64) {
    setup_with(&[]).await
}

async fn setup_with(flags: &[&str]) -> (Server, i64) {
    let ch = fresh_database().await;
    let base = now_ns() - 2 * MINUTE;
    insert(&ch, &data(base)).await;
    (start_with(&ch, flags).await, base)
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {v}"))
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn v1_search_tags_have_jaegers_semantics() {
    let (s, _) = setup().await;
    let search = |tags: &str| {
        let url = format!("{}/api/traces?service=api&lookback=1h&{tags}", s.base);
        async move {
            let (st, v) = get(&url).await;
            assert_eq!(st, 200, "{url}: {v}");
            ids(&v)
        }
    };
    let a = vec![tid(A)[16..].to_string()];
    let b = vec![tid(B)[16..].to_string()];
    let none: Vec<String> = vec![];
    assert_eq!(search("tag=span.kind:internal").await, a);
    assert_eq!(search("tag=span.kind:server").await.len(), 2);
    assert_eq!(search("tag=error:true").await, b);
    assert_eq!(
        search("tag=error:false").await,
        a,
        "Unset/Ok spans are not errors"
    );
    assert_eq!(search("tag=span.status:ok").await, a);
    assert_eq!(search("tag=span.status:error").await, b);
    assert_eq!(search("tag=scope.name:lib-x").await, a);
    assert_eq!(search("tag=scope.version:1.2").await, a);
    assert_eq!(search("tag=resource.k8s.pod.name:pod-7").await, a);
    assert_eq!(search("tag=k8s.pod.name:pod-7").await, a);
    // Event and link attributes match a plain key, never a resource. key.
    assert_eq!(search("tag=retry.count:3").await, a);
    assert_eq!(search("tag=link.reason:batch").await, a);
    assert_eq!(search("tag=resource.retry.count:3").await, none);
    // Repeated tags are merged: one span must match all of them.
    assert_eq!(
        search(
            "tags=%7B%22span.kind%22%3A%22internal%22%7D&tags=%7B%22retry.count%22%3A%223%22%7D"
        )
        .await,
        a
    );
    assert_eq!(
        search("tags=%7B%22span.kind%22%3A%22internal%22%7D&tag=error:true").await,
        none
    );
    // Hostile values are data, not SQL.
    assert_eq!(search("tag=x%27%5D%20OR%201%3D1%20--:%27").await, none);
}

#[tokio::test]
async fn v1_results_are_whole_traces_with_jaegers_model() {
    let (s, base) = setup().await;
    // A one-hour window holds only A's api spans; the result is still the whole trace.
    let (st, v) = get(&format!(
        "{}/api/traces?service=api&lookback=1h&tag=span.kind:internal",
        s.base
    ))
    .await;
    assert_eq!(st, 200);
    let t = &v["data"][0];
    assert_eq!(t["spans"].as_array().unwrap().len(), 5, "{t}");
    assert!(
        t["spans"].as_array().unwrap().iter().any(
            |s| s["operationName"] == "GET /long" && s["startTime"] == (base - 3 * HOUR) / 1000
        )
    );
    // Processes per (service, tags): two api instances, one gateway.
    let procs = t["processes"].as_object().unwrap();
    let api: Vec<&Value> = procs
        .values()
        .filter(|p| p["serviceName"] == "api")
        .collect();
    assert_eq!(api.len(), 2, "{procs:?}");
    let hosts: Vec<String> = t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["operationName"] == "db" || s["operationName"] == "GET /api")
        .map(|s| {
            let p = &procs[s["processID"].as_str().unwrap()];
            let tags = p["tags"].as_array().unwrap();
            tags.iter().find(|t| t["key"] == "host.name").unwrap()["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(hosts.len(), 2);
    assert_ne!(
        hosts[0], hosts[1],
        "each span shows its own instance's host.name"
    );

    // Several traceIDs: the missing one is an errors[] entry, the found one is data.
    let missing = "cd".repeat(16);
    let (st, v) = get(&format!(
        "{}/api/traces?traceID={}&traceID={missing}",
        s.base,
        tid(A)
    ))
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["errors"],
        json!([{"code": 404, "msg": "trace not found", "traceID": missing}])
    );

    // 64-bit ids: printed as 16 hex digits, found by 16 digits too.
    let (st, v) = get(&format!("{}/api/traces/0123456789abcdef", s.base)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"][0]["traceID"], "0123456789abcdef");
    // Base64 ids are accepted (Jaeger's TraceIDFromString).
    let (st, v) = get(&format!(
        "{}/api/traces/AAAAAAAAAAABI0VniavN7w%3D%3D",
        s.base
    ))
    .await;
    assert_eq!(st, 200, "{v}");

    // spanKind "" for an unset kind, as Jaeger reports it.
    let (_, v) = get(&format!("{}/api/operations?service=api", s.base)).await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "db", "spanKind": ""})),
        "{v}"
    );
}

#[tokio::test]
async fn v1_limits_and_long_windows() {
    let (s, _) = setup().await;
    // Grafana's "Last 90 days": served, not refused.
    let end = now_ns() / 1000;
    let start = end - 90 * 24 * 3_600_000_000;
    let (st, v) = get(&format!(
        "{}/api/traces?service=api&start={start}&end={end}",
        s.base
    ))
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let end_ms = now_ns() / MS;
    let (st, v) = get(&format!(
        "{}/api/dependencies?endTs={end_ms}&lookback={}",
        s.base,
        90u64 * 24 * 3_600_000
    ))
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["data"].is_array(), "{v}");

    for (q, word) in [
        ("service=api&limit=1501", "1500"),
        ("service=api&minDuration=2s&maxDuration=1s", "maxDuration"),
        ("service=api&tag=error:sometimes", "error"),
    ] {
        let (st, v) = get(&format!("{}/api/traces?{q}", s.base)).await;
        assert_eq!(st, 400, "{q}: {v}");
        assert!(
            v["errors"][0]["msg"].as_str().unwrap().contains(word),
            "{v}"
        );
    }
    let many: String = (1..=101).map(|i| format!("traceID={i:x}&")).collect();
    let (st, v) = get(&format!("{}/api/traces?{many}", s.base)).await;
    assert_eq!(st, 400, "{v}");
}

#[tokio::test]
async fn v3_discovery_trace_by_id_and_errors_match_the_gateway() {
    let (s, _) = setup().await;
    let (st, v) = get(&format!("{}/api/v3/services", s.base)).await;
    assert_eq!(st, 200);
    assert_eq!(v, json!({"services": ["api", "gateway", "legacy"]}));
    let (_, v) = get(&format!("{}/api/v3/operations?service=api", s.base)).await;
    let ops = v["operations"].as_array().unwrap();
    assert!(
        ops.contains(&json!({"name": "db", "spanKind": "internal"})),
        "{v}"
    );
    assert!(ops.contains(&json!({"name": "GET /api", "spanKind": "server"})));
    let (_, v) = get(&format!(
        "{}/api/v3/operations?service=api&spanKind=client",
        s.base
    ))
    .await;
    assert_eq!(
        v,
        json!({"operations": [{"name": "orphan", "spanKind": "client"}]})
    );

    // OTLP JSON in the gateway's envelope; a base64 id works as in Jaeger.
    let (st, v) = get(&format!("{}/api/v3/traces/{}", s.base, tid(A))).await;
    assert_eq!(st, 200, "{v}");
    let rs = v["result"]["resourceSpans"].as_array().unwrap();
    let spans: Vec<&Value> = rs
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().unwrap())
        .flat_map(|ss| ss["spans"].as_array().unwrap())
        .collect();
    assert_eq!(spans.len(), 5);
    let compute = spans.iter().find(|s| s["name"] == "compute").unwrap();
    assert_eq!(compute["kind"], 1);
    assert_eq!(compute["status"]["code"], 1);
    assert!(compute["startTimeUnixNano"].is_string());
    assert_eq!(compute["events"][0]["attributes"][0]["key"], "retry.count");
    let (st, _) = get(&format!("{}/api/v3/traces/AAAAAAAAAAAAAAAAAAAAoQ", s.base)).await;
    assert_eq!(st, 200, "base64 of trace a1");

    let (st, v) = get(&format!("{}/api/v3/traces/{}", s.base, "cd".repeat(16))).await;
    assert_eq!(st, 404);
    assert_eq!(
        v,
        json!({"error": {"httpCode": 404, "message": "No traces found"}})
    );
    let (st, v) = get(&format!("{}/api/v3/nothing/here", s.base)).await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["httpCode"], 404, "{v}");
    let (st, v) = get(&format!("{}/api/v3/traces/not-an-id!", s.base)).await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["httpCode"], 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("trace_id"));
}

#[tokio::test]
async fn v3_find_traces_and_summaries() {
    let (s, base) = setup().await;
    let min = "query.startTimeMin=2000-01-01T00:00:00Z";
    let max = "query.startTimeMax=2100-01-01T00:00:00.000000001Z";
    let (st, v) = get(&format!(
        "{}/api/v3/trace-summaries?query.serviceName=api&{min}&{max}",
        s.base
    ))
    .await;
    assert_eq!(st, 200, "{v}");
    let sums = v["summaries"].as_array().unwrap();
    assert_eq!(sums.len(), 2);
    // B is newer, so first.
    assert_eq!(sums[0]["traceId"], tid(B));
    assert_eq!(sums[0]["errorSpanCount"], 1);
    let a = &sums[1];
    assert_eq!(a["traceId"], tid(A));
    assert_eq!(
        a["rootServiceName"], "gateway",
        "whole trace, not the window's spans"
    );
    assert_eq!(a["rootOperationName"], "GET /long");
    assert_eq!(a["spanCount"], 5);
    assert_eq!(a["orphanSpanCount"], 1);
    assert_eq!(a["minStartTimeUnixNano"], (base - 3 * HOUR).to_string());
    assert_eq!(
        a["services"],
        json!([{"name": "api", "spanCount": 4, "errorSpanCount": 0},
               {"name": "gateway", "spanCount": 1, "errorSpanCount": 0}])
    );

    // query.attributes with Jaeger's tag semantics; deprecated snake_case names work.
    let (_, v) = get(&format!(
        "{}/api/v3/trace-summaries?query.service_name=api&query.start_time_min=2000-01-01T00:00:00Z&{max}&query.attributes=%7B%22span.kind%22%3A%22internal%22%7D",
        s.base
    ))
    .await;
    assert_eq!(v["summaries"].as_array().unwrap().len(), 1, "{v}");
    let (_, v) = get(&format!(
        "{}/api/v3/trace-summaries?query.serviceName=api&{min}&{max}&query.durationMin=6ms",
        s.base
    ))
    .await;
    assert_eq!(v["summaries"][0]["traceId"], tid(B), "{v}");
    assert_eq!(v["summaries"].as_array().unwrap().len(), 1);

    // Find traces: every found trace in one OTLP body; nothing found is a 404.
    let (st, v) = get(&format!(
        "{}/api/v3/traces?query.serviceName=api&{min}&{max}&query.searchDepth=1",
        s.base
    ))
    .await;
    assert_eq!(st, 200, "{v}");
    let trace_ids: std::collections::BTreeSet<&str> = v["result"]["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().unwrap())
        .flat_map(|ss| ss["spans"].as_array().unwrap())
        .map(|s| s["traceId"].as_str().unwrap())
        .collect();
    assert_eq!(trace_ids.len(), 1, "searchDepth=1");
    let (st, v) = get(&format!(
        "{}/api/v3/traces?query.serviceName=nobody&{min}&{max}",
        s.base
    ))
    .await;
    assert_eq!(st, 404, "{v}");
    let (_, v) = get(&format!(
        "{}/api/v3/trace-summaries?query.serviceName=nobody&{min}&{max}",
        s.base
    ))
    .await;
    assert_eq!(v, json!({"summaries": []}));

    // Hostile parameters: 400 in the gateway's error shape, naming the parameter.
    for (q, word) in [
        ("query.serviceName=api", "required"),
        (
            &format!("{min}&query.startTimeMax=tomorrow") as &str,
            "query.startTimeMax",
        ),
        (&format!("{min}&{max}&query.searchDepth=100000"), "1500"),
        (
            &format!("{min}&{max}&query.durationMin=5"),
            "query.durationMin",
        ),
        (
            &format!("{min}&{max}&query.attributes=%5B1%5D"),
            "query.attributes",
        ),
    ] {
        for path in ["traces", "trace-summaries"] {
            let (st, v) = get(&format!("{}/api/v3/{path}?{q}", s.base)).await;
            assert_eq!(st, 400, "{path}?{q}: {v}");
            assert_eq!(v["error"]["httpCode"], 400);
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains(word), "{q}: {msg}");
        }
    }
}

#[tokio::test]
async fn spans_held_per_answer_are_bounded_by_the_trace_span_cap() {
    // Trace A has 5 spans, B 1: a cap of 3 spans per answer.
    let (s, _) = setup_with(&["--query-max-trace-spans", "3"]).await;
    let (st, v) = get(&format!("{}/api/traces?service=api&lookback=1h", s.base)).await;
    assert_eq!(st, 400, "{v}");
    let msg = v["errors"][0]["msg"].as_str().unwrap();
    assert!(
        msg.contains("--query-max-trace-spans") && msg.contains("limit"),
        "{msg}"
    );
    // Asking for fewer traces (the newest, B) is answered.
    let (st, v) = get(&format!(
        "{}/api/traces?service=api&lookback=1h&limit=1",
        s.base
    ))
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ids(&v), vec![tid(B)[16..].to_string()]);
    // v3 find traces: the same 400, in the gateway's shape.
    let (st, v) = get(&format!(
        "{}/api/v3/traces?query.serviceName=api&query.startTimeMin=2000-01-01T00:00:00Z&query.startTimeMax=2100-01-01T00:00:00Z",
        s.base
    ))
    .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["httpCode"], 400);
    // Trace by id: the first 3 spans, and a warning the Jaeger UI shows.
    let (st, v) = get(&format!("{}/api/traces/{}", s.base, tid(A))).await;
    assert_eq!(st, 200, "{v}");
    let t = &v["data"][0];
    assert_eq!(t["spans"].as_array().unwrap().len(), 3);
    assert!(
        t["warnings"][0].as_str().unwrap().contains("truncated"),
        "{t}"
    );
    let (st, v) = get(&format!("{}/api/v3/traces/{}", s.base, tid(A))).await;
    assert_eq!(st, 200, "{v}");
    let n: usize = v["result"]["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().unwrap())
        .map(|ss| ss["spans"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 3);
}
