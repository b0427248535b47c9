//! Deterministic, incremental node placement.
//!
//! Region/focused levels: layered left→right by the API's `rank` (call depth), one column per
//! rank, nodes on integer row slots. A fresh layout orders each column by barycentre sweeps
//! (deterministic for the same graph). An update keeps every existing node where it is, drops
//! vanished ones and puts new ones on the free slot nearest their neighbours, so the picture a
//! person has learnt does not move. Global level: regions on a ring around the entry node.
//! Pins (dragged positions) override everything.

use std::collections::{BTreeMap, HashMap, HashSet};

pub const COLUMN: f32 = 280.0;
pub const ROW: f32 = 80.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pos {
    pub x: f32,
    pub y: f32,
}

/// The graph as the layout sees it.
pub struct Input<'a> {
    pub nodes: Vec<(&'a str, u32)>,
    pub edges: Vec<(&'a str, &'a str)>,
}

impl<'a> Input<'a> {
    /// Node ids with their API rank, and edges by node id.
    pub fn of(g: &'a crate::api::Graph) -> Self {
        Input {
            nodes: g.nodes.iter().map(|n| (n.id.as_str(), n.rank)).collect(),
            edges: g
                .edges
                .iter()
                .map(|e| (e.source.as_str(), e.target.as_str()))
                .collect(),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Change {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Layout {
    pos: HashMap<String, Pos>,
    pins: HashMap<String, Pos>,
}

impl Layout {
    pub fn new() -> Self {
        Self::default()
    }

    /// Where a node is drawn (its pin if pinned).
    pub fn get(&self, id: &str) -> Option<Pos> {
        self.pins.get(id).or_else(|| self.pos.get(id)).copied()
    }

    pub fn len(&self) -> usize {
        self.pos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pos.is_empty()
    }

    pub fn pin(&mut self, id: &str, p: Pos) {
        self.pins.insert(id.to_string(), p);
    }

    pub fn unpin_all(&mut self) {
        self.pins.clear();
    }

    pub fn pins(&self) -> &HashMap<String, Pos> {
        &self.pins
    }

    pub fn set_pins(&mut self, pins: HashMap<String, Pos>) {
        self.pins = pins;
    }

    /// Pins as `id x y` lines (the form kept in localStorage).
    pub fn pins_to_string(&self) -> String {
        let sorted: BTreeMap<_, _> = self.pins.iter().collect();
        sorted
            .into_iter()
            .map(|(id, p)| format!("{}\t{}\t{}\n", id, p.x, p.y))
            .collect()
    }

    pub fn pins_from_string(s: &str) -> HashMap<String, Pos> {
        s.lines()
            .filter_map(|l| {
                let mut it = l.split('\t');
                let id = it.next()?;
                let x = it.next()?.parse().ok()?;
                let y = it.next()?.parse().ok()?;
                Some((id.to_string(), Pos { x, y }))
            })
            .collect()
    }

    /// Layered layout: fresh when empty, incremental otherwise.
    pub fn update_layered(&mut self, input: &Input) -> Change {
        let present: HashSet<&str> = input.nodes.iter().map(|(id, _)| *id).collect();
        let mut change = Change::default();
        let mut removed: Vec<String> = self
            .pos
            .keys()
            .filter(|k| !present.contains(k.as_str()))
            .cloned()
            .collect();
        removed.sort();
        for id in &removed {
            self.pos.remove(id);
        }
        change.removed = removed;
        if self.pos.is_empty() {
            self.fresh_layered(input);
            change.added = sorted_ids(input);
            return change;
        }
        let mut neighbours: HashMap<&str, Vec<&str>> = HashMap::new();
        for (s, t) in &input.edges {
            neighbours.entry(s).or_default().push(t);
            neighbours.entry(t).or_default().push(s);
        }
        let mut occupied: HashMap<u32, HashSet<i32>> = HashMap::new();
        for (id, rank) in &input.nodes {
            if let Some(p) = self.pos.get(*id) {
                occupied.entry(*rank).or_default().insert(slot_of(p.y));
            }
        }
        let mut new: Vec<(u32, &str)> = input
            .nodes
            .iter()
            .filter(|(id, _)| !self.pos.contains_key(*id))
            .map(|(id, r)| (*r, *id))
            .collect();
        new.sort();
        for (rank, id) in new {
            let ys: Vec<f32> = neighbours
                .get(id)
                .into_iter()
                .flatten()
                .filter_map(|n| self.pos.get(*n).map(|p| p.y))
                .collect();
            let column = occupied.entry(rank).or_default();
            let wanted = if ys.is_empty() {
                column.iter().max().map_or(0, |m| m + 1)
            } else {
                slot_of(ys.iter().sum::<f32>() / ys.len() as f32)
            };
            let slot = nearest_free(column, wanted);
            column.insert(slot);
            self.pos.insert(
                id.to_string(),
                Pos {
                    x: rank as f32 * COLUMN,
                    y: slot as f32 * ROW,
                },
            );
            change.added.push(id.to_string());
        }
        change
    }

    fn fresh_layered(&mut self, input: &Input) {
        let index: HashMap<&str, usize> = input
            .nodes
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        let n = input.nodes.len();
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (s, t) in &input.edges {
            if let (Some(&a), Some(&b)) = (index.get(s), index.get(t)) {
                succs[a].push(b);
                preds[b].push(a);
            }
        }
        let mut columns: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, (_, rank)) in input.nodes.iter().enumerate() {
            columns.entry(*rank).or_default().push(i);
        }
        for col in columns.values_mut() {
            col.sort_by(|a, b| input.nodes[*a].0.cmp(input.nodes[*b].0));
        }
        let mut order = vec![0f32; n];
        let assign = |columns: &BTreeMap<u32, Vec<usize>>, order: &mut Vec<f32>| {
            for col in columns.values() {
                for (k, &i) in col.iter().enumerate() {
                    order[i] = k as f32 - (col.len() as f32 - 1.0) / 2.0;
                }
            }
        };
        assign(&columns, &mut order);
        // Two barycentre sweeps (forward by callers, backward by callees) reduce crossings.
        for pass in 0..2 {
            let ranks: Vec<u32> = if pass == 0 {
                columns.keys().copied().collect()
            } else {
                columns.keys().rev().copied().collect()
            };
            for r in ranks {
                let col = columns.get_mut(&r).unwrap();
                let key: HashMap<usize, f32> = col
                    .iter()
                    .map(|&i| {
                        let adj = if pass == 0 { &preds[i] } else { &succs[i] };
                        let k = if adj.is_empty() {
                            order[i]
                        } else {
                            adj.iter().map(|&j| order[j]).sum::<f32>() / adj.len() as f32
                        };
                        (i, k)
                    })
                    .collect();
                col.sort_by(|a, b| {
                    key[a]
                        .total_cmp(&key[b])
                        .then_with(|| input.nodes[*a].0.cmp(input.nodes[*b].0))
                });
                let len = col.len() as f32;
                for (k, &i) in col.iter().enumerate() {
                    order[i] = k as f32 - (len - 1.0) / 2.0;
                }
            }
        }
        self.pos.clear();
        for (rank, col) in &columns {
            let half = (col.len() as i32 - 1) / 2;
            for (k, &i) in col.iter().enumerate() {
                self.pos.insert(
                    input.nodes[i].0.to_string(),
                    Pos {
                        x: *rank as f32 * COLUMN,
                        y: (k as i32 - half) as f32 * ROW,
                    },
                );
            }
        }
    }

    /// Global level: the entry node in the middle, everything else on a ring in id order.
    pub fn update_ring(&mut self, input: &Input, centre: &str) -> Change {
        let before: HashSet<String> = self.pos.keys().cloned().collect();
        let mut ids: Vec<&str> = input
            .nodes
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id != centre)
            .collect();
        ids.sort();
        let radius = (ids.len() as f32 * 140.0 / std::f32::consts::TAU).max(320.0);
        self.pos.clear();
        if input.nodes.iter().any(|(id, _)| *id == centre) {
            self.pos.insert(centre.to_string(), Pos { x: 0.0, y: 0.0 });
        }
        for (k, id) in ids.iter().enumerate() {
            let a =
                k as f32 / ids.len() as f32 * std::f32::consts::TAU - std::f32::consts::FRAC_PI_2;
            self.pos.insert(
                id.to_string(),
                Pos {
                    x: radius * a.cos(),
                    y: radius * a.sin(),
                },
            );
        }
        let mut change = Change {
            added: self
                .pos
                .keys()
                .filter(|k| !before.contains(*k))
                .cloned()
                .collect(),
            removed: before
                .into_iter()
                .filter(|k| !self.pos.contains_key(k))
                .collect(),
        };
        change.added.sort();
        change.removed.sort();
        change
    }

    /// Bounding box of all placed nodes: (min x, min y, max x, max y).
    pub fn bounds(&self) -> Option<(f32, f32, f32, f32)> {
        let mut it = self.pos.keys().filter_map(|id| self.get(id));
        let first = it.next()?;
        Some(it.fold((first.x, first.y, first.x, first.y), |b, p| {
            (b.0.min(p.x), b.1.min(p.y), b.2.max(p.x), b.3.max(p.y))
        }))
    }
}

fn sorted_ids(input: &Input) -> Vec<String> {
    let mut v: Vec<String> = input.nodes.iter().map(|(id, _)| id.to_string()).collect();
    v.sort();
    v
}

fn slot_of(y: f32) -> i32 {
    (y / ROW).round() as i32
}

fn nearest_free(column: &HashSet<i32>, wanted: i32) -> i32 {
    for d in 0.. {
        if !column.contains(&(wanted + d)) {
            return wanted + d;
        }
        if !column.contains(&(wanted - d)) {
            return wanted - d;
        }
    }
    unreachable!()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(nodes: &[(&'a str, u32)], edges: &[(&'a str, &'a str)]) -> Input<'a> {
        Input {
            nodes: nodes.to_vec(),
            edges: edges.to_vec(),
        }
    }

    #[test]
    fn columns_follow_rank_and_nodes_never_overlap() {
        let g = input(
            &[
                ("INTERNET", 0),
                ("web", 1),
                ("api", 2),
                ("db", 3),
                ("cache", 3),
            ],
            &[
                ("INTERNET", "web"),
                ("web", "api"),
                ("api", "db"),
                ("api", "cache"),
            ],
        );
        let mut l = Layout::new();
        let ch = l.update_layered(&g);
        assert_eq!(ch.added.len(), 5);
        assert_eq!(l.get("INTERNET").unwrap().x, 0.0);
        assert_eq!(l.get("web").unwrap().x, COLUMN);
        assert_eq!(l.get("db").unwrap().x, 3.0 * COLUMN);
        assert_ne!(l.get("db").unwrap().y, l.get("cache").unwrap().y);
    }

    #[test]
    fn same_graph_same_layout_whatever_the_input_order() {
        let a = input(
            &[("a", 0), ("b", 1), ("c", 1), ("d", 2), ("e", 2)],
            &[("a", "b"), ("a", "c"), ("b", "e"), ("c", "d")],
        );
        let b = input(
            &[("e", 2), ("d", 2), ("c", 1), ("b", 1), ("a", 0)],
            &[("c", "d"), ("b", "e"), ("a", "c"), ("a", "b")],
        );
        let (mut l1, mut l2) = (Layout::new(), Layout::new());
        l1.update_layered(&a);
        l2.update_layered(&b);
        for id in ["a", "b", "c", "d", "e"] {
            assert_eq!(l1.get(id), l2.get(id), "{id}");
        }
    }

    #[test]
    fn barycentre_sweep_uncrosses_edges() {
        // b→e and c→d would cross if the d/e column stayed alphabetical.
        let g = input(
            &[("a", 0), ("b", 1), ("c", 1), ("d", 2), ("e", 2)],
            &[("a", "b"), ("a", "c"), ("b", "e"), ("c", "d")],
        );
        let mut l = Layout::new();
        l.update_layered(&g);
        let y = |id| l.get(id).unwrap().y;
        assert_eq!(y("b") < y("c"), y("e") < y("d"));
    }

    #[test]
    fn update_keeps_existing_nodes_and_places_new_ones_near_neighbours() {
        let g1 = input(
            &[("a", 0), ("b", 1), ("c", 1), ("x", 2)],
            &[("a", "b"), ("a", "c"), ("c", "x")],
        );
        let mut l = Layout::new();
        l.update_layered(&g1);
        let before: Vec<_> = ["a", "b", "c"].iter().map(|id| l.get(id)).collect();
        let g2 = input(
            &[("a", 0), ("b", 1), ("c", 1), ("d", 2), ("e", 2)],
            &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "e")],
        );
        let ch = l.update_layered(&g2);
        assert_eq!(ch.added, vec!["d".to_string(), "e".to_string()]);
        assert_eq!(ch.removed, vec!["x".to_string()]);
        let after: Vec<_> = ["a", "b", "c"].iter().map(|id| l.get(id)).collect();
        assert_eq!(before, after);
        assert!(l.get("x").is_none());
        // d sits next to its caller b, e next to c, on distinct slots.
        assert_eq!(l.get("d").unwrap().y, l.get("b").unwrap().y);
        assert_eq!(l.get("e").unwrap().y, l.get("c").unwrap().y);
    }

    #[test]
    fn pins_override_and_round_trip_through_their_string_form() {
        let mut l = Layout::new();
        l.update_layered(&input(&[("a", 0)], &[]));
        l.pin("a", Pos { x: 5.5, y: -3.0 });
        assert_eq!(l.get("a"), Some(Pos { x: 5.5, y: -3.0 }));
        let s = l.pins_to_string();
        let mut l2 = Layout::new();
        l2.set_pins(Layout::pins_from_string(&s));
        assert_eq!(l2.pins(), l.pins());
        l.update_layered(&input(&[("a", 0), ("b", 1)], &[("a", "b")]));
        assert_eq!(l.get("a"), Some(Pos { x: 5.5, y: -3.0 }));
    }

    #[test]
    fn ring_puts_the_entry_in_the_middle() {
        let mut l = Layout::new();
        let g = input(
            &[
                ("INTERNET", 0),
                ("region:eu", 1),
                ("region:us", 1),
                ("region:ap", 1),
            ],
            &[],
        );
        l.update_ring(&g, "INTERNET");
        assert_eq!(l.get("INTERNET"), Some(Pos { x: 0.0, y: 0.0 }));
        let r = |id| {
            let p = l.get(id).unwrap();
            (p.x * p.x + p.y * p.y).sqrt()
        };
        assert!((r("region:eu") - r("region:us")).abs() < 0.01);
        assert!(r("region:ap") > 100.0);
    }
}
