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

    // Header: the duration is the late consumer's end, not the root's 40 ms.
    let h = &v["header"];
    assert_eq!(h["duration_us"], 160_000, "{h}");
    assert_eq!(
        (&h["services"], &h["depth"], &h["spans"], &h["errors"]),
        (
            &serde_json::json!(3),
            &serde_json::json!(6),
            &serde_json::json!(8),
            &serde_json::json!(1)
        )
    );
    assert!(text(&h["text"]).contains("160.0ms"), "{h}");

    // Ruler: ticks on a nice step (50 ms for 160 ms) from 0 across the whole trace.
    let ticks: Vec<String> = v["ticks"].as_array().unwrap().iter().map(text).collect();
    assert_eq!(ticks, ["0", "50ms", "100ms", "150ms"]);

    // Rows: a duration beside every bar; one colour per service, the legend's.
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), SPANS);
    let legend = v["legend"].as_array().unwrap();
    assert_eq!(legend.len(), 3, "{legend:?}");
    let colour_of = |svc: &str| {
        legend
            .iter()
            .find(|l| l["service"] == svc)
            .map(|l| text(&l["colour"]))
            .unwrap()
    };
    for r in rows {
        assert_eq!(text(&r["colour"]), colour_of(&text(&r["service"])), "{r}");
        assert!(!text(&r["duration"]).is_empty(), "{r}");
    }
    let mut colours: Vec<String> = legend.iter().map(|l| text(&l["colour"])).collect();
    colours.dedup();
    colours.sort();
    colours.dedup();
    assert_eq!(colours.len(), 3, "distinct service colours: {legend:?}");
    let row = |name: &str| {
        rows.iter()
            .find(|r| text(&r["name"]).contains(name))
            .unwrap_or_else(|| panic!("{name} in {rows:?}"))
    };
    assert_eq!(text(&row("consume order")["duration"]), "100.0ms");
    // The late consumer ends at the right edge of the timeline (not clipped, not beyond)…
    let consumer_right = row("consume order")["bar_right"].as_f64().unwrap();
    assert!((consumer_right - 1.0).abs() < 0.01, "{consumer_right}");
    // …and the root covers its quarter of it.
    let root_right = row("GET /checkout")["bar_right"].as_f64().unwrap();
    assert!((root_right - 0.25).abs() < 0.01, "{root_right}");
    assert!(row("POST /orders")["error"] == true || rows.iter().any(|r| r["error"] == true));

    // Minimap: drawn; a drag from 60 ms past the end zooms to 60–160 ms: the ruler follows, the
    // root (0–40 ms) leaves the view, the consumer (60–160 ms) fills it; reset restores.
    assert_eq!(v["minimap_drawn"], true);
    assert_eq!(
        v["minimap_dragging"], 1,
        "the selection shows while dragging"
    );
    assert_eq!(v["zoom"], "0.3750,1.0000");
    let zt: Vec<String> = v["zoom_ticks"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(zt, ["60ms", "80ms", "100ms", "120ms", "140ms", "160ms"]);
    let zrow = |name: &str| {
        v["zoom_rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| text(&r["name"]).contains(name))
            .unwrap()
            .clone()
    };
    assert!(zrow("GET /checkout")["bar_right"].as_f64().unwrap() <= 0.0);
    let c = zrow("consume order");
    assert!(c["bar_left"].as_f64().unwrap().abs() < 0.01, "{c}");
    assert!((c["bar_right"].as_f64().unwrap() - 1.0).abs() < 0.01, "{c}");
    // Dragging the shown range pans it (no new selection): 0.375–1 dragged by −0.3, then held
    // at the trace's start when dragged past it; the ruler follows.
    assert_eq!(
        v["pan_window"],
        serde_json::json!(["grab"]),
        "{}",
        v["pan_window"]
    );
    assert_eq!(v["panning_selects"], 0, "a pan is not a new selection");
    // (Fractions of the track from mouse pixels: within half a percent.)
    let range =
        |k: &str| -> Vec<f64> { text(&v[k]).split(',').map(|x| x.parse().unwrap()).collect() };
    let near = |k: &str, want: [f64; 2]| {
        let got = range(k);
        assert!(
            got.len() == 2 && (got[0] - want[0]).abs() < 0.005 && (got[1] - want[1]).abs() < 0.005,
            "{k}: {got:?} vs {want:?}"
        );
    };
    near("pan_zoom", [0.075, 0.7]);
    assert_ne!(v["pan_ticks"], v["zoom_ticks"]);
    assert!(!v["pan_ticks"].as_array().unwrap().is_empty());
    near("pan_held", [0.0, 0.625]);
    assert_eq!(range("pan_held")[0], 0.0, "held at the start");
    assert_eq!(v["unzoom"], "0.0000,1.0000");
    assert_eq!(v["unzoom_ticks"], v["ticks"]);

    // Collapse all: one row, whose badge counts its 1 child and 7 spans below.
    assert_eq!(v["collapsed_rows"], 1);
    assert_eq!(v["collapsed_badge"]["children"], 1);
    assert_eq!(v["collapsed_badge"]["below"], 7);
    assert_eq!(v["expanded_rows"], SPANS);
    // Three levels: root, client, checkout server (3 children, collapsed).
    assert_eq!(v["level3_rows"], 3);
    assert_eq!(v["level3_badges"], serde_json::json!([1, 1, 3]));

    // Span search.
    assert_eq!(v["slash_focus"], "span-search", "/ focuses the search");
    assert_eq!(v["search_matches"]["n"], 2);
    let hl: Vec<String> = v["search_highlighted"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(hl.len(), 2, "{hl:?}");
    assert!(hl.iter().all(|t| t.contains("SELECT")), "{hl:?}");
    assert!(text(&v["search_enter"][0]).contains("SELECT orders"), "{v}");
    assert!(text(&v["search_enter2"][0]).contains("SELECT stock"), "{v}");
    assert_eq!(v["search_count_text"], "2 of 2 matches");
    // A match inside a collapsed subtree: its ancestors open, the rest stays collapsed.
    assert_eq!(v["hidden_match"]["rows"], 6, "{}", v["hidden_match"]);
    assert!(text(&v["hidden_match"]["selected"][0]).contains("SELECT stock"));
    // Find also matches attribute keys and values (span and event attributes), and says so.
    let checkout_span = serde_json::json!(["0000000000000003"]);
    for k in ["find_attr_value", "find_event_attr", "find_attr_pair"] {
        assert_eq!(v[k]["n"], 1, "{k}: {}", v[k]);
        assert_eq!(v[k]["rows"], checkout_span, "{k}: {}", v[k]);
    }
    assert_eq!(v["find_nothing"]["n"], 0);
    assert!(
        text(&v["find_hint"]).contains("attribute"),
        "{}",
        v["find_hint"]
    );

    // Keyboard: j, j, j → the checkout server span; Enter collapses it; Enter expands; k up.
    assert!(
        text(&v["key_j1"]).contains("GET /checkout"),
        "{}",
        v["key_j1"]
    );
    assert!(text(&v["key_j3"]).contains("checkout"), "{}", v["key_j3"]);
    assert!(text(&v["key_j3"]).contains("POST /orders"));
    assert_eq!(v["key_enter_rows"], 3);
    assert_eq!(v["key_enter2_rows"], SPANS);
    assert!(text(&v["key_k"]).contains("frontend"), "{}", v["key_k"]);
    assert!(text(&v["detail_open"]).contains("frontend: POST /orders"));

    // Statistics: per service/operation count, total and self time (children subtracted).
    let stats = v["stats"].as_array().unwrap();
    let stat = |svc: &str, op: &str| {
        stats
            .iter()
            .find(|r| r["service"] == svc && r["operation"] == op)
            .unwrap_or_else(|| panic!("{svc}/{op} in {stats:?}"))
    };
    let cs = stat("checkout", "POST /orders");
    assert_eq!((&cs["count"], &cs["errors"]), (&1.into(), &1.into()));
    assert_eq!(cs["total_us"], 32_000);
    // 32 ms minus the SELECTs (10 + 4) and the producer (2).
    assert_eq!(cs["self_us"], 16_000);
    assert_eq!(stat("frontend", "GET /checkout")["self_us"], 6_000);
    assert_eq!(stat("mailer", "consume order")["self_us"], 20_000);
    assert_eq!(stat("checkout", "SELECT orders")["self_us"], 10_000);
    assert_eq!(
        stats.len(),
        8,
        "one row per service and operation (POST /orders twice)"
    );
    assert_eq!(
        stats[0]["operation"], "consume order",
        "biggest total first"
    );
    // Spans table: all 8, longest first (the 100 ms consumer), then by start (the root first);
    // picking "send mail" selects it in the timeline.
    let by_dur: Vec<i64> = v["spans_by_duration"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["duration_us"].as_i64().unwrap())
        .collect();
    assert_eq!(
        by_dur,
        [
            100_000, 80_000, 40_000, 34_000, 32_000, 10_000, 4_000, 2_000
        ]
    );
    let by_start = v["spans_by_start"].as_array().unwrap();
    assert_eq!(by_start.len(), SPANS);
    assert!(text(&by_start[0]["text"]).contains("GET /checkout"));
    assert!(text(&by_start[7]["text"]).contains("send mail"));
    assert!(
        text(&v["spans_pick"][0]).contains("send mail"),
        "{}",
        v["spans_pick"]
    );
    assert_eq!(v["back_to_timeline_rows"], SPANS);
    // The chosen view is in the URL; a reload, back and back after forward keep it.
    for k in [
        "view_url",
        "view_reloaded",
        "view_back",
        "view_back_forward",
    ] {
        let w = &v[k];
        assert!(text(&w["url"]).contains("tab=flame"), "{k}: {w}");
        assert_eq!(w["pressed"], serde_json::json!(["tab-flame"]), "{k}: {w}");
        assert!(w["flame"].as_u64().unwrap() > 0, "{k}: {w}");
        assert_eq!(w["rows"], 0, "{k}: the timeline is not shown: {w}");
    }
    assert!(
        !text(&v["view_timeline_url"]).contains("tab="),
        "{}",
        v["view_timeline_url"]
    );

    // Events on the bars: the exception at 25 ms of 160, the message at 61 ms.
    let marks = v["event_marks"].as_array().unwrap();
    assert_eq!(marks.len(), 2, "{marks:?}");
    let mark = |name: &str| marks.iter().find(|m| m["name"] == name).unwrap();
    assert_eq!(mark("exception")["span"], "0000000000000003");
    assert!((mark("exception")["at"].as_f64().unwrap() - 25.0 / 160.0).abs() < 0.01);
    assert!(
        text(&mark("exception")["title"]).contains("+22.0ms"),
        "{marks:?}"
    );
    assert_eq!(mark("message received")["span"], "0000000000000007");
    assert!((mark("message received")["at"].as_f64().unwrap() - 61.0 / 160.0).abs() < 0.01);
    // Their attributes in the span detail; the consumer's link.
    let d = &v["detail_error_span"];
    assert!(text(&d["title"]).contains("checkout: POST /orders"), "{d}");
    assert_eq!(d["events"][0]["name"], "exception");
    let attrs = d["events"][0]["attrs"].to_string();
    assert!(
        attrs.contains(r#"["exception.type","TimeoutError"]"#)
            && attrs.contains(r#"["exception.message","stock timed out"]"#),
        "{attrs}"
    );
    let c = &v["detail_consumer"];
    assert_eq!(c["events"][0]["name"], "message received");
    assert_eq!(c["links"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(c["links"][0]["trace"], COMPARE_WITH);
    assert!(text(&c["links"][0]["href"]).contains(COMPARE_WITH));
    // The link opens the linked trace (its five spans); Back returns.
    assert!(text(&v["link_url"]).contains(&format!("trace={COMPARE_WITH}")));
    assert_eq!(v["link_header"]["spans"], 5, "{}", v["link_header"]);
    assert_eq!(v["back_rows"], SPANS);

    // Flame graph: one frame per path (8 here), the root full width; widths are the time in
    // and below a frame: the root 140 ms of self time in all (the 160 ms trace minus the
    // 20 ms gap between the producer and the late consumer), send mail 80 of it.
    let flame = v["flame"].as_array().unwrap();
    assert_eq!(flame.len(), SPANS, "{flame:?}");
    let frame = |fr: &[serde_json::Value], op: &str, svc: &str| {
        fr.iter()
            .find(|f| f["operation"] == op && f["service"] == svc)
            .unwrap_or_else(|| panic!("{svc} {op} in {fr:?}"))
            .clone()
    };
    let root = frame(flame, "GET /checkout", "frontend");
    assert_eq!(
        (root["w"].as_f64(), root["depth"].as_u64()),
        (Some(1.0), Some(0))
    );
    assert_eq!(root["total_us"], 140_000);
    let mail = frame(flame, "send mail", "mailer");
    assert!(
        (mail["w"].as_f64().unwrap() - 80.0 / 140.0).abs() < 1e-3,
        "{mail}"
    );
    assert!(
        (mail["px_w"].as_f64().unwrap() - 80.0 / 140.0).abs() < 0.01,
        "{mail}"
    );
    assert_eq!(mail["depth"], 6 - 1);
    assert_eq!(
        mail["colour"],
        colour_of("mailer"),
        "frames in the service colour"
    );
    // Clicking the consumer zooms to it: it fills the width, its ancestors above it too, the
    // SELECTs (not below it) leave; its span's detail opens.
    let z = v["flame_zoomed"].as_array().unwrap();
    let consume = frame(z, "consume order", "mailer");
    assert_eq!(
        (consume["x"].as_f64(), consume["w"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    assert_eq!(
        frame(z, "GET /checkout", "frontend")["w"].as_f64(),
        Some(1.0)
    );
    assert!(
        !z.iter().any(|f| f["operation"] == "SELECT orders"),
        "{z:?}"
    );
    assert_eq!(z.len(), 6, "4 ancestors, the consumer, send mail: {z:?}");
    assert!(text(&v["flame_zoom_detail"]).contains("mailer: consume order"));
    assert_eq!(v["flame_reset"], SPANS);

    // Graph by service: three nodes, a call each way down the chain, in layers; by operation:
    // one node per operation (8) and the 7 parent → child calls.
    let gs = &v["graph_services"];
    let keys: Vec<(String, u64)> = gs["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (text(&n["key"]), n["layer"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            ("frontend".to_string(), 0),
            ("checkout".to_string(), 1),
            ("mailer".to_string(), 2)
        ]
    );
    assert_eq!(
        gs["edges"],
        serde_json::json!([
            {"from": "frontend", "to": "checkout", "calls": 1},
            {"from": "checkout", "to": "mailer", "calls": 1}
        ])
    );
    assert_eq!(
        gs["table"],
        serde_json::json!([["frontend", "checkout", "1"], ["checkout", "mailer", "1"]])
    );
    assert!(
        gs["nodes"][1]["error"] == true,
        "checkout has the failed span"
    );
    let go = &v["graph_operations"];
    assert_eq!(go["nodes"].as_array().unwrap().len(), SPANS);
    assert_eq!(go["edges"].as_array().unwrap().len(), SPANS - 1);
    assert!(
        go["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["from"] == "checkout publish order" && e["to"] == "mailer consume order"),
        "{go}"
    );

    // Accessibility: no serious or critical axe violations on the trace page (timeline with a
    // span open, flame graph, graph); Tab reaches every control.
    for k in ["a11y_trace", "a11y_flame", "a11y_graph"] {
        assert_eq!(v[k], serde_json::json!([]), "{k}");
    }
    // (The checks themselves catch a nameless button and one that Tab skips.)
    assert!(
        v["a11y_probe"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "button-name"),
        "{}",
        v["a11y_probe"]
    );
    let probe = v["unreachable_probe"].as_array().unwrap();
    assert!(probe.iter().any(|x| x == "kbd probe"), "{probe:?}");
    assert!(
        probe.iter().all(|x| x == "kbd probe" || x == ""),
        "{probe:?}"
    );
    for k in ["unreachable_trace", "unreachable_flame"] {
        assert_eq!(
            v[k],
            serde_json::json!([]),
            "{k}: controls Tab never reached"
        );
    }

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
        assert_eq!(colour, &colour_of(svc), "{svc}: the waterfall's colour");
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
