//! The map's drawable state: node positions before/after the last layout change, sizes,
//! colours, and the per-edge particle instances. Pure data, so it is built and hit-tested the
//! same way whichever backend (WebGL2 or 2D canvas) draws it.

use crate::api::Graph;
use crate::checks::{Board, Notices, notice_targets};
use crate::diff::Marks;
use crate::encoding::{self, PARTICLE_SPEED};
use crate::layout::{Layout, Pos};
use crate::map::route;
use std::collections::{HashMap, HashSet};

pub const ANIM_SECS: f64 = 0.8;

#[derive(Default)]
pub struct Scene {
    pub graph: Graph,
    pub index: HashMap<String, usize>,
    pub from: Vec<Pos>,
    pub to: Vec<Pos>,
    pub radius: Vec<f32>,
    pub born: Vec<f32>,
    pub edge_ends: Vec<(usize, usize)>,
    /// Per edge: the curve's bend (0 = straight; see `route`).
    pub bend: Vec<f32>,
    pub anim_start: f64,
    /// Per particle: edge index, phase, speed, error, lane.
    pub particles: Vec<(u32, f32, f32, bool, f32)>,
    pub selected: Option<String>,
    /// Edge id highlighted (its panel is open).
    pub selected_edge: Option<String>,
    pub dimmed: HashSet<String>,
    /// Diff mode: added and vanished parts (set before `set`).
    pub marks: Marks,
    /// The checks' board (the firing rules); `notices` is recomputed from it on every `set`.
    pub board: Option<Board>,
    /// Nodes and edges of this graph carrying a firing rule's notice (drawn marked).
    pub notices: Notices,
}

impl Scene {
    /// Where node `i` is at time `t` (seconds).
    pub fn pos_at(&self, i: usize, t: f64) -> Pos {
        let k = ((t - self.anim_start) / ANIM_SECS).clamp(0.0, 1.0) as f32;
        let k = k * k * (3.0 - 2.0 * k);
        let (a, b) = (self.from[i], self.to[i]);
        Pos {
            x: a.x + (b.x - a.x) * k,
            y: a.y + (b.y - a.y) * k,
        }
    }

    /// Installs a new graph: existing nodes glide from where they are now to their (unchanged
    /// or pinned) layout position, new ones grow in place. `particle_target` scales the particle
    /// count to a fixed total (bench); otherwise it is capped at `budget`.
    pub fn set(
        &mut self,
        graph: Graph,
        layout: &Layout,
        now: f64,
        animate: bool,
        particle_target: Option<u32>,
        budget: u32,
    ) {
        self.set_geometry(graph, layout, now, animate);
        self.build_particles(particle_target, budget);
    }

