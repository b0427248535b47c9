//! Browser end to end: the real `orrery all-in-one` (embedded ClickHouse, collector, query API
//! serving web/dist) is fed a known topology over OTLP/HTTP JSON, and headless Chromium walks
//! the UI (web/tests/e2e.mjs): the map shows the right services and edges, hover shows metrics,
//! double-click drills down and Escape comes back, the red edge lists its error traces, a trace
//! opens as a waterfall, the URL reproduces the view, trace search marks errors. Screenshots
//! land in artifacts/web/. Needs scripts/build-web.sh and scripts/install.sh (the test command
//! runs both).

mod web_support;

use std::time::{SystemTime, UNIX_EPOCH};
use web_support::checks::*;
use web_support::*;

/// The empty map tells how to send spans, with this instance's real collector addresses, and
/// the "?" help overlay opens (key, button) and closes (Escape) — web/tests/map_ux.mjs `empty`.
fn empty_install_says_how_to_send_spans(base: &str, otlp: &str) {
    let v = browser(
        "empty",
        base,
        &serde_json::json!({ "docs_images": docs_images() }),
    );
    let lines = v["lines"].as_str().unwrap();
    let http = otlp.trim_end_matches("/v1/traces");
    assert!(
        lines.contains(&format!("OTEL_EXPORTER_OTLP_ENDPOINT={http}")),
        "{lines}"
    );
    // The gRPC line names the collector's real (random) gRPC port: something listens there.
    let grpc = lines
        .lines()
        .filter_map(|l| l.strip_prefix("export OTEL_EXPORTER_OTLP_ENDPOINT="))
        .find(|u| *u != http)
        .expect("a gRPC endpoint line");
    let addr = grpc.trim_start_matches("http://");
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":4317"),
        "{grpc}"
    );
    std::net::TcpStream::connect(addr).expect("the gRPC endpoint shown is the collector's");
    assert!(
        lines.contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"),
        "{lines}"
    );
    assert!(
        v["demo_line"]
            .as_str()
            .unwrap()
            .contains(&format!("--demo-otlp-endpoint {grpc}")),
        "{v}"
    );
    assert!(
        v["docs_href"].as_str().unwrap().starts_with("https://"),
        "{v}"
    );
    assert_accessible("empty map", &v["empty_a11y"]);
    assert_accessible("help overlay", &v["help_a11y"]);
    for (state, shown) in [
        ("help_by_key", true),
        ("help_after_escape", false),
        ("help_by_button", true),
    ] {
        assert_eq!(v[state]["shown"], shown, "{state}: {v}");
        assert_eq!(v[state]["expanded"], shown.to_string(), "{state}: {v}");
    }
    assert_eq!(
        v["help_by_key"]["focus"], "help-close",
        "focus moves into the dialog"
    );
    // A real modal (<dialog> opened with showModal): the page behind is inert, focus stays in.
    assert_eq!(v["help_modal"]["tag"], "DIALOG", "{v}");
    assert_eq!(v["help_modal"]["modal"], true, "{v}");
    let tabs = v["help_tabs"].as_array().unwrap();
    assert_eq!(tabs.len(), 4);
    for t in tabs {
        assert_eq!(t["in_dialog"], true, "Tab left the dialog: {v}");
        assert_eq!(t["id"], "help-close", "{v}");
    }
    for behind in v["help_behind"].as_array().unwrap() {
        assert_eq!(behind["found"], true, "{behind}");
        assert_eq!(
            behind["focused"], false,
            "behind the dialog took focus: {behind}"
        );
    }
    assert_accessible("page with the help open", &v["help_a11y_page"]);
    assert_eq!(
        v["help_after_escape"]["focus"], "help-button",
        "and back to its button"
    );
    let help = v["help_text"].as_str().unwrap();
    for control in [
        "double-click",
        "Esc",
        "drag a node",
        "wheel",
        "Shift+Enter",
        "?",
    ] {
        assert!(help.contains(control), "{control} in {help}");
    }
    // Escape closed the overlay only: the map stayed at the region level.
    assert!(
        v["url_after_escape"]
            .as_str()
            .unwrap()
            .contains("level=region"),
        "{v}"
    );
    // "?" typed into a text field is a character, not a command.
    assert_eq!(v["typed"]["value"], "a?b");
    assert_eq!(v["typed"]["help"], false);
    assert_clean_log(&v);
}

