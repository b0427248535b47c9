//! Grouping's tests: parameters, exact quantiles from merged histograms (on the real engine
//! and on node groups), and the automatic namespace zoom.

use super::*;
use crate::graph::{GraphRequest, Level};
use orrery_store::SpanRow;
use std::time::Duration;

const MS: i64 = 1_000_000;

#[test]
fn parameters_parse_and_refuse_what_they_cannot_group_by() {
    assert_eq!(parse(None, None).unwrap(), Group::default());
    let g = parse(Some("namespace"), Some("shop,pay,")).unwrap();
    assert_eq!(g.by, Some(GroupBy::Namespace));
    assert_eq!(g.expand.len(), 2);
    assert_eq!(
        parse(Some("attr:k8s.cluster.name"), None).unwrap().by,
        Some(GroupBy::Attr("k8s.cluster.name".into()))
    );
    let e = parse(Some("attr:team"), None).unwrap_err();
    assert!(e.contains("service.namespace"), "{e}");
    assert!(parse(Some("teams"), None).is_err());
    assert!(parse(Some("teams"), None).unwrap_err().contains("auto"));
    let auto = parse(Some("auto"), Some("shop")).unwrap();
    assert!(auto.auto);
    assert!(!parse(Some("namespace"), None).unwrap().auto);
    assert!(parse(None, Some("shop")).is_err());
    let many = (0..=MAX_EXPAND)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        parse(Some("namespace"), Some(&many))
            .unwrap_err()
            .contains("at most")
    );
    let ns = parse(Some("namespace"), None).unwrap();
    assert!(check_level(Level::Region, &ns).is_ok());
    assert!(check_level(Level::Global, &ns).is_err());
    assert!(check_level(Level::Focused, &ns).is_err());
    assert!(check_level(Level::Global, &Group::default()).is_ok());
}

/// `group=prefix` and `group=region` on the server: a group node's quantiles are read off
/// its members' merged histograms (not the worst member's), it is named with its member
/// count, and a service alone in its group stays that service.
#[test]
fn node_groups_merge_histograms_and_leave_lone_services() {
    let part = |ms: &[i64]| {
        let ns: Vec<u64> = ms.iter().map(|d| (d * MS) as u64).collect();
        Part {
            latency: Histogram::of(&ns),
            duration_sum_ns: ns.iter().sum(),
        }
    };
    // payments-api: 39 calls of 5 ms; payments-worker: one of 1 s (its own p95: ~1 s).
    let (api, worker, search) = (vec![5i64; 39], vec![1000i64], vec![7i64; 3]);
    let service = |id: &str, region: &str, ms: &[i64]| Node {
        id: id.into(),
        name: id.into(),
        kind: "service".into(),
        region: region.into(),
        rank: 1,
        metrics: Metrics {
            requests: ms.len() as u64,
            p95_ms: merged_p95(ms),
            ..Default::default()
        },
        ..Default::default()
    };
    let edge = |a: &str, b: &str, n: u64| Edge {
        id: format!("{a}->{b}"),
        source: a.into(),
        target: b.into(),
        metrics: Metrics {
            requests: n,
            ..Default::default()
        },
        ..Default::default()
    };
    let graph = || Graph {
        level: "region".into(),
        nodes: vec![
            Node {
                id: "INTERNET".into(),
                name: "INTERNET".into(),
                kind: "entry".into(),
                ..Default::default()
            },
            service("payments-api", "us", &api),
            service("payments-worker", "us", &worker),
            service("search", "eu", &search),
        ],
        edges: vec![
            edge("INTERNET", "payments-api", 39),
            edge("payments-api", "payments-worker", 1),
            edge("INTERNET", "search", 3),
        ],
        ..Default::default()
    };
    let mut lat = Latencies::default();
    for (id, ms) in [
        ("payments-api", &api),
        ("payments-worker", &worker),
        ("search", &search),
    ] {
        lat.nodes.insert(id.into(), part(ms));
    }
    lat.edges
        .insert(("INTERNET".into(), "payments-api".into()), part(&api));
    lat.edges.insert(
        ("payments-api".into(), "payments-worker".into()),
        part(&worker),
    );
    lat.edges
        .insert(("INTERNET".into(), "search".into()), part(&search));
    let all: Vec<i64> = api.iter().chain(&worker).copied().collect();
    let (exact, worst) = (merged_p95(&all), merged_p95(&worker));
    assert!(exact < 10.0 && worst > 500.0, "{exact} / {worst}");
    let none = BTreeMap::new();
    for (by, group_id, name) in [
        ("prefix", "group:payments", "payments (2)"),
        ("region", "group:us", "us (2)"),
    ] {
        let mut g = graph();
        apply(
            &args(),
            &mut g,
            &parse(Some(by), None).unwrap(),
            &none,
            &lat,
            60.0,
        );
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["INTERNET", group_id, "search"], "{by}");
        let n = g.node(group_id).unwrap();
        assert_eq!((n.kind.as_str(), n.name.as_str()), ("group", name), "{by}");
        assert_eq!(n.metrics.requests, 40);
        assert_eq!(
            n.metrics.p95_ms, exact,
            "{by}: merged, not the worst member's"
        );
        assert_eq!(n.region, "us");
        assert_eq!(g.edge("INTERNET", group_id).unwrap().metrics.requests, 39);
        assert!(
            g.edge(group_id, group_id).is_none(),
            "the inner call is the group's"
        );
        // search is alone in its prefix and its region: it stays, untouched.
        assert_eq!(g.node("search"), graph().node("search"));
        let grouping = g.grouping.as_ref().unwrap();
        assert_eq!(grouping.by, by);
        assert_eq!(grouping.collapsed, [&group_id[6..]]);
        // Expanded, the group's services stay.
        let mut g = graph();
        let expand = parse(Some(by), Some(&group_id[6..])).unwrap();
        apply(&args(), &mut g, &expand, &none, &lat, 60.0);
        assert_eq!(g.nodes.len(), 4, "{by}");
    }
    assert!(
        parse(Some("prefixes"), None)
            .unwrap_err()
            .contains("prefix")
    );
}

