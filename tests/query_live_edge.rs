//! The 10-second slots at the live edge (issue 14 item 2), on the real embedded engine: a slot
//! closes `--graph-grace` after it ends, but only once every span stored in it has settled —
//! so a client still unsettled when its slot would close is never lost from the slot rows —
//! and spans arriving after a slot closed (settled or not) are in the very next read.
//!
//! Time is simulated by passing a later "now" to the rollup and to the window (the rules only
//! ever compare span times with it), so the test waits for nothing.

mod query_support;

use std::time::Duration;

use orrery_query::graph::Level;
use orrery_query::graph::fetch::Rolled;
use orrery_query::rollup::{Rollup, SLOT_NS};
use orrery_query::{GraphArgs, params};
use orrery_store::testing::fresh_database;
use query_support::*;

const SEC: i64 = 1_000_000_000;

/// One trace in `slot`: a root `api` server span, and an `api` call to postgres (a virtual
/// edge once settled) that starts 9.9 s into the slot and ends at `client_end`.
fn trace(id: &str, slot: i64, client_end: i64) -> Vec<orrery_store::SpanRow> {
    let start = slot + 9_900 * MS;
    vec![
        span(id, "1", "", "api", "Server", slot + SEC, 5),
        span(
            id,
            "2",
            "1",
            "api",
            "Client",
            start,
            (client_end - start) / MS,
        )
        .attr("db.system.name", "postgresql"),
    ]
}

fn calls(g: &orrery_query::model::Graph, to: &str) -> u64 {
    edge_table(g)
        .into_iter()
        .find(|e| e.1 == to)
        .map_or(0, |e| e.2)
}