/// `(id, health)` of the map's edge (or node) list the browser reported.
fn id_health(list: &serde_json::Value) -> Vec<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["health"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// One all-in-one and one Chromium at a time (2 cores): the tests of this file take turns.
/// (The demo at first sight is its own test binary, web_first_sight.rs; cargo runs test
/// binaries one after another.)
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_map_and_trace_views_work_against_the_real_binary() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let (_orrery, base, otlp) = start_orrery(data.path());
    // Before any span: the empty install's onboarding and the help overlay.
    empty_install_says_how_to_send_spans(&base, &otlp);
    // When the first trace starts (topology() places it 20 s ago): replay's data minute.
    let data_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 20_000;
    post_otlp(&otlp, &topology(30, 0xabc000, "payments"));
    // Wait until the API's graph has the topology (ingest is batched).
    wait_for_graph(&base, None, &["checkout->payments"]);

    let opts = serde_json::json!({
        "nodes": ["INTERNET", "frontend", "checkout", "payments"],
        "red_edge": "checkout->payments",
        "edges": ["INTERNET->frontend", "frontend->checkout", "checkout->payments"],
        "data_ms": data_ms,
        "otlp": otlp,
        "live_body": topology(10, 0xdef000, "fraud"),
        "early_urls": EARLY_STREAM_URLS,
    });
    let v = browser("e2e", &base, &opts);

    let strs = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect()
    };
    let mut nodes = strs(&v["map_nodes"]);
    nodes.sort();
    assert_eq!(nodes, ["INTERNET", "checkout", "frontend", "payments"]);
    assert_eq!(v["renderer"], "webgl2");
    let edges = id_health(&v["map_edges"]);
    for want in [
        "INTERNET->frontend",
        "frontend->checkout",
        "checkout->payments",
    ] {
        assert!(
            edges.iter().any(|(id, _)| id == want),
            "{want} in {edges:?}"
        );
    }
    let red = v["map_edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "checkout->payments")
        .unwrap();
    let rate = red["error_rate"].as_f64().unwrap();
    assert!((rate - 10.0 / 30.0).abs() < 0.02, "error rate {rate}");
    assert_eq!(red["health"], "danger");
    assert!(
        v["hover"].as_str().unwrap().contains("checkout"),
        "{}",
        v["hover"]
    );
    assert!(v["hover"].as_str().unwrap().contains("p99"));
    assert_eq!(v["focused"], "checkout");
    assert!(
        v["focused_url"]
            .as_str()
            .unwrap()
            .contains("focus=checkout")
    );
    let focused = strs(&v["focused_nodes"]);
    for want in ["checkout", "frontend", "payments"] {
        assert!(focused.iter().any(|n| n == want), "{want} in {focused:?}");
    }
    assert!(!v["after_escape_url"].as_str().unwrap().contains("focus="));
    let failed = strs(&v["error_traces"]);
    assert!(!failed.is_empty());
    for id in &failed {
        let i = u64::from_str_radix(id, 16).unwrap() - 0xabc000;
        assert_eq!(i % 3, 0, "trace {id} did not fail");
    }
    assert!(v["trace_url"].as_str().unwrap().contains("view=trace"));
    let rows = v["waterfall"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(
        rows.iter().all(|r| r["critical"] == true),
        "a chain is all critical"
    );
    assert!(rows.iter().any(|r| r["error"] == true));
    assert!(v["span_detail"].as_str().unwrap().contains("card declined"));
    assert_eq!(v["reloaded_rows"], 5);
    let results = v["search_results"].as_array().unwrap();
    assert!(results.len() >= 10, "{results:?}");
    assert!(results.iter().any(|r| r["error"] == true));
    assert!(results.iter().any(|r| r["error"] == false));
    let mut added = strs(&v["diff_added"]);
    added.sort();
    assert_eq!(
        added,
        [
            "INTERNET->frontend",
            "checkout->payments",
            "frontend->checkout"
        ]
    );
    // Diff mode draws the new edges (green) on the map too.
    let drawn = v["diff_drawn"].as_array().unwrap();
    assert_eq!(drawn.len(), 3, "{drawn:?}");
    assert!(drawn.iter().all(|e| e["health"] == "added"), "{drawn:?}");
    // ...and never drew them otherwise on the way: not before its diff (the stream's first
    // graph can come first), not at a live tick after it.
    assert_eq!(strs(&v["diff_states_seen"]), ["added"]);
    // A window after the traffic: every edge vanished, drawn as such, nodes kept (vanished).
    let mut vanished = id_health(&v["vanished_edges"]);
    vanished.sort();
    assert_eq!(
        vanished,
        [
            ("INTERNET->frontend".to_string(), "vanished".to_string()),
            ("checkout->payments".into(), "vanished".into()),
            ("frontend->checkout".into(), "vanished".into()),
        ]
    );
    let mut gone: Vec<String> = v["vanished_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(n["health"], "vanished", "{n}");
            n["id"].as_str().unwrap().to_string()
        })
        .collect();
    gone.sort();
    assert_eq!(gone, ["INTERNET", "checkout", "frontend", "payments"]);
    assert_eq!(strs(&v["vanished_listed"]).len(), 3);

    // Node panel: checkout served 30 calls of ~32 ms: one bar per populated doubling of the
    // latency (here only (16.8, 33.6] ms) and the overflow bar.
    let hist = v["node_histogram"].as_array().unwrap();
    assert_eq!(hist.len(), 2, "{hist:?}");
    let total: u64 = hist.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 30, "{hist:?}");
    let bucket = hist.iter().find(|b| b["le"] == "≤33.6ms").unwrap();
    assert_eq!(bucket["count"], 30, "{hist:?}");
    assert!(
        strs(&v["node_operations"])
            .iter()
            .any(|o| o == "POST /orders")
    );

    // Trace → map: the payments span links to the checkout → payments call, selected, panel open.
    assert!(
        v["link_label"]
            .as_str()
            .unwrap()
            .contains("checkout → payments")
    );
    for link in [&v["link"], &v["link_reloaded"]] {
        let url = link["url"].as_str().unwrap();
        assert!(url.contains("edge=checkout-%3Epayments"), "{url}");
        assert!(url.contains("focus=payments"), "{url}");
        assert_eq!(link["panel"], "checkout → payments");
        assert_eq!(strs(&link["selected"]), ["checkout->payments"]);
        assert_eq!(link["level"], "focused");
    }

    // Replay: the data minute shows the services; the scrubber moves to an empty minute; played
    // at 16× it steps through every minute once, the map following, and stops at the end.
    let r = &v["replay"];
    let (first, data_min) = (r["first"].as_i64().unwrap(), r["data"].as_i64().unwrap());
    assert_eq!(r["state"]["position"], data_min);
    assert_eq!(r["state"]["frames"], 5);
    assert!(
        r["url"]
            .as_str()
            .unwrap()
            .contains(&format!("replay={data_min}"))
    );
    let mut replayed = strs(&r["nodes"]);
    replayed.sort();
    assert_eq!(replayed, ["INTERNET", "checkout", "frontend", "payments"]);
    assert_eq!(r["scrubbed"]["state"]["position"], first);
    assert!(
        r["scrubbed"]["url"]
            .as_str()
            .unwrap()
            .contains(&format!("replay={first}"))
    );
    assert!(
        r["scrubbed"]["status"]
            .as_str()
            .unwrap()
            .contains("No traffic in this minute")
    );
    let frames: Vec<(i64, u64)> = r["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["position"].as_i64().unwrap(),
                f["prev_nodes"].as_u64().unwrap(),
            )
        })
        .collect();
    let positions: Vec<i64> = frames.iter().map(|f| f.0).collect();
    assert_eq!(
        positions,
        (1..5).map(|k| first + k * 60_000).collect::<Vec<_>>(),
        "{frames:?}"
    );
    // The node count of the frame just left: the two empty minutes, then the data minute.
    assert_eq!(frames[0].1, 0, "{frames:?}");
    assert_eq!(frames[1].1, 0, "{frames:?}");
    assert!(frames[2].1 >= 4, "{frames:?}");
    assert_eq!(r["end"]["state"]["playing"], "false");
    assert_eq!(r["end"]["state"]["position"], first + 4 * 60_000);
    assert!(
        r["end"]["url"]
            .as_str()
            .unwrap()
            .contains(&format!("replay={}", first + 4 * 60_000))
    );

    let mut fixed = strs(&v["fixed_nodes"]);
    fixed.sort();
    assert_eq!(fixed, ["INTERNET", "checkout", "frontend", "payments"]);
    assert!(v["fixed_label"].as_str().unwrap().starts_with("fixed "));
    // Live: spans for a new service arrive while the map is open; it appears through the
    // stream without a reload, and the services already drawn keep their places.
    let live = strs(&v["live_nodes"]);
    assert!(live.iter().any(|n| n == "fraud"), "{live:?}");
    assert_eq!(strs(&v["live_moved"]), Vec::<String>::new());
    assert_eq!(v["sign_in_shown"], false);
    assert_eq!(v["stream_state"], "live");
    // main.js's early stream is the app's own for every live map URL: one request each, taken
    // over (a second would mean the two readings of the URL differ).
    for q in EARLY_STREAM_URLS {
        let e = &v["early_streams"][q];
        assert_eq!(e["state"], "live", "{q}: {e}");
        assert_eq!(e["requests"].as_array().map(Vec::len), Some(1), "{q}: {e}");
    }
    assert_clean_log(&v);
}

