//! A 50,000-span trace opened in the waterfall, on the release build users run.
//!
//! `cargo bench --bench big_trace` (needs `bash scripts/build-web.sh`). Optional:
//! ORRERY_BENCH_OPENS (default 5). The real all-in-one (embedded ClickHouse) receives the trace of
//! tests/web_big_trace.rs over OTLP/HTTP JSON; headless Chromium opens `?view=trace&trace=<id>`
//! once to warm up, then N times, each in a fresh browser. Prints p50 and max of navigation →
//! first waterfall rows and of its phases as the UI reports them: start (page load and WASM
//! start, ms since navigation), API fetch, JSON parse in WASM, tree + critical path; "render" is
//! what remains (first render, puppeteer seeing the rows). A big trace's first rows are drawn
//! from the first bytes of the answer (web/src/trace_prefix.rs), so for them fetch is the time
//! to those bytes and parse + model is one figure (in "parse"); the page also reports when
//! those rows were painted (in-page clock, so without puppeteer's own delay), and the bench
//! when the whole trace replaced them. Also the API answer alone, timed by curl before each
//! open: to its first byte and to its last. Asserts each open ends with all spans in the waterfall; no time limit.
//!
//! With ORRERY_BENCH_JAEGER_UI=<dir of the prebuilt Jaeger UI> (`../shared/jaeger-ui`), the
//! real Jaeger UI is timed on the same trace too: its own server proxies `/api/*` to this
//! Orrery, and navigation → its first span rows is measured the same way
//! (web/tests/jaeger_ui.mjs).

#[path = "../tests/web_support/mod.rs"]
mod web_support;

use std::process::Command;
use web_support::*;

/// Seconds to the first byte, seconds to the last and bytes of one `GET` of the trace API, as
/// curl sees them (the answer is streamed: the first byte comes once the tree is built).
fn api_answer(base: &str, trace: &str) -> (f64, f64, f64) {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "-w",
            "%{time_starttransfer} %{time_total} %{size_download}",
        ])
        .arg(format!("{base}/orrery/api/traces/{trace}"))
        .output()
        .expect("curl");
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.split_whitespace().map(|x| x.parse().unwrap_or(f64::NAN));
    let mut next = || it.next().unwrap_or(f64::NAN);
    (next(), next(), next())
}

/// "start 150 ms · fetch 12 ms · parse 34 ms · model 5 ms" → [150, 12, 34, 5].
fn phases(v: &serde_json::Value) -> [f64; 4] {
    let s = v["phases"].as_str().unwrap_or_default();
    let mut out = [f64::NAN; 4];
    for (slot, name) in out.iter_mut().zip(["start", "fetch", "parse", "model"]) {
        *slot = s
            .split(" · ")
            .find_map(|p| p.strip_prefix(name))
            .and_then(|p| p.trim().trim_end_matches("ms").trim().parse().ok())
            .unwrap_or(f64::NAN);
    }
    out
}

/// "… · first 400 rows · painted 812 ms" → 812 (NaN when the whole trace came first).
fn painted(v: &serde_json::Value) -> f64 {
    v["phases"]
        .as_str()
        .unwrap_or_default()
        .split(" · ")
        .find_map(|p| p.strip_prefix("painted"))
        .and_then(|p| p.trim().trim_end_matches("ms").trim().parse().ok())
        .unwrap_or(f64::NAN)
}

fn p50_max(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[(xs.len() - 1) / 2], xs[xs.len() - 1])
}

fn main() {
    let opens: usize = std::env::var("ORRERY_BENCH_OPENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let data = tempfile::tempdir().unwrap();
    let (_orrery, base, otlp) = start_orrery(data.path());
    let trace = load_big_trace(&base, &otlp, BIG_TRACE_SPANS);
    let warm = open_big_trace(&base, &trace, BIG_TRACE_SPANS);
    assert_eq!(warm["row_count"], BIG_TRACE_SPANS as u64, "{warm}");
    let mut cols: [Vec<f64>; 10] = Default::default();
    let mut bytes = 0.0;
    for run in 1..=opens {
        let (first_s, api_s, size) = api_answer(&base, &trace);
        bytes = size;
        let v = open_big_trace(&base, &trace, BIG_TRACE_SPANS);
        assert_eq!(v["row_count"], BIG_TRACE_SPANS as u64, "{v}");
        let open = v["open_ms"].as_f64().unwrap();
        let [start, fetch, parse, model] = phases(&v);
        let render = open - start - fetch - parse - model;
        let (api, first_byte) = (api_s * 1e3, first_s * 1e3);
        let (painted, complete) = (painted(&v), v["complete_ms"].as_f64().unwrap_or(f64::NAN));
        println!(
            "open {run}: {open:.0} ms (start {start:.0}, fetch {fetch:.0}, parse {parse:.0}, \
             model {model:.0}, render {render:.0}; API alone {api:.0}, its first byte at \
             {first_byte:.0}); scroll step p50 {:.1} ms \
             max {:.1} ms; {} DOM rows; first rows painted at {painted:.0} ms (in page); \
             whole trace in at {complete:.0} ms",
            v["scroll_step_p50_ms"].as_f64().unwrap_or(f64::NAN),
            v["scroll_step_max_ms"].as_f64().unwrap_or(f64::NAN),
            v["dom_rows"]
        );
        for (c, x) in cols.iter_mut().zip([
            open, start, fetch, parse, model, render, painted, complete, api, first_byte,
        ]) {
            c.push(x);
        }
    }
    println!(
        "big trace, {BIG_TRACE_SPANS} spans ({:.1} MB of JSON), {opens} opens after one warm-up \
         (p50 / max, ms):",
        bytes / 1e6
    );
    for (name, c) in [
        "navigation -> first rows",
        "  start: page load + WASM start",
        "  API fetch (rest of it, after start)",
        "  JSON parse (WASM)",
        "  tree + critical path",
        "  render: first rows in the DOM",
        "first rows painted (in page, since navigation)",
        "navigation -> whole trace in the waterfall",
        "API answer alone (curl, separate request)",
        "  its first byte (curl)",
    ]
    .into_iter()
    .zip(cols)
    {
        let (p50, max) = p50_max(c);
        println!("{name:<45} {p50:>7.0} {max:>7.0}");
    }
    if let Ok(dir) = std::env::var("ORRERY_BENCH_JAEGER_UI") {
        jaeger_ui(&dir, &base, &trace, opens);
    }
}

/// The real Jaeger UI on the same trace (see the module docs).
fn jaeger_ui(dir: &str, base: &str, trace: &str, opens: usize) {
    let out = Command::new("node")
        .arg(root().join("web/tests/jaeger_ui.mjs"))
        .args([dir, base, trace, &opens.to_string()])
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Jaeger UI run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .expect("JSON from jaeger_ui.mjs");
    let runs = v["runs"].as_array().unwrap();
    for (k, r) in runs.iter().enumerate() {
        println!(
            "Jaeger UI open {}: {} ms to first span rows ({} rows in the DOM, header: {} spans)",
            k + 1,
            r["open_ms"],
            r["dom_rows"],
            r["total_spans"]
        );
    }
    let (p50, max) = p50_max(runs.iter().filter_map(|r| r["open_ms"].as_f64()).collect());
    println!(
        "{:<45} {p50:>7.0} {max:>7.0}",
        "Jaeger UI v2.19.0: navigation -> first rows"
    );
}
