//! Service-graph correctness on the real embedded engine: known topologies give exactly the
//! expected edges, counts, errors and virtual nodes — computed live from spans, from rollups,
//! and with the halves of a call arriving in separate, out-of-order batches.

mod graph_support;
mod query_support;

use std::time::Duration;

use graph_support::*;
use orrery_query::graph::Level;
use orrery_store::testing::fresh_database;
use query_support::*;

#[tokio::test]
async fn known_topology_gives_exact_edges_live_and_from_rollups() {
    let ch = fresh_database().await;
    let base = (now_ns() / MINUTE - 4) * MINUTE + 10_000 * MS;
    insert(&ch, &mesh(base)).await;
    let w = window(base - MINUTE, now_ns());

    // Live: nothing rolled up yet.
    let live = graph_of(&ch, Level::Region, w).await;
    assert_eq!(edge_table(&live), expected_mesh());
    let db = live
        .node("database:postgresql")
        .expect("virtual database node");
    assert_eq!(db.kind, "database");
    assert_eq!(db.name, "postgresql");
    assert_eq!(live.node("external:stripe").unwrap().kind, "external");
    assert_eq!(live.node("INTERNET").unwrap().kind, "entry");
    assert_eq!(live.node("INTERNET").unwrap().rank, 0);
    assert_eq!(live.node("frontend").unwrap().rank, 1);
    assert_eq!(live.node("api").unwrap().rank, 2);
    assert_eq!(
        live.cycles,
        vec![vec!["api".to_string(), "worker".to_string()]]
    );
    assert!(live.edge("api", "worker").unwrap().in_cycle);
    assert!(!live.edge("frontend", "api").unwrap().in_cycle);
    // Node metrics: server spans served.
    let api = live.node("api").unwrap();
    assert_eq!((api.metrics.requests, api.metrics.errors), (10, 2));
    assert_eq!(live.data_quality.spans, mesh(base).len() as u64);
    assert_eq!(live.data_quality.orphan_spans, 0);
    assert_eq!(live.data_quality.unmatched_client_spans, 14);
    // frontend->api error rate 20% is danger with default thresholds.
    assert_eq!(
        live.edge("frontend", "api").unwrap().health,
        orrery_query::model::Health::Danger
    );
    assert_eq!(
        live.edge("frontend", "search").unwrap().health,
        orrery_query::model::Health::Normal
    );

    // Rolled up: the same answer from the per-minute tables.
    let report = rollup(&ch, Duration::from_secs(600)).await;
    assert!(!report.computed.is_empty());
    let rolled = graph_of(&ch, Level::Region, w).await;
    assert_eq!(edge_table(&rolled), expected_mesh());
    assert_eq!(rolled.data_quality, live.data_quality);
    // Running again (another replica, or the next tick) changes nothing.
    let again = rollup(&ch, Duration::from_secs(600)).await;
    assert!(
        again.computed.is_empty(),
        "nothing changed, nothing recomputed: {again:?}"
    );
    let twice = graph_of(&ch, Level::Region, w).await;
    assert_eq!(edge_table(&twice), expected_mesh());
}

