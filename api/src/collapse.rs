//! Collapsing a service map into groups (`group=` of the graph API, which merges the members'
//! latency histograms exactly; the tests merge what the JSON carries): the members of a group
//! become one node, edges are re-keyed to the group nodes, parallel edges merge into one, and
//! calls inside one collapsed group are not drawn as self-loops — they are already part of
//! the group node's traffic (its members' served calls), so drawing them again would count
//! them twice. Nodes and edges a grouping does not touch keep every field as they were.
//!
//! How metrics merge is the caller's [`Merge`].
//! The automatic namespace zoom's threshold ([`LEGIBLE_NODES`], [`auto_collapses`]) lives
//! here too, so the server deciding it and any client explaining it read one number.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Edge, EdgeId, Graph, Health, Metrics, Node, NodeId, NodeKind};

/// The most nodes a region map is drawn with expanded before `group=auto` collapses its
/// namespaces. The layered layout gives each node a label of ~12 characters (≈ 90 px) and a
/// row of ≈ 28 px; at 1280×800 (minus header and legend) that is about 6 columns of 10
/// legible rows, so past 60 nodes labels start to overlap and a namespace level reads better.
pub const LEGIBLE_NODES: usize = 60;

/// Whether the automatic namespace zoom collapses a region map of `nodes` nodes whose
/// services fall in `namespaces` distinct namespaces: only a crowded map (more than
/// [`LEGIBLE_NODES`]) of more than one namespace — one namespace collapsed would be a single
/// node, nothing legible left.
pub fn auto_collapses(nodes: usize, namespaces: usize) -> bool {
    nodes > LEGIBLE_NODES && namespaces > 1
}

/// What a graph answer grouped (the `grouping` field; absent when no grouping was asked for).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct Grouping {
    /// `namespace`, `region`, `prefix` or `attr:<key>`.
    pub by: String,
    /// The server chose whether to collapse (`group=auto`), from the ungrouped map's size.
    pub auto: bool,
    /// The groups drawn as one node each (their names, sorted); empty when nothing collapsed.
    pub collapsed: Vec<String>,
    /// Nodes of the map before grouping (what `auto` decided from).
    pub nodes: usize,
}

/// How a group's metrics are made from its members'.
pub trait Merge {
    /// Metrics and health of the node drawn for `members` (one or more nodes, in graph order).
    fn nodes(&self, members: &[Node]) -> (Metrics, Health);
    /// Metrics and health of the one edge drawn for `parallel` edges (one or more, with
    /// their original ends).
    fn edges(&self, parallel: &[Edge]) -> (Metrics, Health);
    /// A last touch on a new group node (its name, its region); nothing by default.
    fn finish(&self, _group: &mut Node, _members: &[Node]) {}
}

/// Groupings by what every node of the graph already carries, so they need no lookup: its
/// region, or its name's prefix. The server makes them (`group=region|prefix`) with exact
/// quantiles; this is their one definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeGroup {
    Region,
    Prefix,
}

impl NodeGroup {
    /// `region` / `prefix`; any other value is not one of these.
    pub fn parse(s: &str) -> Option<NodeGroup> {
        match s {
            "region" => Some(NodeGroup::Region),
            "prefix" => Some(NodeGroup::Prefix),
            _ => None,
        }
    }

    /// The `group=` spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeGroup::Region => "region",
            NodeGroup::Prefix => "prefix",
        }
    }

    /// A node's group: its region (none when it has none), or its name's prefix.
    pub fn key<'a>(&self, n: &'a Node) -> Option<&'a str> {
        match self {
            NodeGroup::Region => (!n.region.is_empty()).then_some(n.region.as_str()),
            NodeGroup::Prefix => Some(name_prefix(&n.name)),
        }
    }

    /// Which services collapse into which `group:<key>` node (as [`assign`]); a group of one
    /// service stays that service — a node renamed, nothing gained.
    pub fn assign(&self, g: &Graph, expanded: &BTreeSet<String>) -> BTreeMap<String, NodeId> {
        let mut to = assign(g, NodeKind::Group, expanded, |n| self.key(n));
        let mut size: BTreeMap<NodeId, usize> = BTreeMap::new();
        for gid in to.values() {
            *size.entry(gid.clone()).or_default() += 1;
        }
        to.retain(|_, gid| size[gid] > 1);
        to
    }

    /// The last touch on one of its group nodes ([`Merge::finish`]): the member count in its
    /// name (`payments (2)`: a prefix or a region alone does not say it is a group) and a
    /// region only when all members share it.
    pub fn finish(group: &mut Node, members: &[Node]) {
        group.name = format!("{} ({})", group.name, members.len());
        if members.iter().any(|m| m.region != group.region) {
            group.region.clear();
        }
    }
}

