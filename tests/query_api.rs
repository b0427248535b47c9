//! The query service over HTTP on the real embedded engine: Orrery's API (graph, diff, stream,
//! node/edge detail, trace search and by id, 400s, auth), the Jaeger-compatible API against
//! the shapes of Jaeger's documented examples, and the UI's static files.

mod query_support;

use std::net::SocketAddr;
use std::time::Duration;

use orrery_query::{GraphArgs, QueryArgs};
use orrery_store::ClickHouseArgs;
use orrery_store::testing::fresh_database;
use query_support::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

struct Server {
    base: String,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(ch: &ClickHouseArgs, token: Option<&str>, ui_dir: std::path::PathBuf) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let args = QueryArgs {
        query_addr: addr,
        api_token: token.map(String::from),
        ui_dir,
        graph: GraphArgs {
            graph_no_rollup: true,
            ..settings()
        },
        limits: Default::default(),
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

/// Two traces in a small shop: one fine, one failing slowly.
fn shop(base: i64) -> Vec<orrery_store::SpanRow> {
    let mut rows = vec![
        span("f1", "1", "", "frontend", "Server", base, 100)
            .name("GET /dispatch")
            .attr("http.request.method", "GET")
            .resource("host.name", "fe-1"),
        span("f1", "2", "1", "frontend", "Client", base + MS, 80).name("HTTP GET"),
        span("f1", "3", "2", "driver", "Server", base + 2 * MS, 60)
            .name("/driver.DriverService/FindNearest")
            .attr("customer", "123"),
        span("f2", "1", "", "frontend", "Server", base + 1000 * MS, 2500).name("GET /dispatch"),
        span("f2", "2", "1", "frontend", "Client", base + 1001 * MS, 2400).name("HTTP GET"),
        span("f2", "3", "2", "driver", "Server", base + 1002 * MS, 2300)
            .name("/driver.DriverService/FindNearest")
            .attr("customer", "456")
            .error(),
    ];
    // An event and a link on the failing span.
    let r = rows.last_mut().unwrap();
    r.status_message = "no drivers".into();
    r.events_timestamp.push(base + 1500 * MS);
    r.events_name.push("retry".into());
    r.events_attributes
        .push(vec![("attempt".into(), "2".into())]);
    r.links_trace_id.push(format!("{:0>32}", "f1"));
    r.links_span_id.push(format!("{:0>16}", "3"));
    r.links_trace_state.push(String::new());
    r.links_attributes.push(vec![]);
    rows
}

fn tid(s: &str) -> String {
    format!("{s:0>32}")
}

#[tokio::test]
async fn orrery_api_graph_traces_details_and_bad_parameters() {
    let ch = fresh_database().await;
    let base = now_ns() - 2 * MINUTE;
    insert(&ch, &shop(base)).await;
    let s = start(&ch, None, "/nonexistent/ui".into()).await;

    let (st, g) = get(&format!("{}/orrery/api/graph?since=10m", s.base)).await;
    assert_eq!(st, 200, "{g}");
    let edges: Vec<(String, String, u64)> = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
                e["metrics"]["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        edges,
        vec![
            ("INTERNET".into(), "frontend".into(), 2),
            ("frontend".into(), "driver".into(), 2)
        ]
    );
    assert_eq!(g["edges"][1]["metrics"]["errors"], 1);
    assert_eq!(g["edges"][1]["health"], "danger");
    assert_eq!(g["level"], "region");
    assert!(g["window"]["live"].as_bool().unwrap());
    assert_eq!(g["data_quality"]["spans"], 6);
    assert!(
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == "driver" && n["rank"] == 2)
    );

    // Bad parameters: 400 with a message.
    for q in [
        "level=bogus",
        "since=soon",
        "start=10&end=5",
        "level=focused",
        "start=abc",
    ] {
        let (st, body) = get(&format!("{}/orrery/api/graph?{q}", s.base)).await;
        assert_eq!(st, 400, "{q}: {body}");
        assert!(body["error"].as_str().unwrap().len() > 5, "{q}: {body}");
    }

    // Diff against an empty earlier window: everything is new.
    let (st, d) = get(&format!("{}/orrery/api/graph/diff?since=10m", s.base)).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["added_edges"].as_array().unwrap().len(), 2);
    assert!(d["removed_edges"].as_array().unwrap().is_empty());