#[tokio::test]
async fn split_out_of_order_batches_and_a_late_parent_are_exact_after_rollup() {
    let ch = fresh_database().await;
    let base = (now_ns() / MINUTE - 5) * MINUTE + 50_000 * MS;
    // Call 1: the server span arrives first (collector B), its client span later (collector A),
    // after the rollup already closed the minute.
    let parent = span("c1", "1", "", "checkout", "Server", base, 100);
    let client = span("c1", "2", "1", "checkout", "Client", base + MS, 80);
    // The server span starts in the *next* minute (clock skew / slow network): split minutes.
    let server = span("c1", "3", "2", "payments", "Server", base + 15_000 * MS, 20).error();
    insert(&ch, std::slice::from_ref(&server)).await;
    let w = window(base - MINUTE, now_ns());

    let before = graph_of(&ch, Level::Region, w).await;
    assert_eq!(edge_table(&before), vec![]);
    assert_eq!(
        before.data_quality.orphan_spans, 1,
        "server span without its parent"
    );
    rollup(&ch, Duration::from_secs(900)).await;
    let rolled = graph_of(&ch, Level::Region, w).await;
    assert_eq!(rolled.data_quality.orphan_spans, 1);

    // The other collector's batch: client then the late root, out of order within the batch.
    insert(&ch, &[client, parent]).await;
    // The next read already sees the pair (the minutes whose span counts changed since their
    // rollup are read from spans until recomputed: see the backdated-spans test below).
    let report = rollup(&ch, Duration::from_secs(900)).await;
    assert_eq!(
        report.late_spans, 0,
        "client and root landed in a minute never rolled up before"
    );
    let g = graph_of(&ch, Level::Region, w).await;
    assert_eq!(
        edge_table(&g),
        vec![
            e("INTERNET", "checkout", 1, 0),
            e("checkout", "payments", 1, 1)
        ]
    );
    assert_eq!(g.data_quality.orphan_spans, 0);
    assert_eq!(
        g.data_quality.unmatched_client_spans, 0,
        "the client span found its server span"
    );

    // A late parent: a child is rolled up alone, then its parent arrives in the same minute.
    let base2 = base + 2 * MINUTE;
    let child = span("c2", "b", "a", "ledger", "Server", base2 + 2_000 * MS, 5);
    insert(&ch, &[child]).await;
    rollup(&ch, Duration::from_secs(900)).await;
    let g = graph_of(&ch, Level::Region, w).await;
    assert!(g.edge("payments", "ledger").is_none());
    assert_eq!(g.data_quality.orphan_spans, 1);
    insert(
        &ch,
        &[span(
            "c2",
            "a",
            "",
            "payments",
            "Consumer",
            base2 + 1_000 * MS,
            10,
        )],
    )
    .await;
    let report = rollup(&ch, Duration::from_secs(900)).await;
    assert_eq!(report.late_spans, 1);
    let g = graph_of(&ch, Level::Region, w).await;
    assert_eq!(
        edge_table(&g),
        vec![
            e("INTERNET", "checkout", 1, 0),
            e("INTERNET", "payments", 1, 0),
            e("checkout", "payments", 1, 1),
            e("payments", "ledger", 1, 0),
        ]
    );
    assert_eq!(g.data_quality.orphan_spans, 0);
    assert_eq!(g.data_quality.late_spans, 1);
}

#[tokio::test]
async fn async_messaging_pairs_producer_and_consumer_or_makes_a_queue_node() {
    let ch = fresh_database().await;
    let base = (now_ns() / MINUTE - 3) * MINUTE + 5_000 * MS;
    let mut rows = Vec::new();
    for t in 0..4 {
        let tr = format!("m{t}");
        let ts = base + t * 1000 * MS;
        rows.push(span(&tr, "1", "", "orders", "Server", ts, 20));
        rows.push(
            span(&tr, "2", "1", "orders", "Producer", ts + MS, 2).attr("messaging.system", "kafka"),
        );
        if t < 3 {
            // consumed (later, by another service): an edge orders -> billing
            let mut c = span(&tr, "3", "2", "billing", "Consumer", ts + 500 * MS, 40);
            if t == 0 {
                c = c.error();
            }
            rows.push(c);
        }
    }
    // Stored with the exporter's older enum spellings: readers accept both.
    let mut old = span("m9", "1", "", "orders", "SPAN_KIND_SERVER", base, 20);
    old.status_code = "STATUS_CODE_ERROR".into();
    rows.push(old);
    insert(&ch, &rows).await;
    let g = graph_of(&ch, Level::Region, window(base - MINUTE, now_ns())).await;
    assert_eq!(
        edge_table(&g),
        vec![
            e("INTERNET", "orders", 5, 1),
            e("orders", "billing", 3, 1),
            e("orders", "queue:kafka", 1, 0),
        ]
    );
    assert_eq!(g.node("queue:kafka").unwrap().kind, "queue");
}

