//! Grouping beyond namespaces: the region map's services collapsed by region or by name prefix
//! (here, in the browser: both are on every node already), or by a resource attribute (on the
//! server: `group=attr:<key>` of the graph API, which answers `group:<value>` nodes itself).
//! A group node `group:<value>` (kind `group`) carries its members' summed traffic; edges are
//! merged between groups and calls inside one group are not drawn (they are the group's own
//! traffic). Groups named in the expanded set stay as services, as namespaces do; a group of
//! one service is that service. The control lists every choice, the namespace ones included,
//! so the map has one "group" menu.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{Edge, Graph, Health, Node};
use crate::namespaces::{sum_metrics, worst};

pub const PREFIX: &str = "group:";

/// The choices of the grouping control: (URL value of `group=`, label). "" is the automatic
/// namespace zoom, `namespace`/`none` the namespace module's, `region`/`prefix` this module's
/// client-side groupings, `attr:<key>` the graph API's.
pub const CHOICES: &[(&str, &str)] = &[
    ("", "auto"),
    ("namespace", "namespaces"),
    ("none", "services"),
    ("region", "regions"),
    ("prefix", "name prefix"),
    ("attr:k8s.cluster.name", "cluster"),
    ("attr:deployment.environment.name", "environment"),
    ("attr:cloud.availability_zone", "zone"),
    ("attr:host.name", "host"),
];

/// What the browser groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientGroup {
    Region,
    Prefix,
}

impl ClientGroup {
    /// `group=region` / `group=prefix`; other values are not grouped here.
    pub fn parse(s: &str) -> Option<ClientGroup> {
        match s {
            "region" => Some(ClientGroup::Region),
            "prefix" => Some(ClientGroup::Prefix),
            _ => None,
        }
    }

    fn key<'a>(&self, n: &'a Node) -> Option<&'a str> {
        match self {
            ClientGroup::Region => (!n.region.is_empty()).then_some(n.region.as_str()),
            ClientGroup::Prefix => Some(name_prefix(&n.name)),
        }
    }
}

/// The `group=` value to pass to the graph API (`attr:<key>` choices), if any.
pub fn server_param(group: &str) -> Option<&str> {
    group.starts_with("attr:").then_some(group)
}

/// The group a group node id names.
pub fn of_id(id: &str) -> Option<&str> {
    id.strip_prefix(PREFIX)
}

/// A service name's prefix: up to the first `-`, `_`, `.` or `/` (`payments-api` → `payments`);
/// a name without one is its own prefix.
pub fn name_prefix(name: &str) -> &str {
    name.find(['-', '_', '.', '/'])
        .filter(|&i| i > 0)
        .map_or(name, |i| &name[..i])
}