/// The API's one path from query parameters to a request: bad groupings are 400s that say
/// what to do, good ones end up in the `GraphRequest` (so live streams never share a
/// computation between differently grouped maps).
#[test]
fn graph_requests_carry_the_grouping_and_refuse_bad_ones() {
    let now = 1_000 * 60_000 * MS;
    let q = |pairs: &[(&str, &str)]| -> crate::params::Query {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let ok = crate::params::graph_request(&q(&[("group", "namespace"), ("expand", "a,b")]), now)
        .unwrap();
    assert_eq!(ok.group.by, Some(GroupBy::Namespace));
    let plain = crate::params::graph_request(&q(&[]), now).unwrap();
    assert_eq!(plain.group, Group::default());
    // group=auto is the UI's default request at every level; it groups only regions.
    for level in ["region", "global"] {
        let auto = crate::params::graph_request(
            &q(&[("group", "auto"), ("level", level), ("expand", "a")]),
            now,
        )
        .unwrap();
        assert!(auto.group.auto && auto.group.by == Some(GroupBy::Namespace));
    }
    assert_ne!(format!("{ok:?}"), format!("{plain:?}"));
    for (pairs, want) in [
        (vec![("group", "attr:team")], "k8s.cluster.name"),
        (
            vec![("group", "namespace"), ("level", "global")],
            "level=region",
        ),
        (
            vec![
                ("group", "namespace"),
                ("level", "focused"),
                ("service", "a"),
            ],
            "level=region",
        ),
        (vec![("expand", "shop")], "expand needs group"),
        (vec![("group", "everything")], "not one of auto"),
    ] {
        let e = crate::params::graph_request(&q(&pairs), now).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{pairs:?}");
        assert!(e.message.contains(want), "{pairs:?}: {}", e.message);
    }
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace: u32,
    id: u32,
    parent: u32,
    service: &str,
    namespace: Option<&str>,
    kind: &str,
    ts: i64,
    dur_ms: i64,
) -> SpanRow {
    let mut s =
        orrery_store::testing::span(trace.into(), id.into(), parent.into(), service, kind, ts);
    if let Some(ns) = namespace {
        s.resource_attributes
            .push(("k8s.namespace.name".into(), ns.to_string()));
        s.resource_attributes
            .push(("service.namespace".into(), format!("team-{ns}")));
    }
    s.duration = (dur_ms * MS) as u64;
    s
}

/// The quantiles `metrics` reports for these durations (ms) through one histogram.
fn merged_p95(durations_ms: &[i64]) -> f64 {
    let ns: Vec<u64> = durations_ms.iter().map(|d| (d * MS) as u64).collect();
    Histogram::of(&ns).p50_p95_p99()[1] / 1e6
}

/// Settings that read what was just stored (no grace, no rollup delay).
fn args() -> GraphArgs {
    GraphArgs {
        graph_grace: Duration::from_millis(1),
        graph_rollup_delay: Duration::from_secs(0),
        ..GraphArgs::default()
    }
}

async fn store(client: &Client, rows: &[SpanRow]) {
    let mut insert = client.insert::<SpanRow>("otel_traces").await.unwrap();
    for r in rows {
        insert.write(r).await.unwrap();
    }
    insert.end().await.unwrap();
}

#[tokio::test]
async fn namespace_quantiles_come_from_the_merged_histograms() {
    let (ch, s, now) = (
        orrery_store::testing::fresh_database().await,
        args(),
        crate::now_ns(),
    );
    let (client, t0) = (ch.client(), now - 3 * 60_000 * MS);
    // INTERNET → web (shop) → cart (shop) → ledger (pay); web → ledger; cart → legacy
    // (no namespace). web is slow twice in 25 calls (its own p95 is ~1 s), cart never is:
    // the namespace's p95 over its 45 served calls is ~5 ms, not its worst member's ~1 s.
    let (mut rows, mut web, mut cart, mut to_pay) = (Vec::new(), vec![], vec![], vec![]);
    for t in 1..=25u32 {
        let ts = t0 + t as i64 * MS;
        let w_ms = if t <= 2 { 1000 } else { 5 };
        web.push(w_ms);
        rows.push(span(t, 1, 0, "web", Some("shop"), "Server", ts, w_ms));
        rows.push(span(t, 2, 1, "web", Some("shop"), "Client", ts, 4));
        if t <= 20 {
            cart.push(5);
            rows.push(span(t, 3, 2, "cart", Some("shop"), "Server", ts, 5));
            rows.push(span(t, 4, 3, "cart", Some("shop"), "Client", ts, 4));
            let l_ms = 3 + t as i64;
            to_pay.push(l_ms);
            rows.push(span(t, 5, 4, "ledger", Some("pay"), "Server", ts, l_ms));
            rows.push(span(t, 6, 3, "cart", Some("shop"), "Client", ts, 2));
            rows.push(span(t, 7, 6, "legacy", None, "Server", ts, 2));
        } else {
            to_pay.push(50);
            rows.push(span(t, 3, 2, "ledger", Some("pay"), "Server", ts, 50));
        }
    }
    store(&client, &rows).await;
    let window = crate::params::span(t0 - 60_000 * MS, now, now).unwrap();
    let req = |group: Group| GraphRequest {
        level: Level::Region,
        region: None,
        focus: None,
        window,
        whats_wrong: false,
        group,
    };
    let plain = crate::graph::graph(&client, &s, &Default::default(), &req(Group::default()))
        .await
        .unwrap();
    let web_p95 = plain.node("web").unwrap().metrics.p95_ms;
    assert_eq!(web_p95, merged_p95(&web));
    assert!(web_p95 > 500.0, "web alone is slow: {web_p95}");
    let shop_members: Vec<i64> = web.iter().chain(&cart).copied().collect();
    let expect_shop = merged_p95(&shop_members);
    assert!(expect_shop < 10.0, "{expect_shop}");

    for rolled_up in [false, true] {
        if rolled_up {
            crate::rollup::Rollup::new(client.clone(), s.clone())
                .run_once(now, Duration::from_secs(600))
                .await
                .unwrap();
        }
        let g = crate::graph::graph(
            &client,
            &s,
            &Default::default(),
            &req(parse(Some("namespace"), None).unwrap()),
        )
        .await
        .unwrap();
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            ["INTERNET", "legacy", "namespace:pay", "namespace:shop"],
            "rolled up: {rolled_up}"
        );
        let shop = g.node("namespace:shop").unwrap();
        assert_eq!(
            (shop.kind.as_str(), shop.name.as_str()),
            ("namespace", "shop")
        );
        assert_eq!(shop.namespace.as_deref(), Some("shop"));
        assert_eq!(shop.metrics.requests, 45);
        assert_eq!(
            shop.metrics.p95_ms, expect_shop,
            "merged histogram, not worst member"
        );
        let avg = shop_members.iter().sum::<i64>() as f64 / 45.0;
        assert!((shop.metrics.avg_ms - avg).abs() < 1e-6);
        // Edges merge between groups with merged quantiles; calls inside shop are gone.
        let e = g.edge("namespace:shop", "namespace:pay").unwrap();
        assert_eq!(e.id, "namespace:shop->namespace:pay");
        assert_eq!(e.metrics.requests, 25);
        assert_eq!(e.metrics.p95_ms, merged_p95(&to_pay));
        assert_eq!(
            g.edge("INTERNET", "namespace:shop").unwrap().metrics.p95_ms,
            merged_p95(&web)
        );
        assert!(g.edge("namespace:shop", "legacy").is_some());
        assert!(g.edge("namespace:shop", "namespace:shop").is_none());
        assert_eq!(g.edges.len(), 3);

        // Expanded, shop's services stay, with exactly the plain graph's numbers.
        let ex = crate::graph::graph(
            &client,
            &s,
            &Default::default(),
            &req(parse(Some("namespace"), Some("shop")).unwrap()),
        )
        .await
        .unwrap();
        assert_eq!(ex.node("web").unwrap(), plain.node("web").unwrap());
        assert_eq!(ex.edge("web", "cart"), plain.edge("web", "cart"));
        assert!(ex.edge("cart", "namespace:pay").is_some());

        // By another kept attribute: service.namespace (team-shop, team-pay).
        let by_team = crate::graph::graph(
            &client,
            &s,
            &Default::default(),
            &req(parse(Some("attr:service.namespace"), None).unwrap()),
        )
        .await
        .unwrap();
        let team = by_team.node("group:team-shop").unwrap();
        assert_eq!(team.kind, "group");
        assert_eq!(team.namespace, None);
        assert_eq!(team.metrics.p95_ms, expect_shop);
    }
}

