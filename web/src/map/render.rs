//! Draws a `Scene`: WebGL2 with instanced nodes, edges and particles (`gl.rs`, motion in the
//! shaders) — in a worker on an `OffscreenCanvas` where the browser can (`offscreen.rs`), else
//! on the page's thread — or the 2D-canvas fallback where WebGL2 is missing (`canvas2d.rs`). Labels go on a
//! 2D overlay, redrawn only when the camera or layout moves. Fit and hit-testing live here (the
//! camera itself in `camera.rs`); what the tests read back is published by `geometry.rs`. This
//! module is the top of the map's drawing: the backends and the report import none of it.

use super::camera::{Camera, world_to_screen};
use super::geometry::Drawn;
use super::gl::{Gl, Instances};
use super::labels::{self, Rect};
use super::offscreen::Offscreen;
use super::pace::{Cadence, Pacer};
use super::scene::{ANIM_SECS, Scene};
use super::{canvas2d, geometry, route};
use crate::api::Health;
use crate::layout::Pos;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d as Ctx2d, HtmlCanvasElement, WebGl2RenderingContext as GL};

/// A self-rescheduling requestAnimationFrame callback.
pub type FrameLoop =
    std::rc::Rc<std::cell::RefCell<Option<wasm_bindgen::closure::Closure<dyn FnMut(f64)>>>>;

pub enum Hit {
    Node(usize),
    Edge(usize),
}

pub struct Renderer {
    canvas: HtmlCanvasElement,
    overlay: Ctx2d,
    gl: Option<Gl>,
    /// WebGL2 in a worker (then `gl` is None).
    offscreen: Option<Offscreen>,
    /// The drawing buffer's size last set (device px).
    size: (u32, u32),
    ctx2d: Option<Ctx2d>,
    pub camera: Camera,
    pub motion: bool,
    frozen_time: f64,
    labels_key: Option<(Camera, u64, bool)>,
    /// What the page-thread WebGL renderer last drew of a map with nothing on it (camera,
    /// scene version, canvas size): an empty map is drawn once per change, not every frame (as
    /// the worker does; on SwiftShader an empty 1280×800 map at every frame kept ~0.6 of a core
    /// busy).
    drawn_empty: Option<(Camera, u64, u32, u32)>,
    scene_version: u64,
    pub dpr: f32,
    /// Label widths (device px at the label font) and priority order, refreshed on upload.
    label_w: Vec<f32>,
    label_order: Vec<usize>,
    /// Measured label widths by name at `label_font(dpr)` of the dpr kept with them: a live
    /// update measures only new names (2,000 `measureText` calls were ~10 ms per update).
    label_cache: (u32, std::collections::HashMap<String, f32>),
    /// Labels drawn by the last label pass (device px).
    pub label_boxes: Vec<(usize, Rect)>,
    /// `?geometry=1` (or `window.orreryGeometry = true` set before the app starts, as the
    /// browser tests do — the app rewrites its URL): publish node and label boxes on the overlay (`data-geometry`) and frame
    /// CPU figures on the canvas (`data-frame-stats`) for the browser tests and benches.
    report: bool,
    first_frame_done: bool,
    frame_ms: Vec<f64>,
    /// When frame figures are published: every 10 frames (or 500 ms).
    reports: Cadence,
    /// Frames that come slowly (software WebGL on a busy CPU) draw fewer particles (WebGL on
    /// this thread; the worker paces its own frames).
    pacer: Pacer,
}

impl Renderer {
    /// The view using this renderer is gone: its worker (if any) ends once the canvas has left
    /// the document (`Offscreen::release_when_detached`).
    pub fn release(&self) {
        if self.offscreen.is_some() {
            super::offscreen::Offscreen::release_when_detached(self.canvas.clone());
        }
    }

    pub fn new(canvas: HtmlCanvasElement, overlay: HtmlCanvasElement, force_2d: bool) -> Self {
        Self::with_worker(canvas, overlay, force_2d, true)
    }

    /// WebGL on the page's thread (the bench page measures the renderer's own frame CPU there,
    /// as it always has).
    pub fn on_page_thread(
        canvas: HtmlCanvasElement,
        overlay: HtmlCanvasElement,
        force_2d: bool,
    ) -> Self {
        Self::with_worker(canvas, overlay, force_2d, false)
    }