/// Live map URLs whose stream main.js requests before the app loads (web/static/main.js): every
/// grouping, each level, a region, a focus, an expanded namespace and a window length.
const EARLY_STREAM_URLS: [&str; 10] = [
    "?view=map",
    "?group=prefix",
    "?group=region",
    "?group=none",
    "?group=namespace&ns=shop",
    "?group=attr:host.name",
    "?level=global&since=15m",
    "?level=region&region=local",
    "?level=focused&focus=checkout",
    "?since=1h&group=auto",
];

/// Adds a namespace resource attribute to the resource of each named service.
fn with_namespaces(body: &str, ns: &[(&str, &str, &str)]) -> String {
    let mut v: serde_json::Value = serde_json::from_str(body).unwrap();
    for rs in v["resourceSpans"].as_array_mut().unwrap() {
        let attrs = rs["resource"]["attributes"].as_array_mut().unwrap();
        let svc = attrs
            .iter()
            .find(|a| a["key"] == "service.name")
            .map(|a| a["value"]["stringValue"].as_str().unwrap().to_string())
            .unwrap();
        for (s, key, value) in ns {
            if *s == svc {
                attrs.push(attr(key, value));
            }
        }
    }
    v.to_string()
}

fn ids_of(seen: &serde_json::Value, list: &str) -> Vec<String> {
    let mut v: Vec<String> = seen[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn the_region_map_zooms_from_namespaces_to_services() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let (_orrery, base, otlp) = start_orrery(data.path());
    // frontend and checkout in k8s namespace "shop", payments in service.namespace "pay".
    let body = with_namespaces(
        &topology(30, 0x5a0000, "payments"),
        &[
            ("frontend", "k8s.namespace.name", "shop"),
            ("checkout", "k8s.namespace.name", "shop"),
            ("payments", "service.namespace", "pay"),
        ],
    );
    post_otlp(&otlp, &body);
    wait_for_graph(
        &base,
        None,
        &["checkout->payments", "\"namespace\":\"pay\""],
    );
    let opts = serde_json::json!({
        "collapsed": ["INTERNET", "namespace:shop", "namespace:pay"],
        "expand": "shop",
        "expanded": ["INTERNET", "frontend", "checkout", "namespace:pay"],
        "merged_edge": "namespace:shop->namespace:pay",
        "merged_expanded": ["INTERNET", "frontend", "checkout", "payments"],
        "wheel": "pay",
        "wheel_expanded": ["payments", "namespace:shop"],
    });
    let v = browser("namespaces", &base, &opts);

    // Zoomed out: two namespace nodes; frontend -> checkout is inside "shop" and not drawn.
    let c = &v["collapsed"];
    assert_eq!(
        ids_of(c, "nodes"),
        ["INTERNET", "namespace:pay", "namespace:shop"]
    );
    assert_eq!(
        ids_of(c, "edges"),
        ["INTERNET->namespace:shop", "namespace:shop->namespace:pay"]
    );
    let shop = c["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "namespace:shop")
        .unwrap();
    assert_eq!(shop["kind"], "namespace");
    let red = c["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "namespace:shop->namespace:pay")
        .unwrap();
    let rate = red["error_rate"].as_f64().unwrap();
    assert!((rate - 10.0 / 30.0).abs() < 0.02, "error rate {rate}");
    assert_eq!(red["health"], "danger");
    assert_eq!(c["expanded"], "");

    // Double-click "shop": its services, with their namespace; "pay" stays collapsed.
    for seen in [&v["expanded"], &v["reloaded"]] {
        assert_eq!(
            ids_of(seen, "nodes"),
            ["INTERNET", "checkout", "frontend", "namespace:pay"]
        );
        assert_eq!(
            ids_of(seen, "edges"),
            [
                "INTERNET->frontend",
                "checkout->namespace:pay",
                "frontend->checkout"
            ]
        );
        assert!(seen["url"].as_str().unwrap().contains("ns=shop"), "{seen}");
        assert_eq!(seen["expanded"], "shop");
        let frontend = seen["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "frontend")
            .unwrap();
        assert_eq!(frontend["namespace"], "shop");
    }

    // Escape zooms back out.
    let back = &v["after_escape"];
    assert_eq!(
        ids_of(back, "nodes"),
        ["INTERNET", "namespace:pay", "namespace:shop"]
    );
    assert!(!back["url"].as_str().unwrap().contains("ns="), "{back}");
    // Clicking the merged shop -> pay edge says what it stands for and opens both namespaces.
    let panel = v["merged_panel"].as_str().unwrap();
    assert!(panel.contains("shop and pay"), "{panel}");
    let both = &v["merged_expanded"];
    assert_eq!(
        ids_of(both, "nodes"),
        ["INTERNET", "checkout", "frontend", "payments"]
    );
    assert_eq!(both["expanded"], "pay,shop");
    assert!(
        ids_of(both, "edges").contains(&"checkout->payments".to_string()),
        "{both}"
    );
    assert_eq!(v["merged_panel_after"], false);
    // Wheel-zooming in over `pay` expands it (and only it).
    let wheel = &v["after_wheel"];
    assert_eq!(
        ids_of(wheel, "nodes"),
        ["INTERNET", "namespace:shop", "payments"]
    );
    assert_eq!(wheel["expanded"], "pay");
    assert!(wheel["url"].as_str().unwrap().contains("ns=pay"), "{wheel}");
    assert_clean_log(&v);
}
