//! Comparing two traces (like Jaeger UI's trace comparison), browser-free: both span trees are
//! merged by path — the chain of (service, operation) from the root — and each node of the
//! merged tree says how many spans each trace has there and how long they took, so spans
//! added, removed, slower or faster stand out. O(n) with interned node ids (no path strings, so
//! a 50,000-deep chain costs no more than a wide tree).

use crate::waterfall::TraceModel;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Same,
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    /// In both, B's spans take ≥ 10% (and ≥ 1 ms) longer on average.
    Slower,
    Faster,
    /// In both, a different number of spans (more or fewer calls).
    Count,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Same => "same",
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Slower => "slower",
            Change::Faster => "faster",
            Change::Count => "count",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiffRow {
    pub depth: u32,
    pub service: String,
    pub operation: String,
    pub count_a: usize,
    pub count_b: usize,
    /// Summed durations of the spans at this node.
    pub total_a_us: i64,
    pub total_b_us: i64,
    pub change: Change,
}

impl DiffRow {
    pub fn avg_a_us(&self) -> i64 {
        self.total_a_us / self.count_a.max(1) as i64
    }
    pub fn avg_b_us(&self) -> i64 {
        self.total_b_us / self.count_b.max(1) as i64
    }
}

/// The merged tree of `a` and `b` in preorder (children by first appearance, A's first).
pub fn diff(a: &TraceModel, b: &TraceModel) -> Vec<DiffRow> {
    // Node 0 is a virtual root above the traces' roots.
    let mut ids: HashMap<(usize, &str, &str), usize> = HashMap::new();
    let mut rows: Vec<DiffRow> = vec![DiffRow {
        depth: 0,
        service: String::new(),
        operation: String::new(),
        count_a: 0,
        count_b: 0,
        total_a_us: 0,
        total_b_us: 0,
        change: Change::Same,
    }];
    let mut kids: Vec<Vec<usize>> = vec![Vec::new()];
    for (side, m) in [(0, a), (1, b)] {
        let mut node = vec![0usize; m.spans.len()];
        for i in m.visible_rows(&HashSet::new()) {
            let s = &m.spans[i];
            let parent = m.parent[i].map(|p| node[p]).unwrap_or(0);
            let key = (parent, s.service.as_str(), s.name.as_str());
            let id = *ids.entry(key).or_insert_with(|| {
                rows.push(DiffRow {
                    depth: rows[parent].depth + 1,
                    service: s.service.clone(),
                    operation: s.name.clone(),
                    count_a: 0,
                    count_b: 0,
                    total_a_us: 0,
                    total_b_us: 0,
                    change: Change::Same,
                });
                kids.push(Vec::new());
                kids[parent].push(rows.len() - 1);
                rows.len() - 1
            });
            node[i] = id;
            let r = &mut rows[id];
            if side == 0 {
                r.count_a += 1;
                r.total_a_us += s.duration_us;
            } else {
                r.count_b += 1;
                r.total_b_us += s.duration_us;
            }
        }
    }
    for r in rows.iter_mut().skip(1) {
        r.change = classify(r);
    }
    let mut out = Vec::with_capacity(rows.len() - 1);
    let mut stack: Vec<usize> = kids[0].iter().rev().copied().collect();
    while let Some(n) = stack.pop() {
        out.push(rows[n].clone());
        stack.extend(kids[n].iter().rev().copied());
    }
    for r in &mut out {
        r.depth -= 1;
    }
    out
}

fn classify(r: &DiffRow) -> Change {
    match (r.count_a, r.count_b) {
        (0, _) => Change::Added,
        (_, 0) => Change::Removed,
        (x, y) if x != y => Change::Count,
        _ => {
            let (a, b) = (r.avg_a_us(), r.avg_b_us());
            let threshold = (a / 10).max(1_000);
            if b - a >= threshold {
                Change::Slower
            } else if a - b >= threshold {
                Change::Faster
            } else {
                Change::Same
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Span, Trace};
    use crate::test_support::span;

    fn model(spans: Vec<Span>) -> TraceModel {
        TraceModel::new(Trace {
            spans,
            ..Default::default()
        })
    }

    #[test]
    fn added_removed_slower_faster_and_call_counts() {
        let a = model(vec![
            span("r", "", "web", "GET /", 0, 100_000),
            span("q1", "r", "db", "SELECT", 1_000, 10_000),
            span("c", "r", "cart", "load", 20_000, 20_000),
            span("x", "r", "cache", "get", 50_000, 30_000),
            span("old", "c", "legacy", "lookup", 21_000, 5_000),
        ]);
        let b = model(vec![
            span("R", "", "web", "GET /", 0, 104_000),
            span("Q1", "R", "db", "SELECT", 1_000, 10_000),
            span("Q2", "R", "db", "SELECT", 12_000, 10_000),
            span("C", "R", "cart", "load", 20_000, 60_000),
            span("X", "R", "cache", "get", 50_000, 3_000),
            span("new", "C", "pricing", "quote", 21_000, 5_000),
        ]);
        let d = diff(&a, &b);
        let row = |svc: &str| d.iter().find(|r| r.service == svc).unwrap();
        assert_eq!(row("web").change, Change::Same, "4% slower is noise");
        assert_eq!(row("db").change, Change::Count);
        assert_eq!((row("db").count_a, row("db").count_b), (1, 2));
        assert_eq!(row("cart").change, Change::Slower);
        assert_eq!(row("cache").change, Change::Faster);
        assert_eq!(row("legacy").change, Change::Removed);
        assert_eq!(row("pricing").change, Change::Added);
        // Preorder with depths: the removed and added children under cart.
        let order: Vec<(&str, u32)> = d.iter().map(|r| (r.service.as_str(), r.depth)).collect();
        assert_eq!(
            order,
            [
                ("web", 0),
                ("db", 1),
                ("cart", 1),
                ("legacy", 2),
                ("pricing", 2),
                ("cache", 1)
            ]
        );
    }

    #[test]
    fn same_operation_under_different_parents_are_different_nodes() {
        let a = model(vec![
            span("r", "", "web", "GET /", 0, 10),
            span("a", "r", "svc", "op", 0, 5),
        ]);
        let b = model(vec![
            span("r", "", "web", "GET /", 0, 10),
            span("m", "r", "mid", "hop", 0, 8),
            span("a", "m", "svc", "op", 0, 5),
        ]);
        let d = diff(&a, &b);
        let svc: Vec<Change> = d
            .iter()
            .filter(|r| r.service == "svc")
            .map(|r| r.change)
            .collect();
        assert_eq!(svc, [Change::Removed, Change::Added]);
    }

    #[test]
    fn a_trace_against_itself_is_all_same_and_deep_chains_are_fine() {
        let t = crate::waterfall::synthetic_trace(5_000, 7);
        let (a, b) = (TraceModel::new(t.clone()), TraceModel::new(t));
        let d = diff(&a, &b);
        assert!(d.iter().all(|r| r.change == Change::Same));
        assert_eq!(d.iter().map(|r| r.count_a).sum::<usize>(), 5_000);
        let chain: Vec<Span> = (0..50_000)
            .map(|i| {
                let parent = if i == 0 {
                    String::new()
                } else {
                    format!("{}", i - 1)
                };
                span(&format!("{i}"), &parent, "s", "op", i, 1)
            })
            .collect();
        let m = model(chain);
        let d = diff(&m, &model(vec![]));
        assert_eq!(d.len(), 50_000);
        assert!(d.iter().all(|r| r.change == Change::Removed));
        assert_eq!(d.last().unwrap().depth, 49_999);
    }
}
