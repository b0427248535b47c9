//! The WebGL2 backend: edges, particles and nodes as instanced draws, their motion and the
//! layout animation computed in the shaders (`shaders.rs`) from per-instance data uploaded once
//! per graph update. Once the layout has settled, the edges are a cached layer and the nodes
//! another one drawn over a copy of it, so a frame is one full-screen copy plus the particles. A live update that only changes how edges or nodes look
//! rebuilds their cached layer a chunk per frame behind the one on screen (`LayerCache`).

use super::camera::Camera;
use super::scene::{self, ANIM_SECS, Scene};
use super::shaders;
use crate::api::Health;
use web_sys::{
    WebGl2RenderingContext as GL, WebGlBuffer, WebGlFramebuffer, WebGlProgram, WebGlTexture,
    WebGlVertexArrayObject,
};

/// A straight edge: one segment (t = 0 and 1, both sides).
const STRAIGHT: [f32; 8] = [0.0, -1.0, 0.0, 1.0, 1.0, -1.0, 1.0, 1.0];

/// Most edges, and most nodes, drawn into a layer being rebuilt per frame (see `LayerCache`):
/// on SwiftShader redrawing the 5,080 edges and 2,001 nodes of a 2,000-service map at once
/// was one 230–285 ms task per live update; a tenth of it fits in a frame.
pub(super) const CHUNK_EDGES: i32 = 512;
pub(super) const CHUNK_NODES: i32 = 200;

struct Pass {
    prog: WebGlProgram,
    vao: WebGlVertexArrayObject,
    /// The per-vertex corners (a quad, or the edge strip).
    corners: WebGlBuffer,
    inst: WebGlBuffer,
    count: i32,
    /// Vertices of the strip drawn per instance.
    verts: i32,
    /// Floats per instance attribute (locations 1..), to draw a range of instances.
    attrs: Vec<i32>,
}

pub(super) struct Gl {
    gl: GL,
    particles: Pass,
    edges: Pass,
    nodes: Pass,
    /// The straight edges' corners (see `set_edge_strip`).
    straight: WebGlBuffer,
    strip_verts: i32,
    /// Most particles drawn per frame (the renderer lowers it when frames come too slowly).
    pub(super) particle_cap: i32,
    /// Bumped when the edges' instance data changes: the edge layer is redrawn then.
    version: u64,
    /// The edges' instance data last uploaded (to skip an upload that changes nothing).
    edge_data: Vec<f32>,
    /// The settled edges as a texture (created on first need).
    edge_cache: LayerCache,
    /// Bumped when the nodes' instance data changes: the node layer is redrawn then.
    node_version: u64,
    node_data: Vec<f32>,
    /// When the last node to appear has grown in (s): the node layer waits for it.
    nodes_grown_at: f32,
    /// Every node's from, to and birth time at the last upload (see `upload_scene`).
    places: Vec<f32>,
    /// The settled nodes drawn over a copy of the edge layer: on a software renderer 2,000
    /// node discs were most of every frame (without them the frame's long task went away),
    /// although they only change with the graph, the camera or the selection; and one
    /// full-screen copy per frame costs less than two.
    node_cache: LayerCache,
}

