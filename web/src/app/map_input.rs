//! The map's input: mouse (hover, click, drag to pin, pan, wheel zoom with the semantic zoom
//! into namespaces, double-click to drill down), the keyboard (Escape goes back), locate and
//! unpin.

use super::map_state::{EXPAND_ZOOM, Map, Shared, storage};
use super::panels::metrics_line;
use super::{Panel, UrlState, now_s};
use crate::layout::Pos;
use crate::map::render::Hit;
use crate::namespaces;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// Double-click (or Shift+Enter) on a node: into a namespace, a region, or a service.
pub(crate) fn drill(state: RwSignal<UrlState>, id: String, kind: String) {
    state.update(|s| {
        if kind == "namespace" || kind == "group" {
            // Zoom into a namespace (or another group): its services replace its node.
            let mut set = namespaces::parse_expanded(&s.ns);
            let name = namespaces::of_id(&id).or_else(|| crate::grouping::of_id(&id));
            set.insert(name.unwrap_or_default().to_string());
            s.ns = namespaces::format_expanded(&set);
        } else if kind == "region" {
            s.level = "region".into();
            s.region = id.trim_start_matches("region:").to_string();
            s.focus.clear();
        } else if kind != "entry" {
            s.level = "focused".into();
            s.focus = id;
        }
    })
}

/// One level up: focused → region; a region first collapses its expanded namespaces, then
/// goes to the global map.
pub(crate) fn up(state: RwSignal<UrlState>) {
    state.update(|s| match s.level.as_str() {
        "focused" => {
            s.level = "region".into();
            s.focus.clear();
        }
        // Zooming out of a region first collapses its expanded namespaces.
        "region" if !s.ns.is_empty() => s.ns.clear(),
        "region" => {
            s.level = "global".into();
            s.region.clear();
        }
        _ => {}
    })
}

/// Escape closes an open panel first, then goes up a level.
pub(crate) fn install_keys(m: Map) {
    let Map { state, panel, .. } = m;
    let esc =
        Closure::<dyn FnMut(web_sys::KeyboardEvent)>::new(move |ev: web_sys::KeyboardEvent| {
            // Keys typed in the (modal) sign-in dialog are not for the map behind it.
            if ev.key() == "Escape"
                && !ev.default_prevented()
                && state.get_untracked().view == "map"
                && crate::auth::state().prompt.get_untracked().is_none()
            {
                if panel.get_untracked() != Panel::None {
                    panel.set(Panel::None);
                } else {
                    up(state);
                }
            }
        });
    let _ = web_sys::window()
        .unwrap()
        .add_event_listener_with_callback("keydown", esc.as_ref().unchecked_ref());
    esc.forget();
}

/// The screen position of a mouse event in the canvas (CSS px).
fn xy(ev: &web_sys::MouseEvent) -> (f32, f32) {
    (ev.offset_x() as f32, ev.offset_y() as f32)
}

/// Hover shows a node or edge; dragging a node pins it; dragging the background pans.
pub(crate) fn on_move(m: Map, sh: &Shared) -> impl FnMut(web_sys::MouseEvent) + 'static + use<> {
    let Map { hover, .. } = m;
    let ms = sh.ms.clone();
    move |ev: web_sys::MouseEvent| {
        let (x, y) = xy(&ev);
        let mut b = ms.borrow_mut();
        let Some(m) = b.as_mut() else { return };
        if let Some((i, _)) = m.drag {
            let p = m.renderer.screen_to_world(x, y);
            let id = m.scene.graph.nodes[i].id.clone();
            m.layout.pin(&id, p);
            m.scene.from[i] = p;
            m.scene.to[i] = p;
            m.drag = Some((i, true));
            m.renderer.upload(&m.scene);
            return;
        }
        if let Some((px, py)) = m.pan {
            let z = m.renderer.camera.zoom;
            m.camera_moved = true;
            m.renderer.camera.cx -= (x - px) / z;
            m.renderer.camera.cy -= (y - py) / z;
            m.pan = Some((x, y));
            return;
        }
        let t = now_s();
        hover.set(match m.renderer.pick(&m.scene, x, y, t) {
            Some(Hit::Node(i)) => {
                let n = &m.scene.graph.nodes[i];
                let line =
                    metrics_line(&n.metrics) + &notice_line(m.scene.notices.nodes.get(&n.id));
                Some((x, y, n.name.clone(), line))
            }
            Some(Hit::Edge(e)) => {
                let e = &m.scene.graph.edges[e];
                let line =
                    metrics_line(&e.metrics) + &notice_line(m.scene.notices.edges.get(&e.id));
                Some((x, y, format!("{} → {}", e.source, e.target), line))
            }
            None => None,
        });
    }
}