#[tokio::test]
async fn a_slot_closes_once_its_spans_settle_and_late_spans_still_count_exactly() {
    let ch = fresh_database().await;
    // A long grace so that "unsettled" lasts for the whole test without any waiting.
    let grace = Duration::from_secs(20);
    let s = GraphArgs {
        graph_grace: grace,
        ..settings()
    };
    let g = grace.as_nanos() as i64;
    let t0 = now_ns();
    let slot = (t0 - 45 * SEC).div_euclid(SLOT_NS) * SLOT_NS;
    let db = "database:postgresql";
    let roll = Rollup::new(ch.client(), s.clone());
    let cache = orrery_query::graph::cache::RolledCache::default();
    let at = |now: i64| params::span(t0 - 60 * SEC, t0, now).unwrap();
    let read = |now: i64| {
        let (ch, s, cache) = (&ch, &s, &cache);
        async move { graph_with(ch, s, cache, Level::Region, at(now)).await }
    };
    let frontier = |now: i64| {
        let ch = &ch;
        async move {
            let w = at(now);
            let c = Rolled::read(&ch.client(), w.lo, w.hi)
                .await
                .unwrap()
                .coverage(w);
            // Spans from where the slots end (nothing when they reach the window's end).
            if let Some(tail) = c.live.last() {
                assert_eq!(tail.0, c.slots.1, "{c:?}");
            }
            c.slots.1
        }
    };

    // The client ended 1 s ago: its slot ended long before the grace, but the client has
    // not settled (it may still find a child), so the slot is not closed yet.
    insert(&ch, &trace("a", slot, t0 - SEC)).await;
    let done = roll.run_slots(t0).await.unwrap();
    assert!(
        !done.contains(&slot),
        "closed with an unsettled span: {done:?}"
    );
    assert!(
        done.iter().any(|&x| x < slot),
        "the empty slots before it close: {done:?}"
    );
    assert!(frontier(t0).await <= slot, "the slot is read from spans");
    let live = read(t0).await;
    assert_eq!(calls(&live, "api"), 1);
    assert_eq!(calls(&live, db), 0, "not settled: not a virtual edge yet");

    // The rollup's loop wakes when it can close a slot: no later than a millisecond after the
    // client settles. At the very end of its grace it has not settled (it must have ended
    // strictly before); at the moment the pass named, it has.
    let start = slot + 9_900 * MS;
    let end = start + (t0 - SEC - start) / MS * MS;
    let settles = end + g + MS;
    let pass = roll.slot_pass(end + g).await.unwrap();
    assert!(!pass.computed.contains(&slot), "{pass:?}");
    assert!(
        pass.next_ns <= settles && pass.next_ns > end + g,
        "the next pass at {} (settles at {settles}): {pass:?}",
        pass.next_ns
    );
    // Once it settled the slot closes, with the virtual edge in its rows.
    let t1 = settles;
    let done = roll.run_slots(t1).await.unwrap();
    assert!(done.contains(&slot), "{done:?}");
    assert!(frontier(t1).await > slot, "the slot is read from slot rows");
    let g1 = read(t1).await;
    assert_eq!((calls(&g1, "api"), calls(&g1, db)), (1, 1));

    // A settled trace stored late into the closed slot: in the very next read (from spans),
    // then in the slot's recomputed rows.
    insert(&ch, &trace("b", slot, slot + 9_950 * MS)).await;
    assert!(
        frontier(t1).await <= slot,
        "the changed slot is read from spans"
    );
    let g2 = read(t1).await;
    assert_eq!((calls(&g2, "api"), calls(&g2, db)), (2, 2));
    assert!(roll.run_slots(t1).await.unwrap().contains(&slot));
    assert!(frontier(t1).await > slot);
    let g2 = read(t1).await;
    assert_eq!((calls(&g2, "api"), calls(&g2, db)), (2, 2));

    // An unsettled span stored late into it: read from spans (its entry counts at once, its
    // client once settled), and the slot is not closed again until it settles.
    insert(&ch, &trace("c", slot, t1 - SEC)).await;
    let g3 = read(t1).await;
    assert_eq!((calls(&g3, "api"), calls(&g3, db)), (3, 2));
    let done = roll.run_slots(t1).await.unwrap();
    assert!(!done.contains(&slot), "{done:?}");
    assert!(frontier(t1).await <= slot);
    let t2 = t1 + g;
    assert!(roll.run_slots(t2).await.unwrap().contains(&slot));
    assert!(frontier(t2).await > slot);
    let g4 = read(t2).await;
    assert_eq!((calls(&g4, "api"), calls(&g4, db)), (3, 3));
    // The minute rollup agrees with the slots.
    Rollup::new(ch.client(), s.clone())
        .run_once(t2, Duration::from_secs(600))
        .await
        .unwrap();
    let g5 = read(t2).await;
    assert_eq!((calls(&g5, "api"), calls(&g5, db)), (3, 3));
}