    // Node and edge detail.
    let (st, n) = get(&format!("{}/orrery/api/nodes/driver?since=10m", s.base)).await;
    assert_eq!(st, 200, "{n}");
    assert_eq!(
        n["operations"][0]["name"],
        "/driver.DriverService/FindNearest"
    );
    assert_eq!(n["operations"][0]["metrics"]["requests"], 2);
    assert_eq!(n["callers"][0]["source"], "frontend");
    let (st, _) = get(&format!("{}/orrery/api/nodes/nobody?since=10m", s.base)).await;
    assert_eq!(st, 404);
    let (st, e) = get(&format!(
        "{}/orrery/api/edges?source=frontend&target=driver&since=10m",
        s.base
    ))
    .await;
    assert_eq!(st, 200, "{e}");
    assert_eq!(e["exemplars"]["slowest"][0]["trace_id"], tid("f2"));
    assert_eq!(e["exemplars"]["failed"][0]["trace_id"], tid("f2"));
    assert_eq!(e["exemplars"]["failed"].as_array().unwrap().len(), 1);
    let counts: u64 = e["histogram"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(counts, 2);
    let (st, _) = get(&format!("{}/orrery/api/edges?source=frontend", s.base)).await;
    assert_eq!(st, 400);

    // Trace search.
    let (st, r) = get(&format!(
        "{}/orrery/api/traces?service=driver&errors=true&since=10m",
        s.base
    ))
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["traces"].as_array().unwrap().len(), 1);
    let t = &r["traces"][0];
    assert_eq!(t["trace_id"], tid("f2"));
    assert_eq!(t["root_service"], "frontend");
    assert_eq!(t["root_operation"], "GET /dispatch");
    assert_eq!(t["span_count"], 3);
    assert_eq!(t["error_count"], 1);
    assert_eq!(t["duration_us"], 2_500_000);
    let (_, r) = get(&format!(
        "{}/orrery/api/traces?attr=customer%3D123&since=10m",
        s.base
    ))
    .await;
    assert_eq!(r["traces"][0]["trace_id"], tid("f1"));
    assert_eq!(r["traces"].as_array().unwrap().len(), 1);
    let (_, r) = get(&format!(
        "{}/orrery/api/traces?service=frontend&min_duration=1s&since=10m",
        s.base
    ))
    .await;
    assert_eq!(r["traces"].as_array().unwrap().len(), 1);
    let (_, r) = get(&format!(
        "{}/orrery/api/traces?since=10m&order=fastest&limit=1",
        s.base
    ))
    .await;
    assert_eq!(r["traces"][0]["trace_id"], tid("f1"));
    assert_eq!(r["traces"].as_array().unwrap().len(), 1);
    for q in [
        "limit=0",
        "min_duration=x",
        "attr=novalue",
        "order=random",
        "errors=maybe",
        "min_duration=2s&max_duration=1s",
    ] {
        let (st, body) = get(&format!("{}/orrery/api/traces?{q}", s.base)).await;
        assert_eq!(st, 400, "{q}: {body}");
    }

    // Trace by id: the span tree.
    let (st, tr) = get(&format!("{}/orrery/api/traces/f2", s.base)).await;
    assert_eq!(st, 200, "{tr}");
    let spans = tr["spans"].as_array().unwrap();
    let tree: Vec<(String, u64)> = spans
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().to_string(),
                s["depth"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tree,
        vec![
            ("frontend".into(), 0),
            ("frontend".into(), 1),
            ("driver".into(), 2)
        ]
    );
    assert_eq!(spans[2]["status"]["code"], "Error");
    assert_eq!(spans[2]["status"]["message"], "no drivers");
    assert_eq!(spans[2]["events"][0]["name"], "retry");
    assert_eq!(spans[2]["events"][0]["attributes"]["attempt"], "2");
    assert_eq!(spans[2]["links"][0]["trace_id"], tid("f1"));
    assert_eq!(spans[2]["kind"], "Server");
    let (st, _) = get(&format!("{}/orrery/api/traces/{}", s.base, "ab".repeat(16))).await;
    assert_eq!(st, 404);
    let (st, _) = get(&format!("{}/orrery/api/traces/not-hex", s.base)).await;
    assert_eq!(st, 400);

    // The UI is not built here: a page that says so (not a 404), for SPA routes too.
    let page = reqwest::get(format!("{}/some/route", s.base))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("scripts/build-web.sh"));
}

