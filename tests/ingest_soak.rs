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
