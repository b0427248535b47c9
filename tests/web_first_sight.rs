//! Browser end to end on `orrery demo` (issue 18 at first sight): the real demo (all-in-one +
//! the 18-service shop) in headless Chromium (web/tests/map_ux.mjs), its region map, panels,
//! header, accessibility, chaos, and a crowded mesh region collapsed into namespaces. Writes
//! the map screenshots docs/web.md shows. Needs scripts/build-web.sh and scripts/install.sh.

mod web_support;

use std::process::Stdio;
use std::time::{Duration, Instant};
use web_support::checks::*;
use web_support::*;

/// `orrery demo` (all-in-one + the 18-service shop) on free ports, serving web/dist.
struct Demo {
    child: std::process::Child,
    base: String,
    control: String,
    grpc: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo(dir: &std::path::Path) -> Demo {
    let (query, control, grpc) = (free_port(), free_port(), free_port());
    let child = orrery_store::testing::process::orrery_command(env!("CARGO_BIN_EXE_orrery"))
        .arg("demo")
        .arg("--data-dir")
        .arg(dir)
        .args(["--embedded-port", "0"])
        .args(["--otlp-grpc-addr", &format!("127.0.0.1:{grpc}")])
        .args(["--otlp-http-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--query-addr", &format!("127.0.0.1:{query}")])
        .args(["--demo-control-addr", &format!("127.0.0.1:{control}")])
        .args(["--demo-rate", "8"])
        .arg("--ui-dir")
        .arg(dist())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Demo {
        child,
        base: format!("http://127.0.0.1:{query}"),
        control: format!("http://127.0.0.1:{control}"),
        grpc: format!("http://127.0.0.1:{grpc}"),
    }
}

/// Polls the graph API until `ok` holds for the region graph (`region` may be empty).
fn wait_for(base: &str, region: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let url = format!("{base}/orrery/api/graph?level=region&since=5m&region={region}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let g = curl(&[&url])
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .unwrap_or_default();
        if ok(&g) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {g}");
        std::thread::sleep(Duration::from_millis(1000));
    }
}

fn services(g: &serde_json::Value) -> usize {
    g["nodes"]
        .as_array()
        .map(|n| n.iter().filter(|n| n["kind"] == "service").count())
        .unwrap_or(0)
}

fn orrery(args: &[&str]) {
    let out = orrery_store::testing::process::orrery_command(env!("CARGO_BIN_EXE_orrery"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "orrery {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 18 at first sight, on the real demo: its region map opens on its services (one
/// namespace is never one node), panels sit beside the map and no node is under one, the
/// header and filter bar hold one line at 1280 and 1440 px, axe finds nothing serious on the
/// region map (with and without a panel) or the global map, Tab reaches every control; chaos
/// turns an edge red; a mesh of 300 services in 6 namespaces sent into the same instance
/// makes its region collapse into namespaces. Writes docs/images/map-*.png.
#[test]
fn the_demo_map_at_first_sight_and_a_crowded_region_collapsed() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path());
    let base = demo.base.clone();
    // Most of the shop has been called (some services only sit behind rarer routes).
    wait_for(&base, "", "15 demo services", |g| services(g) >= 15);

    let opts = serde_json::json!({
        "demo_services": 15,
        "panel_node": "checkout",
        "docs_images": docs_images(),
    });
    let v = browser("mapux", &base, &opts);
    // One namespace, ~25 nodes: services shown, never one `orrery-demo` node.
    let demo_nodes = v["demo"]["nodes"].as_array().unwrap();
    assert_eq!(v["demo"]["grouped"], "false", "{v}");
    assert!(demo_nodes.iter().all(|n| n["kind"] != "namespace"), "{v}");
    let shop: Vec<_> = demo_nodes
        .iter()
        .filter(|n| n["kind"] == "service")
        .collect();
    assert!(shop.len() >= 15, "{shop:?}");
    assert!(
        shop.iter().all(|n| n["namespace"] == "orrery-demo"),
        "{shop:?}"
    );
    assert!(!v["demo"]["url"].as_str().unwrap().contains("ns="), "{v}");

    // No node under a panel, every node inside the canvas: the region map, with a node panel
    // open (fitted into what is left), with the service list collapsed, and the global map.
    for state in [
        "demo_cover",
        "panel_cover",
        "collapsed_cover",
        "global_cover",
    ] {
        let c = &v[state];
        let nodes = c["nodes"].as_array().unwrap();
        assert!(nodes.len() >= 3, "{state}: {c}");
        for n in nodes {
            assert_eq!(n["in_canvas"], true, "{state}: {n} outside {}", c["canvas"]);
            assert_eq!(
                n["under"],
                serde_json::json!([]),
                "{state}: {n} under a panel"
            );
        }
    }
    let width = |s: &str| v[s]["canvas"]["w"].as_f64().unwrap();
    assert!(
        width("panel_cover") < width("demo_cover") - 300.0,
        "the node panel takes its width from the map"
    );
    assert!(width("collapsed_cover") > width("demo_cover") + 150.0);
    assert_eq!(v["collapsed_toggle"], "false");
    assert!(
        v["panel_cover"]["panels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["cls"].as_str().unwrap().contains("side")),
        "the node panel was open: {v}"
    );

    // One line at 1280 and 1440 px; below, wrapped but never wider than the window.
    for at in ["bars_1280", "bars_1440"] {
        let b = &v[at];
        assert!(b["header"].as_f64().unwrap() <= 48.0, "{at}: {b}");
        assert!(b["bar"].as_f64().unwrap() <= 44.0, "{at}: {b}");
        let tops: Vec<i64> = b["tops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_i64().unwrap())
            .collect();
        let (lo, hi) = (tops.iter().min().unwrap(), tops.iter().max().unwrap());
        assert!(hi - lo <= 8, "{at}: the bar's items on one line: {tops:?}");
        assert!(b["overflow"].as_f64().unwrap() <= 0.0, "{at}: {b}");
    }
    assert!(v["bars_900"]["overflow"].as_f64().unwrap() <= 0.0, "{v}");
    assert!(
        v["bars_900"]["bar"].as_f64().unwrap() > v["bars_1280"]["bar"].as_f64().unwrap(),
        "below 1280 px the filters wrap under the breadcrumb"
    );

    for audit in ["region_a11y", "panel_a11y", "global_a11y"] {
        assert_accessible(audit, &v[audit]);
    }
    // Tab reaches every control of the map page (header, breadcrumb, filters, the service
    // list's toggle and entries, the canvas).
    let tab = &v["tab"];
    assert_eq!(tab["missed"], serde_json::json!([]), "{tab}");
    let reached = strs(&tab["reached"]);
    assert!(reached.len() >= 15 + 10, "{reached:?}");
    for want in [
        "#help-button",
        "#diff-toggle",
        "#group",
        "#sidebar-toggle",
        "@checkout",
        "canvas",
    ] {
        assert!(
            reached.iter().any(|r| r.contains(want)),
            "{want} in {reached:?}"
        );
    }
    assert_clean_log(&v);

    // Chaos monkey on ads: the gateway's calls to it fail and the edge turns red.
    orrery(&[
        "demo",
        "chaos",
        "--control-url",
        &demo.control,
        "error",
        "ads",
        "0.9",
    ]);
    let c = browser(
        "chaos",
        &base,
        &serde_json::json!({ "chaos_edge": "edge-gateway->ads", "docs_images": docs_images() }),
    );
    assert_eq!(c["edge"]["health"], "danger", "{c}");
    orrery(&["demo", "chaos", "--control-url", &demo.control, "restore"]);

    // 300 services in 6 namespaces (teams) in one region: past LEGIBLE_NODES with several
    // namespaces, so the region opens on one node per namespace; `group=none` shows them all.
    orrery(&[
        "mesh",
        "--services",
        "300",
        "--namespaces",
        "6",
        "--regions",
        "1",
        "--rate",
        "4000",
        "--duration",
        "6s",
        "--endpoint",
        &demo.grpc,
    ]);
    let region = "us-east-1";
    wait_for(&base, region, "100 mesh services", |g| services(g) >= 100);
    let v = browser(
        "crowded",
        &base,
        &serde_json::json!({ "region": region, "docs_images": docs_images() }),
    );
    let ids = |seen: &serde_json::Value, kind: &str| -> Vec<String> {
        seen["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == kind)
            .map(|n| n["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(v["collapsed"]["grouped"], "true", "{v}");
    let groups = ids(&v["collapsed"], "namespace");
    for team in (0..6).map(|i| orrery_demo::mesh::team_name(i, 6)) {
        assert!(
            groups.contains(&format!("namespace:{team}")),
            "{team} in {groups:?}"
        );
    }
    assert!(ids(&v["collapsed"], "service").is_empty(), "{v}");
    assert!(
        v["collapsed"]["nodes"].as_array().unwrap().len() <= 30,
        "legible: {v}"
    );
    for n in v["cover"]["nodes"].as_array().unwrap() {
        assert_eq!(n["in_canvas"], true, "{n}");
        assert_eq!(n["under"], serde_json::json!([]), "{n}");
    }
    assert_eq!(v["ungrouped"]["grouped"], "false", "{v}");
    assert!(ids(&v["ungrouped"], "service").len() >= 100, "{v}");
    assert!(
        v["ungrouped"]["url"]
            .as_str()
            .unwrap()
            .contains("group=none")
    );
    // Grouped by name prefix (`billing-007` → billing): every mesh service is in the group of
    // its noun (the shop's services beside them stay when alone in their prefix), made by the
    // graph API (named with their member count).
    let by_prefix = ids(&v["by_prefix"], "group");
    assert!(by_prefix.len() >= 10, "{v}");
    let mesh_like = |id: &String| {
        id.rsplit_once('-')
            .is_some_and(|(_, n)| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let left = ids(&v["by_prefix"], "service");
    assert!(!left.iter().any(mesh_like), "{left:?}");
    let url = v["by_prefix"]["url"].as_str().unwrap();
    assert!(url.contains("group=prefix"), "{url}");
    let api = format!("{base}/orrery/api/graph?level=region&since=5m&region={region}&group=prefix");
    let g: serde_json::Value = serde_json::from_str(&curl(&[&api]).unwrap()).unwrap();
    assert_eq!(g["grouping"]["by"], "prefix", "{}", g["grouping"]);
    for id in &by_prefix {
        let n = g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not in the API's grouped map"));
        let name = n["name"].as_str().unwrap();
        assert!(name.starts_with(&format!("{} (", &id[6..])), "{name}");
    }
    assert_clean_log(&v);
}