#[tokio::test]
async fn jaeger_api_matches_jaegers_shapes() {
    let ch = fresh_database().await;
    let base = now_ns() - 2 * MINUTE;
    insert(&ch, &shop(base)).await;
    let s = start(&ch, None, "/nonexistent".into()).await;

    let (st, v) = get(&format!("{}/api/services", s.base)).await;
    assert_eq!(st, 200);
    assert_eq!(v["data"], serde_json::json!(["driver", "frontend"]));
    assert_eq!(v["total"], 2);
    assert!(v["errors"].is_null());
    let (_, v) = get(&format!("{}/api/services/frontend/operations", s.base)).await;
    assert_eq!(v["data"], serde_json::json!(["GET /dispatch", "HTTP GET"]));
    let (_, v) = get(&format!(
        "{}/api/operations?service=frontend&spanKind=server",
        s.base
    ))
    .await;
    assert_eq!(
        v["data"],
        serde_json::json!([{"name": "GET /dispatch", "spanKind": "server"}])
    );

    // Search as Grafana sends it: tags JSON with Jaeger's error=true convention, µs times.
    let start_us = (base - MINUTE) / 1000;
    let end_us = now_ns() / 1000;
    let url = format!(
        "{}/api/traces?service=driver&tags=%7B%22error%22%3A%22true%22%7D&start={start_us}&end={end_us}&limit=20",
        s.base
    );
    let (st, v) = get(&url).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let trace = &v["data"][0];
    // Jaeger prints a trace id whose high 64 bits are zero as 16 hex digits.
    assert_eq!(trace["traceID"], tid("f2")[16..]);
    // The shape of Jaeger's documented trace JSON.
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    let driver = spans
        .iter()
        .find(|s| s["operationName"] == "/driver.DriverService/FindNearest")
        .unwrap();
    assert_eq!(driver["traceID"], tid("f2")[16..]);
    assert_eq!(driver["spanID"], format!("{:0>16}", "3"));
    assert_eq!(
        driver["references"][0],
        serde_json::json!({"refType": "CHILD_OF", "traceID": tid("f2")[16..], "spanID": format!("{:0>16}", "2")})
    );
    assert_eq!(driver["references"][1]["refType"], "FOLLOWS_FROM");
    assert_eq!(driver["startTime"], (base + 1002 * MS) / 1000);
    assert_eq!(driver["duration"], 2_300_000);
    let tags = driver["tags"].as_array().unwrap();
    assert!(tags.contains(&serde_json::json!({"key": "error", "type": "bool", "value": true})));
    assert!(
        tags.contains(
            &serde_json::json!({"key": "span.kind", "type": "string", "value": "server"})
        )
    );
    assert!(
        tags.contains(&serde_json::json!({"key": "customer", "type": "string", "value": "456"}))
    );
    assert_eq!(
        driver["logs"][0]["fields"][0],
        serde_json::json!({"key": "event", "type": "string", "value": "retry"})
    );
    let pid = driver["processID"].as_str().unwrap();
    assert_eq!(trace["processes"][pid]["serviceName"], "driver");

    // tag=key:value form, lookback and durations like Jaeger UI sends them.
    let (_, v) = get(&format!(
        "{}/api/traces?service=driver&tag=customer:123&lookback=1h&minDuration=10ms",
        s.base
    ))
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["traceID"], tid("f1")[16..]);
    let (_, v) = get(&format!(
        "{}/api/traces?service=frontend&lookback=1h&maxDuration=1s",
        s.base
    ))
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (st, v) = get(&format!("{}/api/traces?lookback=1h", s.base)).await;
    assert_eq!(st, 400);
    assert_eq!(v["errors"][0]["code"], 400);
    let (st, _) = get(&format!("{}/api/traces?service=x&minDuration=fast", s.base)).await;
    assert_eq!(st, 400);

    let (st, v) = get(&format!("{}/api/traces/{}", s.base, tid("f1"))).await;
    assert_eq!(st, 200);
    assert_eq!(v["data"][0]["spans"].as_array().unwrap().len(), 3);
    let (st, v) = get(&format!("{}/api/traces/{}", s.base, "cd".repeat(16))).await;
    assert_eq!(st, 404);
    assert_eq!(v["errors"][0]["code"], 404);

    let end_ms = now_ns() / MS;
    let (st, v) = get(&format!(
        "{}/api/dependencies?endTs={end_ms}&lookback=3600000",
        s.base
    ))
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["data"],
        serde_json::json!([{"parent": "frontend", "child": "driver", "callCount": 2}])
    );
}

