//! The short soak (CI's guard of the ingest promise; `cargo bench --bench soak` is the long one
//! with every fault and the figures): the real `orrery` binaries — one embedded engine, two
//! collectors, the mesh generator through both — for ~25 s while a collector is killed with
//! SIGKILL and restarted on its spool, the engine's server is killed (its supervisor restarts
//! it), and a second client sends poison requests. Asserted: every span the generator was told
//! was accepted is stored, none twice, the graph shows every acknowledged call, every fault was
//! survived, every poison request refused or accounted for, and no poison answered with a 5xx
//! other than a retryable 503.

mod deploy_support;
mod soak_support;

use std::time::Duration;

use soak_support::poison::Kind;
use soak_support::{Fault, Plan};

#[test]
fn acknowledged_spans_survive_a_collector_kill_an_engine_kill_and_poison_exactly_once() {
    let plan = Plan {
        duration: Duration::from_secs(25),
        rate: 1500,
        services: 40,
        faults: vec![(6, Fault::KillCollector(0)), (14, Fault::KillEngineServer)],
        poison_every: Duration::from_millis(400),
        tmpfs_mib: None,
    };
    let out = soak_support::run(&plan);
    out.print();

    assert!(
        out.accepted_spans > 5_000,
        "too little got through: {}",
        out.accepted_spans
    );
    assert_eq!(out.faults.len(), 2);
    for f in &out.faults {
        assert!(f.survived, "{f:?}");
    }
    assert_eq!(out.lost, 0, "acknowledged spans lost");
    assert_eq!(out.duplicates, 0, "spans stored twice");
    assert_eq!(
        out.batches_left_in_spools, 0,
        "undelivered batches after the flush"
    );
    assert!(out.dead_letter_note.is_empty(), "{}", out.dead_letter_note);
    assert!(out.edges_checked > 20, "{}", out.graph_note);
    assert_eq!(out.edge_calls_missing, 0, "graph misses acknowledged calls");

    // The poison: every kind tried, each refused or accounted for, none answered 5xx but 503.
    for kind in soak_support::poison::KINDS {
        assert!(
            out.poison.iter().any(|p| p.kind == kind),
            "{kind:?} never sent"
        );
    }
    for p in &out.poison {
        assert!(matches!(p.status, 0 | 200 | 400 | 413 | 415 | 503), "{p:?}");
        let must_refuse = match p.kind {
            Kind::Oversized | Kind::GzipBomb => Some(413),
            Kind::MalformedProtobuf | Kind::BadJson => Some(400),
            _ => None,
        };
        if let Some(code) = must_refuse
            && p.status != 0
            && p.status != 503
        {
            assert_eq!(p.status, code, "{p:?}");
        }
        if p.kind == Kind::ZeroIds && p.status == 200 {
            assert_eq!(p.rejected, 1, "{p:?}");
        }
    }
    assert_eq!(
        out.poison_unaccounted, 0,
        "accepted poison spans neither stored nor in dead letters ({})",
        out.dead_letter_note
    );
}

/// Copies a directory tree (a stopped collector's spool).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// What a `kill -9` between a segment's insert and its deletion does, made deterministic: the
/// same spooled segment is inserted twice (`orrery spool replay --all` on two copies of one
/// spool, each insert with the segment's own deduplication token). The spans table keeps one
/// copy; the materialized views the graph reads must too (schema v8 gives their tables a
/// deduplication window; without it they took the second insert again — the soak's first miss,
/// docs/benchmarks.md).
#[test]
fn a_segment_inserted_twice_is_stored_once_in_the_spans_table_and_in_every_view() {
    use deploy_support::*;
    let engine = start_engine();
    migrate(&engine.url, "replayed");
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    // A collector whose ClickHouse is unreachable: everything it acknowledges stays spooled.
    let (grpc, http) = (free_addr(), free_addr());
    let dead = format!("http://127.0.0.1:{}", free_addr().port());
    let mut collector = spawn(
        "collector",
        orrery()
            .args(["collector", "--no-migrate", "--clickhouse-url", &dead])
            .args(["--clickhouse-database", "replayed"])
            .args(["--otlp-grpc-addr", &grpc.to_string()])
            .args(["--otlp-http-addr", &http.to_string()])
            .args(["--collector-shutdown-timeout", "1s"])
            .arg("--spool-dir")
            .arg(&spool),
    );
    wait_until("the collector", Duration::from_secs(60), || {
        matches!(get(&format!("http://{http}/healthz")), Some((200, _)))
    });
    let out = orrery()
        .args(["mesh", "--endpoint", &format!("http://{grpc}")])
        .args(["--services", "20", "--traces", "50", "--seed", "3"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let spans = report["spans"].as_u64().unwrap();
    assert!(spans > 100 && report["failed_exports"] == 0, "{report}");
    collector.terminate(Duration::from_secs(30));
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    copy_dir(&spool, &a);
    copy_dir(&spool, &b);

    let counts = || -> Vec<u64> {
        sql(
            &engine.url,
            "SELECT (SELECT count() FROM replayed.otel_traces), \
             (SELECT count() FROM replayed.orrery_span_calls), \
             (SELECT sum(Spans) FROM replayed.orrery_span_minutes) FORMAT TSV",
        )
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
    };
    for copy in [&a, &b] {
        let out = orrery()
            .args(["spool", "replay", "--all", "--clickhouse-url", &engine.url])
            .args(["--clickhouse-database", "replayed", "--spool-dir"])
            .arg(copy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(
            counts(),
            [spans, spans, spans],
            "after replaying {}",
            copy.display()
        );
    }
}