/// At the live edge a parent is looked up only 15 s before the live range
/// (`graph_rules::LIVE_PARENT_NEAR_NS`): a parent inside that is found at once, an older one
/// is never replaced by a wrong caller or an orphan — the call is left out of the live read
/// and counted by the slot rollup (whole lookback) when its slot closes.
#[tokio::test]
async fn the_live_edge_finds_near_parents_and_leaves_older_ones_to_the_slot() {
    let ch = fresh_database().await;
    // The live edge read from spans: by default the graph ends before it (the last test).
    let s = GraphArgs {
        graph_live_edge_from_spans: true,
        ..settings()
    };
    let slot = now_ns().div_euclid(SLOT_NS) * SLOT_NS - 60 * SEC;
    let child = slot + 3 * SEC;
    insert(
        &ch,
        &[
            span("n", "1", "", "gateway", "Server", child - 10 * SEC, 9_000),
            span("n", "2", "1", "api", "Server", child, 5),
            span("f", "1", "", "web", "Server", child - 30 * SEC, 29_000),
            span("f", "2", "1", "api", "Server", child, 5),
        ],
    )
    .await;
    let roll = Rollup::new(ch.client(), s.clone());
    let cache = orrery_query::graph::cache::RolledCache::default();
    let at = |now: i64| params::span(slot - 50 * SEC, now, now).unwrap();

    // Slots closed up to the children's slot: the live part starts there.
    let t1 = slot + 5 * SEC;
    roll.run_slots(t1).await.unwrap();
    let w = at(t1);
    let c = Rolled::read(&ch.client(), w.lo, w.hi)
        .await
        .unwrap()
        .coverage(w);
    assert_eq!(c.slots.1, slot, "{c:?}");
    let live = graph_with(&ch, &s, &cache, Level::Region, w).await;
    let table = edge_table(&live);
    assert!(
        table.contains(&("gateway".into(), "api".into(), 1, 0)),
        "{table:?}"
    );
    assert!(
        !table.iter().any(|e| e.1 == "api" && e.0 != "gateway"),
        "the far parent's child has no caller yet, not a wrong one: {table:?}"
    );
    assert_eq!(live.data_quality.orphan_spans, 0);

    // Its slot closes: the slot rollup finds the far parent.
    let t2 = slot + 11 * SEC;
    assert!(roll.run_slots(t2).await.unwrap().contains(&slot));
    let g = graph_with(&ch, &s, &cache, Level::Region, at(t2)).await;
    let table = edge_table(&g);
    for e in [("gateway", "api"), ("web", "api")] {
        assert!(
            table.contains(&(e.0.into(), e.1.into(), 1, 0)),
            "{e:?}: {table:?}"
        );
    }
    assert_eq!(g.data_quality.orphan_spans, 0);
}

/// The live edge of a service-level read is read without regions (`edges::regionless`: the
/// rolled-up and slot parts label every edge and node they hold), yet every node keeps its
/// own region: known ones from the slot rows, a service seconds old — only in the live part,
/// as a caller with served spans and as a callee with none (its region comes from the edge
/// into it) — from its own spans.
#[tokio::test]
async fn the_live_edge_without_regions_still_gives_every_node_its_own_region() {
    let ch = fresh_database().await;
    // The live edge read from spans: by default the graph ends before it (the last test).
    let s = GraphArgs {
        graph_live_edge_from_spans: true,
        ..settings()
    };
    let slot = now_ns().div_euclid(SLOT_NS) * SLOT_NS - 60 * SEC;
    let known = |trace: &str, at: i64| {
        vec![
            span(trace, "1", "", "gateway", "Server", at, 5).resource("cloud.region", "eu"),
            span(trace, "2", "1", "api", "Server", at + MS, 2).resource("cloud.region", "us"),
        ]
    };
    insert(&ch, &known("k1", slot + 3 * SEC)).await;
    let roll = Rollup::new(ch.client(), s.clone());
    assert!(
        roll.run_slots(slot + 11 * SEC)
            .await
            .unwrap()
            .contains(&slot)
    );
    let cache = orrery_query::graph::cache::RolledCache::default();
    let now = slot + 15 * SEC;
    let w = params::span(slot - 50 * SEC, now, now).unwrap();
    let region = |g: &orrery_query::model::Graph, id: &str| {
        g.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.region.clone())
            .unwrap_or_else(|| panic!("no node {id}: {:?}", g.nodes))
    };

    // Only known services at the live edge: their regions come from the slot rows.
    insert(&ch, &known("k2", slot + 12 * SEC)).await;
    let c = Rolled::read(&ch.client(), w.lo, w.hi)
        .await
        .unwrap()
        .coverage(w);
    assert_eq!(c.slots.1, slot + SLOT_NS, "{c:?}");
    assert!(!c.live.is_empty(), "{c:?}");
    let g = graph_with(&ch, &s, &cache, Level::Region, w).await;
    assert!(edge_table(&g).contains(&("gateway".into(), "api".into(), 2, 0)));
    assert_eq!(
        (region(&g, "gateway"), region(&g, "api")),
        ("eu".into(), "us".into())
    );

    // A new service at the live edge, and a callee of it that serves nothing (an internal
    // span: no node rows, the node's region is the edge's callee region).
    insert(
        &ch,
        &[
            span("n", "1", "", "newbie", "Server", slot + 12 * SEC, 5)
                .resource("cloud.region", "ap"),
            span("n", "2", "1", "worker", "Internal", slot + 12 * SEC + MS, 1)
                .resource("cloud.region", "sa"),
        ],
    )
    .await;
    let g = graph_with(&ch, &s, &cache, Level::Region, w).await;
    let table = edge_table(&g);
    assert!(
        table.contains(&("newbie".into(), "worker".into(), 1, 0)),
        "{table:?}"
    );
    assert!(
        table.contains(&("gateway".into(), "api".into(), 2, 0)),
        "{table:?}"
    );
    for (id, want) in [
        ("gateway", "eu"),
        ("api", "us"),
        ("newbie", "ap"),
        ("worker", "sa"),
    ] {
        assert_eq!(region(&g, id), want, "{id}");
    }
    // The same answer as a read without rollups (every range with its regions).
    let all = GraphArgs {
        graph_no_rollup: true,
        ..s.clone()
    };
    let plain = graph_with(&ch, &all, &Default::default(), Level::Region, w).await;
    assert_eq!(edge_table(&plain), table);
    for id in ["gateway", "api", "newbie", "worker"] {
        assert_eq!(region(&plain, id), region(&g, id), "{id}");
    }
}

