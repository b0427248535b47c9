//! `orrery demo` end to end: the all-in-one plus the fleet, driven by the `orrery demo chaos`
//! CLI. Each chaos control changes what the query API reports for the affected edges, in the
//! minute it was on, and restoring brings the numbers back.
//!
//! The graph API works in whole minutes, so the test runs four aligned minutes: healthy,
//! latency + chaos monkey, chaos kong, restored (about five minutes in all).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orrery_store::testing::process::{free_port, orrery_command};
use serde_json::Value;

fn orrery() -> Command {
    let mut cmd = orrery_command(env!("CARGO_BIN_EXE_orrery"));
    cmd.env("RUST_BACKTRACE", "0");
    cmd
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chaos(control: &str, args: &[&str]) {
    let out = orrery()
        .args(["demo", "chaos", "--control-url", control])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chaos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Sleeps until `ms` past the epoch.
async fn until(ms: u64) {
    let now = now_ms();
    if ms > now {
        tokio::time::sleep(Duration::from_millis(ms - now)).await;
    }
}

/// The `source -> target` edge's metrics in the one-minute window starting at `minute_ms`.
async fn edge(api: &str, minute_ms: u64, source: &str, target: &str) -> Value {
    let url = format!(
        "{api}/orrery/api/edges?source={source}&target={target}&start={minute_ms}&end={}",
        minute_ms + 60_000
    );
    let resp = reqwest::get(&url).await.unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let v: Value = resp.json().await.unwrap();
    v["edge"]["metrics"].clone()
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_controls_move_edge_error_rate_and_latency_and_restore_brings_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let api = format!("http://127.0.0.1:{}", free_port());
    let control = format!("http://127.0.0.1:{}", free_port());
    let child = orrery()
        .arg("demo")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--spool-dir")
        .arg(dir.path().join("spool"))
        .args(["--embedded-port", "0"])
        .args(["--otlp-grpc-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--otlp-http-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--query-addr", api.trim_start_matches("http://")])
        .args(["--demo-control-addr", control.trim_start_matches("http://")])
        .args(["--demo-rate", "25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    // The UI's URL is the first thing it prints.
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(running.0.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first.trim(), format!("Orrery demo: open {api}/"));

    // Wait for traffic to show up on the map.
    let deadline = now_ms() + 120_000;
    loop {
        let ok = reqwest::get(format!(
            "{api}/orrery/api/edges?source=edge-gateway&target=ads&since=2m"
        ))
        .await
        .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        assert!(
            now_ms() < deadline,
            "no edge-gateway -> ads traffic in the query API"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    trace_through_the_real_collector(&api, &control).await;

    // Bad chaos input is refused with the list of valid targets, and changes nothing.
    let bad = orrery()
        .args([
            "demo",
            "chaos",
            "--control-url",
            &control,
            "latency",
            "nope",
            "5",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown service or peer \"nope\""));

    // Four aligned minutes.
    let m0 = now_ms().div_ceil(60_000) * 60_000;
    let [m1, m2, m3] = [m0 + 60_000, m0 + 120_000, m0 + 180_000];
    until(m1).await;
    chaos(&control, &["latency", "pricing", "400"]);
    chaos(&control, &["error", "ads", "0.5"]);
    until(m2).await;
    chaos(&control, &["restore"]);
    chaos(&control, &["kong", "ap-southeast-1"]);
    until(m3).await;
    chaos(&control, &["restore"]);
    until(m3 + 60_000 + 5_000).await;

    // Late spans are still being written for a few seconds; poll until the last minute has data.
    for _ in 0..30 {
        let last = edge(&api, m3, "edge-gateway", "ads").await;
        if num(&last, "requests") > 100.0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Healthy minute.
    let ads0 = edge(&api, m0, "edge-gateway", "ads").await;
    let pricing0 = edge(&api, m0, "checkout", "pricing").await;
    let recs0 = edge(&api, m0, "edge-gateway", "recommendations").await;
    assert!(num(&ads0, "requests") > 100.0, "{ads0}");
    assert!(num(&ads0, "error_rate") < 0.05, "{ads0}");
    assert!(num(&recs0, "error_rate") < 0.05, "{recs0}");
    assert!(num(&pricing0, "p50_ms") < 250.0, "{pricing0}");

    // Latency monkey on pricing, chaos monkey on ads.
    let ads1 = edge(&api, m1, "edge-gateway", "ads").await;
    let pricing1 = edge(&api, m1, "checkout", "pricing").await;
    let e = num(&ads1, "error_rate");
    assert!(
        (0.3..=0.7).contains(&e),
        "ads error rate under chaos monkey: {ads1}"
    );
    assert!(
        num(&pricing1, "p50_ms") >= num(&pricing0, "p50_ms") + 300.0,
        "pricing latency under latency monkey: {pricing1} vs {pricing0}"
    );
    assert!(num(&pricing1, "error_rate") < 0.05, "{pricing1}");

    // Chaos kong on ap-southeast-1: calls into it fail, calls elsewhere do not.
    let recs2 = edge(&api, m2, "edge-gateway", "recommendations").await;
    let fraud2 = edge(&api, m2, "payments", "fraud").await;
    let auth2 = edge(&api, m2, "edge-gateway", "auth").await;
    let ads2 = edge(&api, m2, "edge-gateway", "ads").await;
    assert!(num(&recs2, "error_rate") > 0.9, "{recs2}");
    assert!(num(&ads2, "error_rate") > 0.9, "{ads2}");
    assert!(
        num(&fraud2, "requests") > 0.0 && num(&fraud2, "error_rate") > 0.9,
        "{fraud2}"
    );
    assert!(num(&auth2, "error_rate") < 0.05, "{auth2}");

    // Restored.
    let ads3 = edge(&api, m3, "edge-gateway", "ads").await;
    let pricing3 = edge(&api, m3, "checkout", "pricing").await;
    let recs3 = edge(&api, m3, "edge-gateway", "recommendations").await;
    assert!(num(&ads3, "error_rate") < 0.05, "{ads3}");
    assert!(num(&recs3, "error_rate") < 0.05, "{recs3}");
    assert!(
        num(&pricing3, "p50_ms") < num(&pricing1, "p50_ms") - 300.0,
        "{pricing3}"
    );
}

/// One checkout with a known `traceparent`, read back through the real collector, ClickHouse and
/// the query API's trace view: every span is linked to a parent that exists, across HTTP, gRPC
/// and the queue.
async fn trace_through_the_real_collector(api: &str, control: &str) {
    let fleet: Value = reqwest::get(format!("{control}/fleet"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gateway = fleet["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "edge-gateway")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let trace_id = format!(
        "{:032x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let caller = "00f067aa0ba902b7";
    let resp = reqwest::Client::new()
        .post(format!("{gateway}/api/checkout"))
        .header("traceparent", format!("00-{trace_id}-{caller}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let expected = [
        "edge-gateway",
        "auth",
        "checkout",
        "cart",
        "pricing",
        "currency",
        "inventory",
        "payments",
        "fraud",
        "ml-ranker",
        "orders",
        "shipping",
        "notifications",
    ];
    let mut trace = Value::Null;
    for _ in 0..60 {
        let r = reqwest::get(format!("{api}/orrery/api/traces/{trace_id}"))
            .await
            .unwrap();
        if r.status().is_success() {
            trace = r.json().await.unwrap();
            let services: Vec<&str> = trace["services"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s.as_str())
                .collect();
            // Wait for the last hops (after the queue) and for late spans to settle.
            if expected.iter().all(|e| services.contains(e))
                && trace["spans"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["service"] == "notifications" && s["kind"] == "Client")
            {
                tokio::time::sleep(Duration::from_secs(3)).await;
                trace = reqwest::get(format!("{api}/orrery/api/traces/{trace_id}"))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let spans = trace["spans"]
        .as_array()
        .unwrap_or_else(|| panic!("trace {trace_id} never arrived"));
    let ids: std::collections::HashSet<&str> = spans
        .iter()
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    for s in spans {
        let parent = s["parent_span_id"].as_str().unwrap();
        if s["service"] == "edge-gateway" && s["kind"] == "Server" {
            // Its parent is our caller's span, which is not part of the stored trace.
            assert_eq!(parent, caller);
            assert_eq!(s["missing_parent"], true);
        } else {
            assert_eq!(s["missing_parent"], false, "{s}");
            assert!(ids.contains(parent), "parent of {s} not in the trace");
        }
    }
    let find = |kind: &str| {
        spans
            .iter()
            .find(|s| s["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} span"))
    };
    let (producer, consumer) = (find("Producer"), find("Consumer"));
    assert_eq!(consumer["parent_span_id"], producer["span_id"]);
    assert_eq!(consumer["service"], "orders");
    let grpc_servers = spans
        .iter()
        .filter(|s| s["kind"] == "Server" && s["attributes"]["rpc.system"] == "grpc")
        .count();
    assert!(grpc_servers >= 2, "{grpc_servers} gRPC server spans");
}
