//! Draws a `Scene`: WebGL2 with instanced nodes, edges and particles (motion in the shaders),
//! or a 2D-canvas fallback where WebGL2 is missing. Labels go on a 2D overlay, redrawn only
//! when the camera or layout moves.

use super::labels::{self, Rect};
use super::route;
use super::scene::{self, ANIM_SECS, Scene};
use super::shaders;
use crate::api::Health;
use crate::layout::Pos;
use wasm_bindgen::JsCast;
use web_sys::{
    CanvasRenderingContext2d as Ctx2d, HtmlCanvasElement, WebGl2RenderingContext as GL,
    WebGlBuffer, WebGlProgram, WebGlVertexArrayObject,
};

/// A self-rescheduling requestAnimationFrame callback.
pub type FrameLoop =
    std::rc::Rc<std::cell::RefCell<Option<wasm_bindgen::closure::Closure<dyn FnMut(f64)>>>>;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    pub cx: f32,
    pub cy: f32,
    pub zoom: f32,
}

pub enum Hit {
    Node(usize),
    Edge(usize),
}

struct Pass {
    prog: WebGlProgram,
    vao: WebGlVertexArrayObject,
    inst: WebGlBuffer,
    count: i32,
    /// Vertices of the strip drawn per instance.
    verts: i32,
}

struct Gl {
    gl: GL,
    particles: Pass,
    edges: Pass,
    nodes: Pass,
}

pub struct Renderer {
    canvas: HtmlCanvasElement,
    overlay: Ctx2d,
    gl: Option<Gl>,
    ctx2d: Option<Ctx2d>,
    pub camera: Camera,
    pub motion: bool,
    frozen_time: f64,
    labels_key: Option<(Camera, u64, bool)>,
    scene_version: u64,
    pub dpr: f32,
    /// Label widths (device px at the label font) and priority order, refreshed on upload.
    label_w: Vec<f32>,
    label_order: Vec<usize>,
    /// Labels drawn by the last label pass (device px).
    pub label_boxes: Vec<(usize, Rect)>,
    /// `?geometry=1` (or `window.orreryGeometry = true` set before the app starts, as the
    /// browser tests do — the app rewrites its URL): publish node and label boxes on the overlay (`data-geometry`) and frame
    /// CPU figures on the canvas (`data-frame-stats`) for the browser tests and benches.
    report: bool,
    first_frame_done: bool,
    frame_ms: Vec<f64>,
}