#[tokio::test]
async fn latency_quantiles_and_a_call_just_ingested_show_live() {
    let ch = fresh_database().await;
    let now = now_ns();
    // 100 calls, 1..=100 ms, ingested "now" (the still-open minute).
    let mut rows = Vec::new();
    for i in 1..=100 {
        let tr = format!("q{i}");
        let ts = now - 2_000 * MS - i * MS;
        rows.push(span(&tr, "1", "", "gateway", "Client", ts, 120));
        rows.push(span(&tr, "2", "1", "profile", "Server", ts + MS, i));
    }
    insert(&ch, &rows).await;
    let w = window(now - 5 * MINUTE, orrery_query::now_ns());
    let g = graph_of(&ch, Level::Region, w).await;
    let edge = g
        .edge("gateway", "profile")
        .expect("a call ingested a moment ago is in the graph");
    assert_eq!(edge.metrics.requests, 100);
    let m = &edge.metrics;
    assert!((m.p50_ms - 50.0).abs() <= 3.0, "p50 {}", m.p50_ms);
    assert!((m.p95_ms - 95.0).abs() <= 3.0, "p95 {}", m.p95_ms);
    assert!((m.p99_ms - 99.0).abs() <= 3.0, "p99 {}", m.p99_ms);
    assert!((m.avg_ms - 50.5).abs() < 0.01, "avg {}", m.avg_ms);
    assert!(g.window.live);
}

/// Latency quantiles come from log-bucket histograms: computed live from spans and from the
/// rollups they are the same numbers, each within the bucket (26%) of the exact quantile, and a
/// virtual node's quantiles are those of all calls into it (the union of its edges).
#[tokio::test]
async fn quantiles_are_the_same_live_and_rolled_up_and_virtual_nodes_merge_their_callers() {
    let ch = fresh_database().await;
    let t0 = (now_ns() / MINUTE - 5) * MINUTE;
    let mut rows = Vec::new();
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    for i in 0..200i64 {
        // cart -> redis: 1..=200 µs steps of 1 ms; search -> redis: 10x slower.
        let (tr_a, tr_b) = (format!("r{i}"), format!("s{i}"));
        let ts = t0 + i * 100 * MS;
        let (da, db) = (1 + i, 10 * (1 + i));
        rows.push(span(&tr_a, "1", "", "cart", "Server", ts, da + 1));
        rows.push(span(&tr_a, "2", "1", "cart", "Client", ts, da).attr("db.system.name", "redis"));
        rows.push(span(&tr_b, "1", "", "search", "Server", ts, db + 1));
        rows.push(
            span(&tr_b, "2", "1", "search", "Client", ts, db).attr("db.system.name", "redis"),
        );
        fast.push(da as u64 * MS as u64);
        slow.push(db as u64 * MS as u64);
    }
    insert(&ch, &rows).await;
    let w = window(t0 - MINUTE, now_ns());
    let live = graph_of(&ch, Level::Region, w).await;
    rollup(&ch, Duration::from_secs(3600)).await;
    let rolled = graph_of(&ch, Level::Region, w).await;
    let exact = |v: &mut Vec<u64>, q: f64| {
        v.sort_unstable();
        v[((q * v.len() as f64).ceil() as usize).max(1) - 1] as f64 / 1e6
    };
    let mut all: Vec<u64> = fast.iter().chain(&slow).copied().collect();
    for (g, how) in [(&live, "live"), (&rolled, "rolled up")] {
        let ab = g.edge("cart", "database:redis").expect("cart -> redis");
        for (got, q) in [
            (ab.metrics.p50_ms, 0.5),
            (ab.metrics.p95_ms, 0.95),
            (ab.metrics.p99_ms, 0.99),
        ] {
            let want = exact(&mut fast, q);
            assert!(
                (got - want).abs() <= want * 0.26,
                "{how}: cart p{q} {got} vs {want}"
            );
        }
        let redis = g.nodes.iter().find(|n| n.id == "database:redis").unwrap();
        assert_eq!(redis.metrics.requests, 400);
        let want = exact(&mut all, 0.95);
        assert!(
            (redis.metrics.p95_ms - want).abs() <= want * 0.26,
            "{how}: redis p95 {} vs {want} (union of both callers)",
            redis.metrics.p95_ms
        );
    }
    for (a, b) in [("cart", "database:redis"), ("search", "database:redis")] {
        let (l, r) = (live.edge(a, b).unwrap(), rolled.edge(a, b).unwrap());
        assert_eq!(
            (
                l.metrics.p50_ms,
                l.metrics.p95_ms,
                l.metrics.p99_ms,
                l.metrics.requests
            ),
            (
                r.metrics.p50_ms,
                r.metrics.p95_ms,
                r.metrics.p99_ms,
                r.metrics.requests
            ),
            "{a} -> {b}: live and rolled-up quantiles differ"
        );
    }
}

