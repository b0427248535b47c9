//! What the WebGL passes draw, as flat instance data built from a `Scene` on the page's thread
//! (the scene and graph stay there) and handed to the renderer — in the page or in its worker
//! (`worker.rs`), which then only uploads it.

use super::super::scene::{ANIM_SECS, Scene};
use crate::api::Health;

/// Floats per particle, edge and node instance (the passes' attribute sizes summed).
pub(in crate::map) const PARTICLE_FLOATS: usize = 15;
pub(in crate::map) const EDGE_FLOATS: usize = 16;
pub(in crate::map) const NODE_FLOATS: usize = 9;

/// One graph's instance data (see `Gl::upload`).
#[derive(Default)]
pub(in crate::map) struct Instances {
    pub particles: Vec<f32>,
    pub edges: Vec<f32>,
    pub nodes: Vec<f32>,
    /// Every node's from, to and birth time: whether anything moved since the last upload.
    pub places: Vec<f32>,
    /// Every edge is straight (one segment instead of a curve's strip).
    pub straight: bool,
    /// When the last node to appear has grown in (s).
    pub grown_at: f32,
    /// A graph update from the stream (its change of look may reach the layers in chunks).
    pub live: bool,
}

impl Instances {
    pub(in crate::map) fn build(s: &Scene, live: bool) -> Instances {
        let places: Vec<f32> = (0..s.graph.nodes.len())
            .flat_map(|i| [s.from[i].x, s.from[i].y, s.to[i].x, s.to[i].y, s.born[i]])
            .collect();
        let mut particles = Vec::with_capacity(s.particles.len() * PARTICLE_FLOATS);
        for &(ei, phase, speed, err, lane) in &s.particles {
            let (a, b) = s.edge_ends[ei as usize];
            particles.extend_from_slice(&ends(s, a, b));
            particles.extend_from_slice(&[
                phase,
                speed,
                err as u8 as f32,
                lane,
                s.bend[ei as usize],
                s.radius[a],
                s.radius[b],
            ]);
        }
        let mut edges = Vec::with_capacity(s.edge_ends.len() * EDGE_FLOATS);
        // Unhealthy and heavy edges last, so they are drawn over the thin ones.
        for se in s.styled_edges() {
            let (ei, (a, b), state) = (se.index, se.ends, se.state);
            let (style_alpha, width) = (se.alpha, se.width);
            let e = &s.graph.edges[ei];
            let c = crate::encoding::health_rgb(state);
            let dim = s.dimmed.contains(&e.source) || s.dimmed.contains(&e.target);
            let selected = s.selected_edge.as_deref() == Some(e.id.as_str());
            let alpha = if selected {
                0.9
            } else if dim {
                0.06
            } else {
                style_alpha
            };
            let width = if selected { width + 1.5 } else { width };
            // Quarter pixels of width and 1/64 steps of alpha: finer changes are not visible.
            let (alpha, width) = ((alpha * 64.0).round() / 64.0, (width * 4.0).round() / 4.0);
            edges.extend_from_slice(&ends(s, a, b));
            edges.extend_from_slice(&[
                c[0],
                c[1],
                c[2],
                // A negative alpha asks the shader for a dashed line (vanished in diff mode).
                if state == "vanished" { -alpha } else { alpha },
                width,
                s.bend[ei],
                0.0,
                0.0,
            ]);
        }
        let mut nodes = Vec::with_capacity(s.graph.nodes.len() * NODE_FLOATS);
        for (i, n) in s.graph.nodes.iter().enumerate() {
            let health = match n.health {
                Health::Danger => 2.0,
                Health::Warning => 1.0,
                Health::Normal => 0.0,
            };
            let mut flags = 0;
            if n.is_virtual() {
                flags |= 1;
            }
            if s.selected.as_deref() == Some(n.id.as_str()) {
                flags |= 2;
            }
            if s.dimmed.contains(&n.id) || s.marks.node_vanished(&n.id) {
                flags |= 4;
            }
            nodes.extend_from_slice(&[
                s.from[i].x,
                s.from[i].y,
                s.to[i].x,
                s.to[i].y,
                s.radius[i],
                n.metrics.error_rate as f32,
                health,
                flags as f32,
                s.born[i],
            ]);
        }
        Instances {
            particles,
            edges,
            nodes,
            places,
            // Straight edges (every level but global) need one segment, not a curve's strip:
            // on a 5,000-edge map that is a twelfth of the vertices, which a software renderer
            // (SwiftShader) notices.
            straight: s.bend.iter().all(|b| *b == 0.0),
            grown_at: s.born.iter().fold(0.0f32, |m, b| m.max(*b)) + ANIM_SECS as f32,
            live,
        }
    }
}

/// An edge's two ends where the layout animation starts and where it ends (x, y each): the
/// first eight floats of both a particle's and an edge's instance.
fn ends(s: &Scene, a: usize, b: usize) -> [f32; 8] {
    let (fa, fb, ta, tb) = (s.from[a], s.from[b], s.to[a], s.to[b]);
    [fa.x, fa.y, fb.x, fb.y, ta.x, ta.y, tb.x, tb.y]
}
