//! The map bench page (web/dist/bench.html) in headless Chromium: 2,000 services, 10,000 edges,
//! 100,000 GPU-instanced particles. Prints the per-frame CPU time (JS + WASM, performance.now()
//! around each frame's work), the layout times and the 50,000-span trace model time; asserts the
//! page rendered frames and reported numbers (the budgets are recorded in docs/benchmarks.md,
//! not enforced by a timed test). Needs `scripts/build-web.sh` (the test command runs it).

use std::process::Command;

#[test]
fn map_bench_page_renders_and_reports_figures() {
    let root = &orrery_store::testing::manifest_dir(env!("CARGO_MANIFEST_DIR"));
    let dist = root.join("web/dist");
    assert!(
        dist.join("bench.html").exists() && dist.join("orrery_web_bg.wasm").exists(),
        "web/dist is missing: run scripts/build-web.sh first"
    );
    assert!(
        root.join("web/tests/node_modules/puppeteer-core").exists(),
        "web/tests/node_modules is missing: run scripts/install.sh first"
    );
    let v = run_bench_page("map bench", None);
    assert_eq!(
        v["backend"], "webgl2",
        "headless Chromium should offer WebGL2"
    );
    assert_eq!(v["services"], 2000);
    assert_eq!(v["edges"], 10_000);
    let particles = v["particles"].as_u64().unwrap();
    assert!(
        (95_000..=105_000).contains(&particles),
        "particles {particles}"
    );
    assert!(v["frames"].as_u64().unwrap() > 0);
    assert_eq!(v["trace_rows"], 50_000);
    for key in [
        "frame_cpu_mean_ms",
        "frame_cpu_p95_ms",
        "layout_full_ms",
        "layout_incremental_ms",
        "scene_update_ms",
        "trace_model_ms",
    ] {
        let x = v[key].as_f64().unwrap_or(-1.0);
        assert!(x.is_finite() && x >= 0.0, "{key} = {x}");
    }
    assert!(v["layout_added"].as_u64().unwrap() == 50);
}

/// The 2D-canvas fallback (forced with `?renderer=2d`) draws the same scene.
#[test]
fn canvas_fallback_renders_frames() {
    let v = run_bench_page(
        "canvas fallback",
        Some("renderer=2d&services=200&edges=800&particles=10000&frames=10"),
    );
    assert_eq!(v["backend"], "canvas2d");
    assert_eq!(v["frames"], 10);
    assert!(v["particles"].as_u64().unwrap() > 9_000);
}

/// Opens the bench page (with optional extra query parameters) in headless Chromium through
/// web/tests/browser.mjs and returns the figures it reports (its last stdout line, JSON).
fn run_bench_page(label: &str, query: Option<&str>) -> serde_json::Value {
    let root = &orrery_store::testing::manifest_dir(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("node");
    cmd.arg(root.join("web/tests/browser.mjs"))
        .arg("bench")
        .arg(root.join("web/dist"))
        .arg(root.join("artifacts/web"));
    if let Some(query) = query {
        cmd.arg(query);
    }
    let out = cmd.output().expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench page failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    println!("{label}: {line}");
    serde_json::from_str(line).expect("bench JSON")
}
