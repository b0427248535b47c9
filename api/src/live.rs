//! The live graph stream's change events (`GET /orrery/api/graph/stream`; docs/query.md,
//! "Live stream"). A stream starts with a full `graph` event; each later tick is a `delta`
//! event holding only what changed since the graph the client holds: nodes and edges added,
//! removed, replaced, or with new metrics. One definition for the server (which computes a
//! delta once per tick and sends the same bytes to every subscriber) and the UI (which applies
//! it), so the two cannot drift: the server checks that [`apply`] of its delta reproduces its
//! graph exactly before sending it, and sends the full graph instead when it does not.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{DataQuality, Edge, Graph, Grouping, Health, Metrics, Node, WhatsWrong, Window};

/// New metrics (and the health they give) of a node or edge whose other fields are unchanged:
/// the common case on a busy map, where every rate moves every tick (a live window's rates
/// change with its length even without new calls). On the wire it is an array without field
/// names, `[id, requests, errors, rps, error_rate, p50_ms, p95_ms, p99_ms, avg_ms, health]`,
/// which makes a busy map's delta ~40% smaller than objects would.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(into = "MetricsRow", from = "MetricsRow")]
pub struct MetricsUpdate {
    pub id: String,
    pub metrics: Metrics,
    pub health: Health,
}

#[derive(Serialize, Deserialize)]
struct MetricsRow(String, u64, u64, f64, f64, f64, f64, f64, f64, Health);

impl From<MetricsUpdate> for MetricsRow {
    fn from(u: MetricsUpdate) -> Self {
        let m = u.metrics;
        MetricsRow(
            u.id,
            m.requests,
            m.errors,
            m.rps,
            m.error_rate,
            m.p50_ms,
            m.p95_ms,
            m.p99_ms,
            m.avg_ms,
            u.health,
        )
    }
}

impl From<MetricsRow> for MetricsUpdate {
    fn from(r: MetricsRow) -> Self {
        let MetricsRow(
            id,
            requests,
            errors,
            rps,
            error_rate,
            p50_ms,
            p95_ms,
            p99_ms,
            avg_ms,
            health,
        ) = r;
        MetricsUpdate {
            id,
            metrics: Metrics {
                requests,
                errors,
                rps,
                error_rate,
                p50_ms,
                p95_ms,
                p99_ms,
                avg_ms,
            },
            health,
        }
    }
}

/// What changed in a list of nodes or edges (each identified by its `id`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub struct Changes<T> {
    /// New items, appended in this order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<T>,
    /// Ids of items gone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Items replaced whole (something besides metrics and health changed), in place.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<T>,
    /// Items with only new metrics and health, in place.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricsUpdate>,
    /// Every id in the new order; only present when the edits above leave another order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<Vec<String>>,
}

impl<T> Changes<T> {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.metrics.is_empty()
            && self.order.is_none()
    }
}

/// A `delta` event: turns graph `base` (the stream's sequence number of the graph the client
/// holds) into graph `seq`. The graph's small top-level fields come whole.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub struct GraphDelta {
    pub base: u64,
    pub seq: u64,
    pub level: String,
    pub name: String,
    pub window: Window,
    pub generated_at_ms: i64,
    pub max_volume: f64,
    pub cycles: Vec<Vec<String>>,
    pub whats_wrong: Vec<WhatsWrong>,
    pub data_quality: DataQuality,
    /// The graph's `grouping` (what `group=` did), whole; absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grouping: Option<Grouping>,
    pub nodes: Changes<Node>,
    pub edges: Changes<Edge>,
}

/// A node or an edge: identified by `id`, with metrics and health.
pub trait Item: Clone + PartialEq {
    fn id(&self) -> &str;
    fn set_metrics(&mut self, metrics: Metrics, health: Health);
    fn metrics_update(&self) -> MetricsUpdate;
}

