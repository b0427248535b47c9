//! The map view's shared state: the signals (`Map`) and the non-reactive drawing state
//! (`Shared`, `MapState`) that its parts — data (`map_data`), input (`map_input`) and frame loop
//! (`map_frame`) — read and write, and the lists' items. Its own module, importing none of those
//! parts, so that they and the view on top of them (`map_view`) all take it from below.

use super::{Panel, UrlState};
use crate::api::GraphDiff;
use crate::layout::Layout;
use crate::map::render::Renderer;
use crate::map::scene::Scene;
use crate::stream::{LiveStream, StreamState};
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// How far past the fitted zoom the wheel must go over a namespace node to expand it.
pub(crate) const EXPAND_ZOOM: f32 = 1.6;

/// The drawing state: renderer, scene, layout and camera bookkeeping, the live stream.
pub(crate) struct MapState {
    pub(crate) renderer: Renderer,
    pub(crate) scene: Scene,
    pub(crate) layout: Layout,
    pub(crate) layout_key: String,
    pub(crate) fitted: bool,
    /// Camera zoom of the last fit: wheel-zooming in to `EXPAND_ZOOM` times it over a
    /// namespace node expands that namespace.
    pub(crate) fit_zoom: f32,
    /// The canvas size (CSS px) at the last fit: when a panel opens or closes, the free area
    /// changes and the map is fitted to it again — unless the user moved the camera.
    pub(crate) fit_size: (f32, f32),
    /// The user panned, zoomed or located since the last fit.
    pub(crate) camera_moved: bool,
    pub(crate) drag: Option<(usize, bool)>,
    pub(crate) pan: Option<(f32, f32)>,
    pub(crate) source: Option<LiveStream>,
}

impl MapState {
    /// Fits the camera to the scene in the canvas's current size.
    pub(crate) fn fit(&mut self) {
        self.renderer.fit(&self.scene);
        self.fitted = true;
        self.fit_zoom = self.renderer.camera.zoom;
        self.fit_size = self.renderer.size_css();
        self.camera_moved = false;
    }
}

pub(crate) fn pins_key(s: &UrlState) -> String {
    format!("orrery.pins.{}.{}.{}", s.level, s.region, s.focus)
}

pub(crate) fn storage() -> Option<web_sys::Storage> {
    web_sys::window().unwrap().local_storage().ok().flatten()
}

#[derive(Clone, Debug, PartialEq, Default)]
pub(crate) struct NodeItem {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) health: String,
    pub(crate) kind: String,
    pub(crate) namespace: String,
    pub(crate) rps: f64,
    pub(crate) error_rate: f64,
    /// Where the node was drawn (CSS px in the canvas) at the last update, for tests and tools.
    pub(crate) x: i32,
    pub(crate) y: i32,
}

/// A drawn edge as the edge list shows it.
#[derive(Clone, Debug, PartialEq, Default)]
pub(crate) struct EdgeItem {
    pub(crate) source: String,
    pub(crate) target: String,
    /// Health, or `added`/`vanished` in diff mode.
    pub(crate) state: String,
    pub(crate) error_rate: f64,
    pub(crate) rps: f64,
}

/// The map view's signals (all `Copy`): what the markup shows and the parts write.
#[derive(Clone, Copy)]
pub(crate) struct Map {
    pub(crate) state: RwSignal<UrlState>,
    pub(crate) canvas: NodeRef<leptos::html::Canvas>,
    pub(crate) overlay: NodeRef<leptos::html::Canvas>,
    pub(crate) status: RwSignal<String>,
    pub(crate) stream_state: RwSignal<StreamState>,
    pub(crate) nodes: RwSignal<Vec<NodeItem>>,
    /// Every drawn edge (the edge list shows a bounded part of it: `map_lists`).
    pub(crate) edges: RwSignal<Vec<EdgeItem>>,
    /// What the lists beside the map are filtered by (`map_lists::matches`).
    pub(crate) list_filter: RwSignal<String>,
    /// The busiest edge's rate, the data quality and the level of the last graph.
    pub(crate) meta: RwSignal<(f64, crate::api::DataQuality, String)>,
    pub(crate) hover: RwSignal<Option<(f32, f32, String, String)>>,
    pub(crate) panel: RwSignal<Panel>,
    pub(crate) locate: RwSignal<String>,
    pub(crate) backend: RwSignal<String>,
    pub(crate) diff: RwSignal<Option<Result<GraphDiff, String>>>,
    pub(crate) playing: RwSignal<bool>,
    pub(crate) speed: RwSignal<f64>,
    /// The live window has no traffic: the onboarding (how to send spans) is shown.
    pub(crate) empty: RwSignal<bool>,
    /// The left column (service list, legend, data quality, diff) is open.
    pub(crate) sidebar: RwSignal<bool>,
    /// What the graph API's `group=` did for the last graph (`grouping` of the answer).
    pub(crate) grouping: RwSignal<Option<crate::api::Grouping>>,
}

/// The map view's non-reactive state, shared by its closures.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) ms: Rc<RefCell<Option<MapState>>>,
    /// Diff mode: the diff every graph of this window is merged with (new edges green,
    /// vanished ones dashed grey).
    pub(crate) added_edges: Rc<RefCell<Option<GraphDiff>>>,
    /// Graph fetches are numbered so that a slow answer never overwrites a newer one (replay
    /// steps and window changes can overlap).
    pub(crate) fetch_gen: Rc<Cell<u64>>,
    /// Live updates are numbered so that only the newest one's deferred upload (particles and
    /// instance data, the task after its apply) runs.
    pub(crate) upload_gen: Rc<Cell<u64>>,
    /// A graph fetch is under way: replay waits for the frame it asked for.
    pub(crate) busy: Rc<Cell<bool>>,
    /// False once this view is unmounted: the frame loop, stream and key handler then stop
    /// touching its (disposed) signals.
    pub(crate) alive: Rc<Cell<bool>>,
    /// A click's panel, waiting out the double-click interval (see `map_input::on_up`).
    pub(crate) pending_click: Rc<Cell<Option<TimeoutHandle>>>,
}

/// The list mirroring the drawn nodes, with where each is on screen (CSS px in the canvas).
pub(crate) fn node_items(m: &MapState) -> Vec<NodeItem> {
    let cam = m.renderer.camera;
    let (w, h) = m.renderer.size_css();
    m.scene
        .graph
        .nodes
        .iter()
        .zip(&m.scene.to)
        .map(|(n, p)| NodeItem {
            id: n.id.clone(),
            name: n.name.clone(),
            health: if m.scene.marks.node_vanished(&n.id) {
                "vanished".into()
            } else {
                n.health.as_str().into()
            },
            kind: n.kind.clone(),
            namespace: n.namespace.clone().unwrap_or_default(),
            rps: n.metrics.rps,
            error_rate: n.metrics.error_rate,
            x: ((p.x - cam.cx) * cam.zoom + w / 2.0) as i32,
            y: ((p.y - cam.cy) * cam.zoom + h / 2.0) as i32,
        })
        .collect()
}
