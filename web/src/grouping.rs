//! Grouping beyond namespaces: the region map's services collapsed by region or by name prefix
//! (here, in the browser: both are on every node already), or by a resource attribute (on the
//! server: `group=attr:<key>` of the graph API, which answers `group:<value>` nodes itself).
//! Both collapse with `orrery_api::collapse`: a group node `group:<value>` (kind `group`)
//! carries its members' summed traffic (quantiles an upper bound here, exact from the API);
//! edges are merged between groups and calls inside one group are not drawn (they are the
//! group's own traffic). Groups named in the expanded set stay as services, as namespaces do; a group of
//! one service is that service. The control lists every choice, the namespace ones included,
//! so the map has one "group" menu.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::collapse::{self, Merge, UpperBound};
use crate::api::{Edge, Graph, Health, Metrics, Node, NodeId, NodeKind};

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

/// Groups the graph's service nodes by `by` (groups in `expanded` stay as services; a group
/// of one service is that service); returns whether anything was grouped.
pub fn apply(g: &mut Graph, by: ClientGroup, expanded: &BTreeSet<String>) -> bool {
    let mut to = collapse::assign(g, NodeKind::Group, expanded, |n| by.key(n));
    let mut size: BTreeMap<NodeId, usize> = BTreeMap::new();
    for gid in to.values() {
        *size.entry(gid.clone()).or_default() += 1;
    }
    to.retain(|_, gid| size[gid] > 1);
    collapse::collapse(g, &to, &Counted)
}

/// The browser's merge ([`UpperBound`]: the JSON has no histograms), with the member count in
/// the group's name and a region only when all members share it.
struct Counted;

impl Merge for Counted {
    fn nodes(&self, members: &[Node]) -> (Metrics, Health) {
        UpperBound.nodes(members)
    }
    fn edges(&self, parallel: &[Edge]) -> (Metrics, Health) {
        UpperBound.edges(parallel)
    }
    fn finish(&self, group: &mut Node, members: &[Node]) {
        group.name = format!("{} ({})", group.name, members.len());
        if members.iter().any(|m| m.region != group.region) {
            group.region.clear();
        }
    }
}

/// The map's "group" menu: every choice of [`CHOICES`]; `on_change` gets the new `group=`
/// value (the caller stores it in the URL state and clears the expanded set). `grouping` is
/// the last answer's: when the server collapsed namespaces on its own (`group=auto`), a button
/// beside the menu says so and shows the services instead (`group=none`).
#[cfg(target_arch = "wasm32")]
#[leptos::component]
pub fn GroupingControl(
    #[prop(into)] value: leptos::prelude::Signal<String>,
    #[prop(into)] on_change: leptos::prelude::Callback<String>,
    #[prop(optional, into)] grouping: Option<leptos::prelude::Signal<Option<crate::api::Grouping>>>,
) -> impl leptos::IntoView {
    use leptos::prelude::*;
    let note = move || {
        let g = grouping?.get()?;
        let text = crate::namespaces::auto_note(&g)?;
        Some(view! {
            <button data-testid="group-note" class="group-note" title=text
                on:click=move |_| on_change.run("none".into())>
                {format!("{} namespaces collapsed · show services", g.collapsed.len())}</button>
        })
    };
    view! {
        <label title="collapse services into one node per namespace, region, name prefix or attribute">"group "
            <select data-testid="group" aria-label="group services" prop:value=move || value.get()
                on:change=move |ev| on_change.run(event_target_value(&ev))>
                {CHOICES.iter().map(|(v, label)| view! { <option value=*v>{*label}</option> }).collect_view()}
            </select>
        </label>
        {note}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
