//! Scale-out on this machine, every role a separate `orrery` process: one
//! `orrery embedded-clickhouse`, three `orrery collector`s and two `orrery query` replicas, fed by
//! `orrery mesh` through all collectors at once. The mesh puts whole traces into each request, so
//! a fan-out (deploy_support::splitter) sends each service's spans to the next collector, as each
//! service's own exporter behind a load balancer would: the spans of one trace land on different
//! collectors. Checked: every span stored exactly once, the graph identical to the one a single
//! collector produces from the same mesh, both query replicas answering the same, and a collector
//! killed (-9) mid-load losing nothing it acknowledged once it is back on its spool.

mod deploy_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use deploy_support::*;
use serde_json::Value;

/// The scenarios each start ~7 processes: run them one at a time on 2 cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `orrery mesh` with a fixed seed and trace count; its JSON report.
fn mesh(endpoints: &[String], seed: u64, traces: u64, rate: u64) -> Value {
    // The report goes to a file: stdout also carries the logs (failed exports are warnings).
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = orrery()
        .arg("mesh")
        .args(["--endpoint", &endpoints.join(",")])
        .args(["--services", "60", "--regions", "3", "--batch", "500"])
        .args(["--seed", &seed.to_string()])
        .args(["--traces", &traces.to_string()])
        .args(["--rate", &rate.to_string()])
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "orrery mesh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&report).unwrap()).expect("mesh report JSON")
}

fn count(url: &str, db: &str) -> (u64, u64) {
    let r = sql(
        url,
        &format!("SELECT count(), uniqExact(SpanId) FROM {db}.otel_traces FORMAT TSV"),
    );
    let mut it = r.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// Waits until the table holds `want` rows (collectors flush in batches), then a little longer
/// to see that no more arrive.
fn settle(url: &str, db: &str, want: u64) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let c = count(url, db);
        if c.0 >= want {
            std::thread::sleep(Duration::from_secs(2));
            return count(url, db);
        }
        assert!(
            Instant::now() < deadline,
            "{db}: {} of {want} spans after 90 s",
            c.0
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn stored_span_ids(url: &str, db: &str) -> Vec<String> {
    sql(
        url,
        &format!("SELECT lower(SpanId) FROM {db}.otel_traces FORMAT TSV"),
    )
    .lines()
    .map(String::from)
    .collect()
}

/// The graph for a window, reduced to what must be identical: per node and per edge the request
/// and error counts and the summed duration (mean × count, exact), plus the data-quality counts.
type Shape = (
    BTreeMap<String, (u64, u64)>,
    BTreeMap<(String, String), (u64, u64)>,
    Value,
);

fn graph(q: &Query, start_ms: i64, end_ms: i64, level: &str) -> Shape {
    let (code, body) = q.get(&format!(
        "/orrery/api/graph?level={level}&start={start_ms}&end={end_ms}"
    ));
    assert_eq!(code, 200, "{body}");
    let g: Value = serde_json::from_str(&body).unwrap();
    let metrics = |m: &Value| {
        (
            m["requests"].as_u64().unwrap(),
            m["errors"].as_u64().unwrap(),
        )
    };
    let nodes = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_string(),
                metrics(&n["metrics"]),
            )
        })
        .collect();
    let edges = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                (
                    e["source"].as_str().unwrap().to_string(),
                    e["target"].as_str().unwrap().to_string(),
                ),
                metrics(&e["metrics"]),
            )
        })
        .collect();
    (nodes, edges, g["data_quality"].clone())
}

/// What differs between two graphs, short enough to read in a CI log: the nodes and edges whose
/// counts differ (or that only one side has) and both data-quality blocks.
fn differences(a: &Shape, b: &Shape) -> String {
    fn side<K: Ord + std::fmt::Debug>(
        what: &str,
        a: &BTreeMap<K, (u64, u64)>,
        b: &BTreeMap<K, (u64, u64)>,
    ) -> Vec<String> {
        let keys: BTreeSet<&K> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .filter(|k| a.get(k) != b.get(k))
            .map(|k| format!("{what} {k:?}: {:?} vs {:?}", a.get(k), b.get(k)))
            .collect()
    }
    let mut lines = side("node", &a.0, &b.0);
    lines.extend(side("edge", &a.1, &b.1));
    lines.push(format!("data quality: {} vs {}", a.2, b.2));
    lines.join("\n")
}

