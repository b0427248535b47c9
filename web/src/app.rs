//! The Leptos app: URL-held state, the map view (WebGL2 renderer, live SSE updates, hover,
//! drill-down, pins), node/edge panels, trace search and the virtualised waterfall.

use crate::api::{EdgeDetail, Graph, GraphDiff, Histogram, NodeDetail};
use crate::diff::{self, Marks};
use crate::encoding::{self, fmt_rate, fmt_us};
use crate::layout::{Input, Layout, Pos};
use crate::map::render::{Hit, Renderer};
use crate::map::scene::Scene;
use crate::namespaces;
use crate::net::{enc, get_json};
use crate::replay::{self, Replay};
use crate::stream::{LiveStream, StreamState};
use crate::trace_search::SearchView;
use crate::trace_view::TraceView;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// Everything a link should reproduce.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct UrlState {
    pub view: String,
    pub level: String,
    pub region: String,
    pub focus: String,
    pub since: String,
    pub trace: String,
    pub service: String,
    pub errors_only: bool,
    pub hide_virtual: bool,
    pub min_rate: f64,
    pub diff: bool,
    /// Fixed window (Unix ms); empty = live `since`.
    pub start: String,
    pub end: String,
    /// Replay position (Unix ms of the shown minute) inside the fixed window; empty = off.
    pub replay: String,
    /// Selected edge `source->target` (its panel is open).
    pub edge: String,
    /// Namespaces expanded into their services at the region level (`ns=a,b`); the others
    /// are drawn as one node each.
    pub ns: String,
    /// The second trace of a comparison (`view=compare&trace=A&compare=B`).
    pub compare: String,
}

impl UrlState {
    fn read() -> Self {
        let search = web_sys::window()
            .unwrap()
            .location()
            .search()
            .unwrap_or_default();
        let p = web_sys::UrlSearchParams::new_with_str(&search).unwrap();
        let g = |k: &str, d: &str| p.get(k).unwrap_or_else(|| d.to_string());
        UrlState {
            view: g("view", "map"),
            level: g("level", "region"),
            region: g("region", ""),
            focus: g("focus", ""),
            since: g("since", "5m"),
            trace: g("trace", ""),
            service: g("service", ""),
            errors_only: p.get("errors").as_deref() == Some("1"),
            hide_virtual: p.get("virtual").as_deref() == Some("0"),
            min_rate: g("min_rate", "0").parse().unwrap_or(0.0),
            diff: p.get("diff").as_deref() == Some("1"),
            start: g("start", ""),
            end: g("end", ""),
            replay: g("replay", ""),
            edge: g("edge", ""),
            ns: g("ns", ""),
            compare: g("compare", ""),
        }
    }

    fn query(&self) -> String {
        let mut q = vec![format!("view={}", enc(&self.view))];
        if self.view == "map" {
            q.push(format!("level={}", enc(&self.level)));
            if !self.region.is_empty() {
                q.push(format!("region={}", enc(&self.region)));
            }
            if !self.focus.is_empty() {
                q.push(format!("focus={}", enc(&self.focus)));
            }
        }
        q.push(self.window_query());
        if !self.trace.is_empty() && (self.view == "trace" || self.view == "compare") {
            q.push(format!("trace={}", enc(&self.trace)));
        }
        if !self.compare.is_empty() && self.view == "compare" {
            q.push(format!("compare={}", enc(&self.compare)));
        }
        if !self.service.is_empty() && self.view == "traces" {
            q.push(format!("service={}", enc(&self.service)));
        }
        if self.errors_only {
            q.push("errors=1".into());
        }
        if self.hide_virtual {
            q.push("virtual=0".into());
        }
        if self.min_rate > 0.0 {
            q.push(format!("min_rate={}", self.min_rate));
        }
        if self.diff && self.view == "map" {
            q.push("diff=1".into());
        }
        if self.view == "map" && self.replaying().is_some() {
            q.push(format!("replay={}", enc(&self.replay)));
        }
        if self.view == "map" && self.level == "region" && !self.ns.is_empty() {
            q.push(format!("ns={}", enc(&self.ns)));
        }
        if self.view == "map" && !self.edge.is_empty() {
            q.push(format!("edge={}", enc(&self.edge)));
        }
        let search = web_sys::window()
            .unwrap()
            .location()
            .search()
            .unwrap_or_default();
        for flag in ["kiosk", "reduced-motion", "renderer"] {
            if let Some(v) = web_sys::UrlSearchParams::new_with_str(&search)
                .unwrap()
                .get(flag)
            {
                q.push(format!("{flag}={}", enc(&v)));
            }
        }
        format!("?{}", q.join("&"))
    }

    /// `since=…` when live, else `start=…&end=…`.
    pub(crate) fn window_query(&self) -> String {
        if self.start.is_empty() {
            format!("since={}", enc(&self.since))
        } else {
            format!("start={}&end={}", enc(&self.start), enc(&self.end))
        }
    }

    fn live(&self) -> bool {
        self.start.is_empty()
    }

    /// The replayed range and position, when replaying a fixed window.
    fn replaying(&self) -> Option<(Replay, i64)> {
        let (start, end) = (self.start.parse().ok()?, self.end.parse().ok()?);
        let pos: i64 = self.replay.parse().ok()?;
        let r = Replay::new(start, end);
        Some((r, r.clamp(pos)))
    }

    /// The window the data is for: the replayed minute, else the URL's window.
    fn data_window_query(&self) -> String {
        match self.replaying() {
            Some((r, pos)) => {
                let (a, b) = r.window(pos);
                format!("start={a}&end={b}")
            }
            None => self.window_query(),
        }
    }

    fn graph_query(&self) -> String {
        let mut q = format!("level={}&{}", enc(&self.level), self.data_window_query());
        if self.level == "region" && !self.region.is_empty() {
            q += &format!("&region={}", enc(&self.region));
        }
        if self.level == "focused" {
            q += &format!("&service={}", enc(&self.focus));
        }
        q
    }
}

fn flag(name: &str) -> bool {
    let search = web_sys::window()
        .unwrap()
        .location()
        .search()
        .unwrap_or_default();
    web_sys::UrlSearchParams::new_with_str(&search)
        .unwrap()
        .has(name)
}

fn prefers_reduced_motion() -> bool {
    flag("reduced-motion")
        || web_sys::window()
            .unwrap()
            .match_media("(prefers-reduced-motion: reduce)")
            .ok()
            .flatten()
            .is_some_and(|m| m.matches())
}