#[tokio::test]
async fn regions_make_the_global_level_and_focus_shows_neighbours_and_instances() {
    let ch = fresh_database().await;
    let base = (now_ns() / MINUTE - 3) * MINUTE + 5_000 * MS;
    let mut rows = Vec::new();
    for t in 0..6 {
        let tr = format!("r{t}");
        let ts = base + t * MS;
        let inst = if t % 2 == 0 { "web-1" } else { "web-2" };
        rows.push(
            span(&tr, "1", "", "web", "Server", ts, 30)
                .resource("cloud.region", "eu-west-1")
                .resource("service.instance.id", inst),
        );
        rows.push(
            span(&tr, "2", "1", "web", "Client", ts + MS, 20).resource("cloud.region", "eu-west-1"),
        );
        // cross-region call
        rows.push(
            span(&tr, "3", "2", "stock", "Server", ts + 2 * MS, 10)
                .resource("k8s.cluster.name", "us-east"),
        );
        rows.push(
            span(&tr, "4", "3", "stock", "Client", ts + 3 * MS, 5)
                .resource("k8s.cluster.name", "us-east")
                .attr("db.system", "redis"),
        );
    }
    insert(&ch, &rows).await;
    let w = window(base - MINUTE, now_ns());
    let global = graph_of(&ch, Level::Global, w).await;
    assert_eq!(
        edge_table(&global),
        vec![
            e("INTERNET", "region:eu-west-1", 6, 0),
            e("region:eu-west-1", "region:us-east", 6, 0)
        ]
    );
    assert_eq!(global.node("region:us-east").unwrap().kind, "region");

    let req = orrery_query::graph::GraphRequest {
        level: Level::Focused,
        region: None,
        focus: Some("web".into()),
        window: w,
        whats_wrong: false,
        group: Default::default(),
    };
    let focused = orrery_query::graph::graph(&ch.client(), &settings(), &Default::default(), &req)
        .await
        .unwrap();
    assert_eq!(
        edge_table(&focused),
        vec![e("INTERNET", "web", 6, 0), e("web", "stock", 6, 0)]
    );
    assert!(focused.node("database:redis").is_none(), "two hops away");
    let mut instances: Vec<(String, u64)> = focused
        .nodes
        .iter()
        .filter(|n| n.kind == "instance")
        .map(|n| (n.name.clone(), n.metrics.requests))
        .collect();
    instances.sort();
    assert_eq!(instances, vec![("web-1".into(), 3), ("web-2".into(), 3)]);
    assert_eq!(focused.node("web").unwrap().region, "eu-west-1");
    assert!(focused.node("web").unwrap().focused);
}

