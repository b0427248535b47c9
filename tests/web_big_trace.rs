//! A 50,000-span trace sent to the real all-in-one over OTLP/HTTP JSON opens completely in the
//! waterfall in headless Chromium: every span is a row of the model, the DOM holds only a
//! virtualised slice, and scrolling reaches the last row. Timing is benches/big_trace.rs's job
//! (release build); this prints the figures of the debug build for information only.

mod web_support;

use web_support::*;

#[test]
fn a_fifty_thousand_span_trace_opens_and_scrolls() {
    let data = tempfile::tempdir().unwrap();
    let (_orrery, base, otlp) = start_orrery(data.path());
    let trace = load_big_trace(&base, &otlp, BIG_TRACE_SPANS);
    let v = open_big_trace(&base, &trace, BIG_TRACE_SPANS);
    println!("big trace (debug build): {v}");
    assert_eq!(v["row_count"], BIG_TRACE_SPANS as u64, "rows in the model");
    let dom = v["dom_rows"].as_u64().unwrap();
    assert!(dom > 0 && dom < 500, "virtualised: {dom} rows in the DOM");
    assert!(v["scroll_steps"].as_u64().unwrap() > 0);
    assert!(v["last_row_visible"].as_bool().unwrap(), "{v}");
}