    /// `set` without the particles: they are left empty until `build_particles`. A live
    /// update at 2,000 services builds its geometry in one task and its particles (with their
    /// upload) in the next, so that neither is a long task (see `app::map_data`).
    pub fn set_geometry(&mut self, graph: Graph, layout: &Layout, now: f64, animate: bool) {
        let current: HashMap<&str, Pos> = self
            .graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), self.pos_at(i, now)))
            .collect();
        let n = graph.nodes.len();
        let mut from = Vec::with_capacity(n);
        let mut to = Vec::with_capacity(n);
        let mut born = Vec::with_capacity(n);
        let max_node = graph
            .nodes
            .iter()
            .map(|n| n.metrics.rps)
            .fold(0.0f64, f64::max);
        let mut radius = Vec::with_capacity(n);
        for node in &graph.nodes {
            let target = layout.get(&node.id).unwrap_or(Pos { x: 0.0, y: 0.0 });
            let was = current.get(node.id.as_str()).copied();
            from.push(if animate {
                was.unwrap_or(target)
            } else {
                target
            });
            to.push(target);
            born.push(if animate && was.is_none() && !current.is_empty() {
                now as f32
            } else {
                -1.0
            });
            radius.push(encoding::node_radius(node.metrics.rps, max_node));
        }
        let index: HashMap<String, usize> = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let edge_ends: Vec<(usize, usize)> = graph
            .edges
            .iter()
            .map(|e| {
                (
                    index.get(&e.source).copied().unwrap_or(usize::MAX),
                    index.get(&e.target).copied().unwrap_or(usize::MAX),
                )
            })
            .collect();
        let bend = bends(&graph, &index, &to, &radius);
        self.graph = graph;
        self.notices = self.notices_now();
        self.index = index;
        self.bend = bend;
        self.from = from;
        self.to = to;
        self.born = born;
        self.radius = radius;
        self.edge_ends = edge_ends;
        // Animate only when something moves or appears: a live update of rates alone leaves
        // the map settled, so the renderer keeps drawing the cached edge layer instead of every
        // edge for the animation's 0.8 s (what a software renderer spends a frame on).
        let moves = animate
            && (self.from.iter().zip(&self.to).any(|(a, b)| a != b)
                || self.born.iter().any(|b| *b >= 0.0));
        self.anim_start = if moves { now } else { now - ANIM_SECS };
        // The old particles index the old edges: none are drawn until the new ones are built.
        self.particles.clear();
    }

    fn notices_now(&self) -> Notices {
        self.board
            .as_ref()
            .map(|b| notice_targets(b, &self.graph))
            .unwrap_or_default()
    }

    /// A new checks board; true when the marked nodes or edges changed (upload again).
    pub fn set_board(&mut self, board: Option<Board>) -> bool {
        self.board = board;
        let notices = self.notices_now();
        let changed = notices != self.notices;
        self.notices = notices;
        changed
    }

    /// Indices of the nodes and edges drawn with a notice mark (in graph order).
    pub fn notice_marks(&self) -> (Vec<usize>, Vec<usize>) {
        let nodes = (self.graph.nodes.iter().enumerate())
            .filter(|(_, n)| self.notices.nodes.contains_key(&n.id))
            .map(|(i, _)| i)
            .collect();
        let edges = (self.graph.edges.iter().enumerate())
            .filter(|(i, e)| {
                let (a, b) = self.edge_ends[*i];
                a != usize::MAX && b != usize::MAX && self.notices.edges.contains_key(&e.id)
            })
            .map(|(i, _)| i)
            .collect();
        (nodes, edges)
    }

    /// The particles of the graph `set_geometry` installed (see `set` for the two counts).
    pub fn build_particles(&mut self, target: Option<u32>, budget: u32) {
        // A fixed target (the bench) keeps every edge's share; a live crowded map thins.
        let crowded = target.is_none() && self.graph.edges.len() >= CROWDED_EDGES;
        let max = if self.graph.max_volume > 0.0 {
            self.graph.max_volume
        } else {
            self.graph
                .edges
                .iter()
                .map(|e| e.metrics.rps)
                .fold(0.0, f64::max)
        };
        let raw: Vec<(f32, f32)> = self
            .graph
            .edges
            .iter()
            .zip(&self.edge_ends)
            .map(|(e, &(s, t))| {
                // Vanished edges (diff mode) carry no traffic now.
                if s == usize::MAX || t == usize::MAX || self.marks.vanished.contains(&e.id) {
                    return (0.0, 1.0);
                }
                let (a, b) = (self.to[s], self.to[t]);
                let len = ((b.x - a.x).powi(2) + (b.y - a.y).powi(2)).sqrt().max(1.0);
                let pps = encoding::particles_per_second(e.metrics.rps, max);
                let n = encoding::particles_in_flight(pps, len) as f32;
                (n * thinning(crowded, e, max), len)
            })
            .collect();
        let budget = if crowded {
            budget.min(CROWDED_PARTICLES)
        } else {
            budget
        };
        let total: f32 = raw.iter().map(|r| r.0).sum();
        let scale = match target {
            Some(t) if total > 0.0 => t as f32 / total,
            _ if total > budget as f32 => budget as f32 / total,
            _ => 1.0,
        };
        self.particles.clear();
        for (ei, ((count, len), e)) in raw.iter().zip(&self.graph.edges).enumerate() {
            let n = (count * scale).round() as u32;
            let speed = PARTICLE_SPEED / len;
            for i in 0..n {
                let h = hash(ei as u32, i);
                let phase = (i as f32 + (h & 0xff) as f32 / 512.0) / n as f32;
                let lane = ((h >> 8) & 0xff) as f32 / 255.0 * 8.0 - 4.0;
                let err = encoding::is_error_particle(i, e.metrics.error_rate);
                self.particles.push((ei as u32, phase, speed, err, lane));
            }
        }
        // Shuffled (deterministically), so that drawing only the first n (a slow GPU, see
        // `Renderer::pace`) thins every edge alike.
        self.particles
            .sort_unstable_by_key(|p| hash(p.0, p.1.to_bits()));
    }
}

