//! The map's graph kept current from the live stream's events (docs/query.md, "Live stream"):
//! a `graph` event is the whole graph, a `delta` event the changes since the graph held
//! (`orrery_api::live`, the same code the server checks its deltas with). Whatever arrived, the
//! rest of the UI gets a whole graph, as it did before deltas existed.
//!
//! A delta that does not fit the graph held (a missed event, a server restart in between) is
//! never half-applied to the map: the stream is reopened instead, and the server starts every
//! connection with the whole graph.

use orrery_api::Graph;
use orrery_api::live::{GraphDelta, apply};

use crate::sse::SseEvent;

/// What an event means for the map.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The current graph, whole (boxed: a graph is ~300 bytes on the stack, the other variants
    /// a few words).
    Graph(Box<Graph>),
    /// A refresh failed on the server (e.g. a query limit); the stream goes on.
    Error(String),
    /// The graph held cannot be brought up to date: reconnect to get it whole.
    Resync(String),
    /// Nothing for the map (an unknown event type, from a newer server).
    Nothing,
}

/// An event read but not yet merged into the graph held.
#[derive(Debug)]
pub enum Parsed {
    /// A whole graph and its sequence number.
    Graph(u64, Box<Graph>),
    Delta(Box<GraphDelta>),
    /// Nothing to merge: what it means is known already.
    Done(Update),
}

/// The graph of one connection and its sequence number (the `id` of its events).
#[derive(Debug, Default)]
pub struct LiveGraph {
    held: Option<(u64, Graph)>,
}

impl LiveGraph {
    pub fn new() -> Self {
        Self::default()
    }

    /// What `ev` means for the map: `parse` then `merge`, in one go.
    pub fn on_event(&mut self, ev: &SseEvent) -> Update {
        let p = self.parse(ev);
        self.merge(p)
    }

    /// Reads an event's JSON (User Timing `orrery:live-parse`). The stream runs `merge` in a
    /// task of its own: reading a 2,000-service delta and bringing the graph up to date (with
    /// the copy handed to the map) were one task, and the map's apply a third.
    pub fn parse(&mut self, ev: &SseEvent) -> Parsed {
        #[cfg(target_arch = "wasm32")]
        let t = crate::map::perf::now();
        let p = match ev.event.as_str() {
            "graph" => match serde_json::from_str::<Graph>(&ev.data) {
                Ok(g) => {
                    let seq = ev.id.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
                    Parsed::Graph(seq, Box::new(g))
                }
                Err(e) => Parsed::Done(self.resync(format!("an unreadable graph event: {e}"))),
            },
            "delta" => match serde_json::from_str::<GraphDelta>(&ev.data) {
                Ok(d) => Parsed::Delta(Box::new(d)),
                Err(e) => Parsed::Done(self.resync(format!("an unreadable delta event: {e}"))),
            },
            "error" => Parsed::Done(Update::Error(
                serde_json::from_str::<orrery_api::ApiError>(&ev.data)
                    .map(|e| e.error)
                    .unwrap_or_else(|_| ev.data.clone()),
            )),
            _ => Parsed::Done(Update::Nothing),
        };
        #[cfg(target_arch = "wasm32")]
        crate::map::perf::measure("orrery:live-parse", t);
        p
    }

    /// Brings the graph held up to date with a parsed event (User Timing `orrery:live-decode`).
    pub fn merge(&mut self, p: Parsed) -> Update {
        #[cfg(target_arch = "wasm32")]
        let t = crate::map::perf::now();
        let u = match p {
            Parsed::Done(u) => u,
            Parsed::Graph(seq, g) => {
                self.held = Some((seq, (*g).clone()));
                Update::Graph(g)
            }
            Parsed::Delta(d) => self.merge_delta(&d),
        };
        #[cfg(target_arch = "wasm32")]
        crate::map::perf::measure("orrery:live-decode", t);
        u
    }

    fn merge_delta(&mut self, d: &GraphDelta) -> Update {
        let Some((seq, g)) = self.held.as_mut() else {
            return self.resync("a delta before any graph".into());
        };
        if *seq != d.base {
            let msg = format!("a delta from graph {} while graph {seq} is held", d.base);
            return self.resync(msg);
        }
        if let Err(e) = apply(g, d) {
            return self.resync(format!("a delta that does not fit: {e}"));
        }
        *seq = d.seq;
        Update::Graph(Box::new(g.clone()))
    }

