//! The page's side of the renderer's worker (`gl/worker.rs`): hands the map canvas over
//! (`transferControlToOffscreen`), sends each graph's instance data and the view (camera,
//! canvas size, animation start) when it changes, and takes back what the worker reports —
//! frames, full-screen copies, particles drawn, frame CPU, the first frame and its User
//! Timing entries, recorded on the page's timeline. The page's thread issues no WebGL call,
//! so the browser never makes it wait for the GPU (see `gl/worker.rs` for why that matters).

use super::gl::Instances;
use super::js::{View, get, set};
use js_sys::{Array, Float32Array, Function, Object, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::HtmlCanvasElement;

/// What the worker reported so far.
#[derive(Default)]
pub struct Reported {
    /// The worker could not draw (no WebGL2 there, or the worker did not load).
    pub failed: Option<String>,
    pub frames: u64,
    pub copies: u64,
    pub particles: i32,
    /// Frame CPU (ms) of frames drawn since the last `take`.
    pub frame_ms: Vec<f64>,
    /// The first frame with nodes: start and end, ms of the page's clock (taken once).
    pub first: Option<(f64, f64)>,
}

/// The worker of a canvas handed over, kept on the canvas element: a view rebuilt on the same
/// element (a sign-in rebuilds the map view, keeping its canvas) takes the worker over, since a
/// canvas can be handed over only once.
const WORKER_PROP: &str = "__orreryGlWorker";

/// The view is sent at least this often (ms), changed or not: the worker stops drawing when
/// the page has been silent for a while (the map view is gone, the tab hidden).
const HEARTBEAT_MS: f64 = 500.0;

pub struct Offscreen {
    worker: JsValue,
    pub reported: Rc<RefCell<Reported>>,
    last_view: Option<View>,
    last_sent: f64,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(JsValue)>,
}

/// Whether this browser can draw WebGL2 on an `OffscreenCanvas` and move a canvas to a
/// worker (a 1×1 probe on this thread: after the transfer there is no going back).
fn supported(canvas: &HtmlCanvasElement) -> bool {
    let g = js_sys::global();
    let Ok(ctor) = get(&g, "OffscreenCanvas").dyn_into::<Function>() else {
        return false;
    };
    if !get(canvas, "transferControlToOffscreen").is_function() || !get(&g, "Worker").is_function()
    {
        return false;
    }
    let args: Array = [JsValue::from(1), JsValue::from(1)].iter().collect();
    Reflect::construct(&ctor, &args)
        .ok()
        .and_then(|c| {
            let f = get(&c, "getContext").dyn_into::<Function>().ok()?;
            f.call1(&c, &"webgl2".into()).ok()
        })
        .is_some_and(|c| !c.is_null() && !c.is_undefined())
}

impl Offscreen {
    /// Moves `canvas`'s drawing to a worker; None (the canvas untouched) where that cannot be.
    pub fn new(canvas: &HtmlCanvasElement) -> Option<Offscreen> {
        let kept = get(canvas, WORKER_PROP);
        let (worker, offscreen) = if kept.is_object() {
            (kept, None)
        } else {
            if !supported(canvas) {
                return None;
            }
            let g = js_sys::global();
            let ctor = get(&g, "Worker").dyn_into::<Function>().ok()?;
            let opts = Object::new();
            set(&opts, "type", "module");
            let args: Array = [JsValue::from("gl_worker.js"), opts.into()]
                .iter()
                .collect();
            let offscreen = get(canvas, "transferControlToOffscreen")
                .dyn_into::<Function>()
                .ok()?
                .call0(canvas)
                .ok()?;
            let worker = Reflect::construct(&ctor, &args).ok()?;
            let _ = Reflect::set(canvas, &WORKER_PROP.into(), &worker);
            (worker, Some(offscreen))
        };
        let reported = Rc::new(RefCell::new(Reported::default()));
        let r = reported.clone();
        let on_message =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
                receive(&r, &e.data())
            });
        let _ = Reflect::set(&worker, &"onmessage".into(), on_message.as_ref());
        let r = reported.clone();
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let msg = get(&e, "message")
                .as_string()
                .unwrap_or_else(|| "the map's renderer worker failed to load".into());
            web_sys::console::error_1(&format!("map renderer worker: {msg}").into());
            r.borrow_mut().failed = Some(msg);
        });
        let _ = Reflect::set(&worker, &"onerror".into(), on_error.as_ref());
        let o = Offscreen {
            worker,
            reported,
            last_view: None,
            last_sent: 0.0,
            _on_message: on_message,
            _on_error: on_error,
        };
        let init = Object::new();
        match offscreen {
            Some(offscreen) => {
                set(&init, "t", "init");
                set(&init, "canvas", offscreen.clone());
                let origin = web_sys::window()
                    .and_then(|w| w.performance())
                    .map_or(0.0, |p| p.time_origin());
                set(&init, "origin", origin);
                // The module this page compiled: `gl_worker.js` instantiates it rather than
                // downloading and compiling the file again.
                set(&init, "module", wasm_bindgen::module());
                o.post(&init, Some([offscreen].iter().collect()));
            }
            // Taken over: its next first frame with nodes is reported again.
            None => {
                set(&init, "t", "reset");
                o.post(&init, None);
            }
        }
        Some(o)
    }

    /// Ends the worker of `canvas` once the canvas has left the document (its map view is gone
    /// and no view took it over): checked after the current task, since a view rebuilt on the
    /// same element (a sign-in) keeps it in the document and takes its worker over. A worker
    /// holds its own copy of the module's memory and the WebGL context (~14 MB).
    pub fn release_when_detached(canvas: HtmlCanvasElement) {
        let check = Closure::once_into_js(move || {
            if canvas.is_connected() {
                return;
            }
            let worker = get(&canvas, WORKER_PROP);
            if let Ok(f) = get(&worker, "terminate").dyn_into::<Function>() {
                let _ = f.call0(&worker);
            }
            let _ = Reflect::delete_property(canvas.unchecked_ref::<Object>(), &WORKER_PROP.into());
        });
        if let Some(w) = web_sys::window() {
            let _ =
                w.set_timeout_with_callback_and_timeout_and_arguments_0(check.unchecked_ref(), 0);
        }
    }

    fn post(&self, msg: &Object, transfer: Option<Array>) {
        if let Ok(f) = get(&self.worker, "postMessage").dyn_into::<Function>() {
            let _ = match transfer {
                Some(t) => f.call2(&self.worker, msg, &t),
                None => f.call1(&self.worker, msg),
            };
        }
    }

    /// Sends a graph's instance data (its arrays moved, not copied, to the worker).
    pub fn upload(&self, i: Instances) {
        let msg = Object::new();
        set(&msg, "t", "scene");
        let transfer = Array::new();
        for (k, v) in [
            ("particles", &i.particles),
            ("edges", &i.edges),
            ("nodes", &i.nodes),
            ("places", &i.places),
        ] {
            let a = Float32Array::from(v.as_slice());
            transfer.push(&a.buffer());
            set(&msg, k, a);
        }
        set(&msg, "straight", i.straight);
        set(&msg, "grown_at", i.grown_at);
        set(&msg, "live", i.live);
        self.post(&msg, Some(transfer));
    }

    /// Sends the view when it changed (the time to draw at counts only without motion), and
    /// at least every [`HEARTBEAT_MS`] so the worker knows its map is still shown.
    pub fn view(&mut self, mut v: View) {
        if v.motion {
            v.frozen = 0.0;
        }
        let now = super::perf::now();
        if self.last_view == Some(v) && now - self.last_sent < HEARTBEAT_MS {
            return;
        }
        self.last_view = Some(v);
        self.last_sent = now;
        self.post(&v.to_message(), None);
    }
}