#[wasm_bindgen]
pub fn start_app() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

#[derive(Clone, Debug, PartialEq)]
enum Panel {
    None,
    Node(String),
    Edge(String, String),
}

#[component]
fn App() -> impl IntoView {
    let state = RwSignal::new(UrlState::read());
    // The URL follows the state (replace for filters, push for navigation).
    Effect::new(move |prev: Option<UrlState>| {
        let s = state.get();
        let h = web_sys::window().unwrap().history().unwrap();
        let url = s.query();
        let nav = prev.as_ref().is_some_and(|p| {
            p.view != s.view
                || p.level != s.level
                || p.focus != s.focus
                || p.trace != s.trace
                || p.compare != s.compare
        });
        if nav {
            let _ = h.push_state_with_url(&JsValue::NULL, "", Some(&url));
        } else {
            let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&url));
        }
        s
    });
    let popstate = Closure::<dyn FnMut()>::new(move || state.set(UrlState::read()));
    let _ = web_sys::window()
        .unwrap()
        .add_event_listener_with_callback("popstate", popstate.as_ref().unchecked_ref());
    popstate.forget();
    let kiosk = flag("kiosk");
    let auth = crate::auth::state();
    // Only a change of view rebuilds the page; filters and navigation within a view do not.
    let view_name = Memo::new(move |_| state.get().view);
    let go = move |view: &'static str| state.update(|s| s.view = view.to_string());
    view! {
        <div class="app" class:kiosk=kiosk>
            // While the sign-in dialog is open the rest of the page is inert (no focus, no
            // clicks, hidden from assistive technology): the dialog is modal.
            <header class="top" inert=move || auth.prompt.get().is_some()>
                <span class="brand">"ORRERY"</span>
                <nav aria-label="views">
                    <button class:active=move || state.get().view == "map" on:click=move |_| go("map")>"Map"</button>
                    <button class:active=move || state.get().view != "map" on:click=move |_| go("traces")>"Traces"</button>
                </nav>
                <label>"Window "
                    <select aria-label="time window" on:change=move |ev| { let v = event_target_value(&ev); state.update(|s| s.since = v) }
                        prop:value=move || state.get().since>
                        <option value="1m">"last 1m"</option>
                        <option value="5m">"last 5m"</option>
                        <option value="15m">"last 15m"</option>
                        <option value="1h">"last 1h"</option>
                        <option value="6h">"last 6h"</option>
                        <option value="1d">"last 1d"</option>
                    </select>
                </label>
                {move || { let s = state.get(); if s.live() {
                    view! { <button title="keep this window fixed (a shareable range)" on:click=move |_| {
                        let now = js_sys::Date::now() as i64;
                        let secs = parse_since(&state.get_untracked().since);
                        state.update(|s| { s.start = (now - secs * 1000).to_string(); s.end = now.to_string(); });
                    }>"freeze window"</button> }.into_any()
                } else {
                    view! { <span data-testid="fixed-window">{format!("fixed {} → {}", fmt_ms(&s.start), fmt_ms(&s.end))}</span>
                        " "<button on:click=move |_| state.update(|s| { s.start.clear(); s.end.clear(); s.replay.clear(); })>"back to live"</button> }.into_any()
                }}}
                {move || auth.signed_in.get().then(|| view! {
                    <button class="sign-out" data-testid="sign-out" title="forget this tab's API token"
                        on:click=move |_| crate::auth::sign_out()>"sign out"</button> })}
            </header>
            <SignIn />
            // A sign-in or sign-out (the auth epoch) rebuilds the view: every request of it is
            // made again with the new credentials, and the live stream reopened.
            <div class="view" inert=move || auth.prompt.get().is_some()>
            {move || { let _ = auth.epoch.get(); match view_name.get().as_str() {
                "trace" => view! { <TraceView state=state /> }.into_any(),
                "compare" => view! { <crate::trace_compare::CompareView state=state /> }.into_any(),
                "traces" => view! { <SearchView state=state /> }.into_any(),
                _ => view! { <MapView state=state /> }.into_any(),
            }}}
            </div>
        </div>
    }
}

/// The sign-in form, open while `auth.prompt` holds a message (the first 401 opens it). A modal
/// dialog: labelled, focus moved to the token field, the result announced (`role="alert"`).
#[component]
fn SignIn() -> impl IntoView {
    let auth = crate::auth::state();
    let token = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let input = NodeRef::<leptos::html::Input>::new();
    // Focus the token field whenever the form opens.
    Effect::new(move |_| {
        if auth.prompt.get().is_some()
            && let Some(i) = input.get()
        {
            let _ = i.focus();
        }
    });
    let submit = move |ev: web_sys::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        let candidate = token.get_untracked();
        spawn_local(async move {
            let res = crate::auth::sign_in(&candidate).await;
            let _ = busy.try_set(false);
            match res {
                Ok(()) => {
                    let _ = token.try_set(String::new());
                    let _ = error.try_set(None);
                }
                Err(e) => {
                    let _ = error.try_set(Some(e));
                    if let Some(i) = input.get_untracked() {
                        i.select();
                    }
                }
            }
        });
    };
    move || {
        auth.prompt.get().map(|why| view! {
            <div class="sign-in-backdrop">
                <form class="sign-in panel" role="dialog" aria-modal="true" aria-labelledby="sign-in-title"
                    aria-describedby="sign-in-why" data-testid="sign-in" on:submit=submit>
                    <h2 id="sign-in-title">"Sign in"</h2>
                    <p id="sign-in-why" data-testid="sign-in-why">{why}</p>
                    <label for="sign-in-token">"API token"</label>
                    <input id="sign-in-token" node_ref=input type="password" name="token" required
                        autocomplete="current-password" spellcheck="false" data-testid="sign-in-token"
                        prop:value=move || token.get() on:input=move |ev| token.set(event_target_value(&ev)) />
                    <p class="error" role="alert" data-testid="sign-in-error">{move || error.get()}</p>
                    <p class="muted">"Kept for this tab only (until it is closed); sent as an Authorization header, never in a URL."</p>
                    <button type="submit" prop:disabled=move || busy.get()>"Sign in"</button>
                </form>
            </div>
        })
    }
}