impl Renderer {
    pub fn new(canvas: HtmlCanvasElement, overlay: HtmlCanvasElement, force_2d: bool) -> Self {
        let gl = if force_2d {
            None
        } else {
            canvas
                .get_context("webgl2")
                .ok()
                .flatten()
                .and_then(|c| c.dyn_into::<GL>().ok())
                .and_then(|gl| Gl::new(gl).ok())
        };
        let ctx2d = if gl.is_none() {
            canvas
                .get_context("2d")
                .ok()
                .flatten()
                .and_then(|c| c.dyn_into::<Ctx2d>().ok())
        } else {
            None
        };
        let overlay = overlay
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|c| c.dyn_into::<Ctx2d>().ok())
            .expect("2d overlay");
        Renderer {
            canvas,
            overlay,
            gl,
            ctx2d,
            camera: Camera {
                cx: 0.0,
                cy: 0.0,
                zoom: 1.0,
            },
            motion: true,
            frozen_time: 0.0,
            labels_key: None,
            scene_version: 0,
            dpr: 1.0,
            label_w: Vec::new(),
            label_order: Vec::new(),
            label_boxes: Vec::new(),
            report: wants_report(),
            first_frame_done: false,
            frame_ms: Vec::new(),
        }
    }

    pub fn backend(&self) -> &'static str {
        if self.gl.is_some() {
            "webgl2"
        } else {
            "canvas2d"
        }
    }

    /// Uploads the scene's instance data (on graph/layout change, never per frame).
    pub fn upload(&mut self, s: &Scene) {
        self.scene_version += 1;
        self.measure_labels(s);
        let Some(g) = &mut self.gl else { return };
        let mut pdata = Vec::with_capacity(s.particles.len() * 13);
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
        g.edges.count = ecount;
        g.upload(&g.edges.inst, &edata);
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
        g.nodes.count = s.graph.nodes.len() as i32;
        g.upload(&g.nodes.inst, &ndata);
    }

    fn resize(&mut self) -> (f32, f32) {
        let w = (self.canvas.client_width() as f32 * self.dpr).max(1.0);
        let h = (self.canvas.client_height() as f32 * self.dpr).max(1.0);
        if self.canvas.width() != w as u32 || self.canvas.height() != h as u32 {
            self.canvas.set_width(w as u32);
            self.canvas.set_height(h as u32);
            let o = self.overlay.canvas().unwrap();
            o.set_width(w as u32);
            o.set_height(h as u32);
            self.labels_key = None;
        }
        (w, h)
    }

    /// One frame at time `t` (seconds).
    pub fn frame(&mut self, s: &Scene, t: f64) {
        let started = now_ms();
        self.draw_frame(s, t);
        if !self.first_frame_done && !s.graph.nodes.is_empty() {
            // The first frame with nodes in it: the browser tests time navigation → map.
            self.first_frame_done = true;
            let _ = self
                .canvas
                .set_attribute("data-first-frame-ms", &format!("{:.1}", now_ms()));
        }
        if self.report {
            self.frame_ms.push(now_ms() - started);
            if self.frame_ms.len().is_multiple_of(30) {
                let _ = self
                    .canvas
                    .set_attribute("data-frame-stats", &frame_stats(&self.frame_ms));
            }
            if self.frame_ms.len() >= 3000 {
                self.frame_ms.drain(..1500);
            }
        }
    }

    fn draw_frame(&mut self, s: &Scene, t: f64) {
        let t = if self.motion {
            self.frozen_time = t;
            t
        } else {
            // Reduced motion: no particle flow, layout changes apply at once.
            self.frozen_time
        };
        let (w, h) = self.resize();
        let cam = self.camera;
        if let Some(g) = &self.gl {
            g.draw(cam, self.dpr, w, h, t, s.anim_start, self.motion);
        } else if let Some(ctx) = &self.ctx2d {
            draw_2d(ctx, s, cam, self.dpr, w, h, t, self.motion);
        }
        let animating = t - s.anim_start < ANIM_SECS + 0.05;
        let key = (cam, self.scene_version, animating);
        if animating || self.labels_key != Some(key) {
            self.draw_labels(s, t, w, h);
            self.labels_key = Some(key);
        }
    }

    /// Label widths at the label font and the priority order (once per graph update).
    fn measure_labels(&mut self, s: &Scene) {
        let o = &self.overlay;
        o.set_font(&label_font(self.dpr));
        self.label_w = s
            .graph
            .nodes
            .iter()
            .map(|n| {
                o.measure_text(&n.name)
                    .map(|m| m.width() as f32)
                    .unwrap_or(n.name.len() as f32 * 7.0 * self.dpr)
            })
            .collect();
        self.label_order = labels::priority(&s.graph, s.selected.as_deref());
    }

    /// Labels by level of detail: in priority order, each where it overlaps no label already
    /// drawn, up to the screen's budget (see `labels`).
    fn draw_labels(&mut self, s: &Scene, t: f64, w: f32, h: f32) {
        let o = &self.overlay;
        o.clear_rect(0.0, 0.0, w as f64, h as f64);
        let cam = self.camera;
        let dpr = self.dpr;
        o.set_font(&label_font(dpr));
        o.set_text_align("center");
        let line = 14.0 * dpr;
        let candidates = self.label_order.iter().filter_map(|&i| {
            let r_px = (s.radius[i] * cam.zoom).max(3.0) * dpr;
            let (x, y) = world_to_screen(cam, dpr, w, h, s.pos_at(i, t));
            if x < -50.0 || y < -50.0 || x > w + 50.0 || y > h + 50.0 {
                return None;
            }
            let lw = self.label_w.get(i).copied().unwrap_or(60.0 * dpr) + 4.0 * dpr;
            let r = Rect {
                x: x - lw / 2.0,
                y: y + r_px + 2.0 * dpr,
                w: lw,
                h: line,
            };
            // A name cut by the canvas edge is not legible: whole boxes only.
            (r.x >= 0.0 && r.y >= 0.0 && r.x + r.w <= w && r.y + r.h <= h).then_some((i, r))
        });
        let placed = labels::place(candidates, labels::budget(w, h, dpr));
        // A dark plate under each name keeps it readable over edges and particles.
        o.set_fill_style_str("rgba(11,15,23,0.72)");
        for &(_, r) in &placed {
            o.fill_rect(r.x as f64, r.y as f64, r.w as f64, r.h as f64);
        }
        for &(i, r) in &placed {
            let n = &s.graph.nodes[i];
            o.set_fill_style_str(
                if s.dimmed.contains(&n.id) || s.marks.node_vanished(&n.id) {
                    "#5a6577"
                } else {
                    "#d8e2ee"
                },
            );
            let _ = o.fill_text(
                &n.name,
                (r.x + r.w / 2.0) as f64,
                (r.y + line - 3.0 * dpr) as f64,
            );
        }
        // Notice badges for every visible node in warning/danger (labelled or not).
        for (i, n) in s.graph.nodes.iter().enumerate() {
            if n.health == Health::Normal || s.marks.node_vanished(&n.id) {
                continue;
            }
            let r_px = s.radius[i] * cam.zoom * dpr;
            if r_px < 5.0 * dpr {
                continue;
            }
            let (x, y) = world_to_screen(cam, dpr, w, h, s.pos_at(i, t));
            if x < -20.0 || y < -20.0 || x > w + 20.0 || y > h + 20.0 {
                continue;
            }
            o.set_fill_style_str(if n.health == Health::Danger {
                "#ee4540"
            } else {
                "#faab2e"
            });
            o.begin_path();
            let (bx, by) = ((x + r_px * 0.75) as f64, (y - r_px * 0.75) as f64);
            let _ = o.arc(bx, by, (7.0 * dpr) as f64, 0.0, std::f64::consts::TAU);
            o.fill();
            o.set_fill_style_str("#0b0f17");
            let _ = o.fill_text("!", bx, by + (4.0 * dpr) as f64);
        }
        draw_notices(o, s, cam, dpr, w, h, t);
        self.label_boxes = placed;
        if self.report {
            self.publish_geometry(s, t, w, h);
        }
    }

    /// `data-geometry` on the overlay: the scene version (one per graph applied), the viewport,
    /// every node's centre and drawn radius and every drawn label box with its text, in CSS px
    /// (what the browser tests measure legibility on).
    fn publish_geometry(&self, s: &Scene, t: f64, w: f32, h: f32) {
        use std::fmt::Write as _;
        let (cam, dpr) = (self.camera, self.dpr);
        let mut out = format!(
            r#"{{"version":{},"w":{:.1},"h":{:.1},"nodes":["#,
            self.scene_version,
            w / dpr,
            h / dpr
        );
        for i in 0..s.graph.nodes.len() {
            let (x, y) = world_to_screen(cam, dpr, w, h, s.pos_at(i, t));
            let r = (s.radius[i] * cam.zoom).max(3.0);
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(out, "{sep}[{:.1},{:.1},{:.1}]", x / dpr, y / dpr, r);
        }
        out.push_str(r#"],"labels":["#);
        for (k, (i, r)) in self.label_boxes.iter().enumerate() {
            let sep = if k == 0 { "" } else { "," };
            let name = serde_json::to_string(&s.graph.nodes[*i].name).unwrap_or_default();
            let _ = write!(
                out,
                "{sep}[{:.1},{:.1},{:.1},{:.1},{name}]",
                r.x / dpr,
                r.y / dpr,
                r.w / dpr,
                r.h / dpr
            );
        }
        // The ids drawn with a checks notice (ring on a node, diamond on an edge).
        let (nn, ne) = s.notice_marks();
        let ids = |v: Vec<&str>| serde_json::to_string(&v).unwrap_or_default();
        let _ = write!(
            out,
            r#"],"notice_nodes":{},"notice_edges":{}}}"#,
            ids(nn.iter().map(|&i| s.graph.nodes[i].id.as_str()).collect()),
            ids(ne.iter().map(|&i| s.graph.edges[i].id.as_str()).collect())
        );
        if let Some(c) = self.overlay.canvas() {
            let _ = c.set_attribute("data-geometry", &out);
        }
    }

    pub fn size_css(&self) -> (f32, f32) {
        (
            self.canvas.client_width() as f32,
            self.canvas.client_height() as f32,
        )
    }

    /// Centres and zooms so that every node is visible.
    pub fn fit(&mut self, s: &Scene) {
        if s.to.is_empty() {
            return;
        }
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in &s.to {
            x0 = x0.min(p.x);
            y0 = y0.min(p.y);
            x1 = x1.max(p.x);
            y1 = y1.max(p.y);
        }
        let (w, h) = self.size_css();
        let (zoom, cy) = fit_zoom(
            w,
            h,
            (x0, y0, x1, y1),
            s.radius.iter().fold(0.0, |m, r| m.max(*r)),
        );
        self.camera = Camera {
            cx: (x0 + x1) / 2.0,
            cy,
            zoom,
        };
    }

    pub fn screen_to_world(&self, sx: f32, sy: f32) -> Pos {
        let (w, h) = self.size_css();
        Pos {
            x: (sx - w / 2.0) / self.camera.zoom + self.camera.cx,
            y: (sy - h / 2.0) / self.camera.zoom + self.camera.cy,
        }
    }

    /// The node under a CSS-pixel point, else the nearest edge within a few pixels.
    pub fn pick(&self, s: &Scene, sx: f32, sy: f32, t: f64) -> Option<Hit> {
        let p = self.screen_to_world(sx, sy);
        let zoom = self.camera.zoom;
        let mut best: Option<(f32, usize)> = None;
        for i in 0..s.graph.nodes.len() {
            let q = s.pos_at(i, t);
            let d = ((q.x - p.x).powi(2) + (q.y - p.y).powi(2)).sqrt();
            let r = (s.radius[i]).max(6.0 / zoom);
            if d <= r && best.is_none_or(|b| d < b.0) {
                best = Some((d, i));
            }
        }
        if let Some((_, i)) = best {
            return Some(Hit::Node(i));
        }
        let tol = 6.0 / zoom;
        let mut best: Option<(f32, usize)> = None;
        for (ei, &(a, b)) in s.edge_ends.iter().enumerate() {
            if a == usize::MAX || b == usize::MAX {
                continue;
            }
            let (pa, pb) = (s.pos_at(a, t), s.pos_at(b, t));
            let d = match s.bend.get(ei) {
                Some(&bend) if bend != 0.0 => route::curve_distance(p, pa, pb, bend),
                _ => route::segment_distance(p, pa, pb),
            };
            if d <= tol && best.is_none_or(|bst| d < bst.0) {
                best = Some((d, ei));
            }
        }
        best.map(|(_, e)| Hit::Edge(e))
    }
}