#[tokio::test]
async fn service_nodes_carry_their_namespace_from_k8s_else_service_namespace() {
    let ch = fresh_database().await;
    let base = (now_ns() / MINUTE - 2) * MINUTE + 5_000 * MS;
    let mut rows = Vec::new();
    for t in 0..4 {
        let tr = format!("n{t}");
        let ts = base + t * MS;
        // k8s.namespace.name wins over service.namespace.
        rows.push(
            span(&tr, "1", "", "shopfront", "Server", ts, 30)
                .resource("k8s.namespace.name", "shop")
                .resource("service.namespace", "ignored"),
        );
        rows.push(
            span(&tr, "2", "1", "shopfront", "Client", ts + MS, 20)
                .resource("k8s.namespace.name", "shop"),
        );
        rows.push(
            span(&tr, "3", "2", "ledger", "Server", ts + 2 * MS, 10)
                .resource("service.namespace", "payments"),
        );
        rows.push(
            span(&tr, "4", "3", "ledger", "Client", ts + 3 * MS, 5)
                .resource("service.namespace", "payments"),
        );
        // no namespace at all
        rows.push(span(&tr, "5", "4", "legacy", "Server", ts + 4 * MS, 2));
        rows.push(
            span(&tr, "6", "5", "legacy", "Client", ts + 5 * MS, 1).attr("db.system", "redis"),
        );
    }
    insert(&ch, &rows).await;
    let w = window(base - MINUTE, now_ns());
    let g = graph_of(&ch, Level::Region, w).await;
    let ns = |id: &str| g.node(id).unwrap().namespace.clone();
    assert_eq!(ns("shopfront").as_deref(), Some("shop"));
    assert_eq!(ns("ledger").as_deref(), Some("payments"));
    assert_eq!(ns("legacy"), None);
    assert_eq!(
        ns("database:redis"),
        None,
        "virtual nodes have no namespace"
    );
    assert_eq!(ns("INTERNET"), None);
    // The same after the rollup (rollups do not carry it; the call table does).
    rollup(&ch, Duration::from_secs(600)).await;
    let rolled = graph_of(&ch, Level::Region, w).await;
    assert_eq!(
        rolled.node("ledger").unwrap().namespace.as_deref(),
        Some("payments")
    );
    // JSON: the field is written only when known.
    let json = serde_json::to_value(&g).unwrap();
    let nodes = json["nodes"].as_array().unwrap();
    let by_id = |id: &str| nodes.iter().find(|n| n["id"] == id).unwrap();
    assert_eq!(by_id("shopfront")["namespace"], "shop");
    assert!(by_id("legacy").get("namespace").is_none());
}

