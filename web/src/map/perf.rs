//! User Timing entries for the map's phases (`performance.measure`, names `orrery:*`): what a
//! graph costs from the request to the first drawn frame, and what each live update costs.
//! benches/map_mesh.rs reads them (web/tests/mesh.mjs) to say where the time goes; the browser's
//! own tools show them too. An entry is a few dozen bytes and there are a handful per update.

/// `performance.now()` (ms since navigation).
pub fn now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// Records `name` as a measure from `start` (a `now()`) to now.
pub fn measure(name: &str, start: f64) {
    let Some(p) = web_sys::window().and_then(|w| w.performance()) else {
        return;
    };
    let opts = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&opts, &"start".into(), &start.into());
    let _ = js_sys::Reflect::set(&opts, &"end".into(), &p.now().into());
    if let Ok(f) = js_sys::Reflect::get(&p, &"measure".into())
        && let Ok(f) = wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f)
    {
        let _ = f.call2(&p, &name.into(), &opts);
    }
}

/// Records a point in time (`performance.mark`).
pub fn mark(name: &str) {
    if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
        let _ = p.mark(name);
    }
}