struct MapState {
    renderer: Renderer,
    scene: Scene,
    layout: Layout,
    layout_key: String,
    fitted: bool,
    /// Camera zoom of the last fit: wheel-zooming in to `EXPAND_ZOOM` times it over a
    /// namespace node expands that namespace.
    fit_zoom: f32,
    drag: Option<(usize, bool)>,
    pan: Option<(f32, f32)>,
    source: Option<LiveStream>,
}

fn pins_key(s: &UrlState) -> String {
    format!("orrery.pins.{}.{}.{}", s.level, s.region, s.focus)
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().unwrap().local_storage().ok().flatten()
}

pub(crate) fn now_s() -> f64 {
    web_sys::window().unwrap().performance().unwrap().now() / 1000.0
}

#[derive(Clone, Debug, PartialEq, Default)]
struct NodeItem {
    id: String,
    name: String,
    health: String,
    kind: String,
    namespace: String,
    rps: f64,
    error_rate: f64,
    /// Where the node was drawn (CSS px in the canvas) at the last update, for tests and tools.
    x: i32,
    y: i32,
}

#[component]
fn MapView(state: RwSignal<UrlState>) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let overlay = NodeRef::<leptos::html::Canvas>::new();
    let status = RwSignal::new(String::from("loading the map…"));
    let stream_state = RwSignal::new(StreamState::Connecting);
    let nodes = RwSignal::new(Vec::<NodeItem>::new());
    let edges = RwSignal::new(Vec::<(String, String, String, f64)>::new());
    let meta = RwSignal::new((0.0f64, crate::api::DataQuality::default(), String::new()));
    let hover = RwSignal::new(None::<(f32, f32, String, String)>);
    let panel = RwSignal::new(Panel::None);
    let locate = RwSignal::new(String::new());
    let ms: Rc<RefCell<Option<MapState>>> = Rc::new(RefCell::new(None));
    let backend = RwSignal::new(String::new());
    let diff = RwSignal::new(None::<Result<GraphDiff, String>>);
    // Diff mode: the diff every graph of this window is merged with (new edges green, vanished
    // ones dashed grey).
    let added_edges: Rc<RefCell<Option<GraphDiff>>> = Rc::default();
    // Graph fetches are numbered so that a slow answer never overwrites a newer one (replay
    // steps and window changes can overlap); `busy` makes replay wait for the frame it asked for.
    let fetch_gen = Rc::new(std::cell::Cell::new(0u64));
    let busy = Rc::new(std::cell::Cell::new(false));
    let playing = RwSignal::new(false);
    let speed = RwSignal::new(4.0f64);
    // False once this view is unmounted: the frame loop, stream and key handler then stop
    // touching its (disposed) signals.
    let alive = Rc::new(std::cell::Cell::new(true));

    // Applies a graph: filters, incremental layout, scene + GPU upload.
    let apply = {
        let ms = ms.clone();
        let alive = alive.clone();
        let added_edges = added_edges.clone();
        move |mut g: Graph| {
            if !alive.get() {
                return;
            }
            let s = state.get_untracked();
            if s.hide_virtual {
                g.nodes.retain(|n| !n.is_virtual());
            }
            if s.errors_only {
                g.edges.retain(|e| e.metrics.error_rate > 0.0);
            }
            if s.min_rate > 0.0 {
                g.edges.retain(|e| e.metrics.rps >= s.min_rate);
            }
            if s.hide_virtual || s.errors_only || s.min_rate > 0.0 {
                let keep: HashSet<&str> = g
                    .edges
                    .iter()
                    .flat_map(|e| [e.source.as_str(), e.target.as_str()])
                    .collect();
                let keep: HashSet<String> = keep.into_iter().map(String::from).collect();
                g.nodes
                    .retain(|n| keep.contains(&n.id) || n.focused || n.kind == "entry");
                let ids: HashSet<String> = g.nodes.iter().map(|n| n.id.clone()).collect();
                g.edges
                    .retain(|e| ids.contains(&e.source) && ids.contains(&e.target));
            }
            // Namespace zoom (region level): unexpanded namespaces are one node each. Diff mode
            // compares services, so it shows them all.
            if g.level == "region" && !s.diff {
                namespaces::collapse(&mut g, &namespaces::parse_expanded(&s.ns));
            }
            let marks = match (s.diff, added_edges.borrow().as_ref()) {
                (true, Some(d)) => diff::merge(&mut g, d),
                _ => Marks::default(),
            };
            let mut guard = ms.borrow_mut();
            let Some(m) = guard.as_mut() else { return };
            let key = pins_key(&s);
            if m.layout_key != key {
                m.layout = Layout::new();
                if let Some(p) = storage().and_then(|st| st.get_item(&key).ok().flatten()) {
                    m.layout.set_pins(Layout::pins_from_string(&p));
                }
                m.layout_key = key;
                m.fitted = false;
            }
            let input = Input::of(&g);
            if g.level == "global" {
                m.layout.update_ring(&input, "INTERNET");
            } else {
                m.layout.update_layered(&input);
            }
            edges.set(
                g.edges
                    .iter()
                    .map(|e| {
                        (
                            e.source.clone(),
                            e.target.clone(),
                            marks.edge_state(e).to_string(),
                            e.metrics.error_rate,
                        )
                    })
                    .collect(),
            );
            meta.set((g.max_volume, g.data_quality.clone(), g.level.clone()));
            let nothing = if s.replaying().is_some() {
                "No traffic in this minute."
            } else {
                "No traffic in this window yet — send spans to the collector (OTLP :4317/:4318)."
            };
            status.set(if g.nodes.is_empty() {
                nothing.into()
            } else {
                String::new()
            });
            let t = now_s();
            m.scene.marks = marks;
            m.scene.set(g, &m.layout, t, true, None, 100_000);
            m.renderer.upload(&m.scene);
            // Kiosk mode (wall displays) re-fits on every update: nobody is there to pan.
            if !m.fitted || flag("kiosk") {
                m.renderer.fit(&m.scene);
                m.fitted = true;
                m.fit_zoom = m.renderer.camera.zoom;
            }
            let cam = m.renderer.camera;
            let (w, h) = m.renderer.size_css();
            nodes.set(
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
                    .collect(),
            );
        }
    };
    let apply = Rc::new(apply);

    // Renderer + frame loop once the canvases exist.
    {
        let ms = ms.clone();
        let alive = alive.clone();
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

    // Data: one fetch, then the SSE stream, re-opened whenever the view or window changes.
    {
        let ms = ms.clone();
        let apply = apply.clone();
        let added_edges = added_edges.clone();
        let fetch_gen = fetch_gen.clone();
        let busy = busy.clone();
        // Only what changes the data refetches: the selected edge and the panel do not.
        let fetch_key = Memo::new(move |_| {
            let s = state.get();
            (
                s.graph_query(),
                s.diff,
                s.errors_only,
                s.hide_virtual,
                s.min_rate,
                s.live(),
                s.ns.clone(),
            )
        });
        let shown_view = Rc::new(RefCell::new(None::<String>));
        Effect::new(move |_| {
            // Read, not just tracked: a memo only follows its sources once it has been computed.
            let _ = fetch_key.get();
            let s = state.get_untracked();
            if canvas.get().is_none() {
                return;
            }
            // A new view (level/region/focus) closes the panel; the first one opens the edge the
            // URL selects (a link from a trace span).
            let view_key = pins_key(&s);
            let first = shown_view.borrow().is_none();
            if shown_view.borrow().as_deref() != Some(view_key.as_str()) {
                panel.set(match s.edge.split_once("->") {
                    Some((a, b)) if first => Panel::Edge(a.to_string(), b.to_string()),
                    _ => Panel::None,
                });
                *shown_view.borrow_mut() = Some(view_key);
            }
            // A different view starts empty, so nothing stale is shown (or asserted on).
            if ms
                .borrow()
                .as_ref()
                .is_some_and(|m| m.layout_key != pins_key(&s))
            {
                nodes.set(Vec::new());
                edges.set(Vec::new());
                status.set("loading the map…".into());
            }
            let q = s.graph_query();
            let apply2 = apply.clone();
            let added = added_edges.clone();
            let want_diff = s.diff;
            if !want_diff {
                *added.borrow_mut() = None;
                diff.set(None);
            }
            let generation = fetch_gen.get() + 1;
            fetch_gen.set(generation);
            busy.set(true);
            let (fetch_gen, busy) = (fetch_gen.clone(), busy.clone());
            spawn_local(async move {
                // The diff first, so the graph that follows is drawn with its changes marked.
                let d = if want_diff {
                    Some(get_json::<GraphDiff>(&format!("orrery/api/graph/diff?{q}")).await)
                } else {
                    None
                };
                let g = get_json::<Graph>(&format!("orrery/api/graph?{q}")).await;
                if fetch_gen.get() != generation {
                    return;
                }
                busy.set(false);
                if let Some(d) = d {
                    *added.borrow_mut() = d.as_ref().ok().cloned();
                    let _ = diff.try_set(Some(d));
                }
                match g {
                    Ok(g) => apply2(g),
                    Err(e) => {
                        let _ = status.try_set(format!("Could not load the graph: {e}"));
                    }
                }
            });
            let mut b = ms.borrow_mut();
            if let Some(m) = b.as_mut() {
                // Dropping the old stream aborts its connection and its reconnects.
                m.source = None;
                if !s.live() {
                    let _ = stream_state.try_set(StreamState::Connecting);
                    return;
                }
                let apply3 = apply.clone();
                let on_event: Rc<dyn Fn(crate::sse::SseEvent)> =
                    Rc::new(move |ev: crate::sse::SseEvent| {
                        if ev.event == "graph"
                            && let Ok(g) = serde_json::from_str::<Graph>(&ev.data)
                        {
                            apply3(g);
                        } else if ev.event == "error" {
                            // A refresh that failed (e.g. hit a query limit); the stream goes
                            // on and the next graph clears the message.
                            let msg = serde_json::from_str::<crate::api::ApiError>(&ev.data)
                                .map(|e| e.error)
                                .unwrap_or(ev.data);
                            let _ = status.try_set(format!("Live update failed: {msg}"));
                        }
                    });
                let on_state: Rc<dyn Fn(StreamState)> = Rc::new(move |st: StreamState| {
                    let _ = stream_state.try_set(st);
                });
                m.source = Some(LiveStream::open(
                    format!("orrery/api/graph/stream?{}", s.graph_query()),
                    on_event,
                    on_state,
                ));
            }
        });
    }
    // The URL and the drawing follow the open edge panel.
    {
        let ms = ms.clone();
        Effect::new(move |prev: Option<String>| {
            let id = match panel.get() {
                Panel::Edge(a, b) => format!("{a}->{b}"),
                _ => String::new(),
            };
            // Before any panel was opened, the URL's edge is still to be shown: keep it.
            if (prev.is_some() || !id.is_empty()) && state.with_untracked(|s| s.edge != id) {
                state.update(|s| s.edge = id.clone());
            }
            if let Ok(mut b) = ms.try_borrow_mut()
                && let Some(m) = b.as_mut()
            {
                m.scene.selected_edge = (!id.is_empty()).then(|| id.clone());
                m.renderer.upload(&m.scene);
            }
            id
        });
    }
    // Replay: while playing, step to the next minute once the previous frame has arrived.
    {
        let busy = busy.clone();
        let timer = RwSignal::new(None::<IntervalHandle>);
        Effect::new(move |_| {
            let (on, every) = (playing.get(), replay::interval_ms(speed.get()));
            if let Some(h) = timer.try_get_untracked().flatten() {
                h.clear();
            }
            let busy = busy.clone();
            let handle = on.then(|| {
                set_interval_with_handle(
                    move || {
                        if busy.get() {
                            return;
                        }
                        let Some((r, pos)) = state.with_untracked(|s| s.replaying()) else {
                            playing.set(false);
                            return;
                        };
                        match r.next(pos) {
                            Some(p) => state.update(|s| s.replay = p.to_string()),
                            None => playing.set(false),
                        }
                    },
                    std::time::Duration::from_millis(every as u64),
                )
                .ok()
            });
            timer.set(handle.flatten());
        });
        on_cleanup(move || {
            if let Some(h) = timer.try_get_untracked().flatten() {
                h.clear();
            }
        });
    }
    {
        let ms = send_wrapper::SendWrapper::new(ms.clone());
        let alive = send_wrapper::SendWrapper::new(alive.clone());
        on_cleanup(move || {
            alive.set(false);
            if let Ok(mut b) = ms.try_borrow_mut()
                && let Some(m) = b.as_mut()
                && let Some(stream) = m.source.take()
            {
                stream.close();
            }
        });
    }

    let drill = move |id: String, kind: String| {
        state.update(|s| {
            if kind == "namespace" {
                // Zoom into a namespace: its services replace its node.
                let mut set = namespaces::parse_expanded(&s.ns);
                set.insert(namespaces::of_id(&id).unwrap_or_default().to_string());
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
    };
    let up = move || {
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
    };
    let esc =
        Closure::<dyn FnMut(web_sys::KeyboardEvent)>::new(move |ev: web_sys::KeyboardEvent| {
            // Keys typed in the (modal) sign-in dialog are not for the map behind it.
            if ev.key() == "Escape"
                && state.get_untracked().view == "map"
                && crate::auth::state().prompt.get_untracked().is_none()
            {
                if panel.get_untracked() != Panel::None {
                    panel.set(Panel::None);
                } else {
                    up();
                }
            }
        });
    let _ = web_sys::window()
        .unwrap()
        .add_event_listener_with_callback("keydown", esc.as_ref().unchecked_ref());
    esc.forget();

    let xy = |ev: &web_sys::MouseEvent| (ev.offset_x() as f32, ev.offset_y() as f32);
    let on_move = {
        let ms = ms.clone();
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
                m.renderer.camera.cx -= (x - px) / z;
                m.renderer.camera.cy -= (y - py) / z;
                m.pan = Some((x, y));
                return;
            }
            let t = now_s();
            hover.set(match m.renderer.pick(&m.scene, x, y, t) {
                Some(Hit::Node(i)) => {
                    let n = &m.scene.graph.nodes[i];
                    Some((x, y, n.name.clone(), metrics_line(&n.metrics)))
                }
                Some(Hit::Edge(e)) => {
                    let e = &m.scene.graph.edges[e];
                    Some((
                        x,
                        y,
                        format!("{} → {}", e.source, e.target),
                        metrics_line(&e.metrics),
                    ))
                }
                None => None,
            });
        }
    };
    let on_down = {
        let ms = ms.clone();
        move |ev: web_sys::MouseEvent| {
            let (x, y) = xy(&ev);
            let mut b = ms.borrow_mut();
            let Some(m) = b.as_mut() else { return };
            match m.renderer.pick(&m.scene, x, y, now_s()) {
                Some(Hit::Node(i)) => m.drag = Some((i, false)),
                _ => m.pan = Some((x, y)),
            }
        }
    };
    let on_up = {
        let ms = ms.clone();
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
            match m.renderer.pick(&m.scene, x, y, now_s()) {
                Some(Hit::Node(i)) => {
                    let n = &m.scene.graph.nodes[i];
                    m.scene.selected = Some(n.id.clone());
                    m.renderer.upload(&m.scene);
                    panel.set(Panel::Node(n.id.clone()));
                }
                Some(Hit::Edge(e)) => {
                    let e = &m.scene.graph.edges[e];
                    panel.set(Panel::Edge(e.source.clone(), e.target.clone()));
                }
                None => {}
            }
        }
    };
    let on_dbl = {
        let ms = ms.clone();
        move |ev: web_sys::MouseEvent| {
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
                drill(id, kind);
            }
        }
    };
    let on_wheel = {
        let ms = ms.clone();
        move |ev: web_sys::WheelEvent| {
            ev.prevent_default();
            let expand = {
                let mut b = ms.borrow_mut();
                let Some(m) = b.as_mut() else { return };
                let (x, y) = (ev.offset_x() as f32, ev.offset_y() as f32);
                let before = m.renderer.screen_to_world(x, y);
                let k = (-ev.delta_y() as f32 * 0.0015).exp();
                m.renderer.camera.zoom = (m.renderer.camera.zoom * k).clamp(0.01, 8.0);
                let after = m.renderer.screen_to_world(x, y);
                m.renderer.camera.cx += before.x - after.x;
                m.renderer.camera.cy += before.y - after.y;
                // Semantic zoom: zooming in far enough over a namespace opens it.
                match m.renderer.pick(&m.scene, x, y, now_s()) {
                    Some(Hit::Node(i))
                        if k > 1.0
                            && m.renderer.camera.zoom >= m.fit_zoom * EXPAND_ZOOM
                            && m.scene.graph.nodes[i].kind == "namespace" =>
                    {
                        Some(m.scene.graph.nodes[i].id.clone())
                    }
                    _ => None,
                }
            };
            if let Some(id) = expand {
                drill(id, "namespace".into());
            }
        }
    };
    let do_locate = {
        let ms = ms.clone();
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
                m.renderer.camera.cx = p.x;
                m.renderer.camera.cy = p.y;
                m.renderer.camera.zoom = m.renderer.camera.zoom.max(1.0);
                m.scene.selected = Some(m.scene.graph.nodes[i].id.clone());
                m.renderer.upload(&m.scene);
                panel.set(Panel::Node(m.scene.graph.nodes[i].id.clone()));
            }
        }
    };
    let unpin = {
        let ms = ms.clone();
        move |_| {
            if let Some(m) = ms.borrow_mut().as_mut() {
                m.layout.unpin_all();
                if let Some(st) = storage() {
                    let _ = st.remove_item(&m.layout_key);
                }
            }
        }
    };

    view! {
        <div class="breadcrumb" aria-label="breadcrumb">
            <button on:click=move |_| state.update(|s| { s.level = "global".into(); s.region.clear(); s.focus.clear(); })>"Global"</button>
            {move || { let s = state.get(); (s.level != "global").then(|| view! {
                <span>"›"</span>
                <button on:click=move |_| state.update(|s| { s.level = "region".into(); s.focus.clear(); })>
                    {if s.region.is_empty() { "All regions".to_string() } else { s.region.clone() }}
                </button>
            })}}
            {move || { let s = state.get(); (s.level == "focused").then(|| view! { <span>"›"</span><strong data-testid="focused">{s.focus.clone()}</strong> })}}
            {move || { let s = state.get(); (s.level == "region" && !s.ns.is_empty()).then(|| view! {
                <span>"›"</span><button data-testid="collapse-namespaces" on:click=move |_| state.update(|s| s.ns.clear())>
                    {format!("namespaces {} (collapse)", s.ns)}</button> })}}
            <span class="muted">" · Esc goes back · double-click drills down · drag pins a node"</span>
            <input placeholder="locate a service" aria-label="locate a service" prop:value=move || locate.get()
                on:input=move |ev| locate.set(event_target_value(&ev))
                on:keydown={ let do_locate = do_locate.clone(); move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" { do_locate() } } />
            <label><input type="checkbox" prop:checked=move || state.get().errors_only on:change=move |ev| { let c = event_target_checked(&ev); state.update(|s| s.errors_only = c) } />" errors only"</label>
            <label><input type="checkbox" prop:checked=move || state.get().hide_virtual on:change=move |ev| { let c = event_target_checked(&ev); state.update(|s| s.hide_virtual = c) } />" hide virtual"</label>
            <label>" min rate "<input type="number" min="0" step="0.1" class="w-70" prop:value=move || state.get().min_rate.to_string()
                on:change=move |ev| { let v = event_target_value(&ev).parse().unwrap_or(0.0); state.update(|s| s.min_rate = v) } /></label>
            <label><input type="checkbox" data-testid="diff-toggle" prop:checked=move || state.get().diff on:change=move |ev| { let c = event_target_checked(&ev); state.update(|s| s.diff = c) } />" diff vs previous window"</label>
            <button on:click=unpin>"unpin all"</button>
        </div>
        <ReplayBar state=state playing=playing speed=speed />
        <div class="main">
            <div class="stage" data-testid="map" data-renderer=move || backend.get() data-level=move || state.get().level
                data-node-count=move || nodes.get().len() data-edge-count=move || edges.get().len()
                data-expanded=move || state.get().ns
                data-stream=move || match stream_state.get() { StreamState::Connecting => "connecting", StreamState::Live => "live", StreamState::Retrying { .. } => "retrying", StreamState::Unauthorized => "unauthorized" }>
                <canvas node_ref=canvas tabindex="0" aria-label="service map"
                    on:mousemove=on_move on:mousedown=on_down on:mouseup=on_up on:dblclick=on_dbl on:wheel=on_wheel
                    on:mouseleave=move |_| hover.set(None)></canvas>
                <canvas node_ref=overlay class="overlay"></canvas>
                {move || (!status.get().is_empty()).then(|| view! { <div class="panel msg map-status" data-testid="map-status">{status.get()}</div> })}
                {move || match stream_state.get() {
                    StreamState::Retrying { ms, error } => Some(view! { <div class="panel msg stream-status" role="status" data-testid="stream-status">
                        {format!("Live updates interrupted ({error}); reconnecting in {:.0} s…", f64::from(ms) / 1000.0)}</div> }.into_any()),
                    // Unauthorized: the graph fetch's status already says so and the form is open.
                    _ => None,
                }}
                {move || hover.get().map(|(x, y, title, line)| view! {
                    <div class="panel hover" data-testid="hover" style:left=format!("{}px", x + 14.0) style:top=format!("{}px", y + 14.0)>
                        <strong>{title}</strong><div>{line}</div>
                    </div>
                })}
                <ul class="node-list panel" data-testid="map-nodes" aria-label="services on the map">
                    <For each=move || nodes.get() key=|n| (n.id.clone(), n.health.clone(), n.x, n.y) children=move |n| {
                        let id = n.id.clone();
                        let kind = n.kind.clone();
                        let id2 = n.id.clone();
                        view! {
                            <li tabindex="0" class=n.health.clone() data-node-id=n.id.clone() data-x=n.x data-y=n.y data-kind=n.kind.clone() data-health=n.health.clone() data-namespace=n.namespace.clone()
                                on:click={ let id = id.clone(); move |_| panel.set(Panel::Node(id.clone())) }
                                on:keydown={ let id = id.clone(); let kind = n.kind.clone(); move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
                                    // Keyboard: Enter opens the panel, Shift+Enter drills down.
                                    "Enter" if ev.shift_key() => drill(id.clone(), kind.clone()),
                                    "Enter" => panel.set(Panel::Node(id.clone())),
                                    _ => {}
                                } }
                                on:dblclick=move |_| drill(id2.clone(), kind.clone())>
                                {format!("{} · {} · {:.1}% err", n.name, fmt_rate(n.rps), n.error_rate * 100.0)}
                            </li>
                        }
                    } />
                </ul>
                <ul hidden data-testid="map-edges">
                    <For each=move || edges.get() key=|e| (e.0.clone(), e.1.clone(), e.2.clone()) children=move |e| {
                        let (s, t) = (e.0.clone(), e.1.clone());
                        let id = format!("{}->{}", e.0, e.1);
                        let id2 = id.clone();
                        view! { <li data-edge-id=id data-health=e.2.clone() data-error-rate=e.3.to_string()
                            data-selected=move || state.with(|s| (s.edge == id2).to_string())
                            on:click=move |_| panel.set(Panel::Edge(s.clone(), t.clone()))>{format!("{} -> {}", e.0, e.1)}</li> }
                    } />
                </ul>
                <Legend meta=meta />
                {move || diff.get().map(|d| view! { <DiffPanel diff=d /> })}
            </div>
            {move || match panel.get() {
                Panel::None => None,
                Panel::Node(id) if namespaces::of_id(&id).is_some() => Some(view! { <NamespacePanel id=id state=state /> }.into_any()),
                Panel::Node(id) => Some(view! { <NodePanel id=id state=state /> }.into_any()),
                Panel::Edge(s, t) if namespaces::of_id(&s).is_some() || namespaces::of_id(&t).is_some() =>
                    Some(view! { <NamespaceEdgePanel source=s target=t state=state panel=panel /> }.into_any()),
                Panel::Edge(s, t) => Some(view! { <EdgePanel source=s target=t state=state /> }.into_any()),
            }}
        </div>
    }
}