#[test]
fn three_collectors_two_query_replicas_store_every_span_once_and_draw_the_single_collector_graph() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let engine = start_engine();
    let spools = tempfile::tempdir().unwrap();
    migrate(&engine.url, "scaled");
    migrate(&engine.url, "single");
    let start_ms = now_ms();

    // Scaled out: 3 collectors, 2 query replicas, the mesh through all collectors.
    let collectors: Vec<Collector> = (0..3)
        .map(|i| start_collector(&engine.url, "scaled", &spools.path().join(format!("c{i}"))))
        .collect();
    let fanout = splitter::start(
        &collectors
            .iter()
            .map(Collector::grpc_endpoint)
            .collect::<Vec<_>>(),
    );
    let queries = [
        start_query(&engine.url, "scaled"),
        start_query(&engine.url, "scaled"),
    ];
    let scaled = mesh(&[fanout.endpoint()], 7, 3000, 20_000);
    let sent = scaled["spans"].as_u64().unwrap();
    assert!(sent > 10_000, "{scaled}");
    assert_eq!(scaled["failed_exports"], 0, "{scaled}");

    // The reference: the same mesh (same seed, same traces) through one collector.
    let single_collector = start_collector(&engine.url, "single", &spools.path().join("single"));
    let single_query = start_query(&engine.url, "single");
    let single = mesh(&[single_collector.grpc_endpoint()], 7, 3000, 20_000);
    assert_eq!(single["spans"], scaled["spans"]);
    assert_eq!(single["edges"], scaled["edges"], "same seed, same mesh");

    // No span lost or duplicated.
    let (rows, distinct) = settle(&engine.url, "scaled", sent);
    assert_eq!((rows, distinct), (sent, sent), "rows, distinct span ids");
    assert_eq!(settle(&engine.url, "single", sent), (sent, sent));
    {
        let ledger = fanout.ledger.lock().unwrap();
        assert_eq!(ledger.acked.len() as u64, sent);
        // Every collector took a share, and traces were split across them.
        assert!(
            ledger.parts_ok.iter().all(|&n| n > 0),
            "{:?}",
            ledger.parts_ok
        );
        let stored: BTreeSet<String> = stored_span_ids(&engine.url, "scaled").into_iter().collect();
        assert!(ledger.acked.iter().all(|id| stored.contains(id)));
    }
    let split: u64 = sql(
        &engine.url,
        "SELECT countIf(services > 1) FROM (SELECT TraceId, uniqExact(ServiceName) AS services \
         FROM scaled.otel_traces GROUP BY TraceId) FORMAT TSV",
    )
    .parse()
    .unwrap();
    assert!(split > 100, "traces spanning several services: {split}");

    // The graph: identical across replicas and to the single collector's, and it agrees with
    // what the generator says it sent.
    let end_ms = now_ms() + 60_000;
    // Each replica's rollup closes its own slots: read once each has closed the mesh's last.
    let sent_ms = now_ms();
    for q in queries.iter().chain([&single_query]) {
        q.wait_settled(start_ms - 60_000, end_ms, sent_ms);
    }
    for level in ["region", "global"] {
        let a = graph(&queries[0], start_ms - 60_000, end_ms, level);
        let b = graph(&queries[1], start_ms - 60_000, end_ms, level);
        let one = graph(&single_query, start_ms - 60_000, end_ms, level);
        assert!(!a.1.is_empty(), "{level}: no edges");
        // On a difference, read again a few seconds later: whether it persists tells a wrong
        // graph from a read that raced a rollup.
        let again = || {
            std::thread::sleep(Duration::from_secs(5));
            let a2 = graph(&queries[0], start_ms - 60_000, end_ms, level);
            let b2 = graph(&queries[1], start_ms - 60_000, end_ms, level);
            let one2 = graph(&single_query, start_ms - 60_000, end_ms, level);
            format!(
                "5 s later, replicas: {}\nscaled vs single: {}",
                differences(&a2, &b2),
                differences(&a2, &one2)
            )
        };
        if a != b {
            panic!(
                "{level}: the two query replicas differ: {}\n{}",
                differences(&a, &b),
                again()
            );
        }
        if a != one {
            panic!(
                "{level}: scaled-out graph differs from the single collector's: {}\n{}",
                differences(&a, &one),
                again()
            );
        }
    }
    let region = graph(&queries[0], start_ms - 60_000, end_ms, "region");
    let mesh_calls: u64 = scaled["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["calls"].as_u64().unwrap())
        .sum();
    let graph_calls: u64 = region.1.values().map(|m| m.0).sum();
    assert!(
        graph_calls >= mesh_calls,
        "graph has {graph_calls} calls, the mesh made {mesh_calls} service-to-service calls"
    );
    // Trace search and trace by id agree between replicas too.
    let some_trace = sql(
        &engine.url,
        "SELECT TraceId FROM scaled.otel_traces ORDER BY TraceId LIMIT 1 FORMAT TSV",
    );
    let t0 = queries[0].get(&format!("/api/traces/{some_trace}"));
    let t1 = queries[1].get(&format!("/api/traces/{some_trace}"));
    assert_eq!(t0.0, 200);
    assert_eq!(t0, t1);
}