/// The zoom (and centre y) at which the node box `b` fills a `w`×`h` CSS-px canvas: every node
/// disc inside it (the box grows by the largest radius), a margin of 30 px on the sides for the
/// half-widths of edge labels and 24 px below for the bottom row's names. The panels sit beside
/// the canvas, so the whole canvas is the map's.
pub fn fit_zoom(w: f32, h: f32, b: (f32, f32, f32, f32), max_r: f32) -> (f32, f32) {
    let (dx, dy) = (b.2 - b.0 + 2.0 * max_r + 1.0, b.3 - b.1 + 2.0 * max_r + 1.0);
    let zoom = ((w - 60.0).max(80.0) / dx)
        .min((h - 40.0).max(80.0) / dy)
        .clamp(0.02, 2.0);
    // Centred, shifted up by half the room kept for the labels under the bottom row.
    (zoom, (b.1 + b.3) / 2.0 + 8.0 / zoom)
}

/// Checks notices (a firing rule on a node or an edge, Vizceral's notices): a ring around
/// the node and a diamond at the edge's midpoint, in the warning colour, drawn on the overlay
/// over everything else so a violated rule is visible whatever the node's own health.
fn draw_notices(o: &Ctx2d, s: &Scene, cam: Camera, dpr: f32, w: f32, h: f32, t: f64) {
    let (nodes, edges) = s.notice_marks();
    if nodes.is_empty() && edges.is_empty() {
        return;
    }
    let inside = |x: f32, y: f32| x > -20.0 && y > -20.0 && x < w + 20.0 && y < h + 20.0;
    o.set_stroke_style_str("#faab2e");
    o.set_fill_style_str("#faab2e");
    o.set_line_width((2.5 * dpr) as f64);
    for i in nodes {
        let (x, y) = world_to_screen(cam, dpr, w, h, s.pos_at(i, t));
        if !inside(x, y) {
            continue;
        }
        let r = ((s.radius[i] * cam.zoom).max(3.0) + 5.0) * dpr;
        o.begin_path();
        let _ = o.arc(x as f64, y as f64, r as f64, 0.0, std::f64::consts::TAU);
        o.stroke();
    }
    for ei in edges {
        let (a, b) = s.edge_ends[ei];
        let (pa, pb) = (s.pos_at(a, t), s.pos_at(b, t));
        let mid = route::curve_point(pa, pb, s.bend[ei], 0.5);
        let (x, y) = world_to_screen(cam, dpr, w, h, mid);
        if !inside(x, y) {
            continue;
        }
        let d = (6.0 * dpr) as f64;
        let (x, y) = (x as f64, y as f64);
        o.begin_path();
        o.move_to(x, y - d);
        o.line_to(x + d, y);
        o.line_to(x, y + d);
        o.line_to(x - d, y);
        o.close_path();
        o.fill();
    }
}