/// Groups the graph's service nodes by `by` (groups in `expanded` stay as services); returns
/// whether anything was grouped.
pub fn apply(g: &mut Graph, by: ClientGroup, expanded: &BTreeSet<String>) -> bool {
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if n.kind != "service" {
            continue;
        }
        if let Some(k) = by.key(n).filter(|k| !expanded.contains(*k)) {
            members.entry(k).or_default().push(i);
        }
    }
    // Node id → group node id, for groups of two or more.
    let mut to: BTreeMap<String, String> = BTreeMap::new();
    let mut groups: Vec<Node> = Vec::new();
    for (key, idx) in members.iter().filter(|(_, v)| v.len() > 1) {
        let id = format!("{PREFIX}{key}");
        let parts: Vec<&Node> = idx.iter().map(|&i| &g.nodes[i]).collect();
        let region = &parts[0].region;
        groups.push(Node {
            id: id.clone(),
            name: format!("{key} ({})", parts.len()),
            kind: "group".into(),
            region: if parts.iter().all(|p| &p.region == region) {
                region.clone()
            } else {
                String::new()
            },
            metrics: sum_metrics(parts.iter().map(|p| &p.metrics)),
            health: parts.iter().fold(Health::Normal, |h, p| worst(h, p.health)),
            rank: parts.iter().map(|p| p.rank).min().unwrap_or(0),
            in_cycle: parts.iter().any(|p| p.in_cycle),
            focused: false,
            namespace: None,
        });
        for p in parts {
            to.insert(p.id.clone(), id.clone());
        }
    }
    if to.is_empty() {
        return false;
    }
    g.nodes.retain(|n| !to.contains_key(&n.id));
    g.nodes.extend(groups);
    let map = |id: &str| to.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut merged: BTreeMap<(String, String), Vec<Edge>> = BTreeMap::new();
    for e in std::mem::take(&mut g.edges) {
        let (s, t) = (map(&e.source), map(&e.target));
        if s == t && s.starts_with(PREFIX) {
            continue;
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
    true
}

/// The map's "group" menu: every choice of [`CHOICES`]; `on_change` gets the new `group=`
/// value (the caller stores it in the URL state and clears the expanded set).
#[cfg(target_arch = "wasm32")]
#[leptos::component]
pub fn GroupingControl(
    #[prop(into)] value: leptos::prelude::Signal<String>,
    #[prop(into)] on_change: leptos::prelude::Callback<String>,
) -> impl leptos::IntoView {
    use leptos::prelude::*;
    view! {
        <label title="collapse services into one node per namespace, region, name prefix or attribute">"group "
            <select data-testid="group" aria-label="group services" prop:value=move || value.get()
                on:change=move |ev| on_change.run(event_target_value(&ev))>
                {CHOICES.iter().map(|(v, label)| view! { <option value=*v>{*label}</option> }).collect_view()}
            </select>
        </label>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Metrics;

    fn node(id: &str, region: &str, rps: f64, health: Health) -> Node {
        Node {
            id: id.into(),
            name: id.into(),
            kind: "service".into(),
            region: region.into(),
            rank: 1,
            health,
            metrics: Metrics {
                requests: (rps * 60.0) as u64,
                errors: if health == Health::Danger { 30 } else { 0 },
                rps,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn edge(s: &str, t: &str, requests: u64, errors: u64) -> Edge {
        Edge {
            id: format!("{s}->{t}"),
            source: s.into(),
            target: t.into(),
            metrics: Metrics {
                requests,
                errors,
                rps: requests as f64 / 60.0,
                error_rate: errors as f64 / requests as f64,
                ..Default::default()
            },
            ..Default::default()
        }
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
        assert!(apply(&mut g, ClientGroup::Prefix, &BTreeSet::new()));
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
        assert!(apply(&mut g, ClientGroup::Region, &BTreeSet::new()));
        assert!(g.node("group:us").is_some() && g.node("group:eu").is_some());
        assert_eq!(g.node("group:us").unwrap().region, "us");
        assert_eq!(
            g.edge("group:eu", "group:us").unwrap().metrics.requests,
            150
        );
        let mut g = graph();
        apply(
            &mut g,
            ClientGroup::Region,
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
        assert!(!apply(&mut g, ClientGroup::Prefix, &BTreeSet::new()));
        assert_eq!(g, before);
    }

    #[test]
    fn parse_prefix_and_server_values() {
        assert_eq!(ClientGroup::parse("prefix"), Some(ClientGroup::Prefix));
        assert_eq!(ClientGroup::parse("namespace"), None);
        assert_eq!(server_param("attr:host.name"), Some("attr:host.name"));
        assert_eq!(server_param("region"), None);
        assert_eq!(name_prefix("payments-api"), "payments");
        assert_eq!(name_prefix("-x"), "-x");
        assert_eq!(name_prefix("search"), "search");
        assert_eq!(of_id("group:eu"), Some("eu"));
        // Every choice is distinct and the server ones name keys the API keeps.
        let values: BTreeSet<&str> = CHOICES.iter().map(|c| c.0).collect();
        assert_eq!(values.len(), CHOICES.len());
    }
}
