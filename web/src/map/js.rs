//! Property access on plain JS objects (messages between the page and the renderer's worker,
//! objects without bindings such as `OffscreenCanvas` and `Worker`), shared by both sides.

use super::camera::Camera;
use js_sys::{Object, Reflect};
use wasm_bindgen::JsValue;

/// `o[k]`, undefined when it cannot be read.
pub(super) fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &k.into()).unwrap_or(JsValue::UNDEFINED)
}

/// `o[k]` as a number (0 when it is not one).
pub(super) fn num(o: &JsValue, k: &str) -> f64 {
    get(o, k).as_f64().unwrap_or(0.0)
}

/// `o[k] = v`.
pub(super) fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(o, &k.into(), &v.into());
}

/// The `view` message: what the page asks the map's worker to draw. Written and read only
/// here, so the two sides cannot disagree on a field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct View {
    pub cam: Camera,
    /// Device-pixel ratio.
    pub dpr: f32,
    /// Canvas size in device px.
    pub w: u32,
    pub h: u32,
    /// When the layout animation started, s.
    pub anim: f64,
    pub motion: bool,
    /// The time to draw at when motion is off (reduced motion), s.
    pub frozen: f64,
}

impl View {
    pub(super) fn to_message(self) -> Object {
        let msg = Object::new();
        set(&msg, "t", "view");
        set(&msg, "cx", self.cam.cx);
        set(&msg, "cy", self.cam.cy);
        set(&msg, "zoom", self.cam.zoom);
        set(&msg, "dpr", self.dpr);
        set(&msg, "w", self.w);
        set(&msg, "h", self.h);
        set(&msg, "anim", self.anim);
        set(&msg, "motion", self.motion);
        set(&msg, "frozen", self.frozen);
        msg
    }

    pub(super) fn from_message(m: &JsValue) -> View {
        View {
            cam: Camera {
                cx: num(m, "cx") as f32,
                cy: num(m, "cy") as f32,
                zoom: num(m, "zoom") as f32,
            },
            dpr: num(m, "dpr") as f32,
            w: num(m, "w") as u32,
            h: num(m, "h") as u32,
            anim: num(m, "anim"),
            motion: get(m, "motion").is_truthy(),
            frozen: num(m, "frozen"),
        }
    }
}