/// Whether the page asked the renderer to publish its geometry and frame figures.
fn wants_report() -> bool {
    let Some(w) = web_sys::window() else {
        return false;
    };
    js_sys::Reflect::get(&w, &"orreryGeometry".into()).is_ok_and(|v| v.is_truthy())
        || w.location()
            .search()
            .is_ok_and(|q| q.contains("geometry=1"))
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

fn label_font(dpr: f32) -> String {
    format!("{}px system-ui, sans-serif", (12.0 * dpr) as i32)
}

/// Frame CPU figures (ms) as JSON: count, mean, p50, p95, max.
fn frame_stats(ms: &[f64]) -> String {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    format!(
        r#"{{"frames":{},"mean_ms":{:.3},"p50_ms":{:.3},"p95_ms":{:.3},"max_ms":{:.3}}}"#,
        v.len(),
        v.iter().sum::<f64>() / v.len() as f64,
        q(0.5),
        q(0.95),
        q(1.0)
    )
}

fn world_to_screen(cam: Camera, dpr: f32, w: f32, h: f32, p: Pos) -> (f32, f32) {
    (
        (p.x - cam.cx) * cam.zoom * dpr + w / 2.0,
        (p.y - cam.cy) * cam.zoom * dpr + h / 2.0,
    )
}

#[allow(clippy::too_many_arguments)]
fn draw_2d(ctx: &Ctx2d, s: &Scene, cam: Camera, dpr: f32, w: f32, h: f32, t: f64, motion: bool) {
    ctx.set_fill_style_str("#0b0f17");
    ctx.fill_rect(0.0, 0.0, w as f64, h as f64);
    let pos: Vec<(f32, f32)> = (0..s.graph.nodes.len())
        .map(|i| world_to_screen(cam, dpr, w, h, s.pos_at(i, t)))
        .collect();
    let max_rps = s
        .graph
        .edges
        .iter()
        .map(|e| e.metrics.rps)
        .fold(0.0f64, f64::max);
    let crowded = s.graph.edges.len() >= scene::CROWDED_EDGES;
    for ei in scene::edge_draw_order(&s.graph, &s.marks) {
        let (e, (a, b)) = (&s.graph.edges[ei], s.edge_ends[ei]);
        if a == usize::MAX || b == usize::MAX {
            continue;
        }
        let state = s.marks.edge_state(e);
        let c = crate::encoding::health_rgb(state);
        let (alpha, width) = scene::edge_style(state, e.metrics.rps, max_rps, crowded);
        ctx.set_line_width((width * dpr) as f64);
        ctx.set_stroke_style_str(&format!(
            "rgba({},{},{},{})",
            (c[0] * 255.0) as u8,
            (c[1] * 255.0) as u8,
            (c[2] * 255.0) as u8,
            alpha
        ));
        let dash = js_sys::Array::new();
        if state == "vanished" {
            dash.push(&(6.0 * dpr as f64).into());
            dash.push(&(6.0 * dpr as f64).into());
        }
        let _ = ctx.set_line_dash(&dash);
        ctx.begin_path();
        ctx.move_to(pos[a].0 as f64, pos[a].1 as f64);
        let (dx, dy) = (pos[b].0 - pos[a].0, pos[b].1 - pos[a].1);
        let bend = s.bend[ei];
        ctx.quadratic_curve_to(
            ((pos[a].0 + pos[b].0) / 2.0 - dy * bend) as f64,
            ((pos[a].1 + pos[b].1) / 2.0 + dx * bend) as f64,
            pos[b].0 as f64,
            pos[b].1 as f64,
        );
        ctx.stroke();
    }
    // The CPU moves particles here, so draw at most 20,000 (evenly sampled).
    let step = (s.particles.len() / 20_000).max(1);
    let size = (2.0 * dpr) as f64;
    for (k, &(ei, phase, speed, err, _)) in s.particles.iter().enumerate().step_by(step) {
        let _ = k;
        let (a, b) = s.edge_ends[ei as usize];
        let f = (phase as f64 + if motion { t * speed as f64 } else { 0.0 }).fract() as f32;
        let at = |k: usize| Pos {
            x: pos[k].0,
            y: pos[k].1,
        };
        let Pos { x, y } = route::curve_point(at(a), at(b), s.bend[ei as usize], f);
        ctx.set_fill_style_str(if err { "#ff4038" } else { "#b8e0ff" });
        ctx.fill_rect(x as f64 - size / 2.0, y as f64 - size / 2.0, size, size);
    }
    for (i, n) in s.graph.nodes.iter().enumerate() {
        let r = (s.radius[i] * cam.zoom * dpr).max(3.0 * dpr) as f64;
        ctx.set_fill_style_str("#121c2b");
        ctx.begin_path();
        let _ = ctx.arc(
            pos[i].0 as f64,
            pos[i].1 as f64,
            r,
            0.0,
            std::f64::consts::TAU,
        );
        ctx.fill();
        ctx.set_line_width((2.0 * dpr) as f64);
        let _ = ctx.set_line_dash(&js_sys::Array::new());
        let health = if s.marks.node_vanished(&n.id) {
            "vanished"
        } else {
            n.health.as_str()
        };
        ctx.set_stroke_style_str(&crate::encoding::css(crate::encoding::health_rgb(health)));
        ctx.stroke();
    }
}

impl Gl {
    fn new(gl: GL) -> Result<Self, String> {
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
            &[4, 4, 4, 1],
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
        Ok(Gl {
            gl,
            particles,
            edges,
            nodes,
        })
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
    fn draw(&self, cam: Camera, dpr: f32, w: f32, h: f32, t: f64, anim: f64, motion: bool) {
        let gl = &self.gl;
        gl.viewport(0, 0, w as i32, h as i32);
        gl.clear_color(0.043, 0.059, 0.09, 1.0);
        gl.clear(GL::COLOR_BUFFER_BIT);
        // Seconds since page load: float32 keeps ~10 ms precision for a day, and one clock for
        // everything keeps particles flowing across graph updates.
        let rt = t as f32;
        for (p, extra) in [(&self.edges, 0), (&self.particles, 1), (&self.nodes, 2)] {
            if p.count == 0 {
                continue;
            }
            gl.use_program(Some(&p.prog));
            let u = |name: &str| gl.get_uniform_location(&p.prog, name);
            gl.uniform4f(u("u_view").as_ref(), cam.cx, cam.cy, cam.zoom, dpr);
            gl.uniform2f(u("u_res").as_ref(), w, h);
            gl.uniform1f(u("u_time").as_ref(), rt);
            gl.uniform2f(
                u("u_anim").as_ref(),
                anim as f32,
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
            gl.draw_arrays_instanced(GL::TRIANGLE_STRIP, 0, p.verts, p.count);
        }
        gl.bind_vertex_array(None);
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
        inst,
        count: 0,
        verts: (corners.len() / 2) as i32,
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
