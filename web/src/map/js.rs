//! Property access on plain JS objects (messages between the page and the renderer's worker,
//! objects without bindings such as `OffscreenCanvas` and `Worker`), shared by both sides.

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
