//! Deterministic, incremental node placement.
//!
//! Region/focused levels: layered left→right by the API's `rank` (call depth), one column per
//! rank, nodes on integer row slots. A fresh layout orders each column by barycentre sweeps
//! (deterministic for the same graph). Aspect-aware: a rank taller than the screen's shape
//! allows wraps into sub-columns (filled row by row, so the barycentre order still runs top to
//! bottom), with the wrap height chosen to maximise the zoom at which the whole graph fits a
//! viewport of the layout's aspect — 2,000 services use the screen's area instead of a 30-pixel
//! strip, while a small graph (no rank taller than the picture is wide) never wraps. An update
//! keeps every existing node where it is, drops vanished ones and puts new ones on the free
//! slot nearest their neighbours, so the picture a person has learnt does not move. Global
//! level: regions on a ring around the entry node. Pins (dragged positions) override everything.
use std::collections::{BTreeMap, HashMap, HashSet};

pub const COLUMN: f32 = 280.0;
pub const ROW: f32 = 80.0;
/// Distance between the sub-columns of a wrapped rank (less than a rank's column: they belong
/// together, and labels of a dense rank show by level of detail anyway).
pub const SUB_COLUMN: f32 = 110.0;
/// Width / height of the area the layout aims at by default (the map's free area on a
/// 1280×800 window, beside the service list); `Layout::set_aspect` takes the real one.
pub const DEFAULT_ASPECT: f32 = 1.45;

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

/// Where a rank's sub-columns start and how many it has (fixed at the fresh layout, so
/// incremental updates fill the same grid).
#[derive(Debug, Clone, Copy, PartialEq)]
struct RankGrid {
    x0: f32,
    subs: u32,
}

#[derive(Debug, Clone)]
pub struct Layout {
    pos: HashMap<String, Pos>,
    pins: HashMap<String, Pos>,
    ranks: BTreeMap<u32, RankGrid>,
    aspect: f32,
    /// Distance between rows (ROW, stretched up to 1.5× when the picture is wider than the
    /// screen's shape).
    row: f32,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            pos: HashMap::new(),
            pins: HashMap::new(),
            ranks: BTreeMap::new(),
            aspect: DEFAULT_ASPECT,
            row: ROW,
        }
    }
}

impl Layout {
    pub fn new() -> Self {
        Self::default()
    }

