//! User Timing entries for the map's phases (`performance.measure`, names `orrery:*`): what a
//! graph costs from the request to the first drawn frame, and what each live update costs.
//! benches/map_mesh.rs reads them (web/tests/mesh.mjs) to say where the time goes; the browser's
//! own tools show them too. An entry is a few dozen bytes and there are a few dozen per update
//! (more while a big map's lists and layers follow it in chunks). The browser keeps User Timing
//! entries until they are cleared, so a wall screen left on a live map for a week would hold
//! millions: the page clears its timeline after every
//! [`TIMELINE_CAP`](super::timeline::TIMELINE_CAP) entries it records.
//! In the renderer's worker (no `window`) entries are kept and sent to the page, which records
//! them on its own timeline (`offscreen.rs`), so the page's timeline tells the whole story.

use std::cell::RefCell;

use super::timeline::Timeline;
use wasm_bindgen::JsCast;

thread_local! {
    /// Entries measured in a worker, not yet sent to the page: (name, start, end) in ms of the
    /// worker's clock.
    static KEPT: RefCell<Vec<(&'static str, f64, f64)>> = const { RefCell::new(Vec::new()) };
    /// Entries recorded on the page's timeline since it was last cleared.
    static RECORDED: RefCell<Timeline> = const { RefCell::new(Timeline::new()) };
}

/// Counts one entry on the page's timeline and clears it when full (measures, and the marks
/// made per graph request).
fn count(p: &web_sys::Performance) {
    if RECORDED.with(|r| r.borrow_mut().record()) {
        p.clear_measures();
        p.clear_marks_with_mark_name("orrery:graph-requested");
    }
}

fn performance() -> Option<web_sys::Performance> {
    js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| p.dyn_into::<web_sys::Performance>().ok())
}

/// `performance.now()` (ms since navigation, or since the worker started in a worker).
pub fn now() -> f64 {
    performance().map_or(0.0, |p| p.now())
}

/// Records `name` as a measure from `start` (a `now()`) to now.
pub fn measure(name: &'static str, start: f64) {
    let Some(p) = performance() else {
        return;
    };
    if web_sys::window().is_none() {
        KEPT.with(|k| {
            let mut k = k.borrow_mut();
            // Bounded: the page takes them every few frames.
            if k.len() < 1000 {
                k.push((name, start, p.now()));
            }
        });
        return;
    }
    record(&p, name, start, p.now());
}

/// Records `name` as a measure from `start` to now with `detail.rows = rows` (page only): how
/// much work the entry stands for, for the tests (e.g. rows of a list chunk).
pub fn measure_rows(name: &'static str, start: f64, rows: usize) {
    let Some(p) = web_sys::window().and_then(|w| w.performance()) else {
        return;
    };
    let detail = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&detail, &"rows".into(), &(rows as f64).into());
    measure_with(&p, name, start, p.now(), Some(detail));
}

/// Records a measure from `start` to `end` (ms of this thread's clock).
pub fn record(p: &web_sys::Performance, name: &str, start: f64, end: f64) {
    measure_with(p, name, start, end, None);
}

fn measure_with(
    p: &web_sys::Performance,
    name: &str,
    start: f64,
    end: f64,
    detail: Option<js_sys::Object>,
) {
    let opts = js_sys::Object::new();
    if let Some(d) = detail {
        let _ = js_sys::Reflect::set(&opts, &"detail".into(), &d);
    }
    let _ = js_sys::Reflect::set(&opts, &"start".into(), &start.into());
    let _ = js_sys::Reflect::set(&opts, &"end".into(), &end.into());
    if let Ok(f) = js_sys::Reflect::get(p, &"measure".into())
        && let Ok(f) = f.dyn_into::<js_sys::Function>()
    {
        let _ = f.call2(p, &name.into(), &opts);
        count(p);
    }
}

/// The entries a worker kept since the last call.
pub fn take_kept() -> Vec<(&'static str, f64, f64)> {
    KEPT.with(|k| std::mem::take(&mut *k.borrow_mut()))
}

/// Records a point in time (`performance.mark`).
pub fn mark(name: &str) {
    if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
        let _ = p.mark(name);
        count(&p);
    }
}