/// Nodes and edges are items the same way (an `id`, `metrics` and `health` field each).
macro_rules! item {
    ($($t:ty),*) => {$(
        impl Item for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn set_metrics(&mut self, metrics: Metrics, health: Health) {
                self.metrics = metrics;
                self.health = health;
            }
            fn metrics_update(&self) -> MetricsUpdate {
                MetricsUpdate {
                    id: self.id.clone(),
                    metrics: self.metrics.clone(),
                    health: self.health,
                }
            }
        }
    )*};
}

item!(Node, Edge);

/// The changes from `prev` to `cur`, or `None` when ids are not unique (then only the full
/// list describes it).
pub fn changes<T: Item>(prev: &[T], cur: &[T]) -> Option<Changes<T>> {
    let before: HashMap<&str, &T> = prev.iter().map(|t| (t.id(), t)).collect();
    let after: HashSet<&str> = cur.iter().map(|t| t.id()).collect();
    if before.len() != prev.len() || after.len() != cur.len() {
        return None;
    }
    let mut c = Changes {
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        metrics: Vec::new(),
        order: None,
    };
    for p in prev {
        if !after.contains(p.id()) {
            c.removed.push(p.id().to_string());
        }
    }
    for t in cur {
        match before.get(t.id()) {
            None => c.added.push(t.clone()),
            Some(&p) if p == t => {}
            Some(&p) => {
                let u = t.metrics_update();
                let mut same_but_metrics = p.clone();
                same_but_metrics.set_metrics(u.metrics.clone(), u.health);
                if same_but_metrics == *t {
                    c.metrics.push(u);
                } else {
                    c.changed.push(t.clone());
                }
            }
        }
    }
    // The order applying leaves: survivors in their old order, then the added ones.
    let left = prev
        .iter()
        .map(|t| t.id())
        .filter(|id| after.contains(id))
        .chain(c.added.iter().map(|t| t.id()));
    if !left.eq(cur.iter().map(|t| t.id())) {
        c.order = Some(cur.iter().map(|t| t.id().to_string()).collect());
    }
    Some(c)
}

/// Applies `c` to `items`; an error when it does not fit them (a delta for another base).
pub fn apply_changes<T: Item>(items: &mut Vec<T>, c: &Changes<T>) -> Result<(), String> {
    if !c.removed.is_empty() {
        let gone: HashSet<&str> = c.removed.iter().map(String::as_str).collect();
        let n = items.len();
        items.retain(|t| !gone.contains(t.id()));
        if n - items.len() != gone.len() {
            return Err("a removed id is not in the graph".into());
        }
    }
    let mut index: HashMap<String, usize> = items
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id().to_string(), i))
        .collect();
    for t in &c.changed {
        let i = *index
            .get(t.id())
            .ok_or_else(|| format!("changed id {:?} is not in the graph", t.id()))?;
        items[i] = t.clone();
    }
    for u in &c.metrics {
        let i = *index
            .get(&u.id)
            .ok_or_else(|| format!("updated id {:?} is not in the graph", u.id))?;
        items[i].set_metrics(u.metrics.clone(), u.health);
    }
    for t in &c.added {
        if index.insert(t.id().to_string(), items.len()).is_some() {
            return Err(format!("added id {:?} is already in the graph", t.id()));
        }
        items.push(t.clone());
    }
    if let Some(order) = &c.order {
        if order.len() != items.len() {
            return Err("the order does not list every id".into());
        }
        let mut slots: Vec<Option<T>> = std::mem::take(items).into_iter().map(Some).collect();
        for id in order {
            let i = *index
                .get(id)
                .ok_or_else(|| format!("ordered id {id:?} is not in the graph"))?;
            items.push(
                slots[i]
                    .take()
                    .ok_or_else(|| format!("id {id:?} is ordered twice"))?,
            );
        }
    }
    Ok(())
}