    /// The width/height of the area the graph is shown in; used by the next fresh layout.
    pub fn set_aspect(&mut self, aspect: f32) {
        if aspect.is_finite() && aspect > 0.05 {
            self.aspect = aspect.clamp(0.3, 5.0);
        }
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
        // A live update of rates only (the usual tick): nothing to place, so none of the
        // neighbour and grid bookkeeping below (a few ms per update at 2,000 services).
        if input.nodes.iter().all(|(id, _)| self.pos.contains_key(*id)) {
            return change;
        }
        let mut neighbours: HashMap<&str, Vec<&str>> = HashMap::new();
        for (s, t) in &input.edges {
            neighbours.entry(s).or_default().push(t);
            neighbours.entry(t).or_default().push(s);
        }
        let mut occupied: HashMap<u32, HashSet<(i32, i32)>> = HashMap::new();
        for (id, rank) in &input.nodes {
            if let Some(p) = self.pos.get(*id).copied() {
                let g = self.grid(*rank);
                occupied
                    .entry(*rank)
                    .or_default()
                    .insert((g.sub_of(p.x), slot_of(p.y, self.row)));
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
            let grid = self.grid(rank);
            let cells = occupied.entry(rank).or_default();
            let wanted = if ys.is_empty() {
                cells.iter().map(|c| c.1).max().map_or(0, |m| m + 1)
            } else {
                slot_of(ys.iter().sum::<f32>() / ys.len() as f32, self.row)
            };
            let (sub, row) = nearest_free(cells, grid.subs, wanted);
            cells.insert((sub, row));
            self.pos.insert(
                id.to_string(),
                Pos {
                    x: grid.x0 + sub as f32 * SUB_COLUMN,
                    y: row as f32 * self.row,
                },
            );
            change.added.push(id.to_string());
        }
        change
    }

    /// The grid of `rank`; a rank the fresh layout did not have gets one sub-column, placed
    /// as the fresh layout would have placed it (its own column past the known ranks' wraps).
    fn grid(&mut self, rank: u32) -> RankGrid {
        if let Some(g) = self.ranks.get(&rank) {
            return *g;
        }
        let before: f32 = self
            .ranks
            .range(..rank)
            .map(|(_, g)| (g.subs - 1) as f32 * SUB_COLUMN)
            .sum();
        let g = RankGrid {
            x0: rank as f32 * COLUMN + before,
            subs: 1,
        };
        self.ranks.insert(rank, g);
        g
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
        self.ranks.clear();
        let sizes: Vec<(u32, usize)> = columns.iter().map(|(r, c)| (*r, c.len())).collect();
        let height = wrap_height(&sizes, self.aspect);
        self.row = row_pitch(&sizes, height, self.aspect);
        let mut wraps = 0.0;
        for (rank, col) in &columns {
            let subs = col.len().div_ceil(height).max(1);
            let rows = col.len().div_ceil(subs);
            let grid = RankGrid {
                x0: *rank as f32 * COLUMN + wraps,
                subs: subs as u32,
            };
            self.ranks.insert(*rank, grid);
            wraps += (subs - 1) as f32 * SUB_COLUMN;
            let half = (rows as i32 - 1) / 2;
            // Row by row across the sub-columns: order k sits in row k / subs, so y still
            // follows the barycentre order.
            for (k, &i) in col.iter().enumerate() {
                self.pos.insert(
                    input.nodes[i].0.to_string(),
                    Pos {
                        x: grid.x0 + (k % subs) as f32 * SUB_COLUMN,
                        y: ((k / subs) as i32 - half) as f32 * self.row,
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

fn slot_of(y: f32, row: f32) -> i32 {
    (y / row).round() as i32
}

impl RankGrid {
    fn sub_of(&self, x: f32) -> i32 {
        ((x - self.x0) / SUB_COLUMN).round() as i32
    }
}

/// The most rows a sub-column may hold: the value that lets the whole layered picture fit the
/// largest into a `aspect`-shaped viewport (ties go to fewer wraps, so a graph that fits
/// without wrapping is never wrapped).
pub fn wrap_height(ranks: &[(u32, usize)], aspect: f32) -> usize {
    let tallest = ranks.iter().map(|r| r.1).max().unwrap_or(1).max(1);
    let (first, last) = (
        ranks.first().map_or(0, |r| r.0),
        ranks.last().map_or(0, |r| r.0),
    );
    let mut best = (f32::MIN, tallest);
    for h in (1..=tallest).rev() {
        let mut rows = 0;
        let mut wraps = 0;
        for &(_, n) in ranks {
            let subs = n.div_ceil(h).max(1);
            rows = rows.max(n.div_ceil(subs));
            wraps += subs - 1;
        }
        // One node's room around the extremes, as the fit leaves.
        let width = (last - first) as f32 * COLUMN + wraps as f32 * SUB_COLUMN + COLUMN;
        let height = rows as f32 * ROW + ROW;
        let zoom = (aspect / width).min(1.0 / height);
        if zoom > best.0 * 1.000_01 {
            best = (zoom, h);
        }
    }
    best.1
}

/// Row pitch of a fresh layout: `ROW`, except that when the picture is wider than `aspect`
/// (rank columns have a fixed width: a deep map, or one whose ranks wrapped) rows spread out —
/// up to 1.5× — so the map fills the screen's height too. Without this a wide, shallow map (the
/// demo's five ranks of a few services) used only about half the canvas height, its rows
/// crowded while the space above and below stayed empty. A map already as tall as the screen
/// keeps `ROW`.
pub fn row_pitch(ranks: &[(u32, usize)], height: usize, aspect: f32) -> f32 {
    let (first, last) = (
        ranks.first().map_or(0, |r| r.0),
        ranks.last().map_or(0, |r| r.0),
    );
    let (mut rows, mut wraps) = (0, 0);
    for &(_, n) in ranks {
        let subs = n.div_ceil(height.max(1)).max(1);
        rows = rows.max(n.div_ceil(subs));
        wraps += subs - 1;
    }
    let width = (last - first) as f32 * COLUMN + wraps as f32 * SUB_COLUMN + COLUMN;
    (width / aspect / (rows as f32 + 1.0)).clamp(ROW, 1.5 * ROW)
}

/// The free cell of a rank's grid nearest to row `wanted` (rows outward, then sub-columns in
/// order).
fn nearest_free(cells: &HashSet<(i32, i32)>, subs: u32, wanted: i32) -> (i32, i32) {
    for d in 0.. {
        for row in [wanted + d, wanted - d] {
            for sub in 0..subs as i32 {
                if !cells.contains(&(sub, row)) {
                    return (sub, row);
                }
            }
        }
    }
    unreachable!()
}

#[cfg(test)]
mod tests;