/// Global level: every edge between two regions is a curve kept clear of the `INTERNET` node
/// in the middle of the ring (its radius plus room for its label); edges from or to it, and
/// every edge on the other levels, are straight.
fn bends(graph: &Graph, index: &HashMap<String, usize>, to: &[Pos], radius: &[f32]) -> Vec<f32> {
    let centre = (graph.level == "global")
        .then(|| index.get("INTERNET"))
        .flatten()
        .copied();
    graph
        .edges
        .iter()
        .map(|e| {
            let (Some(c), Some(&a), Some(&b)) =
                (centre, index.get(&e.source), index.get(&e.target))
            else {
                return 0.0;
            };
            if a == c || b == c {
                return 0.0;
            }
            route::bend_around(to[a], to[b], to[c], radius[c] + 48.0)
        })
        .collect()
}

/// How an edge is drawn: (alpha, width in CSS px). What matters stands out: unhealthy edges
/// are opaque and wide, heavy ones wider than thin ones (width grows with the square root of
/// the share of the busiest edge's rate); on a big graph (`crowded`) the thin healthy majority
/// fades back so the few that matter are not lost in it.
pub fn edge_style(state: &str, rps: f64, max_rps: f64, crowded: bool) -> (f32, f32) {
    let share = if max_rps > 0.0 {
        (rps / max_rps).clamp(0.0, 1.0).sqrt() as f32
    } else {
        0.0
    };
    let width = 0.9 + 2.6 * share;
    match state {
        "danger" => (0.85, width + 1.2),
        "warning" => (0.7, width + 0.6),
        "vanished" => (0.5, width),
        "added" => (0.6, width),
        _ if crowded => (0.07 + 0.4 * share, width),
        _ => (0.22 + 0.3 * share, width),
    }
}

/// An edge as both renderers draw it: its index, its ends (node indices), its health state
/// and its style (alpha, width in CSS px) from [`edge_style`].
pub struct StyledEdge {
    pub index: usize,
    pub ends: (usize, usize),
    pub state: &'static str,
    pub alpha: f32,
    pub width: f32,
}

impl Scene {
    /// The edges to draw, in drawing order ([`edge_draw_order`]), styled against the busiest
    /// edge and the crowded rule; an edge with an end not placed is left out.
    pub fn styled_edges(&self) -> Vec<StyledEdge> {
        let g = &self.graph;
        let max_rps = g.edges.iter().map(|e| e.metrics.rps).fold(0.0f64, f64::max);
        let crowded = g.edges.len() >= CROWDED_EDGES;
        edge_draw_order(g, &self.marks)
            .into_iter()
            .filter_map(|index| {
                let (e, (a, b)) = (&g.edges[index], self.edge_ends[index]);
                if a == usize::MAX || b == usize::MAX {
                    return None;
                }
                let state = self.marks.edge_state(e);
                let (alpha, width) = edge_style(state, e.metrics.rps, max_rps, crowded);
                Some(StyledEdge {
                    index,
                    ends: (a, b),
                    state,
                    alpha,
                    width,
                })
            })
            .collect()
    }
}