/// How far past the fitted zoom the wheel must go over a namespace node to expand it.
const EXPAND_ZOOM: f32 = 1.6;

/// A collapsed namespace's panel: what it stands for and the way in (the node detail API
/// knows services only).
#[component]
fn NamespacePanel(id: String, state: RwSignal<UrlState>) -> impl IntoView {
    let ns = namespaces::of_id(&id).unwrap_or_default().to_string();
    let ns2 = ns.clone();
    view! {
        <aside class="side" data-testid="namespace-panel">
            <h3>{format!("namespace {ns}")}</h3>
            <p>"Its services are drawn as this one node (summed traffic; calls inside it are not drawn)."</p>
            <button data-testid="namespace-expand" on:click=move |_| state.update(|s| {
                let mut set = namespaces::parse_expanded(&s.ns);
                set.insert(ns2.clone());
                s.ns = namespaces::format_expanded(&set);
            })>"Show its services"</button>
        </aside>
    }
}

/// An edge drawn between collapsed namespaces stands for several service-to-service calls; the
/// edge detail API knows single calls, so the way to their traces is to open the namespaces.
#[component]
fn NamespaceEdgePanel(
    source: String,
    target: String,
    state: RwSignal<UrlState>,
    panel: RwSignal<Panel>,
) -> impl IntoView {
    let groups: Vec<String> = [&source, &target]
        .into_iter()
        .filter_map(|id| namespaces::of_id(id).map(String::from))
        .collect();
    let label = groups.join(" and ");
    view! {
        <aside class="side" data-testid="namespace-edge-panel">
            <h3>{format!("{source} → {target}")}</h3>
            <p>{format!("The calls between the services of {label}, summed. Open the namespaces to see each call, its latency and its traces.")}</p>
            <button data-testid="namespace-edge-expand" on:click=move |_| {
                state.update(|s| {
                    let mut set = namespaces::parse_expanded(&s.ns);
                    set.extend(groups.iter().cloned());
                    s.ns = namespaces::format_expanded(&set);
                });
                panel.set(Panel::None);
            }>"Show the calls"</button>
        </aside>
    }
}

