//! What the browser walk saw on the trace page: header, ruler, rows, minimap zoom and pan,
//! collapsing, span search, keyboard, statistics, the spans table, the view in the URL, events
//! and links, the flame graph, the trace graph, and accessibility.

use super::*;

/// Asserts the trace page's part of the walk's report `v`.
pub fn check(v: &serde_json::Value) {
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
    let colour_of = |svc: &str| colour_of(v, svc);
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
}
