//! Where the map looks: the camera and the one world → screen mapping that the renderer, both
//! drawing backends and the geometry report share. It is its own module so that those leaves
//! take it from here, not from `render.rs`, which sits on top of them.

use crate::layout::Pos;

/// The view onto the world: its centre (world units) and zoom (CSS px per world unit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    pub cx: f32,
    pub cy: f32,
    pub zoom: f32,
}

/// A world position on a canvas of `w` × `h` device px at device-pixel ratio `dpr`.
pub fn world_to_screen(cam: Camera, dpr: f32, w: f32, h: f32, p: Pos) -> (f32, f32) {
    (
        (p.x - cam.cx) * cam.zoom * dpr + w / 2.0,
        (p.y - cam.cy) * cam.zoom * dpr + h / 2.0,
    )
}
