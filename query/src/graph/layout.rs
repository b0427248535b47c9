//! Graph algorithms on the assembled map (petgraph): depth ranks for a left-to-right layout,
//! cycles, and a node's neighbourhood.

use std::collections::{BTreeSet, HashMap};

use petgraph::algo::{condensation, tarjan_scc, toposort};
use petgraph::graph::DiGraph;
use petgraph::visit::EdgeRef;

pub struct Layout {
    /// Rank (depth) per node id.
    pub ranks: HashMap<String, u32>,
    /// Node ids of each cycle, sorted.
    pub cycles: Vec<Vec<String>>,
    /// Nodes on a cycle.
    pub in_cycle: BTreeSet<String>,
}

fn build(
    nodes: &[String],
    edges: &[(String, String)],
) -> (
    DiGraph<String, ()>,
    HashMap<String, petgraph::graph::NodeIndex>,
) {
    let mut g = DiGraph::new();
    let mut idx = HashMap::new();
    for n in nodes {
        idx.entry(n.clone())
            .or_insert_with(|| g.add_node(n.clone()));
    }
    for (a, b) in edges {
        let ia = *idx
            .entry(a.clone())
            .or_insert_with(|| g.add_node(a.clone()));
        let ib = *idx
            .entry(b.clone())
            .or_insert_with(|| g.add_node(b.clone()));
        g.add_edge(ia, ib, ());
    }
    (g, idx)
}

/// Ranks are longest-path depths on the graph with each cycle collapsed to one node, so a
/// cycle's members share a rank and every other edge points to a higher rank.
pub fn layout(nodes: &[String], edges: &[(String, String)]) -> Layout {
    let (g, _) = build(nodes, edges);
    let mut cycles = Vec::new();
    let mut in_cycle = BTreeSet::new();
    for scc in tarjan_scc(&g) {
        let self_loop = scc.len() == 1 && g.contains_edge(scc[0], scc[0]);
        if scc.len() > 1 || self_loop {
            let mut names: Vec<String> = scc.iter().map(|i| g[*i].clone()).collect();
            names.sort();
            in_cycle.extend(names.iter().cloned());
            cycles.push(names);
        }
    }
    cycles.sort();
    // Collapse each cycle to one node (dropping self loops) so the result is a DAG.
    let dag = condensation(g.clone(), true);
    let order = toposort(&dag, None).unwrap_or_default();
    let mut rank_of = vec![0u32; dag.node_count()];
    for n in order {
        let r = rank_of[n.index()];
        for e in dag.edges(n) {
            let t = e.target().index();
            rank_of[t] = rank_of[t].max(r + 1);
        }
    }
    let mut ranks = HashMap::new();
    for n in dag.node_indices() {
        for name in &dag[n] {
            ranks.insert(name.clone(), rank_of[n.index()]);
        }
    }
    Layout {
        ranks,
        cycles,
        in_cycle,
    }
}

/// `focus` and its direct callers and callees.
pub fn neighbourhood(edges: &[(String, String)], focus: &str) -> BTreeSet<String> {
    let (g, idx) = build(&[focus.to_string()], edges);
    let mut out = BTreeSet::from([focus.to_string()]);
    if let Some(&i) = idx.get(focus) {
        out.extend(g.neighbors_undirected(i).map(|n| g[n].clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    #[test]
    fn ranks_follow_depth_and_cycles_share_a_rank() {
        let edges = vec![
            e("INTERNET", "web"),
            e("web", "api"),
            e("api", "db"),
            e("api", "worker"),
            e("worker", "api"),
            e("web", "db"),
        ];
        let l = layout(&[], &edges);
        assert_eq!(l.ranks["INTERNET"], 0);
        assert_eq!(l.ranks["web"], 1);
        assert_eq!(l.ranks["api"], 2);
        assert_eq!(l.ranks["worker"], 2);
        assert_eq!(l.ranks["db"], 3);
        assert_eq!(
            l.cycles,
            vec![vec!["api".to_string(), "worker".to_string()]]
        );
        assert!(l.in_cycle.contains("worker") && !l.in_cycle.contains("web"));
    }

    #[test]
    fn self_loops_are_cycles_and_neighbourhood_is_one_hop() {
        let edges = vec![e("a", "a"), e("a", "b"), e("c", "a"), e("b", "d")];
        let l = layout(&[], &edges);
        assert_eq!(l.cycles, vec![vec!["a".to_string()]]);
        let n = neighbourhood(&edges, "a");
        assert_eq!(n.into_iter().collect::<Vec<_>>(), vec!["a", "b", "c"]);
    }
}