    fn resync(&mut self, why: String) -> Update {
        self.held = None;
        Update::Resync(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_api::live::delta;
    use orrery_api::{Edge, Metrics, Node};

    fn node(id: &str, requests: u64) -> Node {
        Node {
            id: id.into(),
            name: id.into(),
            kind: "service".into(),
            metrics: Metrics {
                requests,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn graph(ids: &[(&str, u64)], at: i64) -> Graph {
        let nodes: Vec<Node> = ids.iter().map(|(id, n)| node(id, *n)).collect();
        let edges = ids
            .windows(2)
            .map(|w| Edge {
                id: format!("{}->{}", w[0].0, w[1].0),
                source: w[0].0.into(),
                target: w[1].0.into(),
                ..Default::default()
            })
            .collect();
        Graph {
            level: "region".into(),
            generated_at_ms: at,
            nodes,
            edges,
            ..Default::default()
        }
    }

    fn graph_event(g: &Graph, seq: u64) -> SseEvent {
        SseEvent {
            event: "graph".into(),
            data: serde_json::to_string(g).unwrap(),
            id: Some(seq.to_string()),
        }
    }

    fn delta_event(prev: &Graph, cur: &Graph, base: u64, seq: u64) -> SseEvent {
        SseEvent {
            event: "delta".into(),
            data: serde_json::to_string(&delta(prev, cur, base, seq).unwrap()).unwrap(),
            id: Some(seq.to_string()),
        }
    }

    /// The stream reads an event in one task and merges it in the next: reading changes
    /// nothing held, so what is merged is always checked against the graph as it is then.
    #[test]
    fn an_event_read_changes_nothing_until_it_is_merged() {
        let g1 = graph(&[("a", 1)], 1);
        let g2 = graph(&[("a", 2), ("b", 1)], 2);
        let mut live = LiveGraph::new();
        live.on_event(&graph_event(&g1, 1));
        let first = live.parse(&delta_event(&g1, &g2, 1, 2));
        let again = live.parse(&delta_event(&g1, &g2, 1, 2));
        assert_eq!(live.merge(first), Update::Graph(Box::new(g2.clone())));
        // The same delta, read before the first was merged, no longer fits graph 2.
        assert!(matches!(live.merge(again), Update::Resync(_)));
        // A graph event read is held only once merged.
        let mut fresh = LiveGraph::new();
        let read = fresh.parse(&graph_event(&g1, 5));
        assert!(matches!(
            fresh.merge(Parsed::Delta(Box::new(
                orrery_api::live::delta(&g1, &g2, 5, 6).unwrap()
            ))),
            Update::Resync(_)
        ));
        assert_eq!(fresh.merge(read), Update::Graph(Box::new(g1.clone())));
    }

    #[test]
    fn deltas_after_the_first_graph_give_each_tick_s_whole_graph() {
        let g1 = graph(&[("a", 1), ("b", 2)], 1);
        let g2 = graph(&[("a", 3), ("b", 2), ("c", 1)], 2);
        let g3 = graph(&[("c", 1), ("a", 3)], 3);
        let mut live = LiveGraph::new();
        assert_eq!(
            live.on_event(&graph_event(&g1, 7)),
            Update::Graph(Box::new(g1.clone()))
        );
        assert_eq!(
            live.on_event(&delta_event(&g1, &g2, 7, 8)),
            Update::Graph(Box::new(g2.clone()))
        );
        assert_eq!(
            live.on_event(&delta_event(&g2, &g3, 8, 9)),
            Update::Graph(Box::new(g3.clone()))
        );
        // A whole graph at any time (a resync on the server's side) replaces what is held.
        assert_eq!(
            live.on_event(&graph_event(&g1, 12)),
            Update::Graph(Box::new(g1.clone()))
        );
        assert_eq!(
            live.on_event(&delta_event(&g1, &g2, 12, 13)),
            Update::Graph(Box::new(g2))
        );
    }

    #[test]
    fn a_delta_that_does_not_fit_asks_for_a_reconnect_and_never_half_applies() {
        let g1 = graph(&[("a", 1)], 1);
        let g2 = graph(&[("a", 2), ("b", 1)], 2);
        let g3 = graph(&[("b", 1)], 3);
        let mut live = LiveGraph::new();
        assert!(matches!(
            live.on_event(&delta_event(&g1, &g2, 1, 2)),
            Update::Resync(_)
        ));
        live.on_event(&graph_event(&g1, 1));
        // Graph 2 was missed: the delta from 2 to 3 does not fit graph 1.
        match live.on_event(&delta_event(&g2, &g3, 2, 3)) {
            Update::Resync(why) => assert!(why.contains("from graph 2"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Nothing held any more: even a delta from 1 is refused until a whole graph comes.
        assert!(matches!(
            live.on_event(&delta_event(&g1, &g2, 1, 2)),
            Update::Resync(_)
        ));
        let broken = SseEvent {
            event: "delta".into(),
            data: "{\"base\":".into(),
            id: None,
        };
        live.on_event(&graph_event(&g1, 1));
        assert!(matches!(live.on_event(&broken), Update::Resync(_)));
    }

    #[test]
    fn errors_pass_through_and_unknown_events_are_ignored() {
        let mut live = LiveGraph::new();
        let err = SseEvent {
            event: "error".into(),
            data: r#"{"error":"too slow","limit":"max_execution_time"}"#.into(),
            id: None,
        };
        assert_eq!(live.on_event(&err), Update::Error("too slow".into()));
        let plain = SseEvent {
            event: "error".into(),
            data: "boom".into(),
            id: None,
        };
        assert_eq!(live.on_event(&plain), Update::Error("boom".into()));
        let future = SseEvent {
            event: "presence".into(),
            data: "{}".into(),
            id: None,
        };
        assert_eq!(live.on_event(&future), Update::Nothing);
    }
}