#[tokio::test]
async fn bearer_token_stream_and_static_ui() {
    let ch = fresh_database().await;
    insert(&ch, &shop(now_ns() - MINUTE)).await;
    let ui = tempfile::tempdir().unwrap();
    std::fs::write(ui.path().join("index.html"), "<html>orrery ui</html>").unwrap();
    std::fs::write(ui.path().join("app_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let s = start(&ch, Some("s3cret"), ui.path().to_path_buf()).await;
    let http = reqwest::Client::new();

    let r = http
        .get(format!("{}/api/services", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{}/orrery/api/graph", s.base))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{}/api/services", s.base))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{}/orrery/api/health", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "health is public");

    // Static files are public; .wasm has its MIME type; unknown paths fall back to index.html.
    let r = http
        .get(format!("{}/app_bg.wasm", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/wasm");
    let r = http
        .get(format!("{}/services/checkout", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "<html>orrery ui</html>");
    let r = http
        .get(format!("{}/orrery/api/nope", s.base))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // A token in the URL is not accepted (it would end up in logs and history): the UI reads
    // the stream with fetch() and the header.
    let r = http
        .get(format!(
            "{}/orrery/api/graph/stream?since=5m&interval=1s&access_token=s3cret",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // SSE with the token in the header: first event is a graph.
    let mut r = http
        .get(format!(
            "{}/orrery/api/graph/stream?since=5m&interval=1s",
            s.base
        ))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut events = 0;
    while events < 2 && tokio::time::Instant::now() < deadline {
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        events = buf.matches("event: graph").count() + buf.matches("event: delta").count();
    }
    assert_eq!(events, 2, "a graph, then a delta one interval later: {buf}");
    assert!(
        buf.starts_with("event: graph\n"),
        "the full graph first: {buf}"
    );
    let data = buf.lines().find(|l| l.starts_with("data: ")).unwrap();
    let g: Value = serde_json::from_str(&data[6..]).unwrap();
    assert_eq!(g["edges"].as_array().unwrap().len(), 2);
    let r = http
        .get(format!("{}/orrery/api/graph/stream?interval=10ms", s.base))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// Whole answers are gzipped for a client that asks (and only then); streamed answers — the
/// trace by id, the live stream — go out as they are, so their first bytes are not held back
/// until the end by the encoder.
#[tokio::test]
async fn whole_answers_are_gzipped_streamed_ones_are_not() {
    use std::io::Read;
    let ch = fresh_database().await;
    insert(&ch, &shop(now_ns() - 2 * MINUTE)).await;
    let s = start(&ch, None, "/nonexistent/ui".into()).await;
    let http = reqwest::Client::new();
    let fetch = |path: &str, gzip: bool| {
        let mut r = http.get(format!("{}{path}", s.base));
        if gzip {
            r = r.header("accept-encoding", "gzip");
        }
        r.send()
    };

    for path in ["/orrery/api/graph?since=10m", "/api/services", "/metrics"] {
        let plain = fetch(path, false).await.unwrap();
        assert_eq!(plain.status(), 200, "{path}");
        assert!(
            plain.headers().get("content-encoding").is_none(),
            "{path}: not compressed for a client that did not ask"
        );
        let plain = plain.bytes().await.unwrap();
        let r = fetch(path, true).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-encoding"], "gzip", "{path}");
        let zipped = r.bytes().await.unwrap();
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_end(&mut text)
            .unwrap();
        if path.starts_with("/orrery/api/graph") {
            // The graph's window moves with the clock: compare what it says, not its bytes.
            let (a, b): (Value, Value) = (
                serde_json::from_slice(&plain).unwrap(),
                serde_json::from_slice(&text).unwrap(),
            );
            let calls = |g: &Value| -> Vec<(String, u64, u64)> {
                g["edges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        let m = &e["metrics"];
                        let n = |k: &str| m[k].as_u64().unwrap();
                        (e["id"].as_str().unwrap().into(), n("requests"), n("errors"))
                    })
                    .collect()
            };
            assert_eq!(calls(&a), calls(&b), "{path}");
            assert_eq!(calls(&a).len(), 2, "{a}");
        } else if path == "/api/services" {
            assert_eq!(plain, text, "{path}: the same answer, gzipped");
        } else {
            assert!(
                String::from_utf8_lossy(&text).contains("# TYPE"),
                "{path}: Prometheus text"
            );
        }
    }

    // The trace by id is streamed: never compressed, the JSON as it is.
    let r = fetch(&format!("/orrery/api/traces/{}", tid("f2")), true)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-encoding").is_none());
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["spans"].as_array().unwrap().len(), 3, "{t}");

    // The live stream (SSE) neither: its first event arrives while the stream stays open.
    let mut r = fetch("/orrery/api/graph/stream?since=5m&interval=1s", true)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-encoding").is_none());
    let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk())
        .await
        .expect("first event before the stream ends")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&chunk).starts_with("event: graph"));
}
