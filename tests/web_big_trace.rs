//! A 50,000-span trace sent to the real all-in-one over OTLP/HTTP JSON opens completely in the
//! waterfall in headless Chromium: every span is a row of the model, the DOM holds only a
//! virtualised slice, and scrolling reaches the last row. The first rows are drawn from the first
//! bytes of the 18 MB answer while the rest downloads, and are the same rows the whole trace
//! then shows at the top. Timing is benches/big_trace.rs's job (release build); this prints the
//! figures of the debug build for information only.

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
    let first = v["phases"].as_str().unwrap_or_default();
    assert!(
        first.contains(" · first ") && first.contains(" rows"),
        "the first rows came before the whole answer: {first}"
    );
    assert!(
        v["complete"].as_str().is_some_and(|c| c.contains("parse")),
        "{v}"
    );
    let rows = v["first_rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{v}");
    assert_eq!(
        v["first_rows"], v["complete_first_rows"],
        "the same first rows"
    );
    let dom = v["dom_rows"].as_u64().unwrap();
    assert!(dom > 0 && dom < 500, "virtualised: {dom} rows in the DOM");
    assert!(v["scroll_steps"].as_u64().unwrap() > 0);
    assert!(v["last_row_visible"].as_bool().unwrap(), "{v}");
}
