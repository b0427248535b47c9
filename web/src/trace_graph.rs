//! The trace page's graph view (Jaeger UI's "Trace Graph"), browser-free: one node per service
//! (or per service and operation), an edge per caller → callee with the number of calls, laid
//! out left to right in layers by the fewest calls from a root. Bounded: at most `cap` nodes
//! (the ones with the most spans), the rest counted as left out.

use crate::trace_info::self_time;
use crate::waterfall::TraceModel;
use std::collections::{HashMap, VecDeque};

/// Node box and spacing in the SVG's user units.
pub const NODE_W: f64 = 200.0;
pub const NODE_H: f64 = 44.0;
pub const GAP_X: f64 = 70.0;
pub const GAP_Y: f64 = 14.0;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Node {
    pub service: String,
    /// Empty when the graph is by service.
    pub operation: String,
    pub spans: usize,
    pub errors: usize,
    pub total_us: i64,
    pub self_us: i64,
    pub layer: usize,
    /// Top-left corner of its box.
    pub x: f64,
    pub y: f64,
}

impl Node {
    /// `service`, or `service operation` in the graph by operation.
    pub fn key(&self) -> String {
        if self.operation.is_empty() {
            self.service.clone()
        } else {
            format!("{} {}", self.service, self.operation)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub calls: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// Nodes beyond the cap (not drawn).
    pub left_out: usize,
    pub width: f64,
    pub height: f64,
}

/// The graph of a trace by service (`by_operation` false: calls inside a service are not
/// edges) or by service and operation.
pub fn graph(m: &TraceModel, by_operation: bool, cap: usize) -> Graph {
    let mut ids: HashMap<(&str, &str), usize> = HashMap::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut node_of = vec![0usize; m.spans.len()];
    for (i, s) in m.spans.iter().enumerate() {
        let op = if by_operation { s.name.as_str() } else { "" };
        let id = *ids.entry((s.service.as_str(), op)).or_insert_with(|| {
            nodes.push(Node {
                service: s.service.clone(),
                operation: op.to_string(),
                ..Default::default()
            });
            nodes.len() - 1
        });
        node_of[i] = id;
        let n = &mut nodes[id];
        n.spans += 1;
        n.errors += s.is_error() as usize;
        n.total_us += s.duration_us;
        n.self_us += self_time(m, i);
    }
    // Keep the `cap` nodes with the most spans (ties: first seen).
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by(|&a, &b| nodes[b].spans.cmp(&nodes[a].spans).then(a.cmp(&b)));
    let left_out = order.len().saturating_sub(cap);
    let mut keep = vec![usize::MAX; nodes.len()];
    let mut kept_ids: Vec<usize> = order.into_iter().take(cap).collect();
    kept_ids.sort_unstable();
    for (k, &id) in kept_ids.iter().enumerate() {
        keep[id] = k;
    }
    let mut calls: HashMap<(usize, usize), usize> = HashMap::new();
    let mut edge_order: Vec<(usize, usize)> = Vec::new();
    let mut is_root = vec![false; kept_ids.len()];
    for i in 0..m.spans.len() {
        let to = keep[node_of[i]];
        match m.parent[i] {
            None if to != usize::MAX => is_root[to] = true,
            Some(p) => {
                let from = keep[node_of[p]];
                if from == usize::MAX || to == usize::MAX || from == to {
                    continue;
                }
                let c = calls.entry((from, to)).or_insert_with(|| {
                    edge_order.push((from, to));
                    0
                });
                *c += 1;
            }
            None => {}
        }
    }
    let mut nodes: Vec<Node> = kept_ids.iter().map(|&id| nodes[id].clone()).collect();
    let edges: Vec<Edge> = edge_order
        .iter()
        .map(|&(from, to)| Edge {
            from,
            to,
            calls: calls[&(from, to)],
        })
        .collect();
    // Layers: fewest calls from a root (breadth first); a node only reached through nodes left
    // out starts a layer-0 chain of its own.
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for e in &edges {
        out[e.from].push(e.to);
    }
    let mut layer = vec![usize::MAX; nodes.len()];
    let mut q: VecDeque<usize> = VecDeque::new();
    for (k, _) in is_root.iter().enumerate().filter(|(_, r)| **r) {
        layer[k] = 0;
        q.push_back(k);
    }
    loop {
        while let Some(k) = q.pop_front() {
            for &t in &out[k] {
                if layer[t] == usize::MAX {
                    layer[t] = layer[k] + 1;
                    q.push_back(t);
                }
            }
        }
        match layer.iter().position(|&l| l == usize::MAX) {
            Some(k) => {
                layer[k] = 0;
                q.push_back(k);
            }
            None => break,
        }
    }
    let layers = layer.iter().max().map_or(0, |l| l + 1);
    let mut filled = vec![0usize; layers];
    for (k, n) in nodes.iter_mut().enumerate() {
        n.layer = layer[k];
        n.x = n.layer as f64 * (NODE_W + GAP_X);
        n.y = filled[n.layer] as f64 * (NODE_H + GAP_Y);
        filled[n.layer] += 1;
    }
    let rows = filled.iter().copied().max().unwrap_or(0);
    Graph {
        nodes,
        edges,
        left_out,
        width: (layers as f64 * (NODE_W + GAP_X) - GAP_X).max(NODE_W),
        height: (rows as f64 * (NODE_H + GAP_Y) - GAP_Y).max(NODE_H),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Status, Trace};
    use crate::test_support::span;

    fn model() -> TraceModel {
        let mut failed = span("p2", "c", "payments", "charge", 30, 10);
        failed.status = Status {
            code: "Error".into(),
            message: String::new(),
        };
        TraceModel::new(Trace {
            spans: vec![
                span("r", "", "web", "GET /", 0, 100),
                span("w2", "r", "web", "render", 1, 10),
                span("c", "r", "checkout", "POST /orders", 10, 60),
                span("p1", "c", "payments", "charge", 15, 10),
                failed,
                // payments calls back into checkout (a cycle between services).
                span("cb", "p1", "checkout", "callback", 16, 5),
            ],
            ..Default::default()
        })
    }

    #[test]
    fn by_service_edges_count_calls_and_layers_follow_the_calls() {
        let g = graph(&model(), false, 100);
        let names: Vec<&str> = g.nodes.iter().map(|n| n.service.as_str()).collect();
        assert_eq!(names, ["web", "checkout", "payments"]);
        let edge = |a: &str, b: &str| {
            g.edges
                .iter()
                .find(|e| g.nodes[e.from].service == a && g.nodes[e.to].service == b)
                .map(|e| e.calls)
        };
        assert_eq!(edge("web", "checkout"), Some(1));
        assert_eq!(edge("checkout", "payments"), Some(2));
        assert_eq!(edge("payments", "checkout"), Some(1), "the call back");
        assert_eq!(
            edge("web", "web"),
            None,
            "calls inside a service are no edge"
        );
        let layers: Vec<usize> = g.nodes.iter().map(|n| n.layer).collect();
        assert_eq!(layers, [0, 1, 2]);
        let pay = &g.nodes[2];
        assert_eq!((pay.spans, pay.errors, pay.total_us), (2, 1, 20));
        assert_eq!(
            g.nodes[1].self_us,
            60 - 20 + 5,
            "checkout: 40 own + the callback"
        );
        assert!(g.width >= 3.0 * NODE_W);
    }

    #[test]
    fn by_operation_and_capped() {
        let g = graph(&model(), true, 100);
        assert_eq!(g.nodes.len(), 5);
        let web_render = g
            .edges
            .iter()
            .find(|e| g.nodes[e.to].operation == "render")
            .unwrap();
        assert_eq!(g.nodes[web_render.from].operation, "GET /");
        let charge = g.nodes.iter().find(|n| n.operation == "charge").unwrap();
        assert_eq!(charge.spans, 2);
        // Two nodes in layer 1 are stacked.
        let l1: Vec<f64> = g
            .nodes
            .iter()
            .filter(|n| n.layer == 1)
            .map(|n| n.y)
            .collect();
        assert_eq!(l1, [0.0, NODE_H + GAP_Y]);
        let capped = graph(&model(), true, 2);
        assert_eq!(capped.nodes.len(), 2);
        assert_eq!(capped.left_out, 3);
        assert!(
            capped
                .edges
                .iter()
                .all(|e| e.from < 2 && e.to < 2 && e.from != e.to)
        );
        let big = TraceModel::new(crate::waterfall::synthetic_trace(50_000, 40));
        let g = graph(&big, true, 200);
        assert_eq!(g.nodes.len(), 200);
        assert!(g.nodes.iter().all(|n| n.layer < 200));
        assert_eq!(graph(&big, false, 200).nodes.len(), 40);
        assert!(
            graph(&TraceModel::new(Trace::default()), false, 10)
                .nodes
                .is_empty()
        );
    }
}
