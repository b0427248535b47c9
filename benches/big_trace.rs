//! A 50,000-span trace opened in the waterfall, on the release build users run.
//!
//! `cargo bench --bench big_trace` (needs `bash scripts/build-web.sh`). Optional:
//! ORRERY_BENCH_OPENS (default 5). The real all-in-one (embedded ClickHouse) receives the trace of
//! tests/web_big_trace.rs over OTLP/HTTP JSON; headless Chromium opens `?view=trace&trace=<id>`
//! once to warm up, then N times, each in a fresh browser. Prints p50 and max of navigation →
//! first waterfall rows and of its phases as the UI reports them: start (page load and WASM
//! start, ms since navigation), API fetch, JSON parse in WASM, tree + critical path; "render" is
//! what remains (first render, puppeteer seeing the rows). Also the API answer alone, timed by
//! curl before each open. Asserts each open shows all spans; no time limit.

#[path = "../tests/web_support/mod.rs"]
mod web_support;

use std::process::Command;
use web_support::*;

/// Seconds and bytes of one `GET` of the trace API, as curl sees them.
fn api_answer(base: &str, trace: &str) -> (f64, f64) {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "-w",
            "%{time_total} %{size_download}",
        ])
        .arg(format!("{base}/orrery/api/traces/{trace}"))
        .output()
        .expect("curl");
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.split_whitespace().map(|x| x.parse().unwrap_or(f64::NAN));
    (it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN))
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
    let mut cols: [Vec<f64>; 7] = Default::default();
    let mut bytes = 0.0;
    for run in 1..=opens {
        let (api_s, size) = api_answer(&base, &trace);
        bytes = size;
        let v = open_big_trace(&base, &trace, BIG_TRACE_SPANS);
        assert_eq!(v["row_count"], BIG_TRACE_SPANS as u64, "{v}");
        let open = v["open_ms"].as_f64().unwrap();
        let [start, fetch, parse, model] = phases(&v);
        let render = open - start - fetch - parse - model;
        let api = api_s * 1e3;
        println!(
            "open {run}: {open:.0} ms (start {start:.0}, fetch {fetch:.0}, parse {parse:.0}, \
             model {model:.0}, render {render:.0}; API alone {api:.0}); scroll step p50 {:.1} ms \
             max {:.1} ms; {} DOM rows",
            v["scroll_step_p50_ms"].as_f64().unwrap_or(f64::NAN),
            v["scroll_step_max_ms"].as_f64().unwrap_or(f64::NAN),
            v["dom_rows"]
        );
        for (c, x) in cols
            .iter_mut()
            .zip([open, start, fetch, parse, model, render, api])
        {
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
        "API answer alone (curl, separate request)",
    ]
    .into_iter()
    .zip(cols)
    {
        let (p50, max) = p50_max(c);
        println!("{name:<45} {p50:>7.0} {max:>7.0}");
    }
}