/// A cached layer: the one on screen (`front`) and, while a live update's new look is drawn a
/// chunk per frame, the one being drawn (`back`), swapped in when complete. Only a change of
/// look (colours, widths, rings) is drawn that way, and only when the front was on screen in
/// the last frame: then the front still shows every edge and node where it is, just as it
/// looked a few frames ago. A new camera, canvas, selection or position is drawn at once.
#[derive(Default)]
struct LayerCache {
    front: Option<Layer>,
    back: Option<Layer>,
    /// Instances drawn into `back` so far (for `back.key`).
    drawn: i32,
    /// When the back layer's first chunk was drawn (`perf::now`).
    started: f64,
    /// Whether the front was copied in the last frame drawn.
    shown: bool,
    /// The version whose content change may be drawn in chunks (a live update's, positions
    /// unchanged); any other version is drawn at once.
    chunked: Option<u64>,
    /// Whether the back layer's first chunks were drawn for an older version.
    stale: bool,
    /// Whether the front, though drawn for the current key, is partly an older look (it was
    /// swapped in from a stale back layer): rebuilt once more.
    redo: bool,
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
        let particles = pass(
            &gl,
            &shaders::particle_vs(),
            shaders::PARTICLE_FS,
            &quad,
            &[4, 4, 4, 3],
        )?;
        let edges = pass(
            &gl,
            &shaders::edge_vs(),
            shaders::EDGE_FS,
            &strip,
            &[4, 4, 4, 4],
        )?;
        let nodes = pass(
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
            edge_data: Vec::new(),
            edge_cache: LayerCache::default(),
            node_version: 0,
            node_data: Vec::new(),
            nodes_grown_at: 0.0,
            places: Vec::new(),
            node_cache: LayerCache::default(),
        })
    }

    /// Uploads the scene's instance data (on graph/layout change, never per frame). The edges
    /// are uploaded — and the cached edge layer redrawn — only when what they look like
    /// changed: a live update that moves rates a little leaves widths and alphas (quantised)
    /// as they were, so the layer stays valid. `live`: a graph update from the stream, whose
    /// change of look (positions unchanged) may reach the cached layers over a few frames.
    pub(super) fn upload_scene(&mut self, s: &Scene, live: bool) {
        // Straight edges (every level but global) need one segment, not a curve's strip: on a
        // 5,000-edge map that is a twelfth of the vertices, which a software renderer
        // (SwiftShader) notices.
        let straight = s.bend.iter().all(|b| *b == 0.0);
        if self.edges.verts
            != if straight {
                (STRAIGHT.len() / 2) as i32
            } else {
                self.strip_verts
            }
        {
            self.set_edge_strip(straight);
            self.version += 1;
        }
        // Whether any node moved, appeared, went or grows in (by index: a reordered graph counts
        // as moved): if not, every edge is where it was too, and a live update changed only
        // how things look.
        let places: Vec<f32> = (0..s.graph.nodes.len())
            .flat_map(|i| [s.from[i].x, s.from[i].y, s.to[i].x, s.to[i].y, s.born[i]])
            .collect();
        let moved = places != self.places;
        self.places = places;
        let g = self;
        let mut pdata = Vec::with_capacity(s.particles.len() * 15);
        for &(ei, phase, speed, err, lane) in &s.particles {
            let (a, b) = s.edge_ends[ei as usize];
            let (fa, fb, ta, tb) = (s.from[a], s.from[b], s.to[a], s.to[b]);
            pdata.extend_from_slice(&[
                fa.x,
                fa.y,
                fb.x,
                fb.y,
                ta.x,
                ta.y,
                tb.x,
                tb.y,
                phase,
                speed,
                err as u8 as f32,
                lane,
                s.bend[ei as usize],
                s.radius[a],
                s.radius[b],
            ]);
        }
        g.particles.count = s.particles.len() as i32;
        g.upload(&g.particles.inst, &pdata);
        let mut edata = Vec::with_capacity(s.edge_ends.len() * 16);
        let mut ecount = 0;
        let max_rps = s
            .graph
            .edges
            .iter()
            .map(|e| e.metrics.rps)
            .fold(0.0f64, f64::max);
        let crowded = s.graph.edges.len() >= scene::CROWDED_EDGES;
        // Unhealthy and heavy edges last, so they are drawn over the thin ones.
        for ei in scene::edge_draw_order(&s.graph, &s.marks) {
            let (e, (a, b)) = (&s.graph.edges[ei], s.edge_ends[ei]);
            if a == usize::MAX || b == usize::MAX {
                continue;
            }
            let state = s.marks.edge_state(e);
            let c = crate::encoding::health_rgb(state);
            let dim = s.dimmed.contains(&e.source) || s.dimmed.contains(&e.target);
            let (style_alpha, width) = scene::edge_style(state, e.metrics.rps, max_rps, crowded);
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
            let (fa, fb, ta, tb) = (s.from[a], s.from[b], s.to[a], s.to[b]);
            edata.extend_from_slice(&[
                fa.x,
                fa.y,
                fb.x,
                fb.y,
                ta.x,
                ta.y,
                tb.x,
                tb.y,
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
            ecount += 1;
        }
        if edata != g.edge_data || ecount != g.edges.count {
            g.edges.count = ecount;
            g.upload(&g.edges.inst, &edata);
            g.edge_data = edata;
            g.version += 1;
            g.edge_cache.chunked = (live && !moved).then_some(g.version);
        }
        let mut ndata = Vec::with_capacity(s.graph.nodes.len() * 9);
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
            ndata.extend_from_slice(&[
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
        let count = s.graph.nodes.len() as i32;
        if ndata != g.node_data || count != g.nodes.count {
            g.node_cache.chunked = (live && !moved).then_some(g.node_version + 1);
            g.nodes.count = count;
            g.upload(&g.nodes.inst, &ndata);
            g.node_data = ndata;
            g.node_version += 1;
            g.nodes_grown_at = s.born.iter().fold(0.0f32, |m, b| m.max(*b)) + ANIM_SECS as f32;
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

    fn upload(&self, buf: &WebGlBuffer, data: &[f32]) {
        self.gl.bind_buffer(GL::ARRAY_BUFFER, Some(buf));
        // SAFETY: the view is dropped before any allocation can move `data`.
        unsafe {
            let view = js_sys::Float32Array::view(data);
            self.gl
                .buffer_data_with_array_buffer_view(GL::ARRAY_BUFFER, &view, GL::STATIC_DRAW);
        }
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
        let under = self
            .edge_cache
            .front
            .as_ref()
            .and_then(|l| l.key)
            .map_or(0, |k| k.1);
        let nkey = (cam, both(self.node_version, under), wi, hi, dpr.to_bits());
        let composite = cached
            && nodes_settled
            && self.nodes.count > 0
            && self.cached_layer(Cached::Nodes, nkey, frame, &mut budget);
        self.edge_cache.shown = cached;
        self.node_cache.shown = composite;
        let gl = &self.gl;
        gl.bind_framebuffer(GL::FRAMEBUFFER, None);
        gl.viewport(0, 0, wi, hi);
        gl.clear_color(0.043, 0.059, 0.09, 1.0);
        gl.clear(GL::COLOR_BUFFER_BIT);
        match (&self.node_cache.front, &self.edge_cache.front) {
            (Some(l), _) if composite => l.copy(gl),
            (_, Some(l)) if cached => l.copy(gl),
            _ => self.draw_pass(&self.edges, 0, frame),
        }
        self.draw_pass(&self.particles, 1, frame);
        if !composite {
            self.draw_pass(&self.nodes, 2, frame);
        }
        self.gl.bind_vertex_array(None);
    }

    /// Makes the edge or node layer current for `key`; false when there is no layer (creation
    /// failed: that pass is drawn directly). A change of look from a live update (same view,
    /// the front on screen last frame) is drawn into the back layer a chunk per frame while the
    /// front stays on screen — one chunk per frame over both layers (`budget`) — and swapped in
    /// when complete; anything else is drawn at once.
    fn cached_layer(
        &mut self,
        which: Cached,
        key: LayerKey,
        frame: Frame,
        budget: &mut bool,
    ) -> bool {
        let gl = self.gl.clone();
        let (edges_chunked, nodes_chunked) = (self.edge_cache.chunked, self.node_cache.chunked);
        let (cache, pass, chunk, under) = match which {
            Cached::Edges => (&mut self.edge_cache, &self.edges, CHUNK_EDGES, None),
            Cached::Nodes => (
                &mut self.node_cache,
                &self.nodes,
                CHUNK_NODES,
                self.edge_cache.front.as_ref(),
            ),
        };
        if cache.front.is_none() {
            cache.front = Layer::new(&gl).ok();
        }
        let Some(front) = &cache.front else {
            return false;
        };
        if front.key == Some(key) && !cache.redo {
            return true;
        }
        let same_view = front
            .key
            .is_some_and(|k| (k.0, k.2, k.3, k.4) == (key.0, key.2, key.3, key.4));
        // Every part that changed since the front was drawn changed by a live update's look.
        let was = front.key.map_or(u64::MAX, |k| k.1);
        let chunkable = match which {
            Cached::Edges => was == key.1 || edges_chunked == Some(key.1),
            Cached::Nodes => {
                let ((n0, e0), (n1, e1)) = (parts(was), parts(key.1));
                (n0 == n1 || nodes_chunked.map(|v| v as u32) == Some(n1))
                    && (e0 == e1 || edges_chunked.map(|v| v as u32) == Some(e1))
            }
        };
        if same_view && cache.shown && chunkable && pass.count > chunk {
            if !*budget {
                // Another layer drew its chunk this frame: the front stays a frame longer.
                return true;
            }
            if cache.back.is_none() {
                cache.back = Layer::new(&gl).ok();
            }
            if let Some(back) = &mut cache.back
                && back.resize(&gl, key.2, key.3)
            {
                *budget = false;
                let started = super::perf::now();
                let half_drawn = cache.drawn > 0
                    && back
                        .key
                        .is_some_and(|k| (k.0, k.2, k.3, k.4) == (key.0, key.2, key.3, key.4));
                if back.key == Some(key) || half_drawn {
                    // Go on; a newer look than the half-drawn one's goes on where it is (its
                    // first chunks show the older look until the next rebuild, queued at the
                    // swap), so updates faster than a rebuild still reach the screen.
                    cache.stale |= back.key != Some(key);
                    back.key = Some(key);
                    gl.bind_framebuffer(GL::FRAMEBUFFER, Some(&back.fbo));
                    gl.viewport(0, 0, key.2, key.3);
                } else {
                    begin(&gl, back, under, key);
                    cache.drawn = 0;
                    cache.started = started;
                    cache.stale = false;
                    cache.redo = false;
                }
                let n = chunk.min(pass.count - cache.drawn).max(0);
                draw_pass_with(
                    &gl,
                    pass,
                    which.extra(),
                    frame,
                    Some((cache.drawn, n)),
                    i32::MAX,
                );
                cache.drawn += n;
                gl.bind_framebuffer(GL::FRAMEBUFFER, None);
                super::perf::measure("orrery:layer-chunk", started);
                if cache.drawn >= pass.count {
                    std::mem::swap(&mut cache.front, &mut cache.back);
                    super::perf::measure("orrery:layer-swap", cache.started);
                    cache.drawn = 0;
                    // Partly an older look: drawn again, in chunks, from the next frame.
                    cache.redo = cache.stale;
                    if let Some(b) = &mut cache.back {
                        b.key = None;
                    }
                }
                return true;
            }
            cache.back = None;
        }
        // At once, into the front.
        let started = super::perf::now();
        let Some(front) = &mut cache.front else {
            return false;
        };
        if !front.resize(&gl, key.2, key.3) {
            cache.front = None;
            return false;
        }
        begin(&gl, front, under, key);
        cache.redo = false;
        draw_pass_with(&gl, pass, which.extra(), frame, None, i32::MAX);
        gl.bind_framebuffer(GL::FRAMEBUFFER, None);
        // A half-drawn back layer is for an older look: drop its progress.
        if let Some(back) = &mut cache.back {
            back.key = None;
        }
        super::perf::measure("orrery:layer", started);
        true
    }

    fn draw_pass(&self, p: &Pass, extra: u8, frame: Frame) {
        draw_pass_with(&self.gl, p, extra, frame, None, self.particle_cap);
    }
}

impl Cached {
    /// The pass's uniform set (see `draw_pass_with`).
    fn extra(self) -> u8 {
        match self {
            Cached::Edges => 0,
            Cached::Nodes => 2,
        }
    }
}

/// Clears `layer` for `key` to the map's background, copies `under` (the edge layer under the
/// nodes) into it, and leaves its framebuffer bound.
fn begin(gl: &GL, layer: &mut Layer, under: Option<&Layer>, key: LayerKey) {
    gl.bind_framebuffer(GL::FRAMEBUFFER, Some(&layer.fbo));
    gl.viewport(0, 0, key.2, key.3);
    gl.clear_color(0.043, 0.059, 0.09, 1.0);
    gl.clear(GL::COLOR_BUFFER_BIT);
    if let Some(u) = under {
        u.copy(gl);
    }
    layer.key = Some(key);
}

/// The node layer's version: the nodes' and the edge layer's under them (low 32 bits each).
fn both(nodes: u64, edges: u64) -> u64 {
    (nodes << 32) | (edges & 0xffff_ffff)
}

fn parts(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// One pass's instanced draw: all instances, or `range` = (first, count) of them (the instance
/// attributes re-pointed at the first one — WebGL2 has no base instance). Particles are capped
/// at `particle_cap`.
fn draw_pass_with(
    gl: &GL,
    p: &Pass,
    extra: u8,
    frame: Frame,
    range: Option<(i32, i32)>,
    particle_cap: i32,
) {
    let (cam, dpr, w, h, rt, anim, motion) = frame;
    if p.count == 0 {
        return;
    }
    gl.use_program(Some(&p.prog));
    let u = |name: &str| gl.get_uniform_location(&p.prog, name);
    gl.uniform4f(u("u_view").as_ref(), cam.cx, cam.cy, cam.zoom, dpr);
    gl.uniform2f(u("u_res").as_ref(), w, h);
    gl.uniform1f(u("u_time").as_ref(), rt);
    gl.uniform2f(
        u("u_anim").as_ref(),
        anim,
        if motion { ANIM_SECS as f32 } else { 0.0 },
    );
    match extra {
        1 => {
            gl.uniform1f(u("u_size").as_ref(), (3.2 * cam.zoom).clamp(1.4, 3.5));
            gl.uniform1f(u("u_motion").as_ref(), if motion { 1.0 } else { 0.0 });
        }
        2 => gl.uniform1f(u("u_min_px").as_ref(), 3.0),
        _ => {}
    }
    gl.bind_vertex_array(Some(&p.vao));
    // Particles are uploaded in a shuffled order, so any prefix is a fair sample.
    let count = if extra == 1 {
        p.count.min(particle_cap)
    } else {
        p.count
    };
    match range {
        Some((first, n)) if first > 0 => {
            point_instances(gl, p, first);
            gl.draw_arrays_instanced(GL::TRIANGLE_STRIP, 0, p.verts, n.min(count - first));
            point_instances(gl, p, 0);
        }
        Some((_, n)) => gl.draw_arrays_instanced(GL::TRIANGLE_STRIP, 0, p.verts, n.min(count)),
        None => gl.draw_arrays_instanced(GL::TRIANGLE_STRIP, 0, p.verts, count),
    }
}

/// Points the pass's instance attributes (bound VAO) at instance `first` of its buffer.
fn point_instances(gl: &GL, p: &Pass, first: i32) {
    gl.bind_buffer(GL::ARRAY_BUFFER, Some(&p.inst));
    let stride: i32 = p.attrs.iter().sum::<i32>() * 4;
    let mut offset = first * stride;
    for (k, &size) in p.attrs.iter().enumerate() {
        gl.vertex_attrib_pointer_with_i32(k as u32 + 1, size, GL::FLOAT, false, stride, offset);
        offset += size * 4;
    }
}

/// What a pass needs of the frame: camera, dpr, canvas size, time, animation start, motion.
type Frame = (Camera, f32, f32, f32, f32, f32, bool);
/// What a layer was drawn for: camera, edge or node version, canvas size, dpr bits.
type LayerKey = (Camera, u64, i32, i32, u32);

/// A framebuffer texture the size of the canvas holding the settled edges or nodes, and the
/// program that copies it onto the canvas (see `Gl::draw`).
struct Layer {
    fbo: WebGlFramebuffer,
    tex: Option<WebGlTexture>,
    size: (i32, i32),
    key: Option<LayerKey>,
    prog: WebGlProgram,
    vao: WebGlVertexArrayObject,
}

impl Layer {
    fn new(gl: &GL) -> Result<Self, String> {
        let prog = program(gl, shaders::COPY_VS, shaders::COPY_FS)?;
        let vao = gl.create_vertex_array().ok_or("vao")?;
        gl.bind_vertex_array(Some(&vao));
        let tri = gl.create_buffer().ok_or("buffer")?;
        gl.bind_buffer(GL::ARRAY_BUFFER, Some(&tri));
        // SAFETY: the view is dropped before any allocation can move the array.
        unsafe {
            let view = js_sys::Float32Array::view(&[-1.0, -1.0, 3.0, -1.0, -1.0, 3.0]);
            gl.buffer_data_with_array_buffer_view(GL::ARRAY_BUFFER, &view, GL::STATIC_DRAW);
        }
        gl.enable_vertex_attrib_array(0);
        gl.vertex_attrib_pointer_with_i32(0, 2, GL::FLOAT, false, 0, 0);
        gl.bind_vertex_array(None);
        Ok(Layer {
            fbo: gl.create_framebuffer().ok_or("framebuffer")?,
            tex: None,
            size: (0, 0),
            key: None,
            prog,
            vao,
        })
    }

    /// A texture of the canvas's size behind the framebuffer; false when it cannot be made.
    fn resize(&mut self, gl: &GL, w: i32, h: i32) -> bool {
        if self.tex.is_some() && self.size == (w, h) {
            return true;
        }
        if let Some(old) = self.tex.take() {
            gl.delete_texture(Some(&old));
        }
        let Some(tex) = gl.create_texture() else {
            return false;
        };
        gl.bind_texture(GL::TEXTURE_2D, Some(&tex));
        gl.tex_storage_2d(GL::TEXTURE_2D, 1, GL::RGBA8, w, h);
        for p in [GL::TEXTURE_MIN_FILTER, GL::TEXTURE_MAG_FILTER] {
            gl.tex_parameteri(GL::TEXTURE_2D, p, GL::NEAREST as i32);
        }
        for p in [GL::TEXTURE_WRAP_S, GL::TEXTURE_WRAP_T] {
            gl.tex_parameteri(GL::TEXTURE_2D, p, GL::CLAMP_TO_EDGE as i32);
        }
        gl.bind_framebuffer(GL::FRAMEBUFFER, Some(&self.fbo));
        gl.framebuffer_texture_2d(
            GL::FRAMEBUFFER,
            GL::COLOR_ATTACHMENT0,
            GL::TEXTURE_2D,
            Some(&tex),
            0,
        );
        let complete = gl.check_framebuffer_status(GL::FRAMEBUFFER) == GL::FRAMEBUFFER_COMPLETE;
        gl.bind_framebuffer(GL::FRAMEBUFFER, None);
        self.tex = Some(tex);
        self.size = (w, h);
        self.key = None;
        complete
    }

    /// Copies the layer onto the canvas (exact texels: no blending, no filtering).
    fn copy(&self, gl: &GL) {
        gl.disable(GL::BLEND);
        gl.use_program(Some(&self.prog));
        gl.active_texture(GL::TEXTURE0);
        gl.bind_texture(GL::TEXTURE_2D, self.tex.as_ref());
        gl.uniform1i(gl.get_uniform_location(&self.prog, "u_tex").as_ref(), 0);
        gl.bind_vertex_array(Some(&self.vao));
        gl.draw_arrays(GL::TRIANGLES, 0, 3);
        gl.enable(GL::BLEND);
    }
}

fn pass(gl: &GL, vs: &str, fs: &str, corners: &[f32], attrs: &[i32]) -> Result<Pass, String> {
    let prog = program(gl, vs, fs)?;
    let vao = gl.create_vertex_array().ok_or("vao")?;
    gl.bind_vertex_array(Some(&vao));
    let quad = gl.create_buffer().ok_or("buffer")?;
    gl.bind_buffer(GL::ARRAY_BUFFER, Some(&quad));
    unsafe {
        let view = js_sys::Float32Array::view(corners);
        gl.buffer_data_with_array_buffer_view(GL::ARRAY_BUFFER, &view, GL::STATIC_DRAW);
    }
    gl.enable_vertex_attrib_array(0);
    gl.vertex_attrib_pointer_with_i32(0, 2, GL::FLOAT, false, 0, 0);
    let inst = gl.create_buffer().ok_or("buffer")?;
    gl.bind_buffer(GL::ARRAY_BUFFER, Some(&inst));
    let stride: i32 = attrs.iter().sum::<i32>() * 4;
    let mut offset = 0;
    for (k, &size) in attrs.iter().enumerate() {
        let loc = k as u32 + 1;
        gl.enable_vertex_attrib_array(loc);
        gl.vertex_attrib_pointer_with_i32(loc, size, GL::FLOAT, false, stride, offset);
        gl.vertex_attrib_divisor(loc, 1);
        offset += size * 4;
    }
    gl.bind_vertex_array(None);
    Ok(Pass {
        prog,
        vao,
        corners: quad,
        inst,
        count: 0,
        verts: (corners.len() / 2) as i32,
        attrs: attrs.to_vec(),
    })
}

fn program(gl: &GL, vs: &str, fs: &str) -> Result<WebGlProgram, String> {
    let compile = |kind, src: &str| -> Result<_, String> {
        let s = gl.create_shader(kind).ok_or("shader")?;
        gl.shader_source(&s, src);
        gl.compile_shader(&s);
        if gl
            .get_shader_parameter(&s, GL::COMPILE_STATUS)
            .as_bool()
            .unwrap_or(false)
        {
            Ok(s)
        } else {
            Err(gl.get_shader_info_log(&s).unwrap_or_default())
        }
    };
    let p = gl.create_program().ok_or("program")?;
    gl.attach_shader(&p, &compile(GL::VERTEX_SHADER, vs)?);
    gl.attach_shader(&p, &compile(GL::FRAGMENT_SHADER, fs)?);
    gl.link_program(&p);
    if gl
        .get_program_parameter(&p, GL::LINK_STATUS)
        .as_bool()
        .unwrap_or(false)
    {
        Ok(p)
    } else {
        Err(gl.get_program_info_log(&p).unwrap_or_default())
    }
}
