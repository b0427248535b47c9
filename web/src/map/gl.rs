//! The WebGL2 backend: edges, particles and nodes as instanced draws (`gl/pass.rs`), their
//! motion and the layout animation computed in the shaders (`shaders.rs`) from per-instance
//! data built once per graph update (`gl/instances.rs`). Once the layout has settled, the edges
//! are a cached layer and the nodes another one drawn over a copy of it, so a frame is one
//! full-screen copy plus the particles; a live update that only changes how edges or nodes look
//! rebuilds their layer a chunk per frame behind the one on screen (`gl/layer.rs`). Where the
//! browser can, all of this runs in a worker on an `OffscreenCanvas` (`gl/worker.rs`, driven by
//! `offscreen.rs`), so the page's thread never waits for the GPU.

mod instances;
mod layer;
mod pass;
#[cfg(target_arch = "wasm32")]
pub mod worker;

pub(super) use instances::Instances;

use super::camera::Camera;
use super::rebuild::{Epoch, LayerKey, node_layer_version};
use super::scene::ANIM_SECS;
use super::shaders;
use layer::LayerCache;
use pass::{Frame, Kind, Pass};
use web_sys::{WebGl2RenderingContext as GL, WebGlBuffer};

/// A straight edge: one segment (t = 0 and 1, both sides).
const STRAIGHT: [f32; 8] = [0.0, -1.0, 0.0, 1.0, 1.0, -1.0, 1.0, 1.0];

/// Most edges, and most nodes, drawn into a layer being rebuilt per frame (see `LayerCache`):
/// on SwiftShader redrawing the 5,080 edges and 2,001 nodes of a 2,000-service map at once
/// was one 230–285 ms task per live update; a tenth of it fits in a frame.
pub(super) const CHUNK_EDGES: i32 = 512;
pub(super) const CHUNK_NODES: i32 = 200;

pub(super) struct Gl {
    gl: GL,
    particles: Pass,
    edges: Pass,
    nodes: Pass,
    /// The straight edges' corners (see `set_edge_strip`).
    straight: WebGlBuffer,
    strip_verts: i32,
    /// Most particles drawn per frame (the pacing lowers it when frames come too slowly).
    pub(super) particle_cap: i32,
    /// Bumped when the edges' instance data changes: the edge layer is redrawn then.
    version: u64,
    /// Bumped when the edges change other than by a live update's look: the edge layer (and
    /// the node layer over it) is then redrawn at once, not in chunks (see `map/rebuild.rs`).
    edge_epoch: u64,
    /// The edges' instance data last uploaded (to skip an upload that changes nothing).
    edge_data: Vec<f32>,
    /// The settled edges as a texture (created on first need).
    edge_cache: LayerCache,
    /// Bumped when the nodes' instance data changes: the node layer is redrawn then.
    node_version: u64,
    /// The nodes' look epoch, as `edge_epoch`.
    node_epoch: u64,
    node_data: Vec<f32>,
    /// When the last node to appear has grown in (s): the node layer waits for it.
    nodes_grown_at: f32,
    /// Every node's from, to and birth time at the last upload (see `upload`).
    places: Vec<f32>,
    /// The settled nodes drawn over a copy of the edge layer: on a software renderer 2,000
    /// node discs were most of every frame (without them the frame's long task went away),
    /// although they only change with the graph, the camera or the selection; and one
    /// full-screen copy per frame costs less than two.
    node_cache: LayerCache,
    /// Frames drawn and full-screen layer copies onto the canvas among them (the browser tests
    /// read them: one copy per settled frame).
    pub(super) frames_drawn: u64,
    pub(super) copies: u64,
}

/// Which cached layer (see `Gl::draw`).
#[derive(Clone, Copy)]
enum Cached {
    Edges,
    Nodes,
}