#[test]
fn a_collector_killed_mid_load_loses_nothing_it_acknowledged() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let engine = start_engine();
    let spools = tempfile::tempdir().unwrap();
    migrate(&engine.url, "killed");
    let mut collectors: Vec<Collector> = (0..3)
        .map(|i| start_collector(&engine.url, "killed", &spools.path().join(format!("c{i}"))))
        .collect();
    let fanout = splitter::start(
        &collectors
            .iter()
            .map(Collector::grpc_endpoint)
            .collect::<Vec<_>>(),
    );
    let endpoint = fanout.endpoint();
    let load = std::thread::spawn(move || mesh(&[endpoint], 11, 6000, 8_000));

    // Mid-load: kill -9 the second collector once it has acknowledged some parts.
    wait_until("collector 1 to take load", Duration::from_secs(30), || {
        fanout.ledger.lock().unwrap().parts_ok[1] >= 20
    });
    collectors[1].proc.kill_hard();
    let report = load.join().unwrap();
    assert!(
        report["failed_exports"].as_u64().unwrap() > 0,
        "the kill happened mid-load: {report}"
    );
    // The others went on taking load after the kill.
    let (ok_after_kill, acked_total) = {
        let l = fanout.ledger.lock().unwrap();
        (l.parts_ok[0] + l.parts_ok[2], l.acked.len())
    };
    assert!(ok_after_kill > 40);

    // Its replacement starts on the same spool (a restarted container keeps its emptyDir) and
    // replays what was acknowledged but not yet in ClickHouse.
    let spool = collectors[1].spool.clone();
    collectors[1] = start_collector(&engine.url, "killed", &spool);
    let (rows, distinct) = settle(&engine.url, "killed", acked_total as u64);
    let stored: Vec<String> = stored_span_ids(&engine.url, "killed");
    let stored_set: BTreeSet<&String> = stored.iter().collect();
    let ledger = fanout.ledger.lock().unwrap();
    let lost: Vec<&String> = ledger
        .acked
        .iter()
        .filter(|id| !stored_set.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged spans lost (of {})",
        lost.len(),
        ledger.acked.len()
    );
    assert_eq!(rows, distinct, "no span stored twice");
    assert!(
        stored.iter().all(|id| ledger.received.contains(id)),
        "only spans that were sent"
    );
    assert_eq!(stored.len() as u64, rows);
}
