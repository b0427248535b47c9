//! The namespace zoom level of the region view: services sharing a namespace collapse into one
//! `namespace:<name>` node carrying their summed traffic, and edges are merged between the
//! groups. Expanding a namespace puts its services back (zoom, not hiding). Calls inside one
//! collapsed namespace are not drawn as self-loops: they are already part of the namespace
//! node's traffic (its services' served calls), so drawing them again would count them twice.
//!
//! Collapsing helps a crowded region and must never hide a legible one: by default (`group=`
//! absent) a region collapses only when its map has more than [`LEGIBLE_NODES`] nodes **and**
//! more than one namespace — a region of one namespace is never drawn as a single node.
//! `group=namespace` collapses whenever there are namespaces, `group=none` never.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{Edge, Graph, Health, Metrics, Node};

pub const PREFIX: &str = "namespace:";

/// The most nodes a region map draws expanded before its namespaces are collapsed. The layered
/// layout gives each node a label of ~12 characters (≈ 90 px) and a row of ≈ 28 px; at
/// 1280×800 (minus header and legend) that is about 6 columns of 10 legible rows, so past 60
/// nodes labels start to overlap and a namespace level reads better.
pub const LEGIBLE_NODES: usize = 60;

/// How the region map groups services, from the URL's `group=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// Namespaces collapse only when the map would be crowded (see [`should_collapse`]).
    Auto,
    /// Always one node per namespace (until expanded).
    Namespace,
    /// Always every service.
    None,
}

impl Grouping {
    /// Absent (`""`) is automatic, `group=namespace` always; any other grouping the user
    /// chose (`none`, or the region/prefix/attribute ones of `grouping`) never.
    pub fn parse(s: &str) -> Grouping {
        match s {
            "" => Grouping::Auto,
            "namespace" => Grouping::Namespace,
            _ => Grouping::None,
        }
    }
}

/// Whether the region map is drawn at namespace zoom: automatically only when it has more than
/// [`LEGIBLE_NODES`] nodes and more than one namespace (one namespace collapsed would be one
/// node: nothing legible left), always/never when the user chose so.
pub fn should_collapse(g: &Graph, mode: Grouping) -> bool {
    match mode {
        Grouping::None => false,
        Grouping::Namespace => !all(g).is_empty(),
        Grouping::Auto => g.nodes.len() > LEGIBLE_NODES && all(g).len() > 1,
    }
}

/// The namespaces named in the URL's `ns=` (comma-separated), as a set.
pub fn parse_expanded(s: &str) -> BTreeSet<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// The URL form of a set of expanded namespaces (sorted, so links are stable).
pub fn format_expanded(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(",")
}

/// The namespace a namespace node id names.
pub fn of_id(id: &str) -> Option<&str> {
    id.strip_prefix(PREFIX)
}

/// Every namespace of the graph's service nodes.
pub fn all(g: &Graph) -> BTreeSet<String> {
    g.nodes
        .iter()
        .filter(|n| n.kind == "service")
        .filter_map(|n| n.namespace.clone())
        .collect()
}

pub(crate) fn worst(a: Health, b: Health) -> Health {
    let order = |h: Health| match h {
        Health::Normal => 0,
        Health::Warning => 1,
        Health::Danger => 2,
    };
    if order(b) > order(a) { b } else { a }
}