fn receive(r: &Rc<RefCell<Reported>>, m: &JsValue) {
    let mut r = r.borrow_mut();
    match get(m, "t").as_string().as_deref() {
        Some("ready") if !get(m, "ok").is_truthy() => {
            let err = get(m, "err").as_string().unwrap_or_default();
            web_sys::console::error_1(&format!("map renderer worker: {err}").into());
            r.failed = Some(err);
        }
        Some("stats") => {
            r.frames = get(m, "frames").as_f64().unwrap_or(0.0) as u64;
            r.copies = get(m, "copies").as_f64().unwrap_or(0.0) as u64;
            r.particles = get(m, "particles").as_f64().unwrap_or(0.0) as i32;
            if let Ok(a) = get(m, "frame_ms").dyn_into::<Array>() {
                r.frame_ms.extend(a.iter().filter_map(|v| v.as_f64()));
            }
            if let Some(p) = web_sys::window().and_then(|w| w.performance())
                && let Ok(a) = get(m, "measures").dyn_into::<Array>()
            {
                for e in a.iter() {
                    let e: Array = e.unchecked_into();
                    let name = e.get(0).as_string().unwrap_or_default();
                    let (s, f) = (e.get(1).as_f64(), e.get(2).as_f64());
                    if let (Some(s), Some(f)) = (s, f) {
                        super::perf::record(&p, &name, s, f);
                    }
                }
            }
            if let Ok(a) = get(m, "first").dyn_into::<Array>()
                && let (Some(s), Some(f)) = (a.get(0).as_f64(), a.get(1).as_f64())
            {
                r.first = Some((s, f));
            }
        }
        _ => {}
    }
}
