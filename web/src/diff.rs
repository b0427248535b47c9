//! Diff mode: the current window's graph plus what vanished since the previous window, so
//! vanished edges are drawn (dashed, grey) between nodes that stay where they were.

use crate::api::{Edge, Graph, GraphDiff, Health, Node};
use std::collections::HashSet;

/// What diff mode marks on a graph: edge ids new in the current window, and edge and node ids
/// only in the previous one (edge ids contain `->`, so the two never collide).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marks {
    pub added: HashSet<String>,
    pub vanished: HashSet<String>,
}

impl Marks {
    /// What an edge shows as (colour, `data-health`): `added`, `vanished` or its health.
    pub fn edge_state(&self, e: &Edge) -> &'static str {
        if self.vanished.contains(&e.id) {
            "vanished"
        } else if self.added.contains(&e.id) {
            "added"
        } else {
            e.health.as_str()
        }
    }

    pub fn node_vanished(&self, id: &str) -> bool {
        self.vanished.contains(id)
    }
}

/// Adds the vanished edges and nodes of `d` to `g` (they keep their previous-window metrics
/// for the hover; the scene gives them no particles) and returns the marks. Nodes an edge
/// needs that neither window lists are added next to their neighbour's rank.
pub fn merge(g: &mut Graph, d: &GraphDiff) -> Marks {
    let mut marks = Marks::default();
    let edge_ids: HashSet<String> = g.edges.iter().map(|e| e.id.clone()).collect();
    marks.added = d
        .added_edges
        .iter()
        .filter(|e| edge_ids.contains(&e.id))
        .map(|e| e.id.clone())
        .collect();
    let mut node_ids: HashSet<String> = g.nodes.iter().map(|n| n.id.clone()).collect();
    for n in &d.removed_nodes {
        if node_ids.insert(n.id.clone()) {
            marks.vanished.insert(n.id.clone());
            g.nodes.push(n.clone());
        }
    }
    for e in &d.removed_edges {
        if edge_ids.contains(&e.id) {
            continue;
        }
        let rank_of = |g: &Graph, id: &str| g.nodes.iter().find(|n| n.id == id).map(|n| n.rank);
        for (end, other, step) in [(&e.source, &e.target, -1i64), (&e.target, &e.source, 1)] {
            if node_ids.insert(end.clone()) {
                let rank = rank_of(g, other).map_or(0, |r| (r as i64 + step).max(0) as u32);
                marks.vanished.insert(end.clone());
                g.nodes.push(placeholder(end, rank));
            }
        }
        marks.vanished.insert(e.id.clone());
        g.edges.push(e.clone());
    }
    marks
}

fn placeholder(id: &str, rank: u32) -> Node {
    let kind = crate::api::NodeId::parse(id).kind().as_str();
    Node {
        id: id.to_string(),
        name: id.to_string(),
        kind: kind.to_string(),
        rank,
        health: Health::Normal,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, rank: u32) -> Node {
        Node {
            id: id.into(),
            name: id.into(),
            kind: "service".into(),
            rank,
            ..Default::default()
        }
    }

    fn edge(a: &str, b: &str) -> Edge {
        Edge {
            id: format!("{a}->{b}"),
            source: a.into(),
            target: b.into(),
            health: Health::Danger,
            ..Default::default()
        }
    }

    #[test]
    fn vanished_edges_and_nodes_join_the_graph_and_are_marked() {
        let mut g = Graph {
            nodes: vec![node("a", 0), node("b", 1), node("c", 2)],
            edges: vec![edge("a", "b"), edge("b", "c")],
            ..Default::default()
        };
        let d = GraphDiff {
            added_edges: vec![edge("b", "c"), edge("x", "y")],
            removed_nodes: vec![node("old", 2)],
            removed_edges: vec![edge("b", "old"), edge("old", "gone"), edge("a", "b")],
            ..Default::default()
        };
        let m = merge(&mut g, &d);
        // Only edges that are drawn are marked added.
        assert_eq!(m.added, HashSet::from(["b->c".to_string()]));
        let ids: Vec<&str> = g.edges.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a->b", "b->c", "b->old", "old->gone"]);
        let nodes: Vec<(&str, u32)> = g.nodes.iter().map(|n| (n.id.as_str(), n.rank)).collect();
        assert_eq!(
            nodes,
            [("a", 0), ("b", 1), ("c", 2), ("old", 2), ("gone", 3)]
        );
        for id in ["b->old", "old->gone", "old", "gone"] {
            assert!(m.vanished.contains(id), "{id}");
        }
        // An edge present in both windows is neither (the diff listing it as removed is stale).
        assert_eq!(m.edge_state(&g.edges[0]), "danger");
        assert_eq!(m.edge_state(&g.edges[1]), "added");
        assert_eq!(m.edge_state(&g.edges[2]), "vanished");
        assert!(!m.node_vanished("a"));
        assert!(m.node_vanished("gone"));
    }

    #[test]
    fn placeholder_nodes_get_their_kind_from_the_id() {
        let mut g = Graph::default();
        let d = GraphDiff {
            removed_edges: vec![edge("INTERNET", "db"), edge("db", "database:pg")],
            ..Default::default()
        };
        merge(&mut g, &d);
        let kinds: Vec<(&str, &str, u32)> = g
            .nodes
            .iter()
            .map(|n| (n.id.as_str(), n.kind.as_str(), n.rank))
            .collect();
        assert_eq!(
            kinds,
            [
                ("INTERNET", "entry", 0),
                ("db", "service", 1),
                ("database:pg", "database", 2)
            ]
        );
        assert!(g.nodes[2].is_virtual());
    }
}
