//! The 2D-canvas fallback where WebGL2 is missing (or `?renderer=2d`): the same scene, edges in
//! draw order, particles moved on the CPU (sampled down to 20,000), nodes with their health ring.

use super::camera::{Camera, world_to_screen};
use super::route;
use super::scene::Scene;
use crate::layout::Pos;
use web_sys::CanvasRenderingContext2d as Ctx2d;

#[allow(clippy::too_many_arguments)]
pub(super) fn draw_2d(
    ctx: &Ctx2d,
    s: &Scene,
    cam: Camera,
    dpr: f32,
    w: f32,
    h: f32,
    t: f64,
    motion: bool,
) {
    ctx.set_fill_style_str("#0b0f17");
    ctx.fill_rect(0.0, 0.0, w as f64, h as f64);
    let pos: Vec<(f32, f32)> = (0..s.graph.nodes.len())
        .map(|i| world_to_screen(cam, dpr, w, h, s.pos_at(i, t)))
        .collect();
    for se in s.styled_edges() {
        let (ei, (a, b), state) = (se.index, se.ends, se.state);
        let (alpha, width) = (se.alpha, se.width);
        let c = crate::encoding::health_rgb(state);
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