/// Sums of parts, for groups made in the browser (by region, by name prefix, the automatic
/// namespace zoom): counts and rates add, error rate and mean are recomputed from the sums, and
/// quantiles take the worst part's — an upper bound, since the graph JSON carries no histograms.
/// Groups the API makes (`group=`) have exact quantiles from merged histograms instead.
pub(crate) fn sum_metrics<'a>(parts: impl Iterator<Item = &'a Metrics>) -> Metrics {
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

/// Collapses every namespace not in `expanded` into one node; returns whether anything changed.
pub fn collapse(g: &mut Graph, expanded: &BTreeSet<String>) -> bool {
    // Node id → the id it is drawn as.
    let group: BTreeMap<String, String> = g
        .nodes
        .iter()
        .filter(|n| n.kind == "service")
        .filter_map(|n| {
            let ns = n.namespace.as_ref()?;
            (!expanded.contains(ns)).then(|| (n.id.clone(), format!("{PREFIX}{ns}")))
        })
        .collect();
    if group.is_empty() {
        return false;
    }
    let to = |id: &str| group.get(id).cloned().unwrap_or_else(|| id.to_string());

    let mut members: BTreeMap<String, Vec<Node>> = BTreeMap::new();
    let mut nodes = Vec::new();
    for n in std::mem::take(&mut g.nodes) {
        match group.get(&n.id) {
            Some(gid) => members.entry(gid.clone()).or_default().push(n),
            None => nodes.push(n),
        }
    }
    for (id, ms) in members {
        let ns = of_id(&id).unwrap_or_default().to_string();
        nodes.push(Node {
            name: ns.clone(),
            kind: "namespace".into(),
            region: ms[0].region.clone(),
            metrics: sum_metrics(ms.iter().map(|n| &n.metrics)),
            health: ms.iter().fold(Health::Normal, |h, n| worst(h, n.health)),
            rank: ms.iter().map(|n| n.rank).min().unwrap_or(0),
            in_cycle: ms.iter().any(|n| n.in_cycle),
            focused: false,
            namespace: Some(ns),
            id,
        });
    }
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    g.nodes = nodes;

    let mut merged: BTreeMap<(String, String), Vec<Edge>> = BTreeMap::new();
    for e in std::mem::take(&mut g.edges) {
        let (s, t) = (to(&e.source), to(&e.target));
        if s == t && (group.contains_key(&e.source) || group.contains_key(&e.target)) {
            continue; // inside one collapsed namespace
        }
        merged.entry((s, t)).or_default().push(e);
    }
    g.edges = merged
        .into_iter()
        .map(|((s, t), es)| {
            if es.len() == 1 && es[0].source == s && es[0].target == t {
                return es.into_iter().next().unwrap();
            }
            Edge {
                id: format!("{s}->{t}"),
                metrics: sum_metrics(es.iter().map(|e| &e.metrics)),
                health: es.iter().fold(Health::Normal, |h, e| worst(h, e.health)),
                in_cycle: es.iter().any(|e| e.in_cycle),
                source: s,
                target: t,
            }
        })
        .collect();
    g.max_volume = g.edges.iter().map(|e| e.metrics.rps).fold(0.0, f64::max);
    g.cycles = std::mem::take(&mut g.cycles)
        .into_iter()
        .map(|c| {
            c.iter()
                .map(|id| to(id))
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

    fn ids(g: &Graph) -> Vec<&str> {
        g.nodes.iter().map(|n| n.id.as_str()).collect()
    }

    #[test]
    fn services_collapse_into_namespace_nodes_with_summed_traffic() {
        let mut g = graph();
        assert!(collapse(&mut g, &BTreeSet::new()));
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
        assert_eq!(shop.kind, "namespace");
        assert_eq!(shop.name, "shop");
        assert_eq!((shop.metrics.requests, shop.metrics.errors), (150, 2));
        assert!((shop.metrics.rps - 15.0).abs() < 1e-9);
        assert!((shop.metrics.error_rate - 2.0 / 150.0).abs() < 1e-9);
        assert_eq!(shop.metrics.p95_ms, 80.0, "worst member's p95");
        assert_eq!(shop.health, Health::Warning, "worst member's health");
        assert_eq!(shop.rank, 1, "leftmost member's rank");
        assert_eq!(g.node("namespace:pay").unwrap().health, Health::Danger);
    }

    #[test]
    fn edges_merge_between_namespaces_and_inner_calls_are_not_drawn() {
        let mut g = graph();
        collapse(&mut g, &BTreeSet::new());
        let mut es: Vec<&str> = g.edges.iter().map(|e| e.id.as_str()).collect();
        es.sort();
        assert_eq!(
            es,
            [
                "INTERNET->namespace:shop",
                "namespace:pay->database:pg",
                "namespace:shop->legacy",
                "namespace:shop->namespace:pay",
            ],
            "web->cart is inside shop; cart->ledger and web->ledger merge"
        );
        let e = g.edge("namespace:shop", "namespace:pay").unwrap();
        assert_eq!((e.metrics.requests, e.metrics.errors), (30, 6));
        assert!((e.metrics.rps - 3.0).abs() < 1e-9);
        assert!((e.metrics.error_rate - 0.2).abs() < 1e-9);
        assert_eq!(e.health, Health::Danger);
        assert_eq!(g.max_volume, 10.0);
        assert!(g.cycles.is_empty(), "the web/cart cycle is inside shop");
    }

    #[test]
    fn an_expanded_namespace_shows_its_services_and_edges_to_the_others() {
        let mut g = graph();
        let expanded = parse_expanded("shop");
        collapse(&mut g, &expanded);
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
        assert!(g.edge("web", "cart").is_some());
        let to_pay = g.edge("cart", "namespace:pay").unwrap();
        assert_eq!(to_pay.metrics.requests, 20);
        assert!(g.edge("web", "namespace:pay").is_some());
        // Everything expanded: the graph is unchanged.
        let mut full = graph();
        assert!(!collapse(&mut full, &all(&graph())));
        assert_eq!(full, graph());
    }

    /// `n` services spread round-robin over `namespaces` namespaces (none when 0), a chain.
    fn mesh(n: usize, namespaces: usize) -> Graph {
        let nodes = (0..n)
            .map(|i| {
                let ns = (namespaces > 0).then(|| format!("team-{}", i % namespaces));
                svc(
                    &format!("s{i}"),
                    ns.as_deref(),
                    i as u32,
                    m(1, 0, 1.0, 1.0),
                    Health::Normal,
                )
            })
            .collect();
        let edges = (1..n)
            .map(|i| {
                edge(
                    &format!("s{}", i - 1),
                    &format!("s{i}"),
                    m(1, 0, 1.0, 1.0),
                    Health::Normal,
                )
            })
            .collect();
        Graph {
            level: "region".into(),
            nodes,
            edges,
            ..Default::default()
        }
    }

    #[test]
    fn a_legible_region_is_never_collapsed_and_a_crowded_one_of_several_namespaces_is() {
        // The demo: 18 services of one namespace (plus peers) — services shown.
        assert!(!should_collapse(&mesh(25, 1), Grouping::Auto));
        // One namespace is never one node, however big.
        assert!(!should_collapse(&mesh(2000, 1), Grouping::Auto));
        // Several namespaces but few nodes: still legible expanded.
        assert!(!should_collapse(&mesh(LEGIBLE_NODES, 4), Grouping::Auto));
        assert!(!should_collapse(&graph(), Grouping::Auto));
        // Past the threshold with several namespaces: collapsed.
        assert!(should_collapse(&mesh(LEGIBLE_NODES + 1, 2), Grouping::Auto));
        assert!(should_collapse(&mesh(300, 6), Grouping::Auto));
        // No namespaces at all: nothing to collapse into.
        assert!(!should_collapse(&mesh(300, 0), Grouping::Auto));
        // The user's choice wins: always (if there is a namespace) or never.
        assert!(should_collapse(&graph(), Grouping::Namespace));
        assert!(!should_collapse(&mesh(300, 0), Grouping::Namespace));
        assert!(!should_collapse(&mesh(300, 6), Grouping::None));
        assert_eq!(Grouping::parse("namespace"), Grouping::Namespace);
        assert_eq!(Grouping::parse("none"), Grouping::None);
        assert_eq!(Grouping::parse(""), Grouping::Auto);
        assert_eq!(Grouping::parse("region"), Grouping::None);
        assert_eq!(Grouping::parse("attr:host.name"), Grouping::None);
    }

    #[test]
    fn collapse_is_deterministic_and_the_url_form_round_trips() {
        let (mut a, mut b) = (graph(), graph());
        b.nodes.reverse();
        b.edges.reverse();
        collapse(&mut a, &BTreeSet::new());
        collapse(&mut b, &BTreeSet::new());
        assert_eq!(ids(&a), ids(&b));
        let set = parse_expanded("pay,shop,");
        assert_eq!(format_expanded(&set), "pay,shop");
        assert_eq!(parse_expanded(""), BTreeSet::new());
        assert_eq!(of_id("namespace:pay"), Some("pay"));
    }
}