/// The firing checks' names on a hovered node or edge (its notice mark), after its figures.
fn notice_line(notices: Option<&Vec<crate::checks::Notice>>) -> String {
    match notices {
        Some(v) if !v.is_empty() => {
            let rules: Vec<&str> = v.iter().map(|n| n.rule.as_str()).collect();
            format!(" · ⚠ {}", rules.join(", "))
        }
        _ => String::new(),
    }
}

/// Pressing on a node starts a drag (pin); elsewhere a pan.
pub(crate) fn on_down(m: Map, sh: &Shared) -> impl FnMut(web_sys::MouseEvent) + 'static + use<> {
    let _ = m;
    let ms = sh.ms.clone();
    move |ev: web_sys::MouseEvent| {
        let (x, y) = xy(&ev);
        let mut b = ms.borrow_mut();
        let Some(m) = b.as_mut() else { return };
        match m.renderer.pick(&m.scene, x, y, now_s()) {
            Some(Hit::Node(i)) => m.drag = Some((i, false)),
            _ => m.pan = Some((x, y)),
        }
    }
}

/// The end of a drag saves the pins; a click opens the node or edge panel.
pub(crate) fn on_up(m: Map, sh: &Shared) -> impl FnMut(web_sys::MouseEvent) + 'static + use<> {
    let Map { panel, .. } = m;
    let ms = sh.ms.clone();
    let pending = sh.pending_click.clone();
    move |ev: web_sys::MouseEvent| {
        let (x, y) = xy(&ev);
        let mut b = ms.borrow_mut();
        let Some(m) = b.as_mut() else { return };
        let dragged = m.drag.take();
        let panned = m.pan.take();
        if let Some((_, true)) = dragged {
            if let Some(st) = storage() {
                let _ = st.set_item(&m.layout_key, &m.layout.pins_to_string());
            }
            return;
        }
        let _ = panned;
        let open = match m.renderer.pick(&m.scene, x, y, now_s()) {
            Some(Hit::Node(i)) => {
                let n = &m.scene.graph.nodes[i];
                m.scene.selected = Some(n.id.clone());
                m.renderer.upload(&m.scene);
                Panel::Node(n.id.clone())
            }
            Some(Hit::Edge(e)) => {
                let e = &m.scene.graph.edges[e];
                Panel::Edge(e.source.clone(), e.target.clone())
            }
            None => return,
        };
        // The panel opens beside the map, which is then fitted into the narrower area: were it
        // opened at once, the second click of a double-click would land on a moved map. So it
        // waits out the double-click interval (a double-click cancels it and drills down).
        if let Some(h) = pending.take() {
            h.clear();
        }
        if ev.detail() < 2 {
            pending.set(
                set_timeout_with_handle(
                    move || {
                        let _ = panel.try_set(open);
                    },
                    std::time::Duration::from_millis(CLICK_DELAY_MS),
                )
                .ok(),
            );
        }
    }
}

/// How long a click on the canvas waits for a second click before opening its panel.
const CLICK_DELAY_MS: u64 = 300;

