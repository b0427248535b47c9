//! What the browser walk saw on the search and compare pages: pickers, results with their
//! chips and duration bars, sorts, the scatter plot and its drag, compare, the custom range,
//! logfmt filters, and accessibility.

use super::*;

/// Asserts the search and compare pages' part of the walk's report `v`.
pub fn check(v: &serde_json::Value) {
    // The search page. Pickers: the window's services; checkout's operations with their kind.
    let services: Vec<String> = v["service_options"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    for want in ["", "frontend", "checkout", "payments", "mailer"] {
        assert!(services.iter().any(|s| s == want), "{want} in {services:?}");
    }
    let ops = v["checkout_operations"].as_array().unwrap();
    let op = |name: &str| {
        ops.iter()
            .find(|o| o["value"] == name)
            .unwrap_or_else(|| panic!("{name} in {ops:?}"))
    };
    for (name, kind) in [
        ("POST /orders", "server"),
        ("POST /pay", "client"),
        ("SELECT orders", "client"),
        ("publish order", "producer"),
    ] {
        let o = op(name);
        assert_eq!(text(&o["kind"]).to_lowercase(), kind, "{o}");
        assert_eq!(text(&o["text"]), format!("{name} ({kind})"));
    }
    assert!(
        !ops.iter().any(|o| o["value"] == "GET /checkout"),
        "only checkout's operations: {ops:?}"
    );
    // Results of frontend / GET /checkout: all 31 traces, each with its details.
    let url = text(&v["search_url"]);
    assert!(url.contains("service=frontend"), "{url}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 31, "{results:?}");
    assert_eq!(v["result_count"], "31 traces");
    let now_us = v["now_ms"].as_i64().unwrap() * 1000;
    for r in results {
        assert_eq!(r["title"], "frontend: GET /checkout");
        assert_eq!(r["shown_id"], r["id"]);
        assert_eq!(text(&r["id"]).len(), 32);
        let start = r["start_us"].as_i64().unwrap();
        assert!(now_us - start < 600_000_000 && now_us > start, "{r}");
        let ago = text(&r["ago"]);
        assert!(ago.ends_with("s ago") || ago.ends_with("m ago"), "{ago}");
        assert!(text(&r["started"]).starts_with("20"), "{r}");
    }
    let late = results.iter().find(|r| r["id"] == TRACE).unwrap();
    assert_eq!(late["errors"], 1);
    assert_eq!(late["error_text"], "1 error");
    // A chip per service with its span count, in the waterfall's colour.
    let chips: Vec<(String, u64, String)> = late["chips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                text(&c["service"]),
                c["spans"].as_u64().unwrap(),
                text(&c["colour"]),
            )
        })
        .collect();
    let mut got: Vec<(String, u64)> = chips.iter().map(|(s, n, _)| (s.clone(), *n)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("checkout".into(), 4),
            ("frontend".into(), 2),
            ("mailer".into(), 2)
        ]
    );
    for (svc, _, colour) in &chips {
        assert_eq!(colour, &colour_of(v, svc), "{svc}: the waterfall's colour");
    }
    // Duration bars relative to the longest (the 160 ms trace; the others are 40 ms).
    assert!((late["bar"].as_f64().unwrap() - 1.0).abs() < 0.02, "{late}");
    let other = results.iter().find(|r| r["id"] != TRACE).unwrap();
    assert!(
        (other["bar"].as_f64().unwrap() - 0.25).abs() < 0.02,
        "{other}"
    );
    let failed = results
        .iter()
        .filter(|r| r["errors"].as_u64().unwrap() > 0)
        .count();
    assert_eq!(failed, 11, "10 failed chains + the late trace");
    // Sorts.
    let ids = |k: &str| -> Vec<serde_json::Value> { v["sorted"][k].as_array().unwrap().clone() };
    assert_eq!(ids("longest")[0]["id"], TRACE);
    assert_eq!(ids("shortest").last().unwrap()["id"], TRACE);
    let errs: Vec<u64> = ids("errors")
        .iter()
        .map(|r| r["errors"].as_u64().unwrap())
        .collect();
    assert!(errs.windows(2).all(|w| w[0] >= w[1]), "{errs:?}");
    assert_eq!(errs[0], 5, "a failed chain: all five spans error");
    let starts: Vec<i64> = ids("recent")
        .iter()
        .map(|r| r["start_us"].as_i64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "{starts:?}");
    let durs: Vec<i64> = ids("shortest")
        .iter()
        .map(|r| r["duration_us"].as_i64().unwrap())
        .collect();
    assert!(durs.windows(2).all(|w| w[0] <= w[1]), "{durs:?}");
    // Enter on a focused result opens it.
    assert!(text(&v["opened_url"]).contains(&format!("trace={TRACE}")));
    assert_eq!(v["opened_rows"], SPANS);

    // The scatter plot: 31 dots, 11 red; the 160 ms trace highest (smallest y) and, with 8
    // spans, bigger than the 5-span ones; clicking it opens it.
    let dots = v["dots"].as_array().unwrap();
    assert_eq!(dots.len(), 31);
    assert_eq!(dots.iter().filter(|d| d["error"] == true).count(), 11);
    let late_dot = dots.iter().find(|d| d["id"] == TRACE).unwrap();
    let num = |d: &serde_json::Value, k: &str| d[k].as_f64().unwrap();
    for d in dots.iter().filter(|d| d["id"] != TRACE) {
        assert!(num(late_dot, "cy") < num(d, "cy"), "{late_dot} vs {d}");
        assert!(num(late_dot, "r") > num(d, "r"));
        // 10 s earlier: to the left of every other trace.
        assert!(num(late_dot, "cx") < num(d, "cx"));
    }
    assert_ne!(
        text(&dots.iter().find(|d| d["error"] == true).unwrap()["fill"]),
        text(&dots.iter().find(|d| d["error"] == false).unwrap()["fill"]),
        "errors are drawn in another colour"
    );
    assert!(text(&v["dot_opened_url"]).contains(&format!("trace={TRACE}")));
    // Dragging across the other traces makes that range the window: the late trace is out.
    assert_eq!(v["scatter_dragging"], 1);
    let narrowed_url = text(&v["narrowed_url"]);
    assert!(
        narrowed_url.contains("start=") && narrowed_url.contains("end="),
        "{narrowed_url}"
    );
    let narrowed = v["narrowed"].as_array().unwrap();
    assert!(!narrowed.is_empty() && narrowed.len() <= 30, "{narrowed:?}");
    assert!(!narrowed.iter().any(|id| id == TRACE), "{narrowed:?}");

    // Compare: the late-consumer trace (A) against a frontend → checkout → payments one (B),
    // merged by path: the shared chain is the same, A's SELECTs, producer and mailer spans are
    // removed, B's payment calls added.
    assert_eq!(v["compare_disabled_before"], true);
    assert!(
        !text(&v["compare_stayed"]).contains("view=trace&"),
        "a tick does not open"
    );
    let curl_ = text(&v["compare_url"]);
    assert!(
        curl_.contains("view=compare")
            && curl_.contains(&format!("trace={TRACE}"))
            && curl_.contains(&format!("compare={COMPARE_WITH}")),
        "{curl_}"
    );
    let got: Vec<(String, String, String, u64, u64)> = v["compare_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                text(&r["service"]),
                text(&r["operation"]),
                text(&r["change"]),
                r["a"].as_u64().unwrap(),
                r["b"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("frontend", "GET /checkout", "same", 1, 1),
        ("frontend", "POST /orders", "same", 1, 1),
        ("checkout", "POST /orders", "same", 1, 1),
        ("checkout", "SELECT orders", "removed", 1, 0),
        ("checkout", "SELECT stock", "removed", 1, 0),
        ("checkout", "publish order", "removed", 1, 0),
        ("mailer", "consume order", "removed", 1, 0),
        ("mailer", "send mail", "removed", 1, 0),
        ("checkout", "POST /pay", "added", 0, 1),
        ("payments", "POST /pay", "added", 0, 1),
    ];
    let want: Vec<(String, String, String, u64, u64)> = want
        .iter()
        .map(|(s, o, c, a, b)| (s.to_string(), o.to_string(), c.to_string(), *a, *b))
        .collect();
    assert_eq!(got, want);
    assert!(text(&v["compare_summary"]).starts_with("2 added · 5 removed · 0 slower"));

    // The drag on the plot filled the form's custom range.
    let nf = &v["narrowed_form"];
    assert_eq!(nf["lookback"], "custom", "{nf}");
    assert!(
        text(&nf["from"]).len() >= 16 && text(&nf["to"]) > text(&nf["from"]),
        "{nf}"
    );
    // A typed custom range: an end before the start is refused without searching…
    assert!(
        !text(&v["custom_prefilled"]).is_empty(),
        "custom starts from the lookback"
    );
    let bad = &v["custom_bad"];
    assert!(text(&bad["error"]).contains("after its start"), "{bad}");
    assert!(!text(&bad["url"]).contains("start="), "{bad}");
    // …a valid one is the window (in the URL) and leaves out the trace that started before it.
    let custom = &v["custom"];
    assert!(custom["error"].is_null(), "{custom}");
    let cu = text(&custom["url"]);
    assert!(cu.contains("start=") && cu.contains("end="), "{cu}");
    let ids = custom["results"].as_array().unwrap();
    assert_eq!(ids.len(), 30, "{custom}");
    assert!(!ids.iter().any(|id| id == TRACE));

    // logfmt filters with a quoted value holding a space, as Jaeger takes them: only the trace
    // whose span has both attributes; the value's first word alone is another value; an
    // unclosed quote is refused with a message and no search.
    let lq = &v["logfmt_quoted"];
    assert_eq!(lq["results"], serde_json::json!([TRACE]), "{lq}");
    assert!(lq["error"].is_null(), "{lq}");
    let last = text(lq["requests"].as_array().unwrap().last().unwrap());
    assert!(
        last.contains("attr=http.route%3D%2Forders%2F%7Bid%7D%20bulk")
            && last.contains("attr=http.method%3DPOST"),
        "{last}"
    );
    let lw = &v["logfmt_first_word"];
    assert!(
        !lw["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| id == TRACE),
        "{lw}"
    );
    let lu = &v["logfmt_unclosed"];
    assert!(text(&lu["error"]).contains("quote"), "{lu}");
    assert!(
        !lu["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| text(r).contains("attr=")),
        "no search with the filter: {lu}"
    );
    // Accessibility of the search (with results, the custom range, an attribute error) and
    // compare pages.
    for k in [
        "a11y_search",
        "a11y_search_custom",
        "a11y_search_attr_error",
        "a11y_compare",
    ] {
        assert_eq!(v[k], serde_json::json!([]), "{k}");
    }
    for k in ["unreachable_search", "unreachable_compare"] {
        assert_eq!(
            v[k],
            serde_json::json!([]),
            "{k}: controls Tab never reached"
        );
    }
}