impl Gl {
    pub(super) fn new(gl: GL) -> Result<Self, String> {
        let quad: [f32; 8] = [-1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0, 1.0];
        // An edge is a strip of segments along t = 0..1, so curves bend smoothly.
        let strip: Vec<f32> = (0..=shaders::EDGE_SEGMENTS)
            .flat_map(|k| {
                let t = k as f32 / shaders::EDGE_SEGMENTS as f32;
                [t, -1.0, t, 1.0]
            })
            .collect();
        let particles = Pass::new(
            &gl,
            &shaders::particle_vs(),
            shaders::PARTICLE_FS,
            &quad,
            &[4, 4, 4, 3],
        )?;
        let edges = Pass::new(
            &gl,
            &shaders::edge_vs(),
            shaders::EDGE_FS,
            &strip,
            &[4, 4, 4, 4],
        )?;
        let nodes = Pass::new(
            &gl,
            &shaders::node_vs(),
            shaders::NODE_FS,
            &quad,
            &[4, 4, 1],
        )?;
        gl.enable(GL::BLEND);
        gl.blend_func(GL::SRC_ALPHA, GL::ONE_MINUS_SRC_ALPHA);
        let straight = gl.create_buffer().ok_or("buffer")?;
        gl.bind_buffer(GL::ARRAY_BUFFER, Some(&straight));
        // SAFETY: the view is dropped before any allocation can move the array.
        unsafe {
            let view = js_sys::Float32Array::view(&STRAIGHT);
            gl.buffer_data_with_array_buffer_view(GL::ARRAY_BUFFER, &view, GL::STATIC_DRAW);
        }
        let strip_verts = edges.verts;
        Ok(Gl {
            gl,
            particles,
            edges,
            nodes,
            straight,
            strip_verts,
            particle_cap: i32::MAX,
            version: 0,
            edge_epoch: 0,
            edge_data: Vec::new(),
            edge_cache: LayerCache::default(),
            node_version: 0,
            node_epoch: 0,
            node_data: Vec::new(),
            nodes_grown_at: 0.0,
            places: Vec::new(),
            node_cache: LayerCache::default(),
            frames_drawn: 0,
            copies: 0,
        })
    }

    /// Uploads a graph's instance data (on graph/layout change, never per frame). The edges
    /// are uploaded — and the cached edge layer redrawn — only when what they look like
    /// changed: a live update that moves rates a little leaves widths and alphas (quantised)
    /// as they were, so the layer stays valid. `i.live`: a graph update from the stream, whose
    /// change of look (positions unchanged) may reach the cached layers over a few frames.
    pub(super) fn upload(&mut self, i: Instances) {
        let straight_verts = (STRAIGHT.len() / 2) as i32;
        if self.edges.verts
            != if i.straight {
                straight_verts
            } else {
                self.strip_verts
            }
        {
            self.set_edge_strip(i.straight);
            self.version += 1;
            self.edge_epoch += 1;
        }
        // Whether any node moved, appeared, went or grows in (by index: a reordered graph counts
        // as moved): if not, every edge is where it was too, and a live update changed only
        // how things look.
        let moved = i.places != self.places;
        let look = i.live && !moved;
        self.places = i.places;
        let gl = self.gl.clone();
        self.particles.count = (i.particles.len() / instances::PARTICLE_FLOATS) as i32;
        self.particles.upload(&gl, &i.particles);
        let ecount = (i.edges.len() / instances::EDGE_FLOATS) as i32;
        if i.edges != self.edge_data || ecount != self.edges.count {
            self.edges.count = ecount;
            self.edges.upload(&gl, &i.edges);
            self.edge_data = i.edges;
            self.version += 1;
            self.edge_epoch += u64::from(!look);
        }
        let ncount = (i.nodes.len() / instances::NODE_FLOATS) as i32;
        if i.nodes != self.node_data || ncount != self.nodes.count {
            self.node_epoch += u64::from(!look);
            self.nodes.count = ncount;
            self.nodes.upload(&gl, &i.nodes);
            self.node_data = i.nodes;
            self.node_version += 1;
            self.nodes_grown_at = i.grown_at;
        }
    }

    /// Points the edge pass's corner attribute at the straight segment or the curved strip.
    fn set_edge_strip(&mut self, straight: bool) {
        let gl = &self.gl;
        gl.bind_vertex_array(Some(&self.edges.vao));
        gl.bind_buffer(
            GL::ARRAY_BUFFER,
            Some(if straight {
                &self.straight
            } else {
                &self.edges.corners
            }),
        );
        gl.vertex_attrib_pointer_with_i32(0, 2, GL::FLOAT, false, 0, 0);
        gl.bind_vertex_array(None);
        self.edges.verts = if straight {
            (STRAIGHT.len() / 2) as i32
        } else {
            self.strip_verts
        };
    }

