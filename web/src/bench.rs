//! The bench page (bench.html): 2,000 services / 10,000 edges / 100,000 particles, timed with
//! `performance.now()` around the work of each frame, plus layout and big-trace timings. The
//! figures land as JSON in `#bench-result` for the headless-Chromium test to read.

use crate::layout::{Input, Layout};
use crate::map::render::Renderer;
use crate::map::scene::Scene;
use crate::{synth, waterfall};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

fn now() -> f64 {
    web_sys::window().unwrap().performance().unwrap().now()
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

#[wasm_bindgen]
pub fn run_bench() {
    console_error_panic_hook::set_once();
    let doc = web_sys::window().unwrap().document().unwrap();
    let params = web_sys::UrlSearchParams::new_with_str(
        &web_sys::window()
            .unwrap()
            .location()
            .search()
            .unwrap_or_default(),
    )
    .unwrap();
    let arg = |k: &str, d: usize| params.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (services, edges, particles, frames) = (
        arg("services", 2000),
        arg("edges", 10_000),
        arg("particles", 100_000),
        arg("frames", 40),
    );
    let force_2d = params.get("renderer").as_deref() == Some("2d");
    let status = doc.get_element_by_id("bench-status").unwrap();
    status.set_text_content(Some("generating…"));

    let graph = synth::mesh(services, edges, 12, 42);
    let t0 = now();
    let mut layout = Layout::new();
    layout.update_layered(&Input::of(&graph));
    let layout_full_ms = now() - t0;

    // Incremental: 1% of services vanish, 50 new ones with 200 new calls arrive.
    let mut next = graph.clone();
    let gone: std::collections::HashSet<String> = next
        .nodes
        .iter()
        .skip(1)
        .step_by(100)
        .map(|n| n.id.clone())
        .collect();
    next.nodes.retain(|n| !gone.contains(&n.id));
    next.edges
        .retain(|e| !gone.contains(&e.source) && !gone.contains(&e.target));
    let extra = synth::mesh(50, 200, 12, 7);
    for mut n in extra.nodes.into_iter().skip(1) {
        n.id = format!("new-{}", n.id);
        next.nodes.push(n);
    }
    for mut e in extra.edges {
        if e.source != "INTERNET" {
            e.source = format!("new-{}", e.source);
        }
        e.target = format!("new-{}", e.target);
        next.edges.push(e);
    }
    let t0 = now();
    let change = layout.update_layered(&Input::of(&next));
    let layout_incremental_ms = now() - t0;

    let canvas: web_sys::HtmlCanvasElement = doc
        .get_element_by_id("bench-canvas")
        .unwrap()
        .dyn_into()
        .unwrap();
    let overlay: web_sys::HtmlCanvasElement = doc
        .get_element_by_id("bench-overlay")
        .unwrap()
        .dyn_into()
        .unwrap();
    let mut renderer = Renderer::on_page_thread(canvas, overlay, force_2d);
    let mut scene = Scene::default();
    let t0 = now();
    scene.set(
        next,
        &layout,
        now() / 1000.0,
        true,
        Some(particles as u32),
        u32::MAX,
    );
    renderer.upload(&scene);
    let scene_update_ms = now() - t0;
    renderer.fit(&scene);

    let t0 = now();
    let trace = waterfall::synthetic_trace(50_000, 60);
    let trace_gen_ms = now() - t0;
    let t0 = now();
    let model = waterfall::TraceModel::new(trace);
    let rows = model.visible_rows(&Default::default());
    let trace_model_ms = now() - t0;

    status.set_text_content(Some("rendering…"));
    let state = Rc::new(RefCell::new((renderer, scene, Vec::<f64>::new(), 0.0f64)));
    let f: crate::map::render::FrameLoop = Rc::new(RefCell::new(None));
    let g = f.clone();
    let wall_start = now();
    let summary = format!(
        r#""services":{},"edges":{},"layout_full_ms":{:.2},"layout_incremental_ms":{:.2},"layout_added":{},"layout_removed":{},"scene_update_ms":{:.2},"trace_spans":{},"trace_rows":{},"trace_model_ms":{:.2},"trace_generate_ms":{:.2}"#,
        services,
        edges,
        layout_full_ms,
        layout_incremental_ms,
        change.added.len(),
        change.removed.len(),
        scene_update_ms,
        model.spans.len(),
        rows.len(),
        trace_model_ms,
        trace_gen_ms
    );
    *g.borrow_mut() = Some(Closure::new(move |_ts: f64| {
        let mut st = state.borrow_mut();
        let (renderer, scene, times, _) = &mut *st;
        let t0 = now();
        renderer.frame(scene, t0 / 1000.0);
        times.push(now() - t0);
        if times.len() < frames {
            let w = web_sys::window().unwrap();
            let _ =
                w.request_animation_frame(f.borrow().as_ref().unwrap().as_ref().unchecked_ref());
            return;
        }
        let wall = now() - wall_start;
        // The first frame compiles shaders and draws every label; report it on its own.
        let first = times[0];
        let mut v = times[1..].to_vec();
        if v.is_empty() {
            v.push(first);
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let json = format!(
            r#"{{"backend":"{}","particles":{},"frames":{},"frame_cpu_mean_ms":{:.3},"frame_cpu_p50_ms":{:.3},"frame_cpu_p95_ms":{:.3},"frame_cpu_max_ms":{:.3},"first_frame_ms":{:.3},"fps":{:.1},{}}}"#,
            renderer.backend(),
            scene.particles.len(),
            times.len(),
            mean,
            quantile(&mut v, 0.5),
            quantile(&mut v, 0.95),
            quantile(&mut v, 1.0),
            first,
            times.len() as f64 / (wall / 1000.0),
            summary
        );
        let doc = web_sys::window().unwrap().document().unwrap();
        let out = doc.get_element_by_id("bench-result").unwrap();
        out.set_text_content(Some(&json));
        let _ = out.set_attribute("data-done", "true");
        doc.get_element_by_id("bench-status")
            .unwrap()
            .set_text_content(Some("done"));
    }));
    let w = web_sys::window().unwrap();
    let _ = w.request_animation_frame(g.borrow().as_ref().unwrap().as_ref().unchecked_ref());
}