/// Double-click drills down into the node under the pointer.
pub(crate) fn on_dbl(m: Map, sh: &Shared) -> impl FnMut(web_sys::MouseEvent) + 'static + use<> {
    let Map { state, .. } = m;
    let ms = sh.ms.clone();
    let pending = sh.pending_click.clone();
    move |ev: web_sys::MouseEvent| {
        if let Some(h) = pending.take() {
            h.clear();
        }
        let (x, y) = xy(&ev);
        let hit = {
            let b = ms.borrow();
            let Some(m) = b.as_ref() else { return };
            match m.renderer.pick(&m.scene, x, y, now_s()) {
                Some(Hit::Node(i)) => {
                    let n = &m.scene.graph.nodes[i];
                    Some((n.id.clone(), n.kind.clone()))
                }
                _ => None,
            }
        };
        if let Some((id, kind)) = hit {
            drill(state, id, kind);
        }
    }
}

/// Wheel zoom about the pointer; zooming in far enough over a namespace opens it.
pub(crate) fn on_wheel(m: Map, sh: &Shared) -> impl FnMut(web_sys::WheelEvent) + 'static + use<> {
    let Map { state, .. } = m;
    let ms = sh.ms.clone();
    move |ev: web_sys::WheelEvent| {
        ev.prevent_default();
        let expand = {
            let mut b = ms.borrow_mut();
            let Some(m) = b.as_mut() else { return };
            let (x, y) = (ev.offset_x() as f32, ev.offset_y() as f32);
            let before = m.renderer.screen_to_world(x, y);
            let k = (-ev.delta_y() as f32 * 0.0015).exp();
            m.camera_moved = true;
            m.renderer.camera.zoom = (m.renderer.camera.zoom * k).clamp(0.01, 8.0);
            let after = m.renderer.screen_to_world(x, y);
            m.renderer.camera.cx += before.x - after.x;
            m.renderer.camera.cy += before.y - after.y;
            // Semantic zoom: zooming in far enough over a namespace opens it.
            match m.renderer.pick(&m.scene, x, y, now_s()) {
                Some(Hit::Node(i))
                    if k > 1.0
                        && m.renderer.camera.zoom >= m.fit_zoom * EXPAND_ZOOM
                        && matches!(
                            m.scene.graph.nodes[i].kind.as_str(),
                            "namespace" | "group"
                        ) =>
                {
                    let n = &m.scene.graph.nodes[i];
                    Some((n.id.clone(), n.kind.clone()))
                }
                _ => None,
            }
        };
        if let Some((id, kind)) = expand {
            drill(state, id, kind);
        }
    }
}

/// Centres the camera on the first service whose name contains the locate text.
pub(crate) fn do_locate(m: Map, sh: &Shared) -> impl Fn() + Clone + 'static + use<> {
    let Map { locate, panel, .. } = m;
    let ms = sh.ms.clone();
    move || {
        let q = locate.get_untracked().to_lowercase();
        let mut b = ms.borrow_mut();
        let Some(m) = b.as_mut() else { return };
        let found = m
            .scene
            .graph
            .nodes
            .iter()
            .position(|n| n.name.to_lowercase().contains(&q));
        if let Some(i) = found {
            let p: Pos = m.scene.to[i];
            m.camera_moved = true;
            m.renderer.camera.cx = p.x;
            m.renderer.camera.cy = p.y;
            m.renderer.camera.zoom = m.renderer.camera.zoom.max(1.0);
            m.scene.selected = Some(m.scene.graph.nodes[i].id.clone());
            m.renderer.upload(&m.scene);
            panel.set(Panel::Node(m.scene.graph.nodes[i].id.clone()));
        }
    }
}

/// Drops every pin of this view.
pub(crate) fn unpin(m: Map, sh: &Shared) -> impl FnMut(web_sys::MouseEvent) + 'static + use<> {
    let _ = m;
    let ms = sh.ms.clone();
    move |_| {
        if let Some(m) = ms.borrow_mut().as_mut() {
            m.layout.unpin_all();
            if let Some(st) = storage() {
                let _ = st.remove_item(&m.layout_key);
            }
        }
    }
}
