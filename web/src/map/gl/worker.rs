//! The renderer's worker: the page hands its map canvas over (`transferControlToOffscreen`)
//! and this side owns the WebGL2 context, uploads each graph's instance data and draws every
//! frame on its own `requestAnimationFrame`. Why: without a GPU, Chromium composites in
//! software and reads a page's WebGL canvas back synchronously on the page's main thread at
//! every commit (`GLES2::ReadPixels` → `WaitForGetOffset` while SwiftShader draws the frame),
//! so each frame blocked the page for as long as the GPU process took — a long task whenever
//! that passed 50 ms. An `OffscreenCanvas` in a worker is read back (or handed to the GPU
//! compositor) from the worker: the page's thread never waits for the GPU.
//!
//! Messages in (plain objects, `t` says which): `init` {canvas, origin}, `scene` (an
//! `Instances`, arrays transferred), `view` {cx, cy, zoom, dpr, w, h, anim, motion, frozen}.
//! Out: `ready` {ok, err}, `stats` {frames, copies, particles, frame_ms, measures, first}
//! every few frames — times in ms of the page's clock (`origin`: the page's `timeOrigin`).

use super::super::js::{View, get, num, set};
use super::super::pace::{Cadence, Pacer};
use super::super::perf;
use super::{Gl, Instances};
use js_sys::{Array, Float32Array, Function, Object, Reflect};
use std::cell::RefCell;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::WebGl2RenderingContext as GL;

/// Stats are sent to the page every this many drawn frames (or after 500 ms: `Cadence`).
const STATS_EVERY: u32 = 8;

/// The worker stops drawing when the page has sent nothing for this long (ms; the page sends
/// the view at least every 500 ms while its map is shown), and goes on at its next message.
const SILENT_MS: f64 = 2000.0;

struct Worker {
    canvas: JsValue,
    gl: Gl,
    /// What the page last asked to be drawn (nothing before its first view).
    view: Option<View>,
    pacer: Pacer,
    /// How much later the worker's clock started than the page's (ms: the `timeOrigin`
    /// difference): a worker time plus this is the page's time.
    delta: f64,
    nodes: bool,
    first_sent: bool,
    frame_ms: Vec<f64>,
    /// When stats go to the page.
    stats: Cadence,
    tick: Option<Closure<dyn FnMut(f64)>>,
    /// When the page last sent something (`perf::now`), and whether the frame loop stopped.
    heard_at: f64,
    paused: bool,
    /// Something to draw changed (the scene, the view, the canvas) since the last frame drawn.
    /// A map with nothing in it (no node, no particle: before the first graph, an empty
    /// window) is drawn once per change, not at every frame: on a software renderer each
    /// frame is a full-screen clear, read back and composited — CPU taken from the server
    /// computing the first graph on the same machine.
    dirty: bool,
}

type Handler = Closure<dyn FnMut(web_sys::MessageEvent)>;

thread_local! {
    static STATE: RefCell<Option<Worker>> = const { RefCell::new(None) };
    static HANDLER: RefCell<Option<Handler>> = const { RefCell::new(None) };
}

fn floats(o: &JsValue, k: &str) -> Vec<f32> {
    get(o, k)
        .dyn_into::<Float32Array>()
        .map(|a| a.to_vec())
        .unwrap_or_default()
}

fn post(msg: &Object, transfer: Option<&Array>) {
    let g = js_sys::global();
    if let Ok(f) = get(&g, "postMessage").dyn_into::<Function>() {
        let _ = match transfer {
            Some(t) => f.call2(&g, msg, t),
            None => f.call1(&g, msg),
        };
    }
}

/// The worker's entry (`static/gl_worker.js` calls it once the module is loaded, with the
/// messages that came before).
#[wasm_bindgen]
pub fn gl_worker_start(early: Array) {
    console_error_panic_hook::set_once();
    for m in early.iter() {
        on_message(&m);
    }
    let h = Handler::new(|e: web_sys::MessageEvent| on_message(&e.data()));
    let _ = Reflect::set(&js_sys::global(), &"onmessage".into(), h.as_ref());
    HANDLER.with(|s| *s.borrow_mut() = Some(h));
}

fn on_message(m: &JsValue) {
    let resume = STATE.with(|s| {
        s.borrow_mut().as_mut().is_some_and(|w| {
            w.heard_at = perf::now();
            let resumed = std::mem::replace(&mut w.paused, false);
            if resumed {
                w.pacer.resume();
            }
            resumed
        })
    });
    if resume {
        request_frame();
    }
    match get(m, "t").as_string().as_deref() {
        Some("init") => init(m),
        // A new view on the same canvas: its first frame with nodes is reported again.
        Some("reset") => STATE.with(|s| {
            if let Some(w) = s.borrow_mut().as_mut() {
                w.first_sent = false;
                w.nodes = false;
                w.dirty = true;
            }
        }),
        Some("scene") => STATE.with(|s| {
            if let Some(w) = s.borrow_mut().as_mut() {
                let nodes = floats(m, "nodes");
                w.nodes = !nodes.is_empty();
                w.dirty = true;
                w.gl.upload(Instances {
                    particles: floats(m, "particles"),
                    edges: floats(m, "edges"),
                    nodes,
                    places: floats(m, "places"),
                    straight: get(m, "straight").is_truthy(),
                    grown_at: num(m, "grown_at") as f32,
                    live: get(m, "live").is_truthy(),
                });
            }
        }),
        Some("view") => STATE.with(|s| {
            if let Some(w) = s.borrow_mut().as_mut() {
                let v = Some(View::from_message(m));
                // The heartbeat repeats an unchanged view.
                w.dirty |= w.view != v;
                w.view = v;
            }
        }),
        _ => {}
    }
}