fn metrics_line(m: &crate::api::Metrics) -> String {
    format!(
        "{} · {:.2}% errors · p50 {:.1}ms · p95 {:.1}ms · p99 {:.1}ms",
        fmt_rate(m.rps),
        m.error_rate * 100.0,
        m.p50_ms,
        m.p95_ms,
        m.p99_ms
    )
}

#[component]
fn Legend(meta: RwSignal<(f64, crate::api::DataQuality, String)>) -> impl IntoView {
    view! {
        <div class="panel legend" data-testid="legend">
            <strong>"Particles (log scale)"</strong>
            <table><tbody>
                {move || encoding::legend(meta.get().0).into_iter().map(|(rps, pps)| view! {
                    <tr><td>{fmt_rate(rps)}</td><td>"→"</td><td>{format!("{pps:.1} particles/s")}</td></tr>
                }).collect_view()}
            </tbody></table>
            <div><span class="err">"● red"</span>" = error share · ring = node error share"</div>
        </div>
        <div class="panel quality" data-testid="data-quality">
            {move || { let q = meta.get().1; format!(
                "{} spans · {} orphan · {} unmatched client · {} late",
                q.spans, q.orphan_spans, q.unmatched_client_spans, q.late_spans) }}
        </div>
    }
}

#[component]
fn NodePanel(id: String, state: RwSignal<UrlState>) -> impl IntoView {
    let detail = RwSignal::new(None::<Result<NodeDetail, String>>);
    let url = format!(
        "orrery/api/nodes/{}?{}",
        enc(&id),
        state.get_untracked().data_window_query()
    );
    spawn_local(async move { detail.set(Some(get_json(&url).await)) });
    let id2 = id.clone();
    view! {
        <aside class="side" data-testid="node-panel">
            <h3>{id.clone()}</h3>
            <button on:click=move |_| state.update(|s| { s.level = "focused".into(); s.focus = id2.clone(); })>"Focus this service"</button>
            " "
            <button on:click={ let id = id.clone(); move |_| state.update(|s| { s.view = "traces".into(); s.service = id.clone(); }) }>"Find traces"</button>
            {move || match detail.get() {
                None => view! { <p class="muted">"loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error">{e}</p> }.into_any(),
                Some(Ok(d)) => view! {
                    <p>{metrics_line(&d.node.metrics)}</p>
                    <h4>"Latency"</h4>
                    <HistogramChart h=d.histogram.clone() testid="node-histogram" />
                    <h4>"Operations"</h4>
                    <table class="data" data-testid="operations"><thead><tr><th>"operation"</th><th>"kind"</th><th>"rate"</th><th>"err %"</th><th>"p95"</th></tr></thead>
                    <tbody>{d.operations.iter().map(|o| view! {
                        <tr><td>{o.name.clone()}</td><td>{o.span_kind.clone()}</td><td class="num">{fmt_rate(o.metrics.rps)}</td>
                        <td class="num">{format!("{:.2}", o.metrics.error_rate * 100.0)}</td><td class="num">{format!("{:.1}ms", o.metrics.p95_ms)}</td></tr>
                    }).collect_view()}</tbody></table>
                    <h4>"Instances"</h4>
                    <ul>{d.instances.iter().map(|i| view! { <li>{format!("{} · {}", if i.id.is_empty() { "(no instance id)" } else { &i.id }, metrics_line(&i.metrics))}</li> }).collect_view()}</ul>
                }.into_any(),
            }}
        </aside>
    }
}