/// A tail with few spans reads its 10-second slots from spans, in the tail's own statement
/// with the whole parent lookback (`edges::small_tail`, `--graph-small-tail-spans`): every
/// call is then counted exactly once whichever way the slots are read. Calls sit on the
/// boundaries — a child on the first ns of the slots (where the minute rows end), a parent on
/// the slots' last ns and its child on the tail's first — plus a parent 9 minutes before its
/// child in a closed slot, an orphan, a virtual edge, and a call stored late into a closed
/// slot; the graph equals the one read from slot rows and the one read without rollups.
#[tokio::test]
async fn a_small_tail_reads_its_slots_from_spans_and_counts_each_call_once() {
    use orrery_query::graph::fetch::edges::small_tail;
    let ch = fresh_database().await;
    // With a tail after the slots (the newest seconds read from spans too); the settled graph,
    // whose small tail is the slots alone, is the next test's.
    let s = GraphArgs {
        graph_live_edge_from_spans: true,
        ..settings()
    };
    let m = now_ns().div_euclid(60 * SEC) * 60 * SEC - 120 * SEC;
    let t = m + 40 * SEC;
    let call = |tr: &str, caller: &str, at: i64, child_at: i64| {
        vec![
            span(tr, "1", "", caller, "Server", at, 1),
            span(tr, "2", "1", "api", "Server", child_at, 1),
        ]
    };
    let mut rows = Vec::new();
    rows.extend(call("b0", "gw", m - 30 * SEC, m));
    rows.extend(call("b1", "gw", m + 30 * SEC - 1, m + 30 * SEC));
    rows.extend(call("far", "web", m - 540 * SEC, m + 15 * SEC));
    // A caller only the tail holds, in its own region: the small tail is read without regions
    // at the service level, so this key is read again with them.
    rows.extend(
        call("tail", "newgw", m + 35 * SEC, m + 35 * SEC + MS)
            .into_iter()
            .map(|r| r.resource("cloud.region", "ap")),
    );
    rows.push(span("orph", "2", "9", "api", "Server", m + 5 * SEC, 1));
    rows.push(span("db", "1", "", "api", "Client", m + 20 * SEC, 1).attr("db.system.name", "pg"));
    insert(&ch, &rows).await;
    let roll = Rollup::new(ch.client(), s.clone());
    roll.run_once(t, Duration::from_secs(900)).await.unwrap();
    roll.run_slots(t).await.unwrap();
    let w = params::span(m - 11 * 60 * SEC, t, t).unwrap();

    let check = |late: u64| {
        let (ch, s, roll) = (&ch, &s, &roll);
        async move {
            let rolled = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
            let mut c = rolled.coverage(w);
            let slots = c.slots;
            assert!(
                slots.0 == m && slots.1 > m,
                "slot rows cover the start: {c:?}"
            );
            assert_eq!(c.live.last().unwrap().0, slots.1, "{c:?}");
            let few = GraphArgs {
                graph_small_tail_spans: 4,
                ..s.clone()
            };
            assert_eq!(
                small_tail(&few, &rolled, w, &mut c.clone()),
                None,
                "11 spans > 4"
            );
            assert_eq!(small_tail(s, &rolled, w, &mut c), Some((m, w.hi)));
            assert_eq!((c.slots.0, c.slots.1, c.live.last().unwrap().0), (m, m, m));

            let from_spans = graph_with(ch, s, &Default::default(), Level::Region, w).await;
            let rows_only = GraphArgs {
                graph_small_tail_spans: 0,
                ..s.clone()
            };
            let from_rows = graph_with(ch, &rows_only, &Default::default(), Level::Region, w).await;
            let plain = GraphArgs {
                graph_no_rollup: true,
                ..s.clone()
            };
            let plain = graph_with(ch, &plain, &Default::default(), Level::Region, w).await;
            let table = edge_table(&from_spans);
            for want in [
                e("gw", "api", 2 + late, 0),
                e("newgw", "api", 1, 0),
                e("web", "api", 1, 0),
                e("api", "database:pg", 1, 0),
            ] {
                assert!(table.contains(&want), "{want:?}: {table:?}");
            }
            let mut want_rows = table.clone();
            if late > 0 {
                // The late call changed its slot's count, so the slot rows end before it and
                // the far parent's child is in the near-lookup tail again: left out of that
                // read (no caller rather than a wrong one) until the slot is recomputed. The
                // small tail reads it with the whole lookback: found.
                want_rows.retain(|e| *e != ("web".to_string(), "api".to_string(), 1, 0));
                assert_eq!(edge_table(&from_rows), want_rows);
                roll.run_slots(t).await.unwrap();
                let again = graph_with(ch, &rows_only, &Default::default(), Level::Region, w).await;
                want_rows = table.clone();
                assert_eq!(edge_table(&again), want_rows, "recomputed slot");
            }
            for other in [&from_rows, &plain] {
                if late == 0 || std::ptr::eq(other, &plain) {
                    assert_eq!(edge_table(other), want_rows);
                }
                assert_eq!(other.data_quality.orphan_spans, 1);
                let nodes = |g: &orrery_query::model::Graph| {
                    let mut v: Vec<_> = g
                        .nodes
                        .iter()
                        .map(|n| (n.id.clone(), n.region.clone(), n.metrics.requests))
                        .collect();
                    v.sort();
                    v
                };
                assert_eq!(nodes(other), nodes(&from_spans));
            }
            assert_eq!(from_spans.data_quality.orphan_spans, 1);
        }
    };
    check(0).await;
    // A call stored late into a closed slot: its slot's count changed, so the slot rows end
    // before it (read from spans either way) — still once.
    insert(&ch, &call("late", "gw", m + 22 * SEC, m + 22 * SEC + MS)).await;
    check(1).await;
}