/// When the rollup lags (here: it last ran six minutes ago), everything after its frontier is
/// read from spans — nothing is missed or counted twice — and once it catches up the same
/// answer comes from rollups.
#[tokio::test]
async fn a_lagging_rollup_leaves_no_gap_and_no_double_count() {
    let ch = fresh_database().await;
    let now = now_ns();
    let mut rows = mesh(now - 12 * MINUTE);
    for r in mesh(now - 4 * MINUTE) {
        let mut r = r;
        r.trace_id = format!("{:0>32}", format!("c{}", &r.trace_id[30..]));
        rows.push(r);
    }
    insert(&ch, &rows).await;
    let lagging = orrery_query::rollup::Rollup::new(ch.client(), settings())
        .run_once(now - 6 * MINUTE, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(!lagging.computed.is_empty());
    let doubled: Vec<_> = expected_mesh()
        .into_iter()
        .map(|(a, b, n, e)| (a, b, 2 * n, 2 * e))
        .collect();
    let w = window(now - 20 * MINUTE, now_ns());
    let g = graph_of(&ch, Level::Region, w).await;
    assert_eq!(edge_table(&g), doubled);
    assert_eq!(g.data_quality.spans, rows.len() as u64);
    // Caught up: the same answer from rollups.
    rollup(&ch, Duration::from_secs(3600)).await;
    assert_eq!(edge_table(&graph_of(&ch, Level::Region, w).await), doubled);
}

/// Namespaces are read from the window's last minute first and from older spans only for the
/// services it did not name: the answer must still be "the latest span that has one" — a
/// service moved to another namespace a while ago, one whose recent spans carry none (its older
/// ones do), one seen only long ago, and one that never has one.
#[tokio::test]
async fn namespaces_are_the_latest_known_whether_recent_or_older() {
    use orrery_query::graph::fetch;
    let ch = fresh_database().await;
    let now = now_ns();
    let (old, recent) = (now - 10 * MINUTE, now - 20_000 * MS);
    let rows = vec![
        // moved: "blue" ten minutes ago, "green" now.
        span("m1", "1", "", "mover", "Server", old, 5).resource("k8s.namespace.name", "blue"),
        span("m2", "1", "", "mover", "Server", recent, 5).resource("k8s.namespace.name", "green"),
        // recent spans without one; the older span's stays the answer.
        span("q1", "1", "", "quiet", "Server", old, 5).resource("service.namespace", "ops"),
        span("q2", "1", "", "quiet", "Server", recent, 5),
        span("q3", "1", "", "quiet", "Server", recent + MS, 5),
        // seen only ten minutes ago.
        span("g1", "1", "", "gone", "Server", old + MS, 5).resource("service.namespace", "past"),
        // never one.
        span("n1", "1", "", "none", "Server", old, 5),
        span("n2", "1", "", "none", "Server", recent, 5),
    ];
    insert(&ch, &rows).await;
    let w = window(now - 15 * MINUTE, now_ns());
    let got = fetch::namespaces(&ch.client(), w).await.unwrap();
    let want: std::collections::BTreeMap<String, String> =
        [("gone", "past"), ("mover", "green"), ("quiet", "ops")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    assert_eq!(got, want);
    // A window that ends before the move answers with what was known then.
    let before = window(now - 15 * MINUTE, old + MINUTE);
    let got = fetch::namespaces(&ch.client(), before).await.unwrap();
    assert_eq!(got.get("mover").map(String::as_str), Some("blue"));
    assert_eq!(got.get("quiet").map(String::as_str), Some("ops"));
}

/// A graph read starts its live tail beside the rollup markers, on the tail the last read of
/// this process found (`fetch::tail_guess`): the answer is the read after the markers, whether
/// the markers confirm the guess or late spans refute it.
#[tokio::test]
async fn a_live_tail_read_on_a_guess_is_the_read_after_the_markers() {
    use orrery_query::graph::cache::RolledCache;
    use orrery_query::graph::fetch::{Rolled, edges::small_tail};
    use orrery_query::rollup::Rollup;
    let ch = fresh_database().await;
    let now = now_ns();
    let base = now - 35_000 * MS;
    insert(&ch, &mesh(base)).await;
    // A tail is read (and guessed) only when the newest seconds are read from spans: by
    // default a live graph ends at the newest closed slot and has none.
    let s = orrery_query::GraphArgs {
        graph_live_edge_from_spans: true,
        ..settings()
    };
    let roll = Rollup::new(ch.client(), settings());
    roll.run_slots(now_ns()).await.unwrap();
    let w = window(now - MINUTE, now_ns());
    // The live ranges and small-tail choice the markers give a read of `w` now.
    let markers = || async {
        let mut rolled = Rolled::read_window(&ch.client(), w.baseline().lo, w.hi)
            .await
            .unwrap();
        rolled.max_unrolled = s.graph_max_unrolled.as_nanos() as i64;
        rolled.readable_from = orrery_query::rollup::copy_from(&s, w.now);
        let mut c = rolled.coverage(w);
        let whole = small_tail(&s, &rolled, w, &mut c);
        (c.live, whole)
    };
    let same = |a: &orrery_query::model::Graph, b: &orrery_query::model::Graph| {
        let json = |g: &orrery_query::model::Graph| {
            serde_json::to_value((&g.nodes, &g.edges, &g.whats_wrong, &g.data_quality)).unwrap()
        };
        assert_eq!(json(a), json(b));
    };
    let cache = RolledCache::default();
    assert!(cache.last_tail().is_none());
    let first = graph_with(&ch, &s, &cache, Level::Region, w).await;
    assert_eq!(edge_table(&first), expected_mesh());
    let guess = cache
        .last_tail()
        .expect("the live read noted its tail")
        .guess(w)
        .expect("a tail at the live edge");
    assert!(guess.live[0].0 > w.lo, "the slots are rolled up: {guess:?}");
    assert_eq!((guess.live.clone(), guess.whole), markers().await);
    // Confirmed: the early read's answer is kept — the same graph as a read without a guess.
    let kept = graph_with(&ch, &s, &cache, Level::Region, w).await;
    same(
        &kept,
        &graph_with(&ch, &s, &RolledCache::default(), Level::Region, w).await,
    );
    same(&kept, &first);

    // The same traces again under other ids, backdated into the rolled-up slots: the markers
    // now read them from spans, so the guess is refuted and the tail read after them.
    let late: Vec<_> = mesh(base)
        .into_iter()
        .map(|mut r| {
            r.trace_id = format!("{:0>32}", format!("f{}", &r.trace_id[30..]));
            r
        })
        .collect();
    insert(&ch, &late).await;
    assert_ne!((guess.live.clone(), guess.whole), markers().await);
    let refuted = graph_with(&ch, &s, &cache, Level::Region, w).await;
    let doubled: Vec<_> = expected_mesh()
        .into_iter()
        .map(|(a, b, n, e)| (a, b, 2 * n, 2 * e))
        .collect();
    assert_eq!(edge_table(&refuted), doubled);
    same(
        &refuted,
        &graph_with(&ch, &s, &RolledCache::default(), Level::Region, w).await,
    );
}

/// A minute rolled up while empty has no rows, and a read takes nothing from rows for it
/// (`fetch::RolledTables`: no statement at all when every minute is such) — until a span
/// backdated into it makes it stale: the very next read has its calls (from spans), and the
/// rollup's recomputation (rows again) gives the same answer.
#[tokio::test]
async fn spans_backdated_into_minutes_rolled_up_empty_are_in_the_very_next_read() {
    use orrery_query::graph::cache::RolledCache;
    let ch = fresh_database().await;
    let m = (now_ns() / MINUTE - 6) * MINUTE;
    // Only minute m+4 has spans at first: m..m+3 are rolled up empty.
    insert(&ch, &mesh(m + 4 * MINUTE + 10_000 * MS)).await;
    rollup(&ch, Duration::from_secs(900)).await;
    let (s, cache) = (settings(), RolledCache::default());
    let w = window(m, m + 4 * MINUTE);
    let empty = graph_with(&ch, &s, &cache, Level::Region, w).await;
    assert!(empty.edges.is_empty(), "{:?}", edge_table(&empty));
    assert_eq!(empty.data_quality.spans, 0);

    let late: Vec<_> = mesh(m + MINUTE + 10_000 * MS)
        .into_iter()
        .map(|mut r| {
            r.trace_id = format!("{:0>32}", format!("b{}", &r.trace_id[30..]));
            r
        })
        .collect();
    insert(&ch, &late).await;
    let g = graph_with(&ch, &s, &cache, Level::Region, w).await;
    assert_eq!(
        edge_table(&g),
        expected_mesh(),
        "the next read, before any rollup"
    );
    rollup(&ch, Duration::from_secs(900)).await;
    let again = graph_with(&ch, &s, &cache, Level::Region, w).await;
    assert_eq!(edge_table(&again), expected_mesh(), "recomputed: from rows");
    assert_eq!(g.data_quality.spans, again.data_quality.spans);
}