/// `group=auto` decides on the server, from the ungrouped map: a 300-service region of 6
/// namespaces collapses into them, the demo's 18 services of one namespace do not (nor
/// do 300 services of one), and the user's explicit `group=` / `expand=` still win. The
/// answer says what was done.
#[tokio::test]
async fn auto_grouping_collapses_only_crowded_regions_of_several_namespaces() {
    let (ch, s, now) = (
        orrery_store::testing::fresh_database().await,
        args(),
        crate::now_ns(),
    );
    let (client, t0) = (ch.client(), now - 3 * 60_000 * MS);
    // Region "mesh": 300 services in 6 namespaces; "demo": 18 in one; "mono": 300 in one.
    // Each service is called from the internet and calls the next one of its region.
    let regions: [(&str, usize, usize); 3] = [("mesh", 300, 6), ("demo", 18, 1), ("mono", 300, 1)];
    let mut rows = Vec::new();
    let mut trace = 0u32;
    for (region, n, namespaces) in regions {
        for i in 0..n {
            trace += 1;
            let ts = t0 + trace as i64 * MS;
            let ns = |i: usize| format!("{region}-team-{}", i % namespaces);
            let name = |i: usize| format!("{region}-s{i}");
            let mut a = span(trace, 1, 0, &name(i), Some(&ns(i)), "Server", ts, 5);
            let mut b = span(trace, 2, 1, &name(i), Some(&ns(i)), "Client", ts, 4);
            let j = (i + 1) % n;
            let mut c = span(trace, 3, 2, &name(j), Some(&ns(j)), "Server", ts, 3);
            for r in [&mut a, &mut b, &mut c] {
                r.resource_attributes
                    .push(("cloud.region".into(), region.into()));
            }
            rows.extend([a, b, c]);
        }
    }
    store(&client, &rows).await;
    let window = crate::params::span(t0 - 60_000 * MS, now, now).unwrap();
    let map = |region: &str, group: Option<&str>, expand: Option<&str>| {
        let req = GraphRequest {
            level: Level::Region,
            region: Some(region.to_string()),
            focus: None,
            window,
            whats_wrong: false,
            group: parse(group, expand).unwrap(),
        };
        let (client, s) = (client.clone(), s.clone());
        async move {
            crate::graph::graph(&client, &s, &Default::default(), &req)
                .await
                .unwrap()
        }
    };
    let kinds = |g: &Graph, kind: &str| g.nodes.iter().filter(|n| n.kind == kind).count();
    let teams = |region: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{region}-team-{i}")).collect()
    };

    // Crowded, several namespaces: one node per namespace, and the answer says so.
    let mesh = map("mesh", Some("auto"), None).await;
    assert_eq!(kinds(&mesh, "namespace"), 6, "{:?}", mesh.nodes);
    assert_eq!(kinds(&mesh, "service"), 0);
    let grouping = mesh.grouping.clone().unwrap();
    assert_eq!(grouping.by, "namespace");
    assert!(grouping.auto);
    assert_eq!(grouping.collapsed, teams("mesh", 6));
    assert_eq!(
        grouping.nodes, 301,
        "decided on the ungrouped size (300 + INTERNET)"
    );
    let json = serde_json::to_value(&mesh).unwrap();
    assert_eq!(json["grouping"]["collapsed"].as_array().unwrap().len(), 6);
    // Exactly what group=namespace answers, apart from `auto`.
    let mut explicit = map("mesh", Some("namespace"), None).await;
    assert!(!explicit.grouping.as_ref().unwrap().auto);
    explicit.grouping = mesh.grouping.clone();
    explicit.generated_at_ms = mesh.generated_at_ms;
    assert_eq!(explicit, mesh);

    // The demo: 18 services of one namespace stay services; nothing collapsed.
    let demo = map("demo", Some("auto"), None).await;
    assert_eq!(kinds(&demo, "service"), 18);
    assert_eq!(kinds(&demo, "namespace"), 0);
    let grouping = demo.grouping.clone().unwrap();
    assert!(grouping.auto && grouping.collapsed.is_empty());
    assert_eq!(grouping.nodes, 19);
    // One namespace is never one node, however crowded.
    let mono = map("mono", Some("auto"), None).await;
    assert_eq!(kinds(&mono, "service"), 300);
    assert!(mono.grouping.unwrap().collapsed.is_empty());

    // The user's choice wins: namespaces on the small demo, services on the mesh (and
    // without group= the answer has no `grouping` at all, as before), expand= opens one.
    let demo_ns = map("demo", Some("namespace"), None).await;
    assert_eq!(kinds(&demo_ns, "namespace"), 1);
    assert_eq!(kinds(&demo_ns, "service"), 0);
    for plain in [
        map("mesh", Some("none"), None).await,
        map("mesh", None, None).await,
    ] {
        assert_eq!(kinds(&plain, "service"), 300);
        assert!(plain.grouping.is_none());
        assert!(!serde_json::to_string(&plain).unwrap().contains("grouping"));
    }
    let opened = map("mesh", Some("auto"), Some("mesh-team-0")).await;
    assert_eq!(kinds(&opened, "namespace"), 5);
    assert_eq!(kinds(&opened, "service"), 50);
    assert_eq!(opened.grouping.unwrap().collapsed, teams("mesh", 6)[1..]);
}