/// By default a live graph ends at the newest 10-second slot the rollup closed
/// (`Rolled::settled_through`): calls after it — still being exported — wait for their slot,
/// rates are per second up to it, `window.through_ms` says where, and the next read guesses
/// no tail. Read from slot rows and as a small tail (the slots' spans, no tail after them).
/// With `--graph-live-edge-from-spans`, and when the slot rollup is more than 30 s behind,
/// the graph is read to now.
#[tokio::test]
async fn a_live_graph_ends_at_the_newest_closed_slot_and_its_rates_are_per_second_up_to_it() {
    use orrery_query::graph::cache::RolledCache;
    use orrery_query::graph::fetch::coverage::SETTLED_LAG_NS;
    use orrery_query::graph::fetch::edges::small_tail;
    let ch = fresh_database().await;
    let s = settings();
    // 20 s into a minute: slots of its own before it, so the small tail has slots to read.
    let slot = now_ns().div_euclid(60 * SEC) * 60 * SEC - 40 * SEC;
    let call = |tr: &str, at: i64| {
        vec![
            span(tr, "1", "", "gw", "Server", at, 1),
            span(tr, "2", "1", "api", "Server", at + MS, 1),
        ]
    };
    // Two calls in `slot`, one in the slot after it.
    let mut rows = call("a", slot + SEC);
    rows.extend(call("b", slot + 2 * SEC));
    rows.extend(call("c", slot + SLOT_NS + SEC));
    insert(&ch, &rows).await;
    let roll = Rollup::new(ch.client(), s.clone());
    let grace = s.graph_grace.as_nanos() as i64;
    // `slot` closes; the next one cannot yet (its end + grace is later).
    let t1 = slot + SLOT_NS + grace + SEC;
    roll.run_once(t1, Duration::from_secs(900)).await.unwrap();
    roll.run_slots(t1).await.unwrap();
    let at = |now: i64| params::span(slot - 11 * 60 * SEC, now, now).unwrap();
    let w = at(t1);
    let gw_api = |g: &orrery_query::model::Graph| g.edge("gw", "api").unwrap().metrics.clone();
    let rps = |calls: f64, through: i64| calls / ((through - w.lo) as f64 / 1e9);

    // The small tail does apply to this window: its slots alone, read from spans.
    let mut rolled = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
    rolled.ends_settled = true;
    let mut c = rolled.coverage(w);
    assert_eq!(
        (c.through, c.slots.1),
        (Some(slot + SLOT_NS), slot + SLOT_NS)
    );
    let whole = small_tail(&s, &rolled, w, &mut c).expect("a few spans: a small tail");
    assert_eq!(whole.1, slot + SLOT_NS, "{c:?}");
    for small in [0, s.graph_small_tail_spans] {
        let s = GraphArgs {
            graph_small_tail_spans: small,
            ..s.clone()
        };
        let cache = RolledCache::default();
        let g = graph_with(&ch, &s, &cache, Level::Region, w).await;
        assert_eq!(g.window.through_ms, Some((slot + SLOT_NS) / 1_000_000));
        let m = gw_api(&g);
        assert_eq!(m.requests, 2, "small tail {small}: the newest call waits");
        assert!((m.rps - rps(2.0, slot + SLOT_NS)).abs() < 1e-9, "{m:?}");
        assert!(cache.last_tail().is_none(), "no tail to start a read on");
    }

    // Read to now: every call, per second up to now.
    let to_now = GraphArgs {
        graph_live_edge_from_spans: true,
        ..s.clone()
    };
    let g = graph_with(&ch, &to_now, &Default::default(), Level::Region, w).await;
    assert_eq!(g.window.through_ms, None);
    let m = gw_api(&g);
    assert_eq!(m.requests, 3);
    assert!((m.rps - rps(3.0, t1)).abs() < 1e-9, "{m:?}");

    // The next slot closes: the third call is in.
    let t2 = t1 + SLOT_NS;
    roll.run_slots(t2).await.unwrap();
    let g = graph_with(&ch, &s, &Default::default(), Level::Region, at(t2)).await;
    assert_eq!(g.window.through_ms, Some((slot + 2 * SLOT_NS) / 1_000_000));
    assert_eq!(gw_api(&g).requests, 3);

    // The slot rollup stops: once its newest slot is more than 30 s old the graph is
    // read to now, a new call included.
    let t3 = slot + 2 * SLOT_NS + SETTLED_LAG_NS + 2 * SEC;
    insert(&ch, &call("d", t3 - 3 * SEC)).await;
    let g = graph_with(&ch, &s, &Default::default(), Level::Region, at(t3)).await;
    assert_eq!(g.window.through_ms, None);
    assert_eq!(gw_api(&g).requests, 4);
}