#[component]
fn EdgePanel(source: String, target: String, state: RwSignal<UrlState>) -> impl IntoView {
    let detail = RwSignal::new(None::<Result<EdgeDetail, String>>);
    let url = format!(
        "orrery/api/edges?source={}&target={}&{}",
        enc(&source),
        enc(&target),
        state.get_untracked().data_window_query()
    );
    spawn_local(async move { detail.set(Some(get_json(&url).await)) });
    let open = move |id: String| {
        state.update(|s| {
            s.view = "trace".into();
            s.trace = id;
        })
    };
    view! {
        <aside class="side" data-testid="edge-panel">
            <h3>{format!("{source} → {target}")}</h3>
            {move || match detail.get() {
                None => view! { <p class="muted">"loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error">{e}</p> }.into_any(),
                Some(Ok(d)) => view! {
                    <p>{metrics_line(&d.edge.metrics)}</p>
                    <h4>"Latency"</h4>
                    <HistogramChart h=d.histogram.clone() testid="histogram" />
                    <h4>"Recent error traces"</h4>
                    {if d.exemplars.failed.is_empty() { Some(view! { <p class="muted">"No failed calls in this window."</p> }) } else { None }}
                    <ul data-testid="error-traces">{d.exemplars.failed.iter().map(|t| { let id = t.trace_id.clone(); view! {
                        <li><a href="#" data-trace-id=t.trace_id.clone() on:click=move |ev| { ev.prevent_default(); open(id.clone()) }>
                            {format!("{} · {} · {}", &t.trace_id[..t.trace_id.len().min(12)], t.operation, fmt_us(t.duration_us))}</a></li>
                    }}).collect_view()}</ul>
                    <h4>"Slowest"</h4>
                    <ul>{d.exemplars.slowest.iter().map(|t| { let id = t.trace_id.clone(); view! {
                        <li><a href="#" on:click=move |ev| { ev.prevent_default(); open(id.clone()) }>{format!("{} · {}", t.operation, fmt_us(t.duration_us))}</a></li>
                    }}).collect_view()}</ul>
                }.into_any(),
            }}
        </aside>
    }
}