/// The delta turning `prev` (sequence `base`) into `cur` (sequence `seq`), or `None` when no
/// delta reproduces `cur` exactly (duplicate ids, NaN metrics): then send `cur` whole.
pub fn delta(prev: &Graph, cur: &Graph, base: u64, seq: u64) -> Option<GraphDelta> {
    let d = GraphDelta {
        base,
        seq,
        level: cur.level.clone(),
        name: cur.name.clone(),
        window: cur.window,
        generated_at_ms: cur.generated_at_ms,
        max_volume: cur.max_volume,
        cycles: cur.cycles.clone(),
        whats_wrong: cur.whats_wrong.clone(),
        data_quality: cur.data_quality.clone(),
        grouping: cur.grouping.clone(),
        nodes: changes(&prev.nodes, &cur.nodes)?,
        edges: changes(&prev.edges, &cur.edges)?,
    };
    let mut check = prev.clone();
    apply(&mut check, &d).ok()?;
    (check == *cur).then_some(d)
}

/// Applies a delta to the graph it was computed from. On an error the graph may be half
/// changed: the caller must get a full graph again (the UI reconnects).
pub fn apply(g: &mut Graph, d: &GraphDelta) -> Result<(), String> {
    apply_changes(&mut g.nodes, &d.nodes)?;
    apply_changes(&mut g.edges, &d.edges)?;
    g.level = d.level.clone();
    g.name = d.name.clone();
    g.window = d.window;
    g.generated_at_ms = d.generated_at_ms;
    g.max_volume = d.max_volume;
    g.cycles = d.cycles.clone();
    g.whats_wrong = d.whats_wrong.clone();
    g.data_quality = d.data_quality.clone();
    g.grouping = d.grouping.clone();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, requests: u64) -> Node {
        Node {
            id: id.into(),
            name: id.into(),
            kind: "service".into(),
            metrics: Metrics {
                requests,
                rps: requests as f64 / 60.0,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn edge(a: &str, b: &str, requests: u64) -> Edge {
        Edge {
            id: format!("{a}->{b}"),
            source: a.into(),
            target: b.into(),
            metrics: Metrics {
                requests,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn graph(nodes: Vec<Node>, edges: Vec<Edge>, at: i64) -> Graph {
        Graph {
            level: "region".into(),
            name: "all".into(),
            generated_at_ms: at,
            nodes,
            edges,
            ..Default::default()
        }
    }

    fn roundtrip(prev: &Graph, cur: &Graph) -> GraphDelta {
        let d = delta(prev, cur, 1, 2).expect("a delta");
        // Through JSON, as the UI gets it.
        let d: GraphDelta = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        let mut g = prev.clone();
        apply(&mut g, &d).unwrap();
        assert_eq!(&g, cur);
        d
    }

    #[test]
    fn added_removed_changed_and_metrics_only_reproduce_the_new_graph() {
        let prev = graph(
            vec![node("a", 1), node("b", 2), node("c", 3)],
            vec![edge("a", "b", 1), edge("b", "c", 2)],
            1,
        );
        let mut c = node("c", 3);
        c.in_cycle = true;
        let cur = graph(
            vec![node("a", 5), c, node("d", 1)],
            vec![edge("a", "b", 1), edge("c", "d", 7)],
            2,
        );
        let d = roundtrip(&prev, &cur);
        assert_eq!(d.nodes.removed, vec!["b".to_string()]);
        assert_eq!(d.nodes.added.len(), 1);
        assert_eq!(d.nodes.changed.len(), 1, "c's in_cycle changed");
        assert_eq!(d.nodes.metrics.len(), 1, "a's metrics changed");
        assert_eq!(d.edges.removed, vec!["b->c".to_string()]);
        assert_eq!(d.edges.metrics.len(), 0, "a->b is unchanged");
        assert!(d.nodes.order.is_none() && d.edges.order.is_none());
    }

    #[test]
    fn an_unchanged_graph_is_an_empty_delta_and_a_new_order_is_sent() {
        let g = graph(vec![node("a", 1), node("b", 2)], vec![edge("a", "b", 1)], 1);
        let d = roundtrip(&g, &g);
        assert!(d.nodes.is_empty() && d.edges.is_empty());
        let json = serde_json::to_string(&d.nodes).unwrap();
        assert_eq!(json, "{}", "empty changes serialise to nothing");
        let swapped = graph(vec![node("b", 2), node("a", 1)], vec![edge("a", "b", 1)], 1);
        let d = roundtrip(&g, &swapped);
        assert_eq!(d.nodes.order, Some(vec!["b".into(), "a".into()]));
    }

    /// The automatic grouping can change from one tick to the next (a region grows past the
    /// threshold): the delta carries it, and a delta without it leaves none.
    #[test]
    fn the_grouping_travels_with_the_delta() {
        let plain = graph(vec![node("a", 1)], vec![], 1);
        let mut grouped = graph(vec![node("namespace:x", 1)], vec![], 2);
        grouped.grouping = Some(Grouping {
            by: "namespace".into(),
            auto: true,
            collapsed: vec!["x".into()],
            nodes: 61,
        });
        let d = roundtrip(&plain, &grouped);
        assert_eq!(d.grouping, grouped.grouping);
        let d = roundtrip(&grouped, &plain);
        assert!(d.grouping.is_none());
        assert!(!serde_json::to_string(&d).unwrap().contains("grouping"));
    }

    #[test]
    fn duplicate_ids_or_nan_metrics_mean_a_full_graph() {
        let g = graph(vec![node("a", 1)], vec![], 1);
        let dup = graph(vec![node("a", 1), node("a", 2)], vec![], 2);
        assert!(delta(&g, &dup, 1, 2).is_none());
        let mut nan = node("a", 1);
        nan.metrics.p95_ms = f64::NAN;
        assert!(delta(&g, &graph(vec![nan], vec![], 2), 1, 2).is_none());
    }

    #[test]
    fn a_delta_for_another_graph_is_an_error_not_a_wrong_map() {
        let prev = graph(vec![node("a", 1), node("b", 1)], vec![], 1);
        let cur = graph(vec![node("a", 2), node("c", 1)], vec![], 2);
        let d = delta(&prev, &cur, 1, 2).unwrap();
        let mut other = graph(vec![node("x", 1)], vec![], 1);
        assert!(apply(&mut other, &d).is_err());
        let mut has_c = graph(vec![node("a", 1), node("b", 1), node("c", 1)], vec![], 1);
        assert!(apply(&mut has_c, &d).unwrap_err().contains("already"));
    }

    #[test]
    fn a_metrics_update_is_a_compact_exact_array() {
        let u = MetricsUpdate {
            id: "a->b".into(),
            metrics: Metrics {
                requests: 3,
                errors: 1,
                rps: 0.1 + 0.2,
                error_rate: 1.0 / 3.0,
                p50_ms: 1.5,
                p95_ms: 2.0,
                p99_ms: 1e-9,
                avg_ms: 7.25,
            },
            health: Health::Danger,
        };
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(
            json,
            r#"["a->b",3,1,0.30000000000000004,0.3333333333333333,1.5,2.0,1e-9,7.25,"danger"]"#
        );
        assert_eq!(serde_json::from_str::<MetricsUpdate>(&json).unwrap(), u);
    }

    #[test]
    fn random_graphs_roundtrip() {
        // A small deterministic generator: many random before/after pairs.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..300 {
            let mut mk = |at| {
                let mut nodes: Vec<Node> = (0..next(12))
                    .map(|i| node(&format!("s{i}"), next(4)))
                    .collect();
                if next(3) == 0 {
                    nodes.reverse();
                }
                if let Some(n) = nodes.first_mut() {
                    n.rank = next(3) as u32;
                }
                let edges: Vec<Edge> = (0..next(12))
                    .map(|i| edge(&format!("s{i}"), &format!("s{}", i + 1), next(4)))
                    .collect();
                graph(nodes, edges, at)
            };
            let (a, b) = (mk(1), mk(2));
            roundtrip(&a, &b);
        }
    }
}