/// A service name's prefix: up to the first `-`, `_`, `.` or `/` (`payments-api` → `payments`);
/// a name without one is its own prefix.
pub fn name_prefix(name: &str) -> &str {
    name.find(['-', '_', '.', '/'])
        .filter(|&i| i > 0)
        .map_or(name, |i| &name[..i])
}

/// Which service nodes of `g` collapse into which group node: each service with a `key`
/// that is not in `expanded` goes to the `kind` node of that key (`namespace:<key>`,
/// `group:<key>`). Services without a key, and every other node, stay.
pub fn assign<'g, K: AsRef<str>>(
    g: &'g Graph,
    kind: NodeKind,
    expanded: &BTreeSet<String>,
    key: impl Fn(&'g Node) -> Option<K>,
) -> BTreeMap<String, NodeId> {
    g.nodes
        .iter()
        .filter(|n| n.node_kind() == Some(NodeKind::Service))
        .filter_map(|n| {
            let k = key(n)?;
            let k = k.as_ref();
            (!expanded.contains(k)).then(|| (n.id.clone(), NodeId::new(kind, k)))
        })
        .collect()
}

/// Collapses the nodes named in `to` (node id → its group's node id) into group nodes whose
/// metrics `merge` makes, re-keys and merges the edges, drops the edges inside one group, and
/// recomputes `max_volume` and the cycles. Nodes end sorted by id, edges by their ends.
/// Returns whether anything changed (nothing does when `to` is empty).
///
/// A group node is named after its group (`shop` for `namespace:shop`), has its first
/// member's region, the leftmost member's rank, is in a cycle when a member is, and carries
/// its namespace when it is a namespace; [`Merge::finish`] may change that.
pub fn collapse(g: &mut Graph, to: &BTreeMap<String, NodeId>, merge: &impl Merge) -> bool {
    if to.is_empty() {
        return false;
    }
    let group_of = |id: &str| to.get(id).map_or_else(|| id.to_string(), NodeId::to_string);

    let mut members: BTreeMap<String, (&NodeId, Vec<Node>)> = BTreeMap::new();
    let mut nodes = Vec::new();
    for n in std::mem::take(&mut g.nodes) {
        match to.get(&n.id) {
            Some(gid) => members
                .entry(gid.to_string())
                .or_insert_with(|| (gid, Vec::new()))
                .1
                .push(n),
            None => nodes.push(n),
        }
    }
    for (id, (gid, ms)) in members {
        let (metrics, health) = merge.nodes(&ms);
        let kind = gid.kind();
        let mut node = Node {
            name: gid.name().to_string(),
            kind: kind.to_string(),
            region: ms[0].region.clone(),
            health,
            metrics,
            rank: ms.iter().map(|n| n.rank).min().unwrap_or(0),
            in_cycle: ms.iter().any(|n| n.in_cycle),
            focused: false,
            namespace: (kind == NodeKind::Namespace).then(|| gid.name().to_string()),
            id,
        };
        merge.finish(&mut node, &ms);
        nodes.push(node);
    }
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    g.nodes = nodes;

    let mut parallel: BTreeMap<(String, String), Vec<Edge>> = BTreeMap::new();
    for e in std::mem::take(&mut g.edges) {
        let (a, b) = (group_of(&e.source), group_of(&e.target));
        if a == b && (to.contains_key(&e.source) || to.contains_key(&e.target)) {
            continue; // inside one collapsed group
        }
        parallel.entry((a, b)).or_default().push(e);
    }
    g.edges = parallel
        .into_iter()
        .map(|((a, b), es)| {
            if es.len() == 1 && es[0].source == a && es[0].target == b {
                return es.into_iter().next().expect("one edge");
            }
            let (metrics, health) = merge.edges(&es);
            Edge {
                id: EdgeId::new(a.clone(), b.clone()).to_string(),
                health,
                metrics,
                in_cycle: es.iter().any(|e| e.in_cycle),
                source: a,
                target: b,
            }
        })
        .collect();
    g.max_volume = g.edges.iter().map(|e| e.metrics.rps).fold(0.0, f64::max);
    g.cycles = std::mem::take(&mut g.cycles)
        .into_iter()
        .map(|c| {
            c.iter()
                .map(|id| group_of(id))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        })
        .filter(|c| c.len() > 1)
        .collect();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A merge from the graph JSON alone (what a client holding only the JSON could do): counts and rates add, the error rate
    /// and the mean are recomputed from the sums, quantiles and health are the worst member's —
    /// an upper bound (the JSON carries no histograms). The server's groups (`group=`) have exact
    /// quantiles from merged histograms instead.
    struct UpperBound;

    impl Merge for UpperBound {
        fn nodes(&self, members: &[Node]) -> (Metrics, Health) {
            (
                sum_metrics(members.iter().map(|n| &n.metrics)),
                members
                    .iter()
                    .fold(Health::Normal, |h, n| worst(h, n.health)),
            )
        }
        fn edges(&self, parallel: &[Edge]) -> (Metrics, Health) {
            (
                sum_metrics(parallel.iter().map(|e| &e.metrics)),
                parallel
                    .iter()
                    .fold(Health::Normal, |h, e| worst(h, e.health)),
            )
        }
    }

    /// The worse of two health states.
    fn worst(a: Health, b: Health) -> Health {
        let order = |h: Health| match h {
            Health::Normal => 0,
            Health::Warning => 1,
            Health::Danger => 2,
        };
        if order(b) > order(a) { b } else { a }
    }

    /// [`UpperBound`]'s sum of parts.
    fn sum_metrics<'a>(parts: impl Iterator<Item = &'a Metrics>) -> Metrics {
        let mut m = Metrics::default();
        let mut weighted_ms = 0.0;
        for p in parts {
            m.requests += p.requests;
            m.errors += p.errors;
            m.rps += p.rps;
            m.p50_ms = m.p50_ms.max(p.p50_ms);
            m.p95_ms = m.p95_ms.max(p.p95_ms);
            m.p99_ms = m.p99_ms.max(p.p99_ms);
            weighted_ms += p.avg_ms * p.requests as f64;
        }
        if m.requests > 0 {
            m.error_rate = m.errors as f64 / m.requests as f64;
            m.avg_ms = weighted_ms / m.requests as f64;
        }
        m
    }

    fn m(requests: u64, errors: u64, rps: f64, p95: f64) -> Metrics {
        Metrics {
            requests,
            errors,
            rps,
            error_rate: errors as f64 / requests.max(1) as f64,
            p95_ms: p95,
            avg_ms: 10.0,
            ..Default::default()
        }
    }

    fn svc(id: &str, ns: Option<&str>, rank: u32, metrics: Metrics, health: Health) -> Node {
        Node {
            id: id.into(),
            name: id.into(),
            kind: "service".into(),
            region: "eu".into(),
            metrics,
            health,
            rank,
            namespace: ns.map(String::from),
            ..Default::default()
        }
    }

    fn edge(a: &str, b: &str, metrics: Metrics, health: Health) -> Edge {
        Edge {
            id: format!("{a}->{b}"),
            source: a.into(),
            target: b.into(),
            metrics,
            health,
            in_cycle: false,
        }
    }

    /// INTERNET → web (shop) → cart (shop) → ledger (pay) → pg; web → ledger; cart → legacy.
    fn graph() -> Graph {
        let entry = Node {
            id: "INTERNET".into(),
            name: "INTERNET".into(),
            kind: "entry".into(),
            ..Default::default()
        };
        let pg = Node {
            id: "database:pg".into(),
            kind: "database".into(),
            rank: 4,
            ..Default::default()
        };
        Graph {
            level: "region".into(),
            nodes: vec![
                entry,
                svc(
                    "web",
                    Some("shop"),
                    1,
                    m(100, 2, 10.0, 50.0),
                    Health::Warning,
                ),
                svc("cart", Some("shop"), 2, m(50, 0, 5.0, 80.0), Health::Normal),
                svc(
                    "ledger",
                    Some("pay"),
                    3,
                    m(30, 6, 3.0, 20.0),
                    Health::Danger,
                ),
                svc("legacy", None, 3, m(10, 0, 1.0, 5.0), Health::Normal),
                pg,
            ],
            edges: vec![
                edge("INTERNET", "web", m(100, 2, 10.0, 50.0), Health::Warning),
                edge("web", "cart", m(50, 0, 5.0, 80.0), Health::Normal),
                edge("cart", "ledger", m(20, 4, 2.0, 20.0), Health::Danger),
                edge("web", "ledger", m(10, 2, 1.0, 30.0), Health::Danger),
                edge("cart", "legacy", m(10, 0, 1.0, 5.0), Health::Normal),
                edge("ledger", "database:pg", m(30, 0, 3.0, 2.0), Health::Normal),
            ],
            cycles: vec![vec!["web".into(), "cart".into()]],
            ..Default::default()
        }
    }

    fn by_namespace(g: &Graph, expanded: &[&str]) -> BTreeMap<String, NodeId> {
        let expanded = expanded.iter().map(|s| s.to_string()).collect();
        assign(g, NodeKind::Namespace, &expanded, |n| {
            n.namespace.as_deref()
        })
    }

    fn ids(g: &Graph) -> Vec<&str> {
        g.nodes.iter().map(|n| n.id.as_str()).collect()
    }

    #[test]
    fn services_collapse_into_group_nodes_with_merged_traffic() {
        let mut g = graph();
        let to = by_namespace(&g, &[]);
        assert_eq!(to.len(), 3, "the three services with a namespace: {to:?}");
        assert!(collapse(&mut g, &to, &UpperBound));
        assert_eq!(
            ids(&g),
            [
                "INTERNET",
                "database:pg",
                "legacy",
                "namespace:pay",
                "namespace:shop"
            ]
        );
        let shop = g.node("namespace:shop").unwrap();
        assert_eq!(
            (shop.kind.as_str(), shop.name.as_str()),
            ("namespace", "shop")
        );
        assert_eq!(shop.namespace.as_deref(), Some("shop"));
        assert_eq!((shop.metrics.requests, shop.metrics.errors), (150, 2));
        assert!((shop.metrics.rps - 15.0).abs() < 1e-9);
        assert!((shop.metrics.error_rate - 2.0 / 150.0).abs() < 1e-9);
        assert_eq!(
            shop.metrics.p95_ms, 80.0,
            "upper bound: the worst member's p95"
        );
        assert_eq!(shop.health, Health::Warning, "worst member's health");
        assert_eq!((shop.rank, shop.region.as_str()), (1, "eu"));
        assert!(!shop.in_cycle);
        assert_eq!(g.node("namespace:pay").unwrap().health, Health::Danger);
        // Untouched nodes keep every field.
        assert_eq!(g.node("legacy"), graph().node("legacy"));
    }

    #[test]
    fn edges_are_rekeyed_merged_and_inner_calls_dropped() {
        let mut g = graph();
        let to = by_namespace(&g, &[]);
        collapse(&mut g, &to, &UpperBound);
        let es: Vec<&str> = g.edges.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            es,
            [
                "INTERNET->namespace:shop",
                "namespace:pay->database:pg",
                "namespace:shop->legacy",
                "namespace:shop->namespace:pay",
            ],
            "sorted by ends; web->cart is inside shop; cart->ledger and web->ledger merge"
        );
        let e = g.edge("namespace:shop", "namespace:pay").unwrap();
        assert_eq!((e.metrics.requests, e.metrics.errors), (30, 6));
        assert!((e.metrics.error_rate - 0.2).abs() < 1e-9);
        assert_eq!(e.health, Health::Danger);
        assert_eq!(g.max_volume, 10.0);
        assert!(g.cycles.is_empty(), "the web/cart cycle is inside shop");
        // A plain self-loop of a service that is not grouped stays.
        let mut g = graph();
        g.edges
            .push(edge("legacy", "legacy", m(1, 0, 0.1, 1.0), Health::Normal));
        let to = by_namespace(&g, &[]);
        collapse(&mut g, &to, &UpperBound);
        assert!(g.edge("legacy", "legacy").is_some());
    }

    #[test]
    fn expanded_groups_stay_and_nothing_to_do_changes_nothing() {
        let mut g = graph();
        let to = by_namespace(&g, &["shop"]);
        assert!(collapse(&mut g, &to, &UpperBound));
        assert_eq!(
            ids(&g),
            [
                "INTERNET",
                "cart",
                "database:pg",
                "legacy",
                "namespace:pay",
                "web"
            ]
        );
        assert_eq!(g.edge("web", "cart"), graph().edge("web", "cart"));
        assert_eq!(
            g.edge("cart", "namespace:pay").unwrap().metrics.requests,
            20
        );
        let mut full = graph();
        let to = by_namespace(&full, &["shop", "pay"]);
        assert!(!collapse(&mut full, &to, &UpperBound));
        assert_eq!(full, graph());
    }

    /// A merge that counts its calls and renames groups: the hooks are what the callers get.
    #[test]
    fn the_merge_decides_metrics_and_the_last_touch() {
        struct Fixed;
        impl Merge for Fixed {
            fn nodes(&self, members: &[Node]) -> (Metrics, Health) {
                (m(members.len() as u64, 0, 1.0, 1.0), Health::Normal)
            }
            fn edges(&self, parallel: &[Edge]) -> (Metrics, Health) {
                (m(parallel.len() as u64, 0, 42.0, 1.0), Health::Warning)
            }
            fn finish(&self, group: &mut Node, members: &[Node]) {
                group.name = format!("{} ({})", group.name, members.len());
            }
        }
        let mut g = graph();
        let to = assign(&g, NodeKind::Group, &BTreeSet::new(), |n| Some(&n.region));
        collapse(&mut g, &to, &Fixed);
        let eu = g.node("group:eu").unwrap();
        assert_eq!((eu.name.as_str(), eu.kind.as_str()), ("eu (4)", "group"));
        assert_eq!((eu.metrics.requests, eu.namespace.as_deref()), (4, None));
        let e = g.edge("group:eu", "database:pg").unwrap();
        assert_eq!((e.metrics.requests, e.health), (1, Health::Warning));
        assert_eq!(g.max_volume, 42.0);
    }

    #[test]
    fn collapse_does_not_depend_on_input_order() {
        let (mut a, mut b) = (graph(), graph());
        b.nodes.reverse();
        b.edges.reverse();
        let (ta, tb) = (by_namespace(&a, &[]), by_namespace(&b, &[]));
        collapse(&mut a, &ta, &UpperBound);
        collapse(&mut b, &tb, &UpperBound);
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(a.edges, b.edges);
    }

    #[test]
    fn auto_collapses_only_a_crowded_map_of_several_namespaces() {
        assert!(!auto_collapses(25, 1), "the demo: one namespace");
        assert!(!auto_collapses(2000, 1), "one namespace is never one node");
        assert!(!auto_collapses(LEGIBLE_NODES, 4), "legible expanded");
        assert!(auto_collapses(LEGIBLE_NODES + 1, 2));
        assert!(auto_collapses(300, 6));
        assert!(!auto_collapses(300, 0), "nothing to collapse into");
    }

    #[test]
    fn grouping_serialises_its_documented_fields() {
        let g = Grouping {
            by: "namespace".into(),
            auto: true,
            collapsed: vec!["pay".into(), "shop".into()],
            nodes: 312,
        };
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            r#"{"by":"namespace","auto":true,"collapsed":["pay","shop"],"nodes":312}"#
        );
    }

    mod node_groups {
        //! `NodeGroup` (by region, by name prefix) collapsed with the JSON-only merge.
        use super::*;

        /// A JSON-only merge with the node groups' last touch.
        struct Counted;

        impl Merge for Counted {
            fn nodes(&self, members: &[Node]) -> (Metrics, Health) {
                UpperBound.nodes(members)
            }
            fn edges(&self, parallel: &[Edge]) -> (Metrics, Health) {
                UpperBound.edges(parallel)
            }
            fn finish(&self, group: &mut Node, members: &[Node]) {
                NodeGroup::finish(group, members)
            }
        }

        fn apply(g: &mut Graph, by: NodeGroup, expanded: &BTreeSet<String>) -> bool {
            let to = by.assign(g, expanded);
            collapse(g, &to, &Counted)
        }

        fn node(id: &str, region: &str, rps: f64, health: Health) -> Node {
            let errors = if health == Health::Danger { 30 } else { 0 };
            let metrics = m((rps * 60.0) as u64, errors, rps, 0.0);
            let mut n = svc(id, None, 1, metrics, health);
            n.region = region.into();
            n
        }

        fn edge(s: &str, t: &str, requests: u64, errors: u64) -> Edge {
            let metrics = m(requests, errors, requests as f64 / 60.0, 0.0);
            super::edge(s, t, metrics, Health::Normal)
        }

        fn graph() -> Graph {
            let mut entry = node("INTERNET", "", 0.0, Health::Normal);
            entry.kind = "entry".into();
            let mut db = node("orders-db", "us", 0.0, Health::Normal);
            db.kind = "database".into();
            Graph {
                level: "region".into(),
                nodes: vec![
                    entry,
                    node("payments-api", "us", 10.0, Health::Normal),
                    node("payments-worker", "us", 5.0, Health::Danger),
                    node("orders-api", "eu", 8.0, Health::Normal),
                    node("search", "eu", 1.0, Health::Warning),
                    db,
                ],
                edges: vec![
                    edge("INTERNET", "payments-api", 600, 0),
                    edge("INTERNET", "orders-api", 400, 4),
                    edge("payments-api", "payments-worker", 300, 30),
                    edge("orders-api", "payments-api", 100, 0),
                    edge("orders-api", "payments-worker", 50, 5),
                    edge("orders-api", "orders-db", 200, 0),
                    edge("search", "orders-api", 10, 0),
                ],
                ..Default::default()
            }
        }

        #[test]
        fn name_prefix_groups_merge_traffic_and_drop_inner_calls() {
            let mut g = graph();
            assert!(apply(&mut g, NodeGroup::Prefix, &BTreeSet::new()));
            let ids: BTreeSet<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
            // orders-api is alone in its prefix... with orders-db, which is virtual: not grouped.
            assert_eq!(
                ids,
                BTreeSet::from([
                    "INTERNET",
                    "group:payments",
                    "orders-api",
                    "orders-db",
                    "search"
                ])
            );
            let pay = g.node("group:payments").unwrap();
            assert_eq!(pay.kind, "group");
            assert_eq!(pay.name, "payments (2)");
            assert_eq!(pay.health, Health::Danger);
            assert!((pay.metrics.rps - 15.0).abs() < 1e-9);
            // orders-api's two calls into payments merge; payments' inner call is gone.
            let e = g.edge("orders-api", "group:payments").unwrap();
            assert_eq!((e.metrics.requests, e.metrics.errors), (150, 5));
            assert!((e.metrics.error_rate - 5.0 / 150.0).abs() < 1e-12);
            assert!(g.edge("group:payments", "group:payments").is_none());
            assert_eq!(g.edges.len(), 5);
            // The thickest edge is recomputed for the merged edges (line widths scale by it).
            let thickest = g.edges.iter().map(|e| e.metrics.rps).fold(0.0, f64::max);
            assert_eq!(g.max_volume, thickest);
            // Every edge joins drawn nodes.
            assert!(
                g.edges
                    .iter()
                    .all(|e| ids.contains(e.source.as_str()) && ids.contains(e.target.as_str()))
            );
        }

        #[test]
        fn region_groups_and_expanded_groups_stay_services() {
            let mut g = graph();
            assert!(apply(&mut g, NodeGroup::Region, &BTreeSet::new()));
            assert!(g.node("group:us").is_some() && g.node("group:eu").is_some());
            assert_eq!(g.node("group:us").unwrap().region, "us");
            assert_eq!(
                g.edge("group:eu", "group:us").unwrap().metrics.requests,
                150
            );
            let mut g = graph();
            apply(
                &mut g,
                NodeGroup::Region,
                &BTreeSet::from(["us".to_string()]),
            );
            assert!(g.node("group:us").is_none() && g.node("payments-api").is_some());
            assert!(g.node("group:eu").is_some());
            assert_eq!(
                g.edge("group:eu", "payments-api").unwrap().metrics.requests,
                100
            );
        }

        #[test]
        fn nothing_to_group_changes_nothing() {
            let mut g = graph();
            g.nodes
                .retain(|n| n.id != "payments-worker" && n.id != "orders-api");
            let before = g.clone();
            assert!(!apply(&mut g, NodeGroup::Prefix, &BTreeSet::new()));
            assert_eq!(g, before);
        }

        #[test]
        fn parse_and_name_prefix() {
            assert_eq!(NodeGroup::parse("prefix"), Some(NodeGroup::Prefix));
            assert_eq!(
                NodeGroup::parse("region").map(|g| g.as_str()),
                Some("region")
            );
            assert_eq!(NodeGroup::parse("namespace"), None);
            assert_eq!(name_prefix("payments-api"), "payments");
            assert_eq!(name_prefix("-x"), "-x");
            assert_eq!(name_prefix("search"), "search");
        }
    }
}