fn init(m: &JsValue) {
    let canvas = get(m, "canvas");
    let opts = Object::new();
    for (k, v) in [("antialias", false), ("alpha", false), ("depth", false)] {
        set(&opts, k, v);
    }
    let gl = get(&canvas, "getContext")
        .dyn_into::<Function>()
        .ok()
        .and_then(|f| f.call2(&canvas, &"webgl2".into(), &opts).ok())
        .filter(|c| !c.is_null() && !c.is_undefined())
        .map(|c| c.unchecked_into::<GL>())
        .ok_or_else(|| "no WebGL2 on an OffscreenCanvas".to_string())
        .and_then(Gl::new);
    let reply = Object::new();
    set(&reply, "t", "ready");
    match gl {
        Ok(gl) => {
            let origin = Reflect::get(&js_sys::global(), &"performance".into())
                .map(|p| num(&p, "timeOrigin"))
                .unwrap_or(0.0);
            STATE.with(|s| {
                *s.borrow_mut() = Some(Worker {
                    canvas,
                    gl,
                    view: None,
                    pacer: Pacer::new(super::super::pace::WORKER_PAUSE_MS),
                    delta: origin - num(m, "origin"),
                    nodes: false,
                    first_sent: false,
                    frame_ms: Vec::new(),
                    stats: Cadence::new(STATS_EVERY),
                    tick: None,
                    heard_at: perf::now(),
                    paused: false,
                    dirty: true,
                })
            });
            set(&reply, "ok", true);
            post(&reply, None);
            let tick = Closure::<dyn FnMut(f64)>::new(|_ts: f64| frame());
            STATE.with(|s| {
                if let Some(w) = s.borrow_mut().as_mut() {
                    w.tick = Some(tick);
                }
            });
            request_frame();
        }
        Err(e) => {
            set(&reply, "ok", false);
            set(&reply, "err", e);
            post(&reply, None);
        }
    }
}

/// The next frame: the worker's `requestAnimationFrame` (Chromium has it for workers that
/// draw on an `OffscreenCanvas`), else a 16 ms timer.
fn request_frame() {
    STATE.with(|s| {
        let b = s.borrow();
        let Some(f) = b.as_ref().and_then(|w| w.tick.as_ref()) else {
            return;
        };
        let g = js_sys::global();
        if let Ok(raf) = get(&g, "requestAnimationFrame").dyn_into::<Function>() {
            let _ = raf.call1(&g, f.as_ref());
        } else if let Ok(st) = get(&g, "setTimeout").dyn_into::<Function>() {
            let _ = st.call2(&g, f.as_ref(), &16.into());
        }
    });
}

fn frame() {
    let go_on = STATE.with(|s| {
        let mut b = s.borrow_mut();
        let Some(w) = b.as_mut() else { return false };
        let started = perf::now();
        if started - w.heard_at > SILENT_MS {
            w.paused = true;
            publish_unreported(w, started);
            return false;
        }
        let total = w.gl.particle_count();
        // Nothing on the map and nothing changed: the canvas already shows it.
        let idle = !w.nodes && total == 0 && !w.dirty;
        let view = w.view.filter(|v| v.w > 0 && !idle);
        if view.is_none() {
            // Time spent with nothing to draw is not the next frame's cost.
            w.pacer.resume();
            publish_unreported(w, started);
        }
        if let Some(v) = view
            && w.pacer.pace(started, total, &mut w.gl.particle_cap)
        {
            w.dirty = false;
            if num(&w.canvas, "width") as u32 != v.w || num(&w.canvas, "height") as u32 != v.h {
                let _ = Reflect::set(&w.canvas, &"width".into(), &v.w.into());
                let _ = Reflect::set(&w.canvas, &"height".into(), &v.h.into());
            }
            // The page's clock, in s: particles keep their phase across updates.
            let t = if v.motion {
                (started + w.delta) / 1000.0
            } else {
                v.frozen
            };
            w.gl.draw(v.cam, v.dpr, v.w as f32, v.h as f32, t, v.anim, v.motion);
            let ended = perf::now();
            w.frame_ms.push(ended - started);
            let first = (!w.first_sent && w.nodes).then(|| {
                w.first_sent = true;
                (started + w.delta, ended + w.delta)
            });
            if w.stats.drawn(ended, first.is_some()) {
                send_stats(w, first);
            }
        }
        true
    });
    if go_on {
        request_frame();
    }
}

/// A frame with nothing drawn (nothing to draw, or the worker pausing): the frames drawn before
/// it and not yet published go to the page now, not with the next frame drawn (the page's
/// figures, and the idle map's test, read them as they are drawn).
fn publish_unreported(w: &mut Worker, now: f64) {
    if w.stats.idle(now) {
        send_stats(w, None);
    }
}

fn send_stats(w: &mut Worker, first: Option<(f64, f64)>) {
    let msg = Object::new();
    set(&msg, "t", "stats");
    set(&msg, "frames", w.gl.frames_drawn as f64);
    set(&msg, "copies", w.gl.copies as f64);
    set(&msg, "particles", w.gl.particles_drawn());
    let ms: Array = w.frame_ms.drain(..).map(JsValue::from).collect();
    set(&msg, "frame_ms", ms);
    let measures: Array = perf::take_kept()
        .into_iter()
        .map(|(n, a, b)| -> JsValue {
            [JsValue::from(n), (a + w.delta).into(), (b + w.delta).into()]
                .iter()
                .collect::<Array>()
                .into()
        })
        .collect();
    set(&msg, "measures", measures);
    if let Some((a, b)) = first {
        set(
            &msg,
            "first",
            [JsValue::from(a), JsValue::from(b)]
                .iter()
                .collect::<Array>(),
        );
    }
    post(&msg, None);
}
