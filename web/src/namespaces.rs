//! The namespace zoom level of the region view, as the URL holds it: which namespaces are
//! expanded into their services (`ns=`). The collapsing is the graph API's (`group=namespace`,
//! or `group=auto`, where the server decides from the ungrouped map's size —
//! `orrery_api::collapse::auto_collapses` — and says what it did in the answer's `grouping`):
//! its namespace nodes' quantiles come from merged histograms, and the browser never needs the
//! ungrouped map first. Expanding a namespace puts its services back (zoom, not hiding).
//! [`collapse`] is the same collapse for a graph the server did not group.

use std::collections::BTreeSet;

use crate::api::collapse::{self, UpperBound};
use crate::api::{Graph, NodeKind};

pub use collapse::LEGIBLE_NODES;

pub const PREFIX: &str = "namespace:";

/// How the region map groups services, from the URL's `group=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// Namespaces collapse only when the map would be crowded (`collapse::auto_collapses`).
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

/// Whether a graph the server did not group (an older server) is drawn at namespace zoom:
/// the server's rule (`collapse::auto_collapses`) on what arrived, or the user's choice.
pub fn should_collapse(g: &Graph, mode: Grouping) -> bool {
    match mode {
        Grouping::None => false,
        Grouping::Namespace => !all(g).is_empty(),
        Grouping::Auto => collapse::auto_collapses(g.nodes.len(), all(g).len()),
    }
}

/// Every namespace of the graph's service nodes.
pub fn all(g: &Graph) -> BTreeSet<String> {
    g.nodes
        .iter()
        .filter(|n| n.node_kind() == Some(NodeKind::Service))
        .filter_map(|n| n.namespace.clone())
        .collect()
}

/// Collapses every namespace not in `expanded` into one node (the graph API's collapse, with
/// the browser's upper-bound merge); returns whether anything changed. A graph the server
/// grouped has no service with a collapsed namespace left, so this changes nothing there.
pub fn collapse(g: &mut Graph, expanded: &BTreeSet<String>) -> bool {
    let to = collapse::assign(g, NodeKind::Namespace, expanded, |n| n.namespace.as_deref());
    collapse::collapse(g, &to, &UpperBound)
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

/// The `group=` value the graph API is asked for: the user's namespace level, else (the
/// default, `group=` absent in the page's URL) the automatic zoom — except in diff mode,
/// which compares services and shows them all. `None`: ask for no grouping here.
pub fn server_group(group: &str, diff: bool) -> Option<&'static str> {
    match group {
        "namespace" => Some("namespace"),
        "" if !diff => Some("auto"),
        _ => None,
    }
}

/// What the map says about an automatic collapse (`None` when there was none): how many
/// namespaces and services, and how to see them.
pub fn auto_note(g: &crate::api::Grouping) -> Option<String> {
    (g.auto && !g.collapsed.is_empty()).then(|| {
        format!(
            "{} nodes in {} namespaces: collapsed (more than {} nodes). Double-click one to \
             expand it, or group by services.",
            g.nodes,
            g.collapsed.len(),
            crate::api::collapse::LEGIBLE_NODES
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(id: &str, ns: &str) -> crate::api::Node {
        crate::api::Node {
            id: id.into(),
            name: id.into(),
            kind: "service".into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }
    }

    /// `n` services spread round-robin over `namespaces` namespaces.
    fn mesh(n: usize, namespaces: usize) -> Graph {
        Graph {
            level: "region".into(),
            nodes: (0..n)
                .map(|i| svc(&format!("s{i}"), &format!("team-{}", i % namespaces)))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_browser_applies_the_servers_rule_and_a_grouped_graph_stays() {
        assert!(!should_collapse(&mesh(25, 1), Grouping::Auto));
        assert!(!should_collapse(&mesh(2000, 1), Grouping::Auto));
        assert!(should_collapse(&mesh(300, 6), Grouping::Auto));
        assert!(should_collapse(&mesh(3, 2), Grouping::Namespace));
        assert!(!should_collapse(&mesh(300, 6), Grouping::None));
        assert_eq!(Grouping::parse("attr:host.name"), Grouping::None);
        let mut g = mesh(300, 6);
        assert!(collapse(&mut g, &BTreeSet::new()));
        assert_eq!(g.nodes.len(), 6);
        let once = g.clone();
        assert!(!collapse(&mut g, &BTreeSet::new()), "already grouped");
        assert_eq!(g, once);
    }

    #[test]
    fn the_url_form_round_trips() {
        let set = parse_expanded("pay,shop,");
        assert_eq!(format_expanded(&set), "pay,shop");
        assert_eq!(parse_expanded(""), BTreeSet::new());
        assert_eq!(of_id("namespace:pay"), Some("pay"));
    }

    #[test]
    fn the_server_groups_automatically_unless_the_user_chose() {
        assert_eq!(server_group("", false), Some("auto"));
        assert_eq!(server_group("", true), None, "diff compares services");
        assert_eq!(server_group("namespace", false), Some("namespace"));
        assert_eq!(server_group("namespace", true), Some("namespace"));
        assert_eq!(server_group("none", false), None);
        assert_eq!(
            server_group("region", false),
            None,
            "the browser groups that"
        );
        let mut g = crate::api::Grouping {
            by: "namespace".into(),
            auto: true,
            collapsed: vec!["pay".into(), "shop".into()],
            nodes: 312,
        };
        let note = auto_note(&g).unwrap();
        assert!(note.starts_with("312 nodes in 2 namespaces"), "{note}");
        g.collapsed.clear();
        assert_eq!(auto_note(&g), None, "nothing collapsed: nothing to say");
        g.collapsed.push("x".into());
        g.auto = false;
        assert_eq!(auto_note(&g), None, "the user asked for it");
    }
}