#[component]
fn DiffPanel(diff: Result<GraphDiff, String>) -> impl IntoView {
    let d = match diff {
        Err(e) => {
            return view! { <div class="panel diff error" data-testid="diff">{e}</div> }.into_any();
        }
        Ok(d) => d,
    };
    view! {
        <div class="panel diff" data-testid="diff">
            <strong>"Diff vs the previous window"</strong>
            <div class="muted">"new edges green · vanished dashed grey"</div>
            <div class="muted">{format!("{} new, {} vanished edges · {} new, {} vanished nodes",
                d.added_edges.len(), d.removed_edges.len(), d.added_nodes.len(), d.removed_nodes.len())}</div>
            <ul>
                {d.added_edges.iter().map(|e| view! { <li class="added" data-edge-id=e.id.clone()>{format!("+ {} → {}", e.source, e.target)}</li> }).collect_view()}
                {d.removed_edges.iter().map(|e| view! { <li class="vanished" data-edge-id=e.id.clone()>{format!("− {} → {}", e.source, e.target)}</li> }).collect_view()}
                {d.changed_edges.iter().filter(|c| c.error_rate_delta.abs() >= 0.001).take(10).map(|c| view! {
                    <li class={if c.error_rate_delta > 0.0 { "err" } else { "added" }}>
                        {format!("{} → {}: errors {:.1}% → {:.1}%", c.source, c.target, c.base.error_rate * 100.0, c.current.error_rate * 100.0)}</li>
                }).collect_view()}
            </ul>
        </div>
    }
    .into_any()
}

