//! Big-trace bench in the browser: a 50,000-span trace is sent to the real all-in-one over
//! OTLP/HTTP JSON, then headless Chromium opens it in the waterfall and reports the time from
//! navigation to the first rows (fetch + parse + tree/critical path + render), the DOM row count
//! (virtualised: far fewer than 50,000) and per-step scroll times. Prints the figures (recorded
//! in docs/benchmarks.md); asserts the trace opened completely and scrolled, not a time limit.

mod web_support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use web_support::*;

const SPANS: usize = 50_000;

fn batch(trace: &str, from: usize, to: usize, t0: u64) -> String {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Deterministic shape independent of batching: span i's parent is a function of i.
    let spans: Vec<_> = (from..to)
        .map(|i| {
            let parent = if i == 0 {
                String::new()
            } else {
                let _ = next();
                format!("{:016x}", 1 + (i * 7919 % i.max(1)) as u64)
            };
            let start = t0 + (i as u64) * 1_000;
            serde_json::json!({
                "traceId": trace, "spanId": format!("{:016x}", i as u64 + 1), "parentSpanId": parent,
                "name": format!("op-{}", i % 41), "kind": 2,
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + 500_000 + (i as u64 % 97) * 10_000).to_string(),
                "status": {"code": if i % 101 == 0 { 2 } else { 1 }},
            })
        })
        .collect();
    let svc = format!("svc-{}", from / 2_500);
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}}]},
        "scopeSpans": [{"scope": {"name": "big-trace"}, "spans": spans}],
    }]})
    .to_string()
}

#[test]
fn a_fifty_thousand_span_trace_opens_and_scrolls() {
    let data = tempfile::tempdir().unwrap();
    let (_orrery, base, otlp) = start_orrery(data.path());
    let trace = "00000000000000000000000000b16b16";
    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 120_000_000_000;
    for from in (0..SPANS).step_by(2_500) {
        post_otlp(&otlp, &batch(trace, from, (from + 2_500).min(SPANS), t0));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let t = curl(&[&format!("{base}/orrery/api/traces/{trace}")]).unwrap_or_default();
        if t.contains(&format!("\"span_count\":{SPANS}")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the trace never had {SPANS} spans"
        );
        std::thread::sleep(Duration::from_millis(1000));
    }
    let v = browser(
        "bigtrace",
        &base,
        &serde_json::json!({ "trace": trace, "spans": SPANS }),
    );
    println!("big trace: {v}");
    assert_eq!(v["row_count"], SPANS as u64, "rows in the model");
    let dom = v["dom_rows"].as_u64().unwrap();
    assert!(dom > 0 && dom < 500, "virtualised: {dom} rows in the DOM");
    assert!(v["open_ms"].as_f64().unwrap() > 0.0);
    assert!(v["scroll_steps"].as_u64().unwrap() > 0);
    assert!(v["last_row_visible"].as_bool().unwrap(), "{v}");
}