/// Order in which edges are drawn (later on top): healthy by rate, then warning, then danger.
pub fn edge_draw_order(g: &Graph, marks: &Marks) -> Vec<usize> {
    let weight = |state: &str| match state {
        "danger" => 3,
        "warning" => 2,
        "added" | "vanished" => 1,
        _ => 0,
    };
    let mut order: Vec<usize> = (0..g.edges.len()).collect();
    order.sort_by(|&a, &b| {
        let (ea, eb) = (&g.edges[a], &g.edges[b]);
        weight(marks.edge_state(ea))
            .cmp(&weight(marks.edge_state(eb)))
            .then(ea.metrics.rps.total_cmp(&eb.metrics.rps))
    });
    order
}

/// A graph this many edges or more draws its thin healthy edges faded and nearly still.
pub const CROWDED_EDGES: usize = 300;
/// Most particles on a crowded map: past this, flow stops being readable (and costs the GPU).
pub const CROWDED_PARTICLES: u32 = 30_000;

/// Particle share an edge keeps on a crowded map: all for an edge with errors or a heavy one
/// (√ of its share of the busiest ≥ 0.3), 15% for the thin healthy rest, so what matters moves
/// and the rest is a faint background.
fn thinning(crowded: bool, e: &crate::api::Edge, max_rps: f64) -> f32 {
    if !crowded || e.metrics.error_rate > 0.0 || max_rps <= 0.0 {
        return 1.0;
    }
    if (e.metrics.rps / max_rps).sqrt() >= 0.3 {
        1.0
    } else {
        0.15
    }
}

