//! The geometry hook for the browser tests and benches (`?geometry=1`, or
//! `window.orreryGeometry = true` set before the app starts): what was drawn, published on the
//! canvases — node centres and radii, label boxes, notice marks (`data-geometry` on the overlay)
//! and frame CPU figures (`data-frame-stats` on the canvas).

use super::camera::{Camera, world_to_screen};
use super::labels::Rect;
use super::scene::Scene;
use web_sys::CanvasRenderingContext2d as Ctx2d;

/// Whether the page asked the renderer to publish its geometry and frame figures.
pub(super) fn wants_report() -> bool {
    let Some(w) = web_sys::window() else {
        return false;
    };
    js_sys::Reflect::get(&w, &"orreryGeometry".into()).is_ok_and(|v| v.is_truthy())
        || w.location()
            .search()
            .is_ok_and(|q| q.contains("geometry=1"))
}

/// What the renderer drew in its last label pass, as the report needs it: the renderer hands
/// these in, so this module does not reach into it (`render.rs` stays the only one on top).
pub(super) struct Drawn<'a> {
    pub camera: Camera,
    pub dpr: f32,
    /// The canvas in device px.
    pub w: f32,
    pub h: f32,
    pub scene_version: u64,
    /// Labels drawn (device px).
    pub label_boxes: &'a [(usize, Rect)],
}

/// `data-geometry` on the overlay: the scene version (one per graph applied), the viewport,
/// every node's centre and drawn radius and every drawn label box with its text, in CSS px
/// (what the browser tests measure legibility on).
pub(super) fn publish_geometry(overlay: &Ctx2d, d: &Drawn, s: &Scene, t: f64) {
    use std::fmt::Write as _;
    let (cam, dpr, w, h) = (d.camera, d.dpr, d.w, d.h);
    let mut out = format!(
        r#"{{"version":{},"w":{:.1},"h":{:.1},"nodes":["#,
        d.scene_version,
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
    for (k, (i, r)) in d.label_boxes.iter().enumerate() {
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
    if let Some(c) = overlay.canvas() {
        let _ = c.set_attribute("data-geometry", &out);
    }
}

/// Frame CPU figures (ms) as JSON: count, mean, p50, p95, max; and the particles drawn now.
pub(super) fn frame_stats(ms: &[f64], particles: i32) -> String {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    format!(
        r#"{{"frames":{},"mean_ms":{:.3},"p50_ms":{:.3},"p95_ms":{:.3},"max_ms":{:.3},"particles":{particles}}}"#,
        v.len(),
        v.iter().sum::<f64>() / v.len() as f64,
        q(0.5),
        q(0.95),
        q(1.0)
    )
}