/// Seconds in a `since` value like `90s`, `5m`, `1h`, `2d` (default 5 minutes).
fn parse_since(s: &str) -> i64 {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n.parse().unwrap_or(5);
    n * match unit {
        "s" => 1,
        "h" => 3600,
        "d" => 86400,
        _ => 60,
    }
}

pub(crate) fn fmt_ms(ms: &str) -> String {
    let d = js_sys::Date::new(&JsValue::from_f64(ms.parse().unwrap_or(0.0)));
    d.to_iso_string().as_string().unwrap_or_default()
}

/// A latency histogram as bars (edge and node panels); `data-count` on each bar for tools.
#[component]
fn HistogramChart(h: Histogram, testid: &'static str) -> impl IntoView {
    let max = h.counts.iter().copied().max().unwrap_or(0).max(1);
    let total: u64 = h.counts.iter().sum();
    let (lo, hi) = (
        h.bounds_ms
            .first()
            .map(|b| format!("≤{b}ms"))
            .unwrap_or_default(),
        h.bounds_ms
            .last()
            .map(|b| format!(">{b}ms"))
            .unwrap_or_default(),
    );
    view! {
        <div class="histogram" data-testid=testid data-total=total>{
            h.counts.iter().enumerate().map(|(i, c)| {
                let label = h.bounds_ms.get(i).map(|b| format!("≤{b}ms")).unwrap_or_else(|| "more".into());
                view! { <div class="hbar" title=format!("{label}: {c}") data-le=label.clone() data-count=*c>
                    <div style:height=format!("{:.0}%", *c as f64 / max as f64 * 100.0)></div></div> }
            }).collect_view()
        }</div>
        <div class="hist-axis muted">{if total == 0 {
            view! { <span>"No calls measured in this window."</span> }.into_any()
        } else {
            view! { <span>{lo}</span><span>{format!("{total} calls")}</span><span>{hi}</span> }.into_any()
        }}</div>
    }
}

/// Replay controls for a fixed window: start, play/pause, speed, a scrubber over the minutes.
#[component]
fn ReplayBar(
    state: RwSignal<UrlState>,
    playing: RwSignal<bool>,
    speed: RwSignal<f64>,
) -> impl IntoView {
    let info =
        Memo::new(move |_| state.with(|s| if s.live() { None } else { Some(s.replaying()) }));
    let range = Memo::new(move |_| info.get().flatten().map(|(r, _)| r));
    let pos = Memo::new(move |_| info.get().flatten().map(|(_, p)| p).unwrap_or(0));
    // Rebuilt only when replay starts/stops or the range changes, never per step (a rebuilt
    // scrubber would drop the user's drag).
    let mode = Memo::new(move |_| info.get().map(|i| i.map(|(r, _)| r)));
    move || {
        match mode.get() {
        None => None,
        Some(None) => Some(view! {
            <div class="replay-bar" data-testid="replay-bar">
                <button data-testid="replay-start" on:click=move |_| state.update(|s| s.replay = s.start.clone())>
                    "▶ replay this range minute by minute"</button>
            </div>
        }.into_any()),
        Some(Some(r)) => {
            Some(view! {
                <div class="replay-bar" data-testid="replay" data-position=move || pos.get() data-playing=move || playing.get().to_string()
                    data-frame=move || range.get().map(|r| r.index(pos.get())).unwrap_or(0) data-frames=r.frames()>
                    <button data-testid="replay-play" on:click=move |_| {
                        // Play from the start again once the end was reached.
                        if !playing.get_untracked() && range.get_untracked().is_some_and(|r| r.next(pos.get_untracked()).is_none()) {
                            state.update(|s| s.replay = r.first.to_string());
                        }
                        playing.update(|p| *p = !*p)
                    }>{move || if playing.get() { "❚❚ pause" } else { "▶ play" }}</button>
                    <label>" speed "<select data-testid="replay-speed" aria-label="replay speed" prop:value=move || speed.get().to_string()
                        on:change=move |ev| speed.set(event_target_value(&ev).parse().unwrap_or(1.0))>
                        {[1, 2, 4, 8, 16].into_iter().map(|k| view! { <option value=k.to_string()>{format!("{k}×")}</option> }).collect_view()}
                    </select></label>
                    <input type="range" data-testid="replay-scrubber" aria-label="replay position" min=r.first max=r.last step=replay::STEP_MS
                        prop:value=move || pos.get().to_string()
                        on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<i64>() { state.update(|s| s.replay = r.clamp(v).to_string()) } } />
                    <span data-testid="replay-label">{move || format!("{} · minute {} of {}", fmt_ms(&pos.get().to_string()), r.index(pos.get()) + 1, r.frames())}</span>
                    <button on:click=move |_| { playing.set(false); state.update(|s| s.replay.clear()) }>"stop replay"</button>
                </div>
            }.into_any())
        }
    }
    }
}