fn hash(a: u32, b: u32) -> u32 {
    let mut x = a.wrapping_mul(0x9e37_79b9) ^ b.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 15;
    x = x.wrapping_mul(0x2c1b_3c6d);
    x ^= x >> 12;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Input;

    fn laid_out(g: &Graph) -> Layout {
        let mut l = Layout::new();
        l.update_layered(&Input::of(g));
        l
    }

    #[test]
    fn the_scene_marks_exactly_the_notice_targets() {
        let g = crate::synth::mesh(20, 40, 4, 5);
        let l = laid_out(&g);
        let (n, e) = (g.nodes[3].id.clone(), g.edges[7].id.clone());
        let rule = |name: &str, item: &str| crate::checks::RuleState {
            rule: name.into(),
            firing: true,
            outcome: Some(crate::checks::Outcome {
                reason: "too slow".into(),
                violating: vec![item.into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let board = Board {
            configured: true,
            rules: vec![
                rule("n-slo", &n),
                rule("e-slo", &e),
                rule("gone", "nowhere"),
            ],
            ..Default::default()
        };
        let mut s = Scene::default();
        s.set(g.clone(), &l, 0.0, false, None, 1000);
        assert_eq!(s.notice_marks(), (vec![], vec![]), "no board, no marks");
        assert!(s.set_board(Some(board.clone())));
        assert!(
            !s.set_board(Some(board.clone())),
            "same board: nothing to redraw"
        );
        let want = notice_targets(&board, &s.graph);
        let (nodes, edges) = s.notice_marks();
        let ids = |v: &[usize], f: &dyn Fn(usize) -> String| v.iter().map(|&i| f(i)).collect();
        let node_ids: Vec<String> = ids(&nodes, &|i| s.graph.nodes[i].id.clone());
        let edge_ids: Vec<String> = ids(&edges, &|i| s.graph.edges[i].id.clone());
        assert_eq!(node_ids, want.nodes.keys().cloned().collect::<Vec<_>>());
        assert_eq!(edge_ids, want.edges.keys().cloned().collect::<Vec<_>>());
        assert_eq!((node_ids, edge_ids), (vec![n.clone()], vec![e.clone()]));
        // A new graph without the edge: the mark goes with it, the node's stays.
        let mut g2 = g;
        g2.edges.retain(|x| x.id != e);
        s.set(g2, &l, 1.0, true, None, 1000);
        let (nodes, edges) = s.notice_marks();
        assert_eq!((nodes.len(), edges.len()), (1, 0));
        assert!(s.set_board(None));
        assert_eq!(s.notice_marks(), (vec![], vec![]));
    }

    #[test]
    fn particles_hit_the_target_count_and_keep_the_error_share() {
        let g = crate::synth::mesh(300, 1200, 8, 3);
        let l = laid_out(&g);
        let mut s = Scene::default();
        s.set(g, &l, 0.0, false, Some(20_000), 100_000);
        let n = s.particles.len() as f64;
        assert!((n - 20_000.0).abs() < 20_000.0 * 0.05, "{n}");
        let busiest = s
            .graph
            .edges
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.metrics.rps.total_cmp(&b.1.metrics.rps))
            .unwrap()
            .0 as u32;
        let quiet = s
            .graph
            .edges
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.metrics.rps.total_cmp(&b.1.metrics.rps))
            .unwrap()
            .0 as u32;
        let on = |e| s.particles.iter().filter(|p| p.0 == e).count();
        assert!(on(busiest) > on(quiet));
    }

    #[test]
    fn any_prefix_of_the_particles_thins_every_edge_alike() {
        // A slow GPU draws only the first n particles (Renderer::pace): the order is shuffled,
        // so the first quarter holds about a quarter of every edge's particles.
        let g = crate::synth::mesh(300, 1200, 8, 3);
        let l = laid_out(&g);
        let mut s = Scene::default();
        s.set(g, &l, 0.0, false, Some(20_000), 100_000);
        let per_edge = |ps: &[(u32, f32, f32, bool, f32)]| {
            let mut m: HashMap<u32, usize> = HashMap::new();
            for p in ps {
                *m.entry(p.0).or_default() += 1;
            }
            m
        };
        let all = per_edge(&s.particles);
        let quarter = per_edge(&s.particles[..s.particles.len() / 4]);
        let busy: Vec<_> = all.iter().filter(|(_, n)| **n >= 60).collect();
        assert!(busy.len() >= 20, "{}", busy.len());
        for (e, n) in busy {
            let k = quarter.get(e).copied().unwrap_or(0) as f64 / *n as f64;
            assert!(
                (0.1..0.45).contains(&k),
                "edge {e}: {k} of its {n} particles"
            );
        }
        let errors = |ps: &[(u32, f32, f32, bool, f32)]| {
            ps.iter().filter(|p| p.3).count() as f64 / ps.len() as f64
        };
        let (whole, part) = (errors(&s.particles), errors(&s.particles[..5000]));
        assert!((whole - part).abs() < 0.03, "{whole} vs {part}");
    }

    #[test]
    fn geometry_first_particles_later_make_the_same_scene() {
        let big = crate::synth::mesh(200, 500, 5, 3);
        let small = crate::synth::mesh(30, 60, 4, 9);
        let (lb, ls) = (laid_out(&big), laid_out(&small));
        let mut whole = Scene::default();
        whole.set(big.clone(), &lb, 0.0, false, None, 100_000);
        whole.set(small.clone(), &ls, 1.0, true, None, 100_000);
        let mut split = Scene::default();
        split.set(big, &lb, 0.0, false, None, 100_000);
        split.set_geometry(small, &ls, 1.0, true);
        // Between the two steps no particle points at an edge of the old, bigger graph.
        assert!(split.particles.is_empty());
        split.build_particles(None, 100_000);
        assert_eq!(split.particles, whole.particles);
        assert!(!split.particles.is_empty());
        // Built again (a later task after another update's geometry): the same particles.
        split.build_particles(None, 100_000);
        assert_eq!(split.particles, whole.particles);
    }

    #[test]
    fn vanished_edges_are_drawn_without_particles() {
        let mut g = crate::synth::mesh(30, 60, 4, 9);
        let busiest = g
            .edges
            .iter()
            .max_by(|a, b| a.metrics.rps.total_cmp(&b.metrics.rps))
            .unwrap()
            .id
            .clone();
        let l = laid_out(&g);
        let mut s = Scene::default();
        s.set(g.clone(), &l, 0.0, false, None, 100_000);
        let ei = s.graph.edges.iter().position(|e| e.id == busiest).unwrap() as u32;
        assert!(s.particles.iter().any(|p| p.0 == ei));
        let d = crate::api::GraphDiff {
            removed_edges: vec![g.edges.remove(ei as usize)],
            ..Default::default()
        };
        s.marks = crate::diff::merge(&mut g, &d);
        s.set(g, &l, 1.0, true, None, 100_000);
        let ei = s.graph.edges.iter().position(|e| e.id == busiest).unwrap();
        assert_ne!(s.edge_ends[ei].0, usize::MAX, "drawn between its nodes");
        assert!(!s.particles.iter().any(|p| p.0 as usize == ei));
        assert!(!s.particles.is_empty());
    }

    #[test]
    fn new_graph_animates_existing_nodes_from_where_they_were() {
        let g = crate::synth::mesh(20, 40, 4, 5);
        let l = laid_out(&g);
        let mut s = Scene::default();
        s.set(g.clone(), &l, 0.0, true, None, 1000);
        let mut l2 = l.clone();
        let first = g.nodes[1].id.clone();
        l2.pin(&first, Pos { x: 999.0, y: 999.0 });
        s.set(g, &l2, 10.0, true, None, 1000);
        let i = s.index[&first];
        assert_ne!(s.pos_at(i, 10.0), Pos { x: 999.0, y: 999.0 });
        assert_eq!(s.pos_at(i, 10.0 + ANIM_SECS), Pos { x: 999.0, y: 999.0 });
    }

    #[test]
    fn a_live_update_of_rates_alone_leaves_the_map_settled() {
        let g = crate::synth::mesh(20, 40, 4, 5);
        let l = laid_out(&g);
        let mut s = Scene::default();
        s.set(g.clone(), &l, 0.0, true, None, 1000);
        // Same nodes where they were, other rates: nothing animates (the cached edge layer
        // stays in use), at any time after the update.
        let mut g2 = g.clone();
        for e in &mut g2.edges {
            e.metrics.rps *= 1.5;
        }
        s.set(g2.clone(), &l, 10.0, true, None, 1000);
        assert!(10.0 - s.anim_start >= ANIM_SECS, "{}", s.anim_start);
        // A node that appears does animate (it grows in), so does one that moves.
        let mut g3 = g2.clone();
        let mut extra = g3.nodes[1].clone();
        extra.id = "new-one".into();
        extra.name = "new-one".into();
        g3.nodes.push(extra);
        let mut l3 = l.clone();
        l3.update_layered(&Input::of(&g3));
        s.set(g3.clone(), &l3, 20.0, true, None, 1000);
        assert_eq!(s.anim_start, 20.0);
        s.set(g3.clone(), &l3, 30.0, true, None, 1000);
        assert!(30.0 - s.anim_start >= ANIM_SECS);
        l3.pin(&g3.nodes[2].id, Pos { x: -500.0, y: 7.0 });
        s.set(g3, &l3, 40.0, true, None, 1000);
        assert_eq!(s.anim_start, 40.0);
    }

    #[test]
    fn global_edges_between_regions_curve_around_the_internet_node() {
        let mut g = crate::synth::mesh(6, 0, 2, 1);
        g.level = "global".into();
        for n in g.nodes.iter_mut().skip(1) {
            n.id = format!("region:{}", n.id);
        }
        let ids: Vec<String> = g.nodes.iter().map(|n| n.id.clone()).collect();
        let edge = |s: &str, t: &str| crate::api::Edge {
            id: format!("{s}->{t}"),
            source: s.into(),
            target: t.into(),
            ..Default::default()
        };
        // INTERNET → one region, and every region to the one opposite it on the ring.
        g.edges = vec![edge("INTERNET", &ids[1])];
        for k in 1..=6 {
            g.edges.push(edge(&ids[k], &ids[1 + (k + 2) % 6]));
        }
        let mut l = Layout::new();
        l.update_ring(&Input::of(&g), "INTERNET");
        let mut s = Scene::default();
        s.set(g, &l, 0.0, false, None, 1000);
        let o = s.to[s.index["INTERNET"]];
        let r = s.radius[s.index["INTERNET"]];
        assert_eq!(s.bend[0], 0.0, "from INTERNET: straight");
        for (k, &(a, b)) in s.edge_ends.iter().enumerate().skip(1) {
            assert!(
                route::segment_distance(o, s.to[a], s.to[b]) < 1.0,
                "straight would cross"
            );
            let d = route::curve_distance(o, s.to[a], s.to[b], s.bend[k]);
            assert!(d > r + 40.0, "edge {k} passes {d} from INTERNET's centre");
        }
        // The region level draws straight edges.
        let g = crate::synth::mesh(20, 40, 4, 5);
        let mut s = Scene::default();
        s.set(g.clone(), &laid_out(&g), 0.0, false, None, 1000);
        assert!(s.bend.iter().all(|b| *b == 0.0));
    }

    #[test]
    fn red_and_heavy_edges_stand_out_over_thin_ones() {
        let (thin_a, thin_w) = edge_style("normal", 0.1, 100.0, true);
        let (heavy_a, heavy_w) = edge_style("normal", 100.0, 100.0, true);
        let (red_a, red_w) = edge_style("danger", 0.1, 100.0, true);
        assert!(heavy_w > 2.0 * thin_w && heavy_a > 3.0 * thin_a);
        assert!(red_a > heavy_a && red_w > thin_w);
        assert!(edge_style("normal", 0.1, 100.0, false).0 > thin_a);
        let mut g = crate::synth::mesh(30, 80, 4, 9);
        for e in &mut g.edges {
            e.health = crate::api::Health::Normal;
        }
        g.edges[5].health = crate::api::Health::Danger;
        g.edges[6].health = crate::api::Health::Warning;
        let order = edge_draw_order(&g, &Marks::default());
        assert_eq!(&order[order.len() - 2..], &[6, 5], "red drawn last, on top");
        let rps: Vec<f64> = order[..order.len() - 2]
            .iter()
            .map(|&i| g.edges[i].metrics.rps)
            .collect();
        assert!(rps.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_crowded_live_map_keeps_particles_on_red_and_heavy_edges() {
        let g = crate::synth::mesh(2000, 5000, 6, 3);
        let l = laid_out(&g);
        let mut s = Scene::default();
        s.set(g, &l, 0.0, false, None, 100_000);
        assert!(
            s.particles.len() <= CROWDED_PARTICLES as usize + 5000,
            "{}",
            s.particles.len()
        );
        let max = s
            .graph
            .edges
            .iter()
            .map(|e| e.metrics.rps)
            .fold(0.0, f64::max);
        let per_edge = |keep: &dyn Fn(&crate::api::Edge) -> bool| {
            let ids: HashSet<u32> = (0..s.graph.edges.len() as u32)
                .filter(|&i| keep(&s.graph.edges[i as usize]))
                .collect();
            s.particles.iter().filter(|p| ids.contains(&p.0)).count() as f64
                / ids.len().max(1) as f64
        };
        let thin = per_edge(&|e| e.metrics.error_rate == 0.0 && (e.metrics.rps / max).sqrt() < 0.3);
        let red = per_edge(&|e| e.metrics.error_rate > 0.0);
        assert!(
            red > 3.0 * thin,
            "red {red} vs thin {thin} particles per edge"
        );
    }
}
