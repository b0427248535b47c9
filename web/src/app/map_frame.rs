//! The map's renderer and frame loop: created once the canvases exist, one
//! `requestAnimationFrame` per frame until the view is gone; and the view's teardown.

use super::map_state::{Map, MapState, Shared, node_items};
use super::{now_s, prefers_reduced_motion};
use crate::layout::Layout;
use crate::map::render::Renderer;
use crate::map::scene::Scene;
use leptos::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// Starts the renderer and its frame loop when the canvases are mounted.
pub(crate) fn install(m: Map, sh: &Shared) {
    let Map {
        canvas,
        overlay,
        backend,
        nodes,
        ..
    } = m;
    {
        let ms = sh.ms.clone();
        let alive = sh.alive.clone();
        Effect::new(move |_| {
            let (Some(c), Some(o)) = (canvas.get(), overlay.get()) else {
                return;
            };
            if ms.borrow().is_some() {
                return;
            }
            let force_2d = web_sys::UrlSearchParams::new_with_str(
                &web_sys::window()
                    .unwrap()
                    .location()
                    .search()
                    .unwrap_or_default(),
            )
            .unwrap()
            .get("renderer")
            .as_deref()
                == Some("2d");
            let mut r = Renderer::new(c, o, force_2d);
            r.dpr = web_sys::window().unwrap().device_pixel_ratio() as f32;
            r.motion = !prefers_reduced_motion();
            backend.set(r.backend().to_string());
            *ms.borrow_mut() = Some(MapState {
                renderer: r,
                scene: Scene::default(),
                layout: Layout::new(),
                layout_key: String::new(),
                fitted: false,
                fit_zoom: 1.0,
                fit_size: (0.0, 0.0),
                camera_moved: false,
                drag: None,
                pan: None,
                source: None,
            });
            let f: crate::map::render::FrameLoop = Rc::new(RefCell::new(None));
            let g = f.clone();
            let ms2 = ms.clone();
            let alive = alive.clone();
            *g.borrow_mut() = Some(Closure::new(move |_ts: f64| {
                if !alive.get() {
                    return;
                }
                // Stop when the map view is gone (the canvas left the document).
                let alive = {
                    let mut b = ms2.borrow_mut();
                    match b.as_mut() {
                        Some(m)
                            if m.renderer.size_css().0 > 0.0
                                || canvas.get_untracked().is_some() =>
                        {
                            // The free area changed (a panel opened or closed, the window
                            // was resized): fit the map into it again, unless the user has
                            // moved the camera since the last fit.
                            let size = m.renderer.size_css();
                            if m.fitted
                                && !m.camera_moved
                                && size.0 > 0.0
                                && size != m.fit_size
                                && !m.scene.graph.nodes.is_empty()
                            {
                                m.fit();
                                let _ = nodes.try_set(node_items(m));
                            }
                            let MapState {
                                renderer, scene, ..
                            } = m;
                            renderer.frame(scene, now_s());
                            true
                        }
                        _ => false,
                    }
                };
                if alive {
                    let _ = web_sys::window().unwrap().request_animation_frame(
                        f.borrow().as_ref().unwrap().as_ref().unchecked_ref(),
                    );
                }
            }));
            let _ = web_sys::window()
                .unwrap()
                .request_animation_frame(g.borrow().as_ref().unwrap().as_ref().unchecked_ref());
        });
    }

    // Unmounted: the frame loop, stream and key handler stop touching the disposed signals.
    {
        let ms = send_wrapper::SendWrapper::new(sh.ms.clone());
        let alive = send_wrapper::SendWrapper::new(sh.alive.clone());
        on_cleanup(move || {
            alive.set(false);
            if let Ok(mut b) = ms.try_borrow_mut()
                && let Some(m) = b.as_mut()
            {
                if let Some(stream) = m.source.take() {
                    stream.close();
                }
                m.renderer.release();
            }
        });
    }
}