    /// Particles uploaded (all of them are drawn unless `particle_cap` is lower).
    pub(super) fn particle_count(&self) -> i32 {
        self.particles.count
    }

    /// Particles drawn per frame now.
    pub(super) fn particles_drawn(&self) -> i32 {
        self.particles.count.min(self.particle_cap)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn draw(
        &mut self,
        cam: Camera,
        dpr: f32,
        w: f32,
        h: f32,
        t: f64,
        anim: f64,
        motion: bool,
    ) {
        let (wi, hi) = (w as i32, h as i32);
        // Seconds since page load: float32 keeps ~10 ms precision for a day, and one clock for
        // everything keeps particles flowing across graph updates.
        let rt = t as f32;
        let frame = (cam, dpr, w, h, rt, anim as f32, motion);
        // The edges only move while the layout animates: once it has settled they are drawn
        // into a texture when the camera, the canvas or the scene changes, and each frame
        // copies that (one full-screen triangle instead of thousands of blended strips — what
        // a software renderer spends a 2,000-service frame on).
        let settled = !motion || t - anim >= ANIM_SECS;
        let key = (cam, self.version, wi, hi, dpr.to_bits());
        // At most one chunk of a layer being rebuilt per frame (the edges' first).
        let mut budget = true;
        let cached = settled
            && self.edges.count > 0
            && self.cached_layer(Cached::Edges, key, frame, &mut budget);
        // The nodes likewise, once the last one to appear has grown in: drawn over a copy of
        // the edge layer, so a frame is ONE full-screen copy plus the particles (a second,
        // blended full-screen copy made SwiftShader's frames a third longer in a bare WebGL2
        // page). Particles hide under their own end nodes instead (particle shader).
        let nodes_settled = settled && (!motion || rt >= self.nodes_grown_at);
        let version = node_layer_version(self.node_version, self.edge_cache.state.generation);
        let nkey = (cam, version, wi, hi, dpr.to_bits());
        let composite = cached
            && nodes_settled
            && self.nodes.count > 0
            && self.cached_layer(Cached::Nodes, nkey, frame, &mut budget);
        self.edge_cache.state.shown = cached;
        self.node_cache.state.shown = composite;
        let gl = &self.gl;
        gl.bind_framebuffer(GL::FRAMEBUFFER, None);
        gl.viewport(0, 0, wi, hi);
        gl.clear_color(0.043, 0.059, 0.09, 1.0);
        gl.clear(GL::COLOR_BUFFER_BIT);
        let copied = match (&self.node_cache.front, &self.edge_cache.front) {
            (Some(l), _) if composite => Some(l),
            (_, Some(l)) if cached => Some(l),
            _ => None,
        };
        if let Some(l) = copied {
            l.copy(gl);
        } else {
            self.edges.draw(gl, Kind::Edges, frame, None, i32::MAX);
        }
        self.copies += u64::from(copied.is_some());
        self.frames_drawn += 1;
        self.particles
            .draw(gl, Kind::Particles, frame, None, self.particle_cap);
        if !composite {
            self.nodes.draw(gl, Kind::Nodes, frame, None, i32::MAX);
        }
        self.gl.bind_vertex_array(None);
    }

    /// Makes the edge or node layer current for `key` (see `LayerCache::current`); false when
    /// there is no layer (that pass is drawn directly).
    fn cached_layer(
        &mut self,
        which: Cached,
        key: LayerKey,
        frame: Frame,
        budget: &mut bool,
    ) -> bool {
        let (cache, pass, kind, chunk, under, epoch): (_, _, _, _, _, Epoch) = match which {
            Cached::Edges => (
                &mut self.edge_cache,
                &self.edges,
                Kind::Edges,
                CHUNK_EDGES,
                None,
                (self.edge_epoch, 0),
            ),
            Cached::Nodes => (
                &mut self.node_cache,
                &self.nodes,
                Kind::Nodes,
                CHUNK_NODES,
                self.edge_cache.front.as_ref(),
                (self.node_epoch, self.edge_epoch),
            ),
        };
        cache.current(
            &self.gl, pass, kind, chunk, under, key, epoch, frame, budget,
        )
    }
}