    fn with_worker(
        canvas: HtmlCanvasElement,
        overlay: HtmlCanvasElement,
        force_2d: bool,
        worker: bool,
    ) -> Self {
        // `?renderer=page`: WebGL2 on the page's thread even where a worker could draw (to
        // compare the two).
        // (or `window.orreryRenderer = "page"` set before the app starts, as the browser tests
        // do: the app rewrites its URL).
        let page = web_sys::window().is_some_and(|w| {
            w.location()
                .search()
                .is_ok_and(|q| q.contains("renderer=page"))
                || js_sys::Reflect::get(&w, &"orreryRenderer".into())
                    .is_ok_and(|v| v.as_string().as_deref() == Some("page"))
        });
        let offscreen = if force_2d || page || !worker {
            None
        } else {
            Offscreen::new(&canvas)
        };
        let gl = if force_2d || offscreen.is_some() {
            None
        } else {
            canvas
                .get_context_with_context_options("webgl2", &gl_options())
                .ok()
                .flatten()
                .and_then(|c| c.dyn_into::<GL>().ok())
                .and_then(|gl| Gl::new(gl).ok())
        };
        let ctx2d = if gl.is_none() && offscreen.is_none() {
            canvas
                .get_context("2d")
                .ok()
                .flatten()
                .and_then(|c| c.dyn_into::<Ctx2d>().ok())
        } else {
            None
        };
        // Where WebGL draws (the browser tests check that the page's thread does not).
        let thread = match (&offscreen, &gl) {
            (Some(_), _) => "worker",
            (_, Some(_)) => "page",
            _ => "none",
        };
        let _ = canvas.set_attribute("data-gl-thread", thread);
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
            offscreen,
            size: (0, 0),
            ctx2d,
            camera: Camera {
                cx: 0.0,
                cy: 0.0,
                zoom: 1.0,
            },
            motion: true,
            frozen_time: 0.0,
            labels_key: None,
            drawn_empty: None,
            scene_version: 0,
            dpr: 1.0,
            label_w: Vec::new(),
            label_cache: (0, std::collections::HashMap::new()),
            label_order: Vec::new(),
            label_boxes: Vec::new(),
            report: geometry::wants_report(),
            first_frame_done: false,
            frame_ms: Vec::new(),
            reports: Cadence::new(10),
            pacer: Pacer::new(super::pace::PAGE_PAUSE_MS),
        }
    }

    pub fn backend(&self) -> &'static str {
        if self.gl.is_some() || self.offscreen.is_some() {
            "webgl2"
        } else {
            "canvas2d"
        }
    }

    /// Uploads the scene's instance data (on graph/layout change, never per frame).
    pub fn upload(&mut self, s: &Scene) {
        self.upload_scene(s, false);
    }

    /// A graph update from the live stream, first step: the labels' widths and order, which
    /// index the scene's nodes and so are taken with the scene, in the same task.
    pub fn take_graph(&mut self, s: &Scene) {
        self.scene_version += 1;
        self.measure_labels(s);
    }

    /// Second step, a task later: the instance data. A change of look only (colours, widths,
    /// rings; nothing moved) reaches the cached layers over a few frames instead of in one
    /// long one (see `gl::LayerCache`). Changes the user makes (selection, drag) use `upload`
    /// and show at once.
    pub fn upload_graph(&mut self, s: &Scene) {
        self.upload_instances(s, true);
    }

    fn upload_scene(&mut self, s: &Scene, live: bool) {
        self.take_graph(s);
        self.upload_instances(s, live);
    }

    fn upload_instances(&mut self, s: &Scene, live: bool) {
        if let Some(o) = &self.offscreen {
            o.upload(Instances::build(s, live));
        } else if let Some(g) = &mut self.gl {
            g.upload(Instances::build(s, live));
        }
    }

    fn resize(&mut self) -> (f32, f32) {
        let w = (self.canvas.client_width() as f32 * self.dpr).max(1.0);
        let h = (self.canvas.client_height() as f32 * self.dpr).max(1.0);
        if self.size != (w as u32, h as u32) {
            self.size = (w as u32, h as u32);
            // A canvas handed to the worker is sized there (its element refuses it).
            if self.offscreen.is_none() {
                self.canvas.set_width(w as u32);
                self.canvas.set_height(h as u32);
            }
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
        if let Some(g) = &mut self.gl {
            let total = g.particle_count();
            if !self.pacer.pace(started, total, &mut g.particle_cap) {
                return;
            }
        }
        self.draw_frame(s, t);
        if self.offscreen.is_some() {
            self.take_reported();
            return;
        }
        if !self.first_frame_done && !s.graph.nodes.is_empty() {
            // The first frame with nodes in it: the browser tests time navigation → map.
            self.first_frame_done = true;
            super::perf::measure("orrery:first-draw", started);
            self.first_frame(now_ms());
        }
        if self.report {
            let ended = now_ms();
            self.frame_ms.push(ended - started);
            if self.reports.drawn(ended, false) {
                self.report_frames();
            }
        }
    }

    fn first_frame(&self, at: f64) {
        super::perf::mark("orrery:first-frame");
        let _ = self
            .canvas
            .set_attribute("data-first-frame-ms", &format!("{at:.1}"));
    }

    /// Frame CPU, particles, and (for the browser tests) frames drawn and full-screen copies
    /// among them: `data-gl-frames` = "frames copies".
    fn report_frames(&mut self) {
        let _ = self.canvas.set_attribute(
            "data-frame-stats",
            &geometry::frame_stats(&self.frame_ms, self.particles_drawn()),
        );
        let (frames, copies) = match (&self.offscreen, &self.gl) {
            (Some(o), _) => {
                let r = o.reported.borrow();
                (r.frames, r.copies)
            }
            (_, Some(g)) => (g.frames_drawn, g.copies),
            _ => (0, 0),
        };
        let _ = self
            .canvas
            .set_attribute("data-gl-frames", &format!("{frames} {copies}"));
        if self.frame_ms.len() >= 3000 {
            self.frame_ms.drain(..1500);
        }
    }

    /// What the worker reported since the last frame: its first frame with nodes, its frame
    /// CPU (its User Timing entries are already on the page's timeline, see `offscreen.rs`).
    fn take_reported(&mut self) {
        let Some(o) = &self.offscreen else { return };
        let (first, times) = {
            let mut r = o.reported.borrow_mut();
            (r.first.take(), std::mem::take(&mut r.frame_ms))
        };
        if let Some((start, end)) = first
            && !self.first_frame_done
        {
            self.first_frame_done = true;
            if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
                super::perf::record(&p, "orrery:first-draw", start, end);
            }
            self.first_frame(end);
        }
        if self.report && !times.is_empty() {
            self.frame_ms.extend(times);
            self.report_frames();
        }
    }

    /// Particles drawn per frame now.
    pub fn particles_drawn(&self) -> i32 {
        if let Some(o) = &self.offscreen {
            return o.reported.borrow().particles;
        }
        self.gl.as_ref().map_or(0, |g| g.particles_drawn())
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
        if let Some(o) = &mut self.offscreen {
            o.view(super::js::View {
                cam,
                dpr: self.dpr,
                w: w as u32,
                h: h as u32,
                anim: s.anim_start,
                motion: self.motion,
                frozen: t,
            });
        } else if let Some(g) = &mut self.gl {
            let empty = s.graph.nodes.is_empty() && g.particle_count() == 0;
            let key = Some((cam, self.scene_version, w as u32, h as u32));
            if !empty || self.drawn_empty != key {
                g.draw(cam, self.dpr, w, h, t, s.anim_start, self.motion);
            }
            self.drawn_empty = if empty { key } else { None };
        } else if let Some(ctx) = &self.ctx2d {
            canvas2d::draw_2d(ctx, s, cam, self.dpr, w, h, t, self.motion);
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
        let (dpr_bits, cache) = &mut self.label_cache;
        if *dpr_bits != self.dpr.to_bits() || cache.len() > 4 * s.graph.nodes.len() + 1000 {
            *dpr_bits = self.dpr.to_bits();
            cache.clear();
        }
        let dpr = self.dpr;
        self.label_w = s
            .graph
            .nodes
            .iter()
            .map(|n| {
                if let Some(w) = cache.get(&n.name) {
                    return *w;
                }
                let w = o
                    .measure_text(&n.name)
                    .map(|m| m.width() as f32)
                    .unwrap_or(n.name.len() as f32 * 7.0 * dpr);
                cache.insert(n.name.clone(), w);
                w
            })
            .collect();
        self.label_order = labels::priority(&s.graph, s.selected.as_deref());
    }

    /// Labels by level of detail: in priority order, each where it overlaps no label already
    /// drawn, up to the screen's budget (see `labels`).
    fn draw_labels(&mut self, s: &Scene, t: f64, w: f32, h: f32) {
        let started = now_ms();
        self.place_and_draw_labels(s, t, w, h);
        super::perf::measure("orrery:labels", started);
    }

    fn place_and_draw_labels(&mut self, s: &Scene, t: f64, w: f32, h: f32) {
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
            let drawn = Drawn {
                camera: self.camera,
                dpr: self.dpr,
                w,
                h,
                scene_version: self.scene_version,
                label_boxes: &self.label_boxes,
            };
            geometry::publish_geometry(&self.overlay, &drawn, s, t);
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

/// The WebGL2 context's attributes. No multisampling: the nodes and particles are
/// smoothed in their shaders and the settled edges come from the (single-sampled) cached
/// layer, while a 4× multisampled canvas made a software renderer (SwiftShader, a GPU-less
/// machine) write and resolve four samples of every pixel each frame. Opaque (`alpha: false`:
/// the map clears to its background, so the compositor need not blend the canvas) and no
/// depth buffer (the passes are drawn in order).
fn gl_options() -> wasm_bindgen::JsValue {
    let o = js_sys::Object::new();
    for (k, v) in [("antialias", false), ("alpha", false), ("depth", false)] {
        let _ = js_sys::Reflect::set(&o, &k.into(), &v.into());
    }
    o.into()
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

fn label_font(dpr: f32) -> String {
    format!("{}px system-ui, sans-serif", (12.0 * dpr) as i32)
}
