//! The trace page and trace search against Jaeger UI's features (issue 19), in headless Chromium
//! on the real `orrery all-in-one` (embedded ClickHouse) fed over OTLP/HTTP JSON
//! (web/tests/traces.mjs walks the UI; this asserts what it saw).
//!
//! The trace: frontend `GET /checkout` 0–40 ms → `POST /orders` (client 2–36) → checkout
//! `POST /orders` 3–35 (error) → `SELECT orders` 5–15, `SELECT stock` 16–20, `publish order`
//! (producer 30–32) → mailer `consume order` 60–160 ms (a late consumer, long after the root
//! ended) → `send mail` 70–150. Eight spans, three services, six levels. The checkout span has
//! an `exception` event at 25 ms (with attributes); the consumer a `message received` event at
//! 61 ms and a link to the producing trace (`COMPARE_WITH`'s root span).

#[path = "web_traces/search_page.rs"]
mod search_page;
#[path = "web_traces/trace_page.rs"]
mod trace_page;
mod web_support;

use std::time::{SystemTime, UNIX_EPOCH};
use web_support::*;

const TRACE: &str = "000000000000000000000000007ace01";
const SPANS: usize = 8;
/// A trace of `topology()` that did not fail (frontend → checkout → payments).
const COMPARE_WITH: &str = "00000000000000000000000000abc001";

/// OTLP JSON of the trace above, started 30 s ago.
fn late_consumer_trace() -> String {
    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 30_000_000_000;
    let ms = 1_000_000u64;
    let span = |id: u64, parent: u64, name: &str, kind: u8, from: u64, to: u64, err: bool| {
        serde_json::json!({
            "traceId": TRACE, "spanId": format!("{id:016x}"),
            "parentSpanId": if parent == 0 { String::new() } else { format!("{parent:016x}") },
            "name": name, "kind": kind,
            "startTimeUnixNano": (t0 + from * ms).to_string(),
            "endTimeUnixNano": (t0 + to * ms).to_string(),
            "status": {"code": if err { 2 } else { 1 }},
        })
    };
    let service = |name: &str, spans: Vec<serde_json::Value>| {
        serde_json::json!({
            "resource": {"attributes": [attr("service.name", name)]},
            "scopeSpans": [{"scope": {"name": "web-traces"}, "spans": spans}],
        })
    };
    let mut checkout = span(3, 2, "POST /orders", 2, 3, 35, true);
    checkout["events"] = serde_json::json!([{
        "timeUnixNano": (t0 + 25 * ms).to_string(), "name": "exception",
        "attributes": [attr("exception.type", "TimeoutError"), attr("exception.message", "stock timed out")],
    }]);
    // A route with a space: found by find-in-trace and by a quoted logfmt search filter.
    checkout["attributes"] = serde_json::json!([
        attr("http.route", "/orders/{id} bulk"),
        attr("http.method", "POST"),
    ]);
    let mut consumer = span(7, 6, "consume order", 5, 60, 160, false);
    consumer["events"] = serde_json::json!([{
        "timeUnixNano": (t0 + 61 * ms).to_string(), "name": "message received", "attributes": [],
    }]);
    consumer["links"] = serde_json::json!([{
        "traceId": COMPARE_WITH, "spanId": "0000000000000011",
        "attributes": [attr("messaging.operation", "receive")],
    }]);
    serde_json::json!({"resourceSpans": [
        service("frontend", vec![
            span(1, 0, "GET /checkout", 2, 0, 40, false),
            span(2, 1, "POST /orders", 3, 2, 36, false),
        ]),
        service("checkout", vec![
            checkout,
            span(4, 3, "SELECT orders", 3, 5, 15, false),
            span(5, 3, "SELECT stock", 3, 16, 20, false),
            span(6, 3, "publish order", 4, 30, 32, false),
        ]),
        service("mailer", vec![
            consumer,
            span(8, 7, "send mail", 3, 70, 150, false),
        ]),
    ]})
    .to_string()
}

/// The colour the waterfall's legend gives `service`.
fn colour_of(v: &serde_json::Value, service: &str) -> String {
    v["legend"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["service"] == service)
        .map(|l| text(&l["colour"]))
        .unwrap_or_else(|| panic!("{service} in the legend"))
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

#[test]
fn the_trace_page_has_jaeger_uis_waterfall_features() {
    let data = tempfile::tempdir().unwrap();
    let (_orrery, base, otlp) = start_orrery(data.path());
    post_otlp(&otlp, &late_consumer_trace());
    // 30 more traces for the search page: frontend → checkout → payments, every third failing.
    post_otlp(&otlp, &topology(30, 0xabc000, "payments"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let last = format!("{:032x}", 0xabc000 + 29);
    while !curl(&[&format!("{base}/orrery/api/traces/{TRACE}")])
        .unwrap_or_default()
        .contains(&format!("\"span_count\":{SPANS}"))
        || !curl(&[&format!("{base}/orrery/api/traces/{last}")])
            .unwrap_or_default()
            .contains("\"span_count\":5")
    {
        assert!(std::time::Instant::now() < deadline, "traces not stored");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    std::fs::create_dir_all(root().join("docs/images")).unwrap();
    let v = browser(
        "traces",
        &base,
        &serde_json::json!({
            "trace": TRACE, "spans": SPANS, "search": true, "search_results": 31,
            "compare_with": COMPARE_WITH,
            "services": ["frontend", "checkout", "payments", "mailer"],
            "event_span": "0000000000000003", "link_span": "0000000000000007",
            "docs_images": root().join("docs/images"),
        }),
    );
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    assert_eq!(
        v["log"],
        serde_json::json!([]),
        "page errors or CSP violations"
    );

    trace_page::check(&v);
    search_page::check(&v);
}
